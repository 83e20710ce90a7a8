#include "run/preload/client.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "run/msg.h"

namespace dmabuf::run::preload {

Config g_config;

namespace {

constexpr int kHintFds = 1 << 16;
std::atomic<uint64_t> g_hints[kHintFds];

// Connections of every thread, so a forked child can close its copies of
// the other threads' ones (only the forking thread lives on in the child).
std::atomic<unsigned> g_fork_gen{0};
pthread_mutex_t g_conns_mu = PTHREAD_MUTEX_INITIALIZER;
int g_conns[256];
unsigned g_nconns = 0;

thread_local int t_conn = -1;
thread_local bool t_in_call = false;
thread_local uint8_t* t_buf = nullptr;  // call()'s receive buffer
thread_local unsigned t_gen = 0;

void atfork_child() {
  for (unsigned i = 0; i < g_nconns; ++i) close(g_conns[i]);
  g_nconns = 0;
  pthread_mutex_init(&g_conns_mu, nullptr);
  g_fork_gen.fetch_add(1);
  t_conn = -1;
}

int connect_broker() {
  const char* name = getenv(kEnvSocket);
  if (!name) return -EIO;
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t n = strnlen(name, sizeof addr.sun_path - 1);
  memcpy(addr.sun_path + 1, name, n);
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n)) < 0) {
    close(s);
    return -EIO;
  }
  pthread_mutex_lock(&g_conns_mu);
  if (g_nconns < sizeof g_conns / sizeof g_conns[0]) g_conns[g_nconns++] = s;
  pthread_mutex_unlock(&g_conns_mu);
  return s;
}

void drop_conn() {
  pthread_mutex_lock(&g_conns_mu);
  for (unsigned i = 0; i < g_nconns; ++i)
    if (g_conns[i] == t_conn) g_conns[i] = g_conns[--g_nconns];
  pthread_mutex_unlock(&g_conns_mu);
  close(t_conn);
  t_conn = -1;
}

// Threads that end give their connection back (the broker's thread ends too).
pthread_key_t g_exit_key;
void on_thread_exit(void*) {
  if (t_conn >= 0) drop_conn();
  free(t_buf);
  t_buf = nullptr;
}

// After exec the hint table is empty: find the dma-bufs among inherited fds.
void rescan_inherited() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  uint64_t inos[512];
  int fds[512];
  unsigned n = 0;
  const int self = dirfd(d);
  while (dirent* e = readdir(d)) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == self || n == 512) continue;
    if (uint64_t ino = sock_ino(fd)) {
      inos[n] = ino;
      fds[n++] = fd;
    }
  }
  closedir(d);
  hint_buffers(inos, fds, n);
}

__attribute__((constructor)) void init() {
  const char* sock = getenv(kEnvSocket);
  if (!sock || !*sock) return;
  const char* root = getenv(kEnvRoot);
  const char* emu = getenv(kEnvEmulate);
  if (root) strncpy(g_config.root, root, sizeof g_config.root - 1);
  if (emu) {
    g_config.heaps = strstr(emu, "heaps") != nullptr;
    g_config.udmabuf = strstr(emu, "udmabuf") != nullptr;
    g_config.sw_sync = strstr(emu, "sw_sync") != nullptr;
  }
  g_config.enabled = true;
  pthread_atfork(nullptr, nullptr, atfork_child);
  pthread_key_create(&g_exit_key, on_thread_exit);
  rescan_inherited();
}

}  // namespace

bool in_call() { return t_in_call; }

namespace {
int64_t call_locked(Call* c);
}

int64_t call(Call* c) {
  t_in_call = true;
  int64_t r = call_locked(c);
  t_in_call = false;
  return r;
}

namespace {
int64_t call_locked(Call* c) {
  c->out = nullptr;
  c->out_nfds = 0;
  const unsigned gen = g_fork_gen.load();
  if (t_gen != gen) {
    t_conn = -1;  // the parent's; closed by atfork_child
    t_gen = gen;
  }
  if (t_conn < 0) {
    int s = connect_broker();
    if (s < 0) return -EIO;
    t_conn = s;
    pthread_setspecific(g_exit_key, reinterpret_cast<void*>(1));
  }
  c->req.magic = kMagic;
  if (!c->req.comm[0]) prctl(PR_GET_NAME, c->req.comm);
  if (msg_send(t_conn, &c->req, sizeof c->req, c->payload, c->req.len, c->fds, c->nfds) < 0) {
    drop_conn();
    return -EIO;
  }
  // One receive buffer per thread, made on its first call: a reply can be
  // kMaxPayload bytes, and a fresh allocation that size is an mmap+munmap
  // on every round trip.
  const size_t cap = sizeof(Reply) + kMaxPayload;
  if (!t_buf && !(t_buf = static_cast<uint8_t*>(malloc(cap)))) return -ENOMEM;
  ssize_t n = msg_recv(t_conn, t_buf, cap, c->out_fds, kMaxFds, &c->out_nfds);
  if (n < static_cast<ssize_t>(sizeof(Reply))) {
    for (unsigned i = 0; i < c->out_nfds; ++i) close(c->out_fds[i]);
    c->out_nfds = 0;
    drop_conn();
    return -EIO;  // the broker is gone (or spoke garbage)
  }
  memcpy(&c->reply, t_buf, sizeof(Reply));
  if (c->reply.len) {
    c->out = static_cast<uint8_t*>(malloc(c->reply.len));
    if (!c->out) {
      for (unsigned i = 0; i < c->out_nfds; ++i) close(c->out_fds[i]);
      c->out_nfds = 0;
      return -ENOMEM;
    }
    memcpy(c->out, t_buf + sizeof(Reply), c->reply.len);
  }
  return c->reply.ret;
}
}  // namespace

uint64_t sock_ino(int fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  return st.st_ino;
}

// One word per fd: the kind in the top byte, the inode below (socket inodes
// are small counters).
constexpr uint64_t kInoMask = (uint64_t(1) << 56) - 1;
uint64_t hint_raw(int fd) { return fd >= 0 && fd < kHintFds ? g_hints[fd].load(std::memory_order_relaxed) : 0; }
void hint_store(int fd, uint64_t v) {
  if (fd >= 0 && fd < kHintFds) g_hints[fd].store(v, std::memory_order_relaxed);
}
void hint_set(int fd, uint64_t ino, Kind kind) {
  hint_store(fd, ino ? (uint64_t(kind) << 56) | (ino & kInoMask) : 0);
}
uint64_t hint_get(int fd, Kind kind) {
  const uint64_t v = hint_raw(fd);
  return v && Kind(v >> 56) == kind ? v & kInoMask : 0;
}
Kind hint_kind(int fd) { return Kind(hint_raw(fd) >> 56); }
void hint_copy(int from, int to) { hint_store(to, hint_raw(from)); }
void hint_clear(int fd) { hint_store(fd, 0); }

void hint_buffers(const uint64_t* inos, const int* fds, unsigned n) {
  if (!n) return;
  Call c;
  c.req.op = Op::kIdentify;
  c.payload = inos;
  c.req.len = n * sizeof(uint64_t);
  if (call(&c) == 0 && c.out && c.reply.len == n)
    for (unsigned i = 0; i < n; ++i)
      if (c.out[i] == static_cast<uint8_t>(Kind::kBuffer) || c.out[i] == static_cast<uint8_t>(Kind::kTimeline))
        hint_set(fds[i], inos[i], static_cast<Kind>(c.out[i]));
  free(c.out);
}

void set_cloexec(int fd, bool on) {
  int f = fcntl(fd, F_GETFD);
  if (f >= 0) fcntl(fd, F_SETFD, on ? (f | FD_CLOEXEC) : (f & ~FD_CLOEXEC));
}

}  // namespace dmabuf::run::preload

// For the bench (native/run/bench): an empty round trip to the broker, the
// floor of every emulated ioctl. 0, or -EIO outside a run.
extern "C" __attribute__((visibility("default"))) int dmabuf_run_ping() {
  if (!dmabuf::run::preload::g_config.enabled) return -EIO;
  dmabuf::run::preload::Call c;
  c.req.op = dmabuf::run::Op::kPing;
  int64_t r = dmabuf::run::preload::call(&c);
  free(c.out);
  return static_cast<int>(r);
}
