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

/**
 * resv_usage_name() - "kernel", "write", "read", "bookkeep" ("invalid" otherwise)
 */
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
 *
 * Context: before @obj is shared.
 */
void resv_init(Resv* obj);

/**
 * resv_fini() - drop every fence and tear the lock down
 *
 * Context: nobody else may use @obj any more; the lock must not be held
 * (ww_mutex_destroy() warns).
 */
void resv_fini(Resv* obj);

// --- locking (ww semantics; ctx may be null for a plain lock) ---

/**
 * resv_lock() - lock @obj, as part of @ctx (null: a plain lock)
 *
 * Context: may sleep. The lock is not recursive: a thread that holds @obj
 * outside @ctx waits for itself for ever (resv_lock_checked() refuses that).
 * Returns: 0; -EALREADY if @ctx holds it; -EDEADLK: back off (drop every lock
 * of @ctx), then resv_lock_slow().
 */
inline int resv_lock(Resv* obj, WwAcquireCtx* ctx) { return ww_mutex_lock(&obj->lock, ctx); }

/**
 * resv_lock_interruptible() - resv_lock(); a sleep also ends with -EINTR once
 * the thread's interrupt check says so (interrupt.h)
 */
inline int resv_lock_interruptible(Resv* obj, WwAcquireCtx* ctx) {
  return ww_mutex_lock_interruptible(&obj->lock, ctx);
}

/**
 * resv_lock_slow() - sleep on the contended @obj after backing off
 *
 * Context: may sleep; @ctx must hold no locks.
 */
inline void resv_lock_slow(Resv* obj, WwAcquireCtx* ctx) { ww_mutex_lock_slow(&obj->lock, ctx); }

/**
 * resv_lock_slow_interruptible() - resv_lock_slow(); 0 or -EINTR
 */
inline int resv_lock_slow_interruptible(Resv* obj, WwAcquireCtx* ctx) {
  return ww_mutex_lock_slow_interruptible(&obj->lock, ctx);
}

/**
 * resv_trylock() - lock @obj without a context and without waiting
 *
 * Returns: true if this call took it.
 */
inline bool resv_trylock(Resv* obj) { return ww_mutex_trylock(&obj->lock, nullptr); }

/**
 * resv_is_locked() - whether any thread holds @obj's lock
 */
inline bool resv_is_locked(Resv* obj) { return ww_mutex_is_locked(&obj->lock); }

/**
 * resv_locking_ctx() - the holder's acquire context (null: none, or a plain lock)
 */
inline WwAcquireCtx* resv_locking_ctx(Resv* obj) {
  return obj->lock.ctx.load(std::memory_order_relaxed);
}

/**
 * resv_unlock() - release @obj's lock and wake its waiters
 *
 * Context: the calling thread holds it (resv_unlock_checked() checks).
 */
inline void resv_unlock(Resv* obj) { ww_mutex_unlock(&obj->lock); }

/**
 * resv_held() - whether the calling thread holds @obj's lock (lockdep_is_held)
 */
inline bool resv_held(Resv* obj) { return ww_mutex_is_owned_by_current(&obj->lock); }

/**
 * resv_assert_held() - warn, as lockdep would, unless the calling thread holds
 * @obj's lock
 */
void resv_assert_held(Resv* obj);

// --- writers: the calling thread holds the lock (they warn otherwise) ---
// They poll entries with fence_is_signaled(), so they must not be called with
// a fence lock held.

/**
 * resv_reserve_fences() - make room for @num_fences more adds
 *
 * Reallocating drops signalled fences.
 *
 * Context: @obj locked by the calling thread.
 * Returns: 0, -EINVAL for 0 (with a warning) or -ENOMEM.
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
 *
 * Context: @obj locked by the calling thread; cannot fail (with a slot).
 */
void resv_add_fence(Resv* obj, Fence* fence, ResvUsage usage);

/**
 * resv_replace_fences() - every entry on @context becomes @replacement, @usage
 *
 * Context: @obj locked by the calling thread. Warns for a null @replacement.
 */
void resv_replace_fences(Resv* obj, uint64_t context, Fence* replacement, ResvUsage usage);

/**
 * resv_copy_fences() - replace @dst's fences by a snapshot of @src's pending
 * ones (all usages)
 *
 * Context: @dst locked by the calling thread; @src not necessarily.
 * Returns: 0 or -ENOMEM (@dst unchanged).
 */
int resv_copy_fences(Resv* dst, Resv* src);

// --- iteration ---

/**
 * resv_iter_begin() - point @cursor at @obj's fences of @usage (or stronger)
 */
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
/**
 * resv_iter_usage() - the usage of the cursor's current fence
 */
inline ResvUsage resv_iter_usage(const ResvIter* cursor) { return cursor->fence_usage; }
/**
 * resv_iter_is_restarted() - true for the first fence after a (re)start:
 * callers accumulating state must reset it
 */
inline bool resv_iter_is_restarted(const ResvIter* cursor) { return cursor->is_restarted; }

/**
 * resv_iter_first_unlocked() - first pending fence with usage <= the cursor's,
 * referenced by the cursor
 *
 * Context: no lock needed (RCU inside); must not hold a fence lock (polls).
 * Returns: the fence, or nullptr at the end.
 */
Fence* resv_iter_first_unlocked(ResvIter* cursor);
/**
 * resv_iter_next_unlocked() - next one; restarts from the beginning (and sets
 * is_restarted) if the object changed meanwhile
 *
 * Context and returns: as resv_iter_first_unlocked().
 */
Fence* resv_iter_next_unlocked(ResvIter* cursor);
/**
 * resv_iter_first() - locked walk: every entry with usage <= the cursor's,
 * signalled ones included, no references taken
 *
 * Context: the object locked by the calling thread (warns otherwise).
 * Returns: the fence (valid while the lock is held), or nullptr at the end.
 */
Fence* resv_iter_first(ResvIter* cursor);

/**
 * resv_iter_next() - the next entry of a locked walk; as resv_iter_first()
 */
Fence* resv_iter_next(ResvIter* cursor);

#define resv_for_each_fence_unlocked(cursor, fence)                      \
  for ((fence) = ::dmabuf::resv_iter_first_unlocked(cursor); (fence); \
       (fence) = ::dmabuf::resv_iter_next_unlocked(cursor))

#define resv_for_each_fence(cursor, obj, usage, fence)                           \
  for (::dmabuf::resv_iter_begin(cursor, obj, usage),                           \
       (fence) = ::dmabuf::resv_iter_first(cursor);                             \
       (fence); (fence) = ::dmabuf::resv_iter_next(cursor))

// --- readers: no lock needed; they poll fences (fence_is_signaled()), so
// they must not be called with a fence lock held ---

/**
 * resv_get_fences() - referenced snapshot of the pending fences of @usage
 * @fences: out: malloc'd array (free with std::free), nullptr when empty
 *
 * Returns: 0 (the caller puts each fence) or -ENOMEM (nothing returned).
 */
int resv_get_fences(Resv* obj, ResvUsage usage, unsigned* num_fences, Fence*** fences);

/**
 * resv_get_singleton() - one fence for all pending fences of @usage: nullptr
 * if none, the fence itself if one, else a new array (new context, seqno 1)
 *
 * Never add the result back to the same object (resv_add_fence() warns for
 * containers).
 * Returns: 0 with *@fence referenced (or nullptr), or -ENOMEM.
 */
int resv_get_singleton(Resv* obj, ResvUsage usage, Fence** fence);

/**
 * resv_wait_timeout() - wait for every pending fence of @usage in turn
 *
 * @intr: passed to fence_wait_timeout(), which does not interrupt fence waits
 *
 * Enables signalling on what it looks at.
 *
 * Context: may sleep; no lock needed.
 * Returns: the remaining time (> 0; 1 for a zero timeout with nothing
 * pending), 0 on timeout, -EINVAL (with a warning) for a negative timeout, or
 * a fence's wait error.
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
 * followed by fence_describe()
 *
 * Decides "signalled" as fence_describe() does, with fence_is_signaled()
 * (polls, and may signal).
 *
 * Context: @obj locked by the calling thread.
 */
std::string resv_describe(Resv* obj);

// --- checked entry points ---------------------------------------------------
// For callers that cannot promise the locking rules (the JavaScript binding).
// Where the kernel's lockdep would splat (or the thread would wait for itself
// for ever), these refuse with an errno and change nothing. Context: any
// thread; the lock calls may sleep.

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
