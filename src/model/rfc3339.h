// Timestamps as RFC 3339 text, the form of `occurred_at` in payloads and API answers. Pure
// functions on Unix milliseconds (proleptic Gregorian calendar, UTC); safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pushhook::model {

// Formats Unix milliseconds as RFC 3339 UTC with milliseconds: 2026-11-27T20:00:00.000Z.
std::string FormatRfc3339Ms(int64_t unix_ms);

// Parses RFC 3339 (with offset or Z, optional fraction) into Unix milliseconds.
bool ParseRfc3339(std::string_view text, int64_t* unix_ms);

}  // namespace pushhook::model
