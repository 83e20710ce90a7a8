// sync_file and sw_sync bindings, both backends: the emulated objects of
// native/core (Holder Externals) and real kernel fds (native/kernel). Flat
// functions; lib/sync_file.ts validates every argument first.
//
// Failures come back as values: a negative errno (emulated ioctls) or, for
// the kernel backend, an array [errno, op, message] from a KError.
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <poll.h>
#include <uv.h>

#include "bindings.h"
#include "handles.h"
#include "kernel/kernel_fence.h"
#include "kernel/sw_sync.h"
#include "kernel/sync_file.h"
#include "sw_sync.h"
#include "sync_file.h"

namespace dmabuf::addon {
namespace {

// --- emulated -----------------------------------------------------------------

using SyncFileHolder = Holder<SyncFile, sync_file_put, 0x53594e43>;  // "SYNC"
// The timeline handle is the debugfs file: dropping it is the file's release
// (pending points get -ENOENT), as closing the fd is in the kernel.
void timeline_release(SyncTimeline* t) { sw_sync_debugfs_release(t); }
using TimelineHolder = Holder<SyncTimeline, timeline_release, 0x53575359>;  // "SWSY"

SyncFile* SfArg(const Napi::CallbackInfo& info, size_t i) {
  SyncFile* sf = SyncFileHolder::From(info[i]);
  if (!sf) throw BadHandle(info.Env(), "sync_file handle");
  return sf;
}
SyncTimeline* TlArg(const Napi::CallbackInfo& info, size_t i) {
  SyncTimeline* t = TimelineHolder::From(info[i]);
  if (!t) throw BadHandle(info.Env(), "sw_sync timeline handle");
  return t;
}

std::string Str32(const char* s) { return std::string(s, strnlen(s, 32)); }

// sfCreate(fence): External | errno
Napi::Value SfCreate(const Napi::CallbackInfo& info) {
  Fence* f = FenceFromHandle(info[0]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  SyncFile* sf = sync_file_create(f);
  if (!sf) return Napi::Number::New(info.Env(), -ENOMEM);
  return SyncFileHolder::Wrap(info.Env(), sf);
}

// sfMerge(name, a, b): External | errno
Napi::Value SfMerge(const Napi::CallbackInfo& info) {
  SyncFile* a = SfArg(info, 1);
  SyncFile* b = SfArg(info, 2);
  SyncMergeData d{};
  std::string name = info[0].As<Napi::String>().Utf8Value();
  strncpy(d.name, name.c_str(), sizeof(d.name) - 1);
  d.fd2 = b;
  int r = sync_file_ioctl_merge(a, &d);
  if (r < 0) return Napi::Number::New(info.Env(), r);
  return SyncFileHolder::Wrap(info.Env(), d.fence);
}

Napi::Value SfFence(const Napi::CallbackInfo& info) {
  return WrapFence(info.Env(), sync_file_get_fence(SfArg(info, 0)));
}

Napi::Object InfoObject(Napi::Env env, const std::string& name, int status,
                        Napi::Array fences) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("status", status);
  o.Set("fences", fences);
  return o;
}
Napi::Object LeafObject(Napi::Env env, const std::string& obj, const std::string& drv,
                        int status, uint64_t ts) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("objName", obj);
  o.Set("driverName", drv);
  o.Set("status", status);
  o.Set("timestampNs", Napi::BigInt::New(env, ts));
  return o;
}

// sfInfo(sf): {name, status, fences} | errno -- the two-call FILE_INFO pattern.
Napi::Value SfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SyncFile* sf = SfArg(info, 0);
  SyncFileInfo count{};
  int r = sync_file_ioctl_fence_info(sf, &count);
  if (r < 0) return Napi::Number::New(env, r);
  std::vector<SyncFenceInfo> leaves(count.num_fences);
  SyncFileInfo fill{};
  fill.num_fences = count.num_fences;
  fill.sync_fence_info = leaves.data();
  r = sync_file_ioctl_fence_info(sf, &fill);
  if (r < 0) return Napi::Number::New(env, r);
  Napi::Array arr = Napi::Array::New(env, fill.num_fences);
  for (uint32_t i = 0; i < fill.num_fences; ++i) {
    const SyncFenceInfo& l = leaves[i];
    arr.Set(i, LeafObject(env, Str32(l.obj_name), Str32(l.driver_name), l.status, l.timestamp_ns));
  }
  // The container's own status (first call) is the sync_file's status.
  return InfoObject(env, Str32(count.name), count.status, arr);
}

// sfSetDeadline(sf, ns: bigint): errno
Napi::Value SfSetDeadline(const Napi::CallbackInfo& info) {
  SyncFile* sf = SfArg(info, 0);
  bool ok = true;
  SyncSetDeadline d{};
  d.deadline_ns = BigIntU64(info[1], &ok);
  return Napi::Number::New(info.Env(), sync_file_ioctl_set_deadline(sf, &d));
}

// sfPoll(sf): boolean -- poll(2) readiness; like the kernel's first poll it
// arms the fence callback (enables signalling, so containers record errors).
Napi::Value SfPoll(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), sync_file_poll(SfArg(info, 0), nullptr) != 0);
}

Napi::Value SfDispose(const Napi::CallbackInfo& info) {
  SyncFileHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// tlCreate(name?): External | errno
Napi::Value TlCreate(const Napi::CallbackInfo& info) {
  std::string name;
  const bool named = info.Length() > 0 && info[0].IsString();
  if (named) name = info[0].As<Napi::String>().Utf8Value();
  SyncTimeline* t = sw_sync_debugfs_open(named ? name.c_str() : nullptr);
  if (!t) return Napi::Number::New(info.Env(), -ENOMEM);
  return TimelineHolder::Wrap(info.Env(), t);
}

// tlCreateFence(tl, value, name): External | errno
Napi::Value TlCreateFence(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  SwSyncCreateFenceData d{};
  d.value = info[1].As<Napi::Number>().Uint32Value();
  if (info.Length() > 2 && info[2].IsString()) {
    std::string n = info[2].As<Napi::String>().Utf8Value();
    strncpy(d.name, n.c_str(), sizeof(d.name) - 1);
  }
  int r = sw_sync_ioctl_create_fence(t, &d);
  if (r < 0) return Napi::Number::New(info.Env(), r);
  return SyncFileHolder::Wrap(info.Env(), d.fence);
}

Napi::Value TlInc(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  uint32_t v = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), sw_sync_ioctl_inc(t, &v));
}

// tlGetDeadline(tl, sf): bigint | errno
Napi::Value TlGetDeadline(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  SwSyncGetDeadline d{};
  d.fence_fd = SfArg(info, 1);
  int r = sw_sync_ioctl_get_deadline(t, &d);
  if (r < 0) return Napi::Number::New(info.Env(), r);
  return Napi::BigInt::New(info.Env(), d.deadline_ns);
}

Napi::Value TlClose(const Napi::CallbackInfo& info) {
  TimelineHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// --- real kernel fds --------------------------------------------------------------

// An owned fd; the finalizer closes it if JS never did.
struct KFd {
  int fd;
};
void kfd_close(KFd* k) {
  if (k->fd >= 0) (void)kernel::close_fd(k->fd);
  delete k;
}
using KSyncFileHolder = Holder<KFd, kfd_close, 0x4b53594e>;  // "KSYN"
using KTimelineHolder = Holder<KFd, kfd_close, 0x4b535753>;  // "KSWS"

int KSfArg(const Napi::CallbackInfo& info, size_t i) {
  KFd* k = KSyncFileHolder::From(info[i]);
  if (!k) throw BadHandle(info.Env(), "sync_file fd handle");
  return k->fd;
}
int KTlArg(const Napi::CallbackInfo& info, size_t i) {
  KFd* k = KTimelineHolder::From(info[i]);
  if (!k) throw BadHandle(info.Env(), "sw_sync timeline fd handle");
  return k->fd;
}


template <typename H>
Napi::Value WrapFd(Napi::Env env, kernel::UniqueFd fd) {
  KFd* k = new (std::nothrow) KFd{fd.get()};
  if (!k) return KErrValue(env, kernel::kerror(-ENOMEM, "malloc"));
  fd.release();
  return H::Wrap(env, k);
}

// ksfFromFd(fd, dup: boolean): External | [errno, op, msg]. Checks that fd is
// a sync_file (SYNC_IOC_FILE_INFO); with dup the caller keeps its fd, else the
// handle takes ownership (and closes it).
Napi::Value KsfFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const bool dup = info[1].ToBoolean();
  auto n = kernel::sync_file_fence_count(fd);
  if (!n) return KErrValue(env, n.error());
  if (!dup) return WrapFd<KSyncFileHolder>(env, kernel::UniqueFd(fd));
  auto d = kernel::dup_fd(fd);
  if (!d) return KErrValue(env, d.error());
  return WrapFd<KSyncFileHolder>(env, std::move(*d));
}

Napi::Value KsfFd(const Napi::CallbackInfo& info) {
  KFd* k = KSyncFileHolder::From(info[0]);
  return Napi::Number::New(info.Env(), k ? k->fd : -1);
}

Napi::Value KsfClose(const Napi::CallbackInfo& info) {
  KSyncFileHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

Napi::Value KsfMerge(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  auto r = kernel::sync_file_merge(name.c_str(), KSfArg(info, 1), KSfArg(info, 2));
  if (!r) return KErrValue(info.Env(), r.error());
  return WrapFd<KSyncFileHolder>(info.Env(), std::move(*r));
}

Napi::Value KsfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = kernel::sync_file_get_info(KSfArg(info, 0));
  if (!r) return KErrValue(env, r.error());
  Napi::Array arr = Napi::Array::New(env, r->fences.size());
  for (size_t i = 0; i < r->fences.size(); ++i) {
    const auto& l = r->fences[i];
    arr.Set(static_cast<uint32_t>(i), LeafObject(env, l.obj_name, l.driver_name, l.status, l.timestamp_ns));
  }
  return InfoObject(env, r->name, r->status, arr);
}

// ksfStatus(sf): 1 signalled, 0 active | [errno, op, msg] (non-blocking poll)
Napi::Value KsfIsSignaled(const Napi::CallbackInfo& info) {
  auto r = kernel::sync_file_is_signaled(KSfArg(info, 0));
  if (!r) return KErrValue(info.Env(), r.error());
  return Napi::Boolean::New(info.Env(), *r);
}

Napi::Value KsfSetDeadline(const Napi::CallbackInfo& info) {
  bool ok = true;
  auto r = kernel::sync_file_set_deadline(KSfArg(info, 0), BigIntU64(info[1], &ok));
  if (!r) return KErrValue(info.Env(), r.error());
  return info.Env().Undefined();
}

// ksfFence(sf): Handle | [errno, op, msg] -- the kernel-fence bridge. The fence
// owns a dup of the fd; the process-wide epoll watcher signals it, and its
// callbacks reach JS through EnvState's uv_async like any other thread's.
Napi::Value KsfFence(const Napi::CallbackInfo& info) {
  auto r = kernel::kernel_fence_wrap(KSfArg(info, 0));
  if (!r) return KErrValue(info.Env(), r.error());
  return WrapFence(info.Env(), *r);
}

// uv_poll waits: one per pending JS wait, on Node's loop. The JS callback gets
// (revents) once (POLLIN, or an error status as a negative number), or never
// if cancelled first. The handle is freed in its close callback.
struct PollWait {
  uv_poll_t poll;
  Napi::FunctionReference cb;
  bool closing = false;
};
void PollClosed(uv_handle_t* h) { delete static_cast<PollWait*>(h->data); }
void PollClose(PollWait* w) {
  if (w->closing) return;
  w->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), PollClosed);
}
void PollFinalize(Napi::Env, PollWait* w) {
  // The External died: the wait was settled or abandoned. The close callback
  // frees the node; here nothing else may touch it.
  (void)w;
}
void OnPoll(uv_poll_t* h, int status, int events) {
  auto* w = static_cast<PollWait*>(h->data);
  if (w->closing) return;
  Napi::Env env = w->cb.Env();
  Napi::HandleScope scope(env);
  Napi::Function fn = w->cb.Value();
  w->cb.Reset();
  PollClose(w);
  // MakeCallback: the Promise reactions it triggers run before we return to libuv.
  // A C++ exception must not cross libuv's frames: report a throwing callback
  // as an uncaught exception instead.
  try {
    fn.MakeCallback(env.Global(), {Napi::Number::New(env, status < 0 ? status : events)});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// ksfPoll(sf, cb): External (cancel token) | [errno, op, msg]
Napi::Value KsfPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = KSfArg(info, 0);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
    return KErrValue(env, kernel::kerror(-EINVAL, "uv_poll_init", "no event loop"));
  auto* w = new (std::nothrow) PollWait();
  if (!w) return KErrValue(env, kernel::kerror(-ENOMEM, "uv_poll_init"));
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    delete w;
    return KErrValue(env, kernel::kerror(r, "uv_poll_init", "cannot watch the sync_file fd"));
  }
  w->poll.data = w;
  r = uv_poll_start(&w->poll, UV_READABLE, OnPoll);
  if (r < 0) {
    PollClose(w);  // initialised: it must be closed; the close cb frees it
    return KErrValue(env, kernel::kerror(r, "uv_poll_start", "cannot watch the sync_file fd"));
  }
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  return Napi::External<PollWait>::New(env, w, PollFinalize);
}

// ksfPollCancel(token): stops and closes a pending poll (idempotent). The
// token must not be used after its callback ran or after this.
Napi::Value KsfPollCancel(const Napi::CallbackInfo& info) {
  auto* w = info[0].As<Napi::External<PollWait>>().Data();
  if (w && !w->closing) {
    w->cb.Reset();
    PollClose(w);
  }
  return info.Env().Undefined();
}

// kswOpen(path?): External | [errno, op, msg]
Napi::Value KswOpen(const Napi::CallbackInfo& info) {
  std::string path = kernel::kSwSyncPath;
  if (info.Length() > 0 && info[0].IsString()) path = info[0].As<Napi::String>().Utf8Value();
  auto r = kernel::sw_sync_timeline_open(path.c_str());
  if (!r) return KErrValue(info.Env(), r.error());
  return WrapFd<KTimelineHolder>(info.Env(), std::move(*r));
}

Napi::Value KswCreateFence(const Napi::CallbackInfo& info) {
  const int tl = KTlArg(info, 0);
  const uint32_t v = info[1].As<Napi::Number>().Uint32Value();
  std::string name = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  auto r = kernel::sw_sync_create_fence(tl, v, name.c_str());
  if (!r) return KErrValue(info.Env(), r.error());
  return WrapFd<KSyncFileHolder>(info.Env(), std::move(*r));
}

Napi::Value KswInc(const Napi::CallbackInfo& info) {
  auto r = kernel::sw_sync_inc(KTlArg(info, 0), info[1].As<Napi::Number>().Uint32Value());
  if (!r) return KErrValue(info.Env(), r.error());
  return info.Env().Undefined();
}

Napi::Value KswGetDeadline(const Napi::CallbackInfo& info) {
  auto r = kernel::sw_sync_get_deadline(KTlArg(info, 0), KSfArg(info, 1));
  if (!r) return KErrValue(info.Env(), r.error());
  return Napi::BigInt::New(info.Env(), *r);
}

Napi::Value KswClose(const Napi::CallbackInfo& info) {
  KTimelineHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

Napi::Value KswAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), kernel::sw_sync_available());
}

}  // namespace

Napi::Value WrapSyncFile(Napi::Env env, SyncFile* adopted) { return SyncFileHolder::Wrap(env, adopted); }
SyncFile* SyncFileFromHandle(const Napi::Value& v) { return SyncFileHolder::From(v); }
Napi::Value WrapKernelSyncFile(Napi::Env env, kernel::UniqueFd fd) {
  return WrapFd<KSyncFileHolder>(env, std::move(fd));
}
int KernelSyncFileFd(const Napi::Value& v) {
  KFd* k = KSyncFileHolder::From(v);
  return k ? k->fd : -1;
}

void RegisterSyncFile(Napi::Env env, Napi::Object exports) {
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, f, name));
  };
  fn("sfCreate", SfCreate);
  fn("sfMerge", SfMerge);
  fn("sfFence", SfFence);
  fn("sfInfo", SfInfo);
  fn("sfSetDeadline", SfSetDeadline);
  fn("sfPoll", SfPoll);
  fn("sfDispose", SfDispose);
  fn("tlCreate", TlCreate);
  fn("tlCreateFence", TlCreateFence);
  fn("tlInc", TlInc);
  fn("tlGetDeadline", TlGetDeadline);
  fn("tlClose", TlClose);
  fn("ksfFromFd", KsfFromFd);
  fn("ksfFd", KsfFd);
  fn("ksfClose", KsfClose);
  fn("ksfMerge", KsfMerge);
  fn("ksfInfo", KsfInfo);
  fn("ksfIsSignaled", KsfIsSignaled);
  fn("ksfSetDeadline", KsfSetDeadline);
  fn("ksfFence", KsfFence);
  fn("ksfPoll", KsfPoll);
  fn("ksfPollCancel", KsfPollCancel);
  fn("kswOpen", KswOpen);
  fn("kswCreateFence", KswCreateFence);
  fn("kswInc", KswInc);
  fn("kswGetDeadline", KswGetDeadline);
  fn("kswClose", KswClose);
  fn("kswAvailable", KswAvailable);
}

}  // namespace dmabuf::addon
