// Parameter sweeps (`dmabuf bench --sweep NAME`): one parameter varied, one
// series per variant, and a floor series measured at every point in the same
// run, so each point can be read as a ratio to what any implementation must at
// least pay at that size.
//
//  threads       signalling throughput on 1..2x cores threads: inline per-fence
//                locks, one shared external lock, the sw_sync timeline (every
//                point on the timeline's lock), and the kernel's sw_sync when
//                this machine has it
//  callbacks     fence lifecycle with 0..64 callbacks (run at signal, or removed)
//  live-fences   the issuer unload protocol vs detached fences still alive
//  chain-length  fence chains: build, signal in order, signal in reverse
//  array-width   fence arrays: create + wait + signal members (all / any)
#include "bench/sweep.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench.h"
#include "core/base/monotonic.h"
#include "core/base/rcu.h"
#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"
#include "core/issuer/issuer.h"
#include "core/sync/sw_sync.h"
#include "kernel/sw_sync.h"

namespace dmabuf::bench {
namespace {

// --- the sweep being built -----------------------------------------------------------

struct Series {
  std::string id;    // stable: used in row ids and by --baseline
  std::string name;  // the legend
  std::string note;
  std::vector<std::pair<double, double>> points;  // (x, value)
};

struct Sweep {
  std::string name, title;
  std::string x_label, x_unit;
  bool log_x = false;
  std::string y_label, y_unit;
  bool higher_is_better = false;
  Series floor;
  std::vector<Series> variants;
  std::vector<std::string> notes;
};

struct Axis {
  const char* label;
  const char* unit;
  bool flag;  // x: logarithmic (geometric points); y: higher is better
};

void set_axes(Sweep& s, const char* title, Axis x, Axis y) {
  s.title = title;
  s.x_label = x.label;
  s.x_unit = x.unit;
  s.log_x = x.flag;
  s.y_label = y.label;
  s.y_unit = y.unit;
  s.higher_is_better = y.flag;
}

const char* bench_name(Fence*) { return "bench"; }
const FenceOps kOps = {.get_driver_name = bench_name, .get_timeline_name = bench_name};

void count_cb(Fence*, FenceCallback* cb) { do_not_optimize(cb); }
void (*volatile g_indirect)(Fence*, FenceCallback*) = count_cb;

Fence* bare_fence(uint64_t context, uint64_t seqno) {
  Fence* f = fence_alloc();
  fence_init(f, &kOps, nullptr, context, seqno);
  return f;
}

double clock_ns() {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

// Best ns per unit of `timed` over rounds of prepare / timed / clean up: at least
// opts.repeats rounds and about duration_ms spent in `timed` (capped in rounds).
template <typename Prepare, typename Timed, typename CleanUp>
double best_per_unit(const Options& o, double units, Prepare prepare, Timed timed, CleanUp clean_up) {
  double best = 1e300, spent = 0;
  for (int round = 0; round < 20000 && (round < o.repeats || spent < o.duration_ms * 1e6); ++round) {
    prepare();
    const double t0 = clock_ns();
    timed();
    const double dt = clock_ns() - t0;
    clean_up();
    spent += dt;
    best = std::min(best, dt / units);
  }
  return best;
}

// Best ns per op of `op(n)` over many short batches (about 0.2 ms each) for
// about 3x duration_ms. Short batches, the fastest kept: on a loaded machine
// most of a long run is preemption (bench::ns_per_op's best of a few long runs
// moved the callbacks floor 5x from one point to the next at load 20).
double best_ns_per_op(const Options& o, const std::function<void(uint64_t)>& op) {
  uint64_t n = 1;
  for (;;) {
    const double t0 = clock_ns();
    op(n);
    if (clock_ns() - t0 > 2e5 || n >= (uint64_t{1} << 30)) break;
    n *= 2;
  }
  double best = 1e300, spent = 0;
  for (int r = 0; r < 100000 && (r < 10 || spent < 3 * o.duration_ms * 1e6); ++r) {
    const double t0 = clock_ns();
    op(n);
    const double dt = clock_ns() - t0;
    spent += dt;
    best = std::min(best, dt / static_cast<double>(n));
  }
  return best;
}

// --- threads ---------------------------------------------------------------------------

constexpr int kRing = 256;

// Each thread re-initialises and signals its own ring of fences; with `shared`,
// every fence of every thread is on that one external lock.
uint64_t ring_signal(SpinLock* shared, const volatile bool* stop) {
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

// The floor: what a signal must at least do, on the thread's own cache lines --
// reset and set one atomic flag, read the clock, store the timestamp.
uint64_t ring_floor(const volatile bool* stop) {
  struct alignas(64) Slot {
    std::atomic<unsigned long> flags;
    int64_t timestamp;
  };
  auto* ring = new Slot[kRing];
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < kRing; ++i) {
      ring[i].flags.store(1, std::memory_order_relaxed);
      ring[i].flags.fetch_or(8, std::memory_order_acq_rel);
      ring[i].timestamp = monotonic_ns();
    }
    n += kRing;
  }
  delete[] ring;
  return n;
}

// The legacy way: a sw_sync timeline, whose lock is every point's fence lock.
// Each op creates a point at the next value, advances the timeline by one
// (signalling whatever it reaches, under the timeline lock) and drops the point.
uint64_t timeline_loop(SyncTimeline* tl, std::atomic<uint32_t>* next, const volatile bool* stop) {
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < 64; ++i) {
      SyncPt* pt = sync_pt_create(tl, next->fetch_add(1, std::memory_order_relaxed) + 1);
      if (!pt) return n;
      sync_timeline_signal(tl, 1);
      fence_put(&pt->base);
    }
    n += 64;
  }
  return n;
}

// The same through the real kernel's sw_sync: one ioctl to create the point (a
// sync_file fd), one to advance, close. On a timeline of this thread's own: with
// several threads on one timeline, a point closed on one thread while another
// advances the timeline trips a use-after-free in the kernel's
// sync_timeline_signal() (seen on 6.12: a refcount warning, then list
// corruption with the timeline lock held and a hung machine).
uint64_t kernel_timeline_loop(int tl_fd, uint32_t* value, const volatile bool* stop) {
  uint64_t n = 0;
  while (!*stop) {
    for (int i = 0; i < 16; ++i) {
      auto pt = kernel::sw_sync_create_fence(tl_fd, ++*value);
      if (!pt) return n;
      (void)kernel::sw_sync_inc(tl_fd, 1);
    }
    n += 16;
  }
  return n;
}

// Signals per second (in millions) of `op` on @threads threads at once, the best
// of opts.repeats windows of about duration_ms. Each thread times its own run,
// and a window's length is from the first thread's start to the last one's end:
// the main thread, preempted on a loaded machine, may wake late to start or stop
// a window, which would otherwise count work done outside it.
double best_mops(const Options& o, int threads,
                 const std::function<uint64_t(int, const volatile bool*)>& op) {
  double best = 0;
  for (int r = 0; r < o.repeats; ++r) {
    volatile bool stop = false;
    std::atomic<int> ready{0};
    std::vector<uint64_t> counts(threads);
    std::vector<double> start(threads), end(threads);
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < threads) std::this_thread::yield();
        start[i] = clock_ns();
        counts[i] = op(i, &stop);
        end[i] = clock_ns();
      });
    }
    while (ready.load() < threads) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(o.duration_ms));
    stop = true;
    for (auto& t : ts) t.join();
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    const double span = *std::max_element(end.begin(), end.end()) -
                        *std::min_element(start.begin(), start.end());
    if (span > 0) best = std::max(best, total / span * 1e3);  // ops/ns -> Mops/s
  }
  return best;
}

std::vector<double> thread_counts() {
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int top = std::min(2 * cores, 64);
  std::vector<double> xs;
  for (int t = 1; t <= top; t = t < 4 ? t + 1 : t * 2) xs.push_back(t);
  if (xs.back() != top) xs.push_back(top);
  if (cores > 4 && std::find(xs.begin(), xs.end(), cores) == xs.end()) {
    xs.push_back(cores);
    std::sort(xs.begin(), xs.end());
  }
  return xs;
}

void sweep_threads(const Options& opts, Sweep& s) {
  // The best of many 2 ms windows (about 5x --ms in all): on a loaded machine
  // the threads are not always on cores at once, and both the scaling and the
  // contention only show in the windows where they are. Longer windows average
  // them away (at load 15 on 2 vCPUs, 10 ms windows showed no scaling at all).
  Options o = opts;
  o.duration_ms = std::min(opts.duration_ms, 2);
  o.repeats = std::max(10, opts.duration_ms * 5 / 2);
  set_axes(s, "Signalling throughput vs threads: why fences have an inline lock",
           {"threads signalling at once", "threads", false},
           {"signals per second, all threads", "Mops/s", true});
  s.floor = {"floor", "atomic flag + clock read per signal, own memory", "", {}};
  Series inl{"inline-locks", "inline per-fence locks (7.1)",
             "each thread re-initialises and signals its own ring of fences", {}};
  Series ext{"shared-external-lock", "one shared external lock",
             "the same fences, all on one external lock", {}};
  Series tl{"sw-sync-timeline", "sw_sync timeline (emulated)",
            "create a point at the next value, advance by 1, drop it: every point on the "
            "timeline's lock; a point is allocated per signal",
            {}};
  Series ktl{"kernel-sw-sync", "sw_sync, a timeline per thread (real kernel)",
             "SW_SYNC_IOC_CREATE_FENCE + SW_SYNC_IOC_INC + close; a timeline per thread, since "
             "one shared timeline crashes the kernel's sw_sync (see kernel_timeline_loop)",
             {}};
  const std::vector<double> counts = thread_counts();
  auto kernel_tl = kernel::sw_sync_timeline_open();
  std::vector<kernel::UniqueFd> kernel_tls;
  std::vector<uint32_t> kernel_values(static_cast<size_t>(counts.back()), 0);
  if (kernel_tl) {
    kernel_tls.push_back(std::move(kernel_tl.value()));
    while (kernel_tls.size() < kernel_values.size()) {
      auto more = kernel::sw_sync_timeline_open();
      if (!more) break;
      kernel_tls.push_back(std::move(more.value()));
    }
  }
  const bool with_kernel = !kernel_values.empty() && kernel_tls.size() == kernel_values.size();
  SpinLock shared;
  SyncTimeline* timeline = sync_timeline_create("sweep");
  std::atomic<uint32_t> next{0};
  for (double x : counts) {
    const int n = static_cast<int>(x);
    const auto mops = [&](auto op) { return best_mops(o, n, op); };
    using Stop = const volatile bool*;
    s.floor.points.push_back({x, mops([](int, Stop st) { return ring_floor(st); })});
    inl.points.push_back({x, mops([](int, Stop st) { return ring_signal(nullptr, st); })});
    ext.points.push_back({x, mops([&](int, Stop st) { return ring_signal(&shared, st); })});
    tl.points.push_back({x, mops([&](int, Stop st) { return timeline_loop(timeline, &next, st); })});
    if (with_kernel)
      ktl.points.push_back({x, mops([&](int t, Stop st) {
                              return kernel_timeline_loop(kernel_tls[t].get(), &kernel_values[t], st);
                            })});
  }
  sw_sync_debugfs_release(timeline);
  s.variants = {inl, ext, tl};
  if (with_kernel) s.variants.push_back(ktl);
  else if (!kernel_tl)
    s.notes.push_back("no real sw_sync here (" + kernel_tl.error().describe() +
                      "): kernel series left out");
  else s.notes.push_back("could not open a sw_sync timeline per thread: kernel series left out");
  s.notes.push_back(std::to_string(std::max(1u, std::thread::hardware_concurrency())) +
                    " cores: past that, threads share cores and the floor stops rising");
}

// --- callbacks ---------------------------------------------------------------------------

void callbacks_cycle(uint64_t iters, int k, bool remove) {
  std::vector<FenceCallback> cbs(std::max(k, 1));
  for (uint64_t i = 0; i < iters; ++i) {
    Fence* f = bare_fence(1, i);
    for (int j = 0; j < k; ++j) fence_add_callback(f, &cbs[j], count_cb);
    if (remove)
      for (int j = 0; j < k; ++j) fence_remove_callback(f, &cbs[j]);
    fence_signal(f);
    fence_put(f);
  }
}

// Floor: the lifecycle floor (malloc + atomic flag + clock + free) plus k
// indirect calls.
void callbacks_floor(uint64_t iters, int k) {
  FenceCallback cb;
  for (uint64_t i = 0; i < iters; ++i) {
    auto* p = static_cast<std::atomic<unsigned long>*>(malloc(64));
    new (p) std::atomic<unsigned long>(0);
    p->fetch_or(8, std::memory_order_acq_rel);
    int64_t t = monotonic_ns();
    do_not_optimize(t);
    for (int j = 0; j < k; ++j) g_indirect(nullptr, &cb);
    free(p);
  }
}

void sweep_callbacks(const Options& o, Sweep& s) {
  set_axes(s, "Fence lifecycle vs callbacks per fence",
           {"callbacks per fence", "callbacks", false},
           {"time per fence (alloc, init, callbacks, signal, put)", "ns/fence", false});
  s.floor = {"floor", "malloc + atomic flag + clock + free + N indirect calls", "", {}};
  Series run{"run-at-signal", "N callbacks added, run at signal", "", {}};
  Series removed{"added-then-removed", "N callbacks added, then removed (timed-out waits)", "", {}};
  for (int k : {0, 1, 2, 4, 8, 16, 32, 64}) {
    const double x = k;
    s.floor.points.push_back({x, best_ns_per_op(o, [k](uint64_t n) { callbacks_floor(n, k); })});
    run.points.push_back({x, best_ns_per_op(o, [k](uint64_t n) { callbacks_cycle(n, k, false); })});
    removed.points.push_back({x, best_ns_per_op(o, [k](uint64_t n) { callbacks_cycle(n, k, true); })});
  }
  s.variants = {run, removed};
}

// --- live-fences ---------------------------------------------------------------------------

std::string names_module() {
  const char* dir = getenv("DMABUF_ISSUER_DIR");
#ifdef DMABUF_DEFAULT_ISSUER_DIR
  if (!dir || !*dir) dir = DMABUF_DEFAULT_ISSUER_DIR;
#endif
  if (!dir || !*dir) return {};
  std::string p = std::string(dir) + "/issuer_names.so";
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? p : std::string();
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct UnloadPhases {
  double protocol_us = 0;  // signal_all + drain + grace period + shutdown
  double grace_us = 0;
};

// Loads the module, creates @live fences and signals them (detached: the module
// may go while they live on), lets the reclaimer settle, unloads; medians.
bool unload_with_live(const std::string& path, size_t live, int repeats, UnloadPhases* out) {
  std::vector<double> protocol, grace;
  std::vector<Fence*> fences;
  fences.reserve(live);
  std::string err;
  for (int r = 0; r < repeats; ++r) {
    Issuer* iss = nullptr;
    if (Issuer::load(path, {}, &iss, &err) != 0) return false;
    for (size_t i = 0; i < live; ++i) {
      Fence* f = nullptr;
      if (iss->create_fence({}, &f, &err) != 0) break;
      fence_signal(f);
      fences.push_back(f);
    }
    rcu::flush_deferred();
    for (int i = 0; i < 4000 && rcu::deferred_pending() != 0; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(250));
    iss->unload(kMaxScheduleTimeout, &err);
    const IssuerUnloadStats st = iss->last_unload_stats();
    protocol.push_back((st.signal_all_ns + st.drain_ns + st.grace_ns + st.shutdown_ns) / 1e3);
    grace.push_back(st.grace_ns / 1e3);
    iss->put();
    for (Fence* f : fences) fence_put(f);
    fences.clear();
  }
  out->protocol_us = median_of(protocol);
  out->grace_us = median_of(grace);
  return true;
}

void sweep_live_fences(const Options& o, Sweep& s, std::string* error) {
  const std::string path = names_module();
  if (path.empty()) {
    *error = "the example issuer modules were not found: set DMABUF_ISSUER_DIR to build/issuers";
    return;
  }
  set_axes(s, "Issuer unload (the 7.1 protocol) vs detached fences still alive",
           {"live detached fences at unload", "fences", true},
           {"unload time, median", "us", false});
  s.floor = {"floor", "one empty RCU grace period (rcu::synchronize)", "", {}};
  Series protocol{"unload-protocol", "unload protocol: signal_all + grace period + shutdown",
                  "dlclose excluded", {}};
  Series grace{"grace-period", "its grace period alone", "", {}};
  const int repeats = std::clamp(o.duration_ms / 10, 3, 21);
  UnloadPhases warm_up;  // the first load and unload of a run pay for cold caches and lazy binding
  if (!unload_with_live(path, 0, 1, &warm_up)) {
    *error = "loading " + path + " failed";
    return;
  }
  for (size_t live : {size_t{1}, size_t{10}, size_t{100}, size_t{1000}, size_t{10000}, size_t{100000}}) {
    const double x = static_cast<double>(live);
    std::vector<double> sync;
    for (int i = 0; i < repeats; ++i) {
      const int64_t t0 = monotonic_ns();
      rcu::synchronize();
      sync.push_back((monotonic_ns() - t0) / 1e3);
    }
    s.floor.points.push_back({x, median_of(sync)});
    UnloadPhases ph;
    if (!unload_with_live(path, live, live >= 100000 ? std::min(repeats, 7) : repeats, &ph)) {
      *error = "loading " + path + " failed";
      return;
    }
    protocol.points.push_back({x, ph.protocol_us});
    grace.points.push_back({x, ph.grace_us});
  }
  rcu::barrier();
  s.variants = {protocol, grace};
  s.notes.push_back("expected flat: detached fences no longer reference the module, so unload "
                    "neither waits for them nor walks them; a rise is a cost that grows with them");
}

// --- chain-length --------------------------------------------------------------------------

struct Chain {
  std::vector<Fence*> fences, nodes;
};

void chain_members(Chain& c, unsigned n) {
  c.fences.resize(n);
  c.nodes.resize(n);
  for (unsigned i = 0; i < n; ++i) c.fences[i] = bare_fence(1, i);
}

// Links every member and enables signalling on the tail only: one waiter on
// the timeline's last point.
void chain_link(Chain& c) {
  Fence* tail = nullptr;
  for (size_t i = 0; i < c.fences.size(); ++i) {
    FenceChain* node = fence_chain_alloc();
    fence_chain_init(node, fence_get(tail), fence_get(c.fences[i]), i + 1);
    c.nodes[i] = tail = &node->base;
  }
  fence_enable_sw_signaling(tail);
}

void chain_signal(Chain& c, bool forward) {
  const size_t n = c.fences.size();
  for (size_t i = 0; i < n; ++i) fence_signal(c.fences[forward ? i : n - 1 - i]);
}

void chain_free(Chain& c) {
  if (!fence_test_signaled_flag(c.nodes.back())) std::abort();  // the run must have finished
  for (Fence* f : c.fences) fence_put(f);
  for (Fence* f : c.nodes) fence_put(f);
}

// Floor: n bare fences with one callback each, signalled (per fence).
double signal_floor(const Options& o, unsigned n) {
  std::vector<Fence*> fences(n);
  std::vector<FenceCallback> cbs(n);
  return best_per_unit(
      o, n,
      [&] {
        for (unsigned i = 0; i < n; ++i) {
          fences[i] = bare_fence(1, i);
          fence_add_callback(fences[i], &cbs[i], count_cb);
        }
      },
      [&] { for (Fence* f : fences) fence_signal(f); },
      [&] { for (Fence* f : fences) fence_put(f); });
}

void sweep_chain_length(const Options& o, Sweep& s) {
  set_axes(s, "Fence chains: cost per link vs chain length",
           {"links in the chain", "links", true},
           {"time per link", "ns/link", false});
  s.floor = {"floor", "one bare fence + 1 callback, signalled, per link", "", {}};
  Series build{"build", "build the chain (alloc + init links, enable the tail)", "", {}};
  Series fwd{"signal-in-order", "signal members in order, tail waited on",
             "one walk at the end collects every signalled link", {}};
  Series bwd{"signal-in-reverse", "signal members in reverse, tail waited on",
             "the tail's callback moves down one link per signal", {}};
  for (unsigned n : {1u, 4u, 16u, 64u, 256u, 1024u, 4096u}) {
    const double x = n;
    Chain c;
    s.floor.points.push_back({x, signal_floor(o, n)});
    build.points.push_back({x, best_per_unit(
                                   o, n, [&] { chain_members(c, n); }, [&] { chain_link(c); },
                                   [&] { chain_signal(c, true); chain_free(c); })});
    for (bool forward : {true, false})
      (forward ? fwd : bwd)
          .points.push_back({x, best_per_unit(
                                    o, n, [&] { chain_members(c, n); chain_link(c); },
                                    [&] { chain_signal(c, forward); }, [&] { chain_free(c); })});
  }
  s.variants = {build, fwd, bwd};
}

// --- array-width ---------------------------------------------------------------------------

// Create an array over n fresh members, wait on it (one callback), signal the
// members, drop everything.
void array_cycle(uint64_t iters, unsigned n, bool signal_on_any) {
  std::vector<Fence*> mine(n);
  for (uint64_t it = 0; it < iters; ++it) {
    auto** members = static_cast<Fence**>(std::malloc(sizeof(Fence*) * n));
    for (unsigned i = 0; i < n; ++i) members[i] = mine[i] = fence_get(bare_fence(1, i));
    FenceArray* array = fence_array_create(static_cast<int>(n), members, 2, 1, signal_on_any);
    FenceCallback cb;
    fence_add_callback(&array->base, &cb, count_cb);
    for (Fence* m : mine) fence_signal(m);
    if (!fence_test_signaled_flag(&array->base)) std::abort();
    fence_put(&array->base);
    for (Fence* m : mine) fence_put(m);
  }
}

// Floor: n + 1 bare fences (the members and the array), one callback, signalled.
void array_floor(uint64_t iters, unsigned n) {
  std::vector<Fence*> fences(n + 1);
  for (uint64_t it = 0; it < iters; ++it) {
    for (unsigned i = 0; i <= n; ++i) fences[i] = bare_fence(1, i);
    FenceCallback cb;
    fence_add_callback(fences[n], &cb, count_cb);
    for (Fence* f : fences) fence_signal(f);
    for (Fence* f : fences) fence_put(f);
  }
}

void sweep_array_width(const Options& o, Sweep& s) {
  set_axes(s, "Fence arrays: cost per member vs width",
           {"members in the array", "fences", true},
           {"time per member (create, wait, signal, put)", "ns/fence", false});
  s.floor = {"floor", "n + 1 bare fences, 1 callback, signalled, per member", "", {}};
  Series all{"signal-on-all", "array signals when all members have", "", {}};
  Series any{"signal-on-any", "array signals on the first member (signal_on_any)", "", {}};
  for (unsigned n : {1u, 2u, 4u, 16u, 64u, 256u, 1024u}) {
    const double x = n;
    s.floor.points.push_back({x, best_ns_per_op(o, [n](uint64_t it) { array_floor(it, n); }) / n});
    all.points.push_back({x, best_ns_per_op(o, [n](uint64_t it) { array_cycle(it, n, false); }) / n});
    any.points.push_back({x, best_ns_per_op(o, [n](uint64_t it) { array_cycle(it, n, true); }) / n});
  }
  s.variants = {all, any};
}

// --- JSON ------------------------------------------------------------------------------------

std::string quoted(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o + '"';
}

std::string series_json(const Series& s) {
  std::string o = "{\"id\": " + quoted(s.id) + ", \"name\": " + quoted(s.name) +
                  ", \"note\": " + quoted(s.note) + ", \"points\": [";
  char num[96];
  for (size_t i = 0; i < s.points.size(); ++i) {
    snprintf(num, sizeof num, "%s[%.6g, %.6g]", i ? ", " : "", s.points[i].first, s.points[i].second);
    o += num;
  }
  return o + "]}";
}

std::string to_json(const Sweep& s) {
  std::string o = "{\"name\": " + quoted(s.name) + ", \"title\": " + quoted(s.title) +
                  ", \"x\": {\"label\": " + quoted(s.x_label) + ", \"unit\": " + quoted(s.x_unit) +
                  ", \"log\": " + (s.log_x ? "true" : "false") + "}, \"y\": {\"label\": " +
                  quoted(s.y_label) + ", \"unit\": " + quoted(s.y_unit) + ", \"better\": " +
                  quoted(s.higher_is_better ? "higher" : "lower") +
                  "}, \"floor\": " + series_json(s.floor) + ", \"variants\": [";
  for (size_t i = 0; i < s.variants.size(); ++i) o += (i ? ", " : "") + series_json(s.variants[i]);
  o += "], \"notes\": [";
  for (size_t i = 0; i < s.notes.size(); ++i) o += (i ? ", " : "") + quoted(s.notes[i]);
  return o + "]}\n";
}

}  // namespace

const std::vector<std::string>& sweep_names() {
  static const std::vector<std::string> names = {"threads", "callbacks", "live-fences",
                                                 "chain-length", "array-width"};
  return names;
}

std::string sweep_json(const std::string& name, int duration_ms, std::string* error) {
  Options o;
  o.duration_ms = std::max(duration_ms, 1);
  o.repeats = 3;
  Sweep s;
  s.name = name;
  error->clear();
  if (name == "threads") sweep_threads(o, s);
  else if (name == "callbacks") sweep_callbacks(o, s);
  else if (name == "live-fences") sweep_live_fences(o, s, error);
  else if (name == "chain-length") sweep_chain_length(o, s);
  else if (name == "array-width") sweep_array_width(o, s);
  else *error = "unknown sweep '" + name + "'";
  return error->empty() ? to_json(s) : std::string();
}

}  // namespace dmabuf::bench
