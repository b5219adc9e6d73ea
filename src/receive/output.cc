#include "receive/output.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace pushhook::receive {
namespace {

class SqliteOutput : public Output {
 public:
  SqliteOutput(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  // The receiver closes, and reports, before it lets go; here Close is a no-op or a last
  // resort after an error already reported.
  ~SqliteOutput() override { Close().IgnoreError(); }
  SqliteOutput(const SqliteOutput&) = delete;
  SqliteOutput& operator=(const SqliteOutput&) = delete;

  model::Status Init(bool sync) {
    sqlite3_busy_timeout(db_, 5000);
    std::string journal_mode;
    if (auto s = QueryText("PRAGMA journal_mode=WAL", &journal_mode); !s.ok()) return s;
    if (journal_mode != "wal") {
      return Error("cannot switch to WAL mode (journal mode is '" + journal_mode + "')");
    }
    // In WAL mode, NORMAL already makes a commit survive a crash of the process; FULL adds an
    // fsync per commit for power loss.
    if (auto s = Exec(sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !s.ok()) {
      return s;
    }
    if (auto s = Exec("CREATE TABLE IF NOT EXISTS received ("
                      "webhook_id TEXT NOT NULL, idx INTEGER NOT NULL, "
                      "received_at_ms INTEGER NOT NULL, payload TEXT NOT NULL, "
                      "PRIMARY KEY (webhook_id, idx))");
        !s.ok()) {
      return s;
    }
    // OR IGNORE: a row that is already there (same id and index) is the same payload.
    if (auto s = Prepare("INSERT OR IGNORE INTO received (webhook_id, idx, received_at_ms, "
                         "payload) VALUES (?1, ?2, ?3, ?4)",
                         &insert_);
        !s.ok()) {
      return s;
    }
    return model::Status::Ok();
  }

  model::StatusOr<std::vector<std::string>> StoredIds() override {
    sqlite3_stmt* select = nullptr;
    if (auto s = Prepare("SELECT DISTINCT webhook_id FROM received", &select); !s.ok()) return s;
    std::vector<std::string> ids;
    int rc;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(select, 0));
      ids.emplace_back(text, static_cast<size_t>(sqlite3_column_bytes(select, 0)));
    }
    sqlite3_finalize(select);
    if (rc != SQLITE_DONE) return Error("cannot read stored webhook ids");
    return ids;
  }

  model::Status Append(std::span<const AcceptedRequest> requests) override {
    // One transaction for the whole batch: one commit, however many requests queued meanwhile.
    if (auto s = Exec("BEGIN"); !s.ok()) return s;
    for (const AcceptedRequest& request : requests) {
      for (size_t i = 0; i < request.payloads.size(); ++i) {
        const std::string& payload = request.payloads[i];
        sqlite3_bind_text(insert_, 1, request.webhook_id.data(),
                          static_cast<int>(request.webhook_id.size()), SQLITE_STATIC);
        sqlite3_bind_int64(insert_, 2, static_cast<sqlite3_int64>(i));
        sqlite3_bind_int64(insert_, 3, request.received_at_ms);
        sqlite3_bind_text(insert_, 4, payload.data(), static_cast<int>(payload.size()),
                          SQLITE_STATIC);
        if (sqlite3_step(insert_) != SQLITE_DONE) {
          model::Status error = Error("cannot insert a payload");
          sqlite3_reset(insert_);
          Exec("ROLLBACK").IgnoreError();
          return error;
        }
        sqlite3_reset(insert_);
      }
    }
    if (auto s = Exec("COMMIT"); !s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    }
    return model::Status::Ok();
  }

  model::Status Close() override {
    if (db_ == nullptr) return model::Status::Ok();
    sqlite3_finalize(insert_);
    insert_ = nullptr;
    const int rc = sqlite3_close(db_);
    db_ = nullptr;
    if (rc != SQLITE_OK) {
      return model::Internal("cannot close " + path_ + ": " + sqlite3_errstr(rc));
    }
    return model::Status::Ok();
  }

 private:
  model::Status Error(std::string_view what) const {
    return model::Unavailable(std::string(what) + " in " + path_ + ": " + sqlite3_errmsg(db_));
  }

  model::Status Exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Error(std::string("'") + sql + "' failed");
    }
    return model::Status::Ok();
  }

  model::Status Prepare(const char* sql, sqlite3_stmt** stmt) {
    if (sqlite3_prepare_v2(db_, sql, -1, stmt, nullptr) != SQLITE_OK) {
      return Error(std::string("cannot prepare '") + sql + "'");
    }
    return model::Status::Ok();
  }

  // Runs a statement that answers one text value (a PRAGMA).
  model::Status QueryText(const char* sql, std::string* out) {
    sqlite3_stmt* stmt = nullptr;
    if (auto s = Prepare(sql, &stmt); !s.ok()) return s;
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (text != nullptr) *out = text;
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW) return Error(std::string("'") + sql + "' failed");
    return model::Status::Ok();
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

class NdjsonOutput : public Output {
 public:
  NdjsonOutput(std::string path, int fd, bool sync)
      : path_(std::move(path)), fd_(fd), sync_(sync) {}
  // The receiver closes, and reports, before it lets go; here Close is a no-op or a last
  // resort after an error already reported.
  ~NdjsonOutput() override { Close().IgnoreError(); }
  NdjsonOutput(const NdjsonOutput&) = delete;
  NdjsonOutput& operator=(const NdjsonOutput&) = delete;

  model::StatusOr<std::vector<std::string>> StoredIds() override {
    return std::vector<std::string>();
  }

  model::Status Append(std::span<const AcceptedRequest> requests) override {
    buffer_.clear();
    for (const AcceptedRequest& request : requests) {
      for (const std::string& payload : request.payloads) {
        buffer_ += payload;
        buffer_.push_back('\n');
      }
    }
    struct stat before;
    if (fstat(fd_, &before) != 0) return Errno("cannot stat");
    std::string_view rest = buffer_;
    while (!rest.empty()) {
      const ssize_t n = write(fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        model::Status error = Errno("cannot write to");
        // Cut a partial batch off, so that the file holds whole lines only and a retry of the
        // same requests does not leave half a payload behind. (A pipe or device cannot be.)
        if (S_ISREG(before.st_mode) && ftruncate(fd_, before.st_size) != 0) {
          return model::Unavailable(error.message() + "; and cannot truncate it back");
        }
        return error;
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    if (sync_ && fdatasync(fd_) != 0 && !NotSyncable()) return Errno("cannot sync");
    return model::Status::Ok();
  }

  model::Status Close() override {
    if (fd_ < 0) return model::Status::Ok();
    model::Status status;
    if (fsync(fd_) != 0 && !NotSyncable()) status = Errno("cannot sync");
    if (close(fd_) != 0 && status.ok()) status = Errno("cannot close");
    fd_ = -1;
    return status;
  }

 private:
  // After a failed fsync: the output is a pipe or a device (--out /dev/stdout), which has nothing
  // to sync.
  static bool NotSyncable() { return errno == EINVAL || errno == EROFS; }

  model::Status Errno(std::string_view what) const {
    return model::Unavailable(std::string(what) + " " + path_ + ": " + std::strerror(errno));
  }

  std::string path_;
  int fd_;
  bool sync_;
  std::string buffer_;
};

}  // namespace

model::StatusOr<std::unique_ptr<Output>> OpenOutput(const std::string& path, bool sync) {
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".db") == 0) {
    sqlite3* db = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      model::Status error = model::Unavailable(
          "cannot open " + path + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
      sqlite3_close(db);
      return error;
    }
    auto output = std::make_unique<SqliteOutput>(path, db);
    if (auto s = output->Init(sync); !s.ok()) return s;
    return std::unique_ptr<Output>(std::move(output));
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return model::Unavailable("cannot open " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<Output>(std::make_unique<NdjsonOutput>(path, fd, sync));
}

}  // namespace pushhook::receive
