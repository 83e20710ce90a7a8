// ww_mutex: -EALREADY, wait-die (the reservation class) and wound-wait
// decisions, the back-off protocol with lock_slow, and threads locking several
// reservation objects in opposite and random orders: none may deadlock.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "core/base/ww_mutex.h"
#include "core/fence/fence.h"
#include "core/resv/resv.h"
#include "warn_counter.h"

using namespace dmabuf;

namespace {

using namespace std::chrono_literals;

WwClass g_wound_wait_class{.stamp{1}, .is_wait_die = false, .name = "test_ww_class"};

// Runs fn on a thread and fails (instead of hanging) if it does not finish.
template <typename Fn>
void run_with_deadline(Fn fn, std::chrono::seconds limit) {
  auto done = std::async(std::launch::async, fn);
  if (done.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "deadlock: did not finish within " << limit.count() << " s";
    std::abort();  // a deadlocked thread cannot be joined
  }
  done.get();
}

}  // namespace

TEST(WwMutex, PlainLockTrylockAndAlready) {
  WwMutex m;
  ww_mutex_init(&m, &reservation_ww_class);
  EXPECT_EQ(ww_mutex_lock(&m, nullptr), 0);
  EXPECT_TRUE(ww_mutex_is_locked(&m));
  EXPECT_TRUE(ww_mutex_is_owned_by_current(&m));
  EXPECT_FALSE(ww_mutex_trylock(&m, nullptr));
  ww_mutex_unlock(&m);
  EXPECT_FALSE(ww_mutex_is_locked(&m));

  WwAcquireCtx ctx;
  ww_acquire_init(&ctx, &reservation_ww_class);
  EXPECT_TRUE(ww_mutex_trylock(&m, &ctx));
  EXPECT_EQ(ctx.acquired, 1u);
  EXPECT_EQ(ww_mutex_lock(&m, &ctx), -EALREADY);
  EXPECT_EQ(ctx.acquired, 1u);
  ww_mutex_unlock(&m);
  EXPECT_EQ(ctx.acquired, 0u);
  ww_acquire_done(&ctx);
  ww_acquire_fini(&ctx);
  ww_mutex_destroy(&m);
}

TEST(WwMutex, MisuseWarns) {
  WarnCounter w;
  WwMutex m;
  ww_mutex_init(&m, &reservation_ww_class);
  ww_mutex_unlock(&m);  // not locked
  EXPECT_EQ(w.count(), 1);
  WwAcquireCtx ctx;
  ww_acquire_init(&ctx, &g_wound_wait_class);
  EXPECT_EQ(ww_mutex_lock(&m, &ctx), 0);  // class mismatch
  EXPECT_EQ(w.count(), 2);
  ww_mutex_destroy(&m);  // still locked
  EXPECT_EQ(w.count(), 3);
  ww_acquire_fini(&ctx);  // still holding
  EXPECT_EQ(w.count(), 4);
  ww_mutex_unlock(&m);
  ww_acquire_done(&ctx);
  WwMutex m2;
  ww_mutex_init(&m2, &g_wound_wait_class);
  EXPECT_EQ(ww_mutex_lock(&m2, &ctx), 0);  // after acquire_done
  EXPECT_EQ(w.count(), 5);
  ww_mutex_unlock(&m2);
}

TEST(WwMutex, WaitDieYoungerDiesOlderWaits) {
  WwMutex a, b;
  ww_mutex_init(&a, &reservation_ww_class);
  ww_mutex_init(&b, &reservation_ww_class);
  WwAcquireCtx old_ctx, young_ctx;
  ww_acquire_init(&old_ctx, &reservation_ww_class);
  ww_acquire_init(&young_ctx, &reservation_ww_class);
  ASSERT_LT(old_ctx.stamp, young_ctx.stamp);

  ASSERT_EQ(ww_mutex_lock(&a, &old_ctx), 0);
  std::promise<void> young_has_b;
  std::promise<void> old_got_b;
  std::thread young([&] {
    ASSERT_EQ(ww_mutex_lock(&b, &young_ctx), 0);
    young_has_b.set_value();
    // Younger and holding a lock: it must not wait for the elder.
    EXPECT_EQ(ww_mutex_lock(&a, &young_ctx), -EDEADLK);
    std::this_thread::sleep_for(20ms);  // the elder is now waiting on b
    ww_mutex_unlock(&b);                // back off...
    ww_mutex_lock_slow(&a, &young_ctx); // ...and sleep on the contended lock
    EXPECT_EQ(young_ctx.acquired, 1u);
    EXPECT_EQ(ww_mutex_lock(&b, &young_ctx), 0);
    ww_mutex_unlock(&b);
    ww_mutex_unlock(&a);
    ww_acquire_fini(&young_ctx);
  });
  young_has_b.get_future().wait();
  run_with_deadline([&] { EXPECT_EQ(ww_mutex_lock(&b, &old_ctx), 0); }, 30s);  // the elder waits
  EXPECT_EQ(old_ctx.acquired, 2u);
  ww_mutex_unlock(&b);
  ww_mutex_unlock(&a);
  ww_acquire_fini(&old_ctx);
  young.join();
}

TEST(WwMutex, WaitDieYoungerDiesBehindOlderWaiter) {
  // A plain holder; an elder waits; a younger context holding a lock dies when
  // it would queue behind the elder.
  WwMutex m, y;
  ww_mutex_init(&m, &reservation_ww_class);
  ww_mutex_init(&y, &reservation_ww_class);
  ASSERT_EQ(ww_mutex_lock(&m, nullptr), 0);
  WwAcquireCtx elder, younger;
  ww_acquire_init(&elder, &reservation_ww_class);
  ww_acquire_init(&younger, &reservation_ww_class);
  WwMutex e;
  ww_mutex_init(&e, &reservation_ww_class);
  std::thread t([&] {
    ASSERT_EQ(ww_mutex_lock(&e, &elder), 0);
    EXPECT_EQ(ww_mutex_lock(&m, &elder), 0);  // waits for the plain holder
    ww_mutex_unlock(&m);
    ww_mutex_unlock(&e);
    ww_acquire_fini(&elder);
  });
  // Wait until the elder is queued.
  for (;;) {
    std::this_thread::sleep_for(1ms);
    std::lock_guard<std::mutex> g(m.wait_lock);
    if (!list_empty(&m.waiters)) break;
  }
  ASSERT_EQ(ww_mutex_lock(&y, &younger), 0);
  EXPECT_EQ(ww_mutex_lock(&m, &younger), -EDEADLK);
  ww_mutex_unlock(&y);
  ww_mutex_unlock(&m);
  t.join();
  ww_acquire_fini(&younger);
}

TEST(WwMutex, WoundWaitElderWoundsSleepingYoungerHolder) {
  WwMutex a, b;
  ww_mutex_init(&a, &g_wound_wait_class);
  ww_mutex_init(&b, &g_wound_wait_class);
  WwAcquireCtx old_ctx, young_ctx;
  ww_acquire_init(&old_ctx, &g_wound_wait_class);
  ww_acquire_init(&young_ctx, &g_wound_wait_class);
  ASSERT_EQ(ww_mutex_lock(&a, &old_ctx), 0);
  std::promise<void> young_has_b;
  std::thread young([&] {
    ASSERT_EQ(ww_mutex_lock(&b, &young_ctx), 0);
    young_has_b.set_value();
    // Wound-wait: the younger one waits for the elder's lock -- until the elder
    // wants b and wounds it, which ends the wait with -EDEADLK.
    EXPECT_EQ(ww_mutex_lock(&a, &young_ctx), -EDEADLK);
    EXPECT_TRUE(young_ctx.wounded.load());
    ww_mutex_unlock(&b);
    ww_mutex_lock_slow(&a, &young_ctx);
    EXPECT_FALSE(young_ctx.wounded.load()) << "a fresh start clears the wound";
    ww_mutex_unlock(&a);
    ww_acquire_fini(&young_ctx);
  });
  young_has_b.get_future().wait();
  std::this_thread::sleep_for(20ms);  // let the younger one go to sleep on a
  run_with_deadline([&] { EXPECT_EQ(ww_mutex_lock(&b, &old_ctx), 0); }, 30s);
  ww_mutex_unlock(&b);
  ww_mutex_unlock(&a);
  ww_acquire_fini(&old_ctx);
  young.join();
}

namespace {

struct Guarded {
  Resv resv;
  long counter = 0;         // touched only with the lock held: TSan checks exclusion
  std::atomic<int> inside{0};
};

// Locks every object of `order` with one acquire context, backing off on
// -EDEADLK exactly as drivers do. Returns the number of back-offs.
int lock_all(std::vector<Guarded*>& order, WwAcquireCtx* ctx) {
  int backoffs = 0;
  Guarded* contended = nullptr;
  std::vector<Guarded*> held;
  for (;;) {
    if (contended) {
      resv_lock_slow(&contended->resv, ctx);
      held.push_back(contended);
    }
    bool restart = false;
    for (Guarded* g : order) {
      if (g == contended) continue;
      const int ret = resv_lock(&g->resv, ctx);
      if (ret == -EDEADLK) {
        for (Guarded* h : held) resv_unlock(&h->resv);
        held.clear();
        contended = g;
        ++backoffs;
        restart = true;
        break;
      }
      EXPECT_EQ(ret, 0);
      held.push_back(g);
      std::this_thread::yield();  // widen the window for opposite-order overlap
    }
    if (!restart) return backoffs;
  }
}

void transaction(std::vector<Guarded*> order, std::atomic<long>& backoffs) {
  WwAcquireCtx ctx;
  ww_acquire_init(&ctx, &reservation_ww_class);
  backoffs += lock_all(order, &ctx);
  ww_acquire_done(&ctx);
  for (Guarded* g : order) {
    EXPECT_EQ(g->inside.fetch_add(1), 0) << "two holders at once";
    EXPECT_TRUE(resv_held(&g->resv));
    ++g->counter;
    // Real work under the locks: attach a fence.
    EXPECT_EQ(resv_reserve_fences(&g->resv, 1), 0);
    Fence* f = fence_get_stub();
    resv_add_fence(&g->resv, f, RESV_USAGE_READ);
    fence_put(f);
    g->inside.fetch_sub(1);
  }
  for (Guarded* g : order) resv_unlock(&g->resv);
  ww_acquire_fini(&ctx);
}

}  // namespace

TEST(WwMutex, ThreadsLockingInOppositeOrdersNeverDeadlock) {
  constexpr int kObjects = 6;
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::vector<Guarded> objs(kObjects);
  for (auto& g : objs) resv_init(&g.resv);
  std::atomic<long> backoffs{0};
  run_with_deadline(
      [&] {
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            std::vector<Guarded*> order;
            for (auto& g : objs) order.push_back(&g);
            if (t % 2) std::reverse(order.begin(), order.end());  // opposite orders
            for (int r = 0; r < kRounds; ++r) transaction(order, backoffs);
          });
        }
        for (auto& th : threads) th.join();
      },
      120s);
  for (auto& g : objs) {
    EXPECT_EQ(g.counter, kThreads * kRounds);
    EXPECT_FALSE(resv_is_locked(&g.resv));
    resv_fini(&g.resv);
  }
  printf("opposite orders: %ld back-offs in %d transactions\n", backoffs.load(),
         kThreads * kRounds);
  EXPECT_GT(backoffs.load(), 0) << "the orders never collided: the test proved nothing";
}

TEST(WwMutex, ThreadsLockingRandomSubsetsNeverDeadlock) {
  constexpr int kObjects = 8;
  constexpr int kThreads = 6;
  constexpr int kRounds = 200;
  std::vector<Guarded> objs(kObjects);
  for (auto& g : objs) resv_init(&g.resv);
  std::atomic<long> backoffs{0};
  std::atomic<long> expected[kObjects] = {};
  run_with_deadline(
      [&] {
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            std::mt19937 rng(100 + t);
            for (int r = 0; r < kRounds; ++r) {
              std::vector<Guarded*> order;
              for (int i = 0; i < kObjects; ++i) {
                if (rng() % 2) {
                  order.push_back(&objs[i]);
                  expected[i].fetch_add(1);
                }
              }
              std::shuffle(order.begin(), order.end(), rng);
              transaction(order, backoffs);
            }
          });
        }
        for (auto& th : threads) th.join();
      },
      120s);
  for (int i = 0; i < kObjects; ++i) {
    EXPECT_EQ(objs[i].counter, expected[i].load());
    resv_fini(&objs[i].resv);
  }
  printf("random subsets: %ld back-offs\n", backoffs.load());
}

TEST(WwMutex, WoundWaitThreadsNeverDeadlock) {
  constexpr int kObjects = 4;
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::vector<WwMutex> locks(kObjects);
  std::vector<long> counters(kObjects, 0);
  for (auto& m : locks) ww_mutex_init(&m, &g_wound_wait_class);
  run_with_deadline(
      [&] {
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
          threads.emplace_back([&, t] {
            std::vector<int> order(kObjects);
            for (int i = 0; i < kObjects; ++i) order[i] = (t % 2) ? kObjects - 1 - i : i;
            for (int r = 0; r < kRounds; ++r) {
              WwAcquireCtx ctx;
              ww_acquire_init(&ctx, &g_wound_wait_class);
              int contended = -1;
              std::vector<int> held;
              for (;;) {
                if (contended >= 0) {
                  ww_mutex_lock_slow(&locks[contended], &ctx);
                  held.push_back(contended);
                }
                bool restart = false;
                for (int i : order) {
                  if (i == contended) continue;
                  if (ww_mutex_lock(&locks[i], &ctx) == -EDEADLK) {
                    for (int h : held) ww_mutex_unlock(&locks[h]);
                    held.clear();
                    contended = i;
                    restart = true;
                    break;
                  }
                  held.push_back(i);
                  std::this_thread::yield();
                }
                if (!restart) break;
              }
              for (int i : order) ++counters[i];
              for (int h : held) ww_mutex_unlock(&locks[h]);
              ww_acquire_fini(&ctx);
            }
          });
        }
        for (auto& th : threads) th.join();
      },
      120s);
  for (long c : counters) EXPECT_EQ(c, kThreads * kRounds);
}
