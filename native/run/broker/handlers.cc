#include "run/broker/handlers.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <string>

#include "core/buffer/dma_buf.h"
#include "core/buffer/dma_buf_ioctl.h"
#include "core/buffer/dma_buf_resv.h"
#include "core/buffer/mapping.h"
#include "core/heaps/heap.h"
#include "core/sync/sw_sync.h"
#include "core/sync/sync_file.h"
#include "kernel/uapi.h"
#include "run/broker/objects.h"
#include "run/broker/udmabuf.h"

namespace dmabuf::run {
namespace {

namespace uapi = dmabuf::kernel::uapi;

// A reference to the object a request names, dropped at scope exit.
struct Ref {
  Object* o;
  explicit Ref(uint64_t ino) : o(object_lookup(ino)) {}
  ~Ref() { object_put(o); }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  SyncFile* sync_file() const { return o && o->kind == Kind::kSyncFile ? o->sync_file : nullptr; }
};

// Installs @o and queues its client end on the answer; 0 or -errno.
int give(Object* o, Answer* ans) {
  const int fd = object_install(o);
  if (fd < 0) return fd;
  ans->fds.push_back(fd);
  return 0;
}

int give_sync_file(SyncFile* sf, Answer* ans) {
  auto* o = new Object();
  o->kind = Kind::kSyncFile;
  o->sync_file = sf;
  return give(o, ans);
}

// The argument as the kernel's copy_from_user sees it: the bytes the caller's
// _IOC_SIZE names, zero beyond.
struct Arg {
  uint8_t bytes[256] = {};
  explicit Arg(const uint8_t* p, uint32_t len) { memcpy(bytes, p, len < sizeof bytes ? len : sizeof bytes); }
  template <typename T>
  T* as() { return reinterpret_cast<T*>(bytes); }
};

void answer_arg(Answer* ans, const void* arg, size_t len) {
  ans->payload.assign(static_cast<const uint8_t*>(arg), static_cast<const uint8_t*>(arg) + len);
}

long heap_ioctl(Object* o, const Request& req, const uint8_t* payload, Answer* ans) {
  if (req.arg_null) return dma_heap_ioctl(o->heap, req.cmd, nullptr);
  Arg a(payload, req.len);
  long r = dma_heap_ioctl(o->heap, req.cmd, a.bytes);
  if (r < 0) return r;
  auto* data = a.as<DmaHeapAllocationData>();
  DmaBuf* buf = nullptr;
  if (dma_buf_from_fd(static_cast<int>(data->fd), &buf) < 0) return -EBADF;
  dma_buf_put(buf);  // the object owns the user fd and its reference (fdinfo's count: 1)
  data->fd = 0;  // the client writes its own number
  auto* b = new Object();
  b->kind = Kind::kBuffer;
  b->buf = buf;
  if (int err = give(b, ans)) return err;
  // What the caller's struct has room for, of what the kernel would write.
  answer_arg(ans, a.bytes, std::min<size_t>(req.len, sizeof(DmaHeapAllocationData)));
  return r;
}

long udmabuf_ioctl(Platform* p, const Request& req, const uint8_t* payload, int* fds, unsigned nfds,
                   Answer* ans) {
  // Each item's memfd field holds 1 + the index of its fd among the attached
  // ones (the client sends each distinct fd once), 0 if the caller's fd was
  // not open (-EBADFD, in the kernel's order).
  std::vector<UdmabufItem> items;
  uint32_t flags = 0;
  auto item = [&](uint32_t ref, uint64_t off, uint64_t size) {
    int fd = ref && ref <= nfds ? fcntl(fds[ref - 1], F_DUPFD_CLOEXEC, 0) : -1;
    items.push_back({fd, off, size});
  };
  long err = 0;
  if (req.arg_null) {
    err = -EFAULT;
  } else if (req.cmd == UDMABUF_CREATE) {
    udmabuf_create c{};
    memcpy(&c, payload, req.len < sizeof c ? req.len : sizeof c);
    flags = c.flags;
    item(c.memfd, c.offset, c.size);
  } else if (req.cmd == UDMABUF_CREATE_LIST) {
    udmabuf_create_list head{};
    memcpy(&head, payload, req.len < sizeof head ? req.len : sizeof head);
    if (head.count > kUdmabufListLimit) err = -EINVAL;
    else if (req.len < sizeof head + head.count * sizeof(udmabuf_create_item)) err = -EFAULT;
    flags = head.flags;
    for (uint32_t i = 0; !err && i < head.count; ++i) {
      udmabuf_create_item it;
      memcpy(&it, payload + sizeof head + i * sizeof it, sizeof it);
      item(it.memfd, it.offset, it.size);
    }
  } else {
    err = -ENOTTY;
  }
  for (unsigned i = 0; i < nfds; ++i) close(fds[i]);
  if (err) {
    for (auto& it : items)
      if (it.memfd >= 0) close(it.memfd);
    return err;
  }
  Object* o = nullptr;
  if (int e = udmabuf_make(p, flags, items.data(), static_cast<uint32_t>(items.size()), &o)) return e;
  if (int e = give(o, ans)) return e;
  return 0;  // the client returns its fd number
}

long timeline_ioctl(Object* o, const Request& req, const uint8_t* payload, Answer* ans) {
  Arg a(payload, req.len);
  if (req.cmd == uapi::kSwSyncIocCreateFence) {
    if (req.arg_null) return -EFAULT;
    auto* in = a.as<uapi::sw_sync_create_fence_data>();
    SwSyncCreateFenceData d{};
    d.value = in->value;
    if (int err = sw_sync_ioctl_create_fence(o->timeline, &d)) return err;
    if (int err = give_sync_file(d.fence, ans)) return err;
    in->fence = 0;
    answer_arg(ans, a.bytes, sizeof *in);
    return 0;
  }
  if (req.cmd == uapi::kSwSyncIocInc) {
    if (req.arg_null) return -EFAULT;
    return sw_sync_ioctl_inc(o->timeline, a.as<uint32_t>());
  }
  if (req.cmd == uapi::kSwSyncGetDeadline) {
    if (req.arg_null) return -EFAULT;
    auto* in = a.as<uapi::sw_sync_get_deadline>();
    Ref f(req.refs[0]);
    SwSyncGetDeadline d{in->deadline_ns, in->pad, f.sync_file()};
    if (int err = sw_sync_ioctl_get_deadline(o->timeline, &d)) return err;
    in->deadline_ns = d.deadline_ns;
    answer_arg(ans, a.bytes, sizeof *in);
    return 0;
  }
  return -ENOTTY;
}

long sync_file_ioctl(Object* o, const Request& req, const uint8_t* payload, Answer* ans) {
  Arg a(payload, req.len);
  if (req.cmd == SYNC_IOC_MERGE) {
    if (req.arg_null) return -EFAULT;
    auto* in = a.as<sync_merge_data>();
    Ref other(req.refs[0]);
    SyncMergeData d{};
    memcpy(d.name, in->name, sizeof d.name);
    d.fd2 = other.sync_file();
    d.flags = in->flags;
    d.pad = in->pad;
    if (int err = sync_file_ioctl_merge(o->sync_file, &d)) return err;
    if (int err = give_sync_file(d.fence, ans)) return err;
    in->fence = 0;
    answer_arg(ans, a.bytes, sizeof *in);
    return 0;
  }
  if (req.cmd == SYNC_IOC_FILE_INFO) {
    if (req.arg_null) return -EFAULT;
    auto* in = a.as<sync_file_info>();
    // The count is the caller's: never allocate more than a reply can carry
    // (a sync_file with more fences than that gets EINVAL, as for too few).
    constexpr uint32_t kMaxInfos = (kMaxPayload - sizeof(sync_file_info)) / sizeof(SyncFenceInfo);
    std::vector<SyncFenceInfo> fences(std::min(in->num_fences, kMaxInfos));
    SyncFileInfo d{};
    d.flags = in->flags;
    d.num_fences = static_cast<uint32_t>(fences.size());
    d.pad = in->pad;
    d.sync_fence_info = in->num_fences && in->sync_fence_info ? fences.data() : nullptr;
    if (int err = sync_file_ioctl_fence_info(o->sync_file, &d)) return err;
    memcpy(in->name, d.name, sizeof in->name);
    in->status = d.status;
    in->num_fences = d.num_fences;
    answer_arg(ans, a.bytes, sizeof *in);
    // Entries follow the header when the caller asked for them (the client
    // copies them to its sync_fence_info pointer).
    if (d.sync_fence_info) {
      static_assert(sizeof(SyncFenceInfo) == sizeof(sync_fence_info));
      const auto* p = reinterpret_cast<const uint8_t*>(fences.data());
      ans->payload.insert(ans->payload.end(), p, p + d.num_fences * sizeof(SyncFenceInfo));
    }
    return 0;
  }
  if (req.cmd == SYNC_IOC_SET_DEADLINE) {
    if (req.arg_null) return -EFAULT;
    auto* in = a.as<sync_set_deadline>();
    SyncSetDeadline d{in->deadline_ns, in->pad};
    return sync_file_ioctl_set_deadline(o->sync_file, &d);
  }
  return -ENOTTY;
}

long buffer_ioctl(Object* o, const Request& req, const uint8_t* payload, Answer* ans) {
  Arg a(payload, req.len);
  switch (req.cmd) {
    case DMA_BUF_IOCTL_SYNC:
      return dma_buf_ioctl(o->buf, kDmaBufIoctlSync, req.arg_null ? nullptr : a.bytes);
    case kDmaBufSetNameA:
    case kDmaBufSetNameB: {
      // The client sent up to DMA_BUF_NAME_LEN bytes of the string; Arg's
      // zeros end it unless all of them were non-NUL (then -EINVAL).
      return dma_buf_ioctl(o->buf, static_cast<unsigned>(req.cmd), req.arg_null ? nullptr : a.bytes);
    }
    case DMA_BUF_IOCTL_EXPORT_SYNC_FILE: {
      if (req.arg_null) return -EFAULT;
      auto* in = a.as<dma_buf_export_sync_file>();
      DmaBufSyncFileArg d{in->flags, nullptr};
      if (long err = dma_buf_ioctl(o->buf, kDmaBufIoctlExportSyncFile, &d)) return err;
      if (int err = give_sync_file(d.fd, ans)) return err;
      in->fd = 0;
      answer_arg(ans, a.bytes, sizeof *in);
      return 0;
    }
    case DMA_BUF_IOCTL_IMPORT_SYNC_FILE: {
      if (req.arg_null) return -EFAULT;
      auto* in = a.as<dma_buf_import_sync_file>();
      Ref sf(req.refs[0]);
      DmaBufSyncFileArg d{in->flags, sf.sync_file()};
      return dma_buf_ioctl(o->buf, kDmaBufIoctlImportSyncFile, &d);
    }
    default:
      return -ENOTTY;
  }
}

long do_ioctl(Platform* p, const Request& req, const uint8_t* payload, int* fds, unsigned nfds, Answer* ans) {
  Ref r(req.ino);
  if (!r.o) return kNotOurs;
  switch (r.o->kind) {
    case Kind::kHeap: return heap_ioctl(r.o, req, payload, ans);
    case Kind::kUdmabufDev: return udmabuf_ioctl(p, req, payload, fds, nfds, ans);
    case Kind::kTimeline: return timeline_ioctl(r.o, req, payload, ans);
    case Kind::kSyncFile: return sync_file_ioctl(r.o, req, payload, ans);
    case Kind::kBuffer: return buffer_ioctl(r.o, req, payload, ans);
    default: return -ENOTTY;
  }
}

long do_open(Platform* p, const Request& req, const uint8_t* payload, Answer* ans) {
  std::string path(reinterpret_cast<const char*>(payload), strnlen(reinterpret_cast<const char*>(payload), req.len));
  auto* o = new Object();
  static const std::string kHeapDir = "/dev/dma_heap/";
  if (path.compare(0, kHeapDir.size(), kHeapDir) == 0) {
    if (int err = dma_heap_open(p, path.c_str() + kHeapDir.size(), &o->heap)) {
      delete o;
      return err;
    }
    o->kind = Kind::kHeap;
  } else if (path == "/dev/udmabuf") {
    o->kind = Kind::kUdmabufDev;
  } else if (path == "/sys/kernel/debug/sync/sw_sync") {
    char comm[17] = {};
    memcpy(comm, req.comm, 16);
    o->timeline = sw_sync_debugfs_open(comm);
    if (!o->timeline) {
      delete o;
      return -ENOMEM;
    }
    o->kind = Kind::kTimeline;
  } else {
    delete o;
    return -ENOENT;
  }
  return give(o, ans);
}

long do_mmap_info(const Request& req, Answer* ans) {
  Ref r(req.ino);
  if (!r.o) return kNotOurs;
  if (r.o->kind != Kind::kBuffer) return -ENODEV;  // mmap of a file without mmap
  const int prot = static_cast<int>(req.cmd >> 32), flags = static_cast<int>(req.cmd & 0xffffffff);
  if (int err = dma_buf_mmap_check(r.o->buf, req.a0, req.a1, prot, flags)) return err;
  std::vector<MmapRange> ranges;
  if (r.o->ranges.empty()) {
    const int fd = r.o->buf->user_fd.load(std::memory_order_acquire);
    if (fd < 0) return -EBADF;
    ans->borrowed.push_back(fd);
    ranges.push_back({0, 0, r.o->buf->size});
  } else {
    // Only the ranges the mapping touches (one fd each).
    uint64_t at = 0;
    const uint64_t end = req.a0 + req.a1;
    for (const auto& m : r.o->ranges) {
      if (at < end && at + m.size > req.a0) {
        if (ans->borrowed.size() == kMaxFds) return -ENOMEM;
        ans->borrowed.push_back(m.memfd);
        ranges.push_back({at, m.offset, m.size});
      }
      at += m.size;
    }
  }
  const auto* b = reinterpret_cast<const uint8_t*>(ranges.data());
  ans->payload.assign(b, b + ranges.size() * sizeof(MmapRange));
  ans->reply.a0 = ranges.size();
  return 0;
}

long do_poll_fd(const Request& req, Answer* ans) {
  Ref r(req.ino);
  if (!r.o) return kNotOurs;
  if (r.o->kind != Kind::kBuffer) return -EINVAL;
  // dma_buf_poll(): POLLIN waits for the writers (what a reader must wait
  // for: EXPORT_SYNC_FILE with READ), POLLOUT for every fence (WRITE).
  for (short ev : {short(POLLIN), short(POLLOUT)}) {
    if (!(req.cmd & ev)) continue;
    SyncFile* sf = nullptr;
    if (int err = dma_buf_sync_file_export(r.o->buf, ev == POLLIN ? kDmaBufSyncRead : kDmaBufSyncWrite, &sf))
      return err;
    if (int err = give_sync_file(sf, ans)) return err;
  }
  return 0;
}

}  // namespace

void handle_request(Platform* p, const Request& req, const uint8_t* payload, int* fds, unsigned nfds,
                    Answer* ans) {
  long r = -EPROTO;
  const bool takes_fds = req.op == Op::kIoctl;
  switch (req.op) {
    case Op::kPing:
      r = 0;
      break;
    case Op::kOpen:
      r = do_open(p, req, payload, ans);
      break;
    case Op::kIoctl:
      r = do_ioctl(p, req, payload, fds, nfds, ans);
      nfds = 0;  // consumed (udmabuf) or closed there
      break;
    case Op::kMmapInfo:
      r = do_mmap_info(req, ans);
      break;
    case Op::kFdinfo: {
      Ref o(req.ino);
      std::string text;
      if (!o.o || o.o->kind != Kind::kBuffer) r = kNotOurs;
      else if ((r = dma_buf_fdinfo(o.o->buf, &text)) == 0) ans->payload.assign(text.begin(), text.end());
      break;
    }
    case Op::kBufinfo: {
      std::string text = dma_buf_bufinfo(p);
      ans->payload.assign(text.begin(), text.end());
      r = 0;
      break;
    }
    case Op::kIdentify: {
      const uint32_t n = req.len / sizeof(uint64_t);
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t ino;
        memcpy(&ino, payload + i * sizeof ino, sizeof ino);
        ans->payload.push_back(static_cast<uint8_t>(object_kind(ino)));
      }
      r = 0;
      break;
    }
    case Op::kPollFd:
      r = do_poll_fd(req, ans);
      break;
    case Op::kMapRef: {
      Ref o(req.ino);
      if (!o.o) {
        r = kNotOurs;
      } else if (o.o->kind != Kind::kBuffer) {
        r = -EINVAL;
      } else {
        auto* m = new Object();
        m->kind = Kind::kMapping;
        m->buf = o.o->buf;
        dma_buf_get(m->buf);
        r = give(m, ans);
      }
      break;
    }
    case Op::kClosed:
      object_closed(req.ino);
      r = 0;
      break;
    case Op::kLink: {
      Ref o(req.ino);
      std::string text;
      r = 0;
      if (!o.o) r = kNotOurs;
      else if (o.o->kind == Kind::kBuffer) text = dma_buf_link(o.o->buf);
      else if (o.o->kind == Kind::kSyncFile) text = "anon_inode:sync_file";
      else if (o.o->kind == Kind::kTimeline) text = "/sys/kernel/debug/sync/sw_sync";
      else if (o.o->kind == Kind::kUdmabufDev) text = "/dev/udmabuf";
      else if (o.o->kind == Kind::kHeap) text = "/dev/dma_heap/" + o.o->heap->name;
      ans->payload.assign(text.begin(), text.end());
      break;
    }
    case Op::kSeek: {
      // dma_buf_llseek(): SEEK_SET 0 and SEEK_END 0 only (the size); other
      // files here have no llseek.
      Ref o(req.ino);
      if (!o.o) r = kNotOurs;
      else if (o.o->kind != Kind::kBuffer) r = -ESPIPE;
      else if ((req.cmd != SEEK_SET && req.cmd != SEEK_END) || req.a0 != 0) r = -EINVAL;
      else r = req.cmd == SEEK_END ? static_cast<long>(o.o->buf->size) : 0;
      break;
    }
  }
  if (!takes_fds)
    for (unsigned i = 0; i < nfds; ++i) close(fds[i]);
  if (r < 0 && r != kNotOurs) {
    for (int fd : ans->fds) close(fd);
    ans->fds.clear();
    ans->borrowed.clear();
    ans->payload.clear();
  }
  ans->reply.ret = r;
}

}  // namespace dmabuf::run
