// udmabuf from sealed memfds: good and bad seals, alignment, lists, sharing.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <vector>

#include "kernel/dma_buf.h"
#include "kernel_env.h"

using namespace dmabuf::kernel;

namespace {
constexpr uint64_t kMiB = 1 << 20;
}

TEST(KernelUdmabuf, CreateSharesPagesWithTheMemfd) {
  REQUIRE_UDMABUF();
  auto dev = udmabuf_open();
  ASSERT_KOK(dev);
  auto mfd = memfd_create_sealed("kt-udmabuf", kMiB);
  ASSERT_KOK(mfd);
  auto mm = dma_buf_mmap(mfd->get(), kMiB);
  ASSERT_KOK(mm);
  memset(mm->data(), 0x5a, kMiB);
  auto buf = udmabuf_from_memfd(dev->get(), mfd->get(), 0, kMiB);
  ASSERT_KOK(buf);
  EXPECT_EQ(*dma_buf_size(buf->get()), kMiB);
  auto info = dma_buf_fdinfo(buf->get());
  ASSERT_KOK(info);
  EXPECT_EQ(*info->find("exp_name"), "udmabuf");
  EXPECT_EQ(info->access_mode(), "rw");
  EXPECT_NE(info->number("flags", 8).value_or(0) & O_CLOEXEC, 0u);
  auto m = dma_buf_mmap(buf->get(), kMiB);
  ASSERT_KOK(m);
  ASSERT_KOK(dma_buf_begin_cpu_access(buf->get(), kDmaBufReadWrite));
  EXPECT_EQ(m->bytes()[12345], 0x5a);
  m->bytes()[777] = 0xa5;
  ASSERT_KOK(dma_buf_end_cpu_access(buf->get(), kDmaBufReadWrite));
  EXPECT_EQ(mm->bytes()[777], 0xa5);
  ASSERT_KOK(dma_buf_set_name(buf->get(), "kt-udmabuf"));
  EXPECT_EQ(*dma_buf_fdinfo(buf->get())->find("name"), "kt-udmabuf");
  // An offset range.
  auto part = udmabuf_from_memfd(dev->get(), mfd->get(), 4096, 8192, 0);
  ASSERT_KOK(part);
  EXPECT_EQ(*dma_buf_size(part->get()), 8192u);
  EXPECT_EQ(fcntl(part->get(), F_GETFD) & FD_CLOEXEC, 0) << "flags 0: no close-on-exec";
  // Unknown flag bits are ignored.
  ASSERT_KOK(udmabuf_from_memfd(dev->get(), mfd->get(), 0, 4096, 0xf0 | kUdmabufCloexec));
}

TEST(KernelUdmabuf, BadSealsAndRangesAreEinval) {
  REQUIRE_UDMABUF();
  auto dev = udmabuf_open();
  ASSERT_KOK(dev);
  const int d = dev->get();
  auto unsealed = memfd_create_sealed("kt-unsealed", kMiB, 0);
  ASSERT_KOK(unsealed);
  auto r = udmabuf_from_memfd(d, unsealed->get(), 0, kMiB);
  EXPECT_EQ(r.err(), -EINVAL);
  EXPECT_NE(r.error().msg.find("F_SEAL_SHRINK"), std::string::npos) << r.error().msg;
  auto wseal = memfd_create_sealed("kt-wseal", kMiB, F_SEAL_SHRINK | F_SEAL_WRITE);
  ASSERT_KOK(wseal);
  r = udmabuf_from_memfd(d, wseal->get(), 0, kMiB);
  EXPECT_EQ(r.err(), -EINVAL);
  EXPECT_NE(r.error().msg.find("write seal"), std::string::npos) << r.error().msg;
  auto fseal = memfd_create_sealed("kt-fseal", kMiB, F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE);
  ASSERT_KOK(fseal);
  EXPECT_KERR(udmabuf_from_memfd(d, fseal->get(), 0, kMiB), -EINVAL);
  // Extra seals that are not write seals are fine.
  auto grow = memfd_create_sealed("kt-grow", kMiB, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  ASSERT_KOK(grow);
  ASSERT_KOK(udmabuf_from_memfd(d, grow->get(), 0, kMiB));

  auto good = memfd_create_sealed("kt-good", kMiB);
  ASSERT_KOK(good);
  const int g = good->get();
  EXPECT_KERR(udmabuf_from_memfd(d, g, 0, 4097), -EINVAL);       // size not page aligned
  EXPECT_KERR(udmabuf_from_memfd(d, g, 100, 4096), -EINVAL);     // offset not page aligned
  EXPECT_KERR(udmabuf_from_memfd(d, g, 0, 0), -EINVAL);          // empty
  EXPECT_KERR(udmabuf_from_memfd(d, g, 0, 2 * kMiB), -EINVAL);   // beyond the memfd
  EXPECT_KERR(udmabuf_from_memfd(d, g, kMiB, 4096), -EINVAL);
  EXPECT_KERR(udmabuf_from_memfd(d, g, 0, 128 * kMiB), -EINVAL);  // above size_limit_mb (64)
  // Not a memfd at all.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  auto np = udmabuf_from_memfd(d, p[0], 0, 4096);
  printf("  UDMABUF_CREATE on a pipe: %s\n", np ? "ok?!" : np.error().describe().c_str());
  EXPECT_EQ(np.err(), -EBADFD);
  close(p[0]);
  close(p[1]);
  EXPECT_KERR(udmabuf_from_memfd(d, 1000, 0, 4096), -EBADFD);  // closed fd
  // Unknown udmabuf ioctl.
  EXPECT_EQ(xioctl(d, _IO('u', 0x50), nullptr), -ENOTTY);
}

TEST(KernelUdmabuf, CreateListJoinsRanges) {
  REQUIRE_UDMABUF();
  auto dev = udmabuf_open();
  ASSERT_KOK(dev);
  auto a = memfd_create_sealed("kt-a", 2 * 4096);
  auto b = memfd_create_sealed("kt-b", 3 * 4096);
  ASSERT_KOK(a);
  ASSERT_KOK(b);
  {
    auto ma = dma_buf_mmap(a->get(), 2 * 4096);
    auto mb = dma_buf_mmap(b->get(), 3 * 4096);
    ASSERT_KOK(ma);
    ASSERT_KOK(mb);
    memset(ma->data(), 'A', 2 * 4096);
    memset(mb->data(), 'B', 3 * 4096);
  }
  std::vector<UdmabufRange> ranges = {{a->get(), 4096, 4096}, {b->get(), 0, 3 * 4096}};
  auto buf = udmabuf_from_list(dev->get(), ranges);
  ASSERT_KOK(buf);
  EXPECT_EQ(*dma_buf_size(buf->get()), 4u * 4096);
  auto m = dma_buf_mmap(buf->get(), 4 * 4096, PROT_READ);
  ASSERT_KOK(m);
  EXPECT_EQ(m->bytes()[0], 'A');
  EXPECT_EQ(m->bytes()[4095], 'A');
  EXPECT_EQ(m->bytes()[4096], 'B');
  EXPECT_EQ(m->bytes()[4 * 4096 - 1], 'B');

  // One bad item spoils the list; so does an empty list or more than list_limit.
  auto unsealed = memfd_create_sealed("kt-u", 4096, 0);
  ASSERT_KOK(unsealed);
  std::vector<UdmabufRange> bad = {{a->get(), 0, 4096}, {unsealed->get(), 0, 4096}};
  auto r = udmabuf_from_list(dev->get(), bad);
  EXPECT_EQ(r.err(), -EINVAL);
  EXPECT_NE(r.error().msg.find("F_SEAL_SHRINK"), std::string::npos) << r.error().msg;
  EXPECT_KERR(udmabuf_from_list(dev->get(), {}), -EINVAL);
  std::vector<UdmabufRange> many(1025, UdmabufRange{a->get(), 0, 4096});
  EXPECT_KERR(udmabuf_from_list(dev->get(), many), -EINVAL);
  std::vector<UdmabufRange> limit(1024, UdmabufRange{a->get(), 0, 4096});
  ASSERT_KOK(udmabuf_from_list(dev->get(), limit));
}

TEST(KernelUdmabuf, EndBeforeStartIsEinval) {
  REQUIRE_UDMABUF();
  auto dev = udmabuf_open();
  auto mfd = memfd_create_sealed("kt-sync", 4096);
  ASSERT_KOK(dev);
  ASSERT_KOK(mfd);
  auto buf = udmabuf_from_memfd(dev->get(), mfd->get(), 0, 4096);
  ASSERT_KOK(buf);
  // udmabuf builds its sg table on the first START: END before that is EINVAL.
  auto end = dma_buf_end_cpu_access(buf->get(), kDmaBufRead);
  printf("  udmabuf END before START: %s\n", end ? "ok" : end.error().describe().c_str());
  EXPECT_EQ(end.err(), -EINVAL);
  ASSERT_KOK(dma_buf_begin_cpu_access(buf->get(), kDmaBufRead));
  ASSERT_KOK(dma_buf_end_cpu_access(buf->get(), kDmaBufRead));
}
