#include "kernel/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "core/base/monotonic.h"

namespace dmabuf::kernel {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

int xioctl(int fd, unsigned long request, void* arg, bool also_eagain) {
  for (;;) {
    int r = ::ioctl(fd, request, arg);
    if (r >= 0) return r;
    const int e = errno;
    if (e == EINTR || (also_eagain && e == EAGAIN)) continue;
    return -e;
  }
}

KResult<short> poll_fd(int fd, short events, int timeout_ms) {
  const int64_t deadline = timeout_ms < 0 ? -1 : monotonic_ns() + int64_t{timeout_ms} * 1000000;
  int left = timeout_ms;
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, left);
    if (r >= 0) return static_cast<short>(r ? p.revents : 0);
    const int e = neg_errno();
    if (e != -EINTR) return kerror(e, "poll", kfmt("fd %d", fd));
    if (deadline >= 0) {
      const int64_t rem = deadline - monotonic_ns();
      left = rem <= 0 ? 0 : static_cast<int>((rem + 999999) / 1000000);
    }
  }
}

KResult<UniqueFd> dup_fd(int fd) {
  int r = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) {
    const int e = neg_errno();
    return kerror(e, "fcntl(F_DUPFD_CLOEXEC)", kfmt("fd %d", fd));
  }
  return UniqueFd(r);
}

KStatus close_fd(int fd) {
  if (::close(fd) < 0) {
    const int e = neg_errno();
    // EINTR on close: the fd is released anyway on Linux; do not retry.
    if (e != -EINTR) return kerror(e, "close", kfmt("fd %d", fd));
  }
  return {};
}

}  // namespace dmabuf::kernel
