#include "addon/fd_watch.h"

#include <uv.h>

#include <atomic>
#include <cerrno>
#include <new>

#include "addon/errors.h"

namespace dmabuf::addon {
namespace {

constexpr uint32_t kWatchMagic = 0x46445741;  // "FDWA"

// Two references: the uv handle's (dropped in its close callback) and the
// token's (dropped by its finalizer). Everything runs on the env's JS thread.
struct FdWatch {
  uint32_t magic = kWatchMagic;
  int refs = 2;
  uv_poll_t poll;
  napi_env env = nullptr;
  Napi::FunctionReference cb;
  bool hooked = false;   // the environment's cleanup hook is registered
  bool closing = false;  // uv_close called: no more callbacks
};

void Unref(FdWatch* w) {
  if (--w->refs == 0) {
    w->magic = 0;
    delete w;
  }
}
void OnClosed(uv_handle_t* h) { Unref(static_cast<FdWatch*>(h->data)); }
void OnTeardown(void* arg);
void Close(FdWatch* w) {
  if (w->closing) return;
  w->closing = true;
  w->cb.Reset();
  if (w->hooked) napi_remove_env_cleanup_hook(w->env, OnTeardown, w);
  w->hooked = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}
// The environment is ending with the watch pending; its close callback runs
// in the loop's last turn.
void OnTeardown(void* arg) {
  auto* w = static_cast<FdWatch*>(arg);
  w->hooked = false;
  Close(w);
}
void OnTokenFinalized(Napi::Env, FdWatch* w) { Unref(w); }

void OnReady(uv_poll_t* h, int status, int events) {
  auto* w = static_cast<FdWatch*>(h->data);
  if (w->closing) return;
  Napi::Env env = w->cb.Env();
  Napi::HandleScope scope(env);
  Napi::Function fn = w->cb.Value();
  Close(w);
  // MakeCallback: the Promise reactions it triggers run before we return to
  // libuv. No C++ exception may cross libuv's frames: a throwing callback is
  // reported as an uncaught exception.
  try {
    if (status < 0)
      fn.MakeCallback(env.Global(), {Napi::Number::New(env, status),
                                     ErrnoError(env, status, "uv_poll", "uv_poll failed on the fd").Value()});
    else
      fn.MakeCallback(env.Global(), {Napi::Number::New(env, events)});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace

Napi::Value FdWatchStart(Napi::Env env, int fd, int events, Napi::Function cb) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
    throw ErrnoError(env, -EINVAL, "uv_poll_init", "no event loop");
  auto* w = new (std::nothrow) FdWatch();
  if (!w) throw ErrnoError(env, -ENOMEM, "uv_poll_init", "out of memory");
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    delete w;
    throw ErrnoError(env, r, "uv_poll_init", "cannot watch the fd");
  }
  w->poll.data = w;
  w->env = env;
  Napi::External<FdWatch> token;
  try {
    token = Napi::External<FdWatch>::New(env, w, OnTokenFinalized);
  } catch (...) {
    w->refs = 1;  // no token: only the handle's reference
    Close(w);
    throw;
  }
  w->cb = Napi::Persistent(cb);
  r = uv_poll_start(&w->poll, events & (UV_READABLE | UV_WRITABLE), OnReady);
  if (r == 0) {
    r = napi_add_env_cleanup_hook(env, OnTeardown, w) == napi_ok ? 0 : UV_ENOMEM;
    w->hooked = r == 0;
  }
  if (r < 0) {
    Close(w);
    throw ErrnoError(env, r, "uv_poll_start", "cannot watch the fd");
  }
  return token;
}

void FdWatchCancel(Napi::Env env, const Napi::Value& token) {
  if (!token.IsExternal()) throw BadHandle(env, "fd watch token");
  auto* w = static_cast<FdWatch*>(token.As<Napi::External<void>>().Data());
  if (!w || w->magic != kWatchMagic) throw BadHandle(env, "fd watch token");
  Close(w);
}

}  // namespace dmabuf::addon
