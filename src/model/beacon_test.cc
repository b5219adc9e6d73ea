#include "model/beacon.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/base64.h"

namespace pushhook::model {
namespace {

// The README's test vector, computed independently with Python's hmac module.
constexpr std::string_view kSecret = "bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr std::string_view kToken = "v1.1798761600.pbHqrFC2VVw4YZ2kZlXEdmSmelEEeSKzWenKEBjeEPk";
constexpr int64_t kExpires = 1798761600;  // 2027-01-01T00:00:00Z
constexpr BeaconSubject kSubject{"site_demo", "1123123", "123422",
                                 "7e32b7a1-acfc-45db-83fb-766d2a8a2bce"};

std::vector<std::string> Keys() { return {*DecodeBeaconSecret(kSecret)}; }

TEST(BeaconTest, MatchesTheReadmeVector) {
  EXPECT_EQ(MakeBeaconToken(Keys()[0], kSubject, kExpires), kToken);
  EXPECT_EQ(CheckBeaconToken(kToken, Keys(), kSubject, kExpires - 1), BeaconVerdict::kValid);
}

TEST(BeaconTest, ExpiresAtItsSecondWithoutSlack) {
  EXPECT_EQ(CheckBeaconToken(kToken, Keys(), kSubject, kExpires), BeaconVerdict::kExpired);
  EXPECT_EQ(CheckBeaconToken(kToken, Keys(), kSubject, kExpires + 86400), BeaconVerdict::kExpired);
}

TEST(BeaconTest, IsBoundToEveryFieldAndTheSite) {
  const int64_t now = kExpires - 3600;
  for (BeaconSubject other :
       {BeaconSubject{"site_other", kSubject.cid, kSubject.reference_id, kSubject.cookie_id},
        BeaconSubject{kSubject.site_id, "1123124", kSubject.reference_id, kSubject.cookie_id},
        BeaconSubject{kSubject.site_id, kSubject.cid, "", kSubject.cookie_id},
        BeaconSubject{kSubject.site_id, kSubject.cid, kSubject.reference_id, "someone-else"}}) {
    EXPECT_EQ(CheckBeaconToken(kToken, Keys(), other, now), BeaconVerdict::kInvalid);
  }
}

TEST(BeaconTest, AForgedOrMalformedTokenIsInvalidEvenWhenExpired) {
  const int64_t now = kExpires - 3600;
  std::string forged(kToken);
  forged.back() = forged.back() == 'k' ? 'j' : 'k';
  EXPECT_EQ(CheckBeaconToken(forged, Keys(), kSubject, now), BeaconVerdict::kInvalid);
  EXPECT_EQ(CheckBeaconToken(forged, Keys(), kSubject, kExpires + 1), BeaconVerdict::kInvalid);
  // The expiry is signed: moving it later breaks the signature.
  std::string later(kToken);
  later.replace(3, 10, "1798761601");
  EXPECT_EQ(CheckBeaconToken(later, Keys(), kSubject, now), BeaconVerdict::kInvalid);
  for (std::string_view bad :
       {"", "v1", "v1.", "v1..sig", "v2.1798761600.sig", "v1.abc.sig", "v1.-1.sig",
        "v1.+1798761600.sig", "v1.1798761600", "v1.17987616000000000000.sig"}) {
    EXPECT_EQ(CheckBeaconToken(bad, Keys(), kSubject, now), BeaconVerdict::kInvalid) << bad;
  }
  EXPECT_EQ(CheckBeaconToken(std::string(300, 'v'), Keys(), kSubject, now),
            BeaconVerdict::kInvalid);
}

TEST(BeaconTest, ATokenBeyondThirtyDaysIsTooFarAhead) {
  const std::string key = Keys()[0];
  const int64_t now = 1'800'000'000;
  const std::string longest = MakeBeaconToken(key, kSubject, now + kMaxBeaconTtlSeconds);
  EXPECT_EQ(CheckBeaconToken(longest, Keys(), kSubject, now), BeaconVerdict::kValid);
  const std::string too_long =
      MakeBeaconToken(key, kSubject, now + kMaxBeaconTtlSeconds + kBeaconClockSkewSeconds + 1);
  EXPECT_EQ(CheckBeaconToken(too_long, Keys(), kSubject, now), BeaconVerdict::kTooFarAhead);
}

TEST(BeaconTest, EitherKeyOfARotationVerifies) {
  const std::string old_key = Keys()[0];
  const std::string new_key = *DecodeBeaconSecret(NewBeaconSecret());
  const std::vector<std::string> both = {new_key, old_key};
  EXPECT_EQ(CheckBeaconToken(kToken, both, kSubject, kExpires - 1), BeaconVerdict::kValid);
  const std::vector<std::string> only_new = {new_key};
  EXPECT_EQ(CheckBeaconToken(kToken, only_new, kSubject, kExpires - 1), BeaconVerdict::kInvalid);
}

TEST(BeaconTest, SecretsAreBsecAndBase64Of32Bytes) {
  const std::string secret = NewBeaconSecret();
  ASSERT_TRUE(secret.starts_with("bsec_"));
  EXPECT_EQ(DecodeBeaconSecret(secret)->size(), 32u);
  EXPECT_NE(secret, NewBeaconSecret());
  EXPECT_FALSE(
      DecodeBeaconSecret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").has_value());
  EXPECT_FALSE(DecodeBeaconSecret("bsec_").has_value());
  EXPECT_FALSE(DecodeBeaconSecret("bsec_%%%").has_value());
}

TEST(BeaconTest, OneTokenGivesOneReplayKeyPerActionAndButton) {
  const std::string click2 = BeaconReplayKey(kToken, Action::kClick, 2);
  EXPECT_EQ(click2, BeaconReplayKey(kToken, Action::kClick, 2));
  EXPECT_NE(click2, BeaconReplayKey(kToken, Action::kClick, 1));
  EXPECT_NE(click2, BeaconReplayKey(kToken, Action::kView, 0));
  EXPECT_LE(click2.size(), kMaxEventId);
}

TEST(Base64UrlTest, RoundTripsWithoutPaddingAndRefusesTheStandardAlphabet) {
  for (size_t n = 0; n < 40; ++n) {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(0xfb + i * 7));
    const std::string text = Base64UrlEncode(bytes);
    EXPECT_EQ(text.find_first_of("+/="), std::string::npos) << text;
    EXPECT_EQ(Base64UrlDecode(text), bytes) << text;
  }
  EXPECT_EQ(Base64UrlEncode("site_demo"), "c2l0ZV9kZW1v");
  EXPECT_FALSE(Base64UrlDecode("ab+/").has_value());
  EXPECT_FALSE(Base64UrlDecode("YQ==").has_value());
  EXPECT_FALSE(Base64UrlDecode("a").has_value());
}

}  // namespace
}  // namespace pushhook::model
