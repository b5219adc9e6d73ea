// Hashing for signatures and stored tokens: HMAC-SHA256, SHA-256 as hex, and comparison in
// constant time. Pure functions over OpenSSL; safe from any thread (HMAC keeps one digest
// context per thread).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace pushhook::model {

// The 32-byte HMAC-SHA256 of the concatenation of `parts`, keyed with `key`.
std::string HmacSha256(std::string_view key, std::initializer_list<std::string_view> parts);

// Constant-time equality of two byte strings (length is not secret).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Lowercase hex SHA-256 of `data`; how tokens are stored.
std::string Sha256Hex(std::string_view data);

}  // namespace pushhook::model
