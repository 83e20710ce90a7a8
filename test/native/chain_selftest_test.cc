// The kernel's `dma-buf-fence-chain` suite (st-dma-fence-chain.c), all 11 cases,
// plus chain behaviour the suite does not cover (context rules, garbage
// collection, error paths, releasing a 1,000,000-link chain).
//
// Mock fences as in the kernel: each with its own external spinlock and a
// release op (so they never detach), freed after a grace period.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "core/base/irq_work.h"
#include "core/fence/chain.h"
#include "core/fence/fence.h"

using namespace dmabuf;

namespace {

struct MockFence {
  Fence base;
  SpinLock lock;
};

const char* mock_name(Fence*) { return "mock"; }
void mock_release(Fence* f) { fence_free_object(f); }  // MockFence starts with its fence
const FenceOps kMockOps = {
    .get_driver_name = mock_name,
    .get_timeline_name = mock_name,
    .release = mock_release,
};

Fence* mock_fence() {
  auto* f = static_cast<MockFence*>(std::calloc(1, sizeof(MockFence)));
  if (!f) return nullptr;
  f->lock.init();
  fence_init(&f->base, &kMockOps, &f->lock, 0, 0);
  return &f->base;
}

// Takes its own references to prev and fence, as the kernel's mock_chain does.
Fence* mock_chain(Fence* prev, Fence* fence, uint64_t seqno) {
  FenceChain* c = fence_chain_alloc();
  if (!c) return nullptr;
  fence_chain_init(c, fence_get(prev), fence_get(fence), seqno);
  return &c->base;
}

constexpr unsigned kChainSz = 4 << 10;

uint64_t seqno_inc(unsigned i) { return i + 1; }
uint64_t seqno_inc2(unsigned i) { return 2 * i + 2; }

struct FenceChains {
  unsigned chain_length = 0;
  std::vector<Fence*> fences;
  std::vector<Fence*> chains;
  Fence* tail = nullptr;

  bool init(unsigned count, uint64_t (*seqno_fn)(unsigned)) {
    fences.assign(count, nullptr);
    chains.assign(count, nullptr);
    tail = nullptr;
    for (unsigned i = 0; i < count; ++i) {
      fences[i] = mock_fence();
      if (!fences[i]) return unwind();
      chains[i] = mock_chain(tail, fences[i], seqno_fn(i));
      if (!chains[i]) return unwind();
      tail = chains[i];
      fence_enable_sw_signaling(chains[i]);
    }
    chain_length = count;
    return true;
  }
  bool unwind() {
    for (auto* f : fences) fence_put(f);
    for (auto* c : chains) fence_put(c);
    fences.clear();
    chains.clear();
    return false;
  }
  void fini() {
    for (unsigned i = 0; i < chain_length; ++i) {
      fence_signal(fences[i]);
      fence_put(fences[i]);
    }
    for (unsigned i = 0; i < chain_length; ++i) fence_put(chains[i]);
    chain_length = 0;
  }
};

}  // namespace

TEST(DmaBufFenceChain, SuiteInitPrintsSize) {
  printf("sizeof(dma_fence_chain)=%zu\n", sizeof(FenceChain));
}

TEST(DmaBufFenceChain, test_sanitycheck) {
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  Fence* chain = mock_chain(nullptr, f, 1);
  ASSERT_NE(chain, nullptr);
  fence_enable_sw_signaling(chain);
  fence_signal(f);
  fence_put(f);
  EXPECT_TRUE(fence_is_signaled(chain));
  fence_put(chain);
}

TEST(DmaBufFenceChain, test_find_seqno) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(64, seqno_inc));

  Fence* fence = fence_get(fc.tail);
  int err = fence_chain_find_seqno(&fence, 0);
  fence_put(fence);
  EXPECT_EQ(err, 0) << "Reported " << err << " for find_seqno(0)!";

  for (unsigned i = 0; i < fc.chain_length; ++i) {
    fence = fence_get(fc.tail);
    err = fence_chain_find_seqno(&fence, i + 1);
    fence_put(fence);
    ASSERT_EQ(err, 0) << "Reported " << err << " for find_seqno(" << i + 1 << ")";
    ASSERT_EQ(fence, fc.chains[i]) << "Incorrect fence reported by find_seqno(" << i + 1 << ")";

    fence_get(fence);
    err = fence_chain_find_seqno(&fence, i + 1);
    fence_put(fence);
    ASSERT_EQ(err, 0) << "Error reported for finding self";
    ASSERT_EQ(fence, fc.chains[i]) << "Incorrect fence reported by find self";

    fence_get(fence);
    err = fence_chain_find_seqno(&fence, i + 2);
    fence_put(fence);
    ASSERT_NE(err, 0) << "Error not reported for future fence: find_seqno(" << i + 1 << ":"
                      << i + 2 << ")!";
    ASSERT_EQ(err, -EINVAL);

    fence_get(fence);
    err = fence_chain_find_seqno(&fence, i);
    fence_put(fence);
    ASSERT_EQ(err, 0) << "Error reported for previous fence!";
    if (i > 0) {
      ASSERT_EQ(fence, fc.chains[i - 1]) << "Incorrect fence reported by find_seqno";
    }
  }
  fc.fini();
}

TEST(DmaBufFenceChain, test_find_signaled) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(2, seqno_inc));
  fence_signal(fc.fences[0]);

  Fence* fence = fence_get(fc.tail);
  int err = fence_chain_find_seqno(&fence, 1);
  fence_put(fence);
  EXPECT_EQ(err, 0) << "Reported " << err << " for find_seqno()!";
  EXPECT_TRUE(fence == nullptr || fence == fc.chains[0])
      << "Incorrect chain-fence reported for completed seqno:1";
  fc.fini();
}

TEST(DmaBufFenceChain, test_find_out_of_order) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(3, seqno_inc));
  fence_signal(fc.fences[1]);

  Fence* fence = fence_get(fc.tail);
  int err = fence_chain_find_seqno(&fence, 2);
  fence_put(fence);
  EXPECT_EQ(err, 0);
  // Point 2 signalled but point 1 did not: waiting for 2 means waiting for 1,
  // and link 2 is collected on the way.
  EXPECT_EQ(fence, fc.chains[0]) << "Incorrect chain-fence reported for completed seqno:2";
  fc.fini();
}

TEST(DmaBufFenceChain, test_find_gap) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(64, seqno_inc2));
  for (unsigned i = 0; i < fc.chain_length; ++i) {
    Fence* fence = fence_get(fc.tail);
    int err = fence_chain_find_seqno(&fence, 2 * i + 1);
    fence_put(fence);
    ASSERT_EQ(err, 0);
    ASSERT_EQ(fence, fc.chains[i]) << "Incorrect fence reported by find_seqno(" << 2 * i + 1 << ")";

    fence_get(fence);
    err = fence_chain_find_seqno(&fence, 2 * i + 2);
    fence_put(fence);
    ASSERT_EQ(err, 0) << "Error reported for finding self";
    ASSERT_EQ(fence, fc.chains[i]) << "Incorrect fence reported by find self";
  }
  fc.fini();
}

namespace {

struct FindRace {
  FenceChains fc;
  std::atomic<bool> stop{false};
  std::atomic<int> children{0};
};

int find_race_thread(FindRace* data, unsigned seed) {
  std::mt19937 rng(seed);
  int err = 0;
  while (!data->stop.load(std::memory_order_relaxed)) {
    Fence* fence = fence_get(data->fc.tail);
    const uint64_t seqno = std::uniform_int_distribution<unsigned>(1, data->fc.chain_length)(rng);
    err = fence_chain_find_seqno(&fence, seqno);
    if (err) {
      ADD_FAILURE() << "Failed to find fence seqno:" << seqno;
      fence_put(fence);
      break;
    }
    if (fence) {
      // We can only find ourselves if we are on the fence we were looking for.
      if (fence->seqno == seqno) {
        err = fence_chain_find_seqno(&fence, seqno);
        if (err) {
          ADD_FAILURE() << "Reported an invalid fence for find-self:" << seqno;
          fence_put(fence);
          break;
        }
      }
      fence_put(fence);
    }
    const unsigned idx = std::uniform_int_distribution<unsigned>(0, data->fc.chain_length - 2)(rng);
    fence_signal(data->fc.fences[idx]);
    std::this_thread::yield();
  }
  data->children.fetch_sub(1);
  return err;
}

}  // namespace

// The kernel runs this for 5 s; 1 s here keeps the whole suite (and its ASan and
// TSan runs) quick while still racing thousands of finds against signals.
TEST(DmaBufFenceChain, test_find_race) {
  FindRace data;
  ASSERT_TRUE(data.fc.init(kChainSz, seqno_inc));
  const unsigned ncpus = std::max(2u, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  std::vector<int> results(ncpus, 0);
  data.children = static_cast<int>(ncpus);
  for (unsigned i = 0; i < ncpus; ++i)
    threads.emplace_back([&, i] { results[i] = find_race_thread(&data, 1234 + i); });
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < end && data.children.load() > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  data.stop = true;
  for (auto& t : threads) t.join();
  for (int r : results) EXPECT_EQ(r, 0);
  unsigned count = 0;
  for (unsigned i = 0; i < data.fc.chain_length; ++i)
    if (fence_is_signaled(data.fc.fences[i])) ++count;
  printf("Completed %u cycles\n", count);
  data.fc.fini();
}

TEST(DmaBufFenceChain, test_signal_forward) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(64, seqno_inc));
  for (unsigned i = 0; i < fc.chain_length; ++i) {
    fence_signal(fc.fences[i]);
    ASSERT_TRUE(fence_is_signaled(fc.chains[i])) << "chain[" << i << "] not signaled!";
    if (i + 1 < fc.chain_length) {
      ASSERT_FALSE(fence_is_signaled(fc.chains[i + 1])) << "chain[" << i << "] is signaled!";
    }
  }
  fc.fini();
}

TEST(DmaBufFenceChain, test_signal_backward) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(64, seqno_inc));
  for (unsigned i = fc.chain_length; i--;) {
    fence_signal(fc.fences[i]);
    if (i > 0) {
      ASSERT_FALSE(fence_is_signaled(fc.chains[i])) << "chain[" << i << "] is signaled!";
    }
  }
  for (unsigned i = 0; i < fc.chain_length; ++i)
    ASSERT_TRUE(fence_is_signaled(fc.chains[i])) << "chain[" << i << "] was not signaled!";
  fc.fini();
}

namespace {

// Signals fc.fences in the given order while another thread waits on the tail.
void wait_and_signal(FenceChains& fc) {
  std::atomic<int> result{1};
  std::thread waiter([&] { result = fence_wait(fc.tail, false) ? -EIO : 0; });
  std::this_thread::yield();  // yield_to(tsk)
  for (unsigned i = 0; i < fc.chain_length; ++i) fence_signal(fc.fences[i]);
  waiter.join();
  EXPECT_EQ(result.load(), 0);
  EXPECT_TRUE(fence_test_signaled_flag(fc.tail));
}

}  // namespace

TEST(DmaBufFenceChain, test_wait_forward) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(kChainSz, seqno_inc));
  wait_and_signal(fc);
  fc.fini();
}

TEST(DmaBufFenceChain, test_wait_backward) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(kChainSz, seqno_inc));
  std::reverse(fc.fences.begin(), fc.fences.end());
  wait_and_signal(fc);
  fc.fini();
}

TEST(DmaBufFenceChain, test_wait_random) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(kChainSz, seqno_inc));
  // Fisher-Yates, as randomise_fences().
  std::mt19937 rng(42);
  for (unsigned count = fc.chain_length; --count;) {
    unsigned swp = std::uniform_int_distribution<unsigned>(0, count)(rng);
    if (swp != count) std::swap(fc.fences[count], fc.fences[swp]);
  }
  wait_and_signal(fc);
  fc.fini();
}

// --- beyond the kernel suite ---------------------------------------------------

TEST(FenceChain, ReleaseOfMillionLinkChainDoesNotRecurse) {
  // Each node's only reference is held by its successor, so the last put
  // releases all of them; a recursive release would need ~1M stack frames.
  constexpr unsigned kLinks = 1000000;
  Fence* f = mock_fence();
  ASSERT_NE(f, nullptr);
  fence_signal(f);
  Fence* tail = nullptr;
  for (unsigned i = 0; i < kLinks; ++i) {
    FenceChain* c = fence_chain_alloc();
    ASSERT_NE(c, nullptr);
    fence_chain_init(c, tail, fence_get(f), i + 1);  // consumes tail
    tail = &c->base;
  }
  EXPECT_EQ(tail->seqno, kLinks);
  EXPECT_EQ(f->refcount.load(), kLinks + 1);
  fence_put(tail);
  EXPECT_EQ(f->refcount.load(), 1u) << "every link dropped its contained fence";
  fence_put(f);
  rcu::barrier();
}

TEST(FenceChain, InitContextRules) {
  Fence* f1 = mock_fence();
  Fence* f2 = mock_fence();
  Fence* f3 = mock_fence();
  FenceChain* c1 = fence_chain_alloc();
  fence_chain_init(c1, nullptr, fence_get(f1), 5);
  EXPECT_TRUE(fence_test_flag(&c1->base, FENCE_FLAG_SEQNO64_BIT));
  EXPECT_EQ(c1->prev_seqno, 0u);

  // A later point continues the timeline.
  FenceChain* c2 = fence_chain_alloc();
  fence_chain_init(c2, fence_get(&c1->base), fence_get(f2), 1ull << 40);
  EXPECT_EQ(c2->base.context, c1->base.context);
  EXPECT_EQ(c2->prev_seqno, 5u);
  EXPECT_EQ(c2->base.seqno, 1ull << 40) << "64-bit seqnos";

  // A point that is not later starts a new context with the seqno raised.
  FenceChain* c3 = fence_chain_alloc();
  fence_chain_init(c3, fence_get(&c2->base), fence_get(f3), 3);
  EXPECT_NE(c3->base.context, c2->base.context);
  EXPECT_EQ(c3->base.seqno, 1ull << 40);
  EXPECT_EQ(c3->prev_seqno, 0u);

  EXPECT_TRUE(fence_is_chain(&c1->base));
  EXPECT_TRUE(fence_is_container(&c1->base));
  EXPECT_FALSE(fence_is_chain(f1));
  EXPECT_EQ(fence_chain_contained(&c2->base), f2);
  EXPECT_EQ(fence_chain_contained(f2), f2);
  EXPECT_EQ(to_fence_chain(nullptr), nullptr);

  // find_seqno on a plain fence: -EINVAL, pointer untouched.
  Fence* plain = f1;
  EXPECT_EQ(fence_chain_find_seqno(&plain, 1), -EINVAL);
  EXPECT_EQ(plain, f1);
  // A different context ends the search.
  Fence* probe = fence_get(&c3->base);
  EXPECT_EQ(fence_chain_find_seqno(&probe, 1ull << 40), 0);
  EXPECT_EQ(probe, &c3->base);
  fence_put(probe);

  // Names, and the walk of a non-chain consumes the reference.
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(&c1->base), "dma_fence_chain");
    EXPECT_STREQ(fence_timeline_name(&c1->base), "unbound");
  }
  EXPECT_EQ(fence_chain_walk(fence_get(f1)), nullptr);

  for (Fence* f : {f1, f2, f3}) fence_signal(f);
  EXPECT_TRUE(fence_is_signaled(&c3->base));
  fence_put(&c3->base);
  fence_put(&c2->base);
  fence_put(&c1->base);
  for (Fence* f : {f1, f2, f3}) fence_put(f);
}

TEST(FenceChain, WalkCollectsSignalledLinks) {
  FenceChains fc;
  ASSERT_TRUE(fc.init(4, seqno_inc));
  fence_signal(fc.fences[1]);
  fence_signal(fc.fences[2]);
  // chain[3].prev = chain[2] (signalled) -> collected -> chain[1] (signalled) ->
  // collected -> chain[0] pending.
  Fence* next = fence_chain_walk(fence_get(fc.chains[3]));
  EXPECT_EQ(next, fc.chains[0]);
  EXPECT_EQ(to_fence_chain(fc.chains[3])->prev.load(), fc.chains[0]);
  fence_put(next);
  // The head is always visited by for_each, even if signalled.
  fence_signal(fc.fences[3]);
  Fence* iter;
  std::vector<Fence*> seen;
  fence_chain_for_each(iter, fc.chains[3]) seen.push_back(iter);
  EXPECT_EQ(seen, (std::vector<Fence*>{fc.chains[3], fc.chains[0]}));
  fc.fini();
}

namespace {
std::atomic<int> g_deadlines{0};
std::atomic<int64_t> g_last_deadline{0};
void record_deadline(Fence*, int64_t ns) {
  g_deadlines.fetch_add(1);
  g_last_deadline = ns;
}
const FenceOps kDeadlineOps = {
    .get_driver_name = mock_name,
    .get_timeline_name = mock_name,
    .set_deadline = record_deadline,
};
}  // namespace

TEST(FenceChain, DeadlineReachesEveryPendingContainedFence) {
  Fence* f[3];
  Fence* tail = nullptr;
  for (int i = 0; i < 3; ++i) {
    f[i] = fence_alloc();
    fence_init(f[i], &kDeadlineOps, nullptr, 0, 0);
    FenceChain* c = fence_chain_alloc();
    fence_chain_init(c, tail, fence_get(f[i]), i + 1);
    tail = &c->base;
  }
  g_deadlines = 0;
  fence_set_deadline(tail, 123);
  EXPECT_EQ(g_deadlines.load(), 3);
  EXPECT_EQ(g_last_deadline.load(), 123);
  fence_signal(f[2]);
  g_deadlines = 0;
  fence_set_deadline(tail, 7);  // the head is visited even if signalled, but a
  EXPECT_EQ(g_deadlines.load(), 2);  // signalled fence takes no deadline
  for (auto* x : f) fence_signal(x);
  EXPECT_EQ(fence_get_status(tail), 1);
  fence_put(tail);
  for (auto* x : f) fence_put(x);
}

TEST(FenceChain, SignalViaWorkerWhenSignalledUnderRawLock) {
  // Signalling the contained fence under a lock taken without the irqsave
  // discipline: the chain's irq_work cannot run inline and goes to the worker.
  Fence* f = mock_fence();
  Fence* chain = mock_chain(nullptr, f, 1);
  fence_enable_sw_signaling(chain);
  fence_spinlock(f)->lock();
  fence_signal_locked(f);
  fence_spinlock(f)->unlock();
  EXPECT_EQ(fence_wait_timeout(chain, false, 5'000'000'000LL) > 0, true);
  irq_work_barrier();
  EXPECT_TRUE(fence_test_signaled_flag(chain));
  fence_put(chain);
  fence_put(f);
}
