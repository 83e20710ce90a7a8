// Importers (static, dynamic, pinned) on heap buffers and on a revocable,
// VFIO-like exporter (heaps-uapi.md §5).
#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "core/buffer/attachment.h"
#include "core/buffer/mapping.h"
#include "core/buffer/vfio_dmabuf.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

std::atomic<int> g_moves{0};
void count_move(Attachment*) { g_moves.fetch_add(1); }
const ImporterOps kDynamic = {.move_notify = count_move, .allow_peer2peer = false};
const ImporterOps kDynamicP2p = {.move_notify = count_move, .allow_peer2peer = true};

void bump(void* data) { static_cast<std::atomic<int>*>(data)->fetch_add(1); }

class Attach : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 64ULL << 20;
    p_ = make_platform(c);
    buf_ = alloc_rw(open_heap(p_.get(), "system"), 64 << 10);
    g_moves = 0;
  }
  void TearDown() override {
    if (buf_) dma_buf_close(buf_);
  }
  std::string devices() {
    std::string s = dma_buf_bufinfo(p_.get());
    return s.substr(s.find("Attached Devices:"));
  }
  PlatformPtr p_;
  DmaBuf* buf_ = nullptr;
};

TEST_F(Attach, StaticImporterOfAHeapBufferMapsOnDemand) {
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(buf_, "gpu", &a), 0);
  EXPECT_EQ(a->sgt, nullptr);  // heap and importer agree: nothing cached
  const SgTable* t = nullptr;
  ASSERT_EQ(dma_buf_map_attachment(a, DMA_TO_DEVICE, &t), 0);
  ASSERT_EQ(t->entries.size(), 1u);
  EXPECT_EQ(t->entries[0].length, 64u << 10);
  EXPECT_EQ(a->map_count, 1u);
  dma_buf_unmap_attachment(a, t, DMA_TO_DEVICE);
  EXPECT_EQ(a->map_count, 0u);
  dma_buf_detach(buf_, a);
}

TEST_F(Attach, DynamicImporterOfAHeapBufferGetsACachedMappingAndNoopPins) {
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_dynamic_attach(buf_, "rdma", &kDynamic, nullptr, &a), 0);
  ASSERT_NE(a->sgt, nullptr);  // importer dynamic, exporter not: mapped at attach
  EXPECT_EQ(a->dir, DMA_BIDIRECTIONAL);
  dma_buf_resv_lock(buf_);
  EXPECT_EQ(dma_buf_pin_locked(a), 0);  // heaps have no pin: always fine
  const SgTable* t = nullptr;
  EXPECT_EQ(dma_buf_map_attachment_locked(a, DMA_FROM_DEVICE, &t), 0);
  EXPECT_EQ(t, a->sgt);
  dma_buf_unmap_attachment_locked(a, t, DMA_FROM_DEVICE);
  dma_buf_move_notify_locked(buf_);
  dma_buf_unpin_locked(a);
  dma_buf_resv_unlock(buf_);
  EXPECT_EQ(g_moves.load(), 1);
  EXPECT_EQ(a->moves.load(), 1u);
  dma_buf_detach(buf_, a);
}

TEST_F(Attach, RulesAndWarnings) {
  WarnCapture w;
  Attachment* a = nullptr;
  const ImporterOps no_notify = {.move_notify = nullptr, .allow_peer2peer = true};
  EXPECT_EQ(dma_buf_dynamic_attach(buf_, "x", &no_notify, nullptr, &a), -EINVAL);
  EXPECT_EQ(dma_buf_attach(buf_, nullptr, &a), -EINVAL);
  EXPECT_EQ(dma_buf_attach(nullptr, "x", &a), -EINVAL);
  ASSERT_EQ(dma_buf_dynamic_attach(buf_, "x", &kDynamic, nullptr, &a), 0);
  EXPECT_EQ(dma_buf_pin_locked(a), 0);  // without the reservation lock: warns
  EXPECT_EQ(w.count_containing("resv_assert_held"), 1u);
  dma_buf_resv_lock(buf_);
  dma_buf_unpin_locked(a);
  dma_buf_unpin_locked(a);  // not pinned any more
  dma_buf_resv_unlock(buf_);
  EXPECT_EQ(w.count_containing("not pinned"), 1u);
  DmaBuf* other = alloc_rw(open_heap(p_.get(), "system"), 4096);
  dma_buf_detach(other, a);  // wrong buffer: refused
  EXPECT_EQ(w.count_containing("does not belong"), 1u);
  dma_buf_detach(buf_, a);
  dma_buf_close(other);
}

TEST_F(Attach, TheTypeScriptShapedAttach) {
  std::atomic<int> notified{0};
  Attachment *st = nullptr, *dyn = nullptr, *pinned = nullptr;
  ASSERT_EQ(dma_buf_attach_importer(buf_, "static", false, false, nullptr, nullptr, &st), 0);
  EXPECT_EQ(st->importer_ops, nullptr);
  ASSERT_EQ(dma_buf_attach_importer(buf_, "dynamic", false, false, bump, &notified, &dyn), 0);
  ASSERT_EQ(dma_buf_attach_importer(buf_, "pinned", true, false, nullptr, nullptr, &pinned), 0);
  EXPECT_EQ(pinned->pin_count, 1u);
  EXPECT_EQ(buf_->file_count.load(), 4);  // fd + three importers
  EXPECT_NE(devices().find("\tpinned\n\tdynamic\n\tstatic\nTotal 3 devices attached"), std::string::npos);
  dma_buf_resv_lock(buf_);
  dma_buf_move_notify_locked(buf_);
  dma_buf_resv_unlock(buf_);
  EXPECT_EQ(notified.load(), 1);       // the dynamic one
  EXPECT_EQ(pinned->moves.load(), 1u);  // told, and ignores it
  EXPECT_EQ(st->moves.load(), 0u);      // static importers have no move_notify
  for (Attachment* a : {st, dyn, pinned}) dma_buf_detach(buf_, a);
  EXPECT_EQ(buf_->file_count.load(), 1);
}

// --- the revocable exporter ---

class Vfio : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 64ULL << 20;
    p_ = make_platform(c);
    ASSERT_EQ(vfio_dmabuf_export(p_.get(), 1 << 20, O_RDWR | O_CLOEXEC, &buf_), 0);
    g_moves = 0;
  }
  void TearDown() override { dma_buf_close(buf_); }
  PlatformPtr p_;
  DmaBuf* buf_ = nullptr;
};

TEST_F(Vfio, ExportRules) {
  EXPECT_EQ(buf_->exp_name, "vfio_pci_core");
  DmaBuf* b = nullptr;
  EXPECT_EQ(vfio_dmabuf_export(p_.get(), 0, O_RDWR, &b), -EINVAL);
  EXPECT_EQ(vfio_dmabuf_export(p_.get(), 4097, O_RDWR, &b), -EINVAL);
  EXPECT_EQ(vfio_dmabuf_export(p_.get(), 4096, O_RDWR | O_NONBLOCK, &b), -EINVAL);
  DmaBuf* heapbuf = alloc_rw(open_heap(p_.get(), "system"), 4096);
  EXPECT_EQ(vfio_dmabuf_set_revoked(heapbuf, true), -EINVAL);  // not a VFIO buffer
  dma_buf_close(heapbuf);
  SgTable t = dma_buf_sg_table(buf_);
  ASSERT_EQ(t.entries.size(), 1u);
  EXPECT_LT(t.entries[0].phys, 1ULL << 32);  // a BAR, not RAM
}

TEST_F(Vfio, PinnedAndStaticImportersAreRefused) {
  Attachment* a = nullptr;
  EXPECT_EQ(dma_buf_attach(buf_, "static", &a), -EOPNOTSUPP);
  EXPECT_EQ(dma_buf_attach_importer(buf_, "rdma-pinned", true, true, nullptr, nullptr, &a), -EOPNOTSUPP);
  // MMIO is only reachable peer to peer.
  EXPECT_EQ(dma_buf_dynamic_attach(buf_, "no-p2p", &kDynamic, nullptr, &a), -EOPNOTSUPP);
  ASSERT_EQ(dma_buf_dynamic_attach(buf_, "odp-rdma", &kDynamicP2p, nullptr, &a), 0);
  dma_buf_resv_lock(buf_);
  EXPECT_EQ(dma_buf_pin_locked(a), -EOPNOTSUPP);  // pinning later is refused too
  EXPECT_EQ(a->pin_count, 0u);
  dma_buf_resv_unlock(buf_);
  EXPECT_EQ(buf_->attachments.size(), 1u);  // the refused ones left nothing behind
  EXPECT_EQ(buf_->file_count.load(), 2);
  dma_buf_detach(buf_, a);
}

TEST_F(Vfio, RevokeNotifiesImportersAndStopsMappings) {
  Attachment *a = nullptr, *b = nullptr;
  ASSERT_EQ(dma_buf_dynamic_attach(buf_, "nic0", &kDynamicP2p, nullptr, &a), 0);
  ASSERT_EQ(dma_buf_dynamic_attach(buf_, "nic1", &kDynamicP2p, nullptr, &b), 0);
  EXPECT_EQ(a->sgt, nullptr);  // both dynamic: no cached mapping
  const SgTable* t = nullptr;
  ASSERT_EQ(dma_buf_map_attachment(a, DMA_BIDIRECTIONAL, &t), 0);
  dma_buf_unmap_attachment(a, t, DMA_BIDIRECTIONAL);
  Mapping* m = nullptr;
  EXPECT_EQ(dma_buf_mmap(buf_, 0, 4096, PROT_READ, MAP_PRIVATE, &m), -EINVAL);
  ASSERT_EQ(dma_buf_mmap(buf_, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);

  ASSERT_EQ(vfio_dmabuf_set_revoked(buf_, true), 0);
  EXPECT_TRUE(vfio_dmabuf_is_revoked(buf_));
  EXPECT_EQ(g_moves.load(), 2);  // one move_notify per importer
  EXPECT_FALSE(mapping_valid(m));  // CPU mappings zapped
  EXPECT_EQ(dma_buf_map_attachment(a, DMA_BIDIRECTIONAL, &t), -ENODEV);
  Attachment* c = nullptr;
  EXPECT_EQ(dma_buf_dynamic_attach(buf_, "late", &kDynamicP2p, nullptr, &c), -ENODEV);
  Mapping* m2 = nullptr;
  EXPECT_EQ(dma_buf_mmap(buf_, 0, 4096, PROT_READ, MAP_SHARED, &m2), -ENODEV);
  ASSERT_EQ(vfio_dmabuf_set_revoked(buf_, true), 0);  // unchanged: no notification
  EXPECT_EQ(g_moves.load(), 2);

  ASSERT_EQ(vfio_dmabuf_set_revoked(buf_, false), 0);  // memory enabled again
  EXPECT_EQ(g_moves.load(), 4);
  ASSERT_EQ(dma_buf_map_attachment(b, DMA_BIDIRECTIONAL, &t), 0);
  dma_buf_unmap_attachment(b, t, DMA_BIDIRECTIONAL);
  mapping_put(m);
  dma_buf_detach(buf_, a);
  dma_buf_detach(buf_, b);
}

}  // namespace
