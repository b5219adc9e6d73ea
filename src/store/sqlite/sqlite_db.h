// A thin RAII layer over the SQLite C API for the SQLite store: a connection, prepared
// statements cached per connection, and SQLite result codes turned into model::Status.
// A Connection is used by one thread at a time; the store decides which.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "model/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace pushhook::store::sqlite {

class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds by 1-based position. Strings and blobs are not copied (SQLITE_STATIC): callers keep
  // them alive until Reset(). A bind that fails (no such position, a value too big) makes the
  // next Step() or Run() fail with its error, rather than run with a parameter left NULL.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);
  Statement& BindNull(int index);
  Statement& BindBlob(int index, std::string_view bytes);

  // True when a row is available, false when done; errors become a Status in `status`.
  bool Step(model::Status* status);
  // Runs to completion, expecting no rows.
  model::Status Run();
  void Reset();

  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  bool IsNull(int column) const;

 private:
  Statement& Bound(int rc, int index);

  sqlite3_stmt* stmt_;
  model::Status bind_error_;  // the first failed bind since Reset()
};

class Connection {
 public:
  static model::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, bool read_only);
  ~Connection();

  // Runs SQL text, which may hold several statements (migrations, pragmas); parsed every time.
  model::Status Exec(std::string_view sql);
  // Runs one statement from the statement cache, expecting no rows: for what a hot path repeats,
  // such as the writer's BEGIN, SAVEPOINT and COMMIT.
  model::Status Run(std::string_view sql);
  // A cached prepared statement, reset and with bindings cleared, ready to bind.
  model::StatusOr<Statement*> Prepare(std::string_view sql);
  int Changes() const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  // Looked up by the caller's string_view: a hot path's literal SQL is neither copied nor
  // allocated to find its statement.
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };
  std::unordered_map<std::string, std::unique_ptr<Statement>, SqlHash, std::equal_to<>> statements_;
};

model::Status ErrorStatus(sqlite3* db, int rc, std::string_view what);

}  // namespace pushhook::store::sqlite
