// Fences created by the library's user and the shared FenceLock (user_fence.h),
// and the EBUSY rule of setting an error after signalling.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

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
