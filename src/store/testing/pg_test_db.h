// Throw-away PostgreSQL databases for tests, on the server that the ctest fixture `postgres`
// (test/postgres) starts for a build tree. Linked by tests only (pushhook_store_testing); libpq
// stays inside the .cc.
//
// Thread safety: a PgTestDatabase belongs to one test; use it from one thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/status.h"

namespace pushhook::store::testing {

// The fixture's server URL, "postgres://postgres@127.0.0.1:PORT/postgres", read from
// $PUSHHOOK_TEST_POSTGRES_DIR/url. nullopt when the variable is unset (the test binary was run by
// hand, outside ctest); an error when it is set but names no started server, which inside ctest
// is a failure, never a reason to skip.
model::StatusOr<std::optional<std::string>> FixtureServerUrl();

// One database made for one test with a random name (pushhook_t_<hex>), dropped WITH (FORCE)
// when the object goes, so that connections a store left open do not keep it alive.
class PgTestDatabase {
 public:
  // Connects to `server_url` and creates the database; Unavailable when the server does not
  // answer.
  static model::StatusOr<std::unique_ptr<PgTestDatabase>> Create(const std::string& server_url);

  ~PgTestDatabase();
  PgTestDatabase(const PgTestDatabase&) = delete;
  PgTestDatabase& operator=(const PgTestDatabase&) = delete;

  const std::string& name() const { return name_; }
  // The database's own URL, for StoreOptions::database.
  const std::string& url() const { return url_; }

  // Every row of every table of the public schema as text (bytea as \x hex), concatenated: what
  // a test searches to show that something is not stored in the clear.
  model::StatusOr<std::string> DumpText() const;

  // Runs `sql` (one or more statements) on the database: what a test does to a store's tables
  // behind its back, as an older version or an operator would have left them.
  model::Status Run(const std::string& sql) const;

  // Drops the database now; the destructor then has nothing left to do.
  model::Status Drop();

 private:
  PgTestDatabase(std::string server_url, std::string name, std::string url)
      : server_url_(std::move(server_url)), name_(std::move(name)), url_(std::move(url)) {}

  const std::string server_url_;
  const std::string name_;
  const std::string url_;
  bool dropped_ = false;
};

}  // namespace pushhook::store::testing
