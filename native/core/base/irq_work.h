// irq_work for userspace. The kernel's containers (fence array, fence chain) run
// a member's callback under that member's lock, with interrupts off, and must
// not signal themselves from there: that would take the container's lock inside
// the member's, the reverse of the order enable_signaling uses (container lock,
// then member lock), and would run the container's own callbacks with a foreign
// lock held. They queue an irq_work instead, which runs as soon as interrupts
// are enabled again, outside every fence lock.
//
// Here "interrupts off" is a per-thread depth counter: every fence lock is taken
// through local_irq_disable() + lock (IrqSpinGuard, fence_lock_irqsave) and
// released through unlock + local_irq_enable(). Work queued while the depth is
// non-zero runs on the same thread when the depth returns to zero, in FIFO order,
// iteratively (a work item that queues more work does not recurse). Work queued
// at depth zero -- by code that signals under a lock it took without this
// discipline -- cannot know which locks are held, so it goes to a small worker
// thread instead, like irq_work raised on another CPU.
#pragma once

#include <atomic>

#include "core/base/lock.h"

namespace dmabuf {

// struct irq_work: lives inside its owner; the owner keeps itself alive (e.g. by
// a reference) until func has run.
struct IrqWork {
  IrqWork* next;
  void (*func)(IrqWork* work);
  std::atomic<bool> pending;
};

/**
 * init_irq_work() - prepare @w to run @func
 */
inline void init_irq_work(IrqWork* w, void (*func)(IrqWork*)) {
  w->next = nullptr;
  w->func = func;
  w->pending.store(false, std::memory_order_relaxed);
}

/**
 * irq_work_queue() - run @w->func soon, outside every fence lock
 *
 * Returns false if @w was already pending (it will run once), true otherwise.
 * The pending bit is cleared just before func runs, so func may requeue it.
 */
bool irq_work_queue(IrqWork* w);

/**
 * local_irq_disable() - enter an "interrupts off" section (nests)
 */
void local_irq_disable();

/**
 * local_irq_enable() - leave it; at depth zero, run the work queued meanwhile
 *
 * Both are out of line, so the per-thread state stays private to irq_work.cc:
 * inlined into a test, GCC 12's ASan+UBSan build (-O1) reported that
 * thread_local's address as null.
 */
void local_irq_enable();

/**
 * irq_work_barrier() - wait until the worker thread has run every item that was
 * handed to it before the call (tests and teardown)
 */
void irq_work_barrier();

// spin_lock_irqsave/spin_unlock_irqrestore as one RAII holder.
class IrqSpinGuard {
 public:
  explicit IrqSpinGuard(SpinLock* l) : l_(l) {
    local_irq_disable();
    l_->lock();
  }
  ~IrqSpinGuard() {
    l_->unlock();
    local_irq_enable();
  }
  IrqSpinGuard(const IrqSpinGuard&) = delete;
  IrqSpinGuard& operator=(const IrqSpinGuard&) = delete;

 private:
  SpinLock* l_;
};

}  // namespace dmabuf
