// The dma-buf's reservation object: the lock that attachments, pins and
// move_notify run under, the implicit fences begin_cpu_access waits for, and
// the fence lines of bufinfo. Everything that touches dmabuf->resv goes
// through here.
#pragma once

#include <cstdint>
#include <string>

namespace dmabuf {

struct DmaBuf;

struct Resv;
struct SyncFile;

// Called by dma_buf_export (with the exporter's resv, or null for the buffer's
// own) and by dma_buf_release.
void dma_buf_resv_init(DmaBuf* buf, Resv* external);
void dma_buf_resv_fini(DmaBuf* buf);

// dmabuf->resv (borrowed: valid while a reference to the buffer is held).
Resv* dma_buf_resv(DmaBuf* buf);

// dma_resv_lock(dmabuf->resv, NULL) / dma_resv_unlock.
void dma_buf_resv_lock(DmaBuf* buf);
void dma_buf_resv_unlock(DmaBuf* buf);
// dma_resv_lock for exporter ops that callers may reach while holding the
// lock themselves (a JS caller that locked buf.resv): -EDEADLK instead of
// waiting for itself for ever, else 0 with the lock taken.
int dma_buf_resv_lock_or_edeadlk(DmaBuf* buf);
// Whether the calling thread holds the reservation lock.
bool dma_buf_resv_held(DmaBuf* buf);
// Warns unless the calling thread holds the reservation lock.
void dma_buf_resv_assert_held(DmaBuf* buf);

// begin_cpu_access's implicit-sync wait: for a write, every fence (usage
// READ); for a read, the writers (usage WRITE). 0 or a negative errno.
int dma_buf_resv_wait_cpu(DmaBuf* buf, bool write);

// DMA_BUF_IOCTL_EXPORT_SYNC_FILE: a new sync_file (caller owns the reference)
// for what an access must wait for -- DMA_BUF_SYNC_READ: the writers;
// DMA_BUF_SYNC_WRITE (or RW): every reader and writer -- as one fence
// (resv_get_singleton), or the signalled stub when there is none. Flags outside
// DMA_BUF_SYNC_RW or without a R/W bit -> -EINVAL; -ENOMEM.
int dma_buf_sync_file_export(DmaBuf* buf, uint32_t flags, SyncFile** out);
// DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds the sync_file's leaf fences (unwrapped)
// as WRITE fences if DMA_BUF_SYNC_WRITE is set, else as READ fences. Same flag
// checks; a null sync_file (an fd that is not a sync_file) -> -EINVAL; -ENOMEM;
// -EDEADLK when the calling thread holds the reservation lock (the import
// takes it).
int dma_buf_sync_file_import(DmaBuf* buf, uint32_t flags, SyncFile* sf);

// dma_buf_poll: POLLIN once the writers have signalled, POLLOUT once every
// reader and writer has (returns the EPOLL bits, 0x1 and 0x4).
unsigned dma_buf_poll(DmaBuf* buf);

// dma_resv_describe() for bufinfo: one "\t<usage> fence: ..." line per fence.
void dma_buf_resv_describe(DmaBuf* buf, std::string* out);

}  // namespace dmabuf
