// One failure shape across the boundary: every native failure reaches JS as a
// DmaBufError (code, errno, syscall), built here from the class lib/errors.ts
// hands to envInit (better-sqlite3's pattern), and thrown.
#pragma once

#include <napi.h>

#include <string>

namespace dmabuf::addon {

// A DmaBufError for a negative (or positive) errno. `syscall` names the
// kernel function or ioctl that failed; null for none.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& message);

// A blocking wait or lock that failed. EINTR means the sleep ended because the
// thread's environment is being torn down (worker.terminate(), process.exit());
// no JavaScript runs after it anyway. Anything else: "<syscall> failed".
Napi::Error SleepError(Napi::Env env, long err, const char* syscall);

// A disposed, closed or foreign handle: EBADF.
Napi::Error BadHandle(Napi::Env env, const char* what);

// The wrong kind of argument reached native code: a TypeError with Node's
// ERR_INVALID_ARG_TYPE (the TypeScript layer checks first; this is the backstop).
Napi::Error BadArg(Napi::Env env, const char* what);

}  // namespace dmabuf::addon
