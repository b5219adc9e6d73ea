// The small encodings under the payload and the signatures: JSON strings, RFC 3339, base64,
// SHA-256 hex, random tokens, and text made well-formed UTF-8.
#include <gtest/gtest.h>

#include "model/base64.h"
#include "model/digest.h"
#include "model/json_string.h"
#include "model/random.h"
#include "model/rfc3339.h"
#include "model/utf8.h"

namespace pushhook::model {
namespace {

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  AppendJsonString(out, std::string("a\"b\\c\n\r\t\b\f\x01\x1f", 12));
  EXPECT_EQ(out, R"("a\"b\\c\n\r\t\b\f\u0001\u001f")");
}

TEST(JsonStringTest, EscapesNulAndKeepsNonAsciiAsUtf8) {
  std::string out;
  AppendJsonString(out, std::string("x\0y", 3));
  EXPECT_EQ(out, R"("x\u0000y")");
  out.clear();
  AppendJsonString(out, "Süße 🔔 ñ/");
  EXPECT_EQ(out, "\"Süße 🔔 ñ/\"");
}

TEST(Rfc3339Test, FormatsRfc3339WithMilliseconds) {
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(951782400999), "2000-02-29T00:00:00.999Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(Rfc3339Test, ParsesRfc3339WithOffsetsAndFractions) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseRfc3339("2026-11-27T16:00:00.123Z", &ms));
  EXPECT_EQ(ms, 1795795200123);
  ASSERT_TRUE(ParseRfc3339("2026-11-27T17:30:00+01:30", &ms));
  EXPECT_EQ(ms, 1795795200000);
  ASSERT_TRUE(ParseRfc3339("2026-11-27T16:00:00.1234567z", &ms));
  EXPECT_EQ(ms, 1795795200123);
}

TEST(Rfc3339Test, RejectsMalformedRfc3339) {
  int64_t ms = 0;
  for (const char* bad :
       {"", "2026-11-27", "2026-11-27T16:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-27T16:00:00.Z", "2026-11-27T16:00:00Zjunk", "2026-11-27T24:00:00Z",
        "abcd-11-27T16:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad, &ms)) << bad;
  }
}

TEST(Rfc3339Test, TimeParamsAreRfc3339OrMillisecondsRfc3339CanWrite) {
  EXPECT_EQ(ParseTimeParam("1970-01-01T00:00:01Z"), 1000);
  EXPECT_EQ(ParseTimeParam("1795809600000"), 1795809600000);
  EXPECT_EQ(ParseTimeParam("-1000"), -1000);
  int64_t first = 0;
  int64_t last = 0;
  ASSERT_TRUE(ParseRfc3339("0000-01-01T00:00:00Z", &first));
  ASSERT_TRUE(ParseRfc3339("9999-12-31T23:59:59.999Z", &last));
  EXPECT_EQ(first, kMinRfc3339Ms);
  EXPECT_EQ(last, kMaxRfc3339Ms);
  EXPECT_EQ(ParseTimeParam(std::to_string(kMinRfc3339Ms)), kMinRfc3339Ms);
  EXPECT_EQ(ParseTimeParam(std::to_string(kMaxRfc3339Ms)), kMaxRfc3339Ms);
  EXPECT_EQ(ParseTimeParam("0000-01-01T00:00:00-00:01"), kMinRfc3339Ms + 60'000);
  for (const std::string& bad :
       {std::string(""), std::string("yesterday"), std::string("12x"), std::string("+5"),
        std::string(" 5"), std::to_string(kMinRfc3339Ms - 1), std::to_string(kMaxRfc3339Ms + 1),
        std::string("-9223372036854775808"), std::string("99999999999999999999"),
        // Text whose offset carries the instant past the years 0000 to 9999.
        std::string("0000-01-01T00:00:00+23:59"), std::string("9999-12-31T23:59:59.999-00:01")}) {
    EXPECT_EQ(ParseTimeParam(bad), std::nullopt) << bad;
  }
}

TEST(Base64Test, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(Base64Decode(Base64Encode(bytes)), bytes) << i;
    bytes.push_back(static_cast<char>(i * 37));
  }
}

TEST(DigestTest, Sha256HexOfKnownInput) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RandomTest, TokenIsBase62OfRequestedLength) {
  const std::string t = RandomToken(33);
  EXPECT_EQ(t.size(), 33u);
  EXPECT_EQ(t.find_first_not_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
            std::string::npos);
  EXPECT_NE(RandomToken(33), t);
}

TEST(ToValidUtf8Test, KeepsWellFormedTextAsItIs) {
  const std::string text =
      "plain, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x98\x80, \xEF\xBF\xBF, \xF4\x8F\xBF\xBF";
  EXPECT_EQ(ToValidUtf8(text), text);
  EXPECT_EQ(ToValidUtf8(text, /*cut=*/true), text);
  EXPECT_EQ(ToValidUtf8(""), "");
}

TEST(ToValidUtf8Test, ReplacesNulAndEachIllFormedSubpartWithOneReplacementCharacter) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ToValidUtf8(std::string("a\0b", 3)), "a" + r + "b");
  EXPECT_EQ(ToValidUtf8("\xFF\xFE"), r + r);                  // never lead bytes
  EXPECT_EQ(ToValidUtf8("\xC0\xAF"), r + r);                  // overlong: C0 leads nothing
  EXPECT_EQ(ToValidUtf8("\xE0\x80\x80"), r + r + r);          // overlong: E0 needs A0..BF next
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), r + r + r);          // a UTF-16 surrogate
  EXPECT_EQ(ToValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(ToValidUtf8("\xE2\x82x"), r + "x");               // a truncated sequence is one subpart
  EXPECT_EQ(ToValidUtf8("\x80z"), r + "z");                   // a lone continuation byte
  EXPECT_EQ(ToValidUtf8("\x1f\x8b\x08"), "\x1f" + r + "\x08");  // the start of a gzip body
}

TEST(ToValidUtf8Test, ACutDropsTheCharacterItWentThroughAndOnlyThatOne) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ToValidUtf8("ab\xE2\x82", /*cut=*/true), "ab");
  EXPECT_EQ(ToValidUtf8("ab\xF0\x9F\x98", /*cut=*/true), "ab");
  EXPECT_EQ(ToValidUtf8("ab\xE2\x82", /*cut=*/false), "ab" + r);
  // Ill-formed bytes at the end are not a cut character: they are replaced either way.
  EXPECT_EQ(ToValidUtf8("ab\xFF", /*cut=*/true), "ab" + r);
  EXPECT_EQ(ToValidUtf8("ab\xE0\x80", /*cut=*/true), "ab" + r + r);
}

TEST(ToLowerCaseTest, LowersEveryScriptWithCaseCharacterByCharacter) {
  EXPECT_EQ(ToLowerCase("Hello, WORLD 42"), "hello, world 42");
  EXPECT_EQ(ToLowerCase("Über ÉTÉ Größe"), "über été größe");  // ß has no one-character upper
  EXPECT_EQ(ToLowerCase("ΣΑΣ Жизнь Ǆ"), "σασ жизнь ǆ");        // no final sigma: per character
  EXPECT_EQ(ToLowerCase("𐐀"), "𐐨");                            // four bytes (Deseret)
  EXPECT_EQ(ToLowerCase("नमस्ते 中文 😀"), "नमस्ते 中文 😀");        // no case: as they are
}

TEST(ToLowerCaseTest, KeepsBytesThatAreNotUtf8AsTheyAre) {
  EXPECT_EQ(ToLowerCase("A\xFF"
                        "B\xC3"),
            "a\xFF"
            "b\xC3");
  EXPECT_EQ(ToLowerCase("\xC3\x9C\xC3"), "\xC3\xBC\xC3");    // Ü, then a cut sequence
  EXPECT_EQ(ToLowerCase("\xED\xA0\x80X"), "\xED\xA0\x80x");  // a surrogate's encoding
  EXPECT_EQ(ToLowerCase(std::string_view("A\0B", 3)), std::string("a\0b", 3));
}

}  // namespace
}  // namespace pushhook::model
