// dma_fence_chain: one callback per node, moved down the chain by irq_work until
// nothing earlier is pending; walking collects signalled links.
#include "core/fence/chain.h"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>

#include "core/base/warn.h"

namespace dmabuf {
namespace {

FenceChain* to_chain(Fence* f) { return container_of(f, &FenceChain::base); }

const char* chain_driver_name(Fence*) { return "dma_fence_chain"; }
const char* chain_timeline_name(Fence*) { return "unbound"; }

// A new reference to the current prev, or nullptr; prev may change under us.
Fence* chain_get_prev(FenceChain* chain) { return fence_get_rcu_safe(&chain->prev); }

bool chain_enable_signaling(Fence* f);

// Runs outside every fence lock with the reference chain_cb's installer took.
void chain_irq_work(IrqWork* work) {
  FenceChain* chain = container_of(work, &FenceChain::work);
  // One read section for the whole walk: the prev lookups inside then nest,
  // which in the bp flavor skips their memory barriers.
  rcu::ReadGuard rcu;
  // Re-arm on the next pending fence, or signal if there is none.
  if (!chain_enable_signaling(&chain->base)) fence_signal(&chain->base);
  fence_put(&chain->base);
}

// Runs under the contained fence's lock: defer the rest.
void chain_cb(Fence* f, FenceCallback* cb) {
  FenceChain* chain = container_of(cb, &FenceChain::cb);
  irq_work_queue(&chain->work);
  fence_put(f);  // the reference taken when the callback was installed
}

bool chain_enable_signaling(Fence* f) {
  FenceChain* head = to_chain(f);
  // Held while a callback is installed; chain_irq_work drops it.
  fence_get(&head->base);
  Fence* iter;
  fence_chain_for_each(iter, &head->base) {
    Fence* contained = fence_chain_contained(iter);
    fence_get(contained);
    if (fence_add_callback(contained, &head->cb, chain_cb) == 0) {
      fence_put(iter);
      return true;  // the callback keeps both references
    }
    fence_put(contained);
  }
  fence_put(&head->base);
  return false;
}

bool chain_signaled(Fence* f) {
  Fence* iter;
  fence_chain_for_each(iter, f) {
    if (!fence_is_signaled(fence_chain_contained(iter))) {
      fence_put(iter);
      return false;
    }
  }
  return true;
}

void chain_release(Fence* f) {
  FenceChain* chain = to_chain(f);
  // Unlink predecessors we hold the last reference to, one at a time, so that
  // dropping a million-link chain is a loop and not a million nested puts. A
  // node whose refcount is 1 is referenced only by our prev link, so nobody else
  // can be walking from it and plain stores to its prev are safe.
  Fence* prev;
  while ((prev = chain->prev.load(std::memory_order_relaxed))) {
    if (prev->refcount.load(std::memory_order_acquire) > 1) break;
    FenceChain* prev_chain = to_fence_chain(prev);
    if (!prev_chain) break;
    chain->prev.store(prev_chain->prev.load(std::memory_order_relaxed),
                      std::memory_order_relaxed);
    prev_chain->prev.store(nullptr, std::memory_order_relaxed);
    fence_put(prev);  // releases a node with no prev: no recursion
  }
  fence_put(prev);
  fence_put(chain->fence);
  static_assert(offsetof(FenceChain, base) == 0, "freed through its fence");
  fence_free_object(f);
}

void chain_set_deadline(Fence* f, int64_t deadline_ns) {
  Fence* iter;
  fence_chain_for_each(iter, f) fence_set_deadline(fence_chain_contained(iter), deadline_ns);
}

}  // namespace

const FenceOps fence_chain_ops = {
    .get_driver_name = chain_driver_name,
    .get_timeline_name = chain_timeline_name,
    .enable_signaling = chain_enable_signaling,
    .signaled = chain_signaled,
    .release = chain_release,
    .set_deadline = chain_set_deadline,
};

FenceChain* fence_chain_alloc() { return static_cast<FenceChain*>(std::calloc(1, sizeof(FenceChain))); }

void fence_chain_free(FenceChain* chain) { std::free(chain); }

void fence_chain_init(FenceChain* chain, Fence* prev, Fence* fence, uint64_t seqno) {
  FenceChain* prev_chain = to_fence_chain(prev);
  uint64_t context;
  chain->prev.store(prev, std::memory_order_relaxed);  // not yet published
  chain->fence = fence;
  chain->prev_seqno = 0;
  // Only a later point continues the timeline; chains compare seqnos in 64 bits.
  if (prev_chain && fence_is_later_seqno(prev, seqno, prev->seqno)) {
    context = prev->context;
    chain->prev_seqno = prev->seqno;
  } else {
    context = fence_context_alloc(1);
    if (prev_chain) seqno = std::max(prev->seqno, seqno);
  }
  fence_init64(&chain->base, &fence_chain_ops, nullptr, context, seqno);
  init_irq_work(&chain->work, chain_irq_work);
  list_init(&chain->cb.node);
  // Chains link only through prev; a chain as the contained fence breaks walks.
  if (fence && fence_is_chain(fence)) warn("fence_chain_init: contained fence is a chain");
}

Fence* fence_chain_walk(Fence* fence) {
  FenceChain* chain = to_fence_chain(fence);
  if (!chain) {
    fence_put(fence);
    return nullptr;
  }
  rcu::ReadGuard rcu;  // see chain_irq_work
  Fence* prev;
  while ((prev = chain_get_prev(chain))) {
    FenceChain* prev_chain = to_fence_chain(prev);
    Fence* replacement;
    if (prev_chain) {
      if (!fence_is_signaled(prev_chain->fence)) break;
      replacement = chain_get_prev(prev_chain);
    } else {
      if (!fence_is_signaled(prev)) break;
      replacement = nullptr;
    }
    // Unlink the signalled predecessor unless someone changed prev meanwhile.
    Fence* expected = prev;
    if (chain->prev.compare_exchange_strong(expected, replacement, std::memory_order_acq_rel,
                                            std::memory_order_acquire))
      fence_put(prev);  // the link's reference; the link now owns replacement's
    else
      fence_put(replacement);
    fence_put(prev);  // ours
  }
  fence_put(fence);
  return prev;
}

int fence_chain_find_seqno(Fence** pfence, uint64_t seqno) {
  if (!seqno) return 0;
  FenceChain* chain = to_fence_chain(*pfence);
  if (!chain || chain->base.seqno < seqno) return -EINVAL;
  fence_chain_for_each(*pfence, &chain->base) {
    FenceChain* node = to_fence_chain(*pfence);
    if ((*pfence)->context != chain->base.context || !node || node->prev_seqno < seqno) break;
  }
  fence_put(&chain->base);
  return 0;
}

}  // namespace dmabuf
