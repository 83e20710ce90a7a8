// Core-private plumbing between the issuer loader (issuer.cc) and the module ABI
// (issuer_abi.cc): the per-load record, the fence memory layout of module
// fences, and the core-owned ops tables that forward into a module.
//
// Why a core-owned ops table instead of pointing fence->ops into the module:
// module callbacks take `dmabuf_fence*`, not `Fence*`, and the core must count
// the fences that pin a module (release wrapper) and survive modules that forget
// fences. fence->ops points to one of 32 static tables (one per combination of
// optional callbacks), so it never dangles; each wrapper finds its module through
// the fence's trailer {record, generation} and calls through the module's own
// `dmabuf_fence_ops` (module memory). Records are pooled and never freed: a
// fence that outlives its module sees a changed generation and gets the
// "unloaded" behaviour instead of a stale call. Pre-7.1 mode (keep_ops) keeps
// the generation alive on purpose, so the wrapper calls into unmapped memory.
#pragma once

#include <dmabuf/issuer.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/fence/fence.h"

namespace dmabuf::issuer_detail {

// One load of a module. Pooled: never freed, reused for later loads.
struct Record {
  // Even: the live generation of the current load. Odd: unloaded (dead).
  std::atomic<uint64_t> gen{1};
  std::atomic<const dmabuf_fence_ops*> c_ops{nullptr};  // module memory
  std::atomic<bool> accepting{false};  // fence_alloc allowed
  std::atomic<uint32_t> pinned{0};     // live fences with release/wait (futex word)
  std::atomic<uint64_t> created{0};    // fences initialised in this load
  const FenceOps* core_ops = nullptr;  // static wrapper table for this load
  bool pins = false;                   // core_ops has release: fences pin the module
  Record* next_free = nullptr;
};

// Module fence memory: [Fence][Trailer][pad][module private area].
struct Trailer {
  Record* rec;
  uint64_t gen;  // the record's generation when the fence was allocated
};
constexpr size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
constexpr size_t kTrailerOffset = round_up(sizeof(Fence), alignof(Trailer));
constexpr size_t kPrivOffset = round_up(kTrailerOffset + sizeof(Trailer), 16);
constexpr size_t kMaxPrivSize = 1 << 20;

inline Trailer* trailer(Fence* f) {
  return reinterpret_cast<Trailer*>(reinterpret_cast<char*>(f) + kTrailerOffset);
}
inline Fence* to_fence(dmabuf_fence* f) { return reinterpret_cast<Fence*>(f); }
inline const Fence* to_fence(const dmabuf_fence* f) { return reinterpret_cast<const Fence*>(f); }
inline dmabuf_fence* to_c(Fence* f) { return reinterpret_cast<dmabuf_fence*>(f); }

// The record of a module fence if its module is still loaded, else nullptr.
// Callers are inside an RCU read section (or hold a pinned fence), so the
// record cannot be reused for another load before they are done.
inline Record* live_record(Fence* f) {
  Trailer* t = trailer(f);
  Record* r = t->rec;
  return r->gen.load(std::memory_order_acquire) == t->gen ? r : nullptr;
}

// Which optional callbacks a wrapper table forwards (bit set = non-null slot).
enum OpsMask : unsigned {
  kHasEnableSignaling = 1u << 0,
  kHasSignaled = 1u << 1,
  kHasWait = 1u << 2,
  kHasRelease = 1u << 3,  // module release or wait, or keep_ops: pins the module
  kHasSetDeadline = 1u << 4,
  kOpsMaskCount = 1u << 5,
};
unsigned ops_mask(const dmabuf_fence_ops* ops, bool keep_ops);
const FenceOps* wrapper_ops(unsigned mask);
inline bool mask_pins(unsigned mask) { return mask & kHasRelease; }

// The table handed to every module.
extern const dmabuf_core_api kCoreApi;

// Record pool (issuer.cc).
Record* record_acquire();           // with a fresh live generation, not accepting
void record_kill(Record* r);        // new fences refused, old ones see "unloaded"
void record_recycle(Record* r);     // killed and a grace period passed
void record_bury(Record* r);        // keep_ops: stays live, never reused

}  // namespace dmabuf::issuer_detail
