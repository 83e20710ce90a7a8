// udmabuf and sealed memfds for JS (native/kernel/udmabuf.h). A Memfd handle
// owns its fd; UDMABUF_CREATE / UDMABUF_CREATE_LIST return a kernel DmaBuf
// handle of heap_binding.cc (WrapKernelDmaBuf), so lib/udmabuf.ts hands out the
// same DmaBuf class as Heap.alloc(). lib/udmabuf.ts validates types and
// ranges; seals, alignment, sizes and fds go to the kernel unchanged so that
// its errno comes back. Failures throw DmaBufError with the kernel's errno, the
// ioctl or syscall, and the backend's message.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/handles.h"
#include "kernel/udmabuf.h"

namespace dmabuf::addon {
namespace {

struct MemfdObj {
  kernel::UniqueFd fd;
};
void memfd_put(MemfdObj* m) { delete m; }  // closes the fd
using MemfdHolder = Holder<MemfdObj, memfd_put, 0x4d454d46>;  // "MEMF"

MemfdObj* MemfdArg(const Napi::CallbackInfo& info) {
  MemfdObj* m = MemfdHolder::From(info[0]);
  if (!m) throw BadHandle(info.Env(), "Memfd handle");
  return m;
}

int32_t I32Arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw BadArg(info.Env(), "udmabuf binding expects an fd number");
  return info[i].As<Napi::Number>().Int32Value();
}

// memfdCreate(name, size: bigint, seals: number) -> External
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw BadArg(env, "udmabuf binding expects a name");
  std::string name = info[0].As<Napi::String>();
  uint64_t size = U64Arg(info, 1);
  unsigned seals = U32Arg(info, 2);
  auto r = kernel::memfd_create_sealed(name.c_str(), size, seals);
  if (!r) throw KernelError(env, r.error());
  return MemfdHolder::Wrap(env, new MemfdObj{std::move(r.value())});
}

// memfdFd(h) -> fd
Napi::Value MemfdFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), MemfdArg(info)->fd.get());
}

// memfdSize(h) -> bigint (fstat: the current file size)
Napi::Value MemfdSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemfdObj* m = MemfdArg(info);
  struct stat st;
  if (::fstat(m->fd.get(), &st) < 0) {
    const int e = kernel::neg_errno();
    throw KernelError(env, kernel::kerror(e, "fstat", "memfd size"));
  }
  return Napi::BigInt::New(env, static_cast<uint64_t>(st.st_size));
}

// memfdSeals(h) -> F_SEAL_* mask
Napi::Value MemfdSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int r = ::fcntl(MemfdArg(info)->fd.get(), F_GET_SEALS);
  if (r < 0) {
    const int e = kernel::neg_errno();
    throw KernelError(env, kernel::kerror(e, "fcntl(F_GET_SEALS)", "reading the memfd's seals"));
  }
  return Napi::Number::New(env, r);
}

// memfdAddSeals(h, seals) -> undefined (EPERM once F_SEAL_SEAL is set;
// EBUSY for F_SEAL_WRITE while a writable shared mapping exists)
Napi::Value MemfdAddSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MemfdObj* m = MemfdArg(info);
  unsigned seals = U32Arg(info, 1);
  if (::fcntl(m->fd.get(), F_ADD_SEALS, seals) < 0) {
    const int e = kernel::neg_errno();
    throw KernelError(env, kernel::kerror(e, "fcntl(F_ADD_SEALS)", kernel::kfmt("seals %#x", seals)));
  }
  return env.Undefined();
}

Napi::Value MemfdClose(const Napi::CallbackInfo& info) {
  MemfdHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// udmabufCreate(memfd: number, offset: bigint, size: bigint, flags: number)
//   -> DmaBuf External
Napi::Value UdmabufCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int memfd = I32Arg(info, 0);
  const uint64_t offset = U64Arg(info, 1);
  const uint64_t size = U64Arg(info, 2);
  const uint32_t flags = U32Arg(info, 3);
  auto dev = kernel::udmabuf_open();
  if (!dev) throw KernelError(env, dev.error());
  auto r = kernel::udmabuf_from_memfd(dev->get(), memfd, offset, size, flags);
  if (!r) throw KernelError(env, r.error());
  return WrapKernelDmaBuf(env, r.value().release());
}

// udmabufCreateList(fds: number[], offsets: bigint[], sizes: bigint[], flags)
//   -> DmaBuf External
Napi::Value UdmabufCreateList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray())
    throw BadArg(env, "udmabufCreateList expects arrays");
  Napi::Array fds = info[0].As<Napi::Array>();
  Napi::Array offsets = info[1].As<Napi::Array>();
  Napi::Array sizes = info[2].As<Napi::Array>();
  const uint32_t flags = U32Arg(info, 3);
  const uint32_t n = fds.Length();
  if (offsets.Length() != n || sizes.Length() != n)
    throw BadArg(env, "udmabufCreateList expects arrays of one length");
  std::vector<kernel::UdmabufRange> ranges;
  ranges.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    bool ok1 = true, ok2 = true;
    kernel::UdmabufRange r;
    Napi::Value fd = fds.Get(i), off = offsets.Get(i), sz = sizes.Get(i);
    if (!fd.IsNumber() || !off.IsBigInt() || !sz.IsBigInt())
      throw BadArg(env, "udmabufCreateList expects fd numbers and bigints");
    r.memfd = fd.As<Napi::Number>().Int32Value();
    r.offset = BigIntU64(off, &ok1);
    r.size = BigIntU64(sz, &ok2);
    if (!ok1 || !ok2) throw Napi::RangeError::New(env, "dmabuf: value out of the u64 range");
    ranges.push_back(r);
  }
  auto dev = kernel::udmabuf_open();
  if (!dev) throw KernelError(env, dev.error());
  auto r = kernel::udmabuf_from_list(dev->get(), ranges, flags);
  if (!r) throw KernelError(env, r.error());
  return WrapKernelDmaBuf(env, r.value().release());
}

}  // namespace

void RegisterUdmabuf(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"memfdCreate", MemfdCreate},     {"memfdFd", MemfdFd},
      {"memfdSize", MemfdSize},         {"memfdSeals", MemfdSeals},
      {"memfdAddSeals", MemfdAddSeals}, {"memfdClose", MemfdClose},
      {"udmabufCreate", UdmabufCreate}, {"udmabufCreateList", UdmabufCreateList},
  });
}

}  // namespace dmabuf::addon
