#include "kernel/heap.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "kernel/uapi.h"

namespace dmabuf::kernel {

static_assert(kDefaultFdFlags == (O_RDWR | O_CLOEXEC));

namespace {

std::string owner_of(const struct stat& st) {
  std::string s;
  if (passwd* pw = getpwuid(st.st_uid)) s = pw->pw_name;
  else s = std::to_string(st.st_uid);
  s += ':';
  if (group* gr = getgrgid(st.st_gid)) s += gr->gr_name;
  else s += std::to_string(st.st_gid);
  return s;
}

// Why open() said EACCES: the node's owner and mode, and the usual remedy.
std::string access_hint(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) < 0) return path + ": permission denied";
  return kfmt(
      "%s: permission denied: the node is mode %04o owned by %s and this process runs as "
      "uid %u; dma-heap nodes are root-only (0600) by default -- grant access with a udev rule, "
      "e.g. SUBSYSTEM==\"dma_heap\", GROUP=\"video\", MODE=\"0660\"",
      path.c_str(), static_cast<unsigned>(st.st_mode & 07777), owner_of(st).c_str(),
      static_cast<unsigned>(geteuid()));
}

bool valid_heap_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace

KResult<std::vector<HeapInfo>> list_heaps(const char* dir) {
  std::vector<HeapInfo> heaps;
  DIR* d = ::opendir(dir);
  if (!d) {
    const int e = neg_errno();
    if (e == -ENOENT || e == -ENOTDIR) return heaps;
    return kerror(e, "opendir", kfmt("%s: cannot list dma-heaps", dir));
  }
  while (dirent* ent = ::readdir(d)) {
    std::string_view n = ent->d_name;
    if (n == "." || n == "..") continue;
    heaps.push_back({std::string(n), std::string(dir) + "/" + std::string(n)});
  }
  ::closedir(d);
  std::sort(heaps.begin(), heaps.end(),
            [](const HeapInfo& a, const HeapInfo& b) { return a.name < b.name; });
  return heaps;
}

KResult<Heap> open_heap(std::string_view name, const char* dir) {
  if (!valid_heap_name(name))
    return kerror(-EINVAL, "open",
                  kfmt("\"%.*s\" is not a heap name", static_cast<int>(name.size()), name.data()));
  Heap h;
  h.name = std::string(name);
  h.path = std::string(dir) + "/" + h.name;
  int fd = ::open(h.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = neg_errno();
    if (e == -EACCES || e == -EPERM) return kerror(e, "open", access_hint(h.path));
    if (e == -ENOENT) {
      struct stat st;
      const bool have_dir = ::stat(dir, &st) == 0;
      return kerror(e, "open",
                    have_dir ? kfmt("%s: no such heap", h.path.c_str())
                             : kfmt("%s: no such heap (%s is absent: the kernel has no "
                                    "CONFIG_DMABUF_HEAPS, or /dev is not the host's)",
                                    h.path.c_str(), dir));
    }
    return kerror(e, "open", h.path);
  }
  h.fd.reset(fd);
  return h;
}

KResult<UniqueFd> heap_alloc(int heap_fd, uint64_t len, uint32_t fd_flags, uint64_t heap_flags) {
  dma_heap_allocation_data data{};
  data.len = len;
  data.fd = 0;
  data.fd_flags = fd_flags;
  data.heap_flags = heap_flags;
  int r = xioctl(heap_fd, DMA_HEAP_IOCTL_ALLOC, &data);
  if (r < 0)
    return kerror(r, "DMA_HEAP_IOCTL_ALLOC",
                  kfmt("len=%llu fd_flags=%#x heap_flags=%#llx", static_cast<unsigned long long>(len),
                       fd_flags, static_cast<unsigned long long>(heap_flags)));
  return UniqueFd(static_cast<int>(data.fd));
}

}  // namespace dmabuf::kernel
