#include "model/decimal.h"

#include <algorithm>
#include <cstdint>

namespace pushhook::model {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Moves `pos` past a run of digits; the number of digits.
size_t SkipDigits(std::string_view s, size_t& pos) {
  const size_t start = pos;
  while (pos < s.size() && IsDigit(s[pos])) ++pos;
  return pos - start;
}

}  // namespace

std::optional<std::string> DecimalString(std::string_view literal, size_t max_bytes) {
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  size_t pos = 0;
  const bool negative = pos < literal.size() && literal[pos] == '-';
  if (negative) ++pos;
  const size_t int_start = pos;
  const size_t int_digits = SkipDigits(literal, pos);
  if (int_digits == 0 || (int_digits > 1 && literal[int_start] == '0')) return std::nullopt;
  std::string digits(literal.substr(int_start, int_digits));
  if (pos < literal.size() && literal[pos] == '.') {
    const size_t frac_start = ++pos;
    if (SkipDigits(literal, pos) == 0) return std::nullopt;
    digits.append(literal.substr(frac_start, pos - frac_start));
  }
  // The decimal point sits after `point` of `digits` (negative: zeros come first).
  int64_t point = static_cast<int64_t>(int_digits);
  if (pos < literal.size() && (literal[pos] == 'e' || literal[pos] == 'E')) {
    ++pos;
    const bool exponent_negative = pos < literal.size() && literal[pos] == '-';
    if (pos < literal.size() && (literal[pos] == '-' || literal[pos] == '+')) ++pos;
    if (pos == literal.size() || !IsDigit(literal[pos])) return std::nullopt;
    // Saturates far beyond any length asked for, so a huge exponent neither overflows nor
    // changes the answer (too long, unless every digit is zero).
    constexpr int64_t kSaturated = int64_t{1} << 40;
    int64_t exponent = 0;
    for (; pos < literal.size() && IsDigit(literal[pos]); ++pos) {
      exponent = std::min(kSaturated, exponent * 10 + (literal[pos] - '0'));
    }
    point += exponent_negative ? -exponent : exponent;
  }
  if (pos != literal.size()) return std::nullopt;

  const size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) {  // every digit is zero
    if (max_bytes == 0) return std::nullopt;
    return "0";
  }
  const size_t last = digits.find_last_not_of('0');
  point -= static_cast<int64_t>(first);
  digits = digits.substr(first, last + 1 - first);
  const auto significant = static_cast<int64_t>(digits.size());

  // "0.00ddd", "ddd000" or "dd.d", each with its sign.
  const int64_t size = (negative ? 1 : 0) + (point <= 0             ? 2 - point + significant
                                             : point >= significant ? point
                                                                    : significant + 1);
  if (size > static_cast<int64_t>(max_bytes)) return std::nullopt;
  std::string out;
  out.reserve(static_cast<size_t>(size));
  if (negative) out += '-';
  if (point <= 0) {
    out.append("0.");
    out.append(static_cast<size_t>(-point), '0');
    out.append(digits);
  } else if (point >= significant) {
    out.append(digits);
    out.append(static_cast<size_t>(point - significant), '0');
  } else {
    out.append(digits, 0, static_cast<size_t>(point));
    out += '.';
    out.append(digits, static_cast<size_t>(point));
  }
  return out;
}

}  // namespace pushhook::model
