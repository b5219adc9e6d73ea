// One process at a time writes an SQLite database. SQLite itself would let a second `serve` (a
// service manager's and a manual start, say) open the same file, and each would then count the
// events the other had not yet counted into the campaign statistics at start-up, for good.
// A DatabaseLock is an exclusive flock(2) on <database>.lock, held while the object lives and
// released by the kernel when the process ends however it ends; the file names its holder's pid.
#pragma once

#include <memory>
#include <string>

#include "model/status.h"

namespace pushhook::store::sqlite {

class DatabaseLock {
 public:
  // Takes the lock of the database at `database_path`, or answers why not: kInvalidArgument
  // naming the pid that holds it, or the error of making its file.
  static model::StatusOr<std::unique_ptr<DatabaseLock>> Acquire(const std::string& database_path);

  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

 private:
  explicit DatabaseLock(int fd) : fd_(fd) {}

  const int fd_;
};

}  // namespace pushhook::store::sqlite
