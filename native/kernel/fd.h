// File descriptors for the real-kernel backend: an owning fd, ioctl with the
// usual EINTR restart, and poll.
#pragma once

#include <cstdint>

#include "kernel/kerror.h"

namespace dmabuf::kernel {

// Owns one fd and closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Gives the fd away (the caller closes it); this object becomes empty.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the current fd (if any) and takes `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// ioctl() restarted on EINTR (TEMP_FAILURE_RETRY, as libdmabufheap and libsync
// do). Returns the ioctl's result, or -errno. `also_eagain` restarts on EAGAIN
// too (DMA_BUF_IOCTL_SYNC's documented contract).
int xioctl(int fd, unsigned long request, void* arg, bool also_eagain = false);

// poll() one fd for `events`; timeout_ms < 0 waits forever. Restarts on EINTR
// with the remaining time. Returns revents (0 on timeout).
KResult<short> poll_fd(int fd, short events, int timeout_ms);

// dup() with O_CLOEXEC.
KResult<UniqueFd> dup_fd(int fd);

// close() that reports the kernel's answer (EBADF for a stale fd). The fd is
// gone afterwards whatever the result (Linux never leaves it open).
KStatus close_fd(int fd);

}  // namespace dmabuf::kernel
