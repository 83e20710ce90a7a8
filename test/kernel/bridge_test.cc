// The bridge: real sync_files as core dmabuf::Fences (status, error, timestamp,
// names, callbacks, waits, deadlines, the watcher) and core fences as real
// sync_files through sw_sync.
//
// Note: native/core/fence/array.h (dma_fence_array) is not on main yet, so "a core
// container holding a kernel fence" is exercised with core callbacks on several
// kernel fences (the way an array's member callbacks would see them). Swap in
// fence_array_create once it lands.
#include <dirent.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernel/dma_buf.h"
#include "core/fence/fence.h"
#include "kernel/fence_export.h"
#include "kernel/fence_watcher.h"
#include "kernel_env.h"
#include "kernel/kernel_fence.h"
#include "core/base/rcu.h"
#include "kernel/sync_file.h"
#include "core/base/warn.h"

using namespace dmabuf;
using namespace dmabuf::kernel;

namespace {

constexpr int64_t kMs = 1000000;

struct CountCb {
  FenceCallback cb;
  std::atomic<int>* count;
  std::atomic<int> status{0};
  std::atomic<pthread_t> thread{};
};
void count_cb(Fence* f, FenceCallback* cb) {
  auto* c = container_of(cb, &CountCb::cb);
  c->status = f->error ? f->error : 1;
  c->thread = pthread_self();
  c->count->fetch_add(1);
}

int thread_count() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

std::string names(Fence* f) {
  rcu::ReadGuard g;
  return std::string(fence_driver_name(f)) + "/" + fence_timeline_name(f);
}

// Stops the default watcher after the suite and checks nothing is left.
class WatcherEnv : public ::testing::Environment {
 public:
  void TearDown() override {
    EXPECT_EQ(stop_default_kernel_fence_watcher(), 0u) << "fences still watched at exit";
    EXPECT_EQ(fence_exports_pending(), 0u);
    // No rcu::barrier() here: under TSan, urcu_bp_barrier's own handoff to the
    // call_rcu thread (inside uninstrumented liburcu) reports a false race.
  }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new WatcherEnv);

}  // namespace

TEST(KernelBridge, PendingFenceSignalsWithKernelTimestamp) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  auto w = kernel_fence_wrap(sf->get());
  ASSERT_KOK(w);
  Fence* f = *w;
  EXPECT_TRUE(is_kernel_fence(f));
  EXPECT_NE(kernel_fence_fd(f), sf->get()) << "the fence owns a dup";
  EXPECT_FALSE(fence_is_signaled(f));
  EXPECT_EQ(fence_get_status(f), 0);
  EXPECT_EQ(names(f), "sw_sync/" + kt::comm());
  EXPECT_EQ(fence_wait_timeout(f, false, 20 * kMs), 0) << "times out while pending";

  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    (void)sw_sync_inc(tl->get(), 1);
  });
  EXPECT_GT(fence_wait_timeout(f, false, 5000 * kMs), 0);
  t.join();
  EXPECT_EQ(fence_get_status(f), 1);
  auto info = sync_file_get_info(sf->get());
  ASSERT_KOK(info);
  EXPECT_EQ(fence_timestamp(f), int64_t(info->fences[0].timestamp_ns))
      << "the core fence carries the kernel's signal time";
  EXPECT_EQ(names(f), "detached-driver/signaled-timeline");
  EXPECT_TRUE(is_kernel_fence(f)) << "ops stay attached (release op)";
  fence_put(f);
}

TEST(KernelBridge, AlreadySignalledAndErroredFences) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto done = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  auto w = kernel_fence_wrap(done->get());
  ASSERT_KOK(w);
  EXPECT_TRUE(fence_test_signaled_flag(*w)) << "signalled at wrap time, no watcher needed";
  EXPECT_EQ(fence_get_status(*w), 1);
  EXPECT_EQ(fence_timestamp(*w), int64_t(sync_file_get_info(done->get())->fences[0].timestamp_ns));
  fence_put(*w);

  // The kernel's error comes across: closing the timeline fails its points.
  auto pending = sw_sync_create_fence(tl->get(), 7);
  ASSERT_KOK(pending);
  auto e = kernel_fence_wrap(pending->get());
  ASSERT_KOK(e);
  std::atomic<int> n{0};
  CountCb cb;
  cb.count = &n;
  ASSERT_EQ(fence_add_callback(*e, &cb.cb, count_cb), 0);
  tl->reset();
  EXPECT_GT(fence_wait_timeout(*e, false, 5000 * kMs), 0);
  EXPECT_EQ(fence_get_status(*e), -ENOENT);
  EXPECT_EQ(n.load(), 1);
  EXPECT_EQ(cb.status.load(), -ENOENT);
  EXPECT_EQ(fence_timestamp(*e), int64_t(sync_file_get_info(pending->get())->fences[0].timestamp_ns));
  fence_put(*e);
}

TEST(KernelBridge, PollingSignalsWithoutTheWatcher) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  auto w = kernel_fence_wrap(sf->get());
  ASSERT_KOK(w);
  EXPECT_FALSE(fence_is_signaled(*w));
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  // No callback, no wait: the signaled op polls the fd and signals with the
  // kernel's timestamp.
  EXPECT_TRUE(fence_is_signaled(*w));
  EXPECT_FALSE(fence_test_flag(*w, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  EXPECT_EQ(fence_timestamp(*w), int64_t(sync_file_get_info(sf->get())->fences[0].timestamp_ns));
  fence_put(*w);
}

// Several kernel fences under core callbacks (what a fence_array does with
// its members), one watcher thread for all of them.
TEST(KernelBridge, ManyFencesOneWatcherThread) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto tl2 = sw_sync_timeline_open();
  ASSERT_KOK(tl2);
  constexpr int kN = 64;
  std::vector<Fence*> fences;
  std::vector<CountCb> cbs(kN + 1);
  std::atomic<int> n{0};
  for (int i = 0; i < kN; ++i) {
    auto sf = sw_sync_create_fence(tl->get(), i + 1);
    ASSERT_KOK(sf);
    auto w = kernel_fence_adopt(std::move(sf.value()));
    ASSERT_KOK(w);
    fences.push_back(*w);
  }
  auto other = sw_sync_create_fence(tl2->get(), 1);
  auto ow = kernel_fence_wrap(other->get());
  ASSERT_KOK(ow);
  fences.push_back(*ow);
  const int threads_before = thread_count();
  for (int i = 0; i <= kN; ++i) {
    cbs[i].count = &n;
    ASSERT_EQ(fence_add_callback(fences[i], &cbs[i].cb, count_cb), 0);
  }
  const int threads_after = thread_count();
  EXPECT_LE(threads_after - threads_before, 1) << "no thread per fence";
  auto* watcher = static_cast<EpollFenceWatcher*>(default_kernel_fence_watcher());
  EXPECT_TRUE(watcher->running());
  EXPECT_GE(watcher->pending(), size_t(kN + 1));

  ASSERT_KOK(sw_sync_inc(tl->get(), kN / 2));
  for (int i = 0; i < kN / 2; ++i) EXPECT_GT(fence_wait_timeout(fences[i], false, 5000 * kMs), 0);
  EXPECT_FALSE(fence_is_signaled(fences[kN / 2]));
  ASSERT_KOK(sw_sync_inc(tl->get(), kN / 2));
  ASSERT_KOK(sw_sync_inc(tl2->get(), 1));
  for (Fence* f : fences) EXPECT_GT(fence_wait_timeout(f, false, 5000 * kMs), 0);
  // "The container" signals when all its members have.
  for (int i = 0; i < 500 && n.load() < kN + 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(n.load(), kN + 1);
  for (auto& c : cbs) EXPECT_EQ(c.status.load(), 1);
  for (Fence* f : fences) fence_put(f);
  for (int i = 0; i < 500 && watcher->pending() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(watcher->pending(), 0u);
}

TEST(KernelBridge, WatcherStopsAndRestarts) {
  REQUIRE_SW_SYNC();
  EpollFenceWatcher watcher;
  EXPECT_FALSE(watcher.running()) << "started lazily";
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  auto w = kernel_fence_wrap(sf->get(), &watcher);
  ASSERT_KOK(w);
  EXPECT_FALSE(watcher.running()) << "wrapping alone does not watch";
  fence_enable_sw_signaling(*w);
  EXPECT_TRUE(watcher.running());
  EXPECT_EQ(watcher.pending(), 1u);
  EXPECT_EQ(watcher.stop(), 1u) << "stop keeps the registration";
  EXPECT_FALSE(watcher.running());
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(fence_test_signaled_flag(*w)) << "nobody watches while stopped";
  ASSERT_KOK(watcher.start());
  EXPECT_GT(fence_wait_timeout(*w, false, 5000 * kMs), 0);
  for (int i = 0; i < 500 && watcher.pending() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(watcher.pending(), 0u);
  EXPECT_EQ(watcher.stop(), 0u);
  fence_put(*w);
}

// The shape the Node addon uses: its own watcher (uv_poll there; a manual
// poll here) driving kernel_fence_on_readable.
TEST(KernelBridge, ExternalWatcherDrivesTheHandler) {
  REQUIRE_SW_SYNC();
  struct ManualWatcher : KernelFenceWatcher {
    Fence* fence = nullptr;
    int fd = -1;
    int watch(Fence* f, int wfd) override {
      fence = f;
      fd = wfd;
      return 0;
    }
  } mw;
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  auto w = kernel_fence_wrap(sf->get(), &mw);
  ASSERT_KOK(w);
  std::atomic<int> n{0};
  CountCb cb;
  cb.count = &n;
  ASSERT_EQ(fence_add_callback(*w, &cb.cb, count_cb), 0);
  ASSERT_EQ(mw.fence, *w);
  EXPECT_EQ(mw.fd, kernel_fence_fd(*w));
  EXPECT_FALSE(kernel_fence_on_readable(mw.fence)) << "spurious wake-up: not readable yet";
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_TRUE(*sync_file_wait(mw.fd, 1000));
  EXPECT_TRUE(kernel_fence_on_readable(mw.fence));
  EXPECT_EQ(n.load(), 1);
  EXPECT_TRUE(pthread_equal(cb.thread.load(), pthread_self())) << "runs where the handler runs";
  EXPECT_TRUE(kernel_fence_on_readable(mw.fence)) << "idempotent";
  fence_put(mw.fence);  // the watcher's reference
  fence_put(*w);

  // A watcher that cannot watch: the fence signals at once with its error.
  struct FailingWatcher : KernelFenceWatcher {
    int watch(Fence*, int) override { return -ENOMEM; }
  } fw;
  auto sf2 = sw_sync_create_fence(tl->get(), 5);
  auto w2 = kernel_fence_wrap(sf2->get(), &fw);
  ASSERT_KOK(w2);
  EXPECT_EQ(fence_wait_timeout(*w2, false, 0), 1);
  EXPECT_EQ(fence_get_status(*w2), -ENOMEM);
  fence_put(*w2);
}

TEST(KernelBridge, MergedSyncFileAsOneFence) {
  REQUIRE_SW_SYNC();
  auto a = sw_sync_timeline_open();
  auto b = sw_sync_timeline_open();
  auto a1 = sw_sync_create_fence(a->get(), 1);
  auto b1 = sw_sync_create_fence(b->get(), 1);
  auto m = sync_file_merge("kt-bridge-merge", a1->get(), b1->get());
  ASSERT_KOK(m);
  auto w = kernel_fence_wrap(m->get());
  ASSERT_KOK(w);
  EXPECT_EQ(names(*w), "sync_file/kt-bridge-merge");
  ASSERT_KOK(sw_sync_inc(a->get(), 1));
  EXPECT_EQ(fence_wait_timeout(*w, false, 30 * kMs), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_KOK(sw_sync_inc(b->get(), 1));
  EXPECT_GT(fence_wait_timeout(*w, false, 5000 * kMs), 0);
  auto info = sync_file_get_info(m->get());
  EXPECT_EQ(fence_timestamp(*w), int64_t(info->signal_timestamp_ns()))
      << "the merge signals with its last leaf";
  EXPECT_EQ(fence_timestamp(*w), int64_t(info->fences[1].timestamp_ns));
  fence_put(*w);
}

TEST(KernelBridge, DeadlineReachesTheKernel) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  if (sw_sync_get_deadline(tl->get(), sf->get()).err() == -ENOTTY)
    GTEST_SKIP() << "this kernel has no deadline ioctls";
  auto w = kernel_fence_wrap(sf->get());
  ASSERT_KOK(w);
  const int64_t dl = monotonic_ns() + 1000 * kMs;
  fence_set_deadline(*w, dl);
  EXPECT_EQ(*sw_sync_get_deadline(tl->get(), sf->get()), uint64_t(dl));
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_GT(fence_wait_timeout(*w, false, 5000 * kMs), 0);
  fence_put(*w);
}

namespace {
const char* core_name(Fence*) { return "kt-core"; }
const FenceOps kCoreOps = {.get_driver_name = core_name, .get_timeline_name = core_name};
Fence* core_fence() {
  Fence* f = fence_alloc();
  fence_init(f, &kCoreOps, nullptr, fence_context_alloc(1), 1);
  return f;
}
}  // namespace

TEST(KernelBridge, CoreFenceAsSyncFile) {
  REQUIRE_SW_SYNC();
  Fence* f = core_fence();
  auto sf = sync_file_from_fence(f);
  ASSERT_KOK(sf);
  EXPECT_EQ(fence_exports_pending(), 1u);
  EXPECT_FALSE(*sync_file_is_signaled(sf->get()));
  auto info = sync_file_get_info(sf->get());
  ASSERT_KOK(info);
  EXPECT_EQ(info->fences[0].driver_name, "sw_sync");
  const int64_t before = monotonic_ns();
  fence_signal(f);
  EXPECT_TRUE(*sync_file_is_signaled(sf->get())) << "advanced inside the signal call";
  EXPECT_EQ(fence_exports_pending(), 0u);
  info = sync_file_get_info(sf->get());
  EXPECT_EQ(info->status, 1);
  EXPECT_GE(int64_t(info->fences[0].timestamp_ns), before);
  fence_put(f);

  // An error becomes the kernel's -ENOENT (all sw_sync can say).
  Fence* e = core_fence();
  auto esf = sync_file_from_fence(e);
  ASSERT_KOK(esf);
  fence_set_error(e, -EIO);
  fence_signal(e);
  EXPECT_TRUE(*sync_file_wait(esf->get(), 1000));
  EXPECT_EQ(sync_file_get_info(esf->get())->status, -ENOENT);
  fence_put(e);

  // Already signalled: readable at once.
  Fence* done = core_fence();
  fence_signal(done);
  auto dsf = sync_file_from_fence(done);
  ASSERT_KOK(dsf);
  EXPECT_TRUE(*sync_file_is_signaled(dsf->get()));
  fence_put(done);

  // The export holds its own reference: dropping ours early is fine.
  Fence* early = core_fence();
  auto early_sf = sync_file_from_fence(early);
  ASSERT_KOK(early_sf);
  Fence* keep = fence_get(early);
  fence_put(early);
  fence_signal(keep);
  fence_put(keep);
  EXPECT_TRUE(*sync_file_is_signaled(early_sf->get()));

  EXPECT_KERR(sync_file_from_fence(nullptr), -EINVAL);
  Fence* nosw = core_fence();
  auto absent = sync_file_from_fence(nosw, "/nonexistent/sw_sync");
  EXPECT_EQ(absent.err(), -ENOENT);
  EXPECT_NE(absent.error().msg.find("needs sw_sync"), std::string::npos);
  fence_signal(nosw);
  fence_put(nosw);
}

TEST(KernelBridge, RoundTrips) {
  REQUIRE_SW_SYNC();
  // kernel -> core -> kernel: the same sync_file comes back.
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(sf);
  auto w = kernel_fence_wrap(sf->get());
  ASSERT_KOK(w);
  auto back = sync_file_from_fence(*w);
  ASSERT_KOK(back);
  EXPECT_EQ(sync_file_get_info(back->get())->name, sync_file_get_info(sf->get())->name);
  fence_put(*w);
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_TRUE(*sync_file_wait(back->get(), 1000));

  // core -> kernel -> core.
  Fence* c = core_fence();
  auto csf = sync_file_from_fence(c);
  ASSERT_KOK(csf);
  auto cw = kernel_fence_adopt(std::move(csf.value()));
  ASSERT_KOK(cw);
  EXPECT_EQ(fence_wait_timeout(*cw, false, 10 * kMs), 0);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fence_signal(c);
  });
  EXPECT_GT(fence_wait_timeout(*cw, false, 5000 * kMs), 0);
  t.join();
  EXPECT_EQ(fence_get_status(*cw), 1);
  EXPECT_GE(fence_timestamp(*cw), fence_timestamp(c));
  fence_put(*cw);
  fence_put(c);
}

// A dma-buf's implicit fences as a core fence.
TEST(KernelBridge, ImplicitSyncThroughTheBridge) {
  REQUIRE_HEAP();
  REQUIRE_SW_SYNC();
  auto heap = open_heap("system");
  auto buf = heap_alloc(heap->fd.get(), 4096);
  ASSERT_KOK(buf);
  auto tl = sw_sync_timeline_open();
  auto sf = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(dma_buf_import_sync(buf->get(), kDmaBufWrite, sf->get()));
  auto rd = dma_buf_export_sync(buf->get(), kDmaBufRead);
  ASSERT_KOK(rd);
  auto w = kernel_fence_adopt(std::move(rd.value()));
  ASSERT_KOK(w);
  EXPECT_EQ(fence_wait_timeout(*w, false, 10 * kMs), 0);
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_GT(fence_wait_timeout(*w, false, 5000 * kMs), 0);
  EXPECT_EQ(fence_timestamp(*w), int64_t(sync_file_get_info(sf->get())->fences[0].timestamp_ns));
  fence_put(*w);

  // And the other way: a core fence as the buffer's writer.
  Fence* c = core_fence();
  auto csf = sync_file_from_fence(c);
  ASSERT_KOK(csf);
  ASSERT_KOK(dma_buf_import_sync(buf->get(), kDmaBufWrite, csf->get()));
  EXPECT_EQ(*dma_buf_poll(buf->get(), POLLIN, 0), 0);
  fence_signal(c);
  EXPECT_EQ(*dma_buf_poll(buf->get(), POLLIN, 1000) & POLLIN, POLLIN);
  fence_put(c);
}
