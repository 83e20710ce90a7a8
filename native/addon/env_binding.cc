// Environment-wide functions: callback dispatch setup, loop keep-alive, and
// diagnostics (warnings, deferred frees) used by tests.
#include <cerrno>

#include "bindings.h"
#include "env_state.h"
#include "handles.h"
#include "rcu.h"
#include "warn.h"

namespace dmabuf::addon {

uint64_t BigIntU64(const Napi::Value& v, bool* ok) {
  bool lossless = false;
  uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) *ok = false;
  return r;
}

namespace {

// The cleanup hook owns EnvState; instance data only points at it.
void KeepEnvState(Napi::Env, EnvState*) {}

// envInit(dispatch: (ids: number[]) => void, pending: Uint8Array)
Napi::Value EnvInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (env.GetInstanceData<EnvState>()) throw Napi::Error::New(env, "dmabuf: envInit called twice");
  EnvState* s = EnvState::Create(env, info[0].As<Napi::Function>(), info[1].As<Napi::Uint8Array>());
  env.SetInstanceData<EnvState, KeepEnvState>(s);
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

Napi::Value BlockRegister(const Napi::CallbackInfo& info) {
  Napi::Float64Array a = info[0].As<Napi::Float64Array>();
  EnvState::Get(info.Env())->RegisterBlock(a.Data(), a.ElementLength());
  return info.Env().Undefined();
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

EnvState* EnvState::Get(Napi::Env env) {
  EnvState* s = env.GetInstanceData<EnvState>();
  if (!s) throw Napi::Error::New(env, "dmabuf: envInit() has not run in this environment");
  return s;
}

void RegisterEnv(Napi::Env env, Napi::Object exports) {
  exports.Set("envInit", Napi::Function::New(env, EnvInit, "envInit"));
  exports.Set("envDrain", Napi::Function::New(env, EnvDrain, "envDrain"));
  exports.Set("envKeepAlive", Napi::Function::New(env, EnvKeepAlive, "envKeepAlive"));
  exports.Set("blockRegister", Napi::Function::New(env, BlockRegister, "blockRegister"));
  exports.Set("warnCount", Napi::Function::New(env, WarnCount, "warnCount"));
  exports.Set("rcuBarrier", Napi::Function::New(env, RcuBarrier, "rcuBarrier"));
  exports.Set("deferredPending", Napi::Function::New(env, DeferredPending, "deferredPending"));
}

}  // namespace dmabuf::addon
