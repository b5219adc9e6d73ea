#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

namespace {

// Stores the union of `sketch` and the one `table` holds under the key `columns` = `key`:
// inserts ours, or locks the stored row and reads its sketch; then writes the union if it
// differs from what is stored.
Status MergeSketch(Connection& c, std::string_view table,
                   std::initializer_list<std::string_view> columns, Params key,
                   const model::HyperLogLog& sketch) {
  std::string names, markers, match;
  int n = 0;
  for (std::string_view column : columns) {
    const std::string marker = "$" + std::to_string(++n);
    names += std::string(n > 1 ? ", " : "") + std::string(column);
    markers += std::string(n > 1 ? ", " : "") + marker;
    match += std::string(n > 1 ? " AND " : "") + std::string(column) + " = " + marker;
  }
  const std::string sketch_marker = "$" + std::to_string(n + 1) + "::bytea";
  const std::string ours = sketch.Serialize();
  Params insert = key;
  auto stored =
      c.Query("INSERT INTO " + std::string(table) + "(" + names + ", sketch) VALUES(" + markers +
                  ", " + sketch_marker + ") ON CONFLICT (" + names +
                  ") DO UPDATE SET sketch = " + std::string(table) + ".sketch RETURNING sketch",
              insert.Add(HexBytes(ours)));
  if (!stored.ok()) return stored.status();
  // The row as it now stands: ours if it was new, else the stored sketch, which the union
  // must replace unless it already holds all of ours.
  const std::string before(stored->Bytes(0, 0));
  model::HyperLogLog merged = sketch;
  if (auto h = model::HyperLogLog::Deserialize(before)) merged.Merge(*h);
  const std::string bytes = merged.Serialize();
  if (bytes == before) return Status::Ok();
  return c
      .Query("UPDATE " + std::string(table) + " SET sketch = " + sketch_marker + " WHERE " + match,
             key.Add(HexBytes(bytes)))
      .status();
}

// One bigint array per counter, for unnest(): each row's counters added in turn, then passed
// as parameters in kCounterColumns' order.
class CounterArrays {
 public:
  // "$first::bigint[], …": the arrays' markers in unnest(), numbered from `first`.
  static std::string Markers(int first) {
    std::string out;
    for (int i = 0; i < internal::kCounterColumnCount; ++i) {
      if (i > 0) out += ", ";
      out += "$" + std::to_string(first + i) + "::bigint[]";
    }
    return out;
  }

  void Add(const model::Counters& n) {
    const auto values = internal::CounterValues(n);
    for (size_t i = 0; i < values.size(); ++i) arrays_[i].Add(values[i]);
  }

  Params& AddTo(Params& params) {
    for (ArrayLiteral& array : arrays_) params.Add(array.Finish());
    return params;
  }

 private:
  std::array<ArrayLiteral, internal::kCounterColumns.size()> arrays_;
};

}  // namespace

StatusOr<StatsResult> PostgresStore::QueryStats(const StatsQuery& q) {
  StatsResult result;
  // Filters shared by every statement: $1 site, $2 from, $3 to, then cid and reference_id.
  Params filters;
  filters.Add(q.site_id).Add(model::BucketStart(q.from_ms, model::kMinuteMs)).Add(q.to_ms);
  std::string where = " WHERE site_id = $1 AND minute >= $2 AND minute < $3";
  int n = 3;
  if (q.cid) {
    where += " AND cid = $" + std::to_string(++n);
    filters.Add(*q.cid);
  }
  if (q.reference_id) {
    where += " AND reference_id = $" + std::to_string(++n);
    filters.Add(*q.reference_id);
  }
  const std::string next = "$" + std::to_string(n + 1);
  const auto read_counters = [](const Result& r, int row, int first) {
    return internal::ReadCounters(ResultRow{r, row}, first);
  };
  static const std::string kSums = internal::EachCounter("coalesce(sum({}),0)::bigint");
  {
    auto r = Query("SELECT " + kSums + " FROM stats_minute" + where, filters);
    if (!r.ok()) return r.status();
    result.totals = read_counters(*r, 0, 0);
  }
  {
    // Hour and day buckets are summed from minutes at query time.
    Params params = filters;
    params.Add(q.bucket_ms);
    auto r = Query("SELECT (minute - (((minute % " + next + ") + " + next + ") % " + next +
                       ")) AS bucket, " + kSums + " FROM stats_minute" + where +
                       " GROUP BY bucket ORDER BY bucket",
                   params);
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->rows(); ++i) {
      result.series.push_back(StatsRow{r->String(i, 0), read_counters(*r, i, 1)});
    }
  }
  if (q.group_by == "cid" || q.group_by == "reference_id") {
    auto r = Query("SELECT " + *q.group_by + ", " + kSums + " FROM stats_minute" + where +
                       " GROUP BY " + *q.group_by + " ORDER BY 1",
                   filters);
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->rows(); ++i) {
      result.groups.push_back(StatsRow{r->String(i, 0), read_counters(*r, i, 1)});
    }
  } else if (q.group_by == "button") {
    result.groups = internal::ButtonGroups(result.totals);
  } else if (q.group_by) {
    const std::optional<int> field = internal::UtmFieldNumber(*q.group_by);
    if (!field) return model::InvalidArgument("cannot group by " + *q.group_by);
    Params params = filters;
    params.Add(*field);
    auto r = Query("SELECT value, " + kSums + " FROM stats_utm_minute" + where +
                       " AND field = " + next + " GROUP BY value ORDER BY value",
                   params);
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->rows(); ++i) {
      result.groups.push_back(StatsRow{r->String(i, 0), read_counters(*r, i, 1)});
    }
  }
  {
    Params params;
    params.Add(q.site_id).Add(model::BucketStart(q.from_ms, model::kHourMs)).Add(q.to_ms);
    std::string uwhere = " WHERE site_id = $1 AND hour >= $2 AND hour < $3";
    int m = 3;
    if (q.cid) {
      uwhere += " AND cid = $" + std::to_string(++m);
      params.Add(*q.cid);
    }
    if (q.reference_id) {
      uwhere += " AND reference_id = $" + std::to_string(++m);
      params.Add(*q.reference_id);
    }
    auto r =
        Query("SELECT hour, cid, reference_id, sketch FROM stats_uniques_hour" + uwhere, params);
    if (!r.ok()) return r.status();
    internal::UniquesMerger uniques(q, result);
    for (int i = 0; i < r->rows(); ++i) {
      if (auto h = model::HyperLogLog::Deserialize(r->Bytes(i, 3))) {
        uniques.Add(r->Int(i, 0), r->Text(i, 1), r->Text(i, 2), *h);
      }
    }
    uniques.Finish(&result);
  }
  return result;
}

StatusOr<std::vector<CampaignSummary>> PostgresStore::ListCampaigns(const CampaignQuery& q) {
  const internal::CampaignsSql page = internal::ListCampaignsSql(q, '$');
  Params params;
  for (const CampaignSortValue& value : page.params) {
    std::visit([&](const auto& v) { params.Add(v); }, value);
  }
  auto r = Query(page.sql, params);
  if (!r.ok()) return r.status();
  std::vector<CampaignSummary> out;
  ArrayLiteral cids;
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(internal::ReadCampaign(ResultRow{*r, i}, 0));
    cids.Add(out.back().cid);
  }
  if (out.empty()) return out;
  // The page's sketches in a second query, so that sorting never reads a sketch.
  auto sketches = Query(
      "SELECT cid, sketch FROM stats_uniques_campaign WHERE site_id = $1 AND cid = ANY($2::text[])",
      Params().Add(q.site_id).Add(cids.Finish()));
  if (!sketches.ok()) return sketches.status();
  for (int i = 0; i < sketches->rows(); ++i) {
    const std::string cid = sketches->String(i, 0);
    auto h = model::HyperLogLog::Deserialize(sketches->Bytes(i, 1));
    for (CampaignSummary& summary : out) {
      if (summary.cid == cid && h) summary.unique_subscribers = h->Estimate();
    }
  }
  return out;
}

// The transaction's statistics, one statement per table and site, in key order: nodes that
// update the same rows at once lock them in the same order, and so never deadlock.
Status PostgresStore::FlushAggregates(Connection& c) {
  static const std::string kMinuteSql =
      "INSERT INTO stats_minute(site_id, cid, reference_id, minute, " +
      internal::EachCounter("{}") + ") SELECT $1, * FROM unnest($2::text[], $3::text[], " +
      "$4::bigint[], " + CounterArrays::Markers(5) +
      ") ON CONFLICT (site_id, cid, reference_id, minute) DO UPDATE SET " +
      internal::EachCounter("{} = stats_minute.{} + excluded.{}");
  static const std::string kUtmSql =
      "INSERT INTO stats_utm_minute(site_id, field, value, cid, reference_id, minute, " +
      internal::EachCounter("{}") + ") SELECT $1, * FROM unnest($2::int[], $3::text[], " +
      "$4::text[], $5::text[], $6::bigint[], " + CounterArrays::Markers(7) +
      ") ON CONFLICT (site_id, field, cid, reference_id, minute, value) DO UPDATE SET " +
      internal::EachCounter("{} = stats_utm_minute.{} + excluded.{}");
  static const std::string kCampaignSql =
      "INSERT INTO campaigns(site_id, cid, first_active, last_active, title, title_at, " +
      internal::EachCounter("{}") + ") SELECT $1, c, a, a, t, ta, " + internal::EachCounter("{}") +
      " FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bigint[], " +
      CounterArrays::Markers(6) + ") AS u(c, a, t, ta, " + internal::EachCounter("{}") +
      ") ON CONFLICT (site_id, cid) DO UPDATE SET " +
      internal::EachCounter("{} = campaigns.{} + excluded.{}") +
      ", last_active = greatest(campaigns.last_active, excluded.last_active), "
      "title = CASE WHEN excluded.title <> '' AND excluded.title_at >= campaigns.title_at "
      "THEN excluded.title ELSE campaigns.title END, "
      "title_at = CASE WHEN excluded.title <> '' AND excluded.title_at >= campaigns.title_at "
      "THEN excluded.title_at ELSE campaigns.title_at END";
  for (const auto& [site, batch] : tx_aggregates_) {
    if (!batch.minutes.empty()) {
      ArrayLiteral cid, ref, minute;
      CounterArrays counters;
      for (const auto& [key, n] : batch.minutes) {
        cid.Add(key.cid);
        ref.Add(key.reference_id);
        minute.Add(key.minute_ms);
        counters.Add(n);
      }
      Params params;
      params.Add(site).Add(cid.Finish()).Add(ref.Finish()).Add(minute.Finish());
      auto r = c.Query(kMinuteSql, counters.AddTo(params));
      if (!r.ok()) return r.status();
    }
    if (!batch.utm.empty()) {
      ArrayLiteral field, value, cid, ref, minute;
      CounterArrays counters;
      for (const auto& [key, n] : batch.utm) {
        field.Add(key.field);
        value.Add(key.value);
        cid.Add(key.minute.cid);
        ref.Add(key.minute.reference_id);
        minute.Add(key.minute.minute_ms);
        counters.Add(n);
      }
      Params params;
      params.Add(site)
          .Add(field.Finish())
          .Add(value.Finish())
          .Add(cid.Finish())
          .Add(ref.Finish())
          .Add(minute.Finish());
      auto r = c.Query(kUtmSql, counters.AddTo(params));
      if (!r.ok()) return r.status();
    }
    for (const auto& [key, sketch] : batch.subscribers) {
      Params row;
      row.Add(site).Add(key.cid).Add(key.reference_id).Add(key.hour_ms);
      Status s = MergeSketch(c, "stats_uniques_hour", {"site_id", "cid", "reference_id", "hour"},
                             std::move(row), sketch);
      if (!s.ok()) return s;
    }
    for (const auto& [cid, sketch] : batch.CampaignSubscribers()) {
      Params row;
      row.Add(site).Add(cid);
      Status s =
          MergeSketch(c, "stats_uniques_campaign", {"site_id", "cid"}, std::move(row), sketch);
      if (!s.ok()) return s;
    }
    if (!batch.campaigns.empty()) {
      ArrayLiteral cid, active, title, title_at;
      CounterArrays counters;
      for (const auto& [id, delta] : batch.campaigns) {
        cid.Add(id);
        active.Add(delta.last_active_ms);
        title.Add(delta.title);
        title_at.Add(delta.title_at_ms);
        counters.Add(delta.counters);
      }
      Params params;
      params.Add(site)
          .Add(cid.Finish())
          .Add(active.Finish())
          .Add(title.Finish())
          .Add(title_at.Finish());
      auto r = c.Query(kCampaignSql, counters.AddTo(params));
      if (!r.ok()) return r.status();
    }
  }
  return Status::Ok();
}

}  // namespace pushhook::store::postgres
