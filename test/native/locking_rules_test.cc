// The locking rules the core enforces for callers that cannot promise them
// (the JavaScript binding): resv writers refuse without the lock (-EPERM), a
// lock that would wait for itself is refused (-EBUSY / -EALREADY), and the
// dma-buf entry points that take a buffer's reservation lock answer -EDEADLK
// when the calling thread holds it already -- refusing before changing
// anything.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/buffer/vfio_dmabuf.h"
#include "core/fence/array.h"
#include "core/fence/fence.h"
#include "core/resv/resv.h"
#include "core/sync/sync_file.h"
#include "heap_test_util.h"
#include "warn_counter.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

const char* rules_name(Fence*) { return "rules"; }
const FenceOps kRulesOps = {.get_driver_name = rules_name, .get_timeline_name = rules_name};

Fence* new_fence(uint64_t context, uint64_t seqno) {
  Fence* f = fence_alloc();
  fence_init(f, &kRulesOps, nullptr, context, seqno);
  return f;
}

// Runs fn on another thread (which never holds the caller's locks).
template <typename Fn>
void on_other_thread(Fn fn) {
  std::thread(fn).join();
}

class ResvRules : public ::testing::Test {
 protected:
  void SetUp() override { resv_init(&obj_); }
  void TearDown() override {
    if (resv_held(&obj_)) resv_unlock(&obj_);
    resv_fini(&obj_);
  }
  Resv obj_;
};

TEST_F(ResvRules, WritersWithoutTheLockAreEpermAndChangeNothing) {
  WarnCounter warns;
  Fence* f = new_fence(fence_context_alloc(1), 1);
  std::string text;
  EXPECT_EQ(resv_reserve_fences_checked(&obj_, 1), -EPERM);
  EXPECT_EQ(resv_add_fence_checked(&obj_, f, RESV_USAGE_WRITE), -EPERM);
  EXPECT_EQ(resv_replace_fences_checked(&obj_, f->context, f, RESV_USAGE_READ), -EPERM);
  Resv src;
  resv_init(&src);
  EXPECT_EQ(resv_copy_fences_checked(&obj_, &src), -EPERM);
  EXPECT_EQ(resv_describe_checked(&obj_, &text), -EPERM);
  EXPECT_EQ(resv_unlock_checked(&obj_), -EPERM);
  EXPECT_TRUE(resv_test_signaled(&obj_, RESV_USAGE_BOOKKEEP));  // nothing was added
  EXPECT_EQ(warns.count(), 0);  // refused, not warned about and done anyway
  resv_fini(&src);
  fence_put(f);
}

TEST_F(ResvRules, WritersUnderAnotherThreadsLockAreEperm) {
  ASSERT_EQ(resv_lock(&obj_, nullptr), 0);
  Fence* f = new_fence(fence_context_alloc(1), 1);
  on_other_thread([&] {
    EXPECT_EQ(resv_reserve_fences_checked(&obj_, 1), -EPERM);
    EXPECT_EQ(resv_add_fence_checked(&obj_, f, RESV_USAGE_WRITE), -EPERM);
    EXPECT_EQ(resv_unlock_checked(&obj_), -EPERM);
  });
  EXPECT_TRUE(resv_held(&obj_));  // the other thread's unlock did nothing
  resv_unlock(&obj_);
  fence_put(f);
}

TEST_F(ResvRules, WritersWithTheLockWork) {
  ASSERT_EQ(resv_lock_checked(&obj_, nullptr), 0);
  Fence* f = new_fence(fence_context_alloc(1), 1);
  EXPECT_EQ(resv_reserve_fences_checked(&obj_, 1), 0);
  EXPECT_EQ(resv_add_fence_checked(&obj_, f, RESV_USAGE_WRITE), 0);
  EXPECT_FALSE(resv_test_signaled(&obj_, RESV_USAGE_WRITE));
  std::string text;
  EXPECT_EQ(resv_describe_checked(&obj_, &text), 0);
  EXPECT_NE(text.find("write fence:"), std::string::npos);
  Fence* g = new_fence(f->context, 2);
  EXPECT_EQ(resv_replace_fences_checked(&obj_, f->context, g, RESV_USAGE_READ), 0);
  EXPECT_EQ(resv_reserve_fences_checked(&obj_, 0), -EINVAL);  // the core's own check still applies
  EXPECT_EQ(resv_unlock_checked(&obj_), 0);
  EXPECT_FALSE(resv_held(&obj_));
  fence_signal(f);
  fence_signal(g);
  fence_put(f);
  fence_put(g);
}

TEST_F(ResvRules, ContainersAreRefusedWithEinval) {
  Fence* m = new_fence(fence_context_alloc(1), 1);
  auto** members = static_cast<Fence**>(std::malloc(sizeof(Fence*)));
  members[0] = fence_get(m);
  FenceArray* a = fence_array_create(1, members, fence_context_alloc(1), 1, false);
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(resv_lock(&obj_, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&obj_, 1), 0);
  EXPECT_EQ(resv_add_fence_checked(&obj_, &a->base, RESV_USAGE_WRITE), -EINVAL);
  EXPECT_TRUE(resv_test_signaled(&obj_, RESV_USAGE_BOOKKEEP));
  resv_unlock(&obj_);
  fence_signal(m);
  fence_put(&a->base);
  fence_put(m);
}

TEST_F(ResvRules, LockingTwiceIsRefusedInsteadOfHanging) {
  ASSERT_EQ(resv_lock_checked(&obj_, nullptr), 0);
  EXPECT_EQ(resv_lock_checked(&obj_, nullptr), -EBUSY);  // would wait for itself
  WwAcquireCtx ctx;
  ww_acquire_init(&ctx, &reservation_ww_class);
  EXPECT_EQ(resv_lock_checked(&obj_, &ctx), -EBUSY);  // held outside ctx
  EXPECT_EQ(resv_lock_slow_checked(&obj_, &ctx), -EALREADY);
  resv_unlock(&obj_);

  ASSERT_EQ(resv_lock_checked(&obj_, &ctx), 0);
  EXPECT_EQ(resv_lock_checked(&obj_, &ctx), -EALREADY);  // ww's own answer
  Resv other;
  resv_init(&other);
  EXPECT_EQ(resv_lock_slow_checked(&other, &ctx), -EBUSY);  // ctx still holds a lock
  resv_unlock(&obj_);
  ww_acquire_done(&ctx);
  EXPECT_EQ(resv_lock_checked(&other, &ctx), -EINVAL);  // after ww_acquire_done
  EXPECT_FALSE(resv_is_locked(&other));
  ww_acquire_fini(&ctx);
  resv_fini(&other);
}

TEST_F(ResvRules, ListFencesIsEveryEntryUnderTheLockAndThePendingOnesWithout) {
  Fence* done = new_fence(fence_context_alloc(1), 1);
  Fence* pending = new_fence(fence_context_alloc(1), 1);
  ASSERT_EQ(resv_lock(&obj_, nullptr), 0);
  ASSERT_EQ(resv_reserve_fences(&obj_, 2), 0);
  resv_add_fence(&obj_, done, RESV_USAGE_WRITE);
  resv_add_fence(&obj_, pending, RESV_USAGE_READ);
  fence_signal(done);
  std::vector<Fence*> fences;
  std::vector<ResvUsage> usages;
  ASSERT_EQ(resv_list_fences(&obj_, RESV_USAGE_READ, &fences, &usages), 0);
  EXPECT_EQ(fences.size(), 2u);  // signalled ones too
  ASSERT_EQ(usages.size(), 2u);
  for (Fence* f : fences) fence_put(f);
  resv_unlock(&obj_);
  ASSERT_EQ(resv_list_fences(&obj_, RESV_USAGE_READ, &fences, &usages), 0);
  ASSERT_EQ(fences.size(), 1u);  // the pending one only
  EXPECT_EQ(fences[0], pending);
  EXPECT_EQ(usages[0], RESV_USAGE_READ);
  for (Fence* f : fences) fence_put(f);
  fence_signal(pending);
  fence_put(done);
  fence_put(pending);
}

// --- dma-buf entry points that take the reservation lock --------------------------

class BufRules : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 64ULL << 20;
    p_ = make_platform(c);
    buf_ = alloc_rw(open_heap(p_.get(), "system"), 64 << 10);
    ASSERT_EQ(vfio_dmabuf_export(p_.get(), 1 << 20, O_RDWR | O_CLOEXEC, &vfio_), 0);
  }
  void TearDown() override {
    if (buf_) dma_buf_close(buf_);
    if (vfio_) dma_buf_close(vfio_);
  }
  PlatformPtr p_;
  DmaBuf* buf_ = nullptr;
  DmaBuf* vfio_ = nullptr;
};

TEST_F(BufRules, AttachAndDetachUnderTheCallersLockAreEdeadlk) {
  Attachment* a = nullptr;
  dma_buf_resv_lock(buf_);
  EXPECT_EQ(dma_buf_attach(buf_, "gpu", &a), -EDEADLK);
  EXPECT_EQ(dma_buf_attach_importer(buf_, "gpu", true, false, nullptr, nullptr, &a), -EDEADLK);
  EXPECT_EQ(a, nullptr);
  EXPECT_TRUE(buf_->attachments.empty());
  dma_buf_resv_unlock(buf_);

  ASSERT_EQ(dma_buf_attach(buf_, "gpu", &a), 0);
  const SgTable* t = nullptr;
  dma_buf_resv_lock(buf_);
  EXPECT_EQ(dma_buf_map_attachment(a, DMA_TO_DEVICE, &t), -EDEADLK);
  EXPECT_EQ(dma_buf_detach(buf_, a), -EDEADLK);
  EXPECT_EQ(buf_->attachments.size(), 1u);  // still attached
  // The _any variants map under the held lock, as a dynamic importer does.
  ASSERT_EQ(dma_buf_map_attachment_any(a, DMA_TO_DEVICE, &t), 0);
  EXPECT_EQ(a->map_count, 1u);
  EXPECT_EQ(dma_buf_unmap_attachment(a, t, DMA_TO_DEVICE), -EDEADLK);
  EXPECT_EQ(a->map_count, 1u);
  dma_buf_unmap_attachment_any(a, t, DMA_TO_DEVICE);
  EXPECT_EQ(a->map_count, 0u);
  dma_buf_resv_unlock(buf_);

  ASSERT_EQ(dma_buf_map_attachment_any(a, DMA_TO_DEVICE, &t), 0);  // and without it
  EXPECT_EQ(dma_buf_unmap_attachment(a, t, DMA_TO_DEVICE), 0);
  EXPECT_EQ(dma_buf_detach(buf_, a), 0);
  EXPECT_TRUE(buf_->attachments.empty());
}

TEST_F(BufRules, AnotherThreadsLockIsWaitedForNotRefused) {
  dma_buf_resv_lock(buf_);
  Attachment* a = nullptr;
  int err = 1;
  std::thread t([&] { err = dma_buf_attach(buf_, "gpu", &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  dma_buf_resv_unlock(buf_);
  t.join();
  ASSERT_EQ(err, 0);
  EXPECT_EQ(dma_buf_detach(buf_, a), 0);
}

TEST_F(BufRules, SyncFileImportUnderTheCallersLockIsEdeadlk) {
  Fence* f = new_fence(fence_context_alloc(1), 1);
  SyncFile* sf = sync_file_create(f);
  ASSERT_NE(sf, nullptr);
  dma_buf_resv_lock(buf_);
  EXPECT_EQ(dma_buf_sync_file_import(buf_, kDmaBufSyncWrite, sf), -EDEADLK);
  EXPECT_EQ(dma_buf_sync_file_import(buf_, 0, sf), -EINVAL);  // the flag check comes first
  // Export reads under RCU: it works under the caller's lock.
  SyncFile* out = nullptr;
  EXPECT_EQ(dma_buf_sync_file_export(buf_, kDmaBufSyncRead, &out), 0);
  sync_file_put(out);
  dma_buf_resv_unlock(buf_);
  EXPECT_TRUE(resv_test_signaled(dma_buf_resv(buf_), RESV_USAGE_BOOKKEEP));  // nothing was added
  EXPECT_EQ(dma_buf_sync_file_import(buf_, kDmaBufSyncWrite, sf), 0);
  EXPECT_FALSE(resv_test_signaled(dma_buf_resv(buf_), RESV_USAGE_WRITE));
  fence_signal(f);
  sync_file_put(sf);
  fence_put(f);
}

TEST_F(BufRules, RevocationUnderTheCallersLockIsEdeadlk) {
  dma_buf_resv_lock(vfio_);
  EXPECT_EQ(vfio_dmabuf_set_revoked(vfio_, true), -EDEADLK);
  EXPECT_EQ(vfio_dmabuf_revoked(vfio_), -EDEADLK);
  dma_buf_resv_unlock(vfio_);
  EXPECT_EQ(vfio_dmabuf_revoked(vfio_), 0);  // the refused revoke changed nothing
  EXPECT_EQ(vfio_dmabuf_set_revoked(vfio_, true), 0);
  EXPECT_EQ(vfio_dmabuf_revoked(vfio_), 1);
  EXPECT_TRUE(vfio_dmabuf_is_revoked(vfio_));
  EXPECT_EQ(vfio_dmabuf_set_revoked(vfio_, false), 0);
  EXPECT_EQ(vfio_dmabuf_revoked(buf_), 0);  // not a VFIO buffer
  EXPECT_EQ(vfio_dmabuf_set_revoked(buf_, true), -EINVAL);
}

}  // namespace
