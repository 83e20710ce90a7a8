// Fences created by the library's user and the shared FenceLock (user_fence.h),
// and the EBUSY rule of setting an error after signalling.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "core/base/monotonic.h"
#include "core/base/rcu.h"
#include "core/fence/fence.h"
#include "core/fence/user_fence.h"

using namespace dmabuf;

TEST(UserFence, InlineLockNamesDetachAtSignal) {
  Fence* f = user_fence_create(nullptr, 5, 7, false);
  ASSERT_NE(f, nullptr);
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "dmabuf");
    EXPECT_STREQ(fence_timeline_name(f), "js");
  }
  fence_signal(f);
  EXPECT_EQ(rcu::dereference(f->ops), nullptr);
  fence_put(f);
}

TEST(UserFence, SharedLockOutlivesItsLastFence) {
  FenceLock* l = fence_lock_create();
  ASSERT_NE(l, nullptr);
  Fence* a = user_fence_create(l, 1, 1, false);
  Fence* b = user_fence_create(l, 1, 2, true);
  EXPECT_EQ(l->refs.load(), 3u);
  EXPECT_EQ(fence_spinlock(a), fence_spinlock(b));
  fence_lock_put(l);  // the creator's reference: the fences keep it alive
  fence_signal(a);
  EXPECT_NE(rcu::dereference(a->ops), nullptr);  // release keeps the ops attached
  fence_put(a);
  fence_put(b);
  rcu::barrier();  // the deferred frees dropped the last references
}

TEST(UserFence, SetErrorAfterSignalIsEbusy) {
  Fence* f = user_fence_create(nullptr, 0, 0, false);
  EXPECT_EQ(fence_set_error_unless_signaled(f, 0), -EINVAL);
  EXPECT_EQ(fence_set_error_unless_signaled(f, -5000), -EINVAL);
  EXPECT_EQ(fence_set_error_unless_signaled(f, -EIO), 0);
  fence_signal(f);
  EXPECT_EQ(fence_get_status(f), -EIO);
  EXPECT_EQ(fence_set_error_unless_signaled(f, -EINVAL), -EBUSY);
  EXPECT_EQ(fence_get_status(f), -EIO);  // nothing stored
  fence_put(f);
}

// An unpublished default fence is re-initialised in place, whatever state it
// reached: the result is exactly what user_fence_create(nullptr, 0, 0, false)
// returns.
TEST(UserFence, RecycleMakesANewDefaultFence) {
  Fence* fresh = user_fence_create(nullptr, 0, 0, false);
  const unsigned long fresh_flags = fresh->flags.load();
  Fence* f = user_fence_create(nullptr, 0, 0, false);
  ASSERT_EQ(fence_set_error_unless_signaled(f, -EIO), 0);
  fence_signal(f);
  ASSERT_TRUE(fence_is_signaled(f));
  ASSERT_EQ(rcu::dereference(f->ops), nullptr);  // detached at signal
  ASSERT_TRUE(user_fence_recycle(f));
  EXPECT_EQ(f->flags.load(), fresh_flags);
  EXPECT_FALSE(fence_is_signaled(f));
  EXPECT_EQ(fence_get_status(f), 0);
  EXPECT_EQ(f->error, 0);
  EXPECT_EQ(f->refcount.load(), 1u);
  EXPECT_EQ(f->context, 0u);
  EXPECT_EQ(f->seqno, 0u);
  EXPECT_TRUE(list_empty(&f->cb_list));
  {
    rcu::ReadGuard g;
    EXPECT_STREQ(fence_driver_name(f), "dmabuf");
  }
  // It works as a new fence: signals once, with a fresh timestamp.
  fence_signal(f);
  EXPECT_TRUE(fence_is_signaled(f));
  EXPECT_GT(fence_timestamp(f), 0);
  // A pending one too (never signalled: its ops are still attached).
  ASSERT_TRUE(user_fence_recycle(fresh));
  EXPECT_FALSE(fence_is_signaled(fresh));
  fence_put(fresh);
  fence_put(f);
}

// What it refuses, unchanged: a second reference, an external lock, another
// issuer's fence.
TEST(UserFence, RecycleRefusesWhatIsNotAnUnsharedDefaultFence) {
  Fence* shared = user_fence_create(nullptr, 0, 0, false);
  fence_get(shared);
  EXPECT_FALSE(user_fence_recycle(shared));
  EXPECT_EQ(shared->refcount.load(), 2u);
  fence_put(shared);
  fence_put(shared);

  FenceLock* l = fence_lock_create();
  Fence* locked = user_fence_create(l, 0, 0, false);
  EXPECT_FALSE(user_fence_recycle(locked));
  fence_signal(locked);
  EXPECT_FALSE(user_fence_recycle(locked));  // ops stay attached (release)
  EXPECT_TRUE(fence_is_signaled(locked));
  fence_put(locked);
  fence_lock_put(l);

  static const FenceOps other = {.get_driver_name = [](Fence*) { return "other"; },
                                 .get_timeline_name = [](Fence*) { return "t"; }};
  Fence* foreign = fence_alloc();
  fence_init(foreign, &other, nullptr, 3, 4);
  EXPECT_FALSE(user_fence_recycle(foreign));
  EXPECT_EQ(foreign->context, 3u);
  fence_put(foreign);
  rcu::barrier();
}

// fence_signal_unpublished: fence_signal's result without the lock for a fence
// nobody else can see; anything else (callbacks, an external lock) takes the
// kernel's path, so its callbacks still run.
TEST(UserFence, SignalUnpublishedIsFenceSignalWithoutTheLock) {
  Fence* f = user_fence_create(nullptr, 0, 0, false);
  const int64_t before = monotonic_ns();
  fence_signal_unpublished(f);
  const int64_t after = monotonic_ns();
  EXPECT_TRUE(fence_is_signaled(f));
  EXPECT_TRUE(fence_test_flag(f, FENCE_FLAG_TIMESTAMP_BIT));
  EXPECT_GE(fence_timestamp(f), before);
  EXPECT_LE(fence_timestamp(f), after);
  EXPECT_EQ(rcu::dereference(f->ops), nullptr);  // detached, as by fence_signal
  EXPECT_FALSE(f->inline_lock.is_locked());
  const int64_t ts = fence_timestamp(f);
  fence_signal_unpublished(f);  // a second call changes nothing
  EXPECT_EQ(fence_timestamp(f), ts);
  fence_put(f);

  struct Counted : FenceCallback {
    int runs = 0;
  } cb;
  Fence* g = user_fence_create(nullptr, 0, 0, false);
  ASSERT_EQ(fence_add_callback(g, &cb, [](Fence*, FenceCallback* c) { static_cast<Counted*>(c)->runs++; }), 0);
  fence_signal_unpublished(g);
  EXPECT_EQ(cb.runs, 1);
  EXPECT_TRUE(fence_is_signaled(g));
  fence_put(g);

  FenceLock* l = fence_lock_create();
  Fence* h = user_fence_create(l, 0, 0, false);
  fence_signal_unpublished(h);
  EXPECT_TRUE(fence_is_signaled(h));
  EXPECT_NE(rcu::dereference(h->ops), nullptr);  // release keeps them, as by fence_signal
  fence_put(h);
  fence_lock_put(l);
  rcu::barrier();
}
