// libFuzzer target for what the admin API reads from a request body before it acts on it
// (DESIGN section 3): a field named twice (util::RepeatedKey), an endpoint's filter
// (util::FieldFilterFromJson), and numbers taken for cid and reference_id (util::IntegerText;
// model::DecimalString, which ingest uses on a number's literal, on the raw text).
//
// Invariants beyond "no crash": the document as read has no repeated key, and its first key named
// again is found by its name; a filter read is within its limits and reads back the same from its
// own JSON; a decimal string is canonical (read again, it is itself) and names the same double as
// the literal it came from; an integer's text is canonical too.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "model/decimal.h"
#include "util/field_filter_json.h"
#include "util/json_text.h"

namespace {

namespace json = boost::json;
namespace model = pushhook::model;
namespace util = pushhook::util;

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckDecimal(const std::string& decimal, double value) {
  Check(model::DecimalString(decimal, decimal.size()) == decimal);
  Check(std::strtod(decimal.c_str(), nullptr) == value);
}

// Every number of the document, as the admin API takes one for a campaign field: an integer the
// reader holds exactly as its digits, canonical as ingest makes them; any other number refused.
void CheckNumbers(const json::value& v) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.get_object()) CheckNumbers(child);
  } else if (v.is_array()) {
    for (const json::value& child : v.get_array()) CheckNumbers(child);
  } else if (auto integer = util::IntegerText(v)) {
    Check(v.is_int64() || v.is_uint64());
    Check(model::DecimalString(*integer, integer->size()) == *integer);
  } else {
    Check(!v.is_int64() && !v.is_uint64());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  // The body as ingest would read a number literal: canonical, and the same double.
  if (auto decimal = model::DecimalString(text, 4096)) {
    CheckDecimal(*decimal, std::strtod(std::string(text).c_str(), nullptr));
  }

  json::error_code ec;
  const json::value doc = json::parse(text, ec);
  const std::optional<std::string> repeated = util::RepeatedKey(text);
  if (ec) {
    Check(!repeated);
    return 0;
  }
  // The document as the reader kept it has no repeat; the same with its first key named again at
  // the end has that one.
  // (Not when the document holds an infinity, which Boost.JSON writes as no JSON reads.)
  const std::string plain = json::serialize(doc);
  Check(!util::RepeatedKey(plain));
  json::error_code plain_ec;
  json::parse(plain, plain_ec);
  if (!plain_ec && doc.is_object() && !doc.get_object().empty()) {
    const std::string key(doc.get_object().begin()->key());
    std::string twice = plain;
    twice.pop_back();  // the closing brace
    twice += "," + json::serialize(json::value(key)) + ":null}";
    Check(util::RepeatedKey(twice) == key);
  }
  CheckNumbers(doc);

  auto filter = util::FieldFilterFromJson(
      doc.is_object() && doc.get_object().contains("filter") ? doc.get_object().at("filter") : doc);
  if (filter.ok()) {
    auto again = util::FieldFilterFromText(filter->ToJson());
    Check(again.ok() && *again == *filter);
  } else {
    Check(!filter.status().message().empty());
  }
  return 0;
}
