// Interposed poll()/ppoll() for emulated dma-bufs only. A sync_file's socket
// is readable once its fence signals, so it needs nothing here. A dma-buf's
// readiness depends on its reservation object: for each buffer in the set,
// the broker exports a sync_file of the fences the events wait for (POLLIN:
// the writers, POLLOUT: all), and that is polled in the buffer's place. Sets
// without a known buffer go straight to libc (one table load per fd).
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "run/preload/client.h"

using namespace dmabuf::run;
using namespace dmabuf::run::preload;

namespace {

struct Sub {
  nfds_t index;  // the buffer's entry
  short event;   // POLLIN or POLLOUT
  int fd;        // the sync_file polled for it
};

template <typename Poll>
int emu_poll(pollfd* fds, nfds_t n, Poll&& do_poll) {
  if (!g_config.enabled || in_call()) return do_poll(fds, n);
  bool any = false;
  for (nfds_t i = 0; i < n && !any; ++i) any = hint_get(fds[i].fd, Kind::kBuffer) != 0;
  if (!any) return do_poll(fds, n);

  std::vector<pollfd> set(fds, fds + n);
  std::vector<Sub> subs;
  std::vector<bool> lost(n, false);  // the broker could not be asked
  for (nfds_t i = 0; i < n; ++i) {
    const uint64_t ino = hint_get(fds[i].fd, Kind::kBuffer);
    if (!ino || (sock_ino(fds[i].fd) & ((uint64_t(1) << 56) - 1)) != ino || !(fds[i].events & (POLLIN | POLLOUT))) continue;
    Call c;
    c.req.op = Op::kPollFd;
    c.req.ino = ino;
    c.req.cmd = static_cast<uint64_t>(fds[i].events & (POLLIN | POLLOUT));
    int64_t r = call(&c);
    free(c.out);
    if (r < 0) {
      for (unsigned k = 0; k < c.out_nfds; ++k) close(c.out_fds[k]);
      if (r == kNotOurs) continue;
      set[i].fd = -1;  // the broker is gone: report the buffer as an error
      lost[i] = true;
      continue;
    }
    set[i].fd = -1;  // polled through its sync_files instead
    unsigned k = 0;
    for (short ev : {short(POLLIN), short(POLLOUT)})
      if ((fds[i].events & ev) && k < c.out_nfds) subs.push_back({i, ev, c.out_fds[k++]});
    for (; k < c.out_nfds; ++k) close(c.out_fds[k]);
  }
  for (const Sub& s : subs) set.push_back({s.fd, POLLIN, 0});
  int r = do_poll(set.data(), set.size());
  const int err = errno;
  if (r >= 0) {
    r = 0;
    for (nfds_t i = 0; i < n; ++i) {
      fds[i].revents = lost[i] ? POLLERR : set[i].revents;
    }
    for (size_t k = 0; k < subs.size(); ++k)
      if (set[n + k].revents) fds[subs[k].index].revents |= subs[k].event;
    for (nfds_t i = 0; i < n; ++i) r += fds[i].revents != 0;
  }
  for (const Sub& s : subs) close(s.fd);
  errno = err;
  return r;
}

}  // namespace

extern "C" int poll(pollfd* fds, nfds_t n, int timeout) {
  auto real = DMABUF_REAL(poll);
  return emu_poll(fds, n, [&](pollfd* f, nfds_t k) { return real(f, k, timeout); });
}

extern "C" int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  auto real = DMABUF_REAL(ppoll);
  return emu_poll(fds, n, [&](pollfd* f, nfds_t k) { return real(f, k, ts, mask); });
}

extern "C" int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t) { return poll(fds, n, timeout); }
extern "C" int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask, size_t) {
  return ppoll(fds, n, ts, mask);
}
