#include "admin/auth.h"

#include "model/digest.h"

namespace pushhook::admin {

Authenticator::Authenticator(store::Store& store, std::string operator_token_hash)
    : store_(store), operator_token_hash_(std::move(operator_token_hash)) {}

std::optional<Scope> Authenticator::Authenticate(const http::Request& request,
                                                 http::Response* error) const {
  std::string_view header = request.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      !http::EqualsIgnoringCase(header.substr(0, kBearer.size()), kBearer)) {
    *error = http::Response::Error(401, "unauthorized",
                                   "missing bearer token: send authorization: Bearer <token>");
    return std::nullopt;
  }
  const std::string hash = model::Sha256Hex(header.substr(kBearer.size()));
  if (model::ConstantTimeEquals(hash, operator_token_hash_)) return Scope{true, "", false, ""};
  // Read on every request, never cached: a revoked token is refused from the next one.
  auto token = store_.FindSiteToken(hash);
  if (token.ok()) {
    return Scope{false, std::move(token->site_id), token->scope == store::TokenScope::kRead,
                 store::SiteTokenId(hash)};
  }
  *error = token.status().code() == model::StatusCode::kNotFound
               ? http::Response::Error(401, "unauthorized", "unknown token")
               : http::Response::FromStatus(token.status());
  return std::nullopt;
}

std::optional<Scope> Authenticator::AuthorizeSite(const http::Request& request,
                                                  const std::string& site_id,
                                                  http::Response* error) const {
  auto scope = Authenticate(request, error);
  if (!scope) return std::nullopt;
  // Another site's id looks exactly like a missing one.
  const auto not_found = [&] {
    *error = http::Response::Error(404, "not_found", "site " + site_id + " not found");
    return std::nullopt;
  };
  if (!scope->is_operator && scope->site_id != site_id) return not_found();
  auto site = store_.GetSite(site_id);
  if (site.ok()) return scope;
  if (site.status().code() == model::StatusCode::kNotFound) return not_found();
  *error = http::Response::FromStatus(site.status());
  return std::nullopt;
}

http::Handler Authenticator::SiteScoped(http::Handler handler) const {
  return [this, handler = std::move(handler)](http::Request&& request, http::Responder respond) {
    http::Response error;
    auto scope = AuthorizeSite(request, request.path_params[0], &error);
    if (!scope) return respond(std::move(error));
    if (scope->read_only && request.method != "GET" && request.method != "HEAD") {
      return respond(http::Response::Error(
          403, "forbidden", "this token may only read: changes need an admin token"));
    }
    handler(std::move(request), std::move(respond));
  };
}

}  // namespace pushhook::admin
