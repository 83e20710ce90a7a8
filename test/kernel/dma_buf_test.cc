// A real dma-buf: mmap bounds, CPU-access brackets and their flag checks,
// names, size, fdinfo, implicit-sync export/import errors, close.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>

#include <string>

#include "kernel/dma_buf.h"
#include "kernel_env.h"
#include "kernel/sync_file.h"
#include "kernel/uapi.h"

using namespace dmabuf::kernel;

namespace {

UniqueFd alloc(uint64_t len) {
  auto h = open_heap("system");
  if (!h) return UniqueFd();
  auto b = heap_alloc(h->fd.get(), len);
  return b ? std::move(b.value()) : UniqueFd();
}

}  // namespace

TEST(KernelDmaBuf, SyncFlagsAreCheckedByTheKernel) {
  REQUIRE_HEAP();
  UniqueFd buf = alloc(65536);
  ASSERT_TRUE(buf);
  const int fd = buf.get();
  for (uint32_t dir : {kDmaBufRead, kDmaBufWrite, kDmaBufReadWrite}) {
    EXPECT_TRUE(dma_buf_begin_cpu_access(fd, dir).ok()) << dir;
    EXPECT_TRUE(dma_buf_end_cpu_access(fd, dir).ok()) << dir;
  }
  // START/END are not paired by the core: END first, or twice, is fine.
  EXPECT_TRUE(dma_buf_end_cpu_access(fd, kDmaBufRead).ok());
  EXPECT_TRUE(dma_buf_end_cpu_access(fd, kDmaBufRead).ok());
  EXPECT_KERR(dma_buf_cpu_sync(fd, 0x100), -EINVAL);            // bits outside 7
  EXPECT_KERR(dma_buf_cpu_sync(fd, 8), -EINVAL);
  EXPECT_KERR(dma_buf_cpu_sync(fd, uint64_t{1} << 40), -EINVAL);
  EXPECT_KERR(dma_buf_cpu_sync(fd, kDmaBufSyncStart), -EINVAL);  // neither READ nor WRITE
  EXPECT_KERR(dma_buf_cpu_sync(fd, kDmaBufSyncEnd), -EINVAL);
  EXPECT_EQ(xioctl(fd, DMA_BUF_IOCTL_SYNC, reinterpret_cast<void*>(8)), -EFAULT);
  EXPECT_EQ(xioctl(fd, _IO('b', 9), nullptr), -ENOTTY);     // unknown dma-buf ioctl
}

TEST(KernelDmaBuf, NamesAndFdinfo) {
  REQUIRE_HEAP();
  UniqueFd buf = alloc(4096);
  ASSERT_TRUE(buf);
  const int fd = buf.get();
  ASSERT_KOK(dma_buf_set_name(fd, "rig-heap-buf"));
  auto info = dma_buf_fdinfo(fd);
  ASSERT_KOK(info);
  for (auto& [k, v] : info->entries) printf("  fdinfo %s = %s\n", k.c_str(), v.c_str());
  ASSERT_NE(info->find("name"), nullptr);
  EXPECT_EQ(*info->find("name"), "rig-heap-buf");
  EXPECT_EQ(info->number("count"), 1u);
  EXPECT_TRUE(info->number("ino").has_value());
  // The 6.12 kernel: at most 31 bytes, longer is EINVAL (not truncated).
  const std::string n31(31, 'a'), n32(32, 'b');
  ASSERT_KOK(dma_buf_set_name(fd, n31));
  EXPECT_EQ(*dma_buf_fdinfo(fd)->find("name"), n31);
  auto too_long = dma_buf_set_name(fd, n32);
  EXPECT_EQ(too_long.err(), -EINVAL);
  EXPECT_NE(too_long.error().msg.find("at most 31"), std::string::npos);
  EXPECT_KERR(dma_buf_set_name(fd, std::string(100, 'c')), -EINVAL);
  EXPECT_EQ(*dma_buf_fdinfo(fd)->find("name"), n31) << "a refused rename keeps the old name";
  // Renaming any time, also to "".
  ASSERT_KOK(dma_buf_set_name(fd, ""));
  EXPECT_EQ(*dma_buf_fdinfo(fd)->find("name"), "");
  EXPECT_EQ(xioctl(fd, DMA_BUF_SET_NAME, reinterpret_cast<void*>(8)), -EFAULT);
  // count: the file's other references (a dup counts).
  auto d = dup_fd(fd);
  ASSERT_KOK(d);
  EXPECT_EQ(dma_buf_fdinfo(fd)->number("count"), 2u);
  // Distinct buffers have distinct inode numbers.
  UniqueFd other = alloc(4096);
  EXPECT_NE(dma_buf_fdinfo(fd)->number("ino"), dma_buf_fdinfo(other.get())->number("ino"));
}

TEST(KernelDmaBuf, SizeSeekAndMmapBounds) {
  REQUIRE_HEAP();
  UniqueFd buf = alloc(3 * 4096);
  ASSERT_TRUE(buf);
  const int fd = buf.get();
  EXPECT_EQ(*dma_buf_size(fd), 3u * 4096);
  EXPECT_EQ(lseek(fd, 0, SEEK_CUR), -1);  // only SEEK_END,0 and SEEK_SET,0
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(lseek(fd, 4096, SEEK_SET), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_KOK(dma_buf_mmap(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 2 * 4096));
  EXPECT_KERR(dma_buf_mmap(fd, 4 * 4096), -EINVAL);                              // too long
  EXPECT_KERR(dma_buf_mmap(fd, 4096, PROT_READ, MAP_SHARED, 3 * 4096), -EINVAL);  // past the end
  EXPECT_KERR(dma_buf_mmap(fd, 2 * 4096, PROT_READ, MAP_SHARED, 2 * 4096), -EINVAL);
  auto priv = dma_buf_mmap(fd, 4096, PROT_READ, MAP_PRIVATE);
  printf("  MAP_PRIVATE of a system-heap buffer: %s\n",
         priv ? "accepted" : priv.error().describe().c_str());
  // munmap of a released mapping.
  auto m = dma_buf_mmap(fd, 4096);
  ASSERT_KOK(m);
  void* raw = m->release();
  EXPECT_TRUE(dma_buf_munmap(raw, 4096).ok());
}

TEST(KernelDmaBuf, ExportImportErrors) {
  REQUIRE_HEAP();
  UniqueFd buf = alloc(4096);
  ASSERT_TRUE(buf);
  const int fd = buf.get();
  // No fences yet: an already signalled sync_file, close-on-exec.
  for (uint32_t dir : {kDmaBufRead, kDmaBufWrite, kDmaBufReadWrite}) {
    auto s = dma_buf_export_sync(fd, dir);
    ASSERT_KOK(s);
    EXPECT_TRUE(*sync_file_is_signaled(s->get()));
    EXPECT_NE(fcntl(s->get(), F_GETFD) & FD_CLOEXEC, 0);
    auto info = sync_file_get_info(s->get());
    ASSERT_KOK(info);
    EXPECT_EQ(info->status, 1);
  }
  EXPECT_KERR(dma_buf_export_sync(fd, 0), -EINVAL);
  EXPECT_KERR(dma_buf_export_sync(fd, 4), -EINVAL);
  EXPECT_KERR(dma_buf_export_sync(fd, 8 | kDmaBufRead), -EINVAL);
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_KERR(dma_buf_import_sync(fd, kDmaBufWrite, p[0]), -EINVAL);  // not a sync_file
  EXPECT_KERR(dma_buf_import_sync(fd, kDmaBufWrite, -1), -EINVAL);
  auto s = dma_buf_export_sync(fd, kDmaBufRead);
  ASSERT_KOK(s);
  EXPECT_KERR(dma_buf_import_sync(fd, 0, s->get()), -EINVAL);
  EXPECT_KERR(dma_buf_import_sync(fd, 4 | kDmaBufRead, s->get()), -EINVAL);
  ASSERT_KOK(dma_buf_import_sync(fd, kDmaBufWrite, s->get()));  // a signalled fence is fine
  close(p[0]);
  close(p[1]);
  // Nothing pending: the buffer polls ready both ways.
  auto rev = dma_buf_poll(fd, POLLIN | POLLOUT, 0);
  ASSERT_KOK(rev);
  EXPECT_EQ(*rev & (POLLIN | POLLOUT), POLLIN | POLLOUT);
}

TEST(KernelDmaBuf, CloseReportsStaleFd) {
  REQUIRE_HEAP();
  UniqueFd buf = alloc(4096);
  ASSERT_TRUE(buf);
  const int fd = buf.release();
  EXPECT_TRUE(dma_buf_close(fd).ok());
  EXPECT_KERR(dma_buf_close(fd), -EBADF);
  EXPECT_KERR(dma_buf_fdinfo(fd), -EBADF);
}
