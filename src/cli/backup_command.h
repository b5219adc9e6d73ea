// `pushhook backup --out FILE` (DESIGN section 8): a consistent copy of a running server's SQLite
// store, found as `serve` finds it, written under a temporary name, synced and renamed into
// place. Starting `serve` on the copy (with the same secrets key) is the restore.
#pragma once

#include <string>

#include "server/app.h"

namespace pushhook::cli {

struct BackupOptions {
  std::string out;
  bool force = false;
};

// Runs the backup of the store `config` names; returns the exit code (0, 1, or 2 for bad usage:
// an empty --out, a PostgreSQL store, an existing --out without --force, no database where
// config points).
int RunBackupCommand(const server::ServeConfig& config, const BackupOptions& options);

}  // namespace pushhook::cli
