// The fence cache (the userspace counterpart of the kernel's fence slab): memory
// of fences on the default release path is recycled on the thread that freed it,
// once a polled RCU grace period has passed, so it never crosses to another CPU
// and never goes back to malloc while the thread keeps using fences.
//
// Each thread holds, per size class, magazines (arrays of free blocks): one it
// fills as it frees, a FIFO of full ones stamped with a grace-period cookie
// (rcu::start_poll), and one whose grace period has passed that it allocates
// from. Arrays rather than lists, so the allocating thread reads one hot array
// and prefetches the cold blocks ahead. Beyond kMaxWaiting magazines a thread
// hands the oldest to the reclaimer, which puts it in a global pool after its
// grace period; threads with nothing ready take from that pool, and a thread
// that exits hands everything over the same way. Under AddressSanitizer the
// cache is off, so every stale access to a released fence is still reported.
// docs/internals.md has the whole picture.
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

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

enum BlockClass : unsigned { kSmall, kLarge, kClasses };
constexpr size_t kBlockSize[kClasses] = {sizeof(Fence), kFenceLargeBlock};

inline BlockClass class_of(const Fence* f) {
  return (f->flags.load(std::memory_order_relaxed) & (1UL << FENCE_FLAG_LARGE_BLOCK_BIT)) ? kLarge
                                                                                        : kSmall;
}

void free_blocks(rcu::DeferredFree* first) {
  while (first) {
    rcu::DeferredFree* next = first->next;
    std::free(container_of(first, &Fence::rcu));
    first = next;
  }
}

#if DMABUF_FENCE_CACHE
constexpr unsigned kMagazine = 256;     // blocks per magazine
constexpr unsigned kMaxWaiting = 256;   // per thread and class: 64k blocks in flight
constexpr unsigned kPoolMax = 64;       // ready magazines in the global pool, per class
constexpr unsigned kPrefetch = 16;      // blocks fetched ahead of the allocation

struct Magazine {
  rcu::DeferredFree rcu;  // handoff to the reclaimer
  Magazine* next;         // waiting FIFO or global pool
  uint64_t cookie;        // grace period to wait for (waiting FIFO only)
  BlockClass cls;
  unsigned n;
  void* items[kMagazine];
};

void free_magazine(Magazine* m) {
  for (unsigned i = 0; i < m->n; ++i) std::free(m->items[i]);
  delete m;
}

// Ready magazines (grace period passed) that left their thread.
struct Pool {
  SpinLock lock;
  std::atomic<Magazine*> head{nullptr};  // written under the lock, peeked without
  unsigned count = 0;
};
Pool g_pool[kClasses];

void pool_put(Magazine* m) {
  Pool& p = g_pool[m->cls];
  {
    SpinGuard g(&p.lock);
    if (p.count < kPoolMax) {
      m->next = p.head.load(std::memory_order_relaxed);
      p.head.store(m, std::memory_order_relaxed);
      ++p.count;
      return;
    }
  }
  free_magazine(m);
}

Magazine* pool_take(BlockClass c) {
  Pool& p = g_pool[c];
  if (!p.head.load(std::memory_order_relaxed)) return nullptr;  // skip the lock
  SpinGuard g(&p.lock);
  Magazine* m = p.head.load(std::memory_order_relaxed);
  if (m) {
    p.head.store(m->next, std::memory_order_relaxed);
    --p.count;
  }
  return m;
}

// Runs on the reclaimer thread, after the magazines' grace period.
void pool_put_deferred(rcu::DeferredFree* first) {
  rcu::after_grace_period();
  while (first) {
    rcu::DeferredFree* next = first->next;
    pool_put(container_of(first, &Magazine::rcu));
    first = next;
  }
}

void hand_over(Magazine* m) {
  if (rcu::poll_done(m->cookie))
    pool_put(m);
  else
    rcu::defer_free(&m->rcu, pool_put_deferred);
}

// One size class of the calling thread's cache.
struct ClassCache {
  Magazine* ready;    // allocations pop here
  Magazine* filling;  // frees push here
  Magazine* wait_head;  // full, oldest first, each waiting for its cookie
  Magazine* wait_tail;
  unsigned waiting;
  Magazine* spare;  // an empty magazine, so the steady state never mallocs one
};

// Trivially destructible, initial-exec TLS (small enough for glibc's static TLS
// surplus even in a dlopen'ed addon): no __tls_get_addr, no init guard. A
// pthread key hands everything over when the thread exits.
struct ThreadCache {
  ClassCache cls[kClasses];
  bool registered;
};
__attribute__((tls_model("initial-exec"))) thread_local ThreadCache t_cache = {};
pthread_key_t g_exit_key;
std::once_flag g_key_once;

void flush_thread(void* p) {
  auto* t = static_cast<ThreadCache*>(p);
  for (ClassCache& c : t->cls) {
    if (c.ready) {
      if (c.ready->n) pool_put(c.ready); else delete c.ready;
    }
    if (c.filling) {
      if (c.filling->n) {
        c.filling->cookie = rcu::start_poll();
        hand_over(c.filling);
      } else {
        delete c.filling;
      }
    }
    while (Magazine* m = c.wait_head) {
      c.wait_head = m->next;
      hand_over(m);
    }
    delete c.spare;
    c = ClassCache{};
  }
  t->registered = false;  // a later free on this thread registers again
  rcu::flush_deferred();
}

void register_thread(ThreadCache& t) {
  std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, flush_thread); });
  pthread_setspecific(g_exit_key, &t);
  t.registered = true;
}

Magazine* new_magazine(ClassCache& c, BlockClass cls) {
  Magazine* m = c.spare;
  if (m)
    c.spare = nullptr;
  else if (!(m = new (std::nothrow) Magazine))
    return nullptr;
  m->cls = cls;
  m->n = 0;
  return m;
}

__attribute__((noinline)) void* alloc_slow(BlockClass cls) {
  ThreadCache& t = t_cache;
  ClassCache& c = t.cls[cls];
  Magazine* fresh = nullptr;
  if (c.wait_head && rcu::poll_done(c.wait_head->cookie)) {
    fresh = c.wait_head;
    c.wait_head = fresh->next;
    if (!c.wait_head) c.wait_tail = nullptr;
    --c.waiting;
  } else {
    fresh = pool_take(cls);
  }
  if (!fresh) return std::malloc(kBlockSize[cls]);
  if (!t.registered) register_thread(t);
  if (Magazine* empty = c.ready) {
    if (c.spare) delete empty; else c.spare = empty;
  }
  c.ready = fresh;
  return fresh->items[--fresh->n];
}

inline void* cache_alloc(BlockClass cls) {
  Magazine* m = t_cache.cls[cls].ready;
  if (__builtin_expect(m && m->n, 1)) {
    void* p = m->items[--m->n];
    // Recycled blocks are cold (a grace period has passed): fetch a few ahead.
    if (m->n >= kPrefetch) __builtin_prefetch(m->items[m->n - kPrefetch], 1);
    return p;
  }
  return alloc_slow(cls);
}

__attribute__((noinline)) void free_slow(void* p, BlockClass cls) {
  ThreadCache& t = t_cache;
  ClassCache& c = t.cls[cls];
  if (!t.registered) register_thread(t);
  if (Magazine* full = c.filling) {
    full->cookie = rcu::start_poll();
    full->next = nullptr;
    if (c.wait_tail) c.wait_tail->next = full; else c.wait_head = full;
    c.wait_tail = full;
    c.filling = nullptr;
    if (++c.waiting > kMaxWaiting) {  // over the cap: the oldest leaves the thread
      Magazine* old = c.wait_head;
      c.wait_head = old->next;
      --c.waiting;
      hand_over(old);
      rcu::flush_deferred();
    }
  }
  c.filling = new_magazine(c, cls);
  if (!c.filling) {  // out of memory for a magazine: free this block the plain way
    rcu::defer_free(&static_cast<Fence*>(p)->rcu, free_blocks);
    return;
  }
  c.filling->items[c.filling->n++] = p;
}

inline void cache_free(void* p, BlockClass cls) {
  Magazine* m = t_cache.cls[cls].filling;
  if (__builtin_expect(m && m->n < kMagazine, 1)) {
    m->items[m->n++] = p;
    return;
  }
  free_slow(p, cls);
}
#endif  // DMABUF_FENCE_CACHE

Fence* alloc_zeroed(BlockClass cls) {
#if DMABUF_FENCE_CACHE
  void* p = cache_alloc(cls);
  if (p) memset(p, 0, kBlockSize[cls]);
  return static_cast<Fence*>(p);
#else
  return static_cast<Fence*>(std::calloc(1, kBlockSize[cls]));
#endif
}

}  // namespace

Fence* fence_alloc() { return alloc_zeroed(kSmall); }

Fence* fence_alloc_large() { return alloc_zeroed(kLarge); }

void fence_free_object(Fence* f) { rcu::defer_free(&f->rcu, free_blocks); }

void fence_free(Fence* f) {
#if DMABUF_FENCE_CACHE
  cache_free(f, class_of(f));
#else
  (void)class_of;
  rcu::defer_free(&f->rcu, free_blocks);
#endif
}

}  // namespace dmabuf
