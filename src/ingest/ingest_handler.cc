#include "ingest/ingest_handler.h"

#include <mutex>

namespace pushhook::ingest {
namespace {

http::Response WithCors(http::Response response) {
  AddCorsHeaders(response);
  return response;
}

}  // namespace

// Any origin may post (the key is the credential), and a script may read Retry-After from a
// 429 or 503, which CORS hides unless it is exposed.
void AddCorsHeaders(http::Response& response) {
  response.With("access-control-allow-origin", "*");
  response.With("access-control-expose-headers", "retry-after");
}

IngestHandler::IngestHandler(store::Store& store, const model::Clock& clock, IngestLimits limits,
                             double requests_per_key_per_second, CommittedCallback on_committed,
                             OverloadCheck overloaded)
    : store_(store),
      clock_(clock),
      limits_(limits),
      on_committed_(std::move(on_committed)),
      overloaded_(std::move(overloaded)),
      key_rate_(requests_per_key_per_second) {}

int64_t IngestHandler::RateLimitWait(const std::string& key, int64_t now_ms) {
  if (key_rate_ <= 0) return 0;
  std::lock_guard lock(buckets_mu_);
  // Only keys that a site owns, or owned before a rotation, get here: the map grows with sites
  // and rotations, not with what strangers send.
  auto [it, inserted] = buckets_.try_emplace(key, key_rate_);
  if (it->second.TryTake(now_ms)) return 0;
  return std::max<int64_t>(1, it->second.NextTokenMs(now_ms) - now_ms);
}

void IngestHandler::HandlePreflight(http::Request&&, http::Responder respond) {
  http::Response response = http::Response::Empty(204);
  AddCorsHeaders(response);
  response.With("access-control-allow-methods", "POST, OPTIONS")
      .With("access-control-allow-headers", "content-type, x-pushhook-key")
      .With("access-control-max-age", "86400");
  respond(std::move(response));
}

model::StatusOr<std::shared_ptr<const SiteBeacons>> IngestHandler::SiteOfKey(const std::string& key,
                                                                             int64_t now_ms) {
  std::shared_ptr<const SiteBeacons> stale;
  {
    std::shared_lock lock(keys_mu_);
    if (auto it = site_by_key_.find(key); it != site_by_key_.end()) {
      if (now_ms - it->second.fetched_ms < kSiteRefreshMs) return it->second.beacons;
      stale = it->second.beacons;
    }
  }
  auto site = store_.FindSiteByIngestKey(key, now_ms);
  if (!site.ok()) {
    if (site.status().code() != model::StatusCode::kNotFound) {
      if (stale) return stale;
    } else if (stale) {
      // A key rotated out whose time is over: refused from now on, and not kept.
      std::unique_lock lock(keys_mu_);
      site_by_key_.erase(key);
    }
    return site.status();
  }
  auto beacons = std::make_shared<const SiteBeacons>(SiteBeacons::Of(*site));
  std::unique_lock lock(keys_mu_);
  site_by_key_.insert_or_assign(key, CachedSite{beacons, now_ms});
  return beacons;
}

void IngestHandler::SiteChanged(const std::string& site_id) {
  std::unique_lock lock(keys_mu_);
  std::erase_if(site_by_key_,
                [&](const auto& entry) { return entry.second.beacons->site_id == site_id; });
}

IngestHandler::Counts IngestHandler::counts() const {
  return Counts{
      accepted_.load(std::memory_order_relaxed), duplicates_.load(std::memory_order_relaxed),
      rejected_.load(std::memory_order_relaxed), refused_.load(std::memory_order_relaxed)};
}

void IngestHandler::CountAnswer(int status) {
  if (status == 429 || status == 503) {
    refused_.fetch_add(1, std::memory_order_relaxed);
  } else if (status >= 400) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
  }
}

void IngestHandler::HandlePost(http::Request&& request, http::Responder respond_to_client) {
  // Every answer passes here once, so the counters see every request.
  auto respond = [this, respond_to_client = std::move(respond_to_client)](http::Response r) {
    CountAnswer(r.status);
    respond_to_client(std::move(r));
  };
  std::string key(request.Header("x-pushhook-key"));
  const std::string query_key = request.QueryParam("key").value_or("");
  if (!key.empty() && !query_key.empty() && key != query_key) {
    // Either could be the site meant: storing the events under one of them would be a guess.
    return respond(WithCors(http::Response::Error(
        401, "unauthorized",
        "two different ingest keys: the x-pushhook-key header and ?key= must agree, or send one")));
  }
  if (key.empty()) key = query_key;
  if (key.empty()) {
    return respond(WithCors(http::Response::Error(
        401, "unauthorized", "missing ingest key: send header x-pushhook-key or query ?key=")));
  }
  const model::StatusOr<std::shared_ptr<const SiteBeacons>> site = SiteOfKey(key, clock_.NowMs());
  if (!site.ok()) {
    // A key the store could not look up is not an unknown key: the client should retry.
    if (site.status().code() != model::StatusCode::kNotFound) {
      return respond(WithCors(
          http::Response::Error(503, "unavailable",
                                "the database cannot be reached: " + site.status().message())
              .With("retry-after", "1")));
    }
    return respond(WithCors(http::Response::Error(401, "unauthorized", "unknown ingest key")));
  }

  if (const int64_t wait_ms = RateLimitWait(key, clock_.NowMs()); wait_ms > 0) {
    const int64_t seconds = (wait_ms + 999) / 1000;
    return respond(WithCors(
        http::Response::Error(429, "rate_limited",
                              "this ingest key sends more than its limit of requests per second")
            .With("retry-after", std::to_string(seconds))));
  }
  if (auto reason = overloaded_((*site)->site_id)) {
    // Back-pressure before memory or disk runs out; nothing of this request was taken.
    return respond(WithCors(http::Response::Error(503, "unavailable", *reason + "; retry later")
                                .With("retry-after", "5")));
  }

  const std::string type = http::MediaType(request.Header("content-type"));
  BodyKind kind;
  if (type == "application/x-ndjson") {
    kind = BodyKind::kNdjson;
  } else if (type.empty() || type == "application/json" || type == "text/plain") {
    // text/plain is what a service worker sends to avoid a CORS preflight; the body is JSON.
    kind = BodyKind::kJson;
  } else {
    return respond(WithCors(http::Response::Error(
        415, "unsupported_media_type",
        "content-type must be application/json, application/x-ndjson or text/plain, not " + type)));
  }

  const int64_t now_ms = clock_.NowMs();
  IngestLimits limits = limits_;
  limits.ignore_beacon = (*site)->mode == store::BeaconMode::kOff;
  auto parsed = ParseEvents(request.body, kind, now_ms, limits);
  if (auto* error = std::get_if<ParseError>(&parsed)) {
    const int status = error->code == kTooManyEvents ? 413 : 400;
    return respond(WithCors(http::Response::Json(status, error->ToJson())));
  }
  std::vector<model::Event> events = std::move(std::get<ParsedBatch>(parsed).events);
  if (auto refused = CheckBeacons(**site, events, now_ms)) {
    return respond(WithCors(http::Response::Json(401, refused->ToJson())));
  }
  store_.AppendEvents(
      (*site)->site_id, std::move(events), now_ms,
      [this, respond = std::move(respond)](model::StatusOr<store::AppendResult> result) {
        if (!result.ok()) {
          return respond(WithCors(http::Response::FromStatus(result.status())));
        }
        const size_t accepted = result->accepted;
        const size_t duplicates = result->duplicates;
        accepted_.fetch_add(accepted, std::memory_order_relaxed);
        duplicates_.fetch_add(duplicates, std::memory_order_relaxed);
        if (!result->messages.empty()) on_committed_(std::move(result->messages));
        respond(WithCors(
            http::Response::Json(202, "{\"accepted\":" + std::to_string(accepted) +
                                          ",\"duplicates\":" + std::to_string(duplicates) + "}")));
      });
}

}  // namespace pushhook::ingest
