#include "store/store.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>

#include "model/beacon.h"
#include "model/random.h"
#include "store/internal/counters.h"
#include "store/internal/rows.h"
#include "store/store_internal.h"

namespace pushhook::store {

std::string FormatMessageId(const std::string& instance_id, int64_t row_id) {
  return "msg_" + instance_id + std::to_string(row_id);
}

std::string FormatEventId(const std::string& instance_id, int64_t row_id) {
  return "evt_" + instance_id + std::to_string(row_id);
}

std::string FormatBatchId(const std::string& instance_id, int64_t batch) {
  return "bat_" + instance_id + std::to_string(batch);
}

namespace {

// The positive number after `kind` + instance id, as the Format functions above write it.
std::optional<int64_t> ParseId(std::string_view kind, const std::string& instance_id,
                               std::string_view text) {
  if (!text.starts_with(kind)) return std::nullopt;
  text.remove_prefix(kind.size());
  if (!text.starts_with(instance_id)) return std::nullopt;
  text.remove_prefix(instance_id.size());
  int64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end != text.data() + text.size() || number <= 0) return std::nullopt;
  return number;
}

}  // namespace

std::optional<int64_t> ParseMessageId(const std::string& instance_id, std::string_view text) {
  return ParseId("msg_", instance_id, text);
}

std::optional<int64_t> ParseBatchId(const std::string& instance_id, std::string_view text) {
  return ParseId("bat_", instance_id, text);
}

CampaignSortValue CampaignSortValueOf(const CampaignSummary& c, CampaignSort sort) {
  switch (sort) {
    case CampaignSort::kViews:
      return c.counters.views;
    case CampaignSort::kClicks:
      return c.counters.clicks;
    case CampaignSort::kCtr:
      return c.counters.views == 0
                 ? 0.0
                 : static_cast<double>(c.counters.clicks) / static_cast<double>(c.counters.views);
    case CampaignSort::kDismissals:
      return c.counters.dismissals;
    case CampaignSort::kCid:
      return c.cid;
    case CampaignSort::kLastActive:
      break;
  }
  return c.last_active_ms;
}

std::vector<PreviousSecret> RotatedOut(std::string current, int64_t until_ms,
                                       const std::vector<PreviousSecret>& previous,
                                       int64_t now_ms) {
  std::vector<PreviousSecret> out;
  // A secret that did not open reads as "" and signs nothing: nothing to keep.
  if (!current.empty()) out.push_back({std::move(current), until_ms});
  for (const PreviousSecret& p : previous) {
    if (out.size() == kMaxPreviousSecrets) break;
    if (p.until_ms > now_ms && !p.secret.empty()) out.push_back(p);
  }
  return out;
}

std::vector<PreviousSecret> AfterRotation(std::string current,
                                          const std::vector<PreviousSecret>& previous,
                                          int64_t now_ms, int64_t overlap_ms) {
  if (overlap_ms <= 0) return {};
  return RotatedOut(std::move(current), now_ms + overlap_ms, previous, now_ms);
}

namespace internal {

std::string SealPreviousSecrets(const std::vector<PreviousSecret>& secrets,
                                const model::SecretBox& box) {
  boost::json::array list;
  for (const PreviousSecret& p : secrets) {
    list.push_back(boost::json::object{{"secret", box.Seal(p.secret)}, {"until", p.until_ms}});
  }
  return boost::json::serialize(list);
}

std::vector<PreviousSecret> OpenPreviousSecrets(std::string_view text,
                                                const model::SecretBox& box) {
  std::vector<PreviousSecret> out;
  boost::system::error_code ec;
  const boost::json::value list = boost::json::parse(text, ec);
  if (ec || !list.is_array()) return out;
  for (const boost::json::value& item : list.get_array()) {
    const boost::json::object* entry = item.if_object();
    const boost::json::value* secret = entry ? entry->if_contains("secret") : nullptr;
    const boost::json::value* until = entry ? entry->if_contains("until") : nullptr;
    if (secret == nullptr || !secret->is_string() || until == nullptr || !until->is_int64()) {
      continue;
    }
    // A secret that does not open (another key) is left out: it signs nothing.
    std::optional<std::string> opened = box.Open(secret->get_string());
    if (opened && !opened->empty()) out.push_back({std::move(*opened), until->get_int64()});
  }
  return out;
}

model::Status WaitingInBatch(const std::string& instance_id, int64_t batch) {
  return {model::StatusCode::kAlreadyExists,
          "the message is waiting in batch " + FormatBatchId(instance_id, batch) +
              ", which is retried whole; redeliver it once the batch has finished"};
}

model::Status WaitingForBatch() {
  return {model::StatusCode::kAlreadyExists,
          "the message has not been sent yet: it goes in its endpoint's next batch; redeliver it "
          "once that batch has been sent"};
}

model::Status EndpointDeleted() {
  return {model::StatusCode::kAlreadyExists,
          "the message's endpoint was deleted: there is nowhere to send it"};
}

std::vector<ColumnValue> EndpointPatchColumns(const EndpointPatch& patch, int64_t now_ms,
                                              const model::SecretBox& box) {
  std::vector<ColumnValue> columns;
  if (patch.url) columns.push_back({"url", *patch.url});
  if (patch.description) columns.push_back({"description", *patch.description});
  if (patch.filter) columns.push_back({"events", int64_t{FilterBits(*patch.filter)}});
  if (patch.field_filter) columns.push_back({"field_filter", patch.field_filter->ToJson()});
  if (patch.format) {
    columns.push_back({"payload_format", std::string(model::PayloadFormatName(*patch.format))});
  }
  if (patch.enabled) {
    columns.push_back({"enabled", int64_t{*patch.enabled ? 1 : 0}});
    columns.push_back(
        {"disabled_reason", *patch.enabled ? std::string() : patch.disabled_reason.value_or("")});
    columns.push_back({"disabled_at", *patch.enabled ? int64_t{0} : now_ms});
  }
  if (patch.batch) {
    columns.push_back({"batch_max_events", int64_t{patch.batch->max_events}});
    columns.push_back({"batch_max_wait_ms", int64_t{patch.batch->max_wait_ms}});
  }
  if (patch.max_in_flight) columns.push_back({"max_in_flight", int64_t{*patch.max_in_flight}});
  if (patch.rate_limit) columns.push_back({"rate_limit", *patch.rate_limit});
  if (patch.secret) columns.push_back({"secret", box.Seal(*patch.secret)});
  if (patch.previous_secrets) {
    columns.push_back({"previous_secrets", SealPreviousSecrets(*patch.previous_secrets, box)});
  }
  columns.push_back({"updated_at", now_ms});
  return columns;
}

std::string UpdateEndpointSql(const std::vector<ColumnValue>& columns, char marker) {
  std::string sql = "UPDATE endpoints SET ";
  int n = 0;
  for (const ColumnValue& c : columns) {
    if (n > 0) sql += ", ";
    sql += std::string(c.column) + " = " + marker + std::to_string(++n);
  }
  sql += std::string(" WHERE id = ") + marker + std::to_string(n + 1) + " AND site_id = " + marker +
         std::to_string(n + 2) + " AND deleted = 0 RETURNING " + kEndpointColumns;
  return sql;
}

namespace {

// The SQL expression a campaigns list sorts by; both dialects read it alike.
std::string_view CampaignSortExpression(CampaignSort sort) {
  switch (sort) {
    case CampaignSort::kViews:
      return "views";
    case CampaignSort::kClicks:
      return "clicks";
    case CampaignSort::kCtr:
      return "(CASE WHEN views = 0 THEN 0.0 ELSE CAST(clicks AS double precision) / views END)";
    case CampaignSort::kDismissals:
      return "dismissals";
    case CampaignSort::kCid:
      return "cid";
    case CampaignSort::kLastActive:
      break;
  }
  return "last_active";
}

// `text` as a LIKE pattern that matches it anywhere, escaped with '\'. The query lowers it with
// the database's own lower(), as it lowers the text it searches: PostgreSQL's lowers "Ä" too, so
// a pattern lowered here (ASCII only) missed "Ärger" searched as written.
std::string ContainsPattern(std::string_view text) {
  std::string pattern = "%";
  for (char ch : text) {
    if (ch == '%' || ch == '_' || ch == '\\') pattern += '\\';
    pattern += ch;
  }
  return pattern + "%";
}

}  // namespace

CampaignsSql ListCampaignsSql(const CampaignQuery& q, char marker) {
  CampaignsSql out;
  const auto param = [&](CampaignSortValue value) {
    out.params.push_back(std::move(value));
    return std::string(1, marker) + std::to_string(out.params.size());
  };
  out.sql = "SELECT cid, " + EachCounter("{}") +
            ", first_active, last_active, title FROM campaigns WHERE site_id = " + param(q.site_id);
  if (!q.search.empty()) {
    const std::string like = param(ContainsPattern(q.search));
    out.sql += " AND (lower(cid) LIKE lower(" + like + ") ESCAPE '\\' OR lower(title) LIKE lower(" +
               like + ") ESCAPE '\\')";
  }
  const std::string key(CampaignSortExpression(q.sort));
  const char* beyond = q.descending ? " < " : " > ";
  if (q.after && q.sort == CampaignSort::kCid) {
    out.sql += " AND cid" + std::string(beyond) + param(q.after->cid);
  } else if (q.after) {
    const std::string value = param(q.after->value);
    out.sql += " AND (" + key + beyond + value + " OR (" + key + " = " + value + " AND cid > " +
               param(q.after->cid) + "))";
  }
  const char* direction = q.descending ? " DESC" : " ASC";
  out.sql += " ORDER BY " + key + direction;
  if (q.sort != CampaignSort::kCid) out.sql += ", cid";
  out.sql += " LIMIT " + param(int64_t{q.limit});
  return out;
}

Site NewSite(const std::string& name, int64_t now_ms) {
  Site site;
  site.id = "site_" + model::RandomToken(16);
  site.name = name;
  site.ingest_key = "pk_" + model::RandomToken(32);
  site.created_at_ms = now_ms;
  site.beacon_secret = model::NewBeaconSecret();
  return site;
}

model::Status CheckSchemaVersion(int version, int latest) {
  if (version <= latest) return model::Status::Ok();
  // Bad configuration rather than a failure (exit code 2, as for a file that is no database):
  // this binary is the wrong one for this data, and trying again will not change that.
  return model::InvalidArgument("database schema version " + std::to_string(version) +
                                " is newer than this pushhook knows (" + std::to_string(latest) +
                                "): run the pushhook that upgraded it");
}

model::Status MigrationFailed(int number, const model::Status& error) {
  return model::Internal("migration " + std::to_string(number) + " failed: " + error.message());
}

UniquesMerger::UniquesMerger(const StatsQuery& query, const StatsResult& result)
    : bucket_ms_(query.bucket_ms % model::kHourMs == 0 && result.series.size() <= kMaxUniqueRows
                     ? query.bucket_ms
                     : 0),
      group_by_(result.groups.size() > kMaxUniqueRows ? Group::kNone
                : query.group_by == "cid"             ? Group::kCid
                : query.group_by == "reference_id"    ? Group::kReferenceId
                                                      : Group::kNone) {}

void UniquesMerger::Add(int64_t hour, std::string_view cid, std::string_view reference_id,
                        const model::HyperLogLog& sketch) {
  total_.Merge(sketch);
  if (bucket_ms_ > 0) buckets_[model::BucketStart(hour, bucket_ms_)].Merge(sketch);
  if (group_by_ != Group::kNone) {
    const std::string_view key = group_by_ == Group::kCid ? cid : reference_id;
    auto it = groups_.find(key);
    if (it == groups_.end()) it = groups_.emplace(std::string(key), model::HyperLogLog()).first;
    it->second.Merge(sketch);
  }
}

void UniquesMerger::Finish(StatsResult* result) {
  result->unique_subscribers = total_.Estimate();
  if (bucket_ms_ > 0) {
    for (StatsRow& row : result->series) {
      int64_t start = 0;
      std::from_chars(row.key.data(), row.key.data() + row.key.size(), start);
      const auto it = buckets_.find(start);
      row.unique_subscribers = it == buckets_.end() ? 0.0 : it->second.Estimate();
    }
  }
  if (group_by_ != Group::kNone) {
    for (StatsRow& row : result->groups) {
      const auto it = groups_.find(row.key);
      row.unique_subscribers = it == groups_.end() ? 0.0 : it->second.Estimate();
    }
  }
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
  return model::Status(model::StatusCode::kInvalidArgument,
                       "the secrets key is not the one that sealed this database's endpoint "
                       "secrets: every node sharing a database needs the same one");
}

bool IsWrongSecretsKey(const model::Status& status) {
  return status.code() == model::StatusCode::kInvalidArgument &&
         status.message() == WrongSecretsKey().message();
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
