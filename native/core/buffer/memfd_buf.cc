#include "core/buffer/memfd_buf.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/mm/platform.h"

namespace dmabuf {
namespace {

int memfd_attach(DmaBuf*, Attachment*) { return -EOPNOTSUPP; }
int memfd_map(Attachment*, DmaDataDirection, const SgTable**) { return -EOPNOTSUPP; }
void memfd_unmap(Attachment*, const SgTable*, DmaDataDirection) {}
int memfd_mmap(DmaBuf*, const MmapRequest&) { return 0; }
void memfd_release(DmaBuf*) {}

const DmaBufOps kMemfdBufOps = {
    .attach = memfd_attach,
    .map_dma_buf = memfd_map,
    .unmap_dma_buf = memfd_unmap,
    .mmap = memfd_mmap,
    .release = memfd_release,
};

}  // namespace

int memfd_buf_import(Platform* p, int memfd, uint64_t size, const char* exp_name, uint32_t fd_flags,
                     DmaBuf** out) {
  struct stat st;
  const int seals = fcntl(memfd, F_GET_SEALS);
  const uint64_t ps = p ? p->page_size() : 0;
  if (!p || !out || !exp_name || fstat(memfd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 ||
      !(seals & F_SEAL_SHRINK) || size == 0 || size % ps != 0 || static_cast<uint64_t>(st.st_size) < size) {
    if (memfd >= 0) close(memfd);
    return -EINVAL;
  }
  ExportInfo info;
  info.platform = p;
  info.exp_name = exp_name;
  info.ops = &kMemfdBufOps;
  info.size = size;
  info.flags = fd_flags;
  info.memfd = memfd;
  DmaBuf* buf = nullptr;
  if (int r = dma_buf_export(info, &buf)) return r;  // closed memfd
  const int fd = dma_buf_fd(buf, fd_flags);
  if (fd < 0) {
    dma_buf_put(buf);
    return fd;
  }
  *out = buf;
  return 0;
}

}  // namespace dmabuf
