#include "model/signature.h"

#include <algorithm>
#include <charconv>

#include "model/base64.h"
#include "model/digest.h"
#include "model/random.h"

namespace pushhook::model {

std::optional<std::string> DecodeSecret(std::string_view secret) {
  constexpr std::string_view kPrefix = "whsec_";
  if (secret.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  auto key = Base64Decode(secret.substr(kPrefix.size()));
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string NewSecret() { return "whsec_" + Base64Encode(RandomBytes(24)); }

std::string Sign(std::string_view key, std::string_view msg_id, int64_t timestamp,
                 std::string_view body) {
  char ts[24];
  const auto [ts_end, ec] = std::to_chars(ts, ts + sizeof(ts), timestamp);
  // One part at a time, so the signed string "{id}.{timestamp}.{body}" is never copied.
  return "v1," + Base64Encode(HmacSha256(
                     key, {msg_id, ".", std::string_view(ts, static_cast<size_t>(ts_end - ts)), ".",
                           body}));
}

std::string SignatureHeader(const std::vector<std::string>& keys, std::string_view msg_id,
                            int64_t timestamp, std::string_view body) {
  std::string header;
  for (const auto& key : keys) {
    if (!header.empty()) header.push_back(' ');
    header += Sign(key, msg_id, timestamp, body);
  }
  return header;
}

std::optional<int64_t> ParseWebhookTimestamp(std::string_view text) {
  int64_t value = 0;
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool VerifySignatureHeader(std::string_view header, std::string_view key, std::string_view msg_id,
                           int64_t timestamp, std::string_view body) {
  const std::string expected = Sign(key, msg_id, timestamp, body);
  bool match = false;
  while (!header.empty()) {
    const size_t space = header.find(' ');
    const std::string_view entry = header.substr(0, space);
    // Every entry is compared, so timing does not tell which one matched.
    match |= ConstantTimeEquals(entry, expected);
    if (space == std::string_view::npos) break;
    header.remove_prefix(space + 1);
  }
  return match;
}

}  // namespace pushhook::model
