// The admin API of DESIGN section 3: sites, site tokens, endpoints and the delivery log, as JSON
// over HTTP with bearer tokens. The operator token reaches every site; a site token reaches one
// site, and any other site's ids answer 404 so that their existence is not confirmed.
//
// Thread safety: handlers run on any server thread; the API keeps no mutable state of its own.
// The Store, DeliveryService and Clock must outlive it.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "admin/auth.h"
#include "delivery/delivery_service.h"
#include "http/router.h"
#include "model/clock.h"
#include "store/store.h"

namespace pushhook::admin {

struct AdminOptions {
  bool allow_http = false;
  bool allow_private_destinations = false;
  size_t max_endpoints_per_site = 1000;
  // How long a rotated-out secret keeps signing beside the new one.
  std::chrono::milliseconds secret_overlap{24LL * 3600 * 1000};
  // Told of a site whose beacon mode, beacon secret or ingest key changed, so that ingest on
  // this node stops using what it cached of it.
  std::function<void(const std::string& site_id)> site_changed;
  // Why the node should take no more work for the site now (ingest's back-pressure), or
  // nullopt; replay asks it too, so that one site's replays cannot fill the backlog every
  // site's ingest shares.
  std::function<std::optional<std::string>(const std::string& site_id)> overloaded;
};

class AdminApi {
 public:
  AdminApi(store::Store& store, delivery::DeliveryService& delivery, const Authenticator& auth,
           const model::Clock& clock, AdminOptions options);

  // Adds every admin route to `router`.
  void Register(http::Router& router);

 private:
  void CreateSite(http::Request&& request, http::Responder respond);
  void ListSites(http::Request&& request, http::Responder respond);
  void WhoAmI(http::Request&& request, http::Responder respond);
  void GetSite(http::Request&& request, http::Responder respond);
  void UpdateSite(http::Request&& request, http::Responder respond);
  void RotateBeaconSecret(http::Request&& request, http::Responder respond);
  void RotateIngestKey(http::Request&& request, http::Responder respond);
  void CreateToken(http::Request&& request, http::Responder respond);
  void ListTokens(http::Request&& request, http::Responder respond);
  void RevokeToken(http::Request&& request, http::Responder respond);
  void CreateEndpoint(http::Request&& request, http::Responder respond);
  void ListEndpoints(http::Request&& request, http::Responder respond);
  void GetEndpoint(http::Request&& request, http::Responder respond);
  void UpdateEndpoint(http::Request&& request, http::Responder respond);
  void DeleteEndpoint(http::Request&& request, http::Responder respond);
  void RotateSecret(http::Request&& request, http::Responder respond);
  void TestEndpoint(http::Request&& request, http::Responder respond);
  void ReplayEndpoint(http::Request&& request, http::Responder respond);
  void EndpointStats(http::Request&& request, http::Responder respond);
  void Redeliver(http::Request&& request, http::Responder respond);
  void ListMessages(http::Request&& request, http::Responder respond);
  void GetMessage(http::Request&& request, http::Responder respond);
  void ListAttempts(http::Request&& request, http::Responder respond);

  store::Store& store_;
  delivery::DeliveryService& delivery_;
  const Authenticator& auth_;
  const model::Clock& clock_;
  const AdminOptions options_;
};

}  // namespace pushhook::admin
