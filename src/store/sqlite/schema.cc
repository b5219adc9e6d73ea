#include <sqlite3.h>

#include "model/hyperloglog.h"
#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {
namespace {

// Each entry is one schema version; the database's user_version says how many have run.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sites(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  ingest_key TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL);
CREATE TABLE site_tokens(
  token_hash TEXT PRIMARY KEY,
  site_id TEXT NOT NULL REFERENCES sites(id),
  created_at INTEGER NOT NULL);
CREATE TABLE endpoints(
  id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL REFERENCES sites(id),
  url TEXT NOT NULL,
  description TEXT NOT NULL,
  events INTEGER NOT NULL,
  payload_format TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  max_in_flight INTEGER NOT NULL,
  rate_limit REAL NOT NULL,
  secret TEXT NOT NULL,
  previous_secret TEXT NOT NULL DEFAULT '',
  previous_secret_expires_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX endpoints_by_site ON endpoints(site_id);
CREATE TABLE events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  site_id TEXT NOT NULL,
  event_id TEXT,
  action INTEGER NOT NULL,
  cookie_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  notification_title TEXT NOT NULL,
  reference_id TEXT NOT NULL,
  utm_campaign TEXT NOT NULL,
  utm_content TEXT NOT NULL,
  utm_medium TEXT NOT NULL,
  utm_source TEXT NOT NULL,
  utm_term TEXT NOT NULL,
  clicked_button INTEGER NOT NULL,
  occurred_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL);
CREATE UNIQUE INDEX events_by_client_id ON events(site_id, event_id) WHERE event_id IS NOT NULL;
CREATE TABLE messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_rowid INTEGER NOT NULL,
  site_id TEXT NOT NULL,
  endpoint_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX messages_pending ON messages(id) WHERE status = 0;
CREATE INDEX messages_pending_by_endpoint ON messages(endpoint_id, id) WHERE status = 0;
CREATE INDEX messages_finished ON messages(status, next_attempt_at) WHERE status != 0;
CREATE INDEX messages_by_site ON messages(site_id, id);
CREATE TABLE attempts(
  message_id INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status_code INTEGER NOT NULL,
  latency_us INTEGER NOT NULL,
  error TEXT NOT NULL,
  response TEXT NOT NULL,
  PRIMARY KEY(message_id, attempt)) WITHOUT ROWID;
)sql",
    // 2: campaign statistics, kept as events arrive (DESIGN section 6).
    R"sql(
CREATE TABLE stats_minute(
  site_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  reference_id TEXT NOT NULL,
  minute INTEGER NOT NULL,
  views INTEGER NOT NULL,
  clicks INTEGER NOT NULL,
  b0 INTEGER NOT NULL,
  b1 INTEGER NOT NULL,
  b2 INTEGER NOT NULL,
  PRIMARY KEY(site_id, cid, reference_id, minute)) WITHOUT ROWID;
CREATE INDEX stats_minute_by_time ON stats_minute(site_id, minute);
CREATE TABLE stats_utm_minute(
  site_id TEXT NOT NULL,
  field INTEGER NOT NULL,
  value TEXT NOT NULL,
  cid TEXT NOT NULL,
  reference_id TEXT NOT NULL,
  minute INTEGER NOT NULL,
  views INTEGER NOT NULL,
  clicks INTEGER NOT NULL,
  PRIMARY KEY(site_id, field, cid, reference_id, minute, value)) WITHOUT ROWID;
CREATE TABLE stats_uniques_hour(
  site_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  reference_id TEXT NOT NULL,
  hour INTEGER NOT NULL,
  sketch BLOB NOT NULL,
  PRIMARY KEY(site_id, cid, reference_id, hour)) WITHOUT ROWID;
CREATE TABLE campaigns(
  site_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  views INTEGER NOT NULL,
  clicks INTEGER NOT NULL,
  b0 INTEGER NOT NULL,
  b1 INTEGER NOT NULL,
  b2 INTEGER NOT NULL,
  first_active INTEGER NOT NULL,
  last_active INTEGER NOT NULL,
  PRIMARY KEY(site_id, cid)) WITHOUT ROWID;
CREATE INDEX campaigns_by_activity ON campaigns(site_id, last_active DESC, cid);
)sql",
    // 3: why and since when an endpoint is disabled (410 Gone, a refused
    // destination, ...), and what a site token may do (DESIGN section 3: admin or read).
    R"sql(
ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE endpoints ADD COLUMN disabled_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE site_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
)sql",
    // 4: Dismiss, counted beside views and clicks (DESIGN sections 1 and 6).
    R"sql(
ALTER TABLE stats_minute ADD COLUMN dismissals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stats_utm_minute ADD COLUMN dismissals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN dismissals INTEGER NOT NULL DEFAULT 0;
)sql",
    // 5: signed beacons (DESIGN section 2a). Sites made before this get their secret when the
    // store opens (GiveSitesBeaconSecrets): making one takes a random generator SQL lacks.
    R"sql(
ALTER TABLE sites ADD COLUMN beacons TEXT NOT NULL DEFAULT 'optional';
ALTER TABLE sites ADD COLUMN beacon_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN beacon_secret_previous TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN beacon_secret_previous_until INTEGER NOT NULL DEFAULT 0;
)sql",
    // 6: a campaign's title (its latest notification title), for the dashboard's list.
    R"sql(
ALTER TABLE campaigns ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE campaigns ADD COLUMN title_at INTEGER NOT NULL DEFAULT 0;
)sql",
    // 7: each campaign's unique subscribers in one sketch, so that a page of the campaigns list
    // reads one sketch per campaign, not one per hour and run. Campaigns stored before this get
    // theirs from their hourly sketches (BackfillCampaignSketches): SQL cannot merge them.
    R"sql(
CREATE TABLE stats_uniques_campaign(
  site_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  sketch BLOB NOT NULL,
  PRIMARY KEY(site_id, cid)) WITHOUT ROWID;
)sql",
    // 8: an endpoint's filter on event fields (DESIGN section 3), as FieldFilter::ToJson
    // writes it; the writer checks it in memory at fan-out.
    R"sql(
ALTER TABLE endpoints ADD COLUMN field_filter TEXT NOT NULL DEFAULT '{}';
)sql",
    // 9: batched delivery (DESIGN section 1): an endpoint's batch options, and the batch each
    // message went in (DueMessage::batch).
    R"sql(
ALTER TABLE endpoints ADD COLUMN batch_max_events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN batch_max_wait_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN batch_id INTEGER NOT NULL DEFAULT 0;
)sql",
    // 10: a beaconed event's replay key beside the client's event_id (DESIGN section 2a), which
    // it used to replace. Keys stored as event ids before move over, so replays stay refused.
    R"sql(
ALTER TABLE events ADD COLUMN replay_key TEXT;
UPDATE events SET replay_key = event_id WHERE event_id GLOB 'bcn_*';
CREATE UNIQUE INDEX events_by_replay_key ON events(site_id, replay_key)
  WHERE replay_key IS NOT NULL;
)sql",
    // 11: every previous secret a rotation keeps (store::PreviousSecret), not just the last: a
    // JSON array of {"secret": <sealed>, "until": <ms>}, taking over the one-secret columns. A
    // row never rotated holds a sealed empty secret and no time: it has nothing to keep.
    R"sql(
ALTER TABLE endpoints ADD COLUMN previous_secrets TEXT NOT NULL DEFAULT '[]';
UPDATE endpoints SET previous_secrets = json_array(json_object(
    'secret', previous_secret, 'until', previous_secret_expires_at))
  WHERE previous_secret <> '' AND previous_secret_expires_at > 0;
ALTER TABLE endpoints DROP COLUMN previous_secret;
ALTER TABLE endpoints DROP COLUMN previous_secret_expires_at;
ALTER TABLE sites ADD COLUMN previous_beacon_secrets TEXT NOT NULL DEFAULT '[]';
UPDATE sites SET previous_beacon_secrets = json_array(json_object(
    'secret', beacon_secret_previous, 'until', beacon_secret_previous_until))
  WHERE beacon_secret_previous <> '' AND beacon_secret_previous_until > 0;
ALTER TABLE sites DROP COLUMN beacon_secret_previous;
ALTER TABLE sites DROP COLUMN beacon_secret_previous_until;
)sql",
    // 12: clicks per button by UTM value (DESIGN section 6), as stats_minute has them. A row
    // stored before holds all of its minute's clicks, or it shares them with other values of
    // its field: only in the first case are its buttons known, those of the minute.
    R"sql(
ALTER TABLE stats_utm_minute ADD COLUMN b0 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stats_utm_minute ADD COLUMN b1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stats_utm_minute ADD COLUMN b2 INTEGER NOT NULL DEFAULT 0;
UPDATE stats_utm_minute AS u SET b0 = m.b0, b1 = m.b1, b2 = m.b2
  FROM stats_minute AS m
  WHERE u.clicks > 0 AND m.site_id = u.site_id AND m.cid = u.cid
    AND m.reference_id = u.reference_id AND m.minute = u.minute AND m.clicks = u.clicks;
)sql",
    // 13: an endpoint's attempts counted by hour and latency bucket as they are recorded
    // (internal/attempt_stats.h), and its failed messages indexed as its pending ones are, so
    // that GetEndpointStats reads neither table whole. Attempts stored before this are counted
    // by BackfillAttemptStats: SQL has no exact log2 to bucket them with.
    R"sql(
CREATE TABLE attempt_stats_hour(
  endpoint_id TEXT NOT NULL,
  hour INTEGER NOT NULL,
  latency_bucket INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  successes INTEGER NOT NULL,
  PRIMARY KEY(endpoint_id, hour, latency_bucket)) WITHOUT ROWID;
CREATE INDEX messages_failed_by_endpoint ON messages(endpoint_id, id) WHERE status = 2;
)sql",
    // 14: no index of every pending message by id. Its only reader was the dispatcher's
    // start-up, which now reads each endpoint's (ListPendingEndpoints), and each message paid
    // for it twice: an entry written at ingest and removed at delivery.
    R"sql(
DROP INDEX IF EXISTS messages_pending;
)sql",
    // 15: ingest keys that a rotation replaced, each accepted until its time (DESIGN section 3),
    // looked up by key when ingest's cache misses. Written to run again: the migration tests
    // rewind the version and run every later migration a second time.
    R"sql(
CREATE TABLE IF NOT EXISTS previous_ingest_keys(
  ingest_key TEXT PRIMARY KEY,
  site_id TEXT NOT NULL REFERENCES sites(id),
  until_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS previous_ingest_keys_by_site ON previous_ingest_keys(site_id);
)sql",
    // 16: events and messages without AUTOINCREMENT, which read and rewrote sqlite_sequence in
    // every insert: the writer gives their ids (row_ids.h), resuming at meta's marks. Each
    // mark starts past every id the table's sequence or rows ever held. Rebuilding a table is
    // the only way SQLite has to drop AUTOINCREMENT; the rows keep their ids.
    R"sql(
INSERT INTO meta(key, value) SELECT 'next_event_id', 1 + max(
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
    coalesce((SELECT max(id) FROM events), 0),
    coalesce((SELECT value FROM meta WHERE key = 'next_event_id') - 1, 0)) WHERE true
  ON CONFLICT(key) DO UPDATE SET value = excluded.value;
INSERT INTO meta(key, value) SELECT 'next_message_id', 1 + max(
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
    coalesce((SELECT max(id) FROM messages), 0),
    coalesce((SELECT value FROM meta WHERE key = 'next_message_id') - 1, 0)) WHERE true
  ON CONFLICT(key) DO UPDATE SET value = excluded.value;
CREATE TABLE events_16(
  id INTEGER PRIMARY KEY,
  site_id TEXT NOT NULL,
  event_id TEXT,
  action INTEGER NOT NULL,
  cookie_id TEXT NOT NULL,
  cid TEXT NOT NULL,
  notification_title TEXT NOT NULL,
  reference_id TEXT NOT NULL,
  utm_campaign TEXT NOT NULL,
  utm_content TEXT NOT NULL,
  utm_medium TEXT NOT NULL,
  utm_source TEXT NOT NULL,
  utm_term TEXT NOT NULL,
  clicked_button INTEGER NOT NULL,
  occurred_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  replay_key TEXT);
INSERT INTO events_16(id, site_id, event_id, action, cookie_id, cid, notification_title,
    reference_id, utm_campaign, utm_content, utm_medium, utm_source, utm_term, clicked_button,
    occurred_at, received_at, replay_key)
  SELECT id, site_id, event_id, action, cookie_id, cid, notification_title, reference_id,
    utm_campaign, utm_content, utm_medium, utm_source, utm_term, clicked_button, occurred_at,
    received_at, replay_key FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_16 RENAME TO events;
CREATE UNIQUE INDEX events_by_client_id ON events(site_id, event_id) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX events_by_replay_key ON events(site_id, replay_key)
  WHERE replay_key IS NOT NULL;
CREATE TABLE messages_16(
  id INTEGER PRIMARY KEY,
  event_rowid INTEGER NOT NULL,
  site_id TEXT NOT NULL,
  endpoint_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  last_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  batch_id INTEGER NOT NULL DEFAULT 0);
INSERT INTO messages_16(id, event_rowid, site_id, endpoint_id, status, attempts,
    next_attempt_at, created_at, last_status, last_error, batch_id)
  SELECT id, event_rowid, site_id, endpoint_id, status, attempts, next_attempt_at, created_at,
    last_status, last_error, batch_id FROM messages ORDER BY id;
DROP TABLE messages;
ALTER TABLE messages_16 RENAME TO messages;
CREATE INDEX messages_pending_by_endpoint ON messages(endpoint_id, id) WHERE status = 0;
CREATE INDEX messages_finished ON messages(status, next_attempt_at) WHERE status != 0;
CREATE INDEX messages_by_site ON messages(site_id, id);
CREATE INDEX messages_failed_by_endpoint ON messages(endpoint_id, id) WHERE status = 2;
)sql",
    // 17: a message's latest attempt in its own row (number last_attempt, 0 for none), the ones
    // before it in attempts: a delivery that succeeds at once writes no attempts row, only the
    // message's, which it rewrote anyway. Rows from before keep all theirs in attempts.
    R"sql(
ALTER TABLE messages ADD COLUMN last_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_latency_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_response TEXT NOT NULL DEFAULT '';
)sql",
    // 18: how many of a message's attempts were a batch refused as too large and split, which
    // do not use up its retry schedule (DueMessage::splits).
    R"sql(
ALTER TABLE messages ADD COLUMN splits INTEGER NOT NULL DEFAULT 0;
)sql",
    // 19: the batch each attempt went in (Attempt::batch), the latest's in its message's row:
    // a message redelivered alone no longer says which batch it went in, but its attempts do.
    // The attempts already stored of a message in a batch are taken to have gone in it.
    R"sql(
ALTER TABLE messages ADD COLUMN last_batch_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN batch_id INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET last_batch_id = batch_id WHERE batch_id > 0 AND last_attempt > 0;
UPDATE attempts SET batch_id = (SELECT batch_id FROM messages m WHERE m.id = message_id)
  WHERE message_id IN (SELECT id FROM messages WHERE batch_id > 0);
)sql",
};

constexpr int kCampaignSketchesMigration = 7;
constexpr int kAttemptStatsMigration = 13;

// Fills stats_uniques_campaign from stats_uniques_hour, inside the migration's transaction.
Status BackfillCampaignSketches(Connection& c) {
  auto read = c.Prepare(
      "SELECT site_id, cid, sketch FROM stats_uniques_hour ORDER BY site_id, cid, reference_id");
  auto write =
      c.Prepare("INSERT INTO stats_uniques_campaign(site_id, cid, sketch) VALUES(?, ?, ?)");
  if (!read.ok()) return read.status();
  if (!write.ok()) return write.status();
  std::string site, cid;
  model::HyperLogLog merged;
  const auto put = [&]() -> Status {
    if (cid.empty()) return Status::Ok();
    const std::string bytes = merged.Serialize();
    (*write)->Bind(1, site).Bind(2, cid);
    (*write)->BindBlob(3, bytes);
    return (*write)->Run();
  };
  Status step;
  while ((*read)->Step(&step)) {
    if ((*read)->Text(0) != site || (*read)->Text(1) != cid) {
      if (Status s = put(); !s.ok()) return s;
      site = (*read)->Text(0);
      cid = (*read)->Text(1);
      merged = model::HyperLogLog();
    }
    if (auto h = model::HyperLogLog::Deserialize((*read)->Text(2))) merged.Merge(*h);
  }
  (*read)->Reset();
  if (!step.ok()) return step;
  return put();
}

// Fills attempt_stats_hour from the attempts stored, inside the migration's transaction.
Status BackfillAttemptStats(Connection& c) {
  auto read = c.Prepare(
      "SELECT m.endpoint_id, a.at, a.latency_us, a.status_code FROM attempts a "
      "JOIN messages m ON m.id = a.message_id");
  if (!read.ok()) return read.status();
  internal::AttemptStatsRows rows;
  Status step;
  while ((*read)->Step(&step)) {
    internal::CountAttempt(rows, (*read)->Text(0), (*read)->Int(1), (*read)->Int(2),
                           static_cast<int>((*read)->Int(3)));
  }
  (*read)->Reset();
  if (!step.ok()) return step;
  return AddAttemptStats(c, rows);
}

}  // namespace

Status SqliteStore::Migrate() {
  auto st = writer_conn_->Prepare("PRAGMA user_version");
  if (!st.ok()) return st.status();
  Status step;
  int version = (*st)->Step(&step) ? static_cast<int>((*st)->Int(0)) : 0;
  (*st)->Reset();
  if (!step.ok()) return step;
  constexpr int kLatest = static_cast<int>(std::size(kMigrations));
  if (Status known = internal::CheckSchemaVersion(version, kLatest); !known.ok()) return known;
  if (version > 0 && version < kLatest) {
    // Some migrations rewrite whole tables (16: about 6 s per million events and messages here).
    util::Log(util::LogLevel::kInfo, "upgrading the database schema",
              {{"from", std::to_string(version)}, {"to", std::to_string(kLatest)}});
  }
  for (; version < kLatest; ++version) {
    Status s = writer_conn_->Exec("BEGIN IMMEDIATE");
    if (s.ok()) s = writer_conn_->Exec(kMigrations[version]);
    if (s.ok() && version == 0) {
      s = writer_conn_->Exec("INSERT INTO meta(key, value) VALUES('instance', '" +
                             model::RandomToken(8) + "')");
    }
    if (s.ok() && version + 1 == kCampaignSketchesMigration) {
      s = BackfillCampaignSketches(*writer_conn_);
    }
    if (s.ok() && version + 1 == kAttemptStatsMigration) s = BackfillAttemptStats(*writer_conn_);
    if (s.ok()) s = writer_conn_->Exec("PRAGMA user_version = " + std::to_string(version + 1));
    if (s.ok()) s = writer_conn_->Exec("COMMIT");
    if (!s.ok()) {
      writer_conn_->Exec("ROLLBACK").IgnoreError();
      return internal::MigrationFailed(version + 1, s);
    }
  }
  // The key that seals endpoint secrets must be the one that sealed those already stored.
  // The first store opened with a key records its check; one opened without a key (migrate)
  // seals nothing and checks nothing.
  if (box_.enabled()) {
    auto check = writer_conn_->Prepare(
        "INSERT INTO meta(key, value) VALUES('secrets_key_check', ?) ON CONFLICT DO NOTHING");
    if (!check.ok()) return check.status();
    if (Status s = (*check)->Bind(1, box_.KeyCheck()).Run(); !s.ok()) return s;
  }
  auto meta = writer_conn_->Prepare(
      "SELECT key, value FROM meta WHERE key IN ('instance', 'secrets_key_check')");
  if (!meta.ok()) return meta.status();
  std::string stored_check;
  while ((*meta)->Step(&step)) {
    ((*meta)->Text(0) == "instance" ? instance_id_ : stored_check) = (*meta)->Text(1);
  }
  (*meta)->Reset();
  if (!step.ok()) return step;
  if (instance_id_.empty()) return model::Internal("database has no instance id");
  if (box_.enabled() && stored_check != box_.KeyCheck()) return WrongSecretsKey();
  return Status::Ok();
}

}  // namespace pushhook::store::sqlite
