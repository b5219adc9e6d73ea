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
    model::Counters c;
    c.views = r.Int(row, first);
    c.clicks = r.Int(row, first + 1);
    c.clicks_by_button = {r.Int(row, first + 2), r.Int(row, first + 3), r.Int(row, first + 4)};
    c.dismissals = r.Int(row, first + 5);
    return c;
  };
  constexpr const char* kSums =
      "coalesce(sum(views),0)::bigint, coalesce(sum(clicks),0)::bigint, "
      "coalesce(sum(b0),0)::bigint, coalesce(sum(b1),0)::bigint, coalesce(sum(b2),0)::bigint, "
      "coalesce(sum(dismissals),0)::bigint";
  {
    auto r = Query(std::string("SELECT ") + kSums + " FROM stats_minute" + where, filters);
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
    auto r = Query("SELECT value, " + std::string(kSums) + " FROM stats_utm_minute" + where +
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
    CampaignSummary summary;
    summary.cid = r->String(i, 0);
    summary.counters.views = r->Int(i, 1);
    summary.counters.clicks = r->Int(i, 2);
    summary.counters.clicks_by_button = {r->Int(i, 3), r->Int(i, 4), r->Int(i, 5)};
    summary.first_active_ms = r->Int(i, 6);
    summary.last_active_ms = r->Int(i, 7);
    summary.counters.dismissals = r->Int(i, 8);
    summary.title = r->String(i, 9);
    cids.Add(summary.cid);
    out.push_back(std::move(summary));
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
  for (const auto& [site, batch] : tx_aggregates_) {
    if (!batch.minutes.empty()) {
      ArrayLiteral cid, ref, minute, views, clicks, b0, b1, b2, dismissals;
      for (const auto& [key, n] : batch.minutes) {
        cid.Add(key.cid);
        ref.Add(key.reference_id);
        minute.Add(key.minute_ms);
        views.Add(n.views);
        clicks.Add(n.clicks);
        b0.Add(n.clicks_by_button[0]);
        b1.Add(n.clicks_by_button[1]);
        b2.Add(n.clicks_by_button[2]);
        dismissals.Add(n.dismissals);
      }
      auto r = c.Query(
          "INSERT INTO stats_minute(site_id, cid, reference_id, minute, views, clicks, b0, b1, "
          "b2, dismissals) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], "
          "$5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) "
          "ON CONFLICT (site_id, cid, reference_id, minute) DO UPDATE SET "
          "views = stats_minute.views + excluded.views, "
          "clicks = stats_minute.clicks + excluded.clicks, b0 = stats_minute.b0 + excluded.b0, "
          "b1 = stats_minute.b1 + excluded.b1, b2 = stats_minute.b2 + excluded.b2, "
          "dismissals = stats_minute.dismissals + excluded.dismissals",
          Params()
              .Add(site)
              .Add(cid.Finish())
              .Add(ref.Finish())
              .Add(minute.Finish())
              .Add(views.Finish())
              .Add(clicks.Finish())
              .Add(b0.Finish())
              .Add(b1.Finish())
              .Add(b2.Finish())
              .Add(dismissals.Finish()));
      if (!r.ok()) return r.status();
    }
    if (!batch.utm.empty()) {
      ArrayLiteral field, value, cid, ref, minute, views, clicks, b0, b1, b2, dismissals;
      for (const auto& [key, n] : batch.utm) {
        field.Add(key.field);
        value.Add(key.value);
        cid.Add(key.minute.cid);
        ref.Add(key.minute.reference_id);
        minute.Add(key.minute.minute_ms);
        views.Add(n.views);
        clicks.Add(n.clicks);
        b0.Add(n.clicks_by_button[0]);
        b1.Add(n.clicks_by_button[1]);
        b2.Add(n.clicks_by_button[2]);
        dismissals.Add(n.dismissals);
      }
      auto r = c.Query(
          "INSERT INTO stats_utm_minute(site_id, field, value, cid, reference_id, minute, "
          "views, clicks, b0, b1, b2, dismissals) SELECT $1, * FROM unnest($2::int[], "
          "$3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], "
          "$9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[]) "
          "ON CONFLICT (site_id, field, cid, reference_id, minute, value) DO UPDATE SET "
          "views = stats_utm_minute.views + excluded.views, "
          "clicks = stats_utm_minute.clicks + excluded.clicks, "
          "b0 = stats_utm_minute.b0 + excluded.b0, b1 = stats_utm_minute.b1 + excluded.b1, "
          "b2 = stats_utm_minute.b2 + excluded.b2, "
          "dismissals = stats_utm_minute.dismissals + excluded.dismissals",
          Params()
              .Add(site)
              .Add(field.Finish())
              .Add(value.Finish())
              .Add(cid.Finish())
              .Add(ref.Finish())
              .Add(minute.Finish())
              .Add(views.Finish())
              .Add(clicks.Finish())
              .Add(b0.Finish())
              .Add(b1.Finish())
              .Add(b2.Finish())
              .Add(dismissals.Finish()));
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
      ArrayLiteral cid, views, clicks, b0, b1, b2, active, dismissals, title, title_at;
      for (const auto& [id, delta] : batch.campaigns) {
        const model::Counters& n = delta.counters;
        cid.Add(id);
        views.Add(n.views);
        clicks.Add(n.clicks);
        b0.Add(n.clicks_by_button[0]);
        b1.Add(n.clicks_by_button[1]);
        b2.Add(n.clicks_by_button[2]);
        active.Add(delta.last_active_ms);
        dismissals.Add(n.dismissals);
        title.Add(delta.title);
        title_at.Add(delta.title_at_ms);
      }
      auto r = c.Query(
          "INSERT INTO campaigns(site_id, cid, views, clicks, b0, b1, b2, first_active, "
          "last_active, dismissals, title, title_at) "
          "SELECT $1, c, v, k, x0, x1, x2, a, a, d, t, ta FROM "
          "unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], "
          "$7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::bigint[]) "
          "AS u(c, v, k, x0, x1, x2, a, d, t, ta) "
          "ON CONFLICT (site_id, cid) DO UPDATE SET views = campaigns.views + excluded.views, "
          "clicks = campaigns.clicks + excluded.clicks, b0 = campaigns.b0 + excluded.b0, "
          "b1 = campaigns.b1 + excluded.b1, b2 = campaigns.b2 + excluded.b2, "
          "dismissals = campaigns.dismissals + excluded.dismissals, "
          "last_active = greatest(campaigns.last_active, excluded.last_active), "
          "title = CASE WHEN excluded.title <> '' AND excluded.title_at >= campaigns.title_at "
          "THEN excluded.title ELSE campaigns.title END, "
          "title_at = CASE WHEN excluded.title <> '' AND excluded.title_at >= campaigns.title_at "
          "THEN excluded.title_at ELSE campaigns.title_at END",
          Params()
              .Add(site)
              .Add(cid.Finish())
              .Add(views.Finish())
              .Add(clicks.Finish())
              .Add(b0.Finish())
              .Add(b1.Finish())
              .Add(b2.Finish())
              .Add(active.Finish())
              .Add(dismissals.Finish())
              .Add(title.Finish())
              .Add(title_at.Finish()));
      if (!r.ok()) return r.status();
    }
  }
  return Status::Ok();
}

}  // namespace pushhook::store::postgres
