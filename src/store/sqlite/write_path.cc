#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/sqlite/sqlite_store_impl.h"
#include "util/field_filter_json.h"

namespace pushhook::store::sqlite {

void SqliteStore::AppendEvents(const std::string& site_id, std::vector<model::Event> events,
                               int64_t now_ms, AppendCallback done) {
  PreparedAppend append;
  append.events.reserve(events.size());
  append.client_ids.reserve(events.size());
  const bool aggregate = options_.aggregates && events.size() >= PreparedAppend::kAggregatedFrom;
  for (model::Event& e : events) {
    if (aggregate) append.aggregates.Add(e, now_ms);
    append.client_ids.push_back(!e.event_id.empty());
    append.events.push_back(std::make_shared<StoredEvent>(StoredEvent{std::move(e), site_id}));
  }
  const size_t count = append.events.size();
  internal::EnqueueAppend(
      writes_, std::move(append), count,
      [this, site_id, now_ms](Connection& c, const PreparedAppend& prepared, AppendResult* result) {
        return ApplyAppend(c, site_id, prepared, now_ms, result);
      },
      std::move(done));
}

Status SqliteStore::ApplyAppend(Connection& c, const std::string& site_id,
                                const PreparedAppend& append, int64_t now_ms,
                                AppendResult* result) {
  // The site's endpoints as of this transaction decide the fan-out. A disabled endpoint gets
  // its messages too: they wait, pending, until it is enabled again (DESIGN section 4).
  auto targets = Targets(c, site_id);
  if (!targets.ok()) return targets.status();
  auto insert_event = c.Prepare(
      "INSERT OR IGNORE INTO events(site_id, event_id, action, cookie_id, cid, "
      "notification_title, reference_id, utm_campaign, utm_content, utm_medium, utm_source, "
      "utm_term, clicked_button, occurred_at, received_at, replay_key, id) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!insert_event.ok()) return insert_event.status();
  auto insert_message = c.Prepare(
      "INSERT INTO messages(event_rowid, site_id, endpoint_id, status, next_attempt_at, "
      "created_at, id) VALUES(?,?,?,0,?,?,?)");
  if (!insert_message.ok()) return insert_message.status();
  Statement& ev = **insert_event;
  Statement& msg = **insert_message;
  std::vector<const model::Event*> accepted;
  accepted.reserve(append.events.size());
  int64_t last_event_row = 0;
  for (size_t i = 0; i < append.events.size(); ++i) {
    StoredEvent& stored = *append.events[i];
    const model::Event& e = stored.event;
    ev.Bind(1, site_id);
    if (append.client_ids[i]) {
      ev.Bind(2, e.event_id);
    } else {
      ev.BindNull(2);
    }
    ev.Bind(3, internal::ActionColumn(e.action))
        .Bind(4, e.cookie_id)
        .Bind(5, e.cid)
        .Bind(6, e.notification_title)
        .Bind(7, e.reference_id)
        .Bind(8, e.utm_campaign)
        .Bind(9, e.utm_content)
        .Bind(10, e.utm_medium)
        .Bind(11, e.utm_source)
        .Bind(12, e.utm_term)
        .Bind(13, e.clicked_button)
        .Bind(14, e.occurred_at_ms)
        .Bind(15, now_ms);
    if (e.replay_key.empty()) {
      ev.BindNull(16);
    } else {
      ev.Bind(16, e.replay_key);
    }
    ev.Bind(17, event_ids_.Peek());
    if (Status s = ev.Run(); !s.ok()) return s;
    if (c.Changes() == 0) {
      ++result->duplicates;
      continue;
    }
    ++result->accepted;
    accepted.push_back(&e);
    const int64_t event_row = event_ids_.Take();
    last_event_row = event_row;
    // Its messages share it: what the dispatcher sends needs no read of the event.
    if (!append.client_ids[i]) stored.event.event_id = FormatEventId(instance_id_, event_row);
    Status fanned = Status::Ok();
    (*targets)->ForEachTaking(e, [&](const Target& t) {
      if (!fanned.ok()) return;
      const int64_t message_row = message_ids_.Take();
      msg.Bind(1, event_row)
          .Bind(2, site_id)
          .Bind(3, t.id)
          .Bind(4, now_ms)
          .Bind(5, now_ms)
          .Bind(6, message_row);
      fanned = msg.Run();
      if (!fanned.ok()) return;
      result->messages.push_back(DueMessage{message_row, t.id, now_ms, 0, append.events[i]});
    });
    if (!fanned.ok()) return fanned;
  }
  // Counted only once this request's writes all succeeded; flushed before the commit.
  if (options_.aggregates && !accepted.empty()) {
    model::AggregateBatch& aggregates = tx_aggregates_[site_id];
    if (result->duplicates == 0 && !append.aggregates.empty()) {
      aggregates.Merge(append.aggregates);
    } else {
      for (const model::Event* e : accepted) aggregates.Add(*e, now_ms);
    }
    tx_aggregated_events_ += accepted.size();
    tx_last_event_ = last_event_row;
  }
  return Status::Ok();
}

template <typename Take>
void SqliteStore::SiteTargets::ForEachTaking(const model::Event& e, const Take& take) const {
  static const std::vector<size_t> kNone;
  const auto listed = by_cid.find(e.cid);
  const std::vector<size_t>& named = listed == by_cid.end() ? kNone : listed->second;
  // Both lists ascend: merged, the targets come in their order.
  auto a = any_cid.begin();
  auto b = named.begin();
  while (a != any_cid.end() || b != named.end()) {
    const size_t i = (b == named.end() || (a != any_cid.end() && *a < *b)) ? *a++ : *b++;
    const Target& t = all[i];
    if (t.filter.Accepts(e.action) && t.field_filter.AcceptsExcept(e, model::FilterField::kCid)) {
      take(t);
    }
  }
}

// A site's fan-out targets, read once and kept by the writer until an admin write or a
// rollback (WriteSync, Rollback) may have changed them.
StatusOr<const SqliteStore::SiteTargets*> SqliteStore::Targets(Connection& c,
                                                               const std::string& site_id) {
  if (auto it = targets_by_site_.find(site_id); it != targets_by_site_.end()) return &it->second;
  auto st = c.Prepare(
      "SELECT id, events, field_filter FROM endpoints WHERE site_id = ? AND deleted = 0 "
      "ORDER BY created_at, id");
  if (!st.ok()) return st.status();
  (*st)->Bind(1, site_id);
  SiteTargets targets;
  Status step;
  while ((*st)->Step(&step)) {
    Target t{(*st)->Text(0), FilterFromBits((*st)->Int(1)), {}};
    if (auto filter = util::FieldFilterFromText((*st)->Text(2)); filter.ok()) {
      t.field_filter = std::move(filter.value());
    }
    const size_t index = targets.all.size();
    if (const std::vector<std::string>* cids = t.field_filter.values(model::FilterField::kCid)) {
      for (const std::string& cid : *cids) targets.by_cid[cid].push_back(index);
    } else {
      targets.any_cid.push_back(index);
    }
    targets.all.push_back(std::move(t));
  }
  (*st)->Reset();
  if (!step.ok()) return step;
  return &targets_by_site_.insert_or_assign(site_id, std::move(targets)).first->second;
}

Status SqliteStore::ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records) {
  // A message's latest attempt is kept in its row (migration 17); a later one first moves it
  // to attempts. Attempt numbers only grow, so a first attempt has nothing to move.
  auto move_latest = c.Prepare(
      "INSERT OR REPLACE INTO attempts(message_id, attempt, at, status_code, latency_us, error, "
      "response, batch_id) SELECT id, last_attempt, last_at, last_status, last_latency_us, "
      "last_error, last_response, last_batch_id FROM messages "
      "WHERE id = ? AND last_attempt > 0 AND last_attempt <> ?");
  if (!move_latest.ok()) return move_latest.status();
  // The attempt is recorded as it went. But a message that ended while it was out stays ended,
  // unless this attempt delivered it: one delivered meanwhile (on a shared database, by another
  // node), or failed because its endpoint was deleted, would otherwise be pending again with a
  // retry nothing sends. A message failed otherwise takes this attempt's outcome: a redelivery
  // can go out before the failure of the attempt before it is written. ?1 is the outcome.
  static constexpr const char* kEndedMeanwhile =
      "(?1 <> 1 AND (status = 1 OR (status = 2 AND "
      "(SELECT deleted FROM endpoints e WHERE e.id = messages.endpoint_id) = 1)))";
  auto update = c.Prepare(
      "UPDATE messages SET status = iif(" + std::string(kEndedMeanwhile) +
      ", status, ?1), attempts = ?2, next_attempt_at = iif(" + std::string(kEndedMeanwhile) +
      ", next_attempt_at, ?3), last_status = ?4, last_error = ?5, last_attempt = ?6, "
      "last_at = ?7, last_latency_us = ?8, last_response = ?9, "
      "batch_id = iif(?11 > 0 AND batch_id = ?13, ?11, batch_id), splits = ?12, "
      "last_batch_id = ?14 WHERE id = ?10");
  if (!update.ok()) return update.status();
  for (const AttemptRecord& r : records) {
    if (r.attempt > 1) {
      Status moved = (*move_latest)->Bind(1, r.message_id).Bind(2, r.attempt).Run();
      if (!moved.ok()) return moved;
    }
    Status s = (*update)
                   ->Bind(1, static_cast<int>(r.new_status))
                   .Bind(2, r.attempt)
                   .Bind(3, r.next_attempt_ms)
                   .Bind(4, r.status_code)
                   .Bind(5, r.error)
                   .Bind(6, r.attempt)
                   .Bind(7, r.at_ms)
                   .Bind(8, r.latency_us)
                   .Bind(9, r.response_prefix)
                   .Bind(10, r.message_id)
                   .Bind(11, r.batch)
                   .Bind(12, r.splits)
                   .Bind(13, r.batch_from)
                   .Bind(14, r.sent_in)
                   .Run();
    if (!s.ok()) return s;
    // A message deleted meanwhile updates nothing, and its attempt is not counted; nor is a
    // batch's request counted again for its other members.
    if (c.Changes() == 0 || !r.counts_request) continue;
    internal::CountAttempt(tx_attempt_stats_, r.endpoint_id, r.at_ms, r.latency_us, r.status_code);
  }
  return Status::Ok();
}

Status AddAttemptStats(Connection& c, const internal::AttemptStatsRows& rows) {
  auto add = c.Prepare(
      std::string("INSERT INTO attempt_stats_hour(endpoint_id, hour, latency_bucket, attempts, "
                  "successes) VALUES(?,?,?,?,?)") +
      internal::kUpsertAttemptStatsTail);
  if (!add.ok()) return add.status();
  for (const auto& [key, counts] : rows) {
    Status s = (*add)
                   ->Bind(1, key.endpoint_id)
                   .Bind(2, key.hour)
                   .Bind(3, key.latency_bucket)
                   .Bind(4, counts.attempts)
                   .Bind(5, counts.successes)
                   .Run();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status SqliteStore::ApplyBatch(Connection& c, const std::vector<int64_t>& message_ids,
                               int64_t batch) {
  auto update = c.Prepare("UPDATE messages SET batch_id = ? WHERE id = ?");
  if (!update.ok()) return update.status();
  for (const int64_t id : message_ids) {
    if (Status s = (*update)->Bind(1, batch).Bind(2, id).Run(); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace pushhook::store::sqlite
