// The broker's objects: each emulated file (heap, udmabuf device, sw_sync
// timeline, sync_file, dma-buf) with the broker's end of its socketpair, found
// by the inode of the client's end. The table holds one reference; each request
// holds one while it works, so a hang-up (the last client close) never frees an
// object under a request.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/fence/fence.h"
#include "run/protocol.h"

namespace dmabuf {
struct Heap;
struct SyncTimeline;
struct SyncFile;
struct DmaBuf;
}  // namespace dmabuf

namespace dmabuf::run {

// A udmabuf's backing: the caller's memfd ranges, in buffer order.
struct MemfdRange {
  int memfd;  // the broker's dup
  uint64_t offset, size;
};

struct Object {
  Kind kind = Kind::kNone;
  uint64_t ino = 0;  // the client end's inode
  int peer = -1;     // the broker's end
  std::atomic<int> refs{1};
  Heap* heap = nullptr;            // kHeap (owned by the platform)
  SyncTimeline* timeline = nullptr;
  SyncFile* sync_file = nullptr;
  Fence* fence = nullptr;          // kSyncFile: the file's fence, for the status record
  FenceCallback signal_cb{};       // kSyncFile: sends the record on signal
  DmaBuf* buf = nullptr;           // kBuffer: owns the broker's user fd; kMapping: a file reference
  std::vector<MemfdRange> ranges;  // kBuffer from udmabuf (empty: the buffer's own memfd)
};

/**
 * objects_init() - start the hang-up watcher thread
 *
 * Returns: 0 or -errno.
 */
int objects_init();

/**
 * object_install() - make @obj a file: a socketpair, the broker's end watched
 * for the last close, @obj in the table; the table takes @obj's reference
 * @cloexec: the client's end gets O_CLOEXEC on arrival (the receiver applies it)
 *
 * For a sync_file, arms the callback that marks the client's end readable.
 *
 * Returns: the client's end (the caller sends it, then closes its copy), or
 * -errno (and @obj has been released).
 */
int object_install(Object* obj);

/**
 * object_lookup() - the object behind client inode @ino, with a reference; nullptr if none
 */
Object* object_lookup(uint64_t ino);

/**
 * object_kind() - the kind of object behind @ino (Kind::kNone if none)
 */
Kind object_kind(uint64_t ino);

/**
 * object_put() - drop a reference; the last one releases the object as the
 * kernel releases the file (a timeline signals its pending points with -ENOENT)
 */
void object_put(Object* obj);

/**
 * object_closed() - a client closed an fd of @ino: if no client end is left,
 * release the object now (before that client's close() returns), not when the
 * hang-up watcher gets to it
 */
void object_closed(uint64_t ino);

/**
 * objects_count() - live objects by kind (tests and `dmabuf run --stats`)
 */
size_t objects_count();

}  // namespace dmabuf::run
