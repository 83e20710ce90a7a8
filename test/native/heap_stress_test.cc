// Several threads allocating, using and freeing buffers from every heap at
// once, with random decrypt/re-encrypt failures injected: no leak (besides the
// deliberate ones, which are accounted), no chunk ever handed out in the wrong
// state, no buffer left behind. Run under ASan (LeakSanitizer) and TSan too.
#include <fcntl.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "core/buffer/attachment.h"
#include "core/buffer/mapping.h"
#include "core/mm/mem_encrypt.h"
#include "heap_test_util.h"

using namespace dmabuf;
using namespace dmabuf::test;

namespace {

// A hook that fails now and then on its own, on top of the injected faults,
// so both failure sources run concurrently.
int flaky_hook(void* data, uint64_t addr, int) {
  auto* n = static_cast<std::atomic<uint64_t>*>(data);
  return (n->fetch_add(1, std::memory_order_relaxed) % 97 == 0 && (addr & 0x1000)) ? -EAGAIN : 0;
}

TEST(HeapStress, ThreadsAllocateAndFreeEverywhere) {
  PlatformConfig c = full_config();
  c.ram_bytes = 256ULL << 20;
  c.cma_bytes = 32ULL << 20;
  c.protected_pool_bytes = 16ULL << 20;
  PlatformPtr p = make_platform(c);
  std::atomic<uint64_t> hook_calls{0};
  set_mem_crypt_hooks(p.get(), flaky_hook, flaky_hook, &hook_calls);
  FaultSpec d, e;
  d.probability = 0.02;
  d.seed = 1;
  d.times = 0;
  e.probability = 0.02;
  e.seed = 2;
  e.times = 0;
  ASSERT_EQ(platform_set_fault(p.get(), "set_memory_decrypted", d), 0);
  ASSERT_EQ(platform_set_fault(p.get(), "set_memory_encrypted", e), 0);

  const std::vector<std::string> heaps = {"system", "system_cc_shared", "default_cma_region",
                                          "reserved", "protected,secure-video"};
  constexpr int kThreads = 4;
  const int iterations = 300;
  std::atomic<uint64_t> allocated{0}, failed{0}, wrong_state{0};
  std::atomic<bool> stop_reader{false};

  auto worker = [&](int id) {
    std::mt19937_64 rng(1000 + id);
    std::vector<DmaBuf*> held;
    for (int i = 0; i < iterations; ++i) {
      Heap* h = open_heap(p.get(), heaps[rng() % heaps.size()].c_str());
      const uint64_t len = 4096ULL * (1 + rng() % 600);  // up to ~2.4 MiB
      DmaBuf* b = nullptr;
      if (dma_heap_alloc(h, len, O_RDWR | O_CLOEXEC, 0, &b)) {
        failed.fetch_add(1);
      } else {
        allocated.fetch_add(1);
        // Every chunk in the state its heap promises.
        const PageState want = h->kind == HeapKind::kCcShared ? PageState::kShared : PageState::kPrivate;
        for (const SgEntry& s : dma_buf_sg_table(b).entries) {
          const uint64_t pfn = s.phys >> 12;
          const bool in_buddy = pfn >= p->pages->base_pfn() && pfn < p->pages->base_pfn() + p->pages->npages();
          if (in_buddy && !p->pages->block_is(pfn, s.length >> 12, want)) wrong_state.fetch_add(1);
          if (!in_buddy && h->kind != HeapKind::kCma && h->kind != HeapKind::kProtected) wrong_state.fetch_add(1);
        }
        // Use it a little: name it, touch it, attach a device.
        char name[32];
        snprintf(name, sizeof name, "t%d-%d", id, i);
        EXPECT_EQ(dma_buf_set_name(b, name, sizeof name), 0);
        Mapping* m = nullptr;
        if (h->cpu_access && dma_buf_mmap(b, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, &m) == 0) {
          EXPECT_EQ(dma_buf_cpu_sync(b, 2), 0);
          memset(m->addr, id, 4096);
          EXPECT_EQ(dma_buf_cpu_sync(b, 4 | 2), 0);
          if (rng() % 2) mapping_put(m);
          else {
            mapping_invalidate(m);  // close() races with nothing here; put later
            mapping_put(m);
          }
        }
        if (rng() % 3 == 0) {
          Attachment* a = nullptr;
          if (dma_buf_attach(b, "stress-dev", &a) == 0) {
            const SgTable* t = nullptr;
            if (dma_buf_map_attachment(a, DMA_BIDIRECTIONAL, &t) == 0)
              dma_buf_unmap_attachment(a, t, DMA_BIDIRECTIONAL);
            dma_buf_detach(b, a);
          }
        }
        held.push_back(b);
      }
      // Free at random, keeping a handful alive across iterations.
      while (held.size() > 6 || (!held.empty() && rng() % 2)) {
        const size_t k = rng() % held.size();
        dma_buf_close(held[k]);
        held.erase(held.begin() + k);
      }
    }
    for (DmaBuf* b : held) dma_buf_close(b);
  };

  // A reader walking bufinfo while buffers come and go.
  std::thread reader([&] {
    while (!stop_reader.load()) {
      BufInfoTotals t;
      std::string s = dma_buf_bufinfo(p.get(), &t);
      EXPECT_NE(s.find("Dma-buf Objects:"), std::string::npos);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  stop_reader.store(true);
  reader.join();
  set_mem_crypt_hooks(p.get(), nullptr, nullptr, nullptr);

  EXPECT_GT(allocated.load(), 0u);
  EXPECT_EQ(wrong_state.load(), 0u);
  const PageAllocStats s = p->pages->stats();
  EXPECT_EQ(s.violations, 0u);
  EXPECT_EQ(s.shared_pages, 0u);
  EXPECT_EQ(s.free_pages + s.leaked_pages, s.total_pages) << "every page is free or deliberately leaked";
  EXPECT_EQ(p->cma->free_pages(), p->cma->npages());
  EXPECT_EQ(p->protmem_pools[0]->free_pages(), p->protmem_pools[0]->npages());
  BufInfoTotals t;
  dma_buf_bufinfo(p.get(), &t);
  EXPECT_EQ(t.objects, 0u);
  const MemCryptStats ms = mem_crypt_stats(p.get());
  EXPECT_GT(ms.decrypt_failures, 0u);
  EXPECT_EQ(ms.encrypt_failures, s.leaked_blocks);  // each failed re-encryption is one leak
  printf("allocated %llu, failed %llu, decrypts %llu (%llu failed), leaked %llu chunks / %llu pages\n",
         static_cast<unsigned long long>(allocated.load()), static_cast<unsigned long long>(failed.load()),
         static_cast<unsigned long long>(ms.decrypt_calls), static_cast<unsigned long long>(ms.decrypt_failures),
         static_cast<unsigned long long>(s.leaked_blocks), static_cast<unsigned long long>(s.leaked_pages));
}

}  // namespace
