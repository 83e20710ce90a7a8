#include "rcu.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace dmabuf::rcu {
namespace {

constexpr unsigned kBatchSize = 64;

struct Batch {
  rcu_head head;
  DeferredFree* list = nullptr;
  unsigned count = 0;
};

std::atomic<size_t> g_pending{0};
std::once_flag g_init_once;

void run_batch(rcu_head* head) {
  Batch* b = caa_container_of(head, Batch, head);
  size_t n = 0;
  for (DeferredFree* node = b->list; node;) {
    DeferredFree* next = node->next;
    node->free(node);
    node = next;
    ++n;
  }
  g_pending.fetch_sub(n, std::memory_order_relaxed);
  delete b;
}

void submit(Batch* b) {
  init();
  g_pending.fetch_add(b->count, std::memory_order_relaxed);
  urcu_bp_call_rcu(&b->head, run_batch);
}

// The calling thread's open batch. Its destructor hands a partial batch over at
// thread exit, so a thread that frees a few fences and ends leaks nothing.
struct ThreadBatch {
  Batch* open = nullptr;
  ~ThreadBatch() {
    if (open) submit(open);
    open = nullptr;
  }
};
thread_local ThreadBatch t_batch;

}  // namespace

void init() {
  std::call_once(g_init_once, [] {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    urcu_bp_get_default_call_rcu_data();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  });
}

void synchronize() { urcu_bp_synchronize_rcu(); }

void barrier() {
  flush_deferred();
  urcu_bp_barrier();
}

void defer_free(DeferredFree* node, void (*free_fn)(DeferredFree*)) {
  ThreadBatch& tb = t_batch;
  Batch* b = tb.open;
  if (!b) b = tb.open = new Batch;
  node->free = free_fn;
  node->next = b->list;
  b->list = node;
  if (++b->count == kBatchSize) {
    tb.open = nullptr;
    submit(b);
  }
}

void flush_deferred() {
  ThreadBatch& tb = t_batch;
  if (tb.open) {
    Batch* b = tb.open;
    tb.open = nullptr;
    submit(b);
  }
}

size_t deferred_pending() { return g_pending.load(std::memory_order_relaxed); }

void call(rcu_head* head, void (*fn)(rcu_head*)) {
  init();
  urcu_bp_call_rcu(head, fn);
}

}  // namespace dmabuf::rcu
