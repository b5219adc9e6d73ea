// Serialises a Boost.JSON value the way people read JSON: numbers in their shortest round-trip
// decimal form (0.3, not Boost 1.81's 3E-1), compact, keys in insertion order. Pure function.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>

namespace pushhook::util {

std::string ToJsonText(const boost::json::value& value);

// A JSON number as the decimal string DESIGN section 1 makes of one given for `cid` or
// `reference_id` (model::DecimalString): 42 -> "42", -7 -> "-7", 1.5 -> "1.5", 1e3 -> "1000".
// nullopt for a value that is not a number. A number the JSON parser could not hold exactly
// (over 15 significant digits and outside 64-bit integers) is the double it became: ingest reads
// its literal instead, so such an id is better sent as a string.
std::optional<std::string> NumberAsDecimal(const boost::json::value& value);

}  // namespace pushhook::util
