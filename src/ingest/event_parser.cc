#include "ingest/event_parser.h"

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "model/beacon.h"
#include "model/decimal.h"
#include "model/json_string.h"
#include "model/rfc3339.h"
#include "model/utf8.h"
#include "util/json_handler_limits.h"
#include "util/json_text.h"

namespace pushhook::ingest {
namespace {

namespace json = boost::json;

// The latest instant FormatRfc3339Ms can print with a four-digit year: 9999-12-31T23:59:59.999Z.
constexpr int64_t kMaxOccurredAtMs = 253402300799999;

// A guess at the size of one event in a body, to reserve room for the events in one go. Real
// events run 200 to 500 bytes; guessing low costs some memory, guessing high some copying.
constexpr size_t kTypicalEventBytes = 256;

// Unknown field names are echoed back in error details up to this many bytes.
constexpr size_t kMaxEchoedKey = 64;
// Longest known field name ("notification_title"); a longer key cannot be one.
constexpr size_t kMaxKnownKey = 18;
// Number literals are kept up to this many bytes, zeros a sender pads with (1.000…0, 5000…0e-79)
// included; a longer one is refused for a campaign field, whatever its value.
constexpr size_t kMaxNumberKept = 4096;

enum class Field : uint8_t {
  kAction,
  kCookieId,
  kCid,
  kNotificationTitle,
  kReferenceId,
  kUtmCampaign,
  kUtmContent,
  kUtmMedium,
  kUtmSource,
  kUtmTerm,
  kClickedButton,
  kEventId,
  kOccurredAt,
  kBeacon,
  kUnknown,
};

// Which characters a string field refuses. Identifiers refuse every control character; free text
// refuses only NUL, which PostgreSQL text cannot hold and C-string consumers would truncate at.
enum class Chars : uint8_t { kAny, kNoNul, kNoControl };

struct FieldSpec {
  std::string_view name;
  std::string_view expected;  // completes "must be ..., not <JSON type>"
  size_t max_bytes;           // for string values; 0 when the field takes no string
  Chars chars;
};

// Indexed by Field.
constexpr FieldSpec kSpecs[] = {
    {"action", "\"View\", \"Click\" or \"Dismiss\"", 7, Chars::kAny},
    {"cookie_id", "a string", model::kMaxCookieId, Chars::kNoControl},
    {"cid", "a string or a number", model::kMaxCid, Chars::kNoControl},
    {"notification_title", "a string", model::kMaxTitle, Chars::kNoNul},
    {"reference_id", "a string or a number", model::kMaxReferenceId, Chars::kNoControl},
    {"utm_campaign", "a string", model::kMaxUtm, Chars::kNoNul},
    {"utm_content", "a string", model::kMaxUtm, Chars::kNoNul},
    {"utm_medium", "a string", model::kMaxUtm, Chars::kNoNul},
    {"utm_source", "a string", model::kMaxUtm, Chars::kNoNul},
    {"utm_term", "a string", model::kMaxUtm, Chars::kNoNul},
    {"clicked_button", "an integer", 0, Chars::kAny},
    {"event_id", "a string", model::kMaxEventId, Chars::kNoControl},
    {"occurred_at", "an RFC 3339 string or integer Unix milliseconds", 64, Chars::kAny},
    {"beacon", "a string", model::kMaxBeaconBytes, Chars::kNoControl},
};
constexpr size_t kFieldCount = static_cast<size_t>(Field::kUnknown);
static_assert(std::size(kSpecs) == kFieldCount);

constexpr std::string_view kActionMessage = "must be \"View\", \"Click\" or \"Dismiss\"";
constexpr std::string_view kTimestampMessage =
    "must be an RFC 3339 timestamp, such as 2026-11-27T20:00:00Z";
constexpr std::string_view kOccurredAtRangeMessage =
    "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z";

const FieldSpec& Spec(Field f) { return kSpecs[static_cast<size_t>(f)]; }

// Runs once per key of every event: one candidate by length and a distinguishing byte, then one
// comparison, rather than comparing against every name.
Field LookupField(std::string_view key) {
  Field f;
  switch (key.size()) {
    case 3:
      f = Field::kCid;
      break;
    case 6:
      f = key[0] == 'a' ? Field::kAction : Field::kBeacon;
      break;
    case 8:
      f = key[0] == 'u' ? Field::kUtmTerm : Field::kEventId;
      break;
    case 9:
      f = Field::kCookieId;
      break;
    case 10:
      f = key[4] == 'm' ? Field::kUtmMedium : Field::kUtmSource;
      break;
    case 11:
      f = key[0] == 'u' ? Field::kUtmContent : Field::kOccurredAt;
      break;
    case 12:
      f = key[0] == 'r' ? Field::kReferenceId : Field::kUtmCampaign;
      break;
    case 14:
      f = Field::kClickedButton;
      break;
    case 18:
      f = Field::kNotificationTitle;
      break;
    default:
      return Field::kUnknown;
  }
  return Spec(f).name == key ? f : Field::kUnknown;
}

uint32_t Bit(Field f) { return uint32_t{1} << static_cast<unsigned>(f); }

// The first kMaxEchoedKey bytes of `key`, cut before a partial UTF-8 sequence.
std::string_view Truncated(std::string_view key) {
  if (key.size() <= kMaxEchoedKey) return key;
  size_t n = kMaxEchoedKey;
  while (n > 0 && (static_cast<unsigned char>(key[n]) & 0xC0) == 0x80) --n;
  return key.substr(0, n);
}

bool IsJsonWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsBlank(std::string_view s) { return std::all_of(s.begin(), s.end(), IsJsonWhitespace); }

void ClearEvent(model::Event& e) {
  e.action = model::Action::kView;
  e.cookie_id.clear();
  e.cid.clear();
  e.notification_title.clear();
  e.reference_id.clear();
  e.utm_campaign.clear();
  e.utm_content.clear();
  e.utm_medium.clear();
  e.utm_source.clear();
  e.utm_term.clear();
  e.clicked_button = 0;
  e.event_id.clear();
  e.occurred_at_ms = 0;
  e.beacon.reset();
}

// A boost::json::basic_parser handler that validates events as the parser walks the body, so no
// DOM is built: strings go straight into the Event that will be returned. One Handler serves one
// ParseEvents call, across the documents of every NDJSON line.
class Handler : public util::UnboundedJsonHandler {
 public:
  // `expected_events` only sizes the first allocation.
  Handler(BodyKind kind, int64_t now_ms, size_t max_events, size_t expected_events,
          bool ignore_beacon)
      : kind_(kind), now_ms_(now_ms), max_events_(max_events), ignore_beacon_(ignore_beacon) {
    events_.reserve(std::min(max_events, expected_events));
  }

  bool on_document_begin(json::error_code&) {
    level_ = Level::kTop;
    skip_ = 0;
    return true;
  }
  bool on_document_end(json::error_code&) { return true; }

  bool on_array_begin(json::error_code& ec) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (level_) {
      case Level::kTop:
        if (kind_ == BodyKind::kJson) {
          level_ = Level::kArray;
          return true;
        }
        [[fallthrough]];
      case Level::kArray:
        skip_ = 1;
        return NotAnObject("an array", ec);
      case Level::kEvent:
        skip_ = 1;
        WrongType("an array");
        return true;
      case Level::kDone:
        break;
    }
    return true;
  }

  bool on_array_end(size_t, json::error_code&) {
    if (skip_ > 0) {
      --skip_;
    } else {
      level_ = Level::kDone;
    }
    return true;
  }

  bool on_object_begin(json::error_code& ec) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (level_) {
      case Level::kTop:
      case Level::kArray:
        if (!CountEvent(ec)) return false;
        BeginEvent();
        after_event_ = level_ == Level::kTop ? Level::kDone : Level::kArray;
        level_ = Level::kEvent;
        return true;
      case Level::kEvent:
        skip_ = 1;
        WrongType("an object");
        return true;
      case Level::kDone:
        break;
    }
    return true;
  }

  bool on_object_end(size_t, json::error_code&) {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    EndEvent();
    level_ = after_event_;
    return true;
  }

  bool on_key_part(json::string_view s, size_t, json::error_code&) {
    if (skip_ > 0 || event_failed_) return true;
    key_size_ += s.size();
    KeepKeyPart({s.data(), s.size()});
    return true;
  }

  bool on_key(json::string_view s, size_t, json::error_code&) {
    if (skip_ > 0) return true;
    if (!event_failed_) {
      std::string_view key(s.data(), s.size());
      const size_t size = key_size_ + s.size();
      if (key_size_ > 0) {
        KeepKeyPart(key);
        key = key_buf_;
      }
      OnKey(key, size);
    }
    key_buf_.clear();
    key_size_ = 0;
    return true;
  }

  bool on_string_part(json::string_view s, size_t, json::error_code&) {
    if (skip_ > 0 || level_ != Level::kEvent || event_failed_) return true;
    AppendText({s.data(), s.size()});
    return true;
  }

  bool on_string(json::string_view s, size_t, json::error_code& ec) {
    if (skip_ > 0) return true;
    if (level_ != Level::kEvent) return NotAnObject("a string", ec);
    if (event_failed_) return true;
    AppendText({s.data(), s.size()});
    if (!event_failed_) FinishText();
    return true;
  }

  bool on_number_part(json::string_view s, json::error_code&) {
    if (skip_ > 0 || level_ != Level::kEvent || event_failed_) return true;
    number_size_ += s.size();
    if (number_buf_.size() < kMaxNumberKept) {
      number_buf_.append(s.data(), std::min(s.size(), kMaxNumberKept - number_buf_.size()));
    }
    return true;
  }

  bool on_int64(int64_t i, json::string_view s, json::error_code& ec) {
    return OnNumber(NumberKind::kInt64, i, s, ec);
  }
  bool on_uint64(uint64_t, json::string_view s, json::error_code& ec) {
    return OnNumber(NumberKind::kUint64, 0, s, ec);
  }
  bool on_double(double, json::string_view s, json::error_code& ec) {
    return OnNumber(NumberKind::kDouble, 0, s, ec);
  }

  bool on_bool(bool, json::error_code& ec) { return OnScalar("a boolean", ec); }
  bool on_null(json::error_code& ec) { return OnScalar("null", ec); }

  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  bool too_many() const { return too_many_; }
  size_t total() const { return total_; }
  size_t bad() const { return bad_; }
  std::vector<model::Event>& events() { return events_; }
  std::vector<FieldError>& details() { return details_; }

 private:
  // Where the parser is: at the value a document holds, among the elements of the top-level
  // array, or inside an event object.
  enum class Level : uint8_t { kTop, kArray, kEvent, kDone };
  enum class NumberKind : uint8_t { kInt64, kUint64, kDouble };

  // Keeps what of a key split in parts is needed to look it up or echo it back.
  void KeepKeyPart(std::string_view s) {
    constexpr size_t kKept = kMaxEchoedKey + 4;  // + 4: room to cut on a character boundary
    if (key_buf_.size() < kKept) key_buf_.append(s.substr(0, kKept - key_buf_.size()));
  }

  // A new element where an event belongs. Fails the parse once there are too many.
  bool CountEvent(json::error_code& ec) {
    if (total_ == max_events_) {
      too_many_ = true;
      ec = json::error::exception;
      return false;
    }
    index_ = total_++;
    event_failed_ = false;
    return true;
  }

  bool NotAnObject(std::string_view actual, json::error_code& ec) {
    const bool top_of_json = level_ == Level::kTop && kind_ == BodyKind::kJson;
    if (!CountEvent(ec)) return false;
    std::string message(top_of_json ? "must be an object or an array of objects, not "
                                    : "must be an object, not ");
    message.append(actual);
    Fail("", std::move(message));
    return true;
  }

  void BeginEvent() {
    seen_ = 0;
    field_ = Field::kUnknown;
    target_ = nullptr;
    ignoring_ = false;
    if (storing_) {
      event_ = &events_.emplace_back();
    } else {
      ClearEvent(scratch_);
      event_ = &scratch_;
    }
  }

  void EndEvent() {
    if (event_failed_) return;
    for (Field f : {Field::kAction, Field::kCookieId, Field::kCid}) {
      if ((seen_ & Bit(f)) == 0) return Fail(Spec(f).name, "is required");
    }
    if (event_->action != model::Action::kClick && event_->clicked_button != 0) {
      return Fail(Spec(Field::kClickedButton).name, event_->action == model::Action::kView
                                                        ? "must be 0 for a View"
                                                        : "must be 0 for a Dismiss");
    }
    if ((seen_ & Bit(Field::kOccurredAt)) == 0) event_->occurred_at_ms = now_ms_;
  }

  // Records the first problem of the current event. From the first bad event on, nothing is
  // kept: the batch is refused, and later events are only checked, in a reused scratch Event.
  void Fail(std::string_view field, std::string message) {
    if (event_failed_) return;
    event_failed_ = true;
    ++bad_;
    if (details_.size() < kMaxErrorDetails) {
      details_.push_back({index_, std::string(field), std::move(message)});
    }
    if (storing_) {
      storing_ = false;
      events_.clear();
      ClearEvent(scratch_);
      event_ = &scratch_;
    }
    target_ = nullptr;
  }

  void WrongType(std::string_view actual) {
    if (event_failed_ || ignoring_) return;
    const FieldSpec& spec = Spec(field_);
    std::string message("must be ");
    message.append(spec.expected).append(", not ").append(actual);
    Fail(spec.name, std::move(message));
  }

  void OnKey(std::string_view key, size_t size) {
    field_ = size <= kMaxKnownKey ? LookupField(key) : Field::kUnknown;
    if (field_ == Field::kUnknown) return Fail(Truncated(key), "unknown field");
    // Beacons off: the value goes nowhere and fails nothing, whatever it is and however often
    // the key comes (AppendText and WrongType pass it by).
    ignoring_ = field_ == Field::kBeacon && ignore_beacon_;
    if (ignoring_) {
      target_ = nullptr;
      return;
    }
    if ((seen_ & Bit(field_)) != 0) return Fail(Spec(field_).name, "appears more than once");
    seen_ |= Bit(field_);
    text_size_ = 0;
    number_size_ = 0;
    number_buf_.clear();
    model::Event& e = *event_;
    switch (field_) {
      case Field::kAction:
      case Field::kOccurredAt:
        text_.clear();
        target_ = &text_;
        break;
      case Field::kCookieId:
        target_ = &e.cookie_id;
        break;
      case Field::kCid:
        target_ = &e.cid;
        break;
      case Field::kNotificationTitle:
        target_ = &e.notification_title;
        break;
      case Field::kReferenceId:
        target_ = &e.reference_id;
        break;
      case Field::kUtmCampaign:
        target_ = &e.utm_campaign;
        break;
      case Field::kUtmContent:
        target_ = &e.utm_content;
        break;
      case Field::kUtmMedium:
        target_ = &e.utm_medium;
        break;
      case Field::kUtmSource:
        target_ = &e.utm_source;
        break;
      case Field::kUtmTerm:
        target_ = &e.utm_term;
        break;
      case Field::kEventId:
        target_ = &e.event_id;
        break;
      case Field::kBeacon:
        target_ = &e.beacon.emplace();
        break;
      case Field::kClickedButton:
      case Field::kUnknown:
        target_ = nullptr;
        break;
    }
  }

  // One piece of a string value of the current field (parts arrive when the parser splits one).
  void AppendText(std::string_view s) {
    if (ignoring_) return;
    if (target_ == nullptr) return WrongType("a string");
    const FieldSpec& spec = Spec(field_);
    if (text_size_ + s.size() > spec.max_bytes) {
      switch (field_) {
        case Field::kAction:
          return Fail(spec.name, std::string(kActionMessage));
        case Field::kOccurredAt:
          return Fail(spec.name, std::string(kTimestampMessage));
        default:
          return Fail(spec.name, "must be at most " + std::to_string(spec.max_bytes) + " bytes");
      }
    }
    if (spec.chars == Chars::kNoControl && model::HasControlCharacter(s)) {
      return Fail(spec.name, "must not contain control characters");
    }
    if (spec.chars == Chars::kNoNul && std::memchr(s.data(), '\0', s.size()) != nullptr) {
      return Fail(spec.name, "must not contain NUL characters");
    }
    target_->append(s);
    text_size_ += s.size();
  }

  void FinishText() {
    const FieldSpec& spec = Spec(field_);
    switch (field_) {
      case Field::kAction:
        if (text_ == "View") {
          event_->action = model::Action::kView;
        } else if (text_ == "Click") {
          event_->action = model::Action::kClick;
        } else if (text_ == "Dismiss") {
          event_->action = model::Action::kDismiss;
        } else {
          Fail(spec.name, std::string(kActionMessage));
        }
        break;
      case Field::kCookieId:
      case Field::kCid:
      case Field::kEventId:
        if (text_size_ == 0) Fail(spec.name, "must not be empty");
        break;
      case Field::kOccurredAt: {
        int64_t ms = 0;
        if (model::ParseRfc3339(text_, &ms)) {
          SetOccurredAt(ms);
        } else {
          Fail(spec.name, std::string(kTimestampMessage));
        }
        break;
      }
      default:
        break;
    }
  }

  void SetOccurredAt(int64_t ms) {
    if (ms < 0 || ms > kMaxOccurredAtMs) {
      return Fail(Spec(Field::kOccurredAt).name, std::string(kOccurredAtRangeMessage));
    }
    event_->occurred_at_ms = ms;
  }

  bool OnNumber(NumberKind kind, int64_t value, json::string_view last, json::error_code& ec) {
    if (skip_ > 0) return true;
    if (level_ != Level::kEvent) return NotAnObject("a number", ec);
    if (event_failed_) return true;
    const FieldSpec& spec = Spec(field_);
    switch (field_) {
      case Field::kCid:
      case Field::kReferenceId: {
        // The literal is converted digit by digit, never through a double: a campaign id of
        // twenty digits stays the one the sender wrote.
        std::string_view literal(last.data(), last.size());
        const size_t size = number_size_ + last.size();
        if (number_size_ > 0) {
          if (number_buf_.size() < kMaxNumberKept) {
            number_buf_.append(literal.substr(0, kMaxNumberKept - number_buf_.size()));
          }
          literal = number_buf_;
        }
        if (size > kMaxNumberKept) {
          Fail(spec.name,
               "is a number literal of more than " + std::to_string(kMaxNumberKept) + " bytes");
        } else if (auto text = model::DecimalString(literal, spec.max_bytes)) {
          *target_ = std::move(*text);
        } else {
          Fail(spec.name,
               "must be at most " + std::to_string(spec.max_bytes) + " bytes as a decimal string");
        }
        break;
      }
      case Field::kClickedButton:
        if (kind == NumberKind::kInt64 && value >= 0 && value <= 2) {
          event_->clicked_button = static_cast<int>(value);
        } else {
          // 1.0 may have the right value, but is typed strictly as everything else.
          Fail(spec.name,
               kind == NumberKind::kDouble ? "must be the integer 0, 1 or 2" : "must be 0, 1 or 2");
        }
        break;
      case Field::kOccurredAt:
        if (kind == NumberKind::kDouble) {
          Fail(spec.name, "must be integer Unix milliseconds or an RFC 3339 string");
        } else if (kind == NumberKind::kUint64) {
          Fail(spec.name, std::string(kOccurredAtRangeMessage));
        } else {
          SetOccurredAt(value);
        }
        break;
      default:
        WrongType("a number");
        break;
    }
    return true;
  }

  bool OnScalar(std::string_view actual, json::error_code& ec) {
    if (skip_ > 0) return true;
    if (level_ != Level::kEvent) return NotAnObject(actual, ec);
    WrongType(actual);
    return true;
  }

  const BodyKind kind_;
  const int64_t now_ms_;
  const size_t max_events_;
  const bool ignore_beacon_;

  // The batch.
  std::vector<model::Event> events_;
  std::vector<FieldError> details_;
  size_t total_ = 0;     // elements seen where events belong
  size_t bad_ = 0;       // of which invalid
  bool storing_ = true;  // no invalid event yet, so events_ is being filled
  bool too_many_ = false;

  // The position in the current document.
  Level level_ = Level::kTop;
  Level after_event_ = Level::kDone;
  size_t skip_ = 0;        // > 0 inside a value that is ignored: its container nesting depth
  bool ignoring_ = false;  // the current key's value is ignored (ignore_beacon_)

  // The current event and field.
  size_t index_ = 0;
  bool event_failed_ = false;
  uint32_t seen_ = 0;  // Bit(field) of each field given
  model::Event* event_ = nullptr;
  model::Event scratch_;
  Field field_ = Field::kUnknown;
  std::string* target_ = nullptr;  // where the current string value goes
  size_t text_size_ = 0;
  std::string text_;  // the values of action and occurred_at, which are not stored as given
  std::string key_buf_;
  size_t key_size_ = 0;  // bytes of the current key seen in parts
  std::string number_buf_;
  size_t number_size_ = 0;  // bytes of the current number seen in parts
};

using Parser = json::basic_parser<Handler>;

json::parse_options Options(const IngestLimits& limits) {
  json::parse_options options;
  options.max_depth = limits.max_depth;
  return options;
}

// Parses one JSON document that must fill `text`, which starts at byte `base` of the body.
// Returns the byte of the body where parsing failed, if it did.
std::optional<size_t> ParseDocument(Parser& parser, size_t base, std::string_view text,
                                    json::error_code& ec) {
  size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec) return base + used;
  // The parser stops after the document's value; only whitespace may follow it.
  while (used < text.size() && IsJsonWhitespace(text[used])) ++used;
  if (used == text.size()) return std::nullopt;
  ec = json::error::extra_data;
  return base + used;
}

ParseError InvalidJson(json::error_code ec, std::string_view body, size_t offset,
                       std::optional<size_t> line, const IngestLimits& limits) {
  std::string message = "body is not valid JSON at byte " + std::to_string(offset);
  if (line) message += " (line " + std::to_string(*line) + ")";
  message += ": ";
  message += util::DescribeJsonError(ec, body, offset, limits.max_depth);
  return {std::string(kInvalidJson), std::move(message), offset, {}};
}

ParseError NoEvents() { return {std::string(kInvalidEvent), "body holds no events", {}, {}}; }

// An empty JSON body is no JSON at all (DESIGN section 2): invalid_json, at the byte where it
// ends. An empty array is JSON holding no events (NoEvents).
ParseError EmptyJson(std::string_view body) {
  return {std::string(kInvalidJson),
          "body is not valid JSON at byte " + std::to_string(body.size()) + ": " +
              (body.empty() ? "the body is empty" : "the body holds only whitespace") +
              "; send an event object or an array of them",
          body.size(),
          {}};
}

ParseError TooManyEvents(const IngestLimits& limits) {
  const std::string n = std::to_string(limits.max_events);
  return {std::string(kTooManyEvents),
          "body holds more than " + n + (limits.max_events == 1 ? " event" : " events") +
              "; send at most " + n + " per request",
          {},
          {}};
}

std::variant<ParsedBatch, ParseError> Result(Handler& h, const IngestLimits& limits) {
  if (h.too_many()) return TooManyEvents(limits);
  if (h.total() == 0) return NoEvents();
  if (h.bad() == 0) return ParsedBatch{std::move(h.events())};
  std::string message;
  if (h.total() == 1) {
    message = "the event is invalid; it was not stored";
  } else {
    message = std::to_string(h.bad()) + " of " + std::to_string(h.total()) + " events " +
              (h.bad() == 1 ? "is" : "are") + " invalid; none was stored";
  }
  return ParseError{std::string(kInvalidEvent), std::move(message), {}, std::move(h.details())};
}

}  // namespace

std::string ParseError::ToJson() const {
  std::string out;
  out.reserve(64 + message.size() + details.size() * 64);
  out.append("{\"error\":{\"code\":");
  model::AppendJsonString(out, code);
  out.append(",\"message\":");
  model::AppendJsonString(out, message);
  if (offset) out.append(",\"offset\":").append(std::to_string(*offset));
  if (!details.empty() || code == kInvalidEvent) {
    out.append(",\"details\":[");
    for (size_t i = 0; i < details.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append("{\"index\":").append(std::to_string(details[i].index)).append(",\"field\":");
      model::AppendJsonString(out, details[i].field);
      out.append(",\"message\":");
      model::AppendJsonString(out, details[i].message);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.append("}}");
  return out;
}

std::variant<ParsedBatch, ParseError> ParseEvents(std::string_view body, BodyKind kind,
                                                  int64_t now_ms, const IngestLimits& limits) {
  Parser parser(Options(limits), kind, now_ms, limits.max_events,
                body.size() / kTypicalEventBytes + 1, limits.ignore_beacon);
  Handler& handler = parser.handler();
  if (kind == BodyKind::kJson) {
    if (IsBlank(body)) return EmptyJson(body);
    json::error_code ec;
    const std::optional<size_t> failed_at = ParseDocument(parser, 0, body, ec);
    if (handler.too_many()) return TooManyEvents(limits);
    if (failed_at) return InvalidJson(ec, body, *failed_at, std::nullopt, limits);
    return Result(handler, limits);
  }
  size_t line_number = 0;
  for (size_t start = 0; start < body.size();) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    ++line_number;
    const std::string_view line = body.substr(start, end - start);
    if (!IsBlank(line)) {
      parser.reset();
      json::error_code ec;
      const std::optional<size_t> failed_at = ParseDocument(parser, start, line, ec);
      if (handler.too_many()) return TooManyEvents(limits);
      if (failed_at) return InvalidJson(ec, body, *failed_at, line_number, limits);
    }
    start = end + 1;
  }
  return Result(handler, limits);
}

}  // namespace pushhook::ingest
