#include "kernel/fd_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace dmabuf::kernel {
namespace {

constexpr int kSockFlags = SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK;

KResult<sockaddr_un> unix_addr(const char* path, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const size_t n = strlen(path);
  if (n == 0) return kerror(-EINVAL, "bind", "empty socket path");
  if (n >= sizeof(a.sun_path)) return kerror(-ENAMETOOLONG, "bind", kfmt("socket path longer than %zu bytes", sizeof(a.sun_path) - 1));
  memcpy(a.sun_path, path, n);
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + 1);
  return a;
}

void close_all(std::vector<UniqueFd>& fds) { fds.clear(); }

}  // namespace

KResult<std::pair<UniqueFd, UniqueFd>> fd_channel_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, kSockFlags, 0, sv) < 0) return kerror(neg_errno(), "socketpair");
  return std::pair<UniqueFd, UniqueFd>(UniqueFd(sv[0]), UniqueFd(sv[1]));
}

KResult<UniqueFd> fd_channel_listen(const char* path, mode_t mode, int backlog) {
  socklen_t len = 0;
  auto addr = unix_addr(path, &len);
  if (!addr) return addr.error();
  UniqueFd s(::socket(AF_UNIX, kSockFlags, 0));
  if (!s) return kerror(neg_errno(), "socket");
  // A stale socket from an earlier server is replaced; any other file is not.
  struct stat st;
  if (::lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return kerror(-EADDRINUSE, "bind", kfmt("%s exists and is not a socket", path));
    UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*addr), len) == 0)
      return kerror(-EADDRINUSE, "bind", kfmt("%s: a server is listening there", path));
    (void)::unlink(path);
  }
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&*addr), len) < 0) {
    const int e = neg_errno();
    return kerror(e, "bind", path);
  }
  if (::chmod(path, mode) < 0) {
    const int e = neg_errno();
    (void)::unlink(path);
    return kerror(e, "chmod", path);
  }
  if (::listen(s.get(), backlog) < 0) {
    const int e = neg_errno();
    (void)::unlink(path);
    return kerror(e, "listen", path);
  }
  return s;
}

KResult<UniqueFd> fd_channel_accept(int listen_fd) {
  int c;
  do c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  while (c < 0 && errno == EINTR);
  if (c < 0) return kerror(neg_errno(), "accept4");
  return UniqueFd(c);
}

KResult<UniqueFd> fd_channel_connect(const char* path) {
  socklen_t len = 0;
  auto addr = unix_addr(path, &len);
  if (!addr) return addr.error();
  // Blocking connect (a local socket answers at once, or says why not), then
  // non-blocking like every channel end.
  UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) return kerror(neg_errno(), "socket");
  int r;
  do r = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&*addr), len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    const int e = neg_errno();
    return kerror(e, "connect", path);
  }
  const int fl = ::fcntl(s.get(), F_GETFL);
  if (fl < 0 || ::fcntl(s.get(), F_SETFL, fl | O_NONBLOCK) < 0) return kerror(neg_errno(), "fcntl");
  return s;
}

KStatus fd_channel_send(int fd, const void* data, size_t len, const int* fds, size_t nfds) {
  if (len > kFdChannelMaxMessage)
    return kerror(-EMSGSIZE, "sendmsg", kfmt("message of %zu bytes (the limit is %zu)", len, kFdChannelMaxMessage));
  if (nfds > kScmMaxFd) return kerror(-EINVAL, "sendmsg", kfmt("%zu fds in one message (the kernel's limit, SCM_MAX_FD, is %zu)", nfds, kScmMaxFd));
  iovec iov{const_cast<void*>(data), len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::vector<char> ctl;
  if (nfds) {
    ctl.assign(CMSG_SPACE(nfds * sizeof(int)), 0);
    m.msg_control = ctl.data();
    m.msg_controllen = ctl.size();
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  ssize_t n;
  do n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    const int e = neg_errno();
    if (e == -EPIPE || e == -ECONNRESET) return kerror(e, "sendmsg", "the peer closed the channel");
    return kerror(e, "sendmsg");
  }
  return {};
}

KResult<FdChannelMessage> fd_channel_recv(int fd) {
  FdChannelMessage out;
  // One byte more than the limit, so an oversized payload shows as MSG_TRUNC
  // even from a sender that is not us.
  thread_local std::vector<uint8_t> buf(kFdChannelMaxMessage + 1);
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(kScmMaxFd * sizeof(int))];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof(ctl);
  ssize_t n;
  // ECONNRESET is the socket's pending error (sk_err), reported once: the
  // peer closed with messages of ours unread. What it sent before closing is
  // still queued, and the end of the stream follows it, so read on.
  bool reset_seen = false;
  for (;;) {
    n = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0 || errno == EINTR) {
      if (n >= 0) break;
      continue;
    }
    if (errno == ECONNRESET && !reset_seen) {
      reset_seen = true;
      continue;
    }
    break;
  }
  if (n < 0) return kerror(neg_errno(), "recvmsg");
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int v;
      memcpy(&v, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(v);
    }
  }
  if (m.msg_flags & MSG_CTRUNC) {
    const size_t got = out.fds.size();
    close_all(out.fds);
    return kerror(-EMFILE, "recvmsg",
                  kfmt("a message's fds did not all arrive (MSG_CTRUNC: out of fds?); the %zu that did were closed", got));
  }
  if ((m.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > kFdChannelMaxMessage) {
    close_all(out.fds);
    return kerror(-EMSGSIZE, "recvmsg", kfmt("a message over %zu bytes was cut short and dropped", kFdChannelMaxMessage));
  }
  if (n == 0 && out.fds.empty()) {
    // SEQPACKET: a zero-length read with nothing attached is the end of the stream
    // (we never send empty messages: the payload is at least "{}").
    out.eof = true;
  }
  out.data.assign(buf.begin(), buf.begin() + n);
  return out;
}

KResult<PeerCred> fd_channel_peer(int fd) {
  ucred c{};
  socklen_t len = sizeof(c);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) < 0) return kerror(neg_errno(), "getsockopt", "SO_PEERCRED");
  return PeerCred{c.pid, c.uid, c.gid};
}

}  // namespace dmabuf::kernel
