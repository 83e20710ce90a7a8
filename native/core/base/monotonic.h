// CLOCK_MONOTONIC in nanoseconds: the clock of fence timestamps and deadlines.
#pragma once

#include <cstdint>
#include <ctime>

namespace dmabuf {

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace dmabuf
