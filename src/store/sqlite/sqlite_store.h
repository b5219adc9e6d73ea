// The embedded Store on SQLite: WAL mode, one writer thread that group-commits every queued write
// (many requests, one transaction, one sync), and a small pool of read connections.
//
// Thread safety: all public methods may be called from any thread (see store.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace pushhook::store::sqlite {

// Opens (creating if needed) the database file at `path` and runs its migrations.
model::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                        const StoreOptions& options);

// The SQLite library this binary runs with ("3.40.1").
std::string LibraryVersion();

// How far a backup has come, in database pages.
struct BackupProgress {
  int copied = 0;
  int total = 0;
  int page_size = 0;
};

// Copies the database at `source` (which a running server may be writing) into a new file at
// `destination` with SQLite's online backup API: `pages_per_step` pages at a time, all read
// from one snapshot (a read transaction held for the whole copy, which in WAL mode blocks no
// writer), so the copy is the database as it was at one instant. `progress` is called after
// each step. The destination is synced before this returns; it must not exist. The copy's new
// events and messages count on from the next multiple of 2^40, so that serving it (a restore)
// never reuses an id that the source gave out after the snapshot.
model::Status Backup(const std::string& source, const std::string& destination, int pages_per_step,
                     const std::function<void(const BackupProgress&)>& progress);

}  // namespace pushhook::store::sqlite
