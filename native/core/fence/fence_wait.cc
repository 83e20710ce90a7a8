// dma_fence waits: wait_timeout, the default wait and wait_any. Waiters put a
// callback on the fence and sleep on a futex word in their own frame.
#include <cerrno>
#include <memory>
#include <new>

#include "core/base/futex.h"
#include "core/base/monotonic.h"
#include "core/base/warn.h"
#include "core/fence/fence.h"

namespace dmabuf {
namespace {

struct Waker {
  FenceCallback cb;
  std::atomic<uint32_t>* word;
};

void wake_waiter(Fence*, FenceCallback* cb) {
  auto* w = container_of(cb, &Waker::cb);
  std::atomic<uint32_t>* word = w->word;
  word->store(1, std::memory_order_release);
  futex_wake_all(word);
}

// Sleeps until *word becomes non-zero or the deadline passes. Returns the
// remaining time (>= 1) or 0 on timeout.
int64_t sleep_until_woken(std::atomic<uint32_t>* word, int64_t timeout_ns) {
  if (timeout_ns == kMaxScheduleTimeout) {
    while (word->load(std::memory_order_acquire) == 0) futex_wait(word, 0, -1);
    return kMaxScheduleTimeout;
  }
  const int64_t deadline = monotonic_ns() + timeout_ns;
  for (;;) {
    if (word->load(std::memory_order_acquire) != 0) {
      const int64_t left = deadline - monotonic_ns();
      return left > 0 ? left : 1;
    }
    const int64_t left = deadline - monotonic_ns();
    if (left <= 0) return 0;
    futex_wait(word, 0, left);
  }
}

}  // namespace

long fence_default_wait(Fence* f, bool /*intr*/, int64_t timeout_ns) {
  std::atomic<uint32_t> word{0};
  Waker w;
  w.word = &word;
  {
    SpinGuard g(fence_spinlock(f));
    if (fence_test_signaled_flag(f)) return timeout_ns ? timeout_ns : 1;
    if (timeout_ns == 0) return 0;
    // The default waiter goes at the head of the list, as in the kernel.
    w.cb.func = wake_waiter;
    list_add(&w.cb.node, &f->cb_list);
  }
  const int64_t left = sleep_until_woken(&word, timeout_ns);
  if (left == 0) {
    // Timed out: unhook, unless the signaller got there first (then it has run
    // or is running our callback under the lock, which we wait out here).
    SpinGuard g(fence_spinlock(f));
    if (!list_empty(&w.cb.node)) list_del_init(&w.cb.node);
    else return 1;
  }
  return static_cast<long>(left);
}

long fence_wait_timeout(Fence* f, bool intr, int64_t timeout_ns) {
  if (timeout_ns < 0) {
    warn("fence_wait_timeout: negative timeout");
    return -EINVAL;
  }
  fence_enable_sw_signaling(f);
  long (*custom)(Fence*, bool, int64_t) = nullptr;
  {
    rcu::ReadGuard rcu;
    const FenceOps* ops = rcu::dereference(f->ops);
    if (ops) custom = ops->wait;
  }
  // A custom wait is called outside RCU: fences that have one never detach.
  return custom ? custom(f, intr, timeout_ns) : fence_default_wait(f, intr, timeout_ns);
}

long fence_wait_any_timeout(Fence** fences, uint32_t count, bool /*intr*/, int64_t timeout_ns,
                            uint32_t* idx) {
  if (!fences || count == 0 || timeout_ns < 0) {
    warn("fence_wait_any_timeout: invalid arguments");
    return -EINVAL;
  }
  if (timeout_ns == 0) {
    for (uint32_t i = 0; i < count; ++i) {
      if (fence_is_signaled(fences[i])) {
        if (idx) *idx = i;
        return 1;
      }
    }
    return 0;
  }
  std::unique_ptr<Waker[]> wakers(new (std::nothrow) Waker[count]);
  if (!wakers) return -ENOMEM;
  std::atomic<uint32_t> word{0};
  uint32_t added = 0;
  int64_t result = timeout_ns;
  bool signalled_early = false;
  for (; added < count; ++added) {
    wakers[added].word = &word;
    if (fence_add_callback(fences[added], &wakers[added].cb, wake_waiter) != 0) {
      if (idx) *idx = added;
      signalled_early = true;
      break;
    }
  }
  if (!signalled_early) {
    result = sleep_until_woken(&word, timeout_ns);
    if (result > 0 && idx) {
      for (uint32_t i = 0; i < count; ++i) {
        if (fence_test_signaled_flag(fences[i])) {
          *idx = i;
          break;
        }
      }
    }
  }
  // fence_remove_callback takes each lock, so no wake_waiter is still running
  // on `word` once this loop is done.
  for (uint32_t i = 0; i < added; ++i) fence_remove_callback(fences[i], &wakers[i].cb);
  return static_cast<long>(result);
}

}  // namespace dmabuf
