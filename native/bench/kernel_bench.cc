// Real-kernel benchmarks (native/kernel): dma-heap allocation against anonymous
// mmap of the same size, and sync_file wake-up latency against a pipe, each
// floor measured in the same run. Rows are skipped, with a note, where the
// kernel has no system heap or no sw_sync.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "core/fence/fence.h"
#include "kernel/heap.h"
#include "kernel/kernel_fence.h"
#include "core/base/monotonic.h"
#include "kernel/sw_sync.h"

namespace dmabuf::bench {
namespace {

using namespace dmabuf::kernel;

void anon_map_unmap(size_t len, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    // MAP_POPULATE: allocate and zero the pages now, as the heap does.
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    do_not_optimize(p);
    if (p != MAP_FAILED) munmap(p, len);
  }
}

void heap_alloc_free(int heap_fd, size_t len, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    auto b = heap_alloc(heap_fd, len);
    do_not_optimize(b.err());
  }  // UniqueFd closes: the last reference frees the buffer
}

Row skipped(const char* what, const std::string& why) {
  return ratio_row(std::string("kernel: ") + what + " (skipped)", 0, "", "", 0, "", true, why);
}

// One-way wake-up latency: a waiter blocks (`wait`), the main thread stamps the
// time and fires (`fire`), the waiter stamps its wake-up. Median over `iters`.
// `prepare` runs before each round, outside the timing.
struct LatencyCase {
  std::function<void()> prepare;
  std::function<void()> wait;
  std::function<void()> fire;
};

double median_latency_ns(int iters, LatencyCase& c) {
  std::atomic<int> round{0};
  std::atomic<int> woke{0};
  std::atomic<int64_t> t_woke{0};
  std::atomic<bool> quit{false};
  std::thread waiter([&] {
    int seen = 0;
    for (;;) {
      while (round.load(std::memory_order_acquire) == seen && !quit.load()) std::this_thread::yield();
      if (quit.load()) return;
      seen = round.load(std::memory_order_acquire);
      c.wait();
      t_woke.store(monotonic_ns(), std::memory_order_release);
      woke.store(seen, std::memory_order_release);
    }
  });
  std::vector<double> lat;
  lat.reserve(iters);
  for (int i = 1; i <= iters; ++i) {
    c.prepare();
    round.store(i, std::memory_order_release);
    // Give the waiter time to block in the kernel before firing.
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    const int64_t t0 = monotonic_ns();
    c.fire();
    while (woke.load(std::memory_order_acquire) != i) std::this_thread::yield();
    lat.push_back(static_cast<double>(t_woke.load(std::memory_order_acquire) - t0));
  }
  quit.store(true);
  waiter.join();
  std::sort(lat.begin(), lat.end());
  return lat[lat.size() / 2];
}

void block_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, -1) < 0) {
  }
}

Register reg("kernel", [](const Options& o, std::vector<Row>& rows) {
  auto heap = open_heap("system");
  if (!heap) {
    rows.push_back(skipped("heap alloc+free", heap.error().describe()));
  } else {
    const int hfd = heap->fd.get();
    for (size_t len : {size_t{4096}, size_t{1} << 20}) {
      const char* sz = len == 4096 ? "4 KiB" : "1 MiB";
      double floor = ns_per_op(o, [&](uint64_t n) { anon_map_unmap(len, n); });
      double v = ns_per_op(o, [&](uint64_t n) { heap_alloc_free(hfd, len, n); });
      rows.push_back(ratio_row(std::string("kernel: heap alloc+close ") + sz, v, "ns/op",
                               std::string("anon mmap(MAP_POPULATE)+munmap ") + sz, floor, "",
                               true, "DMA_HEAP_IOCTL_ALLOC on /dev/dma_heap/system"));
    }
  }

  auto tl = sw_sync_timeline_open();
  if (!tl) {
    rows.push_back(skipped("sync_file wake-up latency", tl.error().describe()));
    return;
  }
  const int iters = std::max(30, o.duration_ms / 2);

  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) return;
  char byte = 0;
  LatencyCase pipe_case{
      [] {}, [&] {
        block_readable(pfd[0]);
        if (read(pfd[0], &byte, 1) < 0) byte = 0;
      },
      [&] {
        if (write(pfd[1], "x", 1) < 0) byte = 0;
      }};
  const double floor = median_latency_ns(iters, pipe_case);
  close(pfd[0]);
  close(pfd[1]);

  uint32_t value = 0;
  UniqueFd point;
  LatencyCase sync_case{
      [&] {
        auto p = sw_sync_create_fence(tl->get(), ++value);
        point = p ? std::move(p.value()) : UniqueFd();
      },
      [&] { block_readable(point.get()); },
      [&] { (void)sw_sync_inc(tl->get(), 1); }};
  const double sync_lat = median_latency_ns(iters, sync_case);
  rows.push_back(ratio_row("kernel: sw_sync inc -> sync_file poll wakes", sync_lat / 1000, "us",
                           "pipe write -> poll wakes", floor / 1000, "", true,
                           "median one-way latency, waiter blocked in poll()"));

  Fence* f = nullptr;
  LatencyCase bridge_case{
      [&] {
        fence_put(f);  // the previous round's fence (signalled by now)
        auto p = sw_sync_create_fence(tl->get(), ++value);
        auto w = p ? kernel_fence_adopt(std::move(p.value())) : KResult<Fence*>(p.error());
        f = w ? *w : nullptr;
      },
      [&] {
        if (f) fence_wait_timeout(f, false, kMaxScheduleTimeout);
      },
      [&] { (void)sw_sync_inc(tl->get(), 1); }};
  const double bridge_lat = median_latency_ns(iters, bridge_case);
  fence_put(f);
  rows.push_back(ratio_row("kernel: sw_sync inc -> bridged Fence wait returns", bridge_lat / 1000,
                           "us", "pipe write -> poll wakes", floor / 1000, "", true,
                           "through the epoll watcher thread, FILE_INFO and a futex wake"));
});

}  // namespace
}  // namespace dmabuf::bench
