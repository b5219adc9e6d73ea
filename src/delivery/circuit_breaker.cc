#include "delivery/circuit_breaker.h"

#include <algorithm>

namespace pushhook::delivery {

bool CircuitBreaker::AllowRequest(int64_t now_ms) {
  switch (state(now_ms)) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

bool CircuitBreaker::CanRequest(int64_t now_ms) const {
  const State s = state(now_ms);
  return s == State::kClosed || (s == State::kHalfOpen && !probe_in_flight_);
}

void CircuitBreaker::OnSuccess() {
  consecutive_failures_ = 0;
  openings_ = 0;
  open_until_ms_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::OnFailure(int64_t now_ms) {
  ++consecutive_failures_;
  switch (state(now_ms)) {
    case State::kOpen:
      // A request sent before the circuit opened: the pause already accounts for it.
      return;
    case State::kHalfOpen:
      // Only the probe's failure re-opens; a straggler from before the pause changes nothing.
      if (!probe_in_flight_) return;
      break;
    case State::kClosed:
      if (consecutive_failures_ < options_.failure_threshold) return;
      break;
  }
  probe_in_flight_ = false;
  const int doublings = std::min(openings_, 20);
  const int64_t pause =
      std::min<int64_t>(options_.base_pause.count() << doublings, options_.max_pause.count());
  ++openings_;
  open_until_ms_ = now_ms + pause;
}

CircuitBreaker::State CircuitBreaker::state(int64_t now_ms) const {
  if (openings_ == 0) return State::kClosed;
  return now_ms < open_until_ms_ ? State::kOpen : State::kHalfOpen;
}

std::string_view CircuitStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace pushhook::delivery
