// DMA_HEAP_IOCTL_ALLOC's validation (heaps-uapi.md §1.3), the heap registry
// (§2.1) and the platform profiles that decide which heaps exist.
#include <fcntl.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

std::vector<std::string> names_of(Platform* p) {
  std::vector<std::string> v;
  for (auto& h : dma_heap_list(p)) v.push_back(h.name);
  return v;
}

uint64_t live_objects(Platform* p) {
  BufInfoTotals t;
  dma_buf_bufinfo(p, &t);
  return t.objects;
}

class HeapAlloc : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 64ULL << 20;
    p_ = make_platform(c);
    heap_ = open_heap(p_.get(), "system");
  }
  int alloc(uint64_t len, uint32_t fd_flags, uint64_t heap_flags = 0) {
    DmaBuf* b = nullptr;
    int err = dma_heap_alloc(heap_, len, fd_flags, heap_flags, &b);
    if (!err) {
      last_size_ = b->size;
      EXPECT_EQ(dma_buf_close(b), 0);
    }
    return err;
  }
  PlatformPtr p_;
  Heap* heap_ = nullptr;
  uint64_t last_size_ = 0;
};

TEST_F(HeapAlloc, LengthIsRoundedUpToAPage) {
  EXPECT_EQ(alloc(1, O_RDWR), 0);
  EXPECT_EQ(last_size_, 4096u);
  EXPECT_EQ(alloc(5000, O_RDWR), 0);
  EXPECT_EQ(last_size_, 8192u);
  EXPECT_EQ(alloc(8192, O_RDWR), 0);
  EXPECT_EQ(last_size_, 8192u);
}

TEST_F(HeapAlloc, ZeroOrWrappingLengthIsEinval) {
  EXPECT_EQ(alloc(0, O_RDWR), -EINVAL);
  EXPECT_EQ(alloc(UINT64_MAX, O_RDWR), -EINVAL);
  EXPECT_EQ(alloc(UINT64_MAX - 4094, O_RDWR), -EINVAL);  // PAGE_ALIGN wraps to 0
  // The last length that does not wrap reaches the heap: ENOMEM, not EINVAL.
  EXPECT_EQ(alloc(UINT64_MAX - 4095, O_RDWR), -ENOMEM);
}

TEST_F(HeapAlloc, FdFlagsOutsideCloexecAndAccmodeAreEinval) {
  EXPECT_EQ(alloc(4096, O_RDONLY), 0);
  EXPECT_EQ(alloc(4096, O_WRONLY), 0);
  EXPECT_EQ(alloc(4096, O_RDWR), 0);
  EXPECT_EQ(alloc(4096, O_ACCMODE), 0);  // 3: accepted, the file gets neither mode
  EXPECT_EQ(alloc(4096, O_RDWR | O_CLOEXEC), 0);
  for (uint32_t bit = 0; bit < 32; ++bit) {
    const uint32_t f = 1u << bit;
    if (f & (O_CLOEXEC | O_ACCMODE)) continue;
    EXPECT_EQ(alloc(4096, O_RDWR | f), -EINVAL) << "fd_flags bit " << bit;
  }
  EXPECT_EQ(alloc(4096, O_RDWR | O_NONBLOCK), -EINVAL);
  EXPECT_EQ(alloc(4096, 0x111111), -EINVAL);
  EXPECT_EQ(alloc(4096, ~static_cast<uint32_t>(O_RDWR | O_CLOEXEC)), -EINVAL);
}

TEST_F(HeapAlloc, AnyHeapFlagIsEinval) {
  for (unsigned bit = 0; bit < 64; ++bit)
    EXPECT_EQ(alloc(4096, O_RDWR, 1ULL << bit), -EINVAL) << "heap_flags bit " << bit;
  // The v1 DMA_HEAP_FLAG_DECRYPTED (bit 0) never merged: a separate heap name is
  // the opt-in, so the flag is just another invalid bit, even on a CC guest.
  PlatformPtr cc = make_platform(full_config());
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(open_heap(cc.get(), "system"), 4096, O_RDWR, 1, &b), -EINVAL);
  EXPECT_EQ(dma_heap_alloc(open_heap(cc.get(), "system_cc_shared"), 4096, O_RDWR, 1, &b), -EINVAL);
}

TEST_F(HeapAlloc, ValidationHappensBeforeTheHeapRuns) {
  FaultSpec always;
  always.nth = 1;
  always.times = 0;
  ASSERT_EQ(platform_set_fault(p_.get(), "alloc_pages", always), 0);
  EXPECT_EQ(alloc(0, O_RDWR), -EINVAL);
  EXPECT_EQ(alloc(4096, O_RDWR | O_NONBLOCK), -EINVAL);
  EXPECT_EQ(alloc(1ULL << 40, O_RDWR, 2), -EINVAL);  // heap flags win over a huge length
  EXPECT_EQ(p_->fault(FaultSite::kAllocPages).calls(), 0u);
  EXPECT_EQ(alloc(4096, O_RDWR), -ENOMEM);  // now the heap runs, and fails
  EXPECT_EQ(p_->fault(FaultSite::kAllocPages).calls(), 1u);
}

TEST_F(HeapAlloc, HugeAllocationFailsCleanlyWithoutTouchingMemory) {
  const PageAllocStats before = p_->pages->stats();
  FaultSpec count_only;  // armed so calls are counted, fires only far away
  count_only.nth = UINT64_MAX;
  ASSERT_EQ(platform_set_fault(p_.get(), "alloc_pages", count_only), 0);
  EXPECT_EQ(alloc(1ULL << 40, O_RDWR), -ENOMEM);
  EXPECT_EQ(alloc((64ULL << 20) + 4096, O_RDWR), -ENOMEM);  // one page more than RAM
  EXPECT_EQ(p_->fault(FaultSite::kAllocPages).calls(), 0u);  // no page was taken
  EXPECT_EQ(p_->pages->stats().free_pages, before.free_pages);
  EXPECT_EQ(live_objects(p_.get()), 0u);
}

TEST_F(HeapAlloc, ExhaustionIsEnomemAndEverythingComesBack) {
  const uint64_t total = p_->pages->stats().free_pages;
  DmaBuf* a = nullptr;
  DmaBuf* b = nullptr;
  DmaBuf* c = nullptr;
  ASSERT_EQ(dma_heap_alloc(heap_, 32ULL << 20, O_RDWR, 0, &a), 0);
  ASSERT_EQ(dma_heap_alloc(heap_, 32ULL << 20, O_RDWR, 0, &b), 0);  // exactly all of RAM
  EXPECT_EQ(p_->pages->stats().free_pages, 0u);
  EXPECT_EQ(dma_heap_alloc(heap_, 4096, O_RDWR, 0, &c), -ENOMEM);
  dma_buf_close(a);
  // Half free, but the walk must fail midway for 32 MiB + 1 page, and give
  // back what it took.
  EXPECT_EQ(dma_heap_alloc(heap_, (32ULL << 20) + 4096, O_RDWR, 0, &c), -ENOMEM);
  EXPECT_EQ(p_->pages->stats().free_pages, total / 2);
  dma_buf_close(b);
  EXPECT_EQ(p_->pages->stats().free_pages, total);
}

TEST(HeapAlloc32, LenIsTruncatedToSizeTOn32BitKernels) {
  PlatformConfig c;
  c.arch = Arch::kArm;
  c.ram_bytes = 64ULL << 20;
  PlatformPtr p = make_platform(c);
  Heap* h = open_heap(p.get(), "system");
  DmaBuf* b = nullptr;
  ASSERT_EQ(dma_heap_alloc(h, (1ULL << 32) + 4096, O_RDWR, 0, &b), 0);
  EXPECT_EQ(b->size, 4096u);
  dma_buf_close(b);
  EXPECT_EQ(dma_heap_alloc(h, 1ULL << 32, O_RDWR, 0, &b), -EINVAL);   // truncates to 0
  EXPECT_EQ(dma_heap_alloc(h, 0xfffff001ULL, O_RDWR, 0, &b), -EINVAL);  // PAGE_ALIGN wraps
}

TEST(HeapIoctl, DecodesLikeTheKernel) {
  PlatformPtr p = make_platform(PlatformConfig{});
  Heap* h = open_heap(p.get(), "system");
  dma_heap_allocation_data d = {};
  d.len = 4096;
  d.fd_flags = O_RDWR | O_CLOEXEC;
  // Only the nr is checked: nr >= 1 is EINVAL, not ENOTTY.
  EXPECT_EQ(dma_heap_ioctl(h, _IOWR(DMA_HEAP_IOC_MAGIC, 1, dma_heap_allocation_data), &d), -EINVAL);
  EXPECT_EQ(dma_heap_ioctl(h, _IOWR(DMA_HEAP_IOC_MAGIC, 0x80, dma_heap_allocation_data), &d), -EINVAL);
  // The magic is not checked.
  d.fd = 0;
  ASSERT_EQ(dma_heap_ioctl(h, _IOWR('Z', 0, dma_heap_allocation_data), &d), 0);
  EXPECT_GE(static_cast<int>(d.fd), 0);
  EXPECT_EQ(dma_buf_close_fd(static_cast<int>(d.fd)), 0);
  // fd must be 0 on input.
  d.fd = 7;
  EXPECT_EQ(dma_heap_ioctl(h, DMA_HEAP_IOCTL_ALLOC, &d), -EINVAL);
  d.fd = 0;
  EXPECT_EQ(dma_heap_ioctl(h, DMA_HEAP_IOCTL_ALLOC, nullptr), -EFAULT);
  EXPECT_EQ(dma_heap_ioctl(nullptr, DMA_HEAP_IOCTL_ALLOC, &d), -EBADF);
  // No IOC_WRITE direction: nothing is copied in, len reads as 0.
  EXPECT_EQ(dma_heap_ioctl(h, _IOR(DMA_HEAP_IOC_MAGIC, 0, dma_heap_allocation_data), &d), -EINVAL);
  // A struct cut short after fd (12 bytes): fd_flags and heap_flags read as 0.
  unsigned char tiny[12] = {};
  const uint64_t len = 4096;
  memcpy(tiny, &len, sizeof len);
  EXPECT_EQ(dma_heap_ioctl(h, _IOC(_IOC_READ | _IOC_WRITE, DMA_HEAP_IOC_MAGIC, 0, sizeof tiny), tiny), 0);
  uint32_t fd;
  memcpy(&fd, tiny + 8, sizeof fd);
  DmaBuf* b = nullptr;
  ASSERT_EQ(dma_buf_from_fd(static_cast<int>(fd), &b), 0);
  EXPECT_EQ(b->f_flags, static_cast<uint32_t>(O_RDONLY));
  dma_buf_put(b);
  EXPECT_EQ(dma_buf_close_fd(static_cast<int>(fd)), 0);
}

TEST(HeapIoctl, ReturnedFdIsARealSizedFd) {
  PlatformPtr p = make_platform(PlatformConfig{});
  dma_heap_allocation_data d = {};
  d.len = 10000;
  d.fd_flags = O_RDWR | O_CLOEXEC;
  ASSERT_EQ(dma_heap_ioctl(open_heap(p.get(), "system"), DMA_HEAP_IOCTL_ALLOC, &d), 0);
  const int fd = static_cast<int>(d.fd);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 12288);
  EXPECT_EQ(lseek(fd, 0, SEEK_END), 12288);
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_EQ(ftruncate(fd, 4096), -1);  // sealed: the size is the buffer's for good
  EXPECT_EQ(dma_buf_close_fd(fd), 0);
  EXPECT_EQ(dma_buf_close_fd(fd), -EBADF);
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);  // really closed
}

TEST(HeapIoctl, FdAccessModeFollowsFdFlags) {
  PlatformPtr p = make_platform(PlatformConfig{});
  Heap* h = open_heap(p.get(), "system");
  for (uint32_t mode : {O_RDONLY, O_WRONLY, O_RDWR}) {
    DmaBuf* b = nullptr;
    ASSERT_EQ(dma_heap_alloc(h, 4096, mode, 0, &b), 0);
    EXPECT_EQ(fcntl(b->user_fd.load(), F_GETFL) & O_ACCMODE, static_cast<int>(mode));
    EXPECT_EQ(fcntl(b->user_fd.load(), F_GETFD) & FD_CLOEXEC, 0);
    dma_buf_close(b);
  }
}

// --- the registry ---

const HeapOps kNopOps = {
    .allocate = [](Heap*, uint64_t, uint32_t, uint64_t, DmaBuf**) { return -ENOMEM; }};

TEST(HeapRegistry, AddRules) {
  PlatformPtr p = make_platform(PlatformConfig{});
  WarnCapture w;
  Heap* h = nullptr;
  EXPECT_EQ(dma_heap_add(p.get(), "", HeapKind::kCustom, &kNopOps, nullptr, false, true, &h), -EINVAL);
  EXPECT_EQ(dma_heap_add(p.get(), nullptr, HeapKind::kCustom, &kNopOps, nullptr, false, true, &h), -EINVAL);
  EXPECT_EQ(dma_heap_add(p.get(), "x", HeapKind::kCustom, nullptr, nullptr, false, true, &h), -EINVAL);
  const HeapOps no_alloc = {.allocate = nullptr};
  EXPECT_EQ(dma_heap_add(p.get(), "x", HeapKind::kCustom, &no_alloc, nullptr, false, true, &h), -EINVAL);
  EXPECT_EQ(dma_heap_add(p.get(), "system", HeapKind::kCustom, &kNopOps, nullptr, false, true, &h), -EINVAL);
  EXPECT_EQ(w.count_containing("already registered heap named system"), 1u);
  ASSERT_EQ(dma_heap_add(p.get(), "system-uncached", HeapKind::kCustom, &kNopOps, nullptr, false, true, &h), 0);
  Heap* found = nullptr;
  EXPECT_EQ(dma_heap_open(p.get(), "system-uncached", &found), 0);
  EXPECT_EQ(found, h);
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(h, 4096, O_RDWR, 0, &b), -ENOMEM);  // the heap's own error
}

TEST(HeapRegistry, AtMost128Heaps) {
  PlatformPtr p = make_platform(PlatformConfig{});
  WarnCapture w;
  int added = 0;
  for (int i = 0; i < 200; ++i) {
    std::string n = "vendor-" + std::to_string(i);
    if (dma_heap_add(p.get(), n.c_str(), HeapKind::kCustom, &kNopOps, nullptr, false, true, nullptr))
      break;
    ++added;
  }
  EXPECT_EQ(added, 127);  // "system" has the first minor
  EXPECT_EQ(dma_heap_list(p.get()).size(), 128u);
}

TEST(HeapRegistry, OpenUnknownIsEnoentAndListIsSorted) {
  PlatformPtr p = make_platform(full_config());
  Heap* h = nullptr;
  EXPECT_EQ(dma_heap_open(p.get(), "nope", &h), -ENOENT);
  EXPECT_EQ(dma_heap_open(p.get(), "linux,cma", &h), -ENOENT);
  EXPECT_EQ(dma_heap_open(p.get(), "system_cc_decrypted", &h), -ENOENT);  // v2-v4 name, never merged
  auto list = dma_heap_list(p.get());
  ASSERT_EQ(list.size(), 5u);
  EXPECT_TRUE(std::is_sorted(list.begin(), list.end(),
                             [](const HeapInfo& a, const HeapInfo& b) { return a.name < b.name; }));
  for (auto& i : list) {
    if (i.name == "system_cc_shared") EXPECT_TRUE(i.cc_shared);
    else EXPECT_FALSE(i.cc_shared) << i.name;
    if (i.name == "protected,secure-video") {
      EXPECT_FALSE(i.cpu_access);
    }
    if (i.name == "default_cma_region") {
      EXPECT_TRUE(i.contiguous);
    }
  }
}

// --- platform profiles ---

TEST(PlatformProfiles, DefaultIsLinux71X86WithoutEncryption) {
  Platform* p = platform_default();
  EXPECT_EQ(p->config.kernel, kernel_version(7, 1));
  EXPECT_EQ(p->config.arch, Arch::kX86_64);
  EXPECT_FALSE(p->config.mem_encrypt);
  EXPECT_EQ(names_of(p), std::vector<std::string>{"system"});
  EXPECT_EQ(platform_default(), p);
}

PlatformPtr with(uint32_t kernel, bool enc, Arch arch = Arch::kX86_64, uint64_t cma = 0,
                 std::vector<std::string> prot = {}) {
  PlatformConfig c;
  c.kernel = kernel;
  c.mem_encrypt = enc;
  c.arch = arch;
  c.ram_bytes = 256ULL << 20;
  c.cma_bytes = cma;
  c.protected_heaps = std::move(prot);
  return make_platform(c);
}

TEST(PlatformProfiles, CmaHeapNameByVersion) {
  using V = std::vector<std::string>;
  EXPECT_EQ(names_of(with(kernel_version(6, 12), false, Arch::kArm64, 32 << 20).get()),
            (V{"reserved", "system"}));
  EXPECT_EQ(names_of(with(kernel_version(6, 17), false, Arch::kArm64, 32 << 20).get()),
            (V{"default_cma_region", "reserved", "system"}));
  PlatformConfig c;
  c.ram_bytes = 256ULL << 20;
  c.cma_bytes = 32 << 20;
  c.kernel = kernel_version(6, 16);
  c.cma_legacy_name = "linux,cma";  // the area came from the device tree
  EXPECT_EQ(names_of(make_platform(c).get()), (V{"linux,cma", "system"}));
  c.kernel = kernel_version(7, 1);
  EXPECT_EQ(names_of(make_platform(c).get()), (V{"default_cma_region", "linux,cma", "system"}));
  c.cma_legacy_heap = false;  // CONFIG_DMABUF_HEAPS_CMA_LEGACY=n
  EXPECT_EQ(names_of(make_platform(c).get()), (V{"default_cma_region", "system"}));
  c.cma_name = "memory@42000000-contiguous";
  EXPECT_EQ(names_of(make_platform(c).get()), (V{"memory@42000000-contiguous", "system"}));
}

TEST(PlatformProfiles, HeapsAppearWithTheirKernels) {
  using V = std::vector<std::string>;
  EXPECT_EQ(names_of(with(kernel_version(5, 4), false).get()), V{});  // no dma-heaps before 5.6
  EXPECT_EQ(names_of(with(kernel_version(5, 6), false).get()), V{"system"});
  EXPECT_EQ(names_of(with(kernel_version(6, 17), false, Arch::kArm64, 0, {"protected,secure-video"}).get()),
            V{"system"});
  EXPECT_EQ(names_of(with(kernel_version(6, 18), false, Arch::kArm64, 0,
                          {"protected,secure-video", "protected,trusted-ui"}).get()),
            (V{"protected,secure-video", "protected,trusted-ui", "system"}));
  EXPECT_EQ(names_of(with(kernel_version(7, 0), true).get()), V{"system"});
  EXPECT_EQ(names_of(with(kernel_version(7, 1), true).get()), (V{"system", "system_cc_shared"}));
}

TEST(PlatformProfiles, CcHeapNeedsEncryptionAndAnArchWithSetMemoryCrypt) {
  using V = std::vector<std::string>;
  const V with_cc{"system", "system_cc_shared"}, without{"system"};
  const uint32_t k = kernel_version(7, 1);
  EXPECT_EQ(names_of(with(k, false).get()), without);
  EXPECT_EQ(names_of(with(k, true, Arch::kX86_64).get()), with_cc);
  EXPECT_EQ(names_of(with(k, true, Arch::kArm64).get()), with_cc);
  EXPECT_EQ(names_of(with(k, true, Arch::kPpc64le).get()), with_cc);
  EXPECT_EQ(names_of(with(k, true, Arch::kS390x).get()), without);  // the seed's build failure
  EXPECT_EQ(names_of(with(k, true, Arch::kRiscv64).get()), without);
  EXPECT_EQ(names_of(with(k, true, Arch::kArm).get()), without);  // HIGHMEM
  PlatformConfig c;
  c.ram_bytes = 64ULL << 20;
  c.mem_encrypt = true;
  c.highmem = 1;
  EXPECT_EQ(names_of(make_platform(c).get()), without);
  c.highmem = -1;
  c.set_memory_crypt = 0;
  EXPECT_EQ(names_of(make_platform(c).get()), without);
  c.arch = Arch::kS390x;
  c.set_memory_crypt = 1;  // e.g. 7.2's built-in DMABUF_HEAPS_CC_SYSTEM
  EXPECT_EQ(names_of(make_platform(c).get()), with_cc);
}

TEST(PlatformProfiles, CcAliasIsOptIn) {
  PlatformConfig c = full_config();
  c.cc_heap_alias = true;
  PlatformPtr p = make_platform(c);
  Heap* h = nullptr;
  ASSERT_EQ(dma_heap_open(p.get(), "system_cc_decrypted", &h), 0);
  EXPECT_EQ(h->name, "system_cc_shared");
  for (auto& n : names_of(p.get())) EXPECT_NE(n, "system_cc_decrypted");  // not listed
}

TEST(PlatformProfiles, BadConfigurationsAreEinval) {
  Platform* p = nullptr;
  PlatformConfig c;
  c.ram_bytes = 64ULL << 20;
  c.page_size = 16384;  // x86 has 4 KiB pages only
  EXPECT_EQ(platform_create(c, &p), -EINVAL);
  c.page_size = 4096;
  c.cma_bytes = 64ULL << 20;  // all of RAM
  EXPECT_EQ(platform_create(c, &p), -EINVAL);
  c.cma_bytes = 0;
  c.kernel = kernel_version(6, 18);
  c.protected_heaps = {"protected,secure-video", "protected,secure-video"};  // duplicate name
  EXPECT_EQ(platform_create(c, &p), -EINVAL);
}

TEST(PlatformProfiles, LargerPagesOnArm64) {
  PlatformConfig c;
  c.arch = Arch::kArm64;
  c.page_size = 16384;
  c.ram_bytes = 256ULL << 20;
  PlatformPtr p = make_platform(c);
  DmaBuf* b = nullptr;
  ASSERT_EQ(dma_heap_alloc(open_heap(p.get(), "system"), 5000, O_RDWR, 0, &b), 0);
  EXPECT_EQ(b->size, 16384u);
  dma_buf_close(b);
  // Order 8 is 4 MiB with 16 KiB pages.
  ASSERT_EQ(dma_heap_alloc(open_heap(p.get(), "system"), 4ULL << 20, O_RDWR, 0, &b), 0);
  SgTable t = dma_buf_sg_table(b);
  ASSERT_EQ(t.entries.size(), 1u);
  EXPECT_EQ(t.entries[0].length, 4ULL << 20);
  dma_buf_close(b);
}

TEST(PlatformProfiles, ParsesVersionsAndArchNames) {
  uint32_t v = 0;
  ASSERT_EQ(parse_kernel_version("7.1", &v), 0);
  EXPECT_EQ(v, kernel_version(7, 1));
  ASSERT_EQ(parse_kernel_version("6.12.95+deb12-amd64", &v), 0);
  EXPECT_EQ(v, kernel_version(6, 12, 95));
  ASSERT_EQ(parse_kernel_version("6.17-rc3", &v), 0);
  EXPECT_EQ(v, kernel_version(6, 17));
  EXPECT_EQ(parse_kernel_version("seven", &v), -EINVAL);
  EXPECT_EQ(parse_kernel_version("7", &v), -EINVAL);
  EXPECT_EQ(kernel_version_string(kernel_version(6, 12, 95)), "6.12.95");
  EXPECT_EQ(kernel_version_string(kernel_version(7, 1)), "7.1");
  Arch a;
  ASSERT_EQ(arch_from_name("arm64", &a), 0);
  EXPECT_EQ(a, Arch::kArm64);
  EXPECT_STREQ(arch_name(a), "aarch64");
  ASSERT_EQ(arch_from_name("s390", &a), 0);
  EXPECT_EQ(a, Arch::kS390x);
  EXPECT_EQ(arch_from_name("sparc", &a), -EINVAL);
}

TEST(PlatformProfiles, SeveralPlatformsLiveSideBySide) {
  PlatformPtr a = make_platform(full_config());
  PlatformPtr b = make_platform(PlatformConfig{});
  DmaBuf* x = alloc_rw(open_heap(a.get(), "system"), 4096);
  DmaBuf* y = alloc_rw(open_heap(b.get(), "system"), 4096);
  ASSERT_TRUE(x && y);
  EXPECT_EQ(x->ino, 1u);  // each platform counts its own inodes
  EXPECT_EQ(y->ino, 1u);
  EXPECT_EQ(live_objects(a.get()), 1u);
  EXPECT_EQ(live_objects(b.get()), 1u);
  // A buffer keeps its platform alive after the platform's owner lets go.
  Platform* raw = a.release();
  platform_put(raw);
  EXPECT_EQ(x->platform->config.mem_encrypt, true);
  dma_buf_close(x);  // the platform goes with it
  dma_buf_close(y);
}

}  // namespace
