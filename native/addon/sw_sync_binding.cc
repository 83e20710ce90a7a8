// sw_sync timeline bindings: one handle kind (TlObj, sync_file_obj.h) for the
// emulated timeline of native/core and the real debugfs file, chosen here at
// creation ('emulated', 'kernel' or 'auto'); the points it makes are sync_file
// handles of the same backend.
#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/env_state.h"
#include "addon/export_registry.h"
#include "addon/sync_file_obj.h"
#include "kernel/sw_sync.h"

namespace dmabuf::addon {

void tl_put(TlObj* t) {
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (t->emu) sw_sync_debugfs_release(t->emu);
  if (t->kfd >= 0) (void)kernel::close_fd(t->kfd);
  delete t;
}

namespace {

// Timelines parked for another worker (exportHandle / importHandle).
ExportRegistry<TlObj, tl_put> g_exports;

TlObj* TlArgAt(const Napi::CallbackInfo& info, size_t i) {
  TlObj* t = TlHolder::From(info[i]);
  if (!t) throw BadHandle(info.Env(), "sw_sync timeline handle");
  return t;
}

std::string OptStr(const Napi::CallbackInfo& info, size_t i, const char* dflt) {
  return info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : dflt;
}

// tlCreate(backend, name?, path?): 'emulated' (named after `name`, default the
// thread's name), 'kernel' (the debugfs file at `path`: its open errno), or
// 'auto' (the kernel's if it opens, else emulated).
Napi::Value TlCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string want = StrArg(info, 0);
  if (want != "emulated" && want != "kernel" && want != "auto") throw BadArg(env, "backend");
  if (want != "emulated") {
    const std::string path = OptStr(info, 2, kernel::kSwSyncPath);
    auto r = kernel::sw_sync_timeline_open(path.c_str());
    if (r) {
      TlObj* t = new (std::nothrow) TlObj{nullptr, r->get()};
      if (!t) throw std::bad_alloc();  // `r` closes the fd
      r->release();
      return TlHolder::Wrap(env, t);
    }
    if (want == "kernel") {
      // The message names the path once (the backend's usually does already).
      const kernel::KError& e = r.error();
      std::string msg = e.msg.empty()                                 ? path + ": cannot open"
                        : e.msg.compare(0, path.size(), path) == 0 ? e.msg
                                                                     : path + ": " + e.msg;
      throw ErrnoError(env, e.err, e.op && *e.op ? e.op : "open", msg);
    }
  }
  const bool named = info.Length() > 1 && info[1].IsString();
  const std::string name = named ? info[1].As<Napi::String>().Utf8Value() : "";
  SyncTimeline* emu = sw_sync_debugfs_open(named ? name.c_str() : nullptr);
  if (!emu) throw ErrnoError(env, -ENOMEM, "sw_sync_debugfs_open", "cannot create a timeline");
  TlObj* t = new (std::nothrow) TlObj{emu, -1};
  if (!t) {
    sw_sync_debugfs_release(emu);
    throw std::bad_alloc();
  }
  return TlHolder::Wrap(env, t);
}

// tlBackend(tl): 'emulated' | 'kernel'
Napi::Value TlBackend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), BackendName(TlArgAt(info, 0)->kernel()));
}

// tlCreateFence(tl, value, name): SW_SYNC_IOC_CREATE_FENCE, a sync_file handle
Napi::Value TlCreateFence(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TlObj* t = TlArgAt(info, 0);
  const uint32_t value = U32Arg(info, 1);
  const std::string name = OptStr(info, 2, "");
  if (t->kernel()) {
    auto r = kernel::sw_sync_create_fence(t->kfd, value, name.c_str());
    if (!r) throw KernelError(env, r.error());
    return WrapKernelSyncFile(env, std::move(*r));
  }
  SwSyncCreateFenceData d{};
  d.value = value;
  strncpy(d.name, name.c_str(), sizeof(d.name) - 1);
  int r = sw_sync_ioctl_create_fence(t->emu, &d);
  if (r < 0) throw ErrnoError(env, r, "SW_SYNC_IOC_CREATE_FENCE", "cannot create a fence");
  return WrapEmuSyncFile(env, d.fence);
}

// tlInc(tl, n): SW_SYNC_IOC_INC
Napi::Value TlInc(const Napi::CallbackInfo& info) {
  TlObj* t = TlArgAt(info, 0);
  uint32_t n = U32Arg(info, 1);
  if (t->kernel()) {
    auto r = kernel::sw_sync_inc(t->kfd, n);
    if (!r) throw KernelError(info.Env(), r.error());
  } else if (int r = sw_sync_ioctl_inc(t->emu, &n)) {
    throw ErrnoError(info.Env(), r, "SW_SYNC_IOC_INC", "cannot advance the timeline");
  }
  return info.Env().Undefined();
}

// tlGetDeadline(tl, sf): SW_SYNC_GET_DEADLINE; ENOENT (no deadline), EINVAL (not
// a point of a sw_sync timeline, or of the other backend)
Napi::Value TlGetDeadline(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TlObj* t = TlArgAt(info, 0);
  SfObj* s = SfArgAt(info, 1);
  if (t->kernel() != s->kernel())
    throw ErrnoError(env, -EINVAL, "SW_SYNC_GET_DEADLINE",
                     std::string(ABackend(s->kernel())) + " sync_file is not a point of " +
                         ABackend(t->kernel()) + " timeline");
  if (t->kernel()) {
    auto r = kernel::sw_sync_get_deadline(t->kfd, s->kfd);
    if (!r) throw KernelError(env, r.error());
    return Napi::BigInt::New(env, *r);
  }
  SwSyncGetDeadline d{};
  d.fence_fd = s->emu;
  int r = sw_sync_ioctl_get_deadline(t->emu, &d);
  if (r < 0) throw ErrnoError(env, r, "SW_SYNC_GET_DEADLINE", "cannot read the deadline");
  return Napi::BigInt::New(env, d.deadline_ns);
}

// tlExport(tl) -> bigint: a new reference another worker can adopt once
Napi::Value TlExport(const Napi::CallbackInfo& info) {
  TlObj* t = TlArgAt(info, 0);
  t->refs.fetch_add(1, std::memory_order_relaxed);
  return Napi::BigInt::New(info.Env(), g_exports.Export(t, EnvState::Get(info.Env())));
}

// tlImport(bigint) -> handle; EINVAL if never exported or imported already
Napi::Value TlImport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBigInt()) throw BadArg(env, "expected a bigint handle");
  bool ok = true;
  const uint64_t id = BigIntU64(info[0], &ok);
  TlObj* t = nullptr;
  if (!ok || g_exports.Import(id, &t) != decltype(g_exports)::Result::kOk)
    throw ErrnoError(env, -EINVAL, nullptr, "unknown sw_sync timeline handle (never exported, or already imported)");
  return TlHolder::Wrap(env, t);
}

// tlClose(tl): drops this holder's reference; the last is the file's release (idempotent)
Napi::Value TlClose(const Napi::CallbackInfo& info) {
  TlHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// tlKernelAvailable(): whether the debugfs sw_sync file opens
Napi::Value TlKernelAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), kernel::sw_sync_available());
}

}  // namespace

void RegisterSwSync(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"tlCreate", TlCreate},
      {"tlBackend", TlBackend},
      {"tlCreateFence", TlCreateFence},
      {"tlInc", TlInc},
      {"tlGetDeadline", TlGetDeadline},
      {"tlClose", TlClose},
      {"tlExport", TlExport},
      {"tlImport", TlImport},
      {"tlKernelAvailable", TlKernelAvailable},
  });
}

}  // namespace dmabuf::addon
