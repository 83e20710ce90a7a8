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

}  // namespace dmabuf
