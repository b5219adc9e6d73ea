#include "model/duration.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace pushhook::model {
namespace {

struct Unit {
  std::string_view name;
  int64_t ms;
};

// Largest first: FormatDuration picks the first unit that divides exactly.
constexpr std::array<Unit, 5> kUnits = {{
    {"d", int64_t{24} * 60 * 60 * 1000},
    {"h", int64_t{60} * 60 * 1000},
    {"m", int64_t{60} * 1000},
    {"s", 1000},
    {"ms", 1},
}};

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc() || end != text.data() + digits) return std::nullopt;
  const std::string_view unit = text.substr(digits);
  for (const Unit& u : kUnits) {
    if (unit != u.name) continue;
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / u.ms)) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<int64_t>(value) * u.ms);
  }
  return std::nullopt;
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  const int64_t ms = duration.count();
  if (ms == 0) return "0s";
  // Work on the magnitude as unsigned so that the most negative value does not overflow.
  const uint64_t magnitude = ms < 0 ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
  std::string out = ms < 0 ? "-" : "";
  for (const Unit& u : kUnits) {
    const auto unit_ms = static_cast<uint64_t>(u.ms);
    if (magnitude % unit_ms != 0) continue;
    out += std::to_string(magnitude / unit_ms);
    out += u.name;
    break;
  }
  return out;
}

}  // namespace pushhook::model
