#include "store/sqlite/database_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace pushhook::store::sqlite {

model::StatusOr<std::unique_ptr<DatabaseLock>> DatabaseLock::Acquire(
    const std::string& database_path) {
  const std::string path = database_path + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return model::Unavailable("cannot open " + path + ": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    static_cast<void>(::close(fd));  // never locked: nothing to release
    if (error != EWOULDBLOCK) {
      return model::Unavailable("cannot lock " + path + ": " + std::strerror(error));
    }
    std::string_view pid(holder, n > 0 ? static_cast<size_t>(n) : 0);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\0')) pid.remove_suffix(1);
    return model::InvalidArgument(
        "the database " + database_path + " is in use by another pushhook process" +
        (pid.empty() ? std::string() : " (pid " + std::string(pid) + ")") +
        ": an SQLite database is served by one process at a time");
  }
  // The holder's pid, for the message above; the lock holds even if this write fails.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    static_cast<void>(::pwrite(fd, pid.data(), pid.size(), 0));
  }
  return std::unique_ptr<DatabaseLock>(new DatabaseLock(fd));
}

DatabaseLock::~DatabaseLock() { static_cast<void>(::close(fd_)); }  // closing releases the lock

}  // namespace pushhook::store::sqlite
