#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "model/random.h"
#include "model/secret_box.h"
#include "store/postgres/pg_conn.h"
#include "store/store_internal.h"
#include "store/write_queue.h"
#include "util/log.h"

namespace pushhook::store::postgres {
namespace {

using model::Status;
using model::StatusOr;

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
};

// The one channel every node listens on. A notification is lines: the sender's origin token,
// then "m <endpoint> <first id> <last id>" (new pending messages) or "e <endpoint>" (changed).
constexpr const char* kChannel = "pushhook";
constexpr size_t kMaxNotifyBytes = 7'000;  // PostgreSQL's limit is 8,000

constexpr const char* kNowMs = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

using internal::FilterBits;
using internal::FilterFromBits;

constexpr const char* kEndpointColumns =
    "id, site_id, url, description, events, payload_format, enabled, max_in_flight, rate_limit, "
    "secret, previous_secret, previous_secret_expires_at, created_at, updated_at";

Endpoint ReadEndpoint(const Result& r, int row, int first, const model::SecretBox& box) {
  Endpoint e;
  e.id = r.String(row, first);
  e.site_id = r.String(row, first + 1);
  e.url = r.String(row, first + 2);
  e.description = r.String(row, first + 3);
  e.filter = FilterFromBits(r.Int(row, first + 4));
  model::ParsePayloadFormat(r.String(row, first + 5), &e.format);
  e.enabled = r.Int(row, first + 6) != 0;
  e.max_in_flight = static_cast<int>(r.Int(row, first + 7));
  e.rate_limit = r.Double(row, first + 8);
  // A secret that does not open (another key) reads as empty, and signs nothing.
  e.secret = box.Open(r.String(row, first + 9)).value_or("");
  e.previous_secret = box.Open(r.String(row, first + 10)).value_or("");
  e.previous_secret_expires_ms = r.Int(row, first + 11);
  e.created_at_ms = r.Int(row, first + 12);
  e.updated_at_ms = r.Int(row, first + 13);
  return e;
}

constexpr const char* kEventColumns =
    "e.action, e.cookie_id, e.cid, e.notification_title, e.reference_id, e.utm_campaign, "
    "e.utm_content, e.utm_medium, e.utm_source, e.utm_term, e.clicked_button, e.event_id, "
    "e.occurred_at, e.id";
constexpr int kEventColumnCount = 14;

model::Event ReadEvent(const Result& r, int row, int first, const std::string& instance_id) {
  model::Event e;
  e.action = r.Int(row, first) == 0 ? model::Action::kView : model::Action::kClick;
  e.cookie_id = r.String(row, first + 1);
  e.cid = r.String(row, first + 2);
  e.notification_title = r.String(row, first + 3);
  e.reference_id = r.String(row, first + 4);
  e.utm_campaign = r.String(row, first + 5);
  e.utm_content = r.String(row, first + 6);
  e.utm_medium = r.String(row, first + 7);
  e.utm_source = r.String(row, first + 8);
  e.utm_term = r.String(row, first + 9);
  e.clicked_button = static_cast<int>(r.Int(row, first + 10));
  // Events without a client id are named after their row, like messages.
  e.event_id = r.IsNull(row, first + 11) ? FormatEventId(instance_id, r.Int(row, first + 13))
                                         : r.String(row, first + 11);
  e.occurred_at_ms = r.Int(row, first + 12);
  return e;
}

std::string HexBytes(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + 2 * bytes.size());
  for (unsigned char ch : bytes) {
    out.push_back(kDigits[ch >> 4]);
    out.push_back(kDigits[ch & 15]);
  }
  return out;
}

std::vector<DueMessage> ReadDue(const Result& r) {
  std::vector<DueMessage> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(
        DueMessage{r.Int(i, 0), r.String(i, 1), r.Int(i, 2), static_cast<int>(r.Int(i, 3)), {}});
  }
  return out;
}

// Notification text for new messages, in chunks under PostgreSQL's size limit.
class NoticeWriter {
 public:
  explicit NoticeWriter(const std::string& origin) : origin_(origin) {}
  void Messages(const std::string& endpoint_id, int64_t first, int64_t last) {
    Line("m " + endpoint_id + " " + std::to_string(first) + " " + std::to_string(last));
  }
  void Endpoint(const std::string& endpoint_id) { Line("e " + endpoint_id); }
  std::vector<std::string> Finish() {
    if (!current_.empty()) chunks_.push_back(std::move(current_));
    return std::move(chunks_);
  }

 private:
  void Line(const std::string& line) {
    if (!current_.empty() && current_.size() + line.size() + 1 > kMaxNotifyBytes) {
      chunks_.push_back(std::move(current_));
      current_.clear();
    }
    if (current_.empty()) current_ = origin_;
    current_ += "\n" + line;
  }
  const std::string& origin_;
  std::string current_;
  std::vector<std::string> chunks_;
};

using PgWriteQueue = WriteQueue<Connection>;

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string url, const StoreOptions& options)
      : url_(std::move(url)),
        options_(options),
        box_(options.secrets_key),
        origin_(model::RandomToken(12)),
        writes_(options.max_pending_writes,
                [this](std::vector<PgWriteQueue::Op>& batch, std::vector<Status>* results) {
                  CommitBatch(batch, results);
                }) {}

  ~PostgresStore() override {
    writes_.Stop();
    stopping_ = true;
    if (listener_.joinable()) listener_.join();
  }

  Status Open() {
    auto writer = Connection::Open(url_);
    if (!writer.ok()) return writer.status();
    writer_conn_ = std::move(writer.value());
    if (!options_.durability_full) writer_conn_->Exec("SET synchronous_commit = off");
    if (Status s = Migrate(); !s.ok()) return s;
    for (size_t i = 0; i < std::max<size_t>(1, options_.pool_size); ++i) {
      auto conn = Connection::Open(url_);
      if (!conn.ok()) return conn.status();
      pool_.push_back(std::move(conn.value()));
    }
    // Listening before Open returns: nothing another node does after that goes unheard.
    auto listening = Connection::Open(url_);
    if (!listening.ok()) return listening.status();
    if (Status s = listening.value()->Exec(std::string("LISTEN ") + kChannel); !s.ok()) return s;
    writes_.Start("ph-store-write");
    listener_ = std::thread([this, conn = std::move(listening.value())]() mutable {
      pthread_setname_np(pthread_self(), "ph-pg-listen");
      ListenLoop(std::move(conn));
    });
    return Status::Ok();
  }

  const std::string& instance_id() const override { return instance_id_; }

  StatusOr<Site> CreateSite(const std::string& name) override {
    Site site{"site_" + model::RandomToken(16), name, "pk_" + model::RandomToken(32), NowMs()};
    auto r =
        Query("INSERT INTO sites(id, name, ingest_key, created_at) VALUES($1,$2,$3,$4)",
              Params().Add(site.id).Add(site.name).Add(site.ingest_key).Add(site.created_at_ms));
    if (!r.ok()) return r.status();
    return site;
  }

  StatusOr<Site> GetSite(const std::string& site_id) override {
    auto sites = QuerySites("SELECT id, name, ingest_key, created_at FROM sites WHERE id = $1",
                            Params().Add(site_id));
    if (!sites.ok()) return sites.status();
    if (sites->empty()) return model::NotFound("site " + site_id + " not found");
    return std::move(sites->front());
  }

  StatusOr<std::vector<Site>> ListSites() override {
    return QuerySites("SELECT id, name, ingest_key, created_at FROM sites ORDER BY created_at, id",
                      Params());
  }

  std::optional<Site> FindSiteByIngestKey(const std::string& ingest_key) override {
    auto sites =
        QuerySites("SELECT id, name, ingest_key, created_at FROM sites WHERE ingest_key = $1",
                   Params().Add(ingest_key));
    if (!sites.ok() || sites->empty()) return std::nullopt;
    return std::move(sites->front());
  }

  Status AddSiteToken(const std::string& site_id, const std::string& token_hash) override {
    if (auto site = GetSite(site_id); !site.ok()) return site.status();
    return Query("INSERT INTO site_tokens(token_hash, site_id, created_at) VALUES($1,$2,$3)",
                 Params().Add(token_hash).Add(site_id).Add(NowMs()))
        .status();
  }

  std::optional<std::string> FindSiteOfToken(const std::string& token_hash) override {
    auto r =
        Query("SELECT site_id FROM site_tokens WHERE token_hash = $1", Params().Add(token_hash));
    if (!r.ok() || r->rows() == 0) return std::nullopt;
    return r->String(0, 0);
  }

  StatusOr<Endpoint> CreateEndpoint(Endpoint e) override {
    e.id = "ep_" + model::RandomToken(20);
    auto r = Query(std::string("INSERT INTO endpoints(") + kEndpointColumns +
                       ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                   EndpointParams(e));
    if (!r.ok()) return r.status();
    NotifyEndpoint(e.id);
    return e;
  }

  StatusOr<Endpoint> GetEndpoint(const std::string& site_id,
                                 const std::string& endpoint_id) override {
    auto found = QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                                    " FROM endpoints WHERE id = $1 AND site_id = $2 AND "
                                    "deleted = 0",
                                Params().Add(endpoint_id).Add(site_id));
    if (!found.ok()) return found.status();
    if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
    return std::move(found->front());
  }

  StatusOr<Endpoint> GetEndpointById(const std::string& endpoint_id) override {
    auto found = QueryEndpoints(
        std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = $1 AND deleted = 0",
        Params().Add(endpoint_id));
    if (!found.ok()) return found.status();
    if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
    return std::move(found->front());
  }

  StatusOr<std::vector<Endpoint>> ListEndpoints(const std::string& site_id) override {
    return QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                              " FROM endpoints WHERE site_id = $1 AND deleted = 0 "
                              "ORDER BY created_at, id",
                          Params().Add(site_id));
  }

  StatusOr<Endpoint> UpdateEndpoint(const std::string& site_id, const std::string& endpoint_id,
                                    const EndpointPatch& patch, int64_t now_ms) override {
    auto current = GetEndpoint(site_id, endpoint_id);
    if (!current.ok()) return current;
    Endpoint e = std::move(current.value());
    internal::ApplyPatch(patch, now_ms, &e);
    // Every parameter of EndpointParams is used (PostgreSQL must know each one's type):
    // created_at, which never changes, as one more guard on the row.
    auto r = Query(
        "UPDATE endpoints SET url=$3, description=$4, events=$5, payload_format=$6, enabled=$7, "
        "max_in_flight=$8, rate_limit=$9, secret=$10, previous_secret=$11, "
        "previous_secret_expires_at=$12, updated_at=$14 "
        "WHERE id=$1 AND site_id=$2 AND deleted=0 AND created_at=$13",
        EndpointParams(e));
    if (!r.ok()) return r.status();
    if (r->affected() == 0) return model::NotFound("endpoint " + e.id + " not found");
    NotifyEndpoint(e.id);
    return e;
  }

  Status DeleteEndpoint(const std::string& site_id, const std::string& endpoint_id) override {
    // Its pending messages have nowhere to go: they end as failed, kept for the log.
    auto r = Query(
        "WITH gone AS (UPDATE endpoints SET deleted = 1, enabled = 0 "
        "  WHERE id = $1 AND site_id = $2 AND deleted = 0 RETURNING id), "
        "failed AS (UPDATE messages SET status = 2, last_error = 'endpoint deleted' "
        "  WHERE endpoint_id IN (SELECT id FROM gone) AND status = 0) "
        "SELECT count(*) FROM gone",
        Params().Add(endpoint_id).Add(site_id));
    if (!r.ok()) return r.status();
    if (r->Int(0, 0) == 0) return model::NotFound("endpoint " + endpoint_id + " not found");
    NotifyEndpoint(endpoint_id);
    return Status::Ok();
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
    auto r = Query(
        "SELECT id, endpoint_id, next_attempt_at, attempts FROM messages "
        "WHERE status = 0 AND id > $1 ORDER BY id LIMIT $2",
        Params().Add(after_id).Add(limit));
    if (!r.ok()) return r.status();
    return ReadDue(*r);
  }

  StatusOr<std::vector<DueMessage>> LoadPendingForEndpoint(const std::string& endpoint_id,
                                                           int64_t after_id, int limit) override {
    auto r = Query(
        "SELECT id, endpoint_id, next_attempt_at, attempts FROM messages "
        "WHERE endpoint_id = $3 AND status = 0 AND id > $1 ORDER BY id LIMIT $2",
        Params().Add(after_id).Add(limit).Add(endpoint_id));
    if (!r.ok()) return r.status();
    return ReadDue(*r);
  }

  StatusOr<std::vector<DueMessage>> LoadPendingSince(const std::vector<std::string>& endpoints,
                                                     int64_t after_id, int limit) override {
    ArrayLiteral ids;
    for (const std::string& id : endpoints) ids.Add(id);
    if (ids.size() == 0) return std::vector<DueMessage>{};
    auto r = Query(
        "SELECT id, endpoint_id, next_attempt_at, attempts FROM messages "
        "WHERE status = 0 AND id > $1 AND endpoint_id = ANY($3::text[]) ORDER BY id LIMIT $2",
        Params().Add(after_id).Add(limit).Add(ids.Finish()));
    if (!r.ok()) return r.status();
    return ReadDue(*r);
  }

  StatusOr<Delivery> LoadDelivery(int64_t message_id) override {
    static const std::string sql = DeliverySql("m.id = $1");
    auto r = Query(sql, Params().Add(message_id));
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return model::NotFound("message not found");
    return ReadDelivery(*r, 0);
  }

  // One round trip for a batch: what makes a node that delivers messages another node stored
  // cheap in statements (BENCHMARKS.md, figure 8).
  StatusOr<std::vector<Delivery>> LoadDeliveries(const std::vector<int64_t>& ids) override {
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

  StatusOr<std::vector<Message>> ListMessages(const MessageQuery& q) override {
    std::string sql = std::string(
                          "SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                          "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                      kEventColumns +
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
    sql += " ORDER BY m.id DESC LIMIT $" + std::to_string(++n);
    params.Add(q.limit);
    auto r = Query(sql, params);
    if (!r.ok()) return r.status();
    std::vector<Message> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back(ReadMessage(*r, i));
    return out;
  }

  StatusOr<Message> GetMessage(const std::string& site_id, int64_t message_id) override {
    auto r = Query(std::string("SELECT m.id, m.site_id, m.endpoint_id, m.status, m.attempts, "
                               "m.next_attempt_at, m.created_at, m.last_status, m.last_error, ") +
                       kEventColumns +
                       " FROM messages m JOIN events e ON e.id = m.event_rowid "
                       "WHERE m.id = $1 AND m.site_id = $2",
                   Params().Add(message_id).Add(site_id));
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return model::NotFound("message not found");
    return ReadMessage(*r, 0);
  }

  StatusOr<std::vector<Attempt>> ListAttempts(int64_t message_id) override {
    auto r = Query(
        "SELECT attempt, at, status_code, latency_us, error, response FROM attempts "
        "WHERE message_id = $1 ORDER BY attempt",
        Params().Add(message_id));
    if (!r.ok()) return r.status();
    std::vector<Attempt> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back(Attempt{static_cast<int>(r->Int(i, 0)), r->Int(i, 1),
                            static_cast<int>(r->Int(i, 2)), r->Int(i, 3), r->String(i, 4),
                            r->String(i, 5)});
    }
    return out;
  }

  StatusOr<DueMessage> RequeueMessage(const std::string& site_id, int64_t message_id,
                                      int64_t now_ms) override {
    auto r = Query(
        "UPDATE messages SET status = 0, next_attempt_at = $1 WHERE id = $2 AND site_id = $3 "
        "AND endpoint_id IN (SELECT id FROM endpoints WHERE deleted = 0) "
        "RETURNING id, endpoint_id, attempts",
        Params().Add(now_ms).Add(message_id).Add(site_id));
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return model::NotFound("message not found");
    DueMessage due{r->Int(0, 0), r->String(0, 1), now_ms, static_cast<int>(r->Int(0, 2)), {}};
    NotifyMessages(due.endpoint_id, due.id, due.id);
    return due;
  }

  StatusOr<std::vector<DueMessage>> ReplayEvents(const ReplayQuery& q, int64_t now_ms) override {
    std::string sql =
        "INSERT INTO messages(event_rowid, site_id, endpoint_id, status, next_attempt_at, "
        "created_at) SELECT id, site_id, $1, 0, $2, $2 FROM events WHERE site_id = $3 AND "
        "occurred_at >= $4 AND occurred_at < $5";
    Params params;
    params.Add(q.endpoint_id)
        .Add(now_ms)
        .Add(q.site_id)
        .Add(q.since_ms)
        .Add(q.until_ms)
        .Add(static_cast<int64_t>(q.max_events));
    int n = 6;
    if (q.cid) {
      sql += " AND cid = $" + std::to_string(++n);
      params.Add(*q.cid);
    }
    if (q.reference_id) {
      sql += " AND reference_id = $" + std::to_string(++n);
      params.Add(*q.reference_id);
    }
    sql += " ORDER BY id LIMIT $6 RETURNING id";
    auto r = Query(sql, params);
    if (!r.ok()) return r.status();
    std::vector<DueMessage> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back(DueMessage{r->Int(i, 0), q.endpoint_id, now_ms, 0, {}});
    }
    if (!out.empty()) {
      const auto [lo, hi] = std::minmax_element(
          out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
      NotifyMessages(q.endpoint_id, lo->id, hi->id);
    }
    return out;
  }

  StatusOr<EndpointStats> GetEndpointStats(const std::string& endpoint_id,
                                           int64_t since_ms) override {
    EndpointStats stats;
    auto r = Query(
        "SELECT count(*), count(*) FILTER (WHERE a.status_code BETWEEN 200 AND 299), "
        "coalesce(percentile_disc(0.5) WITHIN GROUP (ORDER BY a.latency_us), 0), "
        "coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY a.latency_us), 0) "
        "FROM attempts a JOIN messages m ON m.id = a.message_id "
        "WHERE m.endpoint_id = $1 AND a.at >= $2",
        Params().Add(endpoint_id).Add(since_ms));
    if (!r.ok()) return r.status();
    stats.attempts = static_cast<uint64_t>(r->Int(0, 0));
    stats.successes = static_cast<uint64_t>(r->Int(0, 1));
    stats.failures = stats.attempts - stats.successes;
    stats.latency_p50_us = r->Int(0, 2);
    stats.latency_p99_us = r->Int(0, 3);
    auto counts = Query(
        "SELECT count(*) FILTER (WHERE status = 0), count(*) FILTER (WHERE status = 2) "
        "FROM messages WHERE endpoint_id = $1",
        Params().Add(endpoint_id));
    if (!counts.ok()) return counts.status();
    stats.pending = static_cast<uint64_t>(counts->Int(0, 0));
    stats.failed_messages = static_cast<uint64_t>(counts->Int(0, 1));
    return stats;
  }

  StatusOr<size_t> PurgeMessages(int64_t delivered_before_ms, int64_t failed_before_ms,
                                 int limit) override {
    // Several nodes purge at once: each takes rows nobody else has locked, in batches small
    // enough to keep transactions short and let autovacuum reuse the space as it goes.
    auto r = Query(
        "WITH picked AS (SELECT id FROM messages WHERE "
        "  (status = 1 AND next_attempt_at < $1) OR (status = 2 AND next_attempt_at < $2) "
        "  LIMIT $3 FOR UPDATE SKIP LOCKED), "
        "gone_attempts AS (DELETE FROM attempts WHERE message_id IN (SELECT id FROM picked)) "
        "DELETE FROM messages WHERE id IN (SELECT id FROM picked)",
        Params().Add(delivered_before_ms).Add(failed_before_ms).Add(limit));
    if (!r.ok()) return r.status();
    return static_cast<size_t>(r->affected());
  }

  StatusOr<StatsResult> QueryStats(const StatsQuery& q) override {
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
      return c;
    };
    constexpr const char* kSums =
        "coalesce(sum(views),0)::bigint, coalesce(sum(clicks),0)::bigint, "
        "coalesce(sum(b0),0)::bigint, coalesce(sum(b1),0)::bigint, coalesce(sum(b2),0)::bigint";
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
      auto r = Query(
          "SELECT value, coalesce(sum(views),0)::bigint, coalesce(sum(clicks),0)::bigint "
          "FROM stats_utm_minute" +
              where + " AND field = " + next + " GROUP BY value ORDER BY value",
          params);
      if (!r.ok()) return r.status();
      for (int i = 0; i < r->rows(); ++i) {
        model::Counters c;
        c.views = r->Int(i, 1);
        c.clicks = r->Int(i, 2);
        result.groups.push_back(StatsRow{r->String(i, 0), c});
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
      auto r = Query("SELECT sketch FROM stats_uniques_hour" + uwhere, params);
      if (!r.ok()) return r.status();
      model::HyperLogLog merged;
      for (int i = 0; i < r->rows(); ++i) {
        if (auto h = model::HyperLogLog::Deserialize(r->Bytes(i, 0))) merged.Merge(*h);
      }
      result.unique_subscribers = merged.Estimate();
    }
    return result;
  }

  StatusOr<std::vector<CampaignSummary>> ListCampaigns(const std::string& site_id,
                                                       const std::optional<CampaignCursor>& after,
                                                       int limit) override {
    std::string sql =
        "SELECT cid, views, clicks, b0, b1, b2, first_active, last_active FROM campaigns "
        "WHERE site_id = $1";
    Params params;
    params.Add(site_id).Add(limit);
    if (after) {
      sql += " AND (last_active < $3 OR (last_active = $3 AND cid > $4))";
      params.Add(after->last_active_ms).Add(after->cid);
    }
    sql += " ORDER BY last_active DESC, cid LIMIT $2";
    auto r = Query(sql, params);
    if (!r.ok()) return r.status();
    std::vector<CampaignSummary> out;
    for (int i = 0; i < r->rows(); ++i) {
      CampaignSummary summary;
      summary.cid = r->String(i, 0);
      summary.counters.views = r->Int(i, 1);
      summary.counters.clicks = r->Int(i, 2);
      summary.counters.clicks_by_button = {r->Int(i, 3), r->Int(i, 4), r->Int(i, 5)};
      summary.first_active_ms = r->Int(i, 6);
      summary.last_active_ms = r->Int(i, 7);
      out.push_back(std::move(summary));
    }
    return out;
  }

  bool Ready() override { return Query("SELECT 1").ok(); }

  bool shared() const override { return true; }

  StatusOr<LeaseRound> KeepLeases(const LeaseRequest& request) override {
    LeaseRound round;
    Status s = WithConnection([&](Connection& c) -> Status {
      Status tx = c.Exec("BEGIN");
      if (tx.ok()) tx = LeaseRoundIn(c, request, &round);
      if (tx.ok()) tx = c.Exec("COMMIT");
      if (!tx.ok() && c.healthy()) c.Exec("ROLLBACK");
      return tx;
    });
    if (!s.ok()) return s;
    return round;
  }

  void Subscribe(std::function<void(const ChangeNotice&)> listener) override {
    std::lock_guard lock(listener_mu_);
    listeners_.push_back(std::move(listener));
  }

 private:
  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  static std::vector<std::string_view> Split(std::string_view columns) {
    std::vector<std::string_view> out;
    while (!columns.empty()) {
      const size_t comma = columns.find(", ");
      out.push_back(columns.substr(0, comma));
      if (comma == std::string_view::npos) break;
      columns.remove_prefix(comma + 2);
    }
    return out;
  }

  // An endpoint's columns in kEndpointColumns order, secrets sealed.
  Params EndpointParams(const Endpoint& e) const {
    Params p;
    p.Add(e.id)
        .Add(e.site_id)
        .Add(e.url)
        .Add(e.description)
        .Add(FilterBits(e.filter))
        .Add(model::PayloadFormatName(e.format))
        .Add(e.enabled ? 1 : 0)
        .Add(e.max_in_flight)
        .Add(e.rate_limit)
        .Add(box_.Seal(e.secret))
        .Add(box_.Seal(e.previous_secret))
        .Add(e.previous_secret_expires_ms)
        .Add(e.created_at_ms)
        .Add(e.updated_at_ms);
    return p;
  }

  // A message with its event and endpoint, for the messages that `condition` picks.
  static std::string DeliverySql(std::string_view condition) {
    std::string sql = std::string("SELECT m.id, m.site_id, m.attempts, m.status, ") + kEventColumns;
    for (std::string_view column : Split(kEndpointColumns)) sql += ", p." + std::string(column);
    return sql +
           " FROM messages m JOIN events e ON e.id = m.event_rowid "
           "JOIN endpoints p ON p.id = m.endpoint_id WHERE " +
           std::string(condition);
  }

  Delivery ReadDelivery(const Result& r, int row) const {
    Delivery d;
    d.message_id = r.Int(row, 0);
    d.site_id = r.String(row, 1);
    d.attempts = static_cast<int>(r.Int(row, 2));
    d.status = static_cast<MessageStatus>(r.Int(row, 3));
    d.event = ReadEvent(r, row, 4, instance_id_);
    d.endpoint = ReadEndpoint(r, row, 4 + kEventColumnCount, box_);
    return d;
  }

  Message ReadMessage(const Result& r, int row) const {
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
    m.event = ReadEvent(r, row, 9, instance_id_);
    return m;
  }

  StatusOr<std::vector<Site>> QuerySites(const std::string& sql, const Params& params) {
    auto r = Query(sql, params);
    if (!r.ok()) return r.status();
    std::vector<Site> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back(Site{r->String(i, 0), r->String(i, 1), r->String(i, 2), r->Int(i, 3)});
    }
    return out;
  }

  StatusOr<std::vector<Endpoint>> QueryEndpoints(const std::string& sql, const Params& params) {
    auto r = Query(sql, params);
    if (!r.ok()) return r.status();
    std::vector<Endpoint> out;
    for (int i = 0; i < r->rows(); ++i) out.push_back(ReadEndpoint(*r, i, 0, box_));
    return out;
  }

  // Runs `fn` on a pooled connection, reconnecting one that broke.
  Status WithConnection(const std::function<Status(Connection&)>& fn) {
    std::unique_ptr<Connection> conn;
    {
      std::unique_lock lock(pool_mu_);
      pool_cv_.wait(lock, [this] { return !pool_.empty(); });
      conn = std::move(pool_.back());
      pool_.pop_back();
    }
    Status s = conn->healthy() ? Status::Ok() : conn->Reconnect();
    if (s.ok()) s = fn(*conn);
    // A pooled connection learns that the server restarted only when it is next used: then,
    // once, connect again and run it again. That failure comes from sending to a server that
    // is gone, so the statement did not run; one that reached a server which died before
    // answering could run twice, which a read does not mind and a write here (one statement,
    // the same ids) turns into a clean duplicate-key error.
    if (!s.ok() && !conn->healthy() && conn->Reconnect().ok()) s = fn(*conn);
    {
      std::lock_guard lock(pool_mu_);
      pool_.push_back(std::move(conn));
    }
    pool_cv_.notify_one();
    return s;
  }

  StatusOr<Result> Query(const std::string& sql, const Params& params = {}) {
    std::optional<Result> result;
    Status s = WithConnection([&](Connection& c) {
      auto r = c.Query(sql, params);
      if (!r.ok()) return r.status();
      result = std::move(r.value());
      return Status::Ok();
    });
    if (!s.ok()) return s;
    return std::move(*result);
  }

  void NotifyEndpoint(const std::string& endpoint_id) {
    NoticeWriter notice(origin_);
    notice.Endpoint(endpoint_id);
    Notify(notice.Finish());
  }

  void NotifyMessages(const std::string& endpoint_id, int64_t first, int64_t last) {
    NoticeWriter notice(origin_);
    notice.Messages(endpoint_id, first, last);
    Notify(notice.Finish());
  }

  // Best effort: a notice that is lost is made up for by the owner's polling backstop.
  void Notify(const std::vector<std::string>& chunks) {
    for (const std::string& chunk : chunks) {
      auto r = Query("SELECT pg_notify($1, $2)", Params().Add(kChannel).Add(chunk));
      if (!r.ok()) {
        util::Log(util::LogLevel::kWarn, "notification not sent",
                  {{"error", r.status().message()}});
      }
    }
  }

  Status Migrate() {
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
      c.Exec("ROLLBACK");
      return version_row.status();
    }
    int version = static_cast<int>(version_row->Int(0, 0));
    constexpr int kLatest = static_cast<int>(std::size(kMigrations));
    if (version > kLatest) {
      c.Exec("ROLLBACK");
      return model::Status(model::StatusCode::kUnprocessable,
                           "database schema version " + std::to_string(version) +
                               " is newer than this pushhook knows (" + std::to_string(kLatest) +
                               ")");
    }
    for (; version < kLatest && s.ok(); ++version) {
      s = c.Exec(kMigrations[version]);
      if (s.ok() && version == 0) {
        s = c.Query("INSERT INTO meta(key, value) VALUES('instance', $1)",
                    Params().Add(model::RandomToken(8)))
                .status();
      }
      if (!s.ok())
        s = model::Internal("migration " + std::to_string(version + 1) + " failed: " + s.message());
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
      c.Exec("ROLLBACK");
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

  Status ApplyAppend(Connection& c, const std::string& site_id,
                     const std::vector<model::Event>& events, int64_t now_ms,
                     AppendResult* result) {
    *result = AppendResult{};  // a transaction that is run again starts over
    ArrayLiteral event_id, action, cookie_id, cid, title, reference_id, utm_campaign, utm_content,
        utm_medium, utm_source, utm_term, clicked_button, occurred_at;
    for (const model::Event& e : events) {
      if (e.event_id.empty()) {
        event_id.AddNull();
      } else {
        event_id.Add(e.event_id);
      }
      action.Add(e.action == model::Action::kView ? 0 : 1);
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
    // One statement stores the request's events, skips the site's duplicates, and makes a
    // message for each (stored event, endpoint that takes its action). A disabled endpoint gets
    // its messages too: they wait, pending, until it is enabled again (DESIGN section 4).
    auto r = c.Query(
        "WITH input AS (SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], "
        "  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
        "  $12::text[], $13::int[], $14::bigint[]) WITH ORDINALITY AS u(event_id, action, "
        "  cookie_id, cid, notification_title, reference_id, utm_campaign, utm_content, "
        "  utm_medium, utm_source, utm_term, clicked_button, occurred_at, n)), "
        "ins AS (INSERT INTO events(site_id, event_id, action, cookie_id, cid, "
        "  notification_title, reference_id, utm_campaign, utm_content, utm_medium, utm_source, "
        "  utm_term, clicked_button, occurred_at, received_at) "
        "  SELECT $1, event_id, action, cookie_id, cid, notification_title, reference_id, "
        "  utm_campaign, utm_content, utm_medium, utm_source, utm_term, clicked_button, "
        "  occurred_at, $15 FROM input ORDER BY n "
        "  ON CONFLICT (site_id, event_id) WHERE event_id IS NOT NULL DO NOTHING "
        "  RETURNING id, action, cookie_id, cid, reference_id, utm_campaign, utm_content, "
        "  utm_medium, utm_source, utm_term, clicked_button, occurred_at, notification_title, "
        "  event_id), "
        "msg AS (INSERT INTO messages(event_rowid, site_id, endpoint_id, status, "
        "  next_attempt_at, created_at) SELECT ins.id, $1, p.id, 0, $15, $15 FROM ins "
        "  JOIN endpoints p ON p.site_id = $1 AND p.deleted = 0 AND "
        "  (p.events & (CASE WHEN ins.action = 0 THEN 1 ELSE 2 END)) <> 0 "
        "  ORDER BY ins.id, p.created_at, p.id RETURNING id, event_rowid, endpoint_id) "
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
            .Add(now_ms));
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
        e.action = r->Int(i, 1) == 0 ? model::Action::kView : model::Action::kClick;
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

  // The transaction's statistics, one statement per table and site, in key order: nodes that
  // update the same rows at once lock them in the same order, and so never deadlock.
  Status FlushAggregates(Connection& c) {
    for (const auto& [site, batch] : tx_aggregates_) {
      if (!batch.minutes.empty()) {
        ArrayLiteral cid, ref, minute, views, clicks, b0, b1, b2;
        for (const auto& [key, n] : batch.minutes) {
          cid.Add(key.cid);
          ref.Add(key.reference_id);
          minute.Add(key.minute_ms);
          views.Add(n.views);
          clicks.Add(n.clicks);
          b0.Add(n.clicks_by_button[0]);
          b1.Add(n.clicks_by_button[1]);
          b2.Add(n.clicks_by_button[2]);
        }
        auto r = c.Query(
            "INSERT INTO stats_minute(site_id, cid, reference_id, minute, views, clicks, b0, b1, "
            "b2) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], "
            "$6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) "
            "ON CONFLICT (site_id, cid, reference_id, minute) DO UPDATE SET "
            "views = stats_minute.views + excluded.views, "
            "clicks = stats_minute.clicks + excluded.clicks, b0 = stats_minute.b0 + excluded.b0, "
            "b1 = stats_minute.b1 + excluded.b1, b2 = stats_minute.b2 + excluded.b2",
            Params()
                .Add(site)
                .Add(cid.Finish())
                .Add(ref.Finish())
                .Add(minute.Finish())
                .Add(views.Finish())
                .Add(clicks.Finish())
                .Add(b0.Finish())
                .Add(b1.Finish())
                .Add(b2.Finish()));
        if (!r.ok()) return r.status();
      }
      if (!batch.utm.empty()) {
        ArrayLiteral field, value, cid, ref, minute, views, clicks;
        for (const auto& [key, n] : batch.utm) {
          field.Add(key.field);
          value.Add(key.value);
          cid.Add(key.minute.cid);
          ref.Add(key.minute.reference_id);
          minute.Add(key.minute.minute_ms);
          views.Add(n.views);
          clicks.Add(n.clicks);
        }
        auto r = c.Query(
            "INSERT INTO stats_utm_minute(site_id, field, value, cid, reference_id, minute, "
            "views, clicks) SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], "
            "$5::text[], $6::bigint[], $7::bigint[], $8::bigint[]) "
            "ON CONFLICT (site_id, field, cid, reference_id, minute, value) DO UPDATE SET "
            "views = stats_utm_minute.views + excluded.views, "
            "clicks = stats_utm_minute.clicks + excluded.clicks",
            Params()
                .Add(site)
                .Add(field.Finish())
                .Add(value.Finish())
                .Add(cid.Finish())
                .Add(ref.Finish())
                .Add(minute.Finish())
                .Add(views.Finish())
                .Add(clicks.Finish()));
        if (!r.ok()) return r.status();
      }
      for (const auto& [key, sketch] : batch.subscribers) {
        // Insert ours, or lock the stored sketch and read it; then store the union.
        const std::string ours = sketch.Serialize();
        auto stored = c.Query(
            "INSERT INTO stats_uniques_hour(site_id, cid, reference_id, hour, sketch) "
            "VALUES($1,$2,$3,$4,$5::bytea) ON CONFLICT (site_id, cid, reference_id, hour) "
            "DO UPDATE SET sketch = stats_uniques_hour.sketch RETURNING sketch",
            Params()
                .Add(site)
                .Add(key.cid)
                .Add(key.reference_id)
                .Add(key.hour_ms)
                .Add(HexBytes(ours)));
        if (!stored.ok()) return stored.status();
        model::HyperLogLog merged = sketch;
        if (auto h = model::HyperLogLog::Deserialize(stored->Bytes(0, 0))) merged.Merge(*h);
        const std::string bytes = merged.Serialize();
        if (bytes == ours) continue;
        auto r = c.Query(
            "UPDATE stats_uniques_hour SET sketch = $5::bytea WHERE site_id = $1 AND cid = $2 "
            "AND reference_id = $3 AND hour = $4",
            Params()
                .Add(site)
                .Add(key.cid)
                .Add(key.reference_id)
                .Add(key.hour_ms)
                .Add(HexBytes(bytes)));
        if (!r.ok()) return r.status();
      }
      if (!batch.campaigns.empty()) {
        ArrayLiteral cid, views, clicks, b0, b1, b2, active;
        for (const auto& [id, delta] : batch.campaigns) {
          const model::Counters& n = delta.counters;
          cid.Add(id);
          views.Add(n.views);
          clicks.Add(n.clicks);
          b0.Add(n.clicks_by_button[0]);
          b1.Add(n.clicks_by_button[1]);
          b2.Add(n.clicks_by_button[2]);
          active.Add(delta.last_active_ms);
        }
        auto r = c.Query(
            "INSERT INTO campaigns(site_id, cid, views, clicks, b0, b1, b2, first_active, "
            "last_active) SELECT $1, c, v, k, x0, x1, x2, a, a FROM unnest($2::text[], "
            "$3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], "
            "$8::bigint[]) AS u(c, v, k, x0, x1, x2, a) "
            "ON CONFLICT (site_id, cid) DO UPDATE SET views = campaigns.views + excluded.views, "
            "clicks = campaigns.clicks + excluded.clicks, b0 = campaigns.b0 + excluded.b0, "
            "b1 = campaigns.b1 + excluded.b1, b2 = campaigns.b2 + excluded.b2, "
            "last_active = greatest(campaigns.last_active, excluded.last_active)",
            Params()
                .Add(site)
                .Add(cid.Finish())
                .Add(views.Finish())
                .Add(clicks.Finish())
                .Add(b0.Finish())
                .Add(b1.Finish())
                .Add(b2.Finish())
                .Add(active.Finish()));
        if (!r.ok()) return r.status();
      }
    }
    return Status::Ok();
  }

  static Status ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records) {
    ArrayLiteral id, attempt, at, code, latency, error, response, status, next;
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
    }
    auto r = c.Query(
        "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], "
        "  $5::bigint[], $6::text[], $7::text[], $8::int[], $9::bigint[]) AS u(id, attempt, at, "
        "  code, latency, error, response, status, next)), "
        "recorded AS (INSERT INTO attempts(message_id, attempt, at, status_code, latency_us, "
        "  error, response) SELECT id, attempt, at, code, latency, error, response FROM u "
        "  ON CONFLICT (message_id, attempt) DO UPDATE SET at = excluded.at, "
        "  status_code = excluded.status_code, latency_us = excluded.latency_us, "
        "  error = excluded.error, response = excluded.response) "
        "UPDATE messages m SET status = u.status, attempts = u.attempt, "
        "  next_attempt_at = u.next, last_status = u.code, last_error = u.error "
        "FROM u WHERE m.id = u.id",
        Params()
            .Add(id.Finish())
            .Add(attempt.Finish())
            .Add(at.Finish())
            .Add(code.Finish())
            .Add(latency.Finish())
            .Add(error.Finish())
            .Add(response.Finish())
            .Add(status.Finish())
            .Add(next.Finish()));
    return r.status();
  }

  // One transaction for every queued write; a deadlock with another node's transaction (two
  // requests with the same event ids in another order) runs it again.
  void CommitBatch(std::vector<PgWriteQueue::Op>& batch, std::vector<Status>* results) {
    Connection& c = *writer_conn_;
    Status s;
    for (int attempt = 0; attempt < 3; ++attempt) {
      tx_aggregates_.clear();
      tx_messages_.clear();
      results->assign(batch.size(), Status::Ok());
      s = c.healthy() ? Status::Ok() : c.Reconnect();
      if (s.ok()) s = c.Exec("BEGIN");
      for (size_t i = 0; s.ok() && i < batch.size(); ++i) {
        (*results)[i] = batch[i].apply(c);
        s = (*results)[i];
      }
      if (s.ok()) s = FlushAggregates(c);
      if (s.ok()) {
        // Delivered to the listening nodes when, and only if, this commits.
        NoticeWriter notice(origin_);
        for (const auto& [endpoint, range] : tx_messages_) {
          notice.Messages(endpoint, range.first, range.second);
        }
        for (const std::string& chunk : notice.Finish()) {
          if (s.ok()) {
            s = c.Query("SELECT pg_notify($1, $2)", Params().Add(kChannel).Add(chunk)).status();
          }
        }
      }
      if (s.ok()) s = c.Exec("COMMIT");
      if (s.ok()) return;
      const bool again = IsRetryable(c.last_sqlstate());
      if (c.healthy()) c.Exec("ROLLBACK");
      if (!again) break;
    }
    // Nothing of this transaction holds: every write in it fails, and is answered with 503.
    for (auto& r : *results) {
      r = s.code() == model::StatusCode::kUnavailable ? s : model::Unavailable(s.message());
    }
  }

  // One lease round, inside the caller's transaction. Times are the database's, so that nodes
  // whose clocks differ still agree on when a lease expires.
  Status LeaseRoundIn(Connection& c, const LeaseRequest& request, LeaseRound* round) {
    auto now_row = c.Query(std::string("SELECT ") + kNowMs);
    if (!now_row.ok()) return now_row.status();
    const int64_t now = now_row->Int(0, 0);
    const int64_t until = now + request.lease_ms;
    auto step = [&](const std::string& sql, const Params& params) -> StatusOr<Result> {
      return c.Query(sql, params);
    };
    if (request.leaving) {
      auto r =
          step("DELETE FROM endpoint_leases WHERE node_id = $1", Params().Add(request.node_id));
      if (r.ok()) r = step("DELETE FROM nodes WHERE node_id = $1", Params().Add(request.node_id));
      return r.status();
    }
    if (auto r = step("INSERT INTO nodes(node_id, heartbeat_at) VALUES($1, $2) "
                      "ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                      Params().Add(request.node_id).Add(now));
        !r.ok()) {
      return r.status();
    }
    if (!request.release.empty()) {
      ArrayLiteral release;
      for (const std::string& id : request.release) release.Add(id);
      auto r =
          step("DELETE FROM endpoint_leases WHERE node_id = $1 AND endpoint_id = ANY($2::text[])",
               Params().Add(request.node_id).Add(release.Finish()));
      if (!r.ok()) return r.status();
    }
    // Renew what this node holds; forget leases on deleted endpoints; forget long-dead nodes.
    if (auto r = step("UPDATE endpoint_leases SET expires_at = $2 WHERE node_id = $1",
                      Params().Add(request.node_id).Add(until));
        !r.ok()) {
      return r.status();
    }
    if (auto r = step("DELETE FROM endpoint_leases l USING endpoints e WHERE e.id = "
                      "l.endpoint_id AND e.deleted = 1 AND l.node_id = $1",
                      Params().Add(request.node_id));
        !r.ok()) {
      return r.status();
    }
    if (auto r = step("DELETE FROM nodes WHERE heartbeat_at < $1",
                      Params().Add(now - 100 * request.lease_ms));
        !r.ok()) {
      return r.status();
    }
    // This node's share: at most ceil(endpoints / live nodes); only floor(endpoints / live
    // nodes) while another live node holds fewer than that, so that no node is left idle
    // (4 endpoints on 3 nodes would otherwise settle at 2 / 2 / 0).
    auto counts = step(
        "SELECT n.node_id, (SELECT count(*) FROM endpoint_leases l WHERE l.node_id = n.node_id "
        "AND l.expires_at > $1), (SELECT count(*) FROM endpoints WHERE deleted = 0) "
        "FROM nodes n WHERE n.heartbeat_at > $2",
        Params().Add(now).Add(now - request.lease_ms));
    if (!counts.ok()) return counts.status();
    const int64_t live = std::max(1, counts->rows());
    round->endpoints = counts->rows() > 0 ? static_cast<int>(counts->Int(0, 2)) : 0;
    const int64_t floor_share = round->endpoints / live;
    int64_t mine = 0;
    bool starving = false;
    for (int i = 0; i < counts->rows(); ++i) {
      if (counts->Text(i, 0) == request.node_id) {
        mine = counts->Int(i, 1);
      } else if (counts->Int(i, 1) < floor_share) {
        starving = true;
      }
    }
    round->share = static_cast<int>(starving ? floor_share : (round->endpoints + live - 1) / live);
    const int64_t want = round->share - mine;
    if (want > 0) {
      // Leases whose holder stopped renewing, skipping rows another node is taking right now;
      // then endpoints that never had a lease.
      auto taken = step(
          "UPDATE endpoint_leases SET node_id = $1, expires_at = $2 WHERE endpoint_id IN ("
          "  SELECT l.endpoint_id FROM endpoint_leases l JOIN endpoints e ON e.id = "
          "  l.endpoint_id AND e.deleted = 0 WHERE l.expires_at <= $3 "
          "  ORDER BY l.endpoint_id LIMIT $4 FOR UPDATE OF l SKIP LOCKED)",
          Params().Add(request.node_id).Add(until).Add(now).Add(want));
      if (!taken.ok()) return taken.status();
      const int64_t rest = want - taken->affected();
      if (rest > 0) {
        auto fresh = step(
            "INSERT INTO endpoint_leases(endpoint_id, node_id, expires_at) "
            "SELECT id, $1, $2 FROM endpoints e WHERE deleted = 0 AND NOT EXISTS ("
            "  SELECT 1 FROM endpoint_leases l WHERE l.endpoint_id = e.id) "
            "ORDER BY random() LIMIT $3 ON CONFLICT (endpoint_id) DO NOTHING",
            Params().Add(request.node_id).Add(until).Add(rest));
        if (!fresh.ok()) return fresh.status();
      }
    }
    auto held = step("SELECT endpoint_id FROM endpoint_leases WHERE node_id = $1 ORDER BY 1",
                     Params().Add(request.node_id));
    if (!held.ok()) return held.status();
    for (int i = 0; i < held->rows(); ++i) round->held.push_back(held->String(i, 0));
    auto nodes = step(
        "SELECT n.node_id, n.heartbeat_at, (SELECT count(*) FROM endpoint_leases l WHERE "
        "l.node_id = n.node_id AND l.expires_at > $1) FROM nodes n WHERE n.heartbeat_at > $2 "
        "ORDER BY n.node_id",
        Params().Add(now).Add(now - request.lease_ms));
    if (!nodes.ok()) return nodes.status();
    for (int i = 0; i < nodes->rows(); ++i) {
      round->nodes.push_back(
          NodeInfo{nodes->String(i, 0), nodes->Int(i, 1), static_cast<int>(nodes->Int(i, 2))});
    }
    return Status::Ok();
  }

  void Deliver(const ChangeNotice& notice) {
    std::lock_guard lock(listener_mu_);
    for (const auto& listener : listeners_) listener(notice);
  }

  void Parse(std::string_view payload) {
    // The first line is the sender's origin. A node's own new messages reach its dispatcher
    // in-process; its own endpoint changes are told too, so that its lease keeper looks for an
    // owner of a new endpoint at once.
    const size_t first_nl = payload.find('\n');
    if (first_nl == std::string_view::npos) return;
    const bool own = payload.substr(0, first_nl) == origin_;
    payload.remove_prefix(first_nl + 1);
    while (!payload.empty()) {
      const size_t nl = payload.find('\n');
      std::string_view line = payload.substr(0, nl);
      payload.remove_prefix(nl == std::string_view::npos ? payload.size() : nl + 1);
      std::vector<std::string_view> parts;
      while (!line.empty()) {
        const size_t sp = line.find(' ');
        parts.push_back(line.substr(0, sp));
        line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
      }
      ChangeNotice notice;
      if (parts.size() == 4 && parts[0] == "m" && !own) {
        notice.kind = ChangeNotice::Kind::kMessages;
        notice.endpoint_id = std::string(parts[1]);
        std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), notice.first_id);
        std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), notice.last_id);
      } else if (parts.size() == 2 && parts[0] == "e") {
        notice.kind = ChangeNotice::Kind::kEndpoint;
        notice.endpoint_id = std::string(parts[1]);
      } else {
        continue;
      }
      Deliver(notice);
    }
  }

  // Holds a connection that LISTENs; when it breaks, connects again and tells the listeners to
  // look again (kResync), since notifications sent meanwhile are lost.
  void ListenLoop(std::unique_ptr<Connection> conn) {
    while (!stopping_) {
      if (!conn || !conn->healthy()) {
        conn.reset();
        auto fresh = Connection::Open(url_);
        if (fresh.ok() && fresh.value()->Exec(std::string("LISTEN ") + kChannel).ok()) {
          conn = std::move(fresh.value());
          Deliver(ChangeNotice{});
        } else {
          for (int i = 0; i < 10 && !stopping_; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          continue;
        }
      }
      pollfd fd{PQsocket(conn->raw()), POLLIN, 0};
      if (poll(&fd, 1, 200) < 0) continue;
      if (PQconsumeInput(conn->raw()) == 0) {
        util::Log(util::LogLevel::kWarn, "database notifications interrupted; reconnecting",
                  {{"error", PQerrorMessage(conn->raw())}});
        conn.reset();
        continue;
      }
      while (PGnotify* n = PQnotifies(conn->raw())) {
        Parse(n->extra);
        PQfreemem(n);
      }
    }
  }

  const std::string url_;
  const StoreOptions options_;
  const model::SecretBox box_;
  const std::string origin_;  // tags this store's notifications
  std::string instance_id_;

  // Writer thread only: the connection, and the statistics and new messages of the transaction
  // being built.
  std::unique_ptr<Connection> writer_conn_;
  std::map<std::string, model::AggregateBatch> tx_aggregates_;
  std::map<std::string, std::pair<int64_t, int64_t>> tx_messages_;
  PgWriteQueue writes_;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Connection>> pool_;  // guarded by pool_mu_

  std::mutex listener_mu_;
  std::vector<std::function<void(const ChangeNotice&)>> listeners_;  // guarded by listener_mu_
  std::atomic<bool> stopping_{false};
  std::thread listener_;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                   const StoreOptions& options) {
  auto store = std::make_unique<PostgresStore>(url, options);
  if (Status s = store->Open(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pushhook::store::postgres
