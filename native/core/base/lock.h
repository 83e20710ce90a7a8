// The fence spinlock: our own test-and-test-and-set lock with a pause, 4 bytes,
// so it fits in the fence's lock union beside an external-lock pointer.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DMABUF_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define DMABUF_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define DMABUF_CPU_RELAX() do {} while (0)
#endif

namespace dmabuf {

class SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void init() { word_.store(0, std::memory_order_relaxed); }

  void lock() {
    if (word_.exchange(1, std::memory_order_acquire) == 0) return;
    lock_contended();
  }
  bool try_lock() {
    return word_.load(std::memory_order_relaxed) == 0 &&
           word_.exchange(1, std::memory_order_acquire) == 0;
  }
  void unlock() { word_.store(0, std::memory_order_release); }
  bool is_locked() const { return word_.load(std::memory_order_relaxed) != 0; }

 private:
  __attribute__((noinline)) void lock_contended() {
    unsigned spins = 0;
    for (;;) {
      // Spin on a plain load so waiters share the line instead of bouncing it.
      while (word_.load(std::memory_order_relaxed) != 0) {
        DMABUF_CPU_RELAX();
        // Unlike the kernel's, a userspace holder can be preempted (e.g. right
        // after waking a waiter under the lock): after a short spin, give the
        // CPU away instead of burning the rest of the holder's time slice.
        if (++spins == 128) {
          sched_yield();
          spins = 0;
        }
      }
      if (word_.exchange(1, std::memory_order_acquire) == 0) return;
    }
  }

  std::atomic<uint32_t> word_{0};
};
static_assert(sizeof(SpinLock) == 4, "the fence lock union relies on a 4-byte spinlock");

// RAII holder for plain spin_lock/spin_unlock. The irqsave form, which also
// defers irq_work until the lock is dropped, is IrqSpinGuard (irq_work.h).
class SpinGuard {
 public:
  explicit SpinGuard(SpinLock* l) : l_(l) { l_->lock(); }
  ~SpinGuard() { l_->unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock* l_;
};

}  // namespace dmabuf
