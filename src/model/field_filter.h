// An endpoint's filter on event fields (DESIGN section 3): for each field it names, the values
// it takes; an event passes when every named field's value is in that field's list. The fields
// are cid, reference_id and the five UTM fields. A plain value: copy freely, not thread safe.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/event.h"

namespace pushhook::model {

// The fields a filter may name, in the payload's order (DESIGN section 1).
enum class FilterField {
  kCid = 0,
  kReferenceId,
  kUtmCampaign,
  kUtmContent,
  kUtmMedium,
  kUtmSource,
  kUtmTerm
};
inline constexpr int kFilterFields = 7;
// At most this many values per field.
inline constexpr size_t kMaxFilterValues = 1000;

std::string_view FilterFieldName(FilterField field);
std::optional<FilterField> FilterFieldFromName(std::string_view name);
// The longest value the field can have in an event, in bytes (DESIGN section 1).
size_t FilterFieldLimit(FilterField field);
const std::string& FilterFieldValue(const Event& event, FilterField field);

class FieldFilter {
 public:
  // Sets the values `field` takes (duplicates dropped, the first kept in place); the caller
  // has checked them against the limits above.
  void Set(FilterField field, std::vector<std::string> values);
  // The values `field` takes as given, or nullptr when the filter does not name it.
  const std::vector<std::string>* values(FilterField field) const;
  bool names(FilterField field) const { return lists_[Index(field)].has_value(); }
  bool empty() const;

  // True when every named field's value is in its list (always, for an empty filter).
  bool Accepts(const Event& event) const;
  // The same, skipping `field` (which the caller has checked another way).
  bool AcceptsExcept(const Event& event, FilterField field) const;

  // {"cid":["a"],"utm_source":["x","y"]}: the fields in their order, values as given; {} for an
  // empty filter. What the stores keep and the API answers.
  std::string ToJson() const;

  bool operator==(const FieldFilter& other) const { return lists_ == other.lists_; }

 private:
  static size_t Index(FilterField field) { return static_cast<size_t>(field); }
  // Whether the list of field number `field` takes the event's value (true when unnamed).
  bool Takes(size_t field, const Event& event) const;

  std::array<std::optional<std::vector<std::string>>, kFilterFields> lists_;
  // Each list sorted, for lookups.
  std::array<std::vector<std::string>, kFilterFields> sorted_;
};

}  // namespace pushhook::model
