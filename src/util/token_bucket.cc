#include "util/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace pushhook::util {

void TokenBucket::SetRate(double rate_per_second) {
  if (rate_per_second == rate_) return;
  rate_ = rate_per_second;
  capacity_ = std::max(1.0, rate_per_second);
  tokens_ = std::min(tokens_, capacity_);
}

void TokenBucket::Refill(int64_t now_ms) {
  if (last_ms_ < 0) {
    tokens_ = capacity_;
  } else if (now_ms > last_ms_) {
    tokens_ =
        std::min(capacity_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
  }
  last_ms_ = std::max(last_ms_, now_ms);
}

bool TokenBucket::TryTake(int64_t now_ms) {
  if (rate_ <= 0) return true;
  Refill(now_ms);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

int64_t TokenBucket::NextTokenMs(int64_t now_ms) {
  if (rate_ <= 0) return now_ms;
  Refill(now_ms);
  if (tokens_ >= 1.0) return now_ms;
  return now_ms + static_cast<int64_t>(std::ceil((1.0 - tokens_) * 1000.0 / rate_));
}

}  // namespace pushhook::util
