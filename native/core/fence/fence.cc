// dma_fence core: init, ordering, signalling, status, callbacks, release.
// Waits live in fence_wait.cc; stubs, names and describe in fence_misc.cc.
#include "core/fence/fence.h"

#include <cerrno>
#include <cstdlib>

#include "core/base/irq_work.h"
#include "core/base/monotonic.h"
#include "core/base/warn.h"

namespace dmabuf {
namespace {

std::atomic<uint64_t> g_next_context{1};

constexpr unsigned long bit(unsigned b) { return 1UL << b; }

// test_and_set_bit under the fence lock: returns whether it was already set.
inline bool test_and_set_flag_locked(Fence* f, unsigned b) {
  const unsigned long old = f->flags.load(std::memory_order_relaxed);
  if (!(old & bit(b))) f->flags.store(old | bit(b), std::memory_order_release);
  return old & bit(b);
}

void init_common(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                 uint64_t seqno, unsigned long extra_flags) {
  if (!ops || !ops->get_driver_name || !ops->get_timeline_name) {
    warn("fence_init: ops and both name callbacks are mandatory");
    abort();  // the kernel BUG()s here
  }
  unsigned long flags = bit(FENCE_FLAG_INITIALIZED_BIT) | extra_flags;
  if (lock) {
    f->extern_lock = lock;
  } else {
    new (&f->inline_lock) SpinLock();
    flags |= bit(FENCE_FLAG_INLINE_LOCK_BIT);
  }
  f->ops = ops;  // RCU_INIT_POINTER: not yet published
  list_init(&f->cb_list);
  f->context = context;
  f->seqno = seqno;
  f->error = 0;
  f->refcount.store(1, std::memory_order_relaxed);
  f->flags.store(flags, std::memory_order_release);
}


// Whether @f's issuer has an enable_signaling op; lock held, @f unsignalled.
// ops is only detached when the fence signals, under this lock, so here it is
// stable without an RCU section (which only the call itself needs).
inline bool issuer_enables_signaling_locked(Fence* f) {
  const FenceOps* ops = __atomic_load_n(&f->ops, __ATOMIC_RELAXED);
  return ops && ops->enable_signaling;
}

// __dma_fence_enable_signaling: lock held. Returns false if the fence is (now)
// signalled.
bool enable_signaling_locked(Fence* f) {
  const bool was_set = test_and_set_flag_locked(f, FENCE_FLAG_ENABLE_SIGNAL_BIT);
  if (fence_test_signaled_flag(f)) return false;
  if (!was_set && issuer_enables_signaling_locked(f)) {
    rcu::ReadGuard rcu;
    if (!rcu::dereference(f->ops)->enable_signaling(f)) {
      fence_signal_locked(f);
      return false;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// init, contexts, ordering

void fence_init(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                uint64_t seqno) {
  init_common(f, ops, lock, context, seqno, 0);
}

void fence_init64(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                  uint64_t seqno) {
  init_common(f, ops, lock, context, seqno, bit(FENCE_FLAG_SEQNO64_BIT));
}

uint64_t fence_context_alloc(unsigned num) {
  if (num == 0) warn("fence_context_alloc: num == 0");
  return g_next_context.fetch_add(num, std::memory_order_relaxed);
}

bool fence_is_later_seqno(const Fence* f, uint64_t a, uint64_t b) {
  if (fence_test_flag(f, FENCE_FLAG_SEQNO64_BIT)) return a > b;
  // 32-bit mode: lower halves with wrap-around; 2^31 apart is neither later.
  return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)) > 0;
}

bool fence_is_later(Fence* f1, Fence* f2) {
  if (f1->context != f2->context) {
    warn("fence_is_later: fences from different contexts (%llu, %llu)",
         static_cast<unsigned long long>(f1->context),
         static_cast<unsigned long long>(f2->context));
    return false;
  }
  return fence_is_later_seqno(f1, f1->seqno, f2->seqno);
}

bool fence_is_later_or_same(Fence* f1, Fence* f2) {
  return f1 == f2 || fence_is_later(f1, f2);
}

Fence* fence_later(Fence* f1, Fence* f2) {
  if (f1->context != f2->context) {
    warn("fence_later: fences from different contexts");
    return nullptr;
  }
  Fence* later = fence_is_later(f1, f2) ? f1 : f2;
  return fence_is_signaled(later) ? nullptr : later;
}

void fence_assert_held(Fence* f) {
  if (!fence_spinlock(f)->is_locked()) {
    warn("fence_assert_held: fence %llu:%llu lock not held",
         static_cast<unsigned long long>(f->context), static_cast<unsigned long long>(f->seqno));
  }
}

// ---------------------------------------------------------------------------
// references

void fence_release(Fence* f) {
  // Fast path: a signalled, detached fence has nothing left to call.
  if (fence_test_signaled_flag(f) && !rcu::dereference(f->ops)) {
    fence_free(f);
    return;
  }
  rcu::ReadGuard rcu;
  // Released unsignalled with callbacks still listed: warn, and signal with
  // -EDEADLK (dma_fence_release). The unlocked look only filters; the decision
  // is taken under the lock. A signaller holding it may be signalling this very
  // fence (a timeline signals every point still on its list when it goes away,
  // and a point whose last reference is dropping is still listed), writing the
  // timestamp over cb_list, which shares its storage.
  if (!fence_test_signaled_flag(f) &&
      __atomic_load_n(&f->cb_list.next, __ATOMIC_RELAXED) != &f->cb_list) {
    const FenceOps* pending_ops = nullptr;
    bool pending = false;
    {
      IrqSpinGuard g(fence_spinlock(f));
      if (!fence_test_signaled_flag(f) && !list_empty(&f->cb_list)) {
        pending = true;
        pending_ops = rcu::dereference(f->ops);  // before the signal may detach it
        f->error = -EDEADLK;
        fence_signal_locked(f);
      }
    }
    // Warned outside the lock: the name ops are the issuer's code.
    if (pending)
      warn("Fence %s:%s:%llx:%llx released with pending signals!",
           pending_ops ? pending_ops->get_driver_name(f) : "detached-driver",
           pending_ops ? pending_ops->get_timeline_name(f) : "signaled-timeline",
           static_cast<unsigned long long>(f->context), static_cast<unsigned long long>(f->seqno));
  }
  const FenceOps* ops = rcu::dereference(f->ops);
  if (ops && ops->release)
    ops->release(f);
  else
    fence_free(f);
}

Fence* fence_get_rcu_safe(std::atomic<Fence*>* slot) {
  rcu::ReadGuard rcu;
  for (;;) {
    Fence* f = slot->load(std::memory_order_acquire);
    if (!f) return nullptr;
    if (!fence_get_rcu(f)) continue;
    if (f == slot->load(std::memory_order_acquire)) return f;
    fence_put(f);
  }
}

// ---------------------------------------------------------------------------
// signalling

namespace {
// The signal itself, once the callback list is out of the way; lock held.
inline void mark_signaled_locked(Fence* f, int64_t timestamp_ns) {
  // Detach: without release/wait nothing of the issuer is needed any more.
  const FenceOps* ops = __atomic_load_n(&f->ops, __ATOMIC_RELAXED);
  if (ops && !ops->release && !ops->wait)
    __atomic_store_n(&f->ops, static_cast<const FenceOps*>(nullptr), __ATOMIC_RELEASE);
  // Atomic: fence_release() may glance at cb_list, which this overwrites.
  __atomic_store_n(&f->timestamp, timestamp_ns, __ATOMIC_RELAXED);
  // Both bits in one release store: flags are only written under the fence lock
  // (see fence.h), so no read-modify-write is needed; the timestamp is written
  // before either bit is seen, and lock-free adders that miss SIGNALED re-check
  // it under the lock.
  f->flags.store(f->flags.load(std::memory_order_relaxed) | bit(FENCE_FLAG_SIGNALED_BIT) |
                     bit(FENCE_FLAG_TIMESTAMP_BIT),
                 std::memory_order_release);
}

// Signals an unsignalled @f and runs its callbacks; lock held.
inline void signal_and_run_callbacks_locked(Fence* f, int64_t timestamp_ns) {
  // The callback list and the timestamp share storage: take the first node
  // before the timestamp overwrites the head. The walk ends at the head's
  // address, which the last node still points to.
  ListHead* const head = &f->cb_list;
  ListHead* n = head->next;
  mark_signaled_locked(f, timestamp_ns);

  // As the kernel walks it: each node is re-initialised (so a later remove
  // sees it off the list) and the next one read before its function runs,
  // which may free it. Nothing else can reach these nodes: every other path
  // to them takes the fence lock, which is held, and sees SIGNALED.
  while (n != head) {
    ListHead* next = n->next;
    list_init(n);
    FenceCallback* cb = container_of(n, &FenceCallback::node);
    cb->func(f, cb);
    n = next;
  }
}
}  // namespace

void fence_signal_timestamp_locked(Fence* f, int64_t timestamp_ns) {
  // SIGNALED is only ever set under the fence lock, so a plain test suffices.
  if (!fence_test_signaled_flag(f)) signal_and_run_callbacks_locked(f, timestamp_ns);
}

namespace {
// spin_lock_irqsave + signal, with "interrupts off" (the irq-depth TLS) only
// when there are callbacks to run: without them nothing can queue irq_work.
inline __attribute__((always_inline)) void lock_and_signal(Fence* f, SpinLock* l,
                                                        int64_t timestamp_ns) {
  l->lock();
  // cb_list is only valid before SIGNALED (it shares storage with the timestamp).
  if (fence_test_signaled_flag(f)) {
    l->unlock();
    return;
  }
  if (list_empty(&f->cb_list)) {
    mark_signaled_locked(f, timestamp_ns);
    l->unlock();
    return;
  }
  local_irq_disable();
  signal_and_run_callbacks_locked(f, timestamp_ns);
  l->unlock();
  local_irq_enable();
}
}  // namespace

void fence_signal_timestamp(Fence* f, int64_t timestamp_ns) {
  if (!f) {
    warn("fence_signal_timestamp: NULL fence");
    return;
  }
  lock_and_signal(f, fence_spinlock(f), timestamp_ns);
}

void fence_signal_locked(Fence* f) { fence_signal_timestamp_locked(f, monotonic_ns()); }

void fence_signal(Fence* f) {
  if (!f) {
    warn("fence_signal: NULL fence");
    return;
  }
  const unsigned long flags = f->flags.load(std::memory_order_acquire);
  // Already signalled: nothing to do, and no clock to read (SIGNALED is never
  // cleared, so the test under the lock would say the same).
  if (flags & bit(FENCE_FLAG_SIGNALED_BIT)) return;
  if (flags & bit(FENCE_FLAG_INLINE_LOCK_BIT)) {
    // The clock is read before the lock (the kernel reads it under the lock):
    // the lock is the fence's own, so nothing else orders signals through it,
    // and the timestamp still precedes SIGNALED (docs/kernel-map.md).
    const int64_t now = monotonic_ns();
    lock_and_signal(f, &f->inline_lock, now);
    return;
  }
  // A shared external lock orders its fences' signals: read the clock under it,
  // so timestamps follow that order.
  SpinLock* l = f->extern_lock;
  l->lock();
  const bool callbacks = !fence_test_signaled_flag(f) && !list_empty(&f->cb_list);
  if (callbacks) local_irq_disable();
  fence_signal_timestamp_locked(f, monotonic_ns());
  l->unlock();
  if (callbacks) local_irq_enable();
}

void fence_signal_unpublished(Fence* f) {
  const unsigned long flags = f->flags.load(std::memory_order_relaxed);
  if (flags & bit(FENCE_FLAG_SIGNALED_BIT)) return;
  if (!(flags & bit(FENCE_FLAG_INLINE_LOCK_BIT)) || !list_empty(&f->cb_list)) {
    fence_signal(f);  // not what the caller said: take the kernel's path
    return;
  }
  mark_signaled_locked(f, monotonic_ns());
}

bool fence_set_user_flag(Fence* f, unsigned b) {
  SpinGuard g(fence_spinlock(f));
  const bool was = fence_test_flag(f, b);
  fence_set_user_flag_locked(f, b);
  return was;
}

bool fence_check_and_signal_locked(Fence* f) {
  if (fence_test_signaled_flag(f)) return true;
  fence_signal_locked(f);
  return false;
}

bool fence_check_and_signal(Fence* f) {
  IrqSpinGuard g(fence_spinlock(f));
  return fence_check_and_signal_locked(f);
}

// ---------------------------------------------------------------------------
// error, status, timestamp, polling

void fence_set_error(Fence* f, int error) {
  if (fence_test_signaled_flag(f)) warn("fence_set_error: fence already signaled");
  if (error >= 0 || error < -4095) warn("fence_set_error: invalid error %d", error);
  __atomic_store_n(&f->error, error, __ATOMIC_RELAXED);
}

int fence_set_error_unless_signaled(Fence* f, int error) {
  if (error >= 0 || error < -4095) return -EINVAL;
  SpinGuard g(fence_spinlock(f));
  if (fence_test_signaled_flag(f)) return -EBUSY;
  fence_set_error(f, error);
  return 0;
}

namespace {
// The issuer's `signaled` op, read inside an RCU section (ops may be detached).
bool poll_signaled_op(Fence* f) {
  rcu::ReadGuard rcu;
  const FenceOps* ops = rcu::dereference(f->ops);
  return ops && ops->signaled && ops->signaled(f);
}
}  // namespace

bool fence_is_signaled_locked(Fence* f) {
  if (fence_test_signaled_flag(f)) return true;
  if (!poll_signaled_op(f)) return false;
  fence_signal_locked(f);
  return true;
}

bool fence_is_signaled(Fence* f) {
  if (fence_test_signaled_flag(f)) return true;
  if (!poll_signaled_op(f)) return false;
  fence_signal(f);
  return true;
}

int fence_get_status_locked(Fence* f) {
  if (!fence_is_signaled_locked(f)) return 0;
  const int err = __atomic_load_n(&f->error, __ATOMIC_RELAXED);
  return err ? err : 1;
}

int fence_get_status(Fence* f) {
  IrqSpinGuard g(fence_spinlock(f));
  return fence_get_status_locked(f);
}

int64_t fence_timestamp(Fence* f) {
  if (!fence_test_signaled_flag(f)) {
    warn("fence_timestamp: fence not signaled");
    return monotonic_ns();
  }
  while (!fence_test_flag(f, FENCE_FLAG_TIMESTAMP_BIT)) DMABUF_CPU_RELAX();
  return f->timestamp;
}

void fence_enable_sw_signaling(Fence* f) {
  IrqSpinGuard g(fence_spinlock(f));
  enable_signaling_locked(f);
}

// ---------------------------------------------------------------------------
// callbacks

namespace {
// The first add (or one racing a signal), lock held; drops it. Only this add
// may call ops->enable_signaling (which may signal and run callbacks), and only
// if the issuer has one: only then are "interrupts off" needed. Out of line so
// that the common add stays a short leaf.
__attribute__((noinline)) int add_callback_slow(Fence* f, SpinLock* l, FenceCallback* cb,
                                                FenceFunc func) {
  const bool irq = !fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT) &&
                   !fence_test_signaled_flag(f) && issuer_enables_signaling_locked(f);
  if (irq) local_irq_disable();
  int ret = 0;
  if (enable_signaling_locked(f)) {
    cb->func = func;
    list_add_tail(&cb->node, &f->cb_list);
  } else {
    list_init(&cb->node);
    ret = -ENOENT;
  }
  l->unlock();
  if (irq) local_irq_enable();
  return ret;
}
}  // namespace

int fence_add_callback(Fence* f, FenceCallback* cb, FenceFunc func) {
  if (!f || !func) {
    warn("fence_add_callback: NULL fence or function");
    return -EINVAL;
  }
  if (fence_test_signaled_flag(f)) {
    list_init(&cb->node);
    return -ENOENT;
  }
  SpinLock* l = fence_spinlock(f);
  l->lock();
  // Every add after the first: signalling is enabled, nothing to call.
  const unsigned long flags = f->flags.load(std::memory_order_relaxed);
  if ((flags & (bit(FENCE_FLAG_ENABLE_SIGNAL_BIT) | bit(FENCE_FLAG_SIGNALED_BIT))) !=
      bit(FENCE_FLAG_ENABLE_SIGNAL_BIT))
    return add_callback_slow(f, l, cb, func);
  cb->func = func;
  list_add_tail(&cb->node, &f->cb_list);
  l->unlock();
  return 0;
}

bool fence_remove_callback(Fence* f, FenceCallback* cb) {
  SpinGuard g(fence_spinlock(f));
  if (list_empty(&cb->node)) return false;
  list_del_init(&cb->node);
  return true;
}

}  // namespace dmabuf
