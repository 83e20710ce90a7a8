// The kernel's `dma-buf-resv` suite (st-dma-resv.c, kunit version):
// test_sanitycheck plus the four parameterised cases for each usage, and then
// dma_resv behaviour the suite leaves out (replacement rules, lazy release,
// reserve growth and failures, replace/copy/singleton/wait/deadline/describe).
//
// alloc_fence(): a bare malloc'd fence with name-only ops on one shared static
// external spinlock, context 0, seqno 0 -- as the kernel's helper.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"
#include "core/resv/resv.h"
#include "warn_counter.h"

using namespace dmabuf;

namespace {

const char* selftest_name(Fence*) { return "selftest"; }
const FenceOps kSelftestOps = {
    .get_driver_name = selftest_name,
    .get_timeline_name = selftest_name,
};
SpinLock g_fence_lock;

Fence* alloc_fence() {
  Fence* f = fence_alloc();
  if (!f) return nullptr;
  fence_init(f, &kSelftestOps, &g_fence_lock, 0, 0);
  return f;
}

Fence* fence_on(uint64_t context, uint64_t seqno) {
  Fence* f = fence_alloc();
  fence_init(f, &kSelftestOps, nullptr, context, seqno);
  return f;
}

// Locked walk with every usage, as (fence, usage) pairs.
std::vector<std::pair<Fence*, ResvUsage>> locked_entries(Resv* obj) {
  std::vector<std::pair<Fence*, ResvUsage>> out;
  ResvIter cursor;
  Fence* f;
  resv_for_each_fence(&cursor, obj, RESV_USAGE_BOOKKEEP, f) out.emplace_back(f, resv_iter_usage(&cursor));
  return out;
}

}  // namespace

TEST(DmaBufResv, test_sanitycheck) {
  Fence* f = alloc_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  fence_signal(f);
  fence_put(f);

  Resv resv;
  resv_init(&resv);
  int r = resv_lock(&resv, nullptr);
  EXPECT_EQ(r, 0) << "Resv locking failed";
  if (r == 0) resv_unlock(&resv);
  resv_fini(&resv);
}

class DmaBufResvUsage : public ::testing::TestWithParam<ResvUsage> {};

TEST_P(DmaBufResvUsage, test_signaling) {
  const ResvUsage usage = GetParam();
  Fence* f = alloc_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0) << "Resv locking failed";
  ASSERT_EQ(resv_reserve_fences(&resv, 1), 0) << "Resv shared slot allocation failed";
  resv_add_fence(&resv, f, usage);
  EXPECT_FALSE(resv_test_signaled(&resv, usage)) << "Resv unexpectedly signaled";
  fence_signal(f);
  EXPECT_TRUE(resv_test_signaled(&resv, usage)) << "Resv not reporting signaled";
  resv_unlock(&resv);
  resv_fini(&resv);
  fence_put(f);
}

TEST_P(DmaBufResvUsage, test_for_each) {
  const ResvUsage usage = GetParam();
  Fence* f = alloc_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&resv, 1), 0);
  resv_add_fence(&resv, f, usage);

  int r = -ENOENT;
  ResvIter cursor;
  Fence* fence;
  resv_for_each_fence(&cursor, &resv, usage, fence) {
    if (!r) {
      ADD_FAILURE() << "More than one fence found";
      r = -EINVAL;
      break;
    }
    if (f != fence) {
      ADD_FAILURE() << "Unexpected fence";
      r = -EINVAL;
      break;
    }
    if (resv_iter_usage(&cursor) != usage) {
      ADD_FAILURE() << "Unexpected fence usage";
      r = -EINVAL;
      break;
    }
    r = 0;
  }
  EXPECT_EQ(r, 0) << "No fence found";
  fence_signal(f);
  resv_unlock(&resv);
  resv_fini(&resv);
  fence_put(f);
}

TEST_P(DmaBufResvUsage, test_for_each_unlocked) {
  const ResvUsage usage = GetParam();
  Fence* f = alloc_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&resv, 1), 0);
  resv_add_fence(&resv, f, usage);
  resv_unlock(&resv);

  int r = -EINVAL;
  ResvIter cursor;
  Fence* fence;
  resv_iter_begin(&cursor, &resv, usage);
  resv_for_each_fence_unlocked(&cursor, fence) {
    if (!r) {
      ADD_FAILURE() << "More than one fence found";
      r = -EINVAL;
      break;
    }
    if (!resv_iter_is_restarted(&cursor)) {
      ADD_FAILURE() << "No restart flag";
      break;
    }
    if (f != fence) {
      ADD_FAILURE() << "Unexpected fence";
      r = -EINVAL;
      break;
    }
    if (resv_iter_usage(&cursor) != usage) {
      ADD_FAILURE() << "Unexpected fence usage";
      r = -EINVAL;
      break;
    }
    // r is the state: the first visit corrupts the cursor to force a restart.
    if (r == -EINVAL) {
      r = -EBUSY;
      cursor.fences = reinterpret_cast<ResvList*>(~uintptr_t{0});
    } else if (r == -EBUSY) {
      r = 0;
    }
  }
  EXPECT_EQ(r, 0);
  resv_iter_end(&cursor);
  fence_signal(f);
  resv_fini(&resv);
  fence_put(f);
}

TEST_P(DmaBufResvUsage, test_get_fences) {
  const ResvUsage usage = GetParam();
  Fence* f = alloc_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&resv, 1), 0);
  resv_add_fence(&resv, f, usage);
  resv_unlock(&resv);

  unsigned i = 0;
  Fence** fences = nullptr;
  EXPECT_EQ(resv_get_fences(&resv, usage, &i, &fences), 0) << "get_fences failed";
  ASSERT_EQ(i, 1u) << "get_fences returned unexpected fence";
  EXPECT_EQ(fences[0], f) << "get_fences returned unexpected fence";
  fence_signal(f);
  while (i--) fence_put(fences[i]);
  std::free(fences);
  resv_fini(&resv);
  fence_put(f);
}

INSTANTIATE_TEST_SUITE_P(DmaBufResv, DmaBufResvUsage,
                         ::testing::Values(RESV_USAGE_KERNEL, RESV_USAGE_WRITE, RESV_USAGE_READ,
                                           RESV_USAGE_BOOKKEEP),
                         [](const ::testing::TestParamInfo<ResvUsage>& info) {
                           return std::string(resv_usage_name(info.param));
                         });

// --- beyond the kernel suite ---------------------------------------------------

TEST(Resv, QueriesReturnThisUsageAndStronger) {
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&resv, 4), 0);
  Fence* f[4];
  for (unsigned u = 0; u < 4; ++u) {
    f[u] = fence_on(fence_context_alloc(1), 1);
    resv_add_fence(&resv, f[u], static_cast<ResvUsage>(u));
  }
  resv_unlock(&resv);
  for (unsigned q = 0; q < 4; ++q) {
    unsigned n;
    Fence** got;
    ASSERT_EQ(resv_get_fences(&resv, static_cast<ResvUsage>(q), &n, &got), 0);
    EXPECT_EQ(n, q + 1) << "usage " << resv_usage_name(static_cast<ResvUsage>(q));
    for (unsigned i = 0; i < n; ++i) {
      EXPECT_EQ(got[i], f[i]);
      fence_put(got[i]);
    }
    std::free(got);
  }
  EXPECT_EQ(resv_usage_rw(true), RESV_USAGE_READ);
  EXPECT_EQ(resv_usage_rw(false), RESV_USAGE_WRITE);
  for (Fence* x : f) fence_signal(x);
  resv_fini(&resv);
  for (Fence* x : f) fence_put(x);
}

TEST(Resv, AddFenceReplacementRules) {
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&resv, 8), 0);
  const uint64_t ctx = fence_context_alloc(1);
  Fence* r1 = fence_on(ctx, 1);
  Fence* r2 = fence_on(ctx, 2);
  Fence* w3 = fence_on(ctx, 3);
  Fence* k4 = fence_on(ctx, 4);
  Fence* old = fence_on(ctx, 0);

  resv_add_fence(&resv, r1, RESV_USAGE_READ);
  resv_add_fence(&resv, r2, RESV_USAGE_READ);  // same context, same usage, later: replaces
  EXPECT_EQ(locked_entries(&resv), (std::vector<std::pair<Fence*, ResvUsage>>{{r2, RESV_USAGE_READ}}));
  EXPECT_EQ(r1->refcount.load(), 1u) << "replaced entry was put";

  resv_add_fence(&resv, w3, RESV_USAGE_WRITE);  // stronger usage: promotes in place
  EXPECT_EQ(locked_entries(&resv), (std::vector<std::pair<Fence*, ResvUsage>>{{w3, RESV_USAGE_WRITE}}));

  resv_add_fence(&resv, k4, RESV_USAGE_BOOKKEEP);  // weaker usage: never degrades, appends
  EXPECT_EQ(locked_entries(&resv),
            (std::vector<std::pair<Fence*, ResvUsage>>{{w3, RESV_USAGE_WRITE}, {k4, RESV_USAGE_BOOKKEEP}}));

  resv_add_fence(&resv, old, RESV_USAGE_KERNEL);  // not later: appended, nothing replaced
  EXPECT_EQ(locked_entries(&resv).size(), 3u);

  // A signalled entry is recycled by the next add, whatever its context.
  fence_signal(w3);
  Fence* other = fence_on(fence_context_alloc(1), 1);
  resv_add_fence(&resv, other, RESV_USAGE_READ);
  auto e = locked_entries(&resv);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].first, other);

  // Lazy release: a signalled fence stays referenced until something drops it.
  fence_signal(k4);
  EXPECT_EQ(k4->refcount.load(), 2u);
  EXPECT_EQ(locked_entries(&resv).size(), 3u) << "the locked walk includes signalled entries";

  // Replace every entry of a context.
  Fence* stub = fence_get_stub();
  resv_replace_fences(&resv, ctx, stub, RESV_USAGE_BOOKKEEP);
  for (auto& [f, u] : locked_entries(&resv)) {
    if (f != other) {
      EXPECT_EQ(f, stub);
      EXPECT_EQ(u, RESV_USAGE_BOOKKEEP);
    }
  }
  EXPECT_EQ(k4->refcount.load(), 1u);
  resv_unlock(&resv);
  for (Fence* x : {r1, r2, w3, k4, old, other}) fence_signal(x);
  resv_fini(&resv);
  for (Fence* x : {r1, r2, w3, k4, old, other, stub}) fence_put(x);
}

TEST(Resv, ReserveGrowsDropsSignalledAndFails) {
  WarnCounter w;
  Resv resv;
  resv_init(&resv);
  ASSERT_EQ(resv_lock(&resv, nullptr), 0);
  EXPECT_EQ(resv_reserve_fences(&resv, 0), -EINVAL);
  EXPECT_EQ(w.count(), 1);
  EXPECT_EQ(resv_reserve_fences(&resv, 1), 0);
  ResvList* first = resv.fences.load();
  ASSERT_NE(first, nullptr);
  EXPECT_GE(first->max_fences, 4u) << "at least 4, rounded up to the allocator bucket";
  EXPECT_EQ(resv_reserve_fences(&resv, 1), 0);
  EXPECT_EQ(resv.fences.load(), first) << "room left: no reallocation";
  const unsigned first_max = first->max_fences;  // `first` is freed by the regrow

  std::vector<Fence*> fs;
  for (unsigned i = 0; i < first_max; ++i) {
    fs.push_back(fence_on(fence_context_alloc(1), 1));
    resv_add_fence(&resv, fs.back(), RESV_USAGE_READ);
  }
  fence_signal(fs[0]);
  fence_signal(fs[1]);
  EXPECT_EQ(fs[0]->refcount.load(), 2u);
  EXPECT_EQ(resv_reserve_fences(&resv, 1), 0);
  ResvList* grown = resv.fences.load();
  EXPECT_NE(grown, first);
  EXPECT_GE(grown->max_fences, 2 * first_max);
  EXPECT_EQ(grown->num_fences.load(), first_max - 2) << "signalled fences dropped";
  EXPECT_EQ(fs[0]->refcount.load(), 1u);

  EXPECT_EQ(resv_reserve_fences(&resv, 1u << 30), -ENOMEM);
  EXPECT_EQ(resv.fences.load(), grown) << "failure leaves the list alone";
  resv_unlock(&resv);

  // Adding without a reservation warns and reserves by itself.
  Resv other;
  resv_init(&other);
  resv_lock(&other, nullptr);
  w.reset();
  Fence* f = fence_on(fence_context_alloc(1), 1);
  resv_add_fence(&other, f, RESV_USAGE_WRITE);
  EXPECT_EQ(w.count(), 1);
  EXPECT_EQ(locked_entries(&other).size(), 1u);
  // Locked helpers without the lock warn (lockdep would).
  resv_unlock(&other);
  resv_add_fence(&other, f, RESV_USAGE_WRITE);
  EXPECT_GE(w.count(), 2);
  // Containers warn.
  resv_lock(&other, nullptr);
  resv_reserve_fences(&other, 1);
  auto** members = static_cast<Fence**>(std::malloc(sizeof(Fence*)));
  members[0] = fence_get(f);
  FenceArray* array = fence_array_create(1, members, fence_context_alloc(1), 1);
  const int before = w.count();
  resv_add_fence(&other, &array->base, RESV_USAGE_READ);
  EXPECT_EQ(w.count(), before + 1);
  resv_replace_fences(&other, 1, nullptr, RESV_USAGE_READ);
  EXPECT_EQ(w.count(), before + 2);
  resv_unlock(&other);
  fence_signal(f);
  resv_fini(&other);
  fence_put(&array->base);
  fence_put(f);

  for (Fence* x : fs) fence_signal(x);
  resv_fini(&resv);
  for (Fence* x : fs) fence_put(x);
}

TEST(Resv, UnlockedIterationSkipsSignalledAndHoldsReference) {
  Resv resv;
  resv_init(&resv);
  resv_lock(&resv, nullptr);
  resv_reserve_fences(&resv, 3);
  Fence* a = fence_on(fence_context_alloc(1), 1);
  Fence* b = fence_on(fence_context_alloc(1), 1);
  Fence* c = fence_on(fence_context_alloc(1), 1);
  resv_add_fence(&resv, a, RESV_USAGE_WRITE);
  resv_add_fence(&resv, b, RESV_USAGE_READ);
  resv_add_fence(&resv, c, RESV_USAGE_BOOKKEEP);
  resv_unlock(&resv);
  fence_signal(a);

  ResvIter cursor;
  Fence* f;
  std::vector<Fence*> seen;
  resv_iter_begin(&cursor, &resv, RESV_USAGE_READ);
  resv_for_each_fence_unlocked(&cursor, f) {
    EXPECT_EQ(f->refcount.load(), 3u) << "caller + resv + cursor";
    seen.push_back(f);
  }
  resv_iter_end(&cursor);
  EXPECT_EQ(seen, (std::vector<Fence*>{b}));
  EXPECT_FALSE(resv_test_signaled(&resv, RESV_USAGE_BOOKKEEP));
  EXPECT_FALSE(resv_test_signaled(&resv, RESV_USAGE_READ));
  EXPECT_TRUE(resv_test_signaled(&resv, RESV_USAGE_WRITE));
  EXPECT_TRUE(resv_test_signaled(&resv, RESV_USAGE_KERNEL));

  Resv empty;
  resv_init(&empty);
  EXPECT_TRUE(resv_test_signaled(&empty, RESV_USAGE_BOOKKEEP));
  unsigned n = 7;
  Fence** none = reinterpret_cast<Fence**>(1);
  EXPECT_EQ(resv_get_fences(&empty, RESV_USAGE_BOOKKEEP, &n, &none), 0);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(none, nullptr);
  resv_fini(&empty);

  for (Fence* x : {b, c}) fence_signal(x);
  resv_fini(&resv);
  for (Fence* x : {a, b, c}) fence_put(x);
}

TEST(Resv, UnlockedIterationRestartsWhileWritersReplaceTheList) {
  // A writer keeps adding (and reallocating); readers must only ever see live
  // fences and restart cleanly.
  Resv resv;
  resv_init(&resv);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      resv_lock(&resv, nullptr);
      resv_reserve_fences(&resv, 1);
      Fence* f = fence_on(fence_context_alloc(1), 1);
      resv_add_fence(&resv, f, static_cast<ResvUsage>(i & 3));
      resv_unlock(&resv);
      if (i % 3 == 0) fence_signal(f);
      fence_put(f);
    }
    stop = true;
  });
  uint64_t restarts = 0, seen = 0;
  while (!stop.load()) {
    ResvIter cursor;
    Fence* f;
    resv_iter_begin(&cursor, &resv, RESV_USAGE_BOOKKEEP);
    resv_for_each_fence_unlocked(&cursor, f) {
      if (resv_iter_is_restarted(&cursor)) ++restarts;
      EXPECT_GT(f->refcount.load(), 0u);
      ++seen;
    }
    resv_iter_end(&cursor);
  }
  writer.join();
  printf("unlocked walks: %llu fences seen, %llu (re)starts\n",
         static_cast<unsigned long long>(seen), static_cast<unsigned long long>(restarts));
  resv_lock(&resv, nullptr);
  ResvIter cursor;
  Fence* f;
  std::vector<Fence*> pending;
  resv_for_each_fence(&cursor, &resv, RESV_USAGE_BOOKKEEP, f) pending.push_back(f);
  for (Fence* p : pending) fence_signal(p);
  resv_unlock(&resv);
  resv_fini(&resv);
}

TEST(Resv, CopySingletonWaitDeadlineDescribe) {
  Resv src, dst;
  resv_init(&src);
  resv_init(&dst);
  resv_lock(&src, nullptr);
  resv_reserve_fences(&src, 3);
  Fence* a = fence_on(fence_context_alloc(1), 1);
  Fence* b = fence_on(fence_context_alloc(1), 1);
  Fence* done = fence_on(fence_context_alloc(1), 1);
  resv_add_fence(&src, a, RESV_USAGE_WRITE);
  resv_add_fence(&src, b, RESV_USAGE_READ);
  resv_add_fence(&src, done, RESV_USAGE_KERNEL);
  fence_signal(done);
  std::string d = resv_describe(&src);
  EXPECT_NE(d.find("\twrite fence:"), std::string::npos) << d;
  EXPECT_NE(d.find("\tread fence:"), std::string::npos) << d;
  EXPECT_NE(d.find("\tkernel fence:"), std::string::npos) << d;
  EXPECT_NE(d.find("selftest selftest unsignalled"), std::string::npos) << d;
  resv_unlock(&src);

  // copy: a snapshot of the pending fences, all usages.
  resv_lock(&dst, nullptr);
  EXPECT_EQ(resv_copy_fences(&dst, &src), 0);
  auto e = locked_entries(&dst);
  EXPECT_EQ(e, (std::vector<std::pair<Fence*, ResvUsage>>{{a, RESV_USAGE_WRITE}, {b, RESV_USAGE_READ}}));
  resv_unlock(&dst);

  // singleton: none / one / array.
  Fence* s = reinterpret_cast<Fence*>(1);
  EXPECT_EQ(resv_get_singleton(&src, RESV_USAGE_KERNEL, &s), 0);
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(resv_get_singleton(&src, RESV_USAGE_WRITE, &s), 0);
  EXPECT_EQ(s, a);
  fence_put(s);
  EXPECT_EQ(resv_get_singleton(&src, RESV_USAGE_READ, &s), 0);
  ASSERT_TRUE(fence_is_array(s));
  EXPECT_EQ(s->seqno, 1u);
  EXPECT_EQ(to_fence_array(s)->num_fences, 2u);

  // wait: 0 for a zero timeout with something pending, > 0 once all signalled,
  // 1 for a zero timeout when nothing is pending.
  EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_READ, false, 0), 0);
  EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_READ, false, 1'000'000), 0);
  EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_KERNEL, false, 0), 1);
  EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_KERNEL, false, 5000), 5000);
  {
    WarnCounter w;
    EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_KERNEL, false, -1), -EINVAL);
    EXPECT_EQ(w.count(), 1);
  }
  std::thread signaller([&] {
    fence_signal(b);
    fence_signal(a);
  });
  EXPECT_GT(resv_wait_timeout(&src, RESV_USAGE_READ, true, kMaxScheduleTimeout), 0);
  signaller.join();
  EXPECT_EQ(resv_wait_timeout(&src, RESV_USAGE_BOOKKEEP, false, 0), 1);
  EXPECT_TRUE(fence_is_signaled(s)) << "the singleton array followed its members";
  fence_put(s);
  resv_set_deadline(&src, RESV_USAGE_BOOKKEEP, 1);  // nothing pending: a no-op

  resv_fini(&dst);
  resv_fini(&src);
  for (Fence* x : {a, b, done}) fence_put(x);
}

TEST(Resv, LockingWithContextsAndErrors) {
  Resv resv;
  resv_init(&resv);
  WwAcquireCtx ctx;
  ww_acquire_init(&ctx, &reservation_ww_class);
  EXPECT_FALSE(resv_is_locked(&resv));
  EXPECT_EQ(resv_lock(&resv, &ctx), 0);
  EXPECT_TRUE(resv_is_locked(&resv));
  EXPECT_TRUE(resv_held(&resv));
  EXPECT_EQ(resv_locking_ctx(&resv), &ctx);
  EXPECT_EQ(resv_lock(&resv, &ctx), -EALREADY);
  EXPECT_EQ(resv_lock_interruptible(&resv, &ctx), -EALREADY);
  EXPECT_FALSE(resv_trylock(&resv));
  std::thread other([&] { EXPECT_FALSE(resv_held(&resv)) << "held means held by this thread"; });
  other.join();
  resv_unlock(&resv);
  EXPECT_FALSE(resv_held(&resv));
  EXPECT_TRUE(resv_trylock(&resv));
  EXPECT_EQ(resv_locking_ctx(&resv), nullptr);
  resv_unlock(&resv);
  EXPECT_EQ(resv_lock_slow_interruptible(&resv, &ctx), 0);
  resv_unlock(&resv);
  ww_acquire_fini(&ctx);
  resv_fini(&resv);
}
