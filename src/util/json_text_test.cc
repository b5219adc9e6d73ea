#include "util/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace pushhook::util {
namespace {

TEST(JsonTextTest, WritesNumbersInShortestDecimalForm) {
  boost::json::object o{{"ctr", 0.3}, {"one", 1.0}, {"n", -5}, {"big", 1e21}, {"tiny", 0.0163}};
  EXPECT_EQ(ToJsonText(o), R"({"ctr":0.3,"one":1,"n":-5,"big":1e+21,"tiny":0.0163})");
}

TEST(JsonTextTest, IntegersTheReaderHoldsExactlyAsText) {
  EXPECT_EQ(IntegerText(boost::json::parse("42")), "42");
  EXPECT_EQ(IntegerText(boost::json::parse("-7")), "-7");
  EXPECT_EQ(IntegerText(boost::json::parse("-9223372036854775808")), "-9223372036854775808");
  EXPECT_EQ(IntegerText(boost::json::parse("18446744073709551615")), "18446744073709551615");
  // Read as doubles: possibly rounded already (the first is read as 1, the second as 1e19).
  for (const char* inexact : {"1.0000000000000001", "10000000000000000001e0",
                              "18446744073709551616", "1.5", "1e3", "-0.0", "1e999"}) {
    EXPECT_EQ(IntegerText(boost::json::parse(inexact)), std::nullopt) << inexact;
  }
  for (const char* other : {R"("42")", "null", "true", "[1]"}) {
    EXPECT_EQ(IntegerText(boost::json::parse(other)), std::nullopt) << other;
  }
}

// What the reader says of `text`, at the byte where it stopped.
std::string Describe(std::string_view text) {
  boost::json::parser parser;
  boost::json::error_code ec;
  const size_t read = parser.write(text.data(), text.size(), ec);
  EXPECT_TRUE(ec) << text;
  return std::to_string(read) + ": " + DescribeJsonError(ec, text, read, 32);
}

TEST(JsonTextTest, DescribesWhereAndWhyJsonFailsInWords) {
  EXPECT_EQ(Describe(R"({"a":)"), "5: unexpected end of input");
  EXPECT_EQ(Describe(R"({"a":1} x)"), "8: unexpected data after the JSON value");
  EXPECT_EQ(Describe(std::string(33, '[') + std::string(33, ']')),
            "32: nested more than 32 levels deep");
  EXPECT_EQ(Describe("\xEF\xBB\xBF{}"),
            "0: a byte order mark (U+FEFF), which JSON does not take; send the JSON without it");
  EXPECT_EQ(Describe("{\"a\":\"\xC3\x28\"}"), "6: invalid UTF-8");
  EXPECT_EQ(Describe(R"({"a":})"), "5: syntax error");
  // A high surrogate alone, in either case, and with text or another escape after it.
  for (const auto& [text, escape] :
       {std::pair<std::string, std::string>{R"({"name":"\ud800"})", R"(\ud800)"},
        {R"({"name":"x\uDBFFy"})", R"(\uDBFF)"},
        {R"({"name":"\uD83D\n"})", R"(\uD83D)"}}) {
    const std::string said = Describe(text);
    EXPECT_NE(said.find(": the escape " + escape +
                        " is half of a UTF-16 surrogate pair, and its other half does not follow"),
              std::string::npos)
        << text << " -> " << said;
  }
  // After an escaped backslash the letters are text, not an escape (the reader stops at the
  // control character that follows them).
  EXPECT_EQ(Describe("{\"name\":\"\\\\ud800\x01\"}"), "16: syntax error");
  EXPECT_EQ(Describe("{\"name\":\"\\\\\\ud800\"}"),
            "17: the escape \\ud800 is half of a "
            "UTF-16 surrogate pair, and its other half does not follow");
}

TEST(JsonTextTest, FindsAKeyAnObjectHoldsTwice) {
  EXPECT_EQ(RepeatedKey(R"({"url":"a","events":["View"],"url":"b"})"), "url");
  EXPECT_EQ(RepeatedKey(R"({"url":"a","batch":{"max_events":2,"max_events":3}})"),
            "batch.max_events");
  EXPECT_EQ(RepeatedKey(R"({"filter":{"cid":["a"],"utm_term":["b"],"cid":["c"]}})"), "filter.cid");
  // Decoded, as the reader compares them: \u0075rl is url.
  EXPECT_EQ(RepeatedKey(R"({"url":"a","\u0075rl":"b"})"), "url");
  // The same key in two objects, or in objects of an array, is no repeat.
  EXPECT_EQ(RepeatedKey(R"({"a":{"x":1},"b":{"x":2},"c":[{"x":1},{"x":2}]})"), std::nullopt);
  EXPECT_EQ(RepeatedKey(R"([{"x":1,"y":{"x":2}}])"), std::nullopt);
  EXPECT_EQ(RepeatedKey("{}"), std::nullopt);
  EXPECT_EQ(RepeatedKey(R"({"a":1,"a")"), std::nullopt) << "not JSON: the reader says why";
  EXPECT_EQ(RepeatedKey(R"({"a":1,"a":2} x)"), std::nullopt) << "nor is a document and more";
  EXPECT_EQ(RepeatedKey(" {\"a\":1,\"a\":2}\n "), "a");
}

TEST(JsonTextTest, EscapesStringsAndNestsContainers) {
  boost::json::value v = boost::json::parse(R"({"a":["x\"y",null,true,{"b":[]}]})");
  EXPECT_EQ(ToJsonText(v), R"({"a":["x\"y",null,true,{"b":[]}]})");
}

TEST(JsonTextTest, RoundTripsThroughTheParser) {
  boost::json::object o{{"v", 0.1 + 0.2}};
  EXPECT_EQ(boost::json::parse(ToJsonText(o)).at("v").as_double(), 0.1 + 0.2);
}

}  // namespace
}  // namespace pushhook::util
