// The dma-buf object: names (SET_NAME), CPU-access brackets
// (DMA_BUF_IOCTL_SYNC), mmap rules and invalidation, fdinfo and bufinfo text
// (compared with what the 6.12 rig kernel printed), references, child
// processes.
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/mapping.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

// Permissions of the /proc/self/maps line starting at `addr` ("" if none).
std::string map_perms(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  char want[32];
  snprintf(want, sizeof want, "%" PRIxPTR "-", reinterpret_cast<uintptr_t>(addr));
  while (std::getline(maps, line))
    if (line.rfind(want, 0) == 0) return line.substr(line.find(' ') + 1, 4);
  return "";
}

class DmaBufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 128ULL << 20;
    c.cma_bytes = 16ULL << 20;
    p_ = make_platform(c);
    sys_ = open_heap(p_.get(), "system");
  }
  DmaBuf* alloc(uint64_t len, uint32_t flags, Heap* h = nullptr) {
    DmaBuf* b = nullptr;
    EXPECT_EQ(dma_heap_alloc(h ? h : sys_, len, flags, 0, &b), 0);
    return b;
  }
  PlatformPtr p_;
  Heap* sys_ = nullptr;
};

// The rig run (6.12.95, /dev/dma_heap/system): four buffers, two named, one
// mmapped; fdinfo and bufinfo as the kernel printed them.
TEST_F(DmaBufTest, FdinfoAndBufinfoMatchTheKernel) {
  DmaBuf* a = alloc(5000, O_RDWR | O_CLOEXEC);
  DmaBuf* b = alloc(4096, O_RDONLY);
  DmaBuf* c = alloc(4096, O_WRONLY);
  DmaBuf* d = alloc(4096, O_ACCMODE);
  ASSERT_TRUE(a && b && c && d);
  ASSERT_EQ(dma_buf_set_name(a, "hello", 6), 0);
  const std::string x31(31, 'x');
  ASSERT_EQ(dma_buf_set_name(b, x31.c_str(), x31.size() + 1), 0);
  Mapping* m = nullptr;
  ASSERT_EQ(dma_buf_mmap(a, 0, 8192, PROT_READ, MAP_SHARED, &m), 0);

  std::string s;
  ASSERT_EQ(dma_buf_fdinfo(a, &s), 0);
  EXPECT_EQ(s,
            "pos:\t0\nflags:\t02000002\nmnt_id:\t12\nino:\t1\nsize:\t8192\ncount:\t2\n"
            "exp_name:\tsystem\nname:\thello\n");
  ASSERT_EQ(dma_buf_fdinfo(b, &s), 0);
  EXPECT_EQ(s, "pos:\t0\nflags:\t00\nmnt_id:\t12\nino:\t2\nsize:\t4096\ncount:\t1\n"
               "exp_name:\tsystem\nname:\t" + x31 + "\n");
  ASSERT_EQ(dma_buf_fdinfo(c, &s), 0);
  EXPECT_EQ(s, "pos:\t0\nflags:\t01\nmnt_id:\t12\nino:\t3\nsize:\t4096\ncount:\t1\nexp_name:\tsystem\n");
  ASSERT_EQ(dma_buf_fdinfo(d, &s), 0);
  EXPECT_EQ(s, "pos:\t0\nflags:\t03\nmnt_id:\t12\nino:\t4\nsize:\t4096\ncount:\t1\nexp_name:\tsystem\n");
  EXPECT_EQ(dma_buf_link(a), "/dmabuf:hello");
  EXPECT_EQ(dma_buf_link(c), "/dmabuf:");

  BufInfoTotals t;
  EXPECT_EQ(dma_buf_bufinfo(p_.get(), &t),
            "\nDma-buf Objects:\n"
            "size    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n"
            "00004096\t00000003\t00080004\t00000001\tsystem\t00000004\t<none>\n"
            "\tAttached Devices:\nTotal 0 devices attached\n\n"
            "00004096\t00000001\t00080006\t00000001\tsystem\t00000003\t<none>\n"
            "\tAttached Devices:\nTotal 0 devices attached\n\n"
            "00004096\t00000000\t00080005\t00000001\tsystem\t00000002\t" + x31 + "\n"
            "\tAttached Devices:\nTotal 0 devices attached\n\n"
            "00008192\t00000002\t00080007\t00000002\tsystem\t00000001\thello\n"
            "\tAttached Devices:\nTotal 0 devices attached\n\n"
            "\nTotal 4 objects, 20480 bytes\n");
  EXPECT_EQ(t.objects, 4u);
  EXPECT_EQ(t.bytes, 20480u);

  // fdinfo's flags follow the fd's close-on-exec bit as it is now.
  ASSERT_EQ(fcntl(a->user_fd.load(), F_SETFD, 0), 0);
  ASSERT_EQ(dma_buf_fdinfo(a, &s), 0);
  EXPECT_NE(s.find("flags:\t02\n"), std::string::npos) << s;

  mapping_put(m);
  for (DmaBuf* x : {a, b, c, d}) dma_buf_close(x);
}

TEST_F(DmaBufTest, BufinfoListsAttachedDevicesNewestFirst) {
  DmaBuf* a = alloc(4096, O_RDWR);
  Attachment *x = nullptr, *y = nullptr;
  ASSERT_EQ(dma_buf_attach(a, "0000:00:02.0", &x), 0);
  ASSERT_EQ(dma_buf_attach(a, "vgem", &y), 0);
  std::string s = dma_buf_bufinfo(p_.get());
  EXPECT_NE(s.find("\t00000003\tsystem\t00000001\t<none>\n\tAttached Devices:\n\tvgem\n\t0000:00:02.0\n"
                   "Total 2 devices attached\n\n"),
            std::string::npos)
      << s;
  dma_buf_detach(a, x);
  dma_buf_detach(a, y);
  dma_buf_close(a);
}

TEST_F(DmaBufTest, SetNameRules) {
  DmaBuf* b = alloc(4096, O_RDWR);
  std::string name;
  EXPECT_FALSE(dma_buf_get_name(b, &name));
  const std::string n31(31, 'a'), n32(32, 'b'), n100(100, 'c');
  EXPECT_EQ(dma_buf_set_name(b, n31.c_str(), n31.size() + 1), 0);
  EXPECT_TRUE(dma_buf_get_name(b, &name));
  EXPECT_EQ(name, n31);
  EXPECT_EQ(dma_buf_set_name(b, n32.c_str(), n32.size() + 1), -EINVAL);
  EXPECT_EQ(dma_buf_set_name(b, n100.c_str(), n100.size() + 1), -EINVAL);
  EXPECT_EQ(dma_buf_set_name(b, nullptr, 8), -EFAULT);
  dma_buf_get_name(b, &name);
  EXPECT_EQ(name, n31);  // failures leave the old name
  // Only up to the first NUL counts.
  EXPECT_EQ(dma_buf_set_name(b, "abc\0def", 8), 0);
  dma_buf_get_name(b, &name);
  EXPECT_EQ(name, "abc");
  // An empty name is a name: fdinfo prints an empty name line.
  EXPECT_EQ(dma_buf_set_name(b, "", 1), 0);
  std::string s;
  ASSERT_EQ(dma_buf_fdinfo(b, &s), 0);
  EXPECT_NE(s.find("exp_name:\tsystem\nname:\t\n"), std::string::npos);
  // Both ioctl numbers, renaming at any time, attachments or not (7.1).
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(b, "vgem", &a), 0);
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_SET_NAME_A, const_cast<char*>("first")), 0);
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_SET_NAME_B, const_cast<char*>("second")), 0);
  dma_buf_get_name(b, &name);
  EXPECT_EQ(name, "second");
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_SET_NAME_B, const_cast<char*>(n32.c_str())), -EINVAL);
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_SET_NAME_B, nullptr), -EFAULT);
  dma_buf_detach(b, a);
  dma_buf_close(b);
}

TEST(DmaBufOldKernel, SetNameWithAttachmentsWasEbusy) {
  PlatformConfig c;
  c.kernel = kernel_version(5, 15);
  c.ram_bytes = 64ULL << 20;
  PlatformPtr p = make_platform(c);
  DmaBuf* b = alloc_rw(open_heap(p.get(), "system"), 4096);
  EXPECT_EQ(dma_buf_set_name(b, "ok", 3), 0);
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(b, "vgem", &a), 0);
  EXPECT_EQ(dma_buf_set_name(b, "busy", 5), -EBUSY);
  dma_buf_detach(b, a);
  EXPECT_EQ(dma_buf_set_name(b, "ok again", 9), 0);
  // No EXPORT/IMPORT_SYNC_FILE before 6.0.
  DmaBufSyncFileArg arg = {DMA_BUF_SYNC_READ, nullptr};
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg), -ENOTTY);
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg), -ENOTTY);
  dma_buf_close(b);
}

TEST_F(DmaBufTest, SyncFlagValidation) {
  DmaBuf* b = alloc(4096, O_RDWR);
  EXPECT_EQ(dma_buf_cpu_sync(b, 0), -EINVAL);                          // START without R/W
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_END), -EINVAL);           // END without R/W
  EXPECT_EQ(dma_buf_cpu_sync(b, 8 | DMA_BUF_SYNC_READ), -EINVAL);      // outside the mask
  EXPECT_EQ(dma_buf_cpu_sync(b, 1ULL << 63 | DMA_BUF_SYNC_RW), -EINVAL);
  EXPECT_EQ(b->cpu_begin.load() + b->cpu_end.load(), 0u);
  for (uint64_t rw : {DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW}) {
    EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_START | rw), 0);
    EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_END | rw), 0);
  }
  // Not paired, not enforced: END first, START twice.
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), 0);
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
  EXPECT_EQ(b->cpu_begin.load(), 5u);
  EXPECT_EQ(b->cpu_end.load(), 4u);
  // Through the ioctl shim, and the other ioctl error cases.
  struct ::dma_buf_sync sync = {DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ};
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_SYNC, &sync), 0);
  sync.flags = DMA_BUF_SYNC_END;
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_SYNC, &sync), -EINVAL);
  EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_SYNC, nullptr), -EFAULT);
  EXPECT_EQ(dma_buf_ioctl(b, _IO('b', 9), &sync), -ENOTTY);
  EXPECT_EQ(dma_buf_ioctl(b, 0x5401 /* TCGETS */, &sync), -ENOTTY);
  DmaBufSyncFileArg arg = {0, nullptr};
  for (uint32_t bad : {0u, 4u, 3u | 4u, 8u}) {
    arg.flags = bad;
    EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg), -EINVAL) << bad;
    EXPECT_EQ(dma_buf_ioctl(b, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg), -EINVAL) << bad;
  }
  EXPECT_EQ(dma_buf_ioctl_fd(-1, DMA_BUF_IOCTL_SYNC, &sync), -EBADF);
  EXPECT_EQ(dma_buf_ioctl_fd(0, DMA_BUF_IOCTL_SYNC, &sync), -EBADF);  // stdin is not a dma-buf
  dma_buf_close(b);
}

TEST_F(DmaBufTest, MmapChecks) {
  DmaBuf* rw = alloc(8192, O_RDWR);
  DmaBuf* ro = alloc(8192, O_RDONLY);
  DmaBuf* wo = alloc(8192, O_WRONLY);
  DmaBuf* none = alloc(8192, O_ACCMODE);
  Mapping* m = nullptr;
  EXPECT_EQ(dma_buf_mmap(rw, 0, 0, PROT_READ, MAP_SHARED, &m), -EINVAL);      // len 0
  EXPECT_EQ(dma_buf_mmap(rw, 100, 4096, PROT_READ, MAP_SHARED, &m), -EINVAL); // unaligned offset
  EXPECT_EQ(dma_buf_mmap(rw, 0, 4096, PROT_READ, 0, &m), -EINVAL);            // neither shared nor private
  EXPECT_EQ(dma_buf_mmap(rw, 0, 3 * 4096, PROT_READ, MAP_SHARED, &m), -EINVAL);  // beyond the end
  EXPECT_EQ(dma_buf_mmap(rw, 4096, 8192, PROT_READ, MAP_SHARED, &m), -EINVAL);
  EXPECT_EQ(dma_buf_mmap(rw, 8192, 4096, PROT_READ, MAP_SHARED, &m), -EINVAL);
  EXPECT_EQ(dma_buf_mmap(ro, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, &m), -EACCES);
  EXPECT_EQ(dma_buf_mmap(wo, 0, 4096, PROT_WRITE, MAP_SHARED, &m), -EACCES);
  EXPECT_EQ(dma_buf_mmap(none, 0, 4096, PROT_READ, MAP_SHARED, &m), -EACCES);
  // Allowed: read-only shared, copy-on-write private of a read-only fd, a
  // private mapping of a system-heap buffer, a partial window.
  ASSERT_EQ(dma_buf_mmap(ro, 0, 4096, PROT_READ, MAP_SHARED, &m), 0);
  mapping_put(m);
  ASSERT_EQ(dma_buf_mmap(ro, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, &m), 0);
  static_cast<char*>(m->addr)[0] = 1;  // private copy
  mapping_put(m);
  ASSERT_EQ(dma_buf_mmap(rw, 4096, 100, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);
  EXPECT_EQ(m->len, 4096u);
  mapping_put(m);
  // The raw fd enforces the access mode too (also in a child process).
  void* raw = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro->user_fd.load(), 0);
  EXPECT_EQ(raw, MAP_FAILED);
  EXPECT_EQ(errno, EACCES);
  for (DmaBuf* x : {rw, ro, wo, none}) dma_buf_close(x);
}

TEST_F(DmaBufTest, CmaMapsSharedOnly) {
  DmaBuf* b = alloc(8192, O_RDWR, open_heap(p_.get(), "reserved"));
  ASSERT_NE(b, nullptr);
  Mapping* m = nullptr;
  EXPECT_EQ(dma_buf_mmap(b, 0, 8192, PROT_READ, MAP_PRIVATE, &m), -EINVAL);
  ASSERT_EQ(dma_buf_mmap(b, 0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);
  mapping_put(m);
  dma_buf_close(b);
}

TEST_F(DmaBufTest, MappingsShareMemoryAndCountAsReferences) {
  DmaBuf* b = alloc(8192, O_RDWR);
  Mapping *m1 = nullptr, *m2 = nullptr;
  ASSERT_EQ(dma_buf_mmap(b, 0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, &m1), 0);
  ASSERT_EQ(dma_buf_mmap(b, 4096, 4096, PROT_READ, MAP_SHARED, &m2), 0);
  EXPECT_EQ(b->file_count.load(), 3);
  static_cast<char*>(m1->addr)[4096] = 42;
  EXPECT_EQ(static_cast<char*>(m2->addr)[0], 42);
  mapping_invalidate(m2);
  EXPECT_EQ(b->file_count.load(), 2);
  mapping_invalidate(m2);  // idempotent
  EXPECT_EQ(b->file_count.load(), 2);
  mapping_put(m2);
  mapping_put(m1);
  EXPECT_EQ(b->file_count.load(), 1);
  dma_buf_close(b);
}

TEST_F(DmaBufTest, UnmapAndCloseMakeMappingsUnreadable) {
  DmaBuf* b = alloc(8192, O_RDWR);
  Mapping *m1 = nullptr, *m2 = nullptr;
  ASSERT_EQ(dma_buf_mmap(b, 0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, &m1), 0);
  ASSERT_EQ(dma_buf_mmap(b, 0, 4096, PROT_READ, MAP_SHARED, &m2), 0);
  memset(m1->addr, 0x5a, 8192);
  EXPECT_EQ(map_perms(m1->addr), "rw-s");
  // unmap(): CPU access ends now, the address range stays reserved.
  mapping_invalidate(m1);
  EXPECT_FALSE(mapping_valid(m1));
  EXPECT_EQ(map_perms(m1->addr), "---p");
  // close(): every remaining mapping is invalidated, the buffer is released
  // even though the Mapping objects (think: ArrayBuffers awaiting GC) live on.
  dma_buf_get(b);
  EXPECT_EQ(dma_buf_close(b), 0);
  EXPECT_FALSE(mapping_valid(m2));
  EXPECT_EQ(map_perms(m2->addr), "---p");
  EXPECT_EQ(b->file_count.load(), 1);  // just our extra reference
  EXPECT_EQ(dma_buf_close(b), -EBADF);
  dma_buf_put(b);  // released now
  BufInfoTotals t;
  dma_buf_bufinfo(p_.get(), &t);
  EXPECT_EQ(t.objects, 0u);
  void* a1 = m1->addr;
  mapping_put(m1);  // the "finalizers": the ranges go back only now
  mapping_put(m2);
  EXPECT_EQ(map_perms(a1), "");
}

TEST_F(DmaBufTest, AChildProcessSeesTheSameMemoryThroughTheFd) {
  DmaBuf* b = alloc(4096, O_RDWR);  // no O_CLOEXEC: inherited across exec too
  Mapping* m = nullptr;
  ASSERT_EQ(dma_buf_mmap(b, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);
  const int fd = b->user_fd.load();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child has only the fd: fstat, mmap, write.
    struct stat st;
    if (fstat(fd, &st) || st.st_size != 4096) _exit(2);
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) _exit(3);
    strcpy(static_cast<char*>(p), "from the child");
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_STREQ(static_cast<char*>(m->addr), "from the child");
  mapping_put(m);
  dma_buf_close(b);
}

TEST_F(DmaBufTest, ProtectedBuffersRefuseCpuMappingsButSync) {
  PlatformPtr p = make_platform(full_config());
  DmaBuf* b = alloc_rw(open_heap(p.get(), "protected,secure-video"), 1 << 20);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->exp_name, "tee");
  Mapping* m = nullptr;
  EXPECT_EQ(dma_buf_mmap(b, 0, 4096, PROT_READ, MAP_SHARED, &m), -EINVAL);
  EXPECT_EQ(dma_buf_mmap(b, 0, 4096, PROT_READ, MAP_PRIVATE, &m), -EINVAL);
  // No begin/end_cpu_access op: SYNC succeeds (only the fence wait runs).
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
  EXPECT_EQ(dma_buf_cpu_sync(b, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), 0);
  // A device can still import it: one contiguous run.
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(b, "secure-decoder", &a), 0);
  const SgTable* t = nullptr;
  ASSERT_EQ(dma_buf_map_attachment(a, DMA_FROM_DEVICE, &t), 0);
  ASSERT_EQ(t->entries.size(), 1u);
  EXPECT_EQ(t->entries[0].length, 1u << 20);
  dma_buf_unmap_attachment(a, t, DMA_FROM_DEVICE);
  dma_buf_detach(b, a);
  dma_buf_close(b);
}

TEST_F(DmaBufTest, AttachmentsKeepAClosedBufferAlive) {
  DmaBuf* b = alloc(4096, O_RDWR);
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(b, "gpu", &a), 0);
  EXPECT_EQ(b->file_count.load(), 2);
  const uint64_t free_before = p_->pages->stats().free_pages;
  ASSERT_EQ(dma_buf_close(b), 0);
  BufInfoTotals t;
  dma_buf_bufinfo(p_.get(), &t);
  EXPECT_EQ(t.objects, 1u);  // still there, held by the importer
  EXPECT_EQ(p_->pages->stats().free_pages, free_before);
  const SgTable* sgt = nullptr;
  EXPECT_EQ(dma_buf_map_attachment(a, DMA_TO_DEVICE, &sgt), 0);
  dma_buf_unmap_attachment(a, sgt, DMA_TO_DEVICE);
  dma_buf_detach(b, a);  // last reference: released
  dma_buf_bufinfo(p_.get(), &t);
  EXPECT_EQ(t.objects, 0u);
  EXPECT_EQ(p_->pages->stats().free_pages, free_before + 1);
}

TEST_F(DmaBufTest, FromFdOnlyKnowsOurFds) {
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_buf_from_fd(-1, &b), -EBADF);
  EXPECT_EQ(dma_buf_from_fd(0, &b), -EBADF);
  EXPECT_EQ(dma_buf_close_fd(0), -EBADF);
  DmaBuf* x = alloc(4096, O_RDWR);
  ASSERT_EQ(dma_buf_from_fd(x->user_fd.load(), &b), 0);
  EXPECT_EQ(b, x);
  EXPECT_EQ(x->file_count.load(), 2);
  dma_buf_put(b);
  const int fd = x->user_fd.load();
  dma_buf_close(x);
  EXPECT_EQ(dma_buf_from_fd(fd, &b), -EBADF);
}

TEST_F(DmaBufTest, FileCreationFailuresReleaseEverything) {
  const uint64_t free_before = p_->pages->stats().free_pages;
  FaultSpec once;
  once.nth = 1;
  DmaBuf* b = nullptr;
  ASSERT_EQ(platform_set_fault(p_.get(), "dma_buf_export", once), 0);
  EXPECT_EQ(dma_heap_alloc(sys_, 1 << 20, O_RDWR, 0, &b), -ENOMEM);
  ASSERT_EQ(platform_set_fault(p_.get(), "dma_buf_fd", once), 0);
  EXPECT_EQ(dma_heap_alloc(sys_, 1 << 20, O_RDWR, 0, &b), -EMFILE);
  once.error = -ENFILE;
  ASSERT_EQ(platform_set_fault(p_.get(), "dma_buf_fd", once), 0);
  EXPECT_EQ(dma_heap_alloc(open_heap(p_.get(), "reserved"), 1 << 20, O_RDWR, 0, &b), -ENFILE);
  EXPECT_EQ(p_->pages->stats().free_pages, free_before);
  EXPECT_EQ(p_->cma->free_pages(), p_->cma->npages());
  BufInfoTotals t;
  dma_buf_bufinfo(p_.get(), &t);
  EXPECT_EQ(t.objects, 0u);
  // The inode numbers used by the failed exports are gone for good, as in the kernel.
  b = alloc(4096, O_RDWR);
  EXPECT_EQ(b->ino, 3u);
  dma_buf_close(b);
}

}  // namespace
