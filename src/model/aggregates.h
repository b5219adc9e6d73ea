// Campaign statistics as deltas (DESIGN section 6): the events of one transaction folded into
// counters per site x cid x reference_id x minute, per UTM value, per campaign, and hourly
// unique-subscriber sketches. A store adds batches to its tables in a transaction that stores
// events (PostgreSQL: the batch's own; SQLite: a later one, having merged the batches of the
// transactions in between), so the statistics never drift from the events. A plain value.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "model/event.h"
#include "model/hyperloglog.h"

namespace pushhook::model {

inline constexpr int64_t kMinuteMs = 60'000;
inline constexpr int64_t kHourMs = 3'600'000;
inline constexpr int64_t kDayMs = 86'400'000;

// The UTM fields, in the order their dimension numbers follow.
enum class UtmField { kSource = 0, kMedium = 1, kCampaign = 2, kContent = 3, kTerm = 4 };
inline constexpr int kUtmFields = 5;
std::string_view UtmFieldName(UtmField field);
const std::string& UtmValue(const Event& event, UtmField field);

struct Counters {
  int64_t views = 0;
  int64_t clicks = 0;
  std::array<int64_t, 3> clicks_by_button{0, 0, 0};
  int64_t dismissals = 0;

  void Add(const Event& event);
  void Add(const Counters& other);
};

struct MinuteKey {
  std::string cid;
  std::string reference_id;
  int64_t minute_ms = 0;
  auto operator<=>(const MinuteKey&) const = default;
};

struct UtmKey {
  MinuteKey minute;
  int field = 0;  // UtmField
  std::string value;
  auto operator<=>(const UtmKey&) const = default;
};

struct HourKey {
  std::string cid;
  std::string reference_id;
  int64_t hour_ms = 0;
  auto operator<=>(const HourKey&) const = default;
};

// The keys' fields in their order, as views: what the maps below are ordered by, and what
// AggregateBatch::Add looks an event up with, so that an event folded into an entry that
// exists copies no string (a key of the map's own is made only for a new entry).
using MinuteFields = std::tuple<std::string_view, std::string_view, int64_t>;
using UtmFields = std::tuple<std::string_view, std::string_view, int64_t, int, std::string_view>;
using HourFields = std::tuple<std::string_view, std::string_view, int64_t>;
inline MinuteFields Fields(const MinuteKey& k) { return {k.cid, k.reference_id, k.minute_ms}; }
inline UtmFields Fields(const UtmKey& k) {
  return {k.minute.cid, k.minute.reference_id, k.minute.minute_ms, k.field, k.value};
}
inline HourFields Fields(const HourKey& k) { return {k.cid, k.reference_id, k.hour_ms}; }
template <typename... T>
const std::tuple<T...>& Fields(const std::tuple<T...>& fields) {
  return fields;
}

// Orders keys as their own operator<=> does, and compares them with their fields' views.
struct ByFields {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return (Fields(a) <=> Fields(b)) < 0;
  }
};

struct CampaignDelta {
  Counters counters;
  int64_t first_active_ms = 0;  // the earliest arrival folded in; 0 before the first
  int64_t last_active_ms = 0;
  // The notification title of the latest event folded in that had one: what the campaign is
  // called in lists. An event without a title leaves it as it was.
  std::string title;
  int64_t title_at_ms = 0;
};

struct AggregateBatch {
  std::map<MinuteKey, Counters, ByFields> minutes;
  std::map<UtmKey, Counters, ByFields> utm;
  std::map<HourKey, HyperLogLog, ByFields> subscribers;
  std::map<std::string, CampaignDelta> campaigns;  // by cid

  // Folds in one stored (not duplicate) event that arrived at `received_ms`.
  void Add(const Event& event, int64_t received_ms);
  // Folds in another batch: the sum of the two, as if both batches' events had been added here.
  void Merge(const AggregateBatch& other);
  // Each campaign's subscribers in this batch: the union of its hourly sketches.
  std::map<std::string, HyperLogLog> CampaignSubscribers() const;
  bool empty() const { return minutes.empty(); }
};

// The start of the bucket of `bucket_ms` width that holds `t_ms` (UTC).
inline int64_t BucketStart(int64_t t_ms, int64_t bucket_ms) {
  const int64_t r = t_ms % bucket_ms;
  return t_ms - (r < 0 ? r + bucket_ms : r);
}

}  // namespace pushhook::model
