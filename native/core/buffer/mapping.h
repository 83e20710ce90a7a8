// A CPU mapping of a dma-buf (mmap of its fd), shaped for JavaScript: an
// ArrayBuffer over it must never read memory after unmap or close, yet its
// finalizer may run much later. So invalidation and release are separate:
// - mapping_invalidate() ends CPU access now: the range is replaced, in one
//   mmap(MAP_FIXED), by an inaccessible PROT_NONE reservation (stale accesses
//   fault instead of reading anything), and the buffer's file reference drops.
// - the last mapping_put() gives the address range back (munmap), so the
//   address cannot be reused while anyone still holds the Mapping.
// dma_buf_close() invalidates every mapping of the buffer; so does revocation
// by a revocable exporter.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace dmabuf {

struct DmaBuf;

struct Mapping {
  DmaBuf* buf;    // object reference for the Mapping's whole life
  void* addr;
  size_t len;     // bytes mapped (the request, rounded up to the page size)
  uint64_t offset;
  int prot;
  int flags;
  bool valid;     // guarded by buf->map_lock
  std::atomic<long> refs{1};
};

// mmap(NULL, len, prot, flags, fd, offset) on the buffer, checks in the
// kernel's order: len 0 or offset not page aligned -> -EINVAL; fd closed ->
// -EBADF; MAP_SHARED|PROT_WRITE on an fd opened without write access, or any
// mapping of an fd without read access -> -EACCES; exporter without mmap
// (protected heaps) -> -EINVAL; pgoff + pages beyond the buffer -> -EINVAL;
// the exporter's own rule (CMA: MAP_SHARED only -> -EINVAL). `flags` must be
// MAP_SHARED or MAP_PRIVATE (anything else -> -EINVAL). The caller owns one
// reference to the new mapping.
int dma_buf_mmap(DmaBuf* buf, uint64_t offset, uint64_t len, int prot, int flags, Mapping** out);

// The same checks without mapping anything (0 or -errno): for a process that
// maps the buffer's memfd itself (the `dmabuf run` broker's clients).
int dma_buf_mmap_check(DmaBuf* buf, uint64_t offset, uint64_t len, int prot, int flags);

// Ends CPU access to the mapping (idempotent, thread-safe).
void mapping_invalidate(Mapping* m);
bool mapping_valid(Mapping* m);
void mapping_get(Mapping* m);
// Drops a reference; the last one invalidates (if still valid) and unmaps.
void mapping_put(Mapping* m);

// Invalidates every live CPU mapping of `buf` (close, revoke).
void dma_buf_invalidate_mappings(DmaBuf* buf);

}  // namespace dmabuf
