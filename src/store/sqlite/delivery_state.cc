#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/json_string.h"
#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {
namespace {

// Messages a replay makes in one write (ReplayEvents).
constexpr size_t kReplayPage = 5000;

}  // namespace

StatusOr<std::vector<std::string>> SqliteStore::ListPendingEndpoints() {
  std::vector<std::string> out;
  Status s = ReadHotPath([&](Connection& c) {
    // One seek in messages_pending_by_endpoint per endpoint, not a walk of every pending
    // message (there is no index of all pending messages by id: it cost every message an index
    // entry written at ingest and removed at delivery, for this read at start-up).
    auto st = c.Prepare(
        "SELECT endpoint_id FROM messages WHERE status = 0 AND endpoint_id > ? "
        "ORDER BY endpoint_id LIMIT 1");
    if (!st.ok()) return st.status();
    std::string after;
    for (;;) {
      (*st)->Bind(1, after);
      Status step;
      std::optional<std::string> next;
      if ((*st)->Step(&step)) next = (*st)->Text(0);
      (*st)->Reset();
      if (!step.ok()) return step;
      if (!next) return Status::Ok();
      after = *next;
      out.push_back(std::move(*next));
    }
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<DueMessage>> SqliteStore::LoadPendingForEndpoint(
    const std::string& endpoint_id, int64_t after_id, int limit) {
  std::vector<DueMessage> out;
  Status s = ReadHotPath([&](Connection& c) {
    auto st = c.Prepare(
        "SELECT id, endpoint_id, next_attempt_at, attempts, batch_id, splits FROM messages "
        "WHERE endpoint_id = ?3 AND status = 0 AND id > ?1 ORDER BY id LIMIT ?2");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, after_id).Bind(2, limit).Bind(3, endpoint_id);
    Status step;
    while ((*st)->Step(&step)) {
      out.push_back(DueMessage{(*st)->Int(0),
                               (*st)->Text(1),
                               (*st)->Int(2),
                               static_cast<int>((*st)->Int(3)),
                               {},
                               (*st)->Int(4),
                               static_cast<int>((*st)->Int(5))});
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<Delivery> SqliteStore::LoadDelivery(int64_t message_id) {
  auto loaded = LoadDeliveries({message_id});
  if (!loaded.ok()) return loaded.status();
  if (loaded->empty()) return model::NotFound("message not found");
  return std::move(loaded->front());
}

// One prepared statement for the lot, and each endpoint read (and its secrets opened) once, not
// once per message: what a batch of a hundred costs (BENCHMARKS.md, figure 11). Each read is a
// transaction of its own; a message finished or an endpoint changed between them is what a
// later read would have found anyway.
StatusOr<std::vector<Delivery>> SqliteStore::LoadDeliveries(const std::vector<int64_t>& ids) {
  static const std::string kMessageSql =
      std::string("SELECT m.id, m.site_id, m.attempts, m.status, m.endpoint_id, ") + kEventColumns +
      " FROM messages m JOIN events e ON e.id = m.event_rowid WHERE m.id = ?";
  static const std::string kEndpointSql =
      std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = ?";
  std::vector<Delivery> out;
  out.reserve(ids.size());
  Status s = ReadHotPath([&](Connection& c) {
    auto message = c.Prepare(kMessageSql);
    if (!message.ok()) return message.status();
    auto endpoint = c.Prepare(kEndpointSql);
    if (!endpoint.ok()) return endpoint.status();
    std::unordered_map<std::string, std::optional<Endpoint>> endpoints;
    for (const int64_t id : ids) {
      Statement& m = **message;
      m.Bind(1, id);
      Status step;
      if (!m.Step(&step)) {
        m.Reset();
        if (!step.ok()) return step;
        continue;  // gone
      }
      auto [known, inserted] = endpoints.try_emplace(m.Text(4));
      if (inserted) {
        Statement& e = **endpoint;
        e.Bind(1, known->first);
        Status found;
        if (e.Step(&found)) known->second = ReadEndpoint(e, 0, box_);
        e.Reset();
        if (!found.ok()) {
          m.Reset();
          return found;
        }
      }
      if (known->second) {
        Delivery& d = out.emplace_back();
        d.message_id = m.Int(0);
        d.site_id = m.Text(1);
        d.attempts = static_cast<int>(m.Int(2));
        d.status = static_cast<MessageStatus>(m.Int(3));
        d.event = ReadEvent(m, 5, instance_id_);
        d.endpoint = *known->second;
      }
      m.Reset();
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

// The batch a message shows (DESIGN section 1: "with the batch id it went in"): the one it is
// fixed in, or, redelivered to go alone, the last it went in (its last attempt's, or an earlier
// one's), so that the log still says where it went before.
constexpr char kShownBatch[] =
    "CASE WHEN m.batch_id >= 0 THEN m.batch_id WHEN m.last_batch_id > 0 THEN m.last_batch_id "
    "ELSE coalesce((SELECT a.batch_id FROM attempts a WHERE a.message_id = m.id AND "
    "a.batch_id > 0 ORDER BY a.attempt DESC LIMIT 1), 0) END";

// The messages of batch ?7: fixed in it, or with an attempt that went in it (the latest in the
// message's row). A batch is numbered after its first member, so none is older than that:
// the scan newest first stops there.
constexpr char kInBatch[] =
    " AND m.id >= ?7 AND (m.batch_id = ?7 OR m.last_batch_id = ?7 OR EXISTS (SELECT 1 FROM "
    "attempts a WHERE a.message_id = m.id AND a.batch_id = ?7))";

StatusOr<std::vector<Message>> SqliteStore::ListMessages(const MessageQuery& q) {
  std::string sql = std::string(
                        "SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                        "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                    kShownBatch + ", " + kEventColumns +
                    " FROM messages m JOIN events e ON e.id = m.event_rowid WHERE m.site_id = ?";
  if (q.before_id > 0) sql += " AND m.id < ?2";
  if (q.endpoint_id) sql += " AND m.endpoint_id = ?3";
  if (q.status) sql += " AND m.status = ?4";
  if (q.cid) sql += " AND e.cid = ?5";
  if (q.batch > 0) sql += kInBatch;
  sql += " ORDER BY m.id DESC LIMIT ?6";
  // Every stored event's campaign has its row once the statistics the writer holds in memory
  // are written (unless the database stored events before it kept statistics). Then a campaign
  // without one has no messages, and the scan below, which would read the site's whole log to
  // learn that (a mistyped ?cid= in the dashboard), is not needed. The flag is read before the
  // snapshot: an event acknowledged before this call set it, or has been written since.
  const bool campaigns_complete =
      campaign_rows_complete_ && !aggregates_held_.load(std::memory_order_acquire);
  std::vector<Message> out;
  Status s = Read([&](Connection& c) {
    if (q.cid && campaigns_complete) {
      auto known = c.Prepare("SELECT 1 FROM campaigns WHERE site_id = ? AND cid = ?");
      if (!known.ok()) return known.status();
      (*known)->Bind(1, q.site_id).Bind(2, *q.cid);
      Status step;
      const bool found = (*known)->Step(&step);
      (*known)->Reset();
      if (!step.ok() || !found) return step;
    }
    auto st = c.Prepare(sql);
    if (!st.ok()) return st.status();
    Statement& stmt = **st;
    stmt.Bind(1, q.site_id);
    if (q.before_id > 0) stmt.Bind(2, q.before_id);
    if (q.endpoint_id) stmt.Bind(3, *q.endpoint_id);
    if (q.status) stmt.Bind(4, static_cast<int>(*q.status));
    if (q.cid) stmt.Bind(5, *q.cid);
    stmt.Bind(6, q.limit);
    if (q.batch > 0) stmt.Bind(7, q.batch);
    Status step;
    while (stmt.Step(&step)) out.push_back(ReadMessage(stmt));
    stmt.Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<Message> SqliteStore::GetMessage(const std::string& site_id, int64_t message_id) {
  std::optional<Message> message;
  Status s = Read([&](Connection& c) {
    auto st =
        c.Prepare(std::string("SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                              "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                  kShownBatch + ", " + kEventColumns +
                  " FROM messages m JOIN events e ON e.id = m.event_rowid "
                  "WHERE m.id = ? AND m.site_id = ?");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, message_id).Bind(2, site_id);
    Status step;
    if ((*st)->Step(&step)) message = ReadMessage(**st);
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  if (!message) return model::NotFound("message not found");
  return std::move(*message);
}

StatusOr<std::vector<Attempt>> SqliteStore::ListAttempts(int64_t message_id) {
  std::vector<Attempt> out;
  Status s = Read([&](Connection& c) {
    // The latest in the message's row (migration 17), the others in attempts.
    auto st = c.Prepare(
        "SELECT attempt, at, status_code, latency_us, error, response, batch_id FROM attempts "
        "WHERE message_id = ?1 AND attempt NOT IN "
        "(SELECT last_attempt FROM messages WHERE id = ?1) "
        "UNION ALL SELECT last_attempt, last_at, last_status, last_latency_us, last_error, "
        "last_response, last_batch_id FROM messages WHERE id = ?1 AND last_attempt > 0 "
        "ORDER BY 1");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, message_id);
    Status step;
    while ((*st)->Step(&step)) {
      out.push_back(Attempt{static_cast<int>((*st)->Int(0)), (*st)->Int(1),
                            static_cast<int>((*st)->Int(2)), (*st)->Int(3), (*st)->Text(4),
                            (*st)->Text(5), (*st)->Int(6)});
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<DueMessage> SqliteStore::RequeueMessage(const std::string& site_id, int64_t message_id,
                                                 int64_t now_ms) {
  DueMessage due;
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "UPDATE messages SET status = 0, next_attempt_at = ?, batch_id = -1 "
        "WHERE id = ? AND site_id = ? AND NOT (status = 0 AND batch_id > 0) "
        "AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted = 0) "
        "AND NOT (status = 0 AND batch_id = 0 AND attempts = 0 AND "
        "(SELECT batch_max_events FROM endpoints e WHERE e.id = messages.endpoint_id) > 0) "
        "RETURNING id, endpoint_id, attempts, splits");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, now_ms).Bind(2, message_id).Bind(3, site_id);
    Status step;
    const bool found = (*st)->Step(&step);
    if (found)
      due = DueMessage{(*st)->Int(0),
                       (*st)->Text(1),
                       now_ms,
                       static_cast<int>((*st)->Int(2)),
                       {},
                       kAlone,
                       static_cast<int>((*st)->Int(3))};
    (*st)->Reset();
    if (!step.ok()) return step;
    if (found) return Status::Ok();
    // Why not: its endpoint is gone, or it is pending in a batch (taking it out would change the
    // batch that is retried under its id), or it waits for its first batch, or there is no such
    // message.
    auto why = c.Prepare(
        "SELECT e.deleted IS NOT 0, m.status = 0 AND m.batch_id > 0, m.batch_id, "
        "m.status = 0 AND m.batch_id = 0 AND m.attempts = 0 AND e.batch_max_events > 0 "
        "FROM messages m LEFT JOIN endpoints e ON e.id = m.endpoint_id "
        "WHERE m.id = ? AND m.site_id = ?");
    if (!why.ok()) return why.status();
    (*why)->Bind(1, message_id).Bind(2, site_id);
    Status refusal = model::NotFound("message not found");
    if ((*why)->Step(&step)) {
      if ((*why)->Int(0) != 0) {
        refusal = internal::EndpointDeleted();
      } else if ((*why)->Int(1) != 0) {
        refusal = internal::WaitingInBatch(instance_id_, (*why)->Int(2));
      } else if ((*why)->Int(3) != 0) {
        refusal = internal::WaitingForBatch();
      }
    }
    (*why)->Reset();
    if (!step.ok()) return step;
    return refusal;
  });
  if (!s.ok()) return s;
  return due;
}

// The events are found on a read connection, and their messages made kReplayPage at a time,
// each page a write of its own: no index has occurred_at, and the scan with up to max_events
// inserts must not hold the one writer, and every ingest queued behind it, for seconds. A
// crash half-way leaves the pages made so far, as if the window had been smaller.
StatusOr<std::vector<DueMessage>> SqliteStore::ReplayEvents(const ReplayQuery& q, int64_t now_ms) {
  std::vector<int64_t> events;
  Status found = Read([&](Connection& c) {
    std::string sql =
        "SELECT id FROM events WHERE site_id = ?2 AND occurred_at >= ?3 AND occurred_at < ?4 AND "
        // Only the actions the endpoint takes: a replay never sends a Dismiss to an endpoint
        // that did not ask for one.
        "((SELECT events FROM endpoints WHERE id = ?1) & (1 << action)) <> 0";
    if (q.cid) sql += " AND cid = ?5";
    if (q.reference_id) sql += " AND reference_id = ?6";
    // The endpoint's filter: each named field's list as a JSON array, ?8 onwards.
    std::vector<std::string> lists;
    for (int f = 0; f < model::kFilterFields; ++f) {
      const auto field = static_cast<model::FilterField>(f);
      const std::vector<std::string>* values = q.field_filter.values(field);
      if (values == nullptr) continue;
      model::AppendJsonStringArray(lists.emplace_back(), *values);
      sql += " AND " + std::string(model::FilterFieldName(field)) +
             " IN (SELECT value FROM json_each(?" + std::to_string(7 + lists.size()) + "))";
    }
    sql += " ORDER BY id LIMIT ?7";
    auto st = c.Prepare(sql);
    if (!st.ok()) return st.status();
    Statement& stmt = **st;
    stmt.Bind(1, q.endpoint_id)
        .Bind(2, q.site_id)
        .Bind(3, q.since_ms)
        .Bind(4, q.until_ms)
        .Bind(7, static_cast<int64_t>(q.max_events) + 1);
    if (q.cid) stmt.Bind(5, *q.cid);
    if (q.reference_id) stmt.Bind(6, *q.reference_id);
    for (size_t i = 0; i < lists.size(); ++i) stmt.Bind(static_cast<int>(8 + i), lists[i]);
    Status step;
    while (stmt.Step(&step)) events.push_back(stmt.Int(0));
    stmt.Reset();
    return step;
  });
  if (!found.ok()) return found;
  if (events.size() > q.max_events) return internal::ReplayTooLarge(q.max_events);

  std::vector<DueMessage> out;
  out.reserve(events.size());
  for (size_t first = 0; first < events.size(); first += kReplayPage) {
    const size_t end = std::min(events.size(), first + kReplayPage);
    std::vector<DueMessage> made_here;
    Status made = writes_.Run([&](Connection& c) {
      made_here.clear();
      // An event that retention deleted since the read makes no message.
      auto st = c.Prepare(
          "INSERT INTO messages(id, event_rowid, site_id, endpoint_id, status, next_attempt_at, "
          "created_at) SELECT ?1, id, site_id, ?2, 0, ?3, ?3 FROM events WHERE id = ?4");
      if (!st.ok()) return st.status();
      Statement& stmt = **st;
      for (size_t i = first; i < end; ++i) {
        stmt.Bind(1, message_ids_.Peek()).Bind(2, q.endpoint_id).Bind(3, now_ms).Bind(4, events[i]);
        if (Status s = stmt.Run(); !s.ok()) return s;
        if (c.Changes() == 1) {
          made_here.push_back(DueMessage{message_ids_.Take(), q.endpoint_id, now_ms, 0, {}});
        }
      }
      return Status::Ok();
    });
    if (!made.ok()) return made;
    out.insert(out.end(), made_here.begin(), made_here.end());
  }
  return out;
}

StatusOr<EndpointStats> SqliteStore::GetEndpointStats(const std::string& endpoint_id,
                                                      int64_t since_ms) {
  EndpointStats stats;
  internal::LatencyHistogram latencies;
  Status s = Read([&](Connection& c) {
    auto st = c.Prepare(
        "SELECT latency_bucket, sum(attempts), sum(successes) FROM attempt_stats_hour "
        "WHERE endpoint_id = ? AND hour >= ? GROUP BY latency_bucket");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, endpoint_id).Bind(2, internal::AttemptHour(since_ms));
    Status step;
    while ((*st)->Step(&step)) {
      const auto attempts = static_cast<uint64_t>((*st)->Int(1));
      latencies[static_cast<int>((*st)->Int(0))] += attempts;
      stats.attempts += attempts;
      stats.successes += static_cast<uint64_t>((*st)->Int(2));
    }
    (*st)->Reset();
    if (!step.ok()) return step;
    // Each status is written out, not bound, so that its partial index serves the count.
    for (const auto& [sql, count] :
         {std::pair{"SELECT count(*) FROM messages WHERE endpoint_id = ? AND status = 0",
                    &stats.pending},
          std::pair{"SELECT count(*) FROM messages WHERE endpoint_id = ? AND status = 2",
                    &stats.failed_messages}}) {
      auto counted = c.Prepare(sql);
      if (!counted.ok()) return counted.status();
      (*counted)->Bind(1, endpoint_id);
      if ((*counted)->Step(&step)) *count = static_cast<uint64_t>((*counted)->Int(0));
      (*counted)->Reset();
      if (!step.ok()) return step;
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  stats.failures = stats.attempts - stats.successes;
  stats.latency_p50_us = internal::LatencyPercentile(latencies, 0.50);
  stats.latency_p99_us = internal::LatencyPercentile(latencies, 0.99);
  return stats;
}

Message SqliteStore::ReadMessage(const Statement& s) const {
  Message m;
  m.id = s.Int(0);
  m.site_id = s.Text(1);
  m.endpoint_id = s.Text(2);
  m.status = static_cast<MessageStatus>(s.Int(3));
  m.attempts = static_cast<int>(s.Int(4));
  m.next_attempt_ms = s.Int(5);
  m.created_at_ms = s.Int(6);
  m.last_status_code = static_cast<int>(s.Int(7));
  m.last_error = s.Text(8);
  m.batch = s.Int(9);
  m.event = ReadEvent(s, 10, instance_id_);
  return m;
}

}  // namespace pushhook::store::sqlite
