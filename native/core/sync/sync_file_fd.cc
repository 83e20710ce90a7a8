#include "core/sync/sync_file_fd.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "core/base/monotonic.h"

namespace dmabuf {
namespace {

struct ExportCallback {
  FenceCallback cb;  // first
  int wfd;
};

void send_record(int wfd, int status, int64_t ts) {
  const SyncFdRecord rec{kSyncFdMagic, status, ts};
  // Never blocks: the socket's buffer is empty and this is its only record.
  (void)::send(wfd, &rec, sizeof(rec), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::close(wfd);
}

int status_of(Fence* f) {
  const int err = __atomic_load_n(&f->error, __ATOMIC_RELAXED);
  return err < 0 ? err : 1;
}

// Runs under @f's lock as @f signals: only a send and a close.
void on_signal(Fence* f, FenceCallback* cb) {
  auto* e = reinterpret_cast<ExportCallback*>(cb);
  send_record(e->wfd, status_of(f), f->timestamp);
  delete e;
}

}  // namespace

int sync_fd_export(Fence* f) {
  if (!f) return -EINVAL;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  auto* e = new (std::nothrow) ExportCallback{};
  if (!e) {
    ::close(sv[0]);
    ::close(sv[1]);
    return -ENOMEM;
  }
  e->wfd = sv[1];
  // The reading end cannot write back to the exporter.
  (void)::shutdown(sv[0], SHUT_WR);
  if (fence_add_callback(f, &e->cb, on_signal) == -ENOENT) {
    // Already signalled: the record now.
    send_record(e->wfd, status_of(f), fence_timestamp(f));
    delete e;
  }
  return sv[0];
}

int sync_fd_status(int fd, int* status, int64_t* timestamp_ns) {
  SyncFdRecord rec{};
  ssize_t n;
  do n = ::recv(fd, &rec, sizeof(rec), MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  if (n == 0) {
    // End of file: the exporter is gone and never signalled.
    *status = -EPIPE;
    *timestamp_ns = monotonic_ns();
    return 1;
  }
  if (n != static_cast<ssize_t>(sizeof(rec)) || rec.magic != kSyncFdMagic) return -EINVAL;
  *status = rec.status;
  *timestamp_ns = rec.timestamp_ns;
  return 1;
}

bool sync_fd_is_export(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX) return false;
  len = sizeof(v);
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_SEQPACKET;
}

}  // namespace dmabuf
