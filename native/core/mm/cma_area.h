// The emulated Contiguous Memory Allocator: one reserved, physically contiguous
// range of page frames with its own first-fit bitmap allocator, like
// mm/cma.c. Like the page allocator it hands out PFNs; buffer contents live in
// the dma-buf's memfd.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace dmabuf {

class CmaArea {
 public:
  static constexpr unsigned kAlignmentCap = 8;  // CONFIG_CMA_ALIGNMENT

  CmaArea(std::string name, uint64_t base_pfn, uint64_t npages);
  CmaArea(const CmaArea&) = delete;
  CmaArea& operator=(const CmaArea&) = delete;

  // cma_alloc: `count` contiguous pages whose first pfn is aligned to
  // 1 << min(align_order, kAlignmentCap). false when no such run is free
  // (full, or fragmented).
  bool alloc(uint64_t count, unsigned align_order, uint64_t* pfn);
  // cma_release: false (and a warning) if the range is not an allocation of
  // this area.
  bool release(uint64_t pfn, uint64_t count);

  const std::string& name() const { return name_; }
  uint64_t base_pfn() const { return base_; }
  uint64_t npages() const { return npages_; }
  uint64_t free_pages() const;
  // The longest free run, in pages: what the largest allocation could be.
  uint64_t largest_free_run() const;

 private:
  bool test(uint64_t i) const { return bits_[i / 64] >> (i % 64) & 1; }
  void set_range(uint64_t i, uint64_t n, bool v);

  const std::string name_;
  const uint64_t base_;
  const uint64_t npages_;
  mutable std::mutex mu_;
  std::vector<uint64_t> bits_;  // 1 = allocated
  uint64_t used_ = 0;
};

}  // namespace dmabuf
