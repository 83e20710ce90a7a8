// The JS handle kinds of sync_file_binding.cc and sw_sync_binding.cc: one
// handle per object whatever its backend, so the backend is chosen here, in
// the addon, once (as for buffers, dma_buf_obj.h) and lib/ never branches on it.
#pragma once

#include <napi.h>

#include <atomic>

#include "addon/handles.h"
#include "core/sync/sw_sync.h"
#include "core/sync/sync_file.h"
#include "kernel/fd.h"

namespace dmabuf::addon {

// A sync_file: an emulated one (one reference) or a real fd (owned). An
// emulated one gets an fd too when asked (efd: core/sync/sync_file_fd.h).
struct SfObj {
  SyncFile* emu = nullptr;
  int kfd = -1;
  int efd = -1;
  bool kernel() const { return emu == nullptr; }
};
void sf_put(SfObj* s);
using SfHolder = Holder<SfObj, sf_put, 0x53594e43>;  // "SYNC"

// A sw_sync timeline: the emulated debugfs file or the real one's fd, shared
// by every JS object that holds it (one per worker that imported it, as a
// file is by the fds of a dup). Dropping the last reference is the file's
// release (pending points signal with -ENOENT).
struct TlObj {
  SyncTimeline* emu = nullptr;
  int kfd = -1;
  std::atomic<int> refs{1};
  bool kernel() const { return emu == nullptr; }
};
void tl_put(TlObj* t);
using TlHolder = Holder<TlObj, tl_put, 0x53575359>;  // "SWSY"

inline const char* BackendName(bool kernel) { return kernel ? "kernel" : "emulated"; }
// "a kernel" / "an emulated", for messages.
inline const char* ABackend(bool kernel) { return kernel ? "a kernel" : "an emulated"; }

// The sync_file behind info[i]; EBADF (BadHandle) for anything else or once closed.
SfObj* SfArgAt(const Napi::CallbackInfo& info, size_t i);
// New handles, adopting the reference / the fd (released if wrapping fails).
Napi::Value WrapEmuSyncFile(Napi::Env env, SyncFile* adopted);
Napi::Value WrapKernelSyncFile(Napi::Env env, kernel::UniqueFd fd);

}  // namespace dmabuf::addon
