// sync_file fds: readiness, merge, info, deadline (drivers/dma-buf/sync_file.c).
// Status convention everywhere: 1 signalled, 0 active, < 0 signalled with error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernel/fd.h"
#include "kernel/kerror.h"

struct sync_file_info;
struct sync_fence_info;

namespace dmabuf::kernel {

// One leaf fence of a sync_file (struct sync_fence_info).
struct SyncFenceInfo {
  std::string obj_name;     // the timeline name
  std::string driver_name;
  int status = 0;           // 1, 0 or -errno
  uint32_t flags = 0;
  uint64_t timestamp_ns = 0;  // CLOCK_MONOTONIC signal time; 0 while active
};

// SYNC_IOC_FILE_INFO, both calls of the two-call pattern.
struct SyncFileInfo {
  std::string name;        // the merge name, or "<driver>-<timeline><ctx>-<seqno>"
  // The container's own status (first call, num_fences = 0): authoritative for
  // "is the sync_file signalled".
  int status = 0;
  // The kernel's aggregate over the leaves (second call): 1, or the first leaf
  // status that is not positive -- so an errored leaf shows here before the
  // whole sync_file has signalled.
  int leaf_status = 0;
  std::vector<SyncFenceInfo> fences;

  // The latest leaf timestamp (the container signals with its last leaf); 0 if
  // no leaf has one.
  uint64_t signal_timestamp_ns() const;
  // The first negative leaf status, else a negative container status, else 0.
  int error() const;
};

// Decodes the kernel's structs (names are char[32], possibly without a NUL).
SyncFenceInfo decode_sync_fence_info(const struct sync_fence_info& raw);
SyncFileInfo decode_sync_file_info(const struct sync_file_info& count_call,
                                   const struct sync_file_info& fill_call,
                                   const struct sync_fence_info* leaves, size_t n);

// Non-blocking readiness: true once signalled (POLLIN). POLLERR/POLLNVAL (not
// a sync_file, closed fd) are EINVAL/EBADF, as Mesa's libsync reports them.
KResult<bool> sync_file_is_signaled(int fd);
// Blocks up to timeout_ms (< 0: forever): true signalled, false timed out.
KResult<bool> sync_file_wait(int fd, int timeout_ms);

// SYNC_IOC_MERGE: a new sync_file with the fences of both (flattened, one per
// context). `name` is cut to 31 bytes (the kernel NUL-terminates it anyway).
// fd2 not a sync_file: ENOENT.
KResult<UniqueFd> sync_file_merge(const char* name, int fd1, int fd2);

// SYNC_IOC_FILE_INFO with num_fences = 0: the leaf count (and nothing else).
KResult<uint32_t> sync_file_fence_count(int fd);
// SYNC_IOC_FILE_INFO, count then fill.
KResult<SyncFileInfo> sync_file_get_info(int fd);

// SYNC_IOC_SET_DEADLINE (Linux 6.4+): a CLOCK_MONOTONIC hint. On older kernels
// ENOTTY with a message saying so; see sync_file_deadline_unsupported().
KStatus sync_file_set_deadline(int fd, uint64_t deadline_ns);
// True for the error a kernel without SYNC_IOC_SET_DEADLINE gives.
inline bool sync_file_deadline_unsupported(const KError& e) { return e.err == -ENOTTY; }

}  // namespace dmabuf::kernel
