// udmabuf: turn pages of a sealed memfd into a dma-buf (drivers/dma-buf/udmabuf.c).
// The kernel wants F_SEAL_SHRINK and refuses F_SEAL_WRITE / F_SEAL_FUTURE_WRITE
// (EINVAL); offsets and sizes must be page aligned (EINVAL).
#pragma once

#include <cstdint>
#include <span>

#include "kernel/fd.h"
#include "kernel/kerror.h"

namespace dmabuf::kernel {

constexpr const char* kUdmabufPath = "/dev/udmabuf";
constexpr uint32_t kUdmabufCloexec = 1;  // UDMABUF_FLAGS_CLOEXEC; other bits are ignored

// Opens /dev/udmabuf read-write (EACCES with the node's owner/mode in the message).
KResult<UniqueFd> udmabuf_open(const char* path = kUdmabufPath);

// memfd_create(MFD_ALLOW_SEALING | MFD_CLOEXEC), ftruncate to `size`, then
// F_ADD_SEALS `seals` (default F_SEAL_SHRINK: what udmabuf requires). Pass
// other seals to build the bad cases.
KResult<UniqueFd> memfd_create_sealed(const char* name, uint64_t size, unsigned seals = 0x0002);

// UDMABUF_CREATE: one range of one memfd. Returns the dma-buf fd (O_RDWR,
// exp_name "udmabuf").
KResult<UniqueFd> udmabuf_from_memfd(int dev_fd, int memfd, uint64_t offset, uint64_t size,
                                 uint32_t flags = kUdmabufCloexec);

struct UdmabufRange {
  int memfd;
  uint64_t offset;
  uint64_t size;
};
// UDMABUF_CREATE_LIST: ranges of one or more memfds, in order, as one dma-buf
// (count > list_limit, 1024 by default, is EINVAL).
KResult<UniqueFd> udmabuf_from_list(int dev_fd, std::span<const UdmabufRange> ranges,
                                      uint32_t flags = kUdmabufCloexec);

}  // namespace dmabuf::kernel
