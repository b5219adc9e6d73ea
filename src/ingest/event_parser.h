// Parsing and validation of an ingest request body (DESIGN sections 1 and 2) into events: strict
// typing, all-or-nothing, and errors a client can act on. ParseEvents is a pure function of its
// arguments: it keeps no state and may be called from any number of threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/event.h"

namespace pushhook::ingest {

enum class BodyKind {
  kJson,    // one event object, or an array of event objects
  kNdjson,  // one event object per line; blank lines are ignored, "\r\n" line ends are fine
};

struct IngestLimits {
  // More events than this in one body is answered with kTooManyEvents (HTTP 413).
  size_t max_events = 10000;
  // Containers nested deeper than this are invalid JSON. An array of events is 2 deep.
  size_t max_depth = 16;
  // The site's beacons are off (DESIGN 2a): a `beacon` field is ignored, whatever it holds,
  // rather than checked as a string.
  bool ignore_beacon = false;
};

// The codes of ParseError, as they appear on the wire.
inline constexpr std::string_view kInvalidJson = "invalid_json";       // 400: not JSON at all
inline constexpr std::string_view kInvalidEvent = "invalid_event";     // 400: JSON, but not events
inline constexpr std::string_view kTooManyEvents = "too_many_events";  // 413

// At most this many FieldErrors are reported, however many events are bad.
inline constexpr size_t kMaxErrorDetails = 100;

// The first problem of one bad event. `field` is "" when the element itself is not an object.
struct FieldError {
  size_t index;  // 0-based position of the event in the array, or among NDJSON's non-blank lines
  std::string field;
  std::string message;  // completes the field name: "must be at most 128 bytes"
};

// Why a body was refused; nothing of it was stored.
//   invalid_json:    `offset` is the byte of the whole body where parsing failed.
//   invalid_event:   `details` holds one FieldError per bad event, in order, at most
//                    kMaxErrorDetails; it is empty when the body holds no events at all.
//   too_many_events: more than IngestLimits::max_events events.
struct ParseError {
  std::string code;
  std::string message;
  std::optional<size_t> offset;
  std::vector<FieldError> details;

  // {"error":{"code":..,"message":..,"offset":N,"details":[{"index":N,"field":..,"message":..}]}}
  // "offset" appears when set; "details" appears for invalid_event (possibly empty).
  std::string ToJson() const;
};

// Events in body order, each valid per DESIGN section 1. `event_id` is "" when the client sent
// none; `occurred_at_ms` is the arrival time when the client sent none.
struct ParsedBatch {
  std::vector<model::Event> events;
};

// Parses and validates a whole body. `now_ms` (Unix milliseconds) is the arrival time given to
// events without occurred_at. Either every event is valid and returned, or none is.
std::variant<ParsedBatch, ParseError> ParseEvents(std::string_view body, BodyKind kind,
                                                  int64_t now_ms, const IngestLimits& limits = {});

}  // namespace pushhook::ingest
