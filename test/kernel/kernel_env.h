// Shared helpers for the real-kernel tests: skip (with the reason) where the
// kernel lacks what a test needs, and small RAII/utility bits.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "kernel/fd.h"
#include "kernel/heap.h"
#include "core/base/monotonic.h"
#include "kernel/sw_sync.h"
#include "kernel/udmabuf.h"

namespace kt {

inline std::string why_missing(const char* path, const char* what) {
  if (access(path, R_OK | W_OK) == 0) return {};
  const int e = errno;
  return std::string("no usable ") + path + " (" + strerror(e) + "): " + what +
         "; run test/kernel/run-in-rig.sh to test against a real kernel";
}

inline std::string heap_missing() {
  return why_missing("/dev/dma_heap/system", "this kernel has no system dma-heap");
}
inline std::string udmabuf_missing() {
  return why_missing(dmabuf::kernel::kUdmabufPath, "this kernel has no udmabuf");
}
inline std::string sw_sync_missing() {
  return why_missing(dmabuf::kernel::kSwSyncPath, "no sw_sync in debugfs (CONFIG_SW_SYNC)");
}
inline bool in_rig() { return getenv("KERNEL_RIG") != nullptr; }

// The process's comm: sw_sync names its timelines after it.
inline std::string comm() {
  char buf[64] = {};
  FILE* f = fopen("/proc/self/comm", "r");
  if (f) {
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
  }
  std::string s = buf;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

constexpr uint64_t kPage = 4096;
inline uint64_t page_align(uint64_t n) { return (n + kPage - 1) & ~(kPage - 1); }

}  // namespace kt

#define REQUIRE_HEAP()                                    \
  do {                                                    \
    std::string why_ = kt::heap_missing();                \
    if (!why_.empty()) GTEST_SKIP() << why_;              \
  } while (0)
#define REQUIRE_UDMABUF()                                 \
  do {                                                    \
    std::string why_ = kt::udmabuf_missing();             \
    if (!why_.empty()) GTEST_SKIP() << why_;              \
  } while (0)
#define REQUIRE_SW_SYNC()                                 \
  do {                                                    \
    std::string why_ = kt::sw_sync_missing();             \
    if (!why_.empty()) GTEST_SKIP() << why_;              \
  } while (0)

// ASSERT that a KResult succeeded, printing the KError otherwise.
#define ASSERT_KOK(expr)                                                         \
  do {                                                                           \
    auto&& r_ = (expr);                                                          \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << (r_.ok() ? "" : r_.error().describe()); \
  } while (0)
// EXPECT a KResult to fail with exactly `neg_errno`.
#define EXPECT_KERR(expr, neg_errno)                                             \
  do {                                                                           \
    auto&& r_ = (expr);                                                          \
    EXPECT_EQ(r_.err(), (neg_errno))                                             \
        << #expr << " -> " << (r_.ok() ? std::string("ok") : r_.error().describe()); \
  } while (0)
