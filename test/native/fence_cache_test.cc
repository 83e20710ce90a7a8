// The fence cache (native/core/fence/fence_cache.cc): memory comes back on the
// thread that freed it, only after a grace period; a reader inside an RCU read
// section keeps it from being reused; thread exit and the per-thread cap hand
// memory over without losing any (deferred_pending() drains to zero); named
// fences recycle in their own block class. Under ASan the cache is off, so the
// address-reuse checks are skipped there and the rest runs as a leak check.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/base/rcu.h"
#include "core/fence/fence.h"
#include "core/issuer/issuer.h"

using namespace dmabuf;

namespace {

const char* cache_name(Fence*) { return "cache"; }
const FenceOps kOps = {.get_driver_name = cache_name, .get_timeline_name = cache_name};

bool cache_built_in() { return std::string(DMABUF_SANITIZE_MODE) != "address"; }

// Allocates, signals and puts `n` fences; returns their addresses.
std::set<Fence*> churn(size_t n) {
  std::set<Fence*> seen;
  for (size_t i = 0; i < n; ++i) {
    Fence* f = fence_alloc();
    EXPECT_NE(f, nullptr);
    fence_init(f, &kOps, nullptr, 1, i);
    seen.insert(f);
    fence_signal(f);
    fence_put(f);
  }
  return seen;
}

constexpr size_t kMany = 4096;  // several magazines

}  // namespace

TEST(FenceCache, AllocatedMemoryIsZeroed) {
  churn(kMany);
  rcu::barrier();
  for (int i = 0; i < 1000; ++i) {
    Fence* f = fence_alloc();
    ASSERT_NE(f, nullptr);
    const auto* bytes = reinterpret_cast<const unsigned char*>(f);
    for (size_t b = 0; b < sizeof(Fence); ++b) ASSERT_EQ(bytes[b], 0) << "byte " << b;
    fence_init(f, &kOps, nullptr, 1, i);
    fence_signal(f);
    fence_put(f);
  }
}

namespace {

void not_reused_while_a_reader_may_hold_it() {
  Fence* watched = fence_alloc();
  fence_init(watched, &kOps, nullptr, 1, 0);
  std::atomic<int> phase{0};
  std::thread reader([&] {
    rcu::read_lock();  // a reader that saw `watched` before its last put
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    EXPECT_NE(watched->flags.load() & (1UL << FENCE_FLAG_INITIALIZED_BIT), 0u);
    rcu::read_unlock();
  });
  while (phase.load() != 1) std::this_thread::yield();
  fence_signal(watched);
  fence_put(watched);
  // Fill and stamp the magazine that holds it, then churn for a while: the
  // reclaimer cannot end its grace period while the reader is inside.
  bool seen = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  while (std::chrono::steady_clock::now() < until) seen |= churn(1024).count(watched) > 0;
  EXPECT_FALSE(seen) << "memory reused inside a reader's grace period";
  phase.store(2);
  reader.join();
  rcu::barrier();
  for (int i = 0; i < 8 && !seen; ++i) seen = churn(kMany).count(watched) > 0;
  EXPECT_TRUE(seen) << "memory never came back after the reader left";
}

// Runs `body` on a new thread, whose cache starts empty.
template <typename Fn>
void on_fresh_thread(Fn body) {
  std::thread t(body);
  t.join();
}

}  // namespace

TEST(FenceCache, ReusesThisThreadsMemoryAfterAGracePeriod) {
  if (!cache_built_in()) GTEST_SKIP() << "the fence cache is off under ASan";
  on_fresh_thread([] {
    const std::set<Fence*> freed = churn(kMany);
    rcu::barrier();  // every cookie handed out so far has expired
    size_t reused = 0;
    std::vector<Fence*> again;
    for (size_t i = 0; i < kMany / 2; ++i) {
      Fence* f = fence_alloc();
      reused += freed.count(f);
      again.push_back(f);
    }
    // Every block it holds (fewer than kMany when grace periods ended during
    // the churn and it reused its own), but for the rest of the magazine it
    // was allocating from (may be the global pool's) and the unstamped one it
    // was filling: up to 256 blocks each.
    EXPECT_GE(reused + 512, std::min<size_t>(kMany / 2, freed.size()));
    for (Fence* f : again) fence_free(f);
    EXPECT_EQ(rcu::deferred_pending(), 0u) << "recycling never goes through the reclaimer";
  });
}

TEST(FenceCache, NotReusedWhileAReaderMayHoldIt) {
  if (!cache_built_in()) GTEST_SKIP() << "the fence cache is off under ASan";
  on_fresh_thread(not_reused_while_a_reader_may_hold_it);
}

TEST(FenceCache, ThreadExitHandsEverythingOver) {
  // Empty the global pool first (earlier tests' threads may have filled it):
  // a thread takes every pooled block and keeps it until the end.
  std::vector<Fence*> drained;
  on_fresh_thread([&] {
    for (int i = 0; i < 20000; ++i) drained.push_back(fence_alloc());
  });
  std::set<Fence*> freed;
  std::thread t([&] { freed = churn(kMany + 100); });  // full magazines and a partial one
  t.join();
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
  if (cache_built_in()) {
    // What the thread held is in the global pool now: another thread takes it.
    size_t reused = 0;
    std::thread u([&] {
      std::vector<Fence*> got;
      for (size_t i = 0; i < kMany; ++i) {
        got.push_back(fence_alloc());
        reused += freed.count(got.back());
      }
      for (Fence* f : got) fence_free(f);
    });
    u.join();
    EXPECT_GT(reused, 0u);
  }
  for (Fence* f : drained) fence_free(f);
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}

TEST(FenceCache, OverTheCapGoesThroughTheReclaimerAndIsAccounted) {
  // More fences held at once than a thread's cap: the oldest magazines leave
  // the thread through the reclaimer; barrier() waits for them exactly.
  std::thread t([] {
    std::vector<Fence*> held;
    for (int i = 0; i < 80000; ++i) {
      Fence* f = fence_alloc();
      fence_init(f, &kOps, nullptr, 1, i);
      held.push_back(f);
    }
    for (Fence* f : held) {
      fence_signal(f);
      fence_put(f);
    }
  });
  t.join();
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}

TEST(FenceCache, NamedFencesRecycleInTheirOwnClass) {
  Issuer* iss = nullptr;
  std::string err;
  ASSERT_EQ(Issuer::create_named("cache-driver", "cache-timeline", &iss, &err), 0) << err;
  std::set<Fence*> freed;
  for (size_t i = 0; i < kMany; ++i) {
    Fence* f = nullptr;
    ASSERT_EQ(iss->create_fence({}, &f, &err), 0) << err;
    if (cache_built_in()) {
      EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_LARGE_BLOCK_BIT));
    }
    {
      rcu::ReadGuard g;
      ASSERT_STREQ(fence_driver_name(f), "cache-driver");
      ASSERT_STREQ(fence_timeline_name(f), "cache-timeline");
    }
    freed.insert(f);
    fence_signal(f);
    fence_put(f);
  }
  rcu::barrier();
  size_t reused = 0;
  std::vector<Fence*> held;
  for (size_t i = 0; i < kMany / 2; ++i) {
    Fence* f = nullptr;
    ASSERT_EQ(iss->create_fence({}, &f, &err), 0) << err;
    reused += freed.count(f);
    {
      rcu::ReadGuard g;
      ASSERT_STREQ(fence_driver_name(f), "cache-driver");
    }
    held.push_back(f);
  }
  if (cache_built_in()) {  // as in ReusesThisThreadsMemoryAfterAGracePeriod
    EXPECT_GE(reused + 512, std::min<size_t>(kMany / 2, freed.size()));
  }
  // Small fences never get a named fence's block, and the other way round.
  for (int i = 0; i < 1000; ++i) {
    Fence* f = fence_alloc();
    EXPECT_EQ(freed.count(f), 0u);
    fence_free(f);
  }
  for (Fence* f : held) {
    fence_signal(f);
    fence_put(f);
  }
  // Names too long for a cache block still work (a malloc'd block).
  Issuer* longer = nullptr;
  const std::string big(200, 'n');
  ASSERT_EQ(Issuer::create_named(big, big, &longer, &err), 0) << err;
  Fence* f = nullptr;
  ASSERT_EQ(longer->create_fence({}, &f, &err), 0) << err;
  EXPECT_FALSE(fence_test_flag(f, FENCE_FLAG_LARGE_BLOCK_BIT));
  {
    rcu::ReadGuard g;
    EXPECT_EQ(std::string(fence_timeline_name(f)), big);
  }
  fence_signal(f);
  fence_put(f);
  longer->put();
  iss->put();
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}

TEST(FenceCache, PolledGracePeriods) {
  const uint64_t a = rcu::start_poll();
  const uint64_t b = rcu::start_poll();
  EXPECT_LE(a, b);
  rcu::barrier();
  EXPECT_TRUE(rcu::poll_done(a));
  EXPECT_TRUE(rcu::poll_done(b));
  // A reader that started before the cookie holds it back.
  std::atomic<int> phase{0};
  uint64_t c = 0;
  std::thread reader([&] {
    rcu::read_lock();
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    rcu::read_unlock();
  });
  while (phase.load() != 1) std::this_thread::yield();
  c = rcu::start_poll();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(rcu::poll_done(c));
  phase.store(2);
  reader.join();
  rcu::barrier();
  EXPECT_TRUE(rcu::poll_done(c));
}
