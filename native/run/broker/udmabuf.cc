#include "run/broker/udmabuf.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "core/buffer/dma_buf.h"
#include "core/mm/platform.h"

namespace dmabuf::run {
namespace {

// The pages live in the caller's memfds and are mapped from there (the
// broker's clients mmap the ranges themselves); no device mappings exist in
// the broker, so map_dma_buf is refused.
int u_map(Attachment*, DmaDataDirection, const SgTable**) { return -EOPNOTSUPP; }
void u_unmap(Attachment*, const SgTable*, DmaDataDirection) {}
// mmap_udmabuf(): shared mappings only.
int u_mmap(DmaBuf*, const MmapRequest& req) { return req.flags == MAP_SHARED ? 0 : -EINVAL; }
// The exporter's state: whether begin_cpu_udmabuf() has built the sg table,
// which end_cpu_udmabuf() needs (-EINVAL before any START).
struct Udmabuf {
  std::atomic<bool> sg{false};
};
int u_begin(DmaBuf* buf, DmaDataDirection) {
  static_cast<Udmabuf*>(buf->priv)->sg.store(true);
  return 0;
}
int u_end(DmaBuf* buf, DmaDataDirection) { return static_cast<Udmabuf*>(buf->priv)->sg.load() ? 0 : -EINVAL; }
void u_release(DmaBuf* buf) { delete static_cast<Udmabuf*>(buf->priv); }

const DmaBufOps kUdmabufOps = {
    .map_dma_buf = u_map,
    .unmap_dma_buf = u_unmap,
    .begin_cpu_access = u_begin,
    .end_cpu_access = u_end,
    .mmap = u_mmap,
    .release = u_release,
};

// check_memfd_seals()
int check_seals(int memfd) {
  struct statfs sfs;
  if (fstatfs(memfd, &sfs) < 0 || (sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC))
    return -EBADFD;
  const int seals = fcntl(memfd, F_GET_SEALS);
  if (seals < 0) return -EBADFD;
  if (!(seals & F_SEAL_SHRINK) || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) return -EINVAL;
  return 0;
}

void close_items(UdmabufItem* items, uint32_t count) {
  for (uint32_t i = 0; i < count; ++i)
    if (items[i].memfd >= 0) close(items[i].memfd);
}

}  // namespace

int udmabuf_make(Platform* p, uint32_t flags, UdmabufItem* items, uint32_t count, Object** out) {
  const uint64_t ps = p->page_size();
  const uint64_t pglimit = (kUdmabufSizeLimitMb << 20) / ps;
  uint64_t pgcnt = 0;
  int err = 0;
  for (uint32_t i = 0; i < count && !err; ++i) {
    if (items[i].offset % ps || items[i].size % ps) err = -EINVAL;
    pgcnt += items[i].size / ps;
    if (!err && pgcnt > pglimit) err = -EINVAL;
  }
  if (!err && !pgcnt) err = -EINVAL;
  for (uint32_t i = 0; i < count && !err; ++i) {
    if (items[i].memfd < 0) { err = -EBADFD; break; }
    if ((err = check_seals(items[i].memfd))) break;
    struct stat st;
    // memfd_pin_folios() of a range past the end of the file.
    if (fstat(items[i].memfd, &st) < 0 || items[i].offset + items[i].size > static_cast<uint64_t>(st.st_size) ||
        items[i].offset + items[i].size < items[i].offset)
      err = -EINVAL;
  }
  if (err) {
    close_items(items, count);
    return err;
  }
  ExportInfo info;
  info.platform = p;
  info.exp_name = "udmabuf";
  info.ops = &kUdmabufOps;
  info.size = pgcnt * ps;
  info.flags = O_RDWR | ((flags & 1) ? O_CLOEXEC : 0);
  info.priv = new Udmabuf();
  DmaBuf* buf = nullptr;
  if ((err = dma_buf_export(info, &buf))) {
    close_items(items, count);
    return err;
  }
  const int fd = dma_buf_fd(buf, info.flags);
  if (fd < 0) {
    dma_buf_put(buf);
    close_items(items, count);
    return fd;
  }
  auto* o = new Object();
  o->kind = Kind::kBuffer;
  o->buf = buf;
  for (uint32_t i = 0; i < count; ++i) {
    if (!items[i].size) {
      close(items[i].memfd);
      continue;
    }
    o->ranges.push_back({items[i].memfd, items[i].offset, items[i].size});
  }
  *out = o;
  return 0;
}

}  // namespace dmabuf::run
