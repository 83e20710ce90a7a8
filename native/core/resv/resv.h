// dma_resv: the fences attached to a buffer, each tagged with a usage, behind a
// ww_mutex for writers and RCU for readers. Signalled fences stay (referenced)
// until a later add, reserve, replace, copy or fini drops them -- the kernel's
// lazy release, one of the leaks the ops-detach series exists for.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/base/ww_mutex.h"
#include "core/fence/fence.h"

namespace dmabuf {

// Ordered: querying usage U returns every fence with usage <= U.
enum ResvUsage : unsigned {
  RESV_USAGE_KERNEL = 0,   // kernel memory management (moves, clears)
  RESV_USAGE_WRITE = 1,    // implicit-sync writers
  RESV_USAGE_READ = 2,     // implicit-sync readers
  RESV_USAGE_BOOKKEEP = 3, // not for implicit sync at all
};

/**
 * resv_usage_rw() - what a new access waits for: a writer waits for readers
 * and writers (READ), a reader only for writers (WRITE)
 */
inline ResvUsage resv_usage_rw(bool write) { return write ? RESV_USAGE_READ : RESV_USAGE_WRITE; }

// "kernel", "write", "read", "bookkeep"
const char* resv_usage_name(ResvUsage usage);

// struct dma_resv_list: RCU-replaced as a whole; entries are tagged pointers
// (fence | usage) updated in place under the lock.
struct ResvList {
  rcu::DeferredFree rcu;
  std::atomic<uint32_t> num_fences;
  uint32_t max_fences;
  std::atomic<uintptr_t> table[1];  // really max_fences entries
};

extern WwClass reservation_ww_class;  // wait-die, as DEFINE_WD_CLASS in the kernel

struct Resv {
  WwMutex lock;
  std::atomic<ResvList*> fences;
};

// struct dma_resv_iter
struct ResvIter {
  Resv* obj;
  ResvUsage usage;
  Fence* fence;          // current fence (referenced by unlocked iteration)
  ResvUsage fence_usage;
  unsigned index;
  ResvList* fences;      // the list being walked
  unsigned num_fences;
  bool is_restarted;
};

/**
 * resv_init() - an empty, unlocked object
 */
void resv_init(Resv* obj);

/**
 * resv_fini() - drop every fence and tear the lock down
 */
void resv_fini(Resv* obj);

// --- locking (ww semantics; ctx may be null for a plain lock) ---

/**
 * resv_lock() - 0, -EALREADY (ctx holds it), or -EDEADLK (back off, drop all
 * locks of ctx, then resv_lock_slow)
 */
inline int resv_lock(Resv* obj, WwAcquireCtx* ctx) { return ww_mutex_lock(&obj->lock, ctx); }
inline int resv_lock_interruptible(Resv* obj, WwAcquireCtx* ctx) {
  return ww_mutex_lock_interruptible(&obj->lock, ctx);
}
inline void resv_lock_slow(Resv* obj, WwAcquireCtx* ctx) { ww_mutex_lock_slow(&obj->lock, ctx); }
inline int resv_lock_slow_interruptible(Resv* obj, WwAcquireCtx* ctx) {
  return ww_mutex_lock_slow_interruptible(&obj->lock, ctx);
}
inline bool resv_trylock(Resv* obj) { return ww_mutex_trylock(&obj->lock, nullptr); }
inline bool resv_is_locked(Resv* obj) { return ww_mutex_is_locked(&obj->lock); }
inline WwAcquireCtx* resv_locking_ctx(Resv* obj) {
  return obj->lock.ctx.load(std::memory_order_relaxed);
}
inline void resv_unlock(Resv* obj) { ww_mutex_unlock(&obj->lock); }
inline bool resv_held(Resv* obj) { return ww_mutex_is_owned_by_current(&obj->lock); }
void resv_assert_held(Resv* obj);  // warns (lockdep would) if the caller does not hold it

// --- writers (lock held) ---

/**
 * resv_reserve_fences() - make room for @num_fences more adds
 *
 * Returns 0, -EINVAL for 0 (with a warning) or -ENOMEM. Reallocating drops
 * signalled fences.
 */
int resv_reserve_fences(Resv* obj, unsigned num_fences);

/**
 * resv_add_fence() - attach @fence with @usage (takes a reference)
 *
 * Overwrites the first entry that is signalled, or is on the same context with
 * an equal or weaker usage and not later than @fence; else appends into a
 * reserved slot. Containers warn: add their members instead. Without a reserved
 * slot it warns and reserves one itself (the kernel BUG()s); if even that fails
 * the fence is not added.
 */
void resv_add_fence(Resv* obj, Fence* fence, ResvUsage usage);

/**
 * resv_replace_fences() - every entry on @context becomes @replacement, @usage
 */
void resv_replace_fences(Resv* obj, uint64_t context, Fence* replacement, ResvUsage usage);

/**
 * resv_copy_fences() - replace @dst's fences by a snapshot of @src's pending
 * ones (all usages); 0 or -ENOMEM. @dst locked, @src not necessarily.
 */
int resv_copy_fences(Resv* dst, Resv* src);

// --- iteration ---

inline void resv_iter_begin(ResvIter* cursor, Resv* obj, ResvUsage usage) {
  cursor->obj = obj;
  cursor->usage = usage;
  cursor->fence = nullptr;
}
/**
 * resv_iter_end() - drop the reference the unlocked iteration holds
 */
inline void resv_iter_end(ResvIter* cursor) {
  fence_put(cursor->fence);
  cursor->fence = nullptr;
}
inline ResvUsage resv_iter_usage(const ResvIter* cursor) { return cursor->fence_usage; }
/**
 * resv_iter_is_restarted() - true for the first fence after a (re)start:
 * callers accumulating state must reset it
 */
inline bool resv_iter_is_restarted(const ResvIter* cursor) { return cursor->is_restarted; }

/**
 * resv_iter_first_unlocked() - first pending fence with usage <= the cursor's,
 * referenced by the cursor; no lock needed
 */
Fence* resv_iter_first_unlocked(ResvIter* cursor);
/**
 * resv_iter_next_unlocked() - next one; restarts from the beginning (and sets
 * is_restarted) if the object changed meanwhile
 */
Fence* resv_iter_next_unlocked(ResvIter* cursor);
/**
 * resv_iter_first() - locked walk: every entry with usage <= the cursor's,
 * signalled ones included, no references taken
 */
Fence* resv_iter_first(ResvIter* cursor);
Fence* resv_iter_next(ResvIter* cursor);

#define resv_for_each_fence_unlocked(cursor, fence)                      \
  for ((fence) = ::dmabuf::resv_iter_first_unlocked(cursor); (fence); \
       (fence) = ::dmabuf::resv_iter_next_unlocked(cursor))

#define resv_for_each_fence(cursor, obj, usage, fence)                           \
  for (::dmabuf::resv_iter_begin(cursor, obj, usage),                           \
       (fence) = ::dmabuf::resv_iter_first(cursor);                             \
       (fence); (fence) = ::dmabuf::resv_iter_next(cursor))

// --- readers (no lock needed) ---

/**
 * resv_get_fences() - referenced snapshot of the pending fences of @usage
 * @fences: out: malloc'd array (free with std::free), nullptr when empty
 *
 * Returns 0 or -ENOMEM.
 */
int resv_get_fences(Resv* obj, ResvUsage usage, unsigned* num_fences, Fence*** fences);

/**
 * resv_get_singleton() - one fence for all pending fences of @usage: nullptr
 * if none, the fence itself if one, else a new array (new context, seqno 1)
 *
 * Returns 0 or -ENOMEM. Never add the result back to the same object.
 */
int resv_get_singleton(Resv* obj, ResvUsage usage, Fence** fence);

/**
 * resv_wait_timeout() - wait for every pending fence of @usage in turn
 *
 * Returns the remaining time (> 0; 1 for a zero timeout with nothing pending),
 * 0 on timeout, or a negative error. Enables signalling on what it looks at.
 */
long resv_wait_timeout(Resv* obj, ResvUsage usage, bool intr, int64_t timeout_ns);

/**
 * resv_set_deadline() - forward a deadline hint to the pending fences of @usage
 */
void resv_set_deadline(Resv* obj, ResvUsage usage, int64_t deadline_ns);

/**
 * resv_test_signaled() - whether no fence of @usage is pending (true if empty)
 */
bool resv_test_signaled(Resv* obj, ResvUsage usage);

/**
 * resv_describe() - one line per fence with usage <= READ: "\t<usage> fence:"
 * followed by fence_describe(); lock held
 */
std::string resv_describe(Resv* obj);

// --- checked entry points ---------------------------------------------------
// For callers that cannot promise the locking rules (the JavaScript binding).
// Where the kernel's lockdep would splat (or the thread would wait for itself
// for ever), these refuse with an errno and change nothing.

/**
 * resv_lock_checked() - resv_lock_interruptible() that refuses what would hang
 * or break the ww rules
 *
 * Returns 0, -EALREADY (@ctx holds it), -EDEADLK (back off), -EINTR (the
 * sleep was interrupted, interrupt.h), -EINVAL for a @ctx after
 * ww_acquire_done(), or -EBUSY when the calling thread already holds @obj
 * outside @ctx (it would wait for itself for ever).
 */
int resv_lock_checked(Resv* obj, WwAcquireCtx* ctx);

/**
 * resv_lock_slow_checked() - resv_lock_slow_interruptible() after a back-off
 *
 * Returns 0, -EINTR, -EBUSY when @ctx still holds locks (the slow path is
 * only for a context that has dropped all of them), or -EALREADY when the
 * calling thread holds @obj already.
 */
int resv_lock_slow_checked(Resv* obj, WwAcquireCtx* ctx);

/**
 * resv_unlock_checked() - resv_unlock(), or -EPERM if the calling thread does
 * not hold the lock
 */
int resv_unlock_checked(Resv* obj);

/**
 * resv_reserve_fences_checked() - resv_reserve_fences(); -EPERM without the lock
 */
int resv_reserve_fences_checked(Resv* obj, unsigned num_fences);

/**
 * resv_add_fence_checked() - resv_add_fence(); -EPERM without the lock,
 * -EINVAL for a container (array or chain: add its unwrapped members)
 */
int resv_add_fence_checked(Resv* obj, Fence* fence, ResvUsage usage);

/**
 * resv_replace_fences_checked() - resv_replace_fences(); -EPERM without the lock
 */
int resv_replace_fences_checked(Resv* obj, uint64_t context, Fence* replacement, ResvUsage usage);

/**
 * resv_copy_fences_checked() - resv_copy_fences(); -EPERM unless the calling
 * thread holds @dst's lock
 */
int resv_copy_fences_checked(Resv* dst, Resv* src);

/**
 * resv_describe_checked() - resv_describe() into @out; -EPERM without the lock
 */
int resv_describe_checked(Resv* obj, std::string* out);

/**
 * resv_list_fences() - referenced fences of @usage (or stronger), each with
 * its own usage
 *
 * When the calling thread holds the lock: every entry, signalled ones too
 * (dma_resv_for_each_fence); otherwise the pending ones of the last
 * consistent unlocked pass (dma_resv_for_each_fence_unlocked, restarted if the
 * object changes under it). The caller puts each fence. Returns 0.
 */
int resv_list_fences(Resv* obj, ResvUsage usage, std::vector<Fence*>* fences, std::vector<ResvUsage>* usages);

}  // namespace dmabuf
