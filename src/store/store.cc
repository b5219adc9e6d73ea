#include "store/store.h"

#include <charconv>

#include "store/store_internal.h"

namespace pushhook::store {

std::string FormatMessageId(const std::string& instance_id, int64_t row_id) {
  return "msg_" + instance_id + std::to_string(row_id);
}

std::string FormatEventId(const std::string& instance_id, int64_t row_id) {
  return "evt_" + instance_id + std::to_string(row_id);
}

std::optional<int64_t> ParseMessageId(const std::string& instance_id, std::string_view text) {
  const std::string prefix = "msg_" + instance_id;
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  int64_t row = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), row);
  if (ec != std::errc() || end != text.data() + text.size() || row <= 0) return std::nullopt;
  return row;
}

namespace internal {

void ApplyPatch(const EndpointPatch& patch, int64_t now_ms, Endpoint* e) {
  if (patch.url) e->url = *patch.url;
  if (patch.description) e->description = *patch.description;
  if (patch.filter) e->filter = *patch.filter;
  if (patch.format) e->format = *patch.format;
  if (patch.enabled) e->enabled = *patch.enabled;
  if (patch.max_in_flight) e->max_in_flight = *patch.max_in_flight;
  if (patch.rate_limit) e->rate_limit = *patch.rate_limit;
  if (patch.secret) e->secret = *patch.secret;
  if (patch.previous_secret) e->previous_secret = *patch.previous_secret;
  if (patch.previous_secret_expires_ms) {
    e->previous_secret_expires_ms = *patch.previous_secret_expires_ms;
  }
  e->updated_at_ms = now_ms;
}

std::vector<StatsRow> ButtonGroups(const model::Counters& totals) {
  std::vector<StatsRow> groups;
  for (size_t b = 0; b < totals.clicks_by_button.size(); ++b) {
    model::Counters n;
    n.views = totals.views;
    n.clicks = totals.clicks_by_button[b];
    n.clicks_by_button[b] = n.clicks;
    groups.push_back(StatsRow{std::to_string(b), n});
  }
  return groups;
}

std::optional<int> UtmFieldNumber(std::string_view name) {
  for (int f = 0; f < model::kUtmFields; ++f) {
    if (model::UtmFieldName(static_cast<model::UtmField>(f)) == name) return f;
  }
  return std::nullopt;
}

}  // namespace internal

model::Status WrongSecretsKey() {
  return model::Status(model::StatusCode::kUnprocessable,
                       "the secrets key is not the one that sealed this database's endpoint "
                       "secrets: use that key (PUSHHOOK_SECRETS_KEY, or <data_dir>/secrets-key); "
                       "every node sharing a database needs the same one");
}

// A store that serves one node alone has no leases, nobody else's changes, and no need for a
// backstop: its own ingest hands every message to its dispatcher.
model::StatusOr<std::vector<Delivery>> Store::LoadDeliveries(const std::vector<int64_t>& ids) {
  std::vector<Delivery> out;
  for (const int64_t id : ids) {
    auto delivery = LoadDelivery(id);
    if (delivery.ok()) {
      out.push_back(std::move(delivery.value()));
    } else if (delivery.status().code() != model::StatusCode::kNotFound) {
      return delivery.status();
    }
  }
  return out;
}

}  // namespace pushhook::store
