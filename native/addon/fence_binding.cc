// Fence and FenceLock bindings: flat functions over handles. The TypeScript
// layer validates every argument; these only convert and call the core.
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "bindings.h"
#include "env_state.h"
#include "fence.h"
#include "handles.h"
#include "monotonic.h"

namespace dmabuf::addon {
namespace {

// --- fences created from JS ---------------------------------------------------

const char* js_driver_name(Fence*) { return "dmabuf"; }
const char* js_timeline_name(Fence*) { return "js"; }
// Inline-lock fences: names only, so they detach at signal like the kernel's.
const FenceOps kJsOps = {js_driver_name, js_timeline_name};

// A FenceLock shared by fences: it must outlive the last of them, so each
// fence on it holds a reference, dropped after its grace period.
struct SharedLock {
  SpinLock lock;
  std::atomic<uint32_t> refs{1};
};
void lock_put(SharedLock* l) {
  if (l->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete l;
}

struct LockedJsFence {
  Fence base;
  SharedLock* owner;
};
void free_locked_fences(rcu::DeferredFree* n) {
  while (n) {
    rcu::DeferredFree* next = n->next;
    auto* lf = reinterpret_cast<LockedJsFence*>(container_of(n, &Fence::rcu));
    lock_put(lf->owner);
    std::free(lf);
    n = next;
  }
}
// External-lock fences need `release` to drop their lock reference, which
// (exactly as in the kernel) keeps their ops attached after signalling.
void locked_release(Fence* f) { rcu::defer_free(&f->rcu, free_locked_fences); }
const FenceOps kJsLockedOps = {js_driver_name, js_timeline_name, nullptr, nullptr,
                               nullptr,        locked_release};

using LockHolder = Holder<SharedLock, lock_put, 0x4c4f434b>;  // "LOCK"

Fence* FenceArg(const Napi::CallbackInfo& info, size_t i) {
  Fence* f = FenceFromHandle(info[i]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  return f;
}

Napi::Value BigU64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// Handles exported for another thread: only these may be imported, once each.
std::mutex g_export_mu;
std::unordered_map<Fence*, uint32_t> g_exported;

// --- functions -----------------------------------------------------------------

// fenceCreate(context: bigint, seqno: bigint, seqno64: boolean, lock?: handle)
Napi::Value FenceCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ok = true;
  uint64_t ctx = info.Length() > 0 && info[0].IsBigInt() ? BigIntU64(info[0], &ok) : 0;
  uint64_t seqno = info.Length() > 1 && info[1].IsBigInt() ? BigIntU64(info[1], &ok)
                   : info.Length() > 1 && info[1].IsNumber()
                       ? static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value())
                       : 0;
  const bool seqno64 = info.Length() > 2 && info[2].ToBoolean();
  SharedLock* lock = info.Length() > 3 && !info[3].IsUndefined() ? LockHolder::From(info[3]) : nullptr;
  if (!ok) throw Napi::RangeError::New(env, "dmabuf: value out of the u64 range");
  if (info.Length() > 3 && !info[3].IsUndefined() && !lock) throw BadHandle(env, "FenceLock");
  Fence* f;
  if (lock) {
    auto* lf = static_cast<LockedJsFence*>(std::calloc(1, sizeof(LockedJsFence)));
    if (!lf) throw Napi::Error::New(env, "dmabuf: out of memory");
    lock->refs.fetch_add(1, std::memory_order_relaxed);
    lf->owner = lock;
    f = &lf->base;
    (seqno64 ? fence_init64 : fence_init)(f, &kJsLockedOps, &lock->lock, ctx, seqno);
  } else {
    f = fence_alloc();
    if (!f) throw Napi::Error::New(env, "dmabuf: out of memory");
    (seqno64 ? fence_init64 : fence_init)(f, &kJsOps, nullptr, ctx, seqno);
  }
  return WrapFence(env, f);
}

// fenceCreateMany(slots: Float64Array): fills every slot with a new default
// fence (context 0, seqno 0, inline lock), so `new Fence()` needs no native call.
Napi::Value FenceCreateMany(const Napi::CallbackInfo& info) {
  Napi::Float64Array slots = info[0].As<Napi::Float64Array>();
  for (size_t i = 0; i < slots.ElementLength(); ++i) {
    Fence* f = fence_alloc();
    if (!f) throw Napi::Error::New(info.Env(), "dmabuf: out of memory");
    fence_init(f, &kJsOps, nullptr, 0, 0);
    slots[i] = PtrToDouble(f);
  }
  return info.Env().Undefined();
}

// fencePutMany(slots: Float64Array, n): drops the references in slots[0..n) and
// zeroes them (dispose() batches its puts here).
Napi::Value FencePutMany(const Napi::CallbackInfo& info) {
  Napi::Float64Array slots = info[0].As<Napi::Float64Array>();
  const size_t n = std::min<size_t>(info[1].As<Napi::Number>().Uint32Value(), slots.ElementLength());
  for (size_t i = 0; i < n; ++i) {
    if (Fence* f = DoubleToPtr<Fence>(slots[i])) fence_put(f);
    slots[i] = 0;
  }
  return info.Env().Undefined();
}

Napi::Value FenceContext(const Napi::CallbackInfo& info) {
  return BigU64(info.Env(), FenceArg(info, 0)->context);
}
Napi::Value FenceSeqno(const Napi::CallbackInfo& info) {
  return BigU64(info.Env(), FenceArg(info, 0)->seqno);
}
Napi::Value FenceFlags(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(),
                           static_cast<double>(FenceArg(info, 0)->flags.load(std::memory_order_acquire)));
}
Napi::Value FenceIsSignaled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fence_is_signaled(FenceArg(info, 0)));
}
Napi::Value FenceStatus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fence_get_status(FenceArg(info, 0)));
}
Napi::Value FenceError(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  return Napi::Number::New(info.Env(), __atomic_load_n(&f->error, __ATOMIC_RELAXED));
}
Napi::Value FenceTimestamp(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  if (!fence_test_signaled_flag(f)) return info.Env().Null();
  return Napi::BigInt::New(info.Env(), static_cast<int64_t>(fence_timestamp(f)));
}
Napi::Value FenceDriverName(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  rcu::ReadGuard rcu;  // the string is valid only inside the read section
  return Napi::String::New(info.Env(), fence_driver_name(f));
}
Napi::Value FenceTimelineName(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  rcu::ReadGuard rcu;
  return Napi::String::New(info.Env(), fence_timeline_name(f));
}
Napi::Value FenceOpsDetached(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), rcu::dereference(FenceArg(info, 0)->ops) == nullptr);
}
// The hottest calls use the Node-API C interface directly: no CallbackInfo, no
// wrapper objects, one napi call to read the argument.
Fence* RawFenceArg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  double d;
  if (napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr) != napi_ok || argc < 1 ||
      napi_get_value_double(env, arg, &d) != napi_ok)
    return nullptr;
  return DoubleToPtr<Fence>(d);
}
napi_value RawThrowBadHandle(napi_env env) {
  napi_throw_error(env, "EBADF", "dmabuf: invalid or disposed fence handle");
  return nullptr;
}

// fenceSignal(h)
napi_value FenceSignal(napi_env env, napi_callback_info info) {
  Fence* f = RawFenceArg(env, info);
  if (!f) return RawThrowBadHandle(env);
  fence_signal(f);
  return nullptr;
}
// fenceSignaled(h): the flag only
napi_value FenceSignaled(napi_env env, napi_callback_info info) {
  Fence* f = RawFenceArg(env, info);
  if (!f) return RawThrowBadHandle(env);
  napi_value r;
  napi_get_boolean(env, fence_test_signaled_flag(f), &r);
  return r;
}
// fenceSignalAt(h, timestampNs: bigint)
Napi::Value FenceSignalAt(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  bool lossless;
  fence_signal_timestamp(f, info[1].As<Napi::BigInt>().Int64Value(&lossless));
  return info.Env().Undefined();
}
Napi::Value FenceCheckAndSignal(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fence_check_and_signal(FenceArg(info, 0)));
}
// fenceSetError(h, err): 0, or -EBUSY if already signalled (nothing stored).
Napi::Value FenceSetError(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  const int err = info[1].As<Napi::Number>().Int32Value();
  SpinGuard g(fence_spinlock(f));
  if (fence_test_signaled_flag(f)) return Napi::Number::New(info.Env(), -EBUSY);
  fence_set_error(f, err);
  return Napi::Number::New(info.Env(), 0);
}
Napi::Value FenceEnableSignaling(const Napi::CallbackInfo& info) {
  fence_enable_sw_signaling(FenceArg(info, 0));
  return info.Env().Undefined();
}
// fenceAddCallback(h, id) -> token handle, or a negative errno number
Napi::Value FenceAddCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fence* f = FenceArg(info, 0);
  EnvState* s = EnvState::Get(env);
  JsCallback* token = nullptr;
  int r = s->Add(f, info[1].As<Napi::Number>().Uint32Value(), &token);
  if (r != 0) return Napi::Number::New(env, r);
  return Napi::External<JsCallback>::New(env, token);
}
// fenceRemoveCallback(h, token) -> true if removed before it ran
Napi::Value FenceRemoveCallback(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  JsCallback* cb = info[1].IsExternal() ? info[1].As<Napi::External<JsCallback>>().Data() : nullptr;
  if (!cb || cb->magic != JsCallback::kMagic) throw BadHandle(info.Env(), "callback token");
  return Napi::Boolean::New(info.Env(), EnvState::Get(info.Env())->Remove(f, cb));
}
// fenceWaitSync(h, timeoutNs: number, -1 = forever) -> remaining ns (>=1), 0, <0
Napi::Value FenceWaitSync(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  const double t = info[1].As<Napi::Number>().DoubleValue();
  const int64_t timeout = t < 0 ? kMaxScheduleTimeout : static_cast<int64_t>(t);
  return Napi::Number::New(info.Env(), static_cast<double>(fence_wait_timeout(f, true, timeout)));
}
// fenceWaitAnySync(handles[], timeoutNs) -> [ret, idx]
Napi::Value FenceWaitAnySync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<Fence*> fences(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    fences[i] = FenceFromHandle(arr.Get(i));
    if (!fences[i]) throw BadHandle(env, "fence handle");
  }
  const double t = info[1].As<Napi::Number>().DoubleValue();
  const int64_t timeout = t < 0 ? kMaxScheduleTimeout : static_cast<int64_t>(t);
  uint32_t idx = 0;
  long r = fence_wait_any_timeout(fences.data(), static_cast<uint32_t>(fences.size()), true,
                                  timeout, &idx);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(r)));
  out.Set(1u, Napi::Number::New(env, r > 0 ? static_cast<double>(idx) : -1));
  return out;
}
Napi::Value FenceSetDeadline(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  bool lossless;
  fence_set_deadline(f, info[1].As<Napi::BigInt>().Int64Value(&lossless));
  return info.Env().Undefined();
}
Napi::Value FenceDescribe(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fence_describe(FenceArg(info, 0)));
}
// fenceIsLater(a, b): caller guarantees equal contexts.
Napi::Value FenceIsLater(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fence_is_later(FenceArg(info, 0), FenceArg(info, 1)));
}
// fenceLater(a, b) -> 0 (a), 1 (b) or -1 (the later one is signalled)
Napi::Value FenceLater(const Napi::CallbackInfo& info) {
  Fence* a = FenceArg(info, 0);
  Fence* b = FenceArg(info, 1);
  Fence* l = fence_later(a, b);
  return Napi::Number::New(info.Env(), l == a ? 0 : l == b ? 1 : -1);
}
Napi::Value FenceStub(const Napi::CallbackInfo& info) {
  return WrapFence(info.Env(), fence_get_stub());
}
Napi::Value FencePrivateStub(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t ts;
  if (info.Length() > 0 && info[0].IsBigInt()) {
    bool lossless;
    ts = info[0].As<Napi::BigInt>().Int64Value(&lossless);
  } else {
    ts = monotonic_ns();
  }
  Fence* f = fence_allocate_private_stub(ts);
  if (!f) throw Napi::Error::New(env, "dmabuf: out of memory");
  return WrapFence(env, f);
}
Napi::Value FenceAllocContext(const Napi::CallbackInfo& info) {
  return BigU64(info.Env(), fence_context_alloc(info[0].As<Napi::Number>().Uint32Value()));
}
// fenceExportHandle(h) -> bigint: a new reference another thread can adopt.
Napi::Value FenceExportHandle(const Napi::CallbackInfo& info) {
  Fence* f = fence_get(FenceArg(info, 0));
  {
    std::lock_guard<std::mutex> g(g_export_mu);
    ++g_exported[f];
  }
  return BigU64(info.Env(), reinterpret_cast<uintptr_t>(f));
}
// fenceImportHandle(bigint) -> handle, or undefined if it was never exported
// (or every export of it was already imported).
Napi::Value FenceImportHandle(const Napi::CallbackInfo& info) {
  bool ok = true;
  auto* f = reinterpret_cast<Fence*>(static_cast<uintptr_t>(BigIntU64(info[0], &ok)));
  if (!ok) return info.Env().Undefined();
  {
    std::lock_guard<std::mutex> g(g_export_mu);
    auto it = g_exported.find(f);
    if (it == g_exported.end()) return info.Env().Undefined();
    if (--it->second == 0) g_exported.erase(it);
  }
  return WrapFence(info.Env(), f);
}
// fenceRefcount(h): the native reference count (tests check finalizers with it).
Napi::Value FenceRefcount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), FenceArg(info, 0)->refcount.load(std::memory_order_relaxed));
}
// fenceSame(a, b): whether two handles refer to the same native fence.
Napi::Value FenceSame(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), FenceArg(info, 0) == FenceArg(info, 1));
}

Napi::Value LockCreate(const Napi::CallbackInfo& info) {
  return LockHolder::Wrap(info.Env(), new SharedLock);
}
Napi::Value LockDispose(const Napi::CallbackInfo& info) {
  LockHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

Fence* FenceFromHandle(const Napi::Value& v) {
  return v.IsNumber() ? DoubleToPtr<Fence>(v.As<Napi::Number>().DoubleValue()) : nullptr;
}
Napi::Value WrapFence(Napi::Env env, Fence* adopted) {
  return Napi::Number::New(env, PtrToDouble(adopted));
}

void RegisterFence(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"fenceCreate", FenceCreate},
      {"fenceCreateMany", FenceCreateMany},
      {"fencePutMany", FencePutMany},
      {"fenceContext", FenceContext},
      {"fenceSeqno", FenceSeqno},
      {"fenceFlags", FenceFlags},
      {"fenceIsSignaled", FenceIsSignaled},
      {"fenceStatus", FenceStatus},
      {"fenceError", FenceError},
      {"fenceTimestamp", FenceTimestamp},
      {"fenceDriverName", FenceDriverName},
      {"fenceTimelineName", FenceTimelineName},
      {"fenceOpsDetached", FenceOpsDetached},
      {"fenceSignalAt", FenceSignalAt},
      {"fenceCheckAndSignal", FenceCheckAndSignal},
      {"fenceSetError", FenceSetError},
      {"fenceEnableSignaling", FenceEnableSignaling},
      {"fenceAddCallback", FenceAddCallback},
      {"fenceRemoveCallback", FenceRemoveCallback},
      {"fenceWaitSync", FenceWaitSync},
      {"fenceWaitAnySync", FenceWaitAnySync},
      {"fenceSetDeadline", FenceSetDeadline},
      {"fenceDescribe", FenceDescribe},
      {"fenceIsLater", FenceIsLater},
      {"fenceLater", FenceLater},
      {"fenceStub", FenceStub},
      {"fencePrivateStub", FencePrivateStub},
      {"fenceAllocContext", FenceAllocContext},
      {"fenceExportHandle", FenceExportHandle},
      {"fenceImportHandle", FenceImportHandle},
      {"fenceSame", FenceSame},
      {"fenceRefcount", FenceRefcount},
      {"lockCreate", LockCreate},
      {"lockDispose", LockDispose},
  };
  for (auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  const std::pair<const char*, napi_callback> raw[] = {
      {"fenceSignal", FenceSignal},
      {"fenceSignaled", FenceSignaled},
  };
  for (auto& [name, fn] : raw) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    exports.Set(name, Napi::Value(env, f));
  }
}

}  // namespace dmabuf::addon
