#include "ingest/beacon_check.h"

#include <algorithm>
#include <string>
#include <vector>

#include "model/beacon.h"

namespace pushhook::ingest {

SiteBeacons SiteBeacons::Of(const store::Site& site) {
  SiteBeacons beacons;
  beacons.site_id = site.id;
  beacons.mode = site.beacons;
  beacons.key = model::DecodeBeaconSecret(site.beacon_secret).value_or("");
  for (const store::PreviousSecret& previous : site.previous_beacon_secrets) {
    if (auto key = model::DecodeBeaconSecret(previous.secret)) {
      beacons.previous.push_back({std::move(*key), previous.until_ms});
    }
  }
  return beacons;
}

std::optional<ParseError> CheckBeacons(const SiteBeacons& site, std::vector<model::Event>& events,
                                       int64_t now_ms) {
  if (site.mode == store::BeaconMode::kOff) {
    for (model::Event& e : events) e.beacon.reset();
    return std::nullopt;
  }
  // The common case, events without tokens: nothing to check or to drop.
  if (std::none_of(events.begin(), events.end(),
                   [](const model::Event& e) { return e.beacon.has_value(); }) &&
      site.mode != store::BeaconMode::kRequired) {
    return std::nullopt;
  }
  std::vector<std::string> valid_keys;
  if (!site.key.empty()) valid_keys.push_back(site.key);
  for (const SiteBeacons::PreviousKey& previous : site.previous) {
    if (now_ms < previous.until_ms) valid_keys.push_back(previous.key);
  }

  ParseError error;
  for (size_t i = 0; i < events.size(); ++i) {
    const model::Event& e = events[i];
    std::string_view code;
    std::string message;
    if (!e.beacon) {
      if (site.mode != store::BeaconMode::kRequired) continue;
      code = kBeaconRequired;
      message = "is required: this site takes only events with a signed beacon token";
    } else if (e.beacon->empty()) {
      // Sent, so checked (DESIGN 2a): most likely a template whose token was never filled in.
      code = kBeaconInvalid;
      message = "is empty: send the token the push backend made, or leave the field out";
    } else {
      const model::BeaconSubject subject{site.site_id, e.cid, e.reference_id, e.cookie_id};
      switch (model::CheckBeaconToken(*e.beacon, valid_keys, subject, now_ms / 1000)) {
        case model::BeaconVerdict::kValid:
          continue;
        case model::BeaconVerdict::kExpired:
          code = kBeaconExpired;
          message = "has expired";
          break;
        case model::BeaconVerdict::kInvalid:
          code = kBeaconInvalid;
          message = "is not a token of this site for this event's cid, reference_id and cookie_id";
          break;
        case model::BeaconVerdict::kTooFarAhead:
          code = kBeaconInvalid;
          message = "expires more than 30 days from now; a token may live at most 30 days";
          break;
      }
    }
    if (error.details.empty()) error.code = code;
    if (error.details.size() < kMaxErrorDetails) {
      error.details.push_back(FieldError{i, "beacon", std::move(message)});
    }
  }
  if (!error.details.empty()) {
    error.message = "a beacon token did not pass; nothing of the request was stored";
    return error;
  }
  for (model::Event& e : events) {
    if (!e.beacon) continue;
    e.replay_key = model::BeaconReplayKey(*e.beacon, e.action, e.clicked_button);
    e.beacon.reset();
  }
  return std::nullopt;
}

}  // namespace pushhook::ingest
