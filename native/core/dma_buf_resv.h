// The dma-buf's reservation object: the lock that attachments, pins and
// move_notify run under, the implicit fences begin_cpu_access waits for, and
// the fence lines of bufinfo. Everything that touches dmabuf->resv goes
// through here, so the reservation object plugs in in one place.
#pragma once

#include <cstdint>
#include <string>

namespace dmabuf {

struct DmaBuf;

// Called by dma_buf_export / dma_buf_release.
void dma_buf_resv_init(DmaBuf* buf);
void dma_buf_resv_fini(DmaBuf* buf);

// dma_resv_lock(dmabuf->resv, NULL) / dma_resv_unlock.
void dma_buf_resv_lock(DmaBuf* buf);
void dma_buf_resv_unlock(DmaBuf* buf);
// Warns unless the calling thread holds the reservation lock.
void dma_buf_resv_assert_held(DmaBuf* buf);

// begin_cpu_access's implicit-sync wait: for a write, every fence (usage
// READ); for a read, the writers (usage WRITE). 0 or a negative errno.
int dma_buf_resv_wait_cpu(DmaBuf* buf, bool write);

// DMA_BUF_IOCTL_EXPORT_SYNC_FILE / IMPORT_SYNC_FILE on fds: flags outside
// DMA_BUF_SYNC_RW or without a R/W bit -> -EINVAL; import of an fd that is
// not a sync_file -> -EINVAL.
int dma_buf_export_sync_file_fd(DmaBuf* buf, uint32_t flags, int* fd);
int dma_buf_import_sync_file_fd(DmaBuf* buf, uint32_t flags, int fd);

// dma_resv_describe() for bufinfo: one "\t<usage> fence: ..." line per fence.
void dma_buf_resv_describe(DmaBuf* buf, std::string* out);

}  // namespace dmabuf
