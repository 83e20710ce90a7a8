// A buffer received from another process: an emulated dma-buf over the
// sender's memfd, so both processes see the same bytes through their CPU
// mappings. (A received kernel dma-buf is just its fd: DmaBuf.fromFd.)
//
// What does not cross: the sender's device mappings and implicit fences (this
// side gets its own empty reservation object), and its platform's pages, so
// attaching a device here is refused (EOPNOTSUPP). The shared emulation of
// `dmabuf run` is where those cross processes.
#pragma once

#include <cstdint>

#include "core/buffer/dma_buf.h"

namespace dmabuf {

/**
 * memfd_buf_import() - an emulated dma-buf of @size bytes over @memfd
 * @exp_name: the exporter name the sender reported (fdinfo's exp_name)
 * @fd_flags: the user fd's flags (access mode and O_CLOEXEC)
 *
 * @memfd must be a memfd at least @size bytes long, sealed against shrinking
 * (F_SEAL_SHRINK: otherwise its owner could truncate it under our mappings),
 * and @size a non-zero multiple of the page size.
 *
 * Context: any thread. Returns: 0 with *@out holding the file reference (the
 * fd installed, see dma_buf_fd()); -EINVAL for anything else, with @memfd
 * closed in every case (adopted on success).
 */
int memfd_buf_import(Platform* p, int memfd, uint64_t size, const char* exp_name, uint32_t fd_flags, DmaBuf** out);

}  // namespace dmabuf
