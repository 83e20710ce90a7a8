// Environment-wide functions: callback dispatch setup, loop keep-alive, and
// diagnostics (warnings, deferred frees) used by tests.
#include <algorithm>
#include <cerrno>
#include <string>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/env_state.h"
#include "addon/handles.h"
#include "addon/sync_file_obj.h"
#include "core/base/rcu.h"
#include "core/base/warn.h"

namespace dmabuf::addon {

uint64_t BigIntU64(const Napi::Value& v, bool* ok) {
  if (!v.IsBigInt()) {
    *ok = false;
    return 0;
  }
  bool lossless = false;
  uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) *ok = false;
  return r;
}

namespace {

// envInit(dispatch: (ids: number[]) => void, pending: Uint8Array, DmaBufError), once.
Napi::Value EnvInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* s = EnvState::Get(env);
  if (s->HasDispatcher()) throw Napi::Error::New(env, "dmabuf: envInit called twice");
  if (!info[0].IsFunction() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[1].As<Napi::Uint8Array>().ElementLength() < 1 || !info[2].IsFunction())
    throw Napi::TypeError::New(env, "dmabuf: envInit(dispatch, Uint8Array, DmaBufError)");
  s->SetDispatcher(info[0].As<Napi::Function>(), info[1].As<Napi::Uint8Array>(),
                   info[2].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value EnvDrain(const Napi::CallbackInfo& info) {
  EnvState::Get(info.Env())->Drain(info.Env());
  return info.Env().Undefined();
}

Napi::Value EnvKeepAlive(const Napi::CallbackInfo& info) {
  EnvState::Get(info.Env())->KeepLoopAlive(info[0].ToBoolean());
  return info.Env().Undefined();
}

// liveFences(): fence references this environment's JS holds (tests).
Napi::Value LiveFences(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(EnvState::Get(info.Env())->LiveFences()));
}

// spareFences(): unpublished default fences this environment keeps for reuse (tests).
Napi::Value SpareFences(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(EnvState::Get(info.Env())->SpareFences()));
}

// diagFailCallbackAlloc(nth, times): the nth next fence-callback registration
// (and `times` after it) fails with ENOMEM; (0, 0) disarms.
Napi::Value DiagFailCallbackAlloc(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw BadArg(info.Env(), "diagFailCallbackAlloc(nth, times)");
  FaultSpec spec;
  spec.nth = static_cast<uint64_t>(std::max(0.0, info[0].As<Napi::Number>().DoubleValue()));
  spec.times = static_cast<uint64_t>(std::max(0.0, info[1].As<Napi::Number>().DoubleValue()));
  EnvState::CallbackAllocFault().configure(spec);
  return info.Env().Undefined();
}

// diagWrapFd(kind, fd): a kernel-backend 'sync_file' or 'dma_buf' handle over a
// dup of any fd, unchecked: tests of the backend rules (mixed backends, what
// kernel objects refuse) on machines without the kernel's devices. Ioctls on
// it answer as that fd does (ENOTTY for /dev/null).
Napi::Value DiagWrapFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string kind = StrArg(info, 0);
  if (!info[1].IsNumber()) throw BadArg(env, "diagWrapFd(kind, fd)");
  if (kind != "sync_file" && kind != "dma_buf") throw BadArg(env, "diagWrapFd kind: 'sync_file' or 'dma_buf'");
  auto d = kernel::dup_fd(info[1].As<Napi::Number>().Int32Value());
  if (!d) throw KernelError(env, d.error());
  if (kind == "sync_file") return WrapKernelSyncFile(env, std::move(*d));
  return WrapKernelDmaBuf(env, d->release());
}

Napi::Value WarnCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(warn_count()));
}

// rcuBarrier(): waits until every deferred free queued so far has run.
Napi::Value RcuBarrier(const Napi::CallbackInfo& info) {
  rcu::barrier();
  return info.Env().Undefined();
}

Napi::Value DeferredPending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(rcu::deferred_pending()));
}

}  // namespace

void RegisterEnv(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"envInit", EnvInit},
      {"envDrain", EnvDrain},
      {"envKeepAlive", EnvKeepAlive},
      {"liveFences", LiveFences},
      {"spareFences", SpareFences},
      {"diagFailCallbackAlloc", DiagFailCallbackAlloc},
      {"diagWrapFd", DiagWrapFd},
      {"warnCount", WarnCount},
      {"rcuBarrier", RcuBarrier},
      {"deferredPending", DeferredPending},
  });
}

}  // namespace dmabuf::addon
