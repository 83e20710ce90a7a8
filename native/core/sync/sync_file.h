// sync_file: the kernel's fd-backed fence handle, here as an in-process,
// reference-counted object (the real-fd backend lives in native/kernel). The
// ioctl-shaped entry points keep the UAPI's validation and errors, with object
// pointers where the UAPI has fds.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/base/list.h"
#include "core/base/lock.h"
#include "core/fence/fence.h"

namespace dmabuf {

// A poll waiter (the poll-table entry). func runs once, when the fence signals
// or at once if it already had; it runs under the fence lock and the sync_file's
// wait-queue lock, so it must only hand off (e.g. uv_async_send), never wait.
struct SyncFileWaiter {
  ListHead node;
  void (*func)(SyncFileWaiter* w);
};

struct SyncFile {
  std::atomic<uint32_t> refcount;   // the file's references (fget/fput)
  char user_name[32];               // set by merge only
  Fence* fence;                     // referenced; maybe an array or chain
  FenceCallback cb;                 // armed by the first poll
  std::atomic<unsigned long> flags; // bit POLL_ENABLED
  SpinLock wq_lock;
  ListHead wq;                      // SyncFileWaiter entries
};

constexpr unsigned SYNC_FILE_POLL_ENABLED = 0;  // flag bit
constexpr unsigned SYNC_POLLIN = 0x1;           // EPOLLIN

/**
 * sync_file_create() - a new sync_file holding a new reference to @fence
 *
 * Context: any. Returns: the sync_file with one reference; nullptr on OOM or
 * for a null @fence (with a warning).
 */
SyncFile* sync_file_create(Fence* fence);

/**
 * sync_file_get() - another reference to @sf (like fget); nullptr-tolerant
 *
 * Returns: @sf.
 */
SyncFile* sync_file_get(SyncFile* sf);

/**
 * sync_file_put() - drop a reference (nullptr-tolerant); the last one disarms
 * the poll callback and drops the fence (like the file's release)
 *
 * Warns if poll waiters are still queued at release.
 *
 * Context: any thread; must not hold the fence's lock or the sync_file's
 * wait-queue lock (so not from a SyncFileWaiter func) when this may be the
 * last reference.
 */
void sync_file_put(SyncFile* sf);

/**
 * sync_file_get_fence() - a new reference to @sf's fence, nullptr for a null @sf
 */
Fence* sync_file_get_fence(SyncFile* sf);

/**
 * sync_file_get_name() - the merge name if set, else
 * "<driver>-<timeline><context>-<seqno>" (placeholder names once signalled)
 *
 * Context: any; reads the names in its own RCU read section.
 * Returns: @buf (NUL-terminated, truncated to @len).
 */
char* sync_file_get_name(SyncFile* sf, char* buf, size_t len);

/**
 * sync_file_merge() - a new sync_file for fence_unwrap_merge(a, b), named @name
 *
 * Inputs stay valid.
 *
 * Context: any; must not hold a fence lock (the merge polls the fences).
 * Returns: the new sync_file with one reference, or nullptr on OOM.
 */
SyncFile* sync_file_merge(const char* name, SyncFile* a, SyncFile* b);

/**
 * sync_file_poll() - readiness, as poll(2) on the fd would report it
 * @w: optional waiter queued on @sf (poll_wait); its func runs once the fence
 *     signals. Remove it with sync_file_poll_remove() when done, even if this
 *     call already reported readiness.
 *
 * The first poll arms the fence callback. @w's func may run on this thread
 * before the call returns (the fence had signalled already).
 *
 * Context: must not hold the fence's lock or @sf's wait-queue lock.
 * Returns: SYNC_POLLIN or 0.
 */
unsigned sync_file_poll(SyncFile* sf, SyncFileWaiter* w);

/**
 * sync_file_poll_remove() - dequeue @w
 *
 * After this returns, func is not running and will not run.
 *
 * Context: not from a waiter's func (it takes the wait-queue lock func runs
 * under). Returns: true if func had not run.
 */
bool sync_file_poll_remove(SyncFile* sf, SyncFileWaiter* w);

/**
 * sync_file_wait() - block like poll(2) on the fd
 * @timeout_ns: < 0 waits forever, 0 only polls
 *
 * Context: may sleep; must not hold the fence's lock.
 * Returns: 1 ready (the fence signalled), 0 on timeout.
 */
int sync_file_wait(SyncFile* sf, int64_t timeout_ns);

// --- ioctls -------------------------------------------------------------------

// struct sync_merge_data; fd2 / fence are objects, fence is a new reference.
struct SyncMergeData {
  char name[32];
  SyncFile* fd2;
  SyncFile* fence;  // out
  uint32_t flags;
  uint32_t pad;
};

// struct sync_fence_info
struct SyncFenceInfo {
  char obj_name[32];     // timeline name
  char driver_name[32];
  int32_t status;        // 1 signalled, 0 active, < 0 error
  uint32_t flags;
  uint64_t timestamp_ns; // signal time, 0 while active
};

// struct sync_file_info; sync_fence_info points at num_fences entries.
struct SyncFileInfo {
  char name[32];
  int32_t status;
  uint32_t flags;
  uint32_t num_fences;
  uint32_t pad;
  SyncFenceInfo* sync_fence_info;
};

// struct sync_set_deadline
struct SyncSetDeadline {
  uint64_t deadline_ns;  // CLOCK_MONOTONIC
  uint64_t pad;
};

// Command numbers of the sync_file ioctls (the _IOC nr, not the encoded value:
// the argument structs here carry pointers, not fds).
enum SyncFileIoctl : unsigned {
  SYNC_IOC_MERGE = 3,
  SYNC_IOC_FILE_INFO = 4,
  SYNC_IOC_SET_DEADLINE = 5,
};

/**
 * sync_file_ioctl_merge() - SYNC_IOC_MERGE: a new sync_file (reference in
 * @data->fence) for @sf and @data->fd2, named @data->name
 *
 * Returns: 0, -EFAULT (null @data), -EINVAL (flags or pad set), -ENOENT (no
 * fd2), -ENOMEM.
 */
int sync_file_ioctl_merge(SyncFile* sf, SyncMergeData* data);

/**
 * sync_file_ioctl_fence_info() - SYNC_IOC_FILE_INFO
 *
 * num_fences 0 asks for the count, name and status only. Otherwise fills one
 * entry per leaf fence and the aggregate status (1, or the first leaf status
 * that is not positive). Leaf statuses may poll and signal.
 *
 * Context: must not hold a fence lock.
 * Returns: 0; -EFAULT (null @info or entry array); -EINVAL (flags/pad set, or
 * too few entries).
 */
int sync_file_ioctl_fence_info(SyncFile* sf, SyncFileInfo* info);

/**
 * sync_file_ioctl_set_deadline() - SYNC_IOC_SET_DEADLINE: fence_set_deadline()
 * on the sync_file's fence
 *
 * Returns: 0, -EFAULT (null @data), -EINVAL (pad set).
 */
int sync_file_ioctl_set_deadline(SyncFile* sf, const SyncSetDeadline* data);

/**
 * sync_file_ioctl() - dispatch by _IOC nr (SyncFileIoctl)
 *
 * Returns: the command's result; -EBADF for a null @sf, -ENOTTY for an
 * unknown @cmd.
 */
long sync_file_ioctl(SyncFile* sf, unsigned cmd, void* arg);

}  // namespace dmabuf
