#include "ingest/beacon_check.h"

#include <gtest/gtest.h>

#include "model/beacon.h"

namespace pushhook::ingest {
namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;
constexpr int64_t kNowS = kNowMs / 1000;

class BeaconCheckTest : public ::testing::Test {
 protected:
  BeaconCheckTest() {
    site_.site_id = "site_a";
    site_.key = std::string(32, 'k');
  }

  static model::Event Event(model::Action action = model::Action::kClick, int button = 1) {
    model::Event e;
    e.action = action;
    e.clicked_button = button;
    e.cid = "1123123";
    e.reference_id = "123422";
    e.cookie_id = "cookie";
    e.event_id = "client-id";
    return e;
  }
  std::string Token(const std::string& key, const model::Event& e, int64_t expires_s,
                    std::string_view site = "site_a") const {
    return model::MakeBeaconToken(key, {site, e.cid, e.reference_id, e.cookie_id}, expires_s);
  }

  SiteBeacons site_;
};

TEST_F(BeaconCheckTest, AValidTokenKeysTheEventAndIsDropped) {
  std::vector<model::Event> events{Event(), Event(model::Action::kView, 0)};
  events[0].beacon = Token(site_.key, events[0], kNowS + 60);
  events[1].beacon = events[0].beacon;
  ASSERT_FALSE(CheckBeacons(site_, events, kNowMs).has_value());
  EXPECT_EQ(events[0].replay_key, model::BeaconReplayKey(Token(site_.key, events[0], kNowS + 60),
                                                         model::Action::kClick, 1));
  EXPECT_EQ(events[0].event_id, "client-id") << "the client's key still reaches the payload";
  EXPECT_NE(events[0].replay_key, events[1].replay_key) << "one token counts each action once";
  EXPECT_FALSE(events[0].beacon);
  EXPECT_FALSE(events[1].beacon);
}

TEST_F(BeaconCheckTest, OptionalTakesEventsWithoutATokenAsTheyAre) {
  std::vector<model::Event> events{Event()};
  ASSERT_FALSE(CheckBeacons(site_, events, kNowMs).has_value());
  EXPECT_EQ(events[0].event_id, "client-id");
}

TEST_F(BeaconCheckTest, RequiredRefusesAnEventWithoutOne) {
  site_.mode = store::BeaconMode::kRequired;
  std::vector<model::Event> events{Event(), Event()};
  events[0].beacon = Token(site_.key, events[0], kNowS + 60);
  const auto error = CheckBeacons(site_, events, kNowMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, kBeaconRequired);
  EXPECT_EQ(
      error->ToJson(),
      R"({"error":{"code":"beacon_required","message":"a beacon token did not pass; )"
      R"(nothing of the request was stored","details":[{"index":1,"field":"beacon",)"
      R"("message":"is required: this site takes only events with a signed beacon token"}]}})");
}

TEST_F(BeaconCheckTest, AnEmptyTokenIsSentSoItIsCheckedAndRefused) {
  for (const store::BeaconMode mode :
       {store::BeaconMode::kOptional, store::BeaconMode::kRequired}) {
    site_.mode = mode;
    std::vector<model::Event> events{Event()};
    events[0].beacon = "";
    const auto error = CheckBeacons(site_, events, kNowMs);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->code, kBeaconInvalid);
    ASSERT_EQ(error->details.size(), 1u);
    EXPECT_EQ(error->details[0].message,
              "is empty: send the token the push backend made, or leave the field out");
  }
}

TEST_F(BeaconCheckTest, AtMostAHundredEventsAreNamed) {
  site_.mode = store::BeaconMode::kRequired;
  std::vector<model::Event> events(150, Event());
  const auto error = CheckBeacons(site_, events, kNowMs);
  ASSERT_TRUE(error.has_value());
  ASSERT_EQ(error->details.size(), kMaxErrorDetails);
  EXPECT_EQ(error->details.back().index, 99u);
}

TEST_F(BeaconCheckTest, ForgedMismatchedAndExpiredTokensAreNamedEach) {
  std::vector<model::Event> events{Event(), Event(), Event(), Event(), Event()};
  events[0].beacon = Token(std::string(32, 'x'), events[0], kNowS + 60);  // another key
  events[1].beacon = Token(site_.key, events[1], kNowS + 60, "site_b");   // another site
  model::Event other = events[2];
  other.cookie_id = "someone-else";
  events[2].beacon = Token(site_.key, other, kNowS + 60);  // another subscriber
  events[3].beacon = Token(site_.key, events[3], kNowS);   // expired this second
  events[4].beacon = Token(site_.key, events[4], kNowS + 60);
  const auto error = CheckBeacons(site_, events, kNowMs);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, kBeaconInvalid) << "the first bad event's code";
  ASSERT_EQ(error->details.size(), 4u);
  const std::string invalid =
      "is not a token of this site for this event's cid, reference_id and cookie_id";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(error->details[i].index, i);
    EXPECT_EQ(error->details[i].field, "beacon");
    EXPECT_EQ(error->details[i].message, invalid);
  }
  EXPECT_EQ(error->details[3].index, 3u);
  EXPECT_EQ(error->details[3].message, "has expired");
  EXPECT_EQ(events[4].event_id, "client-id") << "a refused request changes no event";

  std::vector<model::Event> expired{Event()};
  expired[0].beacon = Token(site_.key, expired[0], kNowS - 1);
  EXPECT_EQ(CheckBeacons(site_, expired, kNowMs)->code, kBeaconExpired);

  // Signed right, for the right fields, but beyond the 30 days a token may live: said so.
  std::vector<model::Event> far{Event()};
  far[0].beacon = Token(site_.key, far[0], kNowS + 31 * 24 * 3600);
  const auto too_far = CheckBeacons(site_, far, kNowMs);
  ASSERT_TRUE(too_far.has_value());
  EXPECT_EQ(too_far->code, kBeaconInvalid);
  EXPECT_EQ(too_far->details.at(0).message,
            "expires more than 30 days from now; a token may live at most 30 days");
}

TEST_F(BeaconCheckTest, EachPreviousSecretVerifiesUntilItsOverlapEnds) {
  const std::string older_key(32, 'p'), old_key(32, 'o');
  site_.previous = {{old_key, kNowMs + 2000}, {older_key, kNowMs + 1000}};
  const auto passes = [&](const std::string& key, int64_t now_ms) {
    std::vector<model::Event> events{Event()};
    events[0].beacon = Token(key, events[0], kNowS + 60);
    return !CheckBeacons(site_, events, now_ms).has_value();
  };
  EXPECT_TRUE(passes(old_key, kNowMs));
  EXPECT_TRUE(passes(older_key, kNowMs));
  EXPECT_TRUE(passes(old_key, kNowMs + 1000));
  EXPECT_FALSE(passes(older_key, kNowMs + 1000));
  EXPECT_FALSE(passes(old_key, kNowMs + 2000));
  EXPECT_TRUE(passes(site_.key, kNowMs + 2000));
}

TEST_F(BeaconCheckTest, OffIgnoresEvenAForgedToken) {
  site_.mode = store::BeaconMode::kOff;
  std::vector<model::Event> events{Event()};
  events[0].beacon = "v1.1.forged";
  EXPECT_FALSE(CheckBeacons(site_, events, kNowMs).has_value());
  EXPECT_EQ(events[0].event_id, "client-id");
  EXPECT_FALSE(events[0].beacon);
}

TEST_F(BeaconCheckTest, SiteBeaconsDecodeTheSecrets) {
  store::Site site;
  site.id = "site_a";
  site.beacons = store::BeaconMode::kRequired;
  site.beacon_secret = "bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  const SiteBeacons beacons = SiteBeacons::Of(site);
  EXPECT_EQ(beacons.mode, store::BeaconMode::kRequired);
  ASSERT_EQ(beacons.key.size(), 32u);
  EXPECT_EQ(beacons.key[31], '\x1f');
  EXPECT_TRUE(beacons.previous.empty());
  site.previous_beacon_secrets = {{"bsec_AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 7},
                                  {"not a secret", 8}};
  const SiteBeacons rotated = SiteBeacons::Of(site);
  ASSERT_EQ(rotated.previous.size(), 1u) << "a secret that does not decode verifies nothing";
  EXPECT_EQ(rotated.previous[0].key[0], '\x01');
  EXPECT_EQ(rotated.previous[0].until_ms, 7);
}

}  // namespace
}  // namespace pushhook::ingest
