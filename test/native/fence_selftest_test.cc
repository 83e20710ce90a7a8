// The kernel's `dma-buf-fence` suite (st-dma-fence.c, 7.1 kunit version), all 12
// cases, ported against the core. Mock fences: bare malloc'd fence, ops with names
// only, inline lock, context 0, seqno 0 -- so the default release path and ops
// detachment are exercised, as in 7.1.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "core/fence/fence.h"

using namespace dmabuf;

namespace {

const char* mock_name(Fence*) { return "mock"; }
const FenceOps kMockOps = {.get_driver_name = mock_name, .get_timeline_name = mock_name};

Fence* mock_fence() {
  Fence* f = fence_alloc();
  if (!f) return nullptr;
  fence_init(f, &kMockOps, nullptr, 0, 0);
  return f;
}

struct SimpleCb {
  FenceCallback cb;
  std::atomic<bool> seen{false};
};
void simple_callback(Fence*, FenceCallback* cb) {
  container_of(cb, &SimpleCb::cb)->seen.store(true, std::memory_order_release);
}

}  // namespace

TEST(DmaBufFence, SuiteInitPrintsSize) {
  printf("sizeof(dma_fence)=%zu\n", sizeof(Fence));
  EXPECT_LE(sizeof(Fence), 64u);
}

TEST(DmaBufFence, test_sanitycheck) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  fence_signal(f);
  fence_put(f);
}

TEST(DmaBufFence, test_signaling) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  EXPECT_FALSE(fence_is_signaled(f)) << "Fence unexpectedly signaled on creation";
  EXPECT_FALSE(fence_check_and_signal(f)) << "Fence reported being already signaled";
  EXPECT_TRUE(fence_is_signaled(f)) << "Fence not reporting signaled";
  EXPECT_TRUE(fence_test_signaled_flag(f)) << "Fence reported not being already signaled";
  EXPECT_EQ(rcu::dereference(f->ops), nullptr) << "Fence ops not detached after signaling";
  fence_put(f);
}

TEST(DmaBufFence, test_add_callback) {
  SimpleCb cb;
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(fence_add_callback(f, &cb.cb, simple_callback), 0) << "Failed to add callback";
  fence_signal(f);
  EXPECT_TRUE(cb.seen.load()) << "Callback failed";
  fence_put(f);
}

TEST(DmaBufFence, test_late_add_callback) {
  SimpleCb cb;
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  fence_signal(f);
  EXPECT_EQ(fence_add_callback(f, &cb.cb, simple_callback), -ENOENT)
      << "Added callback, but fence was already signaled";
  fence_signal(f);
  EXPECT_FALSE(cb.seen.load()) << "Callback called after failed attachment";
  fence_put(f);
}

TEST(DmaBufFence, test_rm_callback) {
  SimpleCb cb;
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(fence_add_callback(f, &cb.cb, simple_callback), 0);
  EXPECT_TRUE(fence_remove_callback(f, &cb.cb)) << "Failed to remove callback";
  fence_signal(f);
  EXPECT_FALSE(cb.seen.load()) << "Callback still signaled after removal";
  fence_put(f);
}

TEST(DmaBufFence, test_late_rm_callback) {
  SimpleCb cb;
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(fence_add_callback(f, &cb.cb, simple_callback), 0);
  fence_signal(f);
  EXPECT_TRUE(cb.seen.load()) << "Callback failed";
  EXPECT_FALSE(fence_remove_callback(f, &cb.cb)) << "Callback removal succeed after being executed";
  fence_put(f);
}

TEST(DmaBufFence, test_status) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(fence_get_status(f), 0) << "Fence unexpectedly has signaled status on creation";
  fence_signal(f);
  EXPECT_EQ(fence_get_status(f), 1) << "Fence not reporting signaled status";
  fence_put(f);
}

TEST(DmaBufFence, test_error) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  fence_set_error(f, -EIO);
  EXPECT_EQ(fence_get_status(f), 0) << "Fence unexpectedly has error status before signal";
  fence_signal(f);
  EXPECT_EQ(fence_get_status(f), -EIO) << "Fence not reporting error status";
  fence_put(f);
}

TEST(DmaBufFence, test_wait) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 0) << "Signaled status from unsignaled fence";
  fence_signal(f);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 1) << "Wait reported incomplete after signal";
  fence_put(f);
}

TEST(DmaBufFence, test_wait_timeout) {
  constexpr int64_t kJiffy = 1000000;           // 1 ms
  constexpr int64_t kHz = 1000 * kJiffy;        // 1 s
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(fence_wait_timeout(f, false, kJiffy), 0) << "Wait reported complete before being signaled";
  std::atomic<bool> fired{false};
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    fence_signal(f);
    fired.store(true);
  });
  long r = fence_wait_timeout(f, false, kHz);
  timer.join();
  if (r == 0 && !fired.load()) GTEST_SKIP() << "Timer did not fire within one HZ";
  EXPECT_NE(r, 0) << "Wait timed out, but fence was signaled";
  fence_signal(f);
  fence_put(f);
}

TEST(DmaBufFence, test_stub) {
  Fence* f[64];
  for (auto& s : f) {
    s = fence_get_stub();
    EXPECT_TRUE(fence_is_signaled(s)) << "stub fence not signaled";
  }
  for (auto* s : f) fence_put(s);
}

// race_signal_callback: two threads each publish a fence, grab the peer's, add a
// callback to it and check that the callback is seen, with the signal before
// (pass 0: after add) or after.
namespace {

struct RaceData {
  std::atomic<Fence*> fences[2];
  std::atomic<bool> stop{false};
  int before;
};

int race_thread(RaceData* data, int id) {
  int misses = 0;
  while (!data->stop.load(std::memory_order_relaxed)) {
    SimpleCb cb;
    Fence* f1 = mock_fence();
    if (!f1) return -ENOMEM;
    fence_enable_sw_signaling(f1);
    data->fences[id].store(f1, std::memory_order_release);
    Fence* f2;
    do {
      f2 = fence_get_rcu_safe(&data->fences[!id]);
    } while (!f2 && !data->stop.load(std::memory_order_relaxed));
    if (!f2) {
      data->fences[id].store(nullptr);
      fence_signal(f1);
      fence_put(f1);
      break;
    }
    if (data->before) fence_signal(f1);
    if (fence_add_callback(f2, &cb.cb, simple_callback) != 0) {
      ++misses;
      cb.seen.store(true);
    }
    if (!data->before) fence_signal(f1);
    if (!cb.seen.load()) {
      fence_wait(f2, false);
      fence_lock_irqsave(f2);  // wait out a concurrently running callback
      fence_unlock_irqrestore(f2);
    }
    int err = cb.seen.load() ? 0 : -EINVAL;
    if (!cb.seen.load()) fence_remove_callback(f2, &cb.cb);
    data->fences[id].store(nullptr, std::memory_order_release);
    fence_put(f2);
    fence_put(f1);
    if (err) return err;
  }
  printf("race_signal_callback[%d] misses=%d\n", id, misses);
  return 0;
}

}  // namespace

TEST(DmaBufFence, test_race_signal_callback) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs 2 CPUs";
  for (int pass = 0; pass < 2; ++pass) {
    RaceData data;
    data.fences[0] = nullptr;
    data.fences[1] = nullptr;
    data.before = pass;
    int results[2] = {0, 0};
    std::thread t0([&] { results[0] = race_thread(&data, 0); });
    std::thread t1([&] { results[1] = race_thread(&data, 1); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    data.stop.store(true);
    t0.join();
    t1.join();
    EXPECT_EQ(results[0], 0);
    EXPECT_EQ(results[1], 0);
  }
}
