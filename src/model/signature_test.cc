#include "model/signature.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "model/base64.h"
#include "model/digest.h"
#include "model/random.h"

namespace pushhook::model {
namespace {

// The vector from the Standard Webhooks reference tests (DESIGN section 4).
TEST(SignatureTest, MatchesStandardWebhooksVector) {
  auto key = DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(Sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// Computed independently with Python's hmac module over key bytes 0..23.
TEST(SignatureTest, MatchesIndependentlyComputedVector) {
  auto key = DecodeSecret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->size(), 24u);
  EXPECT_EQ(Sign(*key, "msg_2", 1700000000, R"({"action":"Click","cookie_id":"c"})"),
            "v1,9C5T1DW26J3sB6hreKgbTnTuBb/WUNwPwcXlCldM7ow=");
}

// Sign() computes HMAC-SHA256 itself; OpenSSL's one-shot HMAC() must agree for keys shorter
// than, equal to and longer than the 64-byte block (hashed first), and for every body length.
TEST(SignatureTest, AgreesWithOpenSslHmacForEveryKeyLength) {
  std::string body;
  for (size_t length = 0; length <= 150; ++length) {
    std::string key(length, '\0');
    for (size_t i = 0; i < length; ++i) key[i] = static_cast<char>((i * 37 + length) & 0xff);
    body.push_back(static_cast<char>('a' + length % 26));
    const std::string message = "msg_" + std::to_string(length) + ".1700000000." + body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_length);
    const std::string expected =
        "v1," + Base64Encode(std::string_view(reinterpret_cast<char*>(mac), mac_length));
    EXPECT_EQ(Sign(key, "msg_" + std::to_string(length), 1700000000, body), expected) << length;
  }
}

TEST(SignatureTest, HeaderCarriesOneSignaturePerKeyAndVerifiesWithEither) {
  const std::string a = *DecodeSecret(NewSecret());
  const std::string b = *DecodeSecret(NewSecret());
  const std::string header = SignatureHeader({a, b}, "msg_x", 42, "{}");
  EXPECT_EQ(header.find(' '), header.rfind(' '));
  EXPECT_TRUE(VerifySignatureHeader(header, a, "msg_x", 42, "{}"));
  EXPECT_TRUE(VerifySignatureHeader(header, b, "msg_x", 42, "{}"));
  EXPECT_FALSE(VerifySignatureHeader(header, a, "msg_x", 43, "{}"));
  EXPECT_FALSE(VerifySignatureHeader(header, a, "msg_y", 42, "{}"));
  EXPECT_FALSE(VerifySignatureHeader(header, a, "msg_x", 42, "{ }"));
}

TEST(SignatureTest, RejectsMalformedSecrets) {
  EXPECT_FALSE(DecodeSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").has_value());
  EXPECT_FALSE(DecodeSecret("whsec_").has_value());
  EXPECT_FALSE(DecodeSecret("whsec_not base64!").has_value());
}

TEST(SignatureTest, NewSecretHas24RandomBytes) {
  const std::string s1 = NewSecret();
  const std::string s2 = NewSecret();
  EXPECT_EQ(s1.rfind("whsec_", 0), 0u);
  EXPECT_EQ(DecodeSecret(s1)->size(), 24u);
  EXPECT_NE(s1, s2);
}

}  // namespace
}  // namespace pushhook::model
