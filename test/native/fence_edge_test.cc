// Fence core edge cases the kernel's dma-buf-fence suite does not cover: seqno
// wrap, cross-context warnings, release with pending callbacks, callbacks that
// add callbacks or signal, waiter ordering, wait/wait_any contracts, set_error
// and timestamp warnings, every optional op (enable_signaling, signaled,
// release, wait, set_deadline), stubs, describe, external locks, RCU, and a
// two-thread stress meant for ASan/LSan and TSan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/monotonic.h"
#include "core/base/warn.h"
#include "core/fence/fence.h"

using namespace dmabuf;
using namespace std::chrono_literals;

namespace {

// --- helpers --------------------------------------------------------------------

// Installs a warn handler for its lifetime and records every warning.
class WarnCapture {
 public:
  WarnCapture() { prev_ = set_warn_handler(&WarnCapture::Record, this); }
  ~WarnCapture() { set_warn_handler(prev_, nullptr); }
  WarnCapture(const WarnCapture&) = delete;
  WarnCapture& operator=(const WarnCapture&) = delete;

  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> g(mu_);
    return messages_;
  }
  size_t count() { return messages().size(); }
  // Whether exactly one warning was recorded and it contains `needle`.
  bool one(const std::string& needle) {
    auto m = messages();
    return m.size() == 1 && m[0].find(needle) != std::string::npos;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu_);
    messages_.clear();
  }

 private:
  static void Record(const char* msg, void* self) {
    auto* c = static_cast<WarnCapture*>(self);
    std::lock_guard<std::mutex> g(c->mu_);
    c->messages_.emplace_back(msg);
  }
  WarnHandler prev_;
  std::mutex mu_;
  std::vector<std::string> messages_;
};

const char* drv_name(Fence*) { return "edge-drv"; }
const char* tl_name(Fence*) { return "edge-tl"; }
const FenceOps kNamesOps = {.get_driver_name = drv_name, .get_timeline_name = tl_name};

Fence* new_fence(const FenceOps* ops = &kNamesOps, SpinLock* lock = nullptr, uint64_t ctx = 0,
                 uint64_t seqno = 0, bool seqno64 = false) {
  Fence* f = fence_alloc();
  if (!f) return nullptr;
  if (seqno64)
    fence_init64(f, ops, lock, ctx, seqno);
  else
    fence_init(f, ops, lock, ctx, seqno);
  return f;
}

// A callback that counts its calls and records what it saw.
struct CountCb {
  FenceCallback cb;
  std::atomic<int> calls{0};
  std::atomic<int> error_seen{1};  // f->error when it ran (1 = never ran)
  std::atomic<bool> signaled_seen{false};
  std::atomic<bool> lock_held{false};
};
void count_cb(Fence* f, FenceCallback* cb) {
  auto* c = container_of(cb, &CountCb::cb);
  c->error_seen.store(__atomic_load_n(&f->error, __ATOMIC_RELAXED));
  c->signaled_seen.store(fence_test_signaled_flag(f));
  c->lock_held.store(fence_spinlock(f)->is_locked());
  c->calls.fetch_add(1);
}

// A callback that appends its tag to a shared log (single-threaded use).
struct OrderCb {
  FenceCallback cb;
  std::vector<int>* log;
  int tag;
};
void order_cb(Fence*, FenceCallback* cb) {
  auto* c = container_of(cb, &OrderCb::cb);
  c->log->push_back(c->tag);
}

size_t cb_list_len_locked(Fence* f) {
  size_t n = 0;
  for (ListHead* p = f->cb_list.next; p != &f->cb_list; p = p->next) ++n;
  return n;
}
// Polls until `f` has `n` entries on its callback list (e.g. a waiter hooked in).
bool wait_for_cb_list_len(Fence* f, size_t n) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    fence_lock_irqsave(f);
    const size_t len = cb_list_len_locked(f);
    fence_unlock_irqrestore(f);
    if (len == n) return true;
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(1ms);
  }
}
bool cb_list_empty(Fence* f) {
  SpinGuard g(fence_spinlock(f));
  return fence_test_signaled_flag(f) || list_empty(&f->cb_list);
}

}  // namespace

// --- seqno ordering ---------------------------------------------------------------

TEST(FenceEdgeOrdering, Seqno32WrapAround) {
  Fence* f = new_fence();
  ASSERT_NE(f, nullptr);
  ASSERT_FALSE(fence_test_flag(f, FENCE_FLAG_SEQNO64_BIT));
  // Exactly 2^31 apart: neither is later.
  EXPECT_FALSE(fence_is_later_seqno(f, 1, 0x80000001));
  EXPECT_FALSE(fence_is_later_seqno(f, 0x80000001, 1));
  EXPECT_FALSE(fence_is_later_seqno(f, 0, 0x80000000));
  EXPECT_FALSE(fence_is_later_seqno(f, 0x80000000, 0));
  // One less than 2^31 apart: the wrapped-around one is later.
  EXPECT_TRUE(fence_is_later_seqno(f, 1, 0x80000002));
  EXPECT_FALSE(fence_is_later_seqno(f, 0x80000002, 1));
  // 0 follows 0xFFFFFFFF.
  EXPECT_TRUE(fence_is_later_seqno(f, 0, 0xFFFFFFFF));
  EXPECT_FALSE(fence_is_later_seqno(f, 0xFFFFFFFF, 0));
  // Equal is not later.
  EXPECT_FALSE(fence_is_later_seqno(f, 7, 7));
  // The upper 32 bits are ignored.
  EXPECT_FALSE(fence_is_later_seqno(f, 0x100000005ULL, 5));
  EXPECT_FALSE(fence_is_later_seqno(f, 5, 0x100000005ULL));
  EXPECT_TRUE(fence_is_later_seqno(f, 0x100000006ULL, 0x200000005ULL));
  EXPECT_FALSE(fence_is_later_seqno(f, 0xFFFFFFFF00000000ULL, 1));
  fence_signal(f);
  fence_put(f);
}

TEST(FenceEdgeOrdering, Seqno32ThroughFences) {
  const uint64_t ctx = fence_context_alloc(1);
  Fence* zero = new_fence(&kNamesOps, nullptr, ctx, 0);
  Fence* max = new_fence(&kNamesOps, nullptr, ctx, 0xFFFFFFFF);
  Fence* hi = new_fence(&kNamesOps, nullptr, ctx, 0x100000000ULL);  // lower half 0
  EXPECT_TRUE(fence_is_later(zero, max));
  EXPECT_FALSE(fence_is_later(max, zero));
  EXPECT_FALSE(fence_is_later(hi, zero));  // same lower half
  EXPECT_FALSE(fence_is_later(zero, hi));
  EXPECT_TRUE(fence_is_later_or_same(zero, zero));  // identity
  EXPECT_FALSE(fence_is_later_or_same(hi, zero));   // equal seqno, different fence
  for (Fence* f : {zero, max, hi}) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeOrdering, Seqno64IsPlainComparison) {
  Fence* f = new_fence(&kNamesOps, nullptr, 0, 0, /*seqno64=*/true);
  ASSERT_TRUE(fence_test_flag(f, FENCE_FLAG_SEQNO64_BIT));
  EXPECT_TRUE(fence_is_later_seqno(f, 0x80000001, 1));
  EXPECT_FALSE(fence_is_later_seqno(f, 1, 0x80000001));
  EXPECT_FALSE(fence_is_later_seqno(f, 0, 0xFFFFFFFF));
  EXPECT_TRUE(fence_is_later_seqno(f, 0xFFFFFFFF, 0));
  EXPECT_TRUE(fence_is_later_seqno(f, 0x100000005ULL, 5));
  EXPECT_TRUE(fence_is_later_seqno(f, UINT64_MAX, UINT64_MAX - 1));
  EXPECT_FALSE(fence_is_later_seqno(f, 0, UINT64_MAX));
  EXPECT_FALSE(fence_is_later_seqno(f, 9, 9));
  fence_signal(f);
  fence_put(f);
}

TEST(FenceEdgeOrdering, AcrossContextsIsFalseAndWarns) {
  Fence* a = new_fence(&kNamesOps, nullptr, 100, 5);
  Fence* b = new_fence(&kNamesOps, nullptr, 101, 1);
  {
    WarnCapture w;
    EXPECT_FALSE(fence_is_later(a, b));
    EXPECT_TRUE(w.one("different contexts")) << (w.count() ? w.messages()[0] : "no warning");
    EXPECT_NE(w.messages()[0].find("100"), std::string::npos);
    EXPECT_NE(w.messages()[0].find("101"), std::string::npos);
  }
  {
    WarnCapture w;
    EXPECT_FALSE(fence_is_later(b, a));
    EXPECT_EQ(w.count(), 1u);
  }
  {
    WarnCapture w;
    EXPECT_EQ(fence_later(a, b), nullptr);
    EXPECT_TRUE(w.one("different contexts"));
  }
  {
    WarnCapture w;  // same context: no warning
    Fence* c = new_fence(&kNamesOps, nullptr, 100, 6);
    EXPECT_TRUE(fence_is_later(c, a));
    EXPECT_EQ(w.count(), 0u);
    fence_signal(c);
    fence_put(c);
  }
  for (Fence* f : {a, b}) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeOrdering, LaterPicksLaterOrNullIfSignalled) {
  const uint64_t ctx = fence_context_alloc(1);
  Fence* a = new_fence(&kNamesOps, nullptr, ctx, 1);
  Fence* b = new_fence(&kNamesOps, nullptr, ctx, 2);
  Fence* c = new_fence(&kNamesOps, nullptr, ctx, 0x80000002);  // 2^31 from b
  EXPECT_EQ(fence_later(a, b), b);
  EXPECT_EQ(fence_later(b, a), b);
  // Neither later: the second argument is returned.
  EXPECT_EQ(fence_later(b, c), c);
  EXPECT_EQ(fence_later(c, b), b);
  fence_signal(b);
  EXPECT_EQ(fence_later(a, b), nullptr);
  EXPECT_EQ(fence_later(b, a), nullptr);
  // Signalling the earlier one does not matter.
  fence_signal(a);
  Fence* d = new_fence(&kNamesOps, nullptr, ctx, 3);
  EXPECT_EQ(fence_later(a, d), d);
  for (Fence* f : {a, b, c, d}) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeContext, NeverZeroAndConsecutive) {
  uint64_t prev = fence_context_alloc(1);
  EXPECT_NE(prev, 0u);
  for (int i = 0; i < 100; ++i) {
    const uint64_t c = fence_context_alloc(1);
    EXPECT_NE(c, 0u);
    EXPECT_EQ(c, prev + 1);
    prev = c;
  }
  const uint64_t block = fence_context_alloc(10);
  EXPECT_EQ(block, prev + 1);
  EXPECT_EQ(fence_context_alloc(1), block + 10);
}

TEST(FenceEdgeContext, ZeroCountWarns) {
  WarnCapture w;
  const uint64_t a = fence_context_alloc(0);
  EXPECT_TRUE(w.one("num == 0"));
  EXPECT_NE(a, 0u);
  EXPECT_EQ(fence_context_alloc(1), a);  // nothing was reserved
}

TEST(FenceEdgeContext, ConcurrentAllocationsAreDistinct) {
  constexpr int kPerThread = 2000;
  std::vector<uint64_t> got[2];
  std::thread t[2];
  for (int i = 0; i < 2; ++i)
    t[i] = std::thread([&, i] {
      for (int k = 0; k < kPerThread; ++k) got[i].push_back(fence_context_alloc(1));
    });
  for (auto& th : t) th.join();
  std::vector<uint64_t> all(got[0]);
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_NE(all.front(), 0u);
}

// --- release --------------------------------------------------------------------

TEST(FenceEdgeRelease, PendingCallbacksAreSignalledWithEdeadlk) {
  WarnCapture w;
  Fence* f = new_fence(&kNamesOps, nullptr, 0x1f, 0x2a);
  CountCb a, b;
  ASSERT_EQ(fence_add_callback(f, &a.cb, count_cb), 0);
  ASSERT_EQ(fence_add_callback(f, &b.cb, count_cb), 0);
  fence_put(f);  // last reference, never signalled
  ASSERT_EQ(w.count(), 1u);
  EXPECT_EQ(w.messages()[0], "Fence edge-drv:edge-tl:1f:2a released with pending signals!");
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_EQ(a.error_seen.load(), -EDEADLK);
  EXPECT_EQ(b.error_seen.load(), -EDEADLK);
  EXPECT_TRUE(a.signaled_seen.load());
  EXPECT_TRUE(a.lock_held.load());
  // The callbacks were unlinked before they ran.
  EXPECT_TRUE(list_empty(&a.cb.node));
  EXPECT_TRUE(list_empty(&b.cb.node));
}

TEST(FenceEdgeRelease, NoWarningWithoutPendingCallbacks) {
  WarnCapture w;
  Fence* f = new_fence();
  CountCb a;
  ASSERT_EQ(fence_add_callback(f, &a.cb, count_cb), 0);
  ASSERT_TRUE(fence_remove_callback(f, &a.cb));
  fence_put(f);  // unsignalled but nothing pending
  Fence* g = new_fence();
  CountCb b;
  ASSERT_EQ(fence_add_callback(g, &b.cb, count_cb), 0);
  fence_signal(g);
  fence_put(g);
  EXPECT_EQ(w.count(), 0u);
  EXPECT_EQ(a.calls.load(), 0);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_EQ(b.error_seen.load(), 0);
}

// --- callbacks from callbacks -------------------------------------------------------

namespace {

struct AddFromCb {
  FenceCallback cb;
  Fence* other = nullptr;
  CountCb self_late;    // added to the signalled fence: must be refused
  CountCb other_cb;     // added to `other`: must work
  int self_ret = 1;
  int other_ret = 1;
};
void add_from_cb(Fence* f, FenceCallback* cb) {
  auto* d = container_of(cb, &AddFromCb::cb);
  d->self_ret = fence_add_callback(f, &d->self_late.cb, count_cb);
  d->other_ret = fence_add_callback(d->other, &d->other_cb.cb, count_cb);
}

}  // namespace

TEST(FenceEdgeCallbacks, AddFromInsideCallback) {
  Fence* a = new_fence();
  Fence* b = new_fence();
  AddFromCb d;
  d.other = b;
  ASSERT_EQ(fence_add_callback(a, &d.cb, add_from_cb), 0);
  fence_signal(a);
  EXPECT_EQ(d.self_ret, -ENOENT);
  EXPECT_EQ(d.other_ret, 0);
  EXPECT_EQ(d.self_late.calls.load(), 0);
  EXPECT_EQ(d.other_cb.calls.load(), 0);  // b not signalled yet
  fence_signal(b);
  EXPECT_EQ(d.other_cb.calls.load(), 1);
  EXPECT_EQ(d.self_late.calls.load(), 0);
  EXPECT_FALSE(fence_remove_callback(a, &d.self_late.cb));  // node left empty by -ENOENT
  fence_put(a);
  fence_put(b);
}

namespace {

struct SignalFromCb {
  FenceCallback cb;
  Fence* other = nullptr;
  bool self_was_signaled = false;
  int64_t other_ts_in_cb = 0;
};
void signal_from_cb(Fence* f, FenceCallback* cb) {
  auto* d = container_of(cb, &SignalFromCb::cb);
  if (d->other) {
    fence_signal(d->other);  // another fence: its own lock
    d->other_ts_in_cb = fence_timestamp(d->other);
  }
  // The same fence: we are under its lock, so only the _locked variants may be
  // used, and both are no-ops now.
  fence_signal_timestamp_locked(f, 1);
  fence_signal_locked(f);
  d->self_was_signaled = fence_check_and_signal_locked(f);
}

}  // namespace

TEST(FenceEdgeCallbacks, SignalFromInsideCallback) {
  WarnCapture w;
  Fence* a = new_fence();
  Fence* b = new_fence();
  SignalFromCb d;
  d.other = b;
  CountCb on_a, on_b;
  ASSERT_EQ(fence_add_callback(a, &d.cb, signal_from_cb), 0);
  ASSERT_EQ(fence_add_callback(a, &on_a.cb, count_cb), 0);
  ASSERT_EQ(fence_add_callback(b, &on_b.cb, count_cb), 0);
  fence_signal_timestamp(a, 5000);
  EXPECT_TRUE(fence_test_signaled_flag(b));
  EXPECT_EQ(on_b.calls.load(), 1);  // b's callbacks ran inside a's
  EXPECT_NE(d.other_ts_in_cb, 0);
  EXPECT_TRUE(d.self_was_signaled);
  EXPECT_EQ(on_a.calls.load(), 1);      // a's callbacks ran exactly once
  EXPECT_EQ(fence_timestamp(a), 5000);  // the nested signals changed nothing
  EXPECT_EQ(w.count(), 0u);
  fence_put(a);
  fence_put(b);
}

TEST(FenceEdgeCallbacks, RunInFifoOrder) {
  Fence* f = new_fence();
  std::vector<int> log;
  OrderCb cbs[6];
  for (int i = 0; i < 6; ++i) {
    cbs[i].log = &log;
    cbs[i].tag = i;
    ASSERT_EQ(fence_add_callback(f, &cbs[i].cb, order_cb), 0);
  }
  ASSERT_TRUE(fence_remove_callback(f, &cbs[2].cb));
  ASSERT_EQ(fence_add_callback(f, &cbs[2].cb, order_cb), 0);  // re-added at the tail
  fence_signal(f);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 3, 4, 5, 2}));
  fence_put(f);
}

// The signal walk reads the next node before a callback runs: a callback may
// free its own node (ASan checks the walk never touches it again), and every
// node that ran is off the list, so removing it afterwards returns false.
struct HeapCb {
  FenceCallback cb;
  std::vector<int>* log;
  int tag;
};
void free_self_cb(Fence*, FenceCallback* cb) {
  auto* c = container_of(cb, &HeapCb::cb);
  c->log->push_back(c->tag);
  delete c;
}

TEST(FenceEdgeCallbacks, CallbackMayFreeItsOwnNode) {
  Fence* f = new_fence();
  std::vector<int> log;
  for (int i = 0; i < 5; ++i) {
    auto* c = new HeapCb{{}, &log, i};
    ASSERT_EQ(fence_add_callback(f, &c->cb, free_self_cb), 0);
  }
  fence_signal(f);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(fence_is_signaled(f));
  fence_put(f);
}

TEST(FenceEdgeCallbacks, RemoveAfterRunReturnsFalse) {
  Fence* f = new_fence();
  std::vector<int> log;
  OrderCb cbs[3];
  for (int i = 0; i < 3; ++i) {
    cbs[i].log = &log;
    cbs[i].tag = i;
    ASSERT_EQ(fence_add_callback(f, &cbs[i].cb, order_cb), 0);
  }
  fence_signal(f);
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2}));
  for (auto& c : cbs) {
    EXPECT_TRUE(list_empty(&c.cb.node));
    EXPECT_FALSE(fence_remove_callback(f, &c.cb));
  }
  // A late add is refused and leaves the node initialised.
  EXPECT_EQ(fence_add_callback(f, &cbs[0].cb, order_cb), -ENOENT);
  EXPECT_TRUE(list_empty(&cbs[0].cb.node));
  fence_put(f);
}

TEST(FenceEdgeCallbacks, AddCallbackNullArgs) {
  WarnCapture w;
  Fence* f = new_fence();
  FenceCallback cb;
  EXPECT_EQ(fence_add_callback(f, &cb, nullptr), -EINVAL);
  EXPECT_EQ(fence_add_callback(nullptr, &cb, count_cb), -EINVAL);
  EXPECT_EQ(w.count(), 2u);
  EXPECT_FALSE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));  // rejected before enabling
  fence_signal(f);
  fence_put(f);
}

TEST(FenceEdgeCallbacks, DefaultWaiterGoesToTheHead) {
  Fence* f = new_fence();
  std::vector<int> log;
  OrderCb c1{{}, &log, 1}, c2{{}, &log, 2};
  ASSERT_EQ(fence_add_callback(f, &c1.cb, order_cb), 0);
  std::atomic<long> waited{-100};
  std::thread waiter([&] { waited.store(fence_wait_timeout(f, false, 10'000'000'000LL)); });
  if (!wait_for_cb_list_len(f, 2)) {  // the waiter hooks itself in
    fence_signal(f);
    waiter.join();
    FAIL() << "waiter never queued";
  }
  ASSERT_EQ(fence_add_callback(f, &c2.cb, order_cb), 0);
  fence_lock_irqsave(f);
  ListHead* first = f->cb_list.next;
  const bool waiter_first = first != &c1.cb.node && first != &c2.cb.node;
  const bool then_c1 = first->next == &c1.cb.node;
  const bool then_c2 = c1.cb.node.next == &c2.cb.node && c2.cb.node.next == &f->cb_list;
  fence_unlock_irqrestore(f);
  EXPECT_TRUE(waiter_first) << "the default waiter must be inserted at the head";
  EXPECT_TRUE(then_c1);
  EXPECT_TRUE(then_c2);
  fence_signal(f);
  waiter.join();
  EXPECT_GE(waited.load(), 1);
  EXPECT_EQ(log, (std::vector<int>{1, 2}));
  fence_put(f);
}

// --- waits ----------------------------------------------------------------------

TEST(FenceEdgeWait, NegativeTimeoutIsEinvalAndWarns) {
  WarnCapture w;
  Fence* f = new_fence();
  EXPECT_EQ(fence_wait_timeout(f, false, -1), -EINVAL);
  EXPECT_EQ(fence_wait_timeout(f, true, INT64_MIN), -EINVAL);
  EXPECT_EQ(w.count(), 2u);
  EXPECT_NE(w.messages()[0].find("negative timeout"), std::string::npos);
  // Rejected before enabling signalling.
  EXPECT_FALSE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  fence_signal(f);
  EXPECT_EQ(fence_wait_timeout(f, false, -5), -EINVAL);  // also once signalled
  fence_put(f);
}

TEST(FenceEdgeWait, ReturnsRemainingTime) {
  Fence* f = new_fence();
  // Zero timeout enables signalling even though it does not sleep.
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 0);
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  constexpr int64_t kTimeout = 10'000'000'000LL;
  const int64_t t0 = monotonic_ns();
  std::atomic<bool> queued{false};
  std::thread t([&] {  // signals once the waiter sleeps on the fence
    queued = wait_for_cb_list_len(f, 1);
    std::this_thread::sleep_for(2ms);
    fence_signal(f);
  });
  const long left = fence_wait_timeout(f, false, kTimeout);
  const int64_t elapsed = monotonic_ns() - t0;
  t.join();
  ASSERT_TRUE(queued.load());
  EXPECT_GE(left, 1);
  EXPECT_LT(left, kTimeout - 1'000'000);  // at least the 2 ms were used
  EXPECT_GE(left, kTimeout - elapsed - 1'000'000);
  // Already signalled: the whole timeout, or 1 for a zero timeout.
  EXPECT_EQ(fence_wait_timeout(f, false, 12345), 12345);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 1);
  EXPECT_EQ(fence_wait_timeout(f, true, kMaxScheduleTimeout), kMaxScheduleTimeout);
  EXPECT_EQ(fence_wait(f, true), 0);
  fence_put(f);
}

TEST(FenceEdgeWait, TimeoutReturnsZeroAndUnhooks) {
  Fence* f = new_fence();
  const int64_t t0 = monotonic_ns();
  EXPECT_EQ(fence_wait_timeout(f, false, 3'000'000), 0);
  EXPECT_GE(monotonic_ns() - t0, 3'000'000);
  EXPECT_TRUE(cb_list_empty(f));  // the waiter's stack node is gone from the list
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  fence_signal(f);
  EXPECT_EQ(c.calls.load(), 1);
  fence_put(f);
}

TEST(FenceEdgeWaitAny, InvalidArguments) {
  WarnCapture w;
  Fence* f = new_fence();
  Fence* list[1] = {f};
  uint32_t idx = 77;
  EXPECT_EQ(fence_wait_any_timeout(nullptr, 1, false, 0, &idx), -EINVAL);
  EXPECT_EQ(fence_wait_any_timeout(list, 0, false, 1000, &idx), -EINVAL);
  EXPECT_EQ(fence_wait_any_timeout(list, 1, false, -1, &idx), -EINVAL);
  EXPECT_EQ(idx, 77u);
  EXPECT_EQ(w.count(), 3u);
  EXPECT_FALSE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  fence_signal(f);
  fence_put(f);
}

TEST(FenceEdgeWaitAny, ZeroTimeoutPolls) {
  Fence* fs[3] = {new_fence(), new_fence(), new_fence()};
  uint32_t idx = 99;
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 0, &idx), 0);
  EXPECT_EQ(idx, 99u);  // untouched when nothing signalled
  fence_signal(fs[2]);
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 0, &idx), 1);
  EXPECT_EQ(idx, 2u);
  fence_signal(fs[1]);
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 0, &idx), 1);
  EXPECT_EQ(idx, 1u);  // the first signalled one, by index
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 0, nullptr), 1);  // idx optional
  for (Fence* f : fs) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeWaitAny, AlreadySignalledFenceReturnsAtOnce) {
  Fence* fs[3] = {new_fence(), new_fence(), new_fence()};
  fence_signal(fs[1]);
  uint32_t idx = 99;
  const int64_t t0 = monotonic_ns();
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 5'000'000'000LL, &idx), 5'000'000'000LL);
  EXPECT_LT(monotonic_ns() - t0, 1'000'000'000LL);
  EXPECT_EQ(idx, 1u);
  // The callback added to fs[0] before fs[1] was found signalled is gone again.
  EXPECT_TRUE(cb_list_empty(fs[0]));
  EXPECT_TRUE(cb_list_empty(fs[2]));
  // Signalling now must not touch the freed waiter (ASan would report it).
  fence_signal(fs[0]);
  fence_signal(fs[2]);
  for (Fence* f : fs) fence_put(f);
}

TEST(FenceEdgeWaitAny, WakesOnSignalFromAnotherThread) {
  Fence* fs[4] = {new_fence(), new_fence(), new_fence(), new_fence()};
  std::atomic<bool> queued{false};
  std::thread t([&] {  // wakers go on in order: once fs[3] has one, all have
    queued = wait_for_cb_list_len(fs[3], 1);
    fence_signal(fs[2]);
  });
  uint32_t idx = 99;
  const long r = fence_wait_any_timeout(fs, 4, true, 10'000'000'000LL, &idx);
  t.join();
  ASSERT_TRUE(queued.load());
  EXPECT_GE(r, 1);
  EXPECT_LT(r, 10'000'000'000LL);
  EXPECT_EQ(idx, 2u);
  for (Fence* f : fs) EXPECT_TRUE(cb_list_empty(f));
  // Every waker was removed: these signals run no freed callback.
  for (Fence* f : fs) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeWaitAny, TimesOutWithZeroAndRemovesCallbacks) {
  Fence* fs[3] = {new_fence(), new_fence(), new_fence()};
  CountCb keep;  // someone else's callback must survive the waiter's cleanup
  ASSERT_EQ(fence_add_callback(fs[1], &keep.cb, count_cb), 0);
  uint32_t idx = 99;
  const int64_t t0 = monotonic_ns();
  EXPECT_EQ(fence_wait_any_timeout(fs, 3, false, 2'000'000, &idx), 0);
  EXPECT_GE(monotonic_ns() - t0, 2'000'000);
  EXPECT_EQ(idx, 99u);
  EXPECT_TRUE(cb_list_empty(fs[0]));
  EXPECT_TRUE(cb_list_empty(fs[2]));
  {
    SpinGuard g(fence_spinlock(fs[1]));
    EXPECT_EQ(cb_list_len_locked(fs[1]), 1u);
    EXPECT_EQ(fs[1]->cb_list.next, &keep.cb.node);
  }
  for (Fence* f : fs) fence_signal(f);
  EXPECT_EQ(keep.calls.load(), 1);
  for (Fence* f : fs) fence_put(f);
}

// --- error, status, timestamp ---------------------------------------------------------

TEST(FenceEdgeError, WarnsOutOfRangeButStores) {
  Fence* f = new_fence();
  struct Case {
    int err;
    bool warns;
  } cases[] = {{0, true}, {1, true}, {-4096, true}, {INT32_MIN, true}, {100, true},
               {-4095, false}, {-1, false}, {-EIO, false}};
  for (const Case& c : cases) {
    WarnCapture w;
    fence_set_error(f, c.err);
    EXPECT_EQ(f->error, c.err);
    if (c.warns)
      EXPECT_TRUE(w.one("invalid error")) << c.err;
    else
      EXPECT_EQ(w.count(), 0u) << c.err;
  }
  fence_signal(f);
  fence_put(f);
}

TEST(FenceEdgeError, WarnsAfterSignalButStores) {
  Fence* f = new_fence();
  fence_set_error(f, -EIO);
  fence_signal(f);
  EXPECT_EQ(fence_get_status(f), -EIO);
  {
    WarnCapture w;
    fence_set_error(f, -ETIME);
    EXPECT_TRUE(w.one("already signaled"));
  }
  EXPECT_EQ(f->error, -ETIME);
  EXPECT_EQ(fence_get_status(f), -ETIME);
  {
    WarnCapture w;  // both problems: two warnings
    fence_set_error(f, 0);
    EXPECT_EQ(w.count(), 2u);
  }
  EXPECT_EQ(fence_get_status(f), 1);  // error 0 reads as plain success
  fence_put(f);
}

TEST(FenceEdgeError, StatusReflectsErrorOnlyOnceSignalled) {
  Fence* f = new_fence();
  fence_set_error(f, -ECANCELED);
  EXPECT_EQ(fence_get_status(f), 0);
  fence_lock_irqsave(f);
  EXPECT_EQ(fence_get_status_locked(f), 0);
  fence_unlock_irqrestore(f);
  fence_signal(f);
  EXPECT_EQ(fence_get_status(f), -ECANCELED);
  fence_lock_irqsave(f);
  EXPECT_EQ(fence_get_status_locked(f), -ECANCELED);
  fence_unlock_irqrestore(f);
  fence_put(f);
}

TEST(FenceEdgeTimestamp, UnsignalledWarnsAndReturnsNow) {
  Fence* f = new_fence();
  WarnCapture w;
  const int64_t before = monotonic_ns();
  const int64_t ts = fence_timestamp(f);
  const int64_t after = monotonic_ns();
  EXPECT_TRUE(w.one("not signaled"));
  EXPECT_GE(ts, before);
  EXPECT_LE(ts, after);
  w.clear();
  fence_signal_timestamp(f, 424242);
  EXPECT_EQ(fence_timestamp(f), 424242);
  fence_signal_timestamp(f, 1);  // no-op
  EXPECT_EQ(fence_timestamp(f), 424242);
  EXPECT_EQ(w.count(), 0u);
  fence_put(f);
}

TEST(FenceEdgeTimestamp, SignalUsesMonotonicNow) {
  Fence* f = new_fence();
  const int64_t before = monotonic_ns();
  fence_signal(f);
  const int64_t after = monotonic_ns();
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_TIMESTAMP_BIT));
  EXPECT_GE(fence_timestamp(f), before);
  EXPECT_LE(fence_timestamp(f), after);
  fence_put(f);
}

// --- optional ops ----------------------------------------------------------------------

namespace {

// Counters for one fence's ops (a single test uses it at a time).
struct OpsProbe {
  std::atomic<int> enable_calls{0};
  std::atomic<bool> enable_result{true};
  std::atomic<int> enable_set_error{0};
  std::atomic<bool> enable_lock_held{false};
  std::atomic<bool> enable_in_rcu{false};

  std::atomic<int> signaled_calls{0};
  std::atomic<bool> signaled_result{false};
  std::atomic<int> signaled_set_error{0};
  std::atomic<int> signaled_calls_locked{0};
  std::atomic<bool> signaled_in_rcu{true};

  std::atomic<int> release_calls{0};
  std::atomic<bool> release_saw_signaled{false};
  std::atomic<int> release_saw_error{1};
  std::atomic<bool> release_in_rcu{false};

  std::atomic<int> wait_calls{0};
  std::atomic<int64_t> wait_timeout{-1};
  std::atomic<bool> wait_saw_enable{false};

  std::atomic<int> deadline_calls{0};
  std::atomic<int64_t> deadline{0};
  std::atomic<bool> deadline_lock_held{false};
  std::atomic<bool> deadline_in_rcu{false};
};
OpsProbe* g_probe = nullptr;  // set by each test before creating its fence

bool probe_enable(Fence* f) {
  g_probe->enable_calls.fetch_add(1);
  g_probe->enable_lock_held.store(fence_spinlock(f)->is_locked());
  g_probe->enable_in_rcu.store(rcu::read_ongoing());
  if (int e = g_probe->enable_set_error.load()) fence_set_error(f, e);
  return g_probe->enable_result.load();
}
bool probe_signaled(Fence* f) {
  g_probe->signaled_calls.fetch_add(1);
  if (fence_spinlock(f)->is_locked()) g_probe->signaled_calls_locked.fetch_add(1);
  if (!rcu::read_ongoing()) g_probe->signaled_in_rcu.store(false);
  const bool r = g_probe->signaled_result.load();
  if (r) {
    if (int e = g_probe->signaled_set_error.load()) fence_set_error(f, e);
  }
  return r;
}
void probe_release(Fence* f) {
  g_probe->release_calls.fetch_add(1);
  g_probe->release_saw_signaled.store(fence_test_signaled_flag(f));
  g_probe->release_saw_error.store(f->error);
  g_probe->release_in_rcu.store(rcu::read_ongoing());
  fence_free(f);
}
long probe_wait(Fence* f, bool intr, int64_t timeout) {
  g_probe->wait_calls.fetch_add(1);
  g_probe->wait_timeout.store(timeout);
  g_probe->wait_saw_enable.store(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  return fence_default_wait(f, intr, timeout);
}
void probe_deadline(Fence* f, int64_t d) {
  g_probe->deadline_calls.fetch_add(1);
  g_probe->deadline.store(d);
  g_probe->deadline_lock_held.store(fence_spinlock(f)->is_locked());
  g_probe->deadline_in_rcu.store(rcu::read_ongoing());
}

const FenceOps kEnableOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .enable_signaling = probe_enable,
};
const FenceOps kSignaledOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .signaled = probe_signaled,
};
const FenceOps kReleaseOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .release = probe_release,
};
const FenceOps kWaitOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .wait = probe_wait,
};
const FenceOps kDeadlineOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .set_deadline = probe_deadline,
};
const FenceOps kDeadlineReleaseOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .release = probe_release,
    .set_deadline = probe_deadline,
};
const FenceOps kDeadlineSignaledOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .signaled = probe_signaled,
    .set_deadline = probe_deadline,
};

class FenceEdgeOps : public ::testing::Test {
 protected:
  void SetUp() override { g_probe = &probe_; }
  void TearDown() override { g_probe = nullptr; }
  OpsProbe probe_;
};

}  // namespace

TEST_F(FenceEdgeOps, EnableSignalingCalledAtMostOnce) {
  Fence* f = new_fence(&kEnableOps);
  EXPECT_EQ(probe_.enable_calls.load(), 0);  // not at init
  EXPECT_FALSE(fence_is_signaled(f));         // polling never enables
  EXPECT_EQ(probe_.enable_calls.load(), 0);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(probe_.enable_calls.load(), 1);
  EXPECT_TRUE(probe_.enable_lock_held.load());
  EXPECT_TRUE(probe_.enable_in_rcu.load());
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  fence_enable_sw_signaling(f);
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 0);
  uint32_t idx;
  EXPECT_EQ(fence_wait_any_timeout(&f, 1, false, 1000, &idx), 0);
  EXPECT_EQ(probe_.enable_calls.load(), 1);
  EXPECT_FALSE(fence_test_signaled_flag(f));
  fence_signal(f);
  EXPECT_EQ(c.calls.load(), 1);
  fence_put(f);
}

TEST_F(FenceEdgeOps, AddCallbackEnablesSignaling) {
  Fence* f = new_fence(&kEnableOps);
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  EXPECT_EQ(probe_.enable_calls.load(), 1);
  fence_signal(f);
  fence_put(f);
}

TEST_F(FenceEdgeOps, EnableSignalingNotCalledOnceSignalled) {
  Fence* f = new_fence(&kEnableOps);
  fence_signal(f);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 1);
  EXPECT_EQ(probe_.enable_calls.load(), 0);
  fence_put(f);
}

TEST_F(FenceEdgeOps, EnableSignalingFalseSignalsAtOnce) {
  probe_.enable_result = false;
  Fence* f = new_fence(&kEnableOps);
  fence_enable_sw_signaling(f);
  EXPECT_EQ(probe_.enable_calls.load(), 1);
  EXPECT_TRUE(fence_test_signaled_flag(f));
  EXPECT_EQ(fence_get_status(f), 1);
  fence_put(f);

  // Through add_callback: refused with -ENOENT, callback never called.
  probe_.enable_set_error = -ECANCELED;  // set before returning false
  Fence* g = new_fence(&kEnableOps);
  CountCb c;
  EXPECT_EQ(fence_add_callback(g, &c.cb, count_cb), -ENOENT);
  EXPECT_EQ(probe_.enable_calls.load(), 2);
  EXPECT_TRUE(fence_test_signaled_flag(g));
  EXPECT_EQ(fence_get_status(g), -ECANCELED);
  EXPECT_EQ(c.calls.load(), 0);
  EXPECT_FALSE(fence_remove_callback(g, &c.cb));
  EXPECT_EQ(rcu::dereference(g->ops), nullptr);  // detached by that signal
  fence_put(g);

  // Through a wait: returns at once as signalled.
  Fence* h = new_fence(&kEnableOps);
  EXPECT_EQ(fence_wait_timeout(h, false, 5'000'000'000LL), 5'000'000'000LL);
  EXPECT_EQ(probe_.enable_calls.load(), 3);
  fence_put(h);
}

TEST_F(FenceEdgeOps, SignaledOpPolledByIsSignaled) {
  Fence* f = new_fence(&kSignaledOps);
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  EXPECT_FALSE(fence_is_signaled(f));
  EXPECT_EQ(probe_.signaled_calls.load(), 1);
  EXPECT_FALSE(fence_test_signaled_flag(f));
  probe_.signaled_result = true;
  EXPECT_FALSE(fence_test_signaled_flag(f));  // the flag test never polls
  EXPECT_EQ(probe_.signaled_calls.load(), 1);
  EXPECT_TRUE(fence_is_signaled(f));
  EXPECT_EQ(probe_.signaled_calls.load(), 2);
  EXPECT_EQ(probe_.signaled_calls_locked.load(), 0);  // unlocked variant
  EXPECT_TRUE(probe_.signaled_in_rcu.load());
  EXPECT_TRUE(fence_test_signaled_flag(f));  // ...and it signalled the fence
  EXPECT_EQ(c.calls.load(), 1);
  EXPECT_EQ(rcu::dereference(f->ops), nullptr);
  EXPECT_TRUE(fence_is_signaled(f));
  EXPECT_EQ(probe_.signaled_calls.load(), 2);  // flag set: no more polling
  fence_put(f);
}

TEST_F(FenceEdgeOps, SignaledOpPolledByGetStatus) {
  Fence* f = new_fence(&kSignaledOps);
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  EXPECT_EQ(fence_get_status(f), 0);
  EXPECT_EQ(probe_.signaled_calls.load(), 1);
  EXPECT_EQ(probe_.signaled_calls_locked.load(), 1);  // get_status holds the lock
  probe_.signaled_result = true;
  probe_.signaled_set_error = -ETIME;
  EXPECT_EQ(fence_get_status(f), -ETIME);
  EXPECT_TRUE(probe_.signaled_in_rcu.load());
  EXPECT_TRUE(fence_test_signaled_flag(f));
  EXPECT_EQ(c.calls.load(), 1);
  EXPECT_EQ(c.error_seen.load(), -ETIME);
  EXPECT_EQ(fence_get_status(f), -ETIME);
  EXPECT_EQ(probe_.signaled_calls.load(), 2);
  fence_put(f);
}

TEST_F(FenceEdgeOps, SignaledOpPolledByLaterAndWaitAny) {
  const uint64_t ctx = fence_context_alloc(1);
  Fence* a = new_fence(&kSignaledOps, nullptr, ctx, 1);
  Fence* b = new_fence(&kSignaledOps, nullptr, ctx, 2);
  EXPECT_EQ(fence_later(a, b), b);
  Fence* fs[2] = {a, b};
  uint32_t idx = 99;
  EXPECT_EQ(fence_wait_any_timeout(fs, 2, false, 0, &idx), 0);
  probe_.signaled_result = true;
  EXPECT_EQ(fence_wait_any_timeout(fs, 2, false, 0, &idx), 1);
  EXPECT_EQ(idx, 0u);
  EXPECT_TRUE(fence_test_signaled_flag(a));
  EXPECT_EQ(fence_later(a, b), nullptr);
  EXPECT_TRUE(fence_test_signaled_flag(b));
  fence_put(a);
  fence_put(b);
}

TEST_F(FenceEdgeOps, ReleaseOpKeepsOpsAndIsCalled) {
  Fence* f = new_fence(&kReleaseOps, nullptr, 3, 4);
  fence_get(f);
  fence_signal(f);
  EXPECT_EQ(rcu::dereference(f->ops), &kReleaseOps) << "ops with release must not detach";
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "detached-driver");  // names follow the flag
    EXPECT_STREQ(fence_timeline_name(f), "signaled-timeline");
  }
  fence_put(f);
  EXPECT_EQ(probe_.release_calls.load(), 0);
  fence_put(f);
  EXPECT_EQ(probe_.release_calls.load(), 1);
  EXPECT_TRUE(probe_.release_saw_signaled.load());
  EXPECT_EQ(probe_.release_saw_error.load(), 0);
  EXPECT_TRUE(probe_.release_in_rcu.load());
}

TEST_F(FenceEdgeOps, ReleaseOpAfterPendingCallbacks) {
  WarnCapture w;
  Fence* f = new_fence(&kReleaseOps);
  CountCb c;
  ASSERT_EQ(fence_add_callback(f, &c.cb, count_cb), 0);
  fence_put(f);
  EXPECT_TRUE(w.one("released with pending signals!"));
  EXPECT_EQ(c.calls.load(), 1);
  EXPECT_EQ(probe_.release_calls.load(), 1);
  EXPECT_TRUE(probe_.release_saw_signaled.load());
  EXPECT_EQ(probe_.release_saw_error.load(), -EDEADLK);
}

TEST_F(FenceEdgeOps, ReleaseOpOnUnsignalledFence) {
  WarnCapture w;
  Fence* f = new_fence(&kReleaseOps);
  fence_put(f);
  EXPECT_EQ(probe_.release_calls.load(), 1);
  EXPECT_FALSE(probe_.release_saw_signaled.load());  // no callbacks: not force-signalled
  EXPECT_EQ(w.count(), 0u);
}

TEST_F(FenceEdgeOps, WaitOpUsedAndKeepsOps) {
  Fence* f = new_fence(&kWaitOps);
  EXPECT_EQ(fence_wait_timeout(f, false, 0), 0);
  EXPECT_EQ(probe_.wait_calls.load(), 1);
  EXPECT_EQ(probe_.wait_timeout.load(), 0);
  EXPECT_TRUE(probe_.wait_saw_enable.load());  // wait enables signalling first
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    fence_signal(f);
  });
  const long r = fence_wait_timeout(f, true, 7'000'000'000LL);
  t.join();
  EXPECT_GE(r, 1);
  EXPECT_EQ(probe_.wait_calls.load(), 2);
  EXPECT_EQ(probe_.wait_timeout.load(), 7'000'000'000LL);
  EXPECT_EQ(rcu::dereference(f->ops), &kWaitOps) << "ops with wait must not detach";
  // Still used once signalled, since the ops stay.
  EXPECT_EQ(fence_wait(f, false), 0);
  EXPECT_EQ(probe_.wait_calls.load(), 3);
  EXPECT_EQ(probe_.wait_timeout.load(), kMaxScheduleTimeout);
  // A negative timeout never reaches the op.
  {
    WarnCapture w;
    EXPECT_EQ(fence_wait_timeout(f, false, -1), -EINVAL);
  }
  EXPECT_EQ(probe_.wait_calls.load(), 3);
  fence_put(f);
}

TEST_F(FenceEdgeOps, SetDeadlineForwardedWhileUnsignalled) {
  Fence* f = new_fence(&kDeadlineOps);
  fence_set_deadline(f, 1000);
  EXPECT_EQ(probe_.deadline_calls.load(), 1);
  EXPECT_EQ(probe_.deadline.load(), 1000);
  EXPECT_FALSE(probe_.deadline_lock_held.load());
  EXPECT_TRUE(probe_.deadline_in_rcu.load());
  fence_set_deadline(f, 500);  // every call is forwarded; the issuer keeps the earliest
  EXPECT_EQ(probe_.deadline_calls.load(), 2);
  EXPECT_EQ(probe_.deadline.load(), 500);
  EXPECT_FALSE(fence_test_flag(f, FENCE_FLAG_ENABLE_SIGNAL_BIT));  // a hint, not an enable
  fence_signal(f);
  ASSERT_EQ(rcu::dereference(f->ops), nullptr);
  fence_set_deadline(f, 1);  // detached
  EXPECT_EQ(probe_.deadline_calls.load(), 2);
  fence_put(f);
}

TEST_F(FenceEdgeOps, SetDeadlineNotForwardedOnceSignalledEvenWithOps) {
  Fence* f = new_fence(&kDeadlineReleaseOps);
  fence_signal(f);
  ASSERT_NE(rcu::dereference(f->ops), nullptr);  // not detached (has release)
  fence_set_deadline(f, 1);
  EXPECT_EQ(probe_.deadline_calls.load(), 0);
  fence_put(f);
  EXPECT_EQ(probe_.release_calls.load(), 1);
}

TEST_F(FenceEdgeOps, SetDeadlinePollsSignaledOp) {
  Fence* f = new_fence(&kDeadlineSignaledOps);
  probe_.signaled_result = true;
  fence_set_deadline(f, 1);
  EXPECT_EQ(probe_.deadline_calls.load(), 0);
  EXPECT_EQ(probe_.signaled_calls.load(), 1);
  EXPECT_TRUE(fence_test_signaled_flag(f));
  fence_put(f);
}

// --- get_rcu_safe ---------------------------------------------------------------------

namespace {

std::atomic<uint64_t> g_slot_released{0};
void slot_release(Fence* f) {
  g_slot_released.fetch_add(1, std::memory_order_relaxed);
  fence_free(f);
}
const FenceOps kSlotOps = {
    .get_driver_name = drv_name,
    .get_timeline_name = tl_name,
    .release = slot_release,
};

}  // namespace

TEST(FenceEdgeRcu, GetRcuSafeAgainstSwappedSlot) {
  constexpr uint64_t kCtx = 0xfeedfaceULL;
  g_slot_released = 0;
  std::atomic<Fence*> slot{new_fence(&kSlotOps, nullptr, kCtx, 1)};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> created{1};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> reads{0};

  std::thread writer([&] {
    uint64_t seq = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      Fence* n = new_fence(&kSlotOps, nullptr, kCtx, ++seq);
      created.fetch_add(1, std::memory_order_relaxed);
      Fence* old = slot.exchange(n, std::memory_order_acq_rel);
      fence_signal(old);
      fence_put(old);  // the slot's reference
    }
  });
  std::thread reader([&] {
    uint64_t last = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      Fence* f = fence_get_rcu_safe(&slot);
      if (!f) {
        bad.fetch_add(1);
        continue;
      }
      if (f->context != kCtx || f->seqno < last || !fence_was_initialized(f) ||
          f->refcount.load() < 1)
        bad.fetch_add(1);
      last = f->seqno;
      reads.fetch_add(1, std::memory_order_relaxed);
      fence_put(f);
    }
  });
  std::this_thread::sleep_for(300ms);
  stop = true;
  writer.join();
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(created.load(), 1u);
  // Every fence but the one left in the slot has been released, exactly once.
  EXPECT_EQ(g_slot_released.load(), created.load() - 1);
  Fence* last = slot.exchange(nullptr);
  EXPECT_EQ(fence_get_rcu_safe(&slot), nullptr);
  fence_put(last);
  EXPECT_EQ(g_slot_released.load(), created.load());
  rcu::barrier();
}

TEST(FenceEdgeRcu, GetRcuFailsAtZero) {
  Fence* f = new_fence();
  {
    rcu::ReadGuard g;
    EXPECT_EQ(fence_get_rcu(f), f);
    EXPECT_EQ(f->refcount.load(), 2u);
  }
  fence_put(f);
  // A count that already hit zero is never resurrected (zeroed memory stands
  // in for a fence whose last reference is gone).
  Fence* zero = fence_alloc();
  ASSERT_NE(zero, nullptr);
  ASSERT_EQ(zero->refcount.load(), 0u);
  {
    rcu::ReadGuard g;
    EXPECT_EQ(fence_get_rcu(zero), nullptr);
  }
  EXPECT_EQ(zero->refcount.load(), 0u);
  fence_free(zero);
  fence_signal(f);
  fence_put(f);
}

// --- describe, names, stubs ---------------------------------------------------------------

TEST(FenceEdgeDescribe, Format) {
  Fence* f = new_fence(&kNamesOps, nullptr, 12, 34);
  EXPECT_EQ(fence_describe(f), "12:34 edge-tl edge-drv unsignalled\n");
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "edge-drv");
    EXPECT_STREQ(fence_timeline_name(f), "edge-tl");  // the timeline op, not the driver's
  }
  fence_signal(f);
  EXPECT_EQ(fence_describe(f), "12:34   signalled\n");
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "detached-driver");
    EXPECT_STREQ(fence_timeline_name(f), "signaled-timeline");
  }
  fence_put(f);
  Fence* big = new_fence(&kNamesOps, nullptr, UINT64_MAX, UINT64_MAX, true);
  EXPECT_EQ(fence_describe(big),
            "18446744073709551615:18446744073709551615 edge-tl edge-drv unsignalled\n");
  fence_signal(big);
  fence_put(big);
}

TEST(FenceEdgeStub, SameSignalledFenceEveryTime) {
  Fence* s1 = fence_get_stub();
  const uint32_t refs = s1->refcount.load();
  Fence* s2 = fence_get_stub();
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(s2->refcount.load(), refs + 1);
  EXPECT_TRUE(fence_test_signaled_flag(s1));
  EXPECT_TRUE(fence_test_flag(s1, FENCE_FLAG_TIMESTAMP_BIT));
  EXPECT_TRUE(fence_test_flag(s1, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  EXPECT_TRUE(fence_test_flag(s1, FENCE_FLAG_INLINE_LOCK_BIT));
  EXPECT_EQ(s1->context, 0u);
  EXPECT_EQ(s1->seqno, 0u);
  EXPECT_EQ(rcu::dereference(s1->ops), nullptr);
  EXPECT_EQ(fence_get_status(s1), 1);
  EXPECT_LE(fence_timestamp(s1), monotonic_ns());
  CountCb c;
  EXPECT_EQ(fence_add_callback(s1, &c.cb, count_cb), -ENOENT);
  EXPECT_EQ(fence_describe(s1), "0:0   signalled\n");
  fence_put(s2);
  EXPECT_EQ(s1->refcount.load(), refs);
  fence_put(s1);
  Fence* s3 = fence_get_stub();
  EXPECT_EQ(s3, s1);  // survives its references
  fence_put(s3);
}

TEST(FenceEdgeStub, PrivateStubHasItsTimestamp) {
  WarnCapture w;
  Fence* p = fence_allocate_private_stub(987654321);
  Fence* q = fence_allocate_private_stub(-5);
  Fence* s = fence_get_stub();
  ASSERT_NE(p, nullptr);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(p, q);
  EXPECT_NE(p, s);
  EXPECT_EQ(p->refcount.load(), 1u);
  EXPECT_TRUE(fence_test_signaled_flag(p));
  EXPECT_TRUE(fence_test_flag(p, FENCE_FLAG_ENABLE_SIGNAL_BIT));
  EXPECT_EQ(fence_timestamp(p), 987654321);
  EXPECT_EQ(fence_timestamp(q), -5);
  EXPECT_EQ(rcu::dereference(p->ops), nullptr);
  EXPECT_EQ(p->context, 0u);
  EXPECT_EQ(fence_get_status(p), 1);
  EXPECT_EQ(w.count(), 0u);
  fence_put(p);
  fence_put(q);
  fence_put(s);
}

// --- external locks ----------------------------------------------------------------------

namespace {

struct LockCb {
  FenceCallback cb;
  SpinLock* expect_lock = nullptr;
  Fence* sibling = nullptr;  // signalled from inside, with the lock already held
  std::atomic<int> calls{0};
  std::atomic<bool> held_expected{false};
};
void lock_cb(Fence* f, FenceCallback* cb) {
  auto* c = container_of(cb, &LockCb::cb);
  c->held_expected.store(fence_spinlock(f) == c->expect_lock && c->expect_lock->is_locked());
  if (c->sibling) fence_signal_locked(c->sibling);
  c->calls.fetch_add(1);
}

}  // namespace

TEST(FenceEdgeLock, ExternalLockSharedByTwoFences) {
  SpinLock lock;
  Fence* a = new_fence(&kNamesOps, &lock, 1, 1);
  Fence* b = new_fence(&kNamesOps, &lock, 1, 2);
  EXPECT_FALSE(fence_test_flag(a, FENCE_FLAG_INLINE_LOCK_BIT));
  EXPECT_EQ(fence_spinlock(a), &lock);
  EXPECT_EQ(fence_spinlock(b), &lock);
  Fence* c = new_fence();
  Fence* d = new_fence();
  EXPECT_TRUE(fence_test_flag(c, FENCE_FLAG_INLINE_LOCK_BIT));
  EXPECT_NE(fence_spinlock(c), fence_spinlock(d));  // inline locks are per fence

  LockCb on_a, on_b;
  on_a.expect_lock = on_b.expect_lock = &lock;
  on_a.sibling = b;  // legacy pattern: signal a sibling under the shared lock
  ASSERT_EQ(fence_add_callback(a, &on_a.cb, lock_cb), 0);
  ASSERT_EQ(fence_add_callback(b, &on_b.cb, lock_cb), 0);

  // Holding the shared lock keeps another thread from signalling either fence.
  lock.lock();
  std::atomic<bool> done{false};
  std::thread t([&] {
    fence_signal(a);
    done = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(done.load());
  EXPECT_FALSE(fence_test_signaled_flag(a));
  lock.unlock();
  t.join();

  EXPECT_TRUE(fence_test_signaled_flag(a));
  EXPECT_TRUE(fence_test_signaled_flag(b));
  EXPECT_EQ(on_a.calls.load(), 1);
  EXPECT_EQ(on_b.calls.load(), 1);
  EXPECT_TRUE(on_a.held_expected.load());
  EXPECT_TRUE(on_b.held_expected.load());
  EXPECT_FALSE(lock.is_locked());
  EXPECT_EQ(rcu::dereference(a->ops), nullptr);  // names-only ops detach, lock or not
  for (Fence* f : {a, b, c, d}) {
    fence_signal(f);
    fence_put(f);
  }
}

TEST(FenceEdgeLock, AssertHeldWarnsOnlyWhenNotHeld) {
  Fence* f = new_fence();
  WarnCapture w;
  fence_assert_held(f);
  EXPECT_TRUE(w.one("lock not held"));
  w.clear();
  fence_lock_irqsave(f);
  fence_assert_held(f);
  fence_unlock_irqrestore(f);
  EXPECT_EQ(w.count(), 0u);
  fence_signal(f);
  fence_put(f);
}

// --- RCU --------------------------------------------------------------------------------

namespace {

std::atomic<size_t> g_freed_nodes{0};
void count_free_list(rcu::DeferredFree* n) {
  while (n) {
    g_freed_nodes.fetch_add(1, std::memory_order_relaxed);
    n = n->next;
  }
}
std::atomic<int> g_call_rcu_ran{0};
void on_call_rcu(rcu_head*) {
  rcu::after_grace_period();
  g_call_rcu_ran.fetch_add(1);
}

}  // namespace

TEST(FenceEdgeRcu, BarrierRunsEverythingDeferred) {
  // Our own nodes with a counting free function: barrier() must have run all.
  static rcu::DeferredFree nodes[150];
  g_freed_nodes = 0;
  for (auto& n : nodes) rcu::defer_free(&n, count_free_list);  // 2 full batches + a partial
  rcu_head head;
  g_call_rcu_ran = 0;
  rcu::call(&head, on_call_rcu);
  rcu::barrier();
  EXPECT_EQ(g_freed_nodes.load(), 150u);
  EXPECT_EQ(g_call_rcu_ran.load(), 1);
  EXPECT_EQ(rcu::deferred_pending(), 0u);

  // And fences on the default release path.
  for (int i = 0; i < 1000; ++i) {
    Fence* f = new_fence();
    fence_signal(f);
    fence_put(f);
  }
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}

TEST(FenceEdgeRcu, BarrierCollectsOtherThreadsBatchesAtExit) {
  static rcu::DeferredFree nodes[10];
  g_freed_nodes = 0;
  std::thread t([] {
    for (auto& n : nodes) rcu::defer_free(&n, count_free_list);  // partial batch, never flushed
  });
  t.join();
  rcu::barrier();
  EXPECT_EQ(g_freed_nodes.load(), 10u);
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}

// --- stress ---------------------------------------------------------------------------

namespace {

std::atomic<uint64_t> g_stress_released{0};
void stress_release(Fence* f) {
  g_stress_released.fetch_add(1, std::memory_order_relaxed);
  fence_free(f);
}
// Thread 0 uses detaching ops (default free path), thread 1 a release op that
// counts, so both release paths are stressed and thread 1's are accounted.
const FenceOps kStressOps[2] = {
    {drv_name, tl_name},
    {drv_name, tl_name, nullptr, nullptr, nullptr, stress_release},
};

struct StressCb {
  FenceCallback cb;
  std::atomic<uint64_t>* ran;
};
void stress_cb(Fence* f, FenceCallback* cb) {
  // Runs on whichever thread signals, under the fence's lock.
  if (!fence_test_signaled_flag(f)) abort();
  container_of(cb, &StressCb::cb)->ran->fetch_add(1, std::memory_order_relaxed);
}

struct StressResult {
  uint64_t added = 0, removed = 0, refused = 0, not_found = 0;
  std::atomic<uint64_t> ran{0};  // this thread's callbacks, run by either thread
};

}  // namespace

TEST(FenceEdgeStress, TwoThreadsCrossCallbacks) {
  // Each thread publishes its newest fence in its slot and signals the one
  // before, so the peer has a whole iteration to find it and hang a callback
  // on it; those callbacks then run on the other thread. Callback records sit
  // in a ring and are only reused once removed (or run).
  constexpr int kFences = 100000;
  constexpr int kRing = 8;
  g_stress_released = 0;
  std::atomic<Fence*> slots[2] = {nullptr, nullptr};
  StressResult res[2];
  auto body = [&](int id) {
    StressResult& r = res[id];
    struct Pending {
      StressCb cb;
      Fence* peer = nullptr;
    } ring[kRing];
    StressCb own[2];
    auto retire = [&](Pending& p) {
      if (!p.peer) return;
      if (fence_remove_callback(p.peer, &p.cb.cb)) ++r.removed;  // else it ran
      fence_put(p.peer);
      p.peer = nullptr;
    };
    const uint64_t ctx = fence_context_alloc(1);
    Fence* prev = nullptr;
    for (int i = 0; i < kFences; ++i) {
      Fence* mine = new_fence(&kStressOps[id], nullptr, ctx, i + 1);
      if (!mine) abort();
      own[i & 1].ran = &r.ran;  // runs when `mine` is signalled, next iteration
      if (fence_add_callback(mine, &own[i & 1].cb, stress_cb) == 0) ++r.added;
      if (i % 3 == 0) fence_set_error(mine, -ECANCELED);
      slots[id].store(mine, std::memory_order_release);

      Pending& p = ring[i % kRing];
      retire(p);
      if (Fence* peer = fence_get_rcu_safe(&slots[!id])) {
        p.cb.ran = &r.ran;
        if (fence_add_callback(peer, &p.cb.cb, stress_cb) == 0) {
          ++r.added;
          p.peer = peer;
        } else {
          ++r.refused;
          fence_put(peer);
        }
      } else {
        ++r.not_found;
      }
      if (prev) {  // out of the slot now: signal it and drop our reference
        fence_signal(prev);
        fence_put(prev);
      }
      prev = mine;
    }
    slots[id].store(nullptr, std::memory_order_release);
    fence_signal(prev);
    fence_put(prev);
    for (Pending& p : ring) retire(p);
  };
  std::thread t0(body, 0), t1(body, 1);
  t0.join();
  t1.join();
  uint64_t crossed = 0;
  for (int id = 0; id < 2; ++id) {
    const StressResult& r = res[id];
    // Every callback added either ran exactly once or was removed unrun.
    EXPECT_EQ(r.ran.load() + r.removed, r.added) << "thread " << id;
    EXPECT_GE(r.added, static_cast<uint64_t>(kFences));  // at least the own-fence ones
    crossed += r.added - kFences;
    printf("stress[%d]: added=%llu ran=%llu removed=%llu refused=%llu no-peer=%llu\n", id,
           (unsigned long long)r.added, (unsigned long long)r.ran.load(),
           (unsigned long long)r.removed, (unsigned long long)r.refused,
           (unsigned long long)r.not_found);
  }
  EXPECT_GT(crossed, 0u) << "the threads never met";
  EXPECT_EQ(g_stress_released.load(), static_cast<uint64_t>(kFences));
  rcu::barrier();
  EXPECT_EQ(rcu::deferred_pending(), 0u);
}
