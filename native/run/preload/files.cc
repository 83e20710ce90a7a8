// Interposed file calls: opening the emulated nodes (through the broker),
// stat/access/opendir of them (through the shadow tree), fdinfo and bufinfo
// text, and the fd bookkeeping of the buffer hints (close, dup*, fcntl
// F_DUPFD*, recvmsg of SCM_RIGHTS).
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "run/preload/client.h"
#include "run/preload/paths.h"

using namespace dmabuf::run;
using namespace dmabuf::run::preload;

namespace {

// A read-only snapshot as a file: what fdinfo and bufinfo reads see.
int text_file(const uint8_t* text, size_t len, int flags) {
  int fd = memfd_create("dmabuf-run", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  if (fd < 0) return -errno;
  for (size_t off = 0; off < len;) {
    ssize_t n = write(fd, text + off, len - off);
    if (n <= 0) {
      close(fd);
      return -EIO;
    }
    off += static_cast<size_t>(n);
  }
  lseek(fd, 0, SEEK_SET);
  return fd;
}

int text_from(Call& c, int flags) {
  int64_t r = call(&c);
  int fd = r < 0 ? static_cast<int>(r) : text_file(c.out, c.reply.len, flags);
  free(c.out);
  return fd;
}

// open() of an emulated path: 1 with *result (an fd or -1 with errno), or 0
// to let libc open it.
int emu_open(const char* path, int flags, int* result) {
  char fd_path[128], shadow[1024];
  const Node n = classify(path, fd_path, sizeof fd_path);
  int fd;
  switch (n) {
    case Node::kNone:
      return 0;
    case Node::kHeapDir:
    case Node::kDebugDir:
      if (!shadow_path(path, shadow, sizeof shadow)) return 0;
      *result = DMABUF_REAL(open)(shadow, flags, 0);
      return 1;
    case Node::kDevice: {
      // The kernel's nodes are root's, mode 0600 (debugfs: root only).
      if (geteuid() != 0) {
        errno = EACCES;
        *result = -1;
        return 1;
      }
      Call c;
      c.req.op = Op::kOpen;
      c.req.cmd = static_cast<uint64_t>(flags);
      c.payload = path;
      c.req.len = static_cast<uint32_t>(strlen(path) + 1);
      int64_t r = call(&c);
      free(c.out);
      if (r >= 0 && c.out_nfds == 1) {
        fd = c.out_fds[0];
        set_cloexec(fd, flags & O_CLOEXEC);
        if (!strcmp(path, "/sys/kernel/debug/sync/sw_sync")) hint_set(fd, sock_ino(fd), Kind::kTimeline);
      } else {
        for (unsigned i = 0; i < c.out_nfds; ++i) close(c.out_fds[i]);
        fd = r < 0 ? static_cast<int>(r) : -EIO;
      }
      break;
    }
    case Node::kBufinfo: {
      Call c;
      c.req.op = Op::kBufinfo;
      fd = text_from(c, flags);
      break;
    }
    case Node::kFdinfo: {
      struct stat st;
      if (stat(fd_path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
      Call c;
      c.req.op = Op::kFdinfo;
      c.req.ino = st.st_ino;
      fd = text_from(c, flags);
      if (fd == static_cast<int>(kNotOurs)) return 0;
      break;
    }
    default:
      return 0;
  }
  if (fd < 0) {
    errno = -fd;
    fd = -1;
  }
  *result = fd;
  return 1;
}

// Out of line: libc declares path arguments nonnull, but callers pass NULL.
__attribute__((noinline)) bool is_absolute(const char* path) { return path && path[0] == '/'; }

mode_t open_mode(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

// stat-like calls on an emulated path go to its shadow; device nodes say so.
template <typename St>
void as_device(const char* path, St* st) {
  if (is_device_node(path)) {
    st->st_mode = (st->st_mode & ~S_IFMT & ~07777) | S_IFCHR | 0600;
    st->st_uid = 0;
    st->st_gid = 0;
  }
}

const char* shadowed(const char* path, char* buf, size_t cap) {
  return path && shadow_path(path, buf, cap) ? buf : path;
}

}  // namespace

#define OPEN_LIKE(name, ...)                                       \
  extern "C" int name(const char* path, int flags, ...) {           \
    va_list ap;                                                     \
    va_start(ap, flags);                                            \
    mode_t mode = open_mode(flags, ap);                             \
    va_end(ap);                                                     \
    int r;                                                          \
    if (!in_call() && emu_open(path, flags, &r)) return r;          \
    return DMABUF_REAL(name)(path, flags, mode);                    \
  }
OPEN_LIKE(open)
OPEN_LIKE(open64)

#define OPENAT_LIKE(name)                                                    \
  extern "C" int name(int dirfd, const char* path, int flags, ...) {          \
    va_list ap;                                                               \
    va_start(ap, flags);                                                      \
    mode_t mode = open_mode(flags, ap);                                       \
    va_end(ap);                                                               \
    int r;                                                                    \
    if (!in_call() && is_absolute(path) && emu_open(path, flags, &r)) return r; \
    return DMABUF_REAL(name)(dirfd, path, flags, mode);                       \
  }
OPENAT_LIKE(openat)
OPENAT_LIKE(openat64)

// The _FORTIFY_SOURCE entry points.
extern "C" int __open_2(const char* path, int flags) { return open(path, flags); }
extern "C" int __open64_2(const char* path, int flags) { return open(path, flags); }
extern "C" int __openat_2(int dirfd, const char* path, int flags) { return openat(dirfd, path, flags); }
extern "C" int __openat64_2(int dirfd, const char* path, int flags) { return openat(dirfd, path, flags); }

// glibc's fopen opens through an internal symbol: catch it here.
#define FOPEN_LIKE(name)                                                                  \
  extern "C" FILE* name(const char* path, const char* mode) {                             \
    int r;                                                                                \
    const int flags = (mode && (strchr(mode, '+') || mode[0] != 'r') ? O_RDWR : O_RDONLY) | \
                      (mode && strchr(mode, 'e') ? O_CLOEXEC : 0);                         \
    if (!in_call() && emu_open(path, flags, &r)) return r < 0 ? nullptr : fdopen(r, mode); \
    return DMABUF_REAL(name)(path, mode);                                                 \
  }
FOPEN_LIKE(fopen)
FOPEN_LIKE(fopen64)

#define STAT_LIKE(name, St)                                   \
  extern "C" int name(const char* path, struct St* st) {      \
    char buf[1024];                                           \
    int r = DMABUF_REAL(name)(shadowed(path, buf, sizeof buf), st); \
    if (r == 0) as_device(path, st);                          \
    return r;                                                 \
  }
STAT_LIKE(stat, stat)
STAT_LIKE(stat64, stat64)
STAT_LIKE(lstat, stat)
STAT_LIKE(lstat64, stat64)

#define FSTATAT_LIKE(name, St)                                               \
  extern "C" int name(int dirfd, const char* path, struct St* st, int flags) { \
    char buf[1024];                                                          \
    int r = DMABUF_REAL(name)(dirfd, shadowed(path, buf, sizeof buf), st, flags); \
    if (r == 0) as_device(path, st);                                         \
    return r;                                                                \
  }
FSTATAT_LIKE(fstatat, stat)
FSTATAT_LIKE(fstatat64, stat64)

// Binaries built against glibc before 2.33 call the versioned wrappers.
#define XSTAT_LIKE(name, St)                                          \
  extern "C" int name(int ver, const char* path, struct St* st) {     \
    using F = int (*)(int, const char*, struct St*);                  \
    static auto f = reinterpret_cast<F>(dlsym(RTLD_NEXT, #name));      \
    char buf[1024];                                                   \
    if (!f) { errno = ENOSYS; return -1; }                            \
    int r = f(ver, shadowed(path, buf, sizeof buf), st);              \
    if (r == 0) as_device(path, st);                                  \
    return r;                                                         \
  }
XSTAT_LIKE(__xstat, stat)
XSTAT_LIKE(__xstat64, stat64)
XSTAT_LIKE(__lxstat, stat)
XSTAT_LIKE(__lxstat64, stat64)

extern "C" int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* st) {
  char buf[1024];
  int r = DMABUF_REAL(statx)(dirfd, shadowed(path, buf, sizeof buf), flags, mask, st);
  if (r == 0 && is_device_node(path)) {
    st->stx_mode = static_cast<uint16_t>(S_IFCHR | 0600);
    st->stx_uid = 0;
    st->stx_gid = 0;
  }
  return r;
}

// Device nodes are root's, mode 0600.
extern "C" int access(const char* path, int mode) {
  char buf[1024];
  if (mode != F_OK && is_device_node(path) && geteuid() != 0) {
    errno = EACCES;
    return -1;
  }
  return DMABUF_REAL(access)(shadowed(path, buf, sizeof buf), mode);
}

extern "C" int faccessat(int dirfd, const char* path, int mode, int flags) {
  char buf[1024];
  if (mode != F_OK && is_device_node(path) && geteuid() != 0) {
    errno = EACCES;
    return -1;
  }
  return DMABUF_REAL(faccessat)(dirfd, shadowed(path, buf, sizeof buf), mode, flags);
}

extern "C" DIR* opendir(const char* path) {
  char buf[1024];
  return DMABUF_REAL(opendir)(shadowed(path, buf, sizeof buf));
}

// readlink of /proc/<pid>/fd/N for an emulated file says what the kernel's would.
namespace {
ssize_t emu_readlink(const char* path, char* buf, size_t cap, ssize_t n) {
  if (n < 0 || !g_config.enabled || in_call() || !is_absolute(path) || strncmp(path, "/proc/", 6) ||
      !strstr(path, "/fd/") || n < 8 || strncmp(buf, "socket:[", 8))
    return n;
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) return n;
  Call c;
  c.req.op = Op::kLink;
  c.req.ino = st.st_ino;
  int64_t r = call(&c);
  if (r == 0 && c.out) {
    n = c.reply.len < cap ? c.reply.len : cap;
    memcpy(buf, c.out, static_cast<size_t>(n));
  }
  free(c.out);
  return n;
}
}  // namespace

extern "C" ssize_t readlink(const char* path, char* buf, size_t cap) {
  return emu_readlink(path, buf, cap, DMABUF_REAL(readlink)(path, buf, cap));
}

extern "C" ssize_t readlinkat(int dirfd, const char* path, char* buf, size_t cap) {
  return emu_readlink(path, buf, cap, DMABUF_REAL(readlinkat)(dirfd, path, buf, cap));
}

// fstatfs of an emulated fd names the kernel's filesystem: dma-bufs live on
// the dma-buf fs, sync_files and the rest on anon_inode / debugfs / devtmpfs.
namespace {
Kind identify(uint64_t ino) {
  Call c;
  c.req.op = Op::kIdentify;
  c.payload = &ino;
  c.req.len = sizeof ino;
  Kind k = Kind::kNone;
  if (call(&c) == 0 && c.out && c.reply.len == 1) k = static_cast<Kind>(c.out[0]);
  free(c.out);
  return k;
}

template <typename Sfs>
void fs_magic(int fd, Sfs* st) {
  constexpr long kSockfs = 0x534F434B;
  if (!g_config.enabled || in_call() || st->f_type != kSockfs) return;
  switch (identify(sock_ino(fd))) {
    case Kind::kBuffer: st->f_type = 0x444d4142; break;        // DMA_BUF_MAGIC
    case Kind::kSyncFile: st->f_type = 0x09041934; break;      // ANON_INODE_FS_MAGIC
    case Kind::kTimeline: st->f_type = 0x64626720; break;      // DEBUGFS_MAGIC
    case Kind::kHeap: case Kind::kUdmabufDev: st->f_type = 0x01021994; break;  // TMPFS (devtmpfs)
    default: break;
  }
}
}  // namespace

extern "C" int fstatfs(int fd, struct statfs* st) {
  int r = DMABUF_REAL(fstatfs)(fd, st);
  if (r == 0) fs_magic(fd, st);
  return r;
}

extern "C" int fstatfs64(int fd, struct statfs64* st) {
  int r = DMABUF_REAL(fstatfs64)(fd, st);
  if (r == 0) fs_magic(fd, st);
  return r;
}

// lseek fails on a socket; a dma-buf answers SEEK_END with its size.
extern "C" off_t lseek(int fd, off_t off, int whence) {
  off_t r = DMABUF_REAL(lseek)(fd, off, whence);
  if (r >= 0 || errno != ESPIPE || !g_config.enabled || in_call()) return r;
  const uint64_t ino = sock_ino(fd);
  if (!ino) return r;
  Call c;
  c.req.op = Op::kSeek;
  c.req.ino = ino;
  c.req.a0 = static_cast<uint64_t>(off);
  c.req.cmd = static_cast<uint64_t>(whence);
  int64_t v = call(&c);
  free(c.out);
  if (v == kNotOurs) {
    errno = ESPIPE;
    return -1;
  }
  if (v < 0) {
    errno = static_cast<int>(-v);
    return -1;
  }
  return static_cast<off_t>(v);
}

extern "C" off_t lseek64(int fd, off_t off, int whence) { return lseek(fd, off, whence); }

// --- buffer hints follow the fd numbers ------------------------------------------

// The last close of a timeline or a dma-buf releases it before close()
// returns, as the kernel's release does (a timeline's pending points are
// signalled with -ENOENT by then): the broker is told, and releases the
// object now if no client holds it any more.
extern "C" int close(int fd) {
  const Kind kind = hint_kind(fd);
  const uint64_t ino = kind == Kind::kNone ? 0 : hint_get(fd, kind);
  hint_clear(fd);
  const int r = DMABUF_REAL(close)(fd);
  if (r == 0 && ino && g_config.enabled && !in_call()) {
    const int saved = errno;
    Call c;
    c.req.op = Op::kClosed;
    c.req.ino = ino;
    call(&c);
    free(c.out);
    errno = saved;
  }
  return r;
}

extern "C" int dup(int fd) {
  int r = DMABUF_REAL(dup)(fd);
  if (r >= 0) hint_copy(fd, r);
  return r;
}

extern "C" int dup2(int fd, int fd2) {
  int r = DMABUF_REAL(dup2)(fd, fd2);
  if (r >= 0) hint_copy(fd, r);
  return r;
}

extern "C" int dup3(int fd, int fd2, int flags) {
  int r = DMABUF_REAL(dup3)(fd, fd2, flags);
  if (r >= 0) hint_copy(fd, r);
  return r;
}

namespace {
int fcntl_impl(int (*real_fcntl)(int, int, ...), int fd, int cmd, va_list ap) {
  // Every fcntl argument is an int or a pointer; pass it on as a pointer-sized word.
  void* arg = va_arg(ap, void*);
  int r = real_fcntl(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) hint_copy(fd, r);
  return r;
}
}  // namespace

extern "C" int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_impl(DMABUF_REAL(fcntl), fd, cmd, ap);
  va_end(ap);
  return r;
}

extern "C" int fcntl64(int fd, int cmd, ...) {
  using F = int (*)(int, int, ...);
  static auto f = reinterpret_cast<F>(dlsym(RTLD_NEXT, "fcntl64"));
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_impl(f ? f : DMABUF_REAL(fcntl), fd, cmd, ap);
  va_end(ap);
  return r;
}

// Buffers received from another process: ask the broker which of the
// received sockets are dma-bufs (one round trip, only when sockets arrive).
extern "C" ssize_t recvmsg(int sock, struct msghdr* mh, int flags) {
  ssize_t n = DMABUF_REAL(recvmsg)(sock, mh, flags);
  if (n < 0 || !g_config.enabled || in_call() || !mh || !mh->msg_controllen) return n;
  uint64_t inos[64];
  int fds[64];
  unsigned k = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < m && k < 64; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      hint_clear(fd);
      if (uint64_t ino = sock_ino(fd)) {
        inos[k] = ino;
        fds[k++] = fd;
      }
    }
  }
  const int saved = errno;
  hint_buffers(inos, fds, k);
  errno = saved;
  return n;
}
