// Base64 (RFC 4648 section 4, padded): the encoding of whsec_ secrets, signatures and the
// secrets key. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

std::string Base64Encode(std::string_view bytes);
// nullopt unless `text` is padded base64 of the standard alphabet.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace pushhook::model
