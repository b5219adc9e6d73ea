// libFuzzer target for what `pushhook receive` stores of a verified webhook body (DESIGN sections
// 1 and 5): receive::SplitPayloads, which cuts a batch array into its elements as they were sent
// rather than re-serialising them.
//
// Invariants beyond "no crash": a body is accepted exactly when it is a JSON object or an array
// of objects; each stored payload is one line and parses to the same JSON value as the element
// (or object) it stands for, in order (numbers within Boost.JSON's rounding, SameJson); a one-line
// body is stored in slices of itself, and a one-line object as its bytes, trimmed.
#include <algorithm>
#include <boost/json/parse.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "receive/payloads.h"

namespace {

namespace json = boost::json;

void Check(bool condition) {
  if (!condition) std::abort();
}

bool OneLine(std::string_view s) {
  return s.find('\n') == std::string_view::npos && s.find('\r') == std::string_view::npos;
}

// The same JSON value, numbers within a few units in the last place: Boost.JSON 1.81 does not
// round every long mantissa correctly, nor alike in every place of a document
// (51.08000000000010719314736 read in an array and alone differ in the last bit), while the
// payload holds the element's digits exactly as they were sent. It reads 0e400 as NaN (zero times
// an overflowed power of ten), which equals nothing, itself included.
bool SameJson(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == b.kind() && !a.is_double()) return a == b;
    const double x = a.to_number<double>();
    const double y = b.to_number<double>();
    if (std::isnan(x) || std::isnan(y)) return std::isnan(x) && std::isnan(y);
    return x == y || std::fabs(x - y) <= 1e-14 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const json::array& x = a.get_array();
    const json::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!SameJson(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const json::object& x = a.get_object();
    const json::object& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& [key, value] : x) {
      const json::value* other = y.if_contains(key);
      if (other == nullptr || !SameJson(value, *other)) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> payloads;
  const auto refused = pushhook::receive::SplitPayloads(std::string(body), &payloads);

  json::error_code ec;
  const json::value value = json::parse(body, ec);
  bool acceptable = !ec && (value.is_object() || value.is_array());
  if (acceptable && value.is_array()) {
    for (const json::value& element : value.get_array()) acceptable &= element.is_object();
  }
  Check(refused.has_value() != acceptable);
  if (refused) {
    Check(refused->status == 400 && payloads.empty());
    return 0;
  }
  const std::vector<json::value> expected =
      value.is_object()
          ? std::vector<json::value>{value}
          : std::vector<json::value>(value.get_array().begin(), value.get_array().end());
  Check(payloads.size() == expected.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    Check(OneLine(payloads[i]));
    json::error_code again;
    Check(SameJson(json::parse(payloads[i], again), expected[i]) && !again);
    // A body on one line is stored in slices of itself.
    Check(!OneLine(body) || body.find(payloads[i]) != std::string::npos);
  }
  if (value.is_object() && OneLine(body)) {
    const size_t begin = body.find_first_not_of(" \t");
    Check(payloads[0] == body.substr(begin, body.find_last_not_of(" \t") - begin + 1));
  }
  return 0;
}
