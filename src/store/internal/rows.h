// Reading rows into the store's structs, once for both backends: their endpoints and events
// tables have the same columns in the same order, and only the way a column is read differs
// (a SQLite statement's column, a libpq result's row and column). `Row` is anything with
// Text(i), Int(i), Double(i) and IsNull(i) for column i. Not for use outside src/store.
#pragma once

#include <cstdint>
#include <string>

#include "model/event.h"
#include "model/secret_box.h"
#include "store/internal/counters.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "util/field_filter_json.h"

namespace pushhook::store::internal {

inline constexpr const char* kEndpointColumns =
    "id, site_id, url, description, events, payload_format, enabled, max_in_flight, rate_limit, "
    "secret, previous_secrets, created_at, updated_at, disabled_reason, disabled_at, "
    "field_filter, batch_max_events, batch_max_wait_ms";
inline constexpr int kEndpointColumnCount = 18;

// Qualified with `e.`, for joins; event_id may be NULL (no client id) and is then named after
// the row, whose id is the last column.
inline constexpr const char* kEventColumns =
    "e.action, e.cookie_id, e.cid, e.notification_title, e.reference_id, e.utm_campaign, "
    "e.utm_content, e.utm_medium, e.utm_source, e.utm_term, e.clicked_button, e.event_id, "
    "e.occurred_at, e.id";
inline constexpr int kEventColumnCount = 14;

// How an action is stored: its number in the `action` column.
inline int64_t ActionColumn(model::Action action) {
  switch (action) {
    case model::Action::kView:
      return 0;
    case model::Action::kClick:
      return 1;
    case model::Action::kDismiss:
      return 2;
  }
  return 0;
}
inline model::Action ActionFromColumn(int64_t value) {
  if (value == 2) return model::Action::kDismiss;
  return value == 0 ? model::Action::kView : model::Action::kClick;
}

inline constexpr const char* kSiteColumns =
    "id, name, ingest_key, created_at, beacons, beacon_secret, previous_beacon_secrets";

// A site from kSiteColumns starting at column `first`; its beacon secrets opened with `box`.
template <typename Row>
Site ReadSite(const Row& row, int first, const model::SecretBox& box) {
  Site s;
  s.id = row.Text(first);
  s.name = row.Text(first + 1);
  s.ingest_key = row.Text(first + 2);
  s.created_at_ms = row.Int(first + 3);
  s.beacons = ParseBeaconMode(row.Text(first + 4)).value_or(BeaconMode::kOptional);
  s.beacon_secret = box.Open(row.Text(first + 5)).value_or("");
  s.previous_beacon_secrets = OpenPreviousSecrets(row.Text(first + 6), box);
  return s;
}

// An endpoint from kEndpointColumns starting at column `first`; its secrets opened with `box`.
template <typename Row>
Endpoint ReadEndpoint(const Row& row, int first, const model::SecretBox& box) {
  Endpoint e;
  e.id = row.Text(first);
  e.site_id = row.Text(first + 1);
  e.url = row.Text(first + 2);
  e.description = row.Text(first + 3);
  e.filter = FilterFromBits(row.Int(first + 4));
  model::ParsePayloadFormat(row.Text(first + 5), &e.format);
  e.enabled = row.Int(first + 6) != 0;
  e.max_in_flight = static_cast<int>(row.Int(first + 7));
  e.rate_limit = row.Double(first + 8);
  // A secret that does not open (another key) reads as empty, and signs nothing.
  e.secret = box.Open(row.Text(first + 9)).value_or("");
  e.previous_secrets = OpenPreviousSecrets(row.Text(first + 10), box);
  e.created_at_ms = row.Int(first + 11);
  e.updated_at_ms = row.Int(first + 12);
  e.disabled_reason = row.Text(first + 13);
  e.disabled_at_ms = row.Int(first + 14);
  // Written by FieldFilter::ToJson; a row that does not read (never expected) filters nothing.
  if (auto filter = util::FieldFilterFromText(row.Text(first + 15)); filter.ok()) {
    e.field_filter = std::move(filter.value());
  }
  e.batch.max_events = static_cast<int>(row.Int(first + 16));
  e.batch.max_wait_ms = static_cast<int>(row.Int(first + 17));
  return e;
}

// An event from kEventColumns starting at column `first`.
template <typename Row>
model::Event ReadEvent(const Row& row, int first, const std::string& instance_id) {
  model::Event e;
  e.action = ActionFromColumn(row.Int(first));
  e.cookie_id = row.Text(first + 1);
  e.cid = row.Text(first + 2);
  e.notification_title = row.Text(first + 3);
  e.reference_id = row.Text(first + 4);
  e.utm_campaign = row.Text(first + 5);
  e.utm_content = row.Text(first + 6);
  e.utm_medium = row.Text(first + 7);
  e.utm_source = row.Text(first + 8);
  e.utm_term = row.Text(first + 9);
  e.clicked_button = static_cast<int>(row.Int(first + 10));
  // Events without a client id are named after their row, like messages.
  e.event_id = row.IsNull(first + 11) ? FormatEventId(instance_id, row.Int(first + 13))
                                      : std::string(row.Text(first + 11));
  e.occurred_at_ms = row.Int(first + 12);
  return e;
}

// A campaign from the columns of ListCampaignsSql starting at column `first`: cid, the
// counters, first_active, last_active, title. Its unique subscribers come from another read.
template <typename Row>
CampaignSummary ReadCampaign(const Row& row, int first) {
  CampaignSummary c;
  c.cid = row.Text(first);
  c.counters = ReadCounters(row, first + 1);
  c.first_active_ms = row.Int(first + 1 + kCounterColumnCount);
  c.last_active_ms = row.Int(first + 2 + kCounterColumnCount);
  c.title = row.Text(first + 3 + kCounterColumnCount);
  return c;
}

}  // namespace pushhook::store::internal
