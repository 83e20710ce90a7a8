// The dma-heap core: a registry of named heaps per platform (what
// `ls /dev/dma_heap` shows) and allocation with DMA_HEAP_IOCTL_ALLOC's exact
// validation. Heap kinds live in heap_system.cc (system, system_cc_shared),
// heap_cma.cc and heap_protected.cc.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dmabuf {

struct Platform;
struct DmaBuf;
struct Heap;

// What a heap is, for listings and for tests (the kernel has no such query:
// userspace infers it from the name).
enum class HeapKind : uint8_t { kSystem, kCcShared, kCma, kProtected, kCustom };
const char* heap_kind_name(HeapKind k);

struct HeapOps {
  // Allocates `len` bytes (page aligned, non-zero, flags already validated) and
  // exports a dma-buf without an fd; the caller owns its one file reference.
  // 0 or a negative errno.
  int (*allocate)(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags,
                  DmaBuf** out);
};

struct Heap {
  std::string name;
  HeapKind kind;
  const HeapOps* ops;
  void* priv;
  Platform* platform;  // not a reference: the platform owns its heaps
  bool contiguous;     // buffers are physically contiguous
  bool cpu_access;     // buffers can be mapped by the CPU
};

struct HeapInfo {
  std::string name;
  HeapKind kind;
  bool contiguous;
  bool cpu_access;
  bool cc_shared;
};

// UAPI constants (generic _IOC layout; O_CLOEXEC as on x86/arm/riscv/s390/ppc).
constexpr uint32_t kOCloexec = 02000000;
constexpr uint32_t kOAccmode = 3;
constexpr uint32_t kDmaHeapValidFdFlags = kOCloexec | kOAccmode;
constexpr uint64_t kDmaHeapValidHeapFlags = 0;
constexpr unsigned kDmaHeapMaxHeaps = 128;
constexpr unsigned kDmaHeapIoctlAlloc = 0xC0184800;  // _IOWR('H', 0, 24 bytes)

// The ioctl's argument (include/uapi/linux/dma-heap.h).
struct DmaHeapAllocationData {
  uint64_t len;
  uint32_t fd;
  uint32_t fd_flags;
  uint64_t heap_flags;
};
static_assert(sizeof(DmaHeapAllocationData) == 24);

// dma_heap_add: registers a heap. -EINVAL for an empty name, missing ops, a
// duplicate name or a 129th heap (the kernel's minor space is 128).
int dma_heap_add(Platform* p, const char* name, HeapKind kind, const HeapOps* ops, void* priv,
                 bool contiguous, bool cpu_access, Heap** out);

// open("/dev/dma_heap/<name>"): -ENOENT if no such heap.
int dma_heap_open(Platform* p, const char* name, Heap** out);

// The heaps, sorted by name as `ls` prints them.
std::vector<HeapInfo> dma_heap_list(Platform* p);

// DMA_HEAP_IOCTL_ALLOC on an open heap, checks in the kernel's order:
// fd_flags outside O_CLOEXEC|O_ACCMODE -> -EINVAL; any heap_flags bit ->
// -EINVAL; PAGE_ALIGN(len) == 0 (len 0, or within a page of the top of the
// address space) -> -EINVAL; then the heap (-ENOMEM, -EINTR, or the
// set_memory_decrypted error for system_cc_shared); then the fd (-EMFILE).
// On 32-bit platforms len is truncated to 32 bits first. On success *out holds
// a buffer with an installed fd; the caller owns the fd's reference.
int dma_heap_alloc(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags,
                   DmaBuf** out);

// The ioctl itself, for ports of C code: decodes `cmd` like dma_heap_ioctl()
// (an unknown nr -> -EINVAL, the argument struct may be smaller or larger than
// the kernel's: missing bytes read as zero, extra bytes are ignored), checks
// that fd is 0 on input, allocates, and writes the new fd back. -EBADF for a
// null heap, -EFAULT for a null argument. Returns 0 or a negative errno.
long dma_heap_ioctl(Heap* heap, unsigned cmd, void* arg);

}  // namespace dmabuf
