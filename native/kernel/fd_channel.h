// FdChannel: AF_UNIX SOCK_SEQPACKET sockets that carry fds (SCM_RIGHTS) with
// each message, as compositors, camera stacks and media pipelines pass
// dma-bufs and sync_files between processes. SEQPACKET keeps message
// boundaries, so one send is one receive, fds included. Sockets are
// non-blocking and close-on-exec; EAGAIN means "wait for the fd" (the addon
// watches it with uv_poll) and nothing was sent or received.
//
// Wire format of the package (lib/fd_channel.ts): the payload is UTF-8 JSON
// {"v":1,"m":<message>,"a":[<one descriptor per fd>]}; the fds, in that order,
// ride in SCM_RIGHTS. C programs can speak it (test/kernel/vgem_import.c).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

// Payload bytes in one message (the receive buffer's size).
constexpr size_t kFdChannelMaxMessage = 64 * 1024;
// SCM_MAX_FD: the kernel refuses more fds in one message with EINVAL.
constexpr size_t kScmMaxFd = 253;

// socketpair(): two connected ends.
KResult<std::pair<UniqueFd, UniqueFd>> fd_channel_pair();
// A listening socket at `path` (unlinked first if it is a stale socket; any
// other file there: EADDRINUSE), chmod'ed to `mode` before listen(), so no
// connection is accepted under wider permissions.
KResult<UniqueFd> fd_channel_listen(const char* path, mode_t mode, int backlog);
// The next pending connection; EAGAIN when there is none.
KResult<UniqueFd> fd_channel_accept(int listen_fd);
// Connects to a listening socket (ENOENT, ECONNREFUSED, EACCES as connect says).
KResult<UniqueFd> fd_channel_connect(const char* path);

// Sends one message with `fds` (the kernel takes its own references; the
// caller keeps its fds). EAGAIN: the peer's queue is full, nothing sent;
// EPIPE/ECONNRESET: the peer is gone; EMSGSIZE: over kFdChannelMaxMessage;
// EINVAL: more than kScmMaxFd fds; EBADF: a closed fd.
KStatus fd_channel_send(int fd, const void* data, size_t len, const int* fds, size_t nfds);

struct FdChannelMessage {
  std::vector<uint8_t> data;
  std::vector<UniqueFd> fds;
  bool eof = false;  // the peer closed its end: no message
};
// Receives one message. EAGAIN: none queued. A message whose fds did not all
// fit (MSG_CTRUNC: this process is out of fds, or the sender sent too many)
// is an error, EMFILE, after closing every fd that did arrive (the message
// says how many); a payload over the limit (MSG_TRUNC): EMSGSIZE, fds closed.
KResult<FdChannelMessage> fd_channel_recv(int fd);

struct PeerCred {
  int64_t pid;
  uint32_t uid;
  uint32_t gid;
};
// SO_PEERCRED: who is at the other end (as of connect/socketpair).
KResult<PeerCred> fd_channel_peer(int fd);

}  // namespace dmabuf::kernel
