// The reverse bridge: a core fence as a real sync_file, through sw_sync. Each
// export opens its own sw_sync timeline (so fences may signal in any order),
// creates point 1 on it, and advances the timeline when the core fence signals.
// Needs sw_sync (debugfs); without it: ENOENT with the reason.
#pragma once

#include "core/fence/fence.h"
#include "kernel/fd.h"
#include "kernel/kerror.h"
#include "kernel/sw_sync.h"

namespace dmabuf::kernel {

// A sync_file fd that signals when `f` does. A kernel fence (kernel_fence.h)
// just gives a dup of its own fd. Otherwise, on signal: no error -> the point
// signals (kernel timestamp = when we advanced it); with an error -> the
// timeline is closed unadvanced, so the kernel reports -ENOENT (sw_sync cannot
// carry other errors). The timeline work runs in the signalling thread, inside
// the fence's callback (two syscalls). Holds a reference to `f` until then.
KResult<UniqueFd> sync_file_from_fence(Fence* f, const char* sw_sync_path = kSwSyncPath);

// Exports whose core fence has not signalled yet.
size_t fence_exports_pending();

}  // namespace dmabuf::kernel
