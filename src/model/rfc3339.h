// Timestamps as RFC 3339 text, the form of `occurred_at` in payloads and API answers. Pure
// functions on Unix milliseconds (proleptic Gregorian calendar, UTC); safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

// Formats Unix milliseconds as RFC 3339 UTC with milliseconds: 2026-11-27T20:00:00.000Z.
std::string FormatRfc3339Ms(int64_t unix_ms);

// Parses RFC 3339 (with offset or Z, optional fraction) into Unix milliseconds.
bool ParseRfc3339(std::string_view text, int64_t* unix_ms);

// The Unix milliseconds that RFC 3339 text can write: the years 0000 to 9999.
inline constexpr int64_t kMinRfc3339Ms = -62'167'219'200'000;
inline constexpr int64_t kMaxRfc3339Ms = 253'402'300'799'999;

// A time an API takes: RFC 3339 text, or decimal Unix milliseconds; either way from kMinRfc3339Ms
// to kMaxRfc3339Ms (a wider number would overflow what is computed from it, and an offset can
// carry the text's year past 9999, which no answer could write back).
std::optional<int64_t> ParseTimeParam(std::string_view text);

// What an API answers for a time it cannot take: "<what> must be an RFC 3339 time or Unix
// milliseconds, years 0000 to 9999, not '<given>'", `given` quoted as model::QuotedText does.
std::string TimeParamError(std::string_view what, std::string_view given);

}  // namespace pushhook::model
