// Shared helpers for the heap and dma-buf tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/base/warn.h"
#include "core/buffer/dma_buf.h"
#include "core/heaps/heap.h"
#include "core/mm/platform.h"

namespace dmabuf::test {

struct PlatformDeleter {
  void operator()(Platform* p) const { platform_put(p); }
};
using PlatformPtr = std::unique_ptr<Platform, PlatformDeleter>;

inline PlatformPtr make_platform(const PlatformConfig& c) {
  Platform* p = nullptr;
  int err = platform_create(c, &p);
  EXPECT_EQ(err, 0);
  return PlatformPtr(p);
}

// 7.1 x86-64 CC guest with every kind of heap: system, system_cc_shared,
// default_cma_region (+ "reserved"), protected,secure-video.
inline PlatformConfig full_config() {
  PlatformConfig c;
  c.mem_encrypt = true;
  c.ram_bytes = 512ULL << 20;
  c.cma_bytes = 64ULL << 20;
  c.protected_heaps = {"protected,secure-video"};
  c.protected_pool_bytes = 48ULL << 20;
  return c;
}

// Collects warn() output for the duration of a test.
class WarnCapture {
 public:
  WarnCapture() { prev_ = set_warn_handler(&WarnCapture::sink, this); }
  ~WarnCapture() { set_warn_handler(prev_, nullptr); }
  std::vector<std::string> take() {
    std::lock_guard<std::mutex> g(mu_);
    return std::move(lines_);
  }
  size_t count_containing(const std::string& s) {
    std::lock_guard<std::mutex> g(mu_);
    size_t n = 0;
    for (auto& l : lines_) n += l.find(s) != std::string::npos;
    return n;
  }

 private:
  static void sink(const char* m, void* d) {
    auto* self = static_cast<WarnCapture*>(d);
    std::lock_guard<std::mutex> g(self->mu_);
    self->lines_.emplace_back(m);
  }
  WarnHandler prev_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

inline Heap* open_heap(Platform* p, const char* name) {
  Heap* h = nullptr;
  EXPECT_EQ(dma_heap_open(p, name, &h), 0) << name;
  return h;
}

// Allocates with O_RDWR|O_CLOEXEC; nullptr (and a test failure) on error.
inline DmaBuf* alloc_rw(Heap* h, uint64_t len) {
  DmaBuf* b = nullptr;
  int err = dma_heap_alloc(h, len, 02000002, 0, &b);
  EXPECT_EQ(err, 0) << "alloc of " << len << " from " << (h ? h->name : "?");
  return err ? nullptr : b;
}

}  // namespace dmabuf::test
