// Fence benchmarks: lifecycle, signalling with callbacks, and two threads
// signalling with inline locks versus one shared external lock.
#include <atomic>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "bench/bench.h"
#include "core/base/monotonic.h"
#include "core/fence/fence.h"

namespace dmabuf::bench {
namespace {

const char* bench_name(Fence*) { return "bench"; }
const FenceOps kOps = {.get_driver_name = bench_name, .get_timeline_name = bench_name};

// The lifecycle floor: what any fence must at least do -- get memory, flip one
// atomic flag, read the clock, give the memory back.
void floor_lifecycle(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    auto* p = static_cast<std::atomic<unsigned long>*>(malloc(64));
    new (p) std::atomic<unsigned long>(0);
    p->fetch_or(8, std::memory_order_acq_rel);
    int64_t t = monotonic_ns();
    do_not_optimize(t);
    free(p);
  }
}

void fence_lifecycle(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    Fence* f = fence_alloc();
    fence_init(f, &kOps, nullptr, 1, i);
    fence_signal(f);
    fence_put(f);
  }
}

void count_cb(Fence*, FenceCallback* cb) { do_not_optimize(cb); }

void fence_with_callbacks(uint64_t n) {
  FenceCallback cbs[4];
  for (uint64_t i = 0; i < n; ++i) {
    Fence* f = fence_alloc();
    fence_init(f, &kOps, nullptr, 1, i);
    for (auto& cb : cbs) fence_add_callback(f, &cb, count_cb);
    fence_signal(f);
    fence_put(f);
  }
}

void (*volatile g_cb_floor)(Fence*, FenceCallback*) = count_cb;
void floor_with_callbacks(uint64_t n) {
  FenceCallback cbs[4];
  for (uint64_t i = 0; i < n; ++i) {
    auto* p = static_cast<std::atomic<unsigned long>*>(malloc(64));
    new (p) std::atomic<unsigned long>(0);
    p->fetch_or(8, std::memory_order_acq_rel);
    int64_t t = monotonic_ns();
    do_not_optimize(t);
    for (auto& cb : cbs) g_cb_floor(nullptr, &cb);
    free(p);
  }
}

// Signalling throughput: each thread re-initialises and signals its own ring of
// fences; `shared` puts every fence of both threads on one external lock.
uint64_t signal_loop(SpinLock* shared, const volatile bool* stop) {
  constexpr int kRing = 256;
  Fence* ring = static_cast<Fence*>(calloc(kRing, sizeof(Fence)));
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < kRing; ++i) {
      fence_init(&ring[i], &kOps, shared, 1, n + i);
      fence_signal(&ring[i]);
    }
    n += kRing;
  }
  free(ring);
  return n;
}

Register reg("fence", [](const Options& o, std::vector<Row>& rows) {
  double floor = ns_per_op(o, floor_lifecycle);
  double life = ns_per_op(o, fence_lifecycle);
  rows.push_back(ratio_row("fence lifecycle (alloc, init, signal, put)", life, "ns/op",
                           "malloc + atomic flag + clock + free", floor, "<= 1.5", true,
                           "memory is recycled after an RCU grace period (batched, one grace period per ms)"));

  double cfloor = ns_per_op(o, floor_with_callbacks);
  double cb = ns_per_op(o, fence_with_callbacks);
  rows.push_back(ratio_row("fence lifecycle + 4 callbacks", cb, "ns/op",
                           "lifecycle floor + 4 indirect calls", cfloor, "", true));

  SpinLock shared;
  double one = throughput(o, 1, [](int, const volatile bool* s) { return signal_loop(nullptr, s); });
  double two = throughput(o, 2, [](int, const volatile bool* s) { return signal_loop(nullptr, s); });
  double two_shared =
      throughput(o, 2, [&](int, const volatile bool* s) { return signal_loop(&shared, s); });
  rows.push_back(ratio_row("signal, 2 threads, inline locks", two / 1e6, "Mops/s",
                           "signal, 1 thread, inline lock", one / 1e6, ">= 1.8", false));
  rows.push_back(ratio_row("signal, 2 threads, one shared external lock", two_shared / 1e6,
                           "Mops/s", "signal, 1 thread, inline lock", one / 1e6, "", false,
                           "why external locks are legacy: one lock serialises both threads"));
});

}  // namespace
}  // namespace dmabuf::bench
