// An endpoint's field filter (model::FieldFilter) read from JSON: what the admin API checks a
// request against, with the message a user reads for each rule, and how a store reads back the
// text FieldFilter::ToJson wrote. Pure functions.
#pragma once

#include <boost/json/value.hpp>
#include <string_view>

#include "model/field_filter.h"
#include "model/status.h"

namespace pushhook::util {

// `value` as a filter: null or {} is no filter; an object maps field names to non-empty lists of
// at most model::kMaxFilterValues strings, each within its field's size limit (integers are
// taken for cid and reference_id as their digits, as on ingest: util::IntegerText), and none
// that no event can carry (a control character in cid or reference_id, NUL anywhere).
// InvalidArgument names the first rule broken.
model::StatusOr<model::FieldFilter> FieldFilterFromJson(const boost::json::value& value);

// The same from the text a store wrote; "" (a row from before filters) is no filter. Values a
// request may no longer set are read as written, so that a filter saved before a rule was added
// keeps filtering rather than fall back to "every event".
model::StatusOr<model::FieldFilter> FieldFilterFromText(std::string_view text);

}  // namespace pushhook::util
