#include "model/field_filter.h"

#include <algorithm>
#include <unordered_set>

#include "model/json_string.h"

namespace pushhook::model {
namespace {

constexpr std::array<std::string_view, kFilterFields> kNames = {
    "cid", "reference_id", "utm_campaign", "utm_content", "utm_medium", "utm_source", "utm_term"};

}  // namespace

std::string_view FilterFieldName(FilterField field) { return kNames[static_cast<size_t>(field)]; }

std::optional<FilterField> FilterFieldFromName(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<FilterField>(i);
  }
  return std::nullopt;
}

size_t FilterFieldLimit(FilterField field) {
  switch (field) {
    case FilterField::kCid:
      return kMaxCid;
    case FilterField::kReferenceId:
      return kMaxReferenceId;
    default:
      return kMaxUtm;
  }
}

const std::string& FilterFieldValue(const Event& event, FilterField field) {
  switch (field) {
    case FilterField::kCid:
      return event.cid;
    case FilterField::kReferenceId:
      return event.reference_id;
    case FilterField::kUtmCampaign:
      return event.utm_campaign;
    case FilterField::kUtmContent:
      return event.utm_content;
    case FilterField::kUtmMedium:
      return event.utm_medium;
    case FilterField::kUtmSource:
      return event.utm_source;
    case FilterField::kUtmTerm:
      break;
  }
  return event.utm_term;
}

void FieldFilter::Set(FilterField field, std::vector<std::string> values) {
  std::vector<std::string> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  if (sorted.size() < values.size()) {
    std::unordered_set<std::string> seen;
    std::erase_if(values, [&](const std::string& v) { return !seen.insert(v).second; });
  }
  lists_[Index(field)] = std::move(values);
  sorted_[Index(field)] = std::move(sorted);
}

const std::vector<std::string>* FieldFilter::values(FilterField field) const {
  const auto& list = lists_[Index(field)];
  return list ? &*list : nullptr;
}

bool FieldFilter::empty() const {
  return std::none_of(lists_.begin(), lists_.end(), [](const auto& l) { return l.has_value(); });
}

bool FieldFilter::Takes(size_t field, const Event& event) const {
  if (!lists_[field]) return true;
  const std::vector<std::string>& sorted = sorted_[field];
  return std::binary_search(sorted.begin(), sorted.end(),
                            FilterFieldValue(event, static_cast<FilterField>(field)));
}

bool FieldFilter::Accepts(const Event& event) const {
  for (size_t f = 0; f < lists_.size(); ++f) {
    if (!Takes(f, event)) return false;
  }
  return true;
}

bool FieldFilter::AcceptsExcept(const Event& event, FilterField skipped) const {
  for (size_t f = 0; f < lists_.size(); ++f) {
    if (f != Index(skipped) && !Takes(f, event)) return false;
  }
  return true;
}

std::string FieldFilter::ToJson() const {
  std::string out = "{";
  for (size_t f = 0; f < lists_.size(); ++f) {
    if (!lists_[f]) continue;
    if (out.size() > 1) out += ',';
    AppendJsonString(out, kNames[f]);
    out += ':';
    AppendJsonStringArray(out, *lists_[f]);
  }
  return out + "}";
}

}  // namespace pushhook::model
