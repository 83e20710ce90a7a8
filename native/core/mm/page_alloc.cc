#include "core/mm/page_alloc.h"

#include <cerrno>
#include <cinttypes>

#include "core/base/warn.h"

namespace dmabuf {

PageAllocator::PageAllocator(uint64_t base_pfn, uint64_t npages)
    : base_(base_pfn), npages_(npages) {
  // Seed the free lists with the largest naturally aligned blocks, as memblock
  // hands memory to the buddy allocator at boot.
  uint64_t pfn = base_pfn, left = npages;
  while (left) {
    unsigned o = kMaxOrder;
    while (o && (((pfn & ((1ULL << o) - 1)) != 0) || (1ULL << o) > left)) --o;
    free_[o].insert(pfn);
    pfn += 1ULL << o;
    left -= 1ULL << o;
  }
  free_pages_ = npages;
}

std::map<uint64_t, PageAllocator::Extent>::const_iterator PageAllocator::overlap(
    uint64_t pfn, uint64_t n) const {
  if (extents_.empty()) return extents_.end();
  auto it = extents_.upper_bound(pfn);  // first extent starting after pfn
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.npages > pfn) return prev;
  }
  if (it != extents_.end() && it->first < pfn + n) return it;
  return extents_.end();
}

void PageAllocator::violation_locked(Violation* v, const char* what, uint64_t pfn,
                                     uint64_t npages) {
  ++violations_;
  *v = {what, pfn, npages};
}

void PageAllocator::warn_violation(const Violation& v) {
  if (v.what)
    warn("page state violation: %s (pfn 0x%" PRIx64 ", %" PRIu64 " pages)", v.what, v.pfn, v.npages);
}

void PageAllocator::report_violation(const char* what, uint64_t pfn, uint64_t npages) {
  Violation v;
  {
    std::lock_guard<std::mutex> g(mu_);
    violation_locked(&v, what, pfn, npages);
  }
  warn_violation(v);
}

bool PageAllocator::alloc(unsigned order, uint64_t* pfn) {
  if (order > kMaxOrder) return false;
  Violation v;
  bool ok;
  {
    std::lock_guard<std::mutex> g(mu_);
    ok = alloc_locked(order, pfn, &v);
  }
  warn_violation(v);
  return ok;
}

void PageAllocator::free(uint64_t pfn, unsigned order) {
  Violation v;
  {
    std::lock_guard<std::mutex> g(mu_);
    free_locked(pfn, order, &v);
  }
  warn_violation(v);
}

int PageAllocator::transition(uint64_t pfn, uint64_t npages, PageState from, PageState to) {
  Violation v;
  int err;
  {
    std::lock_guard<std::mutex> g(mu_);
    err = transition_locked(pfn, npages, from, to, &v);
  }
  warn_violation(v);
  return err;
}

bool PageAllocator::alloc_locked(unsigned order, uint64_t* pfn, Violation* v) {
  unsigned o = order;
  while (o <= kMaxOrder && free_[o].empty()) ++o;
  if (o > kMaxOrder) return false;
  const uint64_t p = *free_[o].begin();
  free_[o].erase(free_[o].begin());
  // Split, giving the upper halves back (expand() in the kernel).
  while (o > order) {
    --o;
    free_[o].insert(p + (1ULL << o));
  }
  free_pages_ -= 1ULL << order;
  if (overlap(p, 1ULL << order) != extents_.end())
    violation_locked(v, "alloc_pages would hand out a non-private page", p, 1ULL << order);
  *pfn = p;
  return true;
}

void PageAllocator::free_locked(uint64_t pfn, unsigned order, Violation* v) {
  const uint64_t n = 1ULL << order;
  if (overlap(pfn, n) != extents_.end()) {
    violation_locked(v, "freeing a non-private page; leaking it instead", pfn, n);
    return;
  }
  free_pages_ += n;
  // Merge with free buddies (base_ is max-order aligned, so XOR finds them).
  while (order < kMaxOrder) {
    const uint64_t buddy = pfn ^ (1ULL << order);
    auto it = free_[order].find(buddy);
    if (it == free_[order].end()) break;
    free_[order].erase(it);
    pfn &= ~(1ULL << order);
    ++order;
  }
  free_[order].insert(pfn);
}

bool PageAllocator::allocated_locked(uint64_t pfn, uint64_t n) const {
  if (pfn < base_ || pfn + n > base_ + npages_ || n == 0) return false;
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    const uint64_t size = 1ULL << o;
    // A free block of order o overlaps [pfn, pfn + n) iff it starts in
    // (pfn - size, pfn + n).
    auto it = free_[o].lower_bound(pfn >= size - 1 ? pfn - (size - 1) : 0);
    if (it != free_[o].end() && *it < pfn + n) return false;
  }
  return true;
}

int PageAllocator::transition_locked(uint64_t pfn, uint64_t npages, PageState from,
                                     PageState to, Violation* v) {
  auto it = overlap(pfn, npages);
  if (from == PageState::kPrivate) {
    if (it != extents_.end() || to == PageState::kPrivate || !allocated_locked(pfn, npages)) {
      violation_locked(v, "decrypting a page that is not private", pfn, npages);
      return -EINVAL;
    }
    extents_.emplace(pfn, Extent{npages, to});
    if (to == PageState::kShared) shared_pages_ += npages;
    return 0;
  }
  if (it == extents_.end() || it->first != pfn || it->second.npages != npages ||
      it->second.state != from || to == from) {
    violation_locked(v, "page state transition from the wrong state", pfn, npages);
    return -EINVAL;
  }
  if (from == PageState::kShared) shared_pages_ -= npages;
  if (to == PageState::kPrivate) {
    extents_.erase(it);
  } else {
    extents_[pfn].state = to;
    if (to == PageState::kShared) shared_pages_ += npages;
    if (to == PageState::kLeaked) {
      leaked_pages_ += npages;
      leaked_.emplace_back(pfn, npages);
    }
  }
  return 0;
}

bool PageAllocator::can_transition(uint64_t pfn, uint64_t npages, PageState from) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = overlap(pfn, npages);
  if (from == PageState::kPrivate) return it == extents_.end() && allocated_locked(pfn, npages);
  return it != extents_.end() && it->first == pfn && it->second.npages == npages &&
         it->second.state == from;
}

bool PageAllocator::block_is(uint64_t pfn, uint64_t npages, PageState s) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = overlap(pfn, npages);
  if (s == PageState::kPrivate) return it == extents_.end();
  return it != extents_.end() && it->first <= pfn &&
         it->first + it->second.npages >= pfn + npages && it->second.state == s;
}

PageState PageAllocator::state_of(uint64_t pfn) const {
  std::lock_guard<std::mutex> g(mu_);
  auto it = overlap(pfn, 1);
  return it == extents_.end() ? PageState::kPrivate : it->second.state;
}

PageAllocStats PageAllocator::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  PageAllocStats s;
  s.total_pages = npages_;
  s.free_pages = free_pages_;
  s.shared_pages = shared_pages_;
  s.leaked_pages = leaked_pages_;
  s.leaked_blocks = leaked_.size();
  s.violations = violations_;
  return s;
}

size_t PageAllocator::free_blocks(unsigned order) const {
  if (order > kMaxOrder) return 0;
  std::lock_guard<std::mutex> g(mu_);
  return free_[order].size();
}

std::vector<std::pair<uint64_t, uint64_t>> PageAllocator::leaked() const {
  std::lock_guard<std::mutex> g(mu_);
  return leaked_;
}

}  // namespace dmabuf
