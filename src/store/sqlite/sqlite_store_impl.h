// The SQLite Store's class, shared by the files that implement it, one concern each:
//   sqlite_store.cc    opening, the writer thread's group commit, read connections
//   schema.cc          the versioned migrations
//   admin_records.cc   sites, site tokens, endpoints
//   write_path.cc      events in (with their messages), attempt records
//   delivery_state.cc  pending messages, deliveries, the message log, redelivery, replay
//   statistics.cc      campaign statistics: kept as events are stored, and queried
//   retention.cc       purging finished messages
//   rows.cc            column lists qualified for joins
// Not for use outside src/store/sqlite: the rest of pushhook sees store.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/secret_box.h"
#include "store/internal/attempt_stats.h"
#include "store/internal/rows.h"
#include "store/sqlite/database_lock.h"
#include "store/sqlite/row_ids.h"
#include "store/sqlite/sqlite_db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/write_queue.h"
#include "util/log.h"

namespace pushhook::store::sqlite {

using model::Status;
using model::StatusOr;

using internal::FilterBits;
using internal::FilterFromBits;
using internal::kEndpointColumns;
using internal::kEventColumns;
using internal::ReadEndpoint;
using internal::ReadEvent;
using SqliteWriteQueue = WriteQueue<Connection>;

// "a, b" -> "p.a, p.b": a column list qualified for a join.
std::string Qualified(std::string_view columns, std::string_view prefix);

// Adds `rows` to attempt_stats_hour (internal/attempt_stats.h): a write's attempts, or the
// migration's backfill of those stored before.
Status AddAttemptStats(Connection& c, const internal::AttemptStatsRows& rows);

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, const StoreOptions& options)
      : path_(std::move(path)),
        options_(options),
        box_(options.secrets_key),
        writes_(options.max_pending_writes,
                [this](std::vector<SqliteWriteQueue::Op>& batch, std::vector<Status>* results) {
                  return CommitBatch(batch, results);
                }) {}

  // Writes still queued, and the statistics held, are committed before the writer closes.
  ~SqliteStore() override {
    if (Status s = SettleAggregates(); !s.ok()) {
      util::Log(util::LogLevel::kWarn, "statistics not written at shutdown; recounted at start",
                {{"error", s.message()}});
    }
    writes_.Stop();
  }

  Status Open();
  const std::string& instance_id() const override { return instance_id_; }

  StatusOr<Site> CreateSite(const std::string& name) override;
  StatusOr<Site> GetSite(const std::string& site_id) override;
  StatusOr<std::vector<Site>> ListSites() override {
    return QuerySites("ORDER BY created_at, id", std::nullopt, admin_readers_);
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
                    AppendCallback done) override;

  void RecordAttempts(std::vector<AttemptRecord> records,
                      std::function<void(Status)> done) override {
    internal::EnqueueAttempts(
        writes_, std::move(records),
        [this](Connection& c, const std::vector<AttemptRecord>& r) { return ApplyAttempts(c, r); },
        std::move(done));
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
  bool Ready() override {
    return Read([](Connection& c) { return c.Exec("SELECT 1"); }).ok();
  }

 private:
  // The read connections come in two pools. The hot path's (the dispatcher's reads, ingest's
  // key lookup) is one that admin and reporting queries, however slow, never hold: a few
  // dashboards reading a big site's log cannot stop delivery.
  static constexpr int kAdminReaders = 3;
  static constexpr int kHotPathReaders = 2;
  struct Readers {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::unique_ptr<Connection>> free;  // guarded by mu
  };
  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  Message ReadMessage(const Statement& s) const;
  Status Migrate();
  // Gives every site without a beacon secret (made before migration 5) a new one.
  Status GiveSitesBeaconSecrets();
  // An append as the caller's thread prepares it, so that the one writer thread does only what
  // needs the database: each event moved into the StoredEvent its messages will share, and the
  // statistics of them all, which the writer takes as they are when none is a duplicate.
  struct PreparedAppend {
    std::vector<std::shared_ptr<StoredEvent>> events;
    std::vector<bool> client_ids;      // whether each event came with its event_id
    model::AggregateBatch aggregates;  // empty for fewer than kAggregatedFrom events
    // Merging a batch costs the writer about what adding ten events does (an hour's sketch is
    // 4 KiB; callgrind, BM_StoreAppendSingles): fewer events it adds one by one.
    static constexpr size_t kAggregatedFrom = 16;
  };
  Status ApplyAppend(Connection& c, const std::string& site_id, const PreparedAppend& append,
                     int64_t now_ms, AppendResult* result);
  struct Target {
    std::string id;
    model::EventFilter filter;
    model::FieldFilter field_filter;
  };
  // A site's endpoints, as fan-out reads them: those whose filter lists cids are found through
  // the event's cid, so that an event costs a lookup, not a look at every endpoint's list.
  struct SiteTargets {
    std::vector<Target> all;
    std::vector<size_t> any_cid;  // indexes into `all` of targets that name no cids
    std::unordered_map<std::string, std::vector<size_t>> by_cid;  // ascending indexes
    // Calls `take(target)` for each target that takes `e`, in their order.
    template <typename Take>
    void ForEachTaking(const model::Event& e, const Take& take) const;
  };

  // A site's fan-out targets, read once and kept by the writer until an admin write or a
  // rollback (WriteSync, Rollback) may have changed them.
  StatusOr<const SiteTargets*> Targets(Connection& c, const std::string& site_id);
  using SiteAggregates = std::map<std::string, model::AggregateBatch>;

  // Adds `batches` to the statistics tables, inside the caller's transaction.
  Status FlushAggregates(Connection& c, const SiteAggregates& batches);
  Status ApplyAttempts(Connection& c, const std::vector<AttemptRecord>& records);
  static Status ApplyBatch(Connection& c, const std::vector<int64_t>& message_ids, int64_t batch);
  // Sites of "SELECT <kSiteColumns> FROM sites <rest>", `arg` bound to ?1.
  StatusOr<std::vector<Site>> QuerySites(const std::string& rest,
                                         const std::optional<std::string>& arg, Readers& readers);
  Status PatchEndpoint(Connection& c, const std::string& site_id, const std::string& endpoint_id,
                       const EndpointPatch& patch, int64_t now_ms,
                       std::optional<Endpoint>* updated);
  StatusOr<std::vector<Endpoint>> QueryEndpoints(const std::string& sql, const std::string& arg1,
                                                 const std::optional<std::string>& arg2,
                                                 Readers& readers);

  // Runs `fn` on a free read connection of `readers`, waiting for one if need be.
  static Status ReadOn(Readers& readers, const std::function<Status(Connection&)>& fn);
  // Admin and reporting reads.
  Status Read(const std::function<Status(Connection&)>& fn) { return ReadOn(admin_readers_, fn); }
  // The dispatcher's and ingest's reads.
  Status ReadHotPath(const std::function<Status(Connection&)>& fn) {
    return ReadOn(hot_path_readers_, fn);
  }

  // Admin writes, endpoints' among them: each forgets the writer's fan-out targets, so the next
  // append reads them again (they are rare; appends are not).
  Status WriteSync(std::function<Status(Connection&)> apply);
  Status CommitBatch(std::vector<SqliteWriteQueue::Op>& batch, std::vector<Status>* results);
  // CommitBatch's transaction, at the connection's synchronous setting.
  Status CommitInTransaction(Connection& c, std::vector<SqliteWriteQueue::Op>& batch,
                             std::vector<Status>* results);

  // Statistics are written with the events' transaction only now and then (FlushDue): the
  // pages of the statistics tables then change once per flush rather than once per commit. In
  // between, the committed transactions' statistics are held here, and a crash loses none of
  // them: meta 'aggregated_through' names the last event whose statistics are written, and
  // Open() folds in the events after it (RecoverAggregates). A read of statistics first asks
  // for a flush (SettleAggregates), so it still sees every event stored before it.
  static constexpr size_t kHoldEvents = 20'000;
  static constexpr std::chrono::milliseconds kHoldTime{200};
  bool FlushDue() const;

  // After a COMMIT: what this transaction counted is written (`flushed`) or held.
  void Committed(bool flushed);

  // Forgets what the writer gathered for the transaction being built.
  void DiscardTransaction();
  Status RecordAggregatedThrough(Connection& c, int64_t event_rowid);

  // Writes the statistics held in memory, so that what reads them next sees every stored event.
  Status SettleAggregates();

  // At start-up: the statistics of events stored after the last flush, lost with the process
  // that held them, are counted again from the events, in one transaction. A database that has
  // no mark yet (new, or made by a version that wrote statistics with every commit) is counted
  // up to its last event.
  Status RecoverAggregates();

  // Ends a transaction that did not commit. What the writer cached from it may be gone.
  void Rollback(Connection& c);
  const std::string path_;
  const StoreOptions options_;
  const model::SecretBox box_;
  // Statistics of the transaction being built, by site; writer thread only.
  SiteAggregates tx_aggregates_;
  size_t tx_aggregated_events_ = 0;
  int64_t tx_last_event_ = 0;  // the last event row this transaction stored
  // The ids of new events and messages (row_ids.h); writer thread only.
  RowIds event_ids_{"next_event_id"};
  RowIds message_ids_{"next_message_id"};
  // The attempts this transaction recorded, by endpoint, hour and latency bucket: written once
  // before its commit, however many records' writes it carries; writer thread only.
  internal::AttemptStatsRows tx_attempt_stats_;
  // Committed statistics not yet written (FlushDue); writer thread only.
  SiteAggregates held_aggregates_;
  size_t held_events_ = 0;
  std::chrono::steady_clock::time_point held_since_;
  bool flush_requested_ = false;
  int64_t last_event_ = 0;  // the last event row committed
  // Every stored event's campaign has its row in `campaigns` once held statistics are written;
  // false for a database that stored events before it kept statistics. Set by Open.
  bool campaign_rows_complete_ = false;
  std::atomic<bool> aggregates_held_{false};  // held_aggregates_ is not empty; any thread
  // Fan-out targets by site (Targets()); writer thread only.
  std::unordered_map<std::string, SiteTargets> targets_by_site_;
  std::string instance_id_;
  std::unique_ptr<DatabaseLock> lock_;  // before the connections: released after they close
  std::unique_ptr<Connection> writer_conn_;
  SqliteWriteQueue writes_;
  Readers admin_readers_;
  Readers hot_path_readers_;
};

}  // namespace pushhook::store::sqlite
