// sync_file bindings: one handle kind (SfObj, sync_file_obj.h) for both
// backends, the emulated sync_file of native/core and a real fd (native/kernel);
// each function picks the backend from the handle. lib/sync_file.ts validates
// every argument first.
//
// Failures throw DmaBufError: the emulated ioctl's errno, or the kernel
// backend's KError (errno, ioctl or syscall, message).
#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <uv.h>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/fd_watch.h"
#include "addon/sync_file_obj.h"
#include "core/sync/sync_file_fd.h"
#include "kernel/kernel_fence.h"
#include "kernel/sync_file.h"

namespace dmabuf::addon {

void sf_put(SfObj* s) {
  if (s->emu) sync_file_put(s->emu);
  if (s->kfd >= 0) (void)kernel::close_fd(s->kfd);
  if (s->efd >= 0) (void)kernel::close_fd(s->efd);
  delete s;
}

SfObj* SfArgAt(const Napi::CallbackInfo& info, size_t i) {
  SfObj* s = SfHolder::From(info[i]);
  if (!s) throw BadHandle(info.Env(), "sync_file handle");
  return s;
}

Napi::Value WrapEmuSyncFile(Napi::Env env, SyncFile* adopted) {
  SfObj* s = new (std::nothrow) SfObj{adopted, -1, -1};
  if (!s) {
    sync_file_put(adopted);
    throw std::bad_alloc();
  }
  return SfHolder::Wrap(env, s);  // drops the reference if the handle cannot be made
}

Napi::Value WrapKernelSyncFile(Napi::Env env, kernel::UniqueFd fd) {
  SfObj* s = new (std::nothrow) SfObj{nullptr, fd.get(), -1};
  if (!s) throw std::bad_alloc();  // `fd` closes itself
  fd.release();
  return SfHolder::Wrap(env, s);  // closes the fd if the handle cannot be made
}

namespace {

std::string Str32(const char* s) { return std::string(s, strnlen(s, 32)); }

Napi::Object InfoObject(Napi::Env env, const std::string& name, int status, Napi::Array fences) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("status", status);
  o.Set("fences", fences);
  return o;
}
Napi::Object LeafObject(Napi::Env env, const std::string& obj, const std::string& drv, int status,
                        uint64_t ts) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("objName", obj);
  o.Set("driverName", drv);
  o.Set("status", status);
  o.Set("timestampNs", Napi::BigInt::New(env, ts));
  return o;
}

// sfCreate(fence): a new emulated sync_file holding a reference to the fence; ENOMEM
Napi::Value SfCreate(const Napi::CallbackInfo& info) {
  Fence* f = FenceFromHandle(info[0]);
  if (!f) throw BadHandle(info.Env(), "fence handle");
  SyncFile* sf = sync_file_create(f);
  if (!sf) throw ErrnoError(info.Env(), -ENOMEM, "sync_file_create", "cannot create a sync_file");
  return WrapEmuSyncFile(info.Env(), sf);
}

// An exported emulated fence's fd (another process's emulated sync_file, sent
// here): an emulated sync_file over a fence that signals when the fd does,
// keeping the fd as its own.
Napi::Value WrapSyncFd(Napi::Env env, kernel::UniqueFd fd) {
  auto own = kernel::dup_fd(fd.get());
  if (!own) throw KernelError(env, own.error());
  auto f = kernel::kernel_fence_adopt_sync_fd(std::move(*own));
  if (!f) throw KernelError(env, f.error());
  SyncFile* sf = sync_file_create(*f);
  fence_put(*f);
  if (!sf) throw ErrnoError(env, -ENOMEM, "sync_file_create", "cannot create a sync_file");
  SfObj* s = new (std::nothrow) SfObj{sf, -1, fd.get()};
  if (!s) {
    sync_file_put(sf);
    throw std::bad_alloc();  // `fd` closes itself
  }
  fd.release();
  return SfHolder::Wrap(env, s);
}

// sfFromFd(fd, dup): a real sync_file fd (checked with SYNC_IOC_FILE_INFO), or
// an emulated sync_file's fd from another process. With dup the caller keeps
// its fd; without, the fd is taken over (closed here) once the handle exists,
// and left with the caller on any failure.
Napi::Value SfFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw BadArg(env, "expected an fd number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const bool dup = info[1].ToBoolean();
  auto n = kernel::sync_file_fence_count(fd);
  const bool sync_fd = !n && n.error().err == -ENOTTY && sync_fd_is_export(fd);
  if (!n && !sync_fd) throw KernelError(env, n.error());
  // Always a dup of our own: on any failure below it closes, and the caller's
  // fd stays the caller's (dup: false hands it over only on success).
  auto own = kernel::dup_fd(fd);
  if (!own) throw KernelError(env, own.error());
  Napi::Value h = sync_fd ? WrapSyncFd(env, std::move(*own)) : WrapKernelSyncFile(env, std::move(*own));
  if (!dup) (void)kernel::close_fd(fd);
  return h;
}

// sfBackend(sf): 'emulated' | 'kernel'
Napi::Value SfBackend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), BackendName(SfArgAt(info, 0)->kernel()));
}

// sfMerge(name, a, b): SYNC_IOC_MERGE; two backends: EINVAL
Napi::Value SfMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StrArg(info, 0);
  SfObj* a = SfArgAt(info, 1);
  SfObj* b = SfArgAt(info, 2);
  if (a->kernel() != b->kernel())
    throw ErrnoError(env, -EINVAL, "SYNC_IOC_MERGE",
                     std::string("cannot merge ") + ABackend(a->kernel()) + " sync_file with " +
                         ABackend(b->kernel()) + " one");
  if (a->kernel()) {
    auto r = kernel::sync_file_merge(name.c_str(), a->kfd, b->kfd);
    if (!r) throw KernelError(env, r.error());
    return WrapKernelSyncFile(env, std::move(*r));
  }
  SyncMergeData d{};
  strncpy(d.name, name.c_str(), sizeof(d.name) - 1);
  d.fd2 = b->emu;
  int r = sync_file_ioctl_merge(a->emu, &d);
  if (r < 0) throw ErrnoError(env, r, "SYNC_IOC_MERGE", "merge failed");
  return WrapEmuSyncFile(env, d.fence);
}

// sfFd(sf): the fd: a kernel sync_file's own, or for an emulated one an
// exported fd (made on first use) that polls readable once its fence signals,
// here and in any process it is sent to.
Napi::Value SfFd(const Napi::CallbackInfo& info) {
  SfObj* s = SfArgAt(info, 0);
  if (s->kernel()) return Napi::Number::New(info.Env(), s->kfd);
  if (s->efd < 0) {
    Fence* f = sync_file_get_fence(s->emu);
    const int fd = sync_fd_export(f);
    fence_put(f);
    if (fd < 0) throw ErrnoError(info.Env(), fd, "sync_file_fd", "cannot export the sync_file as an fd");
    s->efd = fd;
  }
  return Napi::Number::New(info.Env(), s->efd);
}

// sfWaitFd(sf): the fd a wait watches with uv_poll (a kernel sync_file's), or
// -1: wait through the fence (emulated ones; no socket needed).
Napi::Value SfWaitFd(const Napi::CallbackInfo& info) {
  SfObj* s = SfArgAt(info, 0);
  return Napi::Number::New(info.Env(), s->kernel() ? s->kfd : -1);
}

// sfFence(sf): the emulated sync_file's fence, or for a real fd the
// kernel-fence bridge (owning a dup, signalled by the epoll watcher).
Napi::Value SfFence(const Napi::CallbackInfo& info) {
  SfObj* s = SfArgAt(info, 0);
  if (!s->kernel()) return WrapFence(info.Env(), sync_file_get_fence(s->emu));
  auto r = kernel::kernel_fence_wrap(s->kfd);
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapFence(info.Env(), *r);
}

// sfInfo(sf): {name, status, fences}: SYNC_IOC_FILE_INFO
Napi::Value SfInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SfObj* s = SfArgAt(info, 0);
  if (s->kernel()) {
    auto r = kernel::sync_file_get_info(s->kfd);
    if (!r) throw KernelError(env, r.error());
    Napi::Array arr = Napi::Array::New(env, r->fences.size());
    for (size_t i = 0; i < r->fences.size(); ++i) {
      const auto& l = r->fences[i];
      arr.Set(static_cast<uint32_t>(i), LeafObject(env, l.obj_name, l.driver_name, l.status, l.timestamp_ns));
    }
    return InfoObject(env, r->name, r->status, arr);
  }
  // The two-call pattern userspace uses: count, then fill.
  SyncFileInfo count{};
  int r = sync_file_ioctl_fence_info(s->emu, &count);
  if (r < 0) throw ErrnoError(env, r, "SYNC_IOC_FILE_INFO", "cannot read sync_file info");
  std::vector<SyncFenceInfo> leaves(count.num_fences);
  SyncFileInfo fill{};
  fill.num_fences = count.num_fences;
  fill.sync_fence_info = leaves.data();
  r = sync_file_ioctl_fence_info(s->emu, &fill);
  if (r < 0) throw ErrnoError(env, r, "SYNC_IOC_FILE_INFO", "cannot read sync_file info");
  Napi::Array arr = Napi::Array::New(env, fill.num_fences);
  for (uint32_t i = 0; i < fill.num_fences; ++i) {
    const SyncFenceInfo& l = leaves[i];
    arr.Set(i, LeafObject(env, Str32(l.obj_name), Str32(l.driver_name), l.status, l.timestamp_ns));
  }
  // The container's own status (first call) is the sync_file's status.
  return InfoObject(env, Str32(count.name), count.status, arr);
}

// sfIsSignaled(sf): poll(2) readiness. Like the kernel's first poll it arms
// the fence callback (enables signalling, so containers record errors).
Napi::Value SfIsSignaled(const Napi::CallbackInfo& info) {
  SfObj* s = SfArgAt(info, 0);
  if (!s->kernel()) return Napi::Boolean::New(info.Env(), sync_file_poll(s->emu, nullptr) != 0);
  auto r = kernel::sync_file_is_signaled(s->kfd);
  if (!r) throw KernelError(info.Env(), r.error());
  return Napi::Boolean::New(info.Env(), *r);
}

// sfSetDeadline(sf, ns: bigint): SYNC_IOC_SET_DEADLINE
Napi::Value SfSetDeadline(const Napi::CallbackInfo& info) {
  SfObj* s = SfArgAt(info, 0);
  const uint64_t ns = U64Arg(info, 1);
  if (s->kernel()) {
    auto r = kernel::sync_file_set_deadline(s->kfd, ns);
    if (!r) throw KernelError(info.Env(), r.error());
    return info.Env().Undefined();
  }
  SyncSetDeadline d{};
  d.deadline_ns = ns;
  if (int r = sync_file_ioctl_set_deadline(s->emu, &d))
    throw ErrnoError(info.Env(), r, "SYNC_IOC_SET_DEADLINE", "cannot set the deadline");
  return info.Env().Undefined();
}

// sfClose(sf): drops the reference / closes the fd (idempotent)
Napi::Value SfClose(const Napi::CallbackInfo& info) {
  SfHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// sfPoll(sf, cb): token. Watches the sync_file's fd for POLLIN (fd_watch.h);
// EINVAL for a sync_file without an fd (lib/ waits on those through their fence).
Napi::Value SfPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SfObj* s = SfArgAt(info, 0);
  if (!info[1].IsFunction()) throw BadArg(env, "expected a callback");
  if (s->kfd < 0) throw ErrnoError(env, -EINVAL, "uv_poll_init", "this sync_file has no fd to poll");
  return FdWatchStart(env, s->kfd, UV_READABLE, info[1].As<Napi::Function>());
}

// sfPollCancel(token): stops a pending watch (idempotent).
Napi::Value SfPollCancel(const Napi::CallbackInfo& info) {
  FdWatchCancel(info.Env(), info[0]);
  return info.Env().Undefined();
}

}  // namespace

void RegisterSyncFile(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"sfCreate", SfCreate},
      {"sfFromFd", SfFromFd},
      {"sfBackend", SfBackend},
      {"sfMerge", SfMerge},
      {"sfFd", SfFd},
      {"sfWaitFd", SfWaitFd},
      {"sfFence", SfFence},
      {"sfInfo", SfInfo},
      {"sfIsSignaled", SfIsSignaled},
      {"sfSetDeadline", SfSetDeadline},
      {"sfPoll", SfPoll},
      {"sfPollCancel", SfPollCancel},
      {"sfClose", SfClose},
  });
}

}  // namespace dmabuf::addon
