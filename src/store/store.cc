#include "store/store.h"

#include <charconv>

#include "store/sqlite/sqlite_store.h"

namespace pushhook::store {

std::string FormatMessageId(const std::string& instance_id, int64_t row_id) {
  return "msg_" + instance_id + std::to_string(row_id);
}

std::optional<int64_t> ParseMessageId(const std::string& instance_id, std::string_view text) {
  const std::string prefix = "msg_" + instance_id;
  if (text.substr(0, prefix.size()) != prefix) return std::nullopt;
  text.remove_prefix(prefix.size());
  int64_t row = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), row);
  if (ec != std::errc() || end != text.data() + text.size() || row <= 0) return std::nullopt;
  return row;
}

model::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  std::string_view url = options.database;
  constexpr std::string_view kSqlite = "sqlite://";
  if (url.substr(0, kSqlite.size()) == kSqlite) url.remove_prefix(kSqlite.size());
  if (url.substr(0, 11) == "postgres://" || url.substr(0, 13) == "postgresql://") {
    return model::Status(model::StatusCode::kUnsupported,
                         "the PostgreSQL store is not built yet; use sqlite://");
  }
  if (url.empty()) return model::InvalidArgument("database path is empty");
  return sqlite::OpenSqliteStore(std::string(url), options);
}

}  // namespace pushhook::store
