// dma_buf_attachment: a device's use of a buffer. Three kinds of importer, as
// in drivers/dma-buf/dma-buf.c:
// - static (dma_buf_attach): no move_notify; if the exporter is dynamic (has
//   pin), the core pins and maps once at attach time and caches the mapping;
// - dynamic (dma_buf_dynamic_attach): provides move_notify, maps under the
//   reservation lock and re-maps after a move;
// - pinned: a dynamic importer that pins and cannot honour move_notify (e.g.
//   non-ODP RDMA). Revocable exporters refuse it (pin -> -EOPNOTSUPP).
// Heap buffers are not dynamic exporters: pinning is a no-op, every importer
// kind works.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_resv.h"

namespace dmabuf {

struct Attachment;

// struct dma_buf_attach_ops.
struct ImporterOps {
  // Mandatory for dynamic importers. Runs with the reservation lock held; it
  // may call the *_locked functions below, not the others.
  void (*move_notify)(Attachment* a);
  bool allow_peer2peer;
};

struct Attachment {
  DmaBuf* buf;
  std::string dev;                 // device name, as bufinfo lists it
  const ImporterOps* importer_ops; // null for static importers
  void* importer_priv;
  bool peer2peer;
  void* priv = nullptr;            // the exporter's
  const SgTable* sgt = nullptr;    // mapping cached at attach time (static/dynamic mismatch)
  DmaDataDirection dir = DMA_NONE;
  unsigned pin_count = 0;          // guarded by buf->resv_lock
  unsigned map_count = 0;          // importer's live mappings, guarded by buf->resv_lock
  std::atomic<uint64_t> moves{0};  // move_notify calls received
  std::atomic<uint64_t> cpu_syncs{0}, device_syncs{0};  // exporter's cache maintenance
  void (*notify_fn)(void* data) = nullptr;  // dma_buf_attach_importer's callback
  void* notify_data = nullptr;
};

// dma_buf_dynamic_attach. -EINVAL for a null buffer/device or importer ops
// without move_notify; -EDEADLK when the calling thread holds the buffer's
// reservation lock (the kernel's would deadlock: the ww_mutex is not
// recursive); the exporter's attach error (-ENODEV revoked, -EOPNOTSUPP no
// peer2peer); for a static importer of a dynamic exporter, the pin or map
// error. Takes a file reference (the importer's dma_buf_get) that
// dma_buf_detach drops.
int dma_buf_dynamic_attach(DmaBuf* buf, const char* dev, const ImporterOps* ops, void* priv,
                           Attachment** out);
// dma_buf_attach: a static importer.
int dma_buf_attach(DmaBuf* buf, const char* dev, Attachment** out);
// dma_buf_detach: unmaps a cached mapping, unpins, and frees the attachment.
// 0; -EDEADLK (nothing done) when the calling thread holds the reservation
// lock; -EINVAL (with a warning) for an attachment of another buffer.
int dma_buf_detach(DmaBuf* buf, Attachment* a);

// dma_buf_pin / dma_buf_unpin: dynamic importers only, reservation lock held.
// 0 (no-op) for exporters without pin; the exporter's error otherwise.
int dma_buf_pin_locked(Attachment* a);
void dma_buf_unpin_locked(Attachment* a);

// dma_buf_map_attachment: reservation lock held. Returns the cached mapping
// for static importers of dynamic exporters (and vice versa), otherwise the
// exporter's map (-ENODEV when revoked).
int dma_buf_map_attachment_locked(Attachment* a, DmaDataDirection dir, const SgTable** out);
void dma_buf_unmap_attachment_locked(Attachment* a, const SgTable* sgt, DmaDataDirection dir);
// The same, taking the reservation lock: -EDEADLK (nothing done) when the
// calling thread holds it already.
int dma_buf_map_attachment(Attachment* a, DmaDataDirection dir, const SgTable** out);
int dma_buf_unmap_attachment(Attachment* a, const SgTable* sgt, DmaDataDirection dir);
// For an importer that may hold the reservation lock itself (a JavaScript
// importer that locked buf.resv maps under it, as a dynamic importer does in
// the kernel): the _locked variant when the calling thread holds the lock,
// else the one that takes it.
int dma_buf_map_attachment_any(Attachment* a, DmaDataDirection dir, const SgTable** out);
void dma_buf_unmap_attachment_any(Attachment* a, const SgTable* sgt, DmaDataDirection dir);

// dma_buf_move_notify (7.0: dma_buf_invalidate_mappings): calls every dynamic
// importer's move_notify. Reservation lock held.
void dma_buf_move_notify_locked(DmaBuf* buf);

// The TypeScript attach(): a static importer when neither `pinned` nor
// `notify` is given; otherwise a dynamic one whose move_notify calls
// notify(data) (a no-op for a pinned importer without one), pinned at once if
// `pinned`. A failed pin detaches and returns the error. -EDEADLK when the
// calling thread holds the reservation lock.
int dma_buf_attach_importer(DmaBuf* buf, const char* dev, bool pinned, bool peer2peer,
                            void (*notify)(void* data), void* data, Attachment** out);

}  // namespace dmabuf
