// Attachments: static, dynamic and pinned importers; move_notify.
#include <algorithm>
#include <cerrno>

#include "core/base/warn.h"
#include "core/buffer/attachment.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

bool exporter_is_dynamic(const DmaBuf* buf) { return buf->ops->pin != nullptr; }
bool importer_is_dynamic(const Attachment* a) { return a->importer_ops != nullptr; }

// Both locks held: the reservation lock (by the caller) and attach_lock.
void remove_locked(DmaBuf* buf, Attachment* a) {
  std::lock_guard<std::mutex> g(buf->attach_lock);
  auto it = std::find(buf->attachments.begin(), buf->attachments.end(), a);
  if (it != buf->attachments.end()) buf->attachments.erase(it);
}

void importer_notify(Attachment* a) {
  if (a->notify_fn) a->notify_fn(a->notify_data);
}
const ImporterOps kNotifyImporter = {.move_notify = importer_notify, .allow_peer2peer = false};
const ImporterOps kNotifyImporterP2p = {.move_notify = importer_notify, .allow_peer2peer = true};

}  // namespace

int dma_buf_dynamic_attach(DmaBuf* buf, const char* dev, const ImporterOps* ops, void* priv,
                           Attachment** out) {
  if (!buf || !dev || !out) return -EINVAL;
  if (dma_buf_resv_held(buf)) return -EDEADLK;
  if (ops && !ops->move_notify) {
    warn("dma_buf_dynamic_attach: importer ops without move_notify");
    return -EINVAL;
  }
  auto* a = new Attachment();
  a->buf = buf;
  a->dev = dev;
  a->importer_ops = ops;
  a->importer_priv = priv;
  a->peer2peer = ops && ops->allow_peer2peer;
  if (buf->ops->attach) {
    if (int err = buf->ops->attach(buf, a)) {
      delete a;
      return err;
    }
  }
  dma_buf_get(buf);  // the importer's reference
  dma_buf_resv_lock(buf);
  {
    std::lock_guard<std::mutex> g(buf->attach_lock);
    buf->attachments.insert(buf->attachments.begin(), a);
  }

  // When importer and exporter disagree about dynamic mappings, map once now
  // and cache it, pinning first if the exporter is the dynamic one.
  if (importer_is_dynamic(a) != exporter_is_dynamic(buf)) {
    int err = 0;
    if (exporter_is_dynamic(buf)) err = buf->ops->pin(a);
    if (!err) {
      const SgTable* sgt = nullptr;
      err = buf->ops->map_dma_buf(a, DMA_BIDIRECTIONAL, &sgt);
      if (!err) {
        a->sgt = sgt;
        a->dir = DMA_BIDIRECTIONAL;
      } else if (exporter_is_dynamic(buf)) {
        buf->ops->unpin(a);
      }
    }
    if (err) {
      dma_buf_resv_unlock(buf);
      dma_buf_detach(buf, a);
      return err;
    }
  }
  dma_buf_resv_unlock(buf);
  *out = a;
  return 0;
}

int dma_buf_attach(DmaBuf* buf, const char* dev, Attachment** out) {
  return dma_buf_dynamic_attach(buf, dev, nullptr, nullptr, out);
}

int dma_buf_detach(DmaBuf* buf, Attachment* a) {
  if (!buf || !a || a->buf != buf) {
    warn("dma_buf_detach: attachment does not belong to this buffer");
    return -EINVAL;
  }
  if (int err = dma_buf_resv_lock_or_edeadlk(buf)) return err;
  if (a->sgt) {
    buf->ops->unmap_dma_buf(a, a->sgt, a->dir);
    a->sgt = nullptr;
    if (exporter_is_dynamic(buf)) buf->ops->unpin(a);
  }
  const unsigned live = a->map_count;
  while (a->pin_count) {
    --a->pin_count;
    if (buf->ops->unpin) buf->ops->unpin(a);
  }
  remove_locked(buf, a);
  dma_buf_resv_unlock(buf);
  if (live) warn("dma_buf_detach: %u mappings still live", live);
  if (buf->ops->detach) buf->ops->detach(buf, a);
  delete a;
  dma_buf_put(buf);
  return 0;
}

int dma_buf_pin_locked(Attachment* a) {
  DmaBuf* buf = a->buf;
  if (!importer_is_dynamic(a)) warn("dma_buf_pin: static importers cannot pin");
  dma_buf_resv_assert_held(buf);
  int err = buf->ops->pin ? buf->ops->pin(a) : 0;
  if (!err) ++a->pin_count;
  return err;
}

void dma_buf_unpin_locked(Attachment* a) {
  DmaBuf* buf = a->buf;
  dma_buf_resv_assert_held(buf);
  if (!a->pin_count) {
    warn("dma_buf_unpin: attachment is not pinned");
    return;
  }
  --a->pin_count;
  if (buf->ops->unpin) buf->ops->unpin(a);
}

int dma_buf_map_attachment_locked(Attachment* a, DmaDataDirection dir, const SgTable** out) {
  if (!a || !out) return -EINVAL;
  DmaBuf* buf = a->buf;
  dma_buf_resv_assert_held(buf);
  if (a->sgt) {
    // The cached mapping: the kernel returns it for a matching direction.
    if (a->dir != dir && a->dir != DMA_BIDIRECTIONAL) return -EBUSY;
    *out = a->sgt;
    return 0;
  }
  int err = buf->ops->map_dma_buf(a, dir, out);
  if (!err) ++a->map_count;
  return err;
}

void dma_buf_unmap_attachment_locked(Attachment* a, const SgTable* sgt, DmaDataDirection dir) {
  DmaBuf* buf = a->buf;
  dma_buf_resv_assert_held(buf);
  if (a->sgt == sgt) return;  // cached: unmapped at detach
  if (!a->map_count) {
    warn("dma_buf_unmap_attachment: not mapped");
    return;
  }
  --a->map_count;
  buf->ops->unmap_dma_buf(a, sgt, dir);
}

int dma_buf_map_attachment(Attachment* a, DmaDataDirection dir, const SgTable** out) {
  if (!a) return -EINVAL;
  if (int err = dma_buf_resv_lock_or_edeadlk(a->buf)) return err;
  int err = dma_buf_map_attachment_locked(a, dir, out);
  dma_buf_resv_unlock(a->buf);
  return err;
}

int dma_buf_unmap_attachment(Attachment* a, const SgTable* sgt, DmaDataDirection dir) {
  if (!a) return -EINVAL;
  if (int err = dma_buf_resv_lock_or_edeadlk(a->buf)) return err;
  dma_buf_unmap_attachment_locked(a, sgt, dir);
  dma_buf_resv_unlock(a->buf);
  return 0;
}

int dma_buf_map_attachment_any(Attachment* a, DmaDataDirection dir, const SgTable** out) {
  if (!a) return -EINVAL;
  if (dma_buf_resv_held(a->buf)) return dma_buf_map_attachment_locked(a, dir, out);
  return dma_buf_map_attachment(a, dir, out);
}

void dma_buf_unmap_attachment_any(Attachment* a, const SgTable* sgt, DmaDataDirection dir) {
  if (dma_buf_resv_held(a->buf)) dma_buf_unmap_attachment_locked(a, sgt, dir);
  else (void)dma_buf_unmap_attachment(a, sgt, dir);
}

void dma_buf_move_notify_locked(DmaBuf* buf) {
  dma_buf_resv_assert_held(buf);
  for (Attachment* a : buf->attachments) {
    if (!a->importer_ops) continue;
    a->moves.fetch_add(1, std::memory_order_relaxed);
    a->importer_ops->move_notify(a);
  }
}

int dma_buf_attach_importer(DmaBuf* buf, const char* dev, bool pinned, bool peer2peer,
                            void (*notify)(void* data), void* data, Attachment** out) {
  if (!buf || !dev || !out) return -EINVAL;
  if (dma_buf_resv_held(buf)) return -EDEADLK;
  Attachment* a = nullptr;
  if (!pinned && !notify) {
    if (peer2peer) {
      // A static importer has no ops to carry allow_peer2peer; make it a
      // dynamic one that ignores moves instead of losing the flag.
      int err = dma_buf_dynamic_attach(buf, dev, &kNotifyImporterP2p, nullptr, &a);
      if (err) return err;
      *out = a;
      return 0;
    }
    return dma_buf_attach(buf, dev, out);
  }
  int err = dma_buf_dynamic_attach(buf, dev, peer2peer ? &kNotifyImporterP2p : &kNotifyImporter,
                                   nullptr, &a);
  if (err) return err;
  dma_buf_resv_lock(buf);
  a->notify_fn = notify;
  a->notify_data = data;
  if (pinned) err = dma_buf_pin_locked(a);
  dma_buf_resv_unlock(buf);
  if (err) {
    dma_buf_detach(buf, a);
    return err;
  }
  *out = a;
  return 0;
}

}  // namespace dmabuf
