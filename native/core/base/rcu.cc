#include "core/base/rcu.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/base/futex.h"

namespace dmabuf::rcu {

#ifdef DMABUF_TSAN
char g_tsan_gp;
#endif

namespace {

constexpr unsigned kBatchSize = kDeferBatch;
constexpr long kReclaimPeriodNs = 1000000;  // one grace period per ms at most

struct Batch {
  Batch* next_submitted = nullptr;
  FreeListFn free_list = nullptr;    // one of these two
  FreeArrayFn free_array = nullptr;
  unsigned count = 0;
  DeferredFree* items[kBatchSize];

  void run() {
    if (free_array) {
      free_array(items, count);
      return;
    }
    // Link the nodes here, on the reclaimer thread, not on the freeing one.
    for (unsigned i = 0; i < count; ++i) items[i]->next = i + 1 < count ? items[i + 1] : nullptr;
    free_list(items[0]);
  }
};

// Submitted batches: a lock-free stack the reclaimer empties in one exchange.
std::atomic<Batch*> g_submitted{nullptr};
std::atomic<size_t> g_pending{0};
// Generations for barrier(): batches submitted / rounds fully reclaimed.
std::atomic<uint64_t> g_submit_gen{0};
std::atomic<uint32_t> g_done_gen{0};  // low 32 bits of the last reclaimed generation
std::atomic<uint32_t> g_wake{0};      // futex word the reclaimer sleeps on
std::atomic<bool> g_reclaimer_sleeping{false};
// Polled grace periods: rounds begun / completed, and the latest cookie asked for.
std::atomic<uint64_t> g_gp_begun{0};
std::atomic<uint64_t> g_gp_done{0};
std::atomic<uint64_t> g_gp_wanted{0};
std::once_flag g_init_once;
std::atomic<bool> g_call_used{false};
std::once_flag g_thread_once;

// Work for the reclaimer: submitted batches, or a polled grace period asked for.
bool reclaimer_has_work() {
  return g_submitted.load(std::memory_order_seq_cst) != nullptr ||
         g_gp_wanted.load(std::memory_order_seq_cst) > g_gp_done.load(std::memory_order_relaxed);
}

void wake_reclaimer() {
  g_wake.fetch_add(1, std::memory_order_release);
  futex_wake_all(&g_wake);
}

void* reclaimer_main(void*) {
  for (;;) {
    if (!reclaimer_has_work()) {
      // Idle: sleep until a submitter, a poller (or barrier()) wakes us.
      const uint32_t w = g_wake.load(std::memory_order_acquire);
      g_reclaimer_sleeping.store(true, std::memory_order_seq_cst);
      if (!reclaimer_has_work()) futex_wait(&g_wake, w, -1);
      g_reclaimer_sleeping.store(false, std::memory_order_relaxed);
    }
    // Let a millisecond of frees accumulate so one grace period (and one
    // membarrier IPI round) covers them all, instead of one per batch.
    timespec ts{0, kReclaimPeriodNs};
    nanosleep(&ts, nullptr);

    const uint64_t gen = g_submit_gen.load(std::memory_order_acquire);
    Batch* batches = g_submitted.exchange(nullptr, std::memory_order_acq_rel);
    const bool polled =
        g_gp_wanted.load(std::memory_order_seq_cst) > g_gp_done.load(std::memory_order_relaxed);
    if (batches || polled) {
      // Cookies handed out before this increment are covered by this round.
      const uint64_t round = g_gp_begun.fetch_add(1, std::memory_order_seq_cst) + 1;
      urcu_bp_synchronize_rcu();
#ifdef DMABUF_TSAN
      __tsan_acquire(&g_tsan_gp);
#endif
      g_gp_done.store(round, std::memory_order_release);
      while (batches) {
        Batch* b = batches;
        batches = b->next_submitted;
        g_pending.fetch_sub(b->count, std::memory_order_relaxed);
        b->run();
        delete b;
      }
    }
    g_done_gen.store(static_cast<uint32_t>(gen), std::memory_order_release);
    futex_wake_all(&g_done_gen);
  }
  return nullptr;
}

void start_reclaimer() {
  std::call_once(g_thread_once, [] {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, reclaimer_main, nullptr) != 0) abort();
    pthread_attr_destroy(&attr);
    pthread_setname_np(t, "dmabuf-rcu");
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  });
}

void submit(Batch* b) {
  start_reclaimer();
  g_pending.fetch_add(b->count, std::memory_order_relaxed);
  Batch* head = g_submitted.load(std::memory_order_relaxed);
  do {
    b->next_submitted = head;
  } while (!g_submitted.compare_exchange_weak(head, b, std::memory_order_seq_cst,
                                              std::memory_order_relaxed));
  g_submit_gen.fetch_add(1, std::memory_order_release);
  if (g_reclaimer_sleeping.load(std::memory_order_seq_cst)) wake_reclaimer();
}

// The calling thread's open batch: a trivially destructible thread_local (no
// TLS init guard on the hot path) plus a pthread key whose destructor hands a
// partial batch over at thread exit, so a thread that frees a few fences and
// ends leaks nothing.
__attribute__((tls_model("initial-exec"))) thread_local Batch* t_open = nullptr;
pthread_key_t g_exit_key;
std::once_flag g_key_once;

void on_thread_exit(void* b) {
  // Other keys' destructors may still defer frees after this one (the fence
  // cache's does): they must start a new batch, not add to a submitted one.
  t_open = nullptr;
  if (b) submit(static_cast<Batch*>(b));
}

Batch* new_batch() {
  std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, on_thread_exit); });
  Batch* b = new Batch;
  pthread_setspecific(g_exit_key, b);
  return b;
}

void take_open(Batch* b) {
  t_open = nullptr;
  pthread_setspecific(g_exit_key, nullptr);
  submit(b);
}

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

void synchronize() {
  urcu_bp_synchronize_rcu();
#ifdef DMABUF_TSAN
  __tsan_acquire(&g_tsan_gp);
#endif
}

void barrier() {
  flush_deferred();
  const uint64_t target = g_submit_gen.load(std::memory_order_acquire);
  if (target != 0) {
    start_reclaimer();
    for (;;) {
      const uint32_t done = g_done_gen.load(std::memory_order_acquire);
      if (static_cast<int32_t>(done - static_cast<uint32_t>(target)) >= 0) break;
      // Nudge the reclaimer (it may have gone idle with a stale generation).
      wake_reclaimer();
      futex_wait(&g_done_gen, done, 1000000);
    }
  }
  // Polled grace periods asked for before the call have ended too.
  const uint64_t wanted = g_gp_wanted.load(std::memory_order_seq_cst);
  while (g_gp_done.load(std::memory_order_acquire) < wanted) {
    const uint32_t done = g_done_gen.load(std::memory_order_acquire);
    if (g_gp_done.load(std::memory_order_acquire) >= wanted) break;
    wake_reclaimer();
    futex_wait(&g_done_gen, done, 1000000);
  }
  // liburcu's own barrier only matters if call_rcu was ever used (it also
  // trips TSan inside the uninstrumented library, so skip it when it cannot
  // matter).
  if (g_call_used.load(std::memory_order_acquire)) {
    init();
    urcu_bp_barrier();
  }
}

// Adds `node` to the calling thread's open batch for this function.
template <typename Fn>
void defer_into(DeferredFree* node, Fn Batch::*slot, Fn fn) {
  Batch* b = t_open;
  if (b && b->*slot != fn) {  // one function per batch
    take_open(b);
    b = nullptr;
  }
  if (!b) {
    b = t_open = new_batch();
    b->*slot = fn;
  }
  b->items[b->count] = node;
  if (++b->count == kBatchSize) take_open(b);
}

void defer_free(DeferredFree* node, FreeListFn free_list) {
  defer_into(node, &Batch::free_list, free_list);
}

void defer_free(DeferredFree* node, FreeArrayFn free_array) {
  defer_into(node, &Batch::free_array, free_array);
}

void flush_deferred() {
  if (Batch* b = t_open) take_open(b);
}

size_t deferred_pending() { return g_pending.load(std::memory_order_relaxed); }

uint64_t start_poll() {
  // Order the caller's unpublishing before reading which round is current: the
  // round after the one read begins later, so its grace period covers them.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint64_t cookie = g_gp_begun.load(std::memory_order_seq_cst) + 1;
  uint64_t wanted = g_gp_wanted.load(std::memory_order_relaxed);
  while (wanted < cookie &&
         !g_gp_wanted.compare_exchange_weak(wanted, cookie, std::memory_order_seq_cst,
                                            std::memory_order_relaxed)) {
  }
  start_reclaimer();
  if (g_reclaimer_sleeping.load(std::memory_order_seq_cst)) wake_reclaimer();
  return cookie;
}

bool poll_done(uint64_t cookie) {
  if (g_gp_done.load(std::memory_order_acquire) < cookie) return false;
  after_grace_period();
  return true;
}

void call(rcu_head* head, void (*fn)(rcu_head*)) {
  init();
  g_call_used.store(true, std::memory_order_release);
  urcu_bp_call_rcu(head, fn);
}

}  // namespace dmabuf::rcu
