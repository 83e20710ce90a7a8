// The module side of issuers: the core function table modules receive, and the
// core-owned ops tables that forward fence callbacks into a module (see
// issuer_record.h for why fence->ops never points into module memory).
#include <array>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/base/futex.h"
#include "core/base/monotonic.h"
#include "core/base/rcu.h"
#include "core/base/warn.h"
#include "core/issuer/issuer_record.h"

namespace dmabuf::issuer_detail {
namespace {

// --- wrappers: fence->ops of module fences --------------------------------------
// All but `wait` run inside an RCU read section; `wait` only exists for fences
// that pin their module, so the module cannot go away under it.

inline const dmabuf_fence_ops* module_ops(Record* r) {
  return r->c_ops.load(std::memory_order_relaxed);
}

// A fence whose module is gone (it forgot to signal it): it completes with
// -ENODEV as soon as anyone looks.
inline void mark_orphan(Fence* f) { __atomic_store_n(&f->error, -ENODEV, __ATOMIC_RELAXED); }

const char* w_driver_name(Fence* f) {
  Record* r = live_record(f);
  if (!r) return "unloaded-driver";
  const char* s = module_ops(r)->get_driver_name(to_c(f));
  return s ? s : "";
}

const char* w_timeline_name(Fence* f) {
  Record* r = live_record(f);
  if (!r) return "unloaded-timeline";
  const char* s = module_ops(r)->get_timeline_name(to_c(f));
  return s ? s : "";
}

bool w_enable_signaling(Fence* f) {
  Record* r = live_record(f);
  if (!r) {
    mark_orphan(f);
    return false;
  }
  return module_ops(r)->enable_signaling(to_c(f));
}

bool w_signaled(Fence* f) {
  Record* r = live_record(f);
  if (!r) {
    mark_orphan(f);
    return true;
  }
  return module_ops(r)->signaled(to_c(f));
}

long w_wait(Fence* f, bool intr, int64_t timeout_ns) {
  Record* r = live_record(f);
  const dmabuf_fence_ops* ops = r ? module_ops(r) : nullptr;
  if (!ops || !ops->wait) return fence_default_wait(f, intr, timeout_ns);
  return static_cast<long>(ops->wait(to_c(f), intr, timeout_ns));
}

// Present for every fence that pins its module: counts them out.
void w_release(Fence* f) {
  Trailer* t = trailer(f);
  Record* r = t->rec;
  if (r->gen.load(std::memory_order_acquire) != t->gen) {
    fence_free(f);
    return;
  }
  // keep_ops after unload: module_ops(r) is unmapped and this faults, which is
  // the pre-7.1 crash being reproduced.
  const dmabuf_fence_ops* ops = module_ops(r);
  if (ops->release) ops->release(to_c(f));
  fence_free(f);
  if (r->pinned.fetch_sub(1, std::memory_order_acq_rel) == 1) futex_wake_all(&r->pinned);
}

void w_set_deadline(Fence* f, int64_t deadline_ns) {
  if (Record* r = live_record(f)) module_ops(r)->set_deadline(to_c(f), deadline_ns);
}

template <unsigned M>
constexpr FenceOps make_ops() {
  return FenceOps{
      .get_driver_name = w_driver_name,
      .get_timeline_name = w_timeline_name,
      .enable_signaling = (M & kHasEnableSignaling) ? w_enable_signaling : nullptr,
      .signaled = (M & kHasSignaled) ? w_signaled : nullptr,
      .wait = (M & kHasWait) ? w_wait : nullptr,
      .release = (M & kHasRelease) ? w_release : nullptr,
      .set_deadline = (M & kHasSetDeadline) ? w_set_deadline : nullptr,
  };
}
template <size_t... I>
constexpr std::array<FenceOps, sizeof...(I)> make_tables(std::index_sequence<I...>) {
  return {make_ops<I>()...};
}
constexpr std::array<FenceOps, kOpsMaskCount> kWrapperTables =
    make_tables(std::make_index_sequence<kOpsMaskCount>{});

// --- the core API table ------------------------------------------------------------

dmabuf_fence* a_fence_alloc(dmabuf_issuer* issuer, size_t priv_size) {
  Record* r = reinterpret_cast<Record*>(issuer);
  if (!r || priv_size > kMaxPrivSize) return nullptr;
  const uint64_t gen = r->gen.load(std::memory_order_acquire);
  if ((gen & 1) || !r->accepting.load(std::memory_order_acquire)) return nullptr;
  // The fence comes first so the core's default free path (std::free of the
  // fence pointer, or the fence cache) handles this block too.
  void* mem = std::calloc(1, kPrivOffset + priv_size);
  if (!mem) return nullptr;
  Fence* f = static_cast<Fence*>(mem);
  *trailer(f) = Trailer{r, gen};
  return to_c(f);
}

void a_fence_discard(dmabuf_fence* f) {
  if (!f) return;
  if (fence_was_initialized(to_fence(f))) {
    warn("issuer: fence_discard on an initialised fence (use fence_put)");
    return;
  }
  std::free(f);
}

void init_common(dmabuf_fence* cf, dmabuf_fence_lock* lock, uint64_t context, uint64_t seqno,
                 bool seqno64) {
  Fence* f = to_fence(cf);
  Record* r = trailer(f)->rec;
  auto* l = reinterpret_cast<SpinLock*>(lock);
  if (r->pins) r->pinned.fetch_add(1, std::memory_order_relaxed);
  r->created.fetch_add(1, std::memory_order_relaxed);
  if (seqno64)
    fence_init64(f, r->core_ops, l, context, seqno);
  else
    fence_init(f, r->core_ops, l, context, seqno);
}

void a_fence_init(dmabuf_fence* f, dmabuf_fence_lock* lock, uint64_t context, uint64_t seqno) {
  init_common(f, lock, context, seqno, false);
}
void a_fence_init64(dmabuf_fence* f, dmabuf_fence_lock* lock, uint64_t context,
                    uint64_t seqno) {
  init_common(f, lock, context, seqno, true);
}

void* a_fence_priv(dmabuf_fence* f) { return reinterpret_cast<char*>(f) + kPrivOffset; }
uint64_t a_fence_context(const dmabuf_fence* f) { return to_fence(f)->context; }
uint64_t a_fence_seqno(const dmabuf_fence* f) { return to_fence(f)->seqno; }
dmabuf_fence* a_fence_get(dmabuf_fence* f) { return to_c(fence_get(to_fence(f))); }
void a_fence_put(dmabuf_fence* f) { fence_put(to_fence(f)); }
void a_fence_signal(dmabuf_fence* f) { fence_signal(to_fence(f)); }
void a_fence_signal_timestamp(dmabuf_fence* f, int64_t ts) {
  fence_signal_timestamp(to_fence(f), ts);
}
bool a_fence_check_and_signal(dmabuf_fence* f) { return fence_check_and_signal(to_fence(f)); }
void a_fence_set_error(dmabuf_fence* f, int error) { fence_set_error(to_fence(f), error); }
bool a_fence_is_signaled(dmabuf_fence* f) { return fence_is_signaled(to_fence(f)); }
bool a_fence_test_signaled_flag(const dmabuf_fence* f) {
  return fence_test_signaled_flag(to_fence(f));
}
int a_fence_get_status(dmabuf_fence* f) { return fence_get_status(to_fence(f)); }
int64_t a_fence_default_wait(dmabuf_fence* f, bool intr, int64_t timeout_ns) {
  return fence_default_wait(to_fence(f), intr, timeout_ns);
}
void a_fence_lock(dmabuf_fence* f) { fence_lock_irqsave(to_fence(f)); }
void a_fence_unlock(dmabuf_fence* f) { fence_unlock_irqrestore(to_fence(f)); }
void a_fence_signal_locked(dmabuf_fence* f) { fence_signal_locked(to_fence(f)); }
uint64_t a_context_alloc(unsigned num) { return fence_context_alloc(num); }

// Legacy external locks: fences keep a pointer to their lock until their last
// reference is gone, which may be long after the module is unloaded. So the
// memory is never freed; a retired lock is simply not used for new fences.
struct LockArena {
  std::mutex mu;
  std::vector<std::unique_ptr<SpinLock[]>> chunks;
  size_t used_in_last = 0;
  static constexpr size_t kChunk = 256;
};
LockArena& lock_arena() {
  static LockArena* a = new LockArena;  // immortal: fences may use locks during exit
  return *a;
}

dmabuf_fence_lock* a_lock_create() {
  LockArena& a = lock_arena();
  std::lock_guard<std::mutex> g(a.mu);
  if (a.chunks.empty() || a.used_in_last == LockArena::kChunk) {
    a.chunks.emplace_back(new SpinLock[LockArena::kChunk]);
    a.used_in_last = 0;
  }
  return reinterpret_cast<dmabuf_fence_lock*>(&a.chunks.back()[a.used_in_last++]);
}
void a_lock_retire(dmabuf_fence_lock*) {}

void a_synchronize_rcu() {
  if (rcu::read_ongoing()) {
    warn("issuer: synchronize_rcu called inside an RCU read section (ignored)");
    return;
  }
  rcu::synchronize();
}
int64_t a_monotonic_ns() { return monotonic_ns(); }
void a_warn(const char* message) { warn("%s", message ? message : "(null)"); }

}  // namespace

unsigned ops_mask(const dmabuf_fence_ops* ops, bool keep_ops) {
  unsigned m = 0;
  if (ops->enable_signaling) m |= kHasEnableSignaling;
  if (ops->signaled) m |= kHasSignaled;
  if (ops->wait) m |= kHasWait;
  if (ops->release || ops->wait || keep_ops) m |= kHasRelease;
  if (ops->set_deadline) m |= kHasSetDeadline;
  return m;
}

const FenceOps* wrapper_ops(unsigned mask) { return &kWrapperTables[mask % kOpsMaskCount]; }

const dmabuf_core_api kCoreApi = {
    DMABUF_ISSUER_ABI_VERSION,
    sizeof(dmabuf_core_api),
    a_fence_alloc,
    a_fence_discard,
    a_fence_init,
    a_fence_init64,
    a_fence_priv,
    a_fence_context,
    a_fence_seqno,
    a_fence_get,
    a_fence_put,
    a_fence_signal,
    a_fence_signal_timestamp,
    a_fence_check_and_signal,
    a_fence_set_error,
    a_fence_is_signaled,
    a_fence_test_signaled_flag,
    a_fence_get_status,
    a_fence_default_wait,
    a_fence_lock,
    a_fence_unlock,
    a_fence_signal_locked,
    a_context_alloc,
    a_lock_create,
    a_lock_retire,
    a_synchronize_rcu,
    a_monotonic_ns,
    a_warn,
};

}  // namespace dmabuf::issuer_detail
