// A cache of fence memory (the userspace counterpart of the kernel's fence
// slab): fences on the default release path come back here after their grace
// period instead of going through malloc/free. Whole RCU batches move between the
// call_rcu thread and the allocating threads, so recycling touches no fence on
// the way back. Under AddressSanitizer the cache is off, so every stale access
// to a released fence is still reported.
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

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

inline Fence* node_fence(rcu::DeferredFree* n) { return container_of(n, &Fence::rcu); }

#if DMABUF_FENCE_CACHE
// A recycled batch: nodes linked through DeferredFree::next; the first node's
// `reserved` word links batches together.
inline rcu::DeferredFree*& next_batch(rcu::DeferredFree* first) {
  return reinterpret_cast<rcu::DeferredFree*&>(first->reserved);
}

constexpr size_t kPoolMaxBatches = 1024;  // ~64k fences, 4 MiB

struct Pool {
  SpinLock lock;
  rcu::DeferredFree* batches = nullptr;
  size_t count = 0;
};
Pool g_pool;

void free_list_now(rcu::DeferredFree* n) {
  while (n) {
    rcu::DeferredFree* next = n->next;
    std::free(node_fence(n));
    n = next;
  }
}

void recycle_batch(rcu::DeferredFree* first) {
  {
    SpinGuard g(&g_pool.lock);
    if (g_pool.count < kPoolMaxBatches) {
      next_batch(first) = g_pool.batches;
      g_pool.batches = first;
      ++g_pool.count;
      return;
    }
  }
  free_list_now(first);
}

// The calling thread's share of the pool: the batch being consumed and the rest.
// Trivially destructible, initial-exec TLS (a few bytes, so it fits glibc's
// static TLS surplus even in a dlopen'ed addon): no __tls_get_addr, no init
// guard. A pthread key frees what a thread still holds when it exits.
struct LocalCache {
  rcu::DeferredFree* cur;
  rcu::DeferredFree* batches;
};
__attribute__((tls_model("initial-exec"))) thread_local LocalCache t_cache = {nullptr, nullptr};
pthread_key_t g_exit_key;
std::once_flag g_key_once;

void free_local(void* p) {
  auto* c = static_cast<LocalCache*>(p);
  free_list_now(c->cur);
  while (c->batches) {
    rcu::DeferredFree* b = c->batches;
    c->batches = next_batch(b);
    free_list_now(b);
  }
  c->cur = c->batches = nullptr;
}

rcu::DeferredFree* take_node() {
  LocalCache& c = t_cache;
  if (!c.cur) {
    if (!c.batches) {
      SpinGuard g(&g_pool.lock);
      c.batches = g_pool.batches;
      g_pool.batches = nullptr;
      g_pool.count = 0;
    }
    if (!c.batches) return nullptr;
    std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, free_local); });
    pthread_setspecific(g_exit_key, &c);
    c.cur = c.batches;
    c.batches = next_batch(c.cur);
  }
  rcu::DeferredFree* n = c.cur;
  c.cur = n->next;
  // Recycled fences are cold (a grace period has passed): fetch the next early.
  if (c.cur) __builtin_prefetch(node_fence(c.cur), 1);
  return n;
}
#else
void free_list_now(rcu::DeferredFree* n) {
  while (n) {
    rcu::DeferredFree* next = n->next;
    std::free(node_fence(n));
    n = next;
  }
}
#endif

}  // namespace

Fence* fence_alloc() {
#if DMABUF_FENCE_CACHE
  if (rcu::DeferredFree* n = take_node()) {
    Fence* f = node_fence(n);
    memset(static_cast<void*>(f), 0, sizeof(Fence));
    return f;
  }
#endif
  return static_cast<Fence*>(std::calloc(1, sizeof(Fence)));
}

void fence_free(Fence* f) {
#if DMABUF_FENCE_CACHE
  rcu::defer_free(&f->rcu, recycle_batch);
#else
  rcu::defer_free(&f->rcu, free_list_now);
#endif
}

}  // namespace dmabuf
