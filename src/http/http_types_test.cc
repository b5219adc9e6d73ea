#include "http/http_types.h"

#include <gtest/gtest.h>

namespace pushhook::http {
namespace {

TEST(HttpTypesTest, QueryParamsArePercentDecoded) {
  Request r;
  r.query = "key=pk%5F1&cid=a+b&empty&x=%zz";
  EXPECT_EQ(r.QueryParam("key"), "pk_1");
  EXPECT_EQ(r.QueryParam("cid"), "a b");
  EXPECT_EQ(r.QueryParam("empty"), "");
  EXPECT_EQ(r.QueryParam("missing"), std::nullopt);
  EXPECT_EQ(r.QueryParam("x"), std::nullopt);
}

TEST(HttpTypesTest, APageLimitIsAWholeNumberInItsRange) {
  const auto limit = [](std::string query) {
    Request r;
    r.query = std::move(query);
    return r.PageLimit(50, 1000);
  };
  EXPECT_EQ(*limit(""), 50);
  EXPECT_EQ(*limit("limit="), 50);
  EXPECT_EQ(*limit("limit=1"), 1);
  EXPECT_EQ(*limit("cursor=x&limit=1000"), 1000);
  for (const char* bad : {"limit=0", "limit=1001", "limit=-1", "limit=%2B5", "limit=%205",
                          "limit=5x", "limit=1e3", "limit=99999999999"}) {
    const auto refused = limit(bad);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), model::StatusCode::kInvalidArgument);
    EXPECT_EQ(refused.status().message(), "limit must be an integer from 1 to 1000") << bad;
  }
}

TEST(HttpTypesTest, OnlyTheKnownQueryParamsAreTaken) {
  const auto check = [](std::string query) {
    Request r;
    r.query = std::move(query);
    return r.OnlyQueryParams({"status", "cid", "limit"});
  };
  for (const char* fine : {"", "status=failed", "cid=1&limit=2&status=", "&&cid", "c%69d=1"}) {
    EXPECT_TRUE(check(fine).ok()) << fine << ": " << check(fine).message();
  }
  EXPECT_EQ(check("state=failed").message(),
            "unknown query parameter 'state'; this route takes status, cid and limit");
  EXPECT_EQ(check("cid=1&Status=failed&x=1").message(),
            "unknown query parameter 'Status'; this route takes status, cid and limit");
  EXPECT_EQ(check("%zz=1").message(),
            "unknown query parameter '%zz'; this route takes status, cid and limit");
  // Quoted as well-formed UTF-8 and cut at a character's start.
  EXPECT_EQ(check("%FF=1").message(),
            "unknown query parameter '\xEF\xBF\xBD'; this route takes status, cid and limit");
  EXPECT_EQ(check(std::string(100, 'a')).message(),
            "unknown query parameter '" + std::string(64, 'a') +
                "'; this route takes status, cid and limit");
  Request one;
  one.query = "x";
  EXPECT_EQ(one.OnlyQueryParams({"since"}).message(),
            "unknown query parameter 'x'; this route takes since");
}

TEST(HttpTypesTest, ErrorBodyIsEscapedJson) {
  const Response r = Response::Error(400, "invalid_request", "bad \"name\"");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"error":{"code":"invalid_request","message":"bad \"name\""}})");
  // A message quoting bytes that are not UTF-8 (a percent-decoded path: /v1/sites/%FF%FE) stays
  // JSON: each ill-formed byte becomes U+FFFD.
  EXPECT_EQ(Response::Error(404, "not_found", "site \xFF\xFE not found").body,
            "{\"error\":{\"code\":\"not_found\",\"message\":\"site \xEF\xBF\xBD\xEF\xBF\xBD not "
            "found\"}}");
}

TEST(HttpTypesTest, TokensCompareIgnoringAsciiCaseOnly) {
  EXPECT_TRUE(EqualsIgnoringCase("Bearer ", "bEARER "));
  EXPECT_FALSE(EqualsIgnoringCase("Bearer", "Bearer "));
  // Bytes past ASCII compare as themselves (std::tolower of a negative char was undefined).
  EXPECT_TRUE(EqualsIgnoringCase("\xC3\xA9", "\xC3\xA9"));
  EXPECT_FALSE(EqualsIgnoringCase("\xC3\xA9", "\xC3\x89"));
}

TEST(HttpTypesTest, StatusCodesMapToHttp) {
  EXPECT_EQ(Response::FromStatus(model::NotFound("x")).status, 404);
  EXPECT_EQ(Response::FromStatus(model::Unavailable("x")).status, 503);
  EXPECT_EQ(ErrorCodeOf(model::StatusCode::kUnauthenticated), "unauthorized");
}

TEST(HttpTypesTest, PercentDecodeRejectsTruncatedEscapes) {
  EXPECT_EQ(PercentDecode("a%2", false), std::nullopt);
  EXPECT_EQ(PercentDecode("a%", false), std::nullopt);
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
}

}  // namespace
}  // namespace pushhook::http
