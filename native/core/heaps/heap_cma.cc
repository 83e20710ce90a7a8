// The CMA heap (drivers/dma-buf/heaps/cma_heap.c): one physically contiguous
// run per buffer from the platform's CMA area, aligned to the buffer's order
// (capped at CONFIG_CMA_ALIGNMENT), -ENOMEM when the area is full or too
// fragmented; mmap only with MAP_SHARED.
#include <sys/mman.h>

#include <atomic>
#include <cerrno>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/heaps/heap_kinds.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

struct CmaBuffer {
  Heap* heap;
  uint64_t pfn;
  uint64_t pagecount;
  SgTable sgt;
};

struct CmaAttachment {
  SgTable table;
  std::atomic<bool> mapped{false};  // set under the resv lock, read under attach_lock
};

int cma_attach(DmaBuf* buf, Attachment* a) {
  auto* sa = new CmaAttachment();
  sa->table = static_cast<CmaBuffer*>(buf->priv)->sgt;  // sg_alloc_table_from_pages: one run
  a->priv = sa;
  return 0;
}

void cma_detach(DmaBuf*, Attachment* a) { delete static_cast<CmaAttachment*>(a->priv); }

int cma_map(Attachment* a, DmaDataDirection, const SgTable** out) {
  auto* sa = static_cast<CmaAttachment*>(a->priv);
  sa->mapped.store(true, std::memory_order_relaxed);
  *out = &sa->table;
  return 0;
}

void cma_unmap(Attachment* a, const SgTable*, DmaDataDirection) {
  static_cast<CmaAttachment*>(a->priv)->mapped.store(false, std::memory_order_relaxed);
}

int cma_cpu_access(DmaBuf* buf, bool begin) {
  std::lock_guard<std::mutex> g(buf->attach_lock);
  for (Attachment* a : buf->attachments)
    if (static_cast<CmaAttachment*>(a->priv)->mapped.load(std::memory_order_relaxed))
      (begin ? a->cpu_syncs : a->device_syncs).fetch_add(1, std::memory_order_relaxed);
  return 0;
}
int cma_begin_cpu_access(DmaBuf* buf, DmaDataDirection) { return cma_cpu_access(buf, true); }
int cma_end_cpu_access(DmaBuf* buf, DmaDataDirection) { return cma_cpu_access(buf, false); }

// cma_heap_mmap: `if ((vma->vm_flags & (VM_SHARED | VM_MAYSHARE)) == 0) return -EINVAL;`
int cma_mmap(DmaBuf*, const MmapRequest& req) { return (req.flags & MAP_SHARED) ? 0 : -EINVAL; }

void cma_release(DmaBuf* buf) {
  auto* b = static_cast<CmaBuffer*>(buf->priv);
  b->heap->platform->cma->release(b->pfn, b->pagecount);
  delete b;
}

const SgTable* cma_sg_table(DmaBuf* buf) { return &static_cast<CmaBuffer*>(buf->priv)->sgt; }

const DmaBufOps kCmaBufOps = {
    .attach = cma_attach,
    .detach = cma_detach,
    .map_dma_buf = cma_map,
    .unmap_dma_buf = cma_unmap,
    .begin_cpu_access = cma_begin_cpu_access,
    .end_cpu_access = cma_end_cpu_access,
    .mmap = cma_mmap,
    .release = cma_release,
    .sg_table = cma_sg_table,
};

unsigned get_order(uint64_t size, uint64_t page_size) {
  unsigned order = 0;
  while ((page_size << order) < size) ++order;
  return order;
}

int cma_allocate(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t, DmaBuf** out) {
  Platform* p = heap->platform;
  const uint64_t ps = p->page_size();
  const uint64_t pagecount = len / ps;
  const unsigned align = get_order(len, ps);  // capped at CMA_ALIGNMENT by the area
  if (int err = p->fault(FaultSite::kCmaAlloc).check(-ENOMEM)) return err;
  uint64_t pfn;
  if (!p->cma->alloc(pagecount, align, &pfn)) return -ENOMEM;

  // Zeroing: the buffer's memfd is fresh, so its pages read as zero. On highmem
  // platforms the kernel zeroes page by page and stops for a fatal signal.
  if (p->has_highmem()) {
    for (uint64_t i = 0; i < pagecount; ++i) {
      if (int err = p->fault(FaultSite::kFatalSignal).check(-EINTR)) {
        p->cma->release(pfn, pagecount);
        return err;
      }
    }
  }
  // CMA memory is never decrypted: nothing private can leak out as shared.
  if (!p->pages->block_is(pfn, pagecount, PageState::kPrivate))
    p->pages->report_violation("CMA heap handing out shared memory", pfn, pagecount);

  auto* b = new CmaBuffer{heap, pfn, pagecount, {}};
  b->sgt.entries.push_back({pfn << p->page_shift, len});
  const ExportInfo info = {
      .platform = p,
      .exp_name = heap->name.c_str(),
      .ops = &kCmaBufOps,
      .size = len,
      .flags = fd_flags,
      .priv = b,
  };
  if (int err = dma_buf_export(info, out)) {
    p->cma->release(pfn, pagecount);
    delete b;
    return err;
  }
  return 0;
}

const HeapOps kCmaHeapOps = {.allocate = cma_allocate};

}  // namespace

int cma_heap_create(Platform* p) {
  const PlatformConfig& c = p->config;
  const bool new_names = c.kernel >= kernel_version(6, 17);
  std::string name = !c.cma_name.empty() ? c.cma_name
                     : new_names         ? std::string("default_cma_region")
                                         : c.cma_legacy_name;
  int err = dma_heap_add(p, name.c_str(), HeapKind::kCma, &kCmaHeapOps, nullptr, true, true, nullptr);
  if (err) return err;
  // CONFIG_DMABUF_HEAPS_CMA_LEGACY: the same area under its old name.
  if (new_names && c.cma_legacy_heap && !c.cma_legacy_name.empty() && c.cma_legacy_name != name)
    err = dma_heap_add(p, c.cma_legacy_name.c_str(), HeapKind::kCma, &kCmaHeapOps, nullptr, true,
                       true, nullptr);
  return err;
}

}  // namespace dmabuf
