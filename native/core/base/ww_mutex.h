// ww_mutex: wound/wait mutexes with acquire contexts, so that a thread can lock
// several objects in any order without deadlocking. Each context gets a stamp
// (its age); on contention one side backs off with -EDEADLK, drops everything it
// holds, sleeps on the contended lock with ww_mutex_lock_slow() and retries.
//
// Two policies, chosen per class as in the kernel:
//  - wait-die (DEFINE_WD_CLASS, what dma_resv uses): a younger context that
//    holds locks dies (-EDEADLK) instead of waiting for an older holder, or
//    behind an older waiter; an older one waits.
//  - wound-wait (DEFINE_WW_CLASS): an older context wounds a younger holder,
//    which gets -EDEADLK at its next contended lock (or at once if sleeping).
// Userspace threads get no signals: the _interruptible variants return -EINTR
// when the thread's interrupt check says so (interrupt.h), where the kernel's
// return it for a pending signal.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/base/list.h"

namespace dmabuf {

// struct ww_class: hands out stamps.
struct WwClass {
  std::atomic<uint64_t> stamp;
  bool is_wait_die;
  const char* name;
};

// struct ww_acquire_ctx: one locking transaction, used by one thread at a time.
struct WwAcquireCtx {
  WwClass* ww_class;
  uint64_t stamp;                  // lower = older = wins
  unsigned acquired;               // locks held through this context
  bool done;                       // ww_acquire_done() was called
  std::atomic<bool> wounded;       // wound-wait: an older context wants our lock
  std::atomic<uint32_t> wake_seq;  // bumped to wake this context's sleeping thread
};

struct WwMutex {
  // 0 free, 1 locked, 2 locked and someone may be waiting. Uncontended lock and
  // unlock are one atomic each; wait_lock is only taken when state is 2.
  std::atomic<uint32_t> state;
  std::atomic<WwAcquireCtx*> ctx;       // holder's context, nullptr if none
  std::atomic<const void*> owner;       // holder thread's token
  std::mutex wait_lock;                 // protects waiters
  ListHead waiters;
  WwClass* ww_class;
};

/**
 * ww_mutex_init() - initialise @lock as a member of @ww_class
 */
void ww_mutex_init(WwMutex* lock, WwClass* ww_class);

/**
 * ww_mutex_destroy() - warn if @lock is still held or waited on
 */
void ww_mutex_destroy(WwMutex* lock);

/**
 * ww_acquire_init() - start a transaction: take the next stamp of @ww_class
 */
void ww_acquire_init(WwAcquireCtx* ctx, WwClass* ww_class);

/**
 * ww_acquire_done() - mark the end of the acquire phase (locking after it warns)
 */
void ww_acquire_done(WwAcquireCtx* ctx);

/**
 * ww_acquire_fini() - end the transaction; every lock must have been released
 */
void ww_acquire_fini(WwAcquireCtx* ctx);

/**
 * ww_mutex_lock() - lock @lock, as part of @ctx (may be null: plain lock)
 *
 * Returns 0; -EALREADY if @ctx already holds @lock; -EDEADLK if @ctx must back
 * off: release every lock of @ctx, then ww_mutex_lock_slow() this one.
 */
int ww_mutex_lock(WwMutex* lock, WwAcquireCtx* ctx);

/**
 * ww_mutex_lock_interruptible() - as ww_mutex_lock(), but a sleep ends with
 * -EINTR once the thread's interrupt check says so (interrupt.h: the
 * userspace stand-in for a pending signal)
 */
int ww_mutex_lock_interruptible(WwMutex* lock, WwAcquireCtx* ctx);

/**
 * ww_mutex_lock_slow() - sleep on the contended @lock after backing off
 *
 * @ctx must hold no locks, so it cannot be asked to back off again.
 */
void ww_mutex_lock_slow(WwMutex* lock, WwAcquireCtx* ctx);

/**
 * ww_mutex_lock_slow_interruptible() - as ww_mutex_lock_slow(); 0 or -EINTR
 */
int ww_mutex_lock_slow_interruptible(WwMutex* lock, WwAcquireCtx* ctx);

/**
 * ww_mutex_trylock() - lock without waiting; true on success
 */
bool ww_mutex_trylock(WwMutex* lock, WwAcquireCtx* ctx);

/**
 * ww_mutex_unlock() - release @lock and wake its waiters
 */
void ww_mutex_unlock(WwMutex* lock);

/**
 * ww_mutex_is_locked() - whether anyone holds @lock
 */
inline bool ww_mutex_is_locked(const WwMutex* lock) {
  return lock->state.load(std::memory_order_relaxed) != 0;
}

/**
 * ww_mutex_is_owned_by_current() - whether the calling thread holds @lock
 * (the userspace stand-in for lockdep_is_held)
 */
bool ww_mutex_is_owned_by_current(const WwMutex* lock);

}  // namespace dmabuf
