// A per-endpoint circuit breaker: after `failure_threshold` consecutive failures it opens and
// sends nothing for a pause that doubles with each re-opening (up to `max_pause`); then it lets
// one probe through (half-open) and closes on its success. Times are passed in, so it is a pure
// state machine. Not thread safe: owned by the dispatcher thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace pushhook::delivery {

struct CircuitOptions {
  int failure_threshold = 5;
  std::chrono::milliseconds base_pause{5'000};
  std::chrono::milliseconds max_pause{300'000};
};

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  explicit CircuitBreaker(CircuitOptions options = {}) : options_(options) {}

  // True if a request may start now. In half-open, true once (for the probe) until it ends.
  bool AllowRequest(int64_t now_ms);
  // What AllowRequest would answer, without taking the probe.
  bool CanRequest(int64_t now_ms) const;
  void OnSuccess();
  void OnFailure(int64_t now_ms);
  // An outcome that says nothing of the receiver's health, of a request that started at
  // `started_ms`: if that request was the probe (only a probe starts once the pause is over),
  // the next request probes.
  void OnInconclusive(int64_t started_ms) {
    if (started_ms >= open_until_ms_) probe_in_flight_ = false;
  }

  // Someone asked for a request now (a redelivery): an open circuit's pause ends, and the next
  // request probes. A failed probe still doubles the pause.
  void ProbeNow(int64_t now_ms) { open_until_ms_ = std::min(open_until_ms_, now_ms); }

  State state(int64_t now_ms) const;
  // When an open circuit lets its probe through.
  int64_t open_until_ms() const { return open_until_ms_; }

 private:
  CircuitOptions options_;
  int consecutive_failures_ = 0;
  int openings_ = 0;  // since the circuit last closed
  int64_t open_until_ms_ = 0;
  bool probe_in_flight_ = false;
};

std::string_view CircuitStateName(CircuitBreaker::State state);

}  // namespace pushhook::delivery
