#include "kernel/fence_export.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <new>

#include "core/base/warn.h"
#include "kernel/kernel_fence.h"

namespace dmabuf::kernel {

namespace {

std::atomic<size_t> g_pending{0};

struct Export {
  FenceCallback cb;
  Fence* fence;
  int timeline_fd;
};

// Runs once: from the fence callback (under the fence lock) or right away if
// the fence had already signalled.
void complete(Export* ex, Fence* f) {
  const int err = __atomic_load_n(&f->error, __ATOMIC_RELAXED);
  if (err == 0) {
    auto r = sw_sync_inc(ex->timeline_fd, 1);
    if (!r) warn("sync_file_from_fence: %s", r.error().describe().c_str());
  }
  // Closing the timeline: an unreached point signals with -ENOENT; a reached
  // one keeps its state, and the timeline lives on while points reference it.
  ::close(ex->timeline_fd);
  g_pending.fetch_sub(1, std::memory_order_relaxed);
  Fence* held = ex->fence;
  delete ex;
  fence_put(held);  // a put from a callback: release never takes the lock of a signalled fence
}

void on_signal(Fence* f, FenceCallback* cb) { complete(container_of(cb, &Export::cb), f); }

}  // namespace

KResult<UniqueFd> sync_file_from_fence(Fence* f, const char* sw_sync_path) {
  if (!f) return kerror(-EINVAL, "sync_file_from_fence", "null fence");
  if (is_kernel_fence(f)) return dup_fd(kernel_fence_fd(f));
  auto tl = sw_sync_timeline_open(sw_sync_path);
  if (!tl) {
    KError e = tl.error();
    e.msg = "exporting a core fence needs sw_sync: " + e.msg;
    return e;
  }
  auto point = sw_sync_create_fence(tl->get(), 1, "dmabuf-export");
  if (!point) return point.error();
  auto* ex = new (std::nothrow) Export{};
  if (!ex) return kerror(-ENOMEM, "sync_file_from_fence", "export record");
  ex->fence = fence_get(f);
  ex->timeline_fd = tl->release();
  g_pending.fetch_add(1, std::memory_order_relaxed);
  if (fence_add_callback(f, &ex->cb, on_signal) == -ENOENT) complete(ex, f);
  return std::move(point.value());
}

size_t fence_exports_pending() { return g_pending.load(std::memory_order_relaxed); }

}  // namespace dmabuf::kernel
