// The addon's token table (addon/handle_table.h): forged, stale and released
// tokens find nothing, and the one-bit mark that tells an unpublished default
// fence (EnvState) survives lookups that keep it and is gone after one that
// clears it or after the slot is reused.
#include <gtest/gtest.h>

#include "addon/handle_table.h"

using dmabuf::addon::HandleTable;

TEST(HandleTable, ForgedStaleAndReleasedTokensFindNothing) {
  HandleTable<int> t;
  int a = 1, b = 2;
  const double ta = t.Insert(&a);
  ASSERT_NE(ta, 0);
  EXPECT_EQ(t.Get(ta), &a);
  for (double bad : {0.0, -1.0, ta + 0.5, ta + 1, 1e300, __builtin_nan("")}) EXPECT_EQ(t.Get(bad), nullptr) << bad;
  EXPECT_EQ(t.Take(ta), &a);
  EXPECT_EQ(t.Get(ta), nullptr);
  const double tb = t.Insert(&b);  // reuses the slot with a new generation
  EXPECT_NE(tb, ta);
  EXPECT_EQ(t.Get(ta), nullptr);
  EXPECT_EQ(t.Take(ta), nullptr);
  EXPECT_EQ(t.Get(tb), &b);
  EXPECT_EQ(t.live(), 1u);
}

TEST(HandleTable, TheMarkIsKeptByGetClearedByGetClearingMarkAndNotInherited) {
  HandleTable<int> t;
  int a = 1, b = 2, c = 3;
  const double ta = t.Insert(&a, true);
  const double tb = t.Insert(&b, true);
  EXPECT_EQ(t.Get(ta), &a);  // a plain lookup keeps the mark
  EXPECT_EQ(t.GetClearingMark(tb), &b);
  bool marked = false;
  EXPECT_EQ(t.Take(ta, &marked), &a);
  EXPECT_TRUE(marked);
  EXPECT_EQ(t.Take(tb, &marked), &b);
  EXPECT_FALSE(marked);
  // A reused slot starts with the mark its new entry asks for, not the old one's.
  const double tc = t.Insert(&c);
  EXPECT_EQ(t.Take(tc, &marked), &c);
  EXPECT_FALSE(marked);
  EXPECT_EQ(t.GetClearingMark(tc), nullptr);  // dead tokens clear nothing
}
