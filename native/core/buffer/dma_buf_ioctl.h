// dma_buf_ioctl(): the dma-buf ioctls by number, for ports of C code that
// speak the UAPI. The fds are memfds, so a raw ioctl() on them would fail with
// ENOTTY; route them here instead (the emulation checklist's "ioctl shim").
#pragma once

#include <cstdint>

namespace dmabuf {

struct DmaBuf;

constexpr unsigned kDmaBufIoctlSync = 0x40086200;            // _IOW('b', 0, u64)
constexpr unsigned kDmaBufSetNameA = 0x40046201;             // _IOW('b', 1, u32)
constexpr unsigned kDmaBufSetNameB = 0x40086201;             // _IOW('b', 1, u64)
constexpr unsigned kDmaBufIoctlExportSyncFile = 0xC0086202;  // _IOWR('b', 2, 8 bytes)
constexpr unsigned kDmaBufIoctlImportSyncFile = 0x40086203;  // _IOW('b', 3, 8 bytes)

struct DmaBufSyncArg {
  uint64_t flags;
};
struct SyncFile;
// struct dma_buf_export_sync_file / dma_buf_import_sync_file, with the
// sync_file object where the UAPI has an fd (as sync_file.h's ioctls do).
// Export stores a new reference in `fd`.
struct DmaBufSyncFileArg {
  uint32_t flags;
  SyncFile* fd;
};

// SYNC, SET_NAME_A/_B (arg: the name string), EXPORT_SYNC_FILE and
// IMPORT_SYNC_FILE (arg: DmaBufSyncFileArg; 6.0+, -ENOTTY on older kernels);
// anything else -ENOTTY.
// A null arg is -EFAULT. Returns 0 or a negative errno.
long dma_buf_ioctl(DmaBuf* buf, unsigned cmd, void* arg);
// The same on one of our fds (-EBADF if it is not one).
long dma_buf_ioctl_fd(int fd, unsigned cmd, void* arg);

}  // namespace dmabuf
