#include "store/sqlite/sqlite_db.h"

#include <sqlite3.h>

#include <mutex>
#include <new>
#include <string>

#include "model/utf8.h"

namespace pushhook::store::sqlite {
namespace {

// lower(text) as PostgreSQL's under a UTF-8 locale, in place of SQLite's, which lowers ASCII
// only: the campaigns search (store.cc) then finds "Über" as "über" on both stores.
void Lower(sqlite3_context* context, int /*argc*/, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;  // NULL, as the built-in answers
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const auto bytes = static_cast<size_t>(sqlite3_value_bytes(argv[0]));
  try {
    const std::string lowered = model::ToLowerCase(std::string_view(text ? text : "", bytes));
    sqlite3_result_text64(context, lowered.data(), lowered.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(context);
  }
}

}  // namespace

model::Status ErrorStatus(sqlite3* db, int rc, std::string_view what) {
  std::string message = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_FULL ||
      primary == SQLITE_IOERR) {
    return model::Unavailable(std::move(message));
  }
  if (primary == SQLITE_CONSTRAINT) {
    return model::Status(model::StatusCode::kAlreadyExists, std::move(message));
  }
  return model::Internal(std::move(message));
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bound(int rc, int index) {
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = ErrorStatus(nullptr, rc, "sqlite bind of parameter " + std::to_string(index));
  }
  return *this;
}

Statement& Statement::Bind(int index, int64_t value) {
  return Bound(sqlite3_bind_int64(stmt_, index, value), index);
}
Statement& Statement::Bind(int index, double value) {
  return Bound(sqlite3_bind_double(stmt_, index, value), index);
}
Statement& Statement::Bind(int index, std::string_view value) {
  return Bound(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8),
      index);
}
Statement& Statement::BindBlob(int index, std::string_view bytes) {
  return Bound(sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC), index);
}

Statement& Statement::BindNull(int index) { return Bound(sqlite3_bind_null(stmt_, index), index); }

bool Statement::Step(model::Status* status) {
  if (!bind_error_.ok()) {
    *status = bind_error_;
    return false;
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) *status = ErrorStatus(sqlite3_db_handle(stmt_), rc, "sqlite step");
  return false;
}

model::Status Statement::Run() {
  model::Status status;
  while (Step(&status)) {
  }
  sqlite3_reset(stmt_);
  bind_error_ = model::Status::Ok();
  return status;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = model::Status::Ok();
}

int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }
bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}
std::string Statement::Text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

model::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                              bool read_only) {
  // SQLite counts every allocation under a global mutex unless told not to; nothing here reads
  // those counts. Possible only before SQLite initialises, so once, before the first open.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* db = nullptr;
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  // The file is read at the first statement: one now tells a path that is not a database
  // (the operator's to fix, as bad configuration) from a failure later.
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, "SELECT 1 FROM sqlite_schema LIMIT 1", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    model::Status status = ErrorStatus(db, rc, "cannot open database " + path);
    if ((rc & 0xff) == SQLITE_NOTADB) {
      status =
          model::InvalidArgument(path + " is not an SQLite database (is it the file serve uses?)");
    } else if ((rc & 0xff) == SQLITE_CANTOPEN) {
      status = model::InvalidArgument(status.message() +
                                      " (does its folder exist, and may pushhook write there?)");
    }
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  rc = sqlite3_create_function_v2(db, "lower", 1,
                                  SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, nullptr,
                                  &Lower, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    model::Status status = ErrorStatus(db, rc, "cannot define lower() on " + path);
    sqlite3_close(db);
    return status;
  }
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  statements_.clear();
  sqlite3_close(db_);
}

model::Status Connection::Exec(std::string_view sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return model::Status::Ok();
  std::string message = error ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return ErrorStatus(nullptr, rc, message);
}

model::Status Connection::Run(std::string_view sql) {
  auto st = Prepare(sql);
  if (!st.ok()) return st.status();
  return (*st)->Run();
}

model::StatusOr<Statement*> Connection::Prepare(std::string_view sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return ErrorStatus(db_, rc, "prepare");
    it = statements_.emplace(std::string(sql), std::make_unique<Statement>(stmt)).first;
  }
  it->second->Reset();
  return it->second.get();
}

int Connection::Changes() const { return sqlite3_changes(db_); }

}  // namespace pushhook::store::sqlite
