#include "util/json_text.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "model/decimal.h"
#include "model/json_string.h"

namespace pushhook::util {
namespace {

void Append(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::int64:
      out += std::to_string(v.get_int64());
      return;
    case boost::json::kind::uint64:
      out += std::to_string(v.get_uint64());
      return;
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no infinities
        return;
      }
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
      out.append(buf, end);
      return;
    }
    case boost::json::kind::string:
      model::AppendJsonString(out, v.get_string());
      return;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        Append(out, item);
      }
      out.push_back(']');
      return;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        model::AppendJsonString(out, key);
        out.push_back(':');
        Append(out, item);
      }
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

std::string ToJsonText(const boost::json::value& value) {
  std::string out;
  Append(out, value);
  return out;
}

std::optional<std::string> NumberAsDecimal(const boost::json::value& value) {
  // The longest decimal string of a double, -5e-324's "-0." and 324 digits: the caller checks
  // its field's own limit.
  constexpr size_t kLongestDouble = 327;
  if (value.is_int64()) return std::to_string(value.get_int64());
  if (value.is_uint64()) return std::to_string(value.get_uint64());
  if (value.is_double()) return model::DecimalString(value.get_double(), kLongestDouble);
  return std::nullopt;
}

bool MayBeRounded(const boost::json::value& value) {
  if (!value.is_double()) return false;
  const double d = value.get_double();
  constexpr double kPastUint64 = 18446744073709551616.0;  // 2^64
  if (!std::isfinite(d) || std::fabs(d) >= kPastUint64) return true;
  // The digits of the shortest text that reads back as `d`, sign, point and exponent aside.
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof(text), d, std::chars_format::scientific);
  if (ec != std::errc()) return true;
  const std::string_view mantissa(text, static_cast<size_t>(std::find(text, end, 'e') - text));
  const auto digits =
      std::count_if(mantissa.begin(), mantissa.end(), [](char c) { return c >= '0' && c <= '9'; });
  constexpr int kDigitsAlwaysExact = 15;  // DBL_DIG
  return digits > kDigitsAlwaysExact;
}

}  // namespace pushhook::util
