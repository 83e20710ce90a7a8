#include "run/msg.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "run/protocol.h"

namespace dmabuf::run {

int msg_send(int sock, const void* head, size_t head_len, const void* body, size_t body_len,
             const int* fds, unsigned nfds) {
  if (nfds > kMaxFds) return -EINVAL;
  iovec iov[2] = {{const_cast<void*>(head), head_len}, {const_cast<void*>(body), body_len}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = body_len ? 2 : 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    if (n >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

ssize_t msg_recv(int sock, void* buf, size_t cap, int* fds, unsigned max_fds, unsigned* nfds) {
  *nfds = 0;
  iovec iov{buf, cap};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  unsigned got = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int tmp[kMaxFds];
    memcpy(tmp, CMSG_DATA(c), sizeof(int) * (k < kMaxFds ? k : kMaxFds));
    for (unsigned i = 0; i < k && i < kMaxFds; ++i) {
      if (got < max_fds) fds[got++] = tmp[i];
      else close(tmp[i]);
    }
  }
  *nfds = got;
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (unsigned i = 0; i < got; ++i) close(fds[i]);
    *nfds = 0;
    return -EMSGSIZE;
  }
  return n;
}

}  // namespace dmabuf::run
