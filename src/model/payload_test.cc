#include "model/payload.h"

#include <gtest/gtest.h>

namespace pushhook::model {
namespace {

Event SampleClick() {
  Event e;
  e.action = Action::kClick;
  e.cookie_id = "7e32b7a1-acfc-45db-83fb-766d2a8a2bce";
  e.cid = "1123123";
  e.notification_title = "My Campaign Name";
  e.reference_id = "123422";
  e.utm_campaign = "recover_carts";
  e.utm_content = "Article";
  e.utm_medium = "push_notifications";
  e.utm_source = "izooto";
  e.utm_term = "notification3";
  e.clicked_button = 2;
  return e;
}

TEST(PayloadTest, SampleEventIsByteForByteTheDesignPayload) {
  EXPECT_EQ(Payload(SampleClick(), PayloadFormat::kIzooto, "site_1"),
            R"({"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce",)"
            R"("cid":"1123123","notification_title":"My Campaign Name","reference_id":"123422",)"
            R"("utm_campaign":"recover_carts","utm_content":"Article",)"
            R"("utm_medium":"push_notifications","utm_source":"izooto",)"
            R"("utm_term":"notification3","clicked_button":2})");
}

TEST(PayloadTest, AbsentFieldsAreEmptyStringsAndViewHasButtonZero) {
  Event e;
  e.action = Action::kView;
  e.cookie_id = "c";
  e.cid = "1";
  EXPECT_EQ(Payload(e, PayloadFormat::kIzooto, ""),
            R"({"action":"View","cookie_id":"c","cid":"1","notification_title":"",)"
            R"("reference_id":"","utm_campaign":"","utm_content":"","utm_medium":"",)"
            R"("utm_source":"","utm_term":"","clicked_button":0})");
}

TEST(PayloadTest, ExtendedFormatAppendsEventSiteAndTime) {
  Event e = SampleClick();
  e.event_id = "evt_1";
  e.occurred_at_ms = 1795795200123;  // 2026-11-27T16:00:00.123Z
  const std::string p = Payload(e, PayloadFormat::kExtended, "site_9");
  EXPECT_NE(p.find(R"("clicked_button":2,"event_id":"evt_1","site_id":"site_9",)"
                   R"("occurred_at":"2026-11-27T16:00:00.123Z"})"),
            std::string::npos)
      << p;
}

TEST(PayloadTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  AppendJsonString(out, std::string("a\"b\\c\n\r\t\b\f\x01\x1f", 12));
  EXPECT_EQ(out, R"("a\"b\\c\n\r\t\b\f\u0001\u001f")");
}

TEST(PayloadTest, EscapesNulAndKeepsNonAsciiAsUtf8) {
  std::string out;
  AppendJsonString(out, std::string("x\0y", 3));
  EXPECT_EQ(out, R"("x\u0000y")");
  out.clear();
  AppendJsonString(out, "Süße 🔔 ñ/");
  EXPECT_EQ(out, "\"Süße 🔔 ñ/\"");
}

TEST(PayloadTest, FormatsRfc3339WithMilliseconds) {
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(951782400999), "2000-02-29T00:00:00.999Z");
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(PayloadTest, ParsesRfc3339WithOffsetsAndFractions) {
  int64_t ms = 0;
  ASSERT_TRUE(ParseRfc3339("2026-11-27T16:00:00.123Z", &ms));
  EXPECT_EQ(ms, 1795795200123);
  ASSERT_TRUE(ParseRfc3339("2026-11-27T17:30:00+01:30", &ms));
  EXPECT_EQ(ms, 1795795200000);
  ASSERT_TRUE(ParseRfc3339("2026-11-27T16:00:00.1234567z", &ms));
  EXPECT_EQ(ms, 1795795200123);
}

TEST(PayloadTest, RejectsMalformedRfc3339) {
  int64_t ms = 0;
  for (const char* bad :
       {"", "2026-11-27", "2026-11-27T16:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
        "2026-11-27T16:00:00.Z", "2026-11-27T16:00:00Zjunk", "2026-11-27T24:00:00Z",
        "abcd-11-27T16:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad, &ms)) << bad;
  }
}

}  // namespace
}  // namespace pushhook::model
