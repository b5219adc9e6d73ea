#include "util/field_filter_json.h"

#include <boost/json/parse.hpp>
#include <string>
#include <vector>

#include "model/utf8.h"
#include "util/json_text.h"

namespace pushhook::util {
namespace json = boost::json;
namespace {

// `from_request`: the rules added since filters were first stored apply to what a request sets,
// not to what a store wrote before them (a filter once saved keeps filtering as it did).
model::StatusOr<model::FieldFilter> ReadFilter(const json::value& value, bool from_request) {
  model::FieldFilter filter;
  if (value.is_null()) return filter;
  if (!value.is_object()) {
    return model::InvalidArgument(
        "field 'filter' must be an object of field names to lists of values, or null");
  }
  for (const auto& [key, list] : value.as_object()) {
    const std::optional<model::FilterField> field = model::FilterFieldFromName(key);
    const std::string name = "filter." + std::string(key);
    if (!field) {
      return model::InvalidArgument(
          "filter names an unknown field '" + std::string(key) +
          "'; it may name cid, reference_id, utm_campaign, utm_content, utm_medium, utm_source "
          "and utm_term");
    }
    if (!list.is_array() || list.as_array().empty()) {
      return model::InvalidArgument(name + " must be a non-empty array of strings");
    }
    if (list.as_array().size() > model::kMaxFilterValues) {
      return model::InvalidArgument(name + " has " + std::to_string(list.as_array().size()) +
                                    " values; at most " + std::to_string(model::kMaxFilterValues));
    }
    const bool numbers_too =
        *field == model::FilterField::kCid || *field == model::FilterField::kReferenceId;
    const size_t limit = model::FilterFieldLimit(*field);
    std::vector<std::string> values;
    values.reserve(list.as_array().size());
    for (const json::value& item : list.as_array()) {
      const std::string where = name + "[" + std::to_string(values.size()) + "]";
      if (item.is_string()) {
        values.emplace_back(item.as_string());
      } else if (auto integer = numbers_too ? IntegerText(item) : std::nullopt) {
        values.push_back(std::move(*integer));
      } else if (numbers_too && item.is_double()) {
        return model::InvalidArgument(where + " " + std::string(kNotAnExactInteger));
      } else {
        // As ingest takes the field: a number only where an event may carry one.
        return model::InvalidArgument(
            where + (numbers_too ? " must be a string or a number" : " must be a string"));
      }
      if (values.back().size() > limit) {
        return model::InvalidArgument(where + " is " + std::to_string(values.back().size()) +
                                      " bytes; at most " + std::to_string(limit));
      }
      if (values.back().empty() && *field == model::FilterField::kCid) {
        return model::InvalidArgument(where + " is empty; every event has a cid");
      }
      if (!from_request) continue;
      // As ingest refuses them: a value no event can carry would never match.
      if (numbers_too && model::HasControlCharacter(values.back())) {
        return model::InvalidArgument(where + " must not contain control characters");
      }
      if (values.back().find('\0') != std::string::npos) {
        return model::InvalidArgument(where + " must not contain NUL characters");
      }
    }
    filter.Set(*field, std::move(values));
  }
  return filter;
}

}  // namespace

model::StatusOr<model::FieldFilter> FieldFilterFromJson(const json::value& value) {
  return ReadFilter(value, /*from_request=*/true);
}

model::StatusOr<model::FieldFilter> FieldFilterFromText(std::string_view text) {
  if (text.empty()) return model::FieldFilter();
  json::error_code ec;
  const json::value value = json::parse(text, ec);
  if (ec) return model::InvalidArgument("filter is not JSON: " + ec.message());
  return ReadFilter(value, /*from_request=*/false);
}

}  // namespace pushhook::util
