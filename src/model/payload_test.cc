#include "model/payload.h"

#include <gtest/gtest.h>

#include "model/json_string.h"
#include "model/rfc3339.h"

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

TEST(PayloadTest, TheLongestPayloadIsWithinItsBound) {
  // A control character is the costliest byte: "\u0001" is six.
  const auto longest = [](size_t n) { return std::string(n, '\x01'); };
  Event e;
  e.action = Action::kDismiss;
  e.cookie_id = longest(kMaxCookieId);
  e.cid = longest(kMaxCid);
  e.notification_title = longest(kMaxTitle);
  e.reference_id = longest(kMaxReferenceId);
  e.utm_campaign = e.utm_content = e.utm_medium = e.utm_source = e.utm_term = longest(kMaxUtm);
  e.event_id = longest(kMaxEventId);
  e.occurred_at_ms = kMaxRfc3339Ms;
  const std::string p = Payload(e, PayloadFormat::kExtended, "site_" + std::string(16, 'x'));
  EXPECT_LE(p.size(), kMaxPayloadBytes);
  EXPECT_GT(p.size(), kMaxPayloadBytes - 512) << "the bound has room to spare: tighten it";
}

}  // namespace
}  // namespace pushhook::model
