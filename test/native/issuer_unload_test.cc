// Issuer unload: fences that outlive their module, unload racing with the
// module's own signalling thread and with name readers, fences that pin a
// module, and load/unload cycles. Run under ASan: a stale access to module
// memory or to a freed record is a report even when the page got reused.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "issuer_test_util.h"

using namespace dmabuf;
using namespace issuer_test;

namespace {

bool module_is_mapped(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(path) != std::string::npos) return true;
  return false;
}

// A resv-like holder: a plain array of fence references, as dma_resv keeps
// signalled fences around until someone replaces them.
struct Holder {
  std::vector<Fence*> fences;
  void add(Fence* f) { fences.push_back(fence_get(f)); }
  ~Holder() {
    for (Fence* f : fences) fence_put(f);
  }
};

// Everything a user can still ask of a fence after its issuer went away.
void expect_usable_after_unload(Fence* f, int64_t not_before_ns, int expected_status = 0) {
  ASSERT_TRUE(fence_test_signaled_flag(f));
  EXPECT_EQ(f->ops, nullptr) << "signalled, names-only: detached";
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "detached-driver");
    EXPECT_STREQ(fence_timeline_name(f), "signaled-timeline");
  }
  const int status = fence_get_status(f);
  if (expected_status)
    EXPECT_EQ(status, expected_status);
  else
    EXPECT_TRUE(status == 1 || status == -ECANCELED) << status;
  EXPECT_GE(fence_timestamp(f), not_before_ns);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 1);
  EXPECT_TRUE(fence_is_signaled(f));
  fence_set_deadline(f, monotonic_ns());
  FenceCallback cb;
  EXPECT_EQ(fence_add_callback(f, &cb, [](Fence*, FenceCallback*) {}), -ENOENT);
  EXPECT_NE(fence_describe(f).find(" signalled"), std::string::npos);
}

}  // namespace

TEST(IssuerUnload, ThousandsOfSignalledFencesOutliveTheModule) {
  const std::string path = module_path("names");
  IssuerRef iss(load_or_die(path));
  const int64_t t0 = monotonic_ns();
  constexpr int kN = 5000;
  std::vector<Fence*> mine;  // references held by C++ code
  Holder resv;               // and by a resv-like container
  for (int i = 0; i < kN; ++i) {
    Fence* f = make_fence(iss.get());
    if (i % 3 == 0) resv.add(f);
    if (i % 7 == 0) fence_set_error(f, -EIO);
    if (i % 2 == 0) fence_signal(f);  // the rest are signalled by signal_all
    mine.push_back(f);
  }
  unload_ok(iss.get());
  EXPECT_FALSE(module_is_mapped(path)) << "dlclose must really unmap the module";

  // Ours: 1 or the error we set; the rest: cancelled by signal_all.
  auto expected = [](int i) { return i % 2 == 0 ? (i % 7 == 0 ? -EIO : 1) : -ECANCELED; };
  for (int i = 0; i < kN; ++i) expect_usable_after_unload(mine[i], t0, expected(i));
  for (Fence* f : resv.fences)
    expect_usable_after_unload(f, t0, expected(static_cast<int>(f->seqno) - 1));
  for (Fence* f : mine) fence_put(f);
  // The holder drops the last references at scope exit.
}

TEST(IssuerUnload, PolledAndRingFencesOutliveTheirModules) {
  for (const char* name : {"polled", "ring"}) {
    SCOPED_TRACE(name);
    IssuerRef iss(load_or_die(module_path(name)));
    const int64_t t0 = monotonic_ns();
    std::vector<Fence*> fs;
    for (int i = 0; i < 2000; ++i) fs.push_back(make_fence(iss.get()));
    std::string err;
    if (std::string(name) == "polled") {
      FenceCallback cb;
      ASSERT_EQ(fence_add_callback(fs[10], &cb, [](Fence*, FenceCallback*) {}), 0);
      ASSERT_EQ(iss->set_param("advance", 1000, &err), 0);
      EXPECT_TRUE(fence_test_signaled_flag(fs[10]));
    }
    unload_ok(iss.get());
    EXPECT_FALSE(module_is_mapped(module_path(name)));
    for (Fence* f : fs) expect_usable_after_unload(f, t0);
    for (Fence* f : fs) fence_put(f);
  }
}

// The module's worker signals while the test unloads it, and reader threads read
// names under RCU the whole time: an ops call that began before a fence detached
// may still be running, and the grace period has to cover it.
TEST(IssuerUnload, RacesWithTheModulesOwnSignallingThread) {
  const std::string path = module_path("ring");
  for (int round = 0; round < 40; ++round) {
    IssuerRef iss(load_or_die(path));
    std::string err;
    ASSERT_EQ(iss->set_param("latency_us", round % 4 * 10, &err), 0);

    constexpr int kSlots = 64;
    std::atomic<Fence*> slots[kSlots];
    for (auto& s : slots) s.store(nullptr);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0};
    auto reader = [&] {
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (auto& s : slots) {
          rcu::ReadGuard g;
          Fence* f = s.load(std::memory_order_acquire);
          if (!f) continue;
          const char* d = fence_driver_name(f);
          const char* t = fence_timeline_name(f);
          n += static_cast<unsigned char>(d[0]) + static_cast<unsigned char>(t[0]) > 0;
        }
        reads.store(n, std::memory_order_relaxed);
      }
    };
    std::thread r1(reader);

    std::vector<Fence*> all;
    for (int i = 0; i < 300; ++i) {
      Fence* f = make_fence(iss.get());
      all.push_back(f);
      // Publish like an RCU-protected slot: readers may see it until replaced.
      Fence* old = slots[i % kSlots].exchange(fence_get(f), std::memory_order_acq_rel);
      if (old) fence_put(old);
    }
    // Let the reader get going so the unload really overlaps with reads.
    for (int spin = 0; reads.load() == 0 && spin < 100000; ++spin) std::this_thread::yield();
    unload_ok(iss.get());
    stop = true;
    r1.join();
    EXPECT_GT(reads.load(), 0u);

    for (Fence* f : all) {
      ASSERT_TRUE(fence_test_signaled_flag(f));
      const int st = fence_get_status(f);
      EXPECT_TRUE(st == 1 || st == -ECANCELED) << st;
      EXPECT_EQ(driver_name(f), "detached-driver");
      fence_put(f);
    }
    for (auto& s : slots)
      if (Fence* f = s.exchange(nullptr)) fence_put(f);
  }
  EXPECT_FALSE(module_is_mapped(path));
}

// Unload from one thread while another keeps creating fences: creation either
// succeeds (and the fence is signalled by signal_all) or fails with -ENODEV.
TEST(IssuerUnload, RacesWithFenceCreation) {
  for (int round = 0; round < 20; ++round) {
    IssuerRef iss(load_or_die(module_path("ring")));
    std::atomic<bool> go{false};
    std::vector<Fence*> made;
    int refused = 0;
    std::thread producer([&] {
      go = true;
      for (int i = 0; i < 2000; ++i) {
        Fence* f = nullptr;
        std::string err;
        const int rc = iss->create_fence({}, &f, &err);
        if (rc == 0) {
          made.push_back(f);
        } else {
          EXPECT_EQ(rc, -ENODEV) << err;
          ++refused;
        }
      }
    });
    while (!go) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(round * 20));
    unload_ok(iss.get());
    producer.join();
    for (Fence* f : made) {
      EXPECT_TRUE(fence_test_signaled_flag(f));
      fence_put(f);
    }
    EXPECT_EQ(made.size() + refused, 2000u);
  }
}

TEST(IssuerUnload, WaitsForAFenceThatPinsTheModule) {
  const std::string path = module_path("pinned");
  IssuerRef iss(load_or_die(path));
  Fence* f = make_fence(iss.get());
  EXPECT_EQ(iss->pinned_fences(), 1u);

  std::atomic<int> rc{1};
  std::string err;
  std::thread unloader([&] { rc = iss->unload(kMaxScheduleTimeout, &err); });
  // signal_all runs and cancels f; unload then waits for our reference.
  while (!fence_test_signaled_flag(f)) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(rc.load(), 1) << "unload finished while a pinned fence was alive";
  EXPECT_EQ(iss->state(), Issuer::State::kDraining);
  EXPECT_TRUE(module_is_mapped(path));
  EXPECT_EQ(fence_get_status(f), -ECANCELED);
  EXPECT_NE(f->ops, nullptr) << "release op: never detached";

  fence_put(f);  // the last reference: release runs, the module may go
  unloader.join();
  EXPECT_EQ(rc.load(), 0) << err;
  EXPECT_EQ(iss->state(), Issuer::State::kUnloaded);
  EXPECT_FALSE(module_is_mapped(path));
  EXPECT_GT(iss->last_unload_stats().drain_ns, 40'000'000);
}

TEST(IssuerUnload, TimesOutWhileAPinnedFenceStaysAlive) {
  IssuerRef iss(load_or_die(module_path("pinned")));
  Fence* f = make_fence(iss.get());
  Fence* g = make_fence(iss.get());
  Holder resv;
  resv.add(g);
  fence_put(g);
  std::string err;
  const int64_t t0 = monotonic_ns();
  EXPECT_EQ(iss->unload(50'000'000, &err), -EBUSY);
  EXPECT_GE(monotonic_ns() - t0, 50'000'000);
  EXPECT_NE(err.find("2 fences with release/wait ops still alive after 50 ms"), std::string::npos)
      << err;
  EXPECT_EQ(iss->state(), Issuer::State::kDraining);
  Fence* h = nullptr;
  EXPECT_EQ(iss->create_fence({}, &h, &err), -ENODEV);
  EXPECT_EQ(iss->unload(0, &err), -EBUSY) << "zero timeout: just a check";

  fence_put(f);
  EXPECT_EQ(iss->unload(0, &err), -EBUSY);
  EXPECT_NE(err.find("1 fence with"), std::string::npos) << err;
  resv.fences.clear();
  fence_put(g);
  EXPECT_EQ(iss->unload(0, &err), 0) << err;
  EXPECT_EQ(iss->state(), Issuer::State::kUnloaded);
}

// Load, use and unload the same module over and over, with fences in flight at
// every unload; LeakSanitizer checks nothing accumulates, /proc/self/maps that
// the module is really gone each time.
TEST(IssuerUnload, LoadUnloadLoadAThousandTimes) {
  const std::string ring = module_path("ring"), pinned = module_path("pinned");
  std::vector<Fence*> survivors;  // fences of earlier loads, still referenced
  for (int i = 0; i < 1000; ++i) {
    const bool use_pinned = i % 10 == 9;
    IssuerRef iss(load_or_die(use_pinned ? pinned : ring));
    ASSERT_TRUE(iss.get());
    std::string err;
    if (!use_pinned) {
      ASSERT_EQ(iss->set_param("latency_us", i % 50, &err), 0);
    }
    std::vector<Fence*> fs;
    for (int k = 0; k < 8; ++k) fs.push_back(make_fence(iss.get()));
    if (use_pinned) {
      for (Fence* f : fs) fence_put(f);  // pinned fences must go before unload
      fs.clear();
    }
    unload_ok(iss.get());
    for (Fence* f : fs) {
      ASSERT_TRUE(fence_test_signaled_flag(f));
      const int st = fence_get_status(f);
      ASSERT_TRUE(st == 1 || st == -ECANCELED) << st;
    }
    // Keep a few across later loads, drop the rest now.
    for (size_t k = 0; k < fs.size(); ++k) {
      if (k == 0 && survivors.size() < 200) survivors.push_back(fs[k]);
      else fence_put(fs[k]);
    }
    if (i % 100 == 0) {
      EXPECT_FALSE(module_is_mapped(ring));
      EXPECT_FALSE(module_is_mapped(pinned));
    }
  }
  EXPECT_EQ(Issuer::loaded_modules(), 0u);
  for (Fence* f : survivors) {
    EXPECT_EQ(driver_name(f), "detached-driver");
    fence_put(f);
  }
}

// Names-only issuer: strings stay valid while readers race with signalling and
// the issuer itself is dropped.
// Counters read during unload while other loads reuse the issuer's record (it
// goes back to the pool at the end of unload): a reader must only ever see this
// load's values, never the reset counters of the next load. A stress guard of
// the invariant: the window it protects (state published after the record was
// recycled) was only a few instructions wide, too narrow to hit reliably here.
TEST(IssuerUnload, CountersStayOwnWhileTheRecordIsReused) {
  constexpr int kRounds = 300;
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  // Loads and unloads continuously, so freed records are taken at once.
  std::thread churn([&] {
    while (!stop.load()) {
      IssuerRef b(load_or_die(module_path("names")));
      unload_ok(b.get());
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    IssuerRef a(load_or_die(module_path("names")));
    for (int i = 0; i < 3; ++i) fence_put(make_fence(a.get()));
    std::atomic<bool> done{false};
    std::thread reader([&] {
      while (!done.load()) {
        if (a->fences_created() != 3) wrong.fetch_add(1);
        if (a->pinned_fences() != 0) wrong.fetch_add(1);
      }
    });
    unload_ok(a.get());
    done = true;
    reader.join();
    EXPECT_EQ(a->fences_created(), 3u);
  }
  stop = true;
  churn.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(IssuerUnload, NamesIssuerStringsOutliveSignalling) {
  Issuer* raw = nullptr;
  std::string err;
  ASSERT_EQ(Issuer::create_named("js-driver", "js-timeline", &raw, &err), 0);
  std::vector<Fence*> fs;
  for (int i = 0; i < 2000; ++i) fs.push_back(make_fence(raw));
  raw->put();  // the issuer is gone; its fences are not
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      for (Fence* f : fs) {
        rcu::ReadGuard g;
        const char* d = fence_driver_name(f);
        ASSERT_TRUE(!strcmp(d, "js-driver") || !strcmp(d, "detached-driver")) << d;
      }
    }
  });
  for (Fence* f : fs) fence_signal(f);
  stop = true;
  reader.join();
  for (Fence* f : fs) fence_put(f);
}

// Pre-7.1 mode keeps ops attached; unload does not wait (it would crash later,
// see issuer_crash_test.cc). Here the fences are dropped before unload, so it is
// safe, and the record is never reused.
TEST(IssuerUnload, KeepOpsFencesStayAttached) {
  IssuerLoadOptions opts;
  opts.keep_ops = true;
  IssuerRef iss(load_or_die(module_path("names"), opts));
  EXPECT_TRUE(iss->keep_ops());
  Fence* f = make_fence(iss.get());
  EXPECT_EQ(iss->pinned_fences(), 1u);
  fence_signal(f);
  EXPECT_NE(f->ops, nullptr) << "pre-7.1: ops stay attached after signal";
  EXPECT_EQ(driver_name(f), "detached-driver") << "the 7.1 accessor still hides them";
  fence_put(f);
  EXPECT_EQ(iss->pinned_fences(), 1u) << "the module's own reference";
  unload_ok(iss.get());
}
