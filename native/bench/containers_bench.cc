// Container benchmarks: signalling through a 4096-link chain, arrays of 16 and
// 256 fences, dma_resv add + iterate, and the resv lock under contention. Each
// row's floor is measured in the same run: the same number of bare fences
// signalled, a std::vector push + iterate, an uncontended lock.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"
#include "core/resv/resv.h"

namespace dmabuf::bench {
namespace {

const char* bench_name(Fence*) { return "bench"; }
const FenceOps kOps = {.get_driver_name = bench_name, .get_timeline_name = bench_name};

double now_ns() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Best time per unit of `run` over rounds of setup/run/teardown, where only
// `run` is timed: at least opts.repeats rounds and about duration_ms of runs.
template <typename Setup, typename Run, typename Teardown>
double phased_ns_per_unit(const Options& opts, double units, Setup setup, Run run,
                          Teardown teardown) {
  double best = 1e300, spent = 0;
  for (int r = 0; r < opts.repeats || spent < opts.duration_ms * 1e6; ++r) {
    setup();
    const double t0 = now_ns();
    run();
    const double dt = now_ns() - t0;
    teardown();
    spent += dt;
    best = std::min(best, dt / units);
    if (r > 10000) break;
  }
  return best;
}

Fence* bare_fence(uint64_t context, uint64_t seqno) {
  Fence* f = fence_alloc();
  fence_init(f, &kOps, nullptr, context, seqno);
  return f;
}

// --- chain -------------------------------------------------------------------

constexpr unsigned kChainLinks = 4096;

struct Chain {
  std::vector<Fence*> fences;
  std::vector<Fence*> nodes;
};

// `enable_all`: every node enabled, as the kernel selftest does; otherwise
// only the tail, as one waiter on the timeline's last point.
void build_chain(Chain& c, bool enable_all) {
  c.fences.resize(kChainLinks);
  c.nodes.resize(kChainLinks);
  Fence* tail = nullptr;
  for (unsigned i = 0; i < kChainLinks; ++i) {
    c.fences[i] = bare_fence(1, i);
    FenceChain* node = fence_chain_alloc();
    fence_chain_init(node, fence_get(tail), fence_get(c.fences[i]), i + 1);
    c.nodes[i] = tail = &node->base;
    if (enable_all) fence_enable_sw_signaling(tail);
  }
  if (!enable_all) fence_enable_sw_signaling(tail);
}

void free_chain(Chain& c) {
  if (!fence_test_signaled_flag(c.nodes.back())) std::abort();  // the run must have finished
  for (Fence* f : c.fences) fence_put(f);
  for (Fence* n : c.nodes) fence_put(n);
}

double chain_signal(const Options& o, bool enable_all, bool forward) {
  Chain c;
  return phased_ns_per_unit(
      o, kChainLinks, [&] { build_chain(c, enable_all); },
      [&] {
        if (forward) {
          for (unsigned i = 0; i < kChainLinks; ++i) fence_signal(c.fences[i]);
        } else {
          for (unsigned i = kChainLinks; i--;) fence_signal(c.fences[i]);
        }
      },
      [&] { free_chain(c); });
}

// Floor: the same number of bare fences, each with one callback, signalled.
double bare_signal_floor(const Options& o, unsigned n) {
  std::vector<Fence*> fences(n);
  std::vector<FenceCallback> cbs(n);
  return phased_ns_per_unit(
      o, n,
      [&] {
        for (unsigned i = 0; i < n; ++i) {
          fences[i] = bare_fence(1, i);
          fence_add_callback(fences[i], &cbs[i], [](Fence*, FenceCallback* cb) { do_not_optimize(cb); });
        }
      },
      [&] {
        for (Fence* f : fences) fence_signal(f);
      },
      [&] {
        for (Fence* f : fences) fence_put(f);
      });
}

// --- arrays ------------------------------------------------------------------

// Create an array over n fresh members, wait on it (one callback), signal the
// members, drop everything: ns per member.
void array_cycle(uint64_t iters, unsigned n) {
  for (uint64_t it = 0; it < iters; ++it) {
    auto** members = static_cast<Fence**>(std::malloc(sizeof(Fence*) * n));
    for (unsigned i = 0; i < n; ++i) members[i] = bare_fence(1, i);
    std::vector<Fence*> mine(members, members + n);
    for (Fence* m : mine) fence_get(m);
    FenceArray* array = fence_array_create(static_cast<int>(n), members, 2, 1);
    FenceCallback cb;
    fence_add_callback(&array->base, &cb, [](Fence*, FenceCallback* c) { do_not_optimize(c); });
    for (Fence* m : mine) fence_signal(m);
    if (!fence_test_signaled_flag(&array->base)) std::abort();
    fence_put(&array->base);
    for (Fence* m : mine) fence_put(m);
  }
}

// Floor: n + 1 bare fences (the members and the array), one callback, signalled.
void array_floor(uint64_t iters, unsigned n) {
  for (uint64_t it = 0; it < iters; ++it) {
    std::vector<Fence*> fences(n + 1);
    for (unsigned i = 0; i <= n; ++i) fences[i] = bare_fence(1, i);
    FenceCallback cb;
    fence_add_callback(fences[n], &cb, [](Fence*, FenceCallback* c) { do_not_optimize(c); });
    for (Fence* f : fences) fence_signal(f);
    for (Fence* f : fences) fence_put(f);
  }
}

// --- resv --------------------------------------------------------------------

// Lock, reserve, add n fences (distinct contexts), unlock, iterate unlocked.
void resv_cycle(uint64_t iters, const std::vector<Fence*>& fences) {
  const unsigned n = static_cast<unsigned>(fences.size());
  for (uint64_t it = 0; it < iters; ++it) {
    Resv resv;
    resv_init(&resv);
    resv_lock(&resv, nullptr);
    resv_reserve_fences(&resv, n);
    for (Fence* f : fences) resv_add_fence(&resv, f, RESV_USAGE_READ);
    resv_unlock(&resv);
    ResvIter cursor;
    Fence* f;
    uint64_t sum = 0;
    resv_iter_begin(&cursor, &resv, RESV_USAGE_BOOKKEEP);
    resv_for_each_fence_unlocked(&cursor, f) sum += f->seqno;
    resv_iter_end(&cursor);
    do_not_optimize(sum);
    resv_fini(&resv);
  }
}

// Floor: a std::vector of the same pointers, pushed and iterated.
void vector_floor(uint64_t iters, const std::vector<Fence*>& fences) {
  for (uint64_t it = 0; it < iters; ++it) {
    std::vector<Fence*> v;
    v.reserve(fences.size());
    for (Fence* f : fences) v.push_back(f);
    uint64_t sum = 0;
    for (Fence* f : v) sum += f->seqno;
    do_not_optimize(sum);
  }
}

uint64_t resv_lock_loop(Resv* resv, long* counter, const volatile bool* stop) {
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < 64; ++i) {
      WwAcquireCtx ctx;
      ww_acquire_init(&ctx, &reservation_ww_class);
      resv_lock(resv, &ctx);  // one lock per context: never -EDEADLK
      ++*counter;
      resv_unlock(resv);
      ww_acquire_fini(&ctx);
    }
    n += 64;
  }
  return n;
}

uint64_t mutex_loop(std::mutex* m, long* counter, const volatile bool* stop) {
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < 64; ++i) {
      m->lock();
      ++*counter;
      m->unlock();
    }
    n += 64;
  }
  return n;
}

Register reg("containers", [](const Options& o, std::vector<Row>& rows) {
  // Chains.
  const double bare = bare_signal_floor(o, kChainLinks);
  const std::string floor_name = "4096 bare fences + 1 callback each";
  rows.push_back(ratio_row("chain 4096, tail waited on: signal forward", chain_signal(o, false, true),
                           "ns/link", floor_name, bare, "", true,
                           "one walk at the end collects every signalled link"));
  rows.push_back(ratio_row("chain 4096, tail waited on: signal backward",
                           chain_signal(o, false, false), "ns/link", floor_name, bare, "", true,
                           "the tail's callback moves down one link per signal (irq_work)"));
  rows.push_back(ratio_row("chain 4096, every link enabled: forward", chain_signal(o, true, true),
                           "ns/link", floor_name, bare, "", true,
                           "as the kernel selftest; backward would be quadratic, as in the kernel"));

  // Arrays.
  for (unsigned n : {16u, 256u}) {
    const double floor = ns_per_op(o, [n](uint64_t it) { array_floor(it, n); }) / n;
    const double value = ns_per_op(o, [n](uint64_t it) { array_cycle(it, n); }) / n;
    rows.push_back(ratio_row("array of " + std::to_string(n) + ": create, wait, signal members",
                             value, "ns/fence", std::to_string(n + 1) + " bare fences, 1 callback",
                             floor, "", true));
  }

  // Resv add + iterate.
  for (unsigned n : {1u, 4u, 16u, 64u}) {
    std::vector<Fence*> fences;
    for (unsigned i = 0; i < n; ++i) fences.push_back(bare_fence(fence_context_alloc(1), 1));
    const double floor = ns_per_op(o, [&](uint64_t it) { vector_floor(it, fences); });
    const double value = ns_per_op(o, [&](uint64_t it) { resv_cycle(it, fences); });
    rows.push_back(ratio_row("resv: lock, add " + std::to_string(n) + ", unlock, iterate", value,
                             "ns/op", "std::vector push + iterate", floor, "", true));
    for (Fence* f : fences) {
      fence_signal(f);
      fence_put(f);
    }
  }

  // Resv lock.
  Resv resv;
  resv_init(&resv);
  std::mutex m;
  long counter = 0;
  const double mutex1 =
      throughput(o, 1, [&](int, const volatile bool* s) { return mutex_loop(&m, &counter, s); });
  const double resv1 = throughput(
      o, 1, [&](int, const volatile bool* s) { return resv_lock_loop(&resv, &counter, s); });
  const double resv2 = throughput(
      o, 2, [&](int, const volatile bool* s) { return resv_lock_loop(&resv, &counter, s); });
  rows.push_back(ratio_row("resv lock+unlock with ctx, 1 thread", resv1 / 1e6, "Mops/s",
                           "std::mutex lock+unlock, uncontended", mutex1 / 1e6, "", false));
  rows.push_back(ratio_row("resv lock+unlock with ctx, 2 threads contending", resv2 / 1e6,
                           "Mops/s", "std::mutex lock+unlock, uncontended", mutex1 / 1e6, "", false,
                           "total over both threads; each handoff may sleep (futex)"));
  resv_fini(&resv);
});

}  // namespace
}  // namespace dmabuf::bench
