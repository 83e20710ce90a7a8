// Issuer benchmarks:
//  - reading a fence's driver name under RCU from several threads while another
//    thread keeps signalling (detaching) the fences being read, against a plain
//    atomic load of the same slots in the same configuration;
//  - the cost of unloading a module with N live detached fences (N = 0, 1000,
//    100000), against an empty rcu::synchronize() in the same run.
// The example modules come from DMABUF_ISSUER_DIR or the build's issuers/ dir.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "bench/bench.h"
#include "core/base/monotonic.h"
#include "core/base/rcu.h"
#include "core/fence/fence.h"
#include "core/issuer/issuer.h"

namespace dmabuf::bench {
namespace {

std::string module_path(const char* name) {
  const char* dir = getenv("DMABUF_ISSUER_DIR");
#ifdef DMABUF_DEFAULT_ISSUER_DIR
  if (!dir || !*dir) dir = DMABUF_DEFAULT_ISSUER_DIR;
#endif
  if (!dir || !*dir) return {};
  std::string p = std::string(dir) + "/issuer_" + name + ".so";
  struct stat st;
  return stat(p.c_str(), &st) == 0 ? p : std::string();
}

Issuer* load(const std::string& path) {
  Issuer* iss = nullptr;
  std::string err;
  return Issuer::load(path, {}, &iss, &err) == 0 ? iss : nullptr;
}

void unload(Issuer* iss) {
  std::string err;
  iss->unload(kMaxScheduleTimeout, &err);
}

// --- name reads against a signalling thread --------------------------------------------

constexpr int kSlots = 256;  // fences being read, replaced one by one
constexpr int kReaders = 2;

struct Slots {
  std::atomic<Fence*> s[kSlots];
};

// The signaller: publishes a new fence in a slot, then signals (detaches) and
// drops the one it replaced, which readers may be reading right now.
uint64_t signaller(Issuer* iss, Slots* slots, const volatile bool* stop) {
  uint64_t n = 0;
  std::string err;
  while (!*stop) {
    for (int i = 0; i < kSlots && !*stop; ++i) {
      Fence* f = nullptr;
      if (iss->create_fence({}, &f, &err) != 0) return n;
      Fence* old = slots->s[i].exchange(f, std::memory_order_acq_rel);
      fence_signal(old);
      fence_put(old);
      ++n;
    }
  }
  return n;
}

uint64_t read_names(Slots* slots, const volatile bool* stop) {
  uint64_t n = 0;
  unsigned sum = 0;
  while (!*stop) {
    for (int i = 0; i < kSlots; ++i) {
      rcu::ReadGuard g;
      Fence* f = slots->s[i].load(std::memory_order_acquire);
      sum += static_cast<unsigned char>(fence_driver_name(f)[0]);
    }
    n += kSlots;
  }
  do_not_optimize(sum);
  return n;
}

uint64_t read_slots(Slots* slots, const volatile bool* stop) {
  uint64_t n = 0;
  uintptr_t sum = 0;
  while (!*stop) {
    for (int i = 0; i < kSlots; ++i)
      sum += reinterpret_cast<uintptr_t>(slots->s[i].load(std::memory_order_acquire));
    n += kSlots;
  }
  do_not_optimize(sum);
  return n;
}

// ns per read per reader thread; with `signalling`, one more thread keeps
// replacing and signalling the fences being read.
double ns_per_read(const Options& o, Issuer* iss, Slots* slots, bool names, bool signalling) {
  const int extra = signalling ? 1 : 0;
  const double ops = throughput(o, kReaders + extra, [&](int t, const volatile bool* stop) {
    if (t < extra) {
      signaller(iss, slots, stop);
      return uint64_t{0};
    }
    return names ? read_names(slots, stop) : read_slots(slots, stop);
  });
  return ops > 0 ? kReaders * 1e9 / ops : 0;
}

const char* core_name(Fence*) { return "core-fence"; }
const FenceOps kCoreNameOps = {.get_driver_name = core_name, .get_timeline_name = core_name};

void name_read_rows(const Options& o, std::vector<Row>& rows, const std::string& path) {
  Issuer* iss = load(path);
  if (!iss) return;
  auto* slots = new Slots;
  std::string err;
  for (auto& s : slots->s) {
    Fence* f = nullptr;
    iss->create_fence({}, &f, &err);
    s.store(f);
  }
  const double floor_sig = ns_per_read(o, iss, slots, false, true);
  const double names_sig = ns_per_read(o, iss, slots, true, true);
  rows.push_back(ratio_row(
      "driver name under RCU, 2 readers + signaller", names_sig, "ns/op",
      "atomic load of the fence slot, same threads", floor_sig, "", true,
      "module fences, replaced and signalled (detached) under the readers: most reads "
      "hit a fence line another core just wrote"));

  // Steady state: the same unsignalled module fences, nobody signalling.
  const double floor_static = ns_per_read(o, iss, slots, false, false);
  const double names_static = ns_per_read(o, iss, slots, true, false);
  rows.push_back(ratio_row("driver name under RCU, 2 readers, module fences", names_static,
                           "ns/op", "atomic load of the fence slot, same threads", floor_static,
                           "", true,
                           "RCU read section + core wrapper + generation check + module call"));

  // The same reads of core fences whose ops point straight at the name function.
  auto* core = new Slots;
  for (auto& s : core->s) {
    Fence* f = fence_alloc();
    fence_init(f, &kCoreNameOps, nullptr, 1, 1);
    s.store(f);
  }
  const double core_static = ns_per_read(o, iss, core, true, false);
  rows.push_back(ratio_row("driver name, module fence (wrapper)", names_static, "ns/op",
                           "driver name, core fence (direct ops)", core_static, "<= 2", true,
                           "what routing ops through the core-owned wrapper tables costs"));
  for (auto* sl : {slots, core}) {
    for (auto& s : sl->s) {
      Fence* f = s.exchange(nullptr);
      fence_signal(f);
      fence_put(f);
    }
    delete sl;
  }
  unload(iss);
  iss->put();
}

// --- unload cost ---------------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Lets the reclaimer finish freeing the previous round's fences, so that its
// grace periods and frees do not overlap with the unload being timed.
void quiesce() {
  rcu::flush_deferred();
  for (int i = 0; i < 4000 && rcu::deferred_pending() != 0; ++i) usleep(250);
}

struct UnloadCost {
  double total_us = 0, signal_us = 0, grace_us = 0, shutdown_us = 0, close_us = 0;
};

UnloadCost unload_with_live_fences(const std::string& path, size_t n, int repeats) {
  std::vector<double> total, signal, grace, shutdown, close;
  std::vector<Fence*> live;
  live.reserve(n);
  std::string err;
  for (int r = 0; r < repeats; ++r) {
    Issuer* iss = load(path);
    if (!iss) return {};
    for (size_t i = 0; i < n; ++i) {
      Fence* f = nullptr;
      if (iss->create_fence({}, &f, &err) != 0) break;
      fence_signal(f);  // detached; the caller keeps it alive
      live.push_back(f);
    }
    quiesce();
    unload(iss);
    const IssuerUnloadStats st = iss->last_unload_stats();
    total.push_back(st.total_ns / 1e3);
    signal.push_back((st.signal_all_ns + st.drain_ns) / 1e3);
    grace.push_back(st.grace_ns / 1e3);
    shutdown.push_back(st.shutdown_ns / 1e3);
    close.push_back(st.close_ns / 1e3);
    iss->put();
    for (Fence* f : live) fence_put(f);
    live.clear();
  }
  return {median(total), median(signal), median(grace), median(shutdown), median(close)};
}

double empty_synchronize_us(int repeats) {
  std::vector<double> v;
  for (int i = 0; i < repeats; ++i) {
    const int64_t t0 = monotonic_ns();
    rcu::synchronize();
    v.push_back((monotonic_ns() - t0) / 1e3);
  }
  return median(v);
}

void unload_rows(std::vector<Row>& rows, const std::string& path) {
  const double sync_us = empty_synchronize_us(201);
  UnloadCost base;
  for (size_t n : {size_t{0}, size_t{1000}, size_t{100000}}) {
    const UnloadCost c = unload_with_live_fences(path, n, n >= 100000 ? 7 : 21);
    if (n == 0) base = c;
    const double protocol_us = c.signal_us + c.grace_us + c.shutdown_us;
    char note[300];
    snprintf(note, sizeof note,
             "signal_all %.1f us, grace period %.1f us (%.2fx the empty one), shutdown %.1f us; "
             "dlclose %.0f us on top (total %.0f us, %.2fx the N=0 unload)",
             c.signal_us, c.grace_us, sync_us > 0 ? c.grace_us / sync_us : 0, c.shutdown_us,
             c.close_us, c.total_us, base.total_us > 0 ? c.total_us / base.total_us : 0);
    rows.push_back(ratio_row("unload protocol, " + std::to_string(n) + " live detached fences",
                             protocol_us, "us", "empty rcu::synchronize()", sync_us, "", true,
                             note));
  }
}

// --- named fences (what JS issuer.createFence() makes) ----------------------------------

Issuer* g_named = nullptr;

void named_lifecycle(uint64_t n) {
  std::string err;
  for (uint64_t i = 0; i < n; ++i) {
    Fence* f = nullptr;
    if (g_named->create_fence({}, &f, &err) != 0) abort();
    fence_signal(f);
    fence_put(f);
  }
}

void plain_lifecycle(uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    Fence* f = fence_alloc();
    fence_init(f, &kCoreNameOps, nullptr, 1, i);
    fence_signal(f);
    fence_put(f);
  }
}

void named_rows(const Options& o, std::vector<Row>& rows) {
  std::string err;
  if (Issuer::create_named("bench-driver", "bench-timeline", &g_named, &err) != 0) return;
  const double plain = ns_per_op(o, plain_lifecycle);
  const double named = ns_per_op(o, named_lifecycle);
  rows.push_back(ratio_row("named issuer fence lifecycle (create, signal, put)", named, "ns/op",
                           "fence lifecycle (alloc, init, signal, put)", plain, "<= 1.6", true,
                           "names copied into a recycled 128-byte fence-cache block; two "
                           "atomic counters (seqno, fences created) on top"));
  g_named->put();
  g_named = nullptr;
}

Register reg("issuer", [](const Options& o, std::vector<Row>& rows) {
  named_rows(o, rows);
  const std::string names = module_path("names");
  if (names.empty()) {
    Row r;
    r.name = "issuer benchmarks skipped";
    r.note = "example modules not found: set DMABUF_ISSUER_DIR to build/issuers";
    rows.push_back(r);
    return;
  }
  name_read_rows(o, rows, names);
  unload_rows(rows, names);
  rcu::barrier();
});

}  // namespace
}  // namespace dmabuf::bench
