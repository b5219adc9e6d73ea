#include "model/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

namespace pushhook::model {
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

std::string HmacSha256(std::string_view key, std::initializer_list<std::string_view> parts) {
  thread_local Hmac hmac;
  unsigned char mac[Hmac::kSize];
  hmac.Init(key);
  for (std::string_view part : parts) hmac.Update(part);
  hmac.Final(mac);
  return std::string(reinterpret_cast<char*>(mac), sizeof(mac));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
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

}  // namespace pushhook::model
