// CPU mappings of dma-bufs: dma_buf_mmap_internal's checks, then a real mmap
// of the buffer's memfd; invalidation for JavaScript's sake (see mapping.h).
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

#include "core/base/warn.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/mapping.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

// Swaps the range for an inaccessible reservation in one step, so no other
// mapping can land at this address while a stale pointer to it exists.
// Returns 0 or the errno of a failed replacement (callers warn after
// unlocking: the warn handler is foreign code).
int make_inaccessible(Mapping* m) {
  void* r = mmap(m->addr, m->len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (r != MAP_FAILED) return 0;
  // Cannot happen short of a kernel out of VMAs; fall back to plain protection
  // so the data still cannot be read.
  const int err = errno;
  mprotect(m->addr, m->len, PROT_NONE);
  return err;
}

void warn_replacement(int err) {
  if (err) warn("dma-buf mapping: PROT_NONE replacement failed (errno %d)", err);
}

}  // namespace

int dma_buf_mmap_check(DmaBuf* buf, uint64_t offset, uint64_t len, int prot, int flags) {
  if (!buf) return -EINVAL;
  const uint64_t ps = buf->platform->page_size();
  const int type = flags & (MAP_SHARED | MAP_PRIVATE);
  if (len == 0 || (offset & (ps - 1)) || (type != MAP_SHARED && type != MAP_PRIVATE) ||
      (flags & ~(MAP_SHARED | MAP_PRIVATE)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
    return -EINVAL;
  // Generic mmap checks on the file (do_mmap): read access is always needed,
  // write access for writable shared mappings.
  if (buf->user_fd.load(std::memory_order_acquire) < 0) return -EBADF;  // re-checked by the caller
  if (!(buf->f_mode & 0x1)) return -EACCES;
  if (type == MAP_SHARED && (prot & PROT_WRITE) && !(buf->f_mode & 0x2)) return -EACCES;
  // dma_buf_mmap_internal.
  if (!buf->ops->mmap) return -EINVAL;
  const uint64_t pages = (len + ps - 1) / ps;
  const uint64_t pgoff = offset / ps;
  if (pages > buf->size / ps || pgoff > buf->size / ps - pages) return -EINVAL;
  const MmapRequest req{pgoff, len, prot, type};
  return buf->ops->mmap(buf, req);
}

int dma_buf_mmap(DmaBuf* buf, uint64_t offset, uint64_t len, int prot, int flags, Mapping** out) {
  if (!buf || !out) return -EINVAL;
  if (int err = dma_buf_mmap_check(buf, offset, len, prot, flags)) return err;
  const uint64_t ps = buf->platform->page_size();
  const int type = flags & (MAP_SHARED | MAP_PRIVATE);
  const uint64_t pages = (len + ps - 1) / ps;

  const size_t maplen = static_cast<size_t>(pages * ps);
  std::unique_lock<std::mutex> g(buf->map_lock);
  const int fd = buf->user_fd.load(std::memory_order_acquire);
  if (fd < 0) return -EBADF;
  void* addr = mmap(nullptr, maplen, prot, type, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) return -errno;

  auto* m = new Mapping();
  m->buf = buf;
  m->addr = addr;
  m->len = maplen;
  m->offset = offset;
  m->prot = prot;
  m->flags = type;
  m->valid = true;
  dma_buf_obj_get(buf);
  dma_buf_get(buf);  // an mmap holds the file, as vma->vm_file does
  buf->mappings.push_back(m);
  *out = m;
  return 0;
}

void mapping_invalidate(Mapping* m) {
  DmaBuf* buf = m->buf;
  int err;
  {
    std::lock_guard<std::mutex> g(buf->map_lock);
    if (!m->valid) return;
    m->valid = false;
    auto it = std::find(buf->mappings.begin(), buf->mappings.end(), m);
    if (it != buf->mappings.end()) buf->mappings.erase(it);
    // Under the lock: the owner's final put waits here before unmapping.
    err = make_inaccessible(m);
  }
  warn_replacement(err);
  dma_buf_put(buf);
}

bool mapping_valid(Mapping* m) {
  std::lock_guard<std::mutex> g(m->buf->map_lock);
  return m->valid;
}

void mapping_get(Mapping* m) { m->refs.fetch_add(1, std::memory_order_relaxed); }

void mapping_put(Mapping* m) {
  if (m->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  mapping_invalidate(m);
  munmap(m->addr, m->len);
  DmaBuf* buf = m->buf;
  delete m;
  dma_buf_obj_put(buf);
}

void dma_buf_invalidate_mappings(DmaBuf* buf) {
  // All under the lock, without touching a Mapping afterwards: an owner may be
  // in mapping_put() concurrently, and frees it once it gets the lock.
  size_t n;
  int err = 0;
  {
    std::lock_guard<std::mutex> g(buf->map_lock);
    n = buf->mappings.size();
    for (Mapping* m : buf->mappings) {
      m->valid = false;
      if (int e = make_inaccessible(m)) err = e;
    }
    buf->mappings.clear();
  }
  warn_replacement(err);
  // The caller holds a reference, so these never release the buffer.
  while (n--) dma_buf_put(buf);
}

}  // namespace dmabuf
