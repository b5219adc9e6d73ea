// The signed-beacon check of ingest (DESIGN section 2a): after a body parsed, every event is
// held to its site's beacon mode. Pure: no I/O, no clock of its own; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ingest/event_parser.h"
#include "model/event.h"
#include "store/store.h"

namespace pushhook::ingest {

inline constexpr std::string_view kBeaconInvalid = "beacon_invalid";
inline constexpr std::string_view kBeaconExpired = "beacon_expired";
inline constexpr std::string_view kBeaconRequired = "beacon_required";

// What ingest needs of a site to check tokens: its mode and HMAC keys, decoded once.
struct SiteBeacons {
  std::string site_id;
  store::BeaconMode mode = store::BeaconMode::kOptional;
  std::string key;  // of the current secret; "" when the site has none yet
  // Of the rotated-out secrets, each verifying until its time.
  struct PreviousKey {
    std::string key;
    int64_t until_ms = 0;
  };
  std::vector<PreviousKey> previous;

  static SiteBeacons Of(const store::Site& site);
};

// Checks every event of a request against `site` at `now_ms`. All or nothing, like parsing: a
// refusal names each bad event (field "beacon") and its code is that of the first. When every
// event passes, each event with a valid token takes the token's replay key, so that a replayed
// token counts once per (action, button); every token is dropped.
std::optional<ParseError> CheckBeacons(const SiteBeacons& site, std::vector<model::Event>& events,
                                       int64_t now_ms);

}  // namespace pushhook::ingest
