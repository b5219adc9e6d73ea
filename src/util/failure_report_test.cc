#include "util/failure_report.h"

#include <gtest/gtest.h>

namespace pushhook::util {
namespace {

TEST(FailureReportTest, CountsEveryFailureAndLogsOneLinePerInterval) {
  FailureReport report("commit failed", std::chrono::seconds(10));
  EXPECT_TRUE(report.Report(1'000, "disk full"));
  EXPECT_FALSE(report.Report(2'000, "disk full"));
  EXPECT_FALSE(report.Report(10'999, "disk full"));
  EXPECT_TRUE(report.Report(11'000, "disk full"));
  EXPECT_FALSE(report.Report(11'001, "disk full"));
  EXPECT_EQ(report.count(), 5u);
}

TEST(FailureReportTest, TheFirstFailureIsLoggedWhateverTheClockSays) {
  FailureReport report("x", std::chrono::seconds(10));
  EXPECT_TRUE(report.Report(0, "e"));
  EXPECT_EQ(report.count(), 1u);
}

}  // namespace
}  // namespace pushhook::util
