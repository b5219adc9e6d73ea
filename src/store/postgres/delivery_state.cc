#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

StatusOr<std::vector<std::string>> PostgresStore::ListPendingEndpoints() {
  auto r = Query("SELECT DISTINCT endpoint_id FROM messages WHERE status = 0 ORDER BY 1", Params());
  if (!r.ok()) return r.status();
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(r->String(i, 0));
  return out;
}

StatusOr<std::vector<DueMessage>> PostgresStore::LoadPendingForEndpoint(
    const std::string& endpoint_id, int64_t after_id, int limit) {
  auto r = Query(
      "SELECT id, endpoint_id, next_attempt_at, attempts, batch_id, splits FROM messages "
      "WHERE endpoint_id = $3 AND status = 0 AND id > $1 ORDER BY id LIMIT $2",
      Params().Add(after_id).Add(limit).Add(endpoint_id));
  if (!r.ok()) return r.status();
  return ReadDue(*r);
}

StatusOr<Delivery> PostgresStore::LoadDelivery(int64_t message_id) {
  static const std::string sql = DeliverySql("m.id = $1");
  auto r = Query(sql, Params().Add(message_id));
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return model::NotFound("message not found");
  return ReadDelivery(*r, 0);
}

// One round trip for a batch: what makes a node that delivers messages another node stored
// cheap in statements (BENCHMARKS.md, figure 8).
StatusOr<std::vector<Delivery>> PostgresStore::LoadDeliveries(const std::vector<int64_t>& ids) {
  ArrayLiteral list;
  for (const int64_t id : ids) list.Add(id);
  static const std::string sql = DeliverySql("m.id = ANY($1::bigint[])");
  auto r = Query(sql, Params().Add(list.Finish()));
  if (!r.ok()) return r.status();
  std::vector<Delivery> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.push_back(ReadDelivery(*r, i));
  return out;
}

// The batch a message shows (DESIGN section 1: "with the batch id it went in"): the one it is
// fixed in, or, redelivered to go alone, the last it went in, so that the log still says where
// it went before.
constexpr char kShownBatch[] =
    "CASE WHEN m.batch_id >= 0 THEN m.batch_id ELSE coalesce((SELECT a.batch_id FROM attempts a "
    "WHERE a.message_id = m.id AND a.batch_id > 0 ORDER BY a.attempt DESC LIMIT 1), 0) END";

StatusOr<std::vector<Message>> PostgresStore::ListMessages(const MessageQuery& q) {
  if (q.cid && campaign_rows_complete_) {
    // Every event's campaign has its row: without one there are no messages, and the scan below
    // would read the site's whole log to learn that (a mistyped ?cid= in the dashboard).
    auto known = Query("SELECT 1 FROM campaigns WHERE site_id = $1 AND cid = $2",
                       Params().Add(q.site_id).Add(*q.cid));
    if (!known.ok()) return known.status();
    if (known->rows() == 0) return std::vector<Message>{};
  }
  std::string sql = std::string(
                        "SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                        "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                    kShownBatch + ", " + kEventColumns +
                    " FROM messages m JOIN events e ON e.id = m.event_rowid "
                    "WHERE m.site_id = $1";
  Params params;
  params.Add(q.site_id);
  int n = 1;
  if (q.before_id > 0) {
    sql += " AND m.id < $" + std::to_string(++n);
    params.Add(q.before_id);
  }
  if (q.endpoint_id) {
    sql += " AND m.endpoint_id = $" + std::to_string(++n);
    params.Add(*q.endpoint_id);
  }
  if (q.status) {
    sql += " AND m.status = $" + std::to_string(++n);
    params.Add(static_cast<int>(*q.status));
  }
  if (q.cid) {
    sql += " AND e.cid = $" + std::to_string(++n);
    params.Add(*q.cid);
  }
  if (q.batch > 0) {
    // Fixed in the batch, or with an attempt that went in it; a batch is numbered after its
    // first member, so none is older than that.
    const std::string batch = "$" + std::to_string(++n);
    sql +=
        " AND m.id >= " + batch + " AND (m.batch_id = " + batch +
        " OR EXISTS (SELECT 1 FROM attempts a WHERE a.message_id = m.id AND a.batch_id = " + batch +
        "))";
    params.Add(q.batch);
  }
  sql += " ORDER BY m.id DESC LIMIT $" + std::to_string(++n);
  params.Add(q.limit);
  auto r = Query(sql, params);
  if (!r.ok()) return r.status();
  std::vector<Message> out;
  for (int i = 0; i < r->rows(); ++i) out.push_back(ReadMessage(*r, i));
  return out;
}

StatusOr<Message> PostgresStore::GetMessage(const std::string& site_id, int64_t message_id) {
  auto r = Query(std::string("SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                             "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                     kShownBatch + ", " + kEventColumns +
                     " FROM messages m JOIN events e ON e.id = m.event_rowid "
                     "WHERE m.id = $1 AND m.site_id = $2",
                 Params().Add(message_id).Add(site_id));
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return model::NotFound("message not found");
  return ReadMessage(*r, 0);
}

StatusOr<std::vector<Attempt>> PostgresStore::ListAttempts(int64_t message_id) {
  auto r = Query(
      "SELECT attempt, at, status_code, latency_us, error, response, batch_id FROM attempts "
      "WHERE message_id = $1 ORDER BY attempt",
      Params().Add(message_id));
  if (!r.ok()) return r.status();
  std::vector<Attempt> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(Attempt{static_cast<int>(r->Int(i, 0)), r->Int(i, 1),
                          static_cast<int>(r->Int(i, 2)), r->Int(i, 3), r->String(i, 4),
                          r->String(i, 5), r->Int(i, 6)});
  }
  return out;
}

StatusOr<DueMessage> PostgresStore::RequeueMessage(const std::string& site_id, int64_t message_id,
                                                   int64_t now_ms) {
  auto r = Query(
      "UPDATE messages SET status = 0, next_attempt_at = $1, batch_id = -1 "
      "WHERE id = $2 AND site_id = $3 AND NOT (status = 0 AND batch_id > 0) "
      "AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted = 0) "
      "AND NOT (status = 0 AND batch_id = 0 AND attempts = 0 AND "
      "(SELECT batch_max_events FROM endpoints e WHERE e.id = messages.endpoint_id) > 0) "
      "RETURNING id, endpoint_id, attempts, splits",
      Params().Add(now_ms).Add(message_id).Add(site_id));
  if (!r.ok()) return r.status();
  if (r->rows() == 0) {
    // Why not: its endpoint is gone, or it is pending in a batch (taking it out would change the
    // batch that is retried under its id), or it waits for its first batch, or there is no such
    // message.
    auto why = Query(
        "SELECT (coalesce(e.deleted, 1) <> 0)::int, (m.status = 0 AND m.batch_id > 0)::int, "
        "m.batch_id, "
        "(m.status = 0 AND m.batch_id = 0 AND m.attempts = 0 AND e.batch_max_events > 0)::int "
        "FROM messages m LEFT JOIN endpoints e ON e.id = m.endpoint_id "
        "WHERE m.id = $1 AND m.site_id = $2",
        Params().Add(message_id).Add(site_id));
    if (!why.ok()) return why.status();
    if (why->rows() == 0) return model::NotFound("message not found");
    if (why->Int(0, 0) != 0) return internal::EndpointDeleted();
    if (why->Int(0, 1) != 0) return internal::WaitingInBatch(instance_id_, why->Int(0, 2));
    if (why->Int(0, 3) != 0) return internal::WaitingForBatch();
    return model::NotFound("message not found");
  }
  DueMessage due{r->Int(0, 0),
                 r->String(0, 1),
                 now_ms,
                 static_cast<int>(r->Int(0, 2)),
                 {},
                 kAlone,
                 static_cast<int>(r->Int(0, 3))};
  NotifyMessages(due.endpoint_id, due.id, due.id);
  return due;
}

StatusOr<std::vector<DueMessage>> PostgresStore::ReplayEvents(const ReplayQuery& q,
                                                              int64_t now_ms) {
  // The events to send, counted first and then made into messages.
  std::string events =
      "FROM events WHERE site_id = $2 AND occurred_at >= $3 AND occurred_at < $4 AND "
      // Only the actions the endpoint takes: a replay never sends a Dismiss to an endpoint that
      // did not ask for one.
      "((SELECT events FROM endpoints WHERE id = $1) & (1 << action::int)) <> 0";
  Params params;
  params.Add(q.endpoint_id).Add(q.site_id).Add(q.since_ms).Add(q.until_ms);
  int n = 4;
  if (q.cid) {
    events += " AND cid = $" + std::to_string(++n);
    params.Add(*q.cid);
  }
  if (q.reference_id) {
    events += " AND reference_id = $" + std::to_string(++n);
    params.Add(*q.reference_id);
  }
  // The endpoint's filter.
  for (int f = 0; f < model::kFilterFields; ++f) {
    const auto field = static_cast<model::FilterField>(f);
    const std::vector<std::string>* values = q.field_filter.values(field);
    if (values == nullptr) continue;
    ArrayLiteral list;
    for (const std::string& v : *values) list.Add(v);
    events += " AND " + std::string(model::FilterFieldName(field)) + " = ANY($" +
              std::to_string(++n) + "::text[])";
    params.Add(list.Finish());
  }
  const std::string most = std::to_string(q.max_events);
  // One more than allowed is enough to tell "too many", which makes nothing.
  const std::string count =
      "SELECT count(*) FROM (SELECT 1 " + events + " LIMIT " + most + " + 1) s";
  Params with_now = params;
  with_now.Add(now_ms);
  const std::string now = "$" + std::to_string(n + 1);
  const std::string make =
      "INSERT INTO messages(event_rowid, site_id, endpoint_id, status, next_attempt_at, "
      "created_at) SELECT id, site_id, $1, 0, " +
      now + ", " + now + " " + events + " ORDER BY id LIMIT " + most + " RETURNING id";
  std::vector<DueMessage> out;
  Status made = InTransaction([&](Connection& c) -> Status {
    out.clear();
    auto counted = c.Query(count, params);
    if (!counted.ok()) return counted.status();
    if (static_cast<size_t>(counted->Int(0, 0)) > q.max_events) {
      return internal::ReplayTooLarge(q.max_events);
    }
    auto r = c.Query(make, with_now);
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back(DueMessage{r->Int(i, 0), q.endpoint_id, now_ms, 0, {}});
    }
    return Status::Ok();
  });
  if (!made.ok()) return made;
  if (!out.empty()) {
    const auto [lo, hi] = std::minmax_element(
        out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    NotifyMessages(q.endpoint_id, lo->id, hi->id);
  }
  return out;
}

StatusOr<EndpointStats> PostgresStore::GetEndpointStats(const std::string& endpoint_id,
                                                        int64_t since_ms) {
  EndpointStats stats;
  auto r = Query(
      "SELECT latency_bucket, sum(attempts), sum(successes) FROM attempt_stats_hour "
      "WHERE endpoint_id = $1 AND hour >= $2 GROUP BY latency_bucket",
      Params().Add(endpoint_id).Add(internal::AttemptHour(since_ms)));
  if (!r.ok()) return r.status();
  internal::LatencyHistogram latencies;
  for (int i = 0; i < r->rows(); ++i) {
    const auto attempts = static_cast<uint64_t>(r->Int(i, 1));
    latencies[static_cast<int>(r->Int(i, 0))] += attempts;
    stats.attempts += attempts;
    stats.successes += static_cast<uint64_t>(r->Int(i, 2));
  }
  stats.failures = stats.attempts - stats.successes;
  stats.latency_p50_us = internal::LatencyPercentile(latencies, 0.50);
  stats.latency_p99_us = internal::LatencyPercentile(latencies, 0.99);
  // Each status is written out, not bound, so that its partial index serves the count.
  for (const auto& [sql, count] :
       {std::pair{"SELECT count(*) FROM messages WHERE endpoint_id = $1 AND status = 0",
                  &stats.pending},
        std::pair{"SELECT count(*) FROM messages WHERE endpoint_id = $1 AND status = 2",
                  &stats.failed_messages}}) {
    auto counted = Query(sql, Params().Add(endpoint_id));
    if (!counted.ok()) return counted.status();
    *count = static_cast<uint64_t>(counted->Int(0, 0));
  }
  auto circuit = Query(std::string("SELECT circuit_open_until - ") + kNowMs +
                           " FROM endpoint_leases WHERE endpoint_id = $1 AND expires_at > " +
                           kNowMs + " AND circuit_open_until IS NOT NULL",
                       Params().Add(endpoint_id));
  if (!circuit.ok()) return circuit.status();
  if (circuit->rows() > 0) stats.circuit_open_for_ms = circuit->Int(0, 0);
  return stats;
}

// A message with its event and endpoint, for the messages that `condition` picks.
std::string PostgresStore::DeliverySql(std::string_view condition) {
  std::string sql = std::string("SELECT m.id, m.site_id, m.attempts, m.status, ") + kEventColumns;
  for (std::string_view column : Split(kEndpointColumns)) sql += ", p." + std::string(column);
  return sql +
         " FROM messages m JOIN events e ON e.id = m.event_rowid "
         "JOIN endpoints p ON p.id = m.endpoint_id WHERE " +
         std::string(condition);
}

Delivery PostgresStore::ReadDelivery(const Result& r, int row) const {
  Delivery d;
  d.message_id = r.Int(row, 0);
  d.site_id = r.String(row, 1);
  d.attempts = static_cast<int>(r.Int(row, 2));
  d.status = static_cast<MessageStatus>(r.Int(row, 3));
  d.event = ReadEvent(r, row, 4, instance_id_);
  d.endpoint = ReadEndpoint(r, row, 4 + kEventColumnCount, box_);
  return d;
}

Message PostgresStore::ReadMessage(const Result& r, int row) const {
  Message m;
  m.id = r.Int(row, 0);
  m.site_id = r.String(row, 1);
  m.endpoint_id = r.String(row, 2);
  m.status = static_cast<MessageStatus>(r.Int(row, 3));
  m.attempts = static_cast<int>(r.Int(row, 4));
  m.next_attempt_ms = r.Int(row, 5);
  m.created_at_ms = r.Int(row, 6);
  m.last_status_code = static_cast<int>(r.Int(row, 7));
  m.last_error = r.String(row, 8);
  m.batch = r.Int(row, 9);
  m.event = ReadEvent(r, row, 10, instance_id_);
  return m;
}

}  // namespace pushhook::store::postgres
