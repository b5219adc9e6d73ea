// Serialises a Boost.JSON value the way people read JSON: numbers in their shortest round-trip
// decimal form (0.3, not Boost 1.81's 3E-1), compact, keys in insertion order. Pure function.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::util {

std::string ToJsonText(const boost::json::value& value);

// A JSON number as the decimal string DESIGN section 1 makes of one given for `cid` or
// `reference_id` (model::DecimalString): 42 -> "42", -7 -> "-7", 1.5 -> "1.5", 1e3 -> "1000".
// nullopt for a value that is not a number, or for an infinity (Boost.JSON reads 1e999 as one),
// which MayBeRounded says too.
std::optional<std::string> NumberAsDecimal(const boost::json::value& value);

// Whether the JSON reader may have rounded the literal `value` was read from: a double of more
// than 15 significant digits, or one past the 64-bit integers (99999999999999999999 is read as
// 1e20). Ingest reads the literal itself and keeps every digit; where only the value is known,
// such a number is refused rather than silently made into another id.
bool MayBeRounded(const boost::json::value& value);

// The first key that an object of the JSON document `text` holds twice, as a path from the top
// ("url", "batch.max_events"); nullopt when there is none, or when `text` is not JSON. A JSON
// reader keeps one of the two silently (Boost.JSON the last), which would make
// {"url":"https://a","url":"https://b"} register b without a word.
std::optional<std::string> RepeatedKey(std::string_view text);

}  // namespace pushhook::util
