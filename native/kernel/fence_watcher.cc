#include "kernel/fence_watcher.h"

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "core/base/rcu.h"
#include "core/base/warn.h"

namespace dmabuf::kernel {

EpollFenceWatcher::EpollFenceWatcher() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  stopfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epfd_ >= 0 && stopfd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the stop event
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, stopfd_, &ev) < 0) {
      ::close(stopfd_);
      stopfd_ = -1;
    }
  }
}

EpollFenceWatcher::~EpollFenceWatcher() {
  stop();
  std::unordered_map<Fence*, int> left;
  {
    std::lock_guard<std::mutex> g(mu_);
    left.swap(watched_);
  }
  for (auto& [f, fd] : left) {
    warn("EpollFenceWatcher destroyed while fence %llu:%llu (fd %d) is unsignalled",
         static_cast<unsigned long long>(f->context), static_cast<unsigned long long>(f->seqno),
         fd);
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    fence_put(f);
  }
  if (stopfd_ >= 0) ::close(stopfd_);
  if (epfd_ >= 0) ::close(epfd_);
}

int EpollFenceWatcher::start_locked() {
  if (running_) return 0;
  if (epfd_ < 0 || stopfd_ < 0) return -ENOMEM;
  rcu::init();
  // The thread takes no signals (Node and test harnesses own them).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  const int err = pthread_create(&thread_, nullptr, thread_main, this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err) return -err;
  running_ = true;
  return 0;
}

void* EpollFenceWatcher::thread_main(void* self) {
  pthread_setname_np(pthread_self(), "dmabuf-fences");
  static_cast<EpollFenceWatcher*>(self)->run();
  return nullptr;
}

KStatus EpollFenceWatcher::start() {
  std::lock_guard<std::mutex> g(mu_);
  int r = start_locked();
  if (r < 0) return kerror(r, "EpollFenceWatcher::start", "cannot start the watcher thread");
  return {};
}

int EpollFenceWatcher::watch(Fence* f, int fd) {
  std::lock_guard<std::mutex> g(mu_);
  if (epfd_ < 0) return -ENOMEM;
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: a fd readable before we look still fires
  ev.data.ptr = f;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) return neg_errno();
  watched_.emplace(f, fd);
  const int r = start_locked();
  if (r < 0) {
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    watched_.erase(f);
  }
  return r;
}

void EpollFenceWatcher::finish(Fence* f, int fd) {
  {
    std::lock_guard<std::mutex> g(mu_);
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    watched_.erase(f);
  }
  fence_put(f);  // may release it: closes its fd, now out of the epoll set
}

void EpollFenceWatcher::run() {
  constexpr int kBatch = 64;
  epoll_event evs[kBatch];
  bool stop_requested = false;
  while (!stop_requested) {
    int n = ::epoll_wait(epfd_, evs, kBatch, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      warn("EpollFenceWatcher: epoll_wait: errno %d", errno);
      break;
    }
    for (int i = 0; i < n; ++i) {
      Fence* f = static_cast<Fence*>(evs[i].data.ptr);
      if (!f) {
        stop_requested = true;
        continue;
      }
      int fd;
      {
        std::lock_guard<std::mutex> g(mu_);
        auto it = watched_.find(f);
        if (it == watched_.end()) continue;  // finished earlier in this batch
        fd = it->second;
      }
      // Error/hang-up without POLLIN: kernel_fence_on_readable looks for itself.
      if (kernel_fence_on_readable(f)) finish(f, fd);
    }
    // Hand this thread's deferred frees to call_rcu before sleeping again.
    rcu::flush_deferred();
  }
}

size_t EpollFenceWatcher::stop() {
  std::lock_guard<std::mutex> one_stopper(stop_mu_);
  pthread_t t;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!running_) return watched_.size();
    uint64_t one = 1;
    if (::write(stopfd_, &one, sizeof one) < 0) warn("EpollFenceWatcher: eventfd write failed");
    t = thread_;
  }
  pthread_join(t, nullptr);
  std::lock_guard<std::mutex> g(mu_);
  uint64_t drain;
  while (::read(stopfd_, &drain, sizeof drain) > 0) {
  }
  running_ = false;
  return watched_.size();
}

size_t EpollFenceWatcher::pending() const {
  std::lock_guard<std::mutex> g(mu_);
  return watched_.size();
}

bool EpollFenceWatcher::running() const {
  std::lock_guard<std::mutex> g(mu_);
  return running_;
}

namespace {
EpollFenceWatcher* default_watcher() {
  // Never destroyed: fences may outlive static destructors.
  static EpollFenceWatcher* w = new EpollFenceWatcher();
  return w;
}
}  // namespace

KernelFenceWatcher* default_kernel_fence_watcher() { return default_watcher(); }

size_t stop_default_kernel_fence_watcher() { return default_watcher()->stop(); }

}  // namespace dmabuf::kernel
