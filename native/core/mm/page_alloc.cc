#include "core/mm/page_alloc.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <new>

#include "core/base/warn.h"

namespace dmabuf {

// --- BlockSet ---

BlockSet::BlockSet(uint64_t bound) : bound_(bound) {
  if (bound == 0) return;
  uint64_t bits = bound;
  for (;;) {
    const uint64_t words = (bits + 63) / 64;
    level_[nlevels_] = static_cast<uint64_t*>(std::calloc(words, sizeof(uint64_t)));
    if (!level_[nlevels_]) {
      release();
      throw std::bad_alloc();
    }
    ++nlevels_;
    if (words == 1) break;
    bits = words;
  }
}

void BlockSet::release() {
  for (unsigned k = 0; k < nlevels_; ++k) std::free(level_[k]);
  nlevels_ = 0;
}

BlockSet& BlockSet::operator=(BlockSet&& o) noexcept {
  if (this != &o) {
    release();
    bound_ = std::exchange(o.bound_, 0);
    size_ = std::exchange(o.size_, 0);
    nlevels_ = std::exchange(o.nlevels_, 0);
    for (unsigned k = 0; k < kMaxLevels; ++k) level_[k] = std::exchange(o.level_[k], nullptr);
  }
  return *this;
}

bool BlockSet::any_in(uint64_t lo, uint64_t hi) const {
  if (hi > bound_) hi = bound_;
  return size_ != 0 && lo < hi && any_in_level(0, lo, hi);
}

// Bits [lo, hi) of one level; the whole words in between are asked of the
// level above, where each is one bit.
bool BlockSet::any_in_level(unsigned level, uint64_t lo, uint64_t hi) const {
  const uint64_t* w = level_[level];
  const uint64_t wlo = lo / 64, whi = (hi - 1) / 64;
  const uint64_t lo_mask = ~uint64_t{0} << (lo % 64);
  const uint64_t hi_mask = ~uint64_t{0} >> (63 - (hi - 1) % 64);
  if (wlo == whi) return (w[wlo] & lo_mask & hi_mask) != 0;
  if ((w[wlo] & lo_mask) || (w[whi] & hi_mask)) return true;
  return wlo + 1 < whi && any_in_level(level + 1, wlo + 1, whi);
}

// --- PageAllocator ---

PageAllocator::PageAllocator(uint64_t base_pfn, uint64_t npages)
    : base_(base_pfn), npages_(npages) {
  for (unsigned o = 0; o <= kMaxOrder; ++o) free_[o] = BlockSet((npages >> o) + 1);
  // Seed the free lists with the largest naturally aligned blocks, as memblock
  // hands memory to the buddy allocator at boot.
  uint64_t pfn = base_pfn, left = npages;
  while (left) {
    unsigned o = kMaxOrder;
    while (o && (((pfn & ((1ULL << o) - 1)) != 0) || (1ULL << o) > left)) --o;
    free_[o].insert((pfn - base_) >> o);
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

bool PageAllocator::Batch::alloc_slow(unsigned order, uint64_t* pfn) {
  if (order > kMaxOrder) return false;
  Violation v;
  if (run_next_ == run_end_ || order != run_order_) {
    end_run();
    unsigned o = order;
    while (o <= kMaxOrder && pa_.free_[o].empty()) ++o;
    if (o > kMaxOrder) return false;
    if (o == order) {
      pa_.alloc_locked(order, pfn, &v);
    } else {
      // Orders order .. o - 1 have no free block: the next allocations of
      // this order are this block's pieces, lowest first.
      const uint64_t first = pa_.free_[o].first();
      pa_.free_[o].erase(first);
      run_start_ = pa_.base_ + (first << o);
      run_end_ = run_start_ + (1ULL << o);
      run_order_ = order;
      *pfn = run_start_;
      run_next_ = run_start_ + (1ULL << order);
      pa_.hand_out_locked(*pfn, order, &v);
    }
  } else {
    *pfn = run_next_;
    run_next_ += 1ULL << order;
    pa_.hand_out_locked(*pfn, order, &v);
  }
  if (v.what) found_.push_back(v);
  return true;
}

// Files the rest of the block as the splits would have left it: the largest
// aligned pieces, in address order.
void PageAllocator::Batch::end_run() {
  while (run_next_ < run_end_) {
    const auto o = static_cast<unsigned>(__builtin_ctzll(run_next_ - run_start_));
    pa_.free_[o].insert((run_next_ - pa_.base_) >> o);
    run_next_ += 1ULL << o;
  }
  run_next_ = run_end_ = 0;
}

PageAllocator::Batch::~Batch() {
  end_run();
  lock_.unlock();
  for (const Violation& v : found_) warn_violation(v);
}

void PageAllocator::free_range_locked(uint64_t pfn, uint64_t end) {
  while (pfn < end) {
    const uint64_t off = pfn - base_;
    unsigned o = off ? std::min<unsigned>(__builtin_ctzll(off), kMaxOrder) : kMaxOrder;
    while ((1ULL << o) > end - pfn) --o;
    Violation unused;
    free_locked(pfn, o, &unused);
    pfn += 1ULL << o;
  }
}

void PageAllocator::free_many(const Block* blocks, size_t n) {
  std::vector<Violation> found;  // warned after unlocking; empty unless a caller erred
  {
    std::lock_guard<std::mutex> g(mu_);
    if (extents_.empty()) {
      // A buffer's chunks are mostly runs of adjacent blocks (cut from one
      // larger block). Buddy merging leaves the same free lists whatever the
      // order of the frees, so each run is freed as the largest aligned
      // blocks it holds: a few merges instead of some per chunk.
      for (size_t i = 0; i < n;) {
        const uint64_t start = blocks[i].pfn;
        uint64_t end = start + (1ULL << blocks[i].order);
        while (++i < n && blocks[i].pfn == end) end += 1ULL << blocks[i].order;
        free_range_locked(start, end);
      }
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      Violation v;
      free_locked(blocks[i].pfn, blocks[i].order, &v);
      if (v.what) found.push_back(v);
    }
  }
  for (const Violation& v : found) warn_violation(v);
}

bool PageAllocator::all_private() const {
  std::lock_guard<std::mutex> g(mu_);
  return extents_.empty();
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
  const uint64_t first = free_[o].first();
  free_[o].erase(first);
  const uint64_t p = base_ + (first << o);
  // Split, giving the upper halves back (expand() in the kernel).
  while (o > order) {
    --o;
    free_[o].insert(((p - base_) >> o) + 1);
  }
  hand_out_locked(p, order, v);
  *pfn = p;
  return true;
}

void PageAllocator::hand_out_locked(uint64_t pfn, unsigned order, Violation* v) {
  free_pages_ -= 1ULL << order;
  if (!extents_.empty() && overlap(pfn, 1ULL << order) != extents_.end())
    violation_locked(v, "alloc_pages would hand out a non-private page", pfn, 1ULL << order);
}

void PageAllocator::free_locked(uint64_t pfn, unsigned order, Violation* v) {
  const uint64_t n = 1ULL << order;
  if (!extents_.empty() && overlap(pfn, n) != extents_.end()) {
    violation_locked(v, "freeing a non-private page; leaking it instead", pfn, n);
    return;
  }
  free_pages_ += n;
  // Merge with free buddies (base_ is max-order aligned, so XOR finds them).
  while (order < kMaxOrder) {
    const uint64_t buddy = pfn ^ (1ULL << order);
    if (!free_[order].erase((buddy - base_) >> order)) break;
    pfn &= ~(1ULL << order);
    ++order;
  }
  free_[order].insert((pfn - base_) >> order);
}

bool PageAllocator::allocated_locked(uint64_t pfn, uint64_t n) const {
  if (pfn < base_ || pfn + n > base_ + npages_ || n == 0) return false;
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    // A free block of order o overlaps [pfn, pfn + n) iff it starts in
    // (pfn - size, pfn + n): block numbers from the one holding pfn to the
    // one holding pfn + n - 1.
    if (free_[o].any_in((pfn - base_) >> o, ((pfn + n - 1 - base_) >> o) + 1)) return false;
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
