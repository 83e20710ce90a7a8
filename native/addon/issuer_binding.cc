// Issuer bindings: flat functions over issuer handles (Holder Externals). The
// TypeScript layer validates every argument; failures throw DmaBufError with
// the issuer's errno and message, the operation as `syscall`.
//
// unload() blocks for at least a grace period and possibly until pinned fences
// are dropped, so it runs on a thread of its own (not the libuv pool: Node waits
// for pool work when a worker's environment is torn down, and an unload waiting
// for a fence that only that teardown releases would hang it). Its completion
// travels like a fence callback: EnvState delivers an id to the JS dispatcher,
// or drops it if the environment is gone by then.
//
// Modules are process-wide: a worker's teardown unloads nothing. At process exit
// an atexit handler lets unloads in flight finish (briefly) and unloads what is
// still loaded, so module threads are stopped and joined before the libraries
// under them (liburcu) run their destructors.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/env_state.h"
#include "addon/handles.h"
#include "core/issuer/issuer.h"

namespace dmabuf::addon {
namespace {

void IssuerPut(Issuer* i) { i->put(); }
using IssuerHolder = Holder<Issuer, IssuerPut, 0x49535355>;  // "ISSU"

// One unload in flight: shared by the JS job handle and the unload thread.
struct UnloadJob {
  std::atomic<uint32_t> refs{1};
  Issuer* issuer = nullptr;  // one reference
  int64_t timeout_ns = 0;
  int rc = 0;
  std::string message;
};
void JobPut(UnloadJob* j) {
  if (j->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    j->issuer->put();
    delete j;
  }
}
using JobHolder = Holder<UnloadJob, JobPut, 0x554e4c44>;  // "UNLD"

// Unload threads in flight, for the exit handler.
struct Inflight {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Issuer*> issuers;  // one per unload thread (the job holds the reference)
};
Inflight& inflight() {
  static Inflight* s = new Inflight;  // immortal: used from the exit handler
  return *s;
}
void InflightRemove(Issuer* iss) {
  Inflight& s = inflight();
  std::lock_guard<std::mutex> l(s.mu);
  s.issuers.erase(std::find(s.issuers.begin(), s.issuers.end(), iss));
  s.cv.notify_all();
}

void AtExit() {
  using namespace std::chrono;
  Inflight& s = inflight();
  {
    // After a normal exit, environment teardown has dropped the fences JS held
    // and unloads in flight finish within milliseconds. After process.exit()
    // (no teardown) they may wait for pinned fences nobody will drop: give up
    // once the pinned counts stop moving, and never wait more than 2 s.
    std::unique_lock<std::mutex> l(s.mu);
    const auto start = steady_clock::now();
    auto last_change = start;
    uint64_t last_pinned = ~0ull;
    while (!s.issuers.empty()) {
      const auto now = steady_clock::now();
      if (now - start >= seconds(2)) return;
      uint64_t pinned = 0;
      for (Issuer* i : s.issuers) pinned += i->pinned_fences();
      if (pinned != last_pinned) {
        last_pinned = pinned;
        last_change = now;
      } else if (pinned > 0 && now - last_change >= milliseconds(100)) {
        return;  // their unload threads stay blocked; exit does not wait for them
      }
      s.cv.wait_for(l, milliseconds(10));
    }
  }
  // Timeout 0: fences still pinning a module (process.exit() skips the
  // environment's cleanup) leave it loaded, but signal_all has stopped it.
  std::string err;
  Issuer::unload_all(0, &err);
}
std::once_flag g_atexit_once;

// An issuer failure: its errno, with the core's message (what failed and why).
Napi::Error Failure(Napi::Env env, int rc, const char* op, const std::string& message) {
  return ErrnoError(env, rc, op, message.empty() ? std::string(op) + " failed" : message);
}

Issuer* IssuerArg(const Napi::CallbackInfo& info, size_t i) {
  Issuer* iss = IssuerHolder::From(info[i]);
  if (!iss) throw BadHandle(info.Env(), "issuer handle");
  return iss;
}

// --- functions ------------------------------------------------------------------------

// issuerLoad(path: string, keepOps: boolean) -> handle
Napi::Value IssuerLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StrArg(info, 0);
  IssuerLoadOptions opts;
  opts.keep_ops = info[1].ToBoolean();
  Issuer* iss = nullptr;
  std::string err;
  const int rc = Issuer::load(path, opts, &iss, &err);
  if (rc != 0) throw Failure(env, rc, "Issuer.load", err);
  std::call_once(g_atexit_once, [] { std::atexit(AtExit); });
  return IssuerHolder::Wrap(env, iss);
}

// issuerCreateNamed(driverName: string, timelineName: string) -> handle
Napi::Value IssuerCreateNamed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string driver = StrArg(info, 0), timeline = StrArg(info, 1);
  Issuer* iss = nullptr;
  std::string err;
  const int rc = Issuer::create_named(driver, timeline, &iss, &err);
  if (rc != 0) throw Failure(env, rc, "Issuer", err);
  return IssuerHolder::Wrap(env, iss);
}

// issuerInfo(h) -> { kind, name, path, timelineName, params, keepOps }: what never changes.
Napi::Value IssuerInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Issuer* iss = IssuerArg(info, 0);
  const bool module = iss->kind() == Issuer::Kind::kModule;
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", Napi::String::New(env, module ? "module" : "names"));
  o.Set("name", Napi::String::New(env, iss->name()));
  o.Set("path", module ? Napi::String::New(env, iss->path()) : env.Null());
  o.Set("timelineName", module ? env.Null() : Napi::String::New(env, iss->timeline_name()));
  const auto& names = iss->param_names();
  Napi::Array params = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) params.Set(static_cast<uint32_t>(i), names[i]);
  o.Set("params", params);
  o.Set("keepOps", Napi::Boolean::New(env, iss->keep_ops()));
  return o;
}

// issuerState(h) -> 0 live, 1 draining, 2 unloaded
Napi::Value IssuerState(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<int>(IssuerArg(info, 0)->state()));
}
Napi::Value IssuerPinned(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), IssuerArg(info, 0)->pinned_fences());
}
Napi::Value IssuerCreated(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(IssuerArg(info, 0)->fences_created()));
}
// issuerStats(h) -> [signalAll, drain, grace, shutdown, close, total] in ns
Napi::Value IssuerStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const IssuerUnloadStats s = IssuerArg(info, 0)->last_unload_stats();
  const int64_t v[] = {s.signal_all_ns, s.drain_ns, s.grace_ns, s.shutdown_ns, s.close_ns, s.total_ns};
  Napi::Array a = Napi::Array::New(env, 6);
  for (uint32_t i = 0; i < 6; ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(v[i])));
  return a;
}

// issuerCreateFence(h, context?: bigint, seqno?: bigint, seqno64?: boolean) -> fence token.
// One call per fence (issuer.createFence()), so it uses the Node-API C interface
// directly, like fenceSignal: no CallbackInfo, no std::function, no wrapper
// objects beyond what reading the arguments needs. Its function data is the
// environment's EnvState.
napi_value IssuerCreateFence(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok || !data) return nullptr;
  try {
    Napi::Env e(env);
    Issuer* iss = argc >= 1 ? IssuerHolder::From(Napi::Value(env, argv[0])) : nullptr;
    if (!iss) throw BadHandle(e, "issuer handle");
    IssuerFenceArgs args;
    // issuer.createFence() passes the handle alone: the issuer's own timeline.
    if (argc > 1) {
      bool ok = true;
      const Napi::Value ctx(env, argv[1]);
      if (ctx.IsBigInt()) args.context = BigIntU64(ctx, &ok);
      if (argc > 2) {
        const Napi::Value seqno(env, argv[2]);
        if (seqno.IsBigInt()) args.seqno = BigIntU64(seqno, &ok);
      }
      if (!ok) throw Napi::RangeError::New(e, "dmabuf: value out of the u64 range");
      args.seqno64 = argc > 3 && Napi::Value(env, argv[3]).ToBoolean();
    }
    Fence* f = nullptr;
    std::string err;
    const int rc = iss->create_fence(args, &f, &err);
    if (rc != 0) throw Failure(e, rc, "Issuer.createFence", err);
    const double token = static_cast<EnvState*>(data)->AdoptFence(f);
    if (token == 0) throw ErrnoError(e, -ENOMEM, nullptr, "too many fences held by this environment");
    napi_value r;
    napi_create_double(env, token, &r);
    return r;
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    ErrnoError(Napi::Env(env), -ENOMEM, nullptr, "out of memory (issuerCreateFence)").ThrowAsJavaScriptException();
  }
  return nullptr;
}

// issuerSetParam(h, name: string, value: bigint)
Napi::Value IssuerSetParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Issuer* iss = IssuerArg(info, 0);
  const std::string name = StrArg(info, 1);
  if (!info[2].IsBigInt()) throw BadArg(env, "expected a bigint value");
  bool lossless = true;
  const int64_t value = info[2].As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "dmabuf: value out of the i64 range");
  std::string err;
  const int rc = iss->set_param(name, value, &err);
  if (rc != 0) throw Failure(env, rc, "Issuer.setParam", err);
  return env.Undefined();
}

// issuerGetParam(h, name: string) -> bigint
Napi::Value IssuerGetParam(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Issuer* iss = IssuerArg(info, 0);
  const std::string name = StrArg(info, 1);
  int64_t value = 0;
  std::string err;
  const int rc = iss->get_param(name, &value, &err);
  if (rc != 0) throw Failure(env, rc, "Issuer.getParam", err);
  return Napi::BigInt::New(env, value);
}

void RunUnload(UnloadJob* job, EnvState* state, JsCallback* done) {
  job->rc = job->issuer->unload(job->timeout_ns, &job->message);
  InflightRemove(job->issuer);
  state->Complete(done);  // publishes rc/message (EnvState's lock orders them)
  JobPut(job);
}

// issuerUnload(h, timeoutNs: number (-1: for ever), id: number) -> job handle.
// When the unload has finished, the dispatcher receives `id`; then
// issuerUnloadResult(job) has the outcome.
Napi::Value IssuerUnload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Issuer* iss = IssuerArg(info, 0);
  if (!info[1].IsNumber() || !info[2].IsNumber()) throw BadArg(env, "issuerUnload(h, timeoutNs, id)");
  const double t = info[1].As<Napi::Number>().DoubleValue();
  const uint32_t id = info[2].As<Napi::Number>().Uint32Value();
  EnvState* state = EnvState::Get(env);

  auto* job = new UnloadJob;
  job->issuer = iss->get();
  job->timeout_ns = t < 0 ? kMaxScheduleTimeout : static_cast<int64_t>(t);
  job->refs.fetch_add(1, std::memory_order_relaxed);  // the thread's
  JsCallback* done = state->NewCompletion(id);
  try {
    std::lock_guard<std::mutex> l(inflight().mu);
    inflight().issuers.push_back(job->issuer);
  } catch (...) {  // bad_alloc: nothing started yet
    state->DiscardCompletion(done);
    JobPut(job);
    JobPut(job);
    throw;
  }
  // The host owns its signals: the thread starts with all of them blocked.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = 0;
  try {
    std::thread(RunUnload, job, state, done).detach();
  } catch (const std::system_error& e) {
    rc = -(e.code().value() ? e.code().value() : EAGAIN);
  } catch (const std::bad_alloc&) {
    rc = -ENOMEM;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (rc != 0) {
    InflightRemove(job->issuer);
    state->DiscardCompletion(done);
    JobPut(job);
    JobPut(job);
    throw Failure(env, rc, "Issuer.unload", "unload: cannot start a thread");
  }
  return JobHolder::Wrap(env, job);
}

// issuerUnloadResult(job): throws the unload's failure (call once the id was delivered)
Napi::Value IssuerUnloadResult(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UnloadJob* job = JobHolder::From(info[0]);
  if (!job) throw BadHandle(env, "unload job");
  const int rc = job->rc;
  std::string message = job->message;
  JobHolder::Dispose(info[0]);
  if (rc != 0) throw Failure(env, rc, "Issuer.unload", message);
  return env.Undefined();
}

Napi::Value IssuerDispose(const Napi::CallbackInfo& info) {
  IssuerHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// issuerLoadedModules() -> modules loaded and not yet unloaded (process-wide)
Napi::Value IssuerLoadedModules(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(Issuer::loaded_modules()));
}

}  // namespace

void RegisterIssuer(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"issuerLoad", IssuerLoad},
      {"issuerCreateNamed", IssuerCreateNamed},
      {"issuerInfo", IssuerInfo},
      {"issuerState", IssuerState},
      {"issuerPinned", IssuerPinned},
      {"issuerCreated", IssuerCreated},
      {"issuerStats", IssuerStats},
      {"issuerSetParam", IssuerSetParam},
      {"issuerGetParam", IssuerGetParam},
      {"issuerUnload", IssuerUnload},
      {"issuerUnloadResult", IssuerUnloadResult},
      {"issuerDispose", IssuerDispose},
      {"issuerLoadedModules", IssuerLoadedModules},
  });
  napi_value f;
  if (napi_create_function(env, "issuerCreateFence", NAPI_AUTO_LENGTH, IssuerCreateFence, EnvState::Get(env),
                           &f) != napi_ok)
    throw Napi::Error::New(env, "dmabuf: cannot create a function");
  exports.Set("issuerCreateFence", Napi::Value(env, f));
}

}  // namespace dmabuf::addon
