// docs/openapi.json against the routes `serve` registers: every route is described (the
// dashboard's page and files too), and everything described is served, so the description cannot
// drift from the code. (Its request and response schemas are held to the answers by the
// integration tests.)
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "server/app.h"

namespace pushhook::server {
namespace {

// "GET /v1/sites/{}/…" for each operation of the description, placeholders as {}.
std::set<std::string> DescribedRoutes() {
  std::ifstream file(std::string(PUSHHOOK_SOURCE_DIR) + "/docs/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  const boost::json::value doc = boost::json::parse(text.str());
  std::set<std::string> out;
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    std::string pattern;
    bool in_placeholder = false;
    for (char ch : std::string(path)) {
      if (ch == '{') {
        pattern += "{}";
        in_placeholder = true;
      } else if (ch == '}') {
        in_placeholder = false;
      } else if (!in_placeholder) {
        pattern += ch;
      }
    }
    for (const auto& [method, operation] : item.as_object()) {
      if (method == "parameters") continue;
      std::string upper(method);
      for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      out.insert(upper + " " + pattern);
    }
  }
  return out;
}

TEST(OpenApiTest, DescribesEveryRouteAndNothingElse) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("pushhook-openapi-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       "-" + std::to_string(::getpid()));
  ServeConfig config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir.string();
  config.admin_token = "openapi-test";
  App app(config);
  const model::Status started = app.Start();
  ASSERT_TRUE(started.ok()) << started.message();
  const std::vector<std::string> routes = app.Routes();
  const std::set<std::string> served(routes.begin(), routes.end());
  app.Stop();
  std::filesystem::remove_all(dir);

  const std::set<std::string> described = DescribedRoutes();
  std::vector<std::string> undescribed, unserved;
  for (const std::string& r : served) {
    if (!described.contains(r)) undescribed.push_back(r);
  }
  for (const std::string& r : described) {
    if (!served.contains(r)) unserved.push_back(r);
  }
  EXPECT_EQ(undescribed, std::vector<std::string>{}) << "served, but not in docs/openapi.json";
  EXPECT_EQ(unserved, std::vector<std::string>{}) << "in docs/openapi.json, but not served";
  EXPECT_GE(served.size(), 25u);
}

}  // namespace
}  // namespace pushhook::server
