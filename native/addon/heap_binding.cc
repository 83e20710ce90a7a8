// dma-buf heap and buffer bindings, emulated (native/core) and real kernel
// (native/kernel): Holder Externals over a heap and over a buffer. The heap
// functions (heapList, heapOpen, heapDispose, heapAlloc) serve lib/heap.ts,
// also for the platform heaps lib/platform.ts opens through it; the buffer's
// fd, size, fdinfo, name, CPU-access sync, mmap/unmap, close and dispose
// (buf*) serve lib/dma_buf.ts. The buffer's reservation object, sync_file
// import/export and revocation are in dma_buf_binding.cc; attachments in
// attach_binding.cc (lib/attachment.ts). Flat functions that return values
// and throw failures as DmaBufError (the core's errno, or the kernel
// backend's KError with its op and message); lib/ validates.
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/dma_buf_obj.h"
#include "addon/handles.h"
#include "core/buffer/dma_buf.h"
#include "core/buffer/mapping.h"
#include "core/buffer/memfd_buf.h"
#include "core/heaps/heap.h"
#include "core/mm/platform.h"
#include "kernel/dma_buf.h"
#include "kernel/fdinfo.h"
#include "kernel/heap.h"

namespace dmabuf::addon {
namespace {

struct HeapObj {
  bool kernel;
  Platform* platform;        // emulated: a reference
  dmabuf::Heap* emu;         // owned by the platform
  kernel::Heap k;            // kernel: the open node
};
void heap_put(HeapObj* h) {
  if (h->platform) platform_put(h->platform);
  delete h;
}
using HeapHolder = Holder<HeapObj, heap_put, 0x48454150>;  // "HEAP"

}  // namespace

void kmap_put(KMap* m) {
  if (m->refs.fetch_sub(1) == 1) delete m;
}

namespace {

void buf_unmap(BufObj* b) {
  if (b->emap) {
    mapping_invalidate(b->emap);
    mapping_put(b->emap);
    b->emap = nullptr;
  }
  if (b->kmap) {
    munmap(b->kmap->addr, b->kmap->len);
    kmap_put(b->kmap);
    b->kmap = nullptr;
  }
}
// Tells V8 what the buffer costs while its fd is open (see BufObj::charged).
Napi::Value WrapCharged(Napi::Env env, BufObj* b, uint64_t size) {
  int64_t total;
  b->env = env;
  b->charged = static_cast<int64_t>(std::min<uint64_t>(size, INT64_MAX / 2)) + kFdCost;
  napi_adjust_external_memory(env, b->charged, &total);
  return BufHolder::Wrap(env, b);
}

int buf_close(BufObj* b) {
  if (b->closed) return -EBADF;
  buf_unmap(b);
  b->closed = true;
  if (b->charged) {
    int64_t total;
    napi_adjust_external_memory(b->env, -b->charged, &total);
    b->charged = 0;
  }
  if (b->kernel) {
    int r = kernel::dma_buf_close(b->kfd).err();
    b->kfd = -1;
    return r;
  }
  return dma_buf_close(b->emu);
}

}  // namespace

// Forgets map()'s ArrayBuffer, detaching it first if JS may still hold it.
void buf_forget_ab(BufObj* b, bool detach) {
  if (!b->ab_ref) return;
  napi_value ab = nullptr;
  if (detach && napi_get_reference_value(b->env, b->ab_ref, &ab) == napi_ok && ab)
    napi_detach_arraybuffer(b->env, ab);
  napi_delete_reference(b->env, b->ab_ref);
  b->ab_ref = nullptr;
}

void buf_put(BufObj* b) {
  buf_forget_ab(b, true);
  if (!b->closed) (void)buf_close(b);
  if (b->emu) dma_buf_obj_put(b->emu);
  delete b;
}

void plat_put(Platform* p) { platform_put(p); }

Platform* PlatArgAt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return platform_default();
  Platform* p = PlatHolder::From(info[i]);
  if (!p) throw BadHandle(info.Env(), "Platform handle");
  return p;
}

BufObj* BufArgAt(const Napi::CallbackInfo& info, size_t i) {
  BufObj* b = BufHolder::From(info[i]);
  if (!b) throw BadHandle(info.Env(), "DmaBuf handle");
  return b;
}

Napi::Value WrapEmuBuf(Napi::Env env, DmaBuf* buf, bool revocable) {
  BufObj* b;
  try {
    b = new BufObj{};
  } catch (...) {
    (void)dma_buf_close(buf);  // the adopted fd reference
    throw;
  }
  dma_buf_obj_get(buf);
  b->kernel = false;
  b->emu = buf;
  b->revocable = revocable;
  return WrapCharged(env, b, buf->size);
}

namespace {

Platform* PlatArg(const Napi::CallbackInfo& info, size_t i) { return PlatArgAt(info, i); }

HeapObj* HeapArg(const Napi::CallbackInfo& info) {
  HeapObj* h = HeapHolder::From(info[0]);
  if (!h) throw BadHandle(info.Env(), "Heap handle");
  return h;
}
BufObj* BufArg(const Napi::CallbackInfo& info) { return BufArgAt(info, 0); }
// The buffer behind info[0], open: EBADF (naming `op`) once closed.
BufObj* OpenBufArg(const Napi::CallbackInfo& info, const char* op) {
  BufObj* b = BufArgAt(info, 0);
  if (b->closed) throw ErrnoError(info.Env(), -EBADF, op, "dma-buf is closed");
  return b;
}
// Detaches a mapping's ArrayBuffer (JS can never read the range again).
void DetachArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && info[i].IsArrayBuffer() && napi_detach_arraybuffer(info.Env(), info[i]) != napi_ok)
    throw ErrnoError(info.Env(), -EINVAL, "munmap", "cannot detach the mapping's ArrayBuffer");
}

// heapList(kernel, platform?) -> [{name, kind, contiguous, cpuAccess, ccShared}]
// (kernel: [{name, path}])
Napi::Value HeapList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  if (info[0].ToBoolean()) {
    auto r = kernel::list_heaps();
    if (!r) throw KernelError(env, r.error());
    for (const auto& h : r.value()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", h.name);
      o.Set("path", h.path);
      out.Set(i++, o);
    }
    return out;
  }
  for (const auto& h : dma_heap_list(PlatArg(info, 1))) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", h.name);
    o.Set("kind", heap_kind_name(h.kind));
    o.Set("contiguous", h.contiguous);
    o.Set("cpuAccess", h.cpu_access);
    o.Set("ccShared", h.cc_shared);
    out.Set(i++, o);
  }
  return out;
}

// heapOpen(name, kernel, platform?) -> External; ENOENT for no such heap
Napi::Value HeapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StrArg(info, 0);
  if (info[1].ToBoolean()) {
    auto r = kernel::open_heap(name);
    if (!r) throw KernelError(env, r.error());
    auto* h = new HeapObj{true, nullptr, nullptr, std::move(r.value())};
    return HeapHolder::Wrap(env, h);
  }
  Platform* p = PlatArg(info, 2);
  dmabuf::Heap* heap = nullptr;
  int e = dma_heap_open(p, name.c_str(), &heap);
  if (e) throw ErrnoError(env, e, "open", "no heap named '" + name + "'");
  auto* h = new HeapObj{false, platform_get(p), heap, {}};
  return HeapHolder::Wrap(env, h);
}

Napi::Value HeapDispose(const Napi::CallbackInfo& info) {
  HeapHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// heapAlloc(h, len: bigint, fdFlags: number, heapFlags: bigint) -> External
Napi::Value HeapAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HeapObj* h = HeapArg(info);
  uint64_t len = U64Arg(info, 1);
  if (!info[2].IsNumber()) throw BadArg(env, "expected fd flags");
  uint32_t fd_flags = info[2].As<Napi::Number>().Uint32Value();
  uint64_t heap_flags = U64Arg(info, 3);
  if (h->kernel) {
    auto r = kernel::heap_alloc(h->k.fd.get(), len, fd_flags, heap_flags);
    if (!r) throw KernelError(env, r.error());
    auto* b = new BufObj{};
    b->kernel = true;
    b->kfd = r.value().release();
    return WrapCharged(env, b, len);
  }
  DmaBuf* buf = nullptr;
  int e = dma_heap_alloc(h->emu, len, fd_flags, heap_flags, &buf);
  if (e)
    throw ErrnoError(env, e, "DMA_HEAP_IOCTL_ALLOC",
                     "allocating " + std::to_string(len) + " bytes from heap '" + h->emu->name + "'");
  return WrapEmuBuf(env, buf);
}

// bufFromMemfd(fd, size: bigint, expName, name, platform?): an emulated buffer
// over a dup of a memfd another process sent (core/buffer/memfd_buf.h); the
// caller keeps and closes its fd. EINVAL for anything but a big enough memfd
// sealed against shrinking.
Napi::Value BufFromMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw BadArg(env, "expected an fd number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const uint64_t size = U64Arg(info, 1);
  const std::string exp = StrArg(info, 2);
  const std::string name = StrArg(info, 3);
  Platform* p = PlatArgAt(info, 4);
  auto d = kernel::dup_fd(fd);
  if (!d) throw KernelError(env, d.error());
  DmaBuf* buf = nullptr;
  if (int e = memfd_buf_import(p, d->release(), size, exp.c_str(), O_RDWR | O_CLOEXEC, &buf))
    throw ErrnoError(env, e, "memfd_buf_import", "not a memfd of a dma-buf's size sealed against shrinking");
  if (!name.empty()) (void)dma_buf_set_name(buf, name.c_str(), name.size() + 1);
  return WrapEmuBuf(env, buf);
}

// bufFd(b) -> fd
Napi::Value BufFd(const Napi::CallbackInfo& info) {
  BufObj* b = OpenBufArg(info, "fd");
  return Napi::Number::New(info.Env(), b->kernel ? b->kfd : b->emu->user_fd.load());
}

// bufSize(b) -> bigint
Napi::Value BufSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = OpenBufArg(info, "lseek");
  if (!b->kernel) return Napi::BigInt::New(env, b->emu->size);
  auto r = kernel::dma_buf_size(b->kfd);
  if (!r) throw KernelError(env, r.error());
  return Napi::BigInt::New(env, r.value());
}

// bufFdinfo(b) -> [[key, value]...]
Napi::Value BufFdinfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = OpenBufArg(info, "fdinfo");
  kernel::FdInfo fi;
  if (b->kernel) {
    auto r = kernel::dma_buf_fdinfo(b->kfd);
    if (!r) throw KernelError(env, r.error());
    fi = std::move(r.value());
  } else {
    std::string text;
    int e = dma_buf_fdinfo(b->emu, &text);
    if (e) throw ErrnoError(env, e, "fdinfo", "reading fdinfo");
    fi = kernel::parse_fdinfo(text);
  }
  Napi::Array out = Napi::Array::New(env, fi.entries.size());
  uint32_t i = 0;
  for (const auto& [k, v] : fi.entries) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, k);
    pair.Set(1u, v);
    out.Set(i++, pair);
  }
  return out;
}

// bufSetName(b, name)
Napi::Value BufSetName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = OpenBufArg(info, "DMA_BUF_SET_NAME");
  std::string name = StrArg(info, 1);
  if (b->kernel) {
    auto r = kernel::dma_buf_set_name(b->kfd, name);
    if (!r) throw KernelError(env, r.error());
    return env.Undefined();
  }
  // Like the ioctl's strndup_user of DMA_BUF_NAME_LEN: the string with its NUL.
  if (int e = dma_buf_set_name(b->emu, name.c_str(), name.size() + 1))
    throw ErrnoError(env, e, "DMA_BUF_SET_NAME", "naming the buffer '" + name + "'");
  return env.Undefined();
}

// bufSync(b, flags: bigint)
Napi::Value BufSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = OpenBufArg(info, "DMA_BUF_IOCTL_SYNC");
  const uint64_t flags = U64Arg(info, 1);
  if (b->kernel) {
    auto r = kernel::dma_buf_cpu_sync(b->kfd, flags);
    if (!r) throw KernelError(env, r.error());
    return env.Undefined();
  }
  if (int e = dma_buf_cpu_sync(b->emu, flags))
    throw ErrnoError(env, e, "DMA_BUF_IOCTL_SYNC", "sync flags " + std::to_string(flags));
  return env.Undefined();
}

void FinalizeEmuMap(napi_env, void*, void* hint) { mapping_put(static_cast<Mapping*>(hint)); }
void FinalizeKMap(napi_env, void*, void* hint) { kmap_put(static_cast<KMap*>(hint)); }

// bufMap(b) -> ArrayBuffer (external, over a new shared RW mapping of the whole
// buffer). lib/dma_buf.ts maps at most once per buffer (EBUSY otherwise).
Napi::Value BufMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = OpenBufArg(info, "mmap");
  if (b->emap || b->kmap) throw ErrnoError(env, -EBUSY, "mmap", "the buffer is mapped already");
  void* addr;
  size_t len;
  napi_finalize fin;
  void* hint;
  if (b->kernel) {
    auto sz = kernel::dma_buf_size(b->kfd);
    if (!sz) throw KernelError(env, sz.error());
    auto r = kernel::dma_buf_mmap(b->kfd, sz.value());
    if (!r) throw KernelError(env, r.error());
    auto* km = new KMap{r.value().data(), r.value().size()};  // before release(): bad_alloc unmaps
    len = r.value().size();
    addr = r.value().release();
    b->kmap = km;
    fin = FinalizeKMap;
    hint = b->kmap;
  } else {
    Mapping* m = nullptr;
    int e = dma_buf_mmap(b->emu, 0, b->emu->size, PROT_READ | PROT_WRITE, MAP_SHARED, &m);
    if (e) throw ErrnoError(env, e, "mmap", "mapping the buffer");
    mapping_get(m);  // the ArrayBuffer's reference
    b->emap = m;
    addr = m->addr;
    len = b->emu->size;
    fin = FinalizeEmuMap;
    hint = m;
  }
  napi_value ab;
  napi_status s = napi_create_external_arraybuffer(env, addr, len, fin, hint, &ab);
  if (s != napi_ok) {
    fin(env, nullptr, hint);
    buf_unmap(b);
    throw ErrnoError(env, -ENOMEM, "mmap", "cannot make an ArrayBuffer over the mapping");
  }
  buf_forget_ab(b, false);
  b->env = env;
  napi_create_reference(env, ab, 0, &b->ab_ref);
  return Napi::Value(env, ab);
}

// bufUnmap(b, ab?) : detaches the ArrayBuffer first (JS can never read the
// range again), then ends the mapping.
Napi::Value BufUnmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BufObj* b = BufArg(info);
  DetachArg(info, 1);
  buf_forget_ab(b, true);  // the mapping's ArrayBuffer, even if JS did not pass it
  buf_unmap(b);
  return env.Undefined();
}

// bufClose(b, ab?): close(2) of the fd; like close(2)'s errors, buf_close's
// are not reported (the fd is gone either way).
Napi::Value BufClose(const Napi::CallbackInfo& info) {
  BufObj* b = BufArg(info);
  DetachArg(info, 1);
  buf_forget_ab(b, true);
  (void)buf_close(b);
  return info.Env().Undefined();
}

Napi::Value BufDispose(const Napi::CallbackInfo& info) {
  BufHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

// A dma-buf fd of another kernel exporter (udmabuf_binding.cc) as a DmaBuf
// handle; adopts `fd`.
Napi::Value WrapKernelDmaBuf(Napi::Env env, int fd) {
  BufObj* b;
  try {
    b = new BufObj{};
  } catch (...) {
    (void)kernel::close_fd(fd);
    throw;
  }
  b->kernel = true;
  b->kfd = fd;
  auto size = kernel::dma_buf_size(fd);
  return WrapCharged(env, b, size ? size.value() : 0);
}

void RegisterHeap(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"heapList", HeapList},
      {"heapOpen", HeapOpen},
      {"heapDispose", HeapDispose},
      {"heapAlloc", HeapAlloc},
      {"bufFd", BufFd},
      {"bufFromMemfd", BufFromMemfd},
      {"bufSize", BufSize},
      {"bufFdinfo", BufFdinfo},
      {"bufSetName", BufSetName},
      {"bufSync", BufSync},
      {"bufMap", BufMap},
      {"bufUnmap", BufUnmap},
      {"bufClose", BufClose},
      {"bufDispose", BufDispose},
  });
}

}  // namespace dmabuf::addon
