#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

namespace {

// Each entry is one schema version; pushhook_schema holds how many have run. Versions 1 and 2
// are the SQLite store's, in PostgreSQL's types; 3 is what several nodes need to share the work.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE sites(
  id text PRIMARY KEY,
  name text NOT NULL,
  ingest_key text NOT NULL UNIQUE,
  created_at bigint NOT NULL);
CREATE TABLE site_tokens(
  token_hash text PRIMARY KEY,
  site_id text NOT NULL REFERENCES sites(id),
  created_at bigint NOT NULL);
CREATE TABLE endpoints(
  id text PRIMARY KEY,
  site_id text NOT NULL REFERENCES sites(id),
  url text NOT NULL,
  description text NOT NULL,
  events integer NOT NULL,
  payload_format text NOT NULL,
  enabled integer NOT NULL,
  max_in_flight integer NOT NULL,
  rate_limit double precision NOT NULL,
  secret text NOT NULL,
  previous_secret text NOT NULL DEFAULT '',
  previous_secret_expires_at bigint NOT NULL DEFAULT 0,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  deleted integer NOT NULL DEFAULT 0);
CREATE INDEX endpoints_by_site ON endpoints(site_id);
CREATE TABLE events(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  site_id text NOT NULL,
  event_id text,
  action integer NOT NULL,
  cookie_id text NOT NULL,
  cid text NOT NULL,
  notification_title text NOT NULL,
  reference_id text NOT NULL,
  utm_campaign text NOT NULL,
  utm_content text NOT NULL,
  utm_medium text NOT NULL,
  utm_source text NOT NULL,
  utm_term text NOT NULL,
  clicked_button integer NOT NULL,
  occurred_at bigint NOT NULL,
  received_at bigint NOT NULL);
CREATE UNIQUE INDEX events_by_client_id ON events(site_id, event_id) WHERE event_id IS NOT NULL;
CREATE TABLE messages(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_rowid bigint NOT NULL,
  site_id text NOT NULL,
  endpoint_id text NOT NULL,
  status integer NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at bigint NOT NULL,
  created_at bigint NOT NULL,
  last_status integer NOT NULL DEFAULT 0,
  last_error text NOT NULL DEFAULT '');
CREATE INDEX messages_pending ON messages(id) WHERE status = 0;
CREATE INDEX messages_pending_by_endpoint ON messages(endpoint_id, id) WHERE status = 0;
CREATE INDEX messages_finished ON messages(status, next_attempt_at) WHERE status <> 0;
CREATE INDEX messages_by_site ON messages(site_id, id);
CREATE TABLE attempts(
  message_id bigint NOT NULL,
  attempt integer NOT NULL,
  at bigint NOT NULL,
  status_code integer NOT NULL,
  latency_us bigint NOT NULL,
  error text NOT NULL,
  response text NOT NULL,
  PRIMARY KEY(message_id, attempt));
)sql",
    R"sql(
CREATE TABLE stats_minute(
  site_id text NOT NULL,
  cid text NOT NULL,
  reference_id text NOT NULL,
  minute bigint NOT NULL,
  views bigint NOT NULL,
  clicks bigint NOT NULL,
  b0 bigint NOT NULL,
  b1 bigint NOT NULL,
  b2 bigint NOT NULL,
  PRIMARY KEY(site_id, cid, reference_id, minute));
CREATE INDEX stats_minute_by_time ON stats_minute(site_id, minute);
CREATE TABLE stats_utm_minute(
  site_id text NOT NULL,
  field integer NOT NULL,
  value text NOT NULL,
  cid text NOT NULL,
  reference_id text NOT NULL,
  minute bigint NOT NULL,
  views bigint NOT NULL,
  clicks bigint NOT NULL,
  PRIMARY KEY(site_id, field, cid, reference_id, minute, value));
CREATE TABLE stats_uniques_hour(
  site_id text NOT NULL,
  cid text NOT NULL,
  reference_id text NOT NULL,
  hour bigint NOT NULL,
  sketch bytea NOT NULL,
  PRIMARY KEY(site_id, cid, reference_id, hour));
CREATE TABLE campaigns(
  site_id text NOT NULL,
  cid text NOT NULL,
  views bigint NOT NULL,
  clicks bigint NOT NULL,
  b0 bigint NOT NULL,
  b1 bigint NOT NULL,
  b2 bigint NOT NULL,
  first_active bigint NOT NULL,
  last_active bigint NOT NULL,
  PRIMARY KEY(site_id, cid));
CREATE INDEX campaigns_by_activity ON campaigns(site_id, last_active DESC, cid);
)sql",
    R"sql(
CREATE TABLE nodes(
  node_id text PRIMARY KEY,
  heartbeat_at bigint NOT NULL);
CREATE TABLE endpoint_leases(
  endpoint_id text PRIMARY KEY,
  node_id text NOT NULL,
  expires_at bigint NOT NULL);
CREATE INDEX endpoint_leases_by_node ON endpoint_leases(node_id);
)sql",
    // 4: why and since when an endpoint is disabled (410 Gone, a refused
    // destination, ...), and what a site token may do (DESIGN section 3: admin or read).
    R"sql(
ALTER TABLE endpoints ADD COLUMN disabled_reason text NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN disabled_at bigint NOT NULL DEFAULT 0;
ALTER TABLE site_tokens ADD COLUMN scope text NOT NULL DEFAULT 'admin';
)sql",
    // 5: Dismiss, counted beside views and clicks (DESIGN sections 1 and 6).
    R"sql(
ALTER TABLE stats_minute ADD COLUMN dismissals bigint NOT NULL DEFAULT 0;
ALTER TABLE stats_utm_minute ADD COLUMN dismissals bigint NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN dismissals bigint NOT NULL DEFAULT 0;
)sql",
    // 6: signed beacons (DESIGN section 2a). Sites made before this get their secret when the
    // store opens (GiveSitesBeaconSecrets): making one takes a random generator SQL lacks.
    R"sql(
ALTER TABLE sites ADD COLUMN beacons text NOT NULL DEFAULT 'optional';
ALTER TABLE sites ADD COLUMN beacon_secret text NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN beacon_secret_previous text NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN beacon_secret_previous_until bigint NOT NULL DEFAULT 0;
)sql",
    // 7: a campaign's title (its latest notification title), for the dashboard's list.
    R"sql(
ALTER TABLE campaigns ADD COLUMN title text NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN title_at bigint NOT NULL DEFAULT 0;
)sql",
    // 8: each campaign's unique subscribers in one sketch, so that a page of the campaigns list
    // reads one sketch per campaign, not one per hour and run. Campaigns stored before this get
    // the union of their hourly sketches: the largest value of each register, read from either
    // encoding (model/hyperloglog.cc) and written sparse.
    R"sql(
CREATE TABLE stats_uniques_campaign(
  site_id text NOT NULL,
  cid text NOT NULL,
  sketch bytea NOT NULL,
  PRIMARY KEY(site_id, cid));
INSERT INTO stats_uniques_campaign(site_id, cid, sketch)
SELECT site_id, cid, decode(string_agg(lpad(to_hex(i % 256), 2, '0') || lpad(to_hex(i / 256), 2, '0')
                                       || lpad(to_hex(r), 2, '0'), '' ORDER BY i), 'hex')
FROM (SELECT site_id, cid, i, max(r) AS r
      FROM (SELECT site_id, cid, i, get_byte(sketch, i) AS r
            FROM stats_uniques_hour CROSS JOIN generate_series(0, 4095) AS i
            WHERE length(sketch) = 4096
            UNION ALL
            SELECT site_id, cid, get_byte(sketch, 3 * k) + 256 * get_byte(sketch, 3 * k + 1),
                   get_byte(sketch, 3 * k + 2)
            FROM stats_uniques_hour CROSS JOIN generate_series(0, length(sketch) / 3 - 1) AS k
            WHERE length(sketch) <> 4096) AS each_register
      WHERE r > 0
      GROUP BY site_id, cid, i) AS registers
GROUP BY site_id, cid;
)sql",
    // 9: an endpoint's filter on event fields (DESIGN section 3). Fan-out finds the endpoints
    // that list an event's cid through the GIN index, not by reading every list.
    R"sql(
ALTER TABLE endpoints ADD COLUMN field_filter jsonb NOT NULL DEFAULT '{}';
CREATE INDEX endpoints_by_filter ON endpoints USING gin (field_filter jsonb_path_ops);
)sql",
    // 10: batched delivery (DESIGN section 1): an endpoint's batch options, and the batch each
    // message went in (DueMessage::batch).
    R"sql(
ALTER TABLE endpoints ADD COLUMN batch_max_events int NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN batch_max_wait_ms int NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN batch_id bigint NOT NULL DEFAULT 0;
)sql",
    // 11: a beaconed event's replay key beside the client's event_id (DESIGN section 2a), which
    // it used to replace. Keys stored as event ids before move over, so replays stay refused.
    R"sql(
ALTER TABLE events ADD COLUMN replay_key text;
UPDATE events SET replay_key = event_id WHERE event_id LIKE 'bcn\_%';
CREATE UNIQUE INDEX events_by_replay_key ON events(site_id, replay_key)
  WHERE replay_key IS NOT NULL;
)sql",
    // 12: every previous secret a rotation keeps (store::PreviousSecret), not just the last: a
    // JSON array of {"secret": <sealed>, "until": <ms>}, taking over the one-secret columns. A
    // row never rotated holds a sealed empty secret and no time: it has nothing to keep.
    R"sql(
ALTER TABLE endpoints ADD COLUMN previous_secrets text NOT NULL DEFAULT '[]';
UPDATE endpoints SET previous_secrets = json_build_array(json_build_object(
    'secret', previous_secret, 'until', previous_secret_expires_at))::text
  WHERE previous_secret <> '' AND previous_secret_expires_at > 0;
ALTER TABLE endpoints DROP COLUMN previous_secret, DROP COLUMN previous_secret_expires_at;
ALTER TABLE sites ADD COLUMN previous_beacon_secrets text NOT NULL DEFAULT '[]';
UPDATE sites SET previous_beacon_secrets = json_build_array(json_build_object(
    'secret', beacon_secret_previous, 'until', beacon_secret_previous_until))::text
  WHERE beacon_secret_previous <> '' AND beacon_secret_previous_until > 0;
ALTER TABLE sites DROP COLUMN beacon_secret_previous, DROP COLUMN beacon_secret_previous_until;
)sql",
    // 13: clicks per button by UTM value (DESIGN section 6), as stats_minute has them. A row
    // stored before holds all of its minute's clicks, or it shares them with other values of
    // its field: only in the first case are its buttons known, those of the minute.
    R"sql(
ALTER TABLE stats_utm_minute ADD COLUMN b0 bigint NOT NULL DEFAULT 0,
  ADD COLUMN b1 bigint NOT NULL DEFAULT 0, ADD COLUMN b2 bigint NOT NULL DEFAULT 0;
UPDATE stats_utm_minute AS u SET b0 = m.b0, b1 = m.b1, b2 = m.b2
  FROM stats_minute AS m
  WHERE u.clicks > 0 AND m.site_id = u.site_id AND m.cid = u.cid
    AND m.reference_id = u.reference_id AND m.minute = u.minute AND m.clicks = u.clicks;
)sql",
    // 14: an endpoint's attempts counted by hour and latency bucket as they are recorded
    // (internal/attempt_stats.h), and its failed messages indexed as its pending ones are, so
    // that GetEndpointStats reads neither table whole. Attempts stored before this are counted
    // by BackfillAttemptStats, with the buckets the writers use.
    R"sql(
CREATE TABLE attempt_stats_hour(
  endpoint_id text NOT NULL,
  hour bigint NOT NULL,
  latency_bucket integer NOT NULL,
  attempts bigint NOT NULL,
  successes bigint NOT NULL,
  PRIMARY KEY(endpoint_id, hour, latency_bucket));
CREATE INDEX messages_failed_by_endpoint ON messages(endpoint_id, id) WHERE status = 2;
)sql",
    // 15: until when the lease holder's circuit for the endpoint is open (NULL: closed), so that
    // every node answers an endpoint's statistics with the state of the node that delivers.
    R"sql(
ALTER TABLE endpoint_leases ADD COLUMN IF NOT EXISTS circuit_open_until bigint;
)sql",
    // 16: ingest keys that a rotation replaced, each accepted until its time (DESIGN section 3),
    // looked up by key when ingest's cache misses. Written to run again: the migration tests
    // rewind the version and run every later migration a second time.
    R"sql(
CREATE TABLE IF NOT EXISTS previous_ingest_keys(
  ingest_key text PRIMARY KEY,
  site_id text NOT NULL REFERENCES sites(id),
  until_ms bigint NOT NULL);
CREATE INDEX IF NOT EXISTS previous_ingest_keys_by_site ON previous_ingest_keys(site_id);
)sql",
    // 17: how many of a message's attempts were a batch refused as too large and split, which
    // do not use up its retry schedule (DueMessage::splits).
    R"sql(
ALTER TABLE messages ADD COLUMN IF NOT EXISTS splits integer NOT NULL DEFAULT 0;
)sql",
    // 18: the batch each attempt went in (Attempt::batch): a message redelivered alone no
    // longer says which batch it went in, but its attempts do. The attempts already stored of
    // a message in a batch are taken to have gone in it.
    R"sql(
ALTER TABLE attempts ADD COLUMN IF NOT EXISTS batch_id bigint NOT NULL DEFAULT 0;
UPDATE attempts a SET batch_id = m.batch_id FROM messages m
  WHERE m.id = a.message_id AND m.batch_id > 0 AND a.batch_id = 0;
)sql",
};

constexpr int kAttemptStatsMigration = 14;

// Attempts read per round trip and rows written per statement by BackfillAttemptStats: a
// result is held whole in memory, and the attempts table may hold tens of millions.
constexpr int kBackfillPage = 10'000;

// Fills attempt_stats_hour from the attempts stored, inside the migration's transaction.
Status BackfillAttemptStats(Connection& c) {
  Status s = c.Exec(
      "DECLARE attempts_to_count NO SCROLL CURSOR FOR SELECT m.endpoint_id, a.at, a.latency_us, "
      "a.status_code FROM attempts a JOIN messages m ON m.id = a.message_id");
  if (!s.ok()) return s;
  internal::AttemptStatsRows rows;
  for (;;) {
    auto page = c.Query("FETCH " + std::to_string(kBackfillPage) + " FROM attempts_to_count");
    if (!page.ok()) return page.status();
    for (int i = 0; i < page->rows(); ++i) {
      internal::CountAttempt(rows, page->String(i, 0), page->Int(i, 1), page->Int(i, 2),
                             static_cast<int>(page->Int(i, 3)));
    }
    if (page->rows() < kBackfillPage) break;
  }
  if (s = c.Exec("CLOSE attempts_to_count"); !s.ok()) return s;
  ArrayLiteral endpoint, hour, bucket, attempts, successes;
  const auto write = [&]() -> Status {
    if (endpoint.size() == 0) return Status::Ok();
    auto r = c.Query(
        "INSERT INTO attempt_stats_hour(endpoint_id, hour, latency_bucket, attempts, successes) "
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[])",
        Params()
            .Add(endpoint.Finish())
            .Add(hour.Finish())
            .Add(bucket.Finish())
            .Add(attempts.Finish())
            .Add(successes.Finish()));
    endpoint = hour = bucket = attempts = successes = ArrayLiteral();
    return r.status();
  };
  for (const auto& [key, counts] : rows) {
    endpoint.Add(key.endpoint_id);
    hour.Add(key.hour);
    bucket.Add(key.latency_bucket);
    attempts.Add(counts.attempts);
    successes.Add(counts.successes);
    if (endpoint.size() == static_cast<size_t>(kBackfillPage)) {
      if (s = write(); !s.ok()) return s;
    }
  }
  return write();
}

}  // namespace

Status PostgresStore::Migrate() {
  Connection& c = *writer_conn_;
  // Nodes that start together take turns: the first runs the migrations, the rest find them
  // done. The advisory lock lasts until the end of the transaction.
  Status s = c.Exec(
      "BEGIN; SELECT pg_advisory_xact_lock(727061736868); "
      "CREATE TABLE IF NOT EXISTS pushhook_schema(version integer NOT NULL); "
      "INSERT INTO pushhook_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM pushhook_schema)");
  if (!s.ok()) return s;
  auto version_row = c.Query("SELECT version FROM pushhook_schema");
  if (!version_row.ok()) {
    c.Exec("ROLLBACK").IgnoreError();
    return version_row.status();
  }
  int version = static_cast<int>(version_row->Int(0, 0));
  constexpr int kLatest = static_cast<int>(std::size(kMigrations));
  if (Status known = internal::CheckSchemaVersion(version, kLatest); !known.ok()) {
    c.Exec("ROLLBACK").IgnoreError();
    return known;
  }
  for (; version < kLatest && s.ok(); ++version) {
    s = c.Exec(kMigrations[version]);
    if (s.ok() && version + 1 == kAttemptStatsMigration) s = BackfillAttemptStats(c);
    if (s.ok() && version == 0) {
      s = c.Query("INSERT INTO meta(key, value) VALUES('instance', $1)",
                  Params().Add(model::RandomToken(8)))
              .status();
    }
    if (!s.ok()) s = internal::MigrationFailed(version + 1, s);
  }
  if (s.ok()) {
    s = c.Query("UPDATE pushhook_schema SET version = $1", Params().Add(kLatest)).status();
  }
  // Every node must seal endpoint secrets with the same key, or the others cannot sign. The
  // first node with a key records its check; a store without a key (migrate) checks nothing.
  const std::string check = box_.KeyCheck();
  if (s.ok() && box_.enabled()) {
    s = c.Query(
             "INSERT INTO meta(key, value) VALUES('secrets_key_check', $1) "
             "ON CONFLICT (key) DO NOTHING",
             Params().Add(check))
            .status();
  }
  std::optional<Result> meta;
  if (s.ok()) {
    auto r = c.Query(
        "SELECT key, value FROM meta WHERE key IN ('instance', "
        "'secrets_key_check') ORDER BY key");
    if (r.ok()) {
      meta = std::move(r.value());
    } else {
      s = r.status();
    }
  }
  if (!s.ok()) {
    c.Exec("ROLLBACK").IgnoreError();
    return s;
  }
  if (s = c.Exec("COMMIT"); !s.ok()) return s;
  for (int i = 0; i < meta->rows(); ++i) {
    if (meta->Text(i, 0) == "instance") instance_id_ = meta->String(i, 1);
    if (meta->Text(i, 0) == "secrets_key_check" && box_.enabled() && meta->Text(i, 1) != check) {
      return WrongSecretsKey();
    }
  }
  if (instance_id_.empty()) return model::Internal("database has no instance id");
  return Status::Ok();
}

}  // namespace pushhook::store::postgres
