// libFuzzer target for ingest::ParseEvents, with both body kinds. Beyond "no crash, no sanitizer
// report", it checks the parser against boost::json::parse (a body is invalid_json exactly when
// the reference parser refuses it) and that every accepted event is within DESIGN section 1.
// Built and run by scripts/fuzz (fuzz/README.md).
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "ingest/event_parser.h"
#include "model/payload.h"

namespace {

using pushhook::ingest::BodyKind;
using pushhook::ingest::IngestLimits;
using pushhook::ingest::ParsedBatch;
using pushhook::ingest::ParseError;

void Check(bool condition) {
  if (!condition) std::abort();
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

void CheckEvents(const ParsedBatch& batch, const IngestLimits& limits) {
  namespace model = pushhook::model;
  Check(!batch.events.empty() && batch.events.size() <= limits.max_events);
  for (const model::Event& e : batch.events) {
    Check(!e.cookie_id.empty() && e.cookie_id.size() <= model::kMaxCookieId);
    Check(!e.cid.empty() && e.cid.size() <= model::kMaxCid);
    Check(e.notification_title.size() <= model::kMaxTitle);
    Check(e.reference_id.size() <= model::kMaxReferenceId);
    Check(e.utm_campaign.size() <= model::kMaxUtm && e.utm_content.size() <= model::kMaxUtm &&
          e.utm_medium.size() <= model::kMaxUtm && e.utm_source.size() <= model::kMaxUtm &&
          e.utm_term.size() <= model::kMaxUtm);
    Check(e.event_id.size() <= model::kMaxEventId);
    Check(e.clicked_button >= 0 && e.clicked_button <= 2);
    Check(e.action == model::Action::kClick || e.clicked_button == 0);
    Check(e.occurred_at_ms >= 0);
    // The payload of an accepted event is valid JSON, hence every string is valid UTF-8.
    boost::json::error_code ec;
    boost::json::parse(model::Payload(e, model::PayloadFormat::kExtended, "site"), ec);
    Check(!ec);
  }
}

// Every field of an event but its beacon, which no payload carries.
std::string Extended(const pushhook::model::Event& e) {
  return pushhook::model::Payload(e, pushhook::model::PayloadFormat::kExtended, "site");
}

void CheckError(const ParseError& error) {
  Check(error.details.size() <= pushhook::ingest::kMaxErrorDetails);
  Check(error.code != "invalid_json" || error.offset.has_value());
  boost::json::error_code ec;
  boost::json::parse(error.ToJson(), ec);
  Check(!ec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  IngestLimits limits;
  limits.max_events = 50;
  IngestLimits beacons_off = limits;
  beacons_off.ignore_beacon = true;
  for (BodyKind kind : {BodyKind::kJson, BodyKind::kNdjson}) {
    auto result = pushhook::ingest::ParseEvents(body, kind, 1764273600000, limits);
    // With the beacon ignored, a body accepted as it is still is, with the same events and no
    // beacon kept; whatever is accepted is within DESIGN section 1 all the same.
    auto ignored = pushhook::ingest::ParseEvents(body, kind, 1764273600000, beacons_off);
    if (const auto* batch = std::get_if<ParsedBatch>(&ignored)) {
      CheckEvents(*batch, beacons_off);
      for (const auto& e : batch->events) Check(!e.beacon.has_value());
    } else {
      CheckError(std::get<ParseError>(ignored));
    }
    if (const auto* batch = std::get_if<ParsedBatch>(&result)) {
      CheckEvents(*batch, limits);
      const auto* same = std::get_if<ParsedBatch>(&ignored);
      Check(same != nullptr && same->events.size() == batch->events.size());
      for (size_t i = 0; i < batch->events.size(); ++i) {
        Check(Extended(same->events[i]) == Extended(batch->events[i]));
      }
    } else {
      const ParseError& error = std::get<ParseError>(result);
      CheckError(error);
      if (kind == BodyKind::kJson && error.code != "too_many_events" && !IsBlank(body)) {
        boost::json::parse_options options;
        options.max_depth = limits.max_depth;
        boost::json::error_code ec;
        boost::json::parse(body, ec, {}, options);
        Check((error.code == "invalid_json") == static_cast<bool>(ec));
      }
    }
  }
  return 0;
}
