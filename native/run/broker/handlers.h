// One request of the `dmabuf run` protocol, answered from the core: the
// device opens, every dma-buf / sync_file / sw_sync / heap / udmabuf ioctl with
// fds translated to objects, and what mmap, fdinfo, bufinfo and poll need.
#pragma once

#include <cstdint>
#include <vector>

#include "run/protocol.h"

namespace dmabuf {
struct Platform;
}

namespace dmabuf::run {

struct Answer {
  Reply reply{};
  std::vector<uint8_t> payload;
  std::vector<int> fds;       // sent with the reply, then closed
  std::vector<int> borrowed;  // sent with the reply, not closed (a buffer's own memfd)
};

/**
 * handle_request() - answer @req (payload @len bytes, @nfds fds it carried,
 * consumed here) into @ans
 */
void handle_request(Platform* p, const Request& req, const uint8_t* payload, int* fds, unsigned nfds,
                    Answer* ans);

}  // namespace dmabuf::run
