// A dma-buf fd (from a heap, udmabuf or any exporter): CPU mapping, CPU-access
// brackets, name, size, fdinfo, and implicit-sync fences as sync_files
// (drivers/dma-buf/dma-buf.c).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kernel/fd.h"
#include "kernel/fdinfo.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

// Direction bits shared by DMA_BUF_IOCTL_SYNC and the sync_file export/import
// ioctls (DMA_BUF_SYNC_READ/WRITE/RW).
enum DmaBufDir : uint32_t { kDmaBufRead = 1, kDmaBufWrite = 2, kDmaBufReadWrite = 3 };
constexpr uint64_t kDmaBufSyncStart = 0, kDmaBufSyncEnd = 4;  // DMA_BUF_SYNC_START/END
constexpr size_t kDmaBufNameLen = 32;                         // DMA_BUF_NAME_LEN, with the NUL

// An owned CPU mapping; munmap on destruction. Move-only.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  ~Mapping() { reset(); }
  Mapping(Mapping&& o) noexcept : addr_(o.addr_), len_(o.len_) { o.addr_ = nullptr; o.len_ = 0; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  void* data() const { return addr_; }
  uint8_t* bytes() const { return static_cast<uint8_t*>(addr_); }
  size_t size() const { return len_; }
  explicit operator bool() const { return addr_ != nullptr; }
  // Gives the mapping away (the caller munmaps it).
  void* release() { void* a = addr_; addr_ = nullptr; len_ = 0; return a; }
  void reset();

 private:
  void* addr_ = nullptr;
  size_t len_ = 0;
};

// mmap(NULL, len, prot, flags, fd, offset). The kernel checks the range against
// the buffer (EINVAL), the exporter may insist on MAP_SHARED (EINVAL), and a
// writable shared mapping of an O_RDONLY buffer is EACCES.
KResult<Mapping> dma_buf_mmap(int fd, size_t len, int prot = PROT_READ | PROT_WRITE,
                              int flags = MAP_SHARED, uint64_t offset = 0);
// munmap for a mapping taken out of a Mapping with release().
KStatus dma_buf_munmap(void* addr, size_t len);

// DMA_BUF_IOCTL_SYNC with `flags` exactly as given: the kernel validates them
// (bits outside 7, or neither READ nor WRITE: EINVAL). Restarted on EINTR/EAGAIN.
KStatus dma_buf_cpu_sync(int fd, uint64_t flags);
// DMA_BUF_SYNC_START | dir: bracket CPU access (waits for implicit fences).
inline KStatus dma_buf_begin_cpu_access(int fd, uint32_t dir) {
  return dma_buf_cpu_sync(fd, kDmaBufSyncStart | dir);
}
// DMA_BUF_SYNC_END | dir.
inline KStatus dma_buf_end_cpu_access(int fd, uint32_t dir) {
  return dma_buf_cpu_sync(fd, kDmaBufSyncEnd | dir);
}

// DMA_BUF_SET_NAME. Passed through untruncated: a name of 32 bytes or more is
// the kernel's EINVAL (6.12 and later), not silently cut.
KStatus dma_buf_set_name(int fd, std::string_view name);

// The buffer size: lseek(SEEK_END), then back to 0 (dma-bufs only accept those).
KResult<uint64_t> dma_buf_size(int fd);

// /proc/self/fdinfo/<fd> parsed: size, count, exp_name, name, flags, ino, ...
inline KResult<FdInfo> dma_buf_fdinfo(int fd) { return read_fdinfo(fd); }

// DMA_BUF_IOCTL_EXPORT_SYNC_FILE: the buffer's current implicit fences as a new
// sync_file (READ: the writers, WRITE: everyone). A buffer without fences gives
// an already signalled sync_file. ENOTTY before Linux 6.0.
KResult<UniqueFd> dma_buf_export_sync(int fd, uint32_t flags);
// DMA_BUF_IOCTL_IMPORT_SYNC_FILE: adds the sync_file's fences as READ or WRITE
// implicit fences (a non-sync_file fd is EINVAL).
KStatus dma_buf_import_sync(int fd, uint32_t flags, int sync_file_fd);

// poll() on the dma-buf itself: POLLIN once the writers are done, POLLOUT once
// everyone is. Returns revents (0 on timeout).
KResult<short> dma_buf_poll(int fd, short events, int timeout_ms);

// Whether `fd` is a dma-buf: fstatfs() names the dma-buf pseudo filesystem
// (DMA_BUF_MAGIC, what every exporter's file lives on) and its fdinfo has the
// exp_name line only dma_buf_fops shows. A closed fd: EBADF; anything else (a
// memfd, /dev/null, a socket): EINVAL, naming what it is.
KStatus dma_buf_check_fd(int fd);

// close() the dma-buf fd, reporting EBADF for a stale one.
inline KStatus dma_buf_close(int fd) { return close_fd(fd); }

}  // namespace dmabuf::kernel
