// The system heap and its confidential-computing twin, system_cc_shared
// (drivers/dma-buf/heaps/system_heap.c as of 7.1): buffers built from chunks of
// order 8, 4 and 0 pages, largest first and never growing again, one
// scatterlist entry per chunk. For system_cc_shared every chunk is decrypted
// before the buffer is handed out and re-encrypted before it is freed; a chunk
// that cannot be re-encrypted is leaked on purpose, never reused.
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <iterator>
#include <mutex>
#include <vector>

#include "core/base/warn.h"
#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/heaps/heap_kinds.h"
#include "core/mm/page_alloc.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

// 1 MiB, 64 KiB and 4 KiB with 4 KiB pages: IOMMU-friendly sizes.
constexpr unsigned kOrders[] = {8, 4, 0};

using Chunk = PageAllocator::Block;

// The scatterlist is the buffer's only list of chunks: one entry per chunk,
// each ps << order bytes (chunk_of() reads a chunk back).
struct SystemBuffer {
  Heap* heap;
  bool cc_shared;
  SgTable sgt;
};

// The per-attachment copy of the table (dup_sg_table) and whether it is mapped.
struct SystemAttachment {
  SgTable table;
  std::atomic<bool> mapped{false};  // set under the resv lock, read under attach_lock
};

Platform* platform_of(const SystemBuffer* b) { return b->heap->platform; }

// The chunk behind a scatterlist entry of a system heap buffer.
Chunk chunk_of(const Platform* p, const SgEntry& e) {
  return {e.phys >> p->page_shift, static_cast<unsigned>(__builtin_ctzll(e.length >> p->page_shift))};
}

// alloc_largest_available(): the largest order that fits what is left and is
// not above the previous chunk's; orders 8 and 4 may fail (no reclaim) and
// fall back to smaller ones.
bool alloc_largest_available(Platform* p, PageAllocator::Batch& pages, uint64_t remaining,
                             unsigned max_order, Chunk* out) {
  const uint64_t ps = p->page_size();
  for (unsigned order : kOrders) {
    if (remaining < (ps << order) || order > max_order) continue;
    if (p->fault(FaultSite::kAllocPages).check(-ENOMEM, static_cast<int>(order))) continue;
    uint64_t pfn;
    if (!pages.alloc(order, &pfn)) continue;
    *out = {pfn, order};
    return true;
  }
  return false;
}

int decrypt_chunk(Platform* p, const Chunk& c) {
  const uint64_t addr = p->page_address(c.pfn);
  int err = set_memory_decrypted(p, addr, 1 << c.order);
  if (err) warn("dma-buf system heap: failed to decrypt page at 0x%" PRIx64, addr);
  return err;
}

int encrypt_chunk(Platform* p, const Chunk& c) {
  const uint64_t addr = p->page_address(c.pfn);
  int err = set_memory_encrypted(p, addr, 1 << c.order);
  if (err) warn("dma-buf system heap: failed to re-encrypt page at 0x%" PRIx64 ", leaking memory", addr);
  return err;
}

// Frees a buffer's chunks (its scatterlist entries); the first `shared` of
// them are decrypted and are re-encrypted first. A chunk that stays shared is
// leaked: marked so, never freed. The private ones go back under one lock of
// the page allocator.
void free_chunks(Platform* p, const std::vector<SgEntry>& entries, size_t shared) {
  for (size_t i = 0; i < shared; ++i) {
    const Chunk c = chunk_of(p, entries[i]);
    if (encrypt_chunk(p, c)) {
      p->pages->transition(c.pfn, 1ULL << c.order, PageState::kShared, PageState::kLeaked);
      continue;
    }
    p->pages->free(c.pfn, c.order);
  }
  const size_t n = entries.size() - shared;
  if (n == 0) return;
  // Up to 64 chunks (a 64 MiB buffer of 1 MiB chunks) on the stack.
  Chunk on_stack[64];
  std::vector<Chunk> on_heap;
  Chunk* chunks = on_stack;
  if (n > std::size(on_stack)) {
    on_heap.resize(n);
    chunks = on_heap.data();
  }
  for (size_t i = 0; i < n; ++i) chunks[i] = chunk_of(p, entries[shared + i]);
  p->pages->free_many(chunks, n);
}

// Every chunk of a buffer about to be handed out must be in the heap's state:
// shared for system_cc_shared, private for everyone else.
// @all_private: PageAllocator::all_private() as the allocation's batch saw it.
void check_chunk_states(Platform* p, const SystemBuffer* b, bool all_private) {
  const PageState want = b->cc_shared ? PageState::kShared : PageState::kPrivate;
  if (want == PageState::kPrivate && all_private) return;  // no page is anything else
  for (const SgEntry& e : b->sgt.entries) {
    const Chunk c = chunk_of(p, e);
    if (!p->pages->block_is(c.pfn, 1ULL << c.order, want))
      p->pages->report_violation(b->cc_shared ? "system_cc_shared handing out private memory"
                                              : "system heap handing out shared memory",
                                 c.pfn, 1ULL << c.order);
  }
}

// --- dma_buf_ops ---

int system_attach(DmaBuf* buf, Attachment* a) {
  auto* b = static_cast<SystemBuffer*>(buf->priv);
  auto* sa = new SystemAttachment();
  sa->table = b->sgt;
  a->priv = sa;
  return 0;
}

void system_detach(DmaBuf*, Attachment* a) { delete static_cast<SystemAttachment*>(a->priv); }

int system_map(Attachment* a, DmaDataDirection, const SgTable** out) {
  auto* sa = static_cast<SystemAttachment*>(a->priv);
  // dma_map_sgtable(..., cc_shared ? DMA_ATTR_CC_SHARED : 0): the flag rides
  // on the table copy.
  sa->mapped.store(true, std::memory_order_relaxed);
  *out = &sa->table;
  return 0;
}

void system_unmap(Attachment* a, const SgTable*, DmaDataDirection) {
  static_cast<SystemAttachment*>(a->priv)->mapped.store(false, std::memory_order_relaxed);
}

// Cache maintenance for every mapped attachment; none without attachments.
int system_cpu_access(DmaBuf* buf, bool begin) {
  std::lock_guard<std::mutex> g(buf->attach_lock);
  for (Attachment* a : buf->attachments)
    if (static_cast<SystemAttachment*>(a->priv)->mapped.load(std::memory_order_relaxed))
      (begin ? a->cpu_syncs : a->device_syncs).fetch_add(1, std::memory_order_relaxed);
  return 0;
}
int system_begin_cpu_access(DmaBuf* buf, DmaDataDirection) { return system_cpu_access(buf, true); }
int system_end_cpu_access(DmaBuf* buf, DmaDataDirection) { return system_cpu_access(buf, false); }

// No VM_SHARED check in the system heap's mmap: private mappings work.
int system_mmap(DmaBuf*, const MmapRequest&) { return 0; }

void system_release(DmaBuf* buf) {
  auto* b = static_cast<SystemBuffer*>(buf->priv);
  free_chunks(platform_of(b), b->sgt.entries, b->cc_shared ? b->sgt.entries.size() : 0);
  delete b;
}

const SgTable* system_sg_table(DmaBuf* buf) { return &static_cast<SystemBuffer*>(buf->priv)->sgt; }

const DmaBufOps kSystemBufOps = {
    .attach = system_attach,
    .detach = system_detach,
    .map_dma_buf = system_map,
    .unmap_dma_buf = system_unmap,
    .begin_cpu_access = system_begin_cpu_access,
    .end_cpu_access = system_end_cpu_access,
    .mmap = system_mmap,
    .release = system_release,
    .sg_table = system_sg_table,
};

// --- dma_heap_ops ---

int system_allocate(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t, DmaBuf** out) {
  Platform* p = heap->platform;
  const uint64_t ps = p->page_size();
  // The chunks come from the page allocator under one lock.
  auto* b = new SystemBuffer();
  b->heap = heap;
  b->cc_shared = heap->kind == HeapKind::kCcShared;
  int err = 0;
  bool all_private;
  {
    PageAllocator::Batch pages(*p->pages);
    // The kernel would walk the page allocator until it ran dry, then free
    // everything. The outcome of a request larger than all free memory is
    // known in advance: fail it without touching anything.
    if (len / ps > pages.free_pages()) {
      err = -ENOMEM;
    } else {
      // As many chunks as the largest orders need when none falls back.
      uint64_t want = 0;
      for (uint64_t left = len; unsigned order : kOrders) {
        want += left / (ps << order);
        left %= ps << order;
      }
      b->sgt.entries.reserve(want);
    }
    uint64_t remaining = err ? 0 : len;
    unsigned max_order = kOrders[0];
    while (remaining) {
      // fatal_signal_pending(current): a killed allocation stops here.
      if ((err = p->fault(FaultSite::kFatalSignal).check(-EINTR))) break;
      Chunk c;
      if (!alloc_largest_available(p, pages, remaining, max_order, &c)) {
        err = -ENOMEM;
        break;
      }
      b->sgt.entries.push_back({c.pfn << p->page_shift, ps << c.order});
      remaining -= ps << c.order;
      max_order = c.order;
    }
    all_private = pages.all_private();
  }
  if (err) {
    free_chunks(p, b->sgt.entries, 0);
    delete b;
    return err;
  }
  b->sgt.cc_shared = b->cc_shared;

  size_t shared = 0;
  if (b->cc_shared) {
    for (; shared < b->sgt.entries.size(); ++shared)
      if ((err = decrypt_chunk(p, chunk_of(p, b->sgt.entries[shared])))) break;
  }
  if (!err) {
    check_chunk_states(p, b, all_private);
    const ExportInfo info = {
        .platform = p,
        .exp_name = heap->name.c_str(),
        .ops = &kSystemBufOps,
        .size = len,
        .flags = fd_flags,
        .priv = b,
    };
    if (!(err = dma_buf_export(info, out))) return 0;
  }
  // The free_pages path: re-encrypt what was decrypted (leaking what cannot
  // be), free the rest.
  free_chunks(p, b->sgt.entries, shared);
  delete b;
  return err;
}

const HeapOps kSystemHeapOps = {.allocate = system_allocate};

}  // namespace

int system_heap_create(Platform* p) {
  int err = dma_heap_add(p, "system", HeapKind::kSystem, &kSystemHeapOps, nullptr, false, true,
                         nullptr);
  if (err || !p->cc_shared_heap_enabled()) return err;
  return dma_heap_add(p, "system_cc_shared", HeapKind::kCcShared, &kSystemHeapOps, nullptr, false,
                      true, nullptr);
}

}  // namespace dmabuf
