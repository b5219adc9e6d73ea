#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/sqlite_store.h"

namespace pushhook::store::sqlite {
namespace {

model::Status SyncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return model::Internal("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  static_cast<void>(::close(fd));  // read-only: nothing to lose
  if (rc != 0) return model::Internal("cannot sync " + path + ": " + std::strerror(error));
  return model::Status::Ok();
}

// At most this long waiting out a lock the copy cannot take (a checkpoint in progress).
constexpr auto kBusyLimit = std::chrono::seconds(30);

// Moves the copy's event and message counters to the start of their next id epoch (the bits
// above bit 40: about 10^12 ids an epoch). The source may go on after the snapshot, giving ids
// past it to webhooks that receivers keep; a copy counting on from the same place would give a
// new event one of those ids (msg_…, evt_…, bat_…), and a receiver de-duplicating by webhook-id
// would drop it. The ids of the rows in the copy are unchanged. The counters are meta's marks
// (row_ids.h); in a database from before schema 16, SQLite's sqlite_sequence, which migration
// 16 turns into the marks.
model::Status StartNextIdEpoch(Connection& copy) {
  return copy.Exec(R"sql(
BEGIN;
UPDATE meta SET value = ((CAST(value AS INTEGER) >> 40) + 1) << 40
  WHERE key IN ('next_event_id', 'next_message_id');
UPDATE sqlite_sequence SET seq = ((seq >> 40) + 1) << 40 WHERE name IN ('events', 'messages');
INSERT INTO sqlite_sequence(name, seq)
  SELECT name, 1 << 40 FROM (SELECT 'events' AS name UNION ALL SELECT 'messages')
  WHERE name NOT IN (SELECT name FROM sqlite_sequence)
    AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'next_event_id');
COMMIT;
)sql");
}

}  // namespace

model::Status Backup(const std::string& source, const std::string& destination, int pages_per_step,
                     const std::function<void(const BackupProgress&)>& progress) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(source, ec)) {
    return model::NotFound("no database at " + source);
  }
  auto src = Connection::Open(source, /*read_only=*/true);
  if (!src.ok()) return src.status();
  // One snapshot for the whole copy: a read transaction, begun by reading.
  if (model::Status s = (*src)->Exec("BEGIN; SELECT count(*) FROM sqlite_schema"); !s.ok()) {
    return s;
  }
  {
    // Another program's database would be copied whole, and only the copy's counters would
    // then fail, after the whole read: a mistaken --database, refused at once.
    auto st = (*src)->Prepare(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('meta', 'events')");
    if (!st.ok()) return st.status();
    model::Status step;
    const bool ours = (*st)->Step(&step) && (*st)->Int(0) == 2;
    (*st)->Reset();
    if (!step.ok()) return step;
    if (!ours) return model::InvalidArgument(source + " is an SQLite database but not pushhook's");
  }
  BackupProgress at;
  {
    auto st = (*src)->Prepare("PRAGMA page_size");
    if (!st.ok()) return st.status();
    model::Status step;
    if ((*st)->Step(&step)) at.page_size = static_cast<int>((*st)->Int(0));
    (*st)->Reset();
    if (!step.ok()) return step;
  }
  model::Status result = model::Status::Ok();
  {
    auto dst = Connection::Open(destination, /*read_only=*/false);
    if (!dst.ok()) return dst.status();
    sqlite3_backup* backup = sqlite3_backup_init((*dst)->raw(), "main", (*src)->raw(), "main");
    if (backup == nullptr)
      return ErrorStatus((*dst)->raw(), sqlite3_errcode((*dst)->raw()), "backup");
    auto busy_since = std::chrono::steady_clock::now();
    for (;;) {
      const int rc = sqlite3_backup_step(backup, pages_per_step);
      at.total = sqlite3_backup_pagecount(backup);
      at.copied = at.total - sqlite3_backup_remaining(backup);
      if (rc == SQLITE_DONE) {
        progress(at);
        break;
      }
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (std::chrono::steady_clock::now() - busy_since > kBusyLimit) {
          result = model::Unavailable("the database stayed locked; try again");
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      if (rc != SQLITE_OK) {
        result = ErrorStatus((*dst)->raw(), rc, "backup step");
        break;
      }
      busy_since = std::chrono::steady_clock::now();
      progress(at);
    }
    const int finished = sqlite3_backup_finish(backup);
    if (result.ok() && finished != SQLITE_OK) {
      result = ErrorStatus((*dst)->raw(), finished, "backup");
    }
    if (result.ok()) result = StartNextIdEpoch(**dst);
    // The copy keeps the source's WAL mode; fold its log into the file so that the one file is
    // the whole copy.
    if (result.ok()) result = (*dst)->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }  // the copy is closed here
  (*src)->Exec("COMMIT").IgnoreError();
  if (!result.ok()) return result;
  return SyncFile(destination);
}

}  // namespace pushhook::store::sqlite
