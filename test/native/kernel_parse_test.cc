// Host-runnable tests of the real-kernel backend's parsing and error paths: no
// dma-heap, udmabuf or sw_sync needed (test/kernel/ has the ones that are).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sync_file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "kernel/dma_buf.h"
#include "kernel/fdinfo.h"
#include "kernel/heap.h"
#include "kernel/kernel_fence.h"
#include "kernel/kerror.h"
#include "kernel/sw_sync.h"
#include "kernel/sync_file.h"
#include "kernel/udmabuf.h"

using namespace dmabuf::kernel;

// What the 6.12 kernel prints for a named system-heap buffer (captured in the rig).
static const char kDmaBufFdinfo[] =
    "pos:\t0\n"
    "flags:\t02000002\n"
    "mnt_id:\t15\n"
    "ino:\t1045\n"
    "size:\t1048576\n"
    "count:\t1\n"
    "exp_name:\tsystem\n"
    "name:\trig: heap buf\n";

TEST(KernelFdinfo, ParsesDmaBufLinesInOrder) {
  FdInfo info = parse_fdinfo(kDmaBufFdinfo);
  ASSERT_EQ(info.entries.size(), 8u);
  EXPECT_EQ(info.entries[0].first, "pos");
  EXPECT_EQ(info.entries[7].first, "name");
  EXPECT_EQ(*info.find("exp_name"), "system");
  // The value is everything after the first colon and its whitespace.
  EXPECT_EQ(*info.find("name"), "rig: heap buf");
  EXPECT_EQ(info.number("size"), 1048576u);
  EXPECT_EQ(info.number("flags", 8), 02000002u);
  EXPECT_EQ(info.number("ino"), 1045u);
  EXPECT_EQ(info.access_mode(), "rw");
  EXPECT_EQ(info.find("missing"), nullptr);
  EXPECT_FALSE(info.number("exp_name").has_value());
  EXPECT_FALSE(info.number("missing").has_value());
}

TEST(KernelFdinfo, EdgeCases) {
  FdInfo info = parse_fdinfo(
      "flags:\t00\r\nno colon here\n:empty key\nname:\t\nlock:\t1: POSIX ADVISORY\nlock:\t2: FLOCK\n"
      "size:  -5\ncount:\t12abc\nlast:\tno newline");
  EXPECT_EQ(info.access_mode(), "r");
  EXPECT_EQ(info.number("flags", 8), 0u);
  ASSERT_NE(info.find("name"), nullptr);
  EXPECT_EQ(*info.find("name"), "");  // DMA_BUF_SET_NAME("") shows as an empty value
  EXPECT_EQ(*info.find("lock"), "1: POSIX ADVISORY");  // first of the repeated keys
  EXPECT_FALSE(info.number("size").has_value());       // negative is not a size
  EXPECT_FALSE(info.number("count").has_value());      // trailing junk
  EXPECT_EQ(*info.find("last"), "no newline");
  size_t locks = 0;
  for (auto& [k, v] : info.entries) locks += k == "lock";
  EXPECT_EQ(locks, 2u);
  EXPECT_TRUE(parse_fdinfo("").entries.empty());
  EXPECT_EQ(parse_fdinfo("flags:\t01\n").access_mode(), "w");
}

TEST(KernelFdinfo, ReadsOwnFds) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto info = read_fdinfo(p[0]);
  ASSERT_TRUE(info.ok()) << info.error().describe();
  EXPECT_NE(info->find("pos"), nullptr);
  EXPECT_EQ(info->number("flags", 8).value_or(0) & O_CLOEXEC, unsigned(O_CLOEXEC));
  EXPECT_EQ(info->access_mode(), "r");
  close(p[0]);
  close(p[1]);
  auto gone = read_fdinfo(p[0]);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.err(), -EBADF);
  EXPECT_EQ(read_fdinfo(-1).err(), -EBADF);
}

namespace {

void set_name(char (&dst)[32], const char* s, bool fill_all = false) {
  memset(dst, fill_all ? 'x' : 0, sizeof dst);
  if (!fill_all) snprintf(dst, sizeof dst, "%s", s);
}

}  // namespace

TEST(KernelSyncFileInfo, DecodesLeavesAndAggregates) {
  struct sync_file_info count{}, fill{};
  set_name(fill.name, "merged");
  count.status = 1;
  fill.status = -2;  // the kernel latches the first non-positive leaf status
  fill.num_fences = 3;
  struct sync_fence_info leaves[3]{};
  set_name(leaves[0].obj_name, "tl-a");
  set_name(leaves[0].driver_name, "sw_sync");
  leaves[0].status = 1;
  leaves[0].timestamp_ns = 1000;
  set_name(leaves[1].obj_name, "", /*fill_all=*/true);  // no NUL in 32 bytes
  set_name(leaves[1].driver_name, "sw_sync");
  leaves[1].status = -2;
  leaves[1].timestamp_ns = 3000;
  set_name(leaves[2].obj_name, "tl-c");
  set_name(leaves[2].driver_name, "drv");
  leaves[2].status = 1;
  leaves[2].timestamp_ns = 2000;
  leaves[2].flags = 7;

  SyncFileInfo info = decode_sync_file_info(count, fill, leaves, 3);
  EXPECT_EQ(info.name, "merged");
  EXPECT_EQ(info.status, 1);
  EXPECT_EQ(info.leaf_status, -2);
  ASSERT_EQ(info.fences.size(), 3u);
  EXPECT_EQ(info.fences[0].obj_name, "tl-a");
  EXPECT_EQ(info.fences[1].obj_name, std::string(32, 'x'));  // cut at 32, never overrun
  EXPECT_EQ(info.fences[2].driver_name, "drv");
  EXPECT_EQ(info.fences[2].flags, 7u);
  EXPECT_EQ(info.signal_timestamp_ns(), 3000u);
  EXPECT_EQ(info.error(), -2);
}

TEST(KernelSyncFileInfo, PendingAndCountMismatch) {
  struct sync_file_info count{}, fill{};
  set_name(fill.name, "", /*fill_all=*/true);
  fill.num_fences = 1;  // fewer than the buffer holds: decode only what the kernel filled
  struct sync_fence_info leaves[2]{};
  leaves[0].status = 0;
  SyncFileInfo info = decode_sync_file_info(count, fill, leaves, 2);
  EXPECT_EQ(info.name.size(), 32u);
  ASSERT_EQ(info.fences.size(), 1u);
  EXPECT_EQ(info.status, 0);
  EXPECT_EQ(info.signal_timestamp_ns(), 0u);
  EXPECT_EQ(info.error(), 0);
  // A container error without leaf errors still counts.
  count.status = -125;
  EXPECT_EQ(decode_sync_file_info(count, fill, leaves, 1).error(), -125);
}

TEST(KernelError, CodesAndMessages) {
  KError e = kerror(-EINVAL, "DMA_HEAP_IOCTL_ALLOC", "len=0");
  EXPECT_STREQ(e.code(), "EINVAL");
  EXPECT_EQ(e.describe(), "DMA_HEAP_IOCTL_ALLOC: EINVAL (Invalid argument): len=0");
  EXPECT_STREQ(kerror(-EBADFD, "x").code(), "EBADFD");
  EXPECT_STREQ(kerror(0, "x").code(), "E?");
  KResult<int> r = kerror(-ENOTTY, "SYNC_IOC_FILE_INFO");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.err(), -ENOTTY);
  KResult<int> v = 5;
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.err(), 0);
  EXPECT_EQ(*v, 5);
  KStatus ok;
  EXPECT_TRUE(ok.ok());
  KStatus bad = kerror(-EIO, "x");
  EXPECT_EQ(bad.err(), -EIO);
}

TEST(KernelHeaps, MissingDirIsEmpty) {
  auto heaps = list_heaps("/nonexistent/dma_heap");
  ASSERT_TRUE(heaps.ok());
  EXPECT_TRUE(heaps->empty());
  auto h = open_heap("system", "/nonexistent/dma_heap");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.err(), -ENOENT);
  EXPECT_NE(h.error().msg.find("/nonexistent/dma_heap is absent"), std::string::npos)
      << h.error().msg;
}

class KernelHeapDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dmabuf-heaps-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);
  }
  void TearDown() override {
    for (auto& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string touch(const char* name, mode_t mode) {
    std::string p = dir_ + "/" + name;
    int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, mode);
    EXPECT_GE(fd, 0);
    close(fd);
    chmod(p.c_str(), mode);
    files_.push_back(p);
    return p;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(KernelHeapDir, ListsSortedAndOpens) {
  touch("system", 0600);
  touch("default_cma_region", 0600);
  auto heaps = list_heaps(dir_.c_str());
  ASSERT_TRUE(heaps.ok());
  ASSERT_EQ(heaps->size(), 2u);
  EXPECT_EQ((*heaps)[0].name, "default_cma_region");
  EXPECT_EQ((*heaps)[1].path, dir_ + "/system");
  auto h = open_heap("system", dir_.c_str());
  ASSERT_TRUE(h.ok()) << h.error().describe();
  EXPECT_GE(h->fd.get(), 0);
  // A regular file is not a heap: the ioctl says so.
  auto buf = heap_alloc(h->fd.get(), 4096);
  ASSERT_FALSE(buf.ok());
  EXPECT_EQ(buf.err(), -ENOTTY);
  EXPECT_STREQ(buf.error().op, "DMA_HEAP_IOCTL_ALLOC");
  for (const char* bad : {"", ".", "..", "../system", "a/b"}) {
    auto r = open_heap(bad, dir_.c_str());
    EXPECT_EQ(r.err(), -EINVAL) << bad;
  }
  EXPECT_EQ(open_heap("nope", dir_.c_str()).err(), -ENOENT);
}

TEST_F(KernelHeapDir, PermissionDeniedNamesNodeAndWhy) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to an unprivileged uid";
  touch("system", 0600);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    if (setgid(65534) || setuid(65534)) _exit(3);
    auto h = open_heap("system", dir_.c_str());
    std::string m = h.ok() ? "" : h.error().describe();
    if (write(p[1], m.data(), m.size()) < 0) _exit(4);
    _exit(h.ok() ? 1 : (h.err() == -EACCES ? 0 : 2));
  }
  close(p[1]);
  char buf[1024] = {};
  ssize_t n = read(p[0], buf, sizeof buf - 1);
  (void)n;
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << buf;
  std::string msg = buf;
  EXPECT_NE(msg.find("EACCES"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir_ + "/system"), std::string::npos) << msg;
  EXPECT_NE(msg.find("0600"), std::string::npos) << msg;
  EXPECT_NE(msg.find("root-only"), std::string::npos) << msg;
}

TEST(KernelNotADevice, IoctlsOnOrdinaryFdsFailWithKernelErrno) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_EQ(sync_file_get_info(p[0]).err(), -ENOTTY);
  EXPECT_EQ(sync_file_fence_count(p[0]).err(), -ENOTTY);
  EXPECT_EQ(sync_file_merge("m", p[0], p[1]).err(), -ENOTTY);
  EXPECT_EQ(sync_file_set_deadline(p[0], 1).err(), -ENOTTY);
  EXPECT_EQ(dma_buf_cpu_sync(p[0], kDmaBufSyncStart | kDmaBufRead).err(), -ENOTTY);
  EXPECT_EQ(dma_buf_set_name(p[0], "x").err(), -ENOTTY);
  EXPECT_EQ(dma_buf_export_sync(p[0], kDmaBufRead).err(), -ENOTTY);
  EXPECT_EQ(dma_buf_import_sync(p[0], kDmaBufRead, p[1]).err(), -ENOTTY);
  EXPECT_EQ(dma_buf_size(p[0]).err(), -ESPIPE);
  auto kf = kernel_fence_wrap(p[0]);
  ASSERT_FALSE(kf.ok());
  EXPECT_EQ(kf.err(), -ENOTTY);
  EXPECT_NE(kf.error().msg.find("not a sync_file"), std::string::npos);
  EXPECT_EQ(kernel_fence_wrap(-1).err(), -EBADF);
  // A pipe with nothing in it is "not signalled"; with data, "signalled".
  auto r = sync_file_is_signaled(p[0]);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  ASSERT_EQ(write(p[1], "x", 1), 1);
  EXPECT_TRUE(*sync_file_wait(p[0], 100));
  close(p[0]);
  close(p[1]);
  EXPECT_EQ(dma_buf_close(p[0]).err(), -EBADF);
  EXPECT_EQ(sync_file_is_signaled(p[0]).err(), -EBADF);
}

TEST(KernelSwSync, AbsentPathIsEnoentWithReason) {
  auto tl = sw_sync_timeline_open("/nonexistent/debug/sync/sw_sync");
  ASSERT_FALSE(tl.ok());
  EXPECT_EQ(tl.err(), -ENOENT);
  EXPECT_NE(tl.error().msg.find("debugfs is not mounted"), std::string::npos) << tl.error().msg;
  EXPECT_FALSE(sw_sync_available("/nonexistent/sw_sync"));
}

TEST(KernelUdmabuf, SealedMemfdHelper) {
  auto m = memfd_create_sealed("t", 8192);
  ASSERT_TRUE(m.ok()) << m.error().describe();
  EXPECT_EQ(fcntl(m->get(), F_GET_SEALS), F_SEAL_SHRINK);
  struct stat st;
  ASSERT_EQ(fstat(m->get(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  auto w = memfd_create_sealed("t", 4096, F_SEAL_SHRINK | F_SEAL_WRITE);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(fcntl(w->get(), F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_WRITE);
  auto none = memfd_create_sealed("t", 4096, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(fcntl(none->get(), F_GET_SEALS), 0);
  EXPECT_EQ(udmabuf_open("/nonexistent/udmabuf").err(), -ENOENT);
}
