// dma_fence_unwrap: iterate the leaf fences of chains of arrays, and merge any
// number of fences into the smallest equivalent fence.
#pragma once

#include <cstdint>

#include "core/fence/fence.h"

namespace dmabuf {

// struct dma_fence_unwrap: the cursor holds a reference on the current chain node.
struct FenceUnwrap {
  Fence* chain;   // referenced: current chain node (or the plain head)
  Fence* array;   // borrowed: the node's contained fence, maybe an array
  unsigned index; // position inside array
};

/**
 * fence_unwrap_first() - start iterating the leaves of @head
 *
 * Returns the first leaf (borrowed, no reference) or nullptr. Iterating to the
 * end leaves no reference behind; stopping early needs fence_unwrap_stop().
 */
Fence* fence_unwrap_first(Fence* head, FenceUnwrap* cursor);

/**
 * fence_unwrap_next() - the next leaf, or nullptr at the end
 *
 * Walking to an earlier chain node collects signalled links, as
 * fence_chain_walk() does, so signalled points behind the head are skipped.
 */
Fence* fence_unwrap_next(FenceUnwrap* cursor);

/**
 * fence_unwrap_stop() - drop the cursor's reference after leaving a loop early
 *
 * Not in the kernel (its users always run to the end); harmless after the end.
 */
void fence_unwrap_stop(FenceUnwrap* cursor);

#define fence_unwrap_for_each(fence, cursor, head)                          \
  for ((fence) = ::dmabuf::fence_unwrap_first(head, cursor); (fence);      \
       (fence) = ::dmabuf::fence_unwrap_next(cursor))

/**
 * fence_dedup_array() - keep only the latest fence per context
 * @fences: referenced fences; dropped ones are put, the rest compacted in place
 *
 * Result order is ascending context. Returns the new count (0 for @num 0).
 */
int fence_dedup_array(Fence** fences, int num_fences);

/**
 * fence_unwrap_merge_array() - merge the leaves of @num fences into one
 * @cursors: scratch space, one cursor per input
 *
 * Does not consume the inputs' references. Signalled leaves are dropped (their
 * latest timestamp is kept), duplicates per context reduced to the latest.
 * Returns a new reference: a private signalled stub carrying that timestamp
 * when nothing is pending, the single pending leaf, or a new fence array (new
 * context, seqno 1) in ascending context order. nullptr on OOM.
 */
Fence* fence_unwrap_merge_array(unsigned num_fences, Fence** fences, FenceUnwrap* cursors);

/**
 * fence_unwrap_merge() - dma_fence_unwrap_merge(f1, f2, ...)
 */
template <typename... Fences>
Fence* fence_unwrap_merge(Fences*... fences) {
  Fence* list[] = {fences...};
  FenceUnwrap cursors[sizeof...(fences)];
  return fence_unwrap_merge_array(sizeof...(fences), list, cursors);
}

}  // namespace dmabuf
