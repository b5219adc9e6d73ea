// libFuzzer target for what `pushhook receive` stores of a verified webhook body (DESIGN sections
// 1 and 5): receive::SplitPayloads, which cuts a batch array into its elements as they were sent
// rather than re-serialising them.
//
// Invariants beyond "no crash": a body is accepted exactly when it is a JSON object or an array
// of objects; each stored payload is one line and parses to the same JSON value as the element
// (or object) it stands for, in order; a one-line body is stored in slices of itself, and a
// one-line object as its bytes, trimmed.
#include <boost/json/parse.hpp>
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
    Check(json::parse(payloads[i], again) == expected[i] && !again);
    // A body on one line is stored in slices of itself.
    Check(!OneLine(body) || body.find(payloads[i]) != std::string::npos);
  }
  if (value.is_object() && OneLine(body)) {
    const size_t begin = body.find_first_not_of(" \t");
    Check(payloads[0] == body.substr(begin, body.find_last_not_of(" \t") - begin + 1));
  }
  return 0;
}
