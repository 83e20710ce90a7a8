// dma-buf heaps through /dev/dma_heap: list, open, allocate
// (drivers/dma-buf/dma-heap.c).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

constexpr const char* kHeapDir = "/dev/dma_heap";
// O_RDWR | O_CLOEXEC, what every userspace allocator asks for.
constexpr uint32_t kDefaultFdFlags = 02 | 02000000;

struct HeapInfo {
  std::string name;  // e.g. "system", "default_cma_region"
  std::string path;  // "/dev/dma_heap/system"
};

// Heaps under `dir`, sorted by name. A missing dir (no CONFIG_DMABUF_HEAPS, or a
// container without /dev/dma_heap) is an empty list, not an error; a dir we
// cannot read is EACCES.
KResult<std::vector<HeapInfo>> list_heaps(const char* dir = kHeapDir);

// An open heap node.
struct Heap {
  std::string name;
  std::string path;
  UniqueFd fd;
};

// Opens `dir`/`name` read-only, close-on-exec (the open mode does not matter to
// the kernel). Names with '/' or "."/".." are EINVAL (no path tricks). Missing
// node: ENOENT. Permission denied: EACCES, with a message naming the node, its
// owner and mode, and the usual fix (nodes are root-only 0600 by default).
KResult<Heap> open_heap(std::string_view name, const char* dir = kHeapDir);

// DMA_HEAP_IOCTL_ALLOC: `len`, `fd_flags` and `heap_flags` go to the kernel
// exactly as given (it rounds len up to a page, accepts O_CLOEXEC|O_ACCMODE in
// fd_flags and no heap_flags); its errno comes back unchanged. Returns the new
// dma-buf fd.
KResult<UniqueFd> heap_alloc(int heap_fd, uint64_t len, uint32_t fd_flags = kDefaultFdFlags,
                             uint64_t heap_flags = 0);

}  // namespace dmabuf::kernel
