// The kernel's `dma-buf-fence-unwrap` suite (st-dma-fence-unwrap.c, kunit
// version with the four-argument array create), all 11 cases incl. the June-2026
// test_dedup_empty, plus merge/dedup details the suite leaves out.
//
// Mocks as in the kernel: a malloc'd wrapper with its own external spinlock and
// name-only ops (so they detach when signalled); mock_array and mock_chain
// consume the references they are given.
#include <gtest/gtest.h>

#include <cstdarg>
#include <cstdlib>
#include <vector>

#include "core/fence/array.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"
#include "core/fence/unwrap.h"

using namespace dmabuf;

namespace {

struct MockFence {
  Fence base;
  SpinLock lock;
};

const char* mock_name(Fence*) { return "mock"; }
const FenceOps kMockOps = {.get_driver_name = mock_name, .get_timeline_name = mock_name};

Fence* mock_fence_ctx(uint64_t context, uint64_t seqno) {
  auto* f = static_cast<MockFence*>(std::calloc(1, sizeof(MockFence)));
  if (!f) return nullptr;
  f->lock.init();
  fence_init(&f->base, &kMockOps, &f->lock, context, seqno);
  return &f->base;
}

Fence* mock_fence() { return mock_fence_ctx(fence_context_alloc(1), 1); }

Fence* mock_array(unsigned num, ...) {
  auto** fences = static_cast<Fence**>(std::calloc(num, sizeof(Fence*)));
  if (!fences) return nullptr;
  va_list ap;
  va_start(ap, num);
  for (unsigned i = 0; i < num; ++i) fences[i] = va_arg(ap, Fence*);
  va_end(ap);
  FenceArray* array = fence_array_create(num, fences, fence_context_alloc(1), 1);
  if (!array) {
    for (unsigned i = 0; i < num; ++i) fence_put(fences[i]);
    std::free(fences);
    return nullptr;
  }
  return &array->base;
}

Fence* mock_chain(Fence* prev, Fence* fence) {
  FenceChain* c = fence_chain_alloc();
  if (!c) {
    fence_put(prev);
    fence_put(fence);
    return nullptr;
  }
  fence_chain_init(c, prev, fence, 1);
  return &c->base;
}

std::vector<Fence*> unwrap_all(Fence* head) {
  std::vector<Fence*> out;
  FenceUnwrap iter;
  Fence* f;
  fence_unwrap_for_each(f, &iter, head) out.push_back(f);
  return out;
}

}  // namespace

TEST(DmaBufFenceUnwrap, test_sanitycheck) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_enable_sw_signaling(f);
  Fence* array = mock_array(1, f);
  ASSERT_NE(array, nullptr);
  Fence* chain = mock_chain(nullptr, array);
  ASSERT_NE(chain, nullptr);
  fence_signal(f);
  fence_put(chain);
}

TEST(DmaBufFenceUnwrap, test_unwrap_array) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* array = mock_array(2, f1, f2);
  ASSERT_NE(array, nullptr);
  EXPECT_EQ(unwrap_all(array), (std::vector<Fence*>{f1, f2}));
  fence_signal(f1);
  fence_signal(f2);
  fence_put(array);
}

TEST(DmaBufFenceUnwrap, test_unwrap_chain) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* chain = mock_chain(f1, f2);
  ASSERT_NE(chain, nullptr);
  auto seen = unwrap_all(chain);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_NE(std::find(seen.begin(), seen.end(), f1), seen.end()) << "Not all fences seen!";
  EXPECT_NE(std::find(seen.begin(), seen.end(), f2), seen.end()) << "Not all fences seen!";
  fence_signal(f1);
  fence_signal(f2);
  fence_put(chain);
}

TEST(DmaBufFenceUnwrap, test_unwrap_chain_array) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* array = mock_array(2, f1, f2);
  ASSERT_NE(array, nullptr);
  Fence* chain = mock_chain(nullptr, array);
  ASSERT_NE(chain, nullptr);
  EXPECT_EQ(unwrap_all(chain), (std::vector<Fence*>{f1, f2}));
  fence_signal(f1);
  fence_signal(f2);
  fence_put(chain);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* f3 = fence_unwrap_merge(f1, f2);
  ASSERT_NE(f3, nullptr);
  EXPECT_EQ(unwrap_all(f3), (std::vector<Fence*>{f1, f2}));
  fence_signal(f1);
  fence_signal(f2);
  fence_put(f3);
  fence_put(f2);
  fence_put(f1);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge_duplicate) {
  Fence* f1 = mock_fence();
  ASSERT_NE(f1, nullptr);
  fence_enable_sw_signaling(f1);
  Fence* f2 = fence_unwrap_merge(f1, f1);
  ASSERT_NE(f2, nullptr);
  EXPECT_EQ(unwrap_all(f2), (std::vector<Fence*>{f1}));
  EXPECT_EQ(f2, f1) << "merging a fence with itself returns that fence";
  fence_signal(f1);
  fence_put(f2);
  fence_put(f1);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge_seqno) {
  const uint64_t ctx_a = fence_context_alloc(1);
  const uint64_t ctx_b = fence_context_alloc(1);
  Fence* f1 = mock_fence_ctx(ctx_b, 1);
  Fence* f2 = mock_fence_ctx(ctx_b, 2);
  Fence* f3 = mock_fence_ctx(ctx_a, 1);
  ASSERT_TRUE(f1 && f2 && f3);
  for (Fence* f : {f1, f2, f3}) fence_enable_sw_signaling(f);
  Fence* f4 = fence_unwrap_merge(f1, f2, f3);
  ASSERT_NE(f4, nullptr);
  EXPECT_EQ(unwrap_all(f4), (std::vector<Fence*>{f3, f2}))
      << "older point dropped, ascending context order";
  for (Fence* f : {f1, f2, f3}) fence_signal(f);
  fence_put(f4);
  for (Fence* f : {f1, f2, f3}) fence_put(f);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge_order) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* a1 = mock_array(2, fence_get(f1), fence_get(f2));
  ASSERT_NE(a1, nullptr);
  // The chain iterates f2 first, then f1.
  Fence* c1 = mock_chain(nullptr, fence_get(f1));
  ASSERT_NE(c1, nullptr);
  Fence* c2 = mock_chain(c1, fence_get(f2));
  ASSERT_NE(c2, nullptr);
  EXPECT_EQ(unwrap_all(c2), (std::vector<Fence*>{f2, f1}));
  Fence* a2 = fence_unwrap_merge(a1, c2);
  ASSERT_NE(a2, nullptr);
  EXPECT_EQ(unwrap_all(a2), (std::vector<Fence*>{f1, f2})) << "Unexpected order";
  fence_signal(f1);
  fence_signal(f2);
  fence_put(a2);
  fence_put(c2);
  fence_put(a1);
  fence_put(f2);
  fence_put(f1);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge_complex) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  ASSERT_TRUE(f1 && f2);
  fence_enable_sw_signaling(f1);
  fence_enable_sw_signaling(f2);
  Fence* f3 = fence_unwrap_merge(f1, f2);
  ASSERT_NE(f3, nullptr);
  Fence* f4 = mock_array(2, fence_get(f2), fence_get(f1));
  ASSERT_NE(f4, nullptr);
  Fence* stub = fence_get_stub();
  Fence* f5 = fence_unwrap_merge(f3, f4, stub);
  ASSERT_NE(f5, nullptr);
  EXPECT_EQ(unwrap_all(f5), (std::vector<Fence*>{f1, f2}))
      << "duplicates removed, the signalled stub filtered";
  fence_signal(f1);
  fence_signal(f2);
  fence_put(f5);
  fence_put(stub);  // the kernel test leaks this one (harmless there)
  fence_put(f4);
  fence_put(f3);
  fence_put(f2);
  fence_put(f1);
}

TEST(DmaBufFenceUnwrap, test_unwrap_merge_complex_seqno) {
  const uint64_t ctx0 = fence_context_alloc(1);
  const uint64_t ctx1 = fence_context_alloc(1);
  Fence* f1 = mock_fence_ctx(ctx0, 2);
  Fence* f2 = mock_fence_ctx(ctx1, 1);
  Fence* f3 = mock_fence_ctx(ctx0, 1);
  Fence* f4 = mock_fence_ctx(ctx1, 2);
  ASSERT_TRUE(f1 && f2 && f3 && f4);
  for (Fence* f : {f1, f2, f3, f4}) fence_enable_sw_signaling(f);
  Fence* a1 = mock_array(2, fence_get(f1), fence_get(f2));
  Fence* a2 = mock_array(2, fence_get(f3), fence_get(f4));
  ASSERT_TRUE(a1 && a2);
  Fence* m = fence_unwrap_merge(a1, a2);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(unwrap_all(m), (std::vector<Fence*>{f1, f4}));
  for (Fence* f : {f1, f2, f3, f4}) fence_signal(f);
  fence_put(m);
  fence_put(a2);
  fence_put(a1);
  for (Fence* f : {f1, f2, f3, f4}) fence_put(f);
}

TEST(DmaBufFenceUnwrap, test_dedup_empty) {
  Fence* arr[1] = {nullptr};
  EXPECT_EQ(fence_dedup_array(arr, 0), 0);
}

// --- beyond the kernel suite ---------------------------------------------------

TEST(FenceUnwrap, MergeOfSignalledLeavesIsPrivateStubWithLatestTimestamp) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  fence_signal_timestamp(f1, 1000);
  fence_signal_timestamp(f2, 5000);
  Fence* m = fence_unwrap_merge(f1, f2);
  ASSERT_NE(m, nullptr);
  Fence* shared = fence_get_stub();
  EXPECT_NE(m, shared) << "a private stub, not the shared one";
  fence_put(shared);
  EXPECT_TRUE(fence_test_signaled_flag(m));
  EXPECT_EQ(fence_timestamp(m), 5000);
  EXPECT_EQ(m->context, 0u);
  fence_put(m);
  fence_put(f1);
  fence_put(f2);
}

TEST(FenceUnwrap, MergeWithOnePendingLeafReturnsThatLeaf) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  fence_signal(f1);
  Fence* array = mock_array(2, fence_get(f1), fence_get(f2));
  Fence* m = fence_unwrap_merge(array, f1);
  EXPECT_EQ(m, f2);
  fence_put(m);
  fence_signal(f2);
  fence_put(array);
  fence_put(f1);
  fence_put(f2);
}

TEST(FenceUnwrap, MergeResultIsNewArrayContextSeqnoOne) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  Fence* m = fence_unwrap_merge(f2, f1);
  ASSERT_TRUE(fence_is_array(m));
  EXPECT_NE(m->context, f1->context);
  EXPECT_NE(m->context, f2->context);
  EXPECT_EQ(m->seqno, 1u);
  EXPECT_EQ(unwrap_all(m), (std::vector<Fence*>{f1, f2}));
  EXPECT_EQ(f1->refcount.load(), 2u) << "merge does not consume its inputs";
  fence_signal(f1);
  fence_signal(f2);
  EXPECT_TRUE(fence_is_signaled(m));
  fence_put(m);
  fence_put(f1);
  fence_put(f2);
}

TEST(FenceUnwrap, DedupKeepsLatestIn32BitWrapOrder) {
  const uint64_t ctx = fence_context_alloc(1);
  const uint64_t other = fence_context_alloc(1);
  Fence* old = mock_fence_ctx(ctx, 0xFFFFFFF0u);
  Fence* wrapped = mock_fence_ctx(ctx, 3);  // later than 0xFFFFFFF0 in 32-bit mode
  Fence* x = mock_fence_ctx(other, 9);
  Fence* arr[] = {x, old, wrapped};
  fence_get(old);  // keep our own reference across the put dedup does
  EXPECT_EQ(fence_dedup_array(arr, 3), 2);
  EXPECT_EQ(arr[0], wrapped);
  EXPECT_EQ(arr[1], x);
  EXPECT_EQ(old->refcount.load(), 1u) << "the dropped fence was put";
  for (Fence* f : {old, wrapped, x}) fence_put(f);
}

TEST(FenceUnwrap, IterationSkipsSignalledChainLinksAndStopDropsReference) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  Fence* f3 = mock_fence();
  Fence* c = mock_chain(mock_chain(mock_chain(nullptr, fence_get(f1)), fence_get(f2)), fence_get(f3));
  fence_signal(f2);
  EXPECT_EQ(unwrap_all(c), (std::vector<Fence*>{f3, f1}));
  EXPECT_EQ(c->refcount.load(), 1u) << "iterating to the end leaves no reference";

  FenceUnwrap iter;
  EXPECT_EQ(fence_unwrap_first(c, &iter), f3);
  EXPECT_EQ(c->refcount.load(), 2u);
  fence_unwrap_stop(&iter);
  EXPECT_EQ(c->refcount.load(), 1u);

  EXPECT_TRUE(unwrap_all(nullptr).empty());
  EXPECT_EQ(unwrap_all(f1), (std::vector<Fence*>{f1}));
  for (Fence* f : {f1, f3}) fence_signal(f);
  fence_put(c);
  for (Fence* f : {f1, f2, f3}) fence_put(f);
}
