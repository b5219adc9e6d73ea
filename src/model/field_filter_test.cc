#include "model/field_filter.h"

#include <gtest/gtest.h>

namespace pushhook::model {
namespace {

Event MakeEvent(std::string cid, std::string source) {
  Event e;
  e.cid = std::move(cid);
  e.utm_source = std::move(source);
  return e;
}

TEST(FieldFilterTest, AnEventPassesWhenEveryNamedFieldTakesItsValue) {
  FieldFilter filter;
  EXPECT_TRUE(filter.empty());
  EXPECT_TRUE(filter.Accepts(MakeEvent("1", "")));
  filter.Set(FilterField::kCid, {"1", "2"});
  filter.Set(FilterField::kUtmSource, {"izooto", ""});
  EXPECT_FALSE(filter.empty());
  EXPECT_TRUE(filter.Accepts(MakeEvent("1", "izooto")));
  EXPECT_TRUE(filter.Accepts(MakeEvent("2", ""))) << "\"\" stands for an absent UTM field";
  EXPECT_FALSE(filter.Accepts(MakeEvent("3", "izooto"))) << "cid not listed";
  EXPECT_FALSE(filter.Accepts(MakeEvent("1", "mail"))) << "utm_source not listed";
  EXPECT_TRUE(filter.AcceptsExcept(MakeEvent("3", "izooto"), FilterField::kCid));
  EXPECT_FALSE(filter.AcceptsExcept(MakeEvent("1", "mail"), FilterField::kCid));
}

TEST(FieldFilterTest, ValuesKeepTheirOrderWithoutDuplicates) {
  FieldFilter filter;
  filter.Set(FilterField::kReferenceId, {"b", "a", "b", "c", "a"});
  ASSERT_NE(filter.values(FilterField::kReferenceId), nullptr);
  EXPECT_EQ(*filter.values(FilterField::kReferenceId), (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(filter.values(FilterField::kCid), nullptr);
  Event e;
  e.reference_id = "c";
  EXPECT_TRUE(filter.Accepts(e));
}

TEST(FieldFilterTest, JsonNamesTheFieldsInPayloadOrder) {
  FieldFilter filter;
  EXPECT_EQ(filter.ToJson(), "{}");
  filter.Set(FilterField::kUtmTerm, {"t\"1"});
  filter.Set(FilterField::kCid, {"9", "8"});
  EXPECT_EQ(filter.ToJson(), R"({"cid":["9","8"],"utm_term":["t\"1"]})");
}

TEST(FieldFilterTest, FieldNamesAndLimits) {
  for (int f = 0; f < kFilterFields; ++f) {
    const auto field = static_cast<FilterField>(f);
    EXPECT_EQ(FilterFieldFromName(FilterFieldName(field)), field);
  }
  EXPECT_EQ(FilterFieldFromName("cookie_id"), std::nullopt);
  EXPECT_EQ(FilterFieldLimit(FilterField::kCid), 64u);
  EXPECT_EQ(FilterFieldLimit(FilterField::kReferenceId), 64u);
  EXPECT_EQ(FilterFieldLimit(FilterField::kUtmMedium), 256u);
}

}  // namespace
}  // namespace pushhook::model
