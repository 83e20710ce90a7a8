// benchRun(filter, msPerRow): the native benchmark scenarios, run on native
// threads, for `dmabuf bench`; benchSweep(name, msPerPoint): one parameter
// sweep, for `dmabuf bench --sweep NAME`. Both return JSON text.
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "bench/bench.h"
#include "bench/sweep.h"

namespace dmabuf::addon {
namespace {

Napi::Value BenchRun(const Napi::CallbackInfo& info) {
  bench::Options o;
  if (info.Length() > 0 && info[0].IsString()) o.filter = info[0].As<Napi::String>();
  if (info.Length() > 1 && info[1].IsNumber()) o.duration_ms = info[1].As<Napi::Number>().Int32Value();
  auto rows = bench::run_all(o);
  return Napi::String::New(info.Env(), bench::to_json(rows));
}

// The name is checked in TypeScript; an unknown one (or missing example modules
// for live-fences) is an Error with the reason.
Napi::Value BenchSweep(const Napi::CallbackInfo& info) {
  std::string name;
  int ms = 150;
  if (info.Length() > 0 && info[0].IsString()) name = info[0].As<Napi::String>();
  if (info.Length() > 1 && info[1].IsNumber()) ms = info[1].As<Napi::Number>().Int32Value();
  std::string error;
  std::string json = bench::sweep_json(name, ms, &error);
  if (!error.empty()) throw Napi::Error::New(info.Env(), "dmabuf bench: " + error);
  return Napi::String::New(info.Env(), json);
}

}  // namespace

void RegisterBench(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {{"benchRun", BenchRun}, {"benchSweep", BenchSweep}});
}

}  // namespace dmabuf::addon
