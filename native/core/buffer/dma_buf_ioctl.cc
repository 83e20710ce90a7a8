#include "core/buffer/dma_buf_ioctl.h"

#include <cerrno>
#include <cstring>

#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/mm/platform.h"

namespace dmabuf {

long dma_buf_ioctl(DmaBuf* buf, unsigned cmd, void* arg) {
  if (!buf) return -EBADF;
  switch (cmd) {
    case kDmaBufIoctlSync: {
      if (!arg) return -EFAULT;
      DmaBufSyncArg sync;
      memcpy(&sync, arg, sizeof sync);
      return dma_buf_cpu_sync(buf, sync.flags);
    }
    case kDmaBufSetNameA:
    case kDmaBufSetNameB:
      // Both carry a pointer to the string; strndup_user reads at most 32 bytes.
      return dma_buf_set_name(buf, static_cast<const char*>(arg), kDmaBufNameLen);
    case kDmaBufIoctlExportSyncFile:
    case kDmaBufIoctlImportSyncFile: {
      // Added in 6.0 (CONFIG_SYNC_FILE); unknown ioctls before.
      if (buf->platform->config.kernel < kernel_version(6, 0)) return -ENOTTY;
      if (!arg) return -EFAULT;
      DmaBufSyncFileArg a;
      memcpy(&a, arg, sizeof a);
      if (cmd == kDmaBufIoctlImportSyncFile) return dma_buf_sync_file_import(buf, a.flags, a.fd);
      SyncFile* sf = nullptr;
      int err = dma_buf_sync_file_export(buf, a.flags, &sf);
      if (err) return err;
      a.fd = sf;
      memcpy(arg, &a, sizeof a);
      return 0;
    }
    default:
      return -ENOTTY;
  }
}

long dma_buf_ioctl_fd(int fd, unsigned cmd, void* arg) {
  DmaBuf* buf = nullptr;
  if (int err = dma_buf_from_fd(fd, &buf)) return err;
  long ret = dma_buf_ioctl(buf, cmd, arg);
  dma_buf_put(buf);
  return ret;
}

}  // namespace dmabuf
