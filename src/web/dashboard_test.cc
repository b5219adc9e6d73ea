#include "web/dashboard.h"

#include <gtest/gtest.h>

#include <optional>
#include <regex>
#include <string>

namespace pushhook::web {
namespace {

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override { RegisterDashboard(router_); }

  http::Response Get(const std::string& path) {
    http::Request request;
    request.method = "GET";
    request.path = path;
    std::optional<http::Response> answer;
    router_.Handle(std::move(request), [&](http::Response r) { answer = std::move(r); });
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(http::Response{});
  }

  static std::string Header(const http::Response& r, std::string_view name) {
    for (const auto& [key, value] : r.headers) {
      if (key == name) return value;
    }
    return "";
  }

  http::Router router_;
};

TEST_F(DashboardTest, TheIndexIsServedUncachedUnderAStrictPolicy) {
  const http::Response index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(Header(index, "content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(Header(index, "cache-control"), "no-cache");
  const std::string policy = Header(index, "content-security-policy");
  EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
  EXPECT_EQ(policy.find("unsafe"), std::string::npos) << "no unsafe-inline, no unsafe-eval";
  EXPECT_EQ(Header(index, "x-content-type-options"), "nosniff");
  EXPECT_EQ(index.body.find("<script>"), std::string::npos) << "no inline script";
}

TEST_F(DashboardTest, EveryAssetTheIndexNamesIsServedUnderItsHashedNameForEver) {
  const std::string index = Get("/").body;
  const std::regex asset(R"(/assets/[A-Za-z]+\.[0-9a-f]{12}\.[a-z.]+)");
  int found = 0;
  for (std::sregex_iterator it(index.begin(), index.end(), asset), end; it != end; ++it) {
    const http::Response r = Get(it->str());
    EXPECT_EQ(r.status, 200) << it->str();
    EXPECT_EQ(Header(r, "cache-control"), "public, max-age=31536000, immutable");
    EXPECT_FALSE(r.body.empty());
    ++found;
  }
  EXPECT_EQ(found, 4) << "the app, its icon, its style and uPlot's style:\n" << index;
  EXPECT_EQ(index.find("/assets/app.js"), std::string::npos) << "every reference is hashed";
}

TEST_F(DashboardTest, AnUnknownAssetIs404) {
  const http::Response r = Get("/assets/app.000000000000.js");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no dashboard file /assets/app.000000000000.js"), std::string::npos);
}

}  // namespace
}  // namespace pushhook::web
