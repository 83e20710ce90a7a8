// benchRun(filter, msPerRow, json): the native benchmark scenarios, run on
// native threads, for `dmabuf bench`.
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "bench/bench.h"

namespace dmabuf::addon {
namespace {

Napi::Value BenchRun(const Napi::CallbackInfo& info) {
  bench::Options o;
  if (info.Length() > 0 && info[0].IsString()) o.filter = info[0].As<Napi::String>();
  if (info.Length() > 1 && info[1].IsNumber()) o.duration_ms = info[1].As<Napi::Number>().Int32Value();
  auto rows = bench::run_all(o);
  return Napi::String::New(info.Env(), bench::to_json(rows));
}

}  // namespace

void RegisterBench(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {{"benchRun", BenchRun}});
}

}  // namespace dmabuf::addon
