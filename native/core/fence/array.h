// dma_fence_array (Linux 7.1): one fence that signals once every member has
// (or, with signal_on_any, once any member has). Arrays are flat (no
// containers inside), use the inline lock and 32-bit seqno semantics, and
// never detach their ops (they have `release`).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/base/irq_work.h"
#include "core/fence/fence.h"

namespace dmabuf {

struct FenceArray;

// One per member: the callback on the member plus the way back to the array.
struct FenceArrayCb {
  FenceCallback cb;
  FenceArray* array;
};

struct FenceArray {
  Fence base;
  unsigned num_fences;
  std::atomic<int> num_pending;  // members not yet signalled (after enable_signaling)
  Fence** fences;                // owned: one reference per element, malloc'd array
  IrqWork work;                  // signals the array outside the member's lock
  FenceArrayCb* callbacks;       // trailing storage, num_fences entries
};

extern const FenceOps fence_array_ops;

/**
 * fence_is_array() - whether @f is a fence array (ops pointer compare only)
 */
inline bool fence_is_array(const Fence* f) {
  return __atomic_load_n(&f->ops, __ATOMIC_RELAXED) == &fence_array_ops;
}

/**
 * to_fence_array() - the array behind @f, or nullptr if @f is null or not an array
 */
inline FenceArray* to_fence_array(Fence* f) {
  return f && fence_is_array(f) ? container_of(f, &FenceArray::base) : nullptr;
}

/**
 * fence_array_alloc() - zeroed array with room for @num_fences callbacks
 *
 * Returns nullptr on OOM or a negative count. Free an uninitialised array with
 * std::free; once initialised, only fence_put.
 */
FenceArray* fence_array_alloc(int num_fences);

/**
 * fence_array_init() - initialise @array over @fences
 * @fences: malloc'd array of @num_fences referenced fences; ownership of the
 *          array and of every reference passes to @array
 * @seqno: 32 bits, as the kernel's `unsigned seqno`
 * @signal_on_any: signal once any member has signalled, not all of them
 *
 * Warns for an empty array and for members that are containers.
 */
void fence_array_init(FenceArray* array, int num_fences, Fence** fences, uint64_t context,
                      unsigned seqno, bool signal_on_any = false);

/**
 * fence_array_create() - allocate and initialise an array
 *
 * Returns nullptr on OOM (or a null @fences with a positive count, or a
 * negative count), in which case @fences and its references stay the caller's.
 */
FenceArray* fence_array_create(int num_fences, Fence** fences, uint64_t context,
                               unsigned seqno, bool signal_on_any = false);

/**
 * fence_match_context() - whether @f (or, for an array, every member) is on @context
 */
bool fence_match_context(Fence* f, uint64_t context);

/**
 * fence_array_first() - first member of @head; @head itself if it is not an
 * array; nullptr for a null @head or an empty array
 */
Fence* fence_array_first(Fence* head);

/**
 * fence_array_next() - member @index of @head, nullptr past the end or if @head
 * is not an array
 */
Fence* fence_array_next(Fence* head, unsigned index);

// Iterates the members of an array (or a plain fence once). No references taken.
#define fence_array_for_each(fence, index, head)                          \
  for ((index) = 0, (fence) = ::dmabuf::fence_array_first(head); (fence); \
       (fence) = ::dmabuf::fence_array_next(head, ++(index)))

/**
 * fence_get_error() - @f's error as callers may see it: 0 or a negative errno
 *
 * A pending array keeps the internal sentinel 1 in base.error (first member
 * error wins while pending); this accessor never shows it. Use it instead of
 * reading Fence::error for any fence that may be an array.
 */
int fence_get_error(Fence* f);

}  // namespace dmabuf
