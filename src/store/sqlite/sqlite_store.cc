#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

Status SqliteStore::Open() {
  auto writer = Connection::Open(path_, false);
  if (!writer.ok()) return writer.status();
  writer_conn_ = std::move(writer.value());
  // Before anything is written or counted: SQLite opened the file, so its folder exists.
  auto lock = DatabaseLock::Acquire(path_);
  if (!lock.ok()) return lock.status();
  lock_ = std::move(lock.value());
  Status s = writer_conn_->Exec("PRAGMA journal_mode=WAL");
  if (s.ok()) {
    s = writer_conn_->Exec(options_.durability_full ? "PRAGMA synchronous=FULL"
                                                    : "PRAGMA synchronous=NORMAL");
  }
  if (s.ok()) s = Migrate();
  if (s.ok()) s = event_ids_.Load(*writer_conn_);
  if (s.ok()) s = message_ids_.Load(*writer_conn_);
  if (s.ok() && options_.aggregates) s = RecoverAggregates();
  if (s.ok() && options_.aggregates) {
    auto st = writer_conn_->Prepare(internal::kOldestEventUncountedSql);
    if (!st.ok()) return st.status();
    campaign_rows_complete_ = (*st)->Step(&s) && (*st)->Int(0) == 0;
    (*st)->Reset();
  }
  if (!s.ok()) return s;
  for (int i = 0; i < kAdminReaders + kHotPathReaders; ++i) {
    auto reader = Connection::Open(path_, false);
    if (!reader.ok()) return reader.status();
    s = reader.value()->Exec("PRAGMA query_only=1");
    if (!s.ok()) return s;
    (i < kAdminReaders ? admin_readers_ : hot_path_readers_)
        .free.push_back(std::move(reader.value()));
  }
  writes_.Start("ph-store-write");
  // A store opened without the secrets key (migrate, backup) seals nothing, so it leaves the
  // secrets to the first `serve`.
  if (box_.enabled()) return GiveSitesBeaconSecrets();
  return Status::Ok();
}

Status SqliteStore::ReadOn(Readers& readers, const std::function<Status(Connection&)>& fn) {
  std::unique_ptr<Connection> conn;
  {
    std::unique_lock lock(readers.mu);
    readers.cv.wait(lock, [&readers] { return !readers.free.empty(); });
    conn = std::move(readers.free.back());
    readers.free.pop_back();
  }
  Status s = fn(*conn);
  {
    std::lock_guard lock(readers.mu);
    readers.free.push_back(std::move(conn));
  }
  readers.cv.notify_one();
  return s;
}

// Admin writes, endpoints' among them: each forgets the writer's fan-out targets, so the next
// append reads them again (they are rare; appends are not).
Status SqliteStore::WriteSync(std::function<Status(Connection&)> apply) {
  return writes_.Run([this, apply = std::move(apply)](Connection& c) {
    targets_by_site_.clear();
    return apply(c);
  });
}

Status SqliteStore::CommitBatch(std::vector<SqliteWriteQueue::Op>& batch,
                                std::vector<Status>* results) {
  Connection& c = *writer_conn_;
  results->assign(batch.size(), Status::Ok());
  // Nothing that must reach the disk: committed to the WAL without a sync, which a process crash
  // does not undo; the next synced commit carries it to the disk.
  const bool relaxed = options_.durability_full && !AnyMustSync(batch);
  if (relaxed) c.Exec("PRAGMA synchronous=NORMAL").IgnoreError();
  Status committed = CommitInTransaction(c, batch, results);
  if (relaxed) c.Exec("PRAGMA synchronous=FULL").IgnoreError();
  return committed;
}

Status SqliteStore::CommitInTransaction(Connection& c, std::vector<SqliteWriteQueue::Op>& batch,
                                        std::vector<Status>* results) {
  Status begin = c.Run("BEGIN IMMEDIATE");
  if (!begin.ok()) {
    for (auto& r : *results) r = begin;
    return begin;
  }
  const bool single = batch.size() == 1;
  for (size_t i = 0; i < batch.size(); ++i) {
    // A savepoint keeps an isolated write's failure (an admin write's constraint) from
    // undoing the others'. Appends and attempt records need none: their only failures are
    // the database's, which no other write of the transaction would survive either.
    const bool savepoint = !single && batch[i].isolated;
    Status s = savepoint ? c.Run("SAVEPOINT w") : Status::Ok();
    if (s.ok()) s = batch[i].apply(c);
    if (savepoint && s.ok()) {
      s = c.Run("RELEASE w");
    } else if (savepoint && !IsDatabaseFailure(s)) {
      // Refused on its merits (a constraint, a missing row): undo this write alone, and the
      // others commit.
      Status undone = c.Run("ROLLBACK TO w");
      if (undone.ok()) undone = c.Run("RELEASE w");
      if (undone.ok()) {
        (*results)[i] = std::move(s);
        continue;
      }
      s = std::move(undone);
    } else if (!s.ok() && batch[i].isolated && !IsDatabaseFailure(s)) {
      // An isolated write alone in its transaction refused itself: its answer, not a failure
      // of the store.
      Rollback(c);
      (*results)[i] = std::move(s);
      return Status::Ok();
    }
    if (!s.ok()) {
      // Part of this write is in the transaction: none of the transaction may commit.
      Rollback(c);
      for (size_t j = 0; j < batch.size(); ++j) {
        (*results)[j] = j == i ? s : model::Unavailable("a write in the same transaction failed");
      }
      return s;
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
      return flushed;
    }
  }
  if (!tx_attempt_stats_.empty()) {
    if (Status counted = AddAttemptStats(c, tx_attempt_stats_); !counted.ok()) {
      Rollback(c);
      for (auto& r : *results) {
        if (r.ok()) r = model::Unavailable("attempt counts update failed: " + counted.message());
      }
      return counted;
    }
  }
  Status commit = event_ids_.Reserve(c);
  if (commit.ok()) commit = message_ids_.Reserve(c);
  if (commit.ok()) commit = c.Run("COMMIT");
  if (!commit.ok()) {
    Rollback(c);
    for (auto& r : *results) {
      if (r.ok()) r = model::Unavailable("commit failed: " + commit.message());
    }
    return commit;
  }
  event_ids_.Committed();
  message_ids_.Committed();
  Committed(flush);
  return Status::Ok();
}

// Ends a transaction that did not commit. What the writer cached from it may be gone.
void SqliteStore::Rollback(Connection& c) {
  // Fails only when SQLite already rolled the transaction back itself (after a full disk or an
  // I/O error): either way none of it holds.
  c.Run("ROLLBACK").IgnoreError();
  targets_by_site_.clear();
  event_ids_.RolledBack();
  message_ids_.RolledBack();
  DiscardTransaction();
}

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const StoreOptions& options) {
  auto store = std::make_unique<SqliteStore>(path, options);
  if (Status s = store->Open(); !s.ok()) return s;
  return std::unique_ptr<Store>(std::move(store));
}

std::string LibraryVersion() { return sqlite3_libversion(); }

}  // namespace pushhook::store::sqlite
