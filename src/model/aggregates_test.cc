#include "model/aggregates.h"

#include <gtest/gtest.h>

namespace pushhook::model {
namespace {

Event Make(Action action, int button, std::string cid, int64_t at_ms, std::string source = "") {
  Event e;
  e.action = action;
  e.clicked_button = button;
  e.cookie_id = "c" + std::to_string(at_ms);
  e.cid = std::move(cid);
  e.occurred_at_ms = at_ms;
  e.utm_source = std::move(source);
  return e;
}

TEST(AggregatesTest, FoldsEventsIntoMinuteButtonUtmAndCampaignCounters) {
  AggregateBatch batch;
  batch.Add(Make(Action::kView, 0, "1", 60'000, "izooto"), 5);
  batch.Add(Make(Action::kClick, 2, "1", 119'999, "izooto"), 9);
  batch.Add(Make(Action::kClick, 0, "1", 120'000), 7);
  batch.Add(Make(Action::kView, 0, "2", 0), 1);
  ASSERT_EQ(batch.minutes.size(), 3u);
  const Counters& first = batch.minutes.at(MinuteKey{"1", "", 60'000});
  EXPECT_EQ(first.views, 1);
  EXPECT_EQ(first.clicks, 1);
  EXPECT_EQ(first.clicks_by_button[2], 1);
  const Counters& second = batch.minutes.at(MinuteKey{"1", "", 120'000});
  EXPECT_EQ(second.clicks_by_button[0], 1);
  // Per minute and field, one group per value; "" (absent) is a value too.
  const Counters& izooto = batch.utm.at(UtmKey{MinuteKey{"1", "", 60'000}, 0, "izooto"});
  EXPECT_EQ(izooto.views + izooto.clicks, 2);
  EXPECT_EQ(batch.utm.at(UtmKey{MinuteKey{"1", "", 120'000}, 0, ""}).clicks, 1);
  EXPECT_EQ(batch.utm.size(), 5u * 3u);
  EXPECT_EQ(batch.campaigns.at("1").counters.clicks, 2);
  EXPECT_EQ(batch.campaigns.at("1").last_active_ms, 9);
  EXPECT_EQ(batch.subscribers.size(), 2u);
}

TEST(AggregatesTest, BucketStartHandlesNegativeTimes) {
  EXPECT_EQ(BucketStart(61'000, kMinuteMs), 60'000);
  EXPECT_EQ(BucketStart(-1, kMinuteMs), -60'000);
  EXPECT_EQ(BucketStart(kDayMs + 5, kDayMs), kDayMs);
}

}  // namespace
}  // namespace pushhook::model
