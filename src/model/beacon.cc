#include "model/beacon.h"

#include <charconv>

#include "model/base64.h"
#include "model/digest.h"
#include "model/random.h"

namespace pushhook::model {
namespace {

constexpr std::string_view kSecretPrefix = "bsec_";
constexpr std::string_view kVersion = "v1";

std::string Signature(std::string_view key, std::string_view expires,
                      const BeaconSubject& subject) {
  const std::string site = Base64UrlEncode(subject.site_id);
  const std::string cid = Base64UrlEncode(subject.cid);
  const std::string reference = Base64UrlEncode(subject.reference_id);
  const std::string cookie = Base64UrlEncode(subject.cookie_id);
  return Base64UrlEncode(
      HmacSha256(key, {kVersion, ".", expires, ".", site, ".", cid, ".", reference, ".", cookie}));
}

}  // namespace

std::string NewBeaconSecret() { return std::string(kSecretPrefix) + Base64Encode(RandomBytes(32)); }

std::optional<std::string> DecodeBeaconSecret(std::string_view secret) {
  if (!secret.starts_with(kSecretPrefix)) return std::nullopt;
  auto key = Base64Decode(secret.substr(kSecretPrefix.size()));
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string MakeBeaconToken(std::string_view key, const BeaconSubject& subject,
                            int64_t expires_unix_s) {
  const std::string expires = std::to_string(expires_unix_s);
  return std::string(kVersion) + "." + expires + "." + Signature(key, expires, subject);
}

BeaconVerdict CheckBeaconToken(std::string_view token, std::span<const std::string> keys,
                               const BeaconSubject& subject, int64_t now_unix_s) {
  if (token.size() > kMaxBeaconBytes || !token.starts_with("v1.")) return BeaconVerdict::kInvalid;
  token.remove_prefix(3);
  const size_t dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 12) return BeaconVerdict::kInvalid;
  const std::string_view expires_text = token.substr(0, dot);
  const std::string_view signature = token.substr(dot + 1);
  int64_t expires = 0;
  const auto [end, ec] =
      std::from_chars(expires_text.data(), expires_text.data() + expires_text.size(), expires);
  if (ec != std::errc() || end != expires_text.data() + expires_text.size() || expires < 0 ||
      expires_text.front() == '+') {
    return BeaconVerdict::kInvalid;
  }
  bool signed_by_a_key = false;
  for (const std::string& key : keys) {
    // Every key is tried, so timing does not tell which one matched.
    signed_by_a_key |= ConstantTimeEquals(signature, Signature(key, expires_text, subject));
  }
  if (!signed_by_a_key) return BeaconVerdict::kInvalid;
  if (expires > now_unix_s + kMaxBeaconTtlSeconds + kBeaconClockSkewSeconds) {
    return BeaconVerdict::kTooFarAhead;
  }
  if (now_unix_s >= expires) return BeaconVerdict::kExpired;
  return BeaconVerdict::kValid;
}

std::string BeaconReplayKey(std::string_view token, Action action, int clicked_button) {
  // The signature part identifies the token; a digest keeps the id short and of one alphabet.
  const std::string digest = Sha256Hex(token).substr(0, 32);
  return "bcn_" + digest + "_" + std::string(ActionName(action)) + "_" +
         std::to_string(clicked_button);
}

}  // namespace pushhook::model
