// The emulated page allocator: a buddy allocator over a range of page frame
// numbers, the stand-in for the kernel's zone free lists. It hands out
// identities (PFNs), not memory -- buffer contents live in each dma-buf's memfd
// -- so the heaps can be faithful about orders, fragmentation and fallbacks, and
// the confidential-computing heap can track, per page, whether it is private
// (encrypted) or shared (decrypted) with the host.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace dmabuf {

// The encryption state of an allocated page; free pages are always private.
enum class PageState : uint8_t {
  kPrivate = 0,  // encrypted: the normal state of every page
  kShared,       // decrypted with set_memory_decrypted (system_cc_shared only)
  kLeaked,       // shared, re-encryption failed: never freed, never reused
};

struct PageAllocStats {
  uint64_t total_pages = 0;
  uint64_t free_pages = 0;
  uint64_t shared_pages = 0;  // allocated and decrypted
  uint64_t leaked_pages = 0;  // deliberately leaked (re-encryption failed)
  uint64_t leaked_blocks = 0;
  uint64_t violations = 0;    // a non-private page was about to be handed out or freed
};

// A set of block numbers below a fixed bound, as bitmaps: one bit per number,
// and above it summary levels (a bit per nonzero word of the level below) up
// to a single word, so insert, erase and the lowest member cost a few word
// operations per level and no allocation. The bitmaps are calloc'd: the pages
// of a large, mostly untouched set are never made resident.
class BlockSet {
 public:
  static constexpr uint64_t kNone = ~uint64_t{0};

  // Numbers 0 .. bound - 1. Throws std::bad_alloc.
  explicit BlockSet(uint64_t bound = 0);
  ~BlockSet() { release(); }
  BlockSet(BlockSet&& o) noexcept { *this = std::move(o); }
  BlockSet& operator=(BlockSet&& o) noexcept;
  BlockSet(const BlockSet&) = delete;
  BlockSet& operator=(const BlockSet&) = delete;

  // true if `i` was not a member (and is now).
  bool insert(uint64_t i) {
    if (i >= bound_ || contains(i)) return false;
    ++size_;
    for (unsigned k = 0; k < nlevels_; ++k, i /= 64) {
      uint64_t& word = level_[k][i / 64];
      const bool was_empty = word == 0;
      word |= uint64_t{1} << (i % 64);
      if (!was_empty) break;  // the levels above know this word already
    }
    return true;
  }
  // true if `i` was a member (and is no more).
  bool erase(uint64_t i) {
    if (!contains(i)) return false;
    --size_;
    for (unsigned k = 0; k < nlevels_; ++k, i /= 64) {
      uint64_t& word = level_[k][i / 64];
      word &= ~(uint64_t{1} << (i % 64));
      if (word != 0) break;  // still nonzero for the level above
    }
    return true;
  }
  bool contains(uint64_t i) const { return i < bound_ && (level_[0][i / 64] >> (i % 64)) & 1; }
  // The lowest member, or kNone.
  uint64_t first() const {
    if (size_ == 0) return kNone;
    uint64_t i = 0;  // a word of the level below, found from its summary bit
    for (unsigned k = nlevels_; k-- > 0;) i = i * 64 + static_cast<uint64_t>(__builtin_ctzll(level_[k][i]));
    return i;
  }
  // Whether a member lies in [lo, hi).
  bool any_in(uint64_t lo, uint64_t hi) const;
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  static constexpr unsigned kMaxLevels = 11;  // 64^11 > 2^64
  bool any_in_level(unsigned level, uint64_t lo, uint64_t hi) const;
  void release();  // frees the bitmaps

  uint64_t bound_ = 0;
  uint64_t size_ = 0;
  unsigned nlevels_ = 0;
  uint64_t* level_[kMaxLevels] = {};  // [0]: the members; calloc'd
};

class PageAllocator {
 public:
  static constexpr unsigned kMaxOrder = 10;  // MAX_PAGE_ORDER

  // `base_pfn` must be aligned to 1 << kMaxOrder.
  PageAllocator(uint64_t base_pfn, uint64_t npages);
  PageAllocator(const PageAllocator&) = delete;
  PageAllocator& operator=(const PageAllocator&) = delete;

  // alloc_pages: the lowest free block of 2^order pages. false when no block of
  // that order or larger is free (fragmentation or exhaustion). Never returns a
  // page that is not private (asserted: a violation is counted and warned).
  bool alloc(unsigned order, uint64_t* pfn);
  // __free_pages. The block must be private: a shared or leaked block is
  // refused (warned, counted as a violation, and leaked) so that shared memory
  // can never come back as private memory.
  void free(uint64_t pfn, unsigned order);
  // free() for each block in turn, under one lock (a buffer's chunks).
  struct Block {
    uint64_t pfn;
    unsigned order;
  };
  void free_many(const Block* blocks, size_t n);
  // alloc() several times under one lock (a buffer's chunks). Violations are
  // warned about when the batch ends. Nothing else may be called on the
  // allocator from this thread while a batch is open.
  class Batch;

  // Whether no allocated page is shared or leaked: then every block is private
  // (block_is(..., kPrivate) holds for all) without asking block by block.
  bool all_private() const;

  // Encryption-state transitions on an allocated block, applied after the
  // arch's set_memory_* succeeded:
  //   private -> shared (decrypt), shared -> private (encrypt),
  //   shared -> leaked (re-encryption failed).
  // -EINVAL (and a violation) when the block is not wholly in `from` (for
  // private: allocated from this allocator and not yet converted).
  int transition(uint64_t pfn, uint64_t npages, PageState from, PageState to);
  // Whether transition(pfn, npages, from, ...) would be accepted.
  bool can_transition(uint64_t pfn, uint64_t npages, PageState from) const;
  // Whether every page of the block is in state `s`.
  bool block_is(uint64_t pfn, uint64_t npages, PageState s) const;
  // The state of one page.
  PageState state_of(uint64_t pfn) const;

  // Counts a violation found by a caller (e.g. a heap checking its buffer).
  void report_violation(const char* what, uint64_t pfn, uint64_t npages);

  PageAllocStats stats() const;
  // Free blocks of exactly this order (for tests of fragmentation).
  size_t free_blocks(unsigned order) const;
  // Leaked blocks as (pfn, npages), oldest first.
  std::vector<std::pair<uint64_t, uint64_t>> leaked() const;

  uint64_t base_pfn() const { return base_; }
  uint64_t npages() const { return npages_; }

 private:
  struct Extent {
    uint64_t npages;
    PageState state;
  };
  // First extent overlapping [pfn, pfn + n), or extents_.end().
  std::map<uint64_t, Extent>::const_iterator overlap(uint64_t pfn, uint64_t n) const;
  // A violation found under mu_, counted there and warned about after unlocking
  // (the warn handler is foreign code with locks of its own).
  struct Violation {
    const char* what = nullptr;
    uint64_t pfn = 0, npages = 0;
  };
  void violation_locked(Violation* v, const char* what, uint64_t pfn, uint64_t npages);
  static void warn_violation(const Violation& v);
  bool alloc_locked(unsigned order, uint64_t* pfn, Violation* v);
  // The checks and counts of handing out [pfn, pfn + 2^order).
  void hand_out_locked(uint64_t pfn, unsigned order, Violation* v);
  void free_locked(uint64_t pfn, unsigned order, Violation* v);
  // free_locked() of [pfn, end) as the largest aligned blocks, when no page is
  // shared or leaked (nothing to check, so no violation).
  void free_range_locked(uint64_t pfn, uint64_t end);
  int transition_locked(uint64_t pfn, uint64_t npages, PageState from, PageState to, Violation* v);
  // Whether [pfn, pfn + n) lies in this allocator and no page of it is free.
  bool allocated_locked(uint64_t pfn, uint64_t n) const;

  const uint64_t base_;
  const uint64_t npages_;
  mutable std::mutex mu_;
  // Free blocks of each order, by block number: (pfn - base_) >> order.
  BlockSet free_[kMaxOrder + 1];
  uint64_t free_pages_ = 0;
  // Non-private allocated blocks only, keyed by first pfn: empty in the common
  // case, so private-only platforms pay one empty-map check per call.
  std::map<uint64_t, Extent> extents_;
  std::vector<std::pair<uint64_t, uint64_t>> leaked_;
  uint64_t shared_pages_ = 0;
  uint64_t leaked_pages_ = 0;
  uint64_t violations_ = 0;
};

// A run of allocations of one order out of a larger block (a buffer's
// order-8 chunks from order-10 blocks): the buddy algorithm hands out the
// split block's pieces in address order, so the batch gives them out directly
// and files what is left on the free lists (the same blocks the splits would
// have left) when another order is asked for or the batch ends.
class PageAllocator::Batch {
 public:
  explicit Batch(PageAllocator& pa) : pa_(pa), lock_(pa.mu_) {}
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  bool alloc(unsigned order, uint64_t* pfn) {
    // The next piece of the block being cut (inline: a 64 MiB buffer takes 64).
    if (run_next_ != run_end_ && order == run_order_ && pa_.extents_.empty()) {
      *pfn = run_next_;
      run_next_ += 1ULL << order;
      pa_.free_pages_ -= 1ULL << order;
      return true;
    }
    return alloc_slow(order, pfn);
  }
  uint64_t free_pages() const { return pa_.free_pages_; }
  // PageAllocator::all_private() under the batch's lock.
  bool all_private() const { return pa_.extents_.empty(); }

 private:
  bool alloc_slow(unsigned order, uint64_t* pfn);
  void end_run();

  PageAllocator& pa_;
  std::unique_lock<std::mutex> lock_;
  std::vector<Violation> found_;
  // The block being handed out: [run_next_, run_end_) is still free, in
  // pieces of 2^run_order_ pages; run_start_ is where the block began.
  uint64_t run_start_ = 0, run_next_ = 0, run_end_ = 0;
  unsigned run_order_ = 0;
};

}  // namespace dmabuf
