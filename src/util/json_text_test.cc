#include "util/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace pushhook::util {
namespace {

TEST(JsonTextTest, WritesNumbersInShortestDecimalForm) {
  boost::json::object o{{"ctr", 0.3}, {"one", 1.0}, {"n", -5}, {"big", 1e21}, {"tiny", 0.0163}};
  EXPECT_EQ(ToJsonText(o), R"({"ctr":0.3,"one":1,"n":-5,"big":1e+21,"tiny":0.0163})");
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
