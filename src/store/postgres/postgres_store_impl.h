// The PostgreSQL Store's class, shared by the files that implement it, one concern each:
//   postgres_store.cc  opening, the writer connection's group commit, the connection pool
//   schema.cc          the versioned migrations (under an advisory lock, for nodes that start
//   together) admin_records.cc   sites, site tokens, endpoints write_path.cc      events in (with
//   their messages), attempt records delivery_state.cc  pending messages, deliveries, the message
//   log, redelivery, replay statistics.cc      campaign statistics: written in the events'
//   transaction, and queried retention.cc       purging finished messages coordination.cc endpoint
//   leases between nodes, and LISTEN/NOTIFY notices rows.cc            reading rows into the
//   store's structs
// Not for use outside src/store/postgres: the rest of pushhook sees store.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/random.h"
#include "model/secret_box.h"
#include "store/coordination.h"
#include "store/internal/rows.h"
#include "store/postgres/pg_conn.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/write_queue.h"
#include "util/log.h"

namespace pushhook::store::postgres {

using model::Status;
using model::StatusOr;

// The one channel every node listens on. A notification is lines: the sender's origin token,
// then "m <endpoint> <first id> <last id>" (new pending messages) or "e <endpoint>" (changed).
inline constexpr const char* kChannel = "pushhook";
inline constexpr size_t kMaxNotifyBytes = 7'000;  // PostgreSQL's limit is 8,000

inline constexpr const char* kNowMs = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

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

using internal::FilterBits;
using internal::FilterFromBits;
using internal::kEndpointColumns;
using internal::kEventColumnCount;
using internal::kEventColumns;

// One row of a result, as internal::ReadEndpoint and ReadEvent read rows.
struct ResultRow {
  const Result& result;
  int row;
  std::string_view Text(int column) const { return result.Text(row, column); }
  int64_t Int(int column) const { return result.Int(row, column); }
  double Double(int column) const { return result.Double(row, column); }
  bool IsNull(int column) const { return result.IsNull(row, column); }
};

inline Endpoint ReadEndpoint(const Result& r, int row, int first, const model::SecretBox& box) {
  return internal::ReadEndpoint(ResultRow{r, row}, first, box);
}
inline model::Event ReadEvent(const Result& r, int row, int first, const std::string& instance_id) {
  return internal::ReadEvent(ResultRow{r, row}, first, instance_id);
}

// `bytes` as a bytea literal's text ("\x…").
std::string HexBytes(std::string_view bytes);
// Due messages from rows of (id, endpoint_id, next_attempt_at, attempts).
std::vector<DueMessage> ReadDue(const Result& r);

using PgWriteQueue = WriteQueue<Connection>;

class PostgresStore final : public Store, public Coordination {
 public:
  PostgresStore(std::string url, const StoreOptions& options)
      : url_(std::move(url)),
        options_(options),
        box_(options.secrets_key),
        origin_(model::RandomToken(12)),
        writes_(options.max_pending_writes,
                [this](std::vector<PgWriteQueue::Op>& batch, std::vector<Status>* results) {
                  return CommitBatch(batch, results);
                }) {}

  ~PostgresStore() override {
    writes_.Stop();
    stopping_ = true;
    if (listener_.joinable()) listener_.join();
  }

  Status Open();
  const std::string& instance_id() const override { return instance_id_; }

  StatusOr<Site> CreateSite(const std::string& name) override;
  StatusOr<Site> GetSite(const std::string& site_id) override;
  StatusOr<std::vector<Site>> ListSites() override {
    return QuerySites("ORDER BY created_at, id", Params());
  }
  StatusOr<Site> UpdateSite(const std::string& site_id, const SitePatch& patch) override;
  StatusOr<Site> RotateBeaconSecret(const std::string& site_id, int64_t now_ms,
                                    int64_t overlap_ms) override;

  StatusOr<Site> RotateIngestKey(const std::string& site_id, int64_t now_ms,
                                 int64_t overlap_ms) override;
  StatusOr<Site> FindSiteByIngestKey(const std::string& ingest_key, int64_t now_ms) override;
  StatusOr<SiteTokenInfo> AddSiteToken(const std::string& site_id, const std::string& token_hash,
                                       TokenScope scope) override;
  StatusOr<SiteToken> FindSiteToken(const std::string& token_hash) override;
  StatusOr<std::vector<SiteTokenInfo>> ListSiteTokens(const std::string& site_id) override;
  Status DeleteSiteToken(const std::string& site_id, const std::string& token_id) override;
  StatusOr<Endpoint> CreateEndpoint(Endpoint e) override;
  StatusOr<Endpoint> GetEndpoint(const std::string& site_id,
                                 const std::string& endpoint_id) override;
  StatusOr<Endpoint> GetEndpointById(const std::string& endpoint_id) override;
  StatusOr<std::vector<Endpoint>> ListEndpoints(const std::string& site_id) override;
  StatusOr<Endpoint> UpdateEndpoint(const std::string& site_id, const std::string& endpoint_id,
                                    const EndpointPatch& patch, int64_t now_ms) override;
  StatusOr<Endpoint> RotateEndpointSecret(const std::string& site_id,
                                          const std::string& endpoint_id, int64_t now_ms,
                                          int64_t overlap_ms) override;
  Status DeleteEndpoint(const std::string& site_id, const std::string& endpoint_id) override;
  void AppendEvents(const std::string& site_id, std::vector<model::Event> events, int64_t now_ms,
                    AppendCallback done) override {
    const size_t count = events.size();
    internal::EnqueueAppend(
        writes_, std::move(events), count,
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
  void AssignBatch(std::vector<int64_t> message_ids, int64_t batch,
                   std::function<void(Status)> done) override {
    internal::EnqueueBatchAssignment(writes_, std::move(message_ids), batch, ApplyBatch,
                                     std::move(done));
  }

  StatusOr<std::vector<std::string>> ListPendingEndpoints() override;
  StatusOr<std::vector<DueMessage>> LoadPendingForEndpoint(const std::string& endpoint_id,
                                                           int64_t after_id, int limit) override;
  StatusOr<Delivery> LoadDelivery(int64_t message_id) override;

  // One round trip for a batch: what makes a node that delivers messages another node stored
  // cheap in statements (BENCHMARKS.md, figure 8).
  StatusOr<std::vector<Delivery>> LoadDeliveries(const std::vector<int64_t>& ids) override;
  StatusOr<std::vector<Message>> ListMessages(const MessageQuery& q) override;
  StatusOr<Message> GetMessage(const std::string& site_id, int64_t message_id) override;
  StatusOr<std::vector<Attempt>> ListAttempts(int64_t message_id) override;
  StatusOr<DueMessage> RequeueMessage(const std::string& site_id, int64_t message_id,
                                      int64_t now_ms) override;
  StatusOr<std::vector<DueMessage>> ReplayEvents(const ReplayQuery& q, int64_t now_ms) override;
  StatusOr<EndpointStats> GetEndpointStats(const std::string& endpoint_id,
                                           int64_t since_ms) override;
  StatusOr<size_t> PurgeMessages(int64_t delivered_before_ms, int64_t failed_before_ms,
                                 int limit) override;
  StatusOr<StatsResult> QueryStats(const StatsQuery& q) override;
  StatusOr<std::vector<CampaignSummary>> ListCampaigns(const CampaignQuery& query) override;
  StoreCounts counts() const override { return StoreCounts{writes_.commit_failures()}; }
  bool Ready() override { return Query("SELECT 1").ok(); }

  Coordination* coordination() override { return this; }

  // Coordination: leases and notices (coordination.cc).
  StatusOr<LeaseRound> KeepLeases(const LeaseRequest& request) override;
  StatusOr<std::vector<DueMessage>> LoadPendingSince(const std::vector<std::string>& endpoints,
                                                     int64_t after_id, int limit) override;
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
  Params EndpointParams(const Endpoint& e) const;

  // A message with its event and endpoint, for the messages that `condition` picks.
  static std::string DeliverySql(std::string_view condition);
  Delivery ReadDelivery(const Result& r, int row) const;
  Message ReadMessage(const Result& r, int row) const;
  // Sites of "SELECT <kSiteColumns> FROM sites <rest>".
  StatusOr<std::vector<Site>> QuerySites(const std::string& rest, const Params& params);
  StatusOr<std::vector<Endpoint>> QueryEndpoints(const std::string& sql, const Params& params);
  std::pair<std::string, Params> PatchEndpointSql(const std::string& site_id,
                                                  const std::string& endpoint_id,
                                                  const EndpointPatch& patch, int64_t now_ms) const;

  // Runs `fn` on a pooled connection, reconnecting one that broke.
  Status WithConnection(const std::function<Status(Connection&)>& fn);
  // Runs `fn` in a transaction of its own on a pooled connection: committed if `fn` succeeds,
  // rolled back otherwise (and run again on a fresh connection as WithConnection does).
  Status InTransaction(const std::function<Status(Connection&)>& fn);
  StatusOr<Result> Query(const std::string& sql, const Params& params = {});
  void NotifyEndpoint(const std::string& endpoint_id);
  void NotifyMessages(const std::string& endpoint_id, int64_t first, int64_t last);

  // Best effort: a notice that is lost is made up for by the owner's polling backstop.
  void Notify(const std::vector<std::string>& chunks);
  Status Migrate();
  // Gives every site without a beacon secret (made before migration 6) a new one.
  Status GiveSitesBeaconSecrets();
  Status ApplyAppend(Connection& c, const std::string& site_id,
                     const std::vector<model::Event>& events, int64_t now_ms, AppendResult* result);

  // The transaction's statistics, one statement per table and site, in key order: nodes that
  // update the same rows at once lock them in the same order, and so never deadlock.
  Status FlushAggregates(Connection& c);
  static Status ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records);
  static Status ApplyBatch(Connection& c, const std::vector<int64_t>& message_ids, int64_t batch);

  // One transaction for every queued write; a deadlock with another node's transaction (two
  // requests with the same event ids in another order) runs it again.
  Status CommitBatch(std::vector<PgWriteQueue::Op>& batch, std::vector<Status>* results);

  // One lease round, inside the caller's transaction. Times are the database's, so that nodes
  // whose clocks differ still agree on when a lease expires.
  Status LeaseRoundIn(Connection& c, const LeaseRequest& request, LeaseRound* round);
  void Deliver(const ChangeNotice& notice) {
    std::lock_guard lock(listener_mu_);
    for (const auto& listener : listeners_) listener(notice);
  }

  void Parse(std::string_view payload);

  // Holds a connection that LISTENs; when it breaks, connects again and tells the listeners to
  // look again (kResync), since notifications sent meanwhile are lost.
  void ListenLoop(std::unique_ptr<Connection> conn);
  const std::string url_;
  const StoreOptions options_;
  // Every stored event's campaign has its row in `campaigns` (written in the event's
  // transaction); false for a database that stored events before it kept statistics.
  bool campaign_rows_complete_ = false;
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

}  // namespace pushhook::store::postgres
