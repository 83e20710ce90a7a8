// What users observe of signal timestamps, which fence_signal() keeps although
// it reads the clock before taking an inline lock (docs/kernel-map.md): a
// timestamp is never later than the moment the fence is seen signalled, and
// along a timeline timestamps never go backwards in signal order -- on one
// thread, across threads that hand the timeline over, and for fences that
// share an external lock (whose clock read stays under the lock).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "core/fence/fence.h"

using namespace dmabuf;

namespace {

const char* ts_name(Fence*) { return "ts"; }
const FenceOps kOps = {.get_driver_name = ts_name, .get_timeline_name = ts_name};

Fence* new_fence(SpinLock* lock, uint64_t seqno) {
  Fence* f = fence_alloc();
  fence_init(f, &kOps, lock, 1, seqno);
  return f;
}

void put_all(std::vector<Fence*>& fs) {
  for (Fence* f : fs) fence_put(f);
  fs.clear();
}

}  // namespace

TEST(FenceTimestamp, NeverLaterThanTheSignalSeenByAnotherThread) {
  constexpr int kFences = 2000;
  std::vector<Fence*> fs;
  for (int i = 0; i < kFences; ++i) fs.push_back(new_fence(nullptr, i));
  std::atomic<int> late{0};
  std::thread watcher([&] {
    for (Fence* f : fs) {
      while (!fence_test_signaled_flag(f)) std::this_thread::yield();
      if (monotonic_ns() < fence_timestamp(f)) late.fetch_add(1);
    }
  });
  for (Fence* f : fs) fence_signal(f);
  watcher.join();
  EXPECT_EQ(late.load(), 0);
  put_all(fs);
}

TEST(FenceTimestamp, MonotonicInSignalOrderOnOneThread) {
  std::vector<Fence*> fs;
  for (int i = 0; i < 5000; ++i) fs.push_back(new_fence(nullptr, i));
  for (Fence* f : fs) fence_signal(f);
  for (size_t i = 1; i < fs.size(); ++i)
    ASSERT_LE(fence_timestamp(fs[i - 1]), fence_timestamp(fs[i])) << "fence " << i;
  put_all(fs);
}

TEST(FenceTimestamp, MonotonicAcrossThreadsHandingTheTimelineOver) {
  // Two threads signal a timeline's fences in turn, each waiting to see its
  // predecessor signalled: the signal order is the seqno order.
  constexpr int kFences = 4000;
  std::vector<Fence*> fs;
  for (int i = 0; i < kFences; ++i) fs.push_back(new_fence(nullptr, i));
  auto body = [&](int parity) {
    for (int i = parity; i < kFences; i += 2) {
      if (i > 0)
        while (!fence_test_signaled_flag(fs[i - 1])) std::this_thread::yield();
      fence_signal(fs[i]);
    }
  };
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  for (int i = 1; i < kFences; ++i)
    ASSERT_LE(fence_timestamp(fs[i - 1]), fence_timestamp(fs[i])) << "fence " << i;
  put_all(fs);
}

namespace {
// Records the order in which fences on a shared lock signal: callbacks run
// under that lock, in signal order.
struct OrderCb {
  FenceCallback cb;
  std::vector<int64_t>* order;
};
void record_order(Fence* f, FenceCallback* cb) {
  reinterpret_cast<OrderCb*>(cb)->order->push_back(fence_timestamp(f));
}
}  // namespace

TEST(FenceTimestamp, MonotonicInSignalOrderOnASharedExternalLock) {
  // Two threads race to signal fences that share one (legacy) lock: whatever
  // order the lock gives them, timestamps follow it.
  constexpr int kFences = 4000;
  SpinLock shared;
  std::vector<Fence*> fs;
  std::vector<OrderCb> cbs(kFences);
  std::vector<int64_t> order;  // written under `shared` only
  order.reserve(kFences);
  for (int i = 0; i < kFences; ++i) {
    fs.push_back(new_fence(&shared, i));
    cbs[i].order = &order;
    ASSERT_EQ(fence_add_callback(fs[i], &cbs[i].cb, record_order), 0);
  }
  auto body = [&](int parity) {
    for (int i = parity; i < kFences; i += 2) fence_signal(fs[i]);
  };
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  ASSERT_EQ(order.size(), static_cast<size_t>(kFences));
  for (size_t i = 1; i < order.size(); ++i) ASSERT_LE(order[i - 1], order[i]) << "signal " << i;
  put_all(fs);
}
