// Durations as configuration writes them: an integer and one unit, "250ms", "5s", "5m", "2h",
// "7d". Used by the retry schedule, timeouts and retention settings. Pure functions, safe from
// any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

// Parses "<digits><unit>" with unit one of ms, s, m, h, d (lowercase, no sign, no spaces).
// nullopt when empty, negative, without a unit, out of range of milliseconds, or anything else.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest form ParseDuration reads back to the same value, in the largest unit that divides
// it exactly: 7d, 2h, 90s, 250ms; zero is "0s". Negative values get a leading '-' (display only).
std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace pushhook::model
