#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

namespace {

// Whether endpoint `p` takes event `ins` by its action and by every field its filter names but
// the cid (which the fan-out matches through the index).
const std::string& TakesEventSql() {
  static const std::string sql = [] {
    std::string out = "(p.events & (1 << ins.action::int)) <> 0";
    for (int f = 0; f < model::kFilterFields; ++f) {
      const auto field = static_cast<model::FilterField>(f);
      if (field == model::FilterField::kCid) continue;
      const std::string name(model::FilterFieldName(field));
      out += " AND (NOT (p.field_filter ? '" + name + "') OR p.field_filter->'" + name +
             "' ? ins." + name + ")";
    }
    return out + " ";
  }();
  return sql;
}

}  // namespace

Status PostgresStore::ApplyAppend(Connection& c, const std::string& site_id,
                                  const std::vector<model::Event>& events, int64_t now_ms,
                                  AppendResult* result) {
  *result = AppendResult{};  // a transaction that is run again starts over
  ArrayLiteral event_id, action, cookie_id, cid, title, reference_id, utm_campaign, utm_content,
      utm_medium, utm_source, utm_term, clicked_button, occurred_at, replay_key;
  for (const model::Event& e : events) {
    if (e.event_id.empty()) {
      event_id.AddNull();
    } else {
      event_id.Add(e.event_id);
    }
    if (e.replay_key.empty()) {
      replay_key.AddNull();
    } else {
      replay_key.Add(e.replay_key);
    }
    action.Add(internal::ActionColumn(e.action));
    cookie_id.Add(e.cookie_id);
    cid.Add(e.cid);
    title.Add(e.notification_title);
    reference_id.Add(e.reference_id);
    utm_campaign.Add(e.utm_campaign);
    utm_content.Add(e.utm_content);
    utm_medium.Add(e.utm_medium);
    utm_source.Add(e.utm_source);
    utm_term.Add(e.utm_term);
    clicked_button.Add(e.clicked_button);
    occurred_at.Add(e.occurred_at_ms);
  }
  // One statement stores the request's events, skips the site's duplicates (by event_id or by
  // replay key: the conflict names no index, so either counts), and makes a message for each
  // (stored event, endpoint that takes its action). A disabled endpoint gets
  // its messages too: they wait, pending, until it is enabled again (DESIGN section 4).
  auto r = c.Query(
      "WITH input AS (SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], "
      "  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
      "  $12::text[], $13::int[], $14::bigint[], $16::text[]) WITH ORDINALITY AS u(event_id, "
      "  action, cookie_id, cid, notification_title, reference_id, utm_campaign, utm_content, "
      "  utm_medium, utm_source, utm_term, clicked_button, occurred_at, replay_key, n)), "
      "ins AS (INSERT INTO events(site_id, event_id, action, cookie_id, cid, "
      "  notification_title, reference_id, utm_campaign, utm_content, utm_medium, utm_source, "
      "  utm_term, clicked_button, occurred_at, received_at, replay_key) "
      "  SELECT $1, event_id, action, cookie_id, cid, notification_title, reference_id, "
      "  utm_campaign, utm_content, utm_medium, utm_source, utm_term, clicked_button, "
      "  occurred_at, $15, replay_key FROM input ORDER BY n "
      "  ON CONFLICT DO NOTHING "
      "  RETURNING id, action, cookie_id, cid, reference_id, utm_campaign, utm_content, "
      "  utm_medium, utm_source, utm_term, clicked_button, occurred_at, notification_title, "
      "  event_id), "
      // The endpoints that take each event: those whose filter names no cid, and those found
      // through the filter index by the event's cid; both also checked on the other fields.
      "target AS (SELECT ins.id AS event_row, p.id AS endpoint_id, p.created_at FROM ins "
      "  JOIN endpoints p ON p.site_id = $1 AND p.deleted = 0 AND "
      "  NOT (p.field_filter ? 'cid') AND " +
          TakesEventSql() +
          "  UNION ALL SELECT ins.id, p.id, p.created_at FROM ins JOIN endpoints p "
          "  ON p.field_filter @> jsonb_build_object('cid', jsonb_build_array(ins.cid)) AND "
          "  p.site_id = $1 AND p.deleted = 0 AND " +
          TakesEventSql() +
          "), "
          "msg AS (INSERT INTO messages(event_rowid, site_id, endpoint_id, status, "
          "  next_attempt_at, created_at) SELECT event_row, $1, endpoint_id, 0, $15, $15 "
          "  FROM target ORDER BY event_row, created_at, endpoint_id "
          "  RETURNING id, event_rowid, endpoint_id) "
          "SELECT ins.*, msg.id, msg.endpoint_id FROM ins LEFT JOIN msg "
          "  ON msg.event_rowid = ins.id ORDER BY ins.id, msg.id",
      Params()
          .Add(site_id)
          .Add(event_id.Finish())
          .Add(action.Finish())
          .Add(cookie_id.Finish())
          .Add(cid.Finish())
          .Add(title.Finish())
          .Add(reference_id.Finish())
          .Add(utm_campaign.Finish())
          .Add(utm_content.Finish())
          .Add(utm_medium.Finish())
          .Add(utm_source.Finish())
          .Add(utm_term.Finish())
          .Add(clicked_button.Finish())
          .Add(occurred_at.Finish())
          .Add(now_ms)
          .Add(replay_key.Finish()));
  if (!r.ok()) return r.status();
  model::AggregateBatch* aggregates = options_.aggregates ? &tx_aggregates_[site_id] : nullptr;
  // Rows: each stored event (as stored) with one of its messages, or with none.
  std::shared_ptr<StoredEvent> stored;
  int64_t last_event = 0;
  for (int i = 0; i < r->rows(); ++i) {
    const int64_t event_row = r->Int(i, 0);
    if (event_row != last_event) {
      last_event = event_row;
      ++result->accepted;
      stored = std::make_shared<StoredEvent>();
      stored->site_id = site_id;
      model::Event& e = stored->event;
      e.action = internal::ActionFromColumn(r->Int(i, 1));
      e.cookie_id = r->String(i, 2);
      e.cid = r->String(i, 3);
      e.reference_id = r->String(i, 4);
      e.utm_campaign = r->String(i, 5);
      e.utm_content = r->String(i, 6);
      e.utm_medium = r->String(i, 7);
      e.utm_source = r->String(i, 8);
      e.utm_term = r->String(i, 9);
      e.clicked_button = static_cast<int>(r->Int(i, 10));
      e.occurred_at_ms = r->Int(i, 11);
      e.notification_title = r->String(i, 12);
      e.event_id = r->IsNull(i, 13) ? FormatEventId(instance_id_, event_row) : r->String(i, 13);
      if (aggregates) aggregates->Add(e, now_ms);
    }
    if (r->IsNull(i, 14)) continue;  // no endpoint takes it
    DueMessage due{r->Int(i, 14), r->String(i, 15), now_ms, 0, stored};
    auto [range, inserted] = tx_messages_.try_emplace(due.endpoint_id, due.id, due.id);
    if (!inserted) {
      range->second.first = std::min(range->second.first, due.id);
      range->second.second = std::max(range->second.second, due.id);
    }
    result->messages.push_back(std::move(due));
  }
  result->duplicates = events.size() - result->accepted;
  return Status::Ok();
}

Status PostgresStore::ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records) {
  // An attempt's message that ended while it was out: delivered, or failed with its endpoint
  // deleted, and this attempt did not deliver it.
  static constexpr const char* kEndedMeanwhile =
      "(u.status <> 1 AND (m.status = 1 OR (m.status = 2 AND "
      "(SELECT deleted FROM endpoints e WHERE e.id = m.endpoint_id) = 1)))";
  ArrayLiteral id, attempt, at, code, latency, error, response, status, next, hour, bucket,
      succeeded, counted, batch, batch_from, splits, sent_in;
  for (const AttemptRecord& r : records) {
    id.Add(r.message_id);
    attempt.Add(r.attempt);
    at.Add(r.at_ms);
    code.Add(r.status_code);
    latency.Add(r.latency_us);
    error.Add(r.error);
    response.Add(r.response_prefix);
    status.Add(static_cast<int>(r.new_status));
    next.Add(r.next_attempt_ms);
    hour.Add(internal::AttemptHour(r.at_ms));
    bucket.Add(internal::LatencyBucket(r.latency_us));
    succeeded.Add(internal::AttemptSucceeded(r.status_code) ? 1 : 0);
    counted.Add(r.counts_request ? 1 : 0);
    batch.Add(r.batch);
    batch_from.Add(r.batch_from);
    splits.Add(r.splits);
    sent_in.Add(r.sent_in);
  }
  // The updated messages name the endpoints whose hourly counts the attempts join: one row per
  // (endpoint, hour, bucket), in key order so that writers on several nodes lock rows alike. A
  // message deleted meanwhile updates nothing and is not counted, nor is a batch's request
  // counted again for its other members.
  auto r = c.Query(
      std::string(
          "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], "
          "  $5::bigint[], $6::text[], $7::text[], $8::int[], $9::bigint[], $10::bigint[], "
          "  $11::int[], $12::int[], $13::int[], $14::bigint[], $15::bigint[], $16::int[], "
          "  $17::bigint[]) "
          "  AS u(id, attempt, at, code, latency, error, response, status, next, hour, bucket, "
          "  succeeded, counted, batch, batch_from, splits, sent_in)), "
          "recorded AS (INSERT INTO attempts(message_id, attempt, at, status_code, latency_us, "
          "  error, response, batch_id) SELECT id, attempt, at, code, latency, error, response, "
          "  sent_in FROM u "
          "  ON CONFLICT (message_id, attempt) DO UPDATE SET at = excluded.at, "
          "  status_code = excluded.status_code, latency_us = excluded.latency_us, "
          "  error = excluded.error, response = excluded.response, "
          "  batch_id = excluded.batch_id), "
          // A message that ended while its attempt was out stays ended unless this attempt
          // delivered it (as in the SQLite store's ApplyAttempts, which says why).
          "updated AS (UPDATE messages m SET "
          "  status = CASE WHEN " +
          std::string(kEndedMeanwhile) +
          " THEN m.status ELSE u.status END, "
          "  attempts = u.attempt, "
          "  next_attempt_at = CASE WHEN " +
          kEndedMeanwhile +
          " THEN m.next_attempt_at ELSE u.next END, "
          "  last_status = u.code, last_error = u.error, "
          "  batch_id = CASE WHEN u.batch > 0 AND m.batch_id = u.batch_from THEN u.batch "
          "  ELSE m.batch_id END, "
          "  splits = u.splits "
          "  FROM u WHERE m.id = u.id RETURNING m.id, m.endpoint_id) "
          "INSERT INTO attempt_stats_hour(endpoint_id, hour, latency_bucket, attempts, "
          "  successes) SELECT updated.endpoint_id, u.hour, u.bucket, count(*), sum(u.succeeded) "
          "  FROM u JOIN updated ON updated.id = u.id WHERE u.counted = 1 "
          "  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3") +
          internal::kUpsertAttemptStatsTail,
      Params()
          .Add(id.Finish())
          .Add(attempt.Finish())
          .Add(at.Finish())
          .Add(code.Finish())
          .Add(latency.Finish())
          .Add(error.Finish())
          .Add(response.Finish())
          .Add(status.Finish())
          .Add(next.Finish())
          .Add(hour.Finish())
          .Add(bucket.Finish())
          .Add(succeeded.Finish())
          .Add(counted.Finish())
          .Add(batch.Finish())
          .Add(batch_from.Finish())
          .Add(splits.Finish())
          .Add(sent_in.Finish()));
  return r.status();
}

Status PostgresStore::ApplyBatch(Connection& c, const std::vector<int64_t>& message_ids,
                                 int64_t batch) {
  ArrayLiteral ids;
  for (const int64_t id : message_ids) ids.Add(id);
  return c
      .Query("UPDATE messages SET batch_id = $1 WHERE id = ANY($2::bigint[])",
             Params().Add(batch).Add(ids.Finish()))
      .status();
}

}  // namespace pushhook::store::postgres
