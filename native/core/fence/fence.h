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
};

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

// `lock == nullptr` selects the inline lock (7.1). A non-null external lock must
// outlive the last reference to the fence. ops and both name callbacks must be
// non-null (the kernel BUG()s; we abort).
void fence_init(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                uint64_t seqno);
void fence_init64(Fence* f, const FenceOps* ops, SpinLock* lock, uint64_t context,
                  uint64_t seqno);
inline bool fence_was_initialized(const Fence* f) {
  return f && (f->flags.load(std::memory_order_relaxed) & (1UL << FENCE_FLAG_INITIALIZED_BIT));
}

// Reserves `num` consecutive contexts and returns the first; never returns 0.
uint64_t fence_context_alloc(unsigned num);

// seqno `a` later than `b`, in `f`'s mode (64-bit, or 32-bit with wrap-around).
bool fence_is_later_seqno(const Fence* f, uint64_t a, uint64_t b);
bool fence_is_later(Fence* f1, Fence* f2);          // warns, false across contexts
bool fence_is_later_or_same(Fence* f1, Fence* f2);  // identity or later
Fence* fence_later(Fence* f1, Fence* f2);           // nullptr if the later one signalled

// --- locking ------------------------------------------------------------------

inline SpinLock* fence_spinlock(Fence* f) {
  return (f->flags.load(std::memory_order_relaxed) & (1UL << FENCE_FLAG_INLINE_LOCK_BIT))
             ? &f->inline_lock
             : f->extern_lock;
}
// "irqsave": also defers irq_work (container signalling) until the outermost
// fence lock is released; see irq_work.h.
inline void fence_lock_irqsave(Fence* f) {
  local_irq_disable();
  fence_spinlock(f)->lock();
}
inline void fence_unlock_irqrestore(Fence* f) {
  fence_spinlock(f)->unlock();
  local_irq_enable();
}
void fence_assert_held(Fence* f);

// --- references ---------------------------------------------------------------

inline Fence* fence_get(Fence* f) {
  if (f) f->refcount.fetch_add(1, std::memory_order_relaxed);
  return f;
}
void fence_release(Fence* f);  // last put; exposed for containers and tests
inline void fence_put(Fence* f) {
  if (f && f->refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) fence_release(f);
}
// "get unless zero", for callers inside an RCU read section.
inline Fence* fence_get_rcu(Fence* f) {
  uint32_t c = f->refcount.load(std::memory_order_relaxed);
  while (c != 0) {
    if (f->refcount.compare_exchange_weak(c, c + 1, std::memory_order_acquire,
                                          std::memory_order_relaxed))
      return f;
  }
  return nullptr;
}
// Reference to whatever `*slot` points to, retrying while it changes under us.
Fence* fence_get_rcu_safe(std::atomic<Fence*>* slot);
// Default release path: free the memory (malloc'd) after a grace period.
void fence_free(Fence* f);
// The same for a bigger malloc'd object that starts with its Fence (fence
// arrays, chain nodes, sw_sync points): std::free after a grace period, never
// recycled through the fence-sized cache.
void fence_free_object(Fence* f);

// --- flags and signalling -----------------------------------------------------

inline bool fence_test_flag(const Fence* f, unsigned bit) {
  return f->flags.load(std::memory_order_acquire) & (1UL << bit);
}
inline bool fence_test_signaled_flag(const Fence* f) {
  return fence_test_flag(f, FENCE_FLAG_SIGNALED_BIT);
}
// Sets a bit >= FENCE_FLAG_USER_BITS; the caller must hold the fence lock.
inline void fence_set_user_flag_locked(Fence* f, unsigned bit) {
  f->flags.store(f->flags.load(std::memory_order_relaxed) | (1UL << bit),
                 std::memory_order_release);
}
// Same, taking the lock. Returns whether the bit was already set.
bool fence_set_user_flag(Fence* f, unsigned bit);

void fence_signal_timestamp_locked(Fence* f, int64_t timestamp_ns);
void fence_signal_timestamp(Fence* f, int64_t timestamp_ns);
void fence_signal_locked(Fence* f);
void fence_signal(Fence* f);
// true if the fence was already signalled (no-op), false if this call signalled it.
bool fence_check_and_signal_locked(Fence* f);
bool fence_check_and_signal(Fence* f);

// Warns if signalled or outside [-4095, -1]; stores the value regardless.
void fence_set_error(Fence* f, int error);
// For callers that cannot know whether the fence has signalled (JS): under the
// fence lock, -EBUSY if it has (nothing stored), else stores @error and
// returns 0. -EINVAL for an error outside [-4095, -1].
int fence_set_error_unless_signaled(Fence* f, int error);
// 0 pending, 1 signalled, negative errno signalled with error. May poll.
int fence_get_status_locked(Fence* f);
int fence_get_status(Fence* f);
// The signal timestamp (warns and returns now() if not signalled).
int64_t fence_timestamp(Fence* f);

bool fence_is_signaled(Fence* f);          // may poll ops->signaled and signal
bool fence_is_signaled_locked(Fence* f);   // same, lock held
void fence_enable_sw_signaling(Fence* f);

// --- callbacks ----------------------------------------------------------------

// 0 added; -ENOENT already signalled (cb not called); -EINVAL null args.
int fence_add_callback(Fence* f, FenceCallback* cb, FenceFunc func);
// true if removed before it ran; false if it ran (or add had failed).
bool fence_remove_callback(Fence* f, FenceCallback* cb);

// --- waits (timeouts in ns; kMaxScheduleTimeout = forever) ---------------------

// Remaining time (>= 1) if signalled, 0 on timeout, -EINVAL for a negative
// timeout. `intr` is accepted for the kernel's signature; userspace threads have
// no pending-signal state, so -ERESTARTSYS never happens (JS waits take an
// AbortSignal instead).
long fence_wait_timeout(Fence* f, bool intr, int64_t timeout_ns);
long fence_default_wait(Fence* f, bool intr, int64_t timeout_ns);
inline long fence_wait(Fence* f, bool intr) {
  long r = fence_wait_timeout(f, intr, kMaxScheduleTimeout);
  return r < 0 ? r : 0;
}
// Waits for any of `count` fences; *idx is the first signalled one on success.
long fence_wait_any_timeout(Fence** fences, uint32_t count, bool intr, int64_t timeout_ns,
                            uint32_t* idx);

void fence_set_deadline(Fence* f, int64_t deadline_ns);

// --- names, stubs, describe ----------------------------------------------------

// Must be called inside an RCU read section; the string is valid only inside it.
// Signalled fences report "detached-driver" / "signaled-timeline".
const char* fence_driver_name(Fence* f);
const char* fence_timeline_name(Fence* f);

Fence* fence_get_stub();                                    // shared, signalled
Fence* fence_allocate_private_stub(int64_t timestamp_ns);   // nullptr on OOM
// "<ctx>:<seqno> <timeline> <driver> [un]signalled\n"
std::string fence_describe(Fence* f);

// Allocation for fences using the default release path.
Fence* fence_alloc();

}  // namespace dmabuf
