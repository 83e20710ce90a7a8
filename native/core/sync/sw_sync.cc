// sw_sync: timelines, points, increments, deadlines.
#include "core/sync/sw_sync.h"

#include <pthread.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "core/base/irq_work.h"
#include "core/base/warn.h"

namespace dmabuf {
namespace {

SyncPt* to_pt(Fence* f) { return container_of(f, &SyncPt::base); }

const char* timeline_driver_name(Fence*) { return "sw_sync"; }
const char* timeline_name(Fence* f) { return fence_parent(f)->name; }

// Signalled once the timeline's value has reached the seqno (32-bit wrap).
bool timeline_fence_signaled(Fence* f) {
  const uint32_t value = fence_parent(f)->value.load(std::memory_order_acquire);
  return !fence_is_later_seqno(f, f->seqno, value);
}

void timeline_fence_release(Fence* f) {
  SyncPt* pt = to_pt(f);
  SyncTimeline* parent = fence_parent(f);
  {
    IrqSpinGuard g(fence_spinlock(f));
    if (!list_empty(&pt->link)) list_del_init(&pt->link);
  }
  sync_timeline_put(parent);
  static_assert(offsetof(SyncPt, base) == 0, "freed through its fence");
  fence_free_object(f);
}

void timeline_fence_set_deadline(Fence* f, int64_t deadline_ns) {
  SyncPt* pt = to_pt(f);
  IrqSpinGuard g(fence_spinlock(f));
  if (fence_test_flag(f, SW_SYNC_HAS_DEADLINE_BIT)) {
    if (deadline_ns < pt->deadline) pt->deadline = deadline_ns;  // keep the earliest
  } else {
    pt->deadline = deadline_ns;
    fence_set_user_flag_locked(f, SW_SYNC_HAS_DEADLINE_BIT);
  }
}

void timeline_free_rcu(rcu::DeferredFree* first) {
  while (first) {
    rcu::DeferredFree* next = first->next;
    std::free(container_of(first, &SyncTimeline::rcu));
    first = next;
  }
}

}  // namespace

const FenceOps timeline_fence_ops = {
    .get_driver_name = timeline_driver_name,
    .get_timeline_name = timeline_name,
    .signaled = timeline_fence_signaled,
    .release = timeline_fence_release,
    .set_deadline = timeline_fence_set_deadline,
};

SyncTimeline* sync_timeline_create(const char* name) {
  auto* obj = static_cast<SyncTimeline*>(std::calloc(1, sizeof(SyncTimeline)));
  if (!obj) return nullptr;
  obj->kref.store(1, std::memory_order_relaxed);
  if (name) {
    strncpy(obj->name, name, sizeof obj->name - 1);
  } else {
    char comm[16] = "";
    pthread_getname_np(pthread_self(), comm, sizeof comm);
    strncpy(obj->name, comm, sizeof obj->name - 1);
  }
  obj->context = fence_context_alloc(1);
  obj->value.store(0, std::memory_order_relaxed);
  list_init(&obj->pt_list);
  obj->lock.init();
  return obj;
}

void sync_timeline_get(SyncTimeline* obj) { obj->kref.fetch_add(1, std::memory_order_relaxed); }

void sync_timeline_put(SyncTimeline* obj) {
  // After a grace period: RCU readers may still be reading the name.
  if (obj->kref.fetch_sub(1, std::memory_order_acq_rel) == 1)
    rcu::defer_free(&obj->rcu, timeline_free_rcu);
}

SyncPt* sync_pt_create(SyncTimeline* obj, uint32_t value) {
  auto* pt = static_cast<SyncPt*>(std::calloc(1, sizeof(SyncPt)));
  if (!pt) return nullptr;
  sync_timeline_get(obj);
  fence_init(&pt->base, &timeline_fence_ops, &obj->lock, obj->context, value);
  list_init(&pt->link);

  IrqSpinGuard g(&obj->lock);
  if (fence_is_signaled_locked(&pt->base)) return pt;  // already passed: not queued
  // Find the place in seqno order, scanning from the newest end because points
  // are usually created in increasing order.
  ListHead* after = &obj->pt_list;
  for (ListHead* n = obj->pt_list.prev; n != &obj->pt_list; n = n->prev) {
    SyncPt* other = container_of(n, &SyncPt::link);
    const int32_t cmp = static_cast<int32_t>(value - static_cast<uint32_t>(other->base.seqno));
    if (cmp > 0) {
      after = n;
      break;
    }
    // The same point, still alive: hand that one out instead.
    if (cmp == 0 && fence_get_rcu(&other->base)) {
      sync_timeline_put(obj);  // never the last: the caller holds one
      std::free(pt);           // initialised but never published
      return other;
    }
  }
  list_add(&pt->link, after);
  return pt;
}

void sync_timeline_signal(SyncTimeline* obj, uint32_t inc) {
  ListHead signalled;
  list_init(&signalled);
  {
    IrqSpinGuard g(&obj->lock);
    obj->value.store(obj->value.load(std::memory_order_relaxed) + inc, std::memory_order_release);
    while (!list_empty(&obj->pt_list)) {
      SyncPt* pt = container_of(obj->pt_list.next, &SyncPt::link);
      if (!timeline_fence_signaled(&pt->base)) break;
      list_del_init(&pt->link);
      // A point whose last reference is gone waits for this lock in its
      // release; unlinked, it has nothing left to do and nobody to tell.
      if (!fence_get_rcu(&pt->base)) continue;
      list_add_tail(&pt->link, &signalled);
      fence_signal_locked(&pt->base);
    }
  }
  // Callbacks may drop other references; ours go only after the lock.
  while (!list_empty(&signalled)) {
    SyncPt* pt = container_of(signalled.next, &SyncPt::link);
    list_del_init(&pt->link);
    fence_put(&pt->base);
  }
}

SyncTimeline* sw_sync_debugfs_open(const char* name) { return sync_timeline_create(name); }

void sw_sync_debugfs_release(SyncTimeline* obj) {
  if (!obj) return;
  {
    IrqSpinGuard g(&obj->lock);
    for (ListHead* n = obj->pt_list.next; n != &obj->pt_list; n = n->next) {
      SyncPt* pt = container_of(n, &SyncPt::link);
      // Skip a point someone signalled by hand: its error can no longer change.
      if (fence_test_signaled_flag(&pt->base)) continue;
      fence_set_error(&pt->base, -ENOENT);
      fence_signal_locked(&pt->base);
    }
  }
  sync_timeline_put(obj);
}

int sw_sync_ioctl_create_fence(SyncTimeline* obj, SwSyncCreateFenceData* data) {
  if (!data) return -EFAULT;
  SyncPt* pt = sync_pt_create(obj, data->value);
  if (!pt) return -ENOMEM;
  SyncFile* sf = sync_file_create(&pt->base);
  fence_put(&pt->base);
  if (!sf) return -ENOMEM;
  data->fence = sf;
  return 0;
}

int sw_sync_ioctl_inc(SyncTimeline* obj, const uint32_t* value) {
  if (!value) return -EFAULT;
  uint32_t inc = *value;
  while (inc > INT_MAX) {
    sync_timeline_signal(obj, INT_MAX);
    inc -= INT_MAX;
  }
  sync_timeline_signal(obj, inc);
  return 0;
}

int sw_sync_ioctl_get_deadline(SyncTimeline*, SwSyncGetDeadline* data) {
  if (!data) return -EFAULT;
  if (data->deadline_ns || data->pad) return -EINVAL;
  Fence* fence = sync_file_get_fence(data->fence_fd);
  if (!fence) return -EINVAL;
  SyncPt* pt = fence_to_sync_pt(fence);
  if (!pt) {
    fence_put(fence);
    return -EINVAL;
  }
  int ret = 0;
  {
    IrqSpinGuard g(fence_spinlock(fence));
    if (fence_test_flag(fence, SW_SYNC_HAS_DEADLINE_BIT))
      data->deadline_ns = static_cast<uint64_t>(pt->deadline);
    else
      ret = -ENOENT;
  }
  fence_put(fence);
  return ret;
}

long sw_sync_ioctl(SyncTimeline* obj, unsigned cmd, void* arg) {
  if (!obj) return -EBADF;
  switch (cmd) {
    case SW_SYNC_IOC_CREATE_FENCE:
      return sw_sync_ioctl_create_fence(obj, static_cast<SwSyncCreateFenceData*>(arg));
    case SW_SYNC_IOC_INC:
      return sw_sync_ioctl_inc(obj, static_cast<const uint32_t*>(arg));
    case SW_SYNC_GET_DEADLINE:
      return sw_sync_ioctl_get_deadline(obj, static_cast<SwSyncGetDeadline*>(arg));
    default:
      return -ENOTTY;
  }
}

}  // namespace dmabuf
