#include "kernel/sw_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "kernel/uapi.h"

namespace dmabuf::kernel {

namespace {

constexpr unsigned long kDebugfsMagic = 0x64626720;  // DEBUGFS_MAGIC

std::string parent_dir(const std::string& p, int levels) {
  std::string d = p;
  for (int i = 0; i < levels; ++i) {
    size_t s = d.find_last_of('/');
    d = s == std::string::npos || s == 0 ? "/" : d.substr(0, s);
  }
  return d;
}

std::string missing_hint(const char* path) {
  std::string p = path;
  std::string debugfs = parent_dir(p, 2);  // /sys/kernel/debug
  struct statfs sfs;
  if (::statfs(debugfs.c_str(), &sfs) != 0 || sfs.f_type != kDebugfsMagic)
    return kfmt("%s: absent: debugfs is not mounted at %s (mount -t debugfs none %s)", path,
                debugfs.c_str(), debugfs.c_str());
  return kfmt("%s: absent: the kernel has no sw_sync (CONFIG_SW_SYNC is off; distribution "
              "kernels rarely enable it -- the kernel rig loads an out-of-tree swsync.ko)",
              path);
}

}  // namespace

KResult<UniqueFd> sw_sync_timeline_open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int e = neg_errno();
    if (e == -ENOENT) return kerror(e, "open", missing_hint(path));
    if (e == -EACCES || e == -EPERM)
      return kerror(e, "open", kfmt("%s: permission denied (debugfs is root-only)", path));
    return kerror(e, "open", path);
  }
  return UniqueFd(fd);
}

bool sw_sync_available(const char* path) {
  auto tl = sw_sync_timeline_open(path);
  return tl.ok();
}

KResult<UniqueFd> sw_sync_create_fence(int timeline_fd, uint32_t value, const char* name) {
  uapi::sw_sync_create_fence_data d{};
  d.value = value;
  if (name) snprintf(d.name, sizeof d.name, "%s", name);
  d.fence = -1;
  int r = xioctl(timeline_fd, uapi::kSwSyncIocCreateFence, &d);
  if (r < 0)
    return kerror(r, "SW_SYNC_IOC_CREATE_FENCE", kfmt("timeline fd %d value %u", timeline_fd, value));
  return UniqueFd(d.fence);
}

KStatus sw_sync_inc(int timeline_fd, uint32_t count) {
  uint32_t c = count;
  int r = xioctl(timeline_fd, uapi::kSwSyncIocInc, &c);
  if (r < 0) return kerror(r, "SW_SYNC_IOC_INC", kfmt("timeline fd %d by %u", timeline_fd, count));
  return {};
}

KResult<uint64_t> sw_sync_get_deadline(int timeline_fd, int fence_fd) {
  uapi::sw_sync_get_deadline d{};
  d.fence_fd = fence_fd;
  int r = xioctl(timeline_fd, uapi::kSwSyncGetDeadline, &d);
  if (r < 0) {
    std::string why = kfmt("timeline fd %d fence fd %d", timeline_fd, fence_fd);
    if (r == -ENOENT) why += ": no deadline set on this point";
    else if (r == -EINVAL) why += ": not a sw_sync fence";
    else if (r == -ENOTTY) why += ": unsupported (kernel before 6.4)";
    return kerror(r, "SW_SYNC_GET_DEADLINE", why);
  }
  return d.deadline_ns;
}

}  // namespace dmabuf::kernel
