// A failure that can repeat many times a second (commits refused while the disk is full, attempt
// records a full queue turned away) must neither vanish nor flood the log: FailureReport counts
// every occurrence, for /metrics, and logs at most one line per interval, saying how many
// occurrences that line stands for. Time is passed in, so tests are exact.
//
// Thread safe: Report() and count() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

#include "util/log.h"

namespace pushhook::util {

class FailureReport {
 public:
  explicit FailureReport(std::string message,
                         std::chrono::milliseconds interval = std::chrono::seconds(10))
      : message_(std::move(message)), interval_ms_(interval.count()) {}

  // Counts one failure; logs it at error level with `error` and `fields` unless a line was
  // logged less than an interval ago. True if this call logged.
  bool Report(int64_t now_ms, std::string_view error, std::initializer_list<LogField> fields = {});

  // Failures reported so far.
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::string message_;
  const int64_t interval_ms_;
  std::atomic<uint64_t> count_{0};
  std::mutex mu_;
  bool logged_ = false;          // guarded by mu_
  int64_t last_logged_ms_ = 0;   // guarded by mu_
  uint64_t logged_through_ = 0;  // guarded by mu_: count_ as of the last line
};

}  // namespace pushhook::util
