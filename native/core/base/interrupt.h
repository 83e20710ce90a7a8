// signal_pending(current) for userspace threads. The kernel's interruptible
// sleeps (wait_event_interruptible, ww_mutex_lock_interruptible,
// dma_fence_wait(intr=true)) end with -ERESTARTSYS when the task gets a
// signal. A thread here has no such signal, but its owner may need to stop it
// (a Node worker being terminated): it installs a check, and interruptible
// sleeps poll it every kInterruptPollNs and return -EINTR once it says so.
#pragma once

#include <cstdint>

namespace dmabuf {

inline constexpr int64_t kInterruptPollNs = 20'000'000;  // 20 ms

using InterruptCheck = bool (*)(void* data);

// Installs (or, with null, removes) the calling thread's check.
void set_interrupt_check(InterruptCheck check, void* data);

// Whether the calling thread has a check installed (interruptible sleeps then
// sleep in slices).
bool interrupt_check_installed();

// Whether the calling thread's check says it must stop.
bool interrupt_pending();

}  // namespace dmabuf
