// sync_file and sw_sync bindings, both backends: the emulated objects of
// native/core (Holder Externals) and real kernel fds (native/kernel). Flat
// functions; lib/sync_file.ts validates every argument first.
//
// Failures throw DmaBufError: the emulated ioctl's errno, or the kernel
// backend's KError (errno, ioctl or syscall, message).
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <poll.h>
#include <uv.h>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/handles.h"
#include "core/sync/sw_sync.h"
#include "core/sync/sync_file.h"
#include "kernel/kernel_fence.h"
#include "kernel/sw_sync.h"
#include "kernel/sync_file.h"

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

// sfCreate(fence): External; ENOMEM
Napi::Value SfCreate(const Napi::CallbackInfo& info) {
  Fence* f = FenceFromHandle(info[0]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  SyncFile* sf = sync_file_create(f);
  if (!sf) throw ErrnoError(info.Env(), -ENOMEM, "sync_file_create", "cannot create a sync_file");
  return SyncFileHolder::Wrap(info.Env(), sf);
}

// sfMerge(name, a, b): External
Napi::Value SfMerge(const Napi::CallbackInfo& info) {
  std::string name = StrArg(info, 0);
  SyncFile* a = SfArg(info, 1);
  SyncFile* b = SfArg(info, 2);
  SyncMergeData d{};
  strncpy(d.name, name.c_str(), sizeof(d.name) - 1);
  d.fd2 = b;
  int r = sync_file_ioctl_merge(a, &d);
  if (r < 0) throw ErrnoError(info.Env(), r, "SYNC_IOC_MERGE", "merge failed");
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

// sfInfo(sf): {name, status, fences} -- the two-call FILE_INFO pattern.
Napi::Value SfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SyncFile* sf = SfArg(info, 0);
  SyncFileInfo count{};
  int r = sync_file_ioctl_fence_info(sf, &count);
  if (r < 0) throw ErrnoError(env, r, "SYNC_IOC_FILE_INFO", "cannot read sync_file info");
  std::vector<SyncFenceInfo> leaves(count.num_fences);
  SyncFileInfo fill{};
  fill.num_fences = count.num_fences;
  fill.sync_fence_info = leaves.data();
  r = sync_file_ioctl_fence_info(sf, &fill);
  if (r < 0) throw ErrnoError(env, r, "SYNC_IOC_FILE_INFO", "cannot read sync_file info");
  Napi::Array arr = Napi::Array::New(env, fill.num_fences);
  for (uint32_t i = 0; i < fill.num_fences; ++i) {
    const SyncFenceInfo& l = leaves[i];
    arr.Set(i, LeafObject(env, Str32(l.obj_name), Str32(l.driver_name), l.status, l.timestamp_ns));
  }
  // The container's own status (first call) is the sync_file's status.
  return InfoObject(env, Str32(count.name), count.status, arr);
}

// sfSetDeadline(sf, ns: bigint)
Napi::Value SfSetDeadline(const Napi::CallbackInfo& info) {
  SyncFile* sf = SfArg(info, 0);
  SyncSetDeadline d{};
  d.deadline_ns = U64Arg(info, 1);
  if (int r = sync_file_ioctl_set_deadline(sf, &d))
    throw ErrnoError(info.Env(), r, "SYNC_IOC_SET_DEADLINE", "cannot set the deadline");
  return info.Env().Undefined();
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

// tlCreate(name?): External; ENOMEM
Napi::Value TlCreate(const Napi::CallbackInfo& info) {
  std::string name;
  const bool named = info.Length() > 0 && info[0].IsString();
  if (named) name = info[0].As<Napi::String>().Utf8Value();
  SyncTimeline* t = sw_sync_debugfs_open(named ? name.c_str() : nullptr);
  if (!t) throw ErrnoError(info.Env(), -ENOMEM, "sw_sync_debugfs_open", "cannot create a timeline");
  return TimelineHolder::Wrap(info.Env(), t);
}

// tlCreateFence(tl, value, name): External
Napi::Value TlCreateFence(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  SwSyncCreateFenceData d{};
  d.value = U32Arg(info, 1);
  if (info.Length() > 2 && info[2].IsString()) {
    std::string n = info[2].As<Napi::String>().Utf8Value();
    strncpy(d.name, n.c_str(), sizeof(d.name) - 1);
  }
  int r = sw_sync_ioctl_create_fence(t, &d);
  if (r < 0) throw ErrnoError(info.Env(), r, "SW_SYNC_IOC_CREATE_FENCE", "cannot create a fence");
  return SyncFileHolder::Wrap(info.Env(), d.fence);
}

Napi::Value TlInc(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  uint32_t v = U32Arg(info, 1);
  if (int r = sw_sync_ioctl_inc(t, &v)) throw ErrnoError(info.Env(), r, "SW_SYNC_IOC_INC", "cannot advance the timeline");
  return info.Env().Undefined();
}

// tlGetDeadline(tl, sf): bigint; ENOENT (no deadline), EINVAL (not a point of a sw_sync timeline)
Napi::Value TlGetDeadline(const Napi::CallbackInfo& info) {
  SyncTimeline* t = TlArg(info, 0);
  SwSyncGetDeadline d{};
  d.fence_fd = SfArg(info, 1);
  int r = sw_sync_ioctl_get_deadline(t, &d);
  if (r < 0) throw ErrnoError(info.Env(), r, "SW_SYNC_GET_DEADLINE", "cannot read the deadline");
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

// Wraps an owned fd; on any failure (ENOMEM) the fd is closed by `fd`.
template <typename H>
Napi::Value WrapFd(Napi::Env env, kernel::UniqueFd fd) {
  KFd* k = new (std::nothrow) KFd{fd.get()};
  if (!k) throw ErrnoError(env, -ENOMEM, nullptr, "out of memory");
  fd.release();
  return H::Wrap(env, k);  // closes the fd if the handle cannot be made
}

// ksfFromFd(fd, dup: boolean): External. Checks that fd is
// a sync_file (SYNC_IOC_FILE_INFO); with dup the caller keeps its fd, else the
// handle takes ownership (and closes it).
Napi::Value KsfFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw BadArg(env, "expected an fd number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const bool dup = info[1].ToBoolean();
  auto n = kernel::sync_file_fence_count(fd);
  if (!n) throw KernelError(env, n.error());
  if (!dup) return WrapFd<KSyncFileHolder>(env, kernel::UniqueFd(fd));
  auto d = kernel::dup_fd(fd);
  if (!d) throw KernelError(env, d.error());
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
  std::string name = StrArg(info, 0);
  auto r = kernel::sync_file_merge(name.c_str(), KSfArg(info, 1), KSfArg(info, 2));
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapFd<KSyncFileHolder>(info.Env(), std::move(*r));
}

Napi::Value KsfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = kernel::sync_file_get_info(KSfArg(info, 0));
  if (!r) throw KernelError(env, r.error());
  Napi::Array arr = Napi::Array::New(env, r->fences.size());
  for (size_t i = 0; i < r->fences.size(); ++i) {
    const auto& l = r->fences[i];
    arr.Set(static_cast<uint32_t>(i), LeafObject(env, l.obj_name, l.driver_name, l.status, l.timestamp_ns));
  }
  return InfoObject(env, r->name, r->status, arr);
}

// ksfIsSignaled(sf): whether the fd polls readable (non-blocking poll)
Napi::Value KsfIsSignaled(const Napi::CallbackInfo& info) {
  auto r = kernel::sync_file_is_signaled(KSfArg(info, 0));
  if (!r) throw KernelError(info.Env(), r.error());
  return Napi::Boolean::New(info.Env(), *r);
}

Napi::Value KsfSetDeadline(const Napi::CallbackInfo& info) {
  auto r = kernel::sync_file_set_deadline(KSfArg(info, 0), U64Arg(info, 1));
  if (!r) throw KernelError(info.Env(), r.error());
  return info.Env().Undefined();
}

// ksfFence(sf): Handle -- the kernel-fence bridge. The fence
// owns a dup of the fd; the process-wide epoll watcher signals it, and its
// callbacks reach JS through EnvState's uv_async like any other thread's.
Napi::Value KsfFence(const Napi::CallbackInfo& info) {
  auto r = kernel::kernel_fence_wrap(KSfArg(info, 0));
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapFence(info.Env(), *r);
}

// uv_poll waits: one per pending JS wait, on Node's loop. The JS callback gets
// (revents) once (POLLIN), or (status, DmaBufError) for a uv_poll failure, or
// nothing if cancelled first. The handle is freed in its close callback.
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
    if (status < 0)
      fn.MakeCallback(env.Global(), {Napi::Number::New(env, status),
                                     ErrnoError(env, status, "uv_poll", "uv_poll failed on the sync_file fd").Value()});
    else
      fn.MakeCallback(env.Global(), {Napi::Number::New(env, events)});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

// ksfPoll(sf, cb): External (cancel token)
Napi::Value KsfPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = KSfArg(info, 0);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
    throw ErrnoError(env, -EINVAL, "uv_poll_init", "no event loop");
  auto* w = new (std::nothrow) PollWait();
  if (!w) throw ErrnoError(env, -ENOMEM, "uv_poll_init", "out of memory");
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    delete w;
    throw ErrnoError(env, r, "uv_poll_init", "cannot watch the sync_file fd");
  }
  w->poll.data = w;
  r = uv_poll_start(&w->poll, UV_READABLE, OnPoll);
  if (r < 0) {
    PollClose(w);  // initialised: it must be closed; the close cb frees it
    throw ErrnoError(env, r, "uv_poll_start", "cannot watch the sync_file fd");
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

// kswOpen(path?): External
Napi::Value KswOpen(const Napi::CallbackInfo& info) {
  std::string path = kernel::kSwSyncPath;
  if (info.Length() > 0 && info[0].IsString()) path = info[0].As<Napi::String>().Utf8Value();
  auto r = kernel::sw_sync_timeline_open(path.c_str());
  if (!r) {
    // The message names the path once (the backend's usually does already).
    const kernel::KError& e = r.error();
    std::string msg = e.msg.empty() ? path + ": cannot open"
                      : e.msg.compare(0, path.size(), path) == 0 ? e.msg
                                                                 : path + ": " + e.msg;
    throw ErrnoError(info.Env(), e.err, e.op && *e.op ? e.op : "open", msg);
  }
  return WrapFd<KTimelineHolder>(info.Env(), std::move(*r));
}

Napi::Value KswCreateFence(const Napi::CallbackInfo& info) {
  const int tl = KTlArg(info, 0);
  const uint32_t v = U32Arg(info, 1);
  std::string name = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  auto r = kernel::sw_sync_create_fence(tl, v, name.c_str());
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapFd<KSyncFileHolder>(info.Env(), std::move(*r));
}

Napi::Value KswInc(const Napi::CallbackInfo& info) {
  auto r = kernel::sw_sync_inc(KTlArg(info, 0), U32Arg(info, 1));
  if (!r) throw KernelError(info.Env(), r.error());
  return info.Env().Undefined();
}

Napi::Value KswGetDeadline(const Napi::CallbackInfo& info) {
  auto r = kernel::sw_sync_get_deadline(KTlArg(info, 0), KSfArg(info, 1));
  if (!r) throw KernelError(info.Env(), r.error());
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
  ExportFunctions(env, exports, {
      {"sfCreate", SfCreate},
      {"sfMerge", SfMerge},
      {"sfFence", SfFence},
      {"sfInfo", SfInfo},
      {"sfSetDeadline", SfSetDeadline},
      {"sfPoll", SfPoll},
      {"sfDispose", SfDispose},
      {"tlCreate", TlCreate},
      {"tlCreateFence", TlCreateFence},
      {"tlInc", TlInc},
      {"tlGetDeadline", TlGetDeadline},
      {"tlClose", TlClose},
      {"ksfFromFd", KsfFromFd},
      {"ksfFd", KsfFd},
      {"ksfClose", KsfClose},
      {"ksfMerge", KsfMerge},
      {"ksfInfo", KsfInfo},
      {"ksfIsSignaled", KsfIsSignaled},
      {"ksfSetDeadline", KsfSetDeadline},
      {"ksfFence", KsfFence},
      {"ksfPoll", KsfPoll},
      {"ksfPollCancel", KsfPollCancel},
      {"kswOpen", KswOpen},
      {"kswCreateFence", KswCreateFence},
      {"kswInc", KswInc},
      {"kswGetDeadline", KswGetDeadline},
      {"kswClose", KswClose},
      {"kswAvailable", KswAvailable},
  });
}

}  // namespace dmabuf::addon
