// Interposed ioctl(): the dma-buf, sync_file, sw_sync, dma-heap and udmabuf
// ioctls on sockets the broker made are sent to it; fds inside the argument
// become object inodes on the way in, and new objects arrive as fds whose
// numbers are written where the kernel writes them. Everything else goes to
// libc untouched.
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/sync_file.h>
#include <linux/udmabuf.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel/uapi.h"
#include "run/preload/client.h"

using namespace dmabuf::run;
using namespace dmabuf::run::preload;
namespace uapi = dmabuf::kernel::uapi;

namespace {

bool our_magic(unsigned long req) {
  switch (_IOC_TYPE(req)) {
    case 'b': case '>': case 'W': case 'H': case 'u': return true;
    default: return false;
  }
}

template <typename T>
T field(const void* arg, size_t off) {
  T v;
  memcpy(&v, static_cast<const uint8_t*>(arg) + off, sizeof v);
  return v;
}
template <typename T>
void set_field(void* arg, size_t off, T v) {
  memcpy(static_cast<uint8_t*>(arg) + off, &v, sizeof v);
}

// Where a sync_file fd sits inside an argument (refs[0]), -1 if none.
long ref_offset(unsigned long req) {
  if (req == SYNC_IOC_MERGE) return offsetof(sync_merge_data, fd2);
  if (req == DMA_BUF_IOCTL_IMPORT_SYNC_FILE) return offsetof(dma_buf_import_sync_file, fd);
  if (req == uapi::kSwSyncGetDeadline) return offsetof(uapi::sw_sync_get_deadline, fence_fd);
  return -1;
}

// Where the kernel writes a new fd into the argument, and with which
// FD_CLOEXEC; -1 if the fd is the ioctl's return value (udmabuf) or none.
long out_fd_offset(unsigned long req, const void* arg, bool* cloexec) {
  *cloexec = true;  // sync_file fds are always O_CLOEXEC
  if (_IOC_TYPE(req) == 'H' && _IOC_NR(req) == 0 && _IOC_SIZE(req) >= 12) {
    *cloexec = field<uint32_t>(arg, offsetof(dma_heap_allocation_data, fd_flags)) & O_CLOEXEC;
    return offsetof(dma_heap_allocation_data, fd);
  }
  if (req == SYNC_IOC_MERGE) return offsetof(sync_merge_data, fence);
  if (req == uapi::kSwSyncIocCreateFence) return offsetof(uapi::sw_sync_create_fence_data, fence);
  if (req == DMA_BUF_IOCTL_EXPORT_SYNC_FILE) return offsetof(dma_buf_export_sync_file, fd);
  return -1;
}

bool is_udmabuf(unsigned long req) { return req == UDMABUF_CREATE || req == UDMABUF_CREATE_LIST; }

// Builds the payload: the argument's bytes (the name string for SET_NAME, the
// item list for UDMABUF_CREATE_LIST) with udmabuf memfd fields turned into
// 1 + the index of the fd among those attached.
void build(unsigned long req, void* arg, std::vector<uint8_t>* payload, std::vector<int>* fds) {
  if (_IOC_TYPE(req) == 'b' && _IOC_NR(req) == 1) {  // DMA_BUF_SET_NAME_A/B: a string pointer
    const char* s = static_cast<const char*>(arg);
    const size_t n = strnlen(s, DMA_BUF_NAME_LEN);
    payload->assign(s, s + n);
    return;
  }
  size_t len = _IOC_SIZE(req);
  if (req == UDMABUF_CREATE_LIST) {
    const uint32_t count = field<uint32_t>(arg, offsetof(udmabuf_create_list, count));
    if (count <= 1024) len += count * sizeof(udmabuf_create_item);
  }
  const auto* p = static_cast<const uint8_t*>(arg);
  payload->assign(p, p + len);
  if (!is_udmabuf(req)) return;
  auto attach = [&](size_t off) {
    const int fd = static_cast<int>(field<uint32_t>(payload->data(), off));
    uint32_t ref = 0;
    if (fcntl(fd, F_GETFD) >= 0) {
      for (size_t i = 0; i < fds->size(); ++i)
        if ((*fds)[i] == fd) ref = static_cast<uint32_t>(i + 1);
      if (!ref && fds->size() < kMaxFds) {
        fds->push_back(fd);
        ref = static_cast<uint32_t>(fds->size());
      }
    }
    set_field<uint32_t>(payload->data(), off, ref);
  };
  if (req == UDMABUF_CREATE) {
    attach(offsetof(udmabuf_create, memfd));
  } else {
    const size_t n = (payload->size() - sizeof(udmabuf_create_list)) / sizeof(udmabuf_create_item);
    for (size_t i = 0; i < n; ++i)
      attach(sizeof(udmabuf_create_list) + i * sizeof(udmabuf_create_item) + offsetof(udmabuf_create_item, memfd));
  }
}

// The emulated ioctl; kNotOurs when the broker does not know @ino.
long emu_ioctl(uint64_t ino, unsigned long req, void* arg) {
  Call c;
  c.req.op = Op::kIoctl;
  c.req.ino = ino;
  c.req.cmd = req;
  c.req.arg_null = arg == nullptr;
  std::vector<uint8_t> payload;
  std::vector<int> fds;
  if (arg) {
    build(req, arg, &payload, &fds);
    if (long off = ref_offset(req); off >= 0) c.req.refs[0] = sock_ino(field<int32_t>(arg, off));
  }
  c.payload = payload.data();
  c.req.len = static_cast<uint32_t>(payload.size());
  c.fds = fds.data();
  c.nfds = static_cast<unsigned>(fds.size());
  int64_t r = call(&c);
  if (r < 0) {
    for (unsigned i = 0; i < c.out_nfds; ++i) close(c.out_fds[i]);
    free(c.out);
    return r;
  }
  // Copy back what the kernel would write: the argument (FILE_INFO keeps the
  // caller's entry pointer and gets the entries there).
  if (req == SYNC_IOC_FILE_INFO && c.out && c.reply.len >= sizeof(sync_file_info)) {
    sync_file_info info;
    memcpy(&info, c.out, sizeof info);
    info.sync_fence_info = field<uint64_t>(arg, offsetof(sync_file_info, sync_fence_info));
    memcpy(arg, &info, sizeof info);
    const size_t entries = c.reply.len - sizeof info;
    if (entries && info.sync_fence_info)
      memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(info.sync_fence_info)), c.out + sizeof info, entries);
  } else if (c.out && (_IOC_DIR(req) & _IOC_READ)) {
    memcpy(arg, c.out, c.reply.len < _IOC_SIZE(req) ? c.reply.len : _IOC_SIZE(req));
  }
  free(c.out);
  if (c.out_nfds == 1) {
    const int fd = c.out_fds[0];
    bool cloexec;
    const long off = out_fd_offset(req, arg, &cloexec);
    if (off >= 0) {
      set_field<int32_t>(arg, off, fd);
      set_cloexec(fd, cloexec);
      if (_IOC_TYPE(req) == 'H') hint_set(fd, sock_ino(fd), Kind::kBuffer);
    } else if (is_udmabuf(req)) {
      const uint32_t flags = field<uint32_t>(arg, req == UDMABUF_CREATE ? offsetof(udmabuf_create, flags)
                                                                         : offsetof(udmabuf_create_list, flags));
      set_cloexec(fd, flags & UDMABUF_FLAGS_CLOEXEC);
      hint_set(fd, sock_ino(fd), Kind::kBuffer);
      return fd;
    } else {
      close(fd);
    }
  }
  return r;
}

}  // namespace

extern "C" int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (g_config.enabled && !in_call() && our_magic(req)) {
    if (uint64_t ino = sock_ino(fd)) {
      long r = emu_ioctl(ino, req, arg);
      if (r != kNotOurs) {
        if (r < 0) {
          errno = static_cast<int>(-r);
          return -1;
        }
        return static_cast<int>(r);
      }
    }
  }
  return DMABUF_REAL(ioctl)(fd, req, arg);
}
