// Implicit sync on dma-bufs: the attached reservation object,
// DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE with read/write semantics,
// begin_cpu_access waiting for the fences, poll readiness, bufinfo's fence lines.
#include <fcntl.h>
#include <linux/dma-buf.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/fence/unwrap.h"
#include "core/resv/resv.h"
#include "core/sync/sync_file.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

const char* mock_name(Fence*) { return "mock"; }
const FenceOps kMockOps = {.get_driver_name = mock_name, .get_timeline_name = mock_name};

Fence* mock_fence(uint64_t context = 0, uint64_t seqno = 1) {
  Fence* f = fence_alloc();
  fence_init(f, &kMockOps, nullptr, context ? context : fence_context_alloc(1), seqno);
  return f;
}

std::set<Fence*> leaves(Fence* head) {
  std::set<Fence*> out;
  FenceUnwrap it;
  Fence* f;
  fence_unwrap_for_each(f, &it, head) out.insert(f);
  return out;
}

class ImplicitSync : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 64ULL << 20;
    p_ = make_platform(c);
    buf_ = alloc_rw(open_heap(p_.get(), "system"), 4096);
  }
  void TearDown() override { dma_buf_close(buf_); }

  // Imports `f` through a sync_file, as userspace would.
  int import(Fence* f, uint32_t flags) {
    SyncFile* sf = sync_file_create(f);
    int err = dma_buf_sync_file_import(buf_, flags, sf);
    sync_file_put(sf);
    return err;
  }
  // The fence an exported sync_file carries (a new reference).
  Fence* exported(uint32_t flags) {
    SyncFile* sf = nullptr;
    EXPECT_EQ(dma_buf_sync_file_export(buf_, flags, &sf), 0);
    if (!sf) return nullptr;
    Fence* f = sync_file_get_fence(sf);
    sync_file_put(sf);
    return f;
  }
  PlatformPtr p_;
  DmaBuf* buf_ = nullptr;
};

TEST_F(ImplicitSync, NothingPendingExportsTheSignalledStub) {
  Fence* stub = fence_get_stub();
  for (uint32_t flags : {DMA_BUF_SYNC_READ, DMA_BUF_SYNC_WRITE, DMA_BUF_SYNC_RW}) {
    Fence* f = exported(flags);
    EXPECT_EQ(f, stub);
    EXPECT_TRUE(fence_is_signaled(f));
    fence_put(f);
  }
  fence_put(stub);
  EXPECT_EQ(dma_buf_poll(buf_), 0x1u | 0x4u);
}

TEST_F(ImplicitSync, ReadWaitsForWritersWriteWaitsForEveryone) {
  Fence* w = mock_fence();
  Fence* r = mock_fence();
  ASSERT_EQ(import(w, DMA_BUF_SYNC_WRITE), 0);
  ASSERT_EQ(import(r, DMA_BUF_SYNC_READ), 0);
  // A reader waits for the writer only.
  Fence* f = exported(DMA_BUF_SYNC_READ);
  EXPECT_EQ(f, w);
  fence_put(f);
  // A writer waits for both: one fence (an array) covering them.
  f = exported(DMA_BUF_SYNC_WRITE);
  EXPECT_EQ(leaves(f), (std::set<Fence*>{w, r}));
  fence_put(f);
  f = exported(DMA_BUF_SYNC_RW);
  EXPECT_EQ(leaves(f), (std::set<Fence*>{w, r}));
  fence_put(f);
  EXPECT_EQ(dma_buf_poll(buf_), 0u);

  fence_signal(w);
  EXPECT_EQ(dma_buf_poll(buf_), 0x1u);  // readable: no pending writer
  f = exported(DMA_BUF_SYNC_READ);
  EXPECT_TRUE(fence_is_signaled(f));    // nothing left for a reader: the stub
  fence_put(f);
  f = exported(DMA_BUF_SYNC_WRITE);
  EXPECT_EQ(f, r);
  fence_put(f);
  fence_signal(r);
  EXPECT_EQ(dma_buf_poll(buf_), 0x1u | 0x4u);
  fence_put(w);
  fence_put(r);
}

TEST_F(ImplicitSync, ImportUnwrapsContainers) {
  Fence* a = mock_fence();
  Fence* b = mock_fence();
  SyncFile* sa = sync_file_create(a);
  SyncFile* sb = sync_file_create(b);
  SyncFile* merged = sync_file_merge("both", sa, sb);
  ASSERT_NE(merged, nullptr);
  ASSERT_EQ(dma_buf_sync_file_import(buf_, DMA_BUF_SYNC_WRITE, merged), 0);
  // The leaves went in, not the array.
  unsigned n = 0;
  Fence** fences = nullptr;
  ASSERT_EQ(resv_get_fences(dma_buf_resv(buf_), RESV_USAGE_WRITE, &n, &fences), 0);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ((std::set<Fence*>(fences, fences + n)), (std::set<Fence*>{a, b}));
  for (unsigned i = 0; i < n; ++i) fence_put(fences[i]);
  free(fences);
  for (SyncFile* s : {sa, sb, merged}) sync_file_put(s);
  fence_signal(a);
  fence_signal(b);
  fence_put(a);
  fence_put(b);
}

TEST_F(ImplicitSync, FlagAndArgumentErrors) {
  Fence* f = mock_fence();
  SyncFile* sf = sync_file_create(f);
  SyncFile* out = nullptr;
  for (uint32_t bad : {0u, 4u, 3u | 4u, 8u, 1u << 31}) {
    EXPECT_EQ(dma_buf_sync_file_export(buf_, bad, &out), -EINVAL) << bad;
    EXPECT_EQ(dma_buf_sync_file_import(buf_, bad, sf), -EINVAL) << bad;
  }
  EXPECT_EQ(dma_buf_sync_file_import(buf_, DMA_BUF_SYNC_READ, nullptr), -EINVAL);  // not a sync_file
  EXPECT_TRUE(resv_test_signaled(dma_buf_resv(buf_), RESV_USAGE_BOOKKEEP));  // nothing was added
  // The ioctl shim, with the sync_file object where the UAPI has an fd.
  DmaBufSyncFileArg arg = {DMA_BUF_SYNC_WRITE, sf};
  ASSERT_EQ(dma_buf_ioctl(buf_, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &arg), 0);
  arg = {DMA_BUF_SYNC_READ, nullptr};
  ASSERT_EQ(dma_buf_ioctl(buf_, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &arg), 0);
  ASSERT_NE(arg.fd, nullptr);
  EXPECT_EQ(arg.fd->fence, f);
  sync_file_put(arg.fd);
  sync_file_put(sf);
  fence_signal(f);
  fence_put(f);
}

TEST_F(ImplicitSync, BeginCpuAccessWaitsForTheRightFences) {
  Fence* r = mock_fence();
  ASSERT_EQ(import(r, DMA_BUF_SYNC_READ), 0);
  // Reading needs no wait for a pending reader.
  EXPECT_EQ(dma_buf_cpu_sync(buf_, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ), 0);
  // Writing waits for it.
  std::atomic<bool> signalled{false};
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    signalled = true;
    fence_signal(r);
  });
  EXPECT_EQ(dma_buf_cpu_sync(buf_, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE), 0);
  EXPECT_TRUE(signalled.load());
  t.join();
  // END never waits.
  Fence* w = mock_fence();
  ASSERT_EQ(import(w, DMA_BUF_SYNC_WRITE), 0);
  EXPECT_EQ(dma_buf_cpu_sync(buf_, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), 0);
  fence_signal(w);
  EXPECT_EQ(dma_buf_cpu_sync(buf_, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ), 0);
  fence_put(r);
  fence_put(w);
}

TEST_F(ImplicitSync, BufinfoListsTheFences) {
  Fence* w = mock_fence(0, 7);
  ASSERT_EQ(import(w, DMA_BUF_SYNC_WRITE), 0);
  std::string s = dma_buf_bufinfo(p_.get());
  const std::string line = "\twrite fence:" + fence_describe(w);
  EXPECT_NE(s.find("\tsystem\t00000001\t<none>\n" + line + "\tAttached Devices:\n"), std::string::npos) << s;
  // A caller holding the reservation lock can still read bufinfo and SYNC.
  dma_buf_resv_lock(buf_);
  fence_signal(w);
  EXPECT_NE(dma_buf_bufinfo(p_.get()).find("write fence:"), std::string::npos);
  EXPECT_EQ(dma_buf_cpu_sync(buf_, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), 0);
  dma_buf_resv_unlock(buf_);
  fence_put(w);
}

TEST_F(ImplicitSync, ReleasingABufferDropsItsFences) {
  Fence* w = mock_fence();
  ASSERT_EQ(import(w, DMA_BUF_SYNC_WRITE), 0);
  EXPECT_EQ(w->refcount.load(), 2u);  // ours + the reservation object's
  DmaBuf* b = buf_;
  buf_ = alloc_rw(open_heap(p_.get(), "system"), 4096);  // TearDown closes this one
  dma_buf_close(b);
  EXPECT_EQ(w->refcount.load(), 1u);
  fence_signal(w);
  fence_put(w);
}

}  // namespace
