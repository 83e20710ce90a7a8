// The preload library's side of the `dmabuf run` protocol: one connection to
// the broker per thread (re-made after fork), the real libc functions, and a
// hint table of which fd numbers hold emulated dma-bufs (for poll and lseek).
#pragma once

#include <dlfcn.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "run/protocol.h"

namespace dmabuf::run::preload {

struct Config {
  bool enabled = false;  // $DMABUF_RUN_SOCKET is set
  bool heaps = false, udmabuf = false, sw_sync = false;  // what is emulated
  char root[512] = {};
};
extern Config g_config;

// The libc functions we interpose, found once with dlsym(RTLD_NEXT).
#define DMABUF_REAL(fn)                                                                   \
  ([] {                                                                                   \
    static auto p = reinterpret_cast<decltype(&::fn)>(dlsym(RTLD_NEXT, #fn));              \
    return p;                                                                             \
  }())

/**
 * in_call() - whether this thread is inside call() (interposers then pass
 * straight through: the protocol's own recvmsg/close must not recurse)
 */
bool in_call();

struct Call {
  Request req{};
  const void* payload = nullptr;
  const int* fds = nullptr;
  unsigned nfds = 0;
  // Out: the reply, its payload (malloc'd, the caller frees) and its fds.
  Reply reply{};
  uint8_t* out = nullptr;
  int out_fds[kMaxFds];
  unsigned out_nfds = 0;
};

/**
 * call() - one round trip on this thread's connection
 *
 * Returns: the reply's ret (>= 0, -errno, or kNotOurs); -EIO when the broker
 * cannot be reached or went away (no fds, no payload then).
 */
int64_t call(Call* c);

/**
 * sock_ino() - the inode of @fd if it is a socket (what the broker knows
 * objects by), 0 otherwise
 */
uint64_t sock_ino(int fd);

// Fd hints: which fd numbers hold an emulated dma-buf (for poll) or a file
// whose last close the broker must see at once (timelines, dma-bufs). Set
// when such an fd is made or received, copied by dup, cleared by close. A
// hint is checked against fstat before it is used.
void hint_set(int fd, uint64_t ino, Kind kind);
uint64_t hint_get(int fd, Kind kind);  // the inode if @fd is hinted as @kind, else 0
Kind hint_kind(int fd);
void hint_copy(int from, int to);
void hint_clear(int fd);

/**
 * hint_buffers() - ask the broker which of @n sockets (@inos, at fd numbers
 * @fds) are dma-bufs or timelines, and hint those (one round trip)
 */
void hint_buffers(const uint64_t* inos, const int* fds, unsigned n);

/**
 * set_cloexec() - set or clear FD_CLOEXEC on @fd (received fds arrive with it set)
 */
void set_cloexec(int fd, bool on);

}  // namespace dmabuf::run::preload
