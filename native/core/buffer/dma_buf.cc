// struct dma_buf: export, fds, references, names, CPU-access brackets, release.
// Mappings live in dma_buf_mmap.cc, attachments in attachment.cc, text views
// in dma_buf_fdinfo.cc, the reservation object and implicit sync (sync_file
// export/import, poll) in dma_buf_resv.cc, the ioctls in dma_buf_ioctl.cc.
#include "core/buffer/dma_buf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/base/warn.h"
#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/buffer/mapping.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

// FMODE bits as alloc_file_pseudo leaves them for a dma-buf (6.12: OPENED |
// LSEEK, plus READ/WRITE from OPEN_FMODE); checked against the rig's bufinfo.
constexpr uint32_t kFmodeRead = 0x1;
constexpr uint32_t kFmodeWrite = 0x2;
constexpr uint32_t kFmodeLseek = 0x4;
constexpr uint32_t kFmodeOpened = 0x80000;

// Our user fds -> buffers: dma_buf_get(fd) for fds handed out by
// dma_buf_fd. An fd number is unique process-wide, so one table serves all
// platforms.
// Indexed by fd: the kernel keeps fd numbers dense (lowest free first), so a
// vector is as small as the fd table itself and needs no node per buffer.
std::mutex g_fd_mu;
std::vector<DmaBuf*>& fd_table() {
  static auto* table = new std::vector<DmaBuf*>();
  return *table;
}
void fd_table_set_locked(int fd, DmaBuf* buf) {
  auto& t = fd_table();
  if (static_cast<size_t>(fd) >= t.size()) t.resize(static_cast<size_t>(fd) + 1 + t.size() / 2);
  t[static_cast<size_t>(fd)] = buf;
}
DmaBuf* fd_table_get_locked(int fd) {
  auto& t = fd_table();
  return static_cast<size_t>(fd) < t.size() ? t[static_cast<size_t>(fd)] : nullptr;
}

// The memfd as the user's fd: itself when O_RDWR (the memfd is created
// close-on-exec), otherwise a new open file description with the buffer's
// access mode, so the fd enforces it in child processes too (mmap of an
// O_RDONLY dma-buf with PROT_WRITE|MAP_SHARED fails there as it does here).
// Returns the fd, or -errno with file_fd untouched.
int install_fd(int file_fd, uint32_t accmode, bool cloexec) {
  if (accmode == O_RDWR) {
    if (!cloexec && fcntl(file_fd, F_SETFD, 0) < 0) return -errno;
    return file_fd;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", file_fd);
  int fd = open(path, static_cast<int>(accmode) | (cloexec ? O_CLOEXEC : 0));
  if (fd < 0) return -errno;
  close(file_fd);
  return fd;
}

}  // namespace

int dma_buf_export(const ExportInfo& info, DmaBuf** out) {
  if (!out || !info.platform || !info.exp_name || !info.ops || !info.ops->release ||
      !info.ops->map_dma_buf || !info.ops->unmap_dma_buf || info.size == 0) {
    warn("dma_buf_export: invalid export info");
    if (info.memfd >= 0) close(info.memfd);
    return -EINVAL;
  }
  Platform* p = info.platform;
  if (int err = p->fault(FaultSite::kDmaBufExport).check(-ENOMEM)) {
    if (info.memfd >= 0) close(info.memfd);
    return err;
  }

  int fd = info.memfd;
  if (fd < 0) {
    // "dmabuf:<exporter>", cut to 63 bytes, without snprintf's format
    // machinery (a measurable part of an export's own bookkeeping).
    char name[64] = "dmabuf:";
    constexpr size_t kPrefix = sizeof "dmabuf:" - 1;
    const size_t n = strnlen(info.exp_name, sizeof name - 1 - kPrefix);
    memcpy(name + kPrefix, info.exp_name, n);
    name[kPrefix + n] = '\0';
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    // The size is fixed for the buffer's life, also for child processes.
    if (ftruncate(fd, static_cast<off_t>(info.size)) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
      int err = errno == EFBIG ? -ENOMEM : -errno;
      close(fd);
      return err;
    }
  }

  auto* buf = new DmaBuf();
  buf->platform = platform_get(p);
  buf->ops = info.ops;
  buf->priv = info.priv;
  buf->size = info.size;
  buf->exp_name = info.exp_name;
  buf->ino = p->next_ino.fetch_add(1, std::memory_order_relaxed) + 1;
  buf->f_flags = info.flags & O_ACCMODE;
  // OPEN_FMODE(flags) = (flags + 1) & O_ACCMODE: access mode 3 gets neither.
  const uint32_t open_fmode = (buf->f_flags + 1) & O_ACCMODE;
  buf->f_mode = kFmodeOpened | kFmodeLseek | (open_fmode & (kFmodeRead | kFmodeWrite));
  buf->file_fd = fd;
  dma_buf_resv_init(buf, info.resv);
  {
    std::lock_guard<std::mutex> g(p->bufs_mu);
    list_add(&buf->node, &p->bufs);
  }
  *out = buf;
  return 0;
}

int dma_buf_fd(DmaBuf* buf, uint32_t fd_flags) {
  if (!buf) return -EINVAL;
  if (int err = buf->platform->fault(FaultSite::kDmaBufFd).check(-EMFILE)) return err;
  if (buf->file_fd < 0) return -EINVAL;  // installed already
  int fd = install_fd(buf->file_fd, buf->f_flags, fd_flags & O_CLOEXEC);
  if (fd < 0) return fd;
  buf->file_fd = -1;
  {
    std::lock_guard<std::mutex> g(g_fd_mu);
    fd_table_set_locked(fd, buf);
  }
  buf->user_fd.store(fd, std::memory_order_release);
  return fd;
}

void dma_buf_get(DmaBuf* buf) { buf->file_count.fetch_add(1, std::memory_order_relaxed); }

void dma_buf_put(DmaBuf* buf) {
  if (buf && buf->file_count.fetch_sub(1, std::memory_order_acq_rel) == 1) dma_buf_release(buf);
}

void dma_buf_obj_get(DmaBuf* buf) { buf->obj_refs.fetch_add(1, std::memory_order_relaxed); }

void dma_buf_obj_put(DmaBuf* buf) {
  if (buf->obj_refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  Platform* p = buf->platform;
  delete buf;
  platform_put(p);
}

void dma_buf_release(DmaBuf* buf) {
  // Every CPU mapping and attachment holds a file reference, so none is left.
  Platform* p = buf->platform;
  {
    std::lock_guard<std::mutex> g(p->bufs_mu);
    list_del_init(&buf->node);
  }
  buf->ops->release(buf);
  dma_buf_resv_fini(buf);
  if (buf->file_fd >= 0) close(buf->file_fd);  // never installed
  buf->file_fd = -1;
  dma_buf_obj_put(buf);
}

int dma_buf_close(DmaBuf* buf) {
  if (!buf) return -EBADF;
  int fd;
  {
    // Under map_lock so no mmap or fdinfo is using the number as it goes.
    std::lock_guard<std::mutex> g(buf->map_lock);
    fd = buf->user_fd.exchange(-1, std::memory_order_acq_rel);
    if (fd < 0) return -EBADF;
    {
      std::lock_guard<std::mutex> t(g_fd_mu);
      if (static_cast<size_t>(fd) < fd_table().size()) fd_table()[static_cast<size_t>(fd)] = nullptr;
    }
    close(fd);
  }
  dma_buf_invalidate_mappings(buf);
  dma_buf_put(buf);
  return 0;
}

int dma_buf_from_fd(int fd, DmaBuf** out) {
  if (fd < 0 || !out) return -EBADF;
  std::lock_guard<std::mutex> g(g_fd_mu);
  DmaBuf* found = fd_table_get_locked(fd);
  if (!found) return -EBADF;
  // The fd's own reference keeps file_count >= 1 while it is in the table.
  dma_buf_get(found);
  *out = found;
  return 0;
}

int dma_buf_close_fd(int fd) {
  DmaBuf* buf = nullptr;
  if (int err = dma_buf_from_fd(fd, &buf)) return err;
  // Close only if the fd is still this buffer's (a racing close wins).
  int err = buf->user_fd.load(std::memory_order_acquire) == fd ? dma_buf_close(buf) : -EBADF;
  dma_buf_put(buf);
  return err;
}

int dma_buf_set_name(DmaBuf* buf, const char* name, size_t len) {
  if (!buf) return -EINVAL;
  if (!name) return -EFAULT;
  // strndup_user(arg, DMA_BUF_NAME_LEN): the string with its NUL must fit in
  // 32 bytes, so 31 visible characters at most.
  const size_t n = strnlen(name, len);
  if (n >= kDmaBufNameLen) return -EINVAL;
  if (buf->platform->config.kernel < kernel_version(5, 16)) {
    // Before the 2021 MediaTek change, renaming an attached buffer was -EBUSY.
    std::lock_guard<std::mutex> g(buf->attach_lock);
    if (!buf->attachments.empty()) return -EBUSY;
  }
  std::lock_guard<std::mutex> g(buf->name_lock);
  buf->name.assign(name, n);
  buf->has_name = true;
  return 0;
}

bool dma_buf_get_name(DmaBuf* buf, std::string* name) {
  std::lock_guard<std::mutex> g(buf->name_lock);
  if (buf->has_name && name) *name = buf->name;
  return buf->has_name;
}

int dma_buf_begin_cpu_access(DmaBuf* buf, DmaDataDirection dir) {
  if (!buf) return -EINVAL;
  buf->cpu_begin.fetch_add(1, std::memory_order_relaxed);
  int ret = 0;
  if (buf->ops->begin_cpu_access) ret = buf->ops->begin_cpu_access(buf, dir);
  // Then wait for the implicit fences: writers for a read, everyone for a write.
  if (ret == 0) ret = dma_buf_resv_wait_cpu(buf, dir == DMA_BIDIRECTIONAL || dir == DMA_TO_DEVICE);
  return ret;
}

int dma_buf_end_cpu_access(DmaBuf* buf, DmaDataDirection dir) {
  if (!buf) return -EINVAL;
  buf->cpu_end.fetch_add(1, std::memory_order_relaxed);
  return buf->ops->end_cpu_access ? buf->ops->end_cpu_access(buf, dir) : 0;
}

int dma_buf_cpu_sync(DmaBuf* buf, uint64_t flags) {
  if (!buf) return -EBADF;
  if (flags & ~kDmaBufSyncValidFlagsMask) return -EINVAL;
  DmaDataDirection dir;
  switch (flags & kDmaBufSyncRw) {
    case kDmaBufSyncRead: dir = DMA_FROM_DEVICE; break;
    case kDmaBufSyncWrite: dir = DMA_TO_DEVICE; break;
    case kDmaBufSyncRw: dir = DMA_BIDIRECTIONAL; break;
    default: return -EINVAL;
  }
  return (flags & kDmaBufSyncEnd) ? dma_buf_end_cpu_access(buf, dir)
                                  : dma_buf_begin_cpu_access(buf, dir);
}

SgTable dma_buf_sg_table(DmaBuf* buf) {
  const SgTable* t = buf && buf->ops->sg_table ? buf->ops->sg_table(buf) : nullptr;
  return t ? *t : SgTable{};
}

}  // namespace dmabuf
