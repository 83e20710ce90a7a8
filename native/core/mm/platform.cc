#include "core/mm/platform.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/base/warn.h"
#include "core/heaps/heap.h"
#include "core/heaps/heap_kinds.h"

namespace dmabuf {
namespace {

// Emulated RAM starts at 4 GiB (2 GiB on 32-bit), a max-order-aligned spot
// that keeps pfn 0 (and small addresses) out of every buffer.
constexpr uint64_t kRamBase64 = 1ULL << 32;
constexpr uint64_t kRamBase32 = 1ULL << 31;

const ArchTraits kArchTraits[] = {
    // bits cc_platform set_memory highmem page_offset          page sizes
    {64, true, true, false, 0xffff888000000000ULL, {4096}},                 // x86_64
    {64, true, true, false, 0xffff000000000000ULL, {4096, 16384, 65536}},   // arm64 (CCA)
    {32, false, false, true, 0xc0000000ULL, {4096}},                        // arm
    {64, false, false, false, 0xff60000000000000ULL, {4096}},               // riscv64
    // s390 does protected virtualisation but declares set_memory_{de,en}crypted
    // only in asm/mem_encrypt.h and exports neither: the CC series failed to
    // build there (0-day, Feb 2026), so the heap is absent on s390 profiles.
    {64, true, false, false, 0x0ULL, {4096}},                               // s390x
    {64, true, true, false, 0xc000000000000000ULL, {4096, 65536}},          // ppc64le (SVM)
};
const char* const kArchNames[] = {"x86_64", "aarch64", "armv7l", "riscv64", "s390x", "ppc64le"};

uint64_t host_ram_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || size <= 0) return 1ULL << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(size);
}

unsigned log2u(uint64_t v) {
  unsigned s = 0;
  while ((1ULL << s) < v) ++s;
  return s;
}

}  // namespace

int parse_kernel_version(const char* text, uint32_t* out) {
  if (!text) return -EINVAL;
  unsigned a = 0, b = 0, c = 0;
  int n = 0;
  if (sscanf(text, "%u.%u%n", &a, &b, &n) != 2) return -EINVAL;
  if (text[n] == '.') sscanf(text + n + 1, "%u", &c);
  if (a > 255 || b > 255) return -EINVAL;
  *out = kernel_version(a, b, c);
  return 0;
}

std::string kernel_version_string(uint32_t v) {
  char b[32];
  if (v & 0xff) snprintf(b, sizeof b, "%u.%u.%u", v >> 16, (v >> 8) & 0xff, v & 0xff);
  else snprintf(b, sizeof b, "%u.%u", v >> 16, (v >> 8) & 0xff);
  return b;
}

const char* arch_name(Arch a) { return kArchNames[static_cast<unsigned>(a)]; }

int arch_from_name(const char* name, Arch* out) {
  if (!name) return -EINVAL;
  struct Alias {
    const char* name;
    Arch arch;
  };
  static const Alias kAliases[] = {
      {"x86_64", Arch::kX86_64}, {"x64", Arch::kX86_64},       {"amd64", Arch::kX86_64},
      {"aarch64", Arch::kArm64}, {"arm64", Arch::kArm64},      {"armv7l", Arch::kArm},
      {"arm", Arch::kArm},       {"riscv64", Arch::kRiscv64},  {"s390x", Arch::kS390x},
      {"s390", Arch::kS390x},    {"ppc64le", Arch::kPpc64le},  {"ppc64", Arch::kPpc64le},
      {"powerpc", Arch::kPpc64le},
  };
  for (const Alias& al : kAliases) {
    if (!strcmp(al.name, name)) {
      *out = al.arch;
      return 0;
    }
  }
  return -EINVAL;
}

const ArchTraits& arch_traits(Arch a) { return kArchTraits[static_cast<unsigned>(a)]; }

uint64_t Platform::virt_to_pfn(uint64_t addr) const {
  if (addr < traits.page_offset || (addr & (config.page_size - 1))) return UINT64_MAX;
  const uint64_t pfn = (addr - traits.page_offset) >> page_shift;
  const uint64_t lo = pages->base_pfn();
  const uint64_t hi = lo + (config.ram_bytes >> page_shift);
  return pfn >= lo && pfn < hi ? pfn : UINT64_MAX;
}

bool Platform::has_highmem() const {
  return config.highmem >= 0 ? config.highmem != 0 : traits.highmem;
}

bool Platform::cc_shared_heap_enabled() const {
  // system_heap_create(): registered only if !HIGHMEM and
  // cc_platform_has(CC_ATTR_MEM_ENCRYPT); cc_platform_has() is a stub returning
  // false without ARCH_HAS_CC_PLATFORM. The heap itself exists from 7.1.
  const bool crypt_ops =
      config.set_memory_crypt >= 0 ? config.set_memory_crypt != 0 : traits.set_memory_crypt;
  return config.kernel >= kernel_version(7, 1) && config.mem_encrypt && traits.cc_platform &&
         crypt_ops && !has_highmem();
}

Platform::~Platform() {
  if (!pages) return;  // platform_create failed early
  PageAllocStats s = pages->stats();
  if (s.free_pages + s.leaked_pages != s.total_pages)
    warn("platform destroyed with %llu pages still allocated",
         static_cast<unsigned long long>(s.total_pages - s.free_pages - s.leaked_pages));
}

int platform_create(const PlatformConfig& config, Platform** out) {
  if (!out) return -EINVAL;
  const ArchTraits& traits = arch_traits(config.arch);
  bool page_ok = false;
  for (uint32_t ps : traits.page_sizes) page_ok |= ps == config.page_size;
  if (!page_ok) return -EINVAL;

  auto p = std::make_unique<Platform>();
  p->config = config;
  p->traits = traits;
  p->page_shift = log2u(config.page_size);
  list_init(&p->bufs);

  const uint64_t ps = config.page_size;
  if (config.ram_bytes > kMaxRamBytes || config.cma_bytes > kMaxRamBytes) return -EINVAL;
  uint64_t ram = config.ram_bytes ? config.ram_bytes : std::min(host_ram_bytes(), kMaxRamBytes);
  if (traits.bits == 32 && !config.ram_bytes && ram > (3ULL << 30)) ram = 3ULL << 30;
  ram &= ~(ps - 1);
  const uint64_t cma = (config.cma_bytes + ps - 1) & ~(ps - 1);
  const uint64_t pool = (config.protected_pool_bytes + ps - 1) & ~(ps - 1);
  const bool want_protected = config.kernel >= kernel_version(6, 18) && !config.protected_heaps.empty();
  const uint64_t pools = want_protected ? pool * config.protected_heaps.size() : 0;
  if (want_protected && pool == 0) return -EINVAL;
  if (cma + pools >= ram) return -EINVAL;
  p->config.ram_bytes = ram;
  p->config.cma_bytes = cma;

  // Carve-outs come off the top of RAM, as memblock reservations usually do.
  const uint64_t base_pfn = (traits.bits == 32 ? kRamBase32 : kRamBase64) >> p->page_shift;
  const uint64_t ram_pages = ram / ps;
  uint64_t top = base_pfn + ram_pages;
  if (want_protected) {
    for (const std::string& name : config.protected_heaps) {
      top -= pool / ps;
      p->protmem_pools.push_back(std::make_unique<CmaArea>(name, top, pool / ps));
    }
  }
  if (cma) {
    top -= cma / ps;
    p->cma = std::make_unique<CmaArea>("reserved", top, cma / ps);
  }
  p->pages = std::make_unique<PageAllocator>(base_pfn, top - base_pfn);

  // dma-heaps arrived in 5.6 (system and CMA together).
  if (config.kernel >= kernel_version(5, 6)) {
    int err = system_heap_create(p.get());
    if (!err && p->cma) err = cma_heap_create(p.get());
    if (!err && want_protected) err = protected_heaps_create(p.get());
    if (err) return err;
  }
  *out = p.release();
  return 0;
}

Platform* platform_default() {
  static Platform* instance = [] {
    Platform* p = nullptr;
    if (platform_create(PlatformConfig{}, &p)) abort();
    return p;
  }();
  return instance;
}

Platform* platform_get(Platform* p) {
  if (p) p->refs.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void platform_put(Platform* p) {
  if (p && p->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete p;
}

int platform_set_fault(Platform* p, const char* site, const FaultSpec& spec) {
  FaultSite s;
  if (!p) return -EINVAL;
  if (int err = fault_site_from_name(site, &s)) return err;
  return p->fault(s).configure(spec);
}

}  // namespace dmabuf
