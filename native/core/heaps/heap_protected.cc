// The TEE protected heaps (drivers/tee/tee_heap.c, 6.18): buffers from a
// static protected-memory pool, one contiguous run each, that the CPU cannot
// access. The dma_buf_ops have no mmap (so mmap fails with -EINVAL) and no
// CPU-access hooks (so DMA_BUF_IOCTL_SYNC succeeds and does nothing but the
// implicit-fence wait). The exporter is the tee module: exp_name "tee".
#include <cerrno>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/heaps/heap_kinds.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

struct ProtectedBuffer {
  CmaArea* pool;
  uint64_t pfn;
  uint64_t pagecount;
  SgTable sgt;
};

int tee_attach(DmaBuf* buf, Attachment* a) {
  a->priv = new SgTable(static_cast<ProtectedBuffer*>(buf->priv)->sgt);
  return 0;
}
void tee_detach(DmaBuf*, Attachment* a) { delete static_cast<SgTable*>(a->priv); }
// dma_map_sgtable(..., DMA_ATTR_SKIP_CPU_SYNC): no CPU cache maintenance.
int tee_map(Attachment* a, DmaDataDirection, const SgTable** out) {
  *out = static_cast<SgTable*>(a->priv);
  return 0;
}
void tee_unmap(Attachment*, const SgTable*, DmaDataDirection) {}

void tee_release(DmaBuf* buf) {
  auto* b = static_cast<ProtectedBuffer*>(buf->priv);
  b->pool->release(b->pfn, b->pagecount);
  delete b;
}

const SgTable* tee_sg_table(DmaBuf* buf) { return &static_cast<ProtectedBuffer*>(buf->priv)->sgt; }

// No begin/end_cpu_access and no mmap: the CPU cannot reach protected memory.
const DmaBufOps kTeeBufOps = {
    .attach = tee_attach,
    .detach = tee_detach,
    .map_dma_buf = tee_map,
    .unmap_dma_buf = tee_unmap,
    .release = tee_release,
    .sg_table = tee_sg_table,
};

int tee_allocate(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t, DmaBuf** out) {
  Platform* p = heap->platform;
  auto* pool = static_cast<CmaArea*>(heap->priv);
  const uint64_t pagecount = len / p->page_size();
  // gen_pool_alloc on the static pool: page granular, first fit.
  uint64_t pfn;
  if (!pool->alloc(pagecount, 0, &pfn)) return -ENOMEM;
  auto* b = new ProtectedBuffer{pool, pfn, pagecount, {}};
  b->sgt.entries.push_back({pfn << p->page_shift, len});
  const ExportInfo info = {
      .platform = p,
      .exp_name = "tee",
      .ops = &kTeeBufOps,
      .size = len,
      .flags = fd_flags,
      .priv = b,
  };
  if (int err = dma_buf_export(info, out)) {
    pool->release(pfn, pagecount);
    delete b;
    return err;
  }
  return 0;
}

const HeapOps kTeeHeapOps = {.allocate = tee_allocate};

}  // namespace

int protected_heaps_create(Platform* p) {
  for (auto& pool : p->protmem_pools) {
    int err = dma_heap_add(p, pool->name().c_str(), HeapKind::kProtected, &kTeeHeapOps, pool.get(),
                           true, false, nullptr);
    if (err) return err;
  }
  return 0;
}

}  // namespace dmabuf
