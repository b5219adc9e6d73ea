#include "reporting/reporting_api.h"

#include <gtest/gtest.h>

namespace pushhook::reporting {
namespace {

TEST(CsvTest, QuotesOnlyWhatNeedsQuoting) {
  EXPECT_EQ(CsvRecord({"a", "b c", "1"}), "a,b c,1\r\n");
  EXPECT_EQ(CsvRecord({"x,y", "say \"hi\"", "two\nlines"}),
            "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
  EXPECT_EQ(CsvRecord({""}), "\r\n");
}

TEST(CsvTest, TextThatAFormulaWouldReadGetsAnApostrophe) {
  for (const char* formula :
       {"=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx",
        "\uFF1DHYPERLINK(\"http://x\")", "\uFF0B1", "\uFF0D1", "\uFF20SUM(A1)"}) {
    EXPECT_EQ(SpreadsheetText(formula), std::string("'") + formula);
  }
  for (const char* text : {"", "campaign 1", "1123123", "a=b", " =1", "\uFF21", "a\uFF1D1"}) {
    EXPECT_EQ(SpreadsheetText(text), text);
  }
}

TEST(CtrTest, IsZeroWithoutViews) {
  EXPECT_EQ(ClickThroughRate(0, 5), 0.0);
  EXPECT_DOUBLE_EQ(ClickThroughRate(10, 3), 0.3);
}

}  // namespace
}  // namespace pushhook::reporting
