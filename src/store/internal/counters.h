// The counters every statistics table keeps (model::Counters) as columns, once for both
// backends: their names in one order, a row's values in that order, reading them back, and the
// SQL that repeats a phrase for each of them (the sums of a query, the additions of an upsert).
// A new counter is then a change here and in each schema, not in every statement. Not for use
// outside src/store.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/aggregates.h"

namespace pushhook::store::internal {

inline constexpr std::array<std::string_view, 6> kCounterColumns = {
    "views", "clicks", "b0", "b1", "b2", "dismissals"};
inline constexpr int kCounterColumnCount = static_cast<int>(kCounterColumns.size());

// `n`'s values in the order of kCounterColumns.
inline std::array<int64_t, kCounterColumns.size()> CounterValues(const model::Counters& n) {
  return {
      n.views,     n.clicks, n.clicks_by_button[0], n.clicks_by_button[1], n.clicks_by_button[2],
      n.dismissals};
}

// Counters from kCounterColumns' order starting at column `first`. `Row` is anything with
// Int(i) for column i (rows.h).
template <typename Row>
model::Counters ReadCounters(const Row& row, int first) {
  model::Counters n;
  n.views = row.Int(first);
  n.clicks = row.Int(first + 1);
  n.clicks_by_button = {row.Int(first + 2), row.Int(first + 3), row.Int(first + 4)};
  n.dismissals = row.Int(first + 5);
  return n;
}

// `phrase` once per counter, with each "{}" in it replaced by the counter's column, joined by
// ", ": EachCounter("sum({})") is "sum(views), sum(clicks), …, sum(dismissals)".
inline std::string EachCounter(std::string_view phrase) {
  std::string out;
  for (std::string_view column : kCounterColumns) {
    if (!out.empty()) out += ", ";
    for (size_t at = 0;;) {
      const size_t mark = phrase.find("{}", at);
      out.append(phrase.substr(at, mark - at));
      if (mark == std::string_view::npos) break;
      out.append(column);
      at = mark + 2;
    }
  }
  return out;
}

}  // namespace pushhook::store::internal
