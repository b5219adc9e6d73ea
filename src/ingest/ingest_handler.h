// POST /v1/events (DESIGN section 2): authenticates the site's ingest key, parses and validates
// the body, stores the events through the Store's group commit and answers 202 only once they
// are durable. Also answers the route's CORS preflight, since service workers post with fetch.
//
// Thread safety: Handle* may run on any number of server threads at once. The key cache is
// guarded; the Store and Clock must outlive the handler.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/http_types.h"
#include "ingest/beacon_check.h"
#include "ingest/event_parser.h"
#include "model/clock.h"
#include "store/store.h"
#include "util/token_bucket.h"

namespace pushhook::ingest {

// Called with the messages of each committed request, before the client is answered.
using CommittedCallback = std::function<void(std::vector<store::DueMessage>)>;
// Why ingest must refuse a site's events right now (the disk, the backlog of every site or of
// that one), or nullopt; answered as 503.
using OverloadCheck = std::function<std::optional<std::string>(const std::string& site_id)>;

// The CORS headers of every answer on the ingest route: the handler's own, and those the HTTP
// server writes itself (413, 431, 408, ...), so that a service worker can read each of them.
void AddCorsHeaders(http::Response& response);

class IngestHandler {
 public:
  // `requests_per_key_per_second` > 0 limits each ingest key (429 with Retry-After beyond it).
  IngestHandler(store::Store& store, const model::Clock& clock, IngestLimits limits,
                double requests_per_key_per_second, CommittedCallback on_committed,
                OverloadCheck overloaded);

  void HandlePost(http::Request&& request, http::Responder respond);

  struct Counts {
    uint64_t accepted = 0;    // events stored
    uint64_t duplicates = 0;  // events whose event_id the site had
    uint64_t rejected = 0;    // requests answered 4xx
    uint64_t refused = 0;     // requests answered 429/503 (back-pressure, rate limits)
  };
  Counts counts() const;
  // Counts an answer on ingest's route that did not come from HandlePost: the HTTP server's own
  // (413 for a body over the limit, 431, 408, 400 for a malformed request) and the router's 405.
  void CountAnswer(int status);
  void HandlePreflight(http::Request&& request, http::Responder respond);

  // Forgets what the cache holds of `site_id` (its beacon mode, beacon secret or ingest key
  // changed on this node).
  void SiteChanged(const std::string& site_id);

  // How long a cached site's beacon settings, and a cached key, are used before the store is
  // asked again: a change made through another node (a rotated-out key expiring too) takes
  // effect within this.
  static constexpr int64_t kSiteRefreshMs = 5000;

 private:
  struct CachedSite {
    std::shared_ptr<const SiteBeacons> beacons;  // shared with the requests using it: no copy
    int64_t fetched_ms = 0;
  };
  // The site of an ingest key, from the cache or the store: kNotFound for an unknown key, another
  // code for a database that could not say (a stale cached entry is used then).
  model::StatusOr<std::shared_ptr<const SiteBeacons>> SiteOfKey(const std::string& key,
                                                                int64_t now_ms);
  // Milliseconds until `key` may send again, 0 if it may send now (and takes its token).
  int64_t RateLimitWait(const std::string& key, int64_t now_ms);

  store::Store& store_;
  const model::Clock& clock_;
  const IngestLimits limits_;
  const CommittedCallback on_committed_;
  const OverloadCheck overloaded_;

  std::shared_mutex keys_mu_;
  // An ingest key never changes owner; what may change is the site's beacon settings, and
  // whether the key is still accepted (a rotation replaces it, SiteChanged drops its entry).
  std::unordered_map<std::string, CachedSite> site_by_key_;  // guarded by keys_mu_

  const double key_rate_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> refused_{0};
  std::mutex buckets_mu_;
  std::unordered_map<std::string, util::TokenBucket> buckets_;  // guarded by buckets_mu_
};

}  // namespace pushhook::ingest
