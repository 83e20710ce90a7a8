// A dma-buf's implicit sync for JavaScript: its reservation object (emulated
// buffers only: userspace never reaches the kernel's), EXPORT/IMPORT_SYNC_FILE
// on both backends, and revocation of a revocable (VFIO-like) exporter.
// lib/dma_buf.ts validates; these return values and throw failures as
// DmaBufError (the core's errno, or the kernel backend's KError).
//
// The core answers -EDEADLK for calls that would take the buffer's
// reservation lock while the calling thread holds it (through
// DmaBuf.resv.lock()): the ww_mutex is not recursive.
#include <poll.h>
#include <uv.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/dma_buf_obj.h"
#include "addon/fd_watch.h"
#include "addon/handles.h"
#include "addon/sync_file_obj.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/buffer/vfio_dmabuf.h"
#include "kernel/dma_buf.h"

namespace dmabuf::addon {
namespace {

// DMA_BUF_SYNC_READ / _WRITE / _RW as the TypeScript API spells them.
const char* DirName(uint32_t flags) {
  switch (flags & kDmaBufSyncRw) {
    case kDmaBufSyncRead: return "read";
    case kDmaBufSyncWrite: return "write";
    default: return "readwrite";
  }
}
Napi::Error LockedByCaller(Napi::Env env, int err, const char* op) {
  return ErrnoError(env, err, op, "this thread holds the buffer's reservation lock (resv.lock()): unlock it first");
}

// bufResv(b) -> Resv External. EBADF closed; EOPNOTSUPP for a kernel buffer.
// bufBackend(b): 'emulated' | 'kernel' (also once closed)
Napi::Value BufBackend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), BackendName(BufArgAt(info, 0)->kernel));
}

Napi::Value BufResv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) throw ErrnoError(env, -EBADF, "dma_buf_resv", "dma-buf is closed");
  if (b->kernel)
    throw ErrnoError(env, -EOPNOTSUPP, "dma_buf_resv",
                     "a kernel dma-buf's reservation object is not reachable from userspace: use "
                     "exportSyncFile()/importSyncFile()");
  return WrapBufResv(env, b->emu);
}

// bufExportSyncFile(b, flags) -> SyncFile External (emulated or kernel)
Napi::Value BufExportSyncFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "DMA_BUF_IOCTL_EXPORT_SYNC_FILE";
  BufObj* b = BufArgAt(info, 0);
  const uint32_t flags = U32Arg(info, 1);
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (b->kernel) {
    auto r = kernel::dma_buf_export_sync(b->kfd, flags);
    if (!r) throw KernelError(env, r.error());
    return WrapKernelSyncFile(env, std::move(r.value()));
  }
  // Through the ioctl entry point: ENOTTY on emulated kernels before 6.0.
  DmaBufSyncFileArg arg{flags, nullptr};
  long r = dma_buf_ioctl(b->emu, kDmaBufIoctlExportSyncFile, &arg);
  if (r < 0)
    throw ErrnoError(env, static_cast<int>(r), kOp, std::string("exporting the implicit fences for ") + DirName(flags));
  return WrapEmuSyncFile(env, arg.fd);
}

// bufImportSyncFile(b, syncFile, flags). The sync_file must be of the
// buffer's backend: EINVAL otherwise.
Napi::Value BufImportSyncFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "DMA_BUF_IOCTL_IMPORT_SYNC_FILE";
  BufObj* b = BufArgAt(info, 0);
  SfObj* sf = SfArgAt(info, 1);
  const uint32_t flags = U32Arg(info, 2);
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (b->kernel != sf->kernel())
    throw ErrnoError(env, -EINVAL, kOp,
                     std::string("cannot import ") + ABackend(sf->kernel()) + " sync_file into " +
                         ABackend(b->kernel) + " dma-buf");
  if (b->kernel) {
    auto r = kernel::dma_buf_import_sync(b->kfd, flags, sf->kfd);
    if (!r) throw KernelError(env, r.error());
    return env.Undefined();
  }
  DmaBufSyncFileArg arg{flags, sf->emu};
  const long r = dma_buf_ioctl(b->emu, kDmaBufIoctlImportSyncFile, &arg);
  if (r == -EDEADLK) throw LockedByCaller(env, -EDEADLK, kOp);
  if (r < 0)
    throw ErrnoError(env, static_cast<int>(r), kOp, std::string("importing a sync_file for ") + DirName(flags));
  return env.Undefined();
}

// bufSetRevoked(b, revoked): EINVAL (not revocable), EBADF, EDEADLK (the
// caller holds the lock), EOPNOTSUPP (kernel buffer)
Napi::Value BufSetRevoked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  const bool revoked = info[1].ToBoolean();
  const char* op = revoked ? "vfio_pci_dma_buf_move(revoke)" : "vfio_pci_dma_buf_move(restore)";
  if (b->closed) throw ErrnoError(env, -EBADF, op, "dma-buf is closed");
  if (b->kernel) throw ErrnoError(env, -EOPNOTSUPP, op, "a kernel dma-buf cannot be revoked from userspace");
  // Revocation zaps CPU mappings: JS must not hold an ArrayBuffer over one.
  if (revoked && b->revocable && !dma_buf_resv_held(b->emu)) buf_forget_ab(b, true);
  const int r = vfio_dmabuf_set_revoked(b->emu, revoked);
  if (r == -EDEADLK) throw LockedByCaller(env, r, op);
  if (r == -EINVAL) throw ErrnoError(env, r, op, "not a revocable exporter (exportVfioBuffer() makes one)");
  if (r < 0) throw ErrnoError(env, r, op, "revoking the buffer");
  return env.Undefined();
}

// bufRevoked(b) -> whether revoked (false for anything not revocable); EBADF,
// EDEADLK (the query takes the lock the caller holds)
Napi::Value BufRevoked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "vfio_dmabuf_revoked";
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (b->kernel) return Napi::Boolean::New(env, false);
  const int r = vfio_dmabuf_revoked(b->emu);
  if (r == -EDEADLK) throw LockedByCaller(env, r, kOp);
  if (r < 0) throw ErrnoError(env, r, kOp, "reading the revocation state");
  return Napi::Boolean::New(env, r == 1);
}

// bufRevocable(b) -> whether the buffer comes from a revocable exporter
Napi::Value BufRevocable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), BufArgAt(info, 0)->revocable);
}

// bufFromFd(fd, dup): any dma-buf fd as a kernel-backend buffer handle. The fd
// must be on the dma-buf filesystem (kernel::dma_buf_check_fd: EINVAL
// otherwise, EBADF for a closed one); with dup the handle owns a dup and the
// caller keeps `fd`, else the handle takes `fd` over (only once it is known to
// be a dma-buf: when refused the caller still owns it).
Napi::Value BufFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw BadArg(env, "fd: expected a number");
  const double v = info[0].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 2147483647.0) || std::floor(v) != v)
    throw Napi::RangeError::New(env, "dmabuf: fd must be an integer >= 0 and <= 2147483647");
  if (!info[1].IsBoolean()) throw BadArg(env, "dup: expected a boolean");
  const int fd = static_cast<int>(v);
  const bool dup = info[1].As<Napi::Boolean>().Value();
  auto ok = kernel::dma_buf_check_fd(fd);
  if (!ok) throw KernelError(env, ok.error());
  if (!dup) return WrapKernelDmaBuf(env, fd);
  auto d = kernel::dup_fd(fd);
  if (!d) throw KernelError(env, d.error());
  return WrapKernelDmaBuf(env, d->release());
}

// 'read' | 'write' at info[i] (dma_buf_poll's two directions); TypeError otherwise.
bool PollDirArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw BadArg(info.Env(), "dir: expected 'read' or 'write'");
  const std::string d = info[i].As<Napi::String>().Utf8Value();
  if (d == "read") return false;
  if (d == "write") return true;
  throw BadArg(info.Env(), "dir: expected 'read' or 'write'");
}

// bufBusy(b, dir) -> whether poll() on the buffer would block for `dir`:
// 'read' (EPOLLIN) waits for the writers, 'write' (EPOLLOUT) for every fence
// (dma_buf_poll). Kernel: a non-blocking poll() of the fd; emulated: the
// core's dma_buf_poll on the reservation object. EBADF once closed.
Napi::Value BufBusy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "dma_buf_poll";
  BufObj* b = BufArgAt(info, 0);
  const bool write = PollDirArg(info, 1);
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (b->kernel) {
    const short ev = write ? POLLOUT : POLLIN;
    auto r = kernel::dma_buf_poll(b->kfd, ev, 0);
    if (!r) throw KernelError(env, r.error());
    if (r.value() & POLLNVAL) throw ErrnoError(env, -EBADF, kOp, "poll(): the fd is not open");
    return Napi::Boolean::New(env, (r.value() & (ev | POLLERR | POLLHUP)) == 0);
  }
  const unsigned mask = dma_buf_poll(b->emu);
  return Napi::Boolean::New(env, (mask & (write ? 0x4u : 0x1u)) == 0);
}

// bufPollable(b) -> whether the buffer has a kernel fd that uv_poll can watch
// (lib/ waits for one with bufPoll, for the others through the resv). EBADF once closed.
Napi::Value BufPollable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) throw ErrnoError(env, -EBADF, "dma_buf_poll", "dma-buf is closed");
  return Napi::Boolean::New(env, b->kernel && b->kfd >= 0);
}

// bufPoll(b, events, cb) -> token. Watches the kernel fd with uv_poll
// (fd_watch.h) for events: 1 readable ('read' waiters), 2 writable ('write'
// waiters), 3 both. One watch per fd per loop: the caller shares it. EINVAL
// for an emulated buffer, EBADF once closed.
Napi::Value BufPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr const char* kOp = "uv_poll_init";
  BufObj* b = BufArgAt(info, 0);
  if (!info[1].IsNumber()) throw BadArg(env, "events: expected a number");
  const double ev = info[1].As<Napi::Number>().DoubleValue();
  if (!(ev == 1 || ev == 2 || ev == 3)) throw Napi::RangeError::New(env, "dmabuf: events must be 1, 2 or 3");
  if (!info[2].IsFunction()) throw BadArg(env, "expected a callback");
  if (b->closed) throw ErrnoError(env, -EBADF, kOp, "dma-buf is closed");
  if (!b->kernel || b->kfd < 0) throw ErrnoError(env, -EINVAL, kOp, "this dma-buf has no kernel fd to poll");
  const int uvev = (ev == 1 ? UV_READABLE : ev == 2 ? UV_WRITABLE : UV_READABLE | UV_WRITABLE);
  return FdWatchStart(env, b->kfd, uvev, info[2].As<Napi::Function>());
}

// bufPollCancel(token): stops a pending watch (idempotent).
Napi::Value BufPollCancel(const Napi::CallbackInfo& info) {
  FdWatchCancel(info.Env(), info[0]);
  return info.Env().Undefined();
}

}  // namespace

void RegisterDmaBuf(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"bufBackend", BufBackend},
      {"bufResv", BufResv},
      {"bufExportSyncFile", BufExportSyncFile},
      {"bufImportSyncFile", BufImportSyncFile},
      {"bufSetRevoked", BufSetRevoked},
      {"bufRevoked", BufRevoked},
      {"bufRevocable", BufRevocable},
      {"bufFromFd", BufFromFd},
      {"bufBusy", BufBusy},
      {"bufPollable", BufPollable},
      {"bufPoll", BufPoll},
      {"bufPollCancel", BufPollCancel},
  });
}

}  // namespace dmabuf::addon
