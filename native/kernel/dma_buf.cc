#include "kernel/dma_buf.h"

#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "kernel/uapi.h"

namespace dmabuf::kernel {

static_assert(kDmaBufRead == DMA_BUF_SYNC_READ && kDmaBufWrite == DMA_BUF_SYNC_WRITE);
static_assert(kDmaBufSyncStart == DMA_BUF_SYNC_START && kDmaBufSyncEnd == DMA_BUF_SYNC_END);
static_assert(kDmaBufNameLen == DMA_BUF_NAME_LEN);

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    reset();
    addr_ = o.addr_;
    len_ = o.len_;
    o.addr_ = nullptr;
    o.len_ = 0;
  }
  return *this;
}

void Mapping::reset() {
  if (addr_) ::munmap(addr_, len_);
  addr_ = nullptr;
  len_ = 0;
}

KResult<Mapping> dma_buf_mmap(int fd, size_t len, int prot, int flags, uint64_t offset) {
  void* p = ::mmap(nullptr, len, prot, flags, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) {
    const int e = neg_errno();
    return kerror(e, "mmap",
                  kfmt("fd %d len=%zu prot=%#x flags=%#x offset=%llu", fd, len, prot, flags,
                       static_cast<unsigned long long>(offset)));
  }
  return Mapping(p, len);
}

KStatus dma_buf_munmap(void* addr, size_t len) {
  if (::munmap(addr, len) < 0) {
    const int e = neg_errno();
    return kerror(e, "munmap", kfmt("%p len=%zu", addr, len));
  }
  return {};
}

KStatus dma_buf_cpu_sync(int fd, uint64_t flags) {
  struct dma_buf_sync s{};
  s.flags = flags;
  int r = xioctl(fd, DMA_BUF_IOCTL_SYNC, &s, /*also_eagain=*/true);
  if (r < 0)
    return kerror(r, "DMA_BUF_IOCTL_SYNC",
                  kfmt("fd %d flags=%#llx", fd, static_cast<unsigned long long>(flags)));
  return {};
}

KStatus dma_buf_set_name(int fd, std::string_view name) {
  std::string copy(name);  // NUL-terminated for the kernel's strndup_user
  int r = xioctl(fd, DMA_BUF_SET_NAME, const_cast<char*>(copy.c_str()));
  if (r < 0) {
    std::string why = kfmt("fd %d name of %zu bytes", fd, name.size());
    if (r == -EINVAL && name.size() >= DMA_BUF_NAME_LEN)
      why += kfmt(" (the kernel takes at most %d)", DMA_BUF_NAME_LEN - 1);
    return kerror(r, "DMA_BUF_SET_NAME", why);
  }
  return {};
}

KResult<uint64_t> dma_buf_size(int fd) {
  off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) {
    const int e = neg_errno();
    return kerror(e, "lseek", kfmt("fd %d SEEK_END", fd));
  }
  if (::lseek(fd, 0, SEEK_SET) < 0) {
    const int e = neg_errno();
    return kerror(e, "lseek", kfmt("fd %d SEEK_SET", fd));
  }
  return static_cast<uint64_t>(end);
}

KResult<UniqueFd> dma_buf_export_sync(int fd, uint32_t flags) {
  struct dma_buf_export_sync_file ex{};
  ex.flags = flags;
  ex.fd = -1;
  int r = xioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &ex);
  if (r < 0) {
    std::string why = kfmt("fd %d flags=%#x", fd, flags);
    if (r == -ENOTTY) why += " (not a dma-buf, or the kernel predates 6.0)";
    return kerror(r, "DMA_BUF_IOCTL_EXPORT_SYNC_FILE", why);
  }
  return UniqueFd(ex.fd);
}

KStatus dma_buf_import_sync(int fd, uint32_t flags, int sync_file_fd) {
  struct dma_buf_import_sync_file im{};
  im.flags = flags;
  im.fd = sync_file_fd;
  int r = xioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &im);
  if (r < 0) {
    std::string why = kfmt("fd %d flags=%#x sync_file %d", fd, flags, sync_file_fd);
    if (r == -ENOTTY) why += " (not a dma-buf, or the kernel predates 6.0)";
    return kerror(r, "DMA_BUF_IOCTL_IMPORT_SYNC_FILE", why);
  }
  return {};
}

KStatus dma_buf_check_fd(int fd) {
  constexpr unsigned long kDmaBufMagic = 0x444d4142;  // DMA_BUF_MAGIC, include/uapi/linux/magic.h ("DMAB")
  struct statfs st{};
  if (fd < 0) return kerror(-EBADF, "fstatfs", kfmt("fd %d", fd));
  if (::fstatfs(fd, &st) < 0) {
    const int e = neg_errno();
    return kerror(e, "fstatfs", kfmt("fd %d", fd));
  }
  if (static_cast<unsigned long>(st.f_type) != kDmaBufMagic)
    return kerror(-EINVAL, "fstatfs",
                  kfmt("fd %d is not a dma-buf (filesystem magic %#lx, not DMA_BUF_MAGIC %#lx)", fd,
                       static_cast<unsigned long>(st.f_type), kDmaBufMagic));
  // Only a dma-buf's own file (dma_buf_fops) shows exp_name in its fdinfo.
  auto info = read_fdinfo(fd);
  if (!info) return info.error();
  if (!info.value().find("exp_name"))
    return kerror(-EINVAL, "fstatfs", kfmt("fd %d is on the dma-buf filesystem but has no exp_name in its fdinfo", fd));
  return {};
}

KResult<short> dma_buf_poll(int fd, short events, int timeout_ms) {
  return poll_fd(fd, events, timeout_ms);
}

}  // namespace dmabuf::kernel
