#include "util/failure_report.h"

#include <vector>

namespace pushhook::util {

bool FailureReport::Report(int64_t now_ms, std::string_view error,
                           std::initializer_list<LogField> fields) {
  const uint64_t total = count_.fetch_add(1, std::memory_order_relaxed) + 1;
  uint64_t occurrences = 0;
  {
    std::lock_guard lock(mu_);
    if (logged_ && now_ms - last_logged_ms_ < interval_ms_) return false;
    logged_ = true;
    last_logged_ms_ = now_ms;
    occurrences = total - logged_through_;  // this one and those not logged since the last line
    logged_through_ = total;
  }
  std::vector<LogField> all = {{"error", error}, {"occurrences", occurrences}, {"total", total}};
  all.insert(all.end(), fields.begin(), fields.end());
  LogFields(LogLevel::kError, message_, all);
  return true;
}

}  // namespace pushhook::util
