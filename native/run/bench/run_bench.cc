// dmabuf-run-bench: what the shared emulation costs, run under `dmabuf run`
// (lib/bench_run.ts starts it there and turns its JSON into bench rows).
// Every row has a floor measured in the same process and run:
// - sw_sync INC and SYNC_IOC_MERGE through the broker vs an empty round trip
//   on the same connection (dmabuf_run_ping(), exported by the preload library);
// - poll() of a signalled emulated sync_file vs poll() of a readable pipe;
// - heap alloc+free (4 KiB, 1 MiB) through /dev/dma_heap/system vs the same
//   on the in-process emulation (the core, no broker).
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/dma-heap.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/mm/platform.h"
#include "kernel/uapi.h"

namespace {

namespace uapi = dmabuf::kernel::uapi;

using clk = std::chrono::steady_clock;

// Iterations that take about @ms.
long calibrate(int ms, const std::function<void()>& op) {
  long n = 1;
  for (;;) {
    auto t0 = clk::now();
    for (long i = 0; i < n; ++i) op();
    double el = std::chrono::duration<double, std::milli>(clk::now() - t0).count();
    if (el >= ms / 4.0 || n > (1L << 26)) return n * 4;
    n *= 2;
  }
}

double batch(long n, const std::function<void()>& op) {
  auto t0 = clk::now();
  for (long i = 0; i < n; ++i) op();
  return std::chrono::duration<double, std::nano>(clk::now() - t0).count() / n;
}

// ns per op of @op and of its @floor: 7 rounds, the two batches of a round
// back to back, the best of each kept (the machine's noise hits both alike).
std::pair<double, double> measure(int ms, const std::function<void()>& op, const std::function<void()>& floor) {
  const long n = calibrate(ms, op), m = calibrate(ms, floor);
  double a = 1e300, b = 1e300;
  for (int r = 0; r < 7; ++r) {
    a = std::min(a, batch(n, op));
    b = std::min(b, batch(m, floor));
  }
  return {a, b};
}

bool first = true;
void row(const char* name, double value, const char* floor_name, double floor, const char* target) {
  printf("%s{\"name\":\"%s\",\"value\":%.1f,\"unit\":\"ns/op\",\"floorName\":\"%s\",\"floor\":%.1f,\"target\":\"%s\"}",
         first ? "" : ",\n", name, value, floor_name, floor, target);
  first = false;
}

[[noreturn]] void fail(const char* what) {
  fprintf(stderr, "dmabuf-run-bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  const int ms = argc > 1 ? atoi(argv[1]) : 100;
  using Ping = int (*)();
  auto ping = reinterpret_cast<Ping>(dlsym(RTLD_DEFAULT, "dmabuf_run_ping"));
  if (!ping) {
    fprintf(stderr, "dmabuf-run-bench: run me under `dmabuf run --emulate`\n");
    return 2;
  }
  const auto ping_op = [&] { ping(); };

  int tl = open("/sys/kernel/debug/sync/sw_sync", O_RDWR | O_CLOEXEC);
  if (tl < 0) fail("open sw_sync");
  uint32_t one = 1;
  const auto [inc, inc_floor] = measure(ms, [&] { ioctl(tl, uapi::kSwSyncIocInc, &one); }, ping_op);
  uapi::sw_sync_create_fence_data cf{};
  cf.value = 1;  // already signalled (the timeline is far past 1)
  if (ioctl(tl, uapi::kSwSyncIocCreateFence, &cf) < 0) fail("CREATE_FENCE");
  const auto [merge, merge_floor] = measure(
      ms,
      [&] {
        sync_merge_data m{};
        m.fd2 = cf.fence;
        if (ioctl(cf.fence, SYNC_IOC_MERGE, &m) == 0) close(m.fence);
      },
      ping_op);
  row("sw_sync INC through the broker", inc, "an empty round trip on the same connection", inc_floor, "<= 1.5");
  row("SYNC_IOC_MERGE through the broker (+ close of the new fd)", merge, "an empty round trip on the same connection",
      merge_floor, "");

  int pfd[2];
  if (pipe(pfd) < 0 || write(pfd[1], "x", 1) != 1) fail("pipe");
  pollfd ps{cf.fence, POLLIN, 0}, pp{pfd[0], POLLIN, 0};
  const auto [psync, ppipe] = measure(ms, [&] { poll(&ps, 1, 0); }, [&] { poll(&pp, 1, 0); });
  row("poll() of a signalled emulated sync_file", psync, "poll() of a readable pipe", ppipe, "<= 1.5");

  int heap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
  if (heap < 0) fail("open /dev/dma_heap/system");
  dmabuf::Heap* local = nullptr;
  if (dmabuf::dma_heap_open(dmabuf::platform_default(), "system", &local)) fail("in-process heap");
  for (uint64_t size : {uint64_t(4096), uint64_t(1) << 20}) {
    const auto [run, in_process] = measure(
        ms,
        [&] {
          dma_heap_allocation_data d{};
          d.len = size;
          d.fd_flags = O_RDWR | O_CLOEXEC;
          if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &d) == 0) close(static_cast<int>(d.fd));
        },
        [&] {
          dmabuf::DmaBuf* b = nullptr;
          if (dmabuf::dma_heap_alloc(local, size, O_RDWR | O_CLOEXEC, 0, &b) == 0) dmabuf::dma_buf_close(b);
        });
    char name[96];
    snprintf(name, sizeof name, "heap alloc+free %s through the broker", size == 4096 ? "4 KiB" : "1 MiB");
    row(name, run, "the same on the in-process emulation", in_process, "");
  }
  printf("\n");
  return 0;
}
