// dma_fence_array: signalled through one callback per member; the last member's
// callback queues an irq_work that signals the array outside the member's lock.
#include "core/fence/array.h"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "core/base/warn.h"
#include "core/fence/chain.h"

namespace dmabuf {
namespace {

// base.error holds this while the array is pending, so that the first member
// error can be recorded with one compare-exchange and later ones are ignored.
constexpr int kPendingError = 1;

FenceArray* to_array(Fence* f) { return container_of(f, &FenceArray::base); }

void set_pending_error(FenceArray* array, int error) {
  // Only the first error wins, and only while the sentinel is still there.
  if (!error) return;
  int expected = kPendingError;
  __atomic_compare_exchange_n(&array->base.error, &expected, error, false, __ATOMIC_RELAXED,
                              __ATOMIC_RELAXED);
}

void clear_pending_error(FenceArray* array) {
  // No member error by signal time: the array succeeded.
  int expected = kPendingError;
  __atomic_compare_exchange_n(&array->base.error, &expected, 0, false, __ATOMIC_RELAXED,
                              __ATOMIC_RELAXED);
}

int member_error(Fence* f) { return __atomic_load_n(&f->error, __ATOMIC_RELAXED); }

const char* array_driver_name(Fence*) { return "dma_fence_array"; }
const char* array_timeline_name(Fence*) { return "unbound"; }

// Runs outside every fence lock (irq_work), holding the reference the last
// member callback owned.
void array_signal_work(IrqWork* work) {
  FenceArray* array = container_of(work, &FenceArray::work);
  clear_pending_error(array);
  fence_signal(&array->base);
  fence_put(&array->base);
}

// Runs under the member's lock: record, count down, and defer the signal.
void array_member_signaled(Fence* f, FenceCallback* cb) {
  FenceArrayCb* acb = container_of(cb, &FenceArrayCb::cb);
  FenceArray* array = acb->array;
  set_pending_error(array, member_error(f));
  if (array->num_pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
    irq_work_queue(&array->work);  // the work inherits this callback's reference
  else
    fence_put(&array->base);
}

bool array_enable_signaling(Fence* f) {
  FenceArray* array = to_array(f);
  for (unsigned i = 0; i < array->num_fences; ++i) {
    FenceArrayCb* acb = &array->callbacks[i];
    acb->array = array;
    // Each installed callback owns a reference on the array, so the array
    // outlives the callbacks and the irq_work that follows the last one.
    fence_get(&array->base);
    if (fence_add_callback(array->fences[i], &acb->cb, array_member_signaled) != 0) {
      set_pending_error(array, member_error(array->fences[i]));
      fence_put(&array->base);  // never the last: the caller holds one
      if (array->num_pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        clear_pending_error(array);
        return false;  // every member was already done: signal right away
      }
    }
  }
  return true;
}

bool array_signaled(Fence* f) {
  FenceArray* array = to_array(f);
  int num_pending = array->num_pending.load(std::memory_order_acquire);
  // Once callbacks are installed the counter is authoritative. Before that,
  // poll the members; the polling path does not collect member errors.
  if (fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT)) {
    if (num_pending > 0) return false;
  } else {
    bool done = false;
    for (unsigned i = 0; !done && i < array->num_fences; ++i)
      if (fence_is_signaled(array->fences[i]) && --num_pending == 0) done = true;
    if (!done) return false;
  }
  clear_pending_error(array);
  return true;
}

void array_release(Fence* f) {
  FenceArray* array = to_array(f);
  for (unsigned i = 0; i < array->num_fences; ++i) fence_put(array->fences[i]);
  std::free(array->fences);
  // Readers may still hold a bare pointer under RCU (resv iterators, ops
  // compares): free after a grace period, like dma_fence_free.
  static_assert(offsetof(FenceArray, base) == 0, "freed through its fence");
  fence_free_object(f);
}

void array_set_deadline(Fence* f, int64_t deadline_ns) {
  FenceArray* array = to_array(f);
  for (unsigned i = 0; i < array->num_fences; ++i) fence_set_deadline(array->fences[i], deadline_ns);
}

}  // namespace

const FenceOps fence_array_ops = {
    .get_driver_name = array_driver_name,
    .get_timeline_name = array_timeline_name,
    .enable_signaling = array_enable_signaling,
    .signaled = array_signaled,
    .release = array_release,
    .set_deadline = array_set_deadline,
};

FenceArray* fence_array_alloc(int num_fences) {
  if (num_fences < 0) return nullptr;
  const size_t bytes = sizeof(FenceArray) + sizeof(FenceArrayCb) * static_cast<size_t>(num_fences);
  void* mem = std::calloc(1, bytes);
  if (!mem) return nullptr;
  auto* array = static_cast<FenceArray*>(mem);
  array->callbacks = reinterpret_cast<FenceArrayCb*>(array + 1);
  return array;
}

void fence_array_init(FenceArray* array, int num_fences, Fence** fences, uint64_t context,
                      unsigned seqno, bool signal_on_any) {
  if (num_fences <= 0 || !fences) warn("fence_array_init: empty array");
  array->num_fences = num_fences > 0 ? static_cast<unsigned>(num_fences) : 0;
  // 32-bit seqno semantics (fence_init, not init64), inline lock.
  fence_init(&array->base, &fence_array_ops, nullptr, context, seqno);
  init_irq_work(&array->work, array_signal_work);
  // signal_on_any: the first member to signal brings the count to zero.
  array->num_pending.store(signal_on_any ? 1 : static_cast<int>(array->num_fences),
                           std::memory_order_relaxed);
  array->fences = fences;
  array->base.error = kPendingError;
  // Arrays must be flat: containers inside would break unwrap and dedup.
  for (unsigned i = 0; i < array->num_fences; ++i) {
    if (fence_is_container(fences[i]))
      warn("fence_array_init: member %u is a container (arrays must be flat)", i);
  }
}

FenceArray* fence_array_create(int num_fences, Fence** fences, uint64_t context,
                               unsigned seqno, bool signal_on_any) {
  if (num_fences < 0 || (num_fences > 0 && !fences)) {
    warn("fence_array_create: invalid fences (%d, %p)", num_fences, static_cast<void*>(fences));
    return nullptr;
  }
  FenceArray* array = fence_array_alloc(num_fences);
  if (!array) return nullptr;
  fence_array_init(array, num_fences, fences, context, seqno, signal_on_any);
  return array;
}

bool fence_match_context(Fence* f, uint64_t context) {
  FenceArray* array = to_fence_array(f);
  if (!array) return f->context == context;
  for (unsigned i = 0; i < array->num_fences; ++i)
    if (array->fences[i]->context != context) return false;
  return true;
}

Fence* fence_array_first(Fence* head) {
  if (!head) return nullptr;
  FenceArray* array = to_fence_array(head);
  if (!array) return head;
  return array->num_fences ? array->fences[0] : nullptr;
}

Fence* fence_array_next(Fence* head, unsigned index) {
  FenceArray* array = to_fence_array(head);
  if (!array || index >= array->num_fences) return nullptr;
  return array->fences[index];
}

int fence_get_error(Fence* f) {
  const int err = __atomic_load_n(&f->error, __ATOMIC_RELAXED);
  if (err == kPendingError && fence_is_array(f)) return 0;
  return err;
}

}  // namespace dmabuf
