#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

namespace {

// The two statements that add a sketch to the one `table` holds under a key of some columns:
// read the stored sketch, then write the union.
class SketchStatements {
 public:
  static StatusOr<SketchStatements> Prepare(Connection& c, std::string_view table,
                                            std::initializer_list<std::string_view> columns) {
    std::string names, markers, match;
    int n = 0;
    for (std::string_view column : columns) {
      names += std::string(n > 0 ? ", " : "") + std::string(column);
      markers += n > 0 ? ", ?" : "?";
      match += std::string(n > 0 ? " AND " : "") + std::string(column) + " = ?";
      ++n;
    }
    auto get = c.Prepare("SELECT sketch FROM " + std::string(table) + " WHERE " + match);
    if (!get.ok()) return get.status();
    auto put = c.Prepare("INSERT OR REPLACE INTO " + std::string(table) + "(" + names +
                         ", sketch) VALUES(" + markers + ", ?)");
    if (!put.ok()) return put.status();
    return SketchStatements(*get, *put, n);
  }

  // Stores the union of `sketch` and the stored one; `bind_key` binds the key columns 1..n.
  template <typename BindKey>
  Status Merge(const model::HyperLogLog& sketch, const BindKey& bind_key) {
    model::HyperLogLog merged = sketch;
    bind_key(*get_);
    Status step;
    if (get_->Step(&step)) {
      if (auto stored = model::HyperLogLog::Deserialize(get_->Text(0))) merged.Merge(*stored);
    }
    get_->Reset();
    if (!step.ok()) return step;
    const std::string bytes = merged.Serialize();
    bind_key(*put_);
    put_->BindBlob(key_columns_ + 1, bytes);
    return put_->Run();
  }

 private:
  SketchStatements(Statement* get, Statement* put, int key_columns)
      : get_(get), put_(put), key_columns_(key_columns) {}

  Statement* get_;
  Statement* put_;
  int key_columns_;
};

}  // namespace

StatusOr<StatsResult> SqliteStore::QueryStats(const StatsQuery& q) {
  if (Status s = SettleAggregates(); !s.ok()) return s;
  StatsResult result;
  // Filters shared by every statement: ?1 site, ?2 from, ?3 to, ?4 cid, ?5 reference_id.
  // With a campaign, the time range is written +minute so that it cannot use an index: SQLite
  // would otherwise pick stats_minute_by_time and walk every campaign's minutes in the range
  // (237 ms for one campaign of a site with 10,000, bench figure 9), not the primary key's
  // (site_id, cid) prefix, which holds just this campaign's rows.
  std::string where = q.cid ? " WHERE site_id = ?1 AND cid = ?4 AND +minute >= ?2 AND +minute < ?3"
                            : " WHERE site_id = ?1 AND minute >= ?2 AND minute < ?3";
  if (q.reference_id) where += " AND reference_id = ?5";
  const auto bind_filters = [&](Statement& st) {
    st.Bind(1, q.site_id).Bind(2, model::BucketStart(q.from_ms, model::kMinuteMs)).Bind(3, q.to_ms);
    if (q.cid) st.Bind(4, *q.cid);
    if (q.reference_id) st.Bind(5, *q.reference_id);
  };
  static const std::string kSums = internal::EachCounter("coalesce(sum({}),0)");
  Status s = Read([&](Connection& c) {
    Status step;
    {
      auto st = c.Prepare("SELECT " + kSums + " FROM stats_minute" + where);
      if (!st.ok()) return st.status();
      bind_filters(**st);
      if ((*st)->Step(&step)) result.totals = internal::ReadCounters(**st, 0);
      (*st)->Reset();
      if (!step.ok()) return step;
    }
    {
      // Hour and day buckets are summed from minutes at query time: a site's campaign over a
      // month is at most 43,200 rows per (cid, run), read in order from the primary key.
      auto st = c.Prepare("SELECT (minute - (((minute % ?6) + ?6) % ?6)) AS bucket, " + kSums +
                          " FROM stats_minute" + where + " GROUP BY bucket ORDER BY bucket");
      if (!st.ok()) return st.status();
      bind_filters(**st);
      (*st)->Bind(6, q.bucket_ms);
      while ((*st)->Step(&step)) {
        result.series.push_back(
            StatsRow{std::to_string((*st)->Int(0)), internal::ReadCounters(**st, 1)});
      }
      (*st)->Reset();
      if (!step.ok()) return step;
    }
    if (q.group_by == "cid" || q.group_by == "reference_id") {
      auto st = c.Prepare("SELECT " + *q.group_by + ", " + kSums + " FROM stats_minute" + where +
                          " GROUP BY " + *q.group_by + " ORDER BY 1");
      if (!st.ok()) return st.status();
      bind_filters(**st);
      while ((*st)->Step(&step)) {
        result.groups.push_back(StatsRow{(*st)->Text(0), internal::ReadCounters(**st, 1)});
      }
      (*st)->Reset();
      if (!step.ok()) return step;
    } else if (q.group_by == "button") {
      result.groups = internal::ButtonGroups(result.totals);
    } else if (q.group_by) {
      const std::optional<int> field = internal::UtmFieldNumber(*q.group_by);
      if (!field) return model::InvalidArgument("cannot group by " + *q.group_by);
      auto st = c.Prepare("SELECT value, " + kSums + " FROM stats_utm_minute" + where +
                          " AND field = ?6 GROUP BY value ORDER BY value");
      if (!st.ok()) return st.status();
      bind_filters(**st);
      (*st)->Bind(6, *field);
      while ((*st)->Step(&step)) {
        result.groups.push_back(StatsRow{(*st)->Text(0), internal::ReadCounters(**st, 1)});
      }
      (*st)->Reset();
      if (!step.ok()) return step;
    }
    {
      std::string uwhere = " WHERE site_id = ?1 AND hour >= ?2 AND hour < ?3";
      if (q.cid) uwhere += " AND cid = ?4";
      if (q.reference_id) uwhere += " AND reference_id = ?5";
      auto st =
          c.Prepare("SELECT hour, cid, reference_id, sketch FROM stats_uniques_hour" + uwhere);
      if (!st.ok()) return st.status();
      (*st)
          ->Bind(1, q.site_id)
          .Bind(2, model::BucketStart(q.from_ms, model::kHourMs))
          .Bind(3, q.to_ms);
      if (q.cid) (*st)->Bind(4, *q.cid);
      if (q.reference_id) (*st)->Bind(5, *q.reference_id);
      internal::UniquesMerger uniques(q, result);
      while ((*st)->Step(&step)) {
        if (auto h = model::HyperLogLog::Deserialize((*st)->Text(3))) {
          uniques.Add((*st)->Int(0), (*st)->Text(1), (*st)->Text(2), *h);
        }
      }
      (*st)->Reset();
      if (!step.ok()) return step;
      uniques.Finish(&result);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return result;
}

StatusOr<std::vector<CampaignSummary>> SqliteStore::ListCampaigns(const CampaignQuery& q) {
  if (Status s = SettleAggregates(); !s.ok()) return s;
  std::vector<CampaignSummary> out;
  Status s = Read([&](Connection& c) {
    const internal::CampaignsSql page = internal::ListCampaignsSql(q, '?');
    auto st = c.Prepare(page.sql);
    // The page's sketches one by one, so that sorting never reads a sketch.
    auto sketch =
        c.Prepare("SELECT sketch FROM stats_uniques_campaign WHERE site_id = ? AND cid = ?");
    if (!st.ok()) return st.status();
    if (!sketch.ok()) return sketch.status();
    int n = 0;
    for (const CampaignSortValue& value : page.params) {
      std::visit([&](const auto& v) { (*st)->Bind(++n, v); }, value);
    }
    Status step;
    while ((*st)->Step(&step)) {
      out.push_back(internal::ReadCampaign(**st, 0));
    }
    (*st)->Reset();
    if (!step.ok()) return step;
    for (CampaignSummary& summary : out) {
      (*sketch)->Bind(1, q.site_id).Bind(2, summary.cid);
      if ((*sketch)->Step(&step)) {
        if (auto h = model::HyperLogLog::Deserialize((*sketch)->Text(0))) {
          summary.unique_subscribers = h->Estimate();
        }
      }
      (*sketch)->Reset();
      if (!step.ok()) return step;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

// Adds `batches` to the statistics tables, inside the caller's transaction.
Status SqliteStore::FlushAggregates(Connection& c, const SiteAggregates& batches) {
  if (batches.empty()) return Status::Ok();
  static const std::string kCounters = internal::EachCounter("{}");
  static const std::string kMarkers = internal::EachCounter("?");
  static const std::string kAddCounters = internal::EachCounter("{} = {} + excluded.{}");
  auto minute =
      c.Prepare("INSERT INTO stats_minute(site_id, cid, reference_id, minute, " + kCounters +
                ") VALUES(?,?,?,?," + kMarkers + ") ON CONFLICT DO UPDATE SET " + kAddCounters);
  auto utm = c.Prepare(
      "INSERT INTO stats_utm_minute(site_id, field, value, cid, reference_id, "
      "minute, " +
      kCounters + ") VALUES(?,?,?,?,?,?," + kMarkers + ") ON CONFLICT DO UPDATE SET " +
      kAddCounters);
  auto campaign =
      c.Prepare("INSERT INTO campaigns(site_id, cid, first_active, last_active, title, title_at, " +
                kCounters + ") VALUES(?,?,?,?,?,?," + kMarkers + ") ON CONFLICT DO UPDATE SET " +
                kAddCounters +
                ", last_active = max(last_active, excluded.last_active), "
                "title = CASE WHEN excluded.title <> '' AND excluded.title_at >= title_at "
                "THEN excluded.title ELSE title END, "
                "title_at = CASE WHEN excluded.title <> '' AND excluded.title_at >= title_at "
                "THEN excluded.title_at ELSE title_at END");
  auto hour_sketch = SketchStatements::Prepare(c, "stats_uniques_hour",
                                               {"site_id", "cid", "reference_id", "hour"});
  auto campaign_sketch = SketchStatements::Prepare(c, "stats_uniques_campaign", {"site_id", "cid"});
  if (!hour_sketch.ok()) return hour_sketch.status();
  if (!campaign_sketch.ok()) return campaign_sketch.status();
  for (auto* st : {&minute, &utm, &campaign}) {
    if (!st->ok()) return st->status();
  }
  // Binds `n` after the key's `keys` parameters, and runs the statement.
  const auto add = [](Statement& st, int keys, const model::Counters& n) {
    int i = keys;
    for (const int64_t value : internal::CounterValues(n)) st.Bind(++i, value);
    return st.Run();
  };
  for (const auto& [site, batch] : batches) {
    for (const auto& [key, n] : batch.minutes) {
      Statement& st = **minute;
      st.Bind(1, site).Bind(2, key.cid).Bind(3, key.reference_id).Bind(4, key.minute_ms);
      if (Status s = add(st, 4, n); !s.ok()) return s;
    }
    for (const auto& [key, n] : batch.utm) {
      Statement& st = **utm;
      st.Bind(1, site)
          .Bind(2, key.field)
          .Bind(3, key.value)
          .Bind(4, key.minute.cid)
          .Bind(5, key.minute.reference_id)
          .Bind(6, key.minute.minute_ms);
      if (Status s = add(st, 6, n); !s.ok()) return s;
    }
    // References to the bindings by name: clang 14 cannot capture a structured binding.
    const std::string& site_id = site;
    for (const auto& [hour_key, sketch] : batch.subscribers) {
      const model::HourKey& key = hour_key;
      Status s = hour_sketch->Merge(sketch, [&](Statement& st) {
        st.Bind(1, site_id).Bind(2, key.cid).Bind(3, key.reference_id).Bind(4, key.hour_ms);
      });
      if (!s.ok()) return s;
    }
    for (const auto& [campaign_id, sketch] : batch.CampaignSubscribers()) {
      const std::string& cid = campaign_id;
      Status s =
          campaign_sketch->Merge(sketch, [&](Statement& st) { st.Bind(1, site_id).Bind(2, cid); });
      if (!s.ok()) return s;
    }
    for (const auto& [cid, delta] : batch.campaigns) {
      Statement& st = **campaign;
      st.Bind(1, site)
          .Bind(2, cid)
          .Bind(3, delta.first_active_ms)
          .Bind(4, delta.last_active_ms)
          .Bind(5, delta.title)
          .Bind(6, delta.title_at_ms);
      if (Status s = add(st, 6, delta.counters); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

bool SqliteStore::FlushDue() const {
  if (!options_.aggregates) return false;
  if (flush_requested_) return true;
  if (held_aggregates_.empty()) return tx_aggregated_events_ >= kHoldEvents;
  return held_events_ + tx_aggregated_events_ >= kHoldEvents ||
         std::chrono::steady_clock::now() - held_since_ >= kHoldTime;
}

// After a COMMIT: what this transaction counted is written (`flushed`) or held.
void SqliteStore::Committed(bool flushed) {
  last_event_ = std::max(last_event_, tx_last_event_);
  if (flushed) {
    held_aggregates_.clear();
    held_events_ = 0;
    flush_requested_ = false;
  } else if (!tx_aggregates_.empty()) {
    if (held_aggregates_.empty()) held_since_ = std::chrono::steady_clock::now();
    for (auto& [site, batch] : tx_aggregates_) {
      auto [it, inserted] = held_aggregates_.try_emplace(site, std::move(batch));
      if (!inserted) it->second.Merge(batch);
    }
    held_events_ += tx_aggregated_events_;
  }
  aggregates_held_.store(!held_aggregates_.empty(), std::memory_order_release);
  DiscardTransaction();
}

// Forgets what the writer gathered for the transaction being built.
void SqliteStore::DiscardTransaction() {
  tx_aggregates_.clear();
  tx_attempt_stats_.clear();
  tx_aggregated_events_ = 0;
  tx_last_event_ = 0;
}

Status SqliteStore::RecordAggregatedThrough(Connection& c, int64_t event_rowid) {
  auto st = c.Prepare(
      "INSERT INTO meta(key, value) VALUES('aggregated_through', ?) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!st.ok()) return st.status();
  return (*st)->Bind(1, std::to_string(event_rowid)).Run();
}

// Writes the statistics held in memory, so that what reads them next sees every stored event.
Status SqliteStore::SettleAggregates() {
  if (!aggregates_held_.load(std::memory_order_acquire)) return Status::Ok();
  return WriteSync([this](Connection&) {
    flush_requested_ = true;
    return Status::Ok();
  });
}

// At start-up: the statistics of events stored after the last flush, lost with the process
// that held them, are counted again from the events, in one transaction. A database that has
// no mark yet (new, or made by a version that wrote statistics with every commit) is counted
// up to its last event.
Status SqliteStore::RecoverAggregates() {
  Connection& c = *writer_conn_;
  std::optional<int64_t> through;
  {
    auto st = c.Prepare("SELECT value FROM meta WHERE key = 'aggregated_through'");
    if (!st.ok()) return st.status();
    Status step;
    if ((*st)->Step(&step)) {
      const std::string text = (*st)->Text(0);
      int64_t value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size()) {
        (*st)->Reset();
        return model::Internal("meta 'aggregated_through' is not a number: '" + text + "'");
      }
      through = value;
    }
    (*st)->Reset();
    if (!step.ok()) return step;
  }
  int64_t last = 0;
  {
    auto st = c.Prepare("SELECT coalesce(max(id), 0) FROM events");
    if (!st.ok()) return st.status();
    Status step;
    if ((*st)->Step(&step)) last = (*st)->Int(0);
    (*st)->Reset();
    if (!step.ok()) return step;
  }
  last_event_ = last;
  if (through && *through >= last) return Status::Ok();
  SiteAggregates recovered;
  if (through) {
    auto st = c.Prepare(std::string("SELECT e.site_id, e.received_at, ") + kEventColumns +
                        " FROM events e WHERE e.id > ? ORDER BY e.id");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, *through);
    Status step;
    while ((*st)->Step(&step)) {
      recovered[(*st)->Text(0)].Add(ReadEvent(**st, 2, instance_id_), (*st)->Int(1));
    }
    (*st)->Reset();
    if (!step.ok()) return step;
  }
  Status s = c.Run("BEGIN IMMEDIATE");
  if (s.ok()) s = FlushAggregates(c, recovered);
  if (s.ok()) s = RecordAggregatedThrough(c, last);
  if (s.ok()) s = c.Run("COMMIT");
  if (!s.ok()) {
    c.Run("ROLLBACK").IgnoreError();
    return model::Internal("cannot recount statistics after a restart: " + s.message());
  }
  if (through) {
    util::Log(util::LogLevel::kInfo, "statistics recounted",
              {{"events", std::to_string(last - *through)}});
  }
  return Status::Ok();
}

}  // namespace pushhook::store::sqlite
