// sw_sync: software timelines for testing (the kernel's debugfs sync/sw_sync).
// Opening the file creates a timeline; points (sync_pt fences) are created at a
// value and signal when the timeline's value reaches them.
//
// Points use the EXTERNAL fence lock -- the one place it is required, and the
// reason external locks still exist (legacy, see fence.h):
//  1. fence_parent() finds the timeline from a point through the lock pointer
//     (container_of(fence->extern_lock)); with an inline lock the union holds a
//     spinlock, not a pointer, and there would be nothing to follow.
//  2. sync_timeline_signal() holds the timeline lock while it calls
//     fence_signal_locked() on every point it passes. That is only legal
//     because that lock IS each point's fence lock, and it keeps the value, the
//     pending list and the points' signalled state consistent under one lock.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/base/list.h"
#include "core/base/lock.h"
#include "core/fence/fence.h"
#include "core/sync/sync_file.h"

namespace dmabuf {

// struct sync_timeline
struct SyncTimeline {
  std::atomic<uint32_t> kref;
  char name[32];
  uint64_t context;
  std::atomic<uint32_t> value;  // wraps; compared in 32-bit wrap-around order
  ListHead pt_list;             // pending points, ascending seqno (the rbtree's order)
  SpinLock lock;                // every point's external fence lock
  rcu::DeferredFree rcu;
};

// struct sync_pt
struct SyncPt {
  Fence base;
  ListHead link;     // on pt_list while pending (or on a local list while signalling)
  int64_t deadline;  // valid while SW_SYNC_HAS_DEADLINE_BIT is set
};

// fence->flags bit: a deadline was set on this point.
constexpr unsigned SW_SYNC_HAS_DEADLINE_BIT = FENCE_FLAG_USER_BITS;

extern const FenceOps timeline_fence_ops;

/**
 * fence_parent() - the timeline of a sw_sync point, through its external lock
 */
inline SyncTimeline* fence_parent(Fence* fence) {
  return container_of(fence->extern_lock, &SyncTimeline::lock);
}

/**
 * fence_to_sync_pt() - the point behind @fence, nullptr if not a sw_sync fence
 */
inline SyncPt* fence_to_sync_pt(Fence* fence) {
  if (!fence || __atomic_load_n(&fence->ops, __ATOMIC_RELAXED) != &timeline_fence_ops)
    return nullptr;
  return container_of(fence, &SyncPt::base);
}

/**
 * sync_timeline_create() - a timeline at value 0 on a new context
 * @name: timeline name (truncated to 31 bytes); nullptr = the calling thread's
 *        name, as the kernel uses the opener's task comm
 *
 * Context: any. Returns: the timeline with one reference, nullptr on OOM.
 */
SyncTimeline* sync_timeline_create(const char* name);

/**
 * sync_timeline_get() - take a reference to @obj (each point holds one)
 */
void sync_timeline_get(SyncTimeline* obj);

/**
 * sync_timeline_put() - drop a reference; the last one frees @obj after an
 * RCU grace period (readers may still be reading its name)
 */
void sync_timeline_put(SyncTimeline* obj);

/**
 * sync_pt_create() - a point at @value (32-bit seqno, wrap-around order)
 *
 * Already signalled if @value is not later than the timeline; else queued -- or,
 * if a live point with the same value exists, that one is returned instead.
 *
 * Context: must not hold the timeline lock (takes it).
 * Returns: a new reference, nullptr on OOM.
 */
SyncPt* sync_pt_create(SyncTimeline* obj, uint32_t value);

/**
 * sync_timeline_signal() - advance by @inc and signal, in seqno order, every
 * point no longer later than the value
 *
 * The points' callbacks run on this thread, under the timeline lock (it is
 * their fence lock).
 *
 * Context: must not hold the timeline lock or any of its points' fence locks.
 */
void sync_timeline_signal(SyncTimeline* obj, uint32_t inc);

// --- the debugfs file ---------------------------------------------------------

/**
 * sw_sync_debugfs_open() - "open": a new timeline (see sync_timeline_create)
 */
SyncTimeline* sw_sync_debugfs_open(const char* name);

/**
 * sw_sync_debugfs_release() - "close": every point still pending gets -ENOENT
 * and is signalled; drops the opener's reference (the timeline lives on
 * while points reference it). Null-tolerant.
 *
 * Context: as sync_timeline_signal().
 */
void sw_sync_debugfs_release(SyncTimeline* obj);

// struct sw_sync_create_fence_data; fence is a new sync_file reference.
struct SwSyncCreateFenceData {
  uint32_t value;
  char name[32];  // ignored, as in the kernel
  SyncFile* fence;  // out
};

// struct sw_sync_get_deadline
struct SwSyncGetDeadline {
  uint64_t deadline_ns;  // out; must be 0 on input
  uint32_t pad;
  SyncFile* fence_fd;
};

// Command numbers (_IOC nr) of the sw_sync ioctls.
enum SwSyncIoctl : unsigned {
  SW_SYNC_IOC_CREATE_FENCE = 0,
  SW_SYNC_IOC_INC = 1,
  SW_SYNC_GET_DEADLINE = 2,
};

/**
 * sw_sync_ioctl_create_fence() - SW_SYNC_IOC_CREATE_FENCE: a sync_file
 * (reference in @data->fence) for a point at @data->value
 *
 * Context: as sync_pt_create(). Returns: 0, -EFAULT (null @data), -ENOMEM.
 */
int sw_sync_ioctl_create_fence(SyncTimeline* obj, SwSyncCreateFenceData* data);

/**
 * sw_sync_ioctl_inc() - SW_SYNC_IOC_INC: advance by *@value (in INT_MAX steps)
 *
 * Context: as sync_timeline_signal(). Returns: 0, or -EFAULT for a null @value.
 */
int sw_sync_ioctl_inc(SyncTimeline* obj, const uint32_t* value);

/**
 * sw_sync_ioctl_get_deadline() - the earliest deadline set on a point
 *
 * Context: must not hold the point's fence (timeline) lock.
 * Returns: 0; -EFAULT (null @data); -EINVAL (deadline_ns or pad set, no
 * sync_file, not a sw_sync fence); -ENOENT (no deadline set).
 */
int sw_sync_ioctl_get_deadline(SyncTimeline* obj, SwSyncGetDeadline* data);

/**
 * sw_sync_ioctl() - dispatch by _IOC nr (SwSyncIoctl)
 *
 * Returns: the command's result; -EBADF for a null @obj, -ENOTTY for an
 * unknown @cmd.
 */
long sw_sync_ioctl(SyncTimeline* obj, unsigned cmd, void* arg);

}  // namespace dmabuf
