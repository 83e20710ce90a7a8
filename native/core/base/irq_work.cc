#include "core/base/irq_work.h"

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace dmabuf {

namespace {

// Per-thread state behind local_irq_disable/enable.
struct IrqThreadState {
  unsigned depth;
  bool draining;
  IrqWork* head;
  IrqWork* tail;
};
thread_local IrqThreadState irq_thread_state;  // zero-initialised, no TLS init hook

void run_local(IrqThreadState& s);

void local_append(IrqThreadState& s, IrqWork* w) {
  w->next = nullptr;
  if (s.tail)
    s.tail->next = w;
  else
    s.head = w;
  s.tail = w;
}

// The fallback for work queued at depth zero. Never destroyed: a detached thread
// may still be waiting on it while static destructors run at exit.
struct Worker {
  std::mutex mu;
  std::condition_variable cv;     // work arrived
  std::condition_variable idle;   // a batch finished
  IrqWork* head = nullptr;
  IrqWork* tail = nullptr;
  uint64_t queued = 0;
  uint64_t done = 0;

  void loop() {
    IrqThreadState& s = irq_thread_state;
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [this] { return head != nullptr; });
      IrqWork* batch = head;
      head = tail = nullptr;
      uint64_t n = 0;
      lk.unlock();
      // Run the batch through the local queue so work it queues runs here too.
      for (IrqWork* w = batch; w;) {
        IrqWork* next = w->next;
        local_append(s, w);
        w = next;
        ++n;
      }
      run_local(s);
      lk.lock();
      done += n;
      idle.notify_all();
    }
  }
};

Worker* worker() {
  static Worker* w = [] {
    auto* wk = new Worker;
    // Block every signal while the thread is created so it inherits the mask and
    // never takes a signal the host process (Node) relies on.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    std::thread([wk] { wk->loop(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return wk;
  }();
  return w;
}

}  // namespace

bool irq_work_queue(IrqWork* w) {
  if (w->pending.exchange(true, std::memory_order_acq_rel)) return false;
  IrqThreadState& s = irq_thread_state;
  if (s.depth > 0 || s.draining) {
    local_append(s, w);
    return true;
  }
  Worker* wk = worker();
  {
    std::lock_guard<std::mutex> g(wk->mu);
    w->next = nullptr;
    if (wk->tail)
      wk->tail->next = w;
    else
      wk->head = w;
    wk->tail = w;
    ++wk->queued;
  }
  wk->cv.notify_one();
  return true;
}

namespace {
// Runs the thread's queue; work queued meanwhile is appended and runs too.
void run_local(IrqThreadState& s) {
  s.draining = true;
  while (IrqWork* w = s.head) {
    s.head = w->next;
    if (!s.head) s.tail = nullptr;
    w->pending.store(false, std::memory_order_release);
    w->func(w);
  }
  s.draining = false;
}
}  // namespace

void local_irq_disable() { ++irq_thread_state.depth; }

void local_irq_enable() {
  IrqThreadState& s = irq_thread_state;
  if (--s.depth == 0 && s.head && !s.draining) run_local(s);
}

void irq_work_barrier() {
  Worker* wk = worker();
  std::unique_lock<std::mutex> lk(wk->mu);
  const uint64_t target = wk->queued;
  wk->idle.wait(lk, [&] { return wk->done >= target; });
}

}  // namespace dmabuf
