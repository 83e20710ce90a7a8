#include "run/broker/objects.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/buffer/dma_buf.h"
#include "core/sync/sw_sync.h"
#include "core/sync/sync_file.h"
#include "core/sync/sync_file_fd.h"

namespace dmabuf::run {
namespace {

std::mutex g_mu;
std::unordered_map<uint64_t, Object*> g_table;  // client inode -> object (the table's reference)
int g_epoll = -1;

void release(Object* o) {
  switch (o->kind) {
    case Kind::kTimeline:
      sw_sync_debugfs_release(o->timeline);
      break;
    case Kind::kSyncFile:
      // After this returns the callback has run or never will: the peer
      // below can be closed.
      if (o->fence) {
        fence_remove_callback(o->fence, &o->signal_cb);
        fence_put(o->fence);
      }
      sync_file_put(o->sync_file);
      break;
    case Kind::kBuffer:
      // The last client fd: the user fd's reference goes; CPU mappings
      // (kMapping objects) keep the buffer, as vmas keep the file.
      if (o->buf) dma_buf_close(o->buf);
      for (auto& r : o->ranges) close(r.memfd);
      break;
    case Kind::kMapping:
      dma_buf_put(o->buf);
      break;
    default:
      break;
  }
  if (o->peer >= 0) close(o->peer);
  delete o;
}

void send_record(Object* o, int status, int64_t timestamp_ns) {
  SyncFdRecord rec{kSyncFdMagic, status, timestamp_ns};
  (void)send(o->peer, &rec, sizeof rec, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Runs under the fence lock: one non-blocking send, nothing else.
void on_signal(Fence* f, FenceCallback* cb) {
  send_record(container_of(cb, &Object::signal_cb), fence_get_status_locked(f), fence_timestamp(f));
}

void hangup(Object* o) {
  {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_table.find(o->ino);
    if (it == g_table.end() || it->second != o) return;
    g_table.erase(it);
  }
  epoll_ctl(g_epoll, EPOLL_CTL_DEL, o->peer, nullptr);
  object_put(o);
}

// Whether every client end of @o is closed (anything a client wrote into
// the socket is read and dropped on the way).
bool hung_up(Object* o) {
  pollfd p{o->peer, POLLRDHUP, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) return true;
  char sink[256];
  for (;;) {
    ssize_t r = recv(o->peer, sink, sizeof sink, MSG_DONTWAIT);
    if (r == 0) return true;
    if (r < 0) return false;
  }
}

// Releases the object behind @ino if its last client end is closed. The
// event names the inode, not the object: a kClosed request may have
// released the object (and a new one taken the inode) meanwhile.
void check(uint64_t ino) {
  Object* o = object_lookup(ino);
  if (!o) return;
  if (hung_up(o)) hangup(o);
  object_put(o);
}

// The last close of a client end anywhere shows here as a hang-up.
void watch() {
  epoll_event ev[64];
  for (;;) {
    int n = epoll_wait(g_epoll, ev, 64, -1);
    for (int i = 0; i < n; ++i) check(ev[i].data.u64);
  }
}

}  // namespace

int objects_init() {
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) return -errno;
  std::thread(watch).detach();
  return 0;
}

int object_install(Object* o) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    int err = -errno;
    release(o);
    return err;
  }
  struct stat st;
  fstat(sv[1], &st);
  o->ino = st.st_ino;
  o->peer = sv[0];
  {
    std::lock_guard<std::mutex> g(g_mu);
    g_table[o->ino] = o;
  }
  if (o->kind == Kind::kSyncFile) {
    o->fence = sync_file_get_fence(o->sync_file);
    if (fence_add_callback(o->fence, &o->signal_cb, on_signal) == -ENOENT)
      send_record(o, fence_get_status(o->fence), fence_timestamp(o->fence));
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = o->ino;
  epoll_ctl(g_epoll, EPOLL_CTL_ADD, o->peer, &ev);
  return sv[1];
}

Object* object_lookup(uint64_t ino) {
  if (!ino) return nullptr;
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_table.find(ino);
  if (it == g_table.end()) return nullptr;
  it->second->refs.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

Kind object_kind(uint64_t ino) {
  std::lock_guard<std::mutex> g(g_mu);
  auto it = g_table.find(ino);
  return it == g_table.end() ? Kind::kNone : it->second->kind;
}

void object_put(Object* o) {
  if (o && o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) release(o);
}

void object_closed(uint64_t ino) { check(ino); }

size_t objects_count() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_table.size();
}

}  // namespace dmabuf::run
