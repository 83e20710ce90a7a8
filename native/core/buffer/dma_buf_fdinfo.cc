// What /proc/<pid>/fdinfo/<fd>, /proc/<pid>/fd/<fd> and
// /sys/kernel/debug/dma_buf/bufinfo show for dma-bufs, byte for byte (checked
// against the 6.12 rig: see test/native/dma_buf_test.cc).
#include <fcntl.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

#include "core/buffer/attachment.h"
#include "core/buffer/dma_buf.h"
#include "core/mm/platform.h"

namespace dmabuf {
namespace {

void appendf(std::string* out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string* out, const char* fmt, ...) {
  char b[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b, sizeof b, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof b) {
    out->append(b, n);
    return;
  }
  std::string big(n + 1, '\0');
  va_start(ap, fmt);
  vsnprintf(big.data(), big.size(), fmt, ap);
  va_end(ap);
  out->append(big.data(), n);
}

}  // namespace

int dma_buf_fdinfo(DmaBuf* buf, std::string* out) {
  if (!buf || !out) return -EINVAL;
  // seq_show() in fs/proc/fd.c: f_flags plus O_CLOEXEC from the fd table
  // (read live, so fcntl(F_SETFD) shows), then the file's pos, mount, inode.
  // dma_buf_llseek never moves f_pos, so pos is always 0.
  uint32_t flags = buf->f_flags;
  {
    std::lock_guard<std::mutex> g(buf->map_lock);  // the fd stays ours meanwhile
    const int fd = buf->user_fd.load(std::memory_order_acquire);
    if (fd < 0) return -EBADF;
    const int fdflags = fcntl(fd, F_GETFD);
    if (fdflags >= 0 && (fdflags & FD_CLOEXEC)) flags |= O_CLOEXEC;
  }
  out->clear();
  appendf(out, "pos:\t0\nflags:\t0%o\nmnt_id:\t%d\nino:\t%" PRIu64 "\n", flags,
          buf->platform->config.dmabuf_mnt_id, buf->ino);
  // dma_buf_show_fdinfo().
  appendf(out, "size:\t%" PRIu64 "\ncount:\t%ld\nexp_name:\t%s\n", buf->size,
          buf->file_count.load(std::memory_order_relaxed), buf->exp_name.c_str());
  std::lock_guard<std::mutex> g(buf->name_lock);
  if (buf->has_name) appendf(out, "name:\t%s\n", buf->name.c_str());
  return 0;
}

std::string dma_buf_link(DmaBuf* buf) {
  std::lock_guard<std::mutex> g(buf->name_lock);
  return "/dmabuf:" + buf->name;
}

std::string dma_buf_bufinfo(Platform* p, BufInfoTotals* totals) {
  std::string s;
  BufInfoTotals t;
  s += "\nDma-buf Objects:\n";
  appendf(&s, "%-8s\t%-8s\t%-8s\t%-8s\texp_name\t%-8s\tname\n", "size", "flags", "mode", "count",
          "ino");
  std::lock_guard<std::mutex> g(p->bufs_mu);
  for (ListHead* n = p->bufs.next; n != &p->bufs; n = n->next) {
    DmaBuf* buf = container_of(n, &DmaBuf::node);
    // dma_buf_debug_show locks each reservation object; skip that if this
    // thread holds it already (a JS caller inside resv.lock()).
    const bool lock = !resv_held(buf->resv);
    if (lock) dma_buf_resv_lock(buf);
    {
      std::lock_guard<std::mutex> ng(buf->name_lock);
      appendf(&s, "%08" PRIu64 "\t%08x\t%08x\t%08ld\t%s\t%08" PRIu64 "\t%s\n", buf->size,
              buf->f_flags, buf->f_mode, buf->file_count.load(std::memory_order_relaxed),
              buf->exp_name.c_str(), buf->ino, buf->has_name ? buf->name.c_str() : "<none>");
    }
    dma_buf_resv_describe(buf, &s);
    s += "\tAttached Devices:\n";
    {
      std::lock_guard<std::mutex> ag(buf->attach_lock);
      for (Attachment* a : buf->attachments) appendf(&s, "\t%s\n", a->dev.c_str());
      appendf(&s, "Total %zu devices attached\n\n", buf->attachments.size());
    }
    if (lock) dma_buf_resv_unlock(buf);
    ++t.objects;
    t.bytes += buf->size;
  }
  appendf(&s, "\nTotal %" PRIu64 " objects, %" PRIu64 " bytes\n", t.objects, t.bytes);
  if (totals) *totals = t;
  return s;
}

}  // namespace dmabuf
