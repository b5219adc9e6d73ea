#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>
#include <pthread.h>

#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

Status PostgresStore::Open() {
  auto writer = Connection::Open(url_);
  if (!writer.ok()) return writer.status();
  writer_conn_ = std::move(writer.value());
  if (!options_.durability_full) {
    if (Status s = writer_conn_->Exec("SET synchronous_commit = off"); !s.ok()) return s;
  }
  if (Status s = Migrate(); !s.ok()) return s;
  if (options_.aggregates) {
    auto uncounted = writer_conn_->Query(internal::kOldestEventUncountedSql);
    if (!uncounted.ok()) return uncounted.status();
    campaign_rows_complete_ = uncounted->Int(0, 0) == 0;
  }
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
  // A store opened without the secrets key (migrate, backup) seals nothing, so it leaves the
  // secrets to the first `serve`.
  if (box_.enabled()) return GiveSitesBeaconSecrets();
  return Status::Ok();
}

// Runs `fn` on a pooled connection, reconnecting one that broke.
Status PostgresStore::WithConnection(const std::function<Status(Connection&)>& fn) {
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

Status PostgresStore::InTransaction(const std::function<Status(Connection&)>& fn) {
  return WithConnection([&fn](Connection& c) {
    Status s = c.Exec("BEGIN");
    if (s.ok()) s = fn(c);
    if (s.ok()) s = c.Exec("COMMIT");
    if (!s.ok() && c.healthy()) c.Exec("ROLLBACK").IgnoreError();
    return s;
  });
}

StatusOr<Result> PostgresStore::Query(const std::string& sql, const Params& params) {
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

// One transaction for every queued write; a deadlock with another node's transaction (two
// requests with the same event ids in another order) runs it again.
Status PostgresStore::CommitBatch(std::vector<PgWriteQueue::Op>& batch,
                                  std::vector<Status>* results) {
  Connection& c = *writer_conn_;
  Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    tx_aggregates_.clear();
    tx_messages_.clear();
    results->assign(batch.size(), Status::Ok());
    s = c.healthy() ? Status::Ok() : c.Reconnect();
    if (s.ok()) s = c.Exec("BEGIN");
    // Nothing that must reach the disk (WriteOp::must_sync): the server need not wait for its
    // WAL flush before answering the commit.
    if (s.ok() && !AnyMustSync(batch)) s = c.Exec("SET LOCAL synchronous_commit TO off");
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
    if (s.ok()) return s;
    const bool again = IsRetryable(c.last_sqlstate());
    if (c.healthy()) c.Exec("ROLLBACK").IgnoreError();
    if (!again) break;
  }
  // Nothing of this transaction holds: every write in it fails, and is answered with 503.
  for (auto& r : *results) {
    r = s.code() == model::StatusCode::kUnavailable ? s : model::Unavailable(s.message());
  }
  return s;
}

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                   const StoreOptions& options) {
  auto store = std::make_unique<PostgresStore>(url, options);
  if (Status s = store->Open(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

std::string LibraryVersion() {
  const int v = PQlibVersion();  // 150010 for 15.10
  return std::to_string(v / 10'000) + "." + std::to_string(v % 10'000);
}

}  // namespace pushhook::store::postgres
