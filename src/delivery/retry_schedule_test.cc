#include "delivery/retry_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace pushhook::delivery {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

RetrySchedule MustParse(std::string_view text) {
  auto schedule = RetrySchedule::Parse(text);
  EXPECT_TRUE(schedule.ok()) << schedule.status().message();
  return std::move(schedule).value();
}

std::string ErrorOf(std::string_view text) {
  const auto schedule = RetrySchedule::Parse(text);
  EXPECT_FALSE(schedule.ok()) << text;
  EXPECT_EQ(schedule.status().code(), model::StatusCode::kInvalidArgument);
  return schedule.status().message();
}

TEST(RetryScheduleTest, ParsesTheDefault) {
  const RetrySchedule schedule = MustParse(RetrySchedule::kDefault);
  ASSERT_EQ(schedule.steps(), 7u);
  EXPECT_EQ(schedule.delays(),
            (std::vector<milliseconds>{seconds(5), minutes(5), minutes(30), hours(2), hours(5),
                                       hours(10), hours(10)}));
  EXPECT_EQ(schedule.longest(), hours(10));
  EXPECT_EQ(schedule.ToString(), RetrySchedule::kDefault);
}

TEST(RetryScheduleTest, ParsesTestSchedulesAndSpacesAroundCommas) {
  EXPECT_EQ(MustParse("1s,1s").delays(), (std::vector<milliseconds>{seconds(1), seconds(1)}));
  EXPECT_EQ(MustParse("200ms,500ms").delays(),
            (std::vector<milliseconds>{milliseconds(200), milliseconds(500)}));
  const RetrySchedule spaced = MustParse("  5s , 5m,\t30m ");
  EXPECT_EQ(spaced.delays(), (std::vector<milliseconds>{seconds(5), minutes(5), minutes(30)}));
  EXPECT_EQ(spaced.ToString(), "5s,5m,30m");
  EXPECT_EQ(MustParse("90s").longest(), seconds(90));
}

TEST(RetryScheduleTest, EachErrorSaysWhatIsWrongAndWhere) {
  EXPECT_EQ(ErrorOf(""), "retry schedule is empty");
  EXPECT_EQ(ErrorOf("   "), "retry schedule is empty");
  EXPECT_EQ(ErrorOf("5s,5m,5x"),
            "retry schedule step 3 (\"5x\") is not a duration (use an integer and one of ms, s, "
            "m, h, d, like 5s or 30m)");
  EXPECT_EQ(ErrorOf("5s,,5m"), "retry schedule step 2 is empty");
  EXPECT_EQ(ErrorOf("5s,"), "retry schedule step 2 is empty");
  EXPECT_EQ(ErrorOf(",5s"), "retry schedule step 1 is empty");
  EXPECT_EQ(ErrorOf("5s,0s"), "retry schedule step 2 (\"0s\") must be longer than zero");
  EXPECT_EQ(ErrorOf("400d"), "retry schedule step 1 (\"400d\") is longer than the maximum of 365d");
  EXPECT_EQ(ErrorOf("-5s").substr(0, 41), "retry schedule step 1 (\"-5s\") is not a du");
  EXPECT_EQ(ErrorOf("5 s").substr(0, 41), "retry schedule step 1 (\"5 s\") is not a du");
  EXPECT_EQ(ErrorOf("5s;5m").substr(0, 43), "retry schedule step 1 (\"5s;5m\") is not a du");
}

TEST(RetryScheduleTest, ErrorQuotesLongOrBinaryStepsOnOneLine) {
  const std::string message = ErrorOf("5s," + std::string(100, 'x') + "\n");
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_NE(message.find("\"" + std::string(32, 'x') + "...\""), std::string::npos) << message;
}

TEST(RetryScheduleTest, LimitsTheNumberOfSteps) {
  std::string text = "1s";
  for (size_t i = 1; i < RetrySchedule::kMaxSteps; ++i) text += ",1s";
  EXPECT_EQ(MustParse(text).steps(), RetrySchedule::kMaxSteps);
  EXPECT_EQ(ErrorOf(text + ",1s"), "retry schedule has more than 100 steps");
}

TEST(RetryScheduleTest, DelayAfterWalksTheStepsThenRunsOut) {
  const RetrySchedule schedule = MustParse("5s,5m,30m");
  EXPECT_EQ(schedule.DelayAfter(0, 0.5), milliseconds(0));
  EXPECT_EQ(schedule.DelayAfter(1, 0.5), seconds(5));
  EXPECT_EQ(schedule.DelayAfter(2, 0.5), minutes(5));
  EXPECT_EQ(schedule.DelayAfter(3, 0.5), minutes(30));
  EXPECT_EQ(schedule.DelayAfter(4, 0.5), std::nullopt);
  EXPECT_EQ(schedule.DelayAfter(1000, 0.5), std::nullopt);
}

TEST(RetryScheduleTest, JitterStaysWithinTwentyPercent) {
  const RetrySchedule schedule = MustParse(RetrySchedule::kDefault);
  for (int attempts = 1; attempts <= static_cast<int>(schedule.steps()); ++attempts) {
    const milliseconds step = schedule.delays()[static_cast<size_t>(attempts - 1)];
    EXPECT_EQ(schedule.DelayAfter(attempts, 0.0), step * 4 / 5) << attempts;
    const double almost_one = std::nextafter(1.0, 0.0);
    const milliseconds top = *schedule.DelayAfter(attempts, almost_one);
    EXPECT_LT(top, step * 6 / 5) << attempts;
    EXPECT_GE(top, step * 6 / 5 - milliseconds(1)) << attempts;
    EXPECT_LT(*schedule.DelayAfter(attempts, 0.999), step * 6 / 5);
    EXPECT_GT(*schedule.DelayAfter(attempts, 0.999), step * 119 / 100);
  }
  // Odd step sizes cannot round out of [0.8, 1.2) either.
  const RetrySchedule odd = MustParse("7ms,1ms");
  EXPECT_EQ(odd.DelayAfter(1, 0.0), milliseconds(5));
  EXPECT_EQ(odd.DelayAfter(1, 0.999999), milliseconds(7));
  EXPECT_EQ(odd.DelayAfter(2, 0.999999), milliseconds(0));
}

TEST(RetryScheduleTest, JitterIsLinearAndClampsOutOfRangeInput) {
  const RetrySchedule schedule = MustParse("10s");
  EXPECT_EQ(schedule.DelayAfter(1, 0.25), seconds(9));
  EXPECT_EQ(schedule.DelayAfter(1, 0.5), seconds(10));
  EXPECT_EQ(schedule.DelayAfter(1, 0.75), seconds(11));
  EXPECT_EQ(schedule.DelayAfter(1, -1.0), seconds(8));
  EXPECT_EQ(schedule.DelayAfter(1, std::numeric_limits<double>::quiet_NaN()), seconds(8));
  EXPECT_EQ(schedule.DelayAfter(1, 1.0), milliseconds(11'999));
  EXPECT_EQ(schedule.DelayAfter(1, 7.0), milliseconds(11'999));
}

// 2015-10-21T07:28:00Z, the example date of RFC 9110.
constexpr int64_t kExampleDateMs = 1'445'412'480'000;

TEST(ParseRetryAfterTest, ReadsDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("120", 0), seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", 0), seconds(0));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", 0), RetrySchedule::kMaxStep);
  EXPECT_EQ(ParseRetryAfter("31536001", 0), RetrySchedule::kMaxStep);
}

TEST(ParseRetryAfterTest, ReadsHttpDatesRelativeToNow) {
  const int64_t now = kExampleDateMs - 90'000;
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), seconds(90));
  EXPECT_EQ(ParseRetryAfter("Wednesday, 21-Oct-15 07:28:00 GMT", now), seconds(90));
  EXPECT_EQ(ParseRetryAfter("Wed Oct 21 07:28:00 2015", now), seconds(90));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", 784'111'777'000 - 1'000), seconds(1));
  EXPECT_EQ(ParseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", 0), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sat, 29 Feb 2020 00:00:01 GMT", 1'582'934'400'000), seconds(1));
  // In the past: no wait at all.
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", kExampleDateMs + 5'000),
            milliseconds(0));
  // Far ahead: saturates.
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", 0), RetrySchedule::kMaxStep);
}

TEST(ParseRetryAfterTest, RejectsAnythingElse) {
  for (const char* bad : {"", " ", "-5", "1.5", "5s", "120 seconds", "Wed, 21 Oct 2015 07:28:00",
                          "Wed, 21 Oct 2015 "
                          "07:28:00 UTC",
                          "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 29 Feb 2015 07:28:00 GMT",
                          "Wed, 21 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 24:00:00 GMT",
                          "Wed, 21 Oct 2015 07:60:00 GMT", "Wed, 21 Oct 15 07:28:00 GMT",
                          "Xyz, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT trailing",
                          "Wed,21 Oct 2015 07:28:00 GMT"}) {
    EXPECT_EQ(ParseRetryAfter(bad, kExampleDateMs), std::nullopt) << '"' << bad << '"';
  }
}

}  // namespace
}  // namespace pushhook::delivery
