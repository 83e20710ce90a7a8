// vgem_import: a real DRM importer for a dma-buf that Node allocated (issue 12,
// "Real devices"). Run by test/kernel/vgem_js.mjs inside the kernel rig with
// RIG_MODULES=vgem; fd 3 is one end of a SOCK_SEQPACKET socket (an FdChannel).
//
//  1. Receives ONE datagram on fd 3: the FdChannel wire format, a UTF-8 JSON
//     payload {"v":1,"m":{"pattern":P,"size":N},"a":[{"k":"dmabuf",...}]} with
//     the dma-buf fd in SCM_RIGHTS (fds in the order of "a").
//  2. Opens vgem (the /dev/dri/card* whose DRM_IOCTL_VERSION name is "vgem") and
//     imports the buffer: DRM_IOCTL_PRIME_FD_TO_HANDLE.
//  3. Maps it through vgem and checks every byte is P. DRM_IOCTL_MODE_MAP_DUMB is
//     tried first, but the DRM core refuses a mmap offset for an imported object
//     (drm_gem_dumb_map_offset: EINVAL, "Don't allow imported objects to be
//     mapped"); then the handle is exported back with DRM_IOCTL_PRIME_HANDLE_TO_FD
//     (for an imported object vgem hands out the very dma-buf it imported: the
//     test checks it is the same file, st_ino) and that fd is mapped.
//  4. DRM_IOCTL_VGEM_FENCE_ATTACH (VGEM_FENCE_WRITE) on the handle: a write fence
//     in the dma-buf's reservation object, so poll(POLLIN) on Node's fd blocks.
//     Sends {"v":1,"m":{"fenced":true},"a":[]}, sleeps ~300 ms, then
//     DRM_IOCTL_VGEM_FENCE_SIGNAL and sends
//     {"v":1,"m":{"signalled":true,"bytesOk":true,...},"a":[]}; exits 0.
// Any failure: one line on stderr naming the step and errno, a datagram
// {"v":1,"m":{"error":"..."},"a":[]} when the socket still works, exit 1.
// The DRM UAPI structs are declared here (include/uapi/drm/drm.h, vgem_drm.h),
// so it builds without kernel or libdrm headers.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// --- include/uapi/drm/drm.h, drm_mode.h, vgem_drm.h (stable UAPI) ---------------
struct drm_version {
  int version_major, version_minor, version_patchlevel;
  size_t name_len;
  char *name;
  size_t date_len;
  char *date;
  size_t desc_len;
  char *desc;
};
struct drm_gem_close { uint32_t handle, pad; };
struct drm_prime_handle { uint32_t handle, flags; int32_t fd; };
struct drm_mode_map_dumb { uint32_t handle, pad; uint64_t offset; };
struct drm_vgem_fence_attach { uint32_t handle, flags, out_fence, pad; };
struct drm_vgem_fence_signal { uint32_t fence, flags; };
#define DRM_IOCTL_BASE 'd'
#define DRM_COMMAND_BASE 0x40
#define DRM_IOCTL_VERSION _IOWR(DRM_IOCTL_BASE, 0x00, struct drm_version)
#define DRM_IOCTL_GEM_CLOSE _IOW(DRM_IOCTL_BASE, 0x09, struct drm_gem_close)
#define DRM_IOCTL_PRIME_HANDLE_TO_FD _IOWR(DRM_IOCTL_BASE, 0x2d, struct drm_prime_handle)
#define DRM_IOCTL_PRIME_FD_TO_HANDLE _IOWR(DRM_IOCTL_BASE, 0x2e, struct drm_prime_handle)
#define DRM_IOCTL_MODE_MAP_DUMB _IOWR(DRM_IOCTL_BASE, 0xB3, struct drm_mode_map_dumb)
#define DRM_IOCTL_VGEM_FENCE_ATTACH _IOWR(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x1, struct drm_vgem_fence_attach)
#define DRM_IOCTL_VGEM_FENCE_SIGNAL _IOW(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x2, struct drm_vgem_fence_signal)
#define VGEM_FENCE_WRITE 0x1
#define DRM_CLOEXEC O_CLOEXEC
#define DRM_RDWR O_RDWR

#define SOCK 3
#define MAX_FDS 8

static void reply(const char *json_m) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "{\"v\":1,\"m\":%s,\"a\":[]}", json_m);
  if (n < 0 || (size_t)n >= sizeof buf) return;
  if (send(SOCK, buf, (size_t)n, MSG_NOSIGNAL) != n) fprintf(stderr, "vgem_import: send: %s\n", strerror(errno));
}

static void fail(const char *step, int err) {
  char m[512];
  fprintf(stderr, "vgem_import: %s: %s\n", step, err ? strerror(err) : "failed");
  snprintf(m, sizeof m, "{\"error\":\"%s: %s\"}", step, err ? strerrorname_np(err) : "failed");
  reply(m);
  exit(1);
}

static int xioctl(int fd, unsigned long req, void *arg) {
  int r;
  do r = ioctl(fd, req, arg);
  while (r < 0 && (errno == EINTR || errno == EAGAIN));
  return r < 0 ? -errno : 0;
}

// The number after "key": in s (JSON numbers only; the message is ours).
static int json_number(const char *s, const char *key, long long *out) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(s, pat);
  if (!p) return -1;
  p += strlen(pat);
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != ':') return -1;
  char *end;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  if (end == p || errno) return -1;
  *out = v;
  return 0;
}

// The vgem card: the /dev/dri/card* whose driver calls itself "vgem".
static int open_vgem(void) {
  DIR *d = opendir("/dev/dri");
  if (!d) fail("opendir /dev/dri (is vgem loaded? RIG_MODULES=vgem)", errno);
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d)) && found < 0) {
    if (strncmp(e->d_name, "card", 4)) continue;
    char path[300];
    snprintf(path, sizeof path, "/dev/dri/%s", e->d_name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    char name[64] = {0};
    struct drm_version v = {0};
    v.name = name;
    v.name_len = sizeof name - 1;
    if (xioctl(fd, DRM_IOCTL_VERSION, &v) == 0 && !strcmp(name, "vgem")) found = fd;
    else close(fd);
  }
  closedir(d);
  if (found < 0) fail("no /dev/dri/card* with DRM driver \"vgem\"", ENODEV);
  return found;
}

int main(void) {
  // The sender may hand over a non-blocking socket (O_NONBLOCK is shared by
  // every dup of the description; the parent has closed its copy of this end).
  int fl = fcntl(SOCK, F_GETFL);
  if (fl < 0) fail("fcntl(F_GETFL) on fd 3 (no channel passed as fd 3?)", errno);
  if ((fl & O_NONBLOCK) && fcntl(SOCK, F_SETFL, fl & ~O_NONBLOCK) < 0) fail("fcntl(F_SETFL) on fd 3", errno);
  // 1. One datagram with its fds.
  char payload[65536];
  char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
  struct iovec iov = {payload, sizeof payload - 1};
  struct msghdr mh = {0};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n;
  do n = recvmsg(SOCK, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) fail("recvmsg on fd 3", errno);
  if (n == 0) fail("recvmsg on fd 3: the peer closed the channel", EPIPE);
  payload[n] = 0;
  if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) fail("recvmsg: message or fds truncated", EMSGSIZE);
  int fds[MAX_FDS], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < k && nfds < MAX_FDS; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  long long v = 0, pattern = -1, size = -1;
  if (json_number(payload, "v", &v) || v != 1) fail("payload: not {\"v\":1,...}", EPROTO);
  if (json_number(payload, "pattern", &pattern) || pattern < 0 || pattern > 255) fail("payload: m.pattern (0..255)", EPROTO);
  if (json_number(payload, "size", &size) || size <= 0) fail("payload: m.size", EPROTO);
  // The first attachment must be the dma-buf: "a":[{"k":"dmabuf"...
  const char *a = strstr(payload, "\"a\"");
  const char *k = a ? strstr(a, "\"k\"") : NULL;
  if (!k || !strstr(k, "\"dmabuf\"") || nfds < 1) fail("payload: no dmabuf attachment with an fd", EPROTO);
  const int buf_fd = fds[0];
  for (int i = 1; i < nfds; i++) close(fds[i]);
  off_t len = lseek(buf_fd, 0, SEEK_END);
  if (len < 0) fail("lseek on the received fd (not a dma-buf?)", errno);
  if (len != size) fail("the dma-buf's size is not m.size", EINVAL);
  lseek(buf_fd, 0, SEEK_SET);

  // 2. PRIME import into vgem.
  int card = open_vgem();
  struct drm_prime_handle imp = {.fd = buf_fd};
  int r = xioctl(card, DRM_IOCTL_PRIME_FD_TO_HANDLE, &imp);
  if (r) fail("DRM_IOCTL_PRIME_FD_TO_HANDLE", -r);
  const uint32_t handle = imp.handle;

  // 3. Map through vgem and check the bytes.
  struct drm_mode_map_dumb md = {.handle = handle};
  int map_dumb = xioctl(card, DRM_IOCTL_MODE_MAP_DUMB, &md);
  uint8_t *p;
  const char *via;
  int exp_fd = -1;
  if (map_dumb == 0) {
    p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, card, (off_t)md.offset);
    via = "MODE_MAP_DUMB";
  } else {
    struct drm_prime_handle ex = {.handle = handle, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1};
    r = xioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &ex);
    if (r) fail("DRM_IOCTL_PRIME_HANDLE_TO_FD", -r);
    exp_fd = ex.fd;
    struct stat a_st, b_st;
    if (fstat(buf_fd, &a_st) || fstat(exp_fd, &b_st)) fail("fstat", errno);
    if (a_st.st_ino != b_st.st_ino) fail("vgem exported another dma-buf than it imported", EINVAL);
    p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, exp_fd, 0);
    via = "PRIME_HANDLE_TO_FD";
  }
  if (p == MAP_FAILED) fail("mmap", errno);
  long long bad = 0;
  for (long long i = 0; i < size; i++) bad += p[i] != (uint8_t)pattern;
  munmap(p, (size_t)size);
  const int bytes_ok = bad == 0;
  if (!bytes_ok) fprintf(stderr, "vgem_import: %lld of %lld bytes differ from %lld\n", bad, size, pattern);

  // 4. A vgem write fence on the imported buffer, signalled ~300 ms later.
  struct drm_vgem_fence_attach fa = {.handle = handle, .flags = VGEM_FENCE_WRITE};
  r = xioctl(card, DRM_IOCTL_VGEM_FENCE_ATTACH, &fa);
  if (r) fail("DRM_IOCTL_VGEM_FENCE_ATTACH", -r);
  reply("{\"fenced\":true}");
  struct timespec ts = {0, 300 * 1000 * 1000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  struct drm_vgem_fence_signal fs = {.fence = fa.out_fence};
  r = xioctl(card, DRM_IOCTL_VGEM_FENCE_SIGNAL, &fs);
  if (r) fail("DRM_IOCTL_VGEM_FENCE_SIGNAL", -r);
  char m[256];
  snprintf(m, sizeof m,
           "{\"signalled\":true,\"bytesOk\":%s,\"mapDumb\":\"%s\",\"mappedVia\":\"%s\",\"size\":%lld}",
           bytes_ok ? "true" : "false", map_dumb == 0 ? "ok" : strerrorname_np(-map_dumb), via, size);
  reply(m);
  struct drm_gem_close gc = {.handle = handle};
  (void)xioctl(card, DRM_IOCTL_GEM_CLOSE, &gc);
  if (exp_fd >= 0) close(exp_fd);
  close(card);
  close(buf_fd);
  return bytes_ok ? 0 : 1;
}
