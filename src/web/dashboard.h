// Serves the dashboard (DESIGN section 8): index.html at "/" and its hashed assets under
// "/assets/", with a content-security-policy that allows only this origin's scripts, styles and
// API, and no inline script or eval. The page is a client of the admin and reporting API like
// any other; nothing here reads the store.
#pragma once

#include "http/router.h"

namespace pushhook::web {

// The policy every dashboard answer carries.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Adds GET / and GET /assets/{name} to `router`.
void RegisterDashboard(http::Router& router);

}  // namespace pushhook::web
