// How the emulated heaps build buffers: the system heap's order-8/4/0 chunks
// and fallbacks, the CMA area's contiguous aligned runs and its fragmentation,
// the protected pools; and the allocators and fault points underneath.
#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "core/base/fault_inject.h"
#include "core/buffer/mapping.h"
#include "core/mm/cma_area.h"
#include "core/mm/page_alloc.h"
#include "heap_test_util.h"
#include <cstring>

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

std::vector<unsigned> chunk_orders(DmaBuf* b) {
  std::vector<unsigned> orders;
  const uint64_t ps = b->platform->page_size();
  for (const SgEntry& e : dma_buf_sg_table(b).entries) {
    unsigned o = 0;
    while ((ps << o) < e.length) ++o;
    EXPECT_EQ(ps << o, e.length) << "a chunk is a power-of-two number of pages";
    orders.push_back(o);
  }
  return orders;
}

class SystemHeap : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 32ULL << 20;
    p_ = make_platform(c);
    heap_ = open_heap(p_.get(), "system");
  }
  // Every page allocation of `order` fails from now on (as __GFP_NORETRY may).
  void fail_order(unsigned order) {
    FaultSpec spec;
    spec.nth = 1;
    spec.times = 0;
    spec.order = order;
    ASSERT_EQ(platform_set_fault(p_.get(), "alloc_pages", spec), 0);
  }
  PlatformPtr p_;
  Heap* heap_ = nullptr;
};

TEST_F(SystemHeap, ChunksAreLargestOrderFirstAndNeverGrow) {
  struct Case {
    uint64_t len;
    std::vector<unsigned> orders;
  };
  const Case cases[] = {
      {4096, {0}},
      {64 << 10, {4}},
      {(64 << 10) + 4096, {4, 0}},
      {1 << 20, {8}},
      {(1 << 20) + (64 << 10) + 4096, {8, 4, 0}},
      {(2 << 20) + (3 * 4096), {8, 8, 0, 0, 0}},
      {(1 << 20) - 4096, std::vector<unsigned>(15, 4)},  // 15 x 64K then 15 x 4K
  };
  for (const Case& c : cases) {
    DmaBuf* b = alloc_rw(heap_, c.len);
    ASSERT_NE(b, nullptr);
    std::vector<unsigned> want = c.orders;
    if (c.len == (1 << 20) - 4096) want.insert(want.end(), 15, 0);
    EXPECT_EQ(chunk_orders(b), want) << c.len;
    EXPECT_FALSE(dma_buf_sg_table(b).cc_shared);
    dma_buf_close(b);
  }
  EXPECT_EQ(p_->pages->stats().free_pages, p_->pages->stats().total_pages);
}

TEST_F(SystemHeap, HighOrdersFallBackWhenTheyFail) {
  // Order 8 always fails (as with __GFP_NORETRY under pressure): 64K chunks.
  fail_order(8);
  DmaBuf* b = alloc_rw(heap_, 1 << 20);
  EXPECT_EQ(chunk_orders(b), std::vector<unsigned>(16, 4));
  dma_buf_close(b);
  // Order 4 fails instead: 4K pages below a MiB. Max order drops with each fallback.
  fail_order(4);
  b = alloc_rw(heap_, (1 << 20) + (64 << 10));
  std::vector<unsigned> orders = chunk_orders(b);
  ASSERT_EQ(orders.size(), 1u + 16u);
  EXPECT_EQ(orders[0], 8u);  // order 8 works again (the spec only fails order 4)
  for (size_t i = 1; i < orders.size(); ++i) EXPECT_EQ(orders[i], 0u);
  dma_buf_close(b);
  // Order 0 failing is the end: ENOMEM, everything given back.
  fail_order(0);
  DmaBuf* x = nullptr;
  EXPECT_EQ(dma_heap_alloc(heap_, (1 << 20) + 4096, O_RDWR, 0, &x), -ENOMEM);
  EXPECT_EQ(p_->pages->stats().free_pages, p_->pages->stats().total_pages);
}

TEST_F(SystemHeap, ABufferOfHundredsOfChunksGivesEveryChunkBack) {
  // Order 4 fails and 1 MiB - 4 KiB is too small for order 8: 255 order-0
  // chunks, more than free_chunks() reads back from the scatterlist on its stack.
  fail_order(4);
  DmaBuf* b = alloc_rw(heap_, (1 << 20) - 4096);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(chunk_orders(b), std::vector<unsigned>(255, 0));
  dma_buf_close(b);
  EXPECT_EQ(p_->pages->stats().free_pages, p_->pages->stats().total_pages);
  EXPECT_EQ(p_->pages->free_blocks(PageAllocator::kMaxOrder), 8u);  // buddies merged back
}

TEST_F(SystemHeap, FragmentationForcesSmallerChunks) {
  // Fill RAM with 64K buffers, free every other one: plenty free, no 1 MiB block.
  std::vector<DmaBuf*> bufs;
  for (;;) {
    DmaBuf* b = nullptr;
    if (dma_heap_alloc(heap_, 64 << 10, O_RDWR, 0, &b)) break;
    bufs.push_back(b);
  }
  ASSERT_EQ(bufs.size(), 512u);  // 32 MiB / 64 KiB
  for (size_t i = 0; i < bufs.size(); i += 2) dma_buf_close(bufs[i]);
  EXPECT_EQ(p_->pages->free_blocks(8), 0u);
  DmaBuf* big = alloc_rw(heap_, 1 << 20);
  EXPECT_EQ(chunk_orders(big), std::vector<unsigned>(16, 4));
  dma_buf_close(big);
  for (size_t i = 1; i < bufs.size(); i += 2) dma_buf_close(bufs[i]);
  // Buddies merge back: 32 MiB is eight order-10 blocks again.
  EXPECT_EQ(p_->pages->free_blocks(PageAllocator::kMaxOrder), 8u);
}

TEST_F(SystemHeap, AFatalSignalStopsTheAllocationWithEintr) {
  FaultSpec spec;
  spec.nth = 3;  // checked before each chunk: dies before the third
  ASSERT_EQ(platform_set_fault(p_.get(), "fatal_signal_pending", spec), 0);
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(heap_, 4 << 20, O_RDWR, 0, &b), -EINTR);
  EXPECT_EQ(p_->fault(FaultSite::kFatalSignal).calls(), 3u);
  EXPECT_EQ(p_->pages->stats().free_pages, p_->pages->stats().total_pages);
}

TEST_F(SystemHeap, BuffersAreZeroedEvenWhenMemoryIsReused) {
  for (int round = 0; round < 3; ++round) {
    DmaBuf* b = alloc_rw(heap_, 1 << 20);
    Mapping* m = nullptr;
    ASSERT_EQ(dma_buf_mmap(b, 0, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);
    const auto* c = static_cast<const unsigned char*>(m->addr);
    for (size_t i = 0; i < (1 << 20); i += 512) ASSERT_EQ(c[i], 0) << round << "@" << i;
    memset(m->addr, 0xa5, 1 << 20);
    mapping_put(m);
    dma_buf_close(b);
  }
}

// --- CMA ---

class CmaHeap : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.ram_bytes = 128ULL << 20;
    c.cma_bytes = 64ULL << 20;
    p_ = make_platform(c);
    heap_ = open_heap(p_.get(), "default_cma_region");
  }
  PlatformPtr p_;
  Heap* heap_ = nullptr;
};

TEST_F(CmaHeap, BuffersAreOneContiguousAlignedRun) {
  DmaBuf* small = alloc_rw(heap_, 4096);
  DmaBuf* mib = alloc_rw(heap_, 1 << 20);
  DmaBuf* odd = alloc_rw(heap_, 3 * 4096);
  ASSERT_TRUE(small && mib && odd);
  for (DmaBuf* b : {small, mib, odd}) {
    SgTable t = dma_buf_sg_table(b);
    ASSERT_EQ(t.entries.size(), 1u);
    EXPECT_EQ(t.entries[0].length, b->size);
    const uint64_t pfn = t.entries[0].phys >> 12;
    EXPECT_GE(pfn, p_->cma->base_pfn());
    EXPECT_LE(pfn + b->size / 4096, p_->cma->base_pfn() + p_->cma->npages());
  }
  // Aligned to get_order(size): 1 MiB on 256 pages, 12 KiB on 4 pages.
  EXPECT_EQ((dma_buf_sg_table(mib).entries[0].phys >> 12) % 256, 0u);
  EXPECT_EQ((dma_buf_sg_table(odd).entries[0].phys >> 12) % 4, 0u);
  EXPECT_EQ(small->exp_name, "default_cma_region");
  for (DmaBuf* b : {small, mib, odd}) dma_buf_close(b);
  EXPECT_EQ(p_->cma->free_pages(), p_->cma->npages());
}

TEST_F(CmaHeap, FullOrFragmentedIsEnomem) {
  std::vector<DmaBuf*> quarters;
  for (int i = 0; i < 4; ++i) quarters.push_back(alloc_rw(heap_, 16 << 20));
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(heap_, 4096, O_RDWR, 0, &b), -ENOMEM);  // full
  dma_buf_close(quarters[0]);
  dma_buf_close(quarters[2]);
  EXPECT_EQ(p_->cma->free_pages() * 4096, 32u << 20);
  EXPECT_EQ(dma_heap_alloc(heap_, 32 << 20, O_RDWR, 0, &b), -ENOMEM);  // fragmented
  ASSERT_EQ(dma_heap_alloc(heap_, 16 << 20, O_RDWR, 0, &b), 0);
  dma_buf_close(b);
  // The legacy name is the same area: what one takes, the other cannot.
  Heap* legacy = open_heap(p_.get(), "reserved");
  ASSERT_EQ(dma_heap_alloc(legacy, 16 << 20, O_RDWR, 0, &b), 0);
  EXPECT_EQ(b->exp_name, "reserved");
  DmaBuf* c = nullptr;
  ASSERT_EQ(dma_heap_alloc(heap_, 16 << 20, O_RDWR, 0, &c), 0);
  DmaBuf* d = nullptr;
  EXPECT_EQ(dma_heap_alloc(heap_, 4096, O_RDWR, 0, &d), -ENOMEM);
  for (DmaBuf* x : {b, c, quarters[1], quarters[3]}) dma_buf_close(x);
  EXPECT_EQ(p_->cma->free_pages(), p_->cma->npages());
}

TEST_F(CmaHeap, LargerThanTheAreaIsEnomemAndInjectedFailuresToo) {
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(heap_, 65ULL << 20, O_RDWR, 0, &b), -ENOMEM);
  FaultSpec once;
  once.nth = 1;
  ASSERT_EQ(platform_set_fault(p_.get(), "cma_alloc", once), 0);
  EXPECT_EQ(dma_heap_alloc(heap_, 4096, O_RDWR, 0, &b), -ENOMEM);
  ASSERT_EQ(dma_heap_alloc(heap_, 4096, O_RDWR, 0, &b), 0);
  dma_buf_close(b);
  // CMA comes out of RAM: the system heap gets what is left.
  EXPECT_EQ(p_->pages->stats().total_pages * 4096, 64ULL << 20);
}

TEST(ProtectedHeap, PoolExhaustionIsEnomem) {
  PlatformPtr p = make_platform(full_config());  // 48 MiB pool
  Heap* h = open_heap(p.get(), "protected,secure-video");
  DmaBuf *a = nullptr, *b = nullptr;
  ASSERT_EQ(dma_heap_alloc(h, 40 << 20, O_RDWR, 0, &a), 0);
  EXPECT_EQ(dma_heap_alloc(h, 16 << 20, O_RDWR, 0, &b), -ENOMEM);
  dma_buf_close(a);
  ASSERT_EQ(dma_heap_alloc(h, 16 << 20, O_RDWR, 0, &b), 0);
  dma_buf_close(b);
}

// --- the allocators underneath ---

TEST(PageAllocator, SplitsAndMergesBuddies) {
  PageAllocator pa(1 << 20, 2048);  // two order-10 blocks
  EXPECT_EQ(pa.free_blocks(10), 2u);
  uint64_t a, b, c;
  ASSERT_TRUE(pa.alloc(0, &a));
  EXPECT_EQ(a, 1u << 20);  // lowest first
  EXPECT_EQ(pa.free_blocks(10), 1u);
  for (unsigned o = 0; o < 10; ++o) EXPECT_EQ(pa.free_blocks(o), 1u) << o;
  ASSERT_TRUE(pa.alloc(0, &b));
  EXPECT_EQ(b, a + 1);
  ASSERT_TRUE(pa.alloc(10, &c));
  EXPECT_FALSE(pa.alloc(10, &c));  // the other one is split
  pa.free(a, 0);
  pa.free(b, 0);
  EXPECT_EQ(pa.free_blocks(10), 1u);
  EXPECT_EQ(pa.stats().free_pages, 1024u);
  pa.free(c, 10);
  EXPECT_EQ(pa.free_blocks(10), 2u);
  EXPECT_FALSE(pa.alloc(11, &c));
}

TEST(PageAllocator, OddSizesSeedSmallerBlocks) {
  PageAllocator pa(1 << 20, 1024 + 256 + 3);
  EXPECT_EQ(pa.free_blocks(10), 1u);
  EXPECT_EQ(pa.free_blocks(8), 1u);
  EXPECT_EQ(pa.free_blocks(1), 1u);
  EXPECT_EQ(pa.free_blocks(0), 1u);
  EXPECT_EQ(pa.stats().free_pages, 1283u);
}

TEST(PageAllocator, SharedPagesCanNeitherBeFreedNorHandedOut) {
  WarnCapture w;
  PageAllocator pa(1 << 20, 1024);
  uint64_t a;
  ASSERT_TRUE(pa.alloc(4, &a));
  // Decrypting memory that is free, or not ours, is refused.
  EXPECT_EQ(pa.transition(a + 16, 16, PageState::kPrivate, PageState::kShared), -EINVAL);
  EXPECT_EQ(pa.transition(5, 1, PageState::kPrivate, PageState::kShared), -EINVAL);
  EXPECT_EQ(pa.stats().violations, 2u);
  ASSERT_EQ(pa.transition(a, 16, PageState::kPrivate, PageState::kShared), 0);
  EXPECT_TRUE(pa.block_is(a, 16, PageState::kShared));
  EXPECT_EQ(pa.state_of(a + 3), PageState::kShared);
  pa.free(a, 4);  // refused and leaked rather than reused
  EXPECT_EQ(pa.stats().violations, 3u);
  EXPECT_EQ(pa.stats().free_pages, 1024u - 16u);
  EXPECT_EQ(pa.transition(a, 16, PageState::kPrivate, PageState::kShared), -EINVAL);  // already shared
  ASSERT_EQ(pa.transition(a, 16, PageState::kShared, PageState::kPrivate), 0);
  pa.free(a, 4);
  EXPECT_EQ(pa.stats().free_pages, 1024u);
  EXPECT_EQ(w.count_containing("page state violation"), 4u);
}

TEST(BlockSet, LowestMemberAndRangesAcrossSummaryLevels) {
  BlockSet s(300000);  // four levels: 4688, 74, 2 and 1 words
  EXPECT_EQ(s.first(), BlockSet::kNone);
  EXPECT_FALSE(s.any_in(0, 300000));
  EXPECT_TRUE(s.insert(299999));
  EXPECT_FALSE(s.insert(299999));  // already a member
  EXPECT_FALSE(s.insert(300000));  // out of range
  EXPECT_TRUE(s.insert(70000));
  EXPECT_TRUE(s.insert(4096));
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.first(), 4096u);
  EXPECT_TRUE(s.any_in(0, 4097));
  EXPECT_FALSE(s.any_in(0, 4096));
  EXPECT_FALSE(s.any_in(4097, 70000));
  EXPECT_TRUE(s.any_in(4097, 70001));
  EXPECT_TRUE(s.any_in(299999, 400000));  // clamped to the bound
  EXPECT_TRUE(s.erase(4096));
  EXPECT_FALSE(s.erase(4096));
  EXPECT_FALSE(s.contains(4096));
  EXPECT_EQ(s.first(), 70000u);
  EXPECT_TRUE(s.erase(70000));
  EXPECT_EQ(s.first(), 299999u);
  EXPECT_TRUE(s.erase(299999));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.first(), BlockSet::kNone);
  // Neighbours in one word: erasing one keeps the word (and its summary bit).
  s.insert(64);
  s.insert(65);
  s.erase(64);
  EXPECT_EQ(s.first(), 65u);
}

// The buddy allocator as it was written first (ordered sets per order), to
// check the bitmap one against: same blocks handed out, same free lists.
class ReferenceBuddy {
 public:
  ReferenceBuddy(uint64_t base, uint64_t npages) {
    uint64_t pfn = base, left = npages;
    while (left) {
      unsigned o = PageAllocator::kMaxOrder;
      while (o && (((pfn & ((1ULL << o) - 1)) != 0) || (1ULL << o) > left)) --o;
      free_[o].insert(pfn);
      pfn += 1ULL << o;
      left -= 1ULL << o;
    }
  }
  bool alloc(unsigned order, uint64_t* pfn) {
    unsigned o = order;
    while (o <= PageAllocator::kMaxOrder && free_[o].empty()) ++o;
    if (o > PageAllocator::kMaxOrder) return false;
    const uint64_t p = *free_[o].begin();
    free_[o].erase(free_[o].begin());
    while (o > order) {
      --o;
      free_[o].insert(p + (1ULL << o));
    }
    *pfn = p;
    return true;
  }
  void free(uint64_t pfn, unsigned order) {
    while (order < PageAllocator::kMaxOrder && free_[order].erase(pfn ^ (1ULL << order))) {
      pfn &= ~(1ULL << order);
      ++order;
    }
    free_[order].insert(pfn);
  }
  size_t free_blocks(unsigned o) const { return free_[o].size(); }

 private:
  std::set<uint64_t> free_[PageAllocator::kMaxOrder + 1];
};

TEST(PageAllocator, HandsOutWhatTheOrderedSetBuddyDid) {
  const uint64_t base = 1 << 20, npages = 3 * 1024 + 512 + 7;
  PageAllocator pa(base, npages);
  ReferenceBuddy ref(base, npages);
  std::mt19937_64 rng(42);
  std::vector<PageAllocator::Block> held;
  // One allocation from `alloc` (the allocator or a batch of it) and from the
  // reference: the same outcome and the same block.
  auto take = [&](auto&& alloc, unsigned order, int step) {
    uint64_t got = 0, want = 0;
    const bool ok = alloc(order, &got);
    if (ok != ref.alloc(order, &want) || (ok && got != want)) {
      ADD_FAILURE() << "step " << step << ", order " << order << ": " << ok << " " << got << " vs " << want;
      return false;
    }
    if (ok) held.push_back({got, order});
    return true;
  };
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 8 == 0) {
      // A batch, as a buffer's allocation makes: runs of one order, then smaller ones.
      const size_t first = held.size();
      {
        PageAllocator::Batch batch(pa);
        unsigned order = static_cast<unsigned>(rng() % 11);
        for (int k = 0, n = static_cast<int>(rng() % 24); k < n; ++k) {
          if (rng() % 6 == 0) order = static_cast<unsigned>(rng() % (order + 1));
          if (!take([&](unsigned o, uint64_t* pfn) { return batch.alloc(o, pfn); }, order, step)) return;
        }
      }
      if (rng() % 2 == 0 && held.size() > first) {
        // Freed together, as a buffer's release frees its chunks: mostly runs
        // of adjacent blocks, which free_many() frees as larger blocks.
        std::vector<PageAllocator::Block> out(held.begin() + static_cast<std::ptrdiff_t>(first), held.end());
        held.resize(first);
        pa.free_many(out.data(), out.size());
        for (const auto& b : out) ref.free(b.pfn, b.order);
      }
    } else if (held.empty() || rng() % 3 != 0) {
      const auto order = static_cast<unsigned>(rng() % 11);
      if (!take([&](unsigned o, uint64_t* pfn) { return pa.alloc(o, pfn); }, order, step)) return;
    } else {
      // Now and then several at once, as a buffer's release does.
      const size_t n = rng() % 4 == 0 ? std::min<size_t>(held.size(), 1 + rng() % 8) : 1;
      std::vector<PageAllocator::Block> out;
      for (size_t k = 0; k < n; ++k) {
        const size_t i = rng() % held.size();
        out.push_back(held[i]);
        held[i] = held.back();
        held.pop_back();
      }
      if (n == 1) pa.free(out[0].pfn, out[0].order);
      else pa.free_many(out.data(), out.size());
      for (const auto& b : out) ref.free(b.pfn, b.order);
    }
    if (step % 100 == 0) {
      for (unsigned o = 0; o <= PageAllocator::kMaxOrder; ++o) ASSERT_EQ(pa.free_blocks(o), ref.free_blocks(o)) << step;
    }
  }
  pa.free_many(held.data(), held.size());
  EXPECT_EQ(pa.stats().free_pages, npages);
  EXPECT_EQ(pa.free_blocks(10), 3u);
  EXPECT_TRUE(pa.all_private());
}

TEST(CmaAreaAlloc, FirstFitWithPhysicalAlignment) {
  CmaArea area("test", (1 << 20) + 3, 64);  // base not aligned
  uint64_t a, b;
  ASSERT_TRUE(area.alloc(4, 2, &a));
  EXPECT_EQ(a % 4, 0u);
  EXPECT_GE(a, (1u << 20) + 3);
  ASSERT_TRUE(area.alloc(1, 0, &b));
  EXPECT_EQ(b, (1u << 20) + 3);  // the unaligned head is usable for order 0
  WarnCapture w;
  EXPECT_FALSE(area.release(b + 10, 1));  // not allocated
  EXPECT_FALSE(area.release(0, 1));      // not ours
  EXPECT_TRUE(area.release(b, 1));
  EXPECT_TRUE(area.release(a, 4));
  EXPECT_EQ(area.free_pages(), 64u);
  EXPECT_EQ(area.largest_free_run(), 64u);
  EXPECT_FALSE(area.alloc(65, 0, &a));
  EXPECT_FALSE(area.alloc(0, 0, &a));
}

TEST(FaultInjection, NthAndTimes) {
  FaultPoint fp;
  EXPECT_EQ(fp.check(-ENOMEM), 0);
  EXPECT_EQ(fp.calls(), 0u);  // disarmed points do not count
  FaultSpec s;
  s.nth = 3;
  s.times = 2;
  ASSERT_EQ(fp.configure(s), 0);
  std::vector<int> got;
  for (int i = 0; i < 6; ++i) got.push_back(fp.check(-ENOMEM));
  EXPECT_EQ(got, (std::vector<int>{0, 0, -ENOMEM, -ENOMEM, 0, 0}));
  EXPECT_EQ(fp.calls(), 6u);
  EXPECT_EQ(fp.injected(), 2u);
  s.nth = 1;
  s.times = 0;
  s.error = -EIO;
  ASSERT_EQ(fp.configure(s), 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fp.check(-ENOMEM), -EIO);
  fp.disarm();
  EXPECT_EQ(fp.check(-ENOMEM), 0);
}

TEST(FaultInjection, ProbabilityIsSeededAndCapped) {
  FaultPoint a, b;
  FaultSpec s;
  s.probability = 0.3;
  s.seed = 42;
  s.times = 0;
  ASSERT_EQ(a.configure(s), 0);
  ASSERT_EQ(b.configure(s), 0);
  int fails = 0;
  for (int i = 0; i < 10000; ++i) {
    const int x = a.check(-ENOMEM);
    EXPECT_EQ(x, b.check(-ENOMEM));  // same seed, same sequence
    fails += x != 0;
  }
  EXPECT_GT(fails, 2700);
  EXPECT_LT(fails, 3300);
  s.seed = 43;
  ASSERT_EQ(b.configure(s), 0);
  ASSERT_EQ(a.configure(FaultSpec{s.nth, s.times, s.probability, 42, 0, -1}), 0);
  int differ = 0;
  for (int i = 0; i < 100; ++i) differ += a.check(-1) != b.check(-1);
  EXPECT_GT(differ, 0);
  s.times = 5;  // at most five failures
  ASSERT_EQ(a.configure(s), 0);
  for (int i = 0; i < 1000; ++i) a.check(-ENOMEM);
  EXPECT_EQ(a.injected(), 5u);
  s.probability = 1.5;
  EXPECT_EQ(a.configure(s), -EINVAL);
  s.probability = 0.5;
  s.error = 5;
  EXPECT_EQ(a.configure(s), -EINVAL);
}

TEST(FaultInjection, OrderFilterAndSiteNames) {
  FaultPoint fp;
  FaultSpec s;
  s.nth = 1;
  s.times = 0;
  s.order = 8;
  ASSERT_EQ(fp.configure(s), 0);
  EXPECT_EQ(fp.check(-ENOMEM, 4), 0);
  EXPECT_EQ(fp.check(-ENOMEM, 8), -ENOMEM);
  EXPECT_EQ(fp.calls(), 1u);  // only order 8 counts
  FaultSite site;
  for (unsigned i = 0; i < static_cast<unsigned>(FaultSite::kCount); ++i) {
    ASSERT_EQ(fault_site_from_name(fault_site_name(static_cast<FaultSite>(i)), &site), 0);
    EXPECT_EQ(static_cast<unsigned>(site), i);
  }
  EXPECT_EQ(fault_site_from_name("nope", &site), -EINVAL);
  PlatformPtr p = make_platform(PlatformConfig{});
  EXPECT_EQ(platform_set_fault(p.get(), "nope", s), -EINVAL);
}

}  // namespace
