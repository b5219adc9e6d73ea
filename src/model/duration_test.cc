#include "model/duration.h"

#include <gtest/gtest.h>

#include <limits>

namespace pushhook::model {
namespace {

using std::chrono::milliseconds;

TEST(ParseDurationTest, ReadsEveryUnit) {
  EXPECT_EQ(ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(ParseDuration("5s"), milliseconds(5'000));
  EXPECT_EQ(ParseDuration("5m"), milliseconds(300'000));
  EXPECT_EQ(ParseDuration("2h"), milliseconds(7'200'000));
  EXPECT_EQ(ParseDuration("7d"), milliseconds(604'800'000));
  EXPECT_EQ(ParseDuration("0s"), milliseconds(0));
  EXPECT_EQ(ParseDuration("007s"), milliseconds(7'000));
}

TEST(ParseDurationTest, RejectsMalformedText) {
  for (const char* bad : {"", "s", "ms", "5", "-5s", "+5s", " 5s", "5s ", "5 s", "5S", "5sec",
                          "5.5s", "5min", "1h30m", "5us", "0x10s", "5ss", "5d1"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << '"' << bad << '"';
  }
}

TEST(ParseDurationTest, RejectsOverflow) {
  // int64 milliseconds hold about 106,751,991,167 days.
  EXPECT_EQ(ParseDuration("106751991167d"), milliseconds(int64_t{106751991167} * 86'400'000));
  EXPECT_EQ(ParseDuration("106751991168d"), std::nullopt);
  EXPECT_EQ(ParseDuration("2562047788015h"), milliseconds(int64_t{2562047788015} * 3'600'000));
  EXPECT_EQ(ParseDuration("2562047788016h"), std::nullopt);
  EXPECT_EQ(ParseDuration("9223372036854775807ms"),
            milliseconds(std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(ParseDuration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(ParseDuration("99999999999999999999999s"), std::nullopt);
}

TEST(FormatDurationTest, UsesTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(FormatDuration(milliseconds(5'000)), "5s");
  EXPECT_EQ(FormatDuration(milliseconds(90'000)), "90s");
  EXPECT_EQ(FormatDuration(milliseconds(300'000)), "5m");
  EXPECT_EQ(FormatDuration(milliseconds(36'000'000)), "10h");
  EXPECT_EQ(FormatDuration(milliseconds(2'592'000'000)), "30d");
  EXPECT_EQ(FormatDuration(milliseconds(-5'000)), "-5s");
  EXPECT_EQ(FormatDuration(milliseconds(std::numeric_limits<int64_t>::min())),
            "-9223372036854775808ms");
}

TEST(FormatDurationTest, RoundTripsThroughParse) {
  for (int64_t ms : {int64_t{1}, int64_t{999}, int64_t{60'000}, int64_t{61'000},
                     int64_t{86'400'000}, std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(ParseDuration(FormatDuration(milliseconds(ms))), milliseconds(ms)) << ms;
  }
}

}  // namespace
}  // namespace pushhook::model
