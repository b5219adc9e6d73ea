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

namespace {

// HMAC-SHA256 (RFC 2104) on one digest context per thread: H((K ^ opad) || H((K ^ ipad) || m)).
// OpenSSL's EVP_MAC does the same work but allocates a context, parses parameters and fetches
// the digest on every call, which cost more than hashing a 400-byte payload.
class Hmac {
 public:
  static constexpr size_t kBlock = 64;
  static constexpr size_t kSize = 32;

  Hmac() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || Sha256() == nullptr) throw std::runtime_error("cannot set up SHA-256");
  }
  ~Hmac() { EVP_MD_CTX_free(ctx_); }
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;

  // Starts a MAC with `key`; Update() the message, then Final().
  void Init(std::string_view key) {
    unsigned char block[kBlock] = {};
    if (key.size() > kBlock) {
      unsigned int n = 0;
      EVP_Digest(key.data(), key.size(), block, &n, Sha256(), nullptr);
    } else {
      std::memcpy(block, key.data(), key.size());
    }
    for (size_t i = 0; i < kBlock; ++i) {
      inner_pad_[i] = block[i] ^ 0x36;
      outer_pad_[i] = block[i] ^ 0x5c;
    }
    OPENSSL_cleanse(block, sizeof(block));
    EVP_DigestInit_ex2(ctx_, Sha256(), nullptr);
    EVP_DigestUpdate(ctx_, inner_pad_, kBlock);
  }

  void Update(std::string_view part) { EVP_DigestUpdate(ctx_, part.data(), part.size()); }

  void Final(unsigned char (&mac)[kSize]) {
    unsigned char inner[kSize];
    EVP_DigestFinal_ex(ctx_, inner, nullptr);
    EVP_DigestInit_ex2(ctx_, Sha256(), nullptr);
    EVP_DigestUpdate(ctx_, outer_pad_, kBlock);
    EVP_DigestUpdate(ctx_, inner, kSize);
    EVP_DigestFinal_ex(ctx_, mac, nullptr);
    OPENSSL_cleanse(inner_pad_, kBlock);
    OPENSSL_cleanse(outer_pad_, kBlock);
  }

 private:
  // Fetched once; an EVP_MD is immutable and may be shared by threads.
  static const EVP_MD* Sha256() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
  }

  EVP_MD_CTX* ctx_;
  unsigned char inner_pad_[kBlock];
  unsigned char outer_pad_[kBlock];
};

}  // namespace

std::string Sign(std::string_view key, std::string_view msg_id, int64_t timestamp,
                 std::string_view body) {
  thread_local Hmac hmac;
  char ts[24];
  const auto [ts_end, ec] = std::to_chars(ts, ts + sizeof(ts), timestamp);
  unsigned char mac[Hmac::kSize];
  // One update per part, so the signed string "{id}.{timestamp}.{body}" is never copied.
  hmac.Init(key);
  hmac.Update(msg_id);
  hmac.Update(".");
  hmac.Update(std::string_view(ts, static_cast<size_t>(ts_end - ts)));
  hmac.Update(".");
  hmac.Update(body);
  hmac.Final(mac);
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<char*>(mac), sizeof(mac)));
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
