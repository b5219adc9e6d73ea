#include "http/router.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace pushhook::http {
namespace {

Response Call(const Router& router, std::string method, std::string path) {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  Response out;
  router.Handle(std::move(request), [&out](Response r) { out = std::move(r); });
  return out;
}

TEST(RouterTest, MatchesPlaceholdersAndDecodesThem) {
  Router router;
  router.Add("GET", "/v1/sites/{site}/endpoints/{id}", [](Request&& r, Responder respond) {
    respond(Response::Json(200, r.path_params[0] + "|" + r.path_params[1]));
  });
  const Response r = Call(router, "GET", "/v1/sites/site_1/endpoints/ep%2F2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "site_1|ep/2");
  EXPECT_EQ(Call(router, "GET", "/v1/sites/s%C3%A9/endpoints/e").body, "s\xC3\xA9|e");
  // Bytes that are not UTF-8, or a NUL, name nothing: 404, and the handler never sees them.
  EXPECT_EQ(Call(router, "GET", "/v1/sites/%FF%FE/endpoints/e").status, 404);
  EXPECT_EQ(Call(router, "GET", "/v1/sites/s/endpoints/a%00b").status, 404);
}

TEST(RouterTest, AQueryThatCannotBeReadIsRefusedBeforeTheHandler) {
  Router router;
  int calls = 0;
  router.Add("GET", "/v1/stats", [&calls](Request&&, Responder respond) {
    ++calls;
    respond(Response::Empty(204));
  });
  const auto call = [&router](std::string query) {
    Request request;
    request.method = "GET";
    request.path = "/v1/stats";
    request.query = std::move(query);
    Response out;
    router.Handle(std::move(request), [&out](Response r) { out = std::move(r); });
    return out;
  };
  for (const char* fine : {"", "cid=50%25off", "cid=a+b&x", "q=%C3%A9", "empty=&=v"}) {
    EXPECT_EQ(call(fine).status, 204) << fine;
  }
  EXPECT_EQ(calls, 5);
  const std::pair<const char*, const char*> refused[] = {
      {"cid=50%off", "cid"}, {"from=1&cid=%zz", "cid"}, {"bucket=%", "bucket"},
      {"cid=%FF%FE", "cid"}, {"cid=a%00b", "cid"},      {"c%ZZd=1", "c%ZZd"},
  };
  for (const auto& [query, name] : refused) {
    const Response r = call(query);
    EXPECT_EQ(r.status, 400) << query;
    EXPECT_EQ(r.body, "{\"error\":{\"code\":\"invalid_request\",\"message\":\"query parameter '" +
                          std::string(name) +
                          "' is not percent-encoded UTF-8 text (a % is written %25)\"}}")
        << query;
  }
  EXPECT_EQ(calls, 5) << "the handler never saw a query it could not read";
}

TEST(RouterTest, UnknownPathIs404AndWrongMethodIs405) {
  Router router;
  router.Add("GET", "/v1/sites",
             [](Request&&, Responder respond) { respond(Response::Empty(200)); });
  EXPECT_EQ(Call(router, "GET", "/v1/nothing").status, 404);
  const Response r = Call(router, "DELETE", "/v1/sites");
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(r.body.find(R"("code":"method_not_allowed")"), std::string::npos);
  const auto allow = std::find_if(r.headers.begin(), r.headers.end(),
                                  [](const auto& h) { return h.first == "allow"; });
  ASSERT_NE(allow, r.headers.end()) << "a 405 names the methods the path takes";
  EXPECT_EQ(allow->second, "GET, HEAD");
}

TEST(RouterTest, TheRefusalDecoratorSeesOnlyTheRoutersOwnRefusals) {
  Router router;
  router.Add("GET", "/v1/sites",
             [](Request&&, Responder respond) { respond(Response::Error(404, "not_found", "x")); });
  int decorated = 0;
  std::vector<std::string> paths;
  router.OnRefusal([&](std::string_view path, Response& r) {
    ++decorated;
    paths.emplace_back(path);
    r.With("access-control-allow-origin", "*");
  });
  const Response unknown = Call(router, "POST", "/v1/event");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(decorated, 1);
  EXPECT_EQ(unknown.headers.back().first, "access-control-allow-origin");
  EXPECT_EQ(Call(router, "GET", "/v1/sites").status, 404) << "the handler's own 404";
  EXPECT_EQ(decorated, 1);
  EXPECT_EQ(Call(router, "DELETE", "/v1/sites").status, 405);
  EXPECT_EQ(decorated, 2);
  Request bad_query;
  bad_query.method = "GET";
  bad_query.path = "/v1/sites";
  bad_query.query = "q=%FF";
  Response refused;
  router.Handle(std::move(bad_query), [&](Response r) { refused = std::move(r); });
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(paths, (std::vector<std::string>{"/v1/event", "/v1/sites", "/v1/sites"}));
}

TEST(RouterTest, HeadIsAnsweredByTheGetRoute) {
  Router router;
  router.Add("GET", "/", [](Request&& r, Responder respond) {
    respond(Response::Json(200, "{\"as\":\"" + r.method + "\"}"));
  });
  router.Add("POST", "/events",
             [](Request&&, Responder respond) { respond(Response::Empty(202)); });
  EXPECT_EQ(Call(router, "HEAD", "/").body, R"({"as":"HEAD"})");
  EXPECT_EQ(Call(router, "HEAD", "/events").status, 405) << "only a GET route answers HEAD";
}

TEST(RouterTest, LiteralSegmentsMustMatchExactly) {
  Router router;
  router.Add("POST", "/v1/sites/{site}/tokens",
             [](Request&&, Responder respond) { respond(Response::Empty(201)); });
  EXPECT_EQ(Call(router, "POST", "/v1/sites/a/tokens").status, 201);
  EXPECT_EQ(Call(router, "POST", "/v1/sites/a/tokensx").status, 404);
  EXPECT_EQ(Call(router, "POST", "/v1/sites//tokens").status, 404);
}

}  // namespace
}  // namespace pushhook::http
