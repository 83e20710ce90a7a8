// A per-thread cache of fence memory (the userspace counterpart of the kernel's
// fence slab): fences on the default release path come back here after their
// grace period instead of going through malloc/free, which would cost more than
// the rest of the fence lifecycle. Under AddressSanitizer the cache is off, so
// every stale access to a released fence is still reported.
#include <cstdlib>
#include <cstring>

#include "fence.h"

#if defined(__SANITIZE_ADDRESS__)
#define DMABUF_FENCE_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DMABUF_FENCE_CACHE 0
#endif
#endif
#ifndef DMABUF_FENCE_CACHE
#define DMABUF_FENCE_CACHE 1
#endif

namespace dmabuf {
namespace {

// A free fence's first word links it into a cache list.
struct FreeFence {
  FreeFence* next;
};
static_assert(sizeof(FreeFence) <= sizeof(Fence));

constexpr size_t kGlobalMax = 1 << 16;  // 4 MiB of fences across threads

struct GlobalPool {
  SpinLock lock;
  FreeFence* head = nullptr;
  size_t count = 0;
};
GlobalPool g_pool;

void pool_push(FreeFence* n) {
  {
    SpinGuard g(&g_pool.lock);
    if (g_pool.count < kGlobalMax) {
      n->next = g_pool.head;
      g_pool.head = n;
      ++g_pool.count;
      return;
    }
  }
  std::free(n);
}

struct LocalCache {
  FreeFence* head = nullptr;  // taken from the pool in one go
  ~LocalCache() {
    while (head) {
      FreeFence* n = head;
      head = n->next;
      pool_push(n);
    }
  }
};
thread_local LocalCache t_cache;

void reclaim_node(rcu::DeferredFree* node) {
  pool_push(reinterpret_cast<FreeFence*>(container_of(node, &Fence::rcu)));
}

}  // namespace

Fence* fence_alloc() {
#if DMABUF_FENCE_CACHE
  LocalCache& c = t_cache;
  if (!c.head) {
    SpinGuard g(&g_pool.lock);
    c.head = g_pool.head;
    g_pool.head = nullptr;
    g_pool.count = 0;
  }
  if (c.head) {
    FreeFence* n = c.head;
    c.head = n->next;
    memset(static_cast<void*>(n), 0, sizeof(Fence));
    return reinterpret_cast<Fence*>(n);
  }
#endif
  return static_cast<Fence*>(std::calloc(1, sizeof(Fence)));
}

void fence_free(Fence* f) {
#if DMABUF_FENCE_CACHE
  rcu::defer_free(&f->rcu, reclaim_node);
#else
  rcu::defer_free(&f->rcu, [](rcu::DeferredFree* node) { std::free(container_of(node, &Fence::rcu)); });
#endif
}

}  // namespace dmabuf
