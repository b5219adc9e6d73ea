#include "model/secret_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

#include "model/base64.h"
#include "model/digest.h"

namespace pushhook::model {
namespace {

constexpr std::string_view kPrefix = "enc:v1:";
constexpr int kNonceBytes = 12;
constexpr int kTagBytes = 16;

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {
  if (!key_.empty() && key_.size() != kKeyBytes) {
    throw std::invalid_argument("secret key must be 32 bytes");
  }
}

std::string SecretBox::Seal(std::string_view plaintext) const {
  if (!enabled()) return std::string(plaintext);
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, kNonceBytes) != 1) throw std::runtime_error("RAND_bytes failed");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key_.data()), bytes);
  EVP_EncryptUpdate(ctx.get(), bytes + kNonceBytes, &len,
                    reinterpret_cast<const unsigned char*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceBytes + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                      bytes + kNonceBytes + plaintext.size());
  return std::string(kPrefix) + Base64Encode(out);
}

std::string SecretBox::KeyCheck() const {
  if (key_.empty()) return "none";
  return Sha256Hex("pushhook secrets key check\n" + key_).substr(0, 16);
}

std::optional<std::string> SecretBox::Open(std::string_view stored) const {
  if (stored.substr(0, kPrefix.size()) != kPrefix) return std::string(stored);
  if (!enabled()) return std::nullopt;
  auto raw = Base64Decode(stored.substr(kPrefix.size()));
  if (!raw || raw->size() < size_t{kNonceBytes} + kTagBytes) return std::nullopt;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  const size_t text_len = raw->size() - kNonceBytes - kTagBytes;
  std::string out(text_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                     reinterpret_cast<const unsigned char*>(key_.data()), bytes);
  EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                    bytes + kNonceBytes, static_cast<int>(text_len));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                      const_cast<unsigned char*>(bytes + kNonceBytes + text_len));
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len, &len) !=
      1) {
    return std::nullopt;
  }
  return out;
}

}  // namespace pushhook::model
