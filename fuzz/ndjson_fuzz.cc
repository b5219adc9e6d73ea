// libFuzzer target for NDJSON ingest bodies (ingest::ParseEvents, BodyKind::kNdjson): the line
// splitting, blank lines, "\r\n" ends, and the per-line parser reset. Beyond "no crash, no
// sanitizer report" it checks that NDJSON means what the contract says: an accepted body holds one
// event per non-blank line, each the same event that line gives as a JSON body, and the same
// events, in order, as the JSON array of those lines; an invalid_json error points inside the body
// at a line that boost::json refuses too.
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ingest/event_parser.h"

namespace {

namespace ingest = pushhook::ingest;
namespace model = pushhook::model;

constexpr int64_t kNowMs = 1764273600000;

void Check(bool condition) {
  if (!condition) std::abort();
}

bool IsBlank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

std::vector<std::string_view> NonBlankLines(std::string_view body) {
  std::vector<std::string_view> lines;
  for (size_t start = 0; start < body.size();) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view line = body.substr(start, end - start);
    if (!IsBlank(line)) lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

bool SameEvent(const model::Event& a, const model::Event& b) {
  return a.action == b.action && a.cookie_id == b.cookie_id && a.cid == b.cid &&
         a.notification_title == b.notification_title && a.reference_id == b.reference_id &&
         a.utm_campaign == b.utm_campaign && a.utm_content == b.utm_content &&
         a.utm_medium == b.utm_medium && a.utm_source == b.utm_source && a.utm_term == b.utm_term &&
         a.clicked_button == b.clicked_button && a.event_id == b.event_id &&
         a.occurred_at_ms == b.occurred_at_ms;
}

bool ReferenceAccepts(std::string_view text, const ingest::IngestLimits& limits) {
  boost::json::parse_options options;
  options.max_depth = limits.max_depth;
  boost::json::error_code ec;
  boost::json::parse(text, ec, {}, options);
  return !ec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  ingest::IngestLimits limits;
  limits.max_events = 20;
  const auto result = ingest::ParseEvents(body, ingest::BodyKind::kNdjson, kNowMs, limits);
  const std::vector<std::string_view> lines = NonBlankLines(body);

  if (const auto* batch = std::get_if<ingest::ParsedBatch>(&result)) {
    Check(batch->events.size() == lines.size());
    Check(lines.size() <= limits.max_events);
    std::string array = "[";
    for (size_t i = 0; i < lines.size(); ++i) {
      const auto single = ingest::ParseEvents(lines[i], ingest::BodyKind::kJson, kNowMs, limits);
      const auto* one = std::get_if<ingest::ParsedBatch>(&single);
      Check(one != nullptr && one->events.size() == 1);
      Check(SameEvent(one->events[0], batch->events[i]));
      if (i > 0) array += ',';
      array += lines[i];
    }
    array += ']';
    const auto as_array = ingest::ParseEvents(array, ingest::BodyKind::kJson, kNowMs, limits);
    const auto* all = std::get_if<ingest::ParsedBatch>(&as_array);
    Check(all != nullptr && all->events.size() == batch->events.size());
    for (size_t i = 0; i < all->events.size(); ++i) {
      Check(SameEvent(all->events[i], batch->events[i]));
    }
    return 0;
  }

  const auto& error = std::get<ingest::ParseError>(result);
  boost::json::error_code ec;
  boost::json::parse(error.ToJson(), ec);
  Check(!ec);
  Check(error.details.size() <= ingest::kMaxErrorDetails);
  if (error.code == ingest::kInvalidJson) {
    Check(error.offset.has_value() && *error.offset <= body.size());
    // The line that holds the offset is one the reference parser refuses as well.
    const size_t offset = *error.offset;
    const size_t begin = offset == 0 ? 0 : body.rfind('\n', offset - 1);
    const size_t line_begin = begin == std::string_view::npos || offset == 0 ? 0 : begin + 1;
    size_t line_end = body.find('\n', line_begin);
    if (line_end == std::string_view::npos) line_end = body.size();
    // An offset at the very end of a line (a truncated document) belongs to that line.
    const std::string_view line = body.substr(line_begin, line_end - line_begin);
    Check(!IsBlank(line) || offset == line_end);
    if (!IsBlank(line)) Check(!ReferenceAccepts(line, limits));
  } else if (error.code == ingest::kTooManyEvents) {
    Check(lines.size() > limits.max_events);
  } else {
    Check(error.code == ingest::kInvalidEvent);
    Check(lines.empty() || !error.details.empty());
    for (const auto& detail : error.details) Check(detail.index < lines.size());
  }
  return 0;
}
