// dma_fence_array: signalling through member callbacks and irq_work, the
// PENDING_ERROR sentinel never leaking, first-error-wins, the polling path,
// deadlines, helpers and every failure path.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/base/irq_work.h"
#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"
#include "warn_counter.h"

using namespace dmabuf;

namespace {

const char* mock_name(Fence*) { return "mock"; }
const FenceOps kMockOps = {.get_driver_name = mock_name, .get_timeline_name = mock_name};

std::atomic<int> g_deadline_calls{0};
void count_deadline(Fence*, int64_t) { g_deadline_calls.fetch_add(1); }
const FenceOps kDeadlineOps = {
    .get_driver_name = mock_name,
    .get_timeline_name = mock_name,
    .set_deadline = count_deadline,
};

Fence* mock_fence(const FenceOps* ops = &kMockOps) {
  Fence* f = fence_alloc();
  fence_init(f, ops, nullptr, fence_context_alloc(1), 1);
  return f;
}

// An array over n fresh fences; `members` keeps the caller's own references.
FenceArray* make_array(int n, std::vector<Fence*>& members, const FenceOps* ops = &kMockOps) {
  auto** fences = static_cast<Fence**>(std::malloc(sizeof(Fence*) * n));
  members.clear();
  for (int i = 0; i < n; ++i) {
    members.push_back(mock_fence(ops));
    fences[i] = fence_get(members.back());
  }
  return fence_array_create(n, fences, fence_context_alloc(1), 7);
}

struct Flag {
  FenceCallback cb;
  std::atomic<int> runs{0};
};
void flag_cb(Fence*, FenceCallback* cb) { container_of(cb, &Flag::cb)->runs.fetch_add(1); }

}  // namespace

TEST(FenceArray, SignalsWhenAllMembersSignalAndRunsCallbacksOutsideMemberLock) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(3, m);
  ASSERT_NE(array, nullptr);
  Fence* a = &array->base;
  EXPECT_TRUE(fence_is_array(a));
  EXPECT_FALSE(fence_is_chain(a));
  EXPECT_TRUE(fence_is_container(a));
  EXPECT_FALSE(fence_test_flag(a, FENCE_FLAG_SEQNO64_BIT)) << "32-bit seqno semantics";
  EXPECT_TRUE(fence_test_flag(a, FENCE_FLAG_INLINE_LOCK_BIT));
  EXPECT_EQ(a->seqno, 7u);

  Flag flag;
  ASSERT_EQ(fence_add_callback(a, &flag.cb, flag_cb), 0);
  EXPECT_EQ(array->num_pending.load(), 3);
  fence_signal(m[0]);
  fence_signal(m[2]);
  EXPECT_FALSE(fence_test_signaled_flag(a));
  EXPECT_EQ(fence_get_status(a), 0);
  fence_signal(m[1]);
  // The irq_work ran when fence_signal released the member's lock.
  EXPECT_TRUE(fence_test_signaled_flag(a));
  EXPECT_EQ(flag.runs.load(), 1);
  EXPECT_EQ(fence_get_status(a), 1);
  EXPECT_EQ(fence_get_error(a), 0);
  EXPECT_EQ(a->error, 0) << "the sentinel is cleared before signalling";
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(a), "detached-driver");
  }
  EXPECT_EQ(rcu::dereference(a->ops), &fence_array_ops) << "release op: never detached";
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, PendingErrorSentinelNeverShows) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(2, m);
  Fence* a = &array->base;
  EXPECT_EQ(a->error, 1) << "internal sentinel while pending (kernel PENDING_ERROR)";
  EXPECT_EQ(fence_get_error(a), 0);
  EXPECT_EQ(fence_get_status(a), 0);
  fence_enable_sw_signaling(a);
  fence_signal(m[0]);
  EXPECT_EQ(fence_get_error(a), 0);
  EXPECT_EQ(fence_get_status(a), 0);
  // Non-arrays report the stored value as is.
  Fence* plain = mock_fence();
  fence_set_error(plain, -EIO);
  EXPECT_EQ(fence_get_error(plain), -EIO);
  fence_signal(plain);
  fence_put(plain);
  fence_signal(m[1]);
  EXPECT_EQ(fence_get_error(a), 0);
  EXPECT_EQ(fence_get_status(a), 1);
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, FirstMemberErrorWins) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(3, m);
  Fence* a = &array->base;
  fence_enable_sw_signaling(a);
  fence_signal(m[0]);
  fence_set_error(m[1], -EIO);
  fence_signal(m[1]);
  EXPECT_EQ(fence_get_error(a), -EIO) << "recorded while pending";
  EXPECT_EQ(fence_get_status(a), 0) << "but still pending";
  fence_set_error(m[2], -ETIME);
  fence_signal(m[2]);
  EXPECT_EQ(fence_get_status(a), -EIO);
  EXPECT_EQ(fence_get_error(a), -EIO);
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, AlreadySignalledMembersAtEnableTime) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(2, m);
  Fence* a = &array->base;
  fence_set_error(m[0], -ECANCELED);
  fence_signal(m[0]);
  fence_signal(m[1]);
  Flag flag;
  // Every member done: enable_signaling returns false and the core signals now.
  EXPECT_EQ(fence_add_callback(a, &flag.cb, flag_cb), -ENOENT);
  EXPECT_TRUE(fence_test_signaled_flag(a));
  EXPECT_EQ(fence_get_status(a), -ECANCELED);
  EXPECT_EQ(a->refcount.load(), 1u) << "no callback reference left behind";
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, PollingPathSignalsWithoutErrors) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(2, m);
  Fence* a = &array->base;
  EXPECT_FALSE(fence_is_signaled(a));
  fence_set_error(m[0], -EIO);
  fence_signal(m[0]);
  EXPECT_FALSE(fence_is_signaled(a));
  fence_signal(m[1]);
  EXPECT_TRUE(fence_is_signaled(a)) << "polled: every member signalled";
  EXPECT_EQ(fence_get_status(a), 1) << "the polling path does not collect member errors";
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, WaitFromAnotherThread) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(16, m);
  Fence* a = &array->base;
  std::atomic<long> r{-1};
  std::thread waiter([&] { r = fence_wait(a, false); });
  for (Fence* f : m) fence_signal(f);
  waiter.join();
  EXPECT_EQ(r.load(), 0);
  EXPECT_TRUE(fence_test_signaled_flag(a));
  fence_put(a);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, ConcurrentMemberSignalsSignalExactlyOnce) {
  for (int round = 0; round < 50; ++round) {
    std::vector<Fence*> m;
    FenceArray* array = make_array(64, m);
    Fence* a = &array->base;
    Flag flag;
    ASSERT_EQ(fence_add_callback(a, &flag.cb, flag_cb), 0);
    std::thread t([&] {
      for (size_t i = 0; i < m.size(); i += 2) fence_signal(m[i]);
    });
    for (size_t i = 1; i < m.size(); i += 2) fence_signal(m[i]);
    t.join();
    EXPECT_EQ(flag.runs.load(), 1);
    EXPECT_TRUE(fence_test_signaled_flag(a));
    fence_put(a);
    for (Fence* f : m) fence_put(f);
  }
}

TEST(FenceArray, CallbackOnArrayMayTakeMemberLock) {
  // The reason for irq_work: a callback on the array runs with no member lock
  // held, so it may query members (which takes their locks) without deadlock.
  std::vector<Fence*> m;
  FenceArray* array = make_array(2, m);
  struct Probe {
    FenceCallback cb;
    FenceArray* array;
    int status_sum = 0;
  } probe;
  probe.array = array;
  ASSERT_EQ(fence_add_callback(&array->base, &probe.cb,
                               [](Fence*, FenceCallback* cb) {
                                 auto* p = container_of(cb, &Probe::cb);
                                 for (unsigned i = 0; i < p->array->num_fences; ++i)
                                   p->status_sum += fence_get_status(p->array->fences[i]);
                               }),
            0);
  fence_signal(m[0]);
  fence_signal(m[1]);
  EXPECT_EQ(probe.status_sum, 2);
  fence_put(&array->base);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, MemberSignalledUnderRawLockGoesThroughWorker) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(1, m);
  fence_enable_sw_signaling(&array->base);
  fence_spinlock(m[0])->lock();  // not the irqsave discipline: depth stays 0
  fence_signal_locked(m[0]);
  fence_spinlock(m[0])->unlock();
  EXPECT_GT(fence_wait_timeout(&array->base, false, 5'000'000'000LL), 0);
  irq_work_barrier();
  fence_put(&array->base);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, SetDeadlineForwardedToMembers) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(4, m, &kDeadlineOps);
  g_deadline_calls = 0;
  fence_set_deadline(&array->base, 1000);
  EXPECT_EQ(g_deadline_calls.load(), 4);
  fence_signal(m[0]);
  g_deadline_calls = 0;
  fence_set_deadline(&array->base, 1000);
  EXPECT_EQ(g_deadline_calls.load(), 3) << "signalled members take no deadline";
  for (Fence* f : m) fence_signal(f);
  fence_put(&array->base);
  for (Fence* f : m) fence_put(f);
}

TEST(FenceArray, HelpersFirstNextMatchContextForEach) {
  std::vector<Fence*> m;
  FenceArray* array = make_array(3, m);
  Fence* a = &array->base;
  EXPECT_EQ(fence_array_first(nullptr), nullptr);
  EXPECT_EQ(fence_array_first(m[0]), m[0]) << "non-array: itself";
  EXPECT_EQ(fence_array_first(a), m[0]);
  EXPECT_EQ(fence_array_next(a, 2), m[2]);
  EXPECT_EQ(fence_array_next(a, 3), nullptr);
  EXPECT_EQ(fence_array_next(m[0], 1), nullptr);
  EXPECT_EQ(to_fence_array(m[0]), nullptr);
  EXPECT_EQ(to_fence_array(a), array);

  std::vector<Fence*> seen;
  Fence* f;
  unsigned i;
  fence_array_for_each(f, i, a) seen.push_back(f);
  EXPECT_EQ(seen, m);

  EXPECT_TRUE(fence_match_context(m[1], m[1]->context));
  EXPECT_FALSE(fence_match_context(a, m[0]->context)) << "members on different contexts";
  auto** same = static_cast<Fence**>(std::malloc(sizeof(Fence*) * 2));
  same[0] = fence_alloc();
  same[1] = fence_alloc();
  fence_init(same[0], &kMockOps, nullptr, 42, 1);
  fence_init(same[1], &kMockOps, nullptr, 42, 2);
  FenceArray* s = fence_array_create(2, same, 43, 1);
  EXPECT_TRUE(fence_match_context(&s->base, 42));
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(&s->base), "dma_fence_array");
    EXPECT_STREQ(fence_timeline_name(&s->base), "unbound");
  }
  fence_signal(same[0]);
  fence_signal(same[1]);
  fence_put(&s->base);
  for (Fence* x : m) fence_signal(x);
  fence_put(a);
  for (Fence* x : m) fence_put(x);
}

TEST(FenceArray, InvalidCreateAndContainerMembersWarn) {
  WarnCounter w;
  EXPECT_EQ(fence_array_create(-1, nullptr, 1, 1), nullptr);
  EXPECT_EQ(fence_array_create(2, nullptr, 1, 1), nullptr);
  EXPECT_EQ(fence_array_alloc(-5), nullptr);
  EXPECT_EQ(w.count(), 2);

  // An empty array warns; polling says pending, enabled it says done (kernel).
  FenceArray* empty = fence_array_create(0, static_cast<Fence**>(std::malloc(1)), 1, 1);
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(w.count(), 3);
  EXPECT_FALSE(fence_is_signaled(&empty->base));
  fence_enable_sw_signaling(&empty->base);
  EXPECT_TRUE(fence_is_signaled(&empty->base));
  EXPECT_EQ(fence_array_first(&empty->base), nullptr);
  fence_put(&empty->base);

  // Arrays must be flat.
  std::vector<Fence*> m;
  FenceArray* inner = make_array(1, m);
  auto** outer_members = static_cast<Fence**>(std::malloc(sizeof(Fence*)));
  outer_members[0] = &inner->base;
  FenceArray* outer = fence_array_create(1, outer_members, 1, 1);
  EXPECT_EQ(w.count(), 4);
  fence_signal(m[0]);
  fence_put(&outer->base);
  fence_put(m[0]);
}
