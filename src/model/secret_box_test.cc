#include "model/secret_box.h"

#include <gtest/gtest.h>

namespace pushhook::model {
namespace {

TEST(SecretBoxTest, SealsAndOpensWithTheSameKey) {
  const SecretBox box(std::string(32, 'k'));
  const std::string sealed = box.Seal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  EXPECT_EQ(sealed.rfind("enc:v1:", 0), 0u);
  EXPECT_EQ(sealed.find("MfKQ9r8G"), std::string::npos);
  EXPECT_EQ(box.Open(sealed), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  EXPECT_NE(box.Seal("same"), box.Seal("same")) << "each seal has its own nonce";
}

TEST(SecretBoxTest, RefusesTamperingAndTheWrongKey) {
  const SecretBox box(std::string(32, 'k'));
  std::string sealed = box.Seal("secret");
  EXPECT_FALSE(SecretBox(std::string(32, 'x')).Open(sealed).has_value());
  // A character in the middle: near the end, base64 carries padding bits that decode to nothing.
  char& c = sealed[sealed.size() / 2];
  c = c == 'A' ? 'B' : 'A';
  EXPECT_FALSE(box.Open(sealed).has_value());
  EXPECT_FALSE(box.Open("enc:v1:!!").has_value());
}

TEST(SecretBoxTest, PlainValuesReadAsTheyAre) {
  const SecretBox box(std::string(32, 'k'));
  EXPECT_EQ(box.Open("whsec_plain"), "whsec_plain");
  const SecretBox off;
  EXPECT_EQ(off.Seal("x"), "x");
  EXPECT_THROW(SecretBox("short"), std::invalid_argument);
}

}  // namespace
}  // namespace pushhook::model
