// Bearer-token authentication for the admin and reporting APIs (DESIGN section 3). The operator
// token reaches every site; a site token reaches one, and any other site's ids answer 404 so that
// their existence is not confirmed. Tokens are compared as SHA-256 digests in constant time.
//
// Thread safety: const after construction; call from any thread. The Store must outlive it.
#pragma once

#include <optional>
#include <string>

#include "http/http_types.h"
#include "store/store.h"

namespace pushhook::admin {

struct Scope {
  bool is_operator = false;
  std::string site_id;     // for a site token
  bool read_only = false;  // a site token of scope "read": it may look, not change
  std::string token_id;    // a site token's public id (store::SiteTokenId), so it may revoke itself
};

class Authenticator {
 public:
  // `operator_token_hash`: SHA-256 (hex) of the operator token; the token itself is not kept.
  Authenticator(store::Store& store, std::string operator_token_hash);

  // The caller's scope from its bearer token, or nullopt with the answer in `error`: 401 for a
  // missing or unknown token, 503 when the database cannot say.
  std::optional<Scope> Authenticate(const http::Request& request, http::Response* error) const;

  // Authenticates and checks that the caller may see `site_id` and that it exists; nullopt with
  // the 401/404 (or 503) to answer in `error`.
  std::optional<Scope> AuthorizeSite(const http::Request& request, const std::string& site_id,
                                     http::Response* error) const;

  // The handler of a route under /v1/sites/{site}: `handler` runs only once the caller may see
  // {site} (path_params[0]); else AuthorizeSite's 401 or 404 is the answer. A read-only token
  // gets 403 for every method but GET. The Authenticator must outlive the handler.
  http::Handler SiteScoped(http::Handler handler) const;

 private:
  store::Store& store_;
  const std::string operator_token_hash_;
};

}  // namespace pushhook::admin
