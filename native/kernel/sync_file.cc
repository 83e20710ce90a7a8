#include "kernel/sync_file.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "kernel/uapi.h"

namespace dmabuf::kernel {

namespace {

std::string fixed_string(const char* s, size_t cap) { return std::string(s, strnlen(s, cap)); }

KResult<bool> readable(int fd, int timeout_ms) {
  auto r = poll_fd(fd, POLLIN, timeout_ms);
  if (!r) return r.error();
  const short rev = r.value();
  if (rev & POLLNVAL) return kerror(-EBADF, "poll", kfmt("fd %d is not open", fd));
  if (rev & POLLERR) return kerror(-EINVAL, "poll", kfmt("fd %d: POLLERR", fd));
  return (rev & POLLIN) != 0;
}

std::string info_hint(int err, int fd) {
  if (err == -ENOTTY) return kfmt("fd %d is not a sync_file", fd);
  return kfmt("fd %d", fd);
}

}  // namespace

uint64_t SyncFileInfo::signal_timestamp_ns() const {
  uint64_t ts = 0;
  for (auto& f : fences) ts = std::max(ts, f.timestamp_ns);
  return ts;
}

int SyncFileInfo::error() const {
  for (auto& f : fences)
    if (f.status < 0) return f.status;
  return status < 0 ? status : 0;
}

SyncFenceInfo decode_sync_fence_info(const struct sync_fence_info& raw) {
  SyncFenceInfo f;
  f.obj_name = fixed_string(raw.obj_name, sizeof raw.obj_name);
  f.driver_name = fixed_string(raw.driver_name, sizeof raw.driver_name);
  f.status = raw.status;
  f.flags = raw.flags;
  f.timestamp_ns = raw.timestamp_ns;
  return f;
}

SyncFileInfo decode_sync_file_info(const struct sync_file_info& count_call,
                                   const struct sync_file_info& fill_call, const struct sync_fence_info* leaves,
                                   size_t n) {
  SyncFileInfo info;
  info.name = fixed_string(fill_call.name, sizeof fill_call.name);
  info.status = count_call.status;
  info.leaf_status = fill_call.status;
  n = std::min<size_t>(n, fill_call.num_fences);
  info.fences.reserve(n);
  for (size_t i = 0; i < n; ++i) info.fences.push_back(decode_sync_fence_info(leaves[i]));
  return info;
}

KResult<bool> sync_file_is_signaled(int fd) { return readable(fd, 0); }

KResult<bool> sync_file_wait(int fd, int timeout_ms) { return readable(fd, timeout_ms); }

KResult<UniqueFd> sync_file_merge(const char* name, int fd1, int fd2) {
  sync_merge_data m{};
  if (name) snprintf(m.name, sizeof m.name, "%s", name);
  m.fd2 = fd2;
  m.fence = -1;
  int r = xioctl(fd1, SYNC_IOC_MERGE, &m);
  if (r < 0) {
    std::string why = kfmt("fd %d + fd %d", fd1, fd2);
    if (r == -ENOENT) why += " (the second fd is not a sync_file)";
    if (r == -ENOTTY) why += " (the first fd is not a sync_file)";
    return kerror(r, "SYNC_IOC_MERGE", why);
  }
  return UniqueFd(m.fence);
}

KResult<uint32_t> sync_file_fence_count(int fd) {
  struct sync_file_info hdr{};
  int r = xioctl(fd, SYNC_IOC_FILE_INFO, &hdr);
  if (r < 0) return kerror(r, "SYNC_IOC_FILE_INFO", info_hint(r, fd));
  return hdr.num_fences;
}

KResult<SyncFileInfo> sync_file_get_info(int fd) {
  struct sync_file_info count{};
  int r = xioctl(fd, SYNC_IOC_FILE_INFO, &count);
  if (r < 0) return kerror(r, "SYNC_IOC_FILE_INFO", info_hint(r, fd));
  const uint32_t n = count.num_fences;
  // A sync_file's fence never changes, so the count cannot grow between calls.
  std::unique_ptr<struct sync_fence_info[]> leaves(new (std::nothrow) struct sync_fence_info[n ? n : 1]());
  if (!leaves) return kerror(-ENOMEM, "SYNC_IOC_FILE_INFO", "leaf buffer");
  struct sync_file_info fill{};
  fill.num_fences = n;
  fill.sync_fence_info = reinterpret_cast<uintptr_t>(leaves.get());
  if (n) {
    r = xioctl(fd, SYNC_IOC_FILE_INFO, &fill);
    if (r < 0) return kerror(r, "SYNC_IOC_FILE_INFO", info_hint(r, fd) + " (fill call)");
  } else {
    fill = count;  // a sync_file always has a fence; keep this total anyway
  }
  return decode_sync_file_info(count, fill, leaves.get(), n);
}

KStatus sync_file_set_deadline(int fd, uint64_t deadline_ns) {
  sync_set_deadline d{};
  d.deadline_ns = deadline_ns;
  d.pad = 0;
  int r = xioctl(fd, SYNC_IOC_SET_DEADLINE, &d);
  if (r < 0)
    return kerror(r, "SYNC_IOC_SET_DEADLINE",
                  r == -ENOTTY ? kfmt("fd %d: unsupported (not a sync_file, or a kernel before "
                                      "6.4 without deadline hints)", fd)
                               : kfmt("fd %d", fd));
  return {};
}

}  // namespace dmabuf::kernel
