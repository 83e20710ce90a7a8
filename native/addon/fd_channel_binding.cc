// FdChannel bindings (native/kernel/fd_channel.h): channel and listener
// handles, one non-blocking attempt per call (null/false for EAGAIN: lib/
// then waits for the fd with fdWatch), and FdSet handles that hold dups of the
// fds a message carries until it is sent, so closing an object after send()
// can never make the message carry whatever reused its fd number.
#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/bindings.h"
#include "addon/boundary.h"
#include "addon/fd_watch.h"
#include "addon/handles.h"
#include "kernel/fd_channel.h"

namespace dmabuf::addon {
namespace {

struct ChObj {
  int fd;
};
void ch_put(ChObj* c) {
  if (c->fd >= 0) (void)kernel::close_fd(c->fd);
  delete c;
}
using ChHolder = Holder<ChObj, ch_put, 0x46444348>;  // "FDCH"

struct FdSet {
  std::vector<int> fds;
};
void fdset_put(FdSet* s) {
  for (int fd : s->fds) (void)kernel::close_fd(fd);
  delete s;
}
using FdSetHolder = Holder<FdSet, fdset_put, 0x46445354>;  // "FDST"

ChObj* ChArg(const Napi::CallbackInfo& info, size_t i) {
  ChObj* c = ChHolder::From(info[i]);
  if (!c) throw BadHandle(info.Env(), "FdChannel handle");
  return c;
}

Napi::Value WrapCh(Napi::Env env, kernel::UniqueFd fd) {
  auto* c = new (std::nothrow) ChObj{fd.get()};
  if (!c) throw std::bad_alloc();  // `fd` closes itself
  fd.release();
  return ChHolder::Wrap(env, c);
}

// chPair(): [a, b]
Napi::Value ChPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = kernel::fd_channel_pair();
  if (!r) throw KernelError(env, r.error());
  Napi::Value a = WrapCh(env, std::move(r->first));
  Napi::Value b = WrapCh(env, std::move(r->second));
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, a);
  out.Set(1u, b);
  return out;
}

// chFromFd(fd, dup): an end received from elsewhere (a parent's stdio, a
// worker); EINVAL unless it is an AF_UNIX SOCK_SEQPACKET socket.
Napi::Value ChFromFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw BadArg(env, "expected an fd number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const bool dup = info[1].ToBoolean();
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0) {
    const int e = errno == ENOTSOCK ? -EINVAL : -errno;
    throw ErrnoError(env, e, "getsockopt", e == -EBADF ? "not an open fd" : "not an AF_UNIX SOCK_SEQPACKET socket");
  }
  int type = 0;
  len = sizeof(type);
  if (v != AF_UNIX || ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
    throw ErrnoError(env, -EINVAL, "getsockopt", "not an AF_UNIX SOCK_SEQPACKET socket");
  // Always a dup of our own: on failure it closes and the caller keeps its fd;
  // dup: false hands the caller's fd over (closes it) only on success.
  auto d = kernel::dup_fd(fd);
  if (!d) throw KernelError(env, d.error());
  kernel::UniqueFd own = std::move(*d);
  // O_NONBLOCK is on the open file, shared with other holders of it; every
  // call here copes with EAGAIN, and so must theirs on a socket like this.
  const int fl = ::fcntl(own.get(), F_GETFL);
  if (fl < 0 || ::fcntl(own.get(), F_SETFL, fl | O_NONBLOCK) < 0)
    throw ErrnoError(env, -errno, "fcntl", "cannot make the socket non-blocking");
  Napi::Value h = WrapCh(env, std::move(own));
  if (!dup) (void)kernel::close_fd(fd);
  return h;
}

// chConnect(path)
Napi::Value ChConnect(const Napi::CallbackInfo& info) {
  auto r = kernel::fd_channel_connect(StrArg(info, 0).c_str());
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapCh(info.Env(), std::move(*r));
}

// chListen(path, mode, backlog)
Napi::Value ChListen(const Napi::CallbackInfo& info) {
  const std::string path = StrArg(info, 0);
  const uint32_t mode = U32Arg(info, 1) & 07777;
  const uint32_t backlog = U32Arg(info, 2);
  auto r = kernel::fd_channel_listen(path.c_str(), mode, static_cast<int>(backlog > 4096 ? 4096 : backlog));
  if (!r) throw KernelError(info.Env(), r.error());
  return WrapCh(info.Env(), std::move(*r));
}

// chAccept(listener): a channel, or null if none is pending
Napi::Value ChAccept(const Napi::CallbackInfo& info) {
  auto r = kernel::fd_channel_accept(ChArg(info, 0)->fd);
  if (!r) {
    if (r.err() == -EAGAIN || r.err() == -EWOULDBLOCK) return info.Env().Null();
    throw KernelError(info.Env(), r.error());
  }
  return WrapCh(info.Env(), std::move(*r));
}

// fdsetCreate(fds: number[]): dups of every fd (EBADF names the bad one; the
// dups made so far are closed); EINVAL over SCM_MAX_FD.
Napi::Value FdSetCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw BadArg(env, "expected an array of fds");
  Napi::Array a = info[0].As<Napi::Array>();
  const uint32_t n = a.Length();
  if (n > kernel::kScmMaxFd)
    throw ErrnoError(env, -EINVAL, "sendmsg",
                     kernel::kfmt("%u fds in one message (the kernel's limit, SCM_MAX_FD, is %zu)", n, kernel::kScmMaxFd));
  auto* s = new FdSet();
  auto holder = FdSetHolder::Wrap(env, s);  // owns the dups from here on
  try {
    s->fds.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      Napi::Value v = a.Get(i);
      if (!v.IsNumber()) throw BadArg(env, "expected an array of fds");
      const int fd = v.As<Napi::Number>().Int32Value();
      auto d = kernel::dup_fd(fd);
      if (!d)
        throw ErrnoError(env, d.err(), "sendmsg",
                         kernel::kfmt("attachment %u (fd %d): %s", i, fd, d.error().describe().c_str()));
      s->fds.push_back(d->release());
    }
  } catch (...) {
    FdSetHolder::Dispose(holder);  // the dups made so far, now
    throw;
  }
  return holder;
}

// fdsClose(fds: number[]): closes fds the caller owns (received ones lib/ did
// not hand out). Not fs.closeSync: in a worker, Node warns about closing fds
// that fs did not open there.
Napi::Value FdsClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw BadArg(env, "expected an array of fds");
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0, n = a.Length(); i < n; ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsNumber()) continue;
    const int fd = v.As<Napi::Number>().Int32Value();
    if (fd >= 0) (void)kernel::close_fd(fd);
  }
  return env.Undefined();
}

Napi::Value FdSetClose(const Napi::CallbackInfo& info) {
  FdSetHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

// chSend(ch, bytes: Uint8Array, fdset | null): true if sent, false on EAGAIN
Napi::Value ChSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChObj* c = ChArg(info, 0);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw BadArg(env, "expected a Uint8Array");
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  const FdSet* set = nullptr;
  if (!info[2].IsNull() && !info[2].IsUndefined()) {
    set = FdSetHolder::From(info[2]);
    if (!set) throw BadHandle(env, "fd set");
  }
  auto r = kernel::fd_channel_send(c->fd, bytes.Data(), bytes.ByteLength(), set ? set->fds.data() : nullptr,
                                   set ? set->fds.size() : 0);
  if (!r) {
    if (r.err() == -EAGAIN || r.err() == -EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw KernelError(env, r.error());
  }
  return Napi::Boolean::New(env, true);
}

// chRecv(ch): null (nothing queued), { eof: true }, or { data, fds } -- the
// fds are the caller's from here on (lib/ wraps or closes every one).
Napi::Value ChRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = kernel::fd_channel_recv(ChArg(info, 0)->fd);
  if (!r) {
    if (r.err() == -EAGAIN || r.err() == -EWOULDBLOCK) return env.Null();
    throw KernelError(env, r.error());
  }
  Napi::Object o = Napi::Object::New(env);
  if (r->eof) {
    o.Set("eof", true);
    return o;
  }
  // Build everything that can fail first; the fds leave their owners last.
  Napi::Uint8Array data = Napi::Uint8Array::New(env, r->data.size());
  if (!r->data.empty()) memcpy(data.Data(), r->data.data(), r->data.size());
  Napi::Array fds = Napi::Array::New(env, r->fds.size());
  for (size_t i = 0; i < r->fds.size(); ++i) fds.Set(static_cast<uint32_t>(i), Napi::Number::New(env, r->fds[i].get()));
  o.Set("eof", false);
  o.Set("data", data);
  o.Set("fds", fds);
  for (auto& fd : r->fds) (void)fd.release();
  return o;
}

// chPeer(ch): { pid, uid, gid }
Napi::Value ChPeer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto r = kernel::fd_channel_peer(ChArg(info, 0)->fd);
  if (!r) throw KernelError(env, r.error());
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", static_cast<double>(r->pid));
  o.Set("uid", static_cast<double>(r->uid));
  o.Set("gid", static_cast<double>(r->gid));
  return o;
}

Napi::Value ChFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ChArg(info, 0)->fd); }

// chWatch(ch, events, cb): token -- fd_watch.h on the channel's fd
Napi::Value ChWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChObj* c = ChArg(info, 0);
  const uint32_t events = U32Arg(info, 1);
  if (!info[2].IsFunction()) throw BadArg(env, "expected a callback");
  return FdWatchStart(env, c->fd, static_cast<int>(events), info[2].As<Napi::Function>());
}

Napi::Value ChWatchCancel(const Napi::CallbackInfo& info) {
  FdWatchCancel(info.Env(), info[0]);
  return info.Env().Undefined();
}

Napi::Value ChClose(const Napi::CallbackInfo& info) {
  ChHolder::Dispose(info[0]);
  return info.Env().Undefined();
}

}  // namespace

void RegisterFdChannel(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {
      {"chPair", ChPair},
      {"chFromFd", ChFromFd},
      {"chConnect", ChConnect},
      {"chListen", ChListen},
      {"chAccept", ChAccept},
      {"chSend", ChSend},
      {"chRecv", ChRecv},
      {"chPeer", ChPeer},
      {"chFd", ChFd},
      {"chWatch", ChWatch},
      {"chWatchCancel", ChWatchCancel},
      {"chClose", ChClose},
      {"fdsetCreate", FdSetCreate},
      {"fdsetClose", FdSetClose},
      {"fdsClose", FdsClose},
  });
}

}  // namespace dmabuf::addon
