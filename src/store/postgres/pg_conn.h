// A thin RAII layer over libpq for the PostgreSQL store: a connection whose statements are
// prepared once and cached, results read as text, errors turned into model::Status, and the
// array literals that let one statement carry a whole batch (`unnest($1::text[], ...)`).
// A Connection is used by one thread at a time; the store decides which.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/status.h"

struct pg_conn;
struct pg_result;

namespace pushhook::store::postgres {

// Parameters of one statement, in PostgreSQL's text format; nullopt is NULL.
class Params {
 public:
  Params& Add(std::string_view value) {
    values_.emplace_back(std::string(value));
    return *this;
  }
  Params& Add(const char* value) { return Add(std::string_view(value)); }
  Params& Add(int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
  }
  Params& Add(int value) { return Add(static_cast<int64_t>(value)); }
  Params& Add(double value);
  Params& AddNull() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

// Builds a one-dimensional array literal, `{"a","b",NULL}`, for a text[] or bigint[] parameter.
class ArrayLiteral {
 public:
  ArrayLiteral& Add(std::string_view value);
  ArrayLiteral& Add(int64_t value);
  ArrayLiteral& Add(int value) { return Add(static_cast<int64_t>(value)); }
  ArrayLiteral& AddNull();
  std::string Finish() const { return text_ + "}"; }
  size_t size() const { return size_; }

 private:
  void Separate() { text_.push_back(size_++ == 0 ? '{' : ','); }
  std::string text_;
  size_t size_ = 0;
};

// A query's rows, as text.
class Result {
 public:
  explicit Result(pg_result* result) : result_(result) {}
  ~Result();
  Result(Result&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;
  std::string_view Text(int row, int column) const;
  std::string String(int row, int column) const { return std::string(Text(row, column)); }
  int64_t Int(int row, int column) const;
  double Double(int row, int column) const;
  bool IsNull(int row, int column) const;
  // A bytea column (text format: "\x" and hex digits) as raw bytes.
  std::string Bytes(int row, int column) const;

 private:
  pg_result* result_;
};

class Connection {
 public:
  // `url` is a libpq connection URI (postgres://...).
  static model::StatusOr<std::unique_ptr<Connection>> Open(const std::string& url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement with parameters; the statement is prepared on first use and kept.
  model::StatusOr<Result> Query(const std::string& sql, const Params& params = {});
  // Runs SQL text without parameters (may hold several statements).
  model::Status Exec(const std::string& sql);

  // False once the connection broke; Reconnect() makes a new one.
  bool healthy() const;
  model::Status Reconnect();
  // The SQLSTATE of the last failed statement ("" if none): the store retries deadlocks.
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  int backend_pid() const;
  std::string Quote(std::string_view literal) const;
  pg_conn* raw() const { return conn_; }

 private:
  Connection(pg_conn* conn, std::string url) : conn_(conn), url_(std::move(url)) {}
  model::Status Failure(pg_result* result, std::string_view what);

  pg_conn* conn_;
  const std::string url_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
  std::string last_sqlstate_;
};

// True for SQLSTATEs after which the same transaction may simply be run again.
inline bool IsRetryable(std::string_view sqlstate) {
  return sqlstate == "40001" || sqlstate == "40P01";
}

}  // namespace pushhook::store::postgres
