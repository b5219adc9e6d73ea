// The domain at the bottom of pushhook: a notification event as DESIGN section 1 defines it, and
// the per-endpoint choices that shape its webhook payload. Plain values, no behaviour that reaches
// outside this folder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pushhook::model {

// What the subscriber did: saw the notification, clicked it (or one of its buttons), or closed
// it without a click (DESIGN section 1).
enum class Action { kView, kClick, kDismiss };

std::string_view ActionName(Action action);

// One view or click as stored and delivered. Every string is valid UTF-8 and within the limits
// of DESIGN section 1 once it has passed ingest validation.
struct Event {
  Action action = Action::kView;
  std::string cookie_id;
  std::string cid;
  std::string notification_title;
  std::string reference_id;
  std::string utm_campaign;
  std::string utm_content;
  std::string utm_medium;
  std::string utm_source;
  std::string utm_term;
  int clicked_button = 0;
  // The client's idempotency key, or one the server made when the client sent none.
  std::string event_id;
  // When the event happened, Unix milliseconds.
  int64_t occurred_at_ms = 0;
  // The signed beacon token the browser sent (DESIGN section 2a), nullopt when it sent none: ""
  // is a token too, and a bad one. Checked on ingest, then dropped: never stored, never in a
  // payload.
  std::optional<std::string> beacon;
  // What counts a beaconed event once (BeaconReplayKey), "" for an event without a token.
  // Stored beside event_id with an index of its own, never in a payload.
  std::string replay_key;
};

enum class PayloadFormat { kIzooto, kExtended };

std::string_view PayloadFormatName(PayloadFormat format);
bool ParsePayloadFormat(std::string_view name, PayloadFormat* out);

// The actions an endpoint takes: by default View and Click, so that a receiver written for the
// original payload never meets a Dismiss.
struct EventFilter {
  bool view = true;
  bool click = true;
  bool dismiss = false;
  bool Accepts(Action a) const {
    switch (a) {
      case Action::kView:
        return view;
      case Action::kClick:
        return click;
      case Action::kDismiss:
        return dismiss;
    }
    return false;
  }
  bool operator==(const EventFilter&) const = default;
};

// Field limits from DESIGN section 1, in bytes.
inline constexpr size_t kMaxCookieId = 128;
inline constexpr size_t kMaxCid = 64;
inline constexpr size_t kMaxTitle = 1024;
inline constexpr size_t kMaxReferenceId = 64;
inline constexpr size_t kMaxUtm = 256;
inline constexpr size_t kMaxEventId = 128;

}  // namespace pushhook::model
