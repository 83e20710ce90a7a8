// The kernel's userspace dmabuf-heap selftest
// (tools/testing/selftests/dmabuf-heaps/dmabuf-heap.c), ported against the
// emulated heaps: every case runs for every heap of a platform that has them
// all, through the same UAPI shapes (the allocation ioctl with its struct,
// DMA_BUF_IOCTL_SYNC by number, mmap of the returned fd, close). "vgem" is an
// emulated static importer. Protected heaps cannot be mapped by the CPU, so the
// cases that write through a mapping assert that refusal instead (the real
// selftest fails on such heaps).
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/mapping.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

constexpr size_t ONE_MEG = 1024 * 1024;

// The UAPI constants we hard-code must be the kernel headers' values.
static_assert(DMA_HEAP_IOCTL_ALLOC == kDmaHeapIoctlAlloc);
static_assert(DMA_BUF_IOCTL_SYNC == kDmaBufIoctlSync);
static_assert(DMA_BUF_SET_NAME_A == kDmaBufSetNameA);
static_assert(DMA_BUF_SET_NAME_B == kDmaBufSetNameB);
static_assert(DMA_BUF_IOCTL_EXPORT_SYNC_FILE == kDmaBufIoctlExportSyncFile);
static_assert(DMA_BUF_IOCTL_IMPORT_SYNC_FILE == kDmaBufIoctlImportSyncFile);
static_assert(DMA_HEAP_VALID_FD_FLAGS == kDmaHeapValidFdFlags);
static_assert(O_CLOEXEC == static_cast<int>(kOCloexec));

PlatformPtr& platform() {
  static PlatformPtr p = make_platform(full_config());
  return p;
}

int dmabuf_heap_alloc_fdflags(Heap* heap, size_t len, unsigned fd_flags, unsigned heap_flags,
                              int* dmabuf_fd) {
  dma_heap_allocation_data data = {};
  data.len = len;
  data.fd = 0;
  data.fd_flags = fd_flags;
  data.heap_flags = heap_flags;
  long ret = dma_heap_ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data);
  if (ret < 0) return static_cast<int>(ret);
  *dmabuf_fd = static_cast<int>(data.fd);
  return 0;
}

int dmabuf_heap_alloc(Heap* heap, size_t len, unsigned flags, int* dmabuf_fd) {
  return dmabuf_heap_alloc_fdflags(heap, len, O_RDWR | O_CLOEXEC, flags, dmabuf_fd);
}

int dmabuf_sync(int fd, int start_stop) {
  struct ::dma_buf_sync sync = {};
  sync.flags = start_stop | DMA_BUF_SYNC_RW;
  return static_cast<int>(dma_buf_ioctl_fd(fd, DMA_BUF_IOCTL_SYNC, &sync));
}

class DmaBufHeapSelftest : public ::testing::TestWithParam<std::string> {
 protected:
  Heap* heap() { return open_heap(platform().get(), GetParam().c_str()); }
  bool cpu_access() { return heap()->cpu_access; }
};

TEST_P(DmaBufHeapSelftest, test_alloc_and_import) {
  Heap* h = heap();
  int dmabuf_fd = -1;
  ASSERT_EQ(dmabuf_heap_alloc(h, ONE_MEG, 0, &dmabuf_fd), 0);
  ASSERT_GE(dmabuf_fd, 0);
  struct stat st;
  ASSERT_EQ(fstat(dmabuf_fd, &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), ONE_MEG);

  void* p = mmap(nullptr, ONE_MEG, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf_fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  if (!cpu_access()) {
    // The emulation's CPU path refuses what the raw memfd cannot.
    munmap(p, ONE_MEG);
    DmaBuf* buf = nullptr;
    ASSERT_EQ(dma_buf_from_fd(dmabuf_fd, &buf), 0);
    Mapping* m = nullptr;
    EXPECT_EQ(dma_buf_mmap(buf, 0, ONE_MEG, PROT_READ, MAP_SHARED, &m), -EINVAL);
    dma_buf_put(buf);
    p = nullptr;
  } else {
    EXPECT_EQ(dmabuf_sync(dmabuf_fd, DMA_BUF_SYNC_START), 0);
    memset(p, 1, ONE_MEG / 2);
    memset(static_cast<char*>(p) + ONE_MEG / 2, 0, ONE_MEG / 2);
    EXPECT_EQ(dmabuf_sync(dmabuf_fd, DMA_BUF_SYNC_END), 0);
  }

  // "vgem" imports the buffer (DRM_IOCTL_PRIME_FD_TO_HANDLE): an attachment.
  DmaBuf* buf = nullptr;
  ASSERT_EQ(dma_buf_from_fd(dmabuf_fd, &buf), 0);
  Attachment* vgem = nullptr;
  ASSERT_EQ(dma_buf_attach(buf, "vgem", &vgem), 0) << "Import buffer";
  const SgTable* sgt = nullptr;
  ASSERT_EQ(dma_buf_map_attachment(vgem, DMA_BIDIRECTIONAL, &sgt), 0);
  uint64_t mapped = 0;
  for (auto& e : sgt->entries) mapped += e.length;
  EXPECT_EQ(mapped, ONE_MEG);

  ASSERT_EQ(dmabuf_sync(dmabuf_fd, DMA_BUF_SYNC_START), 0);
  if (p) memset(p, 0xff, ONE_MEG);
  ASSERT_EQ(dmabuf_sync(dmabuf_fd, DMA_BUF_SYNC_END), 0);
  if (cpu_access()) {
    // Cache maintenance ran for the mapped attachment (system/CMA heaps).
    EXPECT_GE(vgem->cpu_syncs.load(), 1u);
    EXPECT_GE(vgem->device_syncs.load(), 1u);
  }

  dma_buf_unmap_attachment(vgem, sgt, DMA_BIDIRECTIONAL);
  dma_buf_detach(buf, vgem);  // close_handle
  dma_buf_put(buf);
  if (p) munmap(p, ONE_MEG);
  EXPECT_EQ(dma_buf_close_fd(dmabuf_fd), 0);
}

void test_alloc_zeroed(Heap* h, size_t size, bool cpu_access) {
  int dmabuf_fd[32];
  for (int i = 0; i < 32; i++) {
    ASSERT_EQ(dmabuf_heap_alloc(h, size, 0, &dmabuf_fd[i]), 0) << "Allocation " << i;
    if (!cpu_access) continue;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf_fd[i], 0);
    ASSERT_NE(p, MAP_FAILED);
    dmabuf_sync(dmabuf_fd[i], DMA_BUF_SYNC_START);
    memset(p, 0xff, size);
    dmabuf_sync(dmabuf_fd[i], DMA_BUF_SYNC_END);
    munmap(p, size);
  }
  for (int i = 0; i < 32; i++) EXPECT_EQ(dma_buf_close_fd(dmabuf_fd[i]), 0);

  for (int i = 0; i < 32; i++) {
    ASSERT_EQ(dmabuf_heap_alloc(h, size, 0, &dmabuf_fd[i]), 0) << "Allocation " << i;
    if (!cpu_access) continue;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf_fd[i], 0);
    ASSERT_NE(p, MAP_FAILED);
    dmabuf_sync(dmabuf_fd[i], DMA_BUF_SYNC_START);
    const char* c = static_cast<const char*>(p);
    for (size_t j = 0; j < size; j++) ASSERT_EQ(c[j], 0) << "not zeroed @ " << j;
    dmabuf_sync(dmabuf_fd[i], DMA_BUF_SYNC_END);
    munmap(p, size);
  }
  for (int i = 0; i < 32; i++) EXPECT_EQ(dma_buf_close_fd(dmabuf_fd[i]), 0);
}

TEST_P(DmaBufHeapSelftest, test_alloc_zeroed_4k) { test_alloc_zeroed(heap(), 4 * 1024, cpu_access()); }
TEST_P(DmaBufHeapSelftest, test_alloc_zeroed_1m) { test_alloc_zeroed(heap(), ONE_MEG, cpu_access()); }

// (Theoretical) older and newer versions of the allocation struct.
TEST_P(DmaBufHeapSelftest, test_alloc_compat) {
  struct dma_heap_allocation_data_smaller {
    __u64 len;
    __u32 fd;
    __u32 fd_flags;
  } older = {ONE_MEG, 0, O_RDWR | O_CLOEXEC};
  const unsigned older_alloc_ioctl = _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, dma_heap_allocation_data_smaller);
  ASSERT_EQ(dma_heap_ioctl(heap(), older_alloc_ioctl, &older), 0) << "dmabuf_heap_alloc_older";
  EXPECT_EQ(dma_buf_close_fd(static_cast<int>(older.fd)), 0);

  struct dma_heap_allocation_data_bigger {
    __u64 len;
    __u32 fd;
    __u32 fd_flags;
    __u64 heap_flags;
    __u64 garbage1;
    __u64 garbage2;
    __u64 garbage3;
  } newer = {ONE_MEG, 0, O_RDWR | O_CLOEXEC, 0, 0xffffffff, 0x88888888, 0x11111111};
  const unsigned newer_alloc_ioctl = _IOWR(DMA_HEAP_IOC_MAGIC, 0x0, dma_heap_allocation_data_bigger);
  ASSERT_EQ(dma_heap_ioctl(heap(), newer_alloc_ioctl, &newer), 0) << "dmabuf_heap_alloc_newer";
  EXPECT_EQ(newer.garbage1, 0xffffffffu);  // bytes past the kernel's struct are left alone
  EXPECT_EQ(dma_buf_close_fd(static_cast<int>(newer.fd)), 0);
}

TEST_P(DmaBufHeapSelftest, test_alloc_errors) {
  int dmabuf_fd = -1;
  // "invalid fd": no heap behind the handle.
  EXPECT_NE(dmabuf_heap_alloc(nullptr, ONE_MEG, 0x111111, &dmabuf_fd), 0);
  EXPECT_EQ(dmabuf_heap_alloc(heap(), ONE_MEG, 0x111111, &dmabuf_fd), -EINVAL)
      << "Error expected on invalid heap flags";
  EXPECT_EQ(dmabuf_heap_alloc_fdflags(heap(), ONE_MEG, ~(O_RDWR | O_CLOEXEC), 0, &dmabuf_fd), -EINVAL)
      << "Error expected on invalid fd flags";
  EXPECT_EQ(dmabuf_fd, -1);
}

std::vector<std::string> heap_names() {
  std::vector<std::string> names;
  for (const HeapInfo& h : dma_heap_list(platform().get())) names.push_back(h.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllHeaps, DmaBufHeapSelftest, ::testing::ValuesIn(heap_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string s;
                           for (char c : i.param) s += isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return s;
                         });

TEST(DmaBufHeapSelftestSetup, PlatformHasEveryHeapKind) {
  EXPECT_EQ(heap_names(), (std::vector<std::string>{"default_cma_region", "protected,secure-video",
                                                   "reserved", "system", "system_cc_shared"}));
}

}  // namespace
