// A token bucket for a rate limit in requests per second (an endpoint's rate_limit, an ingest
// key's limit): holds up to one second's worth of tokens, refilled continuously. Times are passed
// in. Not thread safe: its owner guards it (the dispatcher thread; the ingest handler's lock).
#pragma once

#include <cstdint>

namespace pushhook::util {

class TokenBucket {
 public:
  // `rate_per_second` <= 0 means unlimited.
  explicit TokenBucket(double rate_per_second = 0) { SetRate(rate_per_second); }

  void SetRate(double rate_per_second);
  // Takes a token if one is there.
  bool TryTake(int64_t now_ms);
  // The earliest time a token will be there (now if one is).
  int64_t NextTokenMs(int64_t now_ms);

 private:
  void Refill(int64_t now_ms);

  double rate_ = 0;
  double capacity_ = 0;
  double tokens_ = 0;
  int64_t last_ms_ = -1;
};

}  // namespace pushhook::util
