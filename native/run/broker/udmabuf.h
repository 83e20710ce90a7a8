// /dev/udmabuf for the broker: UDMABUF_CREATE(_LIST) over the caller's memfds,
// with the kernel's checks in its order (drivers/dma-buf/udmabuf.c).
#pragma once

#include <cstdint>

#include "run/broker/objects.h"

namespace dmabuf {
struct Platform;
}

namespace dmabuf::run {

struct UdmabufItem {
  int memfd;  // the broker's copy, -1 if the caller's fd was not open (EBADFD)
  uint64_t offset, size;
};

constexpr uint32_t kUdmabufListLimit = 1024;  // module parameter list_limit
constexpr uint64_t kUdmabufSizeLimitMb = 64;  // module parameter size_limit_mb

/**
 * udmabuf_make() - a buffer over @items (the memfds are consumed in every case)
 * @flags: the request's flags (UDMABUF_FLAGS_CLOEXEC is the only one)
 *
 * Returns: 0 with *@out a kBuffer object (not yet installed); -EINVAL for an
 * unaligned offset or size, more than size_limit_mb, no pages, seals without
 * F_SEAL_SHRINK or with F_SEAL_WRITE/F_SEAL_FUTURE_WRITE, or a range past the
 * end of its memfd; -EBADFD for a missing fd or one that is not shmem.
 */
int udmabuf_make(Platform* p, uint32_t flags, UdmabufItem* items, uint32_t count, Object** out);

}  // namespace dmabuf::run
