// Serialises a Boost.JSON value the way people read JSON: numbers in their shortest round-trip
// decimal form (0.3, not Boost 1.81's 3E-1), compact, keys in insertion order. Pure function.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::util {

std::string ToJsonText(const boost::json::value& value);

// The decimal digits of an integer the JSON reader holds exactly (an int64 or a uint64): 42 ->
// "42", -7 -> "-7". nullopt for anything else, a double included: 1.5, 1e3 or an integer past 64
// bits reach the caller as a double, which may already be rounded from the literal
// (1.0000000000000001 is read as 1). Ingest converts the literal itself (model::DecimalString);
// where only the value is known, such a number is refused rather than taken for another id.
std::optional<std::string> IntegerText(const boost::json::value& value);

// What the admin API says of such a number given for cid or reference_id, after the field's name.
inline constexpr std::string_view kNotAnExactInteger =
    "is a number with a fraction, an exponent or more than 64 bits, which may have been rounded "
    "when read: send it as the string ingest stores (1.5 as \"1.5\")";

// What a JSON reader's error `ec`, at byte `offset` of `text`, means to whoever sent the text:
// "unexpected end of input", "invalid UTF-8", a byte order mark or an unpaired UTF-16 surrogate
// escape named as such, or Boost.JSON's own words ("syntax error"). `max_depth` is the nesting
// limit that a too_deep error names.
std::string DescribeJsonError(boost::json::error_code ec, std::string_view text, size_t offset,
                              size_t max_depth);

// The first key that an object of the JSON document `text` holds twice, as a path from the top
// ("url", "batch.max_events"); nullopt when there is none, or when `text` is not JSON. A JSON
// reader keeps one of the two silently (Boost.JSON the last), which would make
// {"url":"https://a","url":"https://b"} register b without a word.
std::optional<std::string> RepeatedKey(std::string_view text);

}  // namespace pushhook::util
