// sw_sync: software timelines in debugfs, for tests (drivers/dma-buf/sw_sync.c).
// Opening the file makes a timeline at value 0; points are sync_files that
// signal once the timeline reaches their value; closing the timeline signals
// its pending points with -ENOENT.
#pragma once

#include <cstdint>

#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

constexpr const char* kSwSyncPath = "/sys/kernel/debug/sync/sw_sync";

// Opens a new timeline. Absent: ENOENT with a message saying what is missing
// (debugfs not mounted, or no CONFIG_SW_SYNC); EACCES: debugfs is root-only.
KResult<UniqueFd> sw_sync_timeline_open(const char* path = kSwSyncPath);

// True if a timeline can be opened at `path` right now.
bool sw_sync_available(const char* path = kSwSyncPath);

// SW_SYNC_IOC_CREATE_FENCE: a sync_file for the point `value` (already
// signalled if the timeline is there). `name` is passed on; 6.12 ignores it.
KResult<UniqueFd> sw_sync_create_fence(int timeline_fd, uint32_t value, const char* name = "");

// SW_SYNC_IOC_INC: advance the timeline by `count`, signalling reached points.
KStatus sw_sync_inc(int timeline_fd, uint32_t count = 1);

// SW_SYNC_GET_DEADLINE (6.4+): the earliest deadline set on a point of this
// timeline. No deadline set: ENOENT; not a sw_sync fence: EINVAL; older
// kernels: ENOTTY.
KResult<uint64_t> sw_sync_get_deadline(int timeline_fd, int fence_fd);

}  // namespace dmabuf::kernel
