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
