// An emulated platform: the machine and kernel configuration that decides which
// dma-buf heaps exist and how they behave (kernel version, architecture,
// memory encryption, RAM, CMA, protected heaps). It owns the emulated page
// allocator, the CMA area, the set_memory_{de,en}crypted hooks, the fault
// points and the heap registry. Several platforms can live side by side (tests
// make their own); buffers keep their platform alive.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/fault_inject.h"
#include "core/base/list.h"
#include "core/mm/cma_area.h"
#include "core/mm/mem_encrypt.h"
#include "core/mm/page_alloc.h"

namespace dmabuf {

struct Heap;

// KERNEL_VERSION(a, b, c), with the sublevel capped at 255 as the kernel does.
constexpr uint32_t kernel_version(unsigned major, unsigned minor, unsigned sub = 0) {
  return (major << 16) | (minor << 8) | (sub > 255 ? 255 : sub);
}
// "7.1", "6.12.95", "6.17-rc3" (suffixes after the numbers are ignored).
// -EINVAL if there is no "major.minor".
int parse_kernel_version(const char* text, uint32_t* out);
std::string kernel_version_string(uint32_t v);

enum class Arch : uint8_t { kX86_64, kArm64, kArm, kRiscv64, kS390x, kPpc64le };
const char* arch_name(Arch a);  // uname -m spelling: x86_64, aarch64, armv7l, ...
int arch_from_name(const char* name, Arch* out);  // also accepts "arm64", "s390", "ppc64le"

// What an architecture provides, as far as the heaps care.
struct ArchTraits {
  unsigned bits;               // 32-bit kernels truncate the heap ioctl's len to size_t
  bool cc_platform;            // ARCH_HAS_CC_PLATFORM: cc_platform_has() is real
  bool set_memory_crypt;       // set_memory_{de,en}crypted usable by the system heap
  bool highmem;                // CONFIG_HIGHMEM by default
  uint64_t page_offset;        // where the direct map starts (page_address of pfn 0)
  std::vector<uint32_t> page_sizes;  // supported PAGE_SIZEs
};
const ArchTraits& arch_traits(Arch a);

struct PlatformConfig {
  uint32_t kernel = kernel_version(7, 1);
  Arch arch = Arch::kX86_64;
  // cc_platform_has(CC_ATTR_MEM_ENCRYPT): a confidential-computing guest (SEV,
  // TDX, CCA) with memory encryption active.
  bool mem_encrypt = false;
  // -1: the architecture's default; 0/1 override whether set_memory_{de,en}crypted
  // are available to the heap (the s390 build failure in the CC series is the
  // example of "declared nowhere the heap can see").
  int set_memory_crypt = -1;
  int highmem = -1;             // -1: the architecture's default
  uint32_t page_size = 4096;
  uint64_t ram_bytes = 0;       // 0: the host's physical RAM (capped at 3 GiB on 32-bit);
                                // at most kMaxRamBytes
  uint64_t cma_bytes = 0;       // 0: no CMA area, no CMA heap
  // The CMA heap's name. Empty: "default_cma_region" from 6.17, the legacy name
  // before.
  std::string cma_name;
  // The legacy name: "reserved" when the area comes from cma= on the command
  // line, the device-tree node name (e.g. "linux,cma") otherwise.
  std::string cma_legacy_name = "reserved";
  // CONFIG_DMABUF_HEAPS_CMA_LEGACY (default y): from 6.17, also register the
  // area under its legacy name (same allocator).
  bool cma_legacy_heap = true;
  // TEE protected heaps to register, e.g. "protected,secure-video" (6.18+).
  // Each gets a static carve-out of protected_pool_bytes (OP-TEE's static
  // protmem pool), taken from RAM like the CMA area.
  std::vector<std::string> protected_heaps;
  uint64_t protected_pool_bytes = 32ULL << 20;
  // Also answer opens of "system_cc_decrypted" (the v2-v4 name) with the
  // system_cc_shared heap. Off by default: no merged kernel has that node.
  bool cc_heap_alias = false;
  int dmabuf_mnt_id = 12;  // fdinfo's mnt_id: the dmabuf pseudo-fs mount (12 on the rig)
};

struct Platform {
  PlatformConfig config;
  ArchTraits traits;
  uint32_t page_shift;
  std::unique_ptr<PageAllocator> pages;
  std::unique_ptr<CmaArea> cma;  // null without CMA
  // One static pool per protected heap, in config.protected_heaps order.
  std::vector<std::unique_ptr<CmaArea>> protmem_pools;
  MemCrypt crypt;
  FaultPoint faults[static_cast<size_t>(FaultSite::kCount)];

  // The heap registry: registration order, never shrinks (heaps cannot be
  // removed), so Heap pointers stay valid for the platform's life.
  std::mutex heaps_mu;
  std::vector<std::unique_ptr<Heap>> heaps;

  // Live buffers, newest first (the debugfs list), and the inode counter.
  std::mutex bufs_mu;
  ListHead bufs;
  std::atomic<uint64_t> next_ino{0};

  std::atomic<long> refs{1};

  FaultPoint& fault(FaultSite s) { return faults[static_cast<size_t>(s)]; }
  uint64_t page_size() const { return config.page_size; }
  // page_address(): the emulated direct-map address of a pfn, what the kernel
  // passes to set_memory_{de,en}crypted.
  uint64_t page_address(uint64_t pfn) const { return traits.page_offset + (pfn << page_shift); }
  // virt_to_pfn(); UINT64_MAX for an address outside the direct map.
  uint64_t virt_to_pfn(uint64_t addr) const;
  bool is_32bit() const { return traits.bits == 32; }
  bool has_highmem() const;
  bool cc_shared_heap_enabled() const;

  ~Platform();
};

// Creates a platform and registers its heaps. -EINVAL for a bad configuration
// (unsupported page size, CMA larger than RAM, ...). The caller owns one
// reference.
// The page allocator keeps state per max-order block, so an emulated platform
// is capped (larger configurations would take minutes and gigabytes to set up).
inline constexpr uint64_t kMaxRamBytes = uint64_t{1} << 40;  // 1 TiB

int platform_create(const PlatformConfig& config, Platform** out);
// The default platform: Linux 7.1 on x86-64 without memory encryption, host RAM,
// no CMA. Created on first use and never destroyed. No reference is taken.
Platform* platform_default();
Platform* platform_get(Platform* p);
void platform_put(Platform* p);

// Arms or disarms a fault point by name (see fault_inject.h). -EINVAL for an
// unknown site or a bad spec.
int platform_set_fault(Platform* p, const char* site, const FaultSpec& spec);

}  // namespace dmabuf
