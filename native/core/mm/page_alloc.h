// The emulated page allocator: a buddy allocator over a range of page frame
// numbers, the stand-in for the kernel's zone free lists. It hands out
// identities (PFNs), not memory -- buffer contents live in each dma-buf's memfd
// -- so the heaps can be faithful about orders, fragmentation and fallbacks, and
// the confidential-computing heap can track, per page, whether it is private
// (encrypted) or shared (decrypted) with the host.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
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
  void free_locked(uint64_t pfn, unsigned order, Violation* v);
  int transition_locked(uint64_t pfn, uint64_t npages, PageState from, PageState to, Violation* v);
  // Whether [pfn, pfn + n) lies in this allocator and no page of it is free.
  bool allocated_locked(uint64_t pfn, uint64_t n) const;

  const uint64_t base_;
  const uint64_t npages_;
  mutable std::mutex mu_;
  std::set<uint64_t> free_[kMaxOrder + 1];
  uint64_t free_pages_ = 0;
  // Non-private allocated blocks only, keyed by first pfn: empty in the common
  // case, so private-only platforms pay one empty-map check per call.
  std::map<uint64_t, Extent> extents_;
  std::vector<std::pair<uint64_t, uint64_t>> leaked_;
  uint64_t shared_pages_ = 0;
  uint64_t leaked_pages_ = 0;
  uint64_t violations_ = 0;
};

}  // namespace dmabuf
