// Which paths `dmabuf run` emulates: the device nodes (/dev/dma_heap/*,
// /dev/udmabuf, debugfs sync/sw_sync), debugfs dma_buf/bufinfo, and
// /proc/<pid>/fdinfo/<fd> of emulated dma-bufs. Absolute paths only (see
// docs/run.md: relative paths and other dirfds are passed through).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace dmabuf::run::preload {

enum class Node { kNone, kHeapDir, kDevice, kBufinfo, kFdinfo, kDebugDir };

/**
 * classify() - what @path is under the emulation
 * @fd_path: for kFdinfo, "/proc/<pid>/fd/<n>" (the fd it describes), @cap bytes
 */
Node classify(const char* path, char* fd_path, size_t cap);

/**
 * shadow_path() - where stat/access/opendir find an emulated path: the same
 * path under $DMABUF_RUN_ROOT. Returns false if @path is not emulated.
 */
bool shadow_path(const char* path, char* out, size_t cap);

/**
 * is_device_node() - whether @path names an emulated character device (its
 * stat says S_IFCHR, as the kernel's nodes do)
 */
bool is_device_node(const char* path);

}  // namespace dmabuf::run::preload
