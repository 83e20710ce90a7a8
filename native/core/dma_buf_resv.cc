#include "dma_buf_resv.h"

#include <cerrno>
#include <thread>

#include "dma_buf.h"
#include "warn.h"

namespace dmabuf {

void dma_buf_resv_init(DmaBuf*) {}
void dma_buf_resv_fini(DmaBuf*) {}

void dma_buf_resv_lock(DmaBuf* buf) {
  buf->resv_lock.lock();
  buf->resv_owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

void dma_buf_resv_unlock(DmaBuf* buf) {
  buf->resv_owner.store(std::thread::id(), std::memory_order_relaxed);
  buf->resv_lock.unlock();
}

void dma_buf_resv_assert_held(DmaBuf* buf) {
  if (buf->resv_owner.load(std::memory_order_relaxed) != std::this_thread::get_id())
    warn("dma_resv_assert_held: reservation lock of dma-buf %llu not held",
         static_cast<unsigned long long>(buf->ino));
}

int dma_buf_resv_wait_cpu(DmaBuf*, bool) { return 0; }

void dma_buf_resv_describe(DmaBuf*, std::string*) {}

int dma_buf_export_sync_file_fd(DmaBuf*, uint32_t flags, int*) {
  if ((flags & ~3u) || !(flags & 3u)) return -EINVAL;
  return -EOPNOTSUPP;  // until the reservation object lands
}

int dma_buf_import_sync_file_fd(DmaBuf*, uint32_t flags, int) {
  if ((flags & ~3u) || !(flags & 3u)) return -EINVAL;
  return -EOPNOTSUPP;
}

}  // namespace dmabuf
