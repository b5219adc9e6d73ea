#include "admin/admin_api.h"

#include <algorithm>
#include <boost/json.hpp>
#include <limits>
#include <map>

#include "delivery/address_guard.h"
#include "model/digest.h"
#include "model/event.h"
#include "model/payload.h"
#include "model/random.h"
#include "model/rfc3339.h"
#include "model/signature.h"
#include "model/utf8.h"
#include "util/field_filter_json.h"
#include "util/json_text.h"

namespace pushhook::admin {
namespace json = boost::json;

namespace {

constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxDescriptionBytes = 1024;
constexpr int kMaxInFlightLimit = 1000;
// rate_limit's range, requests per second: from one in about 17 minutes (below it the bucket's
// arithmetic would overflow its wait) to far more than one endpoint's connections carry.
constexpr double kMinRateLimit = 0.001;
constexpr double kMaxRateLimit = 1'000'000;
// Whether low <= x <= high. False for NaN, which Boost.JSON 1.81 reads `0e400` as (zero times an
// overflowed power of ten); a NaN limit would make every comparison in the rate limiter false.
constexpr bool InRange(double x, double low, double high) { return x >= low && x <= high; }
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 250;
// The fields an endpoint's create and update bodies may carry.
const std::vector<std::string_view> kEndpointFields = {
    "url",    "events",     "description",   "payload_format", "batch",
    "filter", "rate_limit", "max_in_flight", "enabled"};

http::Response JsonResponse(int status, const json::value& value) {
  return http::Response::Json(status, util::ToJsonText(value));
}

http::Response BadRequest(std::string message) {
  return http::Response::Error(400, "invalid_request", message);
}

http::Response NotFoundResponse(std::string_view what, std::string_view id) {
  return http::Response::Error(404, "not_found",
                               std::string(what) + " " + std::string(id) + " not found");
}

// The body as a JSON object, or the 400 that explains why not. An empty body is an empty object.
// A store's answer about message `id`: 404 if it has no such message (of this site), else the
// store's own error (503 while the database is away), not a 404 that would say it is gone.
http::Response MessageError(const model::Status& status, std::string_view id) {
  if (status.code() == model::StatusCode::kNotFound) return NotFoundResponse("message", id);
  return http::Response::FromStatus(status);
}

// Request bodies are JSON: one sent as another media type (XML, a form's parts) is refused
// (415). No content-type at all is read as JSON, and so are the defaults of the usual clients
// for a body of text: fetch's text/plain, and curl -d's application/x-www-form-urlencoded.
std::optional<http::Response> RefuseMediaType(const http::Request& request) {
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return std::nullopt;
  const std::string type = http::MediaType(request.Header("content-type"));
  if (type.empty() || type == "application/json" || type.ends_with("+json") ||
      type == "text/plain" || type == "application/x-www-form-urlencoded") {
    return std::nullopt;
  }
  return http::Response::Error(
      415, "unsupported_media_type",
      "the request body must be JSON (content-type: application/json), not " + type);
}

std::optional<json::object> ParseObject(const std::string& body, http::Response* error) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json::parser parser;
  json::error_code ec;
  const size_t read = parser.write(body.data(), body.size(), ec);
  if (ec) {
    *error = http::Response::Error(
        400, "invalid_json",
        "request body is not valid JSON at byte " + std::to_string(read) + ": " +
            util::DescribeJsonError(ec, body, read, json::parse_options().max_depth));
    return std::nullopt;
  }
  json::value value = parser.release();
  if (!value.is_object()) {
    *error = BadRequest("request body must be a JSON object");
    return std::nullopt;
  }
  // As ingest refuses an event that names a field twice: the reader kept one of the two.
  if (auto repeated = util::RepeatedKey(body)) {
    constexpr size_t kMaxEchoed = 64;  // as ingest echoes a field name
    if (repeated->size() > kMaxEchoed) *repeated = repeated->substr(0, kMaxEchoed) + "…";
    *error = BadRequest("field '" + *repeated + "' appears more than once");
    return std::nullopt;
  }
  return std::move(value.as_object());
}

// Refuses any key not in `allowed`: a misspelt field is an error, not silently ignored.
bool CheckFields(const json::object& body, const std::vector<std::string_view>& allowed,
                 http::Response* error) {
  for (const auto& [key, value] : body) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(key)) == allowed.end()) {
      *error = BadRequest("unknown field '" + std::string(key) + "'");
      return false;
    }
  }
  return true;
}

std::optional<std::string> StringField(const json::object& body, std::string_view name,
                                       size_t max_bytes, http::Response* error) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    *error = BadRequest("field '" + std::string(name) + "' must be a string");
    return std::nullopt;
  }
  if (v->as_string().size() > max_bytes) {
    *error = BadRequest("field '" + std::string(name) + "' must be at most " +
                        std::to_string(max_bytes) + " bytes");
    return std::nullopt;
  }
  // PostgreSQL's text cannot hold one, and SQLite's would differ from it.
  if (v->as_string().find('\0') != json::string::npos) {
    *error = BadRequest("field '" + std::string(name) + "' must not contain NUL characters");
    return std::nullopt;
  }
  return std::string(v->as_string());
}

// A replay's cid or reference_id, taken as ingest takes them: a string, or an integer as its
// decimal string (another number is refused: util::IntegerText says why). A cid is never empty.
std::optional<std::string> CampaignField(const json::object& body, std::string_view name,
                                         http::Response* error) {
  const json::value* v = body.if_contains(name);
  const size_t limit = name == "cid" ? model::kMaxCid : model::kMaxReferenceId;
  if (v != nullptr && !v->is_string()) {
    if (auto integer = util::IntegerText(*v)) return integer;  // never over 20 bytes
    *error = BadRequest("field '" + std::string(name) + "' " +
                        (v->is_double() ? std::string(util::kNotAnExactInteger)
                                        : std::string("must be a string or a number")));
    return std::nullopt;
  }
  auto value = StringField(body, name, limit, error);
  if (value && value->empty() && name == "cid") {
    *error = BadRequest("field 'cid' must not be empty (leave it out for every campaign)");
    return std::nullopt;
  }
  // As ingest refuses them: no event carries one, so the replay would match none.
  if (value && model::HasControlCharacter(*value)) {
    *error = BadRequest("field '" + std::string(name) + "' must not contain control characters");
    return std::nullopt;
  }
  return value;
}

std::string Rfc3339(int64_t ms) { return model::FormatRfc3339Ms(ms); }

// A rotation's body: {} or {"expire_previous": true}, which ends the secrets rotated out at once
// (a leaked secret) rather than after their overlap. False, with `error` set, for another body.
bool ReadRotation(const std::string& body, bool* expire_previous, http::Response* error) {
  auto object = ParseObject(body, error);
  if (!object || !CheckFields(*object, {"expire_previous"}, error)) return false;
  *expire_previous = false;
  if (const json::value* v = object->if_contains("expire_previous")) {
    if (!v->is_bool()) {
      *error = BadRequest("field 'expire_previous' must be true or false");
      return false;
    }
    *expire_previous = v->as_bool();
  }
  return true;
}

// When the secret a rotation just replaced stops being valid (the newest previous one), or
// null when there is none (the replaced secret could not be opened, so it is not kept).
json::value PreviousUntil(const std::vector<store::PreviousSecret>& previous) {
  if (previous.empty()) return nullptr;
  return json::value(Rfc3339(previous.front().until_ms));
}

// A site as the API shows it; its beacon secret only where DESIGN says it is shown (creation
// and rotation), never on a read.
json::object SiteJson(const store::Site& site, bool with_beacon_secret = false) {
  json::object out{{"id", site.id},
                   {"name", site.name},
                   {"ingest_key", site.ingest_key},
                   {"beacons", store::BeaconModeName(site.beacons)},
                   {"created_at", Rfc3339(site.created_at_ms)}};
  if (with_beacon_secret) out["beacon_secret"] = site.beacon_secret;
  return out;
}

// A site token as the API lists it: never the token or its hash.
json::object TokenJson(const store::SiteTokenInfo& token) {
  return json::object{{"id", token.id},
                      {"scope", token.scope == store::TokenScope::kRead ? "read" : "admin"},
                      {"created_at", Rfc3339(token.created_at_ms)}};
}

json::object EndpointJson(const store::Endpoint& e, bool with_secret) {
  json::array events;
  if (e.filter.view) events.emplace_back("View");
  if (e.filter.click) events.emplace_back("Click");
  if (e.filter.dismiss) events.emplace_back("Dismiss");
  json::object out{
      {"id", e.id},
      {"site_id", e.site_id},
      {"url", e.url},
      {"description", e.description},
      {"events", std::move(events)},
      {"payload_format", model::PayloadFormatName(e.format)},
      {"batch", e.batch.on() ? json::value(json::object{{"max_events", e.batch.max_events},
                                                        {"max_wait_ms", e.batch.max_wait_ms}})
                             : json::value()},
      {"filter", e.field_filter.empty() ? json::value() : json::parse(e.field_filter.ToJson())},
      {"enabled", e.enabled},
      {"disabled_reason", e.enabled ? json::value() : json::value(e.disabled_reason)},
      {"disabled_at",
       e.enabled || e.disabled_at_ms == 0 ? json::value() : json::value(Rfc3339(e.disabled_at_ms))},
      {"max_in_flight", e.max_in_flight},
      {"rate_limit", e.rate_limit > 0 ? json::value(e.rate_limit) : json::value()},
      {"created_at", Rfc3339(e.created_at_ms)},
      {"updated_at", Rfc3339(e.updated_at_ms)}};
  if (with_secret) out["secret"] = e.secret;
  return out;
}

std::string_view StatusName(store::MessageStatus s) {
  switch (s) {
    case store::MessageStatus::kPending:
      return "pending";
    case store::MessageStatus::kDelivered:
      return "delivered";
    case store::MessageStatus::kFailed:
      return "failed";
  }
  return "pending";
}

constexpr int64_t kEndpointDisabled = std::numeric_limits<int64_t>::max();

// What a pending message's endpoint says of its next attempt.
struct EndpointWait {
  // kEndpointDisabled while the endpoint is disabled (no next attempt until someone enables it;
  // the message's stored time is when it was parked), the end of the pause while its circuit is
  // open on this node (nothing is sent before it, whatever the message's schedule), else 0 (the
  // schedule decides).
  int64_t not_before_ms = 0;
  // While it batches, its max_wait_ms: a message never sent may wait that long for its batch to
  // fill (it goes sooner if the batch fills).
  int64_t batch_wait_ms = 0;
};

EndpointWait WaitOf(const store::Endpoint& endpoint, const delivery::DeliveryService& delivery,
                    int64_t now_ms) {
  if (!endpoint.enabled) return {.not_before_ms = kEndpointDisabled};
  const delivery::EndpointRuntime runtime = delivery.Runtime(endpoint.id);
  return {.not_before_ms = runtime.circuit == "open" ? now_ms + runtime.circuit_open_for_ms : 0,
          .batch_wait_ms = endpoint.batch.on() ? endpoint.batch.max_wait_ms : 0};
}

// When a pending message is sent next, at the latest; null when nothing will send it.
json::value NextAttemptAt(const store::Message& m, const EndpointWait& wait) {
  if (m.status != store::MessageStatus::kPending || wait.not_before_ms == kEndpointDisabled) {
    return nullptr;
  }
  int64_t at = m.next_attempt_ms;
  if (m.attempts == 0 && m.batch == store::kUnbatched) at += wait.batch_wait_ms;
  return json::value(Rfc3339(std::max(at, wait.not_before_ms)));
}

// `wait`: WaitOf the message's endpoint (nothing for a finished message).
json::object MessageJson(const store::Store& store, const store::Message& m,
                         const EndpointWait& wait) {
  json::value payload = json::parse(model::Payload(m.event, model::PayloadFormat::kIzooto, ""));
  json::object& event = payload.as_object();
  event["event_id"] = m.event.event_id;
  event["occurred_at"] = Rfc3339(m.event.occurred_at_ms);
  return json::object{
      {"id", store::FormatMessageId(store.instance_id(), m.id)},
      {"endpoint_id", m.endpoint_id},
      {"status", StatusName(m.status)},
      {"attempts", m.attempts},
      {"next_attempt_at", NextAttemptAt(m, wait)},
      {"created_at", Rfc3339(m.created_at_ms)},
      {"last_status_code",
       m.last_status_code == 0 ? json::value() : json::value(m.last_status_code)},
      {"last_error", m.last_error},
      // The batch it went in (the last, if several), also once redelivered alone; null when it
      // never went in one.
      {"batch_id", m.batch > 0 ? json::value(store::FormatBatchId(store.instance_id(), m.batch))
                               : json::value()},
      {"event", std::move(payload)}};
}

// An endpoint's `batch` (DESIGN section 1): null for off, or {max_events: 1..1000,
// max_wait_ms: 0..60000 (default 0: send what is waiting, never wait for more)}. A field left
// out keeps its value in `current` when that is on, as a merge patch would: a PATCH of
// {"batch": {"max_events": 5}} does not also reset the endpoint's wait.
model::StatusOr<store::BatchOptions> ReadBatch(const json::value& v,
                                               const store::BatchOptions& current) {
  if (v.is_null()) return store::BatchOptions{};
  static const std::string kShape = "field 'batch' must be null or an object {\"max_events\": 1.." +
                                    std::to_string(store::kMaxBatchEvents) +
                                    ", \"max_wait_ms\": 0.." +
                                    std::to_string(store::kMaxBatchWaitMs) + "}";
  if (!v.is_object()) return model::InvalidArgument(kShape);
  const json::object& o = v.as_object();
  for (const auto& [key, value] : o) {
    if (key != "max_events" && key != "max_wait_ms") {
      return model::InvalidArgument("unknown field 'batch." + std::string(key) +
                                    "': batch takes max_events and max_wait_ms");
    }
  }
  store::BatchOptions batch = current;
  const json::value* events = o.if_contains("max_events");
  if (events == nullptr && current.on()) {
    // Kept, with its wait unless the object names one.
  } else if (events == nullptr || !events->is_int64() || events->as_int64() < 1 ||
             events->as_int64() > store::kMaxBatchEvents) {
    return model::InvalidArgument("field 'batch.max_events' must be an integer from 1 to " +
                                  std::to_string(store::kMaxBatchEvents));
  } else {
    batch.max_events = static_cast<int>(events->as_int64());
  }
  if (const json::value* wait = o.if_contains("max_wait_ms")) {
    if (!wait->is_int64() || wait->as_int64() < 0 || wait->as_int64() > store::kMaxBatchWaitMs) {
      return model::InvalidArgument("field 'batch.max_wait_ms' must be an integer from 0 to " +
                                    std::to_string(store::kMaxBatchWaitMs));
    }
    batch.max_wait_ms = static_cast<int>(wait->as_int64());
  }
  return batch;
}

// Reads the optional endpoint fields shared by create and update into `patch`; `batch` is
// the endpoint's batching as it stands (off for a new one).
bool ReadEndpointFields(const json::object& body, store::EndpointPatch* patch,
                        const AdminOptions& options, const store::BatchOptions& batch,
                        http::Response* error) {
  if (const json::value* v = body.if_contains("url")) {
    if (!v->is_string()) {
      *error = BadRequest("field 'url' must be a string");
      return false;
    }
    const std::string url(v->as_string());
    if (model::Status s = delivery::CheckWebhookUrl(
            url, {options.allow_http, options.allow_private_destinations});
        !s.ok()) {
      *error = http::Response::FromStatus(s);
      return false;
    }
    patch->url = url;
  }
  if (auto d = StringField(body, "description", kMaxDescriptionBytes, error)) {
    patch->description = std::move(*d);
  } else if (error->status != 200) {
    return false;
  }
  if (const json::value* v = body.if_contains("events")) {
    if (!v->is_array() || v->as_array().empty()) {
      *error = BadRequest(
          "field 'events' must be a non-empty array of \"View\", \"Click\" and \"Dismiss\"");
      return false;
    }
    model::EventFilter filter{false, false, false};
    for (const json::value& item : v->as_array()) {
      if (item.is_string() && item.as_string() == "View") {
        filter.view = true;
      } else if (item.is_string() && item.as_string() == "Click") {
        filter.click = true;
      } else if (item.is_string() && item.as_string() == "Dismiss") {
        filter.dismiss = true;
      } else {
        *error = BadRequest("field 'events' may hold only \"View\", \"Click\" and \"Dismiss\"");
        return false;
      }
    }
    patch->filter = filter;
  }
  if (const json::value* v = body.if_contains("filter")) {
    auto filter = util::FieldFilterFromJson(*v);
    if (!filter.ok()) {
      *error = BadRequest(filter.status().message());
      return false;
    }
    patch->field_filter = std::move(filter.value());
  }
  if (const json::value* v = body.if_contains("payload_format")) {
    model::PayloadFormat format;
    if (!v->is_string() || !model::ParsePayloadFormat(std::string(v->as_string()), &format)) {
      *error = BadRequest("field 'payload_format' must be \"izooto\" or \"extended\"");
      return false;
    }
    patch->format = format;
  }
  if (const json::value* v = body.if_contains("enabled")) {
    if (!v->is_bool()) {
      *error = BadRequest("field 'enabled' must be true or false");
      return false;
    }
    patch->enabled = v->as_bool();
    if (!*patch->enabled) patch->disabled_reason = "disabled through the admin API";
  }
  if (const json::value* v = body.if_contains("max_in_flight")) {
    if (!v->is_int64() || v->as_int64() < 1 || v->as_int64() > kMaxInFlightLimit) {
      *error = BadRequest("field 'max_in_flight' must be an integer from 1 to " +
                          std::to_string(kMaxInFlightLimit));
      return false;
    }
    patch->max_in_flight = static_cast<int>(v->as_int64());
  }
  if (const json::value* v = body.if_contains("rate_limit")) {
    if (v->is_null()) {
      patch->rate_limit = 0;
    } else if (!v->is_number() || !InRange(v->to_number<double>(), kMinRateLimit, kMaxRateLimit)) {
      *error = BadRequest(
          "field 'rate_limit' must be a number of requests per second from 0.001 to 1000000, "
          "or null for no limit");
      return false;
    } else {
      patch->rate_limit = v->to_number<double>();
    }
  }
  if (const json::value* v = body.if_contains("batch")) {
    auto read = ReadBatch(*v, batch);
    if (!read.ok()) {
      *error = BadRequest(read.status().message());
      return false;
    }
    patch->batch = *read;
  }
  return true;
}

}  // namespace

AdminApi::AdminApi(store::Store& store, delivery::DeliveryService& delivery,
                   const Authenticator& auth, const model::Clock& clock, AdminOptions options)
    : store_(store), delivery_(delivery), auth_(auth), clock_(clock), options_(options) {}

void AdminApi::Register(http::Router& router) {
  const auto bind = [this](void (AdminApi::*method)(http::Request&&, http::Responder)) {
    return [this, method](http::Request&& r, http::Responder respond) {
      if (auto refused = RefuseMediaType(r)) return respond(std::move(*refused));
      (this->*method)(std::move(r), std::move(respond));
    };
  };
  // The routes under /v1/sites/{site} are authorised for {site} before their handler runs.
  const auto site_scoped = [this,
                            &bind](void (AdminApi::*method)(http::Request&&, http::Responder)) {
    return auth_.SiteScoped(bind(method));
  };
  router.Add("GET", "/v1/whoami", bind(&AdminApi::WhoAmI));
  router.Add("POST", "/v1/sites", bind(&AdminApi::CreateSite));
  router.Add("GET", "/v1/sites", bind(&AdminApi::ListSites));
  router.Add("GET", "/v1/sites/{site}", site_scoped(&AdminApi::GetSite));
  router.Add("PATCH", "/v1/sites/{site}", site_scoped(&AdminApi::UpdateSite));
  router.Add("POST", "/v1/sites/{site}/rotate-beacon-secret",
             site_scoped(&AdminApi::RotateBeaconSecret));
  router.Add("POST", "/v1/sites/{site}/rotate-ingest-key", site_scoped(&AdminApi::RotateIngestKey));
  // The token routes authorise for themselves: what a token may do there depends on its scope.
  router.Add("POST", "/v1/sites/{site}/tokens", bind(&AdminApi::CreateToken));
  router.Add("GET", "/v1/sites/{site}/tokens", bind(&AdminApi::ListTokens));
  router.Add("DELETE", "/v1/sites/{site}/tokens/{id}", bind(&AdminApi::RevokeToken));
  router.Add("POST", "/v1/sites/{site}/endpoints", site_scoped(&AdminApi::CreateEndpoint));
  router.Add("GET", "/v1/sites/{site}/endpoints", site_scoped(&AdminApi::ListEndpoints));
  router.Add("GET", "/v1/sites/{site}/endpoints/{id}", site_scoped(&AdminApi::GetEndpoint));
  router.Add("PATCH", "/v1/sites/{site}/endpoints/{id}", site_scoped(&AdminApi::UpdateEndpoint));
  router.Add("DELETE", "/v1/sites/{site}/endpoints/{id}", site_scoped(&AdminApi::DeleteEndpoint));
  router.Add("POST", "/v1/sites/{site}/endpoints/{id}/rotate-secret",
             site_scoped(&AdminApi::RotateSecret));
  router.Add("POST", "/v1/sites/{site}/endpoints/{id}/test", site_scoped(&AdminApi::TestEndpoint));
  router.Add("POST", "/v1/sites/{site}/endpoints/{id}/replay",
             site_scoped(&AdminApi::ReplayEndpoint));
  router.Add("GET", "/v1/sites/{site}/endpoints/{id}/stats", site_scoped(&AdminApi::EndpointStats));
  router.Add("POST", "/v1/sites/{site}/messages/{id}/redeliver", site_scoped(&AdminApi::Redeliver));
  router.Add("GET", "/v1/sites/{site}/messages", site_scoped(&AdminApi::ListMessages));
  router.Add("GET", "/v1/sites/{site}/messages/{id}", site_scoped(&AdminApi::GetMessage));
  router.Add("GET", "/v1/sites/{site}/messages/{id}/attempts",
             site_scoped(&AdminApi::ListAttempts));
}

// What the caller's token is and may do: the dashboard hides what it may not.
void AdminApi::WhoAmI(http::Request&& request, http::Responder respond) {
  http::Response error;
  auto scope = auth_.Authenticate(request, &error);
  if (!scope) return respond(std::move(error));
  json::object body;
  if (scope->is_operator) {
    body = json::object{{"token", "operator"}, {"site_id", nullptr}, {"scope", "admin"}};
  } else {
    body = json::object{{"token", "site"},
                        {"site_id", scope->site_id},
                        {"scope", scope->read_only ? "read" : "admin"}};
  }
  respond(http::Response::Json(200, util::ToJsonText(body)));
}

void AdminApi::CreateSite(http::Request&& request, http::Responder respond) {
  http::Response error;
  auto scope = auth_.Authenticate(request, &error);
  if (!scope) return respond(std::move(error));
  if (!scope->is_operator) {
    return respond(http::Response::Error(403, "forbidden", "only the operator token makes sites"));
  }
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {"name"}, &error)) return respond(std::move(error));
  auto name = StringField(*body, "name", kMaxNameBytes, &error);
  if (!name) {
    if (error.status != 200) return respond(std::move(error));
    return respond(BadRequest("field 'name' is required"));
  }
  if (name->empty()) return respond(BadRequest("field 'name' must not be empty"));
  auto site = store_.CreateSite(*name);
  if (!site.ok()) return respond(http::Response::FromStatus(site.status()));
  respond(JsonResponse(201, SiteJson(*site, /*with_beacon_secret=*/true)));
}

void AdminApi::ListSites(http::Request&& request, http::Responder respond) {
  http::Response error;
  auto scope = auth_.Authenticate(request, &error);
  if (!scope) return respond(std::move(error));
  auto sites = store_.ListSites();
  if (!sites.ok()) return respond(http::Response::FromStatus(sites.status()));
  json::array data;
  for (const store::Site& site : *sites) {
    if (scope->is_operator || site.id == scope->site_id) data.push_back(SiteJson(site));
  }
  respond(JsonResponse(200, json::object{{"data", std::move(data)}}));
}

void AdminApi::GetSite(http::Request&& request, http::Responder respond) {
  const std::string& site_id = request.path_params[0];
  auto site = store_.GetSite(site_id);
  if (!site.ok()) return respond(http::Response::FromStatus(site.status()));
  respond(JsonResponse(200, SiteJson(*site)));
}

void AdminApi::UpdateSite(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {"name", "beacons"}, &error)) return respond(std::move(error));
  store::SitePatch patch;
  if (body->contains("name")) {
    patch.name = StringField(*body, "name", kMaxNameBytes, &error);
    if (!patch.name) return respond(std::move(error));
    if (patch.name->empty()) return respond(BadRequest("field 'name' must not be empty"));
  }
  if (const json::value* v = body->if_contains("beacons")) {
    const json::string* name = v->if_string();
    patch.beacons = name ? store::ParseBeaconMode(*name) : std::nullopt;
    if (!patch.beacons) {
      return respond(BadRequest("field 'beacons' must be \"off\", \"optional\" or \"required\""));
    }
  }
  auto site = store_.UpdateSite(site_id, patch);
  if (!site.ok()) return respond(http::Response::FromStatus(site.status()));
  if (options_.site_changed) options_.site_changed(site_id);
  respond(JsonResponse(200, SiteJson(*site)));
}

void AdminApi::RotateBeaconSecret(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  bool expire_previous = false;
  if (!ReadRotation(request.body, &expire_previous, &error)) return respond(std::move(error));
  auto site = store_.RotateBeaconSecret(site_id, clock_.NowMs(),
                                        expire_previous ? 0 : store::kBeaconSecretOverlapMs);
  if (!site.ok()) return respond(http::Response::FromStatus(site.status()));
  if (options_.site_changed) options_.site_changed(site_id);
  json::object out = SiteJson(*site, /*with_beacon_secret=*/true);
  out["previous_beacon_secret_expires_at"] = PreviousUntil(site->previous_beacon_secrets);
  respond(JsonResponse(200, out));
}

void AdminApi::RotateIngestKey(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  bool expire_previous = false;
  if (!ReadRotation(request.body, &expire_previous, &error)) return respond(std::move(error));
  const int64_t now_ms = clock_.NowMs();
  const int64_t overlap_ms = expire_previous ? 0 : store::kIngestKeyOverlapMs;
  auto site = store_.RotateIngestKey(site_id, now_ms, overlap_ms);
  if (!site.ok()) return respond(http::Response::FromStatus(site.status()));
  // Ingest here drops the keys it cached, so that a key expired at once is refused at once.
  if (options_.site_changed) options_.site_changed(site_id);
  json::object out = SiteJson(*site);
  out["previous_ingest_key_expires_at"] =
      overlap_ms > 0 ? json::value(Rfc3339(now_ms + overlap_ms)) : json::value();
  respond(JsonResponse(200, out));
}

void AdminApi::CreateToken(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto scope = auth_.AuthorizeSite(request, site_id, &error);
  if (!scope) return respond(std::move(error));
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {"scope"}, &error)) return respond(std::move(error));
  store::TokenScope token_scope = store::TokenScope::kAdmin;
  if (const json::value* v = body->if_contains("scope")) {
    if (!v->is_string() || (v->as_string() != "admin" && v->as_string() != "read")) {
      return respond(BadRequest("field 'scope' must be \"admin\" or \"read\""));
    }
    if (v->as_string() == "read") token_scope = store::TokenScope::kRead;
  }
  // A site's admin token may hand out read tokens for its site (its marketers); only the
  // operator makes admin tokens.
  if (!scope->is_operator && (scope->read_only || token_scope == store::TokenScope::kAdmin)) {
    return respond(http::Response::Error(
        403, "forbidden",
        scope->read_only ? "this token may only read: changes need an admin token"
                         : "only the operator token makes admin tokens; a site token may make "
                           "read tokens"));
  }
  const std::string token = "pht_" + model::RandomToken(40);
  auto added = store_.AddSiteToken(site_id, model::Sha256Hex(token), token_scope);
  if (!added.ok()) return respond(http::Response::FromStatus(added.status()));
  json::object out = TokenJson(*added);
  out["token"] = token;
  out["site_id"] = site_id;
  respond(JsonResponse(201, out));
}

void AdminApi::ListTokens(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto scope = auth_.AuthorizeSite(request, site_id, &error);
  if (!scope) return respond(std::move(error));
  // The list shows which admin tokens exist and since when: nothing a marketer's token needs.
  if (scope->read_only) {
    return respond(http::Response::Error(
        403, "forbidden",
        "this token may only read statistics, campaigns, endpoints and messages"));
  }
  auto tokens = store_.ListSiteTokens(site_id);
  if (!tokens.ok()) return respond(http::Response::FromStatus(tokens.status()));
  json::array data;
  for (const store::SiteTokenInfo& t : *tokens) data.push_back(TokenJson(t));
  respond(JsonResponse(200, json::object{{"data", std::move(data)}}));
}

void AdminApi::RevokeToken(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  const std::string& token_id = request.path_params[1];
  auto scope = auth_.AuthorizeSite(request, site_id, &error);
  if (!scope) return respond(std::move(error));
  if (scope->read_only) {
    return respond(http::Response::Error(403, "forbidden",
                                         "this token may only read: changes need an admin token"));
  }
  // A site's admin token may withdraw what it hands out (read tokens) and itself, as CreateToken
  // lets it make only read tokens; admin tokens are the operator's to make and to revoke.
  if (!scope->is_operator && token_id != scope->token_id) {
    auto tokens = store_.ListSiteTokens(site_id);
    if (!tokens.ok()) return respond(http::Response::FromStatus(tokens.status()));
    const auto target =
        std::find_if(tokens->begin(), tokens->end(),
                     [&](const store::SiteTokenInfo& t) { return t.id == token_id; });
    if (target == tokens->end()) return respond(NotFoundResponse("token", token_id));
    if (target->scope == store::TokenScope::kAdmin) {
      return respond(http::Response::Error(
          403, "forbidden",
          "only the operator token revokes admin tokens; a site token may revoke read tokens "
          "and itself"));
    }
  }
  if (model::Status s = store_.DeleteSiteToken(site_id, token_id); !s.ok()) {
    return respond(http::Response::FromStatus(s));
  }
  respond(http::Response::Empty(204));
}

void AdminApi::CreateEndpoint(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, kEndpointFields, &error)) {
    return respond(std::move(error));
  }
  if (!body->contains("url")) return respond(BadRequest("field 'url' is required"));
  store::EndpointPatch fields;
  if (!ReadEndpointFields(*body, &fields, options_, {}, &error)) return respond(std::move(error));
  auto existing = store_.ListEndpoints(site_id);
  if (!existing.ok()) return respond(http::Response::FromStatus(existing.status()));
  if (existing->size() >= options_.max_endpoints_per_site) {
    return respond(http::Response::Error(
        409, "conflict",
        "site already has " + std::to_string(existing->size()) + " endpoints, the most allowed"));
  }
  store::Endpoint e;
  e.site_id = site_id;
  e.url = *fields.url;
  e.description = fields.description.value_or("");
  // What the request leaves out keeps store::Endpoint's defaults, the ones DESIGN names.
  e.filter = fields.filter.value_or(e.filter);
  e.field_filter = fields.field_filter.value_or(e.field_filter);
  e.batch = fields.batch.value_or(e.batch);
  e.format = fields.format.value_or(e.format);
  e.enabled = fields.enabled.value_or(e.enabled);
  e.disabled_reason = fields.disabled_reason.value_or("");  // "enabled": false says why
  e.max_in_flight = fields.max_in_flight.value_or(e.max_in_flight);
  e.rate_limit = fields.rate_limit.value_or(e.rate_limit);
  e.secret = model::NewSecret();
  e.created_at_ms = e.updated_at_ms = clock_.NowMs();
  if (!e.enabled) e.disabled_at_ms = e.created_at_ms;  // as a PATCH that disables records it
  auto created = store_.CreateEndpoint(std::move(e));
  if (!created.ok()) return respond(http::Response::FromStatus(created.status()));
  delivery_.EndpointChanged(created->id);
  respond(JsonResponse(201, EndpointJson(*created, true)));
}

void AdminApi::ListEndpoints(http::Request&& request, http::Responder respond) {
  const std::string& site_id = request.path_params[0];
  auto endpoints = store_.ListEndpoints(site_id);
  if (!endpoints.ok()) return respond(http::Response::FromStatus(endpoints.status()));
  json::array data;
  for (const store::Endpoint& e : *endpoints) data.push_back(EndpointJson(e, false));
  respond(JsonResponse(200, json::object{{"data", std::move(data)}}));
}

void AdminApi::GetEndpoint(http::Request&& request, http::Responder respond) {
  const std::string& site_id = request.path_params[0];
  auto endpoint = store_.GetEndpoint(site_id, request.path_params[1]);
  if (!endpoint.ok()) return respond(http::Response::FromStatus(endpoint.status()));
  respond(JsonResponse(200, EndpointJson(*endpoint, false)));
}

void AdminApi::UpdateEndpoint(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, kEndpointFields, &error)) {
    return respond(std::move(error));
  }
  // A batch object merges into the endpoint's batching, which is read first for it.
  store::BatchOptions batch;
  if (const json::value* v = body->if_contains("batch"); v != nullptr && v->is_object()) {
    auto current = store_.GetEndpoint(site_id, request.path_params[1]);
    if (!current.ok()) return respond(http::Response::FromStatus(current.status()));
    batch = current->batch;
  }
  store::EndpointPatch patch;
  if (!ReadEndpointFields(*body, &patch, options_, batch, &error)) {
    return respond(std::move(error));
  }
  auto updated = store_.UpdateEndpoint(site_id, request.path_params[1], patch, clock_.NowMs());
  if (!updated.ok()) return respond(http::Response::FromStatus(updated.status()));
  delivery_.EndpointChanged(updated->id);
  respond(JsonResponse(200, EndpointJson(*updated, false)));
}

void AdminApi::DeleteEndpoint(http::Request&& request, http::Responder respond) {
  const std::string& site_id = request.path_params[0];
  const std::string& endpoint_id = request.path_params[1];
  if (model::Status s = store_.DeleteEndpoint(site_id, endpoint_id); !s.ok()) {
    return respond(http::Response::FromStatus(s));
  }
  delivery_.EndpointChanged(endpoint_id);
  respond(http::Response::Empty(204));
}

void AdminApi::ListMessages(http::Request&& request, http::Responder respond) {
  if (auto s = request.OnlyQueryParams({"endpoint", "status", "cid", "batch", "limit", "cursor"});
      !s.ok()) {
    return respond(BadRequest(s.message()));
  }
  const std::string& site_id = request.path_params[0];
  store::MessageQuery query;
  query.site_id = site_id;
  query.limit = kDefaultPageSize;
  if (auto endpoint = request.QueryParam("endpoint"); endpoint && !endpoint->empty()) {
    query.endpoint_id = *endpoint;
  }
  if (auto cid = request.QueryParam("cid"); cid && !cid->empty()) query.cid = *cid;
  // A receiver's webhook-id of a batch (bat_…): the messages it carried.
  if (auto batch = request.QueryParam("batch"); batch && !batch->empty()) {
    auto number = store::ParseBatchId(store_.instance_id(), *batch);
    if (!number) return respond(BadRequest("batch is not a batch id this server gave (bat_…)"));
    query.batch = *number;
  }
  if (auto status = request.QueryParam("status"); status && !status->empty()) {
    if (*status == "pending") {
      query.status = store::MessageStatus::kPending;
    } else if (*status == "delivered") {
      query.status = store::MessageStatus::kDelivered;
    } else if (*status == "failed") {
      query.status = store::MessageStatus::kFailed;
    } else {
      return respond(BadRequest("status must be pending, delivered or failed"));
    }
  }
  const auto limit = request.PageLimit(query.limit, kMaxPageSize);
  if (!limit.ok()) return respond(BadRequest(limit.status().message()));
  query.limit = *limit;
  if (auto cursor = request.QueryParam("cursor"); cursor && !cursor->empty()) {
    auto id = store::ParseMessageId(store_.instance_id(), *cursor);
    if (!id) return respond(BadRequest("cursor is not one this server gave"));
    query.before_id = *id;
  }
  // One more than the page, to know whether another follows: the last page says so itself
  // rather than leading to an empty one.
  const auto page = static_cast<size_t>(query.limit);
  ++query.limit;
  auto messages = store_.ListMessages(query);
  if (!messages.ok()) return respond(http::Response::FromStatus(messages.status()));
  if (messages->empty() && query.endpoint_id) {
    // Not an empty page for an endpoint filter that names none of the site's endpoints (a
    // typo, another site's): it would read as an endpoint that never had a message. A deleted
    // endpoint's messages stay listed under its id while there are some.
    if (auto found = store_.GetEndpoint(site_id, *query.endpoint_id); !found.ok()) {
      return respond(found.status().code() == model::StatusCode::kNotFound
                         ? NotFoundResponse("endpoint", *query.endpoint_id)
                         : http::Response::FromStatus(found.status()));
    }
  }
  const bool more = messages->size() > page;
  if (more) messages->pop_back();
  json::array data;
  // A pending message's next attempt waits for its endpoint (disabled, or its circuit open):
  // the site's endpoints are read once, and only for a page that has pending messages.
  std::map<std::string, EndpointWait> waits;  // endpoint id -> WaitOf
  for (const store::Message& m : *messages) {
    if (m.status == store::MessageStatus::kPending) waits.emplace(m.endpoint_id, EndpointWait{});
  }
  if (!waits.empty()) {
    auto endpoints = store_.ListEndpoints(site_id);
    if (!endpoints.ok()) return respond(http::Response::FromStatus(endpoints.status()));
    const int64_t now_ms = clock_.NowMs();
    for (const store::Endpoint& e : *endpoints) {
      if (auto it = waits.find(e.id); it != waits.end()) it->second = WaitOf(e, delivery_, now_ms);
    }
  }
  for (const store::Message& m : *messages) {
    const auto it = waits.find(m.endpoint_id);
    data.push_back(MessageJson(store_, m, it == waits.end() ? EndpointWait{} : it->second));
  }
  json::value next;
  if (more) next = store::FormatMessageId(store_.instance_id(), messages->back().id);
  respond(JsonResponse(200, json::object{{"data", std::move(data)}, {"next_cursor", next}}));
}

void AdminApi::GetMessage(http::Request&& request, http::Responder respond) {
  const std::string& site_id = request.path_params[0];
  auto id = store::ParseMessageId(store_.instance_id(), request.path_params[1]);
  if (!id) return respond(NotFoundResponse("message", request.path_params[1]));
  auto message = store_.GetMessage(site_id, *id);
  if (!message.ok()) return respond(MessageError(message.status(), request.path_params[1]));
  EndpointWait wait;
  if (message->status == store::MessageStatus::kPending) {
    auto endpoint = store_.GetEndpoint(site_id, message->endpoint_id);
    if (endpoint.ok()) wait = WaitOf(*endpoint, delivery_, clock_.NowMs());
  }
  respond(JsonResponse(200, MessageJson(store_, *message, wait)));
}

void AdminApi::ListAttempts(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto id = store::ParseMessageId(store_.instance_id(), request.path_params[1]);
  if (!id) return respond(NotFoundResponse("message", request.path_params[1]));
  if (auto message = store_.GetMessage(site_id, *id); !message.ok()) {
    return respond(MessageError(message.status(), request.path_params[1]));
  }
  auto attempts = store_.ListAttempts(*id);
  if (!attempts.ok()) return respond(http::Response::FromStatus(attempts.status()));
  json::array data;
  for (const store::Attempt& a : *attempts) {
    data.push_back(json::object{
        {"attempt", a.attempt},
        {"at", Rfc3339(a.at_ms)},
        {"status_code", a.status_code == 0 ? json::value() : json::value(a.status_code)},
        {"latency_ms", static_cast<double>(a.latency_us) / 1000.0},
        {"error", a.error},
        {"response_body", a.response_prefix},
        {"batch_id", a.batch > 0 ? json::value(store::FormatBatchId(store_.instance_id(), a.batch))
                                 : json::value()}});
  }
  respond(JsonResponse(200, json::object{{"data", std::move(data)}}));
}

void AdminApi::RotateSecret(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  bool expire_previous = false;
  if (!ReadRotation(request.body, &expire_previous, &error)) return respond(std::move(error));
  auto updated = store_.RotateEndpointSecret(site_id, request.path_params[1], clock_.NowMs(),
                                             expire_previous ? 0 : options_.secret_overlap.count());
  if (!updated.ok()) return respond(http::Response::FromStatus(updated.status()));
  delivery_.EndpointChanged(updated->id);  // signs with the new secret from now on
  json::object out = EndpointJson(*updated, true);
  out["previous_secret_expires_at"] = PreviousUntil(updated->previous_secrets);
  respond(JsonResponse(200, out));
}

void AdminApi::TestEndpoint(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {}, &error)) return respond(std::move(error));
  auto endpoint = store_.GetEndpoint(site_id, request.path_params[1]);
  if (!endpoint.ok()) return respond(http::Response::FromStatus(endpoint.status()));
  delivery_.SendTest(
      *endpoint, site_id, [respond = std::move(respond)](delivery::DeliveryService::TestSend sent) {
        const delivery::OutboundResult& r = sent.result;
        const bool success = r.status >= 200 && r.status < 300;
        // A logged attempt's fields, with the webhook-id the receiver saw in place of the
        // attempt's number (a test send is not in the message log).
        respond(JsonResponse(
            200,
            json::object{{"success", success},
                         {"webhook_id", sent.webhook_id},
                         {"at", Rfc3339(sent.at_ms)},
                         {"status_code", r.status == 0 ? json::value() : json::value(r.status)},
                         {"latency_ms", static_cast<double>(r.latency.count()) / 1000.0},
                         {"error", r.error.empty() && !success ? "HTTP " + std::to_string(r.status)
                                                               : r.error},
                         {"response_body", r.body_prefix}}));
      });
}

namespace {

// A time given as RFC 3339 text or Unix milliseconds.
std::optional<int64_t> TimeField(const json::object& body, std::string_view name,
                                 http::Response* error) {
  const json::value* v = body.if_contains(name);
  if (v == nullptr) {
    *error = BadRequest("field '" + std::string(name) + "' is required");
    return std::nullopt;
  }
  if (v->is_int64() && v->as_int64() >= model::kMinRfc3339Ms &&
      v->as_int64() <= model::kMaxRfc3339Ms) {
    return v->as_int64();
  }
  if (v->is_string()) {
    if (auto ms = model::ParseTimeParam(std::string_view(v->as_string()))) return ms;
  }
  *error = BadRequest(
      model::TimeParamError("field '" + std::string(name) + "'",
                            v->is_string() ? std::string(v->as_string()) : util::ToJsonText(*v)));
  return std::nullopt;
}

}  // namespace

void AdminApi::ReplayEndpoint(http::Request&& request, http::Responder respond) {
  http::Response error;
  const std::string& site_id = request.path_params[0];
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {"since", "until", "cid", "reference_id"}, &error)) {
    return respond(std::move(error));
  }
  auto endpoint = store_.GetEndpoint(site_id, request.path_params[1]);
  if (!endpoint.ok()) return respond(http::Response::FromStatus(endpoint.status()));
  store::ReplayQuery query;
  query.site_id = site_id;
  query.endpoint_id = endpoint->id;
  query.field_filter = endpoint->field_filter;
  auto since = TimeField(*body, "since", &error);
  if (!since) return respond(std::move(error));
  auto until = TimeField(*body, "until", &error);
  if (!until) return respond(std::move(error));
  if (*since >= *until) return respond(BadRequest("'since' must be before 'until'"));
  query.since_ms = *since;
  query.until_ms = *until;
  for (const char* name : {"cid", "reference_id"}) {
    auto value = CampaignField(*body, name, &error);
    if (error.status != 200) return respond(std::move(error));
    if (value) (std::string_view(name) == "cid" ? query.cid : query.reference_id) = *value;
  }
  if (auto reason = options_.overloaded ? options_.overloaded(site_id) : std::nullopt) {
    return respond(http::Response::Error(503, "unavailable", *reason + "; retry later")
                       .With("retry-after", "5"));
  }
  auto messages = store_.ReplayEvents(query, clock_.NowMs());
  if (!messages.ok()) return respond(http::Response::FromStatus(messages.status()));
  const size_t count = messages->size();
  delivery_.Enqueue(std::move(messages.value()));
  respond(JsonResponse(202, json::object{{"replayed", count}}));
}

void AdminApi::EndpointStats(http::Request&& request, http::Responder respond) {
  if (auto s = request.OnlyQueryParams({"since"}); !s.ok()) return respond(BadRequest(s.message()));
  const std::string& site_id = request.path_params[0];
  auto endpoint = store_.GetEndpoint(site_id, request.path_params[1]);
  if (!endpoint.ok()) return respond(http::Response::FromStatus(endpoint.status()));
  int64_t since = clock_.NowMs() - 24LL * 3600 * 1000;
  if (auto text = request.QueryParam("since"); text && !text->empty()) {
    const auto given = model::ParseTimeParam(*text);
    if (!given) return respond(BadRequest(model::TimeParamError("since", *text)));
    since = *given;
  }
  // Attempts are counted by the hour: the answer says from when it counted.
  since = model::BucketStart(since, model::kHourMs);
  auto stats = store_.GetEndpointStats(endpoint->id, since);
  if (!stats.ok()) return respond(http::Response::FromStatus(stats.status()));
  delivery::EndpointRuntime runtime = delivery_.Runtime(endpoint->id);
  if (!runtime.circuit_opened && stats->circuit_open_for_ms) {
    // Another node delivers for it (shared database): its circuit, as of its last lease round.
    runtime.circuit = *stats->circuit_open_for_ms > 0 ? "open" : "half_open";
  }
  const std::string state = !endpoint->enabled          ? "disabled"
                            : runtime.circuit == "open" ? "circuit_open"
                                                        : "enabled";
  respond(JsonResponse(
      200, json::object{{"since", Rfc3339(since)},
                        {"attempts", stats->attempts},
                        {"successes", stats->successes},
                        {"failures", stats->failures},
                        {"latency_ms", json::object{{"p50", stats->latency_p50_us / 1000.0},
                                                    {"p99", stats->latency_p99_us / 1000.0}}},
                        {"pending", stats->pending},
                        {"failed", stats->failed_messages},
                        {"state", state},
                        {"circuit", runtime.circuit},
                        {"in_flight", runtime.in_flight}}));
}

void AdminApi::Redeliver(http::Request&& request, http::Responder respond) {
  http::Response error;
  auto body = ParseObject(request.body, &error);
  if (!body || !CheckFields(*body, {}, &error)) return respond(std::move(error));
  const std::string& site_id = request.path_params[0];
  auto id = store::ParseMessageId(store_.instance_id(), request.path_params[1]);
  if (!id) return respond(NotFoundResponse("message", request.path_params[1]));
  // A disabled endpoint sends nothing until it is enabled: the message would wait, not go now,
  // and a 202 would say otherwise (a deleted one is refused by RequeueMessage).
  auto message = store_.GetMessage(site_id, *id);
  if (!message.ok()) return respond(MessageError(message.status(), request.path_params[1]));
  if (auto endpoint = store_.GetEndpoint(site_id, message->endpoint_id);
      endpoint.ok() && !endpoint->enabled) {
    return respond(http::Response::Error(
        409, "conflict",
        "the message's endpoint " + endpoint->id + " is disabled: enable it before redelivering"));
  }
  auto due = store_.RequeueMessage(site_id, *id, clock_.NowMs());
  if (!due.ok()) return respond(MessageError(due.status(), request.path_params[1]));
  delivery_.Enqueue({*due});
  respond(JsonResponse(202, json::object{{"id", request.path_params[1]}, {"status", "pending"}}));
}

}  // namespace pushhook::admin
