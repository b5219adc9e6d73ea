// Endpoint secrets at rest: AES-256-GCM with a key that lives outside the database, so that a
// copied database file or backup does not give away every customer's signing secret. (Tokens
// are hashed instead: they are only compared, while secrets must be recovered to sign.)
// Sealed text is "enc:v1:" + base64(12-byte nonce | ciphertext | 16-byte tag). Immutable after
// construction; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pushhook::model {

class SecretBox {
 public:
  static constexpr size_t kKeyBytes = 32;

  // `key` must be kKeyBytes raw bytes; an empty key makes a box that stores plain text (for
  // tests of other parts).
  explicit SecretBox(std::string key = "");

  std::string Seal(std::string_view plaintext) const;
  // The plain text of a sealed value; a value without the "enc:v1:" prefix is returned as is
  // (written before encryption was configured). nullopt if it does not authenticate.
  std::optional<std::string> Open(std::string_view stored) const;

  bool enabled() const { return !key_.empty(); }

  // A short value that tells whether two boxes hold the same key, and nothing about the key: a
  // database keeps the check of the key that sealed it, and refuses to open with another one.
  // Meaningful only for an enabled box.
  std::string KeyCheck() const;

 private:
  std::string key_;
};

}  // namespace pushhook::model
