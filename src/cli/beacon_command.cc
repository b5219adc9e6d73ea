#include "cli/beacon_command.h"

#include <cstdio>

#include "model/beacon.h"
#include "model/duration.h"
#include "model/event.h"

namespace pushhook::cli {
namespace {

int Usage(const std::string& reason) {
  std::fprintf(stderr, "pushhook beacon: %s\n", reason.c_str());
  return 2;
}

}  // namespace

int RunBeaconCommand(const BeaconCommandOptions& options, int64_t now_unix_s) {
  const auto key = model::DecodeBeaconSecret(options.secret);
  if (!key) return Usage("--secret must be a beacon secret, bsec_ followed by base64");
  if (options.site.empty()) return Usage("--site must not be empty");
  if (options.cid.empty() || options.cid.size() > model::kMaxCid) {
    return Usage("--cid must be 1 to " + std::to_string(model::kMaxCid) + " bytes");
  }
  if (options.reference_id.size() > model::kMaxReferenceId) {
    return Usage("--reference-id must be at most " + std::to_string(model::kMaxReferenceId) +
                 " bytes");
  }
  if (options.cookie_id.empty() || options.cookie_id.size() > model::kMaxCookieId) {
    return Usage("--cookie-id must be 1 to " + std::to_string(model::kMaxCookieId) + " bytes");
  }
  int64_t expires = options.expires;
  if (expires < 0) {
    return Usage("--expires must be Unix seconds, got " + std::to_string(expires));
  }
  // Ingest's bound, its allowance for clock skew included (model::CheckBeaconToken).
  if (expires > now_unix_s + model::kMaxBeaconTtlSeconds + model::kBeaconClockSkewSeconds) {
    // Made on purpose for a test vector, perhaps: printed, with what ingest will say of it.
    std::fprintf(stderr,
                 "pushhook beacon: warning: --expires is more than 30 days from now; ingest "
                 "refuses such a token (beacon_invalid) until it is within 30 days\n");
  }
  // Ingest's other bound (model::CheckBeaconToken): a token is expired from its second on.
  if (expires > 0 && expires <= now_unix_s) {
    std::fprintf(stderr,
                 "pushhook beacon: warning: --expires is not in the future; ingest refuses such "
                 "a token (beacon_expired)\n");
  }
  if (expires == 0) {
    const auto ttl = model::ParseDuration(options.ttl);
    if (!ttl) {
      return Usage("--ttl must be a duration such as 7d or 12h, got '" + options.ttl + "'");
    }
    const int64_t seconds = ttl->count() / 1000;
    // A token's time is whole seconds, and one that expires now is refused at once.
    if (seconds < 1) return Usage("--ttl must be at least 1s, got '" + options.ttl + "'");
    if (seconds > model::kMaxBeaconTtlSeconds) return Usage("--ttl must be at most 30d");
    expires = now_unix_s + seconds;
  }
  const model::BeaconSubject subject{options.site, options.cid, options.reference_id,
                                     options.cookie_id};
  std::printf("%s\n", model::MakeBeaconToken(*key, subject, expires).c_str());
  return 0;
}

}  // namespace pushhook::cli
