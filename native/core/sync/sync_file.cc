// sync_file: create/merge/info/poll over one fence.
#include "core/sync/sync_file.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>

#include "core/base/futex.h"
#include "core/base/irq_work.h"
#include "core/base/monotonic.h"
#include "core/base/warn.h"
#include "core/fence/unwrap.h"

namespace dmabuf {
namespace {

// strscpy: always NUL-terminated, truncating.
void copy_name(char* dst, const char* src, size_t len) {
  if (!len) return;
  size_t n = strnlen(src, len - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

SyncFile* sync_file_alloc() {
  auto* sf = new (std::nothrow) SyncFile;
  if (!sf) return nullptr;
  sf->refcount.store(1, std::memory_order_relaxed);
  sf->user_name[0] = '\0';
  sf->fence = nullptr;
  list_init(&sf->cb.node);
  sf->flags.store(0, std::memory_order_relaxed);
  list_init(&sf->wq);
  return sf;
}

// wake_up_all: every queued waiter runs once and leaves the queue.
void wake_up_all(SyncFile* sf) {
  IrqSpinGuard g(&sf->wq_lock);
  while (!list_empty(&sf->wq)) {
    ListHead* n = sf->wq.next;
    list_del_init(n);
    SyncFileWaiter* w = container_of(n, &SyncFileWaiter::node);
    w->func(w);
  }
}

void fence_check_cb_func(Fence*, FenceCallback* cb) {
  wake_up_all(container_of(cb, &SyncFile::cb));
}

void sync_file_release(SyncFile* sf) {
  // Disarm first: afterwards the callback cannot be running on sf.
  if (sf->flags.load(std::memory_order_acquire) & (1UL << SYNC_FILE_POLL_ENABLED))
    fence_remove_callback(sf->fence, &sf->cb);
  bool waiters;
  {
    IrqSpinGuard g(&sf->wq_lock);
    waiters = !list_empty(&sf->wq);
  }
  if (waiters) warn("sync_file released with poll waiters still queued");
  fence_put(sf->fence);
  delete sf;
}

// sync_fill_fence_info: names under RCU (placeholders once signalled), status,
// timestamp. Returns the leaf status.
int fill_fence_info(Fence* fence, SyncFenceInfo* info) {
  {
    rcu::ReadGuard rcu;
    copy_name(info->obj_name, fence_timeline_name(fence), sizeof info->obj_name);
    copy_name(info->driver_name, fence_driver_name(fence), sizeof info->driver_name);
  }
  info->status = fence_get_status(fence);
  info->flags = 0;
  info->timestamp_ns = fence_is_signaled(fence) ? static_cast<uint64_t>(fence_timestamp(fence)) : 0;
  return info->status;
}

}  // namespace

SyncFile* sync_file_create(Fence* fence) {
  if (!fence) {
    warn("sync_file_create: NULL fence");
    return nullptr;
  }
  SyncFile* sf = sync_file_alloc();
  if (!sf) return nullptr;
  sf->fence = fence_get(fence);
  return sf;
}

SyncFile* sync_file_get(SyncFile* sf) {
  if (sf) sf->refcount.fetch_add(1, std::memory_order_relaxed);
  return sf;
}

void sync_file_put(SyncFile* sf) {
  if (sf && sf->refcount.fetch_sub(1, std::memory_order_acq_rel) == 1) sync_file_release(sf);
}

Fence* sync_file_get_fence(SyncFile* sf) { return sf ? fence_get(sf->fence) : nullptr; }

char* sync_file_get_name(SyncFile* sf, char* buf, size_t len) {
  if (sf->user_name[0]) {
    copy_name(buf, sf->user_name, len);
  } else {
    Fence* fence = sf->fence;
    rcu::ReadGuard rcu;
    snprintf(buf, len, "%s-%s%" PRIu64 "-%" PRId64, fence_driver_name(fence),
             fence_timeline_name(fence), fence->context, static_cast<int64_t>(fence->seqno));
  }
  return buf;
}

SyncFile* sync_file_merge(const char* name, SyncFile* a, SyncFile* b) {
  SyncFile* sf = sync_file_alloc();
  if (!sf) return nullptr;
  Fence* fence = fence_unwrap_merge(a->fence, b->fence);
  if (!fence) {
    delete sf;
    return nullptr;
  }
  sf->fence = fence;
  copy_name(sf->user_name, name, sizeof sf->user_name);
  return sf;
}

unsigned sync_file_poll(SyncFile* sf, SyncFileWaiter* w) {
  // Queue before looking, so a signal in between still wakes the waiter.
  if (w) {
    IrqSpinGuard g(&sf->wq_lock);
    list_add_tail(&w->node, &sf->wq);
  }
  const unsigned long bit = 1UL << SYNC_FILE_POLL_ENABLED;
  if (!(sf->flags.fetch_or(bit, std::memory_order_acq_rel) & bit)) {
    if (fence_add_callback(sf->fence, &sf->cb, fence_check_cb_func) < 0) wake_up_all(sf);
  }
  return fence_is_signaled(sf->fence) ? SYNC_POLLIN : 0;
}

bool sync_file_poll_remove(SyncFile* sf, SyncFileWaiter* w) {
  IrqSpinGuard g(&sf->wq_lock);
  if (list_empty(&w->node)) return false;
  list_del_init(&w->node);
  return true;
}

namespace {
struct FutexWaiter {
  SyncFileWaiter w;
  std::atomic<uint32_t> word{0};
};
void futex_waiter_wake(SyncFileWaiter* w) {
  auto* fw = container_of(w, &FutexWaiter::w);
  fw->word.store(1, std::memory_order_release);
  futex_wake_all(&fw->word);
}
}  // namespace

int sync_file_wait(SyncFile* sf, int64_t timeout_ns) {
  FutexWaiter fw;
  fw.w.func = futex_waiter_wake;
  int ready = sync_file_poll(sf, &fw.w) ? 1 : 0;
  if (!ready && timeout_ns != 0) {
    const int64_t deadline = timeout_ns > 0 ? monotonic_ns() + timeout_ns : 0;
    while (fw.word.load(std::memory_order_acquire) == 0) {
      int64_t left = -1;
      if (timeout_ns > 0) {
        left = deadline - monotonic_ns();
        if (left <= 0) break;
      }
      futex_wait(&fw.word, 0, left);
    }
    ready = fence_is_signaled(sf->fence) ? 1 : 0;
  }
  sync_file_poll_remove(sf, &fw.w);  // also waits out a running func
  return ready;
}

int sync_file_ioctl_merge(SyncFile* sf, SyncMergeData* data) {
  if (!data) return -EFAULT;
  if (data->flags || data->pad) return -EINVAL;
  if (!data->fd2) return -ENOENT;
  data->name[sizeof data->name - 1] = '\0';
  SyncFile* merged = sync_file_merge(data->name, sf, data->fd2);
  if (!merged) return -ENOMEM;
  data->fence = merged;
  return 0;
}

int sync_file_ioctl_fence_info(SyncFile* sf, SyncFileInfo* info) {
  if (!info) return -EFAULT;
  if (info->flags || info->pad) return -EINVAL;

  FenceUnwrap iter;
  Fence* fence;
  uint32_t num_fences = 0;
  fence_unwrap_for_each(fence, &iter, sf->fence) { ++num_fences; }

  if (!info->num_fences) {
    // Only the count, the name and the status were asked for.
    info->status = fence_get_status(sf->fence);
  } else {
    if (info->num_fences < num_fences) return -EINVAL;
    if (!info->sync_fence_info) return -EFAULT;
    info->status = 1;
    const uint32_t room = info->num_fences;
    num_fences = 0;
    fence_unwrap_for_each(fence, &iter, sf->fence) {
      // Links may be collected between the passes, never added.
      if (num_fences == room) {
        fence_unwrap_stop(&iter);
        break;
      }
      const int status = fill_fence_info(fence, &info->sync_fence_info[num_fences++]);
      if (info->status > 0) info->status = status;
    }
  }
  sync_file_get_name(sf, info->name, sizeof info->name);
  info->num_fences = num_fences;
  return 0;
}

int sync_file_ioctl_set_deadline(SyncFile* sf, const SyncSetDeadline* data) {
  if (!data) return -EFAULT;
  if (data->pad) return -EINVAL;
  Fence* fence = fence_get(sf->fence);
  fence_set_deadline(fence, static_cast<int64_t>(data->deadline_ns));
  fence_put(fence);
  return 0;
}

long sync_file_ioctl(SyncFile* sf, unsigned cmd, void* arg) {
  if (!sf) return -EBADF;
  switch (cmd) {
    case SYNC_IOC_MERGE:
      return sync_file_ioctl_merge(sf, static_cast<SyncMergeData*>(arg));
    case SYNC_IOC_FILE_INFO:
      return sync_file_ioctl_fence_info(sf, static_cast<SyncFileInfo*>(arg));
    case SYNC_IOC_SET_DEADLINE:
      return sync_file_ioctl_set_deadline(sf, static_cast<const SyncSetDeadline*>(arg));
    default:
      return -ENOTTY;
  }
}

}  // namespace dmabuf
