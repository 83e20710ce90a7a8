// Heap benchmarks: allocate + free from the emulated system heap against two
// floors of the same size, in the same run: the syscalls a buffer needs at the
// least (memfd_create + ftruncate + seals + close: the fair floor, with the
// target), and mmap + munmap (what an anonymous allocation costs). Nothing
// touches the memory (a heap buffer's memfd pages arrive on first access, like
// an anonymous mapping's), so the ratio to the memfd floor is the emulation's
// own bookkeeping: page allocator, scatterlist, buffer, fd table, buffer list.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
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

// What dma_buf_export does with the kernel's part of a buffer, and close().
void memfd_floor(uint64_t bytes, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    const int fd = memfd_create("dmabuf:floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
      abort();
    do_not_optimize(fd);
    close(fd);
  }
}

// This thread's CPU time (user + system): what an op costs, without the time
// the thread spent preempted on a shared machine.
double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// ns/op of each op, best of o.repeats runs of about o.duration_ms, taken in
// turns (a, b, c, a, b, c, ...) and timed in thread CPU time: on a shared
// machine a burst of load from elsewhere then neither lands on one of them
// alone nor counts the time the loop was not running.
std::vector<double> in_turns(const Options& o, const std::vector<std::function<void(uint64_t)>>& ops) {
  Options once = o;
  once.repeats = 1;
  std::vector<uint64_t> iters;
  for (const auto& op : ops)
    iters.push_back(std::max<uint64_t>(1, static_cast<uint64_t>(o.duration_ms * 1e6 / ns_per_op(once, op))));
  std::vector<double> best(ops.size(), 1e300);
  for (int r = 0; r < o.repeats; ++r) {
    for (size_t i = 0; i < ops.size(); ++i) {
      const double t0 = thread_cpu_ns();
      ops[i](iters[i]);
      best[i] = std::min(best[i], (thread_cpu_ns() - t0) / static_cast<double>(iters[i]));
    }
  }
  return best;
}

Register reg("heaps", [](const Options& o, std::vector<Row>& rows) {
  Platform* p = bench_platform();
  Heap* sys = nullptr;
  Heap* cc = nullptr;
  if (dma_heap_open(p, "system", &sys) || dma_heap_open(p, "system_cc_shared", &cc)) abort();
  for (const Size& s : kSizes) {
    const uint64_t bytes = s.bytes;
    const std::vector<double> t = in_turns(o, {
                                                  [&](uint64_t n) { memfd_floor(bytes, n); },
                                                  [&](uint64_t n) { mmap_munmap(bytes, n); },
                                                  [&](uint64_t n) { heap_alloc_free(sys, bytes, n); },
                                              });
    const double memfd = t[0], mmap = t[1], heap = t[2];
    rows.push_back(ratio_row(std::string("system heap alloc+free, ") + s.label, heap, "ns/op",
                             std::string("memfd+ftruncate+seals+close, ") + s.label, memfd, "<= 1.2",
                             true));
    rows.push_back(ratio_row(std::string("system heap alloc+free vs mmap, ") + s.label, heap, "ns/op",
                             std::string("mmap+munmap, ") + s.label, mmap, "", true));
  }
  const std::vector<double> t = in_turns(o, {
                                                [&](uint64_t n) { heap_alloc_free(sys, 1ULL << 20, n); },
                                                [&](uint64_t n) { heap_alloc_free(cc, 1ULL << 20, n); },
                                            });
  const double sys1 = t[0], cc1 = t[1];
  rows.push_back(ratio_row("system_cc_shared alloc+free, 1 MiB", cc1, "ns/op",
                           "system heap alloc+free, 1 MiB", sys1, "", true,
                           "decrypt + re-encrypt per chunk, default (always-succeeding) hooks"));
});

}  // namespace
}  // namespace dmabuf::bench
