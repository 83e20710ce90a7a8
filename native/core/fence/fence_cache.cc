// A cache of fence memory (the userspace counterpart of the kernel's fence
// slab): fences on the default release path come back here after their grace
// period instead of going through malloc/free. Recycled fences travel as arrays
// of pointers, so an allocating thread reads a hot array and prefetches
// ahead instead of chasing a linked list through cold fences. Under
// AddressSanitizer the cache is off, so every stale access to a released fence
// is still reported.
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/fence/fence.h"

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

#if !DMABUF_FENCE_CACHE
void free_now(rcu::DeferredFree* const* nodes, unsigned n) {
  for (unsigned i = 0; i < n; ++i) std::free(node_fence(nodes[i]));
}
#else
struct Chunk {
  Chunk* next;
  unsigned n;
  Fence* items[rcu::kDeferBatch];
};

constexpr size_t kPoolMaxChunks = 65536 / rcu::kDeferBatch;  // ~64k fences, 4 MiB

struct Pool {
  SpinLock lock;
  Chunk* chunks = nullptr;
  size_t count = 0;
};
Pool g_pool;

void free_chunks(Chunk* c) {
  while (c) {
    Chunk* next = c->next;
    for (unsigned i = 0; i < c->n; ++i) std::free(c->items[i]);
    delete c;
    c = next;
  }
}

// Runs on the reclaimer thread after the grace period.
void recycle(rcu::DeferredFree* const* nodes, unsigned n) {
  auto* c = new Chunk;
  c->n = n;
  for (unsigned i = 0; i < n; ++i) c->items[i] = node_fence(nodes[i]);
  {
    SpinGuard g(&g_pool.lock);
    if (g_pool.count < kPoolMaxChunks) {
      c->next = g_pool.chunks;
      g_pool.chunks = c;
      ++g_pool.count;
      return;
    }
  }
  c->next = nullptr;
  free_chunks(c);
}

// The calling thread's share of the pool. Trivially destructible, initial-exec
// TLS (a few bytes, so it fits glibc's static TLS surplus even in a dlopen'ed
// addon): no __tls_get_addr, no init guard. A pthread key frees what a thread
// still holds when it exits.
struct LocalCache {
  Chunk* chunks;  // the first one is being consumed
};
__attribute__((tls_model("initial-exec"))) thread_local LocalCache t_cache = {nullptr};
pthread_key_t g_exit_key;
std::once_flag g_key_once;

void free_local(void* p) {
  auto* c = static_cast<LocalCache*>(p);
  free_chunks(c->chunks);
  c->chunks = nullptr;
}

Fence* take() {
  LocalCache& c = t_cache;
  Chunk* ch = c.chunks;
  while (ch && ch->n == 0) {  // drained: drop it
    c.chunks = ch->next;
    delete ch;
    ch = c.chunks;
  }
  if (!ch) {
    {
      SpinGuard g(&g_pool.lock);
      ch = g_pool.chunks;
      g_pool.chunks = nullptr;
      g_pool.count = 0;
    }
    if (!ch) return nullptr;
    c.chunks = ch;
    std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, free_local); });
    pthread_setspecific(g_exit_key, &c);
  }
  Fence* f = ch->items[--ch->n];
  // Recycled fences are cold (a grace period has passed): fetch a few ahead.
  if (ch->n >= 4) __builtin_prefetch(ch->items[ch->n - 4], 1);
  return f;
}
#endif

}  // namespace

Fence* fence_alloc() {
#if DMABUF_FENCE_CACHE
  if (Fence* f = take()) {
    memset(static_cast<void*>(f), 0, sizeof(Fence));
    return f;
  }
#endif
  return static_cast<Fence*>(std::calloc(1, sizeof(Fence)));
}

namespace {
void free_objects(rcu::DeferredFree* first) {
  while (first) {
    rcu::DeferredFree* next = first->next;
    std::free(node_fence(first));
    first = next;
  }
}
}  // namespace

void fence_free_object(Fence* f) { rcu::defer_free(&f->rcu, free_objects); }

void fence_free(Fence* f) {
#if DMABUF_FENCE_CACHE
  rcu::defer_free(&f->rcu, recycle);
#else
  rcu::defer_free(&f->rcu, free_now);
#endif
}

}  // namespace dmabuf
