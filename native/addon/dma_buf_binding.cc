// A dma-buf's implicit sync for JavaScript: its reservation object (emulated
// buffers only: userspace never reaches the kernel's), EXPORT/IMPORT_SYNC_FILE
// on both backends, and revocation of a revocable (VFIO-like) exporter.
// lib/dma_buf.ts validates; these return values and throw failures as
// DmaBufError (the core's errno, or the kernel backend's KError).
//
// The core answers -EDEADLK for calls that would take the buffer's
// reservation lock while the calling thread holds it (through
// DmaBuf.resv.lock()): the ww_mutex is not recursive.
#include <cerrno>
#include <string>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/dma_buf_obj.h"
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
  });
}

}  // namespace dmabuf::addon
