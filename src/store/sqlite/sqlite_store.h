// The embedded Store on SQLite: WAL mode, one writer thread that group-commits every queued write
// (many requests, one transaction, one sync), and a small pool of read connections.
//
// Thread safety: all public methods may be called from any thread (see store.h).
#pragma once

#include <memory>

#include "store/store.h"

namespace pushhook::store::sqlite {

// Opens (creating if needed) the database file at `path` and runs its migrations.
model::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                        const StoreOptions& options);

// The SQLite library this binary runs with ("3.40.1").
std::string LibraryVersion();

}  // namespace pushhook::store::sqlite
