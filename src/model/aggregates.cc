#include "model/aggregates.h"

#include <algorithm>
#include <tuple>

namespace pushhook::model {

std::string_view UtmFieldName(UtmField field) {
  switch (field) {
    case UtmField::kSource:
      return "utm_source";
    case UtmField::kMedium:
      return "utm_medium";
    case UtmField::kCampaign:
      return "utm_campaign";
    case UtmField::kContent:
      return "utm_content";
    case UtmField::kTerm:
      return "utm_term";
  }
  return "utm_source";
}

const std::string& UtmValue(const Event& event, UtmField field) {
  switch (field) {
    case UtmField::kSource:
      return event.utm_source;
    case UtmField::kMedium:
      return event.utm_medium;
    case UtmField::kCampaign:
      return event.utm_campaign;
    case UtmField::kContent:
      return event.utm_content;
    case UtmField::kTerm:
      return event.utm_term;
  }
  return event.utm_source;
}

void Counters::Add(const Event& event) {
  if (event.action == Action::kView) {
    ++views;
  } else if (event.action == Action::kDismiss) {
    ++dismissals;
  } else {
    ++clicks;
    if (event.clicked_button >= 0 && event.clicked_button <= 2) {
      ++clicks_by_button[static_cast<size_t>(event.clicked_button)];
    }
  }
}

void Counters::Add(const Counters& other) {
  views += other.views;
  clicks += other.clicks;
  dismissals += other.dismissals;
  for (size_t i = 0; i < clicks_by_button.size(); ++i) {
    clicks_by_button[i] += other.clicks_by_button[i];
  }
}

namespace {

// The entry of `map` whose key has `fields`, made with the key `make_key()` if there is none.
template <typename Map, typename FieldsOfKey, typename MakeKey>
typename Map::mapped_type& EntryFor(Map& map, const FieldsOfKey& fields, const MakeKey& make_key) {
  auto it = map.lower_bound(fields);
  if (it == map.end() || map.key_comp()(fields, it->first)) {
    it = map.emplace_hint(it, std::piecewise_construct, std::forward_as_tuple(make_key()),
                          std::forward_as_tuple());
  }
  return it->second;
}

}  // namespace

void AggregateBatch::Add(const Event& event, int64_t received_ms) {
  const std::string_view cid = event.cid;
  const std::string_view reference_id = event.reference_id;
  const int64_t minute_ms = BucketStart(event.occurred_at_ms, kMinuteMs);
  const auto minute_key = [&] { return MinuteKey{event.cid, event.reference_id, minute_ms}; };
  EntryFor(minutes, MinuteFields(cid, reference_id, minute_ms), minute_key).Add(event);
  for (int f = 0; f < kUtmFields; ++f) {
    // An absent UTM value ("") is a group of its own, so that groups add up to the totals.
    const std::string& value = UtmValue(event, static_cast<UtmField>(f));
    EntryFor(utm, UtmFields(cid, reference_id, minute_ms, f, value), [&] {
      return UtmKey{minute_key(), f, value};
    }).Add(event);
  }
  const int64_t hour_ms = BucketStart(event.occurred_at_ms, kHourMs);
  EntryFor(subscribers, HourFields(cid, reference_id, hour_ms), [&] {
    return HourKey{event.cid, event.reference_id, hour_ms};
  }).Add(event.cookie_id);
  CampaignDelta& campaign = campaigns[event.cid];
  campaign.counters.Add(event);
  campaign.first_active_ms =
      campaign.first_active_ms == 0 ? received_ms : std::min(campaign.first_active_ms, received_ms);
  campaign.last_active_ms = std::max(campaign.last_active_ms, received_ms);
  if (!event.notification_title.empty() && received_ms >= campaign.title_at_ms) {
    campaign.title = event.notification_title;
    campaign.title_at_ms = received_ms;
  }
}

std::map<std::string, HyperLogLog> AggregateBatch::CampaignSubscribers() const {
  std::map<std::string, HyperLogLog> out;
  for (const auto& [key, sketch] : subscribers) out[key.cid].Merge(sketch);
  return out;
}

void AggregateBatch::Merge(const AggregateBatch& other) {
  for (const auto& [key, n] : other.minutes) minutes[key].Add(n);
  for (const auto& [key, n] : other.utm) utm[key].Add(n);
  for (const auto& [key, sketch] : other.subscribers) subscribers[key].Merge(sketch);
  for (const auto& [cid, delta] : other.campaigns) {
    CampaignDelta& mine = campaigns[cid];
    mine.counters.Add(delta.counters);
    if (delta.first_active_ms != 0) {
      mine.first_active_ms = mine.first_active_ms == 0
                                 ? delta.first_active_ms
                                 : std::min(mine.first_active_ms, delta.first_active_ms);
    }
    mine.last_active_ms = std::max(mine.last_active_ms, delta.last_active_ms);
    if (!delta.title.empty() && delta.title_at_ms >= mine.title_at_ms) {
      mine.title = delta.title;
      mine.title_at_ms = delta.title_at_ms;
    }
  }
}

}  // namespace pushhook::model
