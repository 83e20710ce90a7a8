// An emulated fence as a real fd: what makes an emulated sync_file pollable by
// poll/epoll/libuv and usable by other processes it is sent to.
//
// The fd is one end of an AF_UNIX SOCK_SEQPACKET socketpair. When the fence
// signals, one SyncFdRecord (status and timestamp) is sent from the other end,
// which is then closed: the fd polls readable (POLLIN), as a signalled
// sync_file does, and anyone holding it, in any process, reads the status with
// MSG_PEEK without consuming it. If the exporting process goes away before the
// fence signals, the fd reads end-of-file: signalled, with -EPIPE.
//
// The kernel's sync_file is one file whatever holds it; here the socket is
// that file: dup'd, sent over SCM_RIGHTS, closed by each holder.
#pragma once

#include <cstdint>

#include "core/fence/fence.h"

namespace dmabuf {

struct SyncFdRecord {
  uint32_t magic;        // kSyncFdMagic
  int32_t status;        // 1 signalled, or the fence's error (< 0)
  int64_t timestamp_ns;  // CLOCK_MONOTONIC signal time
};
constexpr uint32_t kSyncFdMagic = 0x53594644;  // "SYFD"

/**
 * sync_fd_export() - a new fd that becomes readable when @f signals
 *
 * Registers a callback on @f (enabling signalling) that sends the record and
 * closes the writing end; if @f has already signalled, the record is sent now.
 * The callback holds no reference to @f: like any callback it runs when @f
 * signals, which every fence eventually must.
 *
 * Context: any thread, not under @f's lock.
 * Returns: the fd (O_CLOEXEC, blocking; the caller owns it), or -errno
 * (-EMFILE/-ENFILE/-ENOMEM).
 */
int sync_fd_export(Fence* f);

/**
 * sync_fd_status() - what an exported fd says now, without consuming it
 *
 * Returns: 1 with *@status and *@timestamp_ns set when signalled (a status
 * < 0 is the fence's error; -EPIPE if the exporter went away first), 0 while
 * pending, -EINVAL if @fd is a socket carrying something else, or another
 * -errno from recv().
 */
int sync_fd_status(int fd, int* status, int64_t* timestamp_ns);

/**
 * sync_fd_is_export() - whether @fd looks like an sync_fd_export() fd: an
 * AF_UNIX SOCK_SEQPACKET socket (its first record, once there, is checked
 * by sync_fd_status())
 */
bool sync_fd_is_export(int fd);

}  // namespace dmabuf
