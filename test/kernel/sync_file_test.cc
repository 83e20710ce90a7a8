// sw_sync timelines and sync_files: create/inc/wait, merge, info (names,
// status, timestamps), deadlines, the error cases, and implicit sync on a
// dma-buf (import a pending fence, export it back, poll the buffer).
#include <fcntl.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "kernel/dma_buf.h"
#include "kernel_env.h"
#include "kernel/sync_file.h"
#include "kernel/uapi.h"

using namespace dmabuf::kernel;
using dmabuf::monotonic_ns;

TEST(KernelSwSync, CreateIncWait) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto f1 = sw_sync_create_fence(tl->get(), 1, "kt-1");
  auto f2 = sw_sync_create_fence(tl->get(), 2, "kt-2");
  ASSERT_KOK(f1);
  ASSERT_KOK(f2);
  EXPECT_NE(fcntl(f1->get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(*sync_file_is_signaled(f1->get()));
  EXPECT_FALSE(*sync_file_wait(f1->get(), 20));
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_TRUE(*sync_file_is_signaled(f1->get()));
  EXPECT_FALSE(*sync_file_is_signaled(f2->get()));
  // A blocking wait woken by another thread's INC.
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    (void)sw_sync_inc(tl->get(), 1);
  });
  EXPECT_TRUE(*sync_file_wait(f2->get(), 5000));
  t.join();
  // A point at or below the timeline is born signalled.
  auto past = sw_sync_create_fence(tl->get(), 2);
  ASSERT_KOK(past);
  EXPECT_TRUE(*sync_file_is_signaled(past->get()));
  auto zero = sw_sync_create_fence(tl->get(), 0);
  ASSERT_KOK(zero);
  EXPECT_TRUE(*sync_file_is_signaled(zero->get()));
  EXPECT_EQ(xioctl(tl->get(), _IO('W', 9), nullptr), -ENOTTY);
  EXPECT_EQ(xioctl(tl->get(), dmabuf::kernel::uapi::kSwSyncIocCreateFence,
                   reinterpret_cast<void*>(8)),
            -EFAULT);
}

TEST(KernelSwSync, FileInfoNamesStatusTimestamps) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto f = sw_sync_create_fence(tl->get(), 1, "ignored-name");
  ASSERT_KOK(f);
  EXPECT_EQ(*sync_file_fence_count(f->get()), 1u);
  auto info = sync_file_get_info(f->get());
  ASSERT_KOK(info);
  printf("  pending: name=\"%s\" status=%d leaf obj=\"%s\" driver=\"%s\" ts=%llu\n",
         info->name.c_str(), info->status, info->fences[0].obj_name.c_str(),
         info->fences[0].driver_name.c_str(),
         static_cast<unsigned long long>(info->fences[0].timestamp_ns));
  EXPECT_EQ(info->status, 0);
  EXPECT_EQ(info->leaf_status, 0);
  ASSERT_EQ(info->fences.size(), 1u);
  EXPECT_EQ(info->fences[0].driver_name, "sw_sync");
  EXPECT_EQ(info->fences[0].obj_name, kt::comm()) << "the timeline is named after the task";
  EXPECT_EQ(info->fences[0].status, 0);
  EXPECT_EQ(info->fences[0].timestamp_ns, 0u);
  EXPECT_EQ(info->name.rfind("sw_sync-" + kt::comm(), 0), 0u) << info->name;
  EXPECT_EQ(info->name.find("ignored-name"), std::string::npos) << "6.12 ignores the name";

  const int64_t before = monotonic_ns();
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  const int64_t after = monotonic_ns();
  info = sync_file_get_info(f->get());
  ASSERT_KOK(info);
  printf("  signalled: name=\"%s\" status=%d leaf obj=\"%s\" driver=\"%s\" ts=%llu\n",
         info->name.c_str(), info->status, info->fences[0].obj_name.c_str(),
         info->fences[0].driver_name.c_str(),
         static_cast<unsigned long long>(info->fences[0].timestamp_ns));
  EXPECT_EQ(info->status, 1);
  EXPECT_EQ(info->leaf_status, 1);
  EXPECT_EQ(info->fences[0].status, 1);
  EXPECT_GE(int64_t(info->fences[0].timestamp_ns), before);
  EXPECT_LE(int64_t(info->fences[0].timestamp_ns), after);
  EXPECT_EQ(info->signal_timestamp_ns(), info->fences[0].timestamp_ns);

  // FILE_INFO's own checks.
  struct sync_file_info raw{};
  raw.flags = 1;
  EXPECT_EQ(xioctl(f->get(), SYNC_IOC_FILE_INFO, &raw), -EINVAL);
  raw = {};
  raw.pad = 1;
  EXPECT_EQ(xioctl(f->get(), SYNC_IOC_FILE_INFO, &raw), -EINVAL);
  raw = {};
  raw.num_fences = 1;
  raw.sync_fence_info = 8;  // bad user pointer
  EXPECT_EQ(xioctl(f->get(), SYNC_IOC_FILE_INFO, &raw), -EFAULT);
  EXPECT_EQ(xioctl(f->get(), _IO('>', 9), nullptr), -ENOTTY);
}

TEST(KernelSwSync, ClosingTheTimelineSignalsWithEnoent) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto f = sw_sync_create_fence(tl->get(), 5);
  ASSERT_KOK(f);
  tl->reset();
  EXPECT_TRUE(*sync_file_wait(f->get(), 1000));
  auto info = sync_file_get_info(f->get());
  ASSERT_KOK(info);
  EXPECT_EQ(info->status, -ENOENT);
  EXPECT_EQ(info->fences[0].status, -ENOENT);
  EXPECT_EQ(info->error(), -ENOENT);
  EXPECT_GT(info->fences[0].timestamp_ns, 0u);
}

TEST(KernelSyncFile, MergeKeepsNameAndFlattens) {
  REQUIRE_SW_SYNC();
  auto a = sw_sync_timeline_open();
  auto b = sw_sync_timeline_open();
  ASSERT_KOK(a);
  ASSERT_KOK(b);
  auto a1 = sw_sync_create_fence(a->get(), 1);
  auto a2 = sw_sync_create_fence(a->get(), 2);
  auto b1 = sw_sync_create_fence(b->get(), 1);
  ASSERT_KOK(a1);
  ASSERT_KOK(a2);
  ASSERT_KOK(b1);
  auto m = sync_file_merge("kt-merged", a1->get(), b1->get());
  ASSERT_KOK(m);
  auto info = sync_file_get_info(m->get());
  ASSERT_KOK(info);
  EXPECT_EQ(info->name, "kt-merged");
  EXPECT_EQ(info->fences.size(), 2u);
  EXPECT_EQ(info->status, 0);
  // Same timeline: one fence, the later point.
  auto same = sync_file_merge("kt-same", a1->get(), a2->get());
  ASSERT_KOK(same);
  EXPECT_EQ(*sync_file_fence_count(same->get()), 1u);
  // Merging a merge flattens: {a1,b1} + a2 -> {a2,b1}.
  auto mm = sync_file_merge("kt-mm", m->get(), a2->get());
  ASSERT_KOK(mm);
  EXPECT_EQ(*sync_file_fence_count(mm->get()), 2u);
  // A long name is cut to 31 bytes.
  auto longname = sync_file_merge(std::string(60, 'n').c_str(), a1->get(), b1->get());
  ASSERT_KOK(longname);
  EXPECT_EQ(sync_file_get_info(longname->get())->name, std::string(31, 'n'));

  ASSERT_KOK(sw_sync_inc(a->get(), 1));
  EXPECT_FALSE(*sync_file_is_signaled(m->get()));
  ASSERT_KOK(sw_sync_inc(b->get(), 1));
  EXPECT_TRUE(*sync_file_wait(m->get(), 1000));
  info = sync_file_get_info(m->get());
  EXPECT_EQ(info->status, 1);
  EXPECT_EQ(info->leaf_status, 1);
  for (auto& f : info->fences) EXPECT_GT(f.timestamp_ns, 0u);
  // The merged sync_file signals with its last leaf.
  EXPECT_EQ(info->signal_timestamp_ns(),
            std::max(info->fences[0].timestamp_ns, info->fences[1].timestamp_ns));

  // Errors.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_KERR(sync_file_merge("x", a1->get(), p[0]), -ENOENT);
  EXPECT_KERR(sync_file_merge("x", a1->get(), -1), -ENOENT);
  EXPECT_KERR(sync_file_merge("x", p[0], a1->get()), -ENOTTY);
  close(p[0]);
  close(p[1]);
  struct sync_merge_data md{};
  md.fd2 = b1->get();
  md.flags = 1;
  EXPECT_EQ(xioctl(a1->get(), SYNC_IOC_MERGE, &md), -EINVAL);
  md.flags = 0;
  md.pad = 1;
  EXPECT_EQ(xioctl(a1->get(), SYNC_IOC_MERGE, &md), -EINVAL);
}

TEST(KernelSyncFile, FileInfoTooFewSlotsIsEinval) {
  REQUIRE_SW_SYNC();
  auto a = sw_sync_timeline_open();
  auto b = sw_sync_timeline_open();
  auto a1 = sw_sync_create_fence(a->get(), 1);
  auto b1 = sw_sync_create_fence(b->get(), 1);
  auto m = sync_file_merge("kt", a1->get(), b1->get());
  ASSERT_KOK(m);
  struct sync_fence_info leaves[2]{};
  struct sync_file_info raw{};
  raw.num_fences = 1;
  raw.sync_fence_info = reinterpret_cast<uintptr_t>(leaves);
  EXPECT_EQ(xioctl(m->get(), SYNC_IOC_FILE_INFO, &raw), -EINVAL);
  // Errored leaf, pending leaf: the leaf aggregate shows the error before the
  // container has signalled.
  ASSERT_KOK(sw_sync_create_fence(a->get(), 2));
  a->reset();  // a1 is still pending -> signalled with -ENOENT
  auto info = sync_file_get_info(m->get());
  ASSERT_KOK(info);
  printf("  one leaf errored, one pending: status=%d leaf_status=%d readable=%d\n", info->status,
         info->leaf_status, int(*sync_file_is_signaled(m->get())));
  EXPECT_EQ(info->status, 0);
  EXPECT_EQ(info->leaf_status, -ENOENT);
  EXPECT_FALSE(*sync_file_is_signaled(m->get()));
  ASSERT_KOK(sw_sync_inc(b->get(), 1));
  EXPECT_TRUE(*sync_file_wait(m->get(), 1000));
  info = sync_file_get_info(m->get());
  EXPECT_EQ(info->status, -ENOENT);
  EXPECT_EQ(info->error(), -ENOENT);
}

TEST(KernelSyncFile, Deadlines) {
  REQUIRE_SW_SYNC();
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto f = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(f);
  auto none = sw_sync_get_deadline(tl->get(), f->get());
  if (none.err() == -ENOTTY) GTEST_SKIP() << "this kernel has no deadline ioctls (before 6.4)";
  EXPECT_EQ(none.err(), -ENOENT);
  const uint64_t t1 = monotonic_ns() + 5000000000ull, t0 = t1 - 1000000000ull;
  auto set = sync_file_set_deadline(f->get(), t1);
  if (!set && sync_file_deadline_unsupported(set.error()))
    GTEST_SKIP() << set.error().describe();
  ASSERT_KOK(set);
  EXPECT_EQ(*sw_sync_get_deadline(tl->get(), f->get()), t1);
  ASSERT_KOK(sync_file_set_deadline(f->get(), t0));  // the earliest wins
  ASSERT_KOK(sync_file_set_deadline(f->get(), t1));
  EXPECT_EQ(*sw_sync_get_deadline(tl->get(), f->get()), t0);
  // Through a merge the hint reaches every leaf.
  auto tl2 = sw_sync_timeline_open();
  auto g = sw_sync_create_fence(tl2->get(), 1);
  auto m = sync_file_merge("kt-dl", f->get(), g->get());
  ASSERT_KOK(m);
  ASSERT_KOK(sync_file_set_deadline(m->get(), t1));
  EXPECT_EQ(*sw_sync_get_deadline(tl2->get(), g->get()), t1);
  // Errors.
  struct sync_set_deadline raw{t1, 1};
  EXPECT_EQ(xioctl(f->get(), SYNC_IOC_SET_DEADLINE, &raw), -EINVAL);  // pad != 0
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_KERR(sw_sync_get_deadline(tl->get(), p[0]), -EINVAL);  // not a sw_sync fence
  close(p[0]);
  close(p[1]);
  EXPECT_KERR(sw_sync_get_deadline(tl->get(), m->get()), -EINVAL);  // a merge is not a point
  dmabuf::kernel::uapi::sw_sync_get_deadline gd{};
  gd.fence_fd = f->get();
  gd.pad = 1;
  EXPECT_EQ(xioctl(tl->get(), dmabuf::kernel::uapi::kSwSyncGetDeadline, &gd), -EINVAL);
  gd.pad = 0;
  gd.deadline_ns = 1;
  EXPECT_EQ(xioctl(tl->get(), dmabuf::kernel::uapi::kSwSyncGetDeadline, &gd), -EINVAL);
}

// Implicit sync: a pending sw_sync fence imported as the buffer's writer.
TEST(KernelImplicitSync, ImportedWriteFenceBlocksReaders) {
  REQUIRE_HEAP();
  REQUIRE_SW_SYNC();
  auto heap = open_heap("system");
  ASSERT_KOK(heap);
  auto buf = heap_alloc(heap->fd.get(), 65536);
  ASSERT_KOK(buf);
  auto tl = sw_sync_timeline_open();
  ASSERT_KOK(tl);
  auto f = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(f);
  const int fd = buf->get();
  ASSERT_KOK(dma_buf_import_sync(fd, kDmaBufWrite, f->get()));
  EXPECT_EQ(*dma_buf_poll(fd, POLLIN, 0), 0) << "readers wait for the writer";
  EXPECT_EQ(*dma_buf_poll(fd, POLLOUT, 0), 0);
  auto rd = dma_buf_export_sync(fd, kDmaBufRead);
  auto wr = dma_buf_export_sync(fd, kDmaBufWrite);
  ASSERT_KOK(rd);
  ASSERT_KOK(wr);
  EXPECT_FALSE(*sync_file_is_signaled(rd->get()));
  EXPECT_FALSE(*sync_file_is_signaled(wr->get()));
  auto info = sync_file_get_info(rd->get());
  ASSERT_KOK(info);
  ASSERT_EQ(info->fences.size(), 1u);
  EXPECT_EQ(info->fences[0].driver_name, "sw_sync");
  EXPECT_EQ(info->status, 0);

  // A CPU reader's START waits for the writer too.
  std::atomic<int64_t> started_at{0};
  std::thread reader([&] {
    (void)dma_buf_begin_cpu_access(fd, kDmaBufRead);
    started_at = monotonic_ns();
    (void)dma_buf_end_cpu_access(fd, kDmaBufRead);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(started_at.load(), 0) << "SYNC START returned while the write fence was pending";
  const int64_t inc_at = monotonic_ns();
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  reader.join();
  EXPECT_GE(started_at.load(), inc_at);

  EXPECT_TRUE(*sync_file_wait(rd->get(), 1000));
  EXPECT_TRUE(*sync_file_wait(wr->get(), 1000));
  EXPECT_EQ(*dma_buf_poll(fd, POLLIN, 1000) & POLLIN, POLLIN);
  EXPECT_EQ(sync_file_get_info(rd->get())->status, 1);
}

TEST(KernelImplicitSync, ImportedReadFenceBlocksOnlyWriters) {
  REQUIRE_HEAP();
  REQUIRE_SW_SYNC();
  auto heap = open_heap("system");
  auto buf = heap_alloc(heap->fd.get(), 4096);
  ASSERT_KOK(buf);
  auto tl = sw_sync_timeline_open();
  auto f = sw_sync_create_fence(tl->get(), 1);
  ASSERT_KOK(f);
  ASSERT_KOK(dma_buf_import_sync(buf->get(), kDmaBufRead, f->get()));
  auto rd = dma_buf_export_sync(buf->get(), kDmaBufRead);
  auto wr = dma_buf_export_sync(buf->get(), kDmaBufWrite);
  ASSERT_KOK(rd);
  ASSERT_KOK(wr);
  EXPECT_TRUE(*sync_file_is_signaled(rd->get())) << "no writers: READ export is signalled";
  EXPECT_FALSE(*sync_file_is_signaled(wr->get())) << "WRITE export waits for readers";
  EXPECT_EQ(*dma_buf_poll(buf->get(), POLLIN, 0) & POLLIN, POLLIN);
  EXPECT_EQ(*dma_buf_poll(buf->get(), POLLOUT, 0), 0);
  ASSERT_KOK(sw_sync_inc(tl->get(), 1));
  EXPECT_TRUE(*sync_file_wait(wr->get(), 1000));
}
