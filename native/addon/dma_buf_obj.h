// What the heap, platform, dma-buf and attachment bindings share: the JS
// handle kinds over an emulated platform and over a buffer (either backend).
// One definition here so every file agrees on
// the Holder types (a handle made in one file is checked in another).
#pragma once

#include <napi.h>

#include <atomic>
#include <cstddef>

#include "addon/handles.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/mapping.h"
#include "core/mm/platform.h"

namespace dmabuf::addon {

// A kernel CPU mapping shared by the buffer and its ArrayBuffer's finalizer:
// munmap happens at unmap/close (after the ArrayBuffer is detached); the struct
// lives until both let go.
struct KMap {
  void* addr;
  size_t len;
  std::atomic<int> refs{2};
};
void kmap_put(KMap* m);

// A buffer handle: an emulated DmaBuf (an object reference, plus the user fd's
// file reference until closed) or a real dma-buf fd.
struct BufObj {
  bool kernel;
  DmaBuf* emu = nullptr;
  Mapping* emap = nullptr;
  int kfd = -1;
  KMap* kmap = nullptr;
  bool closed = false;
  bool revocable = false;  // from vfioExport: revoke() may zap its CPU mappings
  // What V8 was told this buffer costs (napi_adjust_external_memory), given
  // back at close: its size plus kFdCost for the fd, so that buffers a
  // program forgets to close() push the GC (which closes them) before the
  // process runs out of memory or fds.
  napi_env env = nullptr;
  int64_t charged = 0;
  // map()'s ArrayBuffer, weakly: if the buffer goes away (collected without
  // close()) while JS still holds the ArrayBuffer, it is detached first, so
  // JS never touches the invalidated mapping.
  napi_ref ab_ref = nullptr;
};
inline constexpr int64_t kFdCost = 1 << 20;
void buf_put(BufObj* b);
// Drops the weak reference to map()'s ArrayBuffer; with `detach`, detaches it
// first (before anything invalidates the mapping under it).
void buf_forget_ab(BufObj* b, bool detach);
using BufHolder = Holder<BufObj, buf_put, 0x444d4142>;  // "DMAB"

void plat_put(Platform* p);
using PlatHolder = Holder<Platform, plat_put, 0x504c4154>;  // "PLAT"


// The buffer behind info[i]; throws BadHandle for anything else.
BufObj* BufArgAt(const Napi::CallbackInfo& info, size_t i);
// Optional platform argument: undefined/null -> the default platform.
Platform* PlatArgAt(const Napi::CallbackInfo& info, size_t i);

// Wraps a buffer from an emulated exporter (the caller's file reference is
// adopted; an object reference is taken here).
Napi::Value WrapEmuBuf(Napi::Env env, DmaBuf* buf, bool revocable = false);

}  // namespace dmabuf::addon
