// One SEQPACKET message with SCM_RIGHTS fds, both directions of the `dmabuf
// run` protocol (protocol.h). Shared by the broker and the preload library, so
// it uses nothing but libc.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace dmabuf::run {

// Sends head + body (either may be empty) and nfds fds as one message.
// Returns 0 or -errno (never raises SIGPIPE).
int msg_send(int sock, const void* head, size_t head_len, const void* body, size_t body_len,
             const int* fds, unsigned nfds);

// Receives one message into buf (cap bytes); up to max_fds fds land in fds
// (O_CLOEXEC). Returns the byte count (0 = peer closed), or -errno; -EMSGSIZE
// if the message or its fds were truncated (the fds that did arrive are closed).
ssize_t msg_recv(int sock, void* buf, size_t cap, int* fds, unsigned max_fds, unsigned* nfds);

}  // namespace dmabuf::run
