// The wire format between libdmabuf-preload.so (a client per process thread)
// and the broker of `dmabuf run` (docs/run.md).
//
// Transport: one AF_UNIX SOCK_SEQPACKET connection per client thread to the
// broker's abstract address ($DMABUF_RUN_SOCKET); a request and its reply are
// one message each, fds ride along as SCM_RIGHTS. The connection is strictly
// request/reply, so a blocking ioctl (DMA_BUF_IOCTL_SYNC waiting on fences)
// blocks that thread alone, as in the kernel.
//
// Objects: every emulated fd (heap, udmabuf device, sw_sync timeline,
// sync_file, dma-buf) is one end of a SOCK_SEQPACKET socketpair whose other end
// the broker keeps. A request names its object by the inode of the client's
// end (fstat), which dup, fork, exec and SCM_RIGHTS all preserve; the broker
// sees the last close anywhere as a hang-up on its end (the file's release).
// A sync_file's socket becomes readable when its fence signals (a
// SyncFdRecord, core/sync/sync_file_fd.h), so poll/select/epoll need no broker.
#pragma once

#include <cstdint>

namespace dmabuf::run {

constexpr uint32_t kMagic = 0x444d5231;  // "DMR1"

// Environment of every process under `dmabuf run`.
constexpr const char* kEnvSocket = "DMABUF_RUN_SOCKET";    // abstract address, no leading NUL
constexpr const char* kEnvRoot = "DMABUF_RUN_ROOT";        // the emulated /dev and /sys tree
constexpr const char* kEnvEmulate = "DMABUF_RUN_EMULATE";  // "heaps,udmabuf,sw_sync"

enum class Op : uint32_t {
  kPing = 0,      // an empty round trip (the bench's floor)
  kOpen = 1,      // payload: path (an emulated device node); cmd: open flags
  kIoctl = 2,     // ino, cmd, payload: the argument bytes; refs: fds in the argument
  kMmapInfo = 3,  // ino, a0: offset, a1: len, cmd: prot << 32 | flags -> memfd(s)
  kFdinfo = 4,    // ino -> text
  kBufinfo = 5,   // -> /sys/kernel/debug/dma_buf/bufinfo text
  kIdentify = 6,  // payload: uint64 inodes -> one uint8 Kind each
  kPollFd = 7,    // ino (a dma-buf), cmd: poll events -> a sync_file fd to poll instead
  kLink = 8,      // ino -> what readlink(/proc/self/fd/N) shows ("/dmabuf:<name>", ...)
  kSeek = 9,      // ino, a0: offset, cmd: whence -> the new position (dma_buf_llseek)
  kMapRef = 10,   // ino (a dma-buf) -> a kMapping object: the file reference a CPU mapping holds
  kClosed = 11,   // ino: a client closed an fd of it; release it now if that was the last
};

enum class Kind : uint8_t { kNone = 0, kHeap, kUdmabufDev, kTimeline, kSyncFile, kBuffer, kMapping };

// Most payloads are small; a UDMABUF_CREATE_LIST of list_limit (1024) items is
// 24 KiB, a FILE_INFO reply 80 bytes a fence.
constexpr uint32_t kMaxPayload = 192 * 1024;
constexpr uint32_t kMaxFds = 253;  // SCM_RIGHTS fds one message carries (SCM_MAX_FD)

struct Request {
  uint32_t magic;
  Op op;
  uint64_t ino;      // the object (0 for kOpen, kBufinfo, kPing, kIdentify)
  uint64_t cmd;      // ioctl number, open flags, or prot/flags
  uint64_t a0, a1;   // op-specific
  uint64_t refs[2];  // inodes of sync_file fds named inside the argument (0: not ours/invalid)
  uint32_t len;      // payload bytes that follow
  uint32_t nfds;     // SCM_RIGHTS fds attached (udmabuf memfds)
  uint32_t pad;
  uint32_t arg_null; // the ioctl argument pointer was NULL (-EFAULT in the kernel)
  char comm[16];     // the calling thread's name (a new timeline's name)
};

// ret: >= 0 or -errno; kNotOurs: the fd is no object of this broker (the client
// passes the call to the real libc).
constexpr int64_t kNotOurs = -100000;

struct Reply {
  uint32_t magic;
  uint32_t nfds;  // SCM_RIGHTS fds attached (new objects, or memfds for mmap)
  int64_t ret;
  uint64_t a0;    // kMmapInfo: number of ranges in the payload
  uint32_t len;   // payload bytes that follow
  uint32_t pad;
};

// kMmapInfo payload: one per attached memfd, in order. A heap buffer is one
// range of its own memfd; a udmabuf one range per list item.
struct MmapRange {
  uint64_t buf_off;  // where the range starts in the buffer
  uint64_t memfd_off;
  uint64_t size;
};

}  // namespace dmabuf::run
