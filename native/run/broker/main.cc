// dmabuf-broker: the shared emulation behind `dmabuf run` (docs/run.md). It
// owns one emulated platform; every process under the run talks to it through
// libdmabuf-preload.so. One thread per client connection (a client thread), so
// a call that blocks in the kernel blocks here only that caller.
//
//   dmabuf-broker --socket NAME --root DIR [--kernel 7.1] [--arch x86_64]
//                 [--cma-size BYTES] [--mem-encrypt] [--protected a,b] [--ready-fd N]
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "core/heaps/heap.h"
#include "core/mm/platform.h"
#include "run/broker/handlers.h"
#include "run/broker/objects.h"
#include "run/msg.h"
#include "run/protocol.h"

using namespace dmabuf;
using namespace dmabuf::run;

namespace {

[[noreturn]] void die(const char* what, int err) {
  fprintf(stderr, "dmabuf-broker: %s: %s\n", what, strerror(err));
  exit(1);
}

void serve(Platform* p, int conn) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[sizeof(Request) + kMaxPayload]);
  for (;;) {
    int fds[kMaxFds];
    unsigned nfds = 0;
    ssize_t n = msg_recv(conn, buf.get(), sizeof(Request) + kMaxPayload, fds, kMaxFds, &nfds);
    if (n <= 0) break;  // the client thread is gone
    Request req;
    memcpy(&req, buf.get(), n < static_cast<ssize_t>(sizeof req) ? 0 : sizeof req);
    if (n < static_cast<ssize_t>(sizeof req) || req.magic != kMagic || req.len != n - sizeof req) {
      // Not our protocol: drop this connection, keep serving everyone else.
      for (unsigned i = 0; i < nfds; ++i) close(fds[i]);
      fprintf(stderr, "dmabuf-broker: malformed request (%zd bytes); connection closed\n", n);
      break;
    }
    Answer ans;
    handle_request(p, req, buf.get() + sizeof req, fds, nfds, &ans);
    ans.reply.magic = kMagic;
    ans.reply.len = static_cast<uint32_t>(ans.payload.size());
    std::vector<int> all(ans.fds);
    all.insert(all.end(), ans.borrowed.begin(), ans.borrowed.end());
    ans.reply.nfds = static_cast<uint32_t>(all.size());
    int err = msg_send(conn, &ans.reply, sizeof ans.reply, ans.payload.data(), ans.payload.size(), all.data(),
                       static_cast<unsigned>(all.size()));
    for (int fd : ans.fds) close(fd);  // the client has its copies (or the objects hang up)
    if (err) break;
  }
  close(conn);
}

void touch(const std::string& path) {
  for (size_t i = 1; i < path.size(); ++i)
    if (path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
  if (fd >= 0) close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock, root;
  int ready_fd = -1;
  PlatformConfig cfg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "dmabuf-broker: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--socket") sock = val();
    else if (a == "--root") root = val();
    else if (a == "--ready-fd") ready_fd = atoi(val().c_str());
    else if (a == "--kernel") {
      if (parse_kernel_version(val().c_str(), &cfg.kernel)) die("--kernel", EINVAL);
    } else if (a == "--arch") {
      if (arch_from_name(val().c_str(), &cfg.arch)) die("--arch", EINVAL);
    } else if (a == "--cma-size") cfg.cma_bytes = strtoull(val().c_str(), nullptr, 0);
    else if (a == "--mem-encrypt") cfg.mem_encrypt = true;
    else if (a == "--protected") {
      std::string list = val();
      for (size_t s = 0; s < list.size();) {
        size_t e = list.find(',', s);
        if (e == std::string::npos) e = list.size();
        if (e > s) cfg.protected_heaps.push_back(list.substr(s, e - s));
        s = e + 1;
      }
    } else {
      fprintf(stderr, "dmabuf-broker: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (sock.empty() || root.empty()) {
    fprintf(stderr, "usage: dmabuf-broker --socket NAME --root DIR [platform options]\n");
    return 2;
  }
  // Started by `dmabuf run`: go when it goes.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  // Every emulated file holds a socket here (and a buffer its memfd).
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Platform* p = nullptr;
  if (int err = platform_create(cfg, &p)) die("platform", -err);
  if (int err = objects_init()) die("objects", -err);

  // The tree clients see for stat, access and opendir (the nodes themselves
  // are opened through the broker).
  for (const auto& h : dma_heap_list(p)) touch(root + "/dev/dma_heap/" + h.name);
  touch(root + "/dev/udmabuf");
  touch(root + "/sys/kernel/debug/sync/sw_sync");
  touch(root + "/sys/kernel/debug/dma_buf/bufinfo");

  int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (ls < 0) die("socket", errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock.size() + 1 > sizeof addr.sun_path) die("--socket", ENAMETOOLONG);
  memcpy(addr.sun_path + 1, sock.data(), sock.size());  // abstract: nothing on disk
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + sock.size());
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), alen) < 0) die("bind", errno);
  if (listen(ls, 128) < 0) die("listen", errno);
  if (ready_fd >= 0) {
    (void)!write(ready_fd, "ready\n", 6);
    close(ready_fd);
  }
  for (;;) {
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        usleep(10000);
        continue;
      }
      die("accept", errno);
    }
    std::thread(serve, p, c).detach();
  }
}
