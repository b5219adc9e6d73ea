// Opening a store by the URL configuration gives: the one place that knows both backends, so
// that code which only uses a Store (store.h) links neither SQLite nor libpq.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace pushhook::store {

// Opens the store that `options.database` names ("sqlite://<path>", a bare path, or
// "postgres://…") and runs its migrations.
model::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

// The database libraries this binary runs with, for `pushhook version`: {"sqlite", "3.40.1"},
// {"libpq", "15.10"}.
std::vector<std::pair<std::string, std::string>> LibraryVersions();

}  // namespace pushhook::store
