// Fences the library's user creates directly (from JavaScript: `new Fence()`),
// and the FenceLock object: an external (legacy) spinlock that several such
// fences share, as drivers did before Linux 7.1's inline locks.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/fence/fence.h"

namespace dmabuf {

/**
 * struct FenceLock - a spinlock shared by fences, reference counted
 *
 * Every fence on the lock holds a reference, dropped after the fence's RCU
 * grace period (the lock must outlive any reader that may still take it).
 */
struct FenceLock {
  SpinLock lock;
  std::atomic<uint32_t> refs{1};
};

/**
 * fence_lock_create() - a new FenceLock with one reference
 *
 * Returns nullptr on OOM.
 */
FenceLock* fence_lock_create();

/**
 * fence_lock_put() - drop a reference; the last one frees the lock
 */
void fence_lock_put(FenceLock* l);

/**
 * user_fence_create() - a new pending fence named "dmabuf" / "js"
 * @lock: a FenceLock to share (a reference is taken), or nullptr for the
 *        fence's own inline lock
 * @seqno64: compare seqnos as 64-bit values (dma_fence_init64)
 *
 * Inline-lock fences have names only, so their ops detach at signal time as
 * in 7.1. External-lock fences need `release` (to drop the lock reference),
 * which, exactly as in the kernel, keeps their ops attached after signalling.
 *
 * Context: any. Returns a fence with one reference, or nullptr on OOM.
 */
Fence* user_fence_create(FenceLock* lock, uint64_t context, uint64_t seqno, bool seqno64);

/**
 * user_fence_recycle() - make @f a new default fence again, in place
 * @f: a fence from user_fence_create(nullptr, ...) whose pointer never left
 *     its owner: the owner holds its only reference and no other code (no RCU
 *     reader, no callback, no container) ever saw it
 *
 * The kernel frees a fence through RCU because readers may still hold its
 * pointer; a fence nobody else ever saw has no such reader, so its memory is
 * reused at once, without the refcount drop or the grace period. The result is
 * what user_fence_create(nullptr, 0, 0, false) returns.
 *
 * Context: the owner's thread. Returns false (and does nothing) if @f is not
 * such a fence as far as can be checked (another reference, another issuer).
 */
bool user_fence_recycle(Fence* f);

}  // namespace dmabuf
