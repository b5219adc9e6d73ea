#include "admin/auth.h"

#include <algorithm>

#include "model/digest.h"

namespace pushhook::admin {

Authenticator::Authenticator(store::Store& store, std::string operator_token_hash)
    : store_(store), operator_token_hash_(std::move(operator_token_hash)) {}

std::optional<Scope> Authenticator::Authenticate(const http::Request& request,
                                                 http::Response* error) const {
  std::string_view header = request.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    *error = http::Response::Error(401, "unauthorized",
                                   "missing bearer token: send authorization: Bearer <token>");
    return std::nullopt;
  }
  const std::string hash = model::Sha256Hex(header.substr(kBearer.size()));
  if (model::ConstantTimeEquals(hash, operator_token_hash_)) return Scope{true, ""};
  if (auto site = store_.FindSiteOfToken(hash)) return Scope{false, std::move(*site)};
  *error = http::Response::Error(401, "unauthorized", "unknown token");
  return std::nullopt;
}

bool Authenticator::AuthorizeSite(const http::Request& request, const std::string& site_id,
                                  http::Response* error) const {
  auto scope = Authenticate(request, error);
  if (!scope) return false;
  // Another site's id looks exactly like a missing one.
  if ((!scope->is_operator && scope->site_id != site_id) || !store_.GetSite(site_id).ok()) {
    *error = http::Response::Error(404, "not_found", "site " + site_id + " not found");
    return false;
  }
  return true;
}

http::Handler Authenticator::SiteScoped(http::Handler handler) const {
  return [this, handler = std::move(handler)](http::Request&& request, http::Responder respond) {
    http::Response error;
    if (!AuthorizeSite(request, request.path_params[0], &error)) return respond(std::move(error));
    handler(std::move(request), std::move(respond));
  };
}

}  // namespace pushhook::admin
