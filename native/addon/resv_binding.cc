// dma_resv and ww_acquire_ctx bindings: Holder Externals over the core objects
// (a Resv of its own, or a dma-buf's embedded one), flat functions over them.
// The TypeScript layer (lib/resv.ts) validates usages and arguments; these
// convert, call the core's checked entry points (resv.h: -EPERM when the
// calling thread does not hold the lock a writer needs, -EBUSY for a lock
// that would wait for itself) and throw its errnos as DmaBufErrors.
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_resv.h"
#include "addon/env_state.h"
#include "addon/export_registry.h"
#include "addon/handles.h"
#include "core/base/warn.h"
#include "core/resv/resv.h"

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
  if (!info[i].IsNumber()) throw BadArg(info.Env(), "expected a usage number");
  const uint32_t u = info[i].As<Napi::Number>().Uint32Value();
  if (u > RESV_USAGE_BOOKKEEP) throw Napi::RangeError::New(info.Env(), "dmabuf: bad usage");
  return static_cast<ResvUsage>(u);
}

// A writer's errno: -EPERM is the core's "lock not held by this thread".
void CheckLocked(Napi::Env env, int err, const char* op) {
  if (err == -EPERM) throw ErrnoError(env, err, op, "lock the Resv first");
  if (err < 0) throw ErrnoError(env, err, op, std::string(op) + " failed");
}

// Resv references parked for another thread (exportHandle / importHandle).
ExportRegistry<SharedResv, resv_put> g_exports;

// --- Resv ------------------------------------------------------------------------

Napi::Value ResvCreate(const Napi::CallbackInfo& info) {
  auto* r = new SharedResv;
  resv_init(&r->own);
  auto* ref = new (std::nothrow) ResvRef{r};
  if (!ref) {
    resv_put(r);
    throw ErrnoError(info.Env(), -ENOMEM, "dma_resv_init", "out of memory");
  }
  return ResvHolder::Wrap(info.Env(), ref);
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
// resvImport(bigint) -> handle. EINVAL if it was never exported (or was
// imported already).
Napi::Value ResvImport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBigInt()) throw BadArg(env, "expected a bigint handle");
  bool ok = true;
  const uint64_t id = BigIntU64(info[0], &ok);
  SharedResv* r = nullptr;
  if (!ok || g_exports.Import(id, &r) != decltype(g_exports)::Result::kOk)
    throw ErrnoError(env, -EINVAL, nullptr, "unknown Resv handle (never exported, or already imported)");
  auto* ref = new (std::nothrow) ResvRef{r};
  if (!ref) {
    resv_put(r);
    throw ErrnoError(env, -ENOMEM, nullptr, "out of memory");
  }
  return ResvHolder::Wrap(env, ref);
}

// resvLock(h, ctx?). The core refuses what would hang (resv_lock_checked);
// the sleep is interruptible: a thread whose environment is being torn down
// gets EINTR (interrupt.h) instead of waiting for ever.
Napi::Value ResvLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ResvRef* ref = RefArg(info, 0);
  WwAcquireCtx* ctx = CtxArg(info, 1);
  const int err = resv_lock_checked(ref->shared->resv, ctx);
  switch (err) {
    case 0:
      ref->shared->lock_ref = ref;
      return env.Undefined();
    case -EALREADY:
      throw ErrnoError(env, err, "dma_resv_lock", "this context already holds the lock");
    case -EBUSY:  // the core's "held by this thread outside ctx": waiting would deadlock
      throw ErrnoError(env, -EDEADLK, "dma_resv_lock", "this thread already holds the lock outside this context");
    case -EINVAL:
      throw ErrnoError(env, err, "dma_resv_lock", "locking after AcquireContext.done()");
    case -EINTR:
      throw SleepError(env, -EINTR, "dma_resv_lock");
    default:
      throw ErrnoError(env, err, "dma_resv_lock", "back off: unlock every lock of the context, then lockSlow()");
  }
}
// resvLockSlow(h, ctx)
Napi::Value ResvLockSlow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ResvRef* ref = RefArg(info, 0);
  WwAcquireCtx* ctx = CtxArg(info, 1);
  if (!ctx) throw BadArg(env, "lockSlow() needs an AcquireContext");
  const int err = resv_lock_slow_checked(ref->shared->resv, ctx);
  switch (err) {
    case 0:
      ref->shared->lock_ref = ref;
      return env.Undefined();
    case -EBUSY:
      throw ErrnoError(env, err, "dma_resv_lock_slow", "lockSlow() needs a context that holds no locks");
    case -EALREADY:
      throw ErrnoError(env, err, "dma_resv_lock_slow", "this thread already holds the lock");
    case -EINTR:
      throw SleepError(env, -EINTR, "dma_resv_lock_slow");
    default:
      throw ErrnoError(env, err, "dma_resv_lock_slow", "dma_resv_lock_slow failed");
  }
}
// resvTrylock(h) -> whether it took the lock (false while anyone holds it,
// this thread included)
Napi::Value ResvTrylock(const Napi::CallbackInfo& info) {
  ResvRef* ref = RefArg(info, 0);
  const bool ok = resv_trylock(ref->shared->resv);
  if (ok) ref->shared->lock_ref = ref;
  return Napi::Boolean::New(info.Env(), ok);
}
// resvUnlock(h): EPERM if this thread does not hold the lock.
Napi::Value ResvUnlock(const Napi::CallbackInfo& info) {
  SharedResv* shared = RefArg(info, 0)->shared;
  // lock_ref is the holder's bookkeeping: only the holding thread touches it.
  if (resv_held(shared->resv)) shared->lock_ref = nullptr;
  if (int err = resv_unlock_checked(shared->resv))
    throw ErrnoError(info.Env(), err, "dma_resv_unlock", "the lock is not held by this thread");
  RunDeferredDetaches();  // attachments finalized while this thread held a dma-buf's lock
  return info.Env().Undefined();
}
Napi::Value ResvIsLocked(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), resv_is_locked(ResvArg(info, 0)));
}
Napi::Value ResvHeld(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), resv_held(ResvArg(info, 0)));
}

// resvReserve(h, n): EPERM (lock not held), EINVAL, ENOMEM
Napi::Value ResvReserve(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  if (!info[1].IsNumber()) throw BadArg(info.Env(), "expected a count");
  CheckLocked(info.Env(), resv_reserve_fences_checked(r, info[1].As<Napi::Number>().Uint32Value()),
              "dma_resv_reserve_fences");
  return info.Env().Undefined();
}
// resvAddFence(h, fence, usage): EPERM (lock not held), EINVAL (a container)
Napi::Value ResvAddFence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  Fence* f = FenceArg(info, 1);
  ResvUsage u = UsageArg(info, 2);
  const int err = resv_add_fence_checked(r, f, u);
  if (err == -EINVAL)
    throw ErrnoError(env, err, "dma_resv_add_fence", "add the members of a container (unwrap()), not the container");
  CheckLocked(env, err, "dma_resv_add_fence");
  return env.Undefined();
}
// resvReplaceFences(h, context: bigint, fence, usage): EPERM (lock not held)
Napi::Value ResvReplaceFences(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  if (!info[1].IsBigInt()) throw BadArg(info.Env(), "expected a bigint context");
  bool ok = true;
  const uint64_t ctx = BigIntU64(info[1], &ok);
  Fence* f = FenceArg(info, 2);
  ResvUsage u = UsageArg(info, 3);
  if (!ok) throw Napi::RangeError::New(info.Env(), "dmabuf: value out of the u64 range");
  CheckLocked(info.Env(), resv_replace_fences_checked(r, ctx, f, u), "dma_resv_replace_fences");
  return info.Env().Undefined();
}
// resvCopyFences(dst, src): EPERM (dst's lock not held), ENOMEM
Napi::Value ResvCopyFences(const Napi::CallbackInfo& info) {
  Resv* dst = ResvArg(info, 0);
  Resv* src = ResvArg(info, 1);
  CheckLocked(info.Env(), resv_copy_fences_checked(dst, src), "dma_resv_copy_fences");
  return info.Env().Undefined();
}

// resvFences(h, usage) -> [handles[], usages[]] (resv_list_fences: every
// entry if this thread holds the lock, else the pending ones).
Napi::Value ResvFences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  std::vector<Fence*> fences;
  std::vector<ResvUsage> usages;
  const int err = resv_list_fences(r, u, &fences, &usages);
  if (err < 0) {
    for (Fence* f : fences) fence_put(f);
    throw ErrnoError(env, err, "dma_resv_iter", "dma_resv_iter failed");
  }
  Napi::Array hs = WrapFenceList(env, fences);  // first: it owns the references
  Napi::Array us = Napi::Array::New(env, usages.size());
  for (uint32_t k = 0; k < usages.size(); ++k) us.Set(k, Num(env, usages[k]));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, hs);
  out.Set(1u, us);
  return out;
}
// resvGetFences(h, usage) -> handles[]; ENOMEM
Napi::Value ResvGetFences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  unsigned n = 0;
  Fence** fences = nullptr;
  int ret = resv_get_fences(r, u, &n, &fences);
  if (ret < 0) throw ErrnoError(env, ret, "dma_resv_get_fences", "dma_resv_get_fences failed");
  std::vector<Fence*> list;
  try {
    list.assign(fences, fences + n);
  } catch (...) {
    for (unsigned k = 0; k < n; ++k) fence_put(fences[k]);
    std::free(fences);
    throw;
  }
  std::free(fences);
  return WrapFenceList(env, list);
}
// resvGetSingleton(h, usage) -> handle, or 0 (nothing pending); ENOMEM
Napi::Value ResvGetSingleton(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  Fence* f = nullptr;
  int ret = resv_get_singleton(r, u, &f);
  if (ret < 0) throw ErrnoError(env, ret, "dma_resv_get_singleton", "dma_resv_get_singleton failed");
  return f ? WrapFence(env, f) : Num(env, 0);
}
Napi::Value ResvTestSignaled(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  return Napi::Boolean::New(info.Env(), resv_test_signaled(r, UsageArg(info, 1)));
}
// resvWaitSync(h, usage, timeoutNs: number, -1 = forever) -> remaining (>0) or
// 0 (timeout); EINTR on teardown, the fences' error otherwise
Napi::Value ResvWaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  const double t = NumArg(info, 2);
  const long ret = InterruptibleWait(t,
                                     [&](int64_t slice) { return resv_wait_timeout(r, u, true, slice); });
  if (ret < 0) throw SleepError(env, ret, "dma_resv_wait_timeout");
  return Num(env, static_cast<double>(ret));
}
Napi::Value ResvSetDeadline(const Napi::CallbackInfo& info) {
  Resv* r = ResvArg(info, 0);
  ResvUsage u = UsageArg(info, 1);
  if (!info[2].IsBigInt()) throw BadArg(info.Env(), "expected a bigint deadline");
  bool lossless;
  resv_set_deadline(r, u, info[2].As<Napi::BigInt>().Int64Value(&lossless));
  return info.Env().Undefined();
}
// resvDescribe(h) -> string; EPERM (lock not held)
Napi::Value ResvDescribe(const Napi::CallbackInfo& info) {
  std::string out;
  CheckLocked(info.Env(), resv_describe_checked(ResvArg(info, 0), &out), "dma_resv_describe");
  return Napi::String::New(info.Env(), out);
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
// ctxFini(h): EBUSY while it still holds locks
Napi::Value CtxFini(const Napi::CallbackInfo& info) {
  AcquireCtx* c = CtxObj(info);
  if (c->ctx.acquired != 0)
    throw ErrnoError(info.Env(), -EBUSY, "ww_acquire_fini", "the context still holds locks: unlock them first");
  if (!c->finished) ww_acquire_fini(&c->ctx);
  c->finished = true;
  return info.Env().Undefined();
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
  auto* r = new SharedResv;
  dma_buf_get(buf);
  r->resv = dma_buf_resv(buf);
  r->buf = buf;
  auto* ref = new (std::nothrow) ResvRef{r};
  if (!ref) {
    resv_put(r);
    throw ErrnoError(env, -ENOMEM, "dma_buf_resv", "out of memory");
  }
  return ResvHolder::Wrap(env, ref);
}

void RegisterResv(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
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
  });
}

}  // namespace dmabuf::addon
