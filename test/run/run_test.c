// Tests of `dmabuf run` that need more than one process or a dying broker.
// Each case is a subcommand; test/run/run-tests.sh runs every one under
// `dmabuf run` and prints TAP. Exit 0 = pass; messages on stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct sw_sync_create_fence_data {
  uint32_t value;
  char name[32];
  int32_t fence;
};
#define SW_SYNC_IOC_CREATE_FENCE _IOWR('W', 0, struct sw_sync_create_fence_data)
#define SW_SYNC_IOC_INC _IOW('W', 1, uint32_t)

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);      \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno)); \
      exit(1);                                             \
    }                                                      \
  } while (0)

static int timeline(void) { return open("/sys/kernel/debug/sync/sw_sync", O_RDWR | O_CLOEXEC); }

static int fence_at(int tl, uint32_t value) {
  struct sw_sync_create_fence_data d = {.value = value};
  return ioctl(tl, SW_SYNC_IOC_CREATE_FENCE, &d) < 0 ? -1 : d.fence;
}

static int inc(int tl, uint32_t n) { return ioctl(tl, SW_SYNC_IOC_INC, &n); }

static int status_of(int fence) {
  struct sync_file_info info = {0};
  return ioctl(fence, SYNC_IOC_FILE_INFO, &info) < 0 ? -1000 - errno : info.status;
}

static int alloc_buf(size_t len) {
  int heap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
  CHECK(heap >= 0, "open the system heap");
  struct dma_heap_allocation_data d = {.len = len, .fd_flags = O_RDWR | O_CLOEXEC};
  CHECK(ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &d) == 0, "DMA_HEAP_IOCTL_ALLOC");
  close(heap);
  return (int)d.fd;
}

static void send_fd(int sock, int fd) {
  char byte = 'x';
  struct iovec iov = {&byte, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  CHECK(sendmsg(sock, &mh, 0) == 1, "sendmsg");
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  CHECK(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) == 1, "recvmsg");
  int fd;
  memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof fd);
  return fd;
}

static int wait_child(pid_t pid) {
  int st;
  CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// A forked child increments the timeline; the parent's poll() on the fence wakes.
static int fork_signals_parent(void) {
  int tl = timeline();
  CHECK(tl >= 0, "open sw_sync");
  int f = fence_at(tl, 1);
  CHECK(f >= 0, "create fence");
  struct pollfd p = {f, POLLIN, 0};
  CHECK(poll(&p, 1, 0) == 0, "a fresh fence is pending");
  pid_t pid = fork();
  if (pid == 0) {
    usleep(50000);
    _exit(inc(tl, 1) == 0 ? 0 : 1);
  }
  CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN), "poll woke when the child incremented");
  CHECK(wait_child(pid) == 0, "the child's INC");
  CHECK(status_of(f) == 1, "FILE_INFO says signalled (%d)", status_of(f));
  return 0;
}

// A 4 KiB buffer with a pending write fence (point 1 of the new timeline *tl).
static int busy_buffer(int* tl, int* f) {
  int buf = alloc_buf(4096);
  *tl = timeline();
  *f = fence_at(*tl, 1);
  CHECK(buf >= 0 && *tl >= 0 && *f >= 0, "set up");
  struct dma_buf_import_sync_file imp = {.flags = DMA_BUF_SYNC_WRITE, .fd = *f};
  CHECK(ioctl(buf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &imp) == 0, "IMPORT_SYNC_FILE");
  return buf;
}

// A buffer with a pending write fence, sent to another process, is busy there
// until the fence signals.
static int busy_buffer_crosses(void) {
  int tl, f;
  int buf = busy_buffer(&tl, &f);
  int sv[2], go[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(go) == 0, "socketpair");
  pid_t pid = fork();
  if (pid == 0) {
    // A fresh process image would do the same: the fd arrives over SCM_RIGHTS.
    close(sv[0]);
    int b = recv_fd(sv[1]);
    struct pollfd p = {b, POLLIN, 0};
    CHECK(poll(&p, 1, 0) == 0, "busy for readers in the receiver while the write fence is pending");
    CHECK(write(go[1], "g", 1) == 1, "write");
    CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN), "readable once the fence signalled");
    // The same memory: the parent wrote 0x5a before sending.
    unsigned char* m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, b, 0);
    CHECK(m != MAP_FAILED && m[100] == 0x5a, "the receiver maps the same bytes");
    _exit(0);
  }
  unsigned char* m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
  CHECK(m != MAP_FAILED, "mmap");
  memset(m, 0x5a, 4096);
  send_fd(sv[0], buf);
  char c;
  CHECK(read(go[0], &c, 1) == 1, "the child saw the buffer busy");
  CHECK(inc(tl, 1) == 0, "INC");
  CHECK(wait_child(pid) == 0, "the child's checks");
  return 0;
}

// An exec'd program inherits a busy buffer and a timeline: after exec the
// preload library finds them among the inherited fds.
static int exec_inherits(const char* self) {
  int tl, f;
  int buf = busy_buffer(&tl, &f);
  CHECK(fcntl(buf, F_SETFD, 0) == 0 && fcntl(tl, F_SETFD, 0) == 0, "keep across exec");
  pid_t pid = fork();
  if (pid == 0) {
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", buf);
    snprintf(b, sizeof b, "%d", tl);
    execl(self, self, "exec-child", a, b, (char*)NULL);
    _exit(99);
  }
  CHECK(wait_child(pid) == 0, "the exec'd child's checks");
  CHECK(status_of(f) == 1, "the child's INC signalled our fence");
  return 0;
}

static int exec_child(int buf, int tl) {
  struct pollfd p = {buf, POLLIN, 0};
  CHECK(poll(&p, 1, 0) == 0, "the inherited buffer is busy (a pending write fence)");
  CHECK(inc(tl, 1) == 0, "INC on the inherited timeline");
  CHECK(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN), "then readable");
  return 0;
}

// A client killed while holding a timeline: its pending points signal with
// -ENOENT, as when a sw_sync fd is closed; its buffers go from bufinfo.
static int client_killed(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  pid_t pid = fork();
  if (pid == 0) {
    int tl = timeline();
    int f = fence_at(tl, 5);
    int b = alloc_buf(64 * 4096);
    CHECK(tl >= 0 && f >= 0 && b >= 0, "child set up");
    send_fd(sv[1], f);
    pause();
    _exit(0);
  }
  int f = recv_fd(sv[0]);
  CHECK(status_of(f) == 0, "pending while the child lives");
  CHECK(kill(pid, SIGKILL) == 0, "kill");
  CHECK(wait_child(pid) == 128 + SIGKILL, "killed");
  struct pollfd p = {f, POLLIN, 0};
  CHECK(poll(&p, 1, 10000) == 1, "the point signalled when its timeline went");
  CHECK(status_of(f) == -ENOENT, "status -ENOENT (%d)", status_of(f));
  // The child's 256 KiB buffer is gone from bufinfo (released with its last fd).
  char text[8192] = {0};
  for (int tries = 0; tries < 100; ++tries) {
    int fd = open("/sys/kernel/debug/dma_buf/bufinfo", O_RDONLY);
    CHECK(fd >= 0, "open bufinfo");
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    CHECK(n > 0, "read bufinfo");
    text[n] = 0;
    if (!strstr(text, "00262144\t")) break;  // the size column of a 256 KiB buffer
    usleep(10000);
  }
  CHECK(!strstr(text, "00262144\t"), "the killed client's buffer is still listed:\n%s", text);
  return 0;
}

// Garbage on the broker's socket: that connection is dropped, nobody else notices.
static int garbage(void) {
  const char* name = getenv("DMABUF_RUN_SOCKET");
  CHECK(name, "DMABUF_RUN_SOCKET");
  int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  memcpy(a.sun_path + 1, name, strlen(name));
  CHECK(connect(s, (struct sockaddr*)&a, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name)) == 0, "connect");
  for (int i = 0; i < 3; ++i) {
    char junk[300];
    for (size_t k = 0; k < sizeof junk; ++k) junk[k] = (char)rand();
    send(s, junk, (size_t)(i * 100 + 1), MSG_NOSIGNAL);
  }
  char r;
  struct pollfd p = {s, POLLIN, 0};
  CHECK(poll(&p, 1, 10000) == 1 && recv(s, &r, 1, 0) <= 0, "the broker closed the garbage connection");
  close(s);
  int tl = timeline();
  CHECK(tl >= 0 && fence_at(tl, 1) >= 0 && inc(tl, 1) == 0, "others are still served");
  return 0;
}

// The broker killed mid-run: calls fail with EIO, waits end, nothing hangs.
static int broker_killed(void) {
  int tl = timeline();
  int f = fence_at(tl, 1);
  int b = alloc_buf(4096);
  CHECK(tl >= 0 && f >= 0 && b >= 0, "set up");
  const char* pid = getenv("DMABUF_RUN_BROKER_PID");
  CHECK(pid, "DMABUF_RUN_BROKER_PID");
  CHECK(kill(atoi(pid), SIGKILL) == 0, "kill the broker");
  double t0 = now_s();
  struct pollfd p = {f, POLLIN, 0};
  CHECK(poll(&p, 1, 10000) == 1, "a pending fence's poll ends (end of file)");
  CHECK(inc(tl, 1) < 0 && errno == EIO, "INC is EIO");
  CHECK(status_of(f) == -1000 - EIO, "FILE_INFO is EIO");
  CHECK(open("/dev/dma_heap/system", O_RDWR) < 0 && errno == EIO, "open is EIO");
  CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, b, 0) == MAP_FAILED && errno == EIO, "mmap is EIO");
  CHECK(now_s() - t0 < 5, "no hang (%.1f s)", now_s() - t0);
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && !strcmp(argv[1], "exec-child")) return exec_child(atoi(argv[2]), atoi(argv[3]));
  if (argc == 2 && !strcmp(argv[1], "exec-inherits")) return exec_inherits("/proc/self/exe");
  if (argc != 2) {
    fprintf(stderr, "usage: run_test CASE\n");
    return 2;
  }
  static const struct { const char* name; int (*fn)(void); } cases[] = {
      {"fork-signals-parent", fork_signals_parent},
      {"busy-buffer-crosses", busy_buffer_crosses},
      {"client-killed", client_killed},
      {"garbage", garbage},
      {"broker-killed", broker_killed},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
    if (!strcmp(argv[1], cases[i].name)) return cases[i].fn();
  fprintf(stderr, "unknown case %s\n", argv[1]);
  return 2;
}
