// JS handles to native objects: an External whose data is a small holder with
// one reference. dispose() drops the reference early; the finalizer is the
// backstop. Native code never trusts a handle without checking it.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace dmabuf::addon {

// `Magic` tags the holder so a handle of one kind passed where another is
// expected is refused instead of being reinterpreted.
template <typename T, void (*Put)(T*), uint32_t Magic>
struct Holder {
  uint32_t magic;
  T* obj;
  static void Finalize(Napi::Env, Holder* h) {
    if (h->obj) Put(h->obj);
    delete h;
  }
  // Wraps `obj`, adopting one reference.
  static Napi::External<Holder> Wrap(Napi::Env env, T* obj) {
    return Napi::External<Holder>::New(env, new Holder{Magic, obj}, Finalize);
  }
  static Holder* Of(const Napi::Value& v) {
    if (!v.IsExternal()) return nullptr;
    Holder* h = v.As<Napi::External<Holder>>().Data();
    return h && h->magic == Magic ? h : nullptr;
  }
  // The object behind a handle, or nullptr if disposed / not such a handle.
  static T* From(const Napi::Value& v) {
    Holder* h = Of(v);
    return h ? h->obj : nullptr;
  }
  static void Dispose(const Napi::Value& v) {
    Holder* h = Of(v);
    if (!h || !h->obj) return;
    T* o = h->obj;
    h->obj = nullptr;
    Put(o);
  }
};

// Thrown only for programming errors in the TypeScript layer (it validates
// before calling): a disposed or foreign handle reaching native code.
inline Napi::Error BadHandle(Napi::Env env, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string("dmabuf: invalid or disposed ") + what);
  e.Set("code", Napi::String::New(env, "EBADF"));
  e.Set("errno", Napi::Number::New(env, -9));
  return e;
}

uint64_t BigIntU64(const Napi::Value& v, bool* ok);

// Fence references travel to JS as numbers: a pointer as a double (exact below
// 2^53, and user-space addresses are 47-bit). Numbers cost nothing to create and
// need no finalizer; the TypeScript layer keeps them in private slots that a
// finalizer per block of 64 releases (see lib/handles.ts), and never hands a
// released one back.
inline double PtrToDouble(const void* p) { return static_cast<double>(reinterpret_cast<uintptr_t>(p)); }
template <typename T>
inline T* DoubleToPtr(double d) {
  if (!(d > 0) || d >= 9007199254740992.0) return nullptr;
  return reinterpret_cast<T*>(static_cast<uintptr_t>(d));
}

}  // namespace dmabuf::addon
