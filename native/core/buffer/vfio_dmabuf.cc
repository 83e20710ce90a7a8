#include "core/buffer/vfio_dmabuf.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/mapping.h"
#include "core/heaps/heap.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

// BARs sit in MMIO space below 4 GiB; each export gets its own window so the
// physical addresses of different buffers never collide.
constexpr uint64_t kMmioBase = 0xe0000000ULL;
std::atomic<uint64_t> g_next_bar{0};

struct VfioBuffer {
  bool revoked = false;  // guarded by the buffer's reservation lock
  SgTable sgt;
};

VfioBuffer* vfio_of(DmaBuf* buf) { return static_cast<VfioBuffer*>(buf->priv); }

int vfio_attach(DmaBuf* buf, Attachment* a) {
  if (!a->peer2peer) return -EOPNOTSUPP;
  if (int err = dma_buf_resv_lock_or_edeadlk(buf)) return err;
  const bool revoked = vfio_of(buf)->revoked;
  dma_buf_resv_unlock(buf);
  return revoked ? -ENODEV : 0;
}

// The always-failing pin of commit 61ceaf236115: an importer that pins cannot
// honour revocation, so it must not get the buffer at all.
int vfio_pin(Attachment*) { return -EOPNOTSUPP; }
void vfio_unpin(Attachment*) {}

int vfio_map(Attachment* a, DmaDataDirection, const SgTable** out) {
  dma_buf_resv_assert_held(a->buf);
  if (vfio_of(a->buf)->revoked) return -ENODEV;
  *out = &vfio_of(a->buf)->sgt;
  return 0;
}
void vfio_unmap(Attachment*, const SgTable*, DmaDataDirection) {}

int vfio_mmap(DmaBuf* buf, const MmapRequest& req) {
  if (!(req.flags & MAP_SHARED)) return -EINVAL;
  if (int err = dma_buf_resv_lock_or_edeadlk(buf)) return err;
  const bool revoked = vfio_of(buf)->revoked;
  dma_buf_resv_unlock(buf);
  return revoked ? -ENODEV : 0;
}

void vfio_release(DmaBuf* buf) { delete vfio_of(buf); }

const SgTable* vfio_sg_table(DmaBuf* buf) { return &vfio_of(buf)->sgt; }

const DmaBufOps kVfioOps = {
    .attach = vfio_attach,
    .pin = vfio_pin,
    .unpin = vfio_unpin,
    .map_dma_buf = vfio_map,
    .unmap_dma_buf = vfio_unmap,
    .mmap = vfio_mmap,
    .release = vfio_release,
    .sg_table = vfio_sg_table,
};

}  // namespace

int vfio_dmabuf_export(Platform* p, uint64_t size, uint32_t open_flags, DmaBuf** out) {
  if (!p || !out) return -EINVAL;
  const uint64_t ps = p->page_size();
  if (size == 0 || (size & (ps - 1)) || (open_flags & ~kDmaHeapValidFdFlags)) return -EINVAL;
  auto* v = new VfioBuffer();
  const uint64_t window = (size + 0xfffff) & ~0xfffffULL;
  v->sgt.entries.push_back({kMmioBase + g_next_bar.fetch_add(window), size});
  const ExportInfo info = {
      .platform = p,
      .exp_name = "vfio_pci_core",
      .ops = &kVfioOps,
      .size = size,
      .flags = open_flags,
      .priv = v,
  };
  DmaBuf* buf = nullptr;
  if (int err = dma_buf_export(info, &buf)) {
    delete v;
    return err;
  }
  int fd = dma_buf_fd(buf, open_flags);
  if (fd < 0) {
    dma_buf_put(buf);
    return fd;
  }
  *out = buf;
  return 0;
}

int vfio_dmabuf_set_revoked(DmaBuf* buf, bool revoked) {
  if (!buf || buf->ops != &kVfioOps) return -EINVAL;
  if (int err = dma_buf_resv_lock_or_edeadlk(buf)) return err;
  VfioBuffer* v = vfio_of(buf);
  const bool changed = v->revoked != revoked;
  if (changed) {
    v->revoked = revoked;
    dma_buf_move_notify_locked(buf);
  }
  dma_buf_resv_unlock(buf);
  // unmap_mapping_range(): CPU mappings of the BAR stop working at once.
  if (changed && revoked) dma_buf_invalidate_mappings(buf);
  return 0;
}

int vfio_dmabuf_revoked(DmaBuf* buf) {
  if (!buf || buf->ops != &kVfioOps) return 0;
  if (int err = dma_buf_resv_lock_or_edeadlk(buf)) return err;
  const bool r = vfio_of(buf)->revoked;
  dma_buf_resv_unlock(buf);
  return r ? 1 : 0;
}

bool vfio_dmabuf_is_revoked(DmaBuf* buf) { return vfio_dmabuf_revoked(buf) == 1; }

}  // namespace dmabuf
