// Heap benchmarks: allocate + free from the emulated system heap against
// mmap + munmap of the same size, in the same run. Neither side touches the
// memory (a heap buffer's memfd pages arrive on first access, like an
// anonymous mapping's), so the ratio is the emulation's bookkeeping: page
// allocator, scatterlist, memfd, seals, fd, buffer list.
#include <fcntl.h>
#include <sys/mman.h>

#include <cstdlib>
#include <string>

#include "bench/bench.h"
#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/mm/platform.h"

namespace dmabuf::bench {
namespace {

struct Size {
  const char* label;
  uint64_t bytes;
};
constexpr Size kSizes[] = {{"4 KiB", 4ULL << 10}, {"1 MiB", 1ULL << 20}, {"64 MiB", 64ULL << 20}};

Platform* bench_platform() {
  // Its own platform (1 GiB of emulated RAM, a CC guest for the cc row) so
  // the default platform's host-sized RAM does not matter.
  static Platform* p = [] {
    PlatformConfig c;
    c.ram_bytes = 1ULL << 30;
    c.mem_encrypt = true;
    Platform* out = nullptr;
    if (platform_create(c, &out)) abort();
    return out;
  }();
  return p;
}

void heap_alloc_free(Heap* h, uint64_t bytes, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    DmaBuf* b = nullptr;
    if (dma_heap_alloc(h, bytes, O_RDWR | O_CLOEXEC, 0, &b)) abort();
    do_not_optimize(b);
    dma_buf_close(b);
  }
}

void mmap_munmap(uint64_t bytes, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    do_not_optimize(p);
    munmap(p, bytes);
  }
}

Register reg("heaps", [](const Options& o, std::vector<Row>& rows) {
  Platform* p = bench_platform();
  Heap* sys = nullptr;
  Heap* cc = nullptr;
  if (dma_heap_open(p, "system", &sys) || dma_heap_open(p, "system_cc_shared", &cc)) abort();
  for (const Size& s : kSizes) {
    const uint64_t bytes = s.bytes;
    const double floor = ns_per_op(o, [&](uint64_t n) { mmap_munmap(bytes, n); });
    const double heap = ns_per_op(o, [&](uint64_t n) { heap_alloc_free(sys, bytes, n); });
    rows.push_back(ratio_row(std::string("system heap alloc+free, ") + s.label, heap, "ns/op",
                             std::string("mmap+munmap, ") + s.label, floor, "", true));
  }
  const double sys1 = ns_per_op(o, [&](uint64_t n) { heap_alloc_free(sys, 1ULL << 20, n); });
  const double cc1 = ns_per_op(o, [&](uint64_t n) { heap_alloc_free(cc, 1ULL << 20, n); });
  rows.push_back(ratio_row("system_cc_shared alloc+free, 1 MiB", cc1, "ns/op",
                           "system heap alloc+free, 1 MiB", sys1, "", true,
                           "decrypt + re-encrypt per chunk, default (always-succeeding) hooks"));
});

}  // namespace
}  // namespace dmabuf::bench
