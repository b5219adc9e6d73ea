#include "ingest/event_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <tuple>

namespace pushhook::ingest {
namespace {

constexpr int64_t kNow = 1764273600000;  // 2025-11-27T20:00:00Z

constexpr std::string_view kSample =
    R"({"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce","cid":"1123123",)"
    R"("notification_title":"My Campaign Name","reference_id":"123422",)"
    R"("utm_campaign":"recover_carts","utm_content":"Article","utm_medium":"push_notifications",)"
    R"("utm_source":"izooto","utm_term":"notification3","clicked_button":2})";

// A valid View with the required fields, followed by `extra` (which starts with a comma).
std::string View(std::string_view extra = "") {
  return std::string(R"({"action":"View","cookie_id":"c1","cid":"42")") + std::string(extra) + "}";
}
std::string Click(std::string_view extra = "") {
  return std::string(R"({"action":"Click","cookie_id":"c1","cid":"42")") + std::string(extra) + "}";
}

std::vector<model::Event> ParseOk(std::string_view body, BodyKind kind = BodyKind::kJson,
                                  const IngestLimits& limits = {}) {
  auto result = ParseEvents(body, kind, kNow, limits);
  if (auto* error = std::get_if<ParseError>(&result)) {
    ADD_FAILURE() << "refused: " << error->ToJson() << "\nbody: " << body;
    return {};
  }
  return std::move(std::get<ParsedBatch>(result).events);
}

ParseError ParseFails(std::string_view body, BodyKind kind = BodyKind::kJson,
                      const IngestLimits& limits = {}) {
  auto result = ParseEvents(body, kind, kNow, limits);
  if (auto* error = std::get_if<ParseError>(&result)) return std::move(*error);
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

// Expects `body`, holding a single event, to be refused for exactly this field and message.
void ExpectInvalid(std::string_view body, std::string_view field, std::string_view message) {
  SCOPED_TRACE(body);
  const ParseError error = ParseFails(body);
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "the event is invalid; it was not stored");
  EXPECT_FALSE(error.offset.has_value());
  ASSERT_EQ(error.details.size(), 1u);
  EXPECT_EQ(error.details[0].index, 0u);
  EXPECT_EQ(error.details[0].field, field);
  EXPECT_EQ(error.details[0].message, message);
}

void ExpectInvalidJson(std::string_view body, size_t offset, std::string_view message,
                       BodyKind kind = BodyKind::kJson) {
  SCOPED_TRACE(body);
  const ParseError error = ParseFails(body, kind);
  EXPECT_EQ(error.code, "invalid_json");
  EXPECT_EQ(error.offset, offset);
  EXPECT_EQ(error.message, message);
  EXPECT_TRUE(error.details.empty());
}

// --- Forms of the body ---

TEST(EventParserTest, ParsesTheDesignSamplePayload) {
  const auto events = ParseOk(kSample);
  ASSERT_EQ(events.size(), 1u);
  const model::Event& e = events[0];
  EXPECT_EQ(e.action, model::Action::kClick);
  EXPECT_EQ(e.cookie_id, "7e32b7a1-acfc-45db-83fb-766d2a8a2bce");
  EXPECT_EQ(e.cid, "1123123");
  EXPECT_EQ(e.notification_title, "My Campaign Name");
  EXPECT_EQ(e.reference_id, "123422");
  EXPECT_EQ(e.utm_campaign, "recover_carts");
  EXPECT_EQ(e.utm_content, "Article");
  EXPECT_EQ(e.utm_medium, "push_notifications");
  EXPECT_EQ(e.utm_source, "izooto");
  EXPECT_EQ(e.utm_term, "notification3");
  EXPECT_EQ(e.clicked_button, 2);
  EXPECT_EQ(e.event_id, "");
  EXPECT_EQ(e.occurred_at_ms, kNow);
}

TEST(EventParserTest, AbsentOptionalFieldsTakeTheirDefaults) {
  const auto events = ParseOk(R"({"cid":"9","cookie_id":"abc","action":"View"})");
  ASSERT_EQ(events.size(), 1u);
  const model::Event& e = events[0];
  EXPECT_EQ(e.action, model::Action::kView);
  EXPECT_EQ(e.cookie_id, "abc");
  EXPECT_EQ(e.cid, "9");
  EXPECT_EQ(e.notification_title, "");
  EXPECT_EQ(e.reference_id, "");
  EXPECT_EQ(e.utm_campaign, "");
  EXPECT_EQ(e.utm_content, "");
  EXPECT_EQ(e.utm_medium, "");
  EXPECT_EQ(e.utm_source, "");
  EXPECT_EQ(e.utm_term, "");
  EXPECT_EQ(e.clicked_button, 0);
  EXPECT_EQ(e.event_id, "");
  EXPECT_EQ(e.occurred_at_ms, kNow);
}

TEST(EventParserTest, ParsesAnArrayOfEventsInOrder) {
  const auto events =
      ParseOk(" [ " + View(R"(,"event_id":"a")") + " , " +
              Click(R"(,"event_id":"b","clicked_button":1)") + "," + std::string(kSample) + " ]\n");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].event_id, "a");
  EXPECT_EQ(events[0].action, model::Action::kView);
  EXPECT_EQ(events[1].event_id, "b");
  EXPECT_EQ(events[1].clicked_button, 1);
  EXPECT_EQ(events[2].cookie_id, "7e32b7a1-acfc-45db-83fb-766d2a8a2bce");
}

TEST(EventParserTest, ParsesNdjsonWithBlankLinesAndCrlf) {
  const std::string body = View(R"(,"event_id":"a")") + "\r\n\r\n   \n" +
                           Click(R"(,"event_id":"b")") + "\n" + View(R"(,"event_id":"c")");
  const auto events = ParseOk(body, BodyKind::kNdjson);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].event_id, "a");
  EXPECT_EQ(events[1].event_id, "b");
  EXPECT_EQ(events[1].action, model::Action::kClick);
  EXPECT_EQ(events[2].event_id, "c");
}

TEST(EventParserTest, NdjsonIndexCountsEventsNotLines) {
  const std::string body = "\n" + View() + "\n\n" + View(R"(,"utm_term":7)") + "\n";
  const ParseError error = ParseFails(body, BodyKind::kNdjson);
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "1 of 2 events is invalid; none was stored");
  ASSERT_EQ(error.details.size(), 1u);
  EXPECT_EQ(error.details[0].index, 1u);
  EXPECT_EQ(error.details[0].field, "utm_term");
  EXPECT_EQ(error.details[0].message, "must be a string, not a number");
}

TEST(EventParserTest, NdjsonLineMustBeAnObject) {
  const ParseError error = ParseFails(View() + "\n[" + View() + "]\n\"x\"\n", BodyKind::kNdjson);
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "2 of 3 events are invalid; none was stored");
  ASSERT_EQ(error.details.size(), 2u);
  EXPECT_EQ(error.details[0].index, 1u);
  EXPECT_EQ(error.details[0].field, "");
  EXPECT_EQ(error.details[0].message, "must be an object, not an array");
  EXPECT_EQ(error.details[1].index, 2u);
  EXPECT_EQ(error.details[1].message, "must be an object, not a string");
}

TEST(EventParserTest, ArrayElementsMustBeObjects) {
  const ParseError error = ParseFails("[1, \"x\", null, true, [" + View() + "], " + View() + "]");
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "5 of 6 events are invalid; none was stored");
  ASSERT_EQ(error.details.size(), 5u);
  const char* actual[] = {"a number", "a string", "null", "a boolean", "an array"};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(error.details[i].index, i);
    EXPECT_EQ(error.details[i].field, "");
    EXPECT_EQ(error.details[i].message, std::string("must be an object, not ") + actual[i]);
  }
}

TEST(EventParserTest, TopLevelScalarIsNotAnEvent) {
  ExpectInvalid("42", "", "must be an object or an array of objects, not a number");
  ExpectInvalid("\"View\"", "", "must be an object or an array of objects, not a string");
  ExpectInvalid("null", "", "must be an object or an array of objects, not null");
}

TEST(EventParserTest, BodyWithNoEventsIsRefused) {
  // An empty body is not JSON at all: refused at the byte where it ends.
  for (const auto& [body, offset, what] :
       {std::tuple<const char*, size_t, const char*>{"", 0, "the body is empty"},
        {"  \r\n\t", 5, "the body holds only whitespace"}}) {
    SCOPED_TRACE(body);
    const ParseError error = ParseFails(body);
    EXPECT_EQ(error.code, "invalid_json");
    EXPECT_EQ(error.message, "body is not valid JSON at byte " + std::to_string(offset) + ": " +
                                 what + "; send an event object or an array of them");
    EXPECT_EQ(error.offset, offset);
  }
  EXPECT_EQ(ParseFails("").ToJson(),
            R"({"error":{"code":"invalid_json","message":"body is not valid JSON at byte 0: the )"
            R"(body is empty; send an event object or an array of them","offset":0}})");
  for (const char* body : {"[]", " [ ] "}) {
    SCOPED_TRACE(body);
    const ParseError error = ParseFails(body);
    EXPECT_EQ(error.code, "invalid_event");
    EXPECT_EQ(error.message, "body holds no events");
    EXPECT_TRUE(error.details.empty());
    EXPECT_FALSE(error.offset.has_value());
  }
  for (const char* body : {"", "\n", "\r\n  \r\n\n"}) {
    SCOPED_TRACE(body);
    const ParseError error = ParseFails(body, BodyKind::kNdjson);
    EXPECT_EQ(error.code, "invalid_event");
    EXPECT_EQ(error.message, "body holds no events");
  }
}

TEST(EventParserTest, AnEmptyObjectIsAnEventMissingItsAction) {
  ExpectInvalid("{}", "action", "is required");
}

// --- All-or-nothing and the details ---

TEST(EventParserTest, OneBadEventRefusesTheWholeBatch) {
  const ParseError error =
      ParseFails("[" + View() + "," + View(R"(,"clicked_button":1)") + "," + Click() + "]");
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "1 of 3 events is invalid; none was stored");
  ASSERT_EQ(error.details.size(), 1u);
  EXPECT_EQ(error.details[0].index, 1u);
  EXPECT_EQ(error.details[0].field, "clicked_button");
  EXPECT_EQ(error.details[0].message, "must be 0 for a View");
}

TEST(EventParserTest, EventsAfterABadOneAreStillChecked) {
  const ParseError error = ParseFails("[" + View(R"(,"x":1)") + "," + View() + "," +
                                      View(R"(,"cid":"dup")") + "," + Click() + "]");
  EXPECT_EQ(error.message, "2 of 4 events are invalid; none was stored");
  ASSERT_EQ(error.details.size(), 2u);
  EXPECT_EQ(error.details[0].index, 0u);
  EXPECT_EQ(error.details[0].field, "x");
  EXPECT_EQ(error.details[0].message, "unknown field");
  EXPECT_EQ(error.details[1].index, 2u);
  EXPECT_EQ(error.details[1].field, "cid");
  EXPECT_EQ(error.details[1].message, "appears more than once");
}

TEST(EventParserTest, ReportsOnlyTheFirstProblemOfAnEvent) {
  ExpectInvalid(R"({"action":"Viewed","cookie_id":"","cid":null,"bogus":1})", "action",
                "must be \"View\", \"Click\" or \"Dismiss\"");
  ExpectInvalid(R"({"cookie_id":"","cid":null})", "cookie_id", "must not be empty");
}

TEST(EventParserTest, AtMostOneHundredDetails) {
  std::string body = "[";
  for (int i = 0; i < 150; ++i) body += (i ? "," : "") + View(R"(,"clicked_button":2)");
  body += "," + View() + "]";
  const ParseError error = ParseFails(body);
  EXPECT_EQ(error.code, "invalid_event");
  EXPECT_EQ(error.message, "150 of 151 events are invalid; none was stored");
  ASSERT_EQ(error.details.size(), 100u);
  EXPECT_EQ(error.details[99].index, 99u);
  EXPECT_EQ(error.details[99].field, "clicked_button");
}

TEST(EventParserTest, TooManyEvents) {
  IngestLimits limits;
  limits.max_events = 3;
  EXPECT_EQ(
      ParseOk("[" + View() + "," + View() + "," + View() + "]", BodyKind::kJson, limits).size(),
      3u);
  for (BodyKind kind : {BodyKind::kJson, BodyKind::kNdjson}) {
    const std::string body = kind == BodyKind::kJson
                                 ? "[" + View() + "," + View() + "," + View() + ",1]"
                                 : View() + "\n" + View() + "\n" + View() + "\n" + View();
    const ParseError error = ParseFails(body, kind, limits);
    EXPECT_EQ(error.code, "too_many_events");
    EXPECT_EQ(error.message, "body holds more than 3 events; send at most 3 per request");
    EXPECT_TRUE(error.details.empty());
  }
}

TEST(EventParserTest, TooManyEventsWinsOverLaterBadJson) {
  IngestLimits limits;
  limits.max_events = 1;
  EXPECT_EQ(ParseFails("[" + View() + "," + View() + ",", BodyKind::kJson, limits).code,
            "too_many_events");
}

// --- action ---

TEST(EventParserTest, ActionMustBeViewClickOrDismissExactly) {
  for (const char* value : {"view", "CLICK", "", "Clicks", "View ", "Dismissed", "DISMISS"}) {
    ExpectInvalid(std::string(R"({"action":")") + value + R"(","cookie_id":"c","cid":"1"})",
                  "action", "must be \"View\", \"Click\" or \"Dismiss\"");
  }
  ExpectInvalid(R"({"action":1,"cookie_id":"c","cid":"1"})", "action",
                "must be \"View\", \"Click\" or \"Dismiss\", not a number");
}

TEST(EventParserTest, ActionIsRequired) {
  ExpectInvalid(R"({"cookie_id":"c","cid":"1"})", "action", "is required");
}

// --- cookie_id ---

TEST(EventParserTest, CookieIdIsRequired) {
  ExpectInvalid(R"({"action":"View","cid":"1"})", "cookie_id", "is required");
}

TEST(EventParserTest, CookieIdMustNotBeEmpty) {
  ExpectInvalid(R"({"action":"View","cookie_id":"","cid":"1"})", "cookie_id", "must not be empty");
}

TEST(EventParserTest, CookieIdIsAtMost128Bytes) {
  const std::string ok(128, 'k');
  EXPECT_EQ(ParseOk(R"({"action":"View","cid":"1","cookie_id":")" + ok + "\"}")[0].cookie_id, ok);
  ExpectInvalid(R"({"action":"View","cid":"1","cookie_id":")" + ok + "k\"}", "cookie_id",
                "must be at most 128 bytes");
}

TEST(EventParserTest, CookieIdMustBeAString) {
  ExpectInvalid(R"({"action":"View","cid":"1","cookie_id":12})", "cookie_id",
                "must be a string, not a number");
}

// --- cid ---

TEST(EventParserTest, CidIsRequired) {
  ExpectInvalid(R"({"action":"View","cookie_id":"c"})", "cid", "is required");
}

TEST(EventParserTest, CidMustNotBeEmpty) {
  ExpectInvalid(R"({"action":"View","cookie_id":"c","cid":""})", "cid", "must not be empty");
}

TEST(EventParserTest, CidIsAtMost64Bytes) {
  const std::string ok(64, '7');
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":")" + ok + "\"}")[0].cid, ok);
  ExpectInvalid(R"({"action":"View","cookie_id":"c","cid":")" + ok + "x\"}", "cid",
                "must be at most 64 bytes");
}

TEST(EventParserTest, NumericCidBecomesItsDecimalString) {
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":1123123})")[0].cid, "1123123");
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":0})")[0].cid, "0");
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":18446744073709551615})")[0].cid,
            "18446744073709551615");
  // Beyond 64 bits the literal is still an exact integer, kept as written.
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":99999999999999999999999})")[0].cid,
            "99999999999999999999999");
}

TEST(EventParserTest, AnyNumericCidBecomesItsDecimalString) {
  const struct {
    const char* literal;
    const char* cid;
  } cases[] = {{"-1", "-1"},      {"-0", "0"},     {"1.5", "1.5"},  {"1.50", "1.5"},
               {"1.0", "1"},      {"1e3", "1000"}, {"1E+2", "100"}, {"25e-3", "0.025"},
               {"-1.5e1", "-15"}, {"0e400", "0"}};
  for (const auto& c : cases) {
    EXPECT_EQ(
        ParseOk(std::string(R"({"action":"View","cookie_id":"c","cid":)") + c.literal + "}")[0].cid,
        c.cid)
        << c.literal;
  }
}

TEST(EventParserTest, NumericCidIsAtMost64BytesAsADecimalString) {
  const std::string ok(64, '9');
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":)" + ok + "}")[0].cid, ok);
  // The limit is on the decimal string, not on the literal.
  EXPECT_EQ(
      ParseOk(R"({"action":"View","cookie_id":"c","cid":1.)" + std::string(500, '0') + "}")[0].cid,
      "1");
  EXPECT_EQ(
      ParseOk(R"({"action":"View","cookie_id":"c","cid":5)" + std::string(100, '0') + "e-100}")[0]
          .cid,
      "5");
  EXPECT_EQ(ParseOk(R"({"action":"View","cookie_id":"c","cid":1e63})")[0].cid,
            "1" + std::string(63, '0'));
  for (const std::string& value : {ok + "9", "-" + ok, std::string("1e64"), std::string("1e-63"),
                                   std::string("1e400"), std::string("-1e400")}) {
    ExpectInvalid(R"({"action":"View","cookie_id":"c","cid":)" + value + "}", "cid",
                  "must be at most 64 bytes as a decimal string");
  }
}

TEST(EventParserTest, CidOfAnotherTypeIsRefused) {
  ExpectInvalid(R"({"action":"View","cookie_id":"c","cid":true})", "cid",
                "must be a string or a number, not a boolean");
  ExpectInvalid(R"({"action":"View","cookie_id":"c","cid":["1"]})", "cid",
                "must be a string or a number, not an array");
}

// --- notification_title, reference_id, utm_* ---

TEST(EventParserTest, TitleIsAtMost1024Bytes) {
  // "é" is two bytes: 512 of them are exactly 1024 bytes.
  std::string title;
  for (int i = 0; i < 512; ++i) title += "\xc3\xa9";
  EXPECT_EQ(ParseOk(View(R"(,"notification_title":")" + title + "\""))[0].notification_title,
            title);
  ExpectInvalid(View(R"(,"notification_title":")" + title + "x\""), "notification_title",
                "must be at most 1024 bytes");
}

TEST(EventParserTest, EscapedStringsAreMeasuredDecoded) {
  // 6 bytes of input per decoded byte: the parser hands these strings and keys over in parts.
  std::string escaped;
  for (int i = 0; i < 1024; ++i) escaped += "\\u0041";
  EXPECT_EQ(ParseOk(View(R"(,"notification_title":")" + escaped + "\""))[0].notification_title,
            std::string(1024, 'A'));
  ExpectInvalid(View(R"(,"notification_title":")" + escaped + "\\n\""), "notification_title",
                "must be at most 1024 bytes");
  ExpectInvalid(View(R"(,"notification_title":"x)" + escaped + "\""), "notification_title",
                "must be at most 1024 bytes");
  ExpectInvalid(View(R"(,"utm_term":"x)" + escaped + "\\u0000\""), "utm_term",
                "must be at most 256 bytes");
  ExpectInvalid(View(R"(,"notification_title":"x)" + escaped.substr(0, 600) + "\\u0000\""),
                "notification_title", "must not contain NUL characters");
  ExpectInvalid(View(",\"" + escaped + "\":1"), std::string(64, 'A'), "unknown field");
  const std::string cookie = "x" + escaped.substr(0, 127 * 6);
  EXPECT_EQ(ParseOk(R"({"action":"View","cid":"1","cookie_id":")" + cookie + "\"}")[0].cookie_id,
            "x" + std::string(127, 'A'));
}

TEST(EventParserTest, ReferenceIdIsAStringOrANumber) {
  EXPECT_EQ(ParseOk(View(R"(,"reference_id":123422)"))[0].reference_id, "123422");
  EXPECT_EQ(ParseOk(View(R"(,"reference_id":"r-1")"))[0].reference_id, "r-1");
  EXPECT_EQ(ParseOk(View(R"(,"reference_id":"")"))[0].reference_id, "");
  ExpectInvalid(View(R"(,"reference_id":")" + std::string(65, 'r') + "\""), "reference_id",
                "must be at most 64 bytes");
  EXPECT_EQ(ParseOk(View(R"(,"reference_id":-5)"))[0].reference_id, "-5");
  ExpectInvalid(View(R"(,"reference_id":{})"), "reference_id",
                "must be a string or a number, not an object");
}

TEST(EventParserTest, UtmFieldsAreStringsOfAtMost256Bytes) {
  for (const char* field :
       {"utm_campaign", "utm_content", "utm_medium", "utm_source", "utm_term"}) {
    SCOPED_TRACE(field);
    const std::string ok(256, 'u');
    const auto events = ParseOk(View(std::string(",\"") + field + "\":\"" + ok + "\""));
    ASSERT_EQ(events.size(), 1u);
    const model::Event& e = events[0];
    EXPECT_EQ(e.utm_campaign.size() + e.utm_content.size() + e.utm_medium.size() +
                  e.utm_source.size() + e.utm_term.size(),
              256u);
    ExpectInvalid(View(std::string(",\"") + field + "\":\"" + ok + "u\""), field,
                  "must be at most 256 bytes");
    ExpectInvalid(View(std::string(",\"") + field + "\":1"), field,
                  "must be a string, not a number");
  }
}

// --- clicked_button ---

TEST(EventParserTest, ClickedButtonIsZeroOneOrTwo) {
  for (int b : {0, 1, 2}) {
    EXPECT_EQ(ParseOk(Click(",\"clicked_button\":" + std::to_string(b)))[0].clicked_button, b);
  }
  for (const char* value : {"3", "-1"}) {
    ExpectInvalid(Click(std::string(",\"clicked_button\":") + value), "clicked_button",
                  "must be 0, 1 or 2");
  }
  for (const char* value : {"1.0", "1e0", "1e400", "99999999999999999999999"}) {
    ExpectInvalid(Click(std::string(",\"clicked_button\":") + value), "clicked_button",
                  "must be the integer 0, 1 or 2");
  }
  ExpectInvalid(Click(R"(,"clicked_button":"1")"), "clicked_button",
                "must be an integer, not a string");
  ExpectInvalid(Click(R"(,"clicked_button":false)"), "clicked_button",
                "must be an integer, not a boolean");
}

TEST(EventParserTest, AViewHasButtonZero) {
  EXPECT_EQ(ParseOk(View(R"(,"clicked_button":0)"))[0].clicked_button, 0);
  ExpectInvalid(View(R"(,"clicked_button":2)"), "clicked_button", "must be 0 for a View");
  // The order of the keys does not matter.
  ExpectInvalid(R"({"clicked_button":1,"cookie_id":"c","cid":"1","action":"View"})",
                "clicked_button", "must be 0 for a View");
}

// A Dismiss is the notification closed without a click: its button is always 0.
TEST(EventParserTest, ADismissIsAcceptedWithButtonZero) {
  const auto events =
      ParseOk(R"({"action":"Dismiss","cookie_id":"c1","cid":"42","clicked_button":0})");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, model::Action::kDismiss);
  EXPECT_EQ(model::ActionName(events[0].action), "Dismiss");
  ExpectInvalid(R"({"action":"Dismiss","cookie_id":"c1","cid":"42","clicked_button":1})",
                "clicked_button", "must be 0 for a Dismiss");
  ExpectInvalid(R"({"action":"dismiss","cookie_id":"c1","cid":"42"})", "action",
                "must be \"View\", \"Click\" or \"Dismiss\"");
  ExpectInvalid(R"({"action":"Dismissed","cookie_id":"c1","cid":"42"})", "action",
                "must be \"View\", \"Click\" or \"Dismiss\"");
}

// The signed beacon token (DESIGN section 2a) is taken as text and checked by ingest later.
TEST(EventParserTest, BeaconIsAStringOfAtMost256Bytes) {
  EXPECT_EQ(ParseOk(Click(R"(,"beacon":"v1.1.abc")"))[0].beacon, "v1.1.abc");
  EXPECT_EQ(ParseOk(Click(R"(,"beacon":"")"))[0].beacon, "") << "sent, so checked";
  EXPECT_EQ(ParseOk(Click())[0].beacon, std::nullopt);
  ExpectInvalid(Click(R"(,"beacon":7)"), "beacon", "must be a string, not a number");
  ExpectInvalid(Click(R"(,"beacon":null)"), "beacon", "must be a string, not null");
  ExpectInvalid(Click(",\"beacon\":\"" + std::string(257, 'a') + "\""), "beacon",
                "must be at most 256 bytes");
  ExpectInvalid(Click(R"(,"beacon":"v1.\n")"), "beacon", "must not contain control characters");
}

// A site whose beacons are off ignores the field (DESIGN 2a), whatever it holds; every other
// field is checked as ever.
TEST(EventParserTest, AnIgnoredBeaconIsNeitherCheckedNorKept) {
  IngestLimits off;
  off.ignore_beacon = true;
  for (const std::string& beacon :
       {std::string(R"("v1.1.abc")"), std::string("7"), std::string("null"),
        std::string(R"({"a":[1,{"b":2}]})"), "\"" + std::string(5000, 'a') + "\"",
        std::string(R"("v1.\n")"), std::string(R"("a","beacon":"b")")}) {
    SCOPED_TRACE(beacon);
    const auto events =
        ParseOk("[" + Click(",\"beacon\":" + beacon) + "," + View() + "]", BodyKind::kJson, off);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].beacon, std::nullopt);
    EXPECT_EQ(events[0].action, model::Action::kClick);
    EXPECT_EQ(events[1].action, model::Action::kView);
  }
  const ParseError error =
      ParseFails(R"({"beacon":7,"action":"View","cookie_id":"c1"})", BodyKind::kJson, off);
  ASSERT_EQ(error.details.size(), 1u);
  EXPECT_EQ(error.details[0].field, "cid");
  EXPECT_EQ(error.details[0].message, "is required");
  const ParseError last =
      ParseFails(R"({"action":"View","cookie_id":"c1","beacon":"x"})", BodyKind::kJson, off);
  ASSERT_EQ(last.details.size(), 1u);
  EXPECT_EQ(last.details[0].field, "cid") << "a required field's absence is not the beacon's";
  // A second beacon after another field adds nothing to that field.
  const auto between =
      ParseOk(R"({"action":"View","cookie_id":"c1","beacon":"x","cid":"5","event_id":"e1",)"
              R"("beacon":"99","utm_source":"s","beacon":{"a":"b"},"beacon":[1]})",
              BodyKind::kJson, off);
  ASSERT_EQ(between.size(), 1u);
  EXPECT_EQ(between[0].cid, "5");
  EXPECT_EQ(between[0].event_id, "e1");
  EXPECT_EQ(between[0].utm_source, "s");
  EXPECT_EQ(between[0].beacon, std::nullopt);
  const ParseError duplicate = ParseFails(R"({"action":"View","cookie_id":"c1","beacon":"x",)"
                                          R"("cid":"5","beacon":"99","cid":"6"})",
                                          BodyKind::kJson, off);
  ASSERT_EQ(duplicate.details.size(), 1u);
  EXPECT_EQ(duplicate.details[0].field, "cid");
  EXPECT_EQ(duplicate.details[0].message, "appears more than once");
}

// --- event_id ---

TEST(EventParserTest, EventIdIsANonEmptyStringOfAtMost128Bytes) {
  const std::string ok(128, 'e');
  EXPECT_EQ(ParseOk(View(R"(,"event_id":")" + ok + "\""))[0].event_id, ok);
  ExpectInvalid(View(R"(,"event_id":")" + ok + "e\""), "event_id", "must be at most 128 bytes");
  ExpectInvalid(View(R"(,"event_id":"")"), "event_id", "must not be empty");
  ExpectInvalid(View(R"(,"event_id":7)"), "event_id", "must be a string, not a number");
}

// --- occurred_at ---

TEST(EventParserTest, OccurredAtTakesRfc3339) {
  EXPECT_EQ(ParseOk(View(R"(,"occurred_at":"2026-11-27T20:00:00Z")"))[0].occurred_at_ms,
            1795809600000);
  EXPECT_EQ(ParseOk(View(R"(,"occurred_at":"2026-11-27T21:00:00.250+01:00")"))[0].occurred_at_ms,
            1795809600250);
  EXPECT_EQ(ParseOk(View(R"(,"occurred_at":"1970-01-01T00:00:00Z")"))[0].occurred_at_ms, 0);
}

TEST(EventParserTest, OccurredAtTakesUnixMilliseconds) {
  EXPECT_EQ(ParseOk(View(R"(,"occurred_at":1795809600250)"))[0].occurred_at_ms, 1795809600250);
  EXPECT_EQ(ParseOk(View(R"(,"occurred_at":253402300799999)"))[0].occurred_at_ms, 253402300799999);
}

TEST(EventParserTest, OccurredAtMustBeATimestamp) {
  for (const char* value : {"\"yesterday\"", "\"2026-11-27\"", "\"2026-11-27T20:00:00\"",
                            "\"2026-02-30T20:00:00Z\"", "\"\"",
                            "\"2026-11-27T20:00:00.000000000000000000000000000000000000000000000000"
                            "000000000Z\""}) {
    ExpectInvalid(View(std::string(R"(,"occurred_at":)") + value), "occurred_at",
                  "must be an RFC 3339 timestamp, such as 2026-11-27T20:00:00Z");
  }
  for (const char* value : {"1.7e12", "1795809600250.0", "1e400"}) {
    ExpectInvalid(View(std::string(R"(,"occurred_at":)") + value), "occurred_at",
                  "must be integer Unix milliseconds or an RFC 3339 string");
  }
  ExpectInvalid(View(R"(,"occurred_at":true)"), "occurred_at",
                "must be an RFC 3339 string or integer Unix milliseconds, not a boolean");
}

TEST(EventParserTest, OccurredAtIsBetween1970AndTheYear9999) {
  for (const char* value : {"-1", "253402300800000", "18446744073709551615",
                            "\"1969-12-31T23:59:59.999Z\"", "\"9999-12-31T23:30:00-01:00\""}) {
    ExpectInvalid(View(std::string(R"(,"occurred_at":)") + value), "occurred_at",
                  "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z");
  }
}

// --- strict typing ---

TEST(EventParserTest, NullIsNeverAccepted) {
  const struct {
    const char* field;
    const char* expected;
  } cases[] = {
      {"action", "\"View\", \"Click\" or \"Dismiss\""},
      {"cookie_id", "a string"},
      {"cid", "a string or a number"},
      {"notification_title", "a string"},
      {"reference_id", "a string or a number"},
      {"utm_campaign", "a string"},
      {"utm_content", "a string"},
      {"utm_medium", "a string"},
      {"utm_source", "a string"},
      {"utm_term", "a string"},
      {"clicked_button", "an integer"},
      {"event_id", "a string"},
      {"occurred_at", "an RFC 3339 string or integer Unix milliseconds"},
  };
  for (const auto& c : cases) {
    ExpectInvalid(std::string("{\"") + c.field + "\":null}", c.field,
                  std::string("must be ") + c.expected + ", not null");
  }
}

TEST(EventParserTest, NestedValuesAreTheWrongTypeAndAreSkipped) {
  const ParseError error =
      ParseFails("[" + View(R"(,"notification_title":{"a":[1,{"b":null}],"c":"d"},"x":1)") + "," +
                 View() + "," + View(R"(,"utm_source":[[],[{}]])") + "]");
  ASSERT_EQ(error.details.size(), 2u);
  EXPECT_EQ(error.details[0].index, 0u);
  EXPECT_EQ(error.details[0].field, "notification_title");
  EXPECT_EQ(error.details[0].message, "must be a string, not an object");
  EXPECT_EQ(error.details[1].index, 2u);
  EXPECT_EQ(error.details[1].field, "utm_source");
  EXPECT_EQ(error.details[1].message, "must be a string, not an array");
}

TEST(EventParserTest, UnknownFieldsAreRefused) {
  ExpectInvalid(View(R"(,"utm_campaing":"typo")"), "utm_campaing", "unknown field");
  ExpectInvalid(View(R"(,"site_id":{"nested":[1,2,3]})"), "site_id", "unknown field");
  ExpectInvalid(View(R"(,"Action":"View")"), "Action", "unknown field");
}

TEST(EventParserTest, LongUnknownFieldNamesAreCutOnACharacterBoundary) {
  // 63 ASCII bytes then a two-byte character straddling the 64-byte cut.
  const std::string key = std::string(63, 'k') + "\xc3\xa9" + std::string(100, 'z');
  ExpectInvalid(View(",\"" + key + "\":1"), std::string(63, 'k'), "unknown field");
}

TEST(EventParserTest, DuplicateKeysAreRefused) {
  ExpectInvalid(R"({"action":"View","action":"Click","cookie_id":"c","cid":"1"})", "action",
                "appears more than once");
  ExpectInvalid(View(R"(,"utm_term":"a","utm_term":"a")"), "utm_term", "appears more than once");
  // An escaped key is the same key.
  ExpectInvalid(View(R"(,"cookie\u005fid":"d")"), "cookie_id", "appears more than once");
}

// --- characters ---

TEST(EventParserTest, MultibyteUtf8IsAcceptedAsIs) {
  const std::string title = "Soldes d\xe2\x80\x99\xc3\xa9t\xc3\xa9 \xf0\x9f\x8e\x89 \xe6\x97\xa5";
  const auto events =
      ParseOk(View(",\"notification_title\":\"" + title + R"(","utm_term":"\u00e9\ud83c\udf89")"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].notification_title, title);
  EXPECT_EQ(events[0].utm_term, "\xc3\xa9\xf0\x9f\x8e\x89");
}

TEST(EventParserTest, InvalidUtf8IsRefused) {
  // The bad sequence starts at byte 69 in each case.
  const std::string prefix =
      R"({"action":"View","cookie_id":"c1","cid":"42","notification_title":"ab)";
  ASSERT_EQ(prefix.size(), 69u);
  for (const char* bad : {"\xff", "\xc0\xaf", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
    SCOPED_TRACE(bad);
    const ParseError error = ParseFails(prefix + bad + "\"}");
    EXPECT_EQ(error.code, "invalid_json");
    ASSERT_TRUE(error.offset.has_value());
    EXPECT_EQ(*error.offset, 69u);
    EXPECT_EQ(error.message, "body is not valid JSON at byte 69: invalid UTF-8");
  }
  // In a key too.
  EXPECT_EQ(ParseFails("{\"k\xff\":1}").code, "invalid_json");
  // A byte order mark is well-formed UTF-8, and says so.
  EXPECT_EQ(ParseFails("\xEF\xBB\xBF{\"action\":\"View\"}").message,
            "body is not valid JSON at byte 0: a byte order mark (U+FEFF), which JSON does not "
            "take; send the JSON without it");
}

TEST(EventParserTest, LoneSurrogateEscapesAreRefused) {
  EXPECT_EQ(ParseFails(View(R"(,"notification_title":"\ud800")")).code, "invalid_json");
  EXPECT_EQ(ParseFails(View(R"(,"notification_title":"\udc00x")")).code, "invalid_json");
}

TEST(EventParserTest, IdentifiersRefuseControlCharacters) {
  for (const char* value : {R"(a\u0000b)", R"(a\nb)", R"(\t)", R"(x\u007f)", R"(\u001f)"}) {
    ExpectInvalid(std::string(R"({"action":"View","cid":"1","cookie_id":")") + value + "\"}",
                  "cookie_id", "must not contain control characters");
    ExpectInvalid(std::string(R"({"action":"View","cookie_id":"c","cid":")") + value + "\"}", "cid",
                  "must not contain control characters");
    ExpectInvalid(View(std::string(R"(,"reference_id":")") + value + "\""), "reference_id",
                  "must not contain control characters");
    ExpectInvalid(View(std::string(R"(,"event_id":")") + value + "\""), "event_id",
                  "must not contain control characters");
  }
}

TEST(EventParserTest, FreeTextRefusesOnlyNul) {
  const auto events = ParseOk(View(R"(,"notification_title":"line 1\nline 2\t\u001f")"));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].notification_title, "line 1\nline 2\t\x1f");
  ExpectInvalid(View(R"(,"notification_title":"a\u0000")"), "notification_title",
                "must not contain NUL characters");
  ExpectInvalid(View(R"(,"utm_source":"\u0000")"), "utm_source", "must not contain NUL characters");
}

// --- not JSON ---

TEST(EventParserTest, TruncatedJsonGivesTheOffset) {
  ExpectInvalidJson(R"({"action":"View")", 16,
                    "body is not valid JSON at byte 16: unexpected end of input");
  ExpectInvalidJson(R"([{"action":"View"},)", 19,
                    "body is not valid JSON at byte 19: unexpected end of input");
  ExpectInvalidJson(R"({"action":"Vi)", 13,
                    "body is not valid JSON at byte 13: unexpected end of input");
}

TEST(EventParserTest, SyntaxErrorsGiveTheOffset) {
  ExpectInvalidJson(R"({"action":})", 10, "body is not valid JSON at byte 10: syntax error");
  ExpectInvalidJson(R"([{"action":"View"},])", 19,
                    "body is not valid JSON at byte 19: syntax error");
  ExpectInvalidJson("{'action':'View'}", 1, "body is not valid JSON at byte 1: syntax error");
  ExpectInvalidJson(View() + " " + View(), 46,
                    "body is not valid JSON at byte 46: unexpected data after the JSON value");
  ExpectInvalidJson("action=View", 0, "body is not valid JSON at byte 0: syntax error");
  ExpectInvalidJson(R"({"action":"View","cookie_id":"\ud800"})", 36,
                    "body is not valid JSON at byte 36: the escape \\ud800 is half of a UTF-16 "
                    "surrogate pair, and its other half does not follow");
}

TEST(EventParserTest, InvalidJsonWinsOverInvalidEvents) {
  EXPECT_EQ(ParseFails(R"([{"bogus":1},{"action":)").code, "invalid_json");
}

TEST(EventParserTest, NdjsonBadLineGivesTheOffsetInTheWholeBody) {
  const std::string first = View();  // 45 bytes
  ASSERT_EQ(first.size(), 45u);
  ExpectInvalidJson(first + "\r\n\n" + R"({"action":)" + "\n" + first, 58,
                    "body is not valid JSON at byte 58 (line 3): unexpected end of input",
                    BodyKind::kNdjson);
  // Two objects on one line.
  ExpectInvalidJson(first + "\n" + first + first, 91,
                    "body is not valid JSON at byte 91 (line 2): unexpected data after the JSON "
                    "value",
                    BodyKind::kNdjson);
}

TEST(EventParserTest, DeepNestingIsRefused) {
  // An unknown field holding 15 nested arrays inside an event inside the top array: 17 deep.
  std::string deep = View(",\"x\":" + std::string(15, '[') + std::string(15, ']'));
  const ParseError error = ParseFails("[" + deep + "]");
  EXPECT_EQ(error.code, "invalid_json");
  EXPECT_EQ(error.message, "body is not valid JSON at byte 64: nested more than 16 levels deep");
  EXPECT_EQ(error.offset, 64u);
  // 16 deep is still JSON; the event is merely invalid.
  std::string ok = View(",\"x\":" + std::string(14, '[') + std::string(14, ']'));
  EXPECT_EQ(ParseFails("[" + ok + "]").code, "invalid_event");
  // Far deeper than any stack would take.
  EXPECT_EQ(ParseFails(std::string(100000, '[')).code, "invalid_json");
}

TEST(EventParserTest, HugeNumbersAreHandled) {
  ExpectInvalid(View(R"(,"utm_term":1e400)"), "utm_term", "must be a string, not a number");
  ExpectInvalid(View(R"(,"utm_term":-99999999999999999999999)"), "utm_term",
                "must be a string, not a number");
  ExpectInvalid(View(R"(,"x":1e400)"), "x", "unknown field");
  ExpectInvalid(View(",\"reference_id\":" + std::string(5000, '9')), "reference_id",
                "is a number literal of more than 4096 bytes");
  ExpectInvalid(View(",\"reference_id\":1." + std::string(5000, '0')), "reference_id",
                "is a number literal of more than 4096 bytes");
}

// --- ToJson ---

TEST(ParseErrorTest, InvalidEventToJson) {
  const ParseError error = ParseFails("[" + View() + "," + View(R"(,"action":"Click")") + "," +
                                      R"({"action":"Nope","cookie_id":"c","cid":"1"}])");
  EXPECT_EQ(
      error.ToJson(),
      R"({"error":{"code":"invalid_event","message":"2 of 3 events are invalid; none was )"
      R"(stored","details":[{"index":1,"field":"action","message":"appears more than once"},)"
      R"({"index":2,"field":"action","message":"must be \"View\", \"Click\" or \"Dismiss\""}]}})");
}

TEST(ParseErrorTest, InvalidJsonToJson) {
  EXPECT_EQ(ParseFails(R"({"action":})").ToJson(),
            R"({"error":{"code":"invalid_json","message":"body is not valid JSON at byte 10: )"
            R"(syntax error","offset":10}})");
}

TEST(ParseErrorTest, NoEventsAndTooManyToJson) {
  EXPECT_EQ(ParseFails("[]").ToJson(),
            R"({"error":{"code":"invalid_event","message":"body holds no events","details":[]}})");
  IngestLimits limits;
  limits.max_events = 1;
  EXPECT_EQ(ParseFails("[{},{}]", BodyKind::kJson, limits).ToJson(),
            R"({"error":{"code":"too_many_events","message":"body holds more than 1 event; )"
            R"(send at most 1 per request"}})");
}

TEST(ParseErrorTest, ToJsonEscapesEchoedFieldNames) {
  EXPECT_EQ(ParseFails(View(R"(,"a\"b\u0001":1)")).ToJson(),
            R"({"error":{"code":"invalid_event","message":"the event is invalid; it was not )"
            R"(stored","details":[{"index":0,"field":"a\"b\u0001","message":"unknown field"}]}})");
}

}  // namespace
}  // namespace pushhook::ingest
