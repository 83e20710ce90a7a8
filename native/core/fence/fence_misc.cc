// dma_fence odds and ends: names under RCU, deadlines, stub fences, describe.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/base/monotonic.h"
#include "core/fence/fence.h"

namespace dmabuf {
namespace {

const char* stub_name(Fence*) { return "stub"; }
const FenceOps kStubOps = {.get_driver_name = stub_name, .get_timeline_name = stub_name};

void init_signaled_stub(Fence* f, int64_t timestamp_ns) {
  fence_init(f, &kStubOps, nullptr, 0, 0);
  f->flags.fetch_or(1UL << FENCE_FLAG_ENABLE_SIGNAL_BIT, std::memory_order_relaxed);
  fence_signal_timestamp(f, timestamp_ns);
}

}  // namespace

const char* fence_driver_name(Fence* f) {
  if (fence_test_signaled_flag(f)) return "detached-driver";
  const FenceOps* ops = rcu::dereference(f->ops);
  return ops ? ops->get_driver_name(f) : "detached-driver";
}

const char* fence_timeline_name(Fence* f) {
  // Intended 7.1 behaviour: the timeline callback (mainline briefly called the
  // driver one here; see the spec's note on the pending fix).
  if (fence_test_signaled_flag(f)) return "signaled-timeline";
  const FenceOps* ops = rcu::dereference(f->ops);
  return ops ? ops->get_timeline_name(f) : "signaled-timeline";
}

void fence_set_deadline(Fence* f, int64_t deadline_ns) {
  void (*fn)(Fence*, int64_t) = nullptr;
  rcu::ReadGuard rcu;
  const FenceOps* ops = rcu::dereference(f->ops);
  if (ops) fn = ops->set_deadline;
  if (fn && !fence_is_signaled(f)) fn(f, deadline_ns);
}

namespace {
// The shared stub: static storage, initialised and signalled once when the
// library loads (the kernel's subsys_initcall dma_fence_init_stub), so its
// timestamp is the subsystem's start, earlier than any fence made later.
// Zeroed static storage, as calloc'd fences start out (Fence has no default
// constructor: its lock is a union member).
alignas(Fence) unsigned char g_stub_mem[sizeof(Fence)];
Fence* const g_stub = reinterpret_cast<Fence*>(g_stub_mem);
struct StubInit {
  StubInit() { init_signaled_stub(g_stub, monotonic_ns()); }
} g_stub_init;
}  // namespace

Fence* fence_get_stub() { return fence_get(g_stub); }

Fence* fence_allocate_private_stub(int64_t timestamp_ns) {
  Fence* f = fence_alloc();
  if (!f) return nullptr;
  init_signaled_stub(f, timestamp_ns);
  return f;
}

std::string fence_describe(Fence* f) {
  rcu::ReadGuard rcu;
  // dma_fence_is_signaled, as the kernel's describe: it polls the issuer's
  // `signaled` op (and signals the fence if that says so).
  const bool signaled = fence_is_signaled(f);
  char buf[256];
  snprintf(buf, sizeof buf, "%" PRIu64 ":%" PRIu64 " %s %s %ssignalled\n", f->context, f->seqno,
           signaled ? "" : fence_timeline_name(f), signaled ? "" : fence_driver_name(f),
           signaled ? "" : "un");
  return buf;
}

}  // namespace dmabuf
