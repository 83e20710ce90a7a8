// dma_fence as of Linux 7.1: a one-way "work done" signal with callbacks, waits,
// an inline (or legacy external) spinlock and RCU-protected ops that are detached
// at signal time. Function names follow the kernel's with `dma_` dropped; see
// docs/kernel-map.md.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/base/irq_work.h"
#include "core/base/list.h"
#include "core/base/lock.h"
#include "core/base/rcu.h"

namespace dmabuf {

struct Fence;
struct FenceCallback;

// Flag bits, in the 7.1 order.
enum FenceFlagBit : unsigned {
  FENCE_FLAG_INITIALIZED_BIT = 0,
  FENCE_FLAG_INLINE_LOCK_BIT = 1,
  FENCE_FLAG_SEQNO64_BIT = 2,
  FENCE_FLAG_SIGNALED_BIT = 3,
  FENCE_FLAG_TIMESTAMP_BIT = 4,
  FENCE_FLAG_ENABLE_SIGNAL_BIT = 5,
  FENCE_FLAG_USER_BITS = 6,
  // Core-private, far above issuers' bits (and exact in a JS number): the fence
  // lives in a fence_alloc_large() block, so fence_free() recycles it as one.
  FENCE_FLAG_LARGE_BLOCK_BIT = 40,
};

// A fence_alloc_large() block: a fence and up to 64 bytes of its issuer's data.
constexpr size_t kFenceLargeBlock = 128;

// Waits take nanoseconds; this is MAX_SCHEDULE_TIMEOUT.
constexpr int64_t kMaxScheduleTimeout = INT64_MAX;

// The issuer's operations. Both name callbacks are mandatory. An ops table that
// has neither `release` nor `wait` is detached (fence->ops = nullptr) at signal
// time, so the issuer may go away one RCU grace period after signalling.
struct FenceOps {
  const char* (*get_driver_name)(Fence* f);
  const char* (*get_timeline_name)(Fence* f);
  // At most once, under the fence lock and an RCU read section. false = "already
  // passed": the core signals the fence right away.
  bool (*enable_signaling)(Fence* f);
  // Polling fast path; once true it must stay true.
  bool (*signaled)(Fence* f);
  // Deprecated custom wait (prevents detaching). Same contract as fence_default_wait.
  long (*wait)(Fence* f, bool intr, int64_t timeout_ns);
  // Frees the fence instead of the core (prevents detaching). Must free RCU-safely.
  void (*release)(Fence* f);
  void (*set_deadline)(Fence* f, int64_t deadline_ns);
};

using FenceFunc = void (*)(Fence* f, FenceCallback* cb);

// dma_fence_cb: lives in the caller's memory; on one fence at a time.
struct FenceCallback {
  ListHead node;
  FenceFunc func;
};

struct Fence {
  // Which member is live is decided by FENCE_FLAG_INLINE_LOCK_BIT alone.
  union {
    SpinLock* extern_lock;
    SpinLock inline_lock;
  };
  const FenceOps* ops;  // RCU-protected; nullptr once detached
  // Three lifetime phases, in order: callbacks until signalled, then the
  // timestamp, then the deferred-free node after release.
  union {
    ListHead cb_list;
    int64_t timestamp;
    rcu::DeferredFree rcu;
  };
  uint64_t context;
  uint64_t seqno;
  // Read lock-free; written only under the fence lock (or before the fence is
  // published), which is what lets signalling set bits with a plain store.
  // Issuers setting FENCE_FLAG_USER_BITS must use fence_set_user_flag().
  std::atomic<unsigned long> flags;
  std::atomic<uint32_t> refcount;
  int32_t error;
};
static_assert(sizeof(Fence) <= 64, "struct dma_fence is one cache line on x86-64");

// --- init, contexts, ordering -------------------------------------------------

/**
 * fence_init() - initialise @f with 32-bit seqno ordering
 * @ops: the issuer's ops; ops and both name callbacks must be non-null (the
 *       kernel BUG()s; we abort)
 * @lock: an external (legacy) lock that must outlive the last reference to
 *        @f, or nullptr for the fence's inline lock (7.1)
 *
 * Context: before @f is published; no lock needed. The caller owns the one
 * reference.
 */
void fence_init(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                uint64_t seqno);

/**
 * fence_init64() - fence_init() with 64-bit seqno ordering (FENCE_FLAG_SEQNO64_BIT)
 */
void fence_init64(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                  uint64_t seqno);

/**
 * fence_was_initialized() - whether @f is non-null and went through fence_init()
 */
inline bool fence_was_initialized(const Fence* f) {
  return f && (f->flags.load(std::memory_order_relaxed) & (1UL << FENCE_FLAG_INITIALIZED_BIT));
}

/**
 * fence_context_alloc() - reserve @num consecutive fence contexts
 *
 * Context: any; lock-free. Warns for @num == 0.
 * Returns: the first context; never 0.
 */
uint64_t fence_context_alloc(unsigned num);

/**
 * fence_is_later_seqno() - whether seqno @a is later than @b in @f's mode
 *
 * 64-bit fences compare plainly; 32-bit ones compare the low halves with
 * wrap-around (2^31 apart is neither later).
 */
bool fence_is_later_seqno(const Fence* f, uint64_t a, uint64_t b);

/**
 * fence_is_later() - whether @f1 is later than @f2 on their shared context
 *
 * Returns: false, with a warning, for fences on different contexts.
 */
bool fence_is_later(Fence* f1, Fence* f2);

/**
 * fence_is_later_or_same() - @f1 == @f2 or fence_is_later(@f1, @f2)
 */
bool fence_is_later_or_same(Fence* f1, Fence* f2);

/**
 * fence_later() - the later of two fences on one context
 *
 * Context: must not hold either fence's lock (polls like fence_is_signaled()).
 * Returns: the later fence (no reference taken), nullptr if it has signalled,
 * or nullptr with a warning across contexts.
 */
Fence* fence_later(Fence* f1, Fence* f2);

// --- locking ------------------------------------------------------------------

/**
 * fence_spinlock() - the lock @f uses: its inline lock, or the external one
 */
inline SpinLock* fence_spinlock(Fence* f) {
  return (f->flags.load(std::memory_order_relaxed) & (1UL << FENCE_FLAG_INLINE_LOCK_BIT))
             ? &f->inline_lock
             : f->extern_lock;
}

/**
 * fence_lock_irqsave() - take @f's lock, "irqs off"
 *
 * Also defers irq_work (container signalling) until the outermost fence lock
 * is released; see irq_work.h. Every fence lock that callbacks may run under
 * is taken this way (or through IrqSpinGuard).
 *
 * Context: not already holding @f's lock (it is not recursive).
 */
inline void fence_lock_irqsave(Fence* f) {
  local_irq_disable();
  fence_spinlock(f)->lock();
}

/**
 * fence_unlock_irqrestore() - release @f's lock; at the outermost level, run
 * the irq_work queued meanwhile
 */
inline void fence_unlock_irqrestore(Fence* f) {
  fence_spinlock(f)->unlock();
  local_irq_enable();
}

/**
 * fence_assert_held() - warn (as lockdep would) if @f's lock is not held
 *
 * The spinlock has no owner, so this checks "held by someone".
 */
void fence_assert_held(Fence* f);

// --- references ---------------------------------------------------------------

/**
 * fence_get() - take a reference to @f (nullptr-tolerant)
 *
 * Context: any; the caller must already hold a reference (or be inside an
 * RCU read section and use fence_get_rcu()). Returns: @f.
 */
inline Fence* fence_get(Fence* f) {
  if (f) f->refcount.fetch_add(1, std::memory_order_relaxed);
  return f;
}

/**
 * fence_release() - the last put: free @f (ops->release or fence_free())
 *
 * An unsignalled fence with callbacks still queued warns and is signalled
 * with -EDEADLK first, so no waiter is left hanging. Exposed for containers
 * and tests; everyone else calls fence_put().
 *
 * Context: any thread; must not hold @f's lock.
 */
void fence_release(Fence* f);

/**
 * fence_put() - drop a reference (nullptr-tolerant); the last one releases @f
 *
 * Context: any thread, also from a fence callback; must not hold @f's own
 * lock when this may be the last reference.
 */
inline void fence_put(Fence* f) {
  if (f && f->refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) fence_release(f);
}

/**
 * fence_get_rcu() - "get unless zero"
 *
 * Context: inside an RCU read section (the memory stays valid for it).
 * Returns: @f with a new reference, or nullptr if its count already hit zero.
 */
inline Fence* fence_get_rcu(Fence* f) {
  uint32_t c = f->refcount.load(std::memory_order_relaxed);
  while (c != 0) {
    if (f->refcount.compare_exchange_weak(c, c + 1, std::memory_order_acquire,
                                          std::memory_order_relaxed))
      return f;
  }
  return nullptr;
}

/**
 * fence_get_rcu_safe() - a reference to whatever *@slot points to, retrying
 * while it changes under us
 *
 * Context: any; opens its own RCU read section.
 * Returns: a new reference, or nullptr if the slot is empty.
 */
Fence* fence_get_rcu_safe(std::atomic<Fence*>* slot);

/**
 * fence_free() - the default release: free @f (from fence_alloc() or
 * fence_alloc_large()) after an RCU grace period, through the fence cache when
 * it is built in
 *
 * Context: any thread. The memory is recycled on the calling thread once a
 * polled grace period has passed (docs/internals.md, "Fence memory").
 */
void fence_free(Fence* f);

/**
 * fence_free_object() - fence_free() for a bigger malloc'd object that starts
 * with its Fence (fence arrays, chain nodes, sw_sync points)
 *
 * std::free after a grace period, never recycled through the fence-sized cache.
 */
void fence_free_object(Fence* f);

// --- flags and signalling -----------------------------------------------------

/**
 * fence_test_flag() - test flag @bit (acquire); never polls
 */
inline bool fence_test_flag(const Fence* f, unsigned bit) {
  return f->flags.load(std::memory_order_acquire) & (1UL << bit);
}

/**
 * fence_test_signaled_flag() - whether FENCE_FLAG_SIGNALED_BIT is set; never
 * polls (see fence_is_signaled())
 */
inline bool fence_test_signaled_flag(const Fence* f) {
  return fence_test_flag(f, FENCE_FLAG_SIGNALED_BIT);
}

/**
 * fence_set_user_flag_locked() - set a bit >= FENCE_FLAG_USER_BITS
 *
 * Context: @f's lock held (flags are only written under it).
 */
inline void fence_set_user_flag_locked(Fence* f, unsigned bit) {
  f->flags.store(f->flags.load(std::memory_order_relaxed) | (1UL << bit),
                 std::memory_order_release);
}

/**
 * fence_set_user_flag() - fence_set_user_flag_locked(), taking the lock
 *
 * Context: must not hold @f's lock. Returns: whether the bit was already set.
 */
bool fence_set_user_flag(Fence* f, unsigned bit);

/**
 * fence_signal_timestamp_locked() - signal @f with @timestamp_ns
 *
 * Sets SIGNALED and TIMESTAMP, detaches ops that have neither release nor
 * wait, then runs every queued callback on this thread, in order, before
 * returning. A second call is a no-op (the first timestamp stays).
 *
 * Context: @f's lock held, taken with fence_lock_irqsave() or IrqSpinGuard so
 * that containers' irq_work runs on this thread once it is dropped (irq_work.h).
 */
void fence_signal_timestamp_locked(Fence* f, int64_t timestamp_ns);

/**
 * fence_signal_timestamp() - fence_signal_timestamp_locked(), taking the lock
 *
 * Context: must not hold @f's lock. Warns for a null @f.
 */
void fence_signal_timestamp(Fence* f, int64_t timestamp_ns);

/**
 * fence_signal_locked() - signal @f now (CLOCK_MONOTONIC)
 *
 * Context: @f's lock held, as fence_signal_timestamp_locked().
 */
void fence_signal_locked(Fence* f);

/**
 * fence_signal() - signal @f now; callbacks run on this thread before it returns
 *
 * With an inline lock the clock is read before the lock is taken (with an
 * external one, under it); see docs/kernel-map.md for why that is unobservable.
 *
 * Context: any thread; must not hold @f's lock. Warns for a null @f; a second
 * call is a no-op.
 */
void fence_signal(Fence* f);

/**
 * fence_signal_unpublished() - fence_signal() for a fence nobody else can see
 * @f: an inline-lock fence whose pointer never left its owner (no other thread,
 *     no callback, no container or RCU reader has it), e.g. the addon's
 *     unpublished default fences (user_fence_recycle)
 *
 * The same result as fence_signal(), without taking the fence lock: with no
 * other party to take it, the lock would order nothing. A fence that has
 * callbacks or an external lock is not unpublished; it is signalled by
 * fence_signal() instead.
 *
 * Context: the owner's thread.
 */
void fence_signal_unpublished(Fence* f);

/**
 * fence_check_and_signal_locked() - signal @f unless it already was
 *
 * Context: @f's lock held, as fence_signal_locked().
 * Returns: true if @f was already signalled (nothing done), false if this
 * call signalled it.
 */
bool fence_check_and_signal_locked(Fence* f);

/**
 * fence_check_and_signal() - fence_check_and_signal_locked(), taking the lock
 *
 * Context: must not hold @f's lock.
 */
bool fence_check_and_signal(Fence* f);

/**
 * fence_set_error() - record an error for @f to report once signalled
 * @error: a negative errno in [-4095, -1]
 *
 * Warns if @f has signalled or @error is out of range, and stores it
 * regardless, as the kernel does.
 *
 * Context: the issuer, before it signals @f; takes no lock.
 */
void fence_set_error(Fence* f, int error);

/**
 * fence_set_error_unless_signaled() - fence_set_error() for callers that
 * cannot know whether @f has signalled (JavaScript's setError)
 *
 * Context: must not hold @f's lock (takes it, so the check and the store are
 * atomic against signalling).
 * Returns: 0 stored; -EBUSY if @f has signalled (nothing stored); -EINVAL
 * for an error outside [-4095, -1].
 */
int fence_set_error_unless_signaled(Fence* f, int error);

/**
 * fence_get_status_locked() - @f's status; may poll ops->signaled and signal
 *
 * Context: @f's lock held.
 * Returns: 0 pending, 1 signalled, or the negative error it signalled with.
 */
int fence_get_status_locked(Fence* f);

/**
 * fence_get_status() - fence_get_status_locked(), taking the lock
 *
 * Context: must not hold @f's lock.
 */
int fence_get_status(Fence* f);

/**
 * fence_timestamp() - the time @f signalled (CLOCK_MONOTONIC ns)
 *
 * Context: any; spins briefly if the timestamp is still being written.
 * Returns: the timestamp; now(), with a warning, if @f has not signalled.
 */
int64_t fence_timestamp(Fence* f);

/**
 * fence_is_signaled() - whether @f has signalled, polling ops->signaled
 *
 * If the op says so, signals @f here (callbacks run on this thread). Never
 * enables signalling.
 *
 * Context: must not hold @f's lock (signalling takes it).
 */
bool fence_is_signaled(Fence* f);

/**
 * fence_is_signaled_locked() - fence_is_signaled() with @f's lock held
 */
bool fence_is_signaled_locked(Fence* f);

/**
 * fence_enable_sw_signaling() - ask the issuer to signal @f (ops->enable_signaling,
 * at most once per fence); signals @f at once if the op returns false
 *
 * Context: must not hold @f's lock; the op runs under it, in an RCU read section.
 */
void fence_enable_sw_signaling(Fence* f);

// --- callbacks ----------------------------------------------------------------

/**
 * fence_add_callback() - run @func once @f signals; enables signalling
 * @cb: caller's memory, on at most one fence at a time; keep it (and a
 *      reference to @f) until it has run or been removed
 *
 * @func runs exactly once, on the signalling thread, under @f's lock with
 * irq_work deferred: it must not take @f's lock (no fence_* call on @f that
 * locks it), sleep or wait; it may signal or put other fences and queue work.
 *
 * Context: must not hold @f's lock.
 * Returns: 0 queued; -ENOENT @f already signalled (@func not called, @cb left
 * unqueued); -EINVAL (with a warning) for a null @f or @func.
 */
int fence_add_callback(Fence* f, FenceCallback* cb, FenceFunc func);

/**
 * fence_remove_callback() - dequeue @cb if it has not run
 *
 * Callbacks run under the fence lock, which this takes: once it returns,
 * @cb's func is not running and will not run.
 *
 * Context: must not hold @f's lock.
 * Returns: true if removed before it ran; false if it ran (or the add failed).
 */
bool fence_remove_callback(Fence* f, FenceCallback* cb);

// --- waits (timeouts in ns; kMaxScheduleTimeout = forever) ---------------------

/**
 * fence_wait_timeout() - wait up to @timeout_ns for @f to signal
 * @intr: accepted for the kernel's signature; fence waits are not interrupted
 *        here (JS waits take an AbortSignal instead), so -ERESTARTSYS never
 *        comes back
 *
 * Enables signalling (also for a zero timeout), then calls ops->wait if the
 * issuer has one, else fence_default_wait().
 *
 * Context: may sleep. Must not hold @f's lock or anything its signaller needs.
 * Returns: the remaining time (>= 1; 1 for a zero timeout on a signalled
 * fence) if signalled, 0 on timeout, -EINVAL (with a warning) for a negative
 * timeout, or a custom wait's error.
 */
long fence_wait_timeout(Fence* f, bool intr, int64_t timeout_ns);

/**
 * fence_default_wait() - the wait for issuers without ops->wait: a callback at
 * the head of @f's list and a futex sleep; does not enable signalling
 *
 * Context and returns: as fence_wait_timeout().
 */
long fence_default_wait(Fence* f, bool intr, int64_t timeout_ns);

/**
 * fence_wait() - wait for @f without a timeout
 *
 * Context: may sleep, as fence_wait_timeout(). Returns: 0, or a negative error.
 */
inline long fence_wait(Fence* f, bool intr) {
  long r = fence_wait_timeout(f, intr, kMaxScheduleTimeout);
  return r < 0 ? r : 0;
}

/**
 * fence_wait_any_timeout() - wait up to @timeout_ns for any of @count fences
 * @idx: optional; set to the first signalled fence on a positive return
 *
 * A zero timeout only polls (fence_is_signaled() on each). Otherwise it puts
 * a callback on each fence in turn (which enables signalling), stopping at
 * the first one already signalled, and removes them all before returning.
 *
 * Context: may sleep; must not hold any of the fences' locks.
 * Returns: the remaining time (> 0), 0 on timeout, -EINVAL (with a warning)
 * for no fences or a negative timeout, -ENOMEM.
 */
long fence_wait_any_timeout(Fence** fences, uint32_t count, bool intr, int64_t timeout_ns,
                            uint32_t* idx);

/**
 * fence_set_deadline() - hint the issuer that @f is needed by @deadline_ns
 *
 * Forwarded to ops->set_deadline unless @f has signalled (or its ops have
 * detached).
 *
 * Context: must not hold @f's lock (polls like fence_is_signaled()).
 */
void fence_set_deadline(Fence* f, int64_t deadline_ns);

// --- names, stubs, describe ----------------------------------------------------

/**
 * fence_driver_name() - the issuer's driver name; "detached-driver" once @f
 * has signalled
 *
 * Context: inside an RCU read section; the string is valid only inside it.
 */
const char* fence_driver_name(Fence* f);

/**
 * fence_timeline_name() - the timeline name; "signaled-timeline" once @f has
 * signalled
 *
 * Context: inside an RCU read section; the string is valid only inside it.
 */
const char* fence_timeline_name(Fence* f);

/**
 * fence_get_stub() - a reference to the shared, signalled stub fence
 *
 * The stub is initialised and signalled once, when the library loads
 * (dma_fence_init_stub at subsystem init): its timestamp is earlier than any
 * fence made later. Context: any.
 */
Fence* fence_get_stub();

/**
 * fence_allocate_private_stub() - a new signalled fence with @timestamp_ns
 *
 * Returns: a fence with one reference, or nullptr on OOM.
 */
Fence* fence_allocate_private_stub(int64_t timestamp_ns);

/**
 * fence_describe() - one debugfs line for @f:
 * "<ctx>:<seqno> <timeline> <driver> unsignalled\n", or
 * "<ctx>:<seqno>   signalled\n" (no names) once signalled
 *
 * Decides "signalled" with fence_is_signaled(), as the kernel's does: it polls
 * ops->signaled and may signal @f.
 *
 * Context: must not hold @f's lock.
 */
std::string fence_describe(Fence* f);

/**
 * fence_alloc() - memory for a fence that uses the default release path
 * (fence_free()); recycled from the fence cache when it is built in
 *
 * Returns: zeroed, uninitialised memory, or nullptr on OOM.
 */
Fence* fence_alloc();

/**
 * fence_alloc_large() - fence_alloc() for a fence followed by issuer data, in a
 * block of kFenceLargeBlock bytes
 *
 * After fence_init(), fence_mark_large_block() tells fence_free() the block's
 * class (an unmarked one is still freed correctly, as an ordinary fence).
 *
 * Returns: zeroed memory, or nullptr on OOM.
 */
Fence* fence_alloc_large();

/**
 * fence_mark_large_block() - record that @f came from fence_alloc_large()
 *
 * Context: after fence_init(), before @f is published.
 */
inline void fence_mark_large_block(Fence* f) {
  f->flags.store(f->flags.load(std::memory_order_relaxed) | (1UL << FENCE_FLAG_LARGE_BLOCK_BIT),
                 std::memory_order_release);
}

}  // namespace dmabuf
