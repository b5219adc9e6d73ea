#include "model/aggregates.h"

#include <algorithm>

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

void AggregateBatch::Add(const Event& event, int64_t received_ms) {
  MinuteKey minute{event.cid, event.reference_id, BucketStart(event.occurred_at_ms, kMinuteMs)};
  for (int f = 0; f < kUtmFields; ++f) {
    // An absent UTM value ("") is a group of its own, so that groups add up to the totals.
    utm[UtmKey{minute, f, UtmValue(event, static_cast<UtmField>(f))}].Add(event);
  }
  subscribers[HourKey{event.cid, event.reference_id, BucketStart(event.occurred_at_ms, kHourMs)}]
      .Add(event.cookie_id);
  CampaignDelta& campaign = campaigns[event.cid];
  campaign.counters.Add(event);
  campaign.first_active_ms =
      campaign.first_active_ms == 0 ? received_ms : std::min(campaign.first_active_ms, received_ms);
  campaign.last_active_ms = std::max(campaign.last_active_ms, received_ms);
  if (!event.notification_title.empty() && received_ms >= campaign.title_at_ms) {
    campaign.title = event.notification_title;
    campaign.title_at_ms = received_ms;
  }
  minutes[std::move(minute)].Add(event);
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
