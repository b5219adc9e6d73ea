// Serialises a Boost.JSON value the way people read JSON: numbers in their shortest round-trip
// decimal form (0.3, not Boost 1.81's 3E-1), compact, keys in insertion order. Pure function.
#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace pushhook::util {

std::string ToJsonText(const boost::json::value& value);

}  // namespace pushhook::util
