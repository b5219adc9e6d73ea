#include "util/field_filter_json.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace pushhook::util {
namespace {

// The message of the error `text` gets, or "ok: <filter as JSON>".
std::string Read(const std::string& text) {
  auto filter = FieldFilterFromJson(boost::json::parse(text));
  if (!filter.ok()) return filter.status().message();
  return "ok: " + filter->ToJson();
}

TEST(FieldFilterJsonTest, TakesEveryFieldAndNumbersForIds) {
  EXPECT_EQ(Read("null"), "ok: {}");
  EXPECT_EQ(Read("{}"), "ok: {}");
  EXPECT_EQ(Read(R"({"utm_source":["izooto",""],"cid":[1123123,"a","a"],"reference_id":[7]})"),
            R"(ok: {"cid":["1123123","a"],"reference_id":["7"],"utm_source":["izooto",""]})");
  // An integer, as ingest takes one: its decimal digits.
  EXPECT_EQ(Read(R"({"cid":[-5,18446744073709551615]})"),
            R"(ok: {"cid":["-5","18446744073709551615"]})");
  EXPECT_EQ(
      Read(R"({"utm_campaign":["x"],"utm_content":["x"],"utm_medium":["x"],"utm_term":["x"]})"),
      R"(ok: {"utm_campaign":["x"],"utm_content":["x"],"utm_medium":["x"],"utm_term":["x"]})");
}

TEST(FieldFilterJsonTest, EachRuleHasItsMessage) {
  EXPECT_EQ(Read(R"(["cid"])"),
            "field 'filter' must be an object of field names to lists of values, or null");
  EXPECT_EQ(Read(R"({"cookie_id":["a"]})"),
            "filter names an unknown field 'cookie_id'; it may name cid, reference_id, "
            "utm_campaign, utm_content, utm_medium, utm_source and utm_term");
  EXPECT_EQ(Read(R"({"cid":[]})"), "filter.cid must be a non-empty array of strings");
  EXPECT_EQ(Read(R"({"cid":"a"})"), "filter.cid must be a non-empty array of strings");
  EXPECT_EQ(Read(R"({"utm_source":[1]})"), "filter.utm_source[0] must be a string");
  EXPECT_EQ(Read(R"({"cid":["a",null]})"), "filter.cid[1] must be a string or a number");
  EXPECT_EQ(Read(R"({"reference_id":[7,true]})"),
            "filter.reference_id[1] must be a string or a number");
  // Another number may have been rounded when read: refused, never a filter on another id.
  for (const char* number : {"1.0000000000000001", "1.5", "1e3", "99999999999999999999"}) {
    EXPECT_EQ(Read(std::string(R"({"cid":["a",)") + number + "]}"),
              "filter.cid[1] is a number with a fraction, an exponent or more than 64 bits, which "
              "may have been rounded when read: send it as the string ingest stores (1.5 as "
              "\"1.5\")")
        << number;
  }
  EXPECT_EQ(Read(R"({"cid":[""]})"), "filter.cid[0] is empty; every event has a cid");
  EXPECT_EQ(Read(R"({"cid":[")" + std::string(65, 'c') + R"("]})"),
            "filter.cid[0] is 65 bytes; at most 64");
  EXPECT_EQ(Read(R"({"reference_id":["a",")" + std::string(65, 'r') + R"("]})"),
            "filter.reference_id[1] is 65 bytes; at most 64");
  EXPECT_EQ(Read(R"({"utm_term":[")" + std::string(257, 't') + R"("]})"),
            "filter.utm_term[0] is 257 bytes; at most 256");
  EXPECT_EQ(Read(R"({"utm_term":[")" + std::string(256, 't') + R"("]})").substr(0, 4), "ok: ");
  std::string many = R"({"cid":[)";
  for (int i = 0; i < 1001; ++i) many += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  EXPECT_EQ(Read(many + "]}"), "filter.cid has 1001 values; at most 1000");
  // What ingest refuses in an event, no event can match.
  EXPECT_EQ(Read(R"({"cid":["a\nb"]})"), "filter.cid[0] must not contain control characters");
  EXPECT_EQ(Read(R"({"reference_id":["ok","\u007f"]})"),
            "filter.reference_id[1] must not contain control characters");
  EXPECT_EQ(Read(R"({"utm_source":["a\u0000b"]})"),
            "filter.utm_source[0] must not contain NUL characters");
  EXPECT_EQ(Read(R"({"utm_source":["tab\tin text"]})").substr(0, 4), "ok: ");
}

TEST(FieldFilterJsonTest, TextRoundTrips) {
  auto filter = FieldFilterFromJson(boost::json::parse(R"({"utm_term":["b"],"cid":["x","y"]})"));
  ASSERT_TRUE(filter.ok());
  auto again = FieldFilterFromText(filter->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *filter);
  EXPECT_TRUE(FieldFilterFromText("")->empty());
  // PostgreSQL's jsonb writes keys shortest first, with spaces: read the same.
  EXPECT_EQ(*FieldFilterFromText(R"({"cid": ["x", "y"], "utm_term": ["b"]})"), *filter);
}

// A filter stored before a rule was added is read as it was written: refused, it would fall back
// to no filter, and its endpoint would be sent every event.
TEST(FieldFilterJsonTest, AStoredFilterIsReadUnderTheRulesItWasSavedWith) {
  auto stored =
      FieldFilterFromText(R"({"reference_id":["run-1\n","run-2"],"utm_term":["a\u0000"]})");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(*stored->values(model::FilterField::kReferenceId),
            (std::vector<std::string>{"run-1\n", "run-2"}));
  EXPECT_EQ(stored->values(model::FilterField::kUtmTerm)->front(), std::string("a\0", 2));
}

}  // namespace
}  // namespace pushhook::util
