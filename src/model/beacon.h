// Signed beacons (DESIGN section 2a). An ingest key sits in every subscriber's browser, so anyone
// can post made-up clicks with it; a site that wants proof makes its push backend attach a
// token to each notification, bound to the site, the campaign, the run and the subscriber, and
// ingest checks it. Token: "v1.<exp>.<sig>", `exp` Unix seconds, `sig` unpadded base64url of
// HMAC-SHA256 over "v1.<exp>.<b64(site_id)>.<b64(cid)>.<b64(reference_id)>.<b64(cookie_id)>"
// (each b64 unpadded base64url of the field's bytes), keyed with the decoded part of the site's
// "bsec_" secret. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "model/event.h"
#include "model/status.h"

namespace pushhook::model {

// The longest a token may live: a token further in the future than this is refused, so a
// leaked secret's tokens cannot outlive its rotation by much.
inline constexpr int64_t kMaxBeaconTtlSeconds = 30LL * 24 * 3600;
// Clocks of the push backend and of pushhook may disagree a little: a token made for the
// longest life is still taken when it seems this much further ahead. Expiry has no slack: a
// token is expired from its `exp` second on, as a JWT is.
inline constexpr int64_t kBeaconClockSkewSeconds = 300;
inline constexpr size_t kMaxBeaconBytes = 256;

// What a token is bound to.
struct BeaconSubject {
  std::string_view site_id;
  std::string_view cid;
  std::string_view reference_id;
  std::string_view cookie_id;
};

// A new secret: "bsec_" + base64 of 32 random bytes.
std::string NewBeaconSecret();
// The raw HMAC key of a "bsec_<base64>" secret, or nullopt if it is not one.
std::optional<std::string> DecodeBeaconSecret(std::string_view secret);

// The token for `subject`, valid until `expires_unix_s`.
std::string MakeBeaconToken(std::string_view key, const BeaconSubject& subject,
                            int64_t expires_unix_s);

enum class BeaconVerdict {
  kValid,
  kInvalid,      // malformed, forged, or made for other fields or another site
  kTooFarAhead,  // correctly signed, but expiring more than kMaxBeaconTtlSeconds from now
  kExpired,      // correctly signed, but its time is over
};

// Checks `token` for `subject` against each of `keys` (the site's secret and, during a rotation's
// overlap, the previous one). A bad signature is kInvalid whatever the expiry says.
BeaconVerdict CheckBeaconToken(std::string_view token, std::span<const std::string> keys,
                               const BeaconSubject& subject, int64_t now_unix_s);

// The replay key of an event that carries a valid token: one token counts each (action, button)
// once, whatever event_id the client sent (DESIGN section 2a), so a replayed click is answered
// as a duplicate while the client's own event_id still reaches the payload.
std::string BeaconReplayKey(std::string_view token, Action action, int clicked_button);

}  // namespace pushhook::model
