// system_cc_shared (the 2026 confidential-computing heap): every chunk is
// decrypted before the buffer is handed out and re-encrypted before it is
// freed; decryption failures fail the allocation and re-encrypt what was done;
// re-encryption failures leak the chunk on purpose, counted and never reused;
// no other heap ever hands out decrypted memory.
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>

#include "core/buffer/attachment.h"
#include "core/buffer/mapping.h"
#include "core/mm/mem_encrypt.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

struct Call {
  bool decrypt;
  uint64_t addr;
  int numpages;
};

// A recording arch hook; fails calls whose (1-based) index is in fail_*.
struct Recorder {
  std::mutex mu;
  std::vector<Call> calls;
  std::set<int> fail_decrypt, fail_encrypt;
  int error = -EPERM;
  int ndecrypt = 0, nencrypt = 0;

  static int decrypt(void* d, uint64_t addr, int n) { return static_cast<Recorder*>(d)->on(true, addr, n); }
  static int encrypt(void* d, uint64_t addr, int n) { return static_cast<Recorder*>(d)->on(false, addr, n); }
  int on(bool dec, uint64_t addr, int n) {
    std::lock_guard<std::mutex> g(mu);
    calls.push_back({dec, addr, n});
    const int idx = dec ? ++ndecrypt : ++nencrypt;
    return (dec ? fail_decrypt : fail_encrypt).count(idx) ? error : 0;
  }
  size_t count(bool dec) {
    std::lock_guard<std::mutex> g(mu);
    return std::count_if(calls.begin(), calls.end(), [&](const Call& c) { return c.decrypt == dec; });
  }
};

class CcHeap : public ::testing::Test {
 protected:
  void SetUp() override {
    PlatformConfig c;
    c.mem_encrypt = true;
    c.ram_bytes = 16ULL << 20;
    p_ = make_platform(c);
    cc_ = open_heap(p_.get(), "system_cc_shared");
    sys_ = open_heap(p_.get(), "system");
    set_mem_crypt_hooks(p_.get(), Recorder::decrypt, Recorder::encrypt, &rec_);
  }
  void TearDown() override { set_mem_crypt_hooks(p_.get(), nullptr, nullptr, nullptr); }

  // Every chunk of `b` is in state `s`.
  bool all_chunks(DmaBuf* b, PageState s) {
    for (const SgEntry& e : dma_buf_sg_table(b).entries)
      if (!p_->pages->block_is(e.phys >> 12, e.length >> 12, s)) return false;
    return true;
  }
  uint64_t total() { return p_->pages->stats().total_pages; }
  uint64_t free_pages() { return p_->pages->stats().free_pages; }

  Recorder rec_;
  PlatformPtr p_;
  Heap* cc_ = nullptr;
  Heap* sys_ = nullptr;
};

TEST_F(CcHeap, ChunksAreDecryptedBeforeHandOutAndReencryptedOnFree) {
  const uint64_t len = (1 << 20) + (64 << 10) + 4096;  // orders 8, 4, 0
  DmaBuf* b = alloc_rw(cc_, len);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->exp_name, "system_cc_shared");
  SgTable t = dma_buf_sg_table(b);
  ASSERT_EQ(t.entries.size(), 3u);
  EXPECT_TRUE(t.cc_shared);
  EXPECT_TRUE(all_chunks(b, PageState::kShared));
  // One set_memory_decrypted(page_address(page), 1 << order) per chunk.
  ASSERT_EQ(rec_.calls.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(rec_.calls[i].decrypt);
    EXPECT_EQ(rec_.calls[i].addr, p_->page_address(t.entries[i].phys >> 12));
    EXPECT_EQ(static_cast<uint64_t>(rec_.calls[i].numpages), t.entries[i].length >> 12);
    EXPECT_EQ(p_->virt_to_pfn(rec_.calls[i].addr), t.entries[i].phys >> 12);
  }
  EXPECT_EQ(rec_.calls[0].addr & 0xffff000000000000ULL, 0xffff000000000000ULL);  // x86 direct map
  EXPECT_EQ(p_->pages->stats().shared_pages, len >> 12);

  // Devices see the shared attribute (DMA_ATTR_CC_SHARED) on their mapping.
  Attachment* a = nullptr;
  ASSERT_EQ(dma_buf_attach(b, "mlx5_core", &a), 0);
  const SgTable* mapped = nullptr;
  ASSERT_EQ(dma_buf_map_attachment(a, DMA_BIDIRECTIONAL, &mapped), 0);
  EXPECT_TRUE(mapped->cc_shared);
  dma_buf_unmap_attachment(a, mapped, DMA_BIDIRECTIONAL);
  dma_buf_detach(b, a);
  // CPU mappings work (pgprot_decrypted in the kernel).
  Mapping* m = nullptr;
  ASSERT_EQ(dma_buf_mmap(b, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, &m), 0);
  mapping_put(m);

  dma_buf_close(b);
  EXPECT_EQ(rec_.count(false), 3u);
  EXPECT_EQ(free_pages(), total());
  EXPECT_EQ(p_->pages->stats().shared_pages, 0u);
  EXPECT_EQ(p_->pages->stats().violations, 0u);
  MemCryptStats s = mem_crypt_stats(p_.get());
  EXPECT_EQ(s.decrypt_calls, 3u);
  EXPECT_EQ(s.encrypt_calls, 3u);
  EXPECT_EQ(s.decrypt_failures + s.encrypt_failures, 0u);
}

TEST_F(CcHeap, OtherHeapsNeverHandOutSharedMemory) {
  DmaBuf* shared = alloc_rw(cc_, 4 << 20);
  DmaBuf* priv = alloc_rw(sys_, 4 << 20);
  ASSERT_TRUE(shared && priv);
  EXPECT_TRUE(all_chunks(shared, PageState::kShared));
  EXPECT_TRUE(all_chunks(priv, PageState::kPrivate));
  EXPECT_FALSE(dma_buf_sg_table(priv).cc_shared);
  EXPECT_EQ(rec_.count(true), 4u);  // the system heap never asked
  dma_buf_close(shared);
  // The same pages, back as private memory for the system heap.
  DmaBuf* again = alloc_rw(sys_, 4 << 20);
  EXPECT_TRUE(all_chunks(again, PageState::kPrivate));
  dma_buf_close(again);
  dma_buf_close(priv);
  EXPECT_EQ(p_->pages->stats().violations, 0u);
}

TEST_F(CcHeap, DecryptFailingMidwayFailsTheAllocationAndReencryptsWhatWasDone) {
  WarnCapture w;
  rec_.fail_decrypt = {3};
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(cc_, 4 << 20, O_RDWR, 0, &b), -EPERM);  // the hook's errno
  EXPECT_EQ(rec_.count(true), 3u);
  // The two chunks that were decrypted are re-encrypted, in order.
  ASSERT_EQ(rec_.count(false), 2u);
  EXPECT_EQ(rec_.calls[3].addr, rec_.calls[0].addr);
  EXPECT_EQ(rec_.calls[4].addr, rec_.calls[1].addr);
  EXPECT_EQ(free_pages(), total());
  EXPECT_EQ(p_->pages->stats().shared_pages, 0u);
  EXPECT_EQ(p_->pages->stats().leaked_pages, 0u);
  EXPECT_EQ(w.count_containing("dma-buf system heap: failed to decrypt page at 0x"), 1u);
  BufInfoTotals t;
  dma_buf_bufinfo(p_.get(), &t);
  EXPECT_EQ(t.objects, 0u);
}

TEST_F(CcHeap, InjectedDecryptFailuresUseTheSitesErrno) {
  FaultSpec spec;
  spec.nth = 2;
  ASSERT_EQ(platform_set_fault(p_.get(), "set_memory_decrypted", spec), 0);
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(cc_, 2 << 20, O_RDWR, 0, &b), -EIO);
  EXPECT_EQ(rec_.count(true), 1u);  // the injected failure never reached the hook
  EXPECT_EQ(rec_.count(false), 1u);
  spec.error = -ENOMEM;
  ASSERT_EQ(platform_set_fault(p_.get(), "set_memory_decrypted", spec), 0);
  EXPECT_EQ(dma_heap_alloc(cc_, 2 << 20, O_RDWR, 0, &b), -ENOMEM);
  EXPECT_EQ(free_pages(), total());
  // The first chunk failing: nothing to re-encrypt.
  spec.nth = 1;
  ASSERT_EQ(platform_set_fault(p_.get(), "set_memory_decrypted", spec), 0);
  const size_t enc_before = rec_.count(false);
  EXPECT_EQ(dma_heap_alloc(cc_, 4096, O_RDWR, 0, &b), -ENOMEM);
  EXPECT_EQ(rec_.count(false), enc_before);
  EXPECT_EQ(free_pages(), total());
}

TEST_F(CcHeap, ReencryptFailingOnFreeLeaksTheChunkForGood) {
  WarnCapture w;
  DmaBuf* b = alloc_rw(cc_, 3 << 20);  // three order-8 chunks
  SgTable t = dma_buf_sg_table(b);
  ASSERT_EQ(t.entries.size(), 3u);
  rec_.fail_encrypt = {2};
  dma_buf_close(b);
  const PageAllocStats s = p_->pages->stats();
  EXPECT_EQ(s.leaked_blocks, 1u);
  EXPECT_EQ(s.leaked_pages, 256u);
  EXPECT_EQ(s.shared_pages, 0u);
  EXPECT_EQ(s.free_pages, total() - 256);
  EXPECT_EQ(s.violations, 0u);
  auto leaked = p_->pages->leaked();
  ASSERT_EQ(leaked.size(), 1u);
  EXPECT_EQ(leaked[0].first, t.entries[1].phys >> 12);
  EXPECT_EQ(p_->pages->state_of(leaked[0].first), PageState::kLeaked);
  EXPECT_EQ(w.count_containing("failed to re-encrypt page at 0x"), 1u);
  EXPECT_EQ(w.count_containing("leaking memory"), 1u);

  // Never reused: take every free page, from both heaps; none is the leaked one,
  // and what is left over is exactly the leak.
  std::vector<DmaBuf*> all;
  for (Heap* h : {sys_, cc_, sys_}) {
    for (;;) {
      DmaBuf* x = nullptr;
      if (dma_heap_alloc(h, 64 << 10, O_RDWR, 0, &x)) break;
      all.push_back(x);
    }
  }
  EXPECT_EQ(free_pages(), 0u);
  for (DmaBuf* x : all)
    for (const SgEntry& e : dma_buf_sg_table(x).entries) {
      const uint64_t pfn = e.phys >> 12;
      EXPECT_TRUE(pfn + (e.length >> 12) <= leaked[0].first || pfn >= leaked[0].first + 256);
    }
  for (DmaBuf* x : all) dma_buf_close(x);
  EXPECT_EQ(free_pages(), total() - 256);
  EXPECT_EQ(p_->pages->stats().violations, 0u);
}

TEST_F(CcHeap, ReencryptFailingOnTheErrorPathLeaksToo) {
  // Decrypt chunk 3 fails; re-encrypting chunk 1 fails as well.
  rec_.fail_decrypt = {3};
  rec_.fail_encrypt = {1};
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(cc_, 4 << 20, O_RDWR, 0, &b), -EPERM);
  EXPECT_EQ(p_->pages->stats().leaked_blocks, 1u);
  EXPECT_EQ(p_->pages->stats().leaked_pages, 256u);
  EXPECT_EQ(free_pages(), total() - 256);
  EXPECT_EQ(p_->pages->leaked()[0].first, p_->virt_to_pfn(rec_.calls[0].addr));
}

TEST_F(CcHeap, ExportFailureAfterDecryptionReencryptsEverything) {
  FaultSpec once;
  once.nth = 1;
  ASSERT_EQ(platform_set_fault(p_.get(), "dma_buf_export", once), 0);
  DmaBuf* b = nullptr;
  EXPECT_EQ(dma_heap_alloc(cc_, 2 << 20, O_RDWR, 0, &b), -ENOMEM);
  EXPECT_EQ(rec_.count(true), 2u);
  EXPECT_EQ(rec_.count(false), 2u);
  ASSERT_EQ(platform_set_fault(p_.get(), "dma_buf_fd", once), 0);
  EXPECT_EQ(dma_heap_alloc(cc_, 2 << 20, O_RDWR, 0, &b), -EMFILE);  // via release
  EXPECT_EQ(rec_.count(false), 4u);
  EXPECT_EQ(free_pages(), total());
  EXPECT_EQ(p_->pages->stats().shared_pages, 0u);
}

TEST_F(CcHeap, RandomFaultsNeverLeaveAChunkInTheWrongState) {
  FaultSpec d, e;
  d.probability = 0.2;
  d.seed = 7;
  d.times = 0;
  e.probability = 0.05;
  e.seed = 11;
  e.times = 0;
  ASSERT_EQ(platform_set_fault(p_.get(), "set_memory_decrypted", d), 0);
  ASSERT_EQ(platform_set_fault(p_.get(), "set_memory_encrypted", e), 0);
  int ok = 0, failed = 0;
  for (int i = 0; i < 300; ++i) {
    DmaBuf* b = nullptr;
    const uint64_t len = 4096ULL * (1 + (i * 37) % 300);
    if (dma_heap_alloc(cc_, len, O_RDWR, 0, &b)) {
      ++failed;
      continue;
    }
    ++ok;
    EXPECT_TRUE(all_chunks(b, PageState::kShared));
    dma_buf_close(b);
    DmaBuf* s = nullptr;
    if (!dma_heap_alloc(sys_, len, O_RDWR, 0, &s)) {
      EXPECT_TRUE(all_chunks(s, PageState::kPrivate));
      dma_buf_close(s);
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(failed, 0);
  const PageAllocStats st = p_->pages->stats();
  EXPECT_EQ(st.free_pages + st.leaked_pages, st.total_pages);
  EXPECT_GT(st.leaked_blocks, 0u);
  EXPECT_EQ(st.shared_pages, 0u);
  EXPECT_EQ(st.violations, 0u);
}

TEST_F(CcHeap, MisusedConversionsAreRefused) {
  WarnCapture w;
  // Decrypting free memory, an address outside RAM, a misaligned address.
  EXPECT_EQ(set_memory_decrypted(p_.get(), p_->page_address(p_->pages->base_pfn()), 1), -EINVAL);
  EXPECT_EQ(set_memory_decrypted(p_.get(), 0x1000, 1), -EINVAL);
  EXPECT_EQ(set_memory_decrypted(p_.get(), p_->page_address(p_->pages->base_pfn()) + 8, 1), -EINVAL);
  EXPECT_EQ(rec_.calls.size(), 0u);  // none reached the hook
  EXPECT_EQ(p_->pages->stats().violations, 1u);  // bad addresses are errors, not state violations
  DmaBuf* b = alloc_rw(cc_, 4096);
  const uint64_t addr = p_->page_address(dma_buf_sg_table(b).entries[0].phys >> 12);
  const size_t hook_calls = rec_.calls.size();
  EXPECT_EQ(set_memory_decrypted(p_.get(), addr, 1), -EINVAL);  // already shared
  EXPECT_EQ(rec_.calls.size(), hook_calls);                    // refused before the hook
  DmaBuf* s = alloc_rw(sys_, 4096);
  const uint64_t saddr = p_->page_address(dma_buf_sg_table(s).entries[0].phys >> 12);
  EXPECT_EQ(set_memory_encrypted(p_.get(), saddr, 1), -EINVAL);  // private already
  dma_buf_close(s);
  dma_buf_close(b);
  EXPECT_EQ(p_->pages->stats().violations, 3u);
  EXPECT_EQ(w.count_containing("page state violation"), 3u);
  EXPECT_EQ(free_pages(), total());
}

TEST(CcHeapHooks, DefaultHooksAlwaysSucceedAndSwappingWaitsForCalls) {
  PlatformPtr p = make_platform(full_config());
  DmaBuf* b = alloc_rw(open_heap(p.get(), "system_cc_shared"), 1 << 20);
  ASSERT_NE(b, nullptr);
  dma_buf_close(b);
  Recorder r;
  set_mem_crypt_hooks(p.get(), Recorder::decrypt, nullptr, &r);  // decrypt observed only
  b = alloc_rw(open_heap(p.get(), "system_cc_shared"), 1 << 20);
  dma_buf_close(b);
  set_mem_crypt_hooks(p.get(), nullptr, nullptr, nullptr);
  EXPECT_EQ(r.count(true), 1u);
  EXPECT_EQ(r.count(false), 0u);
  EXPECT_EQ(mem_crypt_stats(p.get()).encrypt_calls, 2u);
}

}  // namespace
