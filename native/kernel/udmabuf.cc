#include "kernel/udmabuf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "kernel/uapi.h"

namespace dmabuf::kernel {

static_assert(kUdmabufCloexec == UDMABUF_FLAGS_CLOEXEC);
static_assert(F_SEAL_SHRINK == 0x0002);

KResult<UniqueFd> udmabuf_open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int e = neg_errno();
    struct stat st;
    if ((e == -EACCES || e == -EPERM) && ::stat(path, &st) == 0)
      return kerror(e, "open",
                    kfmt("%s: permission denied: mode %04o uid %u gid %u, this process runs as uid "
                         "%u (distributions usually give it to the kvm group or uaccess)",
                         path, static_cast<unsigned>(st.st_mode & 07777),
                         static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid),
                         static_cast<unsigned>(geteuid())));
    if (e == -ENOENT)
      return kerror(e, "open", kfmt("%s: absent (the kernel has no CONFIG_UDMABUF)", path));
    return kerror(e, "open", path);
  }
  return UniqueFd(fd);
}

KResult<UniqueFd> memfd_create_sealed(const char* name, uint64_t size, unsigned seals) {
  int fd = ::memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (fd < 0) {
    const int e = neg_errno();
    return kerror(e, "memfd_create", name);
  }
  UniqueFd mfd(fd);
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0) {
    const int e = neg_errno();
    return kerror(e, "ftruncate", kfmt("memfd %s to %llu bytes", name,
                                       static_cast<unsigned long long>(size)));
  }
  if (seals && ::fcntl(fd, F_ADD_SEALS, seals) < 0) {
    const int e = neg_errno();
    return kerror(e, "fcntl(F_ADD_SEALS)", kfmt("memfd %s seals %#x", name, seals));
  }
  return mfd;
}

namespace {

// The kernel says EINVAL for several things; say which ones are plausible.
std::string create_hint(int err, int memfd) {
  if (err == -EINVAL) {
    int seals = ::fcntl(memfd, F_GET_SEALS);
    if (seals >= 0 && !(seals & F_SEAL_SHRINK)) return "memfd lacks F_SEAL_SHRINK";
    if (seals >= 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
      return "memfd has a write seal (udmabuf refuses F_SEAL_WRITE/F_SEAL_FUTURE_WRITE)";
    return "offset/size not page aligned, zero, beyond the memfd, or above size_limit_mb";
  }
  if (err == -EBADFD || err == -EBADF) return "not a shmem/hugetlbfs memfd";
  return {};
}

}  // namespace

KResult<UniqueFd> udmabuf_from_memfd(int dev_fd, int memfd, uint64_t offset, uint64_t size,
                                 uint32_t flags) {
  struct udmabuf_create c{};
  c.memfd = static_cast<__u32>(memfd);
  c.flags = flags;
  c.offset = offset;
  c.size = size;
  int r = xioctl(dev_fd, UDMABUF_CREATE, &c);
  if (r < 0)
    return kerror(r, "UDMABUF_CREATE",
                  kfmt("memfd %d offset=%llu size=%llu flags=%#x: ", memfd,
                       static_cast<unsigned long long>(offset),
                       static_cast<unsigned long long>(size), flags) +
                      create_hint(r, memfd));
  return UniqueFd(r);
}

KResult<UniqueFd> udmabuf_from_list(int dev_fd, std::span<const UdmabufRange> ranges,
                                      uint32_t flags) {
  const size_t bytes = sizeof(struct udmabuf_create_list) + ranges.size() * sizeof(struct udmabuf_create_item);
  std::unique_ptr<uint8_t[]> buf(new (std::nothrow) uint8_t[bytes]());
  if (!buf) return kerror(-ENOMEM, "UDMABUF_CREATE_LIST", "argument buffer");
  auto* list = reinterpret_cast<struct udmabuf_create_list*>(buf.get());
  list->flags = flags;
  list->count = static_cast<__u32>(ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    list->list[i].memfd = static_cast<__u32>(ranges[i].memfd);
    list->list[i].offset = ranges[i].offset;
    list->list[i].size = ranges[i].size;
  }
  int r = xioctl(dev_fd, UDMABUF_CREATE_LIST, list);
  if (r < 0) {
    std::string why = kfmt("%zu ranges flags=%#x", ranges.size(), flags);
    for (auto& rg : ranges) {
      std::string h = create_hint(r, rg.memfd);
      if (!h.empty() && h.find("memfd") == 0) {
        why += kfmt(": memfd %d: ", rg.memfd) + h;
        break;
      }
    }
    return kerror(r, "UDMABUF_CREATE_LIST", why);
  }
  return UniqueFd(r);
}

}  // namespace dmabuf::kernel
