// A full disk, for tests: while a ScopedFileSizeLimit lives, no file this process writes can
// grow past `bytes` (RLIMIT_FSIZE), and a write that would is refused with EFBIG instead of
// killing the process with SIGXFSZ. The old limit and signal disposition come back when it goes.
// It binds the whole process, so only tests that own every writer may use it. For tests only.
#pragma once

#include <sys/resource.h>

#include <csignal>
#include <cstddef>
#include <stdexcept>

namespace pushhook::util::testing {

class ScopedFileSizeLimit {
 public:
  explicit ScopedFileSizeLimit(std::size_t bytes) {
    if (::getrlimit(RLIMIT_FSIZE, &old_) != 0) throw std::runtime_error("getrlimit failed");
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = old_;
    limited.rlim_cur = bytes;
    if (::setrlimit(RLIMIT_FSIZE, &limited) != 0) {
      std::signal(SIGXFSZ, old_handler_);
      throw std::runtime_error("setrlimit failed");
    }
  }
  ~ScopedFileSizeLimit() { Lift(); }
  ScopedFileSizeLimit(const ScopedFileSizeLimit&) = delete;
  ScopedFileSizeLimit& operator=(const ScopedFileSizeLimit&) = delete;

  // Gives the disk its room back before the object goes; later calls do nothing.
  void Lift() {
    if (lifted_) return;
    lifted_ = true;
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = SIG_DFL;
  bool lifted_ = false;
};

}  // namespace pushhook::util::testing
