// An endpoint's attempt statistics as both backends keep them: hourly rows of attempt_stats_hour
// counting attempts and successes per latency bucket, so that GetEndpointStats reads a few rows
// per hour, whatever the size of the attempts table. Buckets are log-scale, four per doubling: a
// percentile read from them is its bucket's geometric middle, within about 9 % of the latency it
// stands for. Pure functions and a plain map; not for use outside src/store.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <compare>
#include <cstdint>
#include <map>
#include <string>

#include "model/aggregates.h"

namespace pushhook::store::internal {

// The hour an attempt at `at_ms` is counted in: Unix ms of the hour's start over kHourMs.
inline int64_t AttemptHour(int64_t at_ms) {
  return model::BucketStart(at_ms, model::kHourMs) / model::kHourMs;
}

// floor(sqrt(2) * 2^127): the bits of sqrt(2), so that floor(sqrt(2) * 2^m) is a shift.
inline constexpr unsigned __int128 kSqrt2Bits =
    (static_cast<unsigned __int128>(0xb504f333f9de6484) << 64) | 0x597d89b3754abe9f;

// floor(4 * log2(max(1, latency_us))), exactly: bucket b holds the latencies in
// [2^(b/4), 2^((b+1)/4)).
inline int LatencyBucket(int64_t latency_us) {
  const uint64_t x = latency_us < 1 ? 1 : static_cast<uint64_t>(latency_us);
  const int k = static_cast<int>(std::bit_width(x)) - 1;  // 2^k <= x < 2^(k+1)
  // x >= 2^(k + j/4) exactly when x^2 >= 2^(2k + j/2). For odd j that bound is sqrt(2) times a
  // power of two, irrational: the integer x^2 reaches it exactly when it passes its floor.
  const unsigned __int128 square = static_cast<unsigned __int128>(x) * x;
  const auto sqrt2_times = [](int m) { return kSqrt2Bits >> (127 - m); };
  int bucket = 4 * k;
  if (square > sqrt2_times(2 * k)) ++bucket;
  if (square >= static_cast<unsigned __int128>(1) << (2 * k + 1)) ++bucket;
  if (square > sqrt2_times(2 * k + 1)) ++bucket;
  return bucket;
}

// The latency that stands for bucket `bucket`: its geometric middle, 2^((bucket + 0.5) / 4).
inline int64_t LatencyBucketMiddle(int bucket) {
  return std::llround(std::exp2((2.0 * bucket + 1.0) / 8.0));
}

// Attempts by latency bucket.
using LatencyHistogram = std::map<int, uint64_t>;

// The latency at rank min(n - 1, floor(q * n)) (0-based, fastest first) of the n attempts in
// `histogram`, as its bucket's middle; 0 when there are none.
inline int64_t LatencyPercentile(const LatencyHistogram& histogram, double q) {
  uint64_t n = 0;
  for (const auto& [bucket, attempts] : histogram) n += attempts;
  if (n == 0) return 0;
  const uint64_t rank = std::min(n - 1, static_cast<uint64_t>(q * static_cast<double>(n)));
  uint64_t below = 0;
  for (const auto& [bucket, attempts] : histogram) {
    below += attempts;
    if (below > rank) return LatencyBucketMiddle(bucket);
  }
  return 0;  // not reached: the last bucket takes rank n - 1
}

// Whether an attempt's answer counts as a success: a 2xx.
inline bool AttemptSucceeded(int status_code) { return status_code >= 200 && status_code < 300; }

// One row of attempt_stats_hour.
struct AttemptStatsKey {
  std::string endpoint_id;
  int64_t hour = 0;
  int latency_bucket = 0;
  auto operator<=>(const AttemptStatsKey&) const = default;
};
struct AttemptStatsCounts {
  int64_t attempts = 0;
  int64_t successes = 0;
};

// Attempts tallied by row, so that what a write or a backfill adds goes to each row once.
using AttemptStatsRows = std::map<AttemptStatsKey, AttemptStatsCounts>;

inline void CountAttempt(AttemptStatsRows& rows, const std::string& endpoint_id, int64_t at_ms,
                         int64_t latency_us, int status_code) {
  AttemptStatsCounts& counts =
      rows[AttemptStatsKey{endpoint_id, AttemptHour(at_ms), LatencyBucket(latency_us)}];
  ++counts.attempts;
  if (AttemptSucceeded(status_code)) ++counts.successes;
}

// The conflict clause of an INSERT into attempt_stats_hour: it adds the new row's counts to
// the stored row's. Additive, so that writers on several nodes may count into one row at once.
inline constexpr const char* kUpsertAttemptStatsTail =
    " ON CONFLICT(endpoint_id, hour, latency_bucket) DO UPDATE SET "
    "attempts = attempt_stats_hour.attempts + excluded.attempts, "
    "successes = attempt_stats_hour.successes + excluded.successes";

}  // namespace pushhook::store::internal
