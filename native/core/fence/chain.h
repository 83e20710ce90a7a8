// dma_fence_chain: one point on a timeline (drm_syncobj's model). A node holds
// the fence for its point and a link to the previous node; it signals once its
// own fence and every earlier node's fence have. 64-bit seqnos, inline lock,
// ops never detached (they have `release`).
#pragma once

#include <atomic>
#include <cstdint>

#include "core/base/irq_work.h"
#include "core/fence/array.h"
#include "core/fence/fence.h"

namespace dmabuf {

struct FenceChain {
  Fence base;
  std::atomic<Fence*> prev;  // RCU-protected: previous node or any fence; owns a reference
  uint64_t prev_seqno;       // seqno of prev when it is on the same timeline, else 0
  Fence* fence;              // the contained fence; owns a reference
  FenceCallback cb;          // on the first unsignalled contained fence
  IrqWork work;              // re-arms or signals outside that fence's lock
};

extern const FenceOps fence_chain_ops;

/**
 * fence_is_chain() - whether @f is a chain node (ops pointer compare only)
 */
inline bool fence_is_chain(const Fence* f) {
  return __atomic_load_n(&f->ops, __ATOMIC_RELAXED) == &fence_chain_ops;
}

/**
 * fence_is_container() - array or chain
 */
inline bool fence_is_container(const Fence* f) { return fence_is_array(f) || fence_is_chain(f); }

/**
 * to_fence_chain() - the node behind @f, or nullptr if @f is null or not a chain
 */
inline FenceChain* to_fence_chain(Fence* f) {
  return f && fence_is_chain(f) ? container_of(f, &FenceChain::base) : nullptr;
}

/**
 * fence_chain_contained() - the fence held by node @f, or @f itself if not a chain
 */
inline Fence* fence_chain_contained(Fence* f) {
  FenceChain* chain = to_fence_chain(f);
  return chain ? chain->fence : f;
}

/**
 * fence_chain_alloc() - zeroed node memory, nullptr on OOM
 */
FenceChain* fence_chain_alloc();

/**
 * fence_chain_free() - free a node that was never initialised (afterwards: fence_put)
 */
void fence_chain_free(FenceChain* chain);

/**
 * fence_chain_init() - initialise @chain as the point @seqno after @prev
 * @prev: previous node or any fence, may be null; the reference is consumed
 * @fence: the point's fence (must not be a chain); the reference is consumed
 *
 * A seqno later than a chain @prev's continues @prev's context; anything else
 * starts a new context, with the seqno raised to @prev's if it was lower.
 */
void fence_chain_init(FenceChain* chain, Fence* prev, Fence* fence, uint64_t seqno);

/**
 * fence_chain_walk() - step to the previous unsignalled point
 * @fence: current node; its reference is consumed
 *
 * Signalled predecessors are unlinked on the way (garbage collection by
 * compare-exchange of the node's prev). Returns the next node (or plain fence)
 * with a new reference, or nullptr at the end or if @fence is not a chain.
 */
Fence* fence_chain_walk(Fence* fence);

/**
 * fence_chain_find_seqno() - find the node to wait on for point @seqno
 * @pfence: in: a referenced chain node; out: the node (referenced) or nullptr
 *          when everything up to @seqno has signalled
 *
 * The caller's reference on the original node is handed over: on success
 * *@pfence carries the only reference the caller now holds (the original is
 * dropped), as in the kernel. Returns 0, or -EINVAL (and leaves *@pfence alone)
 * if *@pfence is not a chain or @seqno lies in its future. @seqno 0 is a no-op.
 */
int fence_chain_find_seqno(Fence** pfence, uint64_t seqno);

// Visits @head and every unsignalled predecessor; holds a reference on the
// current node, so leaving the loop early requires fence_put(iter).
#define fence_chain_for_each(iter, head) \
  for ((iter) = ::dmabuf::fence_get(head); (iter); (iter) = ::dmabuf::fence_chain_walk(iter))

}  // namespace dmabuf
