#include "addon/errors.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "addon/env_state.h"

namespace dmabuf::addon {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& message) {
  const int neg = err > 0 ? -err : err;
  EnvState* s = env.GetInstanceData<EnvState>();
  Napi::Function cls = s ? s->ErrorClass() : Napi::Function();
  if (!cls.IsEmpty()) {
    napi_value args[3] = {Napi::Number::New(env, neg), Napi::String::New(env, message),
                          syscall ? Napi::String::New(env, syscall) : env.Undefined()};
    napi_value obj;
    if (napi_new_instance(env, cls, 3, args, &obj) == napi_ok)
      return Napi::Error(env, obj);
  }
  // Before envInit (or while the environment dies): the same fields on an Error.
  Napi::Error e = Napi::Error::New(env, message);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 32)
  if (const char* name = strerrorname_np(-neg)) e.Set("code", Napi::String::New(env, name));
#endif
  e.Set("errno", Napi::Number::New(env, neg));
  if (syscall) e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

Napi::Error SleepError(Napi::Env env, long err, const char* syscall) {
  if (err == -EINTR) return ErrnoError(env, -EINTR, syscall, "interrupted: the environment is being torn down");
  return ErrnoError(env, static_cast<int>(err), syscall, std::string(syscall) + " failed");
}

Napi::Error BadHandle(Napi::Env env, const char* what) {
  return ErrnoError(env, -EBADF, nullptr, std::string("invalid or disposed ") + what);
}

Napi::Error BadArg(Napi::Env env, const char* what) {
  Napi::TypeError e = Napi::TypeError::New(env, std::string("dmabuf: ") + what);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  return e;
}

}  // namespace dmabuf::addon
