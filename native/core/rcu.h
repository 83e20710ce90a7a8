// RCU for the whole library: liburcu's bp ("bulletproof") flavor, which registers
// threads on their first read section, so Node's threads, libuv's pool and worker
// threads need no registration. Everything RCU goes through this header so the
// flavor can be swapped in one place.
#pragma once

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE  // inline read-side fast paths (liburcu's small-function exception)
#endif
#include <urcu/urcu-bp.h>

#include <cstddef>

namespace dmabuf::rcu {

// Creates the call_rcu worker with all signals blocked (so it never takes the
// signals Node relies on). Idempotent; called by every entry point that defers.
void init();

inline void read_lock() { urcu_bp_read_lock(); }
inline void read_unlock() { urcu_bp_read_unlock(); }
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
// cb_list/timestamp union), so deferring costs no allocation.
struct DeferredFree {
  DeferredFree* next;
  void (*free)(DeferredFree* node);
};

// kfree_rcu: `node->free(node)` runs after a grace period. Frees are batched per
// thread and handed to call_rcu 64 at a time, because one call_rcu costs about as
// much as a whole fence lifecycle.
void defer_free(DeferredFree* node, void (*free_fn)(DeferredFree*));

// Hands the calling thread's partial batch to call_rcu now.
void flush_deferred();

// Deferred frees handed to call_rcu that have not run yet (for leak accounting).
size_t deferred_pending();

// call_rcu for objects that carry their own rcu_head.
void call(rcu_head* head, void (*fn)(rcu_head*));

}  // namespace dmabuf::rcu
