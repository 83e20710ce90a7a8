// The built-in KernelFenceWatcher: one background thread on one epoll set for
// every watched sync_file fd (no thread per fence), started lazily by the first
// watch(), stopped by stop() or the destructor. For the pure C++ core; the Node
// addon watches with uv_poll on its own loop instead.
#pragma once

#include <cstddef>
#include <pthread.h>

#include <mutex>
#include <unordered_map>

#include "kernel/kernel_fence.h"

namespace dmabuf::kernel {

class EpollFenceWatcher final : public KernelFenceWatcher {
 public:
  EpollFenceWatcher();
  // Stops the thread. Fences still watched are dropped unsignalled (a warning
  // each): destroy a watcher only when nothing it watches is still awaited.
  ~EpollFenceWatcher() override;
  EpollFenceWatcher(const EpollFenceWatcher&) = delete;
  EpollFenceWatcher& operator=(const EpollFenceWatcher&) = delete;

  // See KernelFenceWatcher::watch. Adds `fd` to the epoll set and starts the
  // thread if it is not running. -errno if epoll or the thread cannot be set up.
  int watch(Fence* f, int fd) override;

  // Starts the thread now (watch() does it lazily). Idempotent.
  KStatus start();
  // Ends and joins the thread. Watched fences stay registered and are served
  // again once the thread restarts (start() or the next watch()). Returns how
  // many are still watched. Must not be called from the watcher thread.
  size_t stop();

  size_t pending() const;  // fences being watched
  bool running() const;

 private:
  int start_locked();
  void run();
  static void* thread_main(void* self);
  void finish(Fence* f, int fd);

  mutable std::mutex mu_;
  std::mutex stop_mu_;  // serialises stop() calls
  int epfd_ = -1;
  int stopfd_ = -1;  // eventfd: wakes the thread to stop
  bool running_ = false;
  pthread_t thread_{};
  std::unordered_map<Fence*, int> watched_;
};

// Stops the default watcher's thread (for orderly shutdown and leak checks);
// returns the number of fences it still watches. It restarts on demand.
size_t stop_default_kernel_fence_watcher();

}  // namespace dmabuf::kernel
