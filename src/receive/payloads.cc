#include "receive/payloads.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>

#include "util/json_text.h"

namespace pushhook::receive {
namespace {

namespace json = boost::json;

std::string_view TrimJsonWhitespace(std::string_view s) {
  constexpr std::string_view kWhitespace = " \t\r\n";
  const size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kWhitespace) - begin + 1);
}

std::string_view KindName(json::kind kind) {
  switch (kind) {
    case json::kind::object:
      return "an object";
    case json::kind::array:
      return "an array";
    case json::kind::string:
      return "a string";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::null:
      return "null";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
  }
  return "a value";
}

// The top-level elements of a JSON array, as the bytes they were sent as. `array` is valid JSON
// (the parser has read it), so only strings and nesting need following.
std::vector<std::string_view> ArrayElements(std::string_view array) {
  std::vector<std::string_view> elements;
  const size_t open = array.find('[');
  size_t start = open + 1;
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < array.size(); ++i) {
    const char c = array[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote included
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (depth > 0 && (c == '}' || c == ']')) {
      --depth;
    } else if (depth == 0 && (c == ',' || c == ']')) {
      const std::string_view element = TrimJsonWhitespace(array.substr(start, i - start));
      if (!element.empty()) elements.push_back(element);
      start = i + 1;
      if (c == ']') break;
    }
  }
  return elements;
}

bool SpansLines(std::string_view text) {
  // Two scans, not find_first_of: that calls memchr over the set once per byte of the text.
  return text.find('\n') != std::string_view::npos || text.find('\r') != std::string_view::npos;
}

// `text` on one line, for NDJSON: each line break goes, with the indentation after it. Valid
// JSON holds no raw line break inside a string, so every one is whitespace between tokens, and
// what is left means the same (Boost.JSON's re-serialising would not keep 1.50 or "\u00e9").
std::string OnOneLine(std::string_view text) {
  std::string line;
  line.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') {
      line.push_back(text[i]);
      continue;
    }
    while (i + 1 < text.size() && TrimJsonWhitespace(text.substr(i + 1, 1)).empty()) ++i;
  }
  return line;
}

}  // namespace

std::optional<http::Response> SplitPayloads(std::string&& body, std::vector<std::string>* out) {
  unsigned char scratch[4096];
  json::monotonic_resource resource(scratch, sizeof(scratch));
  json::parser parser(&resource);
  parser.reset(&resource);
  json::error_code ec;
  const size_t consumed = parser.write(body.data(), body.size(), ec);
  if (ec) {
    return http::Response::Error(
        400, "invalid_json",
        "body is not valid JSON at byte " + std::to_string(consumed) + ": " +
            util::DescribeJsonError(ec, body, consumed, json::parse_options().max_depth));
  }
  const json::value value = parser.release();
  if (value.is_object()) {
    const std::string_view trimmed = TrimJsonWhitespace(body);
    if (SpansLines(trimmed)) {
      out->push_back(OnOneLine(trimmed));
    } else if (trimmed.size() == body.size()) {
      out->push_back(std::move(body));
    } else {
      out->emplace_back(trimmed);
    }
    return std::nullopt;
  }
  if (!value.is_array()) {
    return http::Response::Error(400, "invalid_payload",
                                 "body must be a JSON object or an array of objects, not " +
                                     std::string(KindName(value.kind())));
  }
  const json::array& batch = value.get_array();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].is_object()) {
      return http::Response::Error(400, "invalid_payload",
                                   "batch element " + std::to_string(i) + " is " +
                                       std::string(KindName(batch[i].kind())) +
                                       ", not a JSON object");
    }
  }
  const std::vector<std::string_view> elements = ArrayElements(body);
  if (elements.size() != batch.size()) {
    // Cannot happen for a body the parser read (fuzz/receive_body_fuzz.cc checks it).
    return http::Response::Error(500, "internal",
                                 "the batch's elements could not be told apart; please report it");
  }
  out->reserve(elements.size());
  for (const std::string_view element : elements) {
    if (SpansLines(element)) {
      out->push_back(OnOneLine(element));
    } else {
      out->emplace_back(element);
    }
  }
  return std::nullopt;
}

}  // namespace pushhook::receive
