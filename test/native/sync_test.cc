// The kernel's userspace sync selftest (tools/testing/selftests/sync), every
// case of sync_test.c, run against the in-process sw_sync and sync_file; then
// sync_file and sw_sync details (ioctl errors, info names, poll, deadlines,
// close) the selftest does not check.
//
// The helpers mirror the selftest's sync.c with objects where it has fds:
// sync_wait() is poll(2) on the sync_file, sync_merge() SYNC_IOC_MERGE, and
// sync_fence_count_with_status() reads SYNC_IOC_FILE_INFO.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "core/fence/array.h"
#include "core/fence/fence.h"
#include "core/sync/sw_sync.h"
#include "core/sync/sync_file.h"
#include "warn_counter.h"

using namespace dmabuf;

namespace {

// The thread-handoff stress cases keep the selftest's iteration counts, except
// under the sanitizers, where every handoff costs ~10x: there they run 1/16.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kStressShift = 4;
#else
constexpr int kStressShift = 0;
#endif

constexpr int FENCE_STATUS_ERROR = -1;
constexpr int FENCE_STATUS_ACTIVE = 0;
constexpr int FENCE_STATUS_SIGNALED = 1;

SyncTimeline* sw_sync_timeline_create() { return sw_sync_debugfs_open(nullptr); }
bool sw_sync_timeline_is_valid(SyncTimeline* tl) { return tl != nullptr; }
void sw_sync_timeline_destroy(SyncTimeline* tl) { sw_sync_debugfs_release(tl); }

int sw_sync_timeline_inc(SyncTimeline* tl, unsigned count) {
  uint32_t arg = count;
  return static_cast<int>(sw_sync_ioctl(tl, SW_SYNC_IOC_INC, &arg));
}

SyncFile* sw_sync_fence_create(SyncTimeline* tl, const char* name, unsigned value) {
  SwSyncCreateFenceData data = {};
  data.value = value;
  strncpy(data.name, name, sizeof data.name - 1);
  return sw_sync_ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &data) < 0 ? nullptr : data.fence;
}
bool sw_sync_fence_is_valid(SyncFile* sf) { return sf != nullptr; }
void sw_sync_fence_destroy(SyncFile* sf) { sync_file_put(sf); }

SyncFile* sync_merge(const char* name, SyncFile* a, SyncFile* b) {
  SyncMergeData data = {};
  data.fd2 = b;
  strncpy(data.name, name, sizeof data.name - 1);
  return sync_file_ioctl(a, SYNC_IOC_MERGE, &data) < 0 ? nullptr : data.fence;
}

// poll(2) with a millisecond timeout (-1: forever): 1 ready, 0 timed out.
int sync_wait(SyncFile* sf, int timeout_ms) {
  return sync_file_wait(sf, timeout_ms < 0 ? -1 : static_cast<int64_t>(timeout_ms) * 1000000);
}

std::vector<SyncFenceInfo> sync_file_info(SyncFile* sf, SyncFileInfo* out = nullptr) {
  SyncFileInfo info = {};
  if (sync_file_ioctl(sf, SYNC_IOC_FILE_INFO, &info) < 0) return {};
  std::vector<SyncFenceInfo> fences(info.num_fences);
  if (info.num_fences) {
    info.sync_fence_info = fences.data();
    if (sync_file_ioctl(sf, SYNC_IOC_FILE_INFO, &info) < 0) return {};
    fences.resize(info.num_fences);
  }
  if (out) *out = info;
  return fences;
}

int sync_fence_size(SyncFile* sf) { return static_cast<int>(sync_file_info(sf).size()); }

int sync_fence_count_with_status(SyncFile* sf, int status) {
  int count = 0;
  for (auto& fi : sync_file_info(sf))
    if (fi.status == status) ++count;
  return count;
}

}  // namespace

// --- sync_alloc.c ----------------------------------------------------------------

TEST(SyncTest, test_alloc_timeline) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_TRUE(sw_sync_timeline_is_valid(timeline)) << "Failure allocating timeline";
  sw_sync_timeline_destroy(timeline);
}

TEST(SyncTest, test_alloc_fence) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_TRUE(sw_sync_timeline_is_valid(timeline)) << "Failure allocating timeline";
  SyncFile* fence = sw_sync_fence_create(timeline, "allocFence", 1);
  ASSERT_TRUE(sw_sync_fence_is_valid(fence)) << "Failure allocating fence";
  sw_sync_fence_destroy(fence);
  sw_sync_timeline_destroy(timeline);
}

TEST(SyncTest, test_alloc_fence_negative) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_NE(timeline, nullptr) << "Failure allocating timeline";
  // The selftest passes fd -1; here: no timeline object.
  SwSyncCreateFenceData data = {};
  data.value = 1;
  EXPECT_EQ(sw_sync_ioctl(nullptr, SW_SYNC_IOC_CREATE_FENCE, &data), -EBADF)
      << "Success allocating negative fence";
  EXPECT_EQ(data.fence, nullptr);
  sw_sync_fence_destroy(nullptr);  // destroying the invalid fence is a no-op
  sw_sync_timeline_destroy(timeline);
}

// --- sync_fence.c ----------------------------------------------------------------

TEST(SyncTest, test_fence_one_timeline_wait) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_TRUE(sw_sync_timeline_is_valid(timeline));
  SyncFile* fence = sw_sync_fence_create(timeline, "allocFence", 5);
  ASSERT_TRUE(sw_sync_fence_is_valid(fence));

  EXPECT_EQ(sync_wait(fence, 0), 0) << "Failure waiting on fence until timeout";
  EXPECT_EQ(sw_sync_timeline_inc(timeline, 1), 0) << "Failure advancing timeline";
  EXPECT_EQ(sync_wait(fence, 0), 0) << "Failure waiting on fence until timeout";
  EXPECT_EQ(sw_sync_timeline_inc(timeline, 4), 0) << "Failure signaling the fence";
  EXPECT_GT(sync_wait(fence, 0), 0) << "Failure waiting on fence";
  EXPECT_EQ(sw_sync_timeline_inc(timeline, 10), 0) << "Failure going further";
  EXPECT_GT(sync_wait(fence, 0), 0) << "Failure waiting ahead";

  sw_sync_fence_destroy(fence);
  sw_sync_timeline_destroy(timeline);
}

TEST(SyncTest, test_fence_one_timeline_merge) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  SyncFile* a = sw_sync_fence_create(timeline, "allocFence", 1);
  SyncFile* b = sw_sync_fence_create(timeline, "allocFence", 2);
  SyncFile* c = sw_sync_fence_create(timeline, "allocFence", 3);
  ASSERT_TRUE(a && b && c) << "Failure allocating fences";

  SyncFile* d1 = sync_merge("mergeFence", b, a);
  SyncFile* d = sync_merge("mergeFence", c, d1);
  ASSERT_TRUE(sw_sync_fence_is_valid(d)) << "Failure merging fences";

  // All fences have one active point, even d (one timeline: the latest point).
  EXPECT_EQ(sync_fence_count_with_status(a, FENCE_STATUS_ACTIVE), 1) << "a has too many active fences!";
  EXPECT_EQ(sync_fence_count_with_status(b, FENCE_STATUS_ACTIVE), 1) << "b has too many active fences!";
  EXPECT_EQ(sync_fence_count_with_status(c, FENCE_STATUS_ACTIVE), 1) << "c has too many active fences!";
  EXPECT_EQ(sync_fence_count_with_status(d, FENCE_STATUS_ACTIVE), 1) << "d has too many active fences!";

  // d does not signal before the max of a, b, c.
  sw_sync_timeline_inc(timeline, 1);
  EXPECT_EQ(sync_fence_count_with_status(a, FENCE_STATUS_SIGNALED), 1) << "a did not signal!";
  EXPECT_EQ(sync_fence_count_with_status(d, FENCE_STATUS_ACTIVE), 1) << "d signaled too early!";
  sw_sync_timeline_inc(timeline, 1);
  EXPECT_EQ(sync_fence_count_with_status(b, FENCE_STATUS_SIGNALED), 1) << "b did not signal!";
  EXPECT_EQ(sync_fence_count_with_status(d, FENCE_STATUS_ACTIVE), 1) << "d signaled too early!";
  sw_sync_timeline_inc(timeline, 1);
  EXPECT_EQ(sync_fence_count_with_status(c, FENCE_STATUS_SIGNALED), 1) << "c did not signal!";
  EXPECT_TRUE(sync_fence_count_with_status(d, FENCE_STATUS_ACTIVE) == 0 &&
              sync_fence_count_with_status(d, FENCE_STATUS_SIGNALED) == 1)
      << "d did not signal!";

  for (SyncFile* f : {d, d1, c, b, a}) sw_sync_fence_destroy(f);
  sw_sync_timeline_destroy(timeline);
}

// --- sync_merge.c ----------------------------------------------------------------

TEST(SyncTest, test_fence_merge_same_fence) {
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_TRUE(sw_sync_timeline_is_valid(timeline));
  SyncFile* fence = sw_sync_fence_create(timeline, "allocFence", 5);
  ASSERT_TRUE(sw_sync_fence_is_valid(fence));
  SyncFile* merged = sync_merge("mergeFence", fence, fence);
  ASSERT_TRUE(sw_sync_fence_is_valid(merged)) << "Failure merging fence";
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_SIGNALED), 0) << "fence signaled too early!";
  sw_sync_timeline_inc(timeline, 5);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_SIGNALED), 1) << "fence did not signal!";
  sw_sync_fence_destroy(merged);
  sw_sync_fence_destroy(fence);
  sw_sync_timeline_destroy(timeline);
}

// --- sync_wait.c -----------------------------------------------------------------

TEST(SyncTest, test_fence_multi_timeline_wait) {
  SyncTimeline* ta = sw_sync_timeline_create();
  SyncTimeline* tb = sw_sync_timeline_create();
  SyncTimeline* tc = sw_sync_timeline_create();
  SyncFile* fa = sw_sync_fence_create(ta, "fenceA", 5);
  SyncFile* fb = sw_sync_fence_create(tb, "fenceB", 5);
  SyncFile* fc = sw_sync_fence_create(tc, "fenceC", 5);
  SyncFile* m1 = sync_merge("mergeFence", fb, fa);
  SyncFile* merged = sync_merge("mergeFence", fc, m1);
  ASSERT_TRUE(sw_sync_fence_is_valid(merged)) << "Failure merging fence from various timelines";

  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_ACTIVE), 3) << "Fence signaled too early!";
  EXPECT_EQ(sync_wait(merged, 0), 0) << "Failure waiting on fence until timeout";

  sw_sync_timeline_inc(ta, 5);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_ACTIVE), 2);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_SIGNALED), 1);
  sw_sync_timeline_inc(tb, 5);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_ACTIVE), 1);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_SIGNALED), 2);
  sw_sync_timeline_inc(tc, 5);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_ACTIVE), 0);
  EXPECT_EQ(sync_fence_count_with_status(merged, FENCE_STATUS_SIGNALED), 3);

  EXPECT_GT(sync_wait(merged, 100), 0) << "Failure waiting on signaled fence";

  for (SyncFile* f : {merged, m1, fc, fb, fa}) sw_sync_fence_destroy(f);
  for (SyncTimeline* t : {tc, tb, ta}) sw_sync_timeline_destroy(t);
}

// --- sync_stress_parallelism.c -----------------------------------------------------

TEST(SyncTest, test_stress_two_threads_shared_timeline) {
  constexpr int kIterations = (1 << 16) >> kStressShift;
  SyncTimeline* timeline = sw_sync_timeline_create();
  ASSERT_TRUE(sw_sync_timeline_is_valid(timeline));
  int counter = 0;  // plain: the fences order the two threads' accesses
  auto thread_fn = [&](int thread_id) {
    for (int i = 0; i < kIterations; ++i) {
      SyncFile* fence = sw_sync_fence_create(timeline, "fence", i * 2 + thread_id);
      ASSERT_TRUE(sw_sync_fence_is_valid(fence)) << "Failure allocating fence";
      ASSERT_GT(sync_wait(fence, -1), 0) << "Problem occurred on prior thread";
      ASSERT_EQ(counter, i * 2 + thread_id) << "Counter got damaged!";
      ++counter;
      ASSERT_EQ(sw_sync_timeline_inc(timeline, 1), 0) << "Advancing timeline failed";
      sw_sync_fence_destroy(fence);
    }
  };
  std::thread a(thread_fn, 0), b(thread_fn, 1);
  a.join();
  b.join();
  EXPECT_EQ(counter, kIterations * 2) << "Counter has unexpected value";
  sw_sync_timeline_destroy(timeline);
}

// --- sync_stress_consumer.c --------------------------------------------------------

namespace {

// Returns 1 on error, 0 once nothing is active. The yield is ours: the
// selftest's loop makes two syscalls per round, which lets other threads run.
int busy_wait_on_fence(SyncFile* fence) {
  int active;
  do {
    if (sync_fence_count_with_status(fence, FENCE_STATUS_ERROR) != 0) return 1;
    active = sync_fence_count_with_status(fence, FENCE_STATUS_ACTIVE);
    if (active) std::this_thread::yield();
  } while (active);
  return 0;
}

struct Mpsc {
  int iterations;
  int threads;
  int counter;
  SyncTimeline* consumer_timeline;
  std::vector<SyncTimeline*> producer_timelines;
  std::mutex lock;
};

void mpsc_producer_thread(Mpsc* d, int id) {
  for (int i = 0; i < d->iterations; ++i) {
    SyncFile* fence = sw_sync_fence_create(d->consumer_timeline, "fence", i);
    ASSERT_TRUE(sw_sync_fence_is_valid(fence)) << "Failure creating fence";
    // Wait for the consumer; vary the means of waiting.
    if ((d->iterations + id) % 8 != 0) {
      ASSERT_GT(sync_wait(fence, -1), 0) << "Failure waiting on fence";
    } else {
      ASSERT_EQ(busy_wait_on_fence(fence), 0) << "Failure waiting on fence";
    }
    {
      std::lock_guard<std::mutex> g(d->lock);
      d->counter++;
    }
    ASSERT_EQ(sw_sync_timeline_inc(d->producer_timelines[id], 1), 0)
        << "Error advancing producer timeline";
    sw_sync_fence_destroy(fence);
  }
}

void mpsc_consumer_thread(Mpsc* d) {
  const int n = d->threads;
  for (int it = 1; it <= d->iterations; ++it) {
    SyncFile* fence = sw_sync_fence_create(d->producer_timelines[0], "name", it);
    for (int i = 1; i < n; ++i) {
      SyncFile* tmp = sw_sync_fence_create(d->producer_timelines[i], "name", it);
      SyncFile* merged = sync_merge("name", tmp, fence);
      sw_sync_fence_destroy(tmp);
      sw_sync_fence_destroy(fence);
      fence = merged;
    }
    ASSERT_TRUE(sw_sync_fence_is_valid(fence)) << "Failure merging fences";
    // An increment from every producer; vary the means of waiting.
    if (d->iterations % 8 != 0) {
      ASSERT_GT(sync_wait(fence, -1), 0) << "Producers did not increment as expected";
    } else {
      ASSERT_EQ(busy_wait_on_fence(fence), 0) << "Producers did not increment as expected";
    }
    {
      std::lock_guard<std::mutex> g(d->lock);
      ASSERT_EQ(d->counter, n * it) << "Counter value mismatch!";
    }
    ASSERT_EQ(sw_sync_timeline_inc(d->consumer_timeline, 1), 0)
        << "Failure releasing producer threads";
    sw_sync_fence_destroy(fence);
  }
}

}  // namespace

TEST(SyncTest, test_consumer_stress_multi_producer_single_consumer) {
  Mpsc d;
  d.iterations = (1 << 12) >> kStressShift;
  d.threads = 5;
  d.counter = 0;
  d.consumer_timeline = sw_sync_timeline_create();
  for (int i = 0; i < d.threads; ++i) d.producer_timelines.push_back(sw_sync_timeline_create());
  std::vector<std::thread> producers;
  for (int i = 0; i < d.threads; ++i) producers.emplace_back(mpsc_producer_thread, &d, i);
  mpsc_consumer_thread(&d);
  for (auto& t : producers) t.join();
  sw_sync_timeline_destroy(d.consumer_timeline);
  for (auto* t : d.producer_timelines) sw_sync_timeline_destroy(t);
}

// --- sync_stress_merge.c -----------------------------------------------------------

TEST(SyncTest, test_merge_stress_random_merge) {
  constexpr int kTimelineCount = 32;
  constexpr int kMergeCount = 1024 * 32;
  std::mt19937 rng(20260701);  // the selftest seeds with time(); fixed for reproducibility
  SyncTimeline* timelines[kTimelineCount];
  int fence_map[kTimelineCount];
  for (auto& t : timelines) t = sw_sync_timeline_create();

  SyncFile* fence = sw_sync_fence_create(timelines[0], "fence", 0);
  ASSERT_TRUE(sw_sync_fence_is_valid(fence)) << "Failure creating fence";
  for (int& m : fence_map) m = -1;
  fence_map[0] = 0;

  // Randomly create sync points on a fixed set of timelines and merge them.
  for (int i = 0; i < kMergeCount; ++i) {
    const int timeline_offset = static_cast<int>(rng() % kTimelineCount);
    SyncTimeline* timeline = timelines[timeline_offset];
    const int sync_point = static_cast<int>(rng() & INT_MAX);  // rand(): [0, RAND_MAX]
    if (fence_map[timeline_offset] == -1 || fence_map[timeline_offset] < sync_point)
      fence_map[timeline_offset] = sync_point;
    SyncFile* tmpfence = sw_sync_fence_create(timeline, "fence", sync_point);
    SyncFile* merged = sync_merge("merge", tmpfence, fence);
    sw_sync_fence_destroy(tmpfence);
    sw_sync_fence_destroy(fence);
    fence = merged;
    ASSERT_TRUE(sw_sync_fence_is_valid(merged)) << "Failure creating fence i";
  }

  int size = 0;
  for (int m : fence_map)
    if (m != -1) ++size;
  EXPECT_EQ(sync_fence_size(fence), size) << "Quantity of elements not matching";

  // Trigger the merged fence.
  for (int i = 0; i < kTimelineCount; ++i) {
    if (fence_map[i] != -1) {
      EXPECT_EQ(sync_wait(fence, 0), 0) << "Failure waiting on fence until timeout";
      sw_sync_timeline_inc(timelines[i], fence_map[i]);  // up to the last sync point
    }
  }
  EXPECT_GT(sync_wait(fence, 0), 0) << "Failure triggering fence";
  sw_sync_fence_destroy(fence);
  for (auto* t : timelines) sw_sync_timeline_destroy(t);
}

// --- beyond the selftest -------------------------------------------------------------

TEST(SwSync, CreateFenceReusesLivePointAndSignalsPassedOnes) {
  SyncTimeline* tl = sw_sync_debugfs_open("tl-name");
  SyncPt* p5 = sync_pt_create(tl, 5);
  SyncPt* again = sync_pt_create(tl, 5);
  EXPECT_EQ(again, p5) << "a live point with the same value is reused";
  EXPECT_EQ(p5->base.refcount.load(), 2u);
  EXPECT_FALSE(fence_test_flag(&p5->base, FENCE_FLAG_SEQNO64_BIT)) << "32-bit seqnos";
  EXPECT_FALSE(fence_test_flag(&p5->base, FENCE_FLAG_INLINE_LOCK_BIT)) << "external lock";
  EXPECT_EQ(fence_parent(&p5->base), tl);
  EXPECT_EQ(fence_to_sync_pt(&p5->base), p5);
  fence_put(&again->base);

  sync_timeline_signal(tl, 3);
  SyncPt* passed = sync_pt_create(tl, 2);
  EXPECT_TRUE(fence_test_signaled_flag(&passed->base)) << "created signalled, not queued";
  EXPECT_TRUE(list_empty(&passed->link));
  fence_put(&passed->base);

  // Released points leave the queue; a later point of the same value is new.
  fence_put(&p5->base);
  SyncPt* fresh = sync_pt_create(tl, 5);
  EXPECT_EQ(fresh->base.refcount.load(), 1u);
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(&fresh->base), "sw_sync");
    EXPECT_STREQ(fence_timeline_name(&fresh->base), "tl-name");
  }
  sync_timeline_signal(tl, 2);
  EXPECT_TRUE(fence_test_signaled_flag(&fresh->base));
  EXPECT_NE(rcu::dereference(fresh->base.ops), nullptr) << "release op: never detached";
  fence_put(&fresh->base);
  sw_sync_debugfs_release(tl);
}

TEST(SwSync, IncSignalsInSeqnoOrderAndWrapsIn32Bits) {
  SyncTimeline* tl = sw_sync_debugfs_open(nullptr);
  struct Order {
    FenceCallback cb;
    std::vector<uint64_t>* seen;
  };
  std::vector<uint64_t> seen;
  std::vector<SyncPt*> pts;
  std::vector<Order> cbs(5);
  const uint32_t values[] = {7, 3, 9, 1, 5};
  for (int i = 0; i < 5; ++i) {
    pts.push_back(sync_pt_create(tl, values[i]));
    cbs[i].seen = &seen;
    ASSERT_EQ(fence_add_callback(&pts[i]->base, &cbs[i].cb,
                                 [](Fence* f, FenceCallback* cb) {
                                   container_of(cb, &Order::cb)->seen->push_back(f->seqno);
                                 }),
              0);
  }
  sync_timeline_signal(tl, 6);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 3, 5}));
  // 6 + 0xFFFFFFFF, applied in INT_MAX steps: the first step already passes 7
  // and 9 (in 32-bit wrap-around order), and the value wraps round to 5.
  uint32_t big = 0xFFFFFFFFu;
  EXPECT_EQ(sw_sync_ioctl_inc(tl, &big), 0);
  EXPECT_EQ(tl->value.load(), 5u);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 3, 5, 7, 9}));
  EXPECT_EQ(sw_sync_ioctl_inc(tl, nullptr), -EFAULT);
  for (SyncPt* p : pts) fence_put(&p->base);
  sw_sync_debugfs_release(tl);
}

TEST(SwSync, CloseSignalsRemainingWithEnoentAndTimelineOutlivesIt) {
  SyncTimeline* tl = sw_sync_debugfs_open("closing");
  SyncFile* a = sw_sync_fence_create(tl, "a", 1);
  SyncFile* b = sw_sync_fence_create(tl, "b", 2);
  sw_sync_timeline_inc(tl, 1);
  sw_sync_debugfs_release(tl);  // "close(fd)" while points remain
  EXPECT_EQ(fence_get_status(a->fence), 1);
  EXPECT_EQ(fence_get_status(b->fence), -ENOENT);
  SyncFileInfo info;
  auto fi = sync_file_info(b, &info);
  ASSERT_EQ(fi.size(), 1u);
  EXPECT_EQ(fi[0].status, -ENOENT);
  EXPECT_EQ(info.status, -ENOENT);
  sync_file_put(a);
  sync_file_put(b);  // the last point drops the timeline
}

TEST(SwSync, DeadlinesKeepTheEarliestAndReportEnoentWhenUnset) {
  SyncTimeline* tl = sw_sync_debugfs_open(nullptr);
  SyncFile* sf = sw_sync_fence_create(tl, "d", 10);
  SwSyncGetDeadline gd = {};
  gd.fence_fd = sf;
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -ENOENT);
  EXPECT_FALSE(fence_test_flag(sf->fence, SW_SYNC_HAS_DEADLINE_BIT));

  SyncSetDeadline sd = {5000, 0};
  EXPECT_EQ(sync_file_ioctl(sf, SYNC_IOC_SET_DEADLINE, &sd), 0);
  sd.deadline_ns = 9000;
  EXPECT_EQ(sync_file_ioctl(sf, SYNC_IOC_SET_DEADLINE, &sd), 0);
  sd.deadline_ns = 3000;
  sd.pad = 1;
  EXPECT_EQ(sync_file_ioctl(sf, SYNC_IOC_SET_DEADLINE, &sd), -EINVAL);
  EXPECT_EQ(sync_file_ioctl(sf, SYNC_IOC_SET_DEADLINE, nullptr), -EFAULT);
  EXPECT_TRUE(fence_test_flag(sf->fence, SW_SYNC_HAS_DEADLINE_BIT));
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), 0);
  EXPECT_EQ(gd.deadline_ns, 5000u) << "the earliest deadline wins";

  // Input validation.
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL) << "deadline_ns must be 0";
  gd.deadline_ns = 0;
  gd.pad = 1;
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL) << "pad must be 0";
  gd.pad = 0;
  gd.fence_fd = nullptr;
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL) << "no sync_file";
  Fence* plain = fence_get_stub();
  SyncFile* not_sw = sync_file_create(plain);
  gd.fence_fd = not_sw;
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, &gd), -EINVAL) << "not a sw_sync fence";
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_GET_DEADLINE, nullptr), -EFAULT);
  EXPECT_EQ(sw_sync_ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, nullptr), -EFAULT);
  EXPECT_EQ(sw_sync_ioctl(tl, 99, nullptr), -ENOTTY);
  EXPECT_EQ(sw_sync_ioctl(nullptr, SW_SYNC_IOC_INC, nullptr), -EBADF);
  sync_file_put(not_sw);
  fence_put(plain);

  sync_file_put(sf);
  sw_sync_debugfs_release(tl);
}

TEST(SyncFile, InfoNamesStatusTimestampsAndErrors) {
  SyncTimeline* tl = sw_sync_debugfs_open("my-timeline");
  SyncFile* a = sw_sync_fence_create(tl, "a", 1);
  SyncFile* b = sw_sync_fence_create(tl, "b", 2);
  SyncTimeline* tl2 = sw_sync_debugfs_open("other");
  SyncFile* c = sw_sync_fence_create(tl2, "c", 1);
  SyncFile* ac = sync_merge("merged-name", a, c);

  char name[32];
  EXPECT_STREQ(sync_file_get_name(ac, name, sizeof name), "merged-name");
  char expect[64];
  snprintf(expect, sizeof expect, "sw_sync-my-timeline%llu-1",
           static_cast<unsigned long long>(tl->context));
  EXPECT_STREQ(sync_file_get_name(a, name, sizeof name), expect);

  SyncFileInfo info = {};
  EXPECT_EQ(sync_file_ioctl(ac, SYNC_IOC_FILE_INFO, &info), 0);
  EXPECT_EQ(info.num_fences, 2u) << "num_fences 0: the count only";
  EXPECT_EQ(info.status, 0);
  EXPECT_STREQ(info.name, "merged-name");

  sw_sync_timeline_inc(tl, 1);
  SyncFileInfo full;
  auto fi = sync_file_info(ac, &full);
  ASSERT_EQ(fi.size(), 2u);
  EXPECT_EQ(full.status, 0) << "one leaf still active";
  // Leaves in ascending context order: tl's point first.
  EXPECT_STREQ(fi[0].obj_name, "signaled-timeline") << "7.1 placeholder once signalled";
  EXPECT_STREQ(fi[0].driver_name, "detached-driver");
  EXPECT_EQ(fi[0].status, 1);
  EXPECT_GT(fi[0].timestamp_ns, 0u);
  EXPECT_LE(fi[0].timestamp_ns, static_cast<uint64_t>(monotonic_ns()));
  EXPECT_STREQ(fi[1].obj_name, "other");
  EXPECT_STREQ(fi[1].driver_name, "sw_sync");
  EXPECT_EQ(fi[1].status, 0);
  EXPECT_EQ(fi[1].timestamp_ns, 0u);
  EXPECT_EQ(fi[1].flags, 0u);

  // Errors.
  SyncFenceInfo one[1];
  SyncFileInfo small = {};
  small.num_fences = 1;
  small.sync_fence_info = one;
  EXPECT_EQ(sync_file_ioctl_fence_info(ac, &small), -EINVAL) << "room for fewer than the leaves";
  SyncFileInfo bad = {};
  bad.flags = 1;
  EXPECT_EQ(sync_file_ioctl_fence_info(ac, &bad), -EINVAL);
  bad.flags = 0;
  bad.pad = 1;
  EXPECT_EQ(sync_file_ioctl_fence_info(ac, &bad), -EINVAL);
  bad.pad = 0;
  bad.num_fences = 2;
  EXPECT_EQ(sync_file_ioctl_fence_info(ac, &bad), -EFAULT) << "no array";
  EXPECT_EQ(sync_file_ioctl_fence_info(ac, nullptr), -EFAULT);

  SyncMergeData md = {};
  EXPECT_EQ(sync_file_ioctl(a, SYNC_IOC_MERGE, &md), -ENOENT) << "fd2 is not a sync_file";
  md.fd2 = b;
  md.flags = 1;
  EXPECT_EQ(sync_file_ioctl(a, SYNC_IOC_MERGE, &md), -EINVAL);
  md.flags = 0;
  md.pad = 1;
  EXPECT_EQ(sync_file_ioctl(a, SYNC_IOC_MERGE, &md), -EINVAL);
  md.pad = 0;
  EXPECT_EQ(sync_file_ioctl(a, SYNC_IOC_MERGE, nullptr), -EFAULT);
  memset(md.name, 'x', sizeof md.name);  // not terminated: the ioctl terminates it
  EXPECT_EQ(sync_file_ioctl(a, SYNC_IOC_MERGE, &md), 0);
  EXPECT_EQ(strlen(md.fence->user_name), 31u);
  EXPECT_EQ(md.fence->fence, b->fence) << "a signalled: the merge is b's point itself";
  sync_file_put(md.fence);
  EXPECT_EQ(sync_file_ioctl(a, 42, nullptr), -ENOTTY);
  EXPECT_EQ(sync_file_ioctl(nullptr, SYNC_IOC_FILE_INFO, &info), -EBADF);

  sw_sync_timeline_inc(tl, 1);
  sw_sync_timeline_inc(tl2, 1);
  fi = sync_file_info(ac, &full);
  EXPECT_EQ(full.status, 1);
  for (SyncFile* f : {ac, a, b, c}) sync_file_put(f);
  sw_sync_debugfs_release(tl);
  sw_sync_debugfs_release(tl2);
}

TEST(SyncFile, MergeOfSignalledIsStubAndGetFence) {
  SyncTimeline* tl = sw_sync_debugfs_open(nullptr);
  SyncFile* a = sw_sync_fence_create(tl, "a", 1);
  SyncFile* b = sw_sync_fence_create(tl, "b", 2);
  sw_sync_timeline_inc(tl, 2);
  const int64_t tb = fence_timestamp(b->fence);
  SyncFile* m = sync_file_merge("all-done", a, b);
  EXPECT_TRUE(fence_test_signaled_flag(m->fence));
  EXPECT_EQ(fence_timestamp(m->fence), tb) << "private stub with the latest timestamp";
  Fence* f = sync_file_get_fence(m);
  EXPECT_EQ(f, m->fence);
  fence_put(f);
  EXPECT_EQ(sync_file_get_fence(nullptr), nullptr);
  {
    WarnCounter w;
    EXPECT_EQ(sync_file_create(nullptr), nullptr);
    EXPECT_EQ(w.count(), 1);
  }
  for (SyncFile* x : {m, a, b}) sync_file_put(x);
  sw_sync_debugfs_release(tl);
}

TEST(SyncFile, PollWaitersRunOnceAndRemoveSynchronises) {
  SyncTimeline* tl = sw_sync_debugfs_open(nullptr);
  SyncFile* sf = sw_sync_fence_create(tl, "p", 1);
  struct W {
    SyncFileWaiter w;
    std::atomic<int> runs{0};
  };
  auto func = [](SyncFileWaiter* w) { container_of(w, &W::w)->runs.fetch_add(1); };
  W w1, w2, w3;
  w1.w.func = w2.w.func = w3.w.func = func;
  EXPECT_EQ(sync_file_poll(sf, &w1.w), 0u);
  EXPECT_EQ(sync_file_poll(sf, &w2.w), 0u);
  EXPECT_TRUE(sf->flags.load() & (1UL << SYNC_FILE_POLL_ENABLED));
  EXPECT_TRUE(sync_file_poll_remove(sf, &w2.w)) << "not run yet";
  sw_sync_timeline_inc(tl, 1);
  EXPECT_EQ(w1.runs.load(), 1);
  EXPECT_EQ(w2.runs.load(), 0);
  EXPECT_FALSE(sync_file_poll_remove(sf, &w1.w)) << "already ran and left the queue";
  // Polling a signalled file: ready at once, a new waiter is not called later.
  EXPECT_EQ(sync_file_poll(sf, &w3.w), SYNC_POLLIN);
  EXPECT_TRUE(sync_file_poll_remove(sf, &w3.w));
  EXPECT_EQ(sync_wait(sf, -1), 1);

  // First poll of an already signalled file: add_callback fails, waiters wake now.
  SyncFile* done = sw_sync_fence_create(tl, "done", 1);
  W w4;
  w4.w.func = func;
  EXPECT_EQ(sync_file_poll(done, &w4.w), SYNC_POLLIN);
  EXPECT_EQ(w4.runs.load(), 1);
  EXPECT_FALSE(sync_file_poll_remove(done, &w4.w));

  // Blocking waits across threads, with and without a timeout.
  SyncFile* later = sw_sync_fence_create(tl, "later", 2);
  EXPECT_EQ(sync_wait(later, 1), 0);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    sw_sync_timeline_inc(tl, 1);
  });
  EXPECT_EQ(sync_wait(later, 10000), 1);
  t.join();
  for (SyncFile* x : {sf, done, later}) sync_file_put(x);
  sw_sync_debugfs_release(tl);
}

TEST(SyncFile, ArrayInsideSyncFileUnwrapsToLeaves) {
  SyncTimeline* tl = sw_sync_debugfs_open(nullptr);
  SyncFile* a = sw_sync_fence_create(tl, "a", 1);
  SyncFile* b = sw_sync_fence_create(tl, "b", 2);
  // A sync_file over an array of two points: info lists both leaves.
  auto** members = static_cast<Fence**>(std::malloc(sizeof(Fence*) * 2));
  members[0] = sync_file_get_fence(a);
  members[1] = sync_file_get_fence(b);
  FenceArray* array = fence_array_create(2, members, fence_context_alloc(1), 1);
  SyncFile* sf = sync_file_create(&array->base);
  fence_put(&array->base);
  EXPECT_EQ(sync_fence_size(sf), 2);
  EXPECT_EQ(sync_fence_count_with_status(sf, FENCE_STATUS_ACTIVE), 2);
  sw_sync_timeline_inc(tl, 2);
  EXPECT_EQ(sync_wait(sf, 1000), 1);
  EXPECT_EQ(fence_get_status(sf->fence), 1);
  for (SyncFile* x : {sf, a, b}) sync_file_put(x);
  sw_sync_debugfs_release(tl);
}
