// RCU for the whole library: liburcu's bp ("bulletproof") flavor, which registers
// threads on their first read section, so Node's threads, libuv's pool and worker
// threads need no registration. Everything RCU goes through this header so the
// flavor can be swapped in one place.
#pragma once

// Inline read-side fast paths (liburcu's small-function exception), except in
// sanitizer builds: liburcu 0.13.2's bp arena misaligns its 128-byte-aligned
// reader records (fixed upstream in 0.13.4/0.15, harmless on x86), and calling
// the uninstrumented library keeps UBSan's reports to our own bugs.
#if !defined(_LGPL_SOURCE) && !defined(DMABUF_URCU_OUT_OF_LINE)
#define _LGPL_SOURCE
#endif
#include <urcu/urcu-bp.h>

#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#define DMABUF_TSAN 1
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace dmabuf::rcu {

#ifdef DMABUF_TSAN
// liburcu's grace periods synchronise through membarrier, which TSan cannot see:
// every read-side unlock "releases" this object and every reclaim after a grace
// period "acquires" it, which is exactly the ordering RCU guarantees.
extern char g_tsan_gp;
#endif

// Creates the call_rcu worker with all signals blocked (so it never takes the
// signals Node relies on). Idempotent; called by every entry point that defers.
void init();

inline void read_lock() { urcu_bp_read_lock(); }
inline void read_unlock() {
#ifdef DMABUF_TSAN
  __tsan_release(&g_tsan_gp);
#endif
  urcu_bp_read_unlock();
}
inline bool read_ongoing() { return urcu_bp_read_ongoing(); }

class ReadGuard {
 public:
  ReadGuard() { read_lock(); }
  ~ReadGuard() { read_unlock(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
};

template <typename T>
inline T* dereference(T* const& p) {
  return __atomic_load_n(&p, __ATOMIC_CONSUME);
}
template <typename T>
inline void assign_pointer(T*& p, T* v) {
  __atomic_store_n(&p, v, __ATOMIC_RELEASE);
}

// Waits for every read section that began before the call. Never call it inside
// a read section.
void synchronize();

// Waits until every deferred free and call_rcu callback queued before the call
// has run (flushes the calling thread's batch first).
void barrier();

// A node for a deferred free. It lives inside the object it frees (the fence's
// cb_list/timestamp union), like the kernel's rcu_head.
struct DeferredFree {
  DeferredFree* next;
  void* reserved;  // keeps the node the size of a kernel rcu_head
};

// Frees a list of nodes (linked through `next`, ending in nullptr) that were
// deferred with the same function. Runs on the reclaimer thread.
using FreeListFn = void (*)(DeferredFree* first);
// Same, but gets the batch as an array: recycling allocators use it so the
// allocating thread never chases pointers through cold objects.
using FreeArrayFn = void (*)(DeferredFree* const* nodes, unsigned count);

// How many frees one batch carries (a FreeArrayFn gets at most this many). Each
// batch's arrays cross between the freeing thread and the reclaimer once, a few
// cache-line transfers; at 64 a batch those transfers cost about a third of a
// fence lifecycle when the reclaimer runs on another CPU, at 256 a tenth.
constexpr unsigned kDeferBatch = 256;

// kfree_rcu: the free function gets `node` after a grace period. Frees are
// batched per thread (and per function), kDeferBatch at a time, and reclaimed by our own
// thread, which runs one synchronize_rcu() per round of batches about every
// millisecond: call_rcu would cost about as much as a whole fence lifecycle per
// call and hold memory for at least 10 ms, long enough for recycled objects to
// go cold. Deferring writes nothing into the object.
void defer_free(DeferredFree* node, FreeListFn free_list);
void defer_free(DeferredFree* node, FreeArrayFn free_array);

// Hands the calling thread's partial batch to call_rcu now.
void flush_deferred();

// Deferred frees handed to call_rcu that have not run yet (for leak accounting).
size_t deferred_pending();

/**
 * start_poll() - start_poll_synchronize_rcu(): a cookie for the first grace
 * period that begins after this call, and a request that the reclaimer run it
 *
 * Memory made unreachable before the call may be reused once poll_done() says
 * so. liburcu 0.13 has no polled grace periods: the cookies count the
 * reclaimer's own synchronize_rcu() rounds.
 *
 * Context: any thread, outside or inside a read section. Costs a full memory
 * barrier: call it per batch of frees, not per object.
 */
uint64_t start_poll();

/**
 * poll_done() - poll_state_synchronize_rcu(): whether @cookie's grace period
 * has ended
 *
 * Returns: true once every read section that began before start_poll()
 * returned @cookie has ended; the caller is then ordered after them (for TSan
 * too).
 */
bool poll_done(uint64_t cookie);

// call_rcu for objects that carry their own rcu_head. Callbacks should start
// with after_grace_period() (it tells TSan what the grace period ordered).
void call(rcu_head* head, void (*fn)(rcu_head*));

inline void after_grace_period() {
#ifdef DMABUF_TSAN
  __tsan_acquire(&g_tsan_gp);
#endif
}

}  // namespace dmabuf::rcu
