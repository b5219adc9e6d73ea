#include "store/postgres/pg_conn.h"

#include <libpq-fe.h>

#include <charconv>
#include <cstdio>

namespace pushhook::store::postgres {
namespace {

using model::Status;
using model::StatusOr;

// Connection settings that the URL may not carry: a bounded connect, and keepalives so that a
// database that vanished is noticed by a waiting connection too.
pg_conn* Connect(const std::string& url) {
  const char* keys[] = {"dbname",
                        "connect_timeout",
                        "application_name",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        nullptr};
  const char* values[] = {url.c_str(), "3", "pushhook", "10", "5", "3", nullptr};
  pg_conn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  // Notices ("relation already exists, skipping") are not errors; libpq would print them.
  if (conn != nullptr)
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
  return conn;
}

std::string FirstLine(const char* message) {
  std::string text = message ? message : "";
  if (auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

}  // namespace

Params& Params::Add(double value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  values_.emplace_back(std::string(buffer, ec == std::errc() ? end : buffer));
  return *this;
}

ArrayLiteral& ArrayLiteral::Add(std::string_view value) {
  Separate();
  text_.push_back('"');
  for (char ch : value) {
    if (ch == '"' || ch == '\\') text_.push_back('\\');
    text_.push_back(ch);
  }
  text_.push_back('"');
  return *this;
}

ArrayLiteral& ArrayLiteral::Add(int64_t value) {
  Separate();
  text_.append(std::to_string(value));
  return *this;
}

ArrayLiteral& ArrayLiteral::AddNull() {
  Separate();
  text_.append("NULL");
  return *this;
}

Result::~Result() {
  if (result_) PQclear(result_);
}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int Result::rows() const { return PQntuples(result_); }

int64_t Result::affected() const {
  const char* text = PQcmdTuples(result_);
  int64_t n = 0;
  std::from_chars(text, text + std::char_traits<char>::length(text), n);
  return n;
}

std::string_view Result::Text(int row, int column) const {
  return std::string_view(PQgetvalue(result_, row, column),
                          static_cast<size_t>(PQgetlength(result_, row, column)));
}

int64_t Result::Int(int row, int column) const {
  const std::string_view text = Text(row, column);
  int64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

double Result::Double(int row, int column) const {
  const std::string_view text = Text(row, column);
  double d = 0;
  std::from_chars(text.data(), text.data() + text.size(), d);
  return d;
}

bool Result::IsNull(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }

std::string Result::Bytes(int row, int column) const {
  std::string_view text = Text(row, column);
  if (text.substr(0, 2) != "\\x") return {};
  text.remove_prefix(2);
  std::string out(text.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned value = 0;
    std::from_chars(text.data() + 2 * i, text.data() + 2 * i + 2, value, 16);
    out[i] = static_cast<char>(value);
  }
  return out;
}

StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& url) {
  pg_conn* conn = Connect(url);
  if (conn == nullptr) return model::Unavailable("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s =
        model::Unavailable("cannot connect to PostgreSQL: " + FirstLine(PQerrorMessage(conn)));
    PQfinish(conn);
    return s;
  }
  return std::unique_ptr<Connection>(new Connection(conn, url));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

Status Connection::Reconnect() {
  pg_conn* fresh = Connect(url_);
  if (fresh == nullptr || PQstatus(fresh) != CONNECTION_OK) {
    Status s = model::Unavailable("cannot connect to PostgreSQL: " +
                                  FirstLine(fresh ? PQerrorMessage(fresh) : "out of memory"));
    if (fresh) PQfinish(fresh);
    return s;
  }
  PQfinish(conn_);
  conn_ = fresh;
  prepared_.clear();  // statements belong to the old session
  return Status::Ok();
}

int Connection::backend_pid() const { return PQbackendPID(conn_); }

std::string Connection::Quote(std::string_view literal) const {
  char* quoted = PQescapeLiteral(conn_, literal.data(), literal.size());
  if (quoted == nullptr) return "''";
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

Status Connection::Failure(pg_result* result, std::string_view what) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state ? state : "";
  std::string message = FirstLine(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (message.empty()) message = FirstLine(PQerrorMessage(conn_));
  if (result) PQclear(result);
  // A broken connection, or a server that is shutting down or starting, is worth a retry later.
  if (!healthy() || last_sqlstate_.starts_with("08") || last_sqlstate_.starts_with("57P")) {
    return model::Unavailable("database unavailable: " + message);
  }
  if (last_sqlstate_ == "23505") return {model::StatusCode::kAlreadyExists, message};
  if (IsRetryable(last_sqlstate_)) return model::Unavailable(std::string(what) + ": " + message);
  return model::Internal(std::string(what) + ": " + message);
}

StatusOr<Result> Connection::Query(const std::string& sql, const Params& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size() + 1);
    pg_result* prepared = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
    if (PQresultStatus(prepared) != PGRES_COMMAND_OK) return Failure(prepared, "prepare");
    PQclear(prepared);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values;
  values.reserve(params.values().size());
  for (const auto& v : params.values()) {
    // libpq reads a text parameter as a C string, so one holding a NUL would be cut short at it,
    // silently: callers refuse NULs before they get here, and this makes a miss loud.
    if (v && v->find('\0') != std::string::npos) {
      return model::InvalidArgument(
          "a query parameter holds a NUL character; PostgreSQL text cannot store one");
    }
    values.push_back(v ? v->c_str() : nullptr);
  }
  pg_result* result = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                     values.data(), nullptr, nullptr, 0);
  const auto status = PQresultStatus(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return Failure(result, "query");
  last_sqlstate_.clear();
  return Result(result);
}

Status Connection::Exec(const std::string& sql) {
  pg_result* result = PQexec(conn_, sql.c_str());
  const auto status = PQresultStatus(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return Failure(result, "exec");
  PQclear(result);
  last_sqlstate_.clear();
  return Status::Ok();
}

}  // namespace pushhook::store::postgres
