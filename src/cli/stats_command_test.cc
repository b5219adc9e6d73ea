#include "cli/stats_command.h"

#include <gtest/gtest.h>

namespace pushhook::cli {
namespace {

TEST(StatsCommandTest, FormatsTotalsSeriesAndGroupsAsAlignedTables) {
  StatsCommandOptions options;
  options.cid = "1123123";
  options.group_by = "utm_source";
  const std::string table = FormatStatsTable(
      R"({"totals":{"views":10,"clicks":3,"clicks_by_button":{"0":1,"1":0,"2":2},"ctr":0.3,)"
      R"("dismissals":4,"unique_subscribers":9},"series":[{"bucket":"2026-11-27T20:00:00Z","views":10,)"
      R"("clicks":3,"ctr":0.3,"dismissals":4}],"groups":[{"key":"izooto","views":10,"clicks":3,)"
      R"("ctr":0.3,"dismissals":4},{"key":"","views":0,"clicks":0,"ctr":0,"dismissals":0},)"
      R"({"key":"a\nb\u0001","views":0,"clicks":0,"ctr":0}]})",
      options);
  EXPECT_EQ(table,
            "campaign 1123123\n\n"
            "views  clicks  ctr     unique subscribers  button 0  button 1  button 2  dismissals\n"
            "10     3       30.0 %  ~9                  1         0         2         4\n"
            "\n"
            "hour                  views  clicks  ctr     dismissals\n"
            "2026-11-27T20:00:00Z  10     3       30.0 %  4\n"
            "\n"
            "utm_source  views  clicks  ctr     dismissals\n"
            "izooto      10     3       30.0 %  4\n"
            "(none)      0      0       0.0 %   0\n"
            "a\\nb\\x01    0      0       0.0 %   0\n")
      << "a key's newline is shown, not printed: the table stays one row per group";
}

TEST(StatsCommandTest, MalformedAnswerGivesNoTable) {
  EXPECT_EQ(FormatStatsTable("{}", {}), "");
  EXPECT_EQ(FormatStatsTable("not json", {}), "");
  // Totals without the fields a table needs, or of another type: no table, and no abort.
  EXPECT_EQ(FormatStatsTable(R"({"totals":{"views":1}})", {}), "");
  EXPECT_EQ(FormatStatsTable(R"({"totals":[]})", {}), "");
  EXPECT_EQ(FormatStatsTable(R"({"totals":{"views":"1","clicks":0,"ctr":0,)"
                             R"("unique_subscribers":0,"dismissals":0,)"
                             R"("clicks_by_button":{"0":0,"1":0,"2":0}},"series":[]})",
                             {}),
            "");
}

}  // namespace
}  // namespace pushhook::cli
