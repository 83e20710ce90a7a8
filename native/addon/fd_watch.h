// Readiness of an fd, watched on the environment's loop with uv_poll: how JS
// waits for a kernel sync_file, a dma-buf's fences or a socket without
// blocking the loop. The JS callback gets (events) once the fd is ready, or
// (status, DmaBufError) if uv_poll fails, then the watch is over; cancelled
// first, it is never called.
//
// The token JS holds keeps the watch's memory alive until it is collected, so
// a stale token is refused (EBADF), never a dangling pointer; a watch still
// pending when the environment ends is closed by a cleanup hook (a worker's
// loop must not close with a handle open).
#pragma once

#include <napi.h>

namespace dmabuf::addon {

// Starts watching `fd` for `events` (UV_READABLE | UV_WRITABLE). Throws
// DmaBufError: EEXIST if this loop already watches `fd`, EBADF/EPERM for an fd
// that cannot be polled.
Napi::Value FdWatchStart(Napi::Env env, int fd, int events, Napi::Function cb);
// Cancels the watch behind `token` (idempotent); EBADF for anything else.
void FdWatchCancel(Napi::Env env, const Napi::Value& token);

}  // namespace dmabuf::addon
