// dma_resv and ww_acquire_ctx bindings: Holder Externals over the core objects
// (a Resv of its own, or a dma-buf's embedded one), flat functions over them. The TypeScript layer (lib/resv.ts) validates usages
// and arguments; these convert, call the core and return errnos as numbers.
// Operations that need the lock return -EPERM when the calling thread does not
// hold it (the kernel's lockdep splat; here the core would only warn, and a
// write without the lock would race).
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "bindings.h"
#include "dma_buf.h"
#include "dma_buf_resv.h"
#include "env_state.h"
#include "export_registry.h"
#include "handles.h"
#include "warn.h"
#include "resv.h"

namespace dmabuf::addon {
namespace {

// A Resv shared by the JS objects (one per thread) that hold handles to it:
// one of its own, or a dma-buf's (dmabuf->resv), kept alive by a file
// reference to the buffer as an importer's dma_buf_get would.
struct ResvRef;
struct SharedResv {
  Resv own;
  Resv* resv = &own;
  DmaBuf* buf = nullptr;
  std::atomic<uint32_t> refs{1};
  // The JS object whose lock()/trylock() took the lock that is held now.
  // Only the thread holding the lock reads or writes it.
  ResvRef* lock_ref = nullptr;
};
void resv_put(SharedResv* r) {
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (r->buf) dma_buf_put(r->buf);
    else resv_fini(&r->own);
    delete r;
  }
}
// One JS Resv object's reference (several objects, on several threads, may
// share one SharedResv).
struct ResvRef {
  SharedResv* shared;
};
// A JS object that goes away -- dispose(), garbage collection, or its
// environment's teardown (worker exit, process exit) -- while the lock it took
// is still held must not leave it held for ever: it is released, with a
// warning, as the kernel warns about a lock held when a task exits.
void resv_ref_release_lock(ResvRef* ref, bool warn_about_it) {
  SharedResv* r = ref->shared;
  if (!resv_held(r->resv) || r->lock_ref != ref) return;
  r->lock_ref = nullptr;
  resv_unlock(r->resv);
  RunDeferredDetaches();
  if (warn_about_it) warn("Resv released while its lock was held (collected, or its thread ended): unlocked");
}
void resv_ref_put(ResvRef* ref) {
  resv_ref_release_lock(ref, true);
  resv_put(ref->shared);
  delete ref;
}
ResvRef* NewRef(SharedResv* shared) { return new ResvRef{shared}; }
using ResvHolder = Holder<ResvRef, resv_ref_put, 0x52455356>;  // "RESV"

// An acquire context belongs to one JS object on one thread. One that still
// holds locks is leaked rather than freed under the locks that point to it.
struct AcquireCtx {
  WwAcquireCtx ctx;
  bool finished;
};
void ctx_put(AcquireCtx* c) {
  if (c->ctx.acquired != 0) return;
  if (!c->finished) ww_acquire_fini(&c->ctx);
  delete c;
}
using CtxHolder = Holder<AcquireCtx, ctx_put, 0x57574358>;  // "WWCX"

ResvRef* RefArg(const Napi::CallbackInfo& info, size_t i) {
  ResvRef* r = ResvHolder::From(info[i]);
  if (!r) throw BadHandle(info.Env(), "Resv handle");
  return r;
}
Resv* ResvArg(const Napi::CallbackInfo& info, size_t i) { return RefArg(info, i)->shared->resv; }
// ctx argument: undefined/null -> nullptr
WwAcquireCtx* CtxArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  AcquireCtx* c = CtxHolder::From(info[i]);
  if (!c) throw BadHandle(info.Env(), "AcquireContext handle");
  return &c->ctx;
}
Fence* FenceArg(const Napi::CallbackInfo& info, size_t i) {
  Fence* f = FenceFromHandle(info[i]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  return f;
}
ResvUsage UsageArg(const Napi::CallbackInfo& info, size_t i) {
  const uint32_t u = info[i].As<Napi::Number>().Uint32Value();
  if (u > RESV_USAGE_BOOKKEEP) throw Napi::RangeError::New(info.Env(), "dmabuf: bad usage");
  return static_cast<ResvUsage>(u);
}
Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// Resv references parked for another thread (exportHandle / importHandle).
ExportRegistry<SharedResv, resv_put> g_exports;

// --- Resv ------------------------------------------------------------------------

Napi::Value ResvCreate(const Napi::CallbackInfo& info) {
  auto* r = new SharedResv;
  resv_init(&r->own);
  return ResvHolder::Wrap(info.Env(), NewRef(r));
}
// resvDispose(h): an explicit dispose() drops the lock it took, quietly.
Napi::Value ResvDispose(const Napi::CallbackInfo& info) {
  if (ResvRef* ref = ResvHolder::From(info[0])) resv_ref_release_lock(ref, false);
  ResvHolder::Dispose(info[0]);
  return info.Env().Undefined();
}
// resvExport(h) -> bigint: a new reference another thread can adopt once.
Napi::Value ResvExport(const Napi::CallbackInfo& info) {
  SharedResv* r = RefArg(info, 0)->shared;
  r->refs.fetch_add(1, std::memory_order_relaxed);
  return Napi::BigInt::New(info.Env(), g_exports.Export(r, EnvState::Get(info.Env())));
}
// resvImport(bigint) -> handle, or undefined if not exported (or already imported)
Napi::Value ResvImport(const Napi::CallbackInfo& info) {
  bool ok = true;
  const uint64_t id = BigIntU64(info[0], &ok);
  SharedResv* r = nullptr;
  if (!ok || g_exports.Import(id, &r) != decltype(g_exports)::Result::kOk) return info.Env().Undefined();
  return ResvHolder::Wrap(info.Env(), NewRef(r));
}

// resvLock(h, ctx?) -> 0, -EALREADY, -EDEADLK (back off), or -EBUSY when
// this thread holds the lock outside @ctx (it would wait for itself forever).
// The sleep is interruptible: a thread whose environment is being torn down
// gets -EINTR (interrupt.h) instead of waiting for ever.
Napi::Value ResvLock(const Napi::CallbackInfo& info) {
  ResvRef* ref = RefArg(info, 0);
  Resv* r = ref->shared->resv;
  WwAcquireCtx* ctx = CtxArg(info, 1);
  if (resv_held(r) && (!ctx || resv_locking_ctx(r) != ctx)) return Num(info.Env(), -EBUSY);
  const int err = resv_lock_interruptible(r, ctx);
  if (err == 0) ref->shared->lock_ref = ref;
  return Num(info.Env(), err);
}
// resvLockSlow(h, ctx) -> 0 or -EINTR
Napi::Value ResvLockSlow(const Napi::CallbackInfo& info) {
  ResvRef* ref = RefArg(info, 0);
  const int err = resv_lock_slow_interruptible(ref->shared->resv, CtxArg(info, 1));
  if (err == 0) ref->shared->lock_ref = ref;
  return Num(info.Env(), err);
}
Napi::Value ResvTrylock(const Napi::CallbackInfo& info) {
  ResvRef* ref = RefArg(info, 0);
  const bool ok = resv_trylock(ref->shared->resv);
  if (ok) ref->shared->lock_ref = ref;
  return Napi::Boolean::New(info.Env(), ok);
}
// resvUnlock(h) -> 0 or -EPERM (not held by this thread)
Napi::Value ResvUnlock(const Napi::CallbackInfo& info) {
  SharedResv* shared = RefArg(info, 0)->shared;
  Resv* r = shared->resv;
  if (!resv_held(r)) return Num(info.Env(), -EPERM);
  shared->lock_ref = nullptr;
  resv_unlock(r);
  RunDeferredDetaches();  // attachments finalized while this thread held a dma-buf's lock
  return Num(info.Env(), 0);
}
Napi::Value ResvIsLocked(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), resv_is_locked(ResvArg(info, 0)));
}
Napi::Value ResvHeld(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), resv_held(ResvArg(info, 0)));
}

// resvReserve(h, n) -> 0, -EPERM, -EINVAL, -ENOMEM
Napi::Value ResvReserve(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  if (!resv_held(r)) return Num(info.Env(), -EPERM);
  return Num(info.Env(), resv_reserve_fences(r, info[1].As<Napi::Number>().Uint32Value()));
}
// resvAddFence(h, fence, usage) -> 0 or -EPERM
Napi::Value ResvAddFence(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  Fence* f = FenceArg(info, 1);
  ResvUsage u = UsageArg(info, 2);
  if (!resv_held(r)) return Num(info.Env(), -EPERM);
  resv_add_fence(r, f, u);
  return Num(info.Env(), 0);
}
// resvReplaceFences(h, context: bigint, fence, usage) -> 0 or -EPERM
Napi::Value ResvReplaceFences(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  bool ok = true;
  const uint64_t ctx = BigIntU64(info[1], &ok);
  Fence* f = FenceArg(info, 2);
  ResvUsage u = UsageArg(info, 3);
  if (!ok) throw Napi::RangeError::New(info.Env(), "dmabuf: value out of the u64 range");
  if (!resv_held(r)) return Num(info.Env(), -EPERM);
  resv_replace_fences(r, ctx, f, u);
  return Num(info.Env(), 0);
}
// resvCopyFences(dst, src) -> 0, -EPERM, -ENOMEM
Napi::Value ResvCopyFences(const Napi::CallbackInfo& info) {
  Resv* dst = ResvArg(info, 0);
  Resv* src = ResvArg(info, 1);
  if (!resv_held(dst)) return Num(info.Env(), -EPERM);
  return Num(info.Env(), resv_copy_fences(dst, src));
}

// resvFences(h, usage, locked) -> [handles[], usages[]] or -EPERM. Locked: every
// entry (signalled ones too); unlocked: the pending ones, from the last
// consistent pass (the iterator restarts if the object changes under it).
Napi::Value ResvFences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  const bool locked = info[2].ToBoolean();
  std::vector<Fence*> fences;
  std::vector<unsigned> usages;
  ResvIter cursor;
  if (locked) {
    if (!resv_held(r)) return Num(env, -EPERM);
    Fence* f;
    resv_for_each_fence(&cursor, r, u, f) {
      fences.push_back(fence_get(f));
      usages.push_back(resv_iter_usage(&cursor));
    }
  } else {
    resv_iter_begin(&cursor, r, u);
    for (Fence* f = resv_iter_first_unlocked(&cursor); f; f = resv_iter_next_unlocked(&cursor)) {
      if (resv_iter_is_restarted(&cursor)) {
        for (Fence* g : fences) fence_put(g);
        fences.clear();
        usages.clear();
      }
      fences.push_back(fence_get(f));
      usages.push_back(resv_iter_usage(&cursor));
    }
    resv_iter_end(&cursor);
  }
  Napi::Array hs = Napi::Array::New(env, fences.size());
  Napi::Array us = Napi::Array::New(env, usages.size());
  for (uint32_t k = 0; k < fences.size(); ++k) {
    hs.Set(k, WrapFence(env, fences[k]));
    us.Set(k, Num(env, usages[k]));
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, hs);
  out.Set(1u, us);
  return out;
}
// resvGetFences(h, usage) -> handles[] or a negative errno
Napi::Value ResvGetFences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  unsigned n = 0;
  Fence** fences = nullptr;
  int ret = resv_get_fences(r, UsageArg(info, 1), &n, &fences);
  if (ret < 0) return Num(env, ret);
  Napi::Array out = Napi::Array::New(env, n);
  for (uint32_t k = 0; k < n; ++k) out.Set(k, WrapFence(env, fences[k]));
  std::free(fences);
  return out;
}
// resvGetSingleton(h, usage) -> handle, 0 (none) or a negative errno
Napi::Value ResvGetSingleton(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  Fence* f = nullptr;
  int ret = resv_get_singleton(r, UsageArg(info, 1), &f);
  if (ret < 0) return Num(info.Env(), ret);
  return f ? WrapFence(info.Env(), f) : Num(info.Env(), 0);
}
Napi::Value ResvTestSignaled(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  return Napi::Boolean::New(info.Env(), resv_test_signaled(r, UsageArg(info, 1)));
}
// resvWaitSync(h, usage, timeoutNs: number, -1 = forever) -> remaining (>0), 0, <0
Napi::Value ResvWaitSync(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  if (!info[2].IsNumber()) throw BadArg(info.Env(), "expected a timeout number");
  const double t = info[2].As<Napi::Number>().DoubleValue();
  const long ret = InterruptibleWait(EnvState::Get(info.Env()), t,
                                     [&](int64_t slice) { return resv_wait_timeout(r, u, true, slice); });
  return Num(info.Env(), static_cast<double>(ret));
}
Napi::Value ResvSetDeadline(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  bool lossless;
  resv_set_deadline(r, u, info[2].As<Napi::BigInt>().Int64Value(&lossless));
  return info.Env().Undefined();
}
// resvDescribe(h) -> string, or -EPERM
Napi::Value ResvDescribe(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  if (!resv_held(r)) return Num(info.Env(), -EPERM);
  return Napi::String::New(info.Env(), resv_describe(r));
}

// --- AcquireContext ----------------------------------------------------------------

Napi::Value CtxCreate(const Napi::CallbackInfo& info) {
  auto* c = new AcquireCtx{};
  ww_acquire_init(&c->ctx, &reservation_ww_class);
  return CtxHolder::Wrap(info.Env(), c);
}
AcquireCtx* CtxObj(const Napi::CallbackInfo& info) {
  AcquireCtx* c = CtxHolder::From(info[0]);
  if (!c) throw BadHandle(info.Env(), "AcquireContext handle");
  return c;
}
Napi::Value CtxDone(const Napi::CallbackInfo& info) {
  ww_acquire_done(&CtxObj(info)->ctx);
  return info.Env().Undefined();
}
// ctxFini(h) -> 0, or -EBUSY while it still holds locks
Napi::Value CtxFini(const Napi::CallbackInfo& info) {
  AcquireCtx* c = CtxObj(info);
  if (c->ctx.acquired != 0) return Num(info.Env(), -EBUSY);
  if (!c->finished) ww_acquire_fini(&c->ctx);
  c->finished = true;
  return Num(info.Env(), 0);
}
Napi::Value CtxAcquired(const Napi::CallbackInfo& info) {
  return Num(info.Env(), CtxObj(info)->ctx.acquired);
}
Napi::Value CtxStamp(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), CtxObj(info)->ctx.stamp);
}
Napi::Value CtxDispose(const Napi::CallbackInfo& info) {
  CtxHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

Napi::Value WrapBufResv(Napi::Env env, DmaBuf* buf) {
  dma_buf_get(buf);
  auto* r = new SharedResv;
  r->resv = dma_buf_resv(buf);
  r->buf = buf;
  return ResvHolder::Wrap(env, NewRef(r));
}

void RegisterResv(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"resvCreate", ResvCreate},
      {"resvDispose", ResvDispose},
      {"resvExport", ResvExport},
      {"resvImport", ResvImport},
      {"resvLock", ResvLock},
      {"resvLockSlow", ResvLockSlow},
      {"resvTrylock", ResvTrylock},
      {"resvUnlock", ResvUnlock},
      {"resvIsLocked", ResvIsLocked},
      {"resvHeld", ResvHeld},
      {"resvReserve", ResvReserve},
      {"resvAddFence", ResvAddFence},
      {"resvReplaceFences", ResvReplaceFences},
      {"resvCopyFences", ResvCopyFences},
      {"resvFences", ResvFences},
      {"resvGetFences", ResvGetFences},
      {"resvGetSingleton", ResvGetSingleton},
      {"resvTestSignaled", ResvTestSignaled},
      {"resvWaitSync", ResvWaitSync},
      {"resvSetDeadline", ResvSetDeadline},
      {"resvDescribe", ResvDescribe},
      {"ctxCreate", CtxCreate},
      {"ctxDone", CtxDone},
      {"ctxFini", CtxFini},
      {"ctxAcquired", CtxAcquired},
      {"ctxStamp", CtxStamp},
      {"ctxDispose", CtxDispose},
  };
  for (auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace dmabuf::addon
