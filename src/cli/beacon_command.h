// `pushhook beacon`: makes a signed beacon token (DESIGN section 2a) for one subscriber of one
// campaign run, as a push backend would; for trying a site's `beacons: required` mode by hand,
// and as the reference the README's Node and Python lines agree with.
#pragma once

#include <cstdint>
#include <string>

namespace pushhook::cli {

struct BeaconCommandOptions {
  std::string secret;  // bsec_…
  std::string site;
  std::string cid;
  std::string reference_id;
  std::string cookie_id;
  std::string ttl = "7d";
  int64_t expires = 0;  // Unix seconds; when set, used instead of now + ttl
};

// Prints the token and a newline to stdout; returns the exit code (0, or 2 with a one-line
// reason on stderr for bad usage).
int RunBeaconCommand(const BeaconCommandOptions& options, int64_t now_unix_s);

}  // namespace pushhook::cli
