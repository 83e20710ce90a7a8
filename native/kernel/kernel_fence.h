// The bridge from a real sync_file fd to a core dmabuf::Fence ("kernel fence").
//
// The wrapped fence owns a dup of the fd. Its names come from SYNC_IOC_FILE_INFO
// at wrap time and live inside the fence (freed one RCU grace period after the
// last put, like the fence). It signals when the fd polls readable, with the
// kernel's error (status < 0 -> error) and signal timestamp (the latest leaf
// timestamp from FILE_INFO).
//
// Who notices readability is a KernelFenceWatcher: the built-in one is a single
// epoll thread (fence_watcher.h); the Node addon drives the same fences from
// uv_poll on its loop. Watching starts lazily, when someone first waits on or
// adds a callback to the fence (enable_signaling), so wrapping costs no thread
// work. Polling (fence_is_signaled) checks the fd directly.
#pragma once

#include "core/fence/fence.h"
#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

// Watches sync_file fds on behalf of kernel fences.
class KernelFenceWatcher {
 public:
  virtual ~KernelFenceWatcher() = default;
  // Kernel fence `f` wants to learn when `fd` becomes readable. Called at most
  // once per fence, from its enable_signaling op: under the fence lock, so it
  // must neither block for long nor take `f`'s lock. On success (return 0) the
  // watcher owns one reference to `f`: whenever `fd` polls readable it calls
  // kernel_fence_on_readable(f), and once that returns true it stops watching
  // `fd` and calls fence_put(f). On failure it returns a negative errno and owns
  // nothing; the fence then signals at once with that error.
  virtual int watch(Fence* f, int fd) = 0;
};

// The process-wide epoll watcher (fence_watcher.h), created on first use.
KernelFenceWatcher* default_kernel_fence_watcher();

// Wraps a dup of `sync_file_fd` (the caller keeps its fd). nullptr watcher: the
// default one. Not a sync_file: ENOTTY from SYNC_IOC_FILE_INFO. A sync_file
// that has already signalled gives an already signalled fence (same error and
// timestamp). Returns a new reference.
KResult<Fence*> kernel_fence_wrap(int sync_file_fd, KernelFenceWatcher* watcher = nullptr);
// Same, taking ownership of `fd`.
KResult<Fence*> kernel_fence_adopt(UniqueFd fd, KernelFenceWatcher* watcher = nullptr);

// A fence over an emulated fence's exported fd (core/sync/sync_file_fd.h),
// e.g. received from another process: signalled, with the exporter's status
// and timestamp, once the fd polls readable. Takes ownership of `fd`; EINVAL
// if it is not such an fd. Null names: "sync_fd" / "remote".
KResult<Fence*> kernel_fence_adopt_sync_fd(UniqueFd fd, const char* driver_name = nullptr,
                                           const char* timeline_name = nullptr,
                                           KernelFenceWatcher* watcher = nullptr);

// Whether `f` was made by kernel_fence_wrap/adopt.
bool is_kernel_fence(const Fence* f);
// The fence's own sync_file fd (valid while you hold a reference), or -1 for
// other fences.
int kernel_fence_fd(const Fence* f);

// The "on readable" handler: if the fd is readable, reads FILE_INFO and signals
// `f` with the kernel's error and timestamp. Returns true if `f` is signalled
// (now or before), false if the fd is not readable yet (spurious wake-up).
// Must not be called under `f`'s lock.
bool kernel_fence_on_readable(Fence* f);

}  // namespace dmabuf::kernel
