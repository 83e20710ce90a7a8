// ww_mutex: a three-state lock word (free / locked / locked with waiters) with a
// one-CAS fast path, plus a wait_lock-protected waiter list and futex sleeping.
// Whenever ownership changes while someone waits, every waiter is woken and
// re-evaluates its position against the new holder, which keeps the wait-die /
// wound-wait decisions in one place (check_kill, wound_holder).
#include "core/base/ww_mutex.h"

#include "core/base/interrupt.h"

#include <cerrno>
#include <new>

#include "core/base/futex.h"
#include "core/base/warn.h"

namespace dmabuf {
namespace {

enum : uint32_t { kFree = 0, kLocked = 1, kContended = 2 };

thread_local char t_owner_token;  // its address identifies the thread

const void* current_token() { return &t_owner_token; }

struct Waiter {
  ListHead node;
  WwAcquireCtx* ctx;
  std::atomic<uint32_t>* word;  // ctx->wake_seq, or a word on the waiter's stack
};

// a is "less" (younger, lower priority) than b.
bool ctx_younger(const WwAcquireCtx* a, const WwAcquireCtx* b) { return a->stamp > b->stamp; }

void wake(std::atomic<uint32_t>* word) {
  word->fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(word);
}

// wait_lock held.
void wake_all_waiters(WwMutex* lock) {
  for (ListHead* n = lock->waiters.next; n != &lock->waiters; n = n->next)
    wake(container_of(n, &Waiter::node)->word);
}

// The lock word was just taken by the caller.
void set_owner(WwMutex* lock, WwAcquireCtx* ctx) {
  if (ctx) {
    // With nothing held we cannot be part of a cycle: forget an old wound.
    if (ctx->acquired == 0) ctx->wounded.store(false, std::memory_order_relaxed);
    ++ctx->acquired;
  }
  lock->owner.store(current_token(), std::memory_order_relaxed);
  // seq_cst pairs with the waiter's seq_cst exchange of the state: either it
  // sees our context, or we see its kContended and wake it below.
  lock->ctx.store(ctx, std::memory_order_seq_cst);
}

// After an acquire outside wait_lock: waiters that queued before our context
// was visible must re-check against it (the kernel's set_context_fastpath).
void wake_waiters_after_acquire(WwMutex* lock, WwAcquireCtx* ctx) {
  if (!ctx || lock->state.load(std::memory_order_seq_cst) != kContended) return;
  std::lock_guard<std::mutex> g(lock->wait_lock);
  wake_all_waiters(lock);
}

// wait_lock held, lock taken by someone else, @w queued. Returns -EDEADLK if
// @ctx has to back off. A context that holds nothing never has to.
int check_kill(WwMutex* lock, WwAcquireCtx* ctx, Waiter* w) {
  if (ctx->acquired == 0) return 0;
  if (!lock->ww_class->is_wait_die)
    return ctx->wounded.load(std::memory_order_seq_cst) ? -EDEADLK : 0;
  // The holder's context stays valid while we hold wait_lock: to release the
  // lock it must see kContended and then take wait_lock to wake us.
  WwAcquireCtx* hold = lock->ctx.load(std::memory_order_seq_cst);
  if (hold && ctx_younger(ctx, hold)) return -EDEADLK;  // die rather than wait for an elder
  for (ListHead* n = lock->waiters.next; n != &w->node; n = n->next) {
    Waiter* ahead = container_of(n, &Waiter::node);
    if (ahead->ctx && ctx_younger(ctx, ahead->ctx)) return -EDEADLK;
  }
  return 0;
}

// Wound-wait, wait_lock held: an elder holding locks wounds a younger holder and
// wakes it in case it sleeps on another lock.
void wound_holder(WwMutex* lock, WwAcquireCtx* ctx) {
  WwAcquireCtx* hold = lock->ctx.load(std::memory_order_seq_cst);
  if (!hold || ctx->acquired == 0 || !ctx_younger(hold, ctx)) return;
  if (!hold->wounded.exchange(true, std::memory_order_seq_cst)) wake(&hold->wake_seq);
}

// Waiters with a context queue in stamp order (elders first), others at the tail.
void enqueue(WwMutex* lock, Waiter* w) {
  ListHead* pos = &lock->waiters;
  if (w->ctx) {
    for (ListHead* n = lock->waiters.next; n != &lock->waiters; n = n->next) {
      Waiter* cur = container_of(n, &Waiter::node);
      if (cur->ctx && ctx_younger(cur->ctx, w->ctx)) {
        pos = n;
        break;
      }
    }
  }
  list_add_tail(&w->node, pos);
  // Wait-die: the younger waiters behind an elder must re-check (and die).
  if (w->ctx && lock->ww_class->is_wait_die) {
    for (ListHead* n = w->node.next; n != &lock->waiters; n = n->next) {
      Waiter* cur = container_of(n, &Waiter::node);
      if (cur->ctx) wake(cur->word);
    }
  }
}

int lock_slowpath(WwMutex* lock, WwAcquireCtx* ctx, bool intr) {
  // An interruptible sleep polls the thread's interrupt check (interrupt.h).
  const bool poll = intr && interrupt_check_installed();
  std::unique_lock<std::mutex> g(lock->wait_lock);
  std::atomic<uint32_t> own_word{0};
  Waiter w;
  w.ctx = ctx;
  w.word = ctx ? &ctx->wake_seq : &own_word;
  enqueue(lock, &w);
  for (;;) {
    // Read the wake word before looking, so an unlock or wound after the
    // checks changes it and the futex wait returns at once.
    const uint32_t seq = w.word->load(std::memory_order_seq_cst);
    // Mark the lock contended; if it was free meanwhile, it is ours.
    if (lock->state.exchange(kContended, std::memory_order_seq_cst) == kFree) {
      list_del_init(&w.node);
      set_owner(lock, ctx);
      if (ctx) wake_all_waiters(lock);  // they re-check against us
      return 0;
    }
    if (ctx) {
      const int err = check_kill(lock, ctx, &w);
      if (err) {
        list_del_init(&w.node);
        return err;
      }
      if (!lock->ww_class->is_wait_die) wound_holder(lock, ctx);
    }
    g.unlock();
    futex_wait(w.word, seq, poll ? kInterruptPollNs : -1);
    const bool interrupted = poll && interrupt_pending();
    g.lock();
    if (interrupted) {
      list_del_init(&w.node);
      return -EINTR;
    }
  }
}

int lock_common(WwMutex* lock, WwAcquireCtx* ctx, bool intr) {
  if (ctx) {
    // Only ctx's own thread can have stored ctx here, so this read is exact.
    if (lock->ctx.load(std::memory_order_relaxed) == ctx) return -EALREADY;
    if (ctx->ww_class != lock->ww_class)
      warn("ww_mutex_lock: context of class %s on a lock of class %s", ctx->ww_class->name,
           lock->ww_class->name);
    if (ctx->done) warn("ww_mutex_lock: locking after ww_acquire_done()");
  }
  uint32_t expected = kFree;
  if (lock->state.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
    set_owner(lock, ctx);
    wake_waiters_after_acquire(lock, ctx);
    return 0;
  }
  return lock_slowpath(lock, ctx, intr);
}

}  // namespace

void ww_mutex_init(WwMutex* lock, WwClass* ww_class) {
  new (&lock->wait_lock) std::mutex;  // also valid for calloc'd objects
  lock->state.store(kFree, std::memory_order_relaxed);
  lock->ctx.store(nullptr, std::memory_order_relaxed);
  lock->owner.store(nullptr, std::memory_order_relaxed);
  list_init(&lock->waiters);
  lock->ww_class = ww_class;
}

void ww_mutex_destroy(WwMutex* lock) {
  bool busy;
  {
    std::lock_guard<std::mutex> g(lock->wait_lock);
    busy = ww_mutex_is_locked(lock) || !list_empty(&lock->waiters);
  }
  // Outside wait_lock: the warn handler is foreign code with locks of its own.
  if (busy) warn("ww_mutex_destroy: mutex still locked or waited on");
}

void ww_acquire_init(WwAcquireCtx* ctx, WwClass* ww_class) {
  ctx->ww_class = ww_class;
  ctx->stamp = ww_class->stamp.fetch_add(1, std::memory_order_relaxed);
  ctx->acquired = 0;
  ctx->done = false;
  ctx->wounded.store(false, std::memory_order_relaxed);
  ctx->wake_seq.store(0, std::memory_order_relaxed);
}

void ww_acquire_done(WwAcquireCtx* ctx) { ctx->done = true; }

void ww_acquire_fini(WwAcquireCtx* ctx) {
  if (ctx->acquired != 0) warn("ww_acquire_fini: %u locks still held", ctx->acquired);
}

int ww_mutex_lock(WwMutex* lock, WwAcquireCtx* ctx) { return lock_common(lock, ctx, false); }

int ww_mutex_lock_interruptible(WwMutex* lock, WwAcquireCtx* ctx) { return lock_common(lock, ctx, true); }

void ww_mutex_lock_slow(WwMutex* lock, WwAcquireCtx* ctx) {
  if (ctx && ctx->acquired != 0)
    warn("ww_mutex_lock_slow: context still holds %u locks", ctx->acquired);
  const int err = lock_common(lock, ctx, false);
  if (err) warn("ww_mutex_lock_slow: unexpected %d", err);
}

int ww_mutex_lock_slow_interruptible(WwMutex* lock, WwAcquireCtx* ctx) {
  if (ctx && ctx->acquired != 0)
    warn("ww_mutex_lock_slow: context still holds %u locks", ctx->acquired);
  const int err = lock_common(lock, ctx, true);
  if (err && err != -EINTR) warn("ww_mutex_lock_slow: unexpected %d", err);
  return err;
}

bool ww_mutex_trylock(WwMutex* lock, WwAcquireCtx* ctx) {
  uint32_t expected = kFree;
  if (!lock->state.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                           std::memory_order_relaxed))
    return false;
  set_owner(lock, ctx);
  wake_waiters_after_acquire(lock, ctx);
  return true;
}

void ww_mutex_unlock(WwMutex* lock) {
  if (!ww_mutex_is_locked(lock)) {
    warn("ww_mutex_unlock: mutex not locked");
    return;
  }
  if (WwAcquireCtx* ctx = lock->ctx.load(std::memory_order_relaxed)) {
    if (ctx->acquired == 0)
      warn("ww_mutex_unlock: context acquired count underflow");
    else
      --ctx->acquired;
  }
  lock->ctx.store(nullptr, std::memory_order_relaxed);
  lock->owner.store(nullptr, std::memory_order_relaxed);
  if (lock->state.exchange(kFree, std::memory_order_seq_cst) == kContended) {
    // Everyone re-evaluates: one takes the lock, the rest re-check against it.
    std::lock_guard<std::mutex> g(lock->wait_lock);
    wake_all_waiters(lock);
  }
}

bool ww_mutex_is_owned_by_current(const WwMutex* lock) {
  return ww_mutex_is_locked(lock) &&
         lock->owner.load(std::memory_order_relaxed) == current_token();
}

}  // namespace dmabuf
