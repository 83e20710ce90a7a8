// dma_fence_unwrap: leaf iteration, dedup and merge.
#include "core/fence/unwrap.h"

#include <algorithm>
#include <cstdlib>

#include "core/fence/array.h"
#include "core/fence/chain.h"

namespace dmabuf {
namespace {

// Enters the current node's contained fence. An empty array yields nothing, so
// move on to the next node instead of ending the walk with a reference held
// (the kernel stops there; empty arrays only come from misuse it WARNs about).
Fence* unwrap_array(FenceUnwrap* cursor) {
  for (;;) {
    cursor->array = fence_chain_contained(cursor->chain);
    cursor->index = 0;
    Fence* first = fence_array_first(cursor->array);
    if (first || !cursor->chain) return first;
    cursor->chain = fence_chain_walk(cursor->chain);
  }
}

}  // namespace

Fence* fence_unwrap_first(Fence* head, FenceUnwrap* cursor) {
  cursor->chain = fence_get(head);
  return unwrap_array(cursor);
}

Fence* fence_unwrap_next(FenceUnwrap* cursor) {
  Fence* next = fence_array_next(cursor->array, ++cursor->index);
  if (next) return next;
  cursor->chain = fence_chain_walk(cursor->chain);
  return unwrap_array(cursor);
}

void fence_unwrap_stop(FenceUnwrap* cursor) {
  fence_put(cursor->chain);
  cursor->chain = nullptr;
  cursor->array = nullptr;
}

int fence_dedup_array(Fence** fences, int num_fences) {
  if (num_fences <= 0) return 0;
  // Contexts order totally; seqnos (32-bit wrap-around) do not, so they are
  // only compared pairwise while picking the latest fence of each context.
  std::sort(fences, fences + num_fences,
            [](const Fence* a, const Fence* b) { return a->context < b->context; });
  int j = 0;
  for (int i = 1; i < num_fences; ++i) {
    if (fences[i]->context != fences[j]->context) {
      fences[++j] = fences[i];
      continue;
    }
    if (fence_is_later(fences[i], fences[j])) std::swap(fences[i], fences[j]);
    fence_put(fences[i]);
  }
  return j + 1;
}

Fence* fence_unwrap_merge_array(unsigned num_fences, Fence** fences, FenceUnwrap* cursors) {
  // One read section for both passes: the per-leaf fence_is_signaled sections
  // nest inside it and skip the bp flavor's memory barriers.
  rcu::ReadGuard rcu;
  int64_t timestamp = 0;
  unsigned count = 0;
  Fence* pending = nullptr;
  Fence* leaf;

  // Pass 1: count pending leaves (polling may signal some), remember the latest
  // signal time of the others, and keep the last pending one for the fast path.
  for (unsigned i = 0; i < num_fences; ++i) {
    fence_unwrap_for_each(leaf, &cursors[i], fences[i]) {
      if (!fence_is_signaled(leaf)) {
        fence_put(pending);
        pending = fence_get(leaf);
        ++count;
      } else {
        timestamp = std::max(timestamp, fence_timestamp(leaf));
      }
    }
  }
  if (count == 0) return fence_allocate_private_stub(timestamp);
  if (count == 1) return pending;  // the common case: no allocation at all
  fence_put(pending);

  auto** array = static_cast<Fence**>(std::malloc(sizeof(Fence*) * count));
  if (!array) return nullptr;

  // Pass 2: collect references. Leaves only ever become signalled, so this
  // finds at most `count` (possibly fewer).
  unsigned n = 0;
  for (unsigned i = 0; i < num_fences; ++i) {
    fence_unwrap_for_each(leaf, &cursors[i], fences[i]) {
      if (!fence_is_signaled(leaf)) {
        if (n < count) array[n++] = fence_get(leaf);
      } else {
        timestamp = std::max(timestamp, fence_timestamp(leaf));
      }
    }
  }

  Fence* result;
  if (n > 1) n = static_cast<unsigned>(fence_dedup_array(array, static_cast<int>(n)));
  if (n > 1) {
    FenceArray* merged = fence_array_create(static_cast<int>(n), array, fence_context_alloc(1), 1);
    if (merged) return &merged->base;  // the array now owns `array`
    for (unsigned i = 0; i < n; ++i) fence_put(array[i]);
    result = nullptr;
  } else if (n == 1) {
    result = array[0];
  } else {
    result = fence_allocate_private_stub(timestamp);
  }
  std::free(array);
  return result;
}

}  // namespace dmabuf
