// A JSON number as the text of a campaign field: DESIGN section 1 takes a number for `cid` and
// `reference_id` and stores its decimal string. The conversion works on the literal's digits, never
// through a double, so 12345678901234567890 and 0.1 stay exactly what the sender wrote. Pure
// functions, safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

// The decimal string of the JSON number `literal` (RFC 8259 grammar): plain positional notation,
// no exponent, no leading zeros, no trailing zeros after the point, no point without a fraction,
// and no sign on zero. 42 -> "42", -7 -> "-7", 1.50 -> "1.5", 1e3 -> "1000", 25e-3 -> "0.025",
// -0.0 -> "0". nullopt when `literal` is not a JSON number or its decimal string would be longer
// than `max_bytes` (checked before anything that long is built: 1e999999999 costs nothing).
std::optional<std::string> DecimalString(std::string_view literal, size_t max_bytes);

}  // namespace pushhook::model
