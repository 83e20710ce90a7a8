// Argument converters every binding shares: each checks the JS type first (a
// wrong type is a TypeError, ERR_INVALID_ARG_TYPE; a bigint past 64 bits a
// RangeError), so no value reaches native code unchecked.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "addon/errors.h"
#include "addon/handles.h"

namespace dmabuf::addon {

inline std::string StrArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw BadArg(info.Env(), "expected a string");
  return info[i].As<Napi::String>().Utf8Value();
}
inline double NumArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw BadArg(info.Env(), "expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw BadArg(info.Env(), "expected a number");
  return info[i].As<Napi::Number>().Uint32Value();
}
inline uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBigInt()) throw BadArg(info.Env(), "expected a bigint");
  bool ok = true;
  const uint64_t v = BigIntU64(info[i], &ok);
  if (!ok) throw Napi::RangeError::New(info.Env(), "dmabuf: value out of the u64 range");
  return v;
}
inline int64_t I64Arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBigInt()) throw BadArg(info.Env(), "expected a bigint");
  bool lossless;
  return info[i].As<Napi::BigInt>().Int64Value(&lossless);
}
inline Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

}  // namespace dmabuf::addon
