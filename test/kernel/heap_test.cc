// Real dma-heap allocation: sizes, contents, and every bad input with the
// kernel's errno (the checks of dma-heap.c and the dmabuf-heap kselftest).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdint>
#include <vector>

#include "kernel/dma_buf.h"
#include "kernel_env.h"
#include "kernel/uapi.h"

using namespace dmabuf::kernel;

namespace {

UniqueFd open_system() {
  auto h = open_heap("system");
  EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error().describe());
  return h.ok() ? std::move(h->fd) : UniqueFd();
}

}  // namespace

TEST(KernelHeap, ListsSystem) {
  REQUIRE_HEAP();
  auto heaps = list_heaps();
  ASSERT_KOK(heaps);
  bool found = false;
  for (auto& h : *heaps) {
    printf("  heap: %s (%s)\n", h.name.c_str(), h.path.c_str());
    found |= h.name == "system" && h.path == "/dev/dma_heap/system";
  }
  EXPECT_TRUE(found);
  EXPECT_KERR(open_heap("no-such-heap"), -ENOENT);
  EXPECT_KERR(open_heap("../null"), -EINVAL);
}

TEST(KernelHeap, PermissionDeniedForUnprivilegedUser) {
  REQUIRE_HEAP();
  if (geteuid() != 0) GTEST_SKIP() << "needs root to drop to an unprivileged uid";
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    if (setgid(65534) || setuid(65534)) _exit(3);
    auto h = open_heap("system");
    std::string m = h.ok() ? "opened" : h.error().describe();
    if (write(p[1], m.data(), m.size()) < 0) _exit(4);
    _exit(h.err() == -EACCES ? 0 : 1);
  }
  close(p[1]);
  char buf[1024] = {};
  if (read(p[0], buf, sizeof buf - 1) < 0) buf[0] = 0;
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  printf("  as uid 65534: %s\n", buf);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << buf;
  EXPECT_NE(std::string(buf).find("/dev/dma_heap/system"), std::string::npos);
  EXPECT_NE(std::string(buf).find("0600"), std::string::npos);
}

TEST(KernelHeap, AllocatesSeveralSizes) {
  REQUIRE_HEAP();
  UniqueFd heap = open_system();
  ASSERT_TRUE(heap);
  for (uint64_t len : {uint64_t{1}, uint64_t{4096}, uint64_t{4097}, uint64_t{65536},
                       uint64_t{1} << 20, (uint64_t{1} << 20) + 1, uint64_t{3} << 20}) {
    SCOPED_TRACE(len);
    auto buf = heap_alloc(heap.get(), len);
    ASSERT_KOK(buf);
    const uint64_t size = kt::page_align(len);
    auto sz = dma_buf_size(buf->get());
    ASSERT_KOK(sz);
    EXPECT_EQ(*sz, size);
    auto info = dma_buf_fdinfo(buf->get());
    ASSERT_KOK(info);
    EXPECT_EQ(info->number("size"), size);
    EXPECT_EQ(*info->find("exp_name"), "system");
    EXPECT_EQ(info->find("name"), nullptr);  // no name until DMA_BUF_SET_NAME
    EXPECT_EQ(info->access_mode(), "rw");
    EXPECT_EQ(info->number("flags", 8).value_or(0) & O_CLOEXEC, unsigned(O_CLOEXEC));

    auto map = dma_buf_mmap(buf->get(), size);
    ASSERT_KOK(map);
    ASSERT_KOK(dma_buf_begin_cpu_access(buf->get(), kDmaBufReadWrite));
    uint8_t* p = map->bytes();
    bool zero = true;
    for (uint64_t i = 0; i < size; ++i) zero &= p[i] == 0;
    EXPECT_TRUE(zero) << "heap memory comes zeroed";
    for (uint64_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(i * 7 + 3);
    ASSERT_KOK(dma_buf_end_cpu_access(buf->get(), kDmaBufReadWrite));
    // A second, independent mapping sees the same pages.
    auto map2 = dma_buf_mmap(buf->get(), size, PROT_READ);
    ASSERT_KOK(map2);
    bool same = true;
    for (uint64_t i = 0; i < size; ++i) same &= map2->bytes()[i] == static_cast<uint8_t>(i * 7 + 3);
    EXPECT_TRUE(same);
  }
}

TEST(KernelHeap, BadInputsGiveTheKernelsErrno) {
  REQUIRE_HEAP();
  UniqueFd heap = open_system();
  ASSERT_TRUE(heap);
  const int h = heap.get();
  // dma_heap_buffer_alloc: PAGE_ALIGN(len) == 0.
  EXPECT_KERR(heap_alloc(h, 0), -EINVAL);
  EXPECT_KERR(heap_alloc(h, UINT64_MAX), -EINVAL);
  EXPECT_KERR(heap_alloc(h, UINT64_MAX - 4094), -EINVAL);  // wraps to 0 when page aligned
  // fd_flags outside O_CLOEXEC | O_ACCMODE.
  EXPECT_KERR(heap_alloc(h, 4096, 0x111111), -EINVAL);
  EXPECT_KERR(heap_alloc(h, 4096, ~uint32_t(O_RDWR | O_CLOEXEC)), -EINVAL);
  EXPECT_KERR(heap_alloc(h, 4096, O_RDWR | O_NONBLOCK), -EINVAL);
  // heap_flags: no valid bits at all.
  EXPECT_KERR(heap_alloc(h, 4096, kDefaultFdFlags, 1), -EINVAL);
  EXPECT_KERR(heap_alloc(h, 4096, kDefaultFdFlags, uint64_t{1} << 63), -EINVAL);
  // Not a heap fd.
  UniqueFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_KERR(heap_alloc(null.get(), 4096), -ENOTTY);
  EXPECT_KERR(heap_alloc(-1, 4096), -EBADF);

  // What the typed API cannot express, through the raw ioctl.
  struct dma_heap_allocation_data d{};
  d.len = 4096;
  d.fd = 5;  // must be 0 on input
  d.fd_flags = O_RDWR | O_CLOEXEC;
  EXPECT_EQ(xioctl(h, DMA_HEAP_IOCTL_ALLOC, &d), -EINVAL);
  d.fd = 0;
  EXPECT_EQ(xioctl(h, _IOWR('H', 1, struct dma_heap_allocation_data), &d), -EINVAL)
      << "unknown nr is EINVAL, not ENOTTY";
  EXPECT_EQ(xioctl(h, DMA_HEAP_IOCTL_ALLOC, reinterpret_cast<void*>(8)), -EFAULT);
}

TEST(KernelHeap, ReadOnlyBufferRefusesWritableSharedMapping) {
  REQUIRE_HEAP();
  UniqueFd heap = open_system();
  auto buf = heap_alloc(heap.get(), 8192, O_RDONLY | O_CLOEXEC);
  ASSERT_KOK(buf);
  auto info = dma_buf_fdinfo(buf->get());
  ASSERT_KOK(info);
  EXPECT_EQ(info->access_mode(), "r");
  EXPECT_KERR(dma_buf_mmap(buf->get(), 8192), -EACCES);
  ASSERT_KOK(dma_buf_mmap(buf->get(), 8192, PROT_READ));
  // Without O_CLOEXEC the fd is inheritable.
  auto plain = heap_alloc(heap.get(), 4096, O_RDWR);
  ASSERT_KOK(plain);
  EXPECT_EQ(fcntl(plain->get(), F_GETFD) & FD_CLOEXEC, 0);
}

// dmabuf-heap kselftest's test_alloc_compat: the kernel reconciles struct sizes.
TEST(KernelHeap, OlderAndNewerStructSizes) {
  REQUIRE_HEAP();
  UniqueFd heap = open_system();
  struct older {
    uint64_t len;
    uint32_t fd;
    uint32_t fd_flags;
  } o{4096, 0, O_RDWR | O_CLOEXEC};
  int r = xioctl(heap.get(), _IOWR('H', 0, struct older), &o);
  EXPECT_EQ(r, 0);
  if (r == 0) close(static_cast<int>(o.fd));
  struct newer {
    uint64_t len;
    uint32_t fd;
    uint32_t fd_flags;
    uint64_t heap_flags;
    uint64_t garbage1, garbage2, garbage3;
  } n{4096, 0, O_RDWR | O_CLOEXEC, 0, 0xffffffff, 0x88888888, 0x11111111};
  r = xioctl(heap.get(), _IOWR('H', 0, struct newer), &n);
  EXPECT_EQ(r, 0);
  if (r == 0) close(static_cast<int>(n.fd));
}

// No upper bound on len in the kernel: a request larger than RAM walks the page
// allocator until it fails (ENOMEM) or the OOM killer ends the caller. Runs in
// a child marked as the preferred OOM victim, and only inside the rig.
TEST(KernelHeap, HugeLenIsEnomemOrOomKill) {
  REQUIRE_HEAP();
  if (!kt::in_rig())
    GTEST_SKIP() << "exhausts memory: runs only inside the kernel rig (KERNEL_RIG=1)";
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    int o = open("/proc/self/oom_score_adj", O_WRONLY);
    if (o >= 0) {
      if (write(o, "1000", 4) < 0) _exit(5);
      close(o);
    }
    auto h = open_heap("system");
    if (!h) _exit(6);
    auto b = heap_alloc(h->fd.get(), uint64_t{1} << 36);  // 64 GiB
    int e = b.err();
    if (write(p[1], &e, sizeof e) < 0) _exit(7);
    _exit(0);
  }
  close(p[1]);
  int e = 1;
  ssize_t n = read(p[0], &e, sizeof e);
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st)) {
    printf("  64 GiB request: child killed by signal %d (the OOM killer; no ENOMEM)\n",
           WTERMSIG(st));
    EXPECT_EQ(WTERMSIG(st), SIGKILL);
  } else {
    ASSERT_EQ(n, ssize_t(sizeof e));
    printf("  64 GiB request: %d\n", e);
    EXPECT_EQ(e, -ENOMEM);
  }
}
