// Fence and FenceLock bindings: flat functions over handles. The TypeScript
// layer validates every argument; these only convert and call the core.
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/fence/array.h"
#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "core/fence/chain.h"
#include "addon/env_state.h"
#include "addon/export_registry.h"
#include "core/fence/fence.h"
#include "addon/handles.h"
#include "core/fence/user_fence.h"
#include "core/base/monotonic.h"

namespace dmabuf::addon {
namespace {

void lock_put(FenceLock* l) { fence_lock_put(l); }
using LockHolder = Holder<FenceLock, lock_put, 0x4c4f434b>;  // "LOCK"

Fence* FenceArg(const Napi::CallbackInfo& info, size_t i) {
  Fence* f = FenceFromHandle(info[i]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  return f;
}
// For calls that use the fence only while they run (read it, signal it, set
// its error) and neither keep the pointer nor hand it to code that could: an
// unpublished default fence stays reusable (EnvState::PeekFence).
Fence* PeekFenceArg(const Napi::CallbackInfo& info, size_t i) {
  EnvState* s = info[i].IsNumber() ? info.Env().GetInstanceData<EnvState>() : nullptr;
  Fence* f = s ? s->PeekFence(info[i].As<Napi::Number>().DoubleValue()) : nullptr;
  if (!f) throw BadHandle(info.Env(), "fence handle");
  return f;
}

Napi::Value BigU64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }

// Fence references parked for another thread (exportHandle / importHandle).
ExportRegistry<Fence, fence_put> g_exports;

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
  FenceLock* lock = info.Length() > 3 && !info[3].IsUndefined() ? LockHolder::From(info[3]) : nullptr;
  if (!ok) throw Napi::RangeError::New(env, "dmabuf: value out of the u64 range");
  if (info.Length() > 3 && !info[3].IsUndefined() && !lock) throw BadHandle(env, "FenceLock");
  EnvState* s = EnvState::Get(env);
  Fence* f = user_fence_create(lock, ctx, seqno, seqno64);
  if (!f) throw ErrnoError(env, -ENOMEM, "dma_fence_init", "out of memory");
  const double token = s->AdoptFence(f);
  if (token == 0) throw ErrnoError(env, -ENOMEM, "dma_fence_init", "too many fences held by this environment");
  return Napi::Number::New(env, token);
}

Napi::Float64Array SlotsArg(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw BadArg(info.Env(), "expected a Float64Array of fence tokens");
  return info[0].As<Napi::Float64Array>();
}

// fenceCreateMany(slots: Float64Array): fills every slot with the token of a
// new default fence (context 0, seqno 0, inline lock), so `new Fence()` needs
// no native call.
Napi::Value FenceCreateMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Float64Array slots = SlotsArg(info);
  EnvState* s = EnvState::Get(env);
  for (size_t i = 0; i < slots.ElementLength(); ++i) {
    const double token = s->CreateDefaultFence();
    if (token < 0) throw ErrnoError(env, -ENOMEM, "dma_fence_init", "out of memory");
    if (token == 0) throw ErrnoError(env, -ENOMEM, "dma_fence_init", "too many fences held by this environment");
    slots[i] = token;
  }
  return env.Undefined();
}

// fencePutMany(slots: Float64Array, n): drops the references behind the tokens
// in slots[0..n) and zeroes them (dispose() batches its puts here). Tokens that
// are not live are skipped.
Napi::Value FencePutMany(const Napi::CallbackInfo& info) {
  Napi::Float64Array slots = SlotsArg(info);
  if (!info[1].IsNumber()) throw BadArg(info.Env(), "fencePutMany(slots, count)");
  const double want = info[1].As<Napi::Number>().DoubleValue();
  const size_t n = want > 0 ? std::min<size_t>(static_cast<size_t>(std::min(want, 1e9)), slots.ElementLength()) : 0;
  EnvState* s = EnvState::Get(info.Env());
  for (size_t i = 0; i < n; ++i) {
    s->PutFence(slots[i]);
    slots[i] = 0;
  }
  return info.Env().Undefined();
}

Napi::Value FenceContext(const Napi::CallbackInfo& info) {
  return BigU64(info.Env(), PeekFenceArg(info, 0)->context);
}
Napi::Value FenceSeqno(const Napi::CallbackInfo& info) {
  return BigU64(info.Env(), PeekFenceArg(info, 0)->seqno);
}
Napi::Value FenceFlags(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(),
                           static_cast<double>(PeekFenceArg(info, 0)->flags.load(std::memory_order_acquire)));
}
Napi::Value FenceIsSignaled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fence_is_signaled(PeekFenceArg(info, 0)));
}
Napi::Value FenceStatus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fence_get_status(PeekFenceArg(info, 0)));
}
Napi::Value FenceError(const Napi::CallbackInfo& info) {
  Fence* f = PeekFenceArg(info, 0);
  return Napi::Number::New(info.Env(), __atomic_load_n(&f->error, __ATOMIC_RELAXED));
}
Napi::Value FenceTimestamp(const Napi::CallbackInfo& info) {
  Fence* f = PeekFenceArg(info, 0);
  if (!fence_test_signaled_flag(f)) return info.Env().Null();
  return Napi::BigInt::New(info.Env(), static_cast<int64_t>(fence_timestamp(f)));
}
Napi::Value FenceDriverName(const Napi::CallbackInfo& info) {
  Fence* f = PeekFenceArg(info, 0);
  rcu::ReadGuard rcu;  // the string is valid only inside the read section
  return Napi::String::New(info.Env(), fence_driver_name(f));
}
Napi::Value FenceTimelineName(const Napi::CallbackInfo& info) {
  Fence* f = PeekFenceArg(info, 0);
  rcu::ReadGuard rcu;
  return Napi::String::New(info.Env(), fence_timeline_name(f));
}
Napi::Value FenceOpsDetached(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), rcu::dereference(PeekFenceArg(info, 0)->ops) == nullptr);
}
// The hottest calls use the Node-API C interface directly: no CallbackInfo, no
// wrapper objects, one napi call to read the argument. Their function data is
// the environment's EnvState (set at registration).
// Signal and the signalled flag keep nothing: an unpublished fence stays so.
Fence* RawFenceArg(napi_env env, napi_callback_info info, bool* unpublished = nullptr) {
  size_t argc = 1;
  napi_value arg;
  void* data = nullptr;
  double d;
  if (napi_get_cb_info(env, info, &argc, &arg, nullptr, &data) != napi_ok || argc < 1 || !data ||
      napi_get_value_double(env, arg, &d) != napi_ok)
    return nullptr;
  return static_cast<EnvState*>(data)->PeekFence(d, unpublished);
}
napi_value RawThrowBadHandle(napi_env env) {
  BadHandle(Napi::Env(env), "fence handle").ThrowAsJavaScriptException();
  return nullptr;
}

// fenceSignal(h)
napi_value FenceSignal(napi_env env, napi_callback_info info) {
  bool unpublished = false;
  Fence* f = RawFenceArg(env, info, &unpublished);
  if (!f) return RawThrowBadHandle(env);
  if (unpublished)
    fence_signal_unpublished(f);  // nobody else can see it: no lock needed
  else
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
  Fence* f = PeekFenceArg(info, 0);
  fence_signal_timestamp(f, I64Arg(info, 1));
  return info.Env().Undefined();
}
Napi::Value FenceCheckAndSignal(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), fence_check_and_signal(PeekFenceArg(info, 0)));
}
// fenceSetError(h, err): 0, or -EBUSY if already signalled (nothing stored).
Napi::Value FenceSetError(const Napi::CallbackInfo& info) {
  Fence* f = PeekFenceArg(info, 0);
  const double e = NumArg(info, 1);
  if (!(e <= -1 && e >= -4095)) throw Napi::RangeError::New(info.Env(), "dmabuf: error must be -4095..-1");
  if (fence_set_error_unless_signaled(f, static_cast<int>(e)) == -EBUSY)
    throw ErrnoError(info.Env(), -EBUSY, "dma_fence_set_error", "cannot set the error of a signalled fence");
  return info.Env().Undefined();
}
Napi::Value FenceEnableSignaling(const Napi::CallbackInfo& info) {
  fence_enable_sw_signaling(FenceArg(info, 0));
  return info.Env().Undefined();
}
// fenceAddCallback(h, id) -> callback token (> 0), or 0 if already signalled
// (dma_fence_add_callback's -ENOENT). Throws ENOMEM.
Napi::Value FenceAddCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fence* f = FenceArg(info, 0);
  const double id = NumArg(info, 1);
  if (!(id >= 1 && id <= 4294967295.0)) throw Napi::RangeError::New(env, "dmabuf: bad callback id");
  double token = 0;
  const int r = EnvState::Get(env)->Add(f, static_cast<uint32_t>(id), &token);
  if (r == -ENOENT) return Napi::Number::New(env, 0);
  if (r != 0) throw ErrnoError(env, r, "dma_fence_add_callback", "cannot register a callback");
  return Napi::Number::New(env, token);
}
// fenceRemoveCallback(h, token) -> true if removed before it ran
Napi::Value FenceRemoveCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fence* f = FenceArg(info, 0);
  const int r = EnvState::Get(env)->Remove(f, NumArg(info, 1));
  if (r < 0) throw ErrnoError(env, r, "dma_fence_remove_callback", "the callback belongs to another fence");
  return Napi::Boolean::New(env, r == 1);
}

// fenceWaitSync(h, timeoutNs: number, -1 = forever) -> remaining ns (>=1) or 0 (timed out)
Napi::Value FenceWaitSync(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  const double t = NumArg(info, 1);
  // No JS runs while waiting, so the JS reference keeps `f` alive throughout.
  const long r = InterruptibleWait(t, [&](int64_t slice) { return fence_wait_timeout(f, true, slice); });
  if (r < 0) throw SleepError(info.Env(), r, "dma_fence_wait_timeout");
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}
// fenceWaitAnySync(handles[], timeoutNs) -> [ret, idx]
Napi::Value FenceWaitAnySync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Fence*> fences = FenceListArg(info, 0);
  const double t = NumArg(info, 1);
  uint32_t idx = 0;
  const long r = InterruptibleWait(t, [&](int64_t slice) {
    return fence_wait_any_timeout(fences.data(), static_cast<uint32_t>(fences.size()), true, slice, &idx);
  });
  if (r < 0) throw SleepError(env, r, "dma_fence_wait_any_timeout");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(r)));
  out.Set(1u, Napi::Number::New(env, r > 0 ? static_cast<double>(idx) : -1));
  return out;
}
Napi::Value FenceSetDeadline(const Napi::CallbackInfo& info) {
  Fence* f = FenceArg(info, 0);
  fence_set_deadline(f, I64Arg(info, 1));
  return info.Env().Undefined();
}
Napi::Value FenceDescribe(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fence_describe(PeekFenceArg(info, 0)));
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
    ts = I64Arg(info, 0);
  } else {
    ts = monotonic_ns();
  }
  Fence* f = fence_allocate_private_stub(ts);
  if (!f) throw ErrnoError(env, -ENOMEM, "dma_fence_allocate_private_stub", "out of memory");
  return WrapFence(env, f);
}
Napi::Value FenceAllocContext(const Napi::CallbackInfo& info) {
  const double n = NumArg(info, 0);
  if (!(n >= 1 && n <= 4294967295.0)) throw Napi::RangeError::New(info.Env(), "dmabuf: bad context count");
  return BigU64(info.Env(), fence_context_alloc(static_cast<uint32_t>(n)));
}
// fenceExportHandle(h) -> bigint: a new reference another thread can adopt.
Napi::Value FenceExportHandle(const Napi::CallbackInfo& info) {
  Fence* f = fence_get(FenceArg(info, 0));
  return BigU64(info.Env(), g_exports.Export(f, EnvState::Get(info.Env())));
}
bool IsArrayFence(Fence* f) { return fence_is_array(f); }
bool IsChainFence(Fence* f) { return fence_is_chain(f); }
// fenceImportHandle(id: bigint, kind: 0 any, 1 array, 2 chain) -> token; EINVAL
// if it was never exported (or already imported, or expired), or is not of that
// kind (then it stays importable).
Napi::Value FenceImportHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ok = true;
  if (!info[0].IsBigInt()) throw BadArg(env, "expected a bigint handle");
  const uint64_t id = BigIntU64(info[0], &ok);
  const double kind = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  Fence* f = nullptr;
  auto r = ok ? g_exports.Import(id, &f, kind == 1 ? IsArrayFence : kind == 2 ? IsChainFence : nullptr)
              : decltype(g_exports)::Result::kUnknown;
  if (r == decltype(g_exports)::Result::kRefused)
    throw ErrnoError(env, -EINVAL, nullptr,
                     std::string("the handle is not ") + (kind == 1 ? "a fence array" : "a chain node") +
                         " (it stays importable)");
  if (r != decltype(g_exports)::Result::kOk)
    throw ErrnoError(env, -EINVAL, nullptr, "unknown fence handle (never exported, already imported, or expired)");
  return WrapFence(env, f);
}
// fenceRefcount(h): the native reference count (tests check finalizers with it).
Napi::Value FenceRefcount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), PeekFenceArg(info, 0)->refcount.load(std::memory_order_relaxed));
}
// fenceSame(a, b): whether two handles refer to the same native fence.
Napi::Value FenceSame(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), PeekFenceArg(info, 0) == PeekFenceArg(info, 1));
}

Napi::Value LockCreate(const Napi::CallbackInfo& info) {
  FenceLock* l = fence_lock_create();
  if (!l) throw ErrnoError(info.Env(), -ENOMEM, nullptr, "out of memory");
  return LockHolder::Wrap(info.Env(), l);
}
Napi::Value LockDispose(const Napi::CallbackInfo& info) {
  LockHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

Fence* FenceFromHandle(const Napi::Value& v) {
  if (!v.IsNumber()) return nullptr;
  EnvState* s = v.Env().GetInstanceData<EnvState>();
  return s ? s->FenceOf(v.As<Napi::Number>().DoubleValue()) : nullptr;
}
Napi::Value WrapFence(Napi::Env env, Fence* adopted) {
  const double token = EnvState::Get(env)->AdoptFence(adopted);
  if (token == 0) throw ErrnoError(env, -ENOMEM, nullptr, "too many fences held by this environment");
  return Napi::Number::New(env, token);
}
Napi::Array WrapFenceList(Napi::Env env, const std::vector<Fence*>& adopted) {
  size_t ours = 0;  // adopted[ours..] are still this function's to drop
  try {
    Napi::Array out = Napi::Array::New(env, adopted.size());
    for (size_t k = 0; k < adopted.size(); ++k) {
      ours = k + 1;  // WrapFence takes adopted[k], even when it throws
      out.Set(static_cast<uint32_t>(k), WrapFence(env, adopted[k]));
    }
    return out;
  } catch (...) {
    for (size_t k = ours; k < adopted.size(); ++k) fence_put(adopted[k]);
    throw;
  }
}
std::vector<Fence*> FenceListArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsArray()) throw BadArg(env, "expected an array of fence handles");
  Napi::Array arr = info[i].As<Napi::Array>();
  // Read every element first (a getter could run JS), then resolve them all
  // with no JS in between, so no reference can be dropped under us.
  std::vector<double> tokens(arr.Length());
  for (uint32_t k = 0; k < tokens.size(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw BadHandle(env, "fence handle");
    tokens[k] = v.As<Napi::Number>().DoubleValue();
  }
  EnvState* s = EnvState::Get(env);
  std::vector<Fence*> out(tokens.size());
  for (size_t k = 0; k < tokens.size(); ++k) {
    out[k] = s->FenceOf(tokens[k]);
    if (!out[k]) throw BadHandle(env, "fence handle");
  }
  return out;
}

void RegisterFence(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
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
  });
  const std::pair<const char*, napi_callback> raw[] = {
      {"fenceSignal", FenceSignal},
      {"fenceSignaled", FenceSignaled},
  };
  EnvState* s = EnvState::Get(env);
  for (auto& [name, fn] : raw) {
    napi_value f;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, s, &f) != napi_ok)
      throw Napi::Error::New(env, "dmabuf: cannot create a function");
    exports.Set(name, Napi::Value(env, f));
  }
}

}  // namespace dmabuf::addon
