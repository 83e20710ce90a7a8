// dmabuf->resv: the reservation lock around attachments and revocation, the
// implicit-sync wait of begin_cpu_access, EXPORT/IMPORT_SYNC_FILE and poll.
#include "core/buffer/dma_buf_resv.h"

#include <cerrno>

#include "core/base/warn.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/fence/unwrap.h"
#include "core/resv/resv.h"
#include "core/sync/sync_file.h"

namespace dmabuf {
namespace {

bool valid_sync_flags(uint32_t flags) {
  return !(flags & ~kDmaBufSyncRw) && (flags & kDmaBufSyncRw);
}

}  // namespace

void dma_buf_resv_init(DmaBuf* buf, Resv* external) {
  if (external) {
    buf->resv = external;
  } else {
    resv_init(&buf->own_resv);
    buf->resv = &buf->own_resv;
  }
}

void dma_buf_resv_fini(DmaBuf* buf) {
  if (buf->resv == &buf->own_resv) resv_fini(&buf->own_resv);
  buf->resv = nullptr;
}

Resv* dma_buf_resv(DmaBuf* buf) { return buf ? buf->resv : nullptr; }

void dma_buf_resv_lock(DmaBuf* buf) { resv_lock(buf->resv, nullptr); }
void dma_buf_resv_unlock(DmaBuf* buf) { resv_unlock(buf->resv); }
void dma_buf_resv_assert_held(DmaBuf* buf) { resv_assert_held(buf->resv); }
bool dma_buf_resv_held(DmaBuf* buf) { return resv_held(buf->resv); }
int dma_buf_resv_lock_or_edeadlk(DmaBuf* buf) {
  if (resv_held(buf->resv)) return -EDEADLK;
  resv_lock(buf->resv, nullptr);
  return 0;
}

int dma_buf_resv_wait_cpu(DmaBuf* buf, bool write) {
  // __dma_buf_begin_cpu_access: interruptible in the kernel; userspace threads
  // are never interrupted, so this only fails on a fence error path.
  long ret = resv_wait_timeout(buf->resv, resv_usage_rw(write), true, kMaxScheduleTimeout);
  return ret < 0 ? static_cast<int>(ret) : 0;
}

void dma_buf_resv_describe(DmaBuf* buf, std::string* out) { *out += resv_describe(buf->resv); }

int dma_buf_sync_file_export(DmaBuf* buf, uint32_t flags, SyncFile** out) {
  if (!buf || !out) return -EFAULT;
  if (!valid_sync_flags(flags)) return -EINVAL;
  Fence* fence = nullptr;
  if (int err = resv_get_singleton(buf->resv, resv_usage_rw(flags & kDmaBufSyncWrite), &fence))
    return err;
  if (!fence) fence = fence_get_stub();
  SyncFile* sf = sync_file_create(fence);
  fence_put(fence);
  if (!sf) return -ENOMEM;
  *out = sf;
  return 0;
}

int dma_buf_sync_file_import(DmaBuf* buf, uint32_t flags, SyncFile* sf) {
  if (!buf) return -EFAULT;
  if (!valid_sync_flags(flags)) return -EINVAL;
  // The import takes the reservation lock: refuse to wait for ourselves.
  if (resv_held(buf->resv)) return -EDEADLK;
  Fence* fence = sync_file_get_fence(sf);
  if (!fence) return -EINVAL;
  const ResvUsage usage = (flags & kDmaBufSyncWrite) ? RESV_USAGE_WRITE : RESV_USAGE_READ;
  unsigned num = 0;
  FenceUnwrap iter;
  Fence* f;
  fence_unwrap_for_each(f, &iter, fence)++ num;
  int err = 0;
  if (num) {
    dma_buf_resv_lock(buf);
    err = resv_reserve_fences(buf->resv, num);
    if (!err) {
      fence_unwrap_for_each(f, &iter, fence) resv_add_fence(buf->resv, f, usage);
    }
    dma_buf_resv_unlock(buf);
  }
  fence_put(fence);
  return err;
}

unsigned dma_buf_poll(DmaBuf* buf) {
  unsigned mask = 0;
  if (resv_test_signaled(buf->resv, RESV_USAGE_WRITE)) mask |= 0x1;  // EPOLLIN
  if (resv_test_signaled(buf->resv, RESV_USAGE_READ)) mask |= 0x4;   // EPOLLOUT
  return mask;
}

}  // namespace dmabuf
