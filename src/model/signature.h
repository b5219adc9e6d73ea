// Standard Webhooks signatures (DESIGN section 4): "v1," + base64(HMAC-SHA256(key,
// "{id}.{timestamp}.{body}")), keyed with the base64-decoded part of a "whsec_" secret.
// Pure functions (model/digest.h does the hashing); safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pushhook::model {

// The raw HMAC key of a "whsec_<base64>" secret, or nullopt if it is not one.
std::optional<std::string> DecodeSecret(std::string_view secret);

// A new secret: "whsec_" + base64 of 24 random bytes.
std::string NewSecret();

// "v1,<base64 signature>" for one key.
std::string Sign(std::string_view key, std::string_view msg_id, int64_t timestamp,
                 std::string_view body);

// The webhook-signature header value: one "v1,..." per key, space separated.
std::string SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                            int64_t timestamp, std::string_view body);

// True if any "v1,..." entry of `header` matches `key`; compared in constant time.
bool VerifySignatureHeader(std::string_view header, std::string_view key, std::string_view msg_id,
                           int64_t timestamp, std::string_view body);

// The webhook-timestamp header's Unix seconds: decimal digits only, no sign or spaces.
std::optional<int64_t> ParseWebhookTimestamp(std::string_view text);

}  // namespace pushhook::model
