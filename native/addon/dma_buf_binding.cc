// A dma-buf's implicit sync for JavaScript: its reservation object (emulated
// buffers only: userspace never reaches the kernel's), EXPORT/IMPORT_SYNC_FILE
// on both backends, and revocation of a revocable (VFIO-like) exporter.
// lib/dma_buf.ts validates; these return values, negative errnos, or the
// kernel backend's [errno, op, message].
//
// Calls that would take the buffer's reservation lock return -EDEADLK when the
// calling thread already holds it (through DmaBuf.resv.lock()): the ww_mutex
// is not recursive, and the thread would wait for itself.
#include <cerrno>

#include "bindings.h"
#include "dma_buf.h"
#include "dma_buf_ioctl.h"
#include "dma_buf_obj.h"
#include "dma_buf_resv.h"
#include "handles.h"
#include "kernel/dma_buf.h"
#include "resv.h"
#include "vfio_dmabuf.h"

namespace dmabuf::addon {
namespace {

Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// bufResv(b) -> Resv External | -EBADF | -EOPNOTSUPP (kernel backend)
Napi::Value BufResv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) return Num(env, -EBADF);
  if (b->kernel) return Num(env, -EOPNOTSUPP);
  return WrapBufResv(env, b->emu);
}

// bufExportSyncFile(b, flags) -> SyncFile External (emulated or kernel) | -errno | KError
Napi::Value BufExportSyncFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  const uint32_t flags = info[1].As<Napi::Number>().Uint32Value();
  if (b->closed) return Num(env, -EBADF);
  if (b->kernel) {
    auto r = kernel::dma_buf_export_sync(b->kfd, flags);
    if (!r) return KErrValue(env, r.error());
    return WrapKernelSyncFile(env, std::move(r.value()));
  }
  // Through the ioctl entry point: ENOTTY on emulated kernels before 6.0.
  DmaBufSyncFileArg arg{flags, nullptr};
  long r = dma_buf_ioctl(b->emu, kDmaBufIoctlExportSyncFile, &arg);
  if (r < 0) return Num(env, static_cast<double>(r));
  return WrapSyncFile(env, arg.fd);
}

// bufImportSyncFile(b, syncFile, flags) -> 0 | -errno | KError. The sync_file
// handle must be of the buffer's backend (lib/dma_buf.ts checks).
Napi::Value BufImportSyncFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  const uint32_t flags = info[2].As<Napi::Number>().Uint32Value();
  if (b->kernel) {
    const int sfd = KernelSyncFileFd(info[1]);
    if (sfd < 0) throw BadHandle(env, "kernel sync_file handle");
    if (b->closed) return Num(env, -EBADF);
    auto r = kernel::dma_buf_import_sync(b->kfd, flags, sfd);
    if (!r) return KErrValue(env, r.error());
    return Num(env, 0);
  }
  SyncFile* sf = SyncFileFromHandle(info[1]);
  if (!sf) throw BadHandle(env, "sync_file handle");
  if (b->closed) return Num(env, -EBADF);
  if (resv_held(dma_buf_resv(b->emu))) return Num(env, -EDEADLK);
  DmaBufSyncFileArg arg{flags, sf};
  return Num(env, static_cast<double>(dma_buf_ioctl(b->emu, kDmaBufIoctlImportSyncFile, &arg)));
}

// bufSetRevoked(b, revoked) -> 0 | -EINVAL (not revocable) | -EBADF | -EDEADLK | -EOPNOTSUPP
Napi::Value BufSetRevoked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) return Num(env, -EBADF);
  if (b->kernel) return Num(env, -EOPNOTSUPP);
  if (resv_held(dma_buf_resv(b->emu))) return Num(env, -EDEADLK);
  return Num(env, vfio_dmabuf_set_revoked(b->emu, info[1].ToBoolean()));
}

// bufRevoked(b) -> 1 | 0 (also for anything not revocable) | -EBADF | -EDEADLK
Napi::Value BufRevoked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) return Num(env, -EBADF);
  if (b->kernel) return Num(env, 0);
  if (resv_held(dma_buf_resv(b->emu))) return Num(env, -EDEADLK);  // the query takes the lock
  return Num(env, vfio_dmabuf_is_revoked(b->emu) ? 1 : 0);
}

// bufRevocable(b) -> whether the buffer comes from a revocable exporter
Napi::Value BufRevocable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), BufArgAt(info, 0)->revocable);
}

}  // namespace

void RegisterDmaBuf(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> fns[] = {
      {"bufResv", BufResv},
      {"bufExportSyncFile", BufExportSyncFile},
      {"bufImportSyncFile", BufImportSyncFile},
      {"bufSetRevoked", BufSetRevoked},
      {"bufRevoked", BufRevoked},
      {"bufRevocable", BufRevocable},
  };
  for (auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace dmabuf::addon
