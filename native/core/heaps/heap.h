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

/**
 * heap_kind_name() - "system", "system_cc_shared", "cma", "protected" or "custom"
 */
const char* heap_kind_name(HeapKind k);

struct HeapOps {
  // Allocates `len` bytes (page aligned, non-zero, flags already validated) and
  // exports a dma-buf without an fd; the caller owns its one file reference.
  // 0 or a negative errno. Called without any heap lock held.
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

/**
 * dma_heap_add() - register a heap on platform @p
 * @ops: must have allocate; @priv is the heap's, for the ops
 * @out: optional; the heap, owned by the platform
 *
 * Context: any thread; takes the platform's heap-list lock.
 * Returns: 0; -EINVAL (with a warning) for a null platform, an empty name,
 * missing ops, a duplicate name or a 129th heap (the kernel's minor space is
 * 128).
 */
int dma_heap_add(Platform* p, const char* name, HeapKind kind, const HeapOps* ops, void* priv,
                 bool contiguous, bool cpu_access, Heap** out);

/**
 * dma_heap_open() - open("/dev/dma_heap/<name>")
 *
 * "system_cc_decrypted" also finds the system_cc_shared heap on platforms
 * configured with that alias.
 *
 * Context: any thread; takes the heap-list lock. Returns: 0 with *@out
 * borrowed (valid while the platform lives); -ENOENT if no such heap; -EINVAL
 * for null arguments.
 */
int dma_heap_open(Platform* p, const char* name, Heap** out);

/**
 * dma_heap_list() - the heaps, sorted by name as `ls` prints them (empty for
 * a null platform)
 *
 * Context: any thread; takes the heap-list lock.
 */
std::vector<HeapInfo> dma_heap_list(Platform* p);

/**
 * dma_heap_alloc() - DMA_HEAP_IOCTL_ALLOC on an open heap
 *
 * On 32-bit platforms @len is truncated to 32 bits first. On success *@out
 * holds a buffer with an installed fd; the caller owns the fd's reference.
 *
 * Context: any thread, no heap lock held during the allocation; the
 * system_cc_shared heap calls the platform's set_memory_{de,en}crypted hooks
 * on this thread.
 * Returns, with the checks in the kernel's order: -EBADF for a null @heap,
 * -EFAULT for a null @out; -EINVAL for fd_flags outside O_CLOEXEC|O_ACCMODE,
 * for any heap_flags bit, or for PAGE_ALIGN(len) == 0 (len 0, or within a
 * page of the top of the address space); then the heap's error (-ENOMEM,
 * -EINTR, or the set_memory_decrypted error for system_cc_shared); then the
 * fd's (-EMFILE); else 0.
 */
int dma_heap_alloc(Heap* heap, uint64_t len, uint32_t fd_flags, uint64_t heap_flags,
                   DmaBuf** out);

/**
 * dma_heap_ioctl() - the ioctl itself, for ports of C code
 *
 * Decodes @cmd like the kernel's dma_heap_ioctl() (the argument struct may be
 * smaller or larger than the kernel's: missing bytes read as zero, extra
 * bytes are ignored), checks that fd is 0 on input, allocates with
 * dma_heap_alloc() and writes the new fd back.
 *
 * Context: as dma_heap_alloc().
 * Returns: 0; -EBADF for a null @heap; -EINVAL for an unknown nr or a
 * non-zero input fd; -EFAULT for a null @arg; dma_heap_alloc()'s errors.
 */
long dma_heap_ioctl(Heap* heap, unsigned cmd, void* arg);

}  // namespace dmabuf
