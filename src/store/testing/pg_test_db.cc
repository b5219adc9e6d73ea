#include "store/testing/pg_test_db.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "model/random.h"

namespace pushhook::store::testing {
namespace {

using model::Status;
using model::StatusOr;

struct ConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultClearer {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
using Result = std::unique_ptr<PGresult, ResultClearer>;

// libpq ends its messages with a newline; ours do not.
std::string Trimmed(const char* message) {
  std::string out = message == nullptr ? "" : message;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

StatusOr<Conn> Connect(const std::string& url) {
  // A server that is not there should fail the test quickly, not hang it until ctest's timeout.
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {url.c_str(), "10", nullptr};
  Conn conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (conn == nullptr) return model::Internal("libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return model::Unavailable("cannot connect to " + url + ": " +
                              Trimmed(PQerrorMessage(conn.get())));
  }
  return conn;
}

StatusOr<Result> Exec(PGconn* conn, const std::string& sql) {
  Result result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return model::Internal(sql + ": " + Trimmed(PQerrorMessage(conn)));
  }
  return result;
}

// "postgres://user@host:port/db?x" -> "postgres://user@host:port": the server without a database.
StatusOr<std::string> ServerPart(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return model::InvalidArgument("not a URL: " + url);
  const size_t path = url.find_first_of("/?", scheme + 3);
  return url.substr(0, path);
}

std::string RandomHex(size_t bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : model::RandomBytes(bytes)) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

}  // namespace

StatusOr<std::optional<std::string>> FixtureServerUrl() {
  const char* dir = std::getenv("PUSHHOOK_TEST_POSTGRES_DIR");
  if (dir == nullptr || *dir == '\0') return std::optional<std::string>();
  const std::string path = std::string(dir) + "/url";
  std::ifstream file(path);
  std::string url;
  if (!file || !std::getline(file, url) || url.empty()) {
    return model::Unavailable(path +
                              " is missing or empty: the ctest fixture postgres.start did not run "
                              "or failed (scripts/pg-cluster start)");
  }
  return std::optional<std::string>(url);
}

StatusOr<std::unique_ptr<PgTestDatabase>> PgTestDatabase::Create(const std::string& server_url) {
  auto server = ServerPart(server_url);
  if (!server.ok()) return server.status();
  auto conn = Connect(server_url);
  if (!conn.ok()) return conn.status();
  const std::string name = "pushhook_t_" + RandomHex(8);
  if (auto created = Exec(conn->get(), "CREATE DATABASE " + name); !created.ok()) {
    return created.status();
  }
  return std::unique_ptr<PgTestDatabase>(
      new PgTestDatabase(server_url, name, *server + "/" + name));
}

PgTestDatabase::~PgTestDatabase() {
  // Best effort: a database left behind goes with the fixture's cluster at the end of the run.
  (void)Drop();
}

Status PgTestDatabase::Drop() {
  if (dropped_) return Status::Ok();
  auto conn = Connect(server_url_);
  if (!conn.ok()) return conn.status();
  auto dropped = Exec(conn->get(), "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  if (!dropped.ok()) return dropped.status();
  dropped_ = true;
  return Status::Ok();
}

model::Status PgTestDatabase::Run(const std::string& sql) const {
  auto conn = Connect(url_);
  if (!conn.ok()) return conn.status();
  return Exec(conn->get(), sql).status();
}

StatusOr<std::string> PgTestDatabase::DumpText() const {
  auto conn = Connect(url_);
  if (!conn.ok()) return conn.status();
  auto tables = Exec(conn->get(),
                     "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                     "'public' AND table_type = 'BASE TABLE' ORDER BY 1");
  if (!tables.ok()) return tables.status();
  std::string out;
  for (int row = 0; row < PQntuples(tables->get()); ++row) {
    const char* table = PQgetvalue(tables->get(), row, 0);
    char* quoted = PQescapeIdentifier(conn->get(), table, std::strlen(table));
    if (quoted == nullptr) return model::Internal(Trimmed(PQerrorMessage(conn->get())));
    const std::string sql =
        std::string("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM public.") + quoted +
        " t";
    PQfreemem(quoted);
    auto rows = Exec(conn->get(), sql);
    if (!rows.ok()) return rows.status();
    out += table;
    out += ":\n";
    out += PQgetvalue(rows->get(), 0, 0);
    out += "\n";
  }
  return out;
}

}  // namespace pushhook::store::testing
