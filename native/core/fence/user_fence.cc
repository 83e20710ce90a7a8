#include "core/fence/user_fence.h"

#include <cstdlib>
#include <new>

#include "core/base/rcu.h"

namespace dmabuf {
namespace {

const char* user_driver_name(Fence*) { return "dmabuf"; }
const char* user_timeline_name(Fence*) { return "js"; }
const FenceOps kUserOps = {.get_driver_name = user_driver_name,
                           .get_timeline_name = user_timeline_name};

struct LockedFence {
  Fence base;
  FenceLock* owner;
};

void free_locked_fences(rcu::DeferredFree* n) {
  while (n) {
    rcu::DeferredFree* next = n->next;
    auto* lf = reinterpret_cast<LockedFence*>(container_of(n, &Fence::rcu));
    fence_lock_put(lf->owner);
    std::free(lf);
    n = next;
  }
}
void locked_release(Fence* f) { rcu::defer_free(&f->rcu, free_locked_fences); }
const FenceOps kUserLockedOps = {.get_driver_name = user_driver_name,
                                 .get_timeline_name = user_timeline_name,
                                 .release = locked_release};

}  // namespace

FenceLock* fence_lock_create() { return new (std::nothrow) FenceLock; }

void fence_lock_put(FenceLock* l) {
  if (l->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete l;
}

Fence* user_fence_create(FenceLock* lock, uint64_t context, uint64_t seqno, bool seqno64) {
  auto init = seqno64 ? fence_init64 : fence_init;
  if (!lock) {
    Fence* f = fence_alloc();
    if (f) init(f, &kUserOps, nullptr, context, seqno);
    return f;
  }
  auto* lf = static_cast<LockedFence*>(std::calloc(1, sizeof(LockedFence)));
  if (!lf) return nullptr;
  lock->refs.fetch_add(1, std::memory_order_relaxed);
  lf->owner = lock;
  init(&lf->base, &kUserLockedOps, &lock->lock, context, seqno);
  return &lf->base;
}

bool user_fence_recycle(Fence* f) {
  // Signalled inline-lock fences have detached ops; pending ones still point at
  // kUserOps. Anything else (an external lock, a large block, another issuer,
  // a second reference) is not ours to reuse.
  const FenceOps* ops = __atomic_load_n(&f->ops, __ATOMIC_RELAXED);
  if ((ops && ops != &kUserOps) || !fence_test_flag(f, FENCE_FLAG_INLINE_LOCK_BIT) ||
      fence_test_flag(f, FENCE_FLAG_LARGE_BLOCK_BIT) || f->refcount.load(std::memory_order_relaxed) != 1)
    return false;
  fence_init(f, &kUserOps, nullptr, 0, 0);
  return true;
}

}  // namespace dmabuf
