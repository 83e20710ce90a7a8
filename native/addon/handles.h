// JS handles to native objects: an External whose data is a small holder with
// one reference. dispose() drops the reference early; the finalizer is the
// backstop. Native code never trusts a handle without checking it.
#pragma once

#include <napi.h>

#include <cstdint>
#include <new>
#include <string>

#include "addon/errors.h"

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
  // Wraps `obj`, adopting one reference; if the External cannot be made the
  // reference is dropped here, so callers never clean up after a failed Wrap.
  static Napi::External<Holder> Wrap(Napi::Env env, T* obj) {
    auto* h = new (std::nothrow) Holder{Magic, obj};
    if (!h) {
      Put(obj);
      throw std::bad_alloc();
    }
    try {
      return Napi::External<Holder>::New(env, h, Finalize);
    } catch (...) {
      delete h;
      Put(obj);
      throw;
    }
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

uint64_t BigIntU64(const Napi::Value& v, bool* ok);

}  // namespace dmabuf::addon
