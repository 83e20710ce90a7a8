#include "kernel/kernel_fence.h"

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/base/monotonic.h"
#include "core/base/warn.h"
#include "core/sync/sync_file_fd.h"
#include "kernel/sync_file.h"
#include "kernel/uapi.h"

namespace dmabuf::kernel {

namespace {

constexpr size_t kNameLen = 32;  // sync_fence_info's name fields

struct KernelFence {
  Fence base;  // first: Fence* <-> KernelFence*
  int fd;
  bool sync_fd;  // an emulated fence's exported fd (core/sync/sync_file_fd.h), not a sync_file
  KernelFenceWatcher* watcher;
  char driver_name[kNameLen];
  char timeline_name[kNameLen];
};

KernelFence* to_kf(Fence* f) { return reinterpret_cast<KernelFence*>(f); }
const KernelFence* to_kf(const Fence* f) { return reinterpret_cast<const KernelFence*>(f); }

// What the kernel says about the fd right now.
struct KernelState {
  bool signaled = false;
  int error = 0;
  int64_t timestamp_ns = 0;
};

// An exported emulated fence: the record it carries once readable.
KernelState query_sync_fd(int fd) {
  KernelState st;
  int status = 0;
  int64_t ts = 0;
  const int r = sync_fd_status(fd, &status, &ts);
  if (r == 0) return st;
  st.signaled = true;
  if (r < 0) {
    warn("kernel fence: fd %d is not an exported fence (%d)", fd, r);
    st.error = -EIO;
    st.timestamp_ns = monotonic_ns();
    return st;
  }
  st.error = status < 0 ? status : 0;
  st.timestamp_ns = ts ? ts : monotonic_ns();
  return st;
}

KernelState query(const KernelFence* kf) {
  if (kf->sync_fd) return query_sync_fd(kf->fd);
  const int fd = kf->fd;
  KernelState st;
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r <= 0 || !(p.revents & (POLLIN | POLLERR | POLLNVAL))) return st;
  st.signaled = true;
  if (!(p.revents & POLLIN)) {
    // Cannot happen for a sync_file we own; do not leave waiters hanging.
    warn("kernel fence: fd %d polled %#x", fd, static_cast<unsigned>(p.revents));
    st.error = -EIO;
    st.timestamp_ns = monotonic_ns();
    return st;
  }
  auto info = sync_file_get_info(fd);
  if (!info) {
    warn("kernel fence: %s", info.error().describe().c_str());
    st.timestamp_ns = monotonic_ns();
    return st;
  }
  st.error = info->error();
  const uint64_t ts = info->signal_timestamp_ns();
  st.timestamp_ns = ts ? static_cast<int64_t>(ts) : monotonic_ns();
  return st;
}

// Lock held, fence not yet signalled.
void signal_locked(Fence* f, const KernelState& st) {
  if (fence_test_signaled_flag(f)) return;
  if (st.error < 0 && st.error >= -4095) __atomic_store_n(&f->error, st.error, __ATOMIC_RELAXED);
  fence_signal_timestamp_locked(f, st.timestamp_ns);
}

const char* kf_driver_name(Fence* f) { return to_kf(f)->driver_name; }
const char* kf_timeline_name(Fence* f) { return to_kf(f)->timeline_name; }

bool kf_enable_signaling(Fence* f) {
  KernelFence* kf = to_kf(f);
  fence_get(f);  // the watcher's reference
  const int r = kf->watcher->watch(f, kf->fd);
  if (r < 0) {
    fence_put(f);  // never the last: enable_signaling's caller holds one
    __atomic_store_n(&f->error, r, __ATOMIC_RELAXED);
    return false;  // the core signals now, with that error
  }
  return true;
}

// Polling fast path: one poll() (plus FILE_INFO once signalled). To signal with
// the kernel's timestamp we need the fence lock; if someone holds it (possibly
// our own caller, fence_is_signaled_locked) we answer "not yet" and leave the
// signalling to the watcher or the next poll.
bool kf_signaled(Fence* f) {
  const KernelState st = query(to_kf(f));
  if (!st.signaled) return false;
  // try_lock, never lock: a container may poll us while holding its own lock.
  // Taken "irqsave" like every fence lock, so container irq_work queued by our
  // signal runs once no fence lock is held (irq_work.h).
  SpinLock* l = fence_spinlock(f);
  local_irq_disable();
  if (!l->try_lock()) {
    local_irq_enable();
    return false;
  }
  signal_locked(f, st);
  l->unlock();
  local_irq_enable();
  return true;
}

void kf_set_deadline(Fence* f, int64_t deadline_ns) {
  if (to_kf(f)->sync_fd) return;  // no way to pass it back to the exporter
  sync_set_deadline d{};
  d.deadline_ns = static_cast<uint64_t>(deadline_ns < 0 ? 0 : deadline_ns);
  // A hint: kernels before 6.4 say ENOTTY, which is fine to ignore.
  (void)xioctl(to_kf(f)->fd, SYNC_IOC_SET_DEADLINE, &d);
}

// Frees one batch of released kernel fences (after their grace period).
void kf_free_list(rcu::DeferredFree* node) {
  while (node) {
    rcu::DeferredFree* next = node->next;
    std::free(container_of(node, &Fence::rcu));
    node = next;
  }
}

void kf_release(Fence* f) {
  KernelFence* kf = to_kf(f);
  if (kf->fd >= 0) ::close(kf->fd);
  kf->fd = -1;
  // Names stay readable for RCU readers until the grace period ends.
  rcu::defer_free(&f->rcu, kf_free_list);
}

const FenceOps kKernelFenceOps = {
    .get_driver_name = kf_driver_name,
    .get_timeline_name = kf_timeline_name,
    .enable_signaling = kf_enable_signaling,
    .signaled = kf_signaled,
    .release = kf_release,  // no custom wait
    .set_deadline = kf_set_deadline,
};

void copy_name(char (&dst)[kNameLen], const std::string& src) {
  snprintf(dst, kNameLen, "%s", src.c_str());
}

}  // namespace

KResult<Fence*> kernel_fence_adopt(UniqueFd fd, KernelFenceWatcher* watcher) {
  auto info = sync_file_get_info(fd.get());
  if (!info) return info.error();
  auto* kf = static_cast<KernelFence*>(std::calloc(1, sizeof(KernelFence)));
  if (!kf) return kerror(-ENOMEM, "kernel_fence_wrap", "fence allocation");
  kf->watcher = watcher ? watcher : default_kernel_fence_watcher();
  if (info->fences.size() == 1) {
    copy_name(kf->driver_name, info->fences[0].driver_name);
    copy_name(kf->timeline_name, info->fences[0].obj_name);
  } else {
    copy_name(kf->driver_name, "sync_file");
    copy_name(kf->timeline_name, info->name);
  }
  kf->fd = fd.release();
  fence_init(&kf->base, &kKernelFenceOps, nullptr, fence_context_alloc(1), 1);
  if (info->status != 0) {
    // Already signalled in the kernel: carry its error and timestamp over now.
    KernelState st;
    st.signaled = true;
    st.error = info->error();
    const uint64_t ts = info->signal_timestamp_ns();
    st.timestamp_ns = ts ? static_cast<int64_t>(ts) : monotonic_ns();
    fence_lock_irqsave(&kf->base);
    signal_locked(&kf->base, st);
    fence_unlock_irqrestore(&kf->base);
  }
  return &kf->base;
}

KResult<Fence*> kernel_fence_adopt_sync_fd(UniqueFd fd, const char* driver_name, const char* timeline_name,
                                           KernelFenceWatcher* watcher) {
  if (!sync_fd_is_export(fd.get())) return kerror(-EINVAL, "kernel_fence_adopt_sync_fd", "not an exported fence fd");
  auto* kf = static_cast<KernelFence*>(std::calloc(1, sizeof(KernelFence)));
  if (!kf) return kerror(-ENOMEM, "kernel_fence_adopt_sync_fd", "fence allocation");
  kf->watcher = watcher ? watcher : default_kernel_fence_watcher();
  kf->sync_fd = true;
  copy_name(kf->driver_name, driver_name ? driver_name : "sync_fd");
  copy_name(kf->timeline_name, timeline_name ? timeline_name : "remote");
  kf->fd = fd.release();
  fence_init(&kf->base, &kKernelFenceOps, nullptr, fence_context_alloc(1), 1);
  const KernelState st = query(kf);
  if (st.signaled) {
    fence_lock_irqsave(&kf->base);
    signal_locked(&kf->base, st);
    fence_unlock_irqrestore(&kf->base);
  }
  return &kf->base;
}

KResult<Fence*> kernel_fence_wrap(int sync_file_fd, KernelFenceWatcher* watcher) {
  auto dup = dup_fd(sync_file_fd);
  if (!dup) return dup.error();
  return kernel_fence_adopt(std::move(dup.value()), watcher);
}

bool is_kernel_fence(const Fence* f) {
  // ops is never detached for these (release is set), so the pointer compare
  // stays valid after signalling.
  return f && __atomic_load_n(&f->ops, __ATOMIC_RELAXED) == &kKernelFenceOps;
}

int kernel_fence_fd(const Fence* f) { return is_kernel_fence(f) ? to_kf(f)->fd : -1; }

bool kernel_fence_on_readable(Fence* f) {
  if (fence_test_signaled_flag(f)) return true;
  const KernelState st = query(to_kf(f));
  if (!st.signaled) return false;
  fence_lock_irqsave(f);
  signal_locked(f, st);
  fence_unlock_irqrestore(f);
  return true;
}

}  // namespace dmabuf::kernel
