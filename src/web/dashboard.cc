#include "web/dashboard.h"

#include <memory>
#include <string>
#include <unordered_map>

#include "web/assets.h"

namespace pushhook::web {
namespace {

http::Response Answer(const Asset& asset) {
  http::Response response;
  response.status = 200;
  response.body = std::string(asset.body);
  response.With("content-type", std::string(asset.content_type))
      .With("cache-control", asset.immutable ? "public, max-age=31536000, immutable" : "no-cache")
      .With("content-security-policy", std::string(kContentSecurityPolicy))
      .With("x-content-type-options", "nosniff")
      .With("referrer-policy", "no-referrer")
      .With("x-frame-options", "DENY");
  return response;
}

}  // namespace

void RegisterDashboard(http::Router& router) {
  auto by_path = std::make_shared<std::unordered_map<std::string_view, const Asset*>>();
  for (const Asset& asset : Assets()) {
    if (asset.path.starts_with("/assets/")) {
      (*by_path)[asset.path] = &asset;
    } else {
      // "/" (index.html) and "/openapi.json": each at its own address.
      router.Add("GET", asset.path,
                 [&asset](http::Request&&, http::Responder respond) { respond(Answer(asset)); });
    }
  }
  router.Add("GET", "/assets/{name}", [by_path](http::Request&& request, http::Responder respond) {
    const auto found = by_path->find(request.path);
    if (found == by_path->end()) {
      return respond(http::Response::Error(404, "not_found", "no dashboard file " + request.path));
    }
    respond(Answer(*found->second));
  });
}

}  // namespace pushhook::web
