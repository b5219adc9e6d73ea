#include "model/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace pushhook::model {

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  size_t len = static_cast<size_t>(n);
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::optional<std::string> DecodeSecret(std::string_view secret) {
  constexpr std::string_view kPrefix = "whsec_";
  if (secret.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  auto key = Base64Decode(secret.substr(kPrefix.size()));
  if (!key || key->empty()) return std::nullopt;
  return key;
}

std::string NewSecret() {
  unsigned char raw[24];
  if (RAND_bytes(raw, sizeof(raw)) != 1) throw std::runtime_error("RAND_bytes failed");
  return "whsec_" + Base64Encode(std::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
}

std::string Sign(std::string_view key, std::string_view msg_id, int64_t timestamp,
                 std::string_view body) {
  // The MAC algorithm is fetched once; an EVP_MAC is immutable and may be shared by threads.
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0),
                               OSSL_PARAM_construct_end()};
  const std::string ts = std::to_string(timestamp);
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mac_len = 0;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
  const auto update = [ctx](std::string_view part) {
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(part.data()), part.size());
  };
  // One update per part, so the signed string "{id}.{timestamp}.{body}" is never copied.
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  update(msg_id);
  update(".");
  update(ts);
  update(".");
  update(body);
  EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac));
  EVP_MAC_CTX_free(ctx);
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<char*>(mac), mac_len));
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

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
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

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * sizeof(digest));
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string RandomToken(size_t length) {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(length, '\0');
  size_t filled = 0;
  unsigned char raw[64];
  while (filled < length) {
    if (RAND_bytes(raw, sizeof(raw)) != 1) throw std::runtime_error("RAND_bytes failed");
    for (unsigned char c : raw) {
      // 248 = 4 * 62: rejecting the top bytes keeps every character equally likely.
      if (c >= 248 || filled == length) continue;
      out[filled++] = kAlphabet[c % 62];
    }
  }
  return out;
}

}  // namespace pushhook::model
