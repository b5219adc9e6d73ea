#include "delivery/circuit_breaker.h"

#include <gtest/gtest.h>

namespace pushhook::delivery {
namespace {

using State = CircuitBreaker::State;

CircuitBreaker Breaker() {
  return CircuitBreaker(
      CircuitOptions{3, std::chrono::milliseconds(1000), std::chrono::milliseconds(3000)});
}

TEST(CircuitBreakerTest, OpensAfterThresholdAndProbesOnceAfterThePause) {
  CircuitBreaker b = Breaker();
  b.OnFailure(0);
  b.OnFailure(0);
  EXPECT_EQ(b.state(0), State::kClosed);
  EXPECT_TRUE(b.AllowRequest(0));
  b.OnFailure(100);
  EXPECT_EQ(b.state(100), State::kOpen);
  EXPECT_FALSE(b.AllowRequest(1099));
  EXPECT_EQ(b.state(1100), State::kHalfOpen);
  EXPECT_TRUE(b.AllowRequest(1100));
  EXPECT_FALSE(b.AllowRequest(1100)) << "only one probe at a time";
  b.OnSuccess();
  EXPECT_EQ(b.state(1200), State::kClosed);
  EXPECT_TRUE(b.AllowRequest(1200));
}

TEST(CircuitBreakerTest, FailedProbesDoubleThePauseUpToTheCap) {
  CircuitBreaker b = Breaker();
  for (int i = 0; i < 3; ++i) b.OnFailure(0);
  EXPECT_EQ(b.open_until_ms(), 1000);
  ASSERT_TRUE(b.AllowRequest(1000));
  b.OnFailure(1000);
  EXPECT_EQ(b.open_until_ms(), 3000);  // 2 s
  ASSERT_TRUE(b.AllowRequest(3000));
  b.OnFailure(3000);
  EXPECT_EQ(b.open_until_ms(), 6000);  // 4 s, capped at 3 s
}

TEST(CircuitBreakerTest, FailuresOfRequestsSentBeforeItOpenedDoNotLengthenThePause) {
  CircuitBreaker b = Breaker();
  // Ten requests were in flight when the receiver started failing.
  for (int i = 0; i < 10; ++i) b.OnFailure(100);
  EXPECT_EQ(b.open_until_ms(), 1100) << "one base pause from the third failure";
  EXPECT_EQ(b.state(1100), State::kHalfOpen);
  // A straggler failing in half-open, with no probe out, does not re-open.
  b.OnFailure(1150);
  EXPECT_EQ(b.state(1150), State::kHalfOpen);
  ASSERT_TRUE(b.AllowRequest(1200));
  b.OnFailure(1300);  // the probe
  EXPECT_EQ(b.open_until_ms(), 3300) << "the pause doubles on a failed probe only";
}

TEST(CircuitBreakerTest, SuccessResetsTheFailureCount) {
  CircuitBreaker b = Breaker();
  b.OnFailure(0);
  b.OnFailure(0);
  b.OnSuccess();
  b.OnFailure(0);
  b.OnFailure(0);
  EXPECT_EQ(b.state(0), State::kClosed);
}

}  // namespace
}  // namespace pushhook::delivery
