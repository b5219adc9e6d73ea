#include "receive/output.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>
#include <tuple>
#include <unordered_map>

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

  model::StatusOr<std::vector<StoredWebhook>> StoredIds() override {
    sqlite3_stmt* select = nullptr;
    if (auto s =
            Prepare("SELECT webhook_id, max(idx) + 1 FROM received GROUP BY webhook_id", &select);
        !s.ok()) {
      return s;
    }
    std::vector<StoredWebhook> ids;
    int rc;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(select, 0));
      ids.push_back({std::string(text, static_cast<size_t>(sqlite3_column_bytes(select, 0))),
                     static_cast<size_t>(sqlite3_column_int64(select, 1))});
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
        const size_t index = request.first_index + i;
        sqlite3_bind_int64(insert_, 2, static_cast<sqlite3_int64>(index));
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

// Payloads one per line in `path`. Beside a regular file, `path`.ids keeps each payload's
// webhook id, one per line, so that de-duplication survives a restart (the payloads alone do not
// say which request they came in); a pipe or a device (--out /dev/stdout) has none.
class NdjsonOutput : public Output {
 public:
  NdjsonOutput(std::string path, int fd, int ids_fd, bool sync)
      : path_(std::move(path)), fd_(fd), ids_fd_(ids_fd), sync_(sync) {}
  // The receiver closes, and reports, before it lets go; here Close is a no-op or a last
  // resort after an error already reported.
  ~NdjsonOutput() override { Close().IgnoreError(); }
  NdjsonOutput(const NdjsonOutput&) = delete;
  NdjsonOutput& operator=(const NdjsonOutput&) = delete;

  model::StatusOr<std::vector<StoredWebhook>> StoredIds() override {
    std::vector<StoredWebhook> ids;
    if (ids_fd_ < 0) return ids;
    std::ifstream in(IdsPath());
    if (!in) return model::Unavailable("cannot read " + IdsPath());
    // A webhook's payloads are stored in index order, one id line each: its count of lines is
    // how many. A last line without its newline was cut short by a crash: not stored.
    std::unordered_map<std::string, size_t> elements;
    std::string line;
    while (std::getline(in, line)) {
      if (!in.eof() && !line.empty()) ++elements[std::move(line)];
    }
    ids.reserve(elements.size());
    for (auto& [id, count] : elements) ids.push_back({id, count});
    return ids;
  }

  model::Status Append(std::span<const AcceptedRequest> requests) override {
    buffer_.clear();
    ids_.clear();
    for (const AcceptedRequest& request : requests) {
      for (const std::string& payload : request.payloads) {
        buffer_ += payload;
        buffer_.push_back('\n');
        ids_ += request.webhook_id;
        ids_.push_back('\n');
      }
    }
    struct stat before;
    if (fstat(fd_, &before) != 0) return Errno(path_, "cannot stat");
    if (model::Status s = WriteAll(fd_, path_, buffer_, before); !s.ok()) return s;
    if (ids_fd_ >= 0) {
      struct stat ids_before;
      model::Status s = fstat(ids_fd_, &ids_before) == 0
                            ? WriteAll(ids_fd_, IdsPath(), ids_, ids_before)
                            : Errno(IdsPath(), "cannot stat");
      if (!s.ok()) {
        // Payloads whose ids were not kept would be stored again after a restart: take them
        // back, and the sender's retry brings them.
        if (ftruncate(fd_, before.st_size) != 0) {
          return model::Unavailable(s.message() + "; and cannot truncate " + path_ + " back");
        }
        return s;
      }
    }
    if (sync_ && fdatasync(fd_) != 0 && !NotSyncable()) return Errno(path_, "cannot sync");
    if (sync_ && ids_fd_ >= 0 && fdatasync(ids_fd_) != 0) return Errno(IdsPath(), "cannot sync");
    return model::Status::Ok();
  }

  model::Status Close() override {
    model::Status status;
    for (int* fd : {&fd_, &ids_fd_}) {
      if (*fd < 0) continue;
      const std::string& name = fd == &fd_ ? path_ : IdsPath();
      if (fsync(*fd) != 0 && !NotSyncable() && status.ok()) status = Errno(name, "cannot sync");
      if (close(*fd) != 0 && status.ok()) status = Errno(name, "cannot close");
      *fd = -1;
    }
    return status;
  }

 private:
  // After a failed fsync: the output is a pipe or a device (--out /dev/stdout), which has nothing
  // to sync.
  static bool NotSyncable() { return errno == EINVAL || errno == EROFS; }

  static model::Status Errno(const std::string& path, std::string_view what) {
    return model::Unavailable(std::string(what) + " " + path + ": " + std::strerror(errno));
  }

  // Writes all of `bytes` to `fd`, or cuts off what it wrote (so that the file holds whole
  // lines only, and a retry of the same requests leaves nothing half written; a pipe or a
  // device cannot be cut) and says why.
  static model::Status WriteAll(int fd, const std::string& path, std::string_view bytes,
                                const struct stat& before) {
    while (!bytes.empty()) {
      const ssize_t n = write(fd, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        model::Status error = Errno(path, "cannot write to");
        if (S_ISREG(before.st_mode) && ftruncate(fd, before.st_size) != 0) {
          return model::Unavailable(error.message() + "; and cannot truncate it back");
        }
        return error;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return model::Status::Ok();
  }

  std::string IdsPath() const { return path_ + ".ids"; }

  std::string path_;
  int fd_;
  int ids_fd_;
  bool sync_;
  std::string buffer_;
  std::string ids_;
};

// Cuts off a last line without its newline (a crash while it was written), so that the next
// line appended starts on a line of its own. False, with errno, when the file cannot be read or
// cut.
bool CutPartialLine(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  off_t end = st.st_size;
  char chunk[4096];
  while (end > 0) {
    const off_t start = end > static_cast<off_t>(sizeof chunk) ? end - sizeof chunk : 0;
    const ssize_t n = pread(fd, chunk, static_cast<size_t>(end - start), start);
    if (n != end - start) return false;
    for (ssize_t i = n; i > 0; --i) {
      if (chunk[i - 1] != '\n') continue;
      const off_t whole = start + i;
      return whole == st.st_size || ftruncate(fd, whole) == 0;
    }
    end = start;
  }
  return st.st_size == 0 || ftruncate(fd, 0) == 0;
}

// A path that cannot be opened for a reason the operator fixes (a folder missing, a file where a
// folder should be, no permission) is bad usage, exit code 2, as serve's --data-dir is.
model::Status CannotOpen(const std::string& path, int error) {
  std::string message = "cannot open " + path + ": " + std::strerror(error);
  switch (error) {
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case EACCES:
    case EPERM:
    case EROFS:
    case ENAMETOOLONG:
      return model::InvalidArgument(std::move(message));
    default:
      return model::Unavailable(std::move(message));
  }
}

}  // namespace

model::StatusOr<std::unique_ptr<Output>> OpenOutput(const std::string& path, bool sync) {
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, ".db") == 0) {
    sqlite3* db = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      // SQLite says only "unable to open database file"; the system says why.
      const int error = db != nullptr ? sqlite3_system_errno(db) : 0;
      model::Status status =
          error != 0
              ? CannotOpen(path, error)
              : model::Unavailable("cannot open " + path + ": " +
                                   (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
      sqlite3_close(db);
      return status;
    }
    auto output = std::make_unique<SqliteOutput>(path, db);
    if (auto s = output->Init(sync); !s.ok()) return s;
    return std::unique_ptr<Output>(std::move(output));
  }
  // Read and write where it may (a file), so that a line a crash cut short can be cut off;
  // write only where that is all it may (/dev/stdout on some terminals).
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return CannotOpen(path, errno);
  struct stat st;
  int ids_fd = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (!CutPartialLine(fd)) {
      const int error = errno;
      std::ignore = close(fd);
      return model::Unavailable("cannot open " + path + ": " + std::strerror(error));
    }
    const std::string ids = path + ".ids";
    ids_fd = open(ids.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (ids_fd < 0 || !CutPartialLine(ids_fd)) {
      const int error = errno;
      // Only read from or not written yet: closing them cannot lose anything.
      std::ignore = close(fd);
      if (ids_fd >= 0) std::ignore = close(ids_fd);
      return model::Unavailable("cannot open " + ids + ": " + std::strerror(error));
    }
  }
  return std::unique_ptr<Output>(std::make_unique<NdjsonOutput>(path, fd, ids_fd, sync));
}

}  // namespace pushhook::receive
