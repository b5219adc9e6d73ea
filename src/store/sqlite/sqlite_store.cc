#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "model/random.h"
#include "model/secret_box.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store_internal.h"
#include "store/write_queue.h"
#include "util/log.h"

namespace pushhook::store::sqlite {
namespace {

using model::Status;
using model::StatusOr;

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
};

using internal::FilterBits;
using internal::FilterFromBits;

constexpr const char* kEndpointColumns =
    "id, site_id, url, description, events, payload_format, enabled, max_in_flight, rate_limit, "
    "secret, previous_secret, previous_secret_expires_at, created_at, updated_at";

// "a, b" -> "p.a, p.b": a column list qualified for a join.
std::string Qualified(std::string_view columns, std::string_view prefix) {
  std::string out(prefix);
  for (char ch : columns) {
    out.push_back(ch);
    if (ch == ' ') out.append(prefix);
  }
  return out;
}

Endpoint ReadEndpoint(const Statement& s, int first, const model::SecretBox& box) {
  Endpoint e;
  e.id = s.Text(first);
  e.site_id = s.Text(first + 1);
  e.url = s.Text(first + 2);
  e.description = s.Text(first + 3);
  e.filter = FilterFromBits(s.Int(first + 4));
  model::ParsePayloadFormat(s.Text(first + 5), &e.format);
  e.enabled = s.Int(first + 6) != 0;
  e.max_in_flight = static_cast<int>(s.Int(first + 7));
  e.rate_limit = s.Double(first + 8);
  // A secret that does not open (another key) reads as empty, and signs nothing.
  e.secret = box.Open(s.Text(first + 9)).value_or("");
  e.previous_secret = box.Open(s.Text(first + 10)).value_or("");
  e.previous_secret_expires_ms = s.Int(first + 11);
  e.created_at_ms = s.Int(first + 12);
  e.updated_at_ms = s.Int(first + 13);
  return e;
}

constexpr const char* kEventColumns =
    "e.action, e.cookie_id, e.cid, e.notification_title, e.reference_id, e.utm_campaign, "
    "e.utm_content, e.utm_medium, e.utm_source, e.utm_term, e.clicked_button, e.event_id, "
    "e.occurred_at, e.id";

model::Event ReadEvent(const Statement& s, int first, const std::string& instance_id) {
  model::Event e;
  e.action = s.Int(first) == 0 ? model::Action::kView : model::Action::kClick;
  e.cookie_id = s.Text(first + 1);
  e.cid = s.Text(first + 2);
  e.notification_title = s.Text(first + 3);
  e.reference_id = s.Text(first + 4);
  e.utm_campaign = s.Text(first + 5);
  e.utm_content = s.Text(first + 6);
  e.utm_medium = s.Text(first + 7);
  e.utm_source = s.Text(first + 8);
  e.utm_term = s.Text(first + 9);
  e.clicked_button = static_cast<int>(s.Int(first + 10));
  // Events without a client id are named after their row, like messages.
  e.event_id =
      s.IsNull(first + 11) ? FormatEventId(instance_id, s.Int(first + 13)) : s.Text(first + 11);
  e.occurred_at_ms = s.Int(first + 12);
  return e;
}

using SqliteWriteQueue = WriteQueue<Connection>;

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, const StoreOptions& options)
      : path_(std::move(path)),
        options_(options),
        box_(options.secrets_key),
        writes_(options.max_pending_writes,
                [this](std::vector<SqliteWriteQueue::Op>& batch, std::vector<Status>* results) {
                  CommitBatch(batch, results);
                }) {}

  // Writes still queued, and the statistics held, are committed before the writer closes.
  ~SqliteStore() override {
    if (Status s = SettleAggregates(); !s.ok()) {
      util::Log(util::LogLevel::kWarn, "statistics not written at shutdown; recounted at start",
                {{"error", s.message()}});
    }
    writes_.Stop();
  }

  Status Open() {
    auto writer = Connection::Open(path_, false);
    if (!writer.ok()) return writer.status();
    writer_conn_ = std::move(writer.value());
    Status s = writer_conn_->Exec("PRAGMA journal_mode=WAL");
    if (s.ok()) {
      s = writer_conn_->Exec(options_.durability_full ? "PRAGMA synchronous=FULL"
                                                      : "PRAGMA synchronous=NORMAL");
    }
    if (s.ok()) s = Migrate();
    if (s.ok() && options_.aggregates) s = RecoverAggregates();
    if (!s.ok()) return s;
    for (int i = 0; i < kReaders; ++i) {
      auto reader = Connection::Open(path_, false);
      if (!reader.ok()) return reader.status();
      reader.value()->Exec("PRAGMA query_only=1");
      readers_.push_back(std::move(reader.value()));
    }
    writes_.Start("ph-store-write");
    return Status::Ok();
  }

  const std::string& instance_id() const override { return instance_id_; }

  StatusOr<Site> CreateSite(const std::string& name) override {
    Site site{"site_" + model::RandomToken(16), name, "pk_" + model::RandomToken(32), NowMs()};
    Status s = WriteSync([&](Connection& c) {
      auto st = c.Prepare("INSERT INTO sites(id, name, ingest_key, created_at) VALUES(?,?,?,?)");
      if (!st.ok()) return st.status();
      return (*st)
          ->Bind(1, site.id)
          .Bind(2, site.name)
          .Bind(3, site.ingest_key)
          .Bind(4, site.created_at_ms)
          .Run();
    });
    if (!s.ok()) return s;
    return site;
  }

  StatusOr<Site> GetSite(const std::string& site_id) override {
    auto sites =
        QuerySites("SELECT id, name, ingest_key, created_at FROM sites WHERE id = ?", site_id);
    if (!sites.ok()) return sites.status();
    if (sites->empty()) return model::NotFound("site " + site_id + " not found");
    return std::move(sites->front());
  }

  StatusOr<std::vector<Site>> ListSites() override {
    return QuerySites("SELECT id, name, ingest_key, created_at FROM sites ORDER BY created_at, id",
                      std::nullopt);
  }

  std::optional<Site> FindSiteByIngestKey(const std::string& ingest_key) override {
    auto sites = QuerySites(
        "SELECT id, name, ingest_key, created_at FROM sites WHERE ingest_key = ?", ingest_key);
    if (!sites.ok() || sites->empty()) return std::nullopt;
    return std::move(sites->front());
  }

  Status AddSiteToken(const std::string& site_id, const std::string& token_hash) override {
    if (auto site = GetSite(site_id); !site.ok()) return site.status();
    return WriteSync([&](Connection& c) {
      auto st = c.Prepare("INSERT INTO site_tokens(token_hash, site_id, created_at) VALUES(?,?,?)");
      if (!st.ok()) return st.status();
      return (*st)->Bind(1, token_hash).Bind(2, site_id).Bind(3, NowMs()).Run();
    });
  }

  std::optional<std::string> FindSiteOfToken(const std::string& token_hash) override {
    std::optional<std::string> site;
    Read([&](Connection& c) {
      auto st = c.Prepare("SELECT site_id FROM site_tokens WHERE token_hash = ?");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, token_hash);
      Status s;
      if ((*st)->Step(&s)) site = (*st)->Text(0);
      (*st)->Reset();
      return s;
    });
    return site;
  }

  StatusOr<Endpoint> CreateEndpoint(Endpoint e) override {
    e.id = "ep_" + model::RandomToken(20);
    const std::string sealed_secret = box_.Seal(e.secret);
    const std::string sealed_previous = box_.Seal(e.previous_secret);
    Status s = WriteSync([&](Connection& c) {
      auto st = c.Prepare(std::string("INSERT INTO endpoints(") + kEndpointColumns +
                          ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      if (!st.ok()) return st.status();
      const std::string_view format = model::PayloadFormatName(e.format);
      return (*st)
          ->Bind(1, e.id)
          .Bind(2, e.site_id)
          .Bind(3, e.url)
          .Bind(4, e.description)
          .Bind(5, FilterBits(e.filter))
          .Bind(6, format)
          .Bind(7, e.enabled ? 1 : 0)
          .Bind(8, e.max_in_flight)
          .Bind(9, e.rate_limit)
          .Bind(10, sealed_secret)
          .Bind(11, sealed_previous)
          .Bind(12, e.previous_secret_expires_ms)
          .Bind(13, e.created_at_ms)
          .Bind(14, e.updated_at_ms)
          .Run();
    });
    if (!s.ok()) return s;
    return e;
  }

  StatusOr<Endpoint> GetEndpoint(const std::string& site_id,
                                 const std::string& endpoint_id) override {
    auto found = QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                                    " FROM endpoints WHERE id = ? AND site_id = ? AND deleted = 0",
                                endpoint_id, site_id);
    if (!found.ok()) return found.status();
    if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
    return std::move(found->front());
  }

  StatusOr<Endpoint> GetEndpointById(const std::string& endpoint_id) override {
    auto found = QueryEndpoints(
        std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = ? AND deleted = 0",
        endpoint_id, std::nullopt);
    if (!found.ok()) return found.status();
    if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
    return std::move(found->front());
  }

  StatusOr<std::vector<Endpoint>> ListEndpoints(const std::string& site_id) override {
    return QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                              " FROM endpoints WHERE site_id = ? AND deleted = 0 "
                              "ORDER BY created_at, id",
                          site_id, std::nullopt);
  }

  StatusOr<Endpoint> UpdateEndpoint(const std::string& site_id, const std::string& endpoint_id,
                                    const EndpointPatch& patch, int64_t now_ms) override {
    auto current = GetEndpoint(site_id, endpoint_id);
    if (!current.ok()) return current;
    Endpoint e = std::move(current.value());
    internal::ApplyPatch(patch, now_ms, &e);
    const std::string sealed_secret = box_.Seal(e.secret);
    const std::string sealed_previous = box_.Seal(e.previous_secret);
    Status s = WriteSync([&](Connection& c) {
      auto st = c.Prepare(
          "UPDATE endpoints SET url=?, description=?, events=?, payload_format=?, enabled=?, "
          "max_in_flight=?, rate_limit=?, updated_at=?, secret=?, previous_secret=?, "
          "previous_secret_expires_at=? WHERE id=? AND site_id=? AND deleted=0");
      if (!st.ok()) return st.status();
      const std::string_view format = model::PayloadFormatName(e.format);
      Status run = (*st)
                       ->Bind(1, e.url)
                       .Bind(2, e.description)
                       .Bind(3, FilterBits(e.filter))
                       .Bind(4, format)
                       .Bind(5, e.enabled ? 1 : 0)
                       .Bind(6, e.max_in_flight)
                       .Bind(7, e.rate_limit)
                       .Bind(8, e.updated_at_ms)
                       .Bind(9, sealed_secret)
                       .Bind(10, sealed_previous)
                       .Bind(11, e.previous_secret_expires_ms)
                       .Bind(12, e.id)
                       .Bind(13, e.site_id)
                       .Run();
      if (run.ok() && c.Changes() == 0) return model::NotFound("endpoint " + e.id + " not found");
      return run;
    });
    if (!s.ok()) return s;
    return e;
  }

  Status DeleteEndpoint(const std::string& site_id, const std::string& endpoint_id) override {
    return WriteSync([&](Connection& c) {
      auto st = c.Prepare(
          "UPDATE endpoints SET deleted = 1, enabled = 0 WHERE id = ? AND site_id = ? AND "
          "deleted = 0");
      if (!st.ok()) return st.status();
      Status run = (*st)->Bind(1, endpoint_id).Bind(2, site_id).Run();
      if (run.ok() && c.Changes() == 0) {
        return model::NotFound("endpoint " + endpoint_id + " not found");
      }
      if (!run.ok()) return run;
      // Its pending messages have nowhere to go: they end as failed, kept for the log.
      auto fail = c.Prepare(
          "UPDATE messages SET status = 2, last_error = 'endpoint deleted' "
          "WHERE endpoint_id = ? AND status = 0");
      if (!fail.ok()) return fail.status();
      return (*fail)->Bind(1, endpoint_id).Run();
    });
  }

  void AppendEvents(const std::string& site_id, std::vector<model::Event> events, int64_t now_ms,
                    AppendCallback done) override {
    internal::EnqueueAppend(
        writes_, std::move(events),
        [this, site_id, now_ms](Connection& c, const std::vector<model::Event>& stored,
                                AppendResult* result) {
          return ApplyAppend(c, site_id, stored, now_ms, result);
        },
        std::move(done));
  }

  void RecordAttempts(std::vector<AttemptRecord> records,
                      std::function<void(Status)> done) override {
    internal::EnqueueAttempts(writes_, std::move(records), ApplyAttempts, std::move(done));
  }

  StatusOr<std::vector<DueMessage>> LoadPending(int64_t after_id, int limit) override {
    return QueryPending(
        "SELECT id, endpoint_id, next_attempt_at, attempts FROM messages "
        "WHERE status = 0 AND id > ?1 ORDER BY id LIMIT ?2",
        after_id, limit, std::nullopt);
  }

  StatusOr<std::vector<DueMessage>> LoadPendingForEndpoint(const std::string& endpoint_id,
                                                           int64_t after_id, int limit) override {
    return QueryPending(
        "SELECT id, endpoint_id, next_attempt_at, attempts FROM messages "
        "WHERE endpoint_id = ?3 AND status = 0 AND id > ?1 ORDER BY id LIMIT ?2",
        after_id, limit, endpoint_id);
  }

  StatusOr<std::vector<DueMessage>> QueryPending(const std::string& sql, int64_t after_id,
                                                 int limit,
                                                 const std::optional<std::string>& endpoint_id) {
    std::vector<DueMessage> out;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      (*st)->Bind(1, after_id).Bind(2, limit);
      if (endpoint_id) (*st)->Bind(3, *endpoint_id);
      Status step;
      while ((*st)->Step(&step)) {
        out.push_back(DueMessage{
            (*st)->Int(0), (*st)->Text(1), (*st)->Int(2), static_cast<int>((*st)->Int(3)), {}});
      }
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<Delivery> LoadDelivery(int64_t message_id) override {
    std::optional<Delivery> delivery;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(std::string("SELECT m.id, m.site_id, m.attempts, m.status, ") +
                          kEventColumns + ", " + Qualified(kEndpointColumns, "p.") +
                          " FROM messages m JOIN events e ON e.id = m.event_rowid "
                          "JOIN endpoints p ON p.id = m.endpoint_id WHERE m.id = ?");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, message_id);
      Status step;
      if ((*st)->Step(&step)) {
        Delivery d;
        d.message_id = (*st)->Int(0);
        d.site_id = (*st)->Text(1);
        d.attempts = static_cast<int>((*st)->Int(2));
        d.status = static_cast<MessageStatus>((*st)->Int(3));
        d.event = ReadEvent(**st, 4, instance_id_);
        d.endpoint = ReadEndpoint(**st, 18, box_);
        delivery = std::move(d);
      }
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    if (!delivery) return model::NotFound("message not found");
    return std::move(*delivery);
  }

  StatusOr<std::vector<Message>> ListMessages(const MessageQuery& q) override {
    std::string sql = std::string(
                          "SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                          "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                      kEventColumns +
                      " FROM messages m JOIN events e ON e.id = m.event_rowid WHERE m.site_id = ?";
    if (q.before_id > 0) sql += " AND m.id < ?2";
    if (q.endpoint_id) sql += " AND m.endpoint_id = ?3";
    if (q.status) sql += " AND m.status = ?4";
    if (q.cid) sql += " AND e.cid = ?5";
    sql += " ORDER BY m.id DESC LIMIT ?6";
    std::vector<Message> out;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      Statement& stmt = **st;
      stmt.Bind(1, q.site_id);
      if (q.before_id > 0) stmt.Bind(2, q.before_id);
      if (q.endpoint_id) stmt.Bind(3, *q.endpoint_id);
      if (q.status) stmt.Bind(4, static_cast<int>(*q.status));
      if (q.cid) stmt.Bind(5, *q.cid);
      stmt.Bind(6, q.limit);
      Status step;
      while (stmt.Step(&step)) out.push_back(ReadMessage(stmt));
      stmt.Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<Message> GetMessage(const std::string& site_id, int64_t message_id) override {
    std::optional<Message> message;
    Status s = Read([&](Connection& c) {
      auto st =
          c.Prepare(std::string("SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                                "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                    kEventColumns +
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

  StatusOr<std::vector<Attempt>> ListAttempts(int64_t message_id) override {
    std::vector<Attempt> out;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(
          "SELECT attempt, at, status_code, latency_us, error, response FROM attempts "
          "WHERE message_id = ? ORDER BY attempt");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, message_id);
      Status step;
      while ((*st)->Step(&step)) {
        out.push_back(Attempt{static_cast<int>((*st)->Int(0)), (*st)->Int(1),
                              static_cast<int>((*st)->Int(2)), (*st)->Int(3), (*st)->Text(4),
                              (*st)->Text(5)});
      }
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<DueMessage> RequeueMessage(const std::string& site_id, int64_t message_id,
                                      int64_t now_ms) override {
    DueMessage due;
    Status s = WriteSync([&](Connection& c) {
      auto st = c.Prepare(
          "UPDATE messages SET status = 0, next_attempt_at = ? WHERE id = ? AND site_id = ? "
          "AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted = 0) "
          "RETURNING id, endpoint_id, attempts");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, now_ms).Bind(2, message_id).Bind(3, site_id);
      Status step;
      const bool found = (*st)->Step(&step);
      if (found)
        due =
            DueMessage{(*st)->Int(0), (*st)->Text(1), now_ms, static_cast<int>((*st)->Int(2)), {}};
      (*st)->Reset();
      if (!step.ok()) return step;
      return found ? Status::Ok() : model::NotFound("message not found");
    });
    if (!s.ok()) return s;
    return due;
  }

  StatusOr<std::vector<DueMessage>> ReplayEvents(const ReplayQuery& q, int64_t now_ms) override {
    std::vector<DueMessage> out;
    Status s = WriteSync([&](Connection& c) {
      std::string sql =
          "INSERT INTO messages(event_rowid, site_id, endpoint_id, status, next_attempt_at, "
          "created_at) SELECT id, site_id, ?1, 0, ?2, ?2 FROM events WHERE site_id = ?3 AND "
          "occurred_at >= ?4 AND occurred_at < ?5";
      if (q.cid) sql += " AND cid = ?6";
      if (q.reference_id) sql += " AND reference_id = ?7";
      sql += " ORDER BY id LIMIT ?8 RETURNING id";
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      Statement& stmt = **st;
      stmt.Bind(1, q.endpoint_id)
          .Bind(2, now_ms)
          .Bind(3, q.site_id)
          .Bind(4, q.since_ms)
          .Bind(5, q.until_ms)
          .Bind(8, static_cast<int64_t>(q.max_events));
      if (q.cid) stmt.Bind(6, *q.cid);
      if (q.reference_id) stmt.Bind(7, *q.reference_id);
      Status step;
      while (stmt.Step(&step)) out.push_back(DueMessage{stmt.Int(0), q.endpoint_id, now_ms, 0, {}});
      stmt.Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<EndpointStats> GetEndpointStats(const std::string& endpoint_id,
                                           int64_t since_ms) override {
    EndpointStats stats;
    std::vector<int64_t> latencies;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(
          "SELECT a.status_code, a.latency_us FROM attempts a JOIN messages m "
          "ON m.id = a.message_id WHERE m.endpoint_id = ? AND a.at >= ?");
      if (!st.ok()) return st.status();
      (*st)->Bind(1, endpoint_id).Bind(2, since_ms);
      Status step;
      while ((*st)->Step(&step)) {
        const int64_t code = (*st)->Int(0);
        ++stats.attempts;
        (code >= 200 && code < 300 ? stats.successes : stats.failures)++;
        latencies.push_back((*st)->Int(1));
      }
      (*st)->Reset();
      if (!step.ok()) return step;
      auto counts = c.Prepare(
          "SELECT coalesce(sum(status = 0), 0), coalesce(sum(status = 2), 0) FROM messages "
          "WHERE endpoint_id = ?");
      if (!counts.ok()) return counts.status();
      (*counts)->Bind(1, endpoint_id);
      if ((*counts)->Step(&step)) {
        stats.pending = static_cast<uint64_t>((*counts)->Int(0));
        stats.failed_messages = static_cast<uint64_t>((*counts)->Int(1));
      }
      (*counts)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    if (!latencies.empty()) {
      const auto at = [&](double q) {
        const size_t k = std::min(latencies.size() - 1,
                                  static_cast<size_t>(q * static_cast<double>(latencies.size())));
        std::nth_element(latencies.begin(), latencies.begin() + static_cast<long>(k),
                         latencies.end());
        return latencies[k];
      };
      stats.latency_p50_us = at(0.50);
      stats.latency_p99_us = at(0.99);
    }
    return stats;
  }

  StatusOr<size_t> PurgeMessages(int64_t delivered_before_ms, int64_t failed_before_ms,
                                 int limit) override {
    size_t purged = 0;
    Status s = WriteSync([&](Connection& c) {
      // A finished message's next_attempt_at is when it finished (delivered or failed); the
      // partial index on it keeps each batch a short range scan.
      auto pick = c.Prepare(
          "SELECT id FROM messages WHERE status = 1 AND next_attempt_at < ?1 "
          "UNION ALL SELECT id FROM messages WHERE status = 2 AND next_attempt_at < ?2 LIMIT ?3");
      if (!pick.ok()) return pick.status();
      (*pick)->Bind(1, delivered_before_ms).Bind(2, failed_before_ms).Bind(3, limit);
      std::vector<int64_t> ids;
      Status step;
      while ((*pick)->Step(&step)) ids.push_back((*pick)->Int(0));
      (*pick)->Reset();
      if (!step.ok()) return step;
      auto del_attempts = c.Prepare("DELETE FROM attempts WHERE message_id = ?");
      auto del_message = c.Prepare("DELETE FROM messages WHERE id = ?");
      if (!del_attempts.ok()) return del_attempts.status();
      if (!del_message.ok()) return del_message.status();
      for (int64_t id : ids) {
        if (Status r = (*del_attempts)->Bind(1, id).Run(); !r.ok()) return r;
        if (Status r = (*del_message)->Bind(1, id).Run(); !r.ok()) return r;
      }
      purged = ids.size();
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return purged;
  }

  StatusOr<StatsResult> QueryStats(const StatsQuery& q) override {
    if (Status s = SettleAggregates(); !s.ok()) return s;
    StatsResult result;
    // Filters shared by every statement: ?1 site, ?2 from, ?3 to, ?4 cid, ?5 reference_id.
    std::string where = " WHERE site_id = ?1 AND minute >= ?2 AND minute < ?3";
    if (q.cid) where += " AND cid = ?4";
    if (q.reference_id) where += " AND reference_id = ?5";
    const auto bind_filters = [&](Statement& st) {
      st.Bind(1, q.site_id)
          .Bind(2, model::BucketStart(q.from_ms, model::kMinuteMs))
          .Bind(3, q.to_ms);
      if (q.cid) st.Bind(4, *q.cid);
      if (q.reference_id) st.Bind(5, *q.reference_id);
    };
    const auto read_counters = [](const Statement& st, int first) {
      model::Counters n;
      n.views = st.Int(first);
      n.clicks = st.Int(first + 1);
      n.clicks_by_button = {st.Int(first + 2), st.Int(first + 3), st.Int(first + 4)};
      return n;
    };
    constexpr const char* kSums =
        "coalesce(sum(views),0), coalesce(sum(clicks),0), coalesce(sum(b0),0), "
        "coalesce(sum(b1),0), coalesce(sum(b2),0)";
    Status s = Read([&](Connection& c) {
      Status step;
      {
        auto st = c.Prepare(std::string("SELECT ") + kSums + " FROM stats_minute" + where);
        if (!st.ok()) return st.status();
        bind_filters(**st);
        if ((*st)->Step(&step)) result.totals = read_counters(**st, 0);
        (*st)->Reset();
        if (!step.ok()) return step;
      }
      {
        // Hour and day buckets are summed from minutes at query time: a site's campaign over a
        // month is at most 43,200 rows per (cid, run), read in order from the primary key.
        auto st = c.Prepare("SELECT (minute - (((minute % ?6) + ?6) % ?6)) AS bucket, " +
                            std::string(kSums) + " FROM stats_minute" + where +
                            " GROUP BY bucket ORDER BY bucket");
        if (!st.ok()) return st.status();
        bind_filters(**st);
        (*st)->Bind(6, q.bucket_ms);
        while ((*st)->Step(&step)) {
          result.series.push_back(StatsRow{std::to_string((*st)->Int(0)), read_counters(**st, 1)});
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
          result.groups.push_back(StatsRow{(*st)->Text(0), read_counters(**st, 1)});
        }
        (*st)->Reset();
        if (!step.ok()) return step;
      } else if (q.group_by == "button") {
        result.groups = internal::ButtonGroups(result.totals);
      } else if (q.group_by) {
        const std::optional<int> field = internal::UtmFieldNumber(*q.group_by);
        if (!field) return model::InvalidArgument("cannot group by " + *q.group_by);
        auto st = c.Prepare(
            "SELECT value, coalesce(sum(views),0), coalesce(sum(clicks),0) FROM stats_utm_minute" +
            where + " AND field = ?6 GROUP BY value ORDER BY value");
        if (!st.ok()) return st.status();
        bind_filters(**st);
        (*st)->Bind(6, *field);
        while ((*st)->Step(&step)) {
          model::Counters n;
          n.views = (*st)->Int(1);
          n.clicks = (*st)->Int(2);
          result.groups.push_back(StatsRow{(*st)->Text(0), n});
        }
        (*st)->Reset();
        if (!step.ok()) return step;
      }
      {
        std::string uwhere = " WHERE site_id = ?1 AND hour >= ?2 AND hour < ?3";
        if (q.cid) uwhere += " AND cid = ?4";
        if (q.reference_id) uwhere += " AND reference_id = ?5";
        auto st = c.Prepare("SELECT sketch FROM stats_uniques_hour" + uwhere);
        if (!st.ok()) return st.status();
        (*st)
            ->Bind(1, q.site_id)
            .Bind(2, model::BucketStart(q.from_ms, model::kHourMs))
            .Bind(3, q.to_ms);
        if (q.cid) (*st)->Bind(4, *q.cid);
        if (q.reference_id) (*st)->Bind(5, *q.reference_id);
        model::HyperLogLog merged;
        while ((*st)->Step(&step)) {
          if (auto h = model::HyperLogLog::Deserialize((*st)->Text(0))) merged.Merge(*h);
        }
        (*st)->Reset();
        if (!step.ok()) return step;
        result.unique_subscribers = merged.Estimate();
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return result;
  }

  StatusOr<std::vector<CampaignSummary>> ListCampaigns(const std::string& site_id,
                                                       const std::optional<CampaignCursor>& after,
                                                       int limit) override {
    if (Status s = SettleAggregates(); !s.ok()) return s;
    std::vector<CampaignSummary> out;
    Status s = Read([&](Connection& c) {
      std::string sql =
          "SELECT cid, views, clicks, b0, b1, b2, first_active, last_active FROM campaigns "
          "WHERE site_id = ?1";
      if (after) sql += " AND (last_active < ?2 OR (last_active = ?2 AND cid > ?3))";
      sql += " ORDER BY last_active DESC, cid LIMIT ?4";
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      (*st)->Bind(1, site_id).Bind(4, limit);
      if (after) (*st)->Bind(2, after->last_active_ms).Bind(3, after->cid);
      Status step;
      while ((*st)->Step(&step)) {
        CampaignSummary summary;
        summary.cid = (*st)->Text(0);
        summary.counters.views = (*st)->Int(1);
        summary.counters.clicks = (*st)->Int(2);
        summary.counters.clicks_by_button = {(*st)->Int(3), (*st)->Int(4), (*st)->Int(5)};
        summary.first_active_ms = (*st)->Int(6);
        summary.last_active_ms = (*st)->Int(7);
        out.push_back(std::move(summary));
      }
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  bool Ready() override {
    return Read([](Connection& c) { return c.Exec("SELECT 1"); }).ok();
  }

 private:
  static constexpr int kReaders = 4;

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  Message ReadMessage(const Statement& s) const {
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
    m.event = ReadEvent(s, 9, instance_id_);
    return m;
  }

  Status Migrate() {
    auto st = writer_conn_->Prepare("PRAGMA user_version");
    if (!st.ok()) return st.status();
    Status step;
    int version = (*st)->Step(&step) ? static_cast<int>((*st)->Int(0)) : 0;
    (*st)->Reset();
    if (!step.ok()) return step;
    constexpr int kLatest = static_cast<int>(std::size(kMigrations));
    if (version > kLatest) {
      return model::Status(model::StatusCode::kUnprocessable,
                           "database schema version " + std::to_string(version) +
                               " is newer than this pushhook knows (" + std::to_string(kLatest) +
                               ")");
    }
    for (; version < kLatest; ++version) {
      Status s = writer_conn_->Exec("BEGIN IMMEDIATE");
      if (s.ok()) s = writer_conn_->Exec(kMigrations[version]);
      if (s.ok() && version == 0) {
        s = writer_conn_->Exec("INSERT INTO meta(key, value) VALUES('instance', '" +
                               model::RandomToken(8) + "')");
      }
      if (s.ok()) s = writer_conn_->Exec("PRAGMA user_version = " + std::to_string(version + 1));
      if (s.ok()) s = writer_conn_->Exec("COMMIT");
      if (!s.ok()) {
        writer_conn_->Exec("ROLLBACK");
        return model::Internal("migration " + std::to_string(version + 1) +
                               " failed: " + s.message());
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

  Status ApplyAppend(Connection& c, const std::string& site_id,
                     const std::vector<model::Event>& events, int64_t now_ms,
                     AppendResult* result) {
    // The site's endpoints as of this transaction decide the fan-out. A disabled endpoint gets
    // its messages too: they wait, pending, until it is enabled again (DESIGN section 4).
    auto targets = Targets(c, site_id);
    if (!targets.ok()) return targets.status();
    auto insert_event = c.Prepare(
        "INSERT OR IGNORE INTO events(site_id, event_id, action, cookie_id, cid, "
        "notification_title, reference_id, utm_campaign, utm_content, utm_medium, utm_source, "
        "utm_term, clicked_button, occurred_at, received_at) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!insert_event.ok()) return insert_event.status();
    auto insert_message = c.Prepare(
        "INSERT INTO messages(event_rowid, site_id, endpoint_id, status, next_attempt_at, "
        "created_at) VALUES(?,?,?,0,?,?)");
    if (!insert_message.ok()) return insert_message.status();
    Statement& ev = **insert_event;
    Statement& msg = **insert_message;
    std::vector<const model::Event*> accepted;
    int64_t last_event_row = 0;
    for (const model::Event& e : events) {
      ev.Bind(1, site_id);
      if (e.event_id.empty()) {
        ev.BindNull(2);
      } else {
        ev.Bind(2, e.event_id);
      }
      ev.Bind(3, e.action == model::Action::kView ? 0 : 1)
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
      if (Status s = ev.Run(); !s.ok()) return s;
      if (c.Changes() == 0) {
        ++result->duplicates;
        continue;
      }
      ++result->accepted;
      accepted.push_back(&e);
      const int64_t event_row = c.LastInsertRowId();
      last_event_row = event_row;
      std::shared_ptr<const StoredEvent> stored;
      for (const Target& t : **targets) {
        if (!t.filter.Accepts(e.action)) continue;
        msg.Bind(1, event_row).Bind(2, site_id).Bind(3, t.id).Bind(4, now_ms).Bind(5, now_ms);
        if (Status s = msg.Run(); !s.ok()) return s;
        if (stored == nullptr) stored = Stored(e, site_id, event_row);
        result->messages.push_back(DueMessage{c.LastInsertRowId(), t.id, now_ms, 0, stored});
      }
    }
    // Counted only once this request's writes all succeeded; flushed before the commit.
    if (options_.aggregates) {
      model::AggregateBatch& aggregates = tx_aggregates_[site_id];
      for (const model::Event* e : accepted) aggregates.Add(*e, now_ms);
      tx_aggregated_events_ += accepted.size();
      if (!accepted.empty()) tx_last_event_ = last_event_row;
    }
    return Status::Ok();
  }

  struct Target {
    std::string id;
    model::EventFilter filter;
  };

  // A site's fan-out targets, read once and kept by the writer until an admin write or a
  // rollback (WriteSync, Rollback) may have changed them.
  StatusOr<const std::vector<Target>*> Targets(Connection& c, const std::string& site_id) {
    if (auto it = targets_by_site_.find(site_id); it != targets_by_site_.end()) return &it->second;
    auto st = c.Prepare("SELECT id, events FROM endpoints WHERE site_id = ? AND deleted = 0");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, site_id);
    std::vector<Target> targets;
    Status step;
    while ((*st)->Step(&step)) {
      targets.push_back(Target{(*st)->Text(0), FilterFromBits((*st)->Int(1))});
    }
    (*st)->Reset();
    if (!step.ok()) return step;
    return &targets_by_site_.insert_or_assign(site_id, std::move(targets)).first->second;
  }

  std::shared_ptr<const StoredEvent> Stored(const model::Event& e, const std::string& site_id,
                                            int64_t event_row) const {
    auto stored = std::make_shared<StoredEvent>(StoredEvent{e, site_id});
    if (e.event_id.empty()) stored->event.event_id = FormatEventId(instance_id_, event_row);
    return stored;
  }

  using SiteAggregates = std::map<std::string, model::AggregateBatch>;

  // Adds `batches` to the statistics tables, inside the caller's transaction.
  Status FlushAggregates(Connection& c, const SiteAggregates& batches) {
    if (batches.empty()) return Status::Ok();
    auto minute = c.Prepare(
        "INSERT INTO stats_minute(site_id, cid, reference_id, minute, views, clicks, b0, b1, b2) "
        "VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET views = views + excluded.views, "
        "clicks = clicks + excluded.clicks, b0 = b0 + excluded.b0, b1 = b1 + excluded.b1, "
        "b2 = b2 + excluded.b2");
    auto utm = c.Prepare(
        "INSERT INTO stats_utm_minute(site_id, field, value, cid, reference_id, minute, views, "
        "clicks) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
        "views = views + excluded.views, clicks = clicks + excluded.clicks");
    auto sketch_get = c.Prepare(
        "SELECT sketch FROM stats_uniques_hour WHERE site_id = ? AND cid = ? AND "
        "reference_id = ? AND hour = ?");
    auto sketch_put = c.Prepare(
        "INSERT OR REPLACE INTO stats_uniques_hour(site_id, cid, reference_id, hour, sketch) "
        "VALUES(?,?,?,?,?)");
    auto campaign = c.Prepare(
        "INSERT INTO campaigns(site_id, cid, views, clicks, b0, b1, b2, first_active, "
        "last_active) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
        "views = views + excluded.views, clicks = clicks + excluded.clicks, "
        "b0 = b0 + excluded.b0, b1 = b1 + excluded.b1, b2 = b2 + excluded.b2, "
        "last_active = max(last_active, excluded.last_active)");
    for (auto* st : {&minute, &utm, &sketch_get, &sketch_put, &campaign}) {
      if (!st->ok()) return st->status();
    }
    for (const auto& [site, batch] : batches) {
      for (const auto& [key, n] : batch.minutes) {
        Status s = (*minute)
                       ->Bind(1, site)
                       .Bind(2, key.cid)
                       .Bind(3, key.reference_id)
                       .Bind(4, key.minute_ms)
                       .Bind(5, n.views)
                       .Bind(6, n.clicks)
                       .Bind(7, n.clicks_by_button[0])
                       .Bind(8, n.clicks_by_button[1])
                       .Bind(9, n.clicks_by_button[2])
                       .Run();
        if (!s.ok()) return s;
      }
      for (const auto& [key, n] : batch.utm) {
        Status s = (*utm)
                       ->Bind(1, site)
                       .Bind(2, key.field)
                       .Bind(3, key.value)
                       .Bind(4, key.minute.cid)
                       .Bind(5, key.minute.reference_id)
                       .Bind(6, key.minute.minute_ms)
                       .Bind(7, n.views)
                       .Bind(8, n.clicks)
                       .Run();
        if (!s.ok()) return s;
      }
      for (const auto& [key, sketch] : batch.subscribers) {
        model::HyperLogLog merged = sketch;
        (*sketch_get)
            ->Bind(1, site)
            .Bind(2, key.cid)
            .Bind(3, key.reference_id)
            .Bind(4, key.hour_ms);
        Status step;
        if ((*sketch_get)->Step(&step)) {
          if (auto stored = model::HyperLogLog::Deserialize((*sketch_get)->Text(0))) {
            merged.Merge(*stored);
          }
        }
        (*sketch_get)->Reset();
        if (!step.ok()) return step;
        const std::string bytes = merged.Serialize();
        (*sketch_put)
            ->Bind(1, site)
            .Bind(2, key.cid)
            .Bind(3, key.reference_id)
            .Bind(4, key.hour_ms);
        (*sketch_put)->BindBlob(5, bytes);
        if (Status s = (*sketch_put)->Run(); !s.ok()) return s;
      }
      for (const auto& [cid, delta] : batch.campaigns) {
        const model::Counters& n = delta.counters;
        Status s = (*campaign)
                       ->Bind(1, site)
                       .Bind(2, cid)
                       .Bind(3, n.views)
                       .Bind(4, n.clicks)
                       .Bind(5, n.clicks_by_button[0])
                       .Bind(6, n.clicks_by_button[1])
                       .Bind(7, n.clicks_by_button[2])
                       .Bind(8, delta.first_active_ms)
                       .Bind(9, delta.last_active_ms)
                       .Run();
        if (!s.ok()) return s;
      }
    }
    return Status::Ok();
  }

  static Status ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records) {
    auto insert = c.Prepare(
        "INSERT OR REPLACE INTO attempts(message_id, attempt, at, status_code, latency_us, error, "
        "response) VALUES(?,?,?,?,?,?,?)");
    if (!insert.ok()) return insert.status();
    auto update = c.Prepare(
        "UPDATE messages SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, "
        "last_error = ? WHERE id = ?");
    if (!update.ok()) return update.status();
    for (const AttemptRecord& r : records) {
      Status s = (*insert)
                     ->Bind(1, r.message_id)
                     .Bind(2, r.attempt)
                     .Bind(3, r.at_ms)
                     .Bind(4, r.status_code)
                     .Bind(5, r.latency_us)
                     .Bind(6, r.error)
                     .Bind(7, r.response_prefix)
                     .Run();
      if (!s.ok()) return s;
      s = (*update)
              ->Bind(1, static_cast<int>(r.new_status))
              .Bind(2, r.attempt)
              .Bind(3, r.next_attempt_ms)
              .Bind(4, r.status_code)
              .Bind(5, r.error)
              .Bind(6, r.message_id)
              .Run();
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  StatusOr<std::vector<Site>> QuerySites(const std::string& sql,
                                         const std::optional<std::string>& arg) {
    std::vector<Site> out;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      if (arg) (*st)->Bind(1, *arg);
      Status step;
      while ((*st)->Step(&step)) {
        out.push_back(Site{(*st)->Text(0), (*st)->Text(1), (*st)->Text(2), (*st)->Int(3)});
      }
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  StatusOr<std::vector<Endpoint>> QueryEndpoints(const std::string& sql, const std::string& arg1,
                                                 const std::optional<std::string>& arg2) {
    std::vector<Endpoint> out;
    Status s = Read([&](Connection& c) {
      auto st = c.Prepare(sql);
      if (!st.ok()) return st.status();
      (*st)->Bind(1, arg1);
      if (arg2) (*st)->Bind(2, *arg2);
      Status step;
      while ((*st)->Step(&step)) out.push_back(ReadEndpoint(**st, 0, box_));
      (*st)->Reset();
      return step;
    });
    if (!s.ok()) return s;
    return out;
  }

  // Runs `fn` on a free read connection.
  Status Read(const std::function<Status(Connection&)>& fn) {
    std::unique_ptr<Connection> conn;
    {
      std::unique_lock lock(readers_mu_);
      readers_cv_.wait(lock, [this] { return !readers_.empty(); });
      conn = std::move(readers_.back());
      readers_.pop_back();
    }
    Status s = fn(*conn);
    {
      std::lock_guard lock(readers_mu_);
      readers_.push_back(std::move(conn));
    }
    readers_cv_.notify_one();
    return s;
  }

  // Admin writes, endpoints' among them: each forgets the writer's fan-out targets, so the next
  // append reads them again (they are rare; appends are not).
  Status WriteSync(std::function<Status(Connection&)> apply) {
    return writes_.Run([this, apply = std::move(apply)](Connection& c) {
      targets_by_site_.clear();
      return apply(c);
    });
  }

  void CommitBatch(std::vector<SqliteWriteQueue::Op>& batch, std::vector<Status>* results) {
    Connection& c = *writer_conn_;
    results->assign(batch.size(), Status::Ok());
    Status begin = c.Run("BEGIN IMMEDIATE");
    if (!begin.ok()) {
      for (auto& r : *results) r = begin;
      return;
    }
    const bool single = batch.size() == 1;
    for (size_t i = 0; i < batch.size(); ++i) {
      // A savepoint keeps an isolated write's failure (an admin write's constraint) from
      // undoing the others'. Appends and attempt records need none: their only failures are
      // the database's, which no other write of the transaction would survive either.
      const bool savepoint = !single && batch[i].isolated;
      if (savepoint) c.Run("SAVEPOINT w");
      Status s = batch[i].apply(c);
      if (savepoint) {
        if (!s.ok()) c.Run("ROLLBACK TO w");
        c.Run("RELEASE w");
      } else if (!s.ok()) {
        // Part of this write is in the transaction: none of the transaction may commit.
        Rollback(c);
        for (size_t j = 0; j < batch.size(); ++j) {
          (*results)[j] =
              j == i ? std::move(s) : model::Unavailable("a write in the same transaction failed");
        }
        return;
      }
      (*results)[i] = std::move(s);
    }
    const bool flush = FlushDue();
    if (flush) {
      Status flushed = FlushAggregates(c, held_aggregates_);
      if (flushed.ok()) flushed = FlushAggregates(c, tx_aggregates_);
      if (flushed.ok()) flushed = RecordAggregatedThrough(c, std::max(last_event_, tx_last_event_));
      if (!flushed.ok()) {
        Rollback(c);
        for (auto& r : *results) {
          if (r.ok()) r = model::Unavailable("statistics update failed: " + flushed.message());
        }
        return;
      }
    }
    Status commit = c.Run("COMMIT");
    if (!commit.ok()) {
      Rollback(c);
      for (auto& r : *results) {
        if (r.ok()) r = model::Unavailable("commit failed: " + commit.message());
      }
      return;
    }
    Committed(flush);
  }

  // Statistics are written with the events' transaction only now and then (FlushDue): the
  // pages of the statistics tables then change once per flush rather than once per commit. In
  // between, the committed transactions' statistics are held here, and a crash loses none of
  // them: meta 'aggregated_through' names the last event whose statistics are written, and
  // Open() folds in the events after it (RecoverAggregates). A read of statistics first asks
  // for a flush (SettleAggregates), so it still sees every event stored before it.
  static constexpr size_t kHoldEvents = 20'000;
  static constexpr std::chrono::milliseconds kHoldTime{200};

  bool FlushDue() const {
    if (!options_.aggregates) return false;
    if (flush_requested_) return true;
    if (held_aggregates_.empty()) return tx_aggregated_events_ >= kHoldEvents;
    return held_events_ + tx_aggregated_events_ >= kHoldEvents ||
           std::chrono::steady_clock::now() - held_since_ >= kHoldTime;
  }

  // After a COMMIT: what this transaction counted is written (`flushed`) or held.
  void Committed(bool flushed) {
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
  void DiscardTransaction() {
    tx_aggregates_.clear();
    tx_aggregated_events_ = 0;
    tx_last_event_ = 0;
  }

  Status RecordAggregatedThrough(Connection& c, int64_t event_rowid) {
    auto st = c.Prepare(
        "INSERT INTO meta(key, value) VALUES('aggregated_through', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st.ok()) return st.status();
    return (*st)->Bind(1, std::to_string(event_rowid)).Run();
  }

  // Writes the statistics held in memory, so that what reads them next sees every stored event.
  Status SettleAggregates() {
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
  Status RecoverAggregates() {
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
      c.Run("ROLLBACK");
      return model::Internal("cannot recount statistics after a restart: " + s.message());
    }
    if (through) {
      util::Log(util::LogLevel::kInfo, "statistics recounted",
                {{"events", std::to_string(last - *through)}});
    }
    return Status::Ok();
  }

  // Ends a transaction that did not commit. What the writer cached from it may be gone.
  void Rollback(Connection& c) {
    c.Run("ROLLBACK");
    targets_by_site_.clear();
    DiscardTransaction();
  }

  const std::string path_;
  const StoreOptions options_;
  const model::SecretBox box_;
  // Statistics of the transaction being built, by site; writer thread only.
  SiteAggregates tx_aggregates_;
  size_t tx_aggregated_events_ = 0;
  int64_t tx_last_event_ = 0;  // the last event row this transaction stored
  // Committed statistics not yet written (FlushDue); writer thread only.
  SiteAggregates held_aggregates_;
  size_t held_events_ = 0;
  std::chrono::steady_clock::time_point held_since_;
  bool flush_requested_ = false;
  int64_t last_event_ = 0;                    // the last event row committed
  std::atomic<bool> aggregates_held_{false};  // held_aggregates_ is not empty; any thread
  // Fan-out targets by site (Targets()); writer thread only.
  std::unordered_map<std::string, std::vector<Target>> targets_by_site_;
  std::string instance_id_;
  std::unique_ptr<Connection> writer_conn_;

  SqliteWriteQueue writes_;

  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_;  // guarded by readers_mu_
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const StoreOptions& options) {
  auto store = std::make_unique<SqliteStore>(path, options);
  if (Status s = store->Open(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pushhook::store::sqlite
