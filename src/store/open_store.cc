#include "store/open_store.h"

#include <string_view>

#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"

namespace pushhook::store {

model::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  std::string_view url = options.database;
  constexpr std::string_view kSqlite = "sqlite://";
  if (url.substr(0, kSqlite.size()) == kSqlite) url.remove_prefix(kSqlite.size());
  if (url.substr(0, 11) == "postgres://" || url.substr(0, 13) == "postgresql://") {
    return postgres::OpenPostgresStore(options.database, options);
  }
  if (url.empty()) return model::InvalidArgument("database path is empty");
  return sqlite::OpenSqliteStore(std::string(url), options);
}

std::vector<std::pair<std::string, std::string>> LibraryVersions() {
  return {{"sqlite", sqlite::LibraryVersion()}, {"libpq", postgres::LibraryVersion()}};
}

}  // namespace pushhook::store
