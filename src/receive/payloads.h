// What `pushhook receive` stores of a verified webhook body (DESIGN sections 1 and 5): one
// payload for an object, one per element for a batch array, each as its bytes were signed and
// sent.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/http_types.h"

namespace pushhook::receive {

// Splits `body` into the payloads to store: the body itself for one object, or each element of
// an array, cut from the body as sent (whitespace around them left out). A payload that spans
// several lines, which an NDJSON line cannot hold, loses its line breaks and the indentation
// after them, nothing else. Answers the 400 to send when the body is not a JSON object or an
// array of objects (and `out` is then left empty).
std::optional<http::Response> SplitPayloads(std::string&& body, std::vector<std::string>* out);

}  // namespace pushhook::receive
