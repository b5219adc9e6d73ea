// Base64 (RFC 4648 section 4, padded): the encoding of whsec_ and bsec_ secrets, signatures and
// the secrets key; and base64url without padding (section 5), the encoding of beacon tokens.
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

std::string Base64Encode(std::string_view bytes);
// nullopt unless `text` is padded base64 of the standard alphabet.
std::optional<std::string> Base64Decode(std::string_view text);

// Base64url without padding, as in JWTs and beacon tokens.
std::string Base64UrlEncode(std::string_view bytes);
// nullopt unless `text` is unpadded base64url.
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace pushhook::model
