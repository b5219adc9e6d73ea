// When to try a message again: the retry schedule of DESIGN section 4 ("5s,5m,30m,2h,5h,10h,10h"
// by default), with ±20 % jitter drawn from a number the caller supplies, and the Retry-After
// header a receiver may send with 429 or 503. Immutable after Parse(): share it across threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/status.h"

namespace pushhook::delivery {

class RetrySchedule {
 public:
  static constexpr std::string_view kDefault = "5s,5m,30m,2h,5h,10h,10h";
  // Limits on what configuration may ask for: a longer step is surely a typo, and a step of zero
  // would hammer a failing receiver.
  static constexpr size_t kMaxSteps = 100;
  static constexpr std::chrono::milliseconds kMaxStep = std::chrono::hours(24 * 365);

  // Comma-separated durations (model::ParseDuration), spaces around commas allowed. Each error is
  // an InvalidArgument with a one-line message naming the step, e.g.
  // `retry schedule step 3 ("5x") is not a duration`.
  static model::StatusOr<RetrySchedule> Parse(std::string_view text);

  // The number of retries after the first attempt.
  size_t steps() const { return steps_.size(); }
  const std::vector<std::chrono::milliseconds>& delays() const { return steps_; }
  std::chrono::milliseconds longest() const { return longest_; }

  // The wait before the next attempt once `attempts_made` attempts have failed (1 → the first
  // step), jittered into [0.8, 1.2) × step by `uniform01` in [0, 1) (out-of-range values are
  // clamped). nullopt when the schedule is exhausted: the message has failed. Zero when
  // `attempts_made` < 1, since the first attempt does not wait.
  std::optional<std::chrono::milliseconds> DelayAfter(int attempts_made, double uniform01) const;

  // The schedule in the form Parse() reads, e.g. "5s,5m,30m".
  std::string ToString() const;

 private:
  explicit RetrySchedule(std::vector<std::chrono::milliseconds> steps);

  std::vector<std::chrono::milliseconds> steps_;
  std::chrono::milliseconds longest_{0};
};

// The wait a Retry-After header value asks for, from `now_unix_ms`: delta-seconds ("120") or an
// HTTP-date (IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT", and the obsolete RFC 850 and asctime
// forms that RFC 9110 asks recipients to accept). A date in the past gives zero; very large
// values saturate at RetrySchedule::kMaxStep (the caller caps at the schedule's longest step
// anyway). nullopt when the value is neither form.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         int64_t now_unix_ms);

}  // namespace pushhook::delivery
