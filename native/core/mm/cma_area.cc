#include "core/mm/cma_area.h"

#include <algorithm>
#include <cinttypes>

#include "core/base/warn.h"

namespace dmabuf {

CmaArea::CmaArea(std::string name, uint64_t base_pfn, uint64_t npages)
    : name_(std::move(name)), base_(base_pfn), npages_(npages), bits_((npages + 63) / 64, 0) {}

void CmaArea::set_range(uint64_t i, uint64_t n, bool v) {
  for (uint64_t k = i; k < i + n; ++k) {
    if (v) bits_[k / 64] |= 1ULL << (k % 64);
    else bits_[k / 64] &= ~(1ULL << (k % 64));
  }
}

bool CmaArea::alloc(uint64_t count, unsigned align_order, uint64_t* pfn) {
  if (count == 0 || count > npages_) return false;
  const uint64_t align = 1ULL << std::min(align_order, kAlignmentCap);
  std::lock_guard<std::mutex> g(mu_);
  if (npages_ - used_ < count) return false;
  // First fit, with the start aligned in physical (pfn) terms, as
  // cma_bitmap_aligned_offset arranges in the kernel.
  auto align_up = [&](uint64_t i) { return ((base_ + i + align - 1) & ~(align - 1)) - base_; };
  uint64_t i = align_up(0);
  while (i + count <= npages_) {
    uint64_t j = i;
    while (j < i + count && !test(j)) ++j;
    if (j == i + count) {
      set_range(i, count, true);
      used_ += count;
      *pfn = base_ + i;
      return true;
    }
    i = align_up(j + 1);
  }
  return false;
}

bool CmaArea::release(uint64_t pfn, uint64_t count) {
  if (pfn < base_ || pfn + count > base_ + npages_ || count == 0) {
    warn("cma_release: range pfn 0x%" PRIx64 "+%" PRIu64 " is not in area %s", pfn, count,
         name_.c_str());
    return false;
  }
  const uint64_t i = pfn - base_;
  uint64_t bad = UINT64_MAX;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (uint64_t k = i; k < i + count && bad == UINT64_MAX; ++k)
      if (!test(k)) bad = base_ + k;
    if (bad == UINT64_MAX) {
      set_range(i, count, false);
      used_ -= count;
      return true;
    }
  }
  // Outside the lock: the warn handler is foreign code.
  warn("cma_release: pfn 0x%" PRIx64 " in area %s is not allocated", bad, name_.c_str());
  return false;
}

uint64_t CmaArea::free_pages() const {
  std::lock_guard<std::mutex> g(mu_);
  return npages_ - used_;
}

uint64_t CmaArea::largest_free_run() const {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t best = 0, run = 0;
  for (uint64_t i = 0; i < npages_; ++i) {
    run = test(i) ? 0 : run + 1;
    best = std::max(best, run);
  }
  return best;
}

}  // namespace dmabuf
