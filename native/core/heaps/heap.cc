// The dma-heap core (drivers/dma-buf/dma-heap.c): registry, the allocation
// ioctl and its validation.
#include "core/heaps/heap.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/base/warn.h"
#include "core/buffer/dma_buf.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

// _IOC decoding, generic layout (x86, arm, riscv, s390).
constexpr unsigned ioc_nr(unsigned cmd) { return cmd & 0xff; }
constexpr unsigned ioc_size(unsigned cmd) { return (cmd >> 16) & 0x3fff; }
constexpr unsigned ioc_dir(unsigned cmd) { return cmd >> 30; }
constexpr unsigned kIocWrite = 1;  // userspace writes: the kernel copies in
constexpr unsigned kIocRead = 2;   // the kernel copies out

}  // namespace

const char* heap_kind_name(HeapKind k) {
  switch (k) {
    case HeapKind::kSystem: return "system";
    case HeapKind::kCcShared: return "system_cc_shared";
    case HeapKind::kCma: return "cma";
    case HeapKind::kProtected: return "protected";
    case HeapKind::kCustom: return "custom";
  }
  return "?";
}

int dma_heap_add(Platform* p, const char* name, HeapKind kind, const HeapOps* ops, void* priv,
                 bool contiguous, bool cpu_access, Heap** out) {
  if (!p || !name || !*name || !ops || !ops->allocate) {
    warn("dma_heap: cannot add heap with invalid ops struct or name");
    return -EINVAL;
  }
  bool duplicate = false, full = false;
  {
    std::lock_guard<std::mutex> g(p->heaps_mu);
    for (const auto& h : p->heaps) duplicate |= h->name == name;
    // The kernel allocates a minor from an xarray limited to NUM_HEAP_MINORS.
    full = !duplicate && p->heaps.size() >= kDmaHeapMaxHeaps;
    if (!duplicate && !full) {
      auto h = std::make_unique<Heap>(Heap{name, kind, ops, priv, p, contiguous, cpu_access});
      if (out) *out = h.get();
      p->heaps.push_back(std::move(h));
      return 0;
    }
  }
  // Outside heaps_mu: the warn handler is foreign code.
  if (duplicate) warn("dma_heap: already registered heap named %s", name);
  else warn("dma_heap: unable to get minor number for heap (err=-EBUSY)");
  return -EINVAL;
}

int dma_heap_open(Platform* p, const char* name, Heap** out) {
  if (!p || !name || !out) return -EINVAL;
  std::lock_guard<std::mutex> g(p->heaps_mu);
  for (const auto& h : p->heaps) {
    if (h->name == name) {
      *out = h.get();
      return 0;
    }
  }
  if (p->config.cc_heap_alias && !strcmp(name, "system_cc_decrypted")) {
    for (const auto& h : p->heaps) {
      if (h->kind == HeapKind::kCcShared) {
        *out = h.get();
        return 0;
      }
    }
  }
  return -ENOENT;
}

std::vector<HeapInfo> dma_heap_list(Platform* p) {
  std::vector<HeapInfo> list;
  if (!p) return list;
  {
    std::lock_guard<std::mutex> g(p->heaps_mu);
    for (const auto& h : p->heaps)
      list.push_back({h->name, h->kind, h->contiguous, h->cpu_access, h->kind == HeapKind::kCcShared});
  }
  std::sort(list.begin(), list.end(),
            [](const HeapInfo& a, const HeapInfo& b) { return a.name < b.name; });
  return list;
}

int dma_heap_alloc(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags,
                   DmaBuf** out) {
  if (!heap) return -EBADF;
  if (!out) return -EFAULT;
  if (fd_flags & ~kDmaHeapValidFdFlags) return -EINVAL;
  if (heap_flags & ~kDmaHeapValidHeapFlags) return -EINVAL;

  // dma_heap_buffer_alloc(): `len` is a size_t, so 32-bit kernels drop the top
  // half before PAGE_ALIGN, and PAGE_ALIGN wraps to 0 near the top.
  Platform* p = heap->platform;
  const uint64_t ps = p->page_size();
  if (p->is_32bit()) len &= 0xffffffffULL;
  uint64_t aligned = (len + ps - 1) & ~(ps - 1);
  if (p->is_32bit()) aligned &= 0xffffffffULL;
  if (aligned == 0) return -EINVAL;

  DmaBuf* buf = nullptr;
  if (int err = heap->ops->allocate(heap, aligned, fd_flags, heap_flags, &buf)) return err;
  int fd = dma_buf_fd(buf, fd_flags);
  if (fd < 0) {
    dma_buf_put(buf);  // release frees the memory
    return fd;
  }
  *out = buf;
  return 0;
}

long dma_heap_ioctl(Heap* heap, unsigned cmd, void* arg) {
  if (!heap) return -EBADF;
  // dma_heap_ioctl(): only the nr selects the command; the size may differ
  // from the kernel's struct in either direction.
  if (ioc_nr(cmd) >= 1) return -EINVAL;
  const unsigned kcmd = kDmaHeapIoctlAlloc;
  const unsigned drv_size = ioc_size(kcmd);
  unsigned out_size = ioc_size(cmd);
  unsigned in_size = out_size;
  if (!(ioc_dir(cmd) & ioc_dir(kcmd) & kIocWrite)) in_size = 0;
  if (!(ioc_dir(cmd) & ioc_dir(kcmd) & kIocRead)) out_size = 0;
  if ((in_size || out_size) && !arg) return -EFAULT;

  unsigned char kdata[sizeof(DmaHeapAllocationData)] = {};
  memcpy(kdata, arg ? arg : kdata, std::min<unsigned>(in_size, drv_size));
  DmaHeapAllocationData data;
  memcpy(&data, kdata, sizeof data);

  if (data.fd) return -EINVAL;
  DmaBuf* buf = nullptr;
  int err = dma_heap_alloc(heap, data.len, data.fd_flags, data.heap_flags, &buf);
  if (err) return err;
  data.fd = static_cast<uint32_t>(buf->user_fd.load(std::memory_order_relaxed));
  memcpy(kdata, &data, sizeof data);
  // Copy back what the caller's struct has room for (the kernel copies
  // out_size bytes of its zero-extended buffer).
  memcpy(arg, kdata, std::min<unsigned>(out_size, drv_size));
  return 0;
}

}  // namespace dmabuf
