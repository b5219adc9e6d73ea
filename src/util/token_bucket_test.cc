#include "util/token_bucket.h"

#include <gtest/gtest.h>

namespace pushhook::util {
namespace {

TEST(TokenBucketTest, AllowsOneSecondBurstThenTheRate) {
  TokenBucket bucket(10);
  int taken = 0;
  while (bucket.TryTake(0)) ++taken;
  EXPECT_EQ(taken, 10);
  EXPECT_EQ(bucket.NextTokenMs(0), 100);
  EXPECT_FALSE(bucket.TryTake(99));
  EXPECT_TRUE(bucket.TryTake(100));
  EXPECT_FALSE(bucket.TryTake(150));
}

TEST(TokenBucketTest, ZeroRateIsUnlimitedAndSlowRatesWait) {
  TokenBucket unlimited(0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(unlimited.TryTake(0));
  TokenBucket slow(0.5);
  EXPECT_TRUE(slow.TryTake(0));
  EXPECT_FALSE(slow.TryTake(1000));
  EXPECT_EQ(slow.NextTokenMs(1000), 2000);
}

}  // namespace
}  // namespace pushhook::util
