#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "model/beacon.h"
#include "model/digest.h"
#include "model/signature.h"
#include "store/coordination.h"
#include "store/internal/attempt_stats.h"
#include "store/internal/counters.h"
#include "store/open_store.h"
#include "store/testing/pg_test_db.h"
#include "util/testing/file_size_limit.h"
#include "util/testing/temp_dir.h"

namespace pushhook::store {
namespace {

std::string BackendName(const ::testing::TestParamInfo<std::string>& backend) {
  return backend.param;
}

// The value of a store call that must succeed; a failure shows the store's message instead of
// reading an empty result.
template <typename T>
T Value(model::StatusOr<T> result) {
  if (!result.ok()) {
    ADD_FAILURE() << "store call failed: " << result.status().message();
    return T{};
  }
  return std::move(result).value();
}

// One conformance suite for every Store: each test runs against SQLite (a file in a fresh
// folder) and PostgreSQL (a fresh database on the server of the ctest fixture `postgres`,
// test/postgres). Reopen() is a restart: the store object goes and OpenStore comes back to the
// same database.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (Postgres()) {
      auto server = testing::FixtureServerUrl();
      ASSERT_TRUE(server.ok()) << server.status().message();
      if (!server->has_value()) GTEST_SKIP() << "PUSHHOOK_TEST_POSTGRES_DIR not set";
      server_url_ = **server;
    } else {
      dir_.emplace("pushhook-store");
    }
    auto url = DatabaseUrl("test");
    ASSERT_TRUE(url.ok()) << url.status().message();
    options_.database = *url;
    // Sealed secrets, as in `serve`; a test that reopens keeps the key, as a restart does.
    options_.secrets_key = std::string(32, 'k');
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    for (auto& [name, database] : databases_) {
      const model::Status dropped = database->Drop();
      EXPECT_TRUE(dropped.ok()) << dropped.message();
    }
    databases_.clear();
  }
  void Reopen() {
    store_.reset();
    auto opened = OpenStore(options_);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened.value());
  }

  bool Postgres() const { return GetParam() == "postgres"; }

  // The URL of this test's database `name`, made on first use: a file in the test's folder, or
  // a database of its own on the PostgreSQL server.
  model::StatusOr<std::string> DatabaseUrl(const std::string& name) {
    if (!Postgres()) return "sqlite://" + dir_->File(name + ".db");
    std::unique_ptr<testing::PgTestDatabase>& database = databases_[name];
    if (database == nullptr) {
      auto created = testing::PgTestDatabase::Create(server_url_);
      if (!created.ok()) return created.status();
      database = std::move(created.value());
    }
    return database->url();
  }

  // Everything the backend keeps of database `name`, to search for what must not be there.
  std::string StoredBytes(const std::string& name) {
    if (Postgres()) {
      auto text = databases_.at(name)->DumpText();
      EXPECT_TRUE(text.ok()) << text.status().message();
      return text.ok() ? *text : "";
    }
    std::string bytes;
    for (const char* suffix : {".db", ".db-wal"}) {
      std::ifstream file(dir_->File(name + suffix), std::ios::binary);
      bytes.append(std::istreambuf_iterator<char>(file), {});
    }
    return bytes;
  }

  // Runs `sql` on this test's database "test" behind the store's back (close the store first).
  void RunSql(const std::string& sql) {
    if (Postgres()) {
      const model::Status ran = databases_.at("test")->Run(sql);
      ASSERT_TRUE(ran.ok()) << ran.message();
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_->File("test.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }

  // The site's first `limit` campaigns in the store's default order.
  std::vector<CampaignSummary> Campaigns(const std::string& site_id, int limit = 10) {
    CampaignQuery q;
    q.site_id = site_id;
    q.limit = limit;
    return Value(store_->ListCampaigns(q));
  }

  Endpoint MakeEndpoint(const std::string& site_id, model::EventFilter filter = {}) {
    Endpoint e;
    e.site_id = site_id;
    e.url = "http://127.0.0.1:9/hook";
    e.filter = filter;
    e.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    auto created = store_->CreateEndpoint(e);
    EXPECT_TRUE(created.ok()) << created.status().message();
    return created.ok() ? created.value() : Endpoint{};
  }

  AppendResult Append(const std::string& site_id, std::vector<model::Event> events,
                      int64_t now_ms = 1000) {
    std::promise<model::StatusOr<AppendResult>> promise;
    store_->AppendEvents(site_id, std::move(events), now_ms,
                         [&](model::StatusOr<AppendResult> r) { promise.set_value(std::move(r)); });
    auto result = promise.get_future().get();
    EXPECT_TRUE(result.ok()) << result.status().message();
    if (!result.ok()) return AppendResult{};
    std::lock_guard lock(endpoint_of_mu_);  // some tests append from several threads
    for (const DueMessage& m : result->messages) endpoint_of_[m.id] = m.endpoint_id;
    return result.value();
  }

  // Gives each record its message's endpoint, as the dispatcher does, from the messages that
  // Append() made.
  void NameEndpoints(std::vector<AttemptRecord>& records) {
    std::lock_guard lock(endpoint_of_mu_);
    for (AttemptRecord& record : records) {
      if (auto it = endpoint_of_.find(record.message_id); it != endpoint_of_.end()) {
        record.endpoint_id = it->second;
      }
    }
  }

  // Fixes `ids` as the members of batch `batch`, as the dispatcher does before sending it.
  void AssignBatch(std::vector<int64_t> ids, int64_t batch) {
    std::promise<model::Status> assigned;
    store_->AssignBatch(std::move(ids), batch, [&](model::Status s) { assigned.set_value(s); });
    const model::Status status = assigned.get_future().get();
    EXPECT_TRUE(status.ok()) << status.message();
  }

  void Record(std::vector<AttemptRecord> records) {
    NameEndpoints(records);
    std::promise<model::Status> promise;
    store_->RecordAttempts(std::move(records),
                           [&](model::Status s) { promise.set_value(std::move(s)); });
    const model::Status recorded = promise.get_future().get();
    EXPECT_TRUE(recorded.ok()) << recorded.message();
  }

  // Every pending message in id order, read as the dispatcher's start-up reads them: endpoint
  // by endpoint.
  std::vector<DueMessage> AllPending() {
    std::vector<DueMessage> all;
    for (const std::string& endpoint : Value(store_->ListPendingEndpoints())) {
      auto mine = Value(store_->LoadPendingForEndpoint(endpoint, 0, 100'000));
      all.insert(all.end(), mine.begin(), mine.end());
    }
    std::sort(all.begin(), all.end(),
              [](const DueMessage& x, const DueMessage& y) { return x.id < y.id; });
    return all;
  }

  static model::Event MakeEvent(model::Action action, std::string event_id) {
    model::Event e;
    e.action = action;
    e.cookie_id = "cookie";
    e.cid = "42";
    e.event_id = std::move(event_id);
    e.occurred_at_ms = 5;
    return e;
  }

  static std::vector<int64_t> Ids(const std::vector<DueMessage>& messages) {
    std::vector<int64_t> ids;
    for (const DueMessage& m : messages) ids.push_back(m.id);
    return ids;
  }

  StoreOptions options_;
  std::optional<util::testing::TempDir> dir_;  // SQLite only
  std::string server_url_;
  std::map<std::string, std::unique_ptr<testing::PgTestDatabase>> databases_;
  std::unique_ptr<Store> store_;
  std::mutex endpoint_of_mu_;
  std::map<int64_t, std::string> endpoint_of_;  // each message Append() made, its endpoint
};

// Counters as text, so that a mismatch shows every field.
std::string Text(const model::Counters& n) {
  return "views=" + std::to_string(n.views) + " clicks=" + std::to_string(n.clicks) +
         " buttons=" + std::to_string(n.clicks_by_button[0]) + "/" +
         std::to_string(n.clicks_by_button[1]) + "/" + std::to_string(n.clicks_by_button[2]);
}
std::string Text(int64_t views, int64_t clicks, int64_t b0, int64_t b1, int64_t b2) {
  model::Counters n;
  n.views = views;
  n.clicks = clicks;
  n.clicks_by_button = {b0, b1, b2};
  return Text(n);
}
std::string Text(const StatsRow& row) { return row.key + ": " + Text(row.counters); }

std::string Text(const model::Event& e) {
  return std::string(model::ActionName(e.action)) + "|" + e.cookie_id + "|" + e.cid + "|" +
         e.notification_title + "|" + e.reference_id + "|" + e.utm_campaign + "|" + e.utm_content +
         "|" + e.utm_medium + "|" + e.utm_source + "|" + e.utm_term + "|" +
         std::to_string(e.clicked_button) + "|" + e.event_id + "|" +
         std::to_string(e.occurred_at_ms);
}

TEST(CounterColumnsTest, EachCounterRepeatsThePhrasePerColumnInOrder) {
  EXPECT_EQ(internal::EachCounter("{}"), "views, clicks, b0, b1, b2, dismissals");
  EXPECT_EQ(internal::EachCounter("sum({})"),
            "sum(views), sum(clicks), sum(b0), sum(b1), sum(b2), sum(dismissals)");
  EXPECT_EQ(internal::EachCounter("{} = t.{}"),
            "views = t.views, clicks = t.clicks, b0 = t.b0, b1 = t.b1, b2 = t.b2, "
            "dismissals = t.dismissals");
  EXPECT_EQ(internal::EachCounter("?"), "?, ?, ?, ?, ?, ?");
}

// A row of the counters' values in column order, read back as they went in.
TEST(CounterColumnsTest, ValuesReadBackAsCounters) {
  model::Counters n;
  n.views = 7;
  n.clicks = 5;
  n.clicks_by_button = {1, 2, 3};
  n.dismissals = 11;
  struct Row {
    std::vector<int64_t> columns;
    int64_t Int(int i) const { return columns.at(static_cast<size_t>(i)); }
  } row{{-1}};
  for (const int64_t value : internal::CounterValues(n)) row.columns.push_back(value);
  const model::Counters read = internal::ReadCounters(row, 1);
  EXPECT_EQ(read.views, 7);
  EXPECT_EQ(read.clicks, 5);
  EXPECT_EQ(read.clicks_by_button, (std::array<int64_t, 3>{1, 2, 3}));
  EXPECT_EQ(read.dismissals, 11);
  EXPECT_EQ(row.columns.size(), 1 + internal::kCounterColumns.size());
}

// The latency GetEndpointStats answers for an attempt of `latency_us`: the geometric middle of
// its bucket, a quarter of a doubling wide, worked out here in floating point.
int64_t BucketMiddle(int64_t latency_us) {
  const double bucket = std::floor(4 * std::log2(static_cast<double>(latency_us)));
  return std::llround(std::exp2((bucket + 0.5) / 4));
}

TEST(LatencyBucketTest, IsFloorOfFourTimesLog2AtEveryEdge) {
  EXPECT_EQ(internal::LatencyBucket(-5), 0);
  EXPECT_EQ(internal::LatencyBucket(0), 0);
  EXPECT_EQ(internal::LatencyBucket(1), 0);
  EXPECT_EQ(internal::LatencyBucket(2), 4);
  EXPECT_EQ(internal::LatencyBucket(3), 6);  // 4 * log2(3) = 6.34
  for (int k = 3; k < 63; ++k) {
    const int64_t power = int64_t{1} << k;
    EXPECT_EQ(internal::LatencyBucket(power), 4 * k) << k;
    EXPECT_EQ(internal::LatencyBucket(power - 1), 4 * k - 1) << k;
  }
  EXPECT_EQ(internal::LatencyBucket(INT64_MAX), 4 * 62 + 3);
  // The least integers at or above 2^(k + j/4), worked out with exact integers: each starts
  // bucket 4k + j, and the integer below it is in the bucket before.
  const std::vector<std::pair<int, std::vector<int64_t>>> starts = {
      {3, {10, 12, 14}},
      {9, {609, 725, 862}},
      {20, {1'246'975, 1'482'911, 1'763'488}},
      {31, {2'553'802'834, 3'037'000'500, 3'611'622'603}},
      {33, {10'215'211'335, 12'148'002'000, 14'446'490'412}},
      {45, {41'841'505'624'943, 49'758'216'191'608, 59'172'824'724'904}},
  };
  for (const auto& [k, firsts] : starts) {
    for (int j = 1; j <= 3; ++j) {
      const int64_t first = firsts[static_cast<size_t>(j - 1)];
      EXPECT_EQ(internal::LatencyBucket(first), 4 * k + j) << first;
      EXPECT_EQ(internal::LatencyBucket(first - 1), 4 * k + j - 1) << first - 1;
    }
  }
}

// From 1 ms up, where rounding the middle to whole µs no longer matters.
TEST(LatencyBucketTest, AMiddleIsInItsBucketWithinNinePercentOfEitherEnd) {
  for (int bucket = 40; bucket < 250; ++bucket) {
    const double low = std::exp2(bucket / 4.0);
    const double high = std::exp2((bucket + 1) / 4.0);
    const int64_t middle = internal::LatencyBucketMiddle(bucket);
    EXPECT_LE(static_cast<double>(middle) / low, 1.091) << bucket;
    EXPECT_LE(high / static_cast<double>(middle), 1.091) << bucket;
    EXPECT_EQ(internal::LatencyBucket(middle), bucket) << bucket;
  }
}

TEST(LatencyBucketTest, APercentileIsTheMiddleOfTheBucketAtItsRank) {
  EXPECT_EQ(internal::LatencyPercentile({}, 0.5), 0);
  // 100 attempts: rank floor(0.5 * 100) = 50 is in bucket 40, rank 99 in bucket 80.
  const internal::LatencyHistogram histogram{{0, 1}, {40, 98}, {80, 1}};
  EXPECT_EQ(internal::LatencyPercentile(histogram, 0.0), internal::LatencyBucketMiddle(0));
  EXPECT_EQ(internal::LatencyPercentile(histogram, 0.5), internal::LatencyBucketMiddle(40));
  EXPECT_EQ(internal::LatencyPercentile(histogram, 0.98), internal::LatencyBucketMiddle(40));
  EXPECT_EQ(internal::LatencyPercentile(histogram, 0.99), internal::LatencyBucketMiddle(80));
  EXPECT_EQ(internal::LatencyPercentile(histogram, 1.0), internal::LatencyBucketMiddle(80));
}

TEST_P(StoreTest, SitesAreFoundByIdAndIngestKey) {
  auto site = store_->CreateSite("Shop");
  ASSERT_TRUE(site.ok());
  EXPECT_EQ(site->id.rfind("site_", 0), 0u);
  EXPECT_EQ(site->ingest_key.rfind("pk_", 0), 0u);
  EXPECT_EQ(store_->GetSite(site->id)->name, "Shop");
  EXPECT_EQ(store_->FindSiteByIngestKey(site->ingest_key, 0)->id, site->id);
  EXPECT_EQ(store_->FindSiteByIngestKey("pk_nope", 0).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetSite("site_nope").status().code(), model::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListSites()->size(), 1u);
}

// Every site has a beacon secret, sealed at rest like endpoint secrets; a rotation keeps the old
// one for the overlap; a patch changes only what it names.
TEST_P(StoreTest, SitesKeepBeaconSecretsAndModes) {
  const Site site = Value(store_->CreateSite("Shop"));
  EXPECT_EQ(site.beacon_secret.rfind("bsec_", 0), 0u);
  EXPECT_TRUE(model::DecodeBeaconSecret(site.beacon_secret).has_value());
  EXPECT_EQ(site.beacons, BeaconMode::kOptional);
  EXPECT_EQ(Value(store_->GetSite(site.id)).beacon_secret, site.beacon_secret);
  EXPECT_EQ(StoredBytes("test").find(site.beacon_secret.substr(5)), std::string::npos)
      << "a beacon secret is stored in the clear";

  SitePatch patch;
  patch.beacons = BeaconMode::kRequired;
  const Site required = Value(store_->UpdateSite(site.id, patch));
  EXPECT_EQ(required.beacons, BeaconMode::kRequired);
  EXPECT_EQ(required.name, "Shop");
  patch = SitePatch{};
  patch.name = "Shop 2";
  const Site renamed = Value(store_->UpdateSite(site.id, patch));
  EXPECT_EQ(renamed.name, "Shop 2");
  EXPECT_EQ(renamed.beacons, BeaconMode::kRequired) << "a rename kept the mode";
  EXPECT_EQ(store_->UpdateSite("site_nope", patch).status().code(), model::StatusCode::kNotFound);

  const Site rotated = Value(store_->RotateBeaconSecret(site.id, 5000, kBeaconSecretOverlapMs));
  EXPECT_NE(rotated.beacon_secret, site.beacon_secret);
  EXPECT_EQ(rotated.previous_beacon_secrets,
            (std::vector<PreviousSecret>{{site.beacon_secret, 5000 + kBeaconSecretOverlapMs}}));
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(site.ingest_key, 5000)).beacon_secret,
            rotated.beacon_secret);
  // Again within the overlap: both earlier secrets keep their own time, sealed at rest too.
  const Site again = Value(store_->RotateBeaconSecret(site.id, 6000, kBeaconSecretOverlapMs));
  EXPECT_EQ(Value(store_->GetSite(site.id)).previous_beacon_secrets,
            (std::vector<PreviousSecret>{{rotated.beacon_secret, 6000 + kBeaconSecretOverlapMs},
                                         {site.beacon_secret, 5000 + kBeaconSecretOverlapMs}}));
  EXPECT_EQ(StoredBytes("test").find(rotated.beacon_secret.substr(5)), std::string::npos)
      << "a previous beacon secret is stored in the clear";
  // Once the first overlap is over, a rotation drops the secret it covered.
  const int64_t later = 5000 + kBeaconSecretOverlapMs;
  EXPECT_EQ(Value(store_->RotateBeaconSecret(site.id, later, kBeaconSecretOverlapMs))
                .previous_beacon_secrets,
            (std::vector<PreviousSecret>{{again.beacon_secret, later + kBeaconSecretOverlapMs},
                                         {rotated.beacon_secret, 6000 + kBeaconSecretOverlapMs}}));
  EXPECT_EQ(store_->RotateBeaconSecret("site_nope", 0, kBeaconSecretOverlapMs).status().code(),
            model::StatusCode::kNotFound);
  // No overlap (a leaked secret): every earlier secret ends now.
  EXPECT_TRUE(Value(store_->RotateBeaconSecret(site.id, later, 0)).previous_beacon_secrets.empty());
}

TEST_P(StoreTest, TokensMapToTheirSite) {
  auto site = store_->CreateSite("a");
  ASSERT_TRUE(store_->AddSiteToken(site->id, "hash1", TokenScope::kAdmin).ok());
  ASSERT_TRUE(store_->AddSiteToken(site->id, "hash3", TokenScope::kRead).ok());
  EXPECT_EQ(Value(store_->FindSiteToken("hash1")).site_id, site->id);
  EXPECT_EQ(Value(store_->FindSiteToken("hash1")).scope, TokenScope::kAdmin);
  EXPECT_EQ(Value(store_->FindSiteToken("hash3")).scope, TokenScope::kRead);
  EXPECT_EQ(store_->FindSiteToken("hash2").status().code(), model::StatusCode::kNotFound);
  EXPECT_EQ(store_->AddSiteToken("site_missing", "h", TokenScope::kAdmin).status().code(),
            model::StatusCode::kNotFound);
}

// Tokens are listed by a public id made of their hash, newest first, and revoked by it: only
// the site's own, and a revoked token is unknown from then on.
TEST_P(StoreTest, TokensAreListedAndRevokedByTheirId) {
  const Site site = Value(store_->CreateSite("a"));
  const Site other = Value(store_->CreateSite("b"));
  const std::string admin_hash = model::Sha256Hex("pht_admin");
  const std::string read_hash = model::Sha256Hex("pht_read");
  const SiteTokenInfo admin = Value(store_->AddSiteToken(site.id, admin_hash, TokenScope::kAdmin));
  EXPECT_EQ(admin.id, "tok_" + admin_hash.substr(0, 16));
  EXPECT_EQ(admin.scope, TokenScope::kAdmin);
  EXPECT_GT(admin.created_at_ms, 0);
  const SiteTokenInfo read = Value(store_->AddSiteToken(site.id, read_hash, TokenScope::kRead));
  ASSERT_TRUE(
      store_->AddSiteToken(other.id, model::Sha256Hex("pht_other"), TokenScope::kAdmin).ok());

  const std::vector<SiteTokenInfo> listed = Value(store_->ListSiteTokens(site.id));
  ASSERT_EQ(listed.size(), 2u) << "another site's token is not listed";
  EXPECT_TRUE(std::find(listed.begin(), listed.end(), admin) != listed.end());
  EXPECT_TRUE(std::find(listed.begin(), listed.end(), read) != listed.end());
  EXPECT_GE(listed[0].created_at_ms, listed[1].created_at_ms) << "newest first";

  EXPECT_EQ(store_->DeleteSiteToken(other.id, read.id).code(), model::StatusCode::kNotFound)
      << "another site's id names nothing";
  EXPECT_EQ(store_->DeleteSiteToken(site.id, "tok_0000000000000000").code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteSiteToken(site.id, admin_hash).code(), model::StatusCode::kNotFound)
      << "the hash is not an id";
  const model::Status revoked = store_->DeleteSiteToken(site.id, read.id);
  ASSERT_TRUE(revoked.ok()) << revoked.message();
  EXPECT_EQ(store_->FindSiteToken(read_hash).status().code(), model::StatusCode::kNotFound);
  EXPECT_EQ(Value(store_->FindSiteToken(admin_hash)).site_id, site.id);
  EXPECT_EQ(Value(store_->ListSiteTokens(site.id)), std::vector<SiteTokenInfo>{admin});
  const model::Status again = store_->DeleteSiteToken(site.id, read.id);
  EXPECT_EQ(again.code(), model::StatusCode::kNotFound);
  EXPECT_EQ(again.message(), "token " + read.id + " not found");
}

// A rotated-out ingest key is still accepted until its time, beside the new one; a second
// rotation keeps the first's key until its own time; no overlap refuses every earlier key now.
TEST_P(StoreTest, ARotatedIngestKeyIsAcceptedUntilItsTime) {
  const Site site = Value(store_->CreateSite("Shop"));
  const Site other = Value(store_->CreateSite("Other"));
  const Site first = Value(store_->RotateIngestKey(site.id, 1000, kIngestKeyOverlapMs));
  EXPECT_NE(first.ingest_key, site.ingest_key);
  EXPECT_EQ(first.ingest_key.rfind("pk_", 0), 0u);
  EXPECT_EQ(Value(store_->GetSite(site.id)).ingest_key, first.ingest_key);
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(first.ingest_key, 2000)).id, site.id);
  const int64_t first_until = 1000 + kIngestKeyOverlapMs;
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(site.ingest_key, first_until - 1)).id, site.id);
  EXPECT_EQ(store_->FindSiteByIngestKey(site.ingest_key, first_until).status().code(),
            model::StatusCode::kNotFound);

  const Site second = Value(store_->RotateIngestKey(site.id, 5000, kIngestKeyOverlapMs));
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(site.ingest_key, first_until - 1)).id, site.id)
      << "a second rotation keeps the first's key until its own time";
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(first.ingest_key, 5000 + kIngestKeyOverlapMs - 1)).id,
            site.id);
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(second.ingest_key, 6000)).id, site.id);
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(other.ingest_key, 6000)).id, other.id);
  // A rotation after the first key's time drops it for good, whatever the time asked about.
  ASSERT_TRUE(store_->RotateIngestKey(site.id, first_until, kIngestKeyOverlapMs).ok());
  EXPECT_EQ(store_->FindSiteByIngestKey(site.ingest_key, 0).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(first.ingest_key, first_until)).id, site.id);

  // No overlap (a leaked key): the key replaced and every earlier one are refused at once.
  const Site leaked = Value(store_->RotateIngestKey(site.id, first_until + 1, 0));
  for (const std::string& key : {first.ingest_key, second.ingest_key}) {
    EXPECT_EQ(store_->FindSiteByIngestKey(key, 0).status().code(), model::StatusCode::kNotFound)
        << key;
  }
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(leaked.ingest_key, first_until + 1)).id, site.id);
  EXPECT_EQ(store_->RotateIngestKey("site_nope", 0, kIngestKeyOverlapMs).status().code(),
            model::StatusCode::kNotFound);
  // The keys replaced outlive a restart.
  const Site kept = Value(store_->RotateIngestKey(site.id, 9000, kIngestKeyOverlapMs));
  Reopen();
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(leaked.ingest_key, 9000)).id, site.id);
  EXPECT_EQ(Value(store_->FindSiteByIngestKey(kept.ingest_key, 9000)).id, site.id);
}

TEST_P(StoreTest, EndpointsAreScopedToTheirSite) {
  auto a = store_->CreateSite("a");
  auto b = store_->CreateSite("b");
  Endpoint e = MakeEndpoint(a->id);
  EXPECT_TRUE(store_->GetEndpoint(a->id, e.id).ok());
  EXPECT_EQ(store_->GetEndpoint(b->id, e.id).status().code(), model::StatusCode::kNotFound);
  EndpointPatch patch;
  patch.description = "orders";
  patch.enabled = false;
  auto updated = store_->UpdateEndpoint(a->id, e.id, patch, 77);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(store_->GetEndpoint(a->id, e.id)->description, "orders");
  EXPECT_FALSE(store_->GetEndpoint(a->id, e.id)->enabled);
  EXPECT_EQ(store_->UpdateEndpoint(b->id, e.id, patch, 77).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteEndpoint(b->id, e.id).code(), model::StatusCode::kNotFound);
  EXPECT_TRUE(store_->DeleteEndpoint(a->id, e.id).ok());
  EXPECT_EQ(store_->GetEndpoint(a->id, e.id).status().code(), model::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListEndpoints(a->id)->empty());
}

TEST_P(StoreTest, AppendFansOutByFilterAndSkipsDuplicates) {
  auto site = store_->CreateSite("a");
  Endpoint all = MakeEndpoint(site->id);
  Endpoint clicks = MakeEndpoint(site->id, model::EventFilter{false, true});
  AppendResult r = Append(
      site->id, {MakeEvent(model::Action::kView, "e1"), MakeEvent(model::Action::kClick, "e2"),
                 MakeEvent(model::Action::kClick, "")});
  EXPECT_EQ(r.accepted, 3u);
  EXPECT_EQ(r.duplicates, 0u);
  size_t to_all = 0, to_clicks = 0;
  for (const auto& m : r.messages) (m.endpoint_id == all.id ? to_all : to_clicks)++;
  EXPECT_EQ(to_all, 3u);
  EXPECT_EQ(to_clicks, 2u);

  AppendResult again = Append(
      site->id, {MakeEvent(model::Action::kView, "e1"), MakeEvent(model::Action::kView, "e3")});
  EXPECT_EQ(again.accepted, 1u);
  EXPECT_EQ(again.duplicates, 1u);
  // The same event_id on another site is not a duplicate.
  auto other = store_->CreateSite("b");
  EXPECT_EQ(Append(other->id, {MakeEvent(model::Action::kView, "e1")}).accepted, 1u);
}

TEST_P(StoreTest, ConcurrentAppendsAllCommitAndAnswerOnce) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r =
            Append(site->id,
                   {MakeEvent(model::Action::kView, std::to_string(t) + "-" + std::to_string(i))});
        accepted += static_cast<int>(r.accepted);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), kThreads * kPerThread);
  EXPECT_EQ(AllPending().size(), static_cast<size_t>(kThreads * kPerThread));
}

// The disk fills: a transaction cannot commit. Every write in it is refused with 503 (nothing
// is acknowledged that is not stored), the store counts the failure for /metrics, and once
// there is room again writes go on.
TEST_P(StoreTest, ATransactionThatCannotCommitRefusesItsWritesAndIsCounted) {
  if (Postgres()) GTEST_SKIP() << "a file size limit binds this process, not the server";
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  EXPECT_EQ(store_->counts().commit_failures, 0u);
  model::Event big = MakeEvent(model::Action::kView, "big");
  big.notification_title = std::string(1 << 20, 't');  // more than the WAL holds already
  util::testing::ScopedFileSizeLimit full_disk(1024);
  std::promise<model::StatusOr<AppendResult>> promise;
  store_->AppendEvents(site->id, {big}, 1000,
                       [&](model::StatusOr<AppendResult> r) { promise.set_value(std::move(r)); });
  const model::StatusOr<AppendResult> refused = promise.get_future().get();
  full_disk.Lift();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), model::StatusCode::kUnavailable) << refused.status().message();
  EXPECT_EQ(store_->counts().commit_failures, 1u);
  EXPECT_TRUE(AllPending().empty()) << "a refused event left a message";

  EXPECT_EQ(Append(site->id, {big}).accepted, 1u) << "the same event, once there is room";
  EXPECT_EQ(AllPending().size(), 1u);
  EXPECT_EQ(store_->counts().commit_failures, 1u);
}

// An admin write refused on its merits is its answer, not a failure of the store.
TEST_P(StoreTest, ARefusedAdminWriteIsNotACommitFailure) {
  auto site = store_->CreateSite("a");
  EndpointPatch patch;
  patch.url = "http://127.0.0.1:9/other";
  auto missing = store_->UpdateEndpoint(site->id, "ep_missing", patch, 1000);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), model::StatusCode::kNotFound);
  EXPECT_EQ(store_->counts().commit_failures, 0u);
}

TEST_P(StoreTest, AttemptsMoveMessagesAndSurviveReopen) {
  auto site = store_->CreateSite("a");
  Endpoint ep = MakeEndpoint(site->id);
  AppendResult r = Append(
      site->id, {MakeEvent(model::Action::kClick, "x"), MakeEvent(model::Action::kView, "y")});
  ASSERT_EQ(r.messages.size(), 2u);
  auto delivery = store_->LoadDelivery(r.messages[0].id);
  ASSERT_TRUE(delivery.ok()) << delivery.status().message();
  EXPECT_EQ(delivery->event.event_id, "x");
  EXPECT_EQ(delivery->endpoint.id, ep.id);
  EXPECT_EQ(delivery->endpoint.secret, ep.secret);

  std::promise<model::Status> done;
  AttemptRecord ok{r.messages[0].id, 1, 2000, 204, 1500, "", "", MessageStatus::kDelivered, 0};
  AttemptRecord retry{r.messages[1].id,        1,   2000, 500, 900, "", "oops",
                      MessageStatus::kPending, 9000};
  store_->RecordAttempts({ok, retry}, [&](model::Status s) { done.set_value(s); });
  ASSERT_TRUE(done.get_future().get().ok());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  const std::vector<DueMessage> pending = AllPending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.front().id, r.messages[1].id);
  EXPECT_EQ(pending.front().due_ms, 9000);
  EXPECT_EQ(pending.front().attempts, 1);
  auto attempts = store_->ListAttempts(r.messages[1].id);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->front().status_code, 500);
  EXPECT_EQ(attempts->front().response_prefix, "oops");
  auto message = store_->GetMessage(site->id, r.messages[0].id);
  EXPECT_EQ(message->status, MessageStatus::kDelivered);
  EXPECT_EQ(store_->GetMessage("site_other", r.messages[0].id).status().code(),
            model::StatusCode::kNotFound);
}

// Every attempt of a message is listed, in order, with all it recorded, however many there
// were (SQLite keeps the latest in the message's row and moves it out when another comes).
TEST_P(StoreTest, AttemptsAreListedInOrderWithAllTheyRecorded) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  const int64_t id = Append(site->id, {MakeEvent(model::Action::kView, "x")}).messages.at(0).id;
  const auto attempt = [&](int n, int code, std::string error, std::string body,
                           MessageStatus status) {
    return AttemptRecord{
        id, n, 1000 * n, code, 100 + n, std::move(error), std::move(body), status, 5000 * n};
  };
  const auto listed = [&] {
    std::string out;
    for (const Attempt& a : Value(store_->ListAttempts(id))) {
      out += std::to_string(a.attempt) + "@" + std::to_string(a.at_ms) + ":" +
             std::to_string(a.status_code) + "/" + std::to_string(a.latency_us) + "/" + a.error +
             "/" + a.response_prefix + " ";
    }
    return out;
  };
  Record({attempt(1, 0, "connection refused", "", MessageStatus::kPending)});
  EXPECT_EQ(listed(), "1@1000:0/101/connection refused/ ");
  Record({attempt(2, 503, "", "busy", MessageStatus::kPending)});
  ASSERT_NO_FATAL_FAILURE(Reopen());
  Record({attempt(3, 204, "", "", MessageStatus::kDelivered)});
  EXPECT_EQ(listed(), "1@1000:0/101/connection refused/ 2@2000:503/102//busy 3@3000:204/103// ");
  // The same attempt recorded again (a record written twice) is listed once, as last written.
  Record({attempt(3, 200, "", "ok", MessageStatus::kDelivered)});
  EXPECT_EQ(listed(), "1@1000:0/101/connection refused/ 2@2000:503/102//busy 3@3000:200/103//ok ");
  const Message m = Value(store_->GetMessage(site->id, id));
  EXPECT_EQ(m.attempts, 3);
  EXPECT_EQ(m.last_status_code, 200);
}

TEST_P(StoreTest, MessageLogFiltersAndPagesNewestFirst) {
  auto site = store_->CreateSite("a");
  Endpoint ep = MakeEndpoint(site->id);
  std::vector<model::Event> events;
  for (int i = 0; i < 5; ++i) events.push_back(MakeEvent(model::Action::kView, std::to_string(i)));
  Append(site->id, events);
  MessageQuery q;
  q.site_id = site->id;
  q.limit = 2;
  auto page1 = store_->ListMessages(q);
  ASSERT_EQ(page1->size(), 2u);
  EXPECT_GT((*page1)[0].id, (*page1)[1].id);
  q.before_id = page1->back().id;
  auto page2 = store_->ListMessages(q);
  ASSERT_EQ(page2->size(), 2u);
  EXPECT_LT(page2->front().id, page1->back().id);
  q.before_id = 0;
  q.limit = 10;
  const auto by_cid = [&](const std::string& site_id, const std::string& cid) {
    q.site_id = site_id;
    q.cid = cid;
    return Value(store_->ListMessages(q)).size();
  };
  // A campaign is looked up before the log is read (a campaign with no row has no messages),
  // both while SQLite's writer holds the campaign's statistics in memory and once they are
  // written, as reading them makes them be.
  auto other = store_->CreateSite("b");
  MakeEndpoint(other->id);
  model::Event elsewhere = MakeEvent(model::Action::kView, "b1");
  elsewhere.cid = "b-only";
  Append(other->id, {elsewhere});
  for (int settled = 0; settled < 2; ++settled) {
    SCOPED_TRACE(settled ? "statistics written" : "statistics perhaps held");
    EXPECT_EQ(by_cid(site->id, "42"), 5u);
    EXPECT_EQ(by_cid(site->id, "nope"), 0u);
    EXPECT_EQ(by_cid(site->id, "b-only"), 0u);  // another site's campaign
    EXPECT_EQ(by_cid(other->id, "b-only"), 1u);
    EXPECT_EQ(by_cid(other->id, "42"), 0u);
    Campaigns(site->id);
  }
}

TEST_P(StoreTest, TheMessageLogFindsCampaignsOfEventsStoredBeforeStatistics) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  model::Event early = MakeEvent(model::Action::kView, "e1");
  early.cid = "early";
  Append(site->id, {early}, 1000);
  Append(site->id, {MakeEvent(model::Action::kView, "e2")}, 2000);
  Campaigns(site->id);
  store_.reset();
  // As in a database that stored its first events before it kept campaign statistics.
  ASSERT_NO_FATAL_FAILURE(RunSql("DELETE FROM campaigns WHERE cid = 'early'"));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  MessageQuery q;
  q.site_id = site->id;
  q.limit = 10;
  for (const auto& [cid, count] : {std::pair{"early", 1u}, {"42", 1u}, {"nope", 0u}}) {
    q.cid = cid;
    EXPECT_EQ(Value(store_->ListMessages(q)).size(), count) << cid;
  }
}

TEST_P(StoreTest, EndpointSecretsAreSealedAtRestAndOpenOnRead) {
  store_.reset();
  auto sealed = DatabaseUrl("sealed");
  ASSERT_TRUE(sealed.ok()) << sealed.status().message();
  StoreOptions options;
  options.database = *sealed;
  options.secrets_key = std::string(32, 's');
  store_ = std::move(OpenStore(options).value());
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  EXPECT_EQ(store_->GetEndpoint(site->id, e.id)->secret, e.secret);
  store_.reset();
  // The database holds the endpoint, but no trace of the secret's text.
  const std::string bytes = StoredBytes("sealed");
  EXPECT_NE(bytes.find(e.url), std::string::npos);
  const std::string secret_part = e.secret.substr(6, 20);
  EXPECT_EQ(bytes.find(secret_part), std::string::npos);
  // Another key cannot open the database: it would read every secret as empty and sign nothing.
  options.secrets_key = std::string(32, 'x');
  auto wrong = OpenStore(options);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), model::StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsWrongSecretsKey(wrong.status())) << wrong.status().message();
  options.secrets_key = std::string(32, 's');
  auto right = OpenStore(options);
  ASSERT_TRUE(right.ok()) << right.status().message();
  store_ = std::move(right.value());
  EXPECT_EQ(store_->GetEndpoint(site->id, e.id)->secret, e.secret);
}

TEST_P(StoreTest, TheFirstStoreWithAKeyRecordsItAndAStoreWithoutOneChecksNothing) {
  auto url = DatabaseUrl("migrated");
  ASSERT_TRUE(url.ok()) << url.status().message();
  StoreOptions options;
  options.database = *url;  // as `pushhook migrate` opens it: no key, nothing sealed
  ASSERT_TRUE(OpenStore(options).ok());
  options.secrets_key = std::string(32, 'a');
  auto first = OpenStore(options);
  ASSERT_TRUE(first.ok()) << first.status().message();
  first = model::Status(model::StatusCode::kInternal, "closed");  // close it
  options.secrets_key = std::string(32, 'b');
  EXPECT_EQ(OpenStore(options).status().message(), WrongSecretsKey().message());
  options.secrets_key.clear();
  EXPECT_TRUE(OpenStore(options).ok());
}

TEST_P(StoreTest, MessageIdsRoundTripAndCarryTheInstance) {
  const std::string instance = store_->instance_id();  // a copy: Reopen() frees the store
  EXPECT_EQ(instance.size(), 8u);
  const std::string id = FormatMessageId(instance, 1234);
  EXPECT_EQ(ParseMessageId(instance, id), 1234);
  EXPECT_EQ(ParseMessageId(instance, "msg_other1234"), std::nullopt);
  EXPECT_EQ(ParseMessageId(instance, id + "x"), std::nullopt);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(store_->instance_id(), instance);
}

TEST_P(StoreTest, UpdateEndpointChangesOnlyTheFieldsItSets) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  EndpointPatch patch;
  patch.url = "http://127.0.0.1:9/new";
  patch.max_in_flight = 4;
  auto updated = store_->UpdateEndpoint(site->id, e.id, patch, 77);
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  for (const Endpoint& read : {*updated, Value(store_->GetEndpoint(site->id, e.id))}) {
    EXPECT_EQ(read.url, "http://127.0.0.1:9/new");
    EXPECT_EQ(read.max_in_flight, 4);
    EXPECT_EQ(read.updated_at_ms, 77);
    EXPECT_EQ(read.created_at_ms, e.created_at_ms);
    EXPECT_EQ(read.description, "");
    EXPECT_TRUE(read.filter.view);
    EXPECT_TRUE(read.filter.click);
    EXPECT_EQ(read.format, model::PayloadFormat::kIzooto);
    EXPECT_TRUE(read.enabled);
    EXPECT_EQ(read.rate_limit, 0);
    EXPECT_EQ(read.secret, e.secret);
    EXPECT_TRUE(read.previous_secrets.empty());
  }

  EndpointPatch more;
  more.description = "orders";
  more.filter = model::EventFilter{false, true};
  more.format = model::PayloadFormat::kExtended;
  more.rate_limit = 2.5;
  ASSERT_TRUE(store_->UpdateEndpoint(site->id, e.id, more, 78).ok());
  auto read = Value(store_->GetEndpoint(site->id, e.id));
  EXPECT_EQ(read.url, "http://127.0.0.1:9/new");
  EXPECT_EQ(read.max_in_flight, 4);
  EXPECT_EQ(read.description, "orders");
  EXPECT_FALSE(read.filter.view);
  EXPECT_TRUE(read.filter.click);
  EXPECT_EQ(read.format, model::PayloadFormat::kExtended);
  EXPECT_EQ(read.rate_limit, 2.5);
  EXPECT_EQ(read.updated_at_ms, 78);
}

// Two writers change different fields of one endpoint at once: an auto-disable and a secret
// rotation, say. Neither may undo the other, as a read-modify-write of the whole row would.
TEST_P(StoreTest, ConcurrentUpdatesOfDifferentFieldsAreNeverLost) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  constexpr int kRounds = 150;
  std::latch start(2);
  std::string last_secret;
  std::thread rotator([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      EndpointPatch rotation;
      rotation.secret = model::NewSecret();
      ASSERT_TRUE(store_->UpdateEndpoint(site->id, e.id, rotation, 100 + i).ok());
      last_secret = *rotation.secret;
    }
  });
  std::thread toggler([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      EndpointPatch toggle;
      toggle.enabled = i % 2 == 1;
      toggle.max_in_flight = i + 1;
      ASSERT_TRUE(store_->UpdateEndpoint(site->id, e.id, toggle, 100 + i).ok());
    }
  });
  rotator.join();
  toggler.join();
  const Endpoint read = Value(store_->GetEndpoint(site->id, e.id));
  EXPECT_EQ(read.secret, last_secret) << "a toggle wrote back a secret it had read before";
  EXPECT_EQ(read.max_in_flight, kRounds) << "a rotation wrote back limits it had read before";
  EXPECT_TRUE(read.enabled);  // the toggler's last round, 149, enabled it
}

TEST_P(StoreTest, DisablingRecordsWhyAndWhenAndEnablingClearsBoth) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  EXPECT_EQ(e.disabled_reason, "");
  EndpointPatch off;
  off.enabled = false;
  off.disabled_reason = "the receiver answered 410 Gone";
  const Endpoint disabled = Value(store_->UpdateEndpoint(site->id, e.id, off, 5'000));
  for (const Endpoint& read : {disabled, Value(store_->GetEndpointById(e.id))}) {
    EXPECT_FALSE(read.enabled);
    EXPECT_EQ(read.disabled_reason, "the receiver answered 410 Gone");
    EXPECT_EQ(read.disabled_at_ms, 5'000);
  }
  EndpointPatch on;
  on.enabled = true;
  const Endpoint enabled = Value(store_->UpdateEndpoint(site->id, e.id, on, 6'000));
  EXPECT_TRUE(enabled.enabled);
  EXPECT_EQ(enabled.disabled_reason, "");
  EXPECT_EQ(enabled.disabled_at_ms, 0);
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, e.id)).disabled_at_ms, 0);
}

// Rotations at once each keep what they replaced: every secret any of them answered still signs,
// up to kMaxPreviousSecrets; another site's endpoint is not found.
TEST_P(StoreTest, ConcurrentRotationsLoseNoSecret) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  const Endpoint e = MakeEndpoint(site->id);
  EXPECT_EQ(store_->RotateEndpointSecret(other->id, e.id, 1000, 5000).status().code(),
            model::StatusCode::kNotFound);
  constexpr int kRotations = 4;
  std::vector<std::string> answered(kRotations);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRotations; ++i) {
    threads.emplace_back([&, i] {
      answered[i] = Value(store_->RotateEndpointSecret(site->id, e.id, 1000 + i, 5000)).secret;
    });
  }
  for (std::thread& t : threads) t.join();
  const Endpoint after = Value(store_->GetEndpoint(site->id, e.id));
  std::set<std::string> signing{after.secret};
  for (const PreviousSecret& p : after.previous_secrets) signing.insert(p.secret);
  EXPECT_EQ(signing.size(), static_cast<size_t>(kRotations + 1));
  EXPECT_TRUE(signing.contains(e.secret));
  for (const std::string& secret : answered) EXPECT_TRUE(signing.contains(secret)) << secret;
  // A sixth rotation and more keep the newest five; one without overlap ends them all.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(store_->RotateEndpointSecret(site->id, e.id, 2000, 5000).ok());
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, e.id)).previous_secrets.size(),
            kMaxPreviousSecrets);
  EXPECT_TRUE(
      Value(store_->RotateEndpointSecret(site->id, e.id, 3000, 0)).previous_secrets.empty());
}

TEST(RotatedOutTest, KeepsTheValidNewestFirstAndNothingEmpty) {
  const std::vector<PreviousSecret> before{{"b", 300}, {"c", 100}, {"d", 400}};
  EXPECT_EQ(RotatedOut("a", 500, before, 200),
            (std::vector<PreviousSecret>{{"a", 500}, {"b", 300}, {"d", 400}}));
  EXPECT_EQ(RotatedOut("", 500, before, 200), (std::vector<PreviousSecret>{{"b", 300}, {"d", 400}}))
      << "a secret that did not open is not kept";
  std::vector<PreviousSecret> many;
  for (int i = 0; i < 9; ++i) many.push_back({"s" + std::to_string(i), 1000});
  EXPECT_EQ(RotatedOut("new", 1000, many, 0).size(), kMaxPreviousSecrets);
}

TEST_P(StoreTest, UpdateEndpointRotatesTheSecretOnlyOnItsOwnSite) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  Endpoint e = MakeEndpoint(site->id);
  EndpointPatch rotation;
  rotation.secret = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4";
  rotation.previous_secrets = {{e.secret, 86'400'000}, {"whsec_b2xkZXIgc2VjcmV0IG9sZGVy", 1000}};
  EXPECT_EQ(store_->UpdateEndpoint(other->id, e.id, rotation, 50).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, e.id)).secret, e.secret);
  EXPECT_TRUE(Value(store_->GetEndpoint(site->id, e.id)).previous_secrets.empty());

  ASSERT_TRUE(store_->UpdateEndpoint(site->id, e.id, rotation, 60).ok());
  auto rotated = store_->GetEndpointById(e.id);
  ASSERT_TRUE(rotated.ok()) << rotated.status().message();
  EXPECT_EQ(rotated->secret, "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4");
  EXPECT_EQ(rotated->previous_secrets, *rotation.previous_secrets);
  EXPECT_EQ(rotated->url, e.url);

  ASSERT_TRUE(store_->DeleteEndpoint(site->id, e.id).ok());
  EXPECT_EQ(store_->UpdateEndpoint(site->id, e.id, rotation, 70).status().code(),
            model::StatusCode::kNotFound);
}

TEST_P(StoreTest, DeleteEndpointFailsItsPendingMessages) {
  auto site = store_->CreateSite("a");
  Endpoint gone = MakeEndpoint(site->id);
  Endpoint kept = MakeEndpoint(site->id);
  AppendResult r = Append(
      site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2")});
  ASSERT_EQ(r.messages.size(), 4u);
  std::vector<int64_t> to_gone, to_kept;
  for (const DueMessage& m : r.messages)
    (m.endpoint_id == gone.id ? to_gone : to_kept).push_back(m.id);
  ASSERT_EQ(to_gone.size(), 2u);
  Record({{to_gone[0], 1, 2000, 204, 100, "", "", MessageStatus::kDelivered, 2000}});

  ASSERT_TRUE(store_->DeleteEndpoint(site->id, gone.id).ok());
  EXPECT_EQ(store_->GetEndpointById(gone.id).status().code(), model::StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetEndpointById(kept.id).ok());
  EXPECT_EQ(Value(store_->GetMessage(site->id, to_gone[0])).status, MessageStatus::kDelivered);
  auto failed = store_->GetMessage(site->id, to_gone[1]);
  EXPECT_EQ(failed->status, MessageStatus::kFailed);
  EXPECT_EQ(failed->last_error, "endpoint deleted");
  EXPECT_EQ(Ids(AllPending()), to_kept);
  EXPECT_TRUE(Value(store_->LoadPendingForEndpoint(gone.id, 0, 10)).empty());
  // A message of a deleted endpoint has nowhere to go again, and is still there to read.
  for (const int64_t id : to_gone) {
    const model::Status refused = store_->RequeueMessage(site->id, id, 3000).status();
    EXPECT_EQ(refused.code(), model::StatusCode::kAlreadyExists);
    EXPECT_EQ(refused.message(), "the message's endpoint was deleted: there is nowhere to send it");
  }
  EXPECT_EQ(store_->RequeueMessage(site->id, to_kept[0] + 1000, 3000).status().code(),
            model::StatusCode::kNotFound);
}

// An attempt out while its message ended (its endpoint deleted; on a shared database, delivered
// by another node) is recorded as it went, but a late failure never makes the message pending
// again: nothing would ever send it, and it would be listed as waiting for good. A late success
// is the truth, and delivers it. A message failed otherwise takes the attempt's outcome: a
// redelivery can go out before the failure of the attempt before it is written.
TEST_P(StoreTest, ALateAttemptRecordDoesNotBringAnEndedMessageBack) {
  auto site = store_->CreateSite("a");
  Endpoint gone = MakeEndpoint(site->id);
  AppendResult r =
      Append(site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2"),
                        MakeEvent(model::Action::kView, "3")});
  ASSERT_EQ(r.messages.size(), 3u);
  const int64_t failing = r.messages[0].id, delivering = r.messages[1].id,
                delivered = r.messages[2].id;
  Record({{delivered, 1, 1500, 204, 100, "", "", MessageStatus::kDelivered, 0}});
  ASSERT_TRUE(store_->DeleteEndpoint(site->id, gone.id).ok());
  Record({{failing, 1, 2000, 500, 100, "HTTP 500", "oops", MessageStatus::kPending, 9000},
          {delivering, 1, 2000, 200, 100, "", "", MessageStatus::kDelivered, 0},
          {delivered, 2, 2100, 503, 100, "HTTP 503", "", MessageStatus::kPending, 9000}});

  const Message failed = Value(store_->GetMessage(site->id, failing));
  EXPECT_EQ(failed.status, MessageStatus::kFailed);
  EXPECT_EQ(failed.attempts, 1) << "the attempt still counts";
  const std::vector<Attempt> attempts = Value(store_->ListAttempts(failing));
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts.front().status_code, 500);
  EXPECT_EQ(attempts.front().error, "HTTP 500") << "recorded as it went";
  EXPECT_EQ(Value(store_->GetMessage(site->id, delivering)).status, MessageStatus::kDelivered);
  EXPECT_EQ(Value(store_->GetMessage(site->id, delivered)).status, MessageStatus::kDelivered);
  EXPECT_TRUE(AllPending().empty());

  // Failed by its schedule, with its endpoint still there: a redelivery's failure that is
  // written after that failure makes it pending again, and its retry is due.
  Endpoint live = MakeEndpoint(site->id);
  const int64_t redelivered =
      Append(site->id, {MakeEvent(model::Action::kView, "4")}).messages.at(0).id;
  Record({{redelivered, 1, 3000, 500, 100, "HTTP 500", "", MessageStatus::kFailed, 0}});
  Record({{redelivered, 2, 3100, 500, 100, "HTTP 500", "", MessageStatus::kPending, 9000}});
  EXPECT_EQ(Value(store_->GetMessage(site->id, redelivered)).status, MessageStatus::kPending);
  EXPECT_EQ(Ids(Value(store_->LoadPendingForEndpoint(live.id, 0, 10))),
            std::vector<int64_t>{redelivered});
}

TEST_P(StoreTest, EventsWithoutAnIdAreNeverDuplicates) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  AppendResult first =
      Append(site->id, {MakeEvent(model::Action::kView, ""), MakeEvent(model::Action::kView, "")});
  AppendResult second = Append(site->id, {MakeEvent(model::Action::kView, "")});
  EXPECT_EQ(first.accepted, 2u);
  EXPECT_EQ(first.duplicates, 0u);
  EXPECT_EQ(second.accepted, 1u);
  EXPECT_EQ(second.duplicates, 0u);
  ASSERT_EQ(first.messages.size(), 2u);
  // The store names each one, and no two alike.
  const std::string a = Value(store_->LoadDelivery(first.messages[0].id)).event.event_id;
  const std::string b = Value(store_->LoadDelivery(first.messages[1].id)).event.event_id;
  EXPECT_NE(a, "");
  EXPECT_NE(a, b);
}

// A beaconed event is counted once by its replay key and once by its event_id, each on its own,
// and keeps the client's event_id for its payload (DESIGN section 2a).
TEST_P(StoreTest, ReplayKeysAndEventIdsEachCountAnEventOnce) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  const auto keyed = [](std::string_view event_id, std::string_view replay_key) {
    model::Event e = MakeEvent(model::Action::kClick, std::string(event_id));
    e.replay_key = replay_key;
    return e;
  };
  AppendResult first = Append(site->id, {keyed("mine-1", "bcn_k1"), keyed("", "bcn_k2")});
  EXPECT_EQ(first.accepted, 2u);
  ASSERT_EQ(first.messages.size(), 2u);
  EXPECT_EQ(Value(store_->LoadDelivery(first.messages[0].id)).event.event_id, "mine-1");
  EXPECT_EQ(Value(store_->LoadDelivery(first.messages[1].id)).event.event_id.rfind("bcn_", 0),
            std::string::npos)
      << "the replay key is never an event's id";

  AppendResult again = Append(site->id, {keyed("mine-2", "bcn_k1"),  // the same token
                                         keyed("mine-1", "bcn_k3"),  // the same event_id
                                         keyed("mine-3", "bcn_k3"),  // new
                                         keyed("mine-4", "bcn_k3"),  // the same token again
                                         keyed("mine-5", "")});
  EXPECT_EQ(again.accepted, 2u);
  EXPECT_EQ(again.duplicates, 3u);
  // Another site's replay keys are its own.
  auto other = store_->CreateSite("b");
  EXPECT_EQ(Append(other->id, {keyed("mine-1", "bcn_k1")}).accepted, 1u);
}

TEST_P(StoreTest, ConcurrentAppendsOfOneEventIdAcceptItOnce) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::atomic<int> accepted{0}, duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      AppendResult r = Append(site->id, {MakeEvent(model::Action::kView, "same"),
                                         MakeEvent(model::Action::kView, std::to_string(t))});
      accepted += static_cast<int>(r.accepted);
      duplicates += static_cast<int>(r.duplicates);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), kThreads + 1);
  EXPECT_EQ(duplicates.load(), kThreads - 1);
  EXPECT_EQ(AllPending().size(), static_cast<size_t>(kThreads + 1));
}

TEST_P(StoreTest, DisabledEndpointsStillGetMessages) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  EndpointPatch disable;
  disable.enabled = false;
  ASSERT_TRUE(store_->UpdateEndpoint(site->id, e.id, disable, 10).ok());
  AppendResult r = Append(site->id, {MakeEvent(model::Action::kClick, "c")});
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].endpoint_id, e.id);
  EXPECT_EQ(Ids(Value(store_->LoadPendingForEndpoint(e.id, 0, 10))), Ids(r.messages));
}

TEST_P(StoreTest, PendingMessagesAreListedByEndpointAndPagedInIdOrder) {
  auto site = store_->CreateSite("a");
  Endpoint a = MakeEndpoint(site->id);
  Endpoint b = MakeEndpoint(site->id);
  std::vector<model::Event> events;
  for (int i = 0; i < 4; ++i) events.push_back(MakeEvent(model::Action::kView, std::to_string(i)));
  AppendResult r = Append(site->id, events);
  ASSERT_EQ(r.messages.size(), 8u);
  std::vector<int64_t> all, to_a;
  for (const DueMessage& m : r.messages) {
    all.push_back(m.id);
    if (m.endpoint_id == a.id) to_a.push_back(m.id);
  }
  std::sort(all.begin(), all.end());
  std::sort(to_a.begin(), to_a.end());
  // A delivered message is no longer pending.
  Record({{all[2], 1, 2000, 200, 10, "", "", MessageStatus::kDelivered, 2000}});
  if (to_a[1] == all[2]) to_a.erase(to_a.begin() + 1);
  all.erase(all.begin() + 2);

  std::vector<std::string> endpoints{a.id, b.id};
  std::sort(endpoints.begin(), endpoints.end());
  EXPECT_EQ(Value(store_->ListPendingEndpoints()), endpoints);
  EXPECT_EQ(Ids(AllPending()), all);

  auto a1 = store_->LoadPendingForEndpoint(a.id, 0, 2);
  ASSERT_TRUE(a1.ok()) << a1.status().message();
  ASSERT_EQ(Ids(*a1), std::vector<int64_t>(to_a.begin(), to_a.begin() + 2));
  EXPECT_EQ(a1->front().due_ms, 1000);
  EXPECT_EQ(a1->front().attempts, 0);
  for (const DueMessage& m : *a1) EXPECT_EQ(m.endpoint_id, a.id);
  auto a2 = Value(store_->LoadPendingForEndpoint(a.id, a1->back().id, 10));
  EXPECT_EQ(Ids(a2), std::vector<int64_t>(to_a.begin() + 2, to_a.end()));
  EXPECT_TRUE(Value(store_->LoadPendingForEndpoint(b.id, all.back(), 10)).empty());

  // An endpoint none of whose messages wait is not listed.
  std::vector<AttemptRecord> delivered;
  for (const int64_t id : to_a) {
    delivered.push_back({id, 1, 3000, 200, 10, "", "", MessageStatus::kDelivered, 3000});
  }
  Record(delivered);
  EXPECT_EQ(Value(store_->ListPendingEndpoints()), std::vector<std::string>{b.id});
}

TEST_P(StoreTest, LoadDeliveryCarriesTheEventAndTheEndpointWithItsSecretOpened) {
  // The fixture's store seals secrets at rest: what comes back must be opened.
  ASSERT_FALSE(options_.secrets_key.empty());
  auto site = store_->CreateSite("a");
  Endpoint e;
  e.site_id = site->id;
  e.url = "http://127.0.0.1:9/deliver";
  e.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
  e.previous_secrets = {{"whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4", 123'456}};
  e.format = model::PayloadFormat::kExtended;
  auto created = store_->CreateEndpoint(e);
  ASSERT_TRUE(created.ok()) << created.status().message();
  model::Event event = MakeEvent(model::Action::kClick, "full");
  event.notification_title = "Sale";
  event.reference_id = "run-7";
  event.utm_campaign = "spring";
  event.utm_content = "banner";
  event.utm_medium = "push";
  event.utm_source = "izooto";
  event.utm_term = "shoes";
  event.clicked_button = 2;
  event.occurred_at_ms = 1'700'000'000'123;
  AppendResult r = Append(site->id, {event});
  ASSERT_EQ(r.messages.size(), 1u);

  auto d = store_->LoadDelivery(r.messages[0].id);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->message_id, r.messages[0].id);
  EXPECT_EQ(d->site_id, site->id);
  EXPECT_EQ(d->attempts, 0);
  EXPECT_EQ(d->status, MessageStatus::kPending);
  EXPECT_EQ(Text(d->event), Text(event));
  EXPECT_EQ(d->endpoint.id, created->id);
  EXPECT_EQ(d->endpoint.site_id, site->id);
  EXPECT_EQ(d->endpoint.url, "http://127.0.0.1:9/deliver");
  EXPECT_EQ(d->endpoint.format, model::PayloadFormat::kExtended);
  EXPECT_EQ(d->endpoint.secret, e.secret);
  EXPECT_EQ(d->endpoint.previous_secrets, e.previous_secrets);

  Record({{r.messages[0].id, 1, 2000, 503, 10, "", "", MessageStatus::kPending, 7000}});
  EXPECT_EQ(Value(store_->LoadDelivery(r.messages[0].id)).attempts, 1);
  EXPECT_EQ(store_->LoadDelivery(r.messages[0].id + 1000).status().code(),
            model::StatusCode::kNotFound);
}

TEST_P(StoreTest, LoadDeliveriesReadsABatchAndLeavesOutWhatIsGone) {
  auto site = Value(store_->CreateSite("a"));
  Endpoint e = MakeEndpoint(site.id);
  AppendResult r = Append(
      site.id, {MakeEvent(model::Action::kView, "one"), MakeEvent(model::Action::kClick, "two")});
  ASSERT_EQ(r.messages.size(), 2u);
  auto loaded = Value(store_->LoadDeliveries({r.messages[1].id, 999'999, r.messages[0].id}));
  ASSERT_EQ(loaded.size(), 2u);
  std::sort(loaded.begin(), loaded.end(),
            [](const Delivery& a, const Delivery& b) { return a.message_id < b.message_id; });
  EXPECT_EQ(loaded[0].message_id, r.messages[0].id);
  EXPECT_EQ(loaded[0].event.event_id, "one");
  EXPECT_EQ(loaded[1].event.event_id, "two");
  EXPECT_EQ(loaded[1].event.action, model::Action::kClick);
  EXPECT_EQ(loaded[1].endpoint.id, e.id);
  EXPECT_EQ(loaded[1].endpoint.secret, e.secret);
  EXPECT_EQ(loaded[1].site_id, site.id);
}

// A batch's members, fixed before it is first sent, come back as they were after a restart; a
// redelivered member goes alone.
TEST_P(StoreTest, ABatchsMembersAreFixedAcrossARestartAndARedeliveredOneGoesAlone) {
  auto site = Value(store_->CreateSite("a"));
  Endpoint e = MakeEndpoint(site.id);
  EndpointPatch patch;
  patch.batch = BatchOptions{100, 50};
  EXPECT_EQ(Value(store_->UpdateEndpoint(site.id, e.id, patch, 1)).batch, (BatchOptions{100, 50}));
  AppendResult r = Append(
      site.id, {MakeEvent(model::Action::kView, "one"), MakeEvent(model::Action::kView, "two"),
                MakeEvent(model::Action::kView, "three")});
  ASSERT_EQ(r.messages.size(), 3u);
  const int64_t batch = r.messages[0].id;
  ASSERT_NO_FATAL_FAILURE(AssignBatch({r.messages[0].id, r.messages[1].id}, batch));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  auto pending = Value(store_->LoadPendingForEndpoint(e.id, 0, 10));
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[0].batch, batch);
  EXPECT_EQ(pending[1].batch, batch);
  EXPECT_EQ(pending[2].batch, kUnbatched);
  EXPECT_EQ(Value(store_->GetMessage(site.id, r.messages[1].id)).batch, batch);
  EXPECT_EQ(Value(store_->GetEndpointById(e.id)).batch, (BatchOptions{100, 50}));
  // Pending in its batch: it stays there, or the batch's resends would shift its members.
  auto refused = store_->RequeueMessage(site.id, r.messages[1].id, 2);
  EXPECT_EQ(refused.status().code(), model::StatusCode::kAlreadyExists);
  EXPECT_EQ(refused.status().message(),
            "the message is waiting in batch " + FormatBatchId(store_->instance_id(), batch) +
                ", which is retried whole; redeliver it once the batch has finished");
  std::vector<AttemptRecord> records;
  for (const int64_t id : {r.messages[0].id, r.messages[1].id}) {
    AttemptRecord& record = records.emplace_back();
    record.message_id = id;
    record.attempt = 1;
    record.status_code = 204;
    record.new_status = MessageStatus::kDelivered;
  }
  std::promise<model::Status> recorded;
  store_->RecordAttempts(records, [&](model::Status s) { recorded.set_value(s); });
  ASSERT_TRUE(recorded.get_future().get().ok());
  // Delivered with its batch: redelivered alone.
  auto requeued = Value(store_->RequeueMessage(site.id, r.messages[1].id, 2));
  EXPECT_EQ(requeued.batch, kAlone);
  EXPECT_EQ(AllPending().at(0).batch, kAlone);
  EXPECT_EQ(FormatBatchId(store_->instance_id(), batch),
            "bat_" + store_->instance_id() + std::to_string(batch));
  // Never sent, it waits for its endpoint's next batch: sent alone as well, it would reach the
  // receiver under two webhook-ids. Without batching, it may go now.
  auto waiting = store_->RequeueMessage(site.id, r.messages[2].id, 3);
  EXPECT_EQ(waiting.status().code(), model::StatusCode::kAlreadyExists);
  EXPECT_EQ(waiting.status().message(),
            "the message has not been sent yet: it goes in its endpoint's next batch; redeliver it "
            "once that batch has been sent");
  EndpointPatch off;
  off.batch = BatchOptions{};
  ASSERT_TRUE(store_->UpdateEndpoint(site.id, e.id, off, 4).ok());
  EXPECT_EQ(Value(store_->RequeueMessage(site.id, r.messages[2].id, 5)).batch, kAlone);
}

// A batch refused as too large is split: the attempt's record fixes the second half under its
// own number, in the record's transaction, so that a restart resends each half as it was, and
// counts the split, which does not use up the retry schedule. A message moves only from the
// batch the record was sent in: a late record does not move back one that moved on.
TEST_P(StoreTest, AnAttemptRecordFixesItsMessagesBatchAndSplits) {
  auto site = Value(store_->CreateSite("a"));
  Endpoint e = MakeEndpoint(site.id);
  AppendResult r = Append(
      site.id, {MakeEvent(model::Action::kView, "one"), MakeEvent(model::Action::kView, "two"),
                MakeEvent(model::Action::kView, "three")});
  ASSERT_EQ(r.messages.size(), 3u);
  const int64_t batch = r.messages[0].id;
  ASSERT_NO_FATAL_FAILURE(
      AssignBatch({r.messages[0].id, r.messages[1].id, r.messages[2].id}, batch));
  std::vector<AttemptRecord> records;
  for (const DueMessage& m : r.messages) {
    AttemptRecord& record = records.emplace_back();
    record.message_id = m.id;
    record.attempt = 1;
    record.status_code = 413;
    record.new_status = MessageStatus::kPending;
    if (m.id == r.messages[2].id) {
      record.batch = m.id;
      record.batch_from = batch;
    } else if (m.id == r.messages[1].id) {
      record.batch = m.id;  // a late record, from a batch the message is no longer in
      record.batch_from = batch + 1000;
    }  // else 0: stays where it is
    record.splits = 1;
  }
  Record(records);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  auto pending = Value(store_->LoadPendingForEndpoint(e.id, 0, 10));
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[0].batch, batch);
  EXPECT_EQ(pending[1].batch, batch);
  EXPECT_EQ(pending[2].batch, r.messages[2].id);
  for (const DueMessage& m : pending) EXPECT_EQ(m.splits, 1);
  EXPECT_EQ(Value(store_->GetMessage(site.id, r.messages[2].id)).batch, r.messages[2].id);
}

// Each attempt says the batch it went in, the latest too, so that a message redelivered alone
// still shows the batch of its earlier attempts; a database from before keeps its batches.
TEST_P(StoreTest, EachAttemptSaysTheBatchItWentIn) {
  auto site = Value(store_->CreateSite("a"));
  MakeEndpoint(site.id);
  AppendResult r = Append(
      site.id, {MakeEvent(model::Action::kView, "one"), MakeEvent(model::Action::kView, "two")});
  ASSERT_EQ(r.messages.size(), 2u);
  const int64_t id = r.messages[1].id;
  const int64_t batch = r.messages[0].id;
  ASSERT_NO_FATAL_FAILURE(AssignBatch({r.messages[0].id, id}, batch));
  const auto attempt = [&](int n, int code, int64_t sent_in) {
    AttemptRecord record{
        id,      n,  1000 * n, code,
        10,      "", "",       code == 204 ? MessageStatus::kDelivered : MessageStatus::kPending,
        1000 * n};
    record.sent_in = sent_in;
    Record({record});
  };
  const auto batches = [&] {
    std::vector<int64_t> out;
    for (const Attempt& a : Value(store_->ListAttempts(id))) out.push_back(a.batch);
    return out;
  };
  attempt(1, 500, batch);
  attempt(2, 204, batch);
  EXPECT_EQ(batches(), (std::vector<int64_t>{batch, batch}));
  ASSERT_EQ(Value(store_->RequeueMessage(site.id, id, 3000)).batch, kAlone);
  // Redelivered to go alone, the message still shows the batch it went in, before and after.
  const auto shown = [&] { return Value(store_->GetMessage(site.id, id)).batch; };
  const auto listed = [&] {
    MessageQuery query;
    query.site_id = site.id;
    query.limit = 10;
    std::vector<int64_t> out;
    for (const Message& m : Value(store_->ListMessages(query))) out.push_back(m.batch);
    return out;
  };
  EXPECT_EQ(shown(), batch);
  attempt(3, 204, 0);
  EXPECT_EQ(batches(), (std::vector<int64_t>{batch, batch, 0}));
  EXPECT_EQ(shown(), batch);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(batches(), (std::vector<int64_t>{batch, batch, 0}));
  EXPECT_EQ(shown(), batch);
  EXPECT_EQ(listed(), (std::vector<int64_t>{batch, batch}));

  // Before the attempts said it, every attempt of a message in a batch went in that batch.
  const int64_t other = r.messages[0].id;
  Record({{other, 1, 1000, 500, 10, "", "", MessageStatus::kPending, 1000},
          {other, 2, 2000, 204, 10, "", "", MessageStatus::kDelivered, 2000}});
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RunSql(
      Postgres() ? "ALTER TABLE attempts DROP COLUMN batch_id; "
                   "UPDATE pushhook_schema SET version = 17"
                 : "ALTER TABLE attempts DROP COLUMN batch_id; "
                   "ALTER TABLE messages DROP COLUMN last_batch_id; PRAGMA user_version = 18"));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<int64_t> migrated;
  for (const Attempt& a : Value(store_->ListAttempts(other))) migrated.push_back(a.batch);
  EXPECT_EQ(migrated, (std::vector<int64_t>{batch, batch}));
}

// A receiver's webhook-id of a batch finds the messages that went in it: those fixed in it,
// those moved on to the second half of a split after going in it, and those redelivered alone
// since; not a message that only waits for a later batch, nor another site's.
TEST_P(StoreTest, ListMessagesFindsTheMembersOfABatch) {
  auto site = Value(store_->CreateSite("a"));
  MakeEndpoint(site.id);
  AppendResult r = Append(
      site.id, {MakeEvent(model::Action::kView, "one"), MakeEvent(model::Action::kView, "two"),
                MakeEvent(model::Action::kView, "three"), MakeEvent(model::Action::kView, "four"),
                MakeEvent(model::Action::kView, "five")});
  ASSERT_EQ(r.messages.size(), 5u);
  std::vector<int64_t> ids;
  for (const DueMessage& m : r.messages) ids.push_back(m.id);
  const int64_t batch = ids[0];
  const int64_t later = ids[4];
  ASSERT_NO_FATAL_FAILURE(AssignBatch({ids[0], ids[1], ids[2]}, batch));
  ASSERT_NO_FATAL_FAILURE(AssignBatch({ids[4]}, later));
  // Refused as too large: the third moves to a batch of its own; the first two are delivered.
  std::vector<AttemptRecord> records;
  for (int i = 0; i < 3; ++i) {
    AttemptRecord& record = records.emplace_back();
    record.message_id = ids[i];
    record.attempt = 1;
    record.status_code = i < 2 ? 204 : 413;
    record.new_status = i < 2 ? MessageStatus::kDelivered : MessageStatus::kPending;
    record.sent_in = batch;
    if (i == 2) {
      record.batch = ids[2];
      record.batch_from = batch;
    }
  }
  Record(records);
  // The second goes again alone, and is delivered.
  ASSERT_EQ(Value(store_->RequeueMessage(site.id, ids[1], 2)).batch, kAlone);
  Record({{ids[1], 2, 3, 204, 10, "", "", MessageStatus::kDelivered, 3}});
  const auto members = [&](int64_t of, int limit = 10, int64_t before = 0) {
    MessageQuery query;
    query.site_id = site.id;
    query.batch = of;
    query.limit = limit;
    query.before_id = before;
    std::vector<int64_t> out;
    for (const Message& m : Value(store_->ListMessages(query))) out.push_back(m.id);
    return out;
  };
  EXPECT_EQ(members(batch), (std::vector<int64_t>{ids[2], ids[1], ids[0]}));
  EXPECT_EQ(members(batch, 1, ids[2]), (std::vector<int64_t>{ids[1]}));
  EXPECT_EQ(members(ids[2]), (std::vector<int64_t>{ids[2]}));
  EXPECT_EQ(members(later), (std::vector<int64_t>{ids[4]}));
  EXPECT_EQ(members(ids[3]), (std::vector<int64_t>{}));  // never in a batch
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(members(batch), (std::vector<int64_t>{ids[2], ids[1], ids[0]}));
  MessageQuery elsewhere;
  elsewhere.site_id = Value(store_->CreateSite("b")).id;
  elsewhere.batch = batch;
  EXPECT_TRUE(Value(store_->ListMessages(elsewhere)).empty());
  const std::string instance = store_->instance_id();
  EXPECT_EQ(ParseBatchId(instance, FormatBatchId(instance, batch)), batch);
  EXPECT_EQ(ParseBatchId(instance, FormatMessageId(instance, batch)), std::nullopt);
  EXPECT_EQ(ParseBatchId(instance, "bat_" + instance), std::nullopt);
  EXPECT_EQ(ParseBatchId(instance, "bat_" + instance + "0"), std::nullopt);
}

TEST_P(StoreTest, RequeueMakesAFinishedMessagePendingAgain) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  Endpoint e = MakeEndpoint(site->id);
  AppendResult r = Append(site->id, {MakeEvent(model::Action::kView, "v")});
  ASSERT_EQ(r.messages.size(), 1u);
  const int64_t id = r.messages[0].id;
  Record({{id, 1, 2000, 500, 10, "", "", MessageStatus::kFailed, 2000}});
  EXPECT_TRUE(AllPending().empty());

  EXPECT_EQ(store_->RequeueMessage(other->id, id, 5000).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(store_->RequeueMessage(site->id, id + 1000, 5000).status().code(),
            model::StatusCode::kNotFound);
  EXPECT_EQ(Value(store_->GetMessage(site->id, id)).status, MessageStatus::kFailed);

  auto due = store_->RequeueMessage(site->id, id, 5000);
  ASSERT_TRUE(due.ok()) << due.status().message();
  EXPECT_EQ(due->id, id);
  EXPECT_EQ(due->endpoint_id, e.id);
  EXPECT_EQ(due->due_ms, 5000);
  EXPECT_EQ(due->attempts, 1);
  const std::vector<DueMessage> pending = AllPending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending.front().id, id);
  EXPECT_EQ(pending.front().due_ms, 5000);
  EXPECT_EQ(pending.front().attempts, 1);
  EXPECT_EQ(Value(store_->GetMessage(site->id, id)).status, MessageStatus::kPending);
  EXPECT_EQ(Value(store_->ListAttempts(id)).size(), 1u);
}

TEST_P(StoreTest, ReplayMakesMessagesForTheEventsInTheWindow) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  const auto event = [](std::string id, int64_t at, std::string cid, std::string reference) {
    model::Event e = MakeEvent(model::Action::kView, std::move(id));
    e.occurred_at_ms = at;
    e.cid = std::move(cid);
    e.reference_id = std::move(reference);
    return e;
  };
  Append(site->id, {event("t100", 100, "a", "r1"), event("t200", 200, "a", "r2"),
                    event("t300", 300, "b", "r1"), event("t400", 400, "a", "r1")});
  Append(other->id, {event("o200", 200, "a", "r1")});
  // Made after the events: only a replay gives it messages.
  Endpoint late = MakeEndpoint(site->id);
  const auto replayed_events = [&](const std::vector<DueMessage>& messages) {
    std::vector<std::string> ids;
    for (const DueMessage& m : messages) {
      EXPECT_EQ(m.endpoint_id, late.id);
      EXPECT_EQ(m.due_ms, 9000);
      EXPECT_EQ(m.attempts, 0);
      ids.push_back(Value(store_->LoadDelivery(m.id)).event.event_id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  ReplayQuery q;
  q.site_id = site->id;
  q.endpoint_id = late.id;
  q.since_ms = 200;
  q.until_ms = 400;
  auto window = store_->ReplayEvents(q, 9000);
  ASSERT_TRUE(window.ok()) << window.status().message();
  EXPECT_EQ(replayed_events(*window), (std::vector<std::string>{"t200", "t300"}));
  EXPECT_EQ(Ids(Value(store_->LoadPendingForEndpoint(late.id, 0, 10))).size(), 2u);

  q.since_ms = 0;
  q.until_ms = 1000;
  q.cid = "a";
  EXPECT_EQ(replayed_events(Value(store_->ReplayEvents(q, 9000))),
            (std::vector<std::string>{"t100", "t200", "t400"}));
  q.reference_id = "r1";
  EXPECT_EQ(replayed_events(Value(store_->ReplayEvents(q, 9000))),
            (std::vector<std::string>{"t100", "t400"}));
  q.cid.reset();
  EXPECT_EQ(replayed_events(Value(store_->ReplayEvents(q, 9000))),
            (std::vector<std::string>{"t100", "t300", "t400"}));
  q.since_ms = 500;
  EXPECT_TRUE(Value(store_->ReplayEvents(q, 9000)).empty());
}

// SQLite makes a replay's messages 5,000 at a time: every event once, in order, across pages.
TEST_P(StoreTest, AReplayOfManyEventsMakesOneMessageForEach) {
  auto site = store_->CreateSite("a");
  std::vector<model::Event> events;
  for (int i = 0; i < 12'001; ++i) {
    events.push_back(MakeEvent(model::Action::kView, "e" + std::to_string(i)));
    events.back().occurred_at_ms = 100;
  }
  Append(site->id, events);
  Endpoint late = MakeEndpoint(site->id);
  ReplayQuery q;
  q.site_id = site->id;
  q.endpoint_id = late.id;
  q.since_ms = 0;
  q.until_ms = 1000;
  const std::vector<DueMessage> replayed = Value(store_->ReplayEvents(q, 9000));
  ASSERT_EQ(replayed.size(), events.size());
  EXPECT_TRUE(std::is_sorted(replayed.begin(), replayed.end(),
                             [](const DueMessage& a, const DueMessage& b) { return a.id < b.id; }));
  EXPECT_EQ(Value(store_->LoadDelivery(replayed.front().id)).event.event_id, "e0");
  EXPECT_EQ(Value(store_->LoadDelivery(replayed.back().id)).event.event_id, "e12000");
  // Over max_events, nothing: all or none, and the caller is told to replay shorter windows.
  q.max_events = 7'000;
  const auto pending = [&] {
    return Value(store_->LoadPendingForEndpoint(late.id, 0, 100'000)).size();
  };
  ASSERT_EQ(pending(), events.size());
  const auto refused = store_->ReplayEvents(q, 9000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), model::StatusCode::kUnprocessable);
  EXPECT_EQ(refused.status().message(),
            "the window holds more than 7000 events to send; nothing was replayed: replay it as "
            "shorter windows, one after another");
  EXPECT_EQ(pending(), events.size()) << "no message made";
  q.max_events = events.size();
  EXPECT_EQ(Value(store_->ReplayEvents(q, 9000)).size(), events.size()) << "exactly max_events";
}

// A replay sends only the actions the endpoint takes, as ingest does.
TEST_P(StoreTest, ReplayKeepsToTheEndpointsEvents) {
  auto site = store_->CreateSite("a");
  Append(site->id, {MakeEvent(model::Action::kView, "v"), MakeEvent(model::Action::kClick, "c"),
                    MakeEvent(model::Action::kDismiss, "d")});
  const auto replayed = [&](model::EventFilter filter) {
    Endpoint late = MakeEndpoint(site->id, filter);
    ReplayQuery q;
    q.site_id = site->id;
    q.endpoint_id = late.id;
    q.since_ms = 0;
    q.until_ms = 1000;
    q.max_events = 10;
    std::vector<std::string> ids;
    for (const DueMessage& m : Value(store_->ReplayEvents(q, 9000))) {
      ids.push_back(Value(store_->LoadDelivery(m.id)).event.event_id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  EXPECT_EQ(replayed({}), (std::vector<std::string>{"c", "v"}));
  EXPECT_EQ(replayed({false, true, false}), (std::vector<std::string>{"c"}));
  EXPECT_EQ(replayed({false, false, true}), (std::vector<std::string>{"d"}));
}

TEST_P(StoreTest, EndpointStatsCountAttemptsAndLatencyPercentiles) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id, model::EventFilter{true, false});
  Endpoint other = MakeEndpoint(site->id, model::EventFilter{false, true});
  // 101 attempts with latencies 10, 20, ... 1010 µs, recorded out of order. With 101 values the
  // usual percentile definitions agree: p50 is the 51st (510), p99 the 100th (1000), each
  // answered as the middle of its latency bucket.
  std::vector<model::Event> events;
  for (int i = 1; i <= 101; ++i) {
    events.push_back(MakeEvent(model::Action::kView, std::to_string(i)));
  }
  events.push_back(MakeEvent(model::Action::kClick, "to-other"));
  AppendResult r = Append(site->id, events);
  std::vector<int64_t> ids;
  int64_t other_message = 0;
  for (const DueMessage& m : r.messages) {
    if (m.endpoint_id == e.id) {
      ids.push_back(m.id);
    } else {
      other_message = m.id;
    }
  }
  ASSERT_EQ(ids.size(), 101u);
  std::vector<AttemptRecord> records;
  for (int i = 1; i <= 101; ++i) {
    const int n = (i * 37) % 101 + 1;  // a permutation of 1..101
    // 1..60 answered 2xx (60 with 299), 61 a redirect, 62..90 a 500, 91..101 no answer.
    const int code = n < 60 ? 204 : n == 60 ? 299 : n == 61 ? 302 : n <= 90 ? 500 : 0;
    const MessageStatus status = code / 100 == 2 ? MessageStatus::kDelivered
                                 : code == 0     ? MessageStatus::kFailed
                                                 : MessageStatus::kPending;
    records.push_back({ids[static_cast<size_t>(n - 1)], 1, 10'000, code, int64_t{n} * 10, "", "",
                       status, 20'000});
  }
  records.push_back({other_message, 1, 10'000, 500, 999'999, "", "", MessageStatus::kPending, 0});
  // Each record its own write, all queued at once as the dispatcher queues them: the writer
  // commits several in one transaction, whose counts must add up.
  NameEndpoints(records);
  std::vector<std::future<model::Status>> recorded;
  for (AttemptRecord& record : records) {
    auto done = std::make_shared<std::promise<model::Status>>();
    recorded.push_back(done->get_future());
    store_->RecordAttempts({std::move(record)}, [done](model::Status st) { done->set_value(st); });
  }
  for (auto& f : recorded) ASSERT_TRUE(f.get().ok());

  auto stats = store_->GetEndpointStats(e.id, 10'000);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->attempts, 101u);
  EXPECT_EQ(stats->successes, 60u);
  EXPECT_EQ(stats->failures, 41u);
  EXPECT_EQ(stats->latency_p50_us, BucketMiddle(510));
  EXPECT_EQ(stats->latency_p99_us, BucketMiddle(1000));
  EXPECT_NEAR(stats->latency_p50_us, 510, 51);
  EXPECT_NEAR(stats->latency_p99_us, 1000, 100);
  EXPECT_EQ(stats->pending, 30u);
  EXPECT_EQ(stats->failed_messages, 11u);
  // Attempts before `since`'s hour do not count; the messages' states do.
  auto later = Value(store_->GetEndpointStats(e.id, model::kHourMs));
  EXPECT_EQ(later.attempts, 0u);
  EXPECT_EQ(later.latency_p50_us, 0);
  EXPECT_EQ(later.latency_p99_us, 0);
  EXPECT_EQ(later.pending, 30u);
  EXPECT_EQ(later.failed_messages, 11u);
}

// Attempts are counted by the hour: those in the hour that holds `since` count, even before it,
// and those in earlier hours do not.
TEST_P(StoreTest, EndpointStatsCountFromTheStartOfSincesHour) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  AppendResult r =
      Append(site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2"),
                        MakeEvent(model::Action::kView, "3")});
  ASSERT_EQ(r.messages.size(), 3u);
  constexpr int64_t kHour5 = 5 * model::kHourMs;
  Record({{r.messages[0].id, 1, kHour5 - 1, 204, 100, "", "", MessageStatus::kDelivered, 0},
          {r.messages[1].id, 1, kHour5, 500, 2000, "", "", MessageStatus::kFailed, 0},
          {r.messages[2].id, 1, kHour5 + 59 * model::kMinuteMs, 204, 3000, "", "",
           MessageStatus::kDelivered, 0}});
  auto stats = Value(store_->GetEndpointStats(e.id, kHour5 + 30 * model::kMinuteMs));
  EXPECT_EQ(stats.attempts, 2u);
  EXPECT_EQ(stats.successes, 1u);
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.latency_p50_us, BucketMiddle(3000)) << "rank floor(0.5 * 2) = 1: the slower";
  EXPECT_EQ(stats.latency_p99_us, BucketMiddle(3000));
  EXPECT_EQ(Value(store_->GetEndpointStats(e.id, kHour5 - 1)).attempts, 3u);
  EXPECT_EQ(Value(store_->GetEndpointStats(e.id, kHour5 + model::kHourMs)).attempts, 0u);
}

// A batch is one request: its members' records count it once in the endpoint's statistics,
// while each member is delivered.
TEST_P(StoreTest, EndpointStatsCountABatchAsOneRequest) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  AppendResult r =
      Append(site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2"),
                        MakeEvent(model::Action::kView, "3")});
  ASSERT_EQ(r.messages.size(), 3u);
  std::vector<AttemptRecord> batch;
  for (const DueMessage& m : r.messages) {
    batch.push_back({m.id, 1, 2000, 204, 5000, "", "", MessageStatus::kDelivered, 2000});
    batch.back().counts_request = batch.size() == 1;
  }
  Record(batch);
  auto stats = Value(store_->GetEndpointStats(e.id, 0));
  EXPECT_EQ(stats.attempts, 1u);
  EXPECT_EQ(stats.successes, 1u);
  EXPECT_EQ(stats.pending, 0u);
  for (const DueMessage& m : r.messages) {
    EXPECT_EQ(Value(store_->GetMessage(site->id, m.id)).status, MessageStatus::kDelivered);
  }
}

// A message delivered again after it finished adds its second attempt to the counts, and moves
// between the pending and failed counts as its state does.
TEST_P(StoreTest, EndpointStatsCountARedeliveryAndTheMessagesStates) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  Endpoint other = MakeEndpoint(site->id);
  AppendResult r =
      Append(site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2"),
                        MakeEvent(model::Action::kView, "3")});
  std::vector<int64_t> ids;
  for (const DueMessage& m : r.messages) {
    if (m.endpoint_id == e.id) ids.push_back(m.id);
  }
  ASSERT_EQ(ids.size(), 3u);
  // One failed, one pending after a failed attempt, one never tried; the other endpoint's
  // messages are all pending.
  Record({{ids[0], 1, 2000, 0, 10'000, "refused", "", MessageStatus::kFailed, 2000},
          {ids[1], 1, 2000, 503, 20'000, "", "", MessageStatus::kPending, 9000}});
  auto before = Value(store_->GetEndpointStats(e.id, 0));
  EXPECT_EQ(before.attempts, 2u);
  EXPECT_EQ(before.successes, 0u);
  EXPECT_EQ(before.failures, 2u);
  EXPECT_EQ(before.pending, 2u);
  EXPECT_EQ(before.failed_messages, 1u);
  EXPECT_EQ(Value(store_->GetEndpointStats(other.id, 0)).pending, 3u);

  ASSERT_TRUE(store_->RequeueMessage(site->id, ids[0], 3000).ok());
  EXPECT_EQ(Value(store_->GetEndpointStats(e.id, 0)).failed_messages, 0u);
  Record({{ids[0], 2, 3000, 200, 10'000, "", "", MessageStatus::kDelivered, 3000}});
  auto after = Value(store_->GetEndpointStats(e.id, 0));
  EXPECT_EQ(after.attempts, 3u);
  EXPECT_EQ(after.successes, 1u);
  EXPECT_EQ(after.failures, 2u);
  EXPECT_EQ(after.pending, 2u);
  EXPECT_EQ(after.failed_messages, 0u);
  EXPECT_EQ(after.latency_p50_us, BucketMiddle(10'000));
  EXPECT_EQ(after.latency_p99_us, BucketMiddle(20'000));
  EXPECT_EQ(Value(store_->GetEndpointStats(other.id, 0)).attempts, 0u);
}

// The hourly counts go with the delivered messages: those of hours before the delivered
// cut-off's hour are purged, a deleted endpoint's too; the cut-off's hour stays.
TEST_P(StoreTest, PurgeDeletesAttemptCountsOfHoursBeforeTheDeliveredCutOff) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  Endpoint gone = MakeEndpoint(site->id);
  AppendResult r = Append(
      site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2")});
  ASSERT_EQ(r.messages.size(), 4u);
  std::vector<AttemptRecord> records;
  for (const DueMessage& m : r.messages) {
    const bool first = m.id == r.messages[0].id || m.id == r.messages[1].id;
    const int64_t at = first ? model::kHourMs + 10 : 3 * model::kHourMs + 10;
    records.push_back({m.id, 1, at, 204, 100, "", "", MessageStatus::kPending, 0});
  }
  Record(records);
  ASSERT_TRUE(store_->DeleteEndpoint(site->id, gone.id).ok());
  const auto attempts = [&](const Endpoint& endpoint) {
    return Value(store_->GetEndpointStats(endpoint.id, 0)).attempts;
  };
  ASSERT_EQ(attempts(e) + attempts(gone), 4u);

  EXPECT_EQ(Value(store_->PurgeMessages(model::kHourMs + 1, 0, 100)), 0u);
  EXPECT_EQ(attempts(e) + attempts(gone), 4u) << "the cut-off's hour stays";
  EXPECT_EQ(Value(store_->PurgeMessages(2 * model::kHourMs + 1, 0, 100)), 0u);
  EXPECT_EQ(attempts(e), 1u);
  EXPECT_EQ(attempts(gone), 1u);
  EXPECT_EQ(Value(store_->GetEndpointStats(e.id, 3 * model::kHourMs)).attempts, 1u);
}

TEST_P(StoreTest, PurgeDeletesFinishedMessagesOlderThanTheirCutOff) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  std::vector<model::Event> events;
  for (int i = 0; i < 5; ++i) events.push_back(MakeEvent(model::Action::kView, std::to_string(i)));
  AppendResult r = Append(site->id, events);
  ASSERT_EQ(r.messages.size(), 5u);
  std::vector<int64_t> id = Ids(r.messages);
  const auto finish = [](int64_t message, MessageStatus status, int64_t at) {
    return AttemptRecord{message, 1, at, 200, 10, "", "", status, at};
  };
  Record({finish(id[0], MessageStatus::kDelivered, 1000),  // old delivered: goes
          finish(id[1], MessageStatus::kDelivered, 4000),  // recent delivered: stays
          finish(id[2], MessageStatus::kFailed, 1500),     // old failed: goes
          finish(id[3], MessageStatus::kFailed, 2500),     // failed, kept longer: stays
          finish(id[4], MessageStatus::kPending, 500)});   // pending, however old: stays

  auto purged = store_->PurgeMessages(3000, 2000, 100);
  ASSERT_TRUE(purged.ok()) << purged.status().message();
  EXPECT_EQ(*purged, 2u);
  for (int64_t gone : {id[0], id[2]}) {
    EXPECT_EQ(store_->GetMessage(site->id, gone).status().code(), model::StatusCode::kNotFound);
    EXPECT_TRUE(Value(store_->ListAttempts(gone)).empty());
  }
  for (int64_t kept : {id[1], id[3], id[4]}) {
    EXPECT_TRUE(store_->GetMessage(site->id, kept).ok());
    EXPECT_EQ(Value(store_->ListAttempts(kept)).size(), 1u);
  }
  EXPECT_EQ(Value(store_->PurgeMessages(3000, 2000, 100)), 0u);
}

TEST_P(StoreTest, PurgeStopsAtItsLimit) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  AppendResult r =
      Append(site->id, {MakeEvent(model::Action::kView, "1"), MakeEvent(model::Action::kView, "2"),
                        MakeEvent(model::Action::kView, "3")});
  std::vector<AttemptRecord> records;
  for (const DueMessage& m : r.messages) {
    records.push_back({m.id, 1, 100, 204, 10, "", "", MessageStatus::kDelivered, 100});
  }
  Record(records);
  EXPECT_EQ(Value(store_->PurgeMessages(1000, 1000, 2)), 2u);
  EXPECT_EQ(Value(store_->PurgeMessages(1000, 1000, 2)), 1u);
  EXPECT_EQ(Value(store_->PurgeMessages(1000, 1000, 2)), 0u);
}

// A request that repeats stored events counts only its new ones, in every table the
// statistics have: the totals, a UTM group and the campaign list. Big enough that its
// statistics are gathered before the writer sees it (PreparedAppend::kAggregatedFrom).
TEST_P(StoreTest, StatsCountOnlyTheNewEventsOfARequestWithDuplicates) {
  auto site = store_->CreateSite("a");
  const auto event = [](model::Action action, int id) {
    model::Event e = MakeEvent(action, std::to_string(id));
    e.cid = "spring";
    e.utm_source = "news";
    e.cookie_id = "s-" + e.event_id;
    e.occurred_at_ms = 10'000;
    return e;
  };
  const model::Action kView = model::Action::kView, kClick = model::Action::kClick;
  EXPECT_EQ(Append(site->id, {event(kView, 1), event(kClick, 2)}).accepted, 2u);
  std::vector<model::Event> mixed = {event(kView, 1), event(kClick, 2)};
  for (int id = 3; id <= 20; ++id) mixed.push_back(event(kView, id));
  const AppendResult r = Append(site->id, mixed);
  EXPECT_EQ(r.accepted, 18u);
  EXPECT_EQ(r.duplicates, 2u);
  StatsQuery q;
  q.site_id = site->id;
  q.from_ms = 0;
  q.to_ms = model::kHourMs;
  EXPECT_EQ(Text(Value(store_->QueryStats(q)).totals), Text(19, 1, 1, 0, 0));
  q.group_by = "utm_source";
  const StatsResult grouped = Value(store_->QueryStats(q));
  ASSERT_EQ(grouped.groups.size(), 1u);
  EXPECT_EQ(Text(grouped.groups[0]), "news: " + Text(19, 1, 1, 0, 0));
  const std::vector<CampaignSummary> campaigns = Campaigns(site->id);
  ASSERT_EQ(campaigns.size(), 1u);
  EXPECT_EQ(Text(campaigns[0].counters), Text(19, 1, 1, 0, 0));
}

TEST_P(StoreTest, StatsAddUpTotalsSeriesAndGroups) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  constexpr int64_t kH = model::kHourMs;
  const auto event = [](model::Action action, int button, std::string cid, std::string reference,
                        std::string source, std::string cookie, int64_t at) {
    model::Event e = MakeEvent(action, "");
    e.clicked_button = button;
    e.cid = std::move(cid);
    e.reference_id = std::move(reference);
    e.utm_source = std::move(source);
    e.cookie_id = std::move(cookie);
    e.occurred_at_ms = at;
    return e;
  };
  const model::Action kView = model::Action::kView, kClick = model::Action::kClick;
  Append(site->id, {event(kView, 0, "a", "r1", "news", "c1", 3 * kH + 10'000),
                    event(kClick, 0, "a", "r1", "news", "c1", 3 * kH + 70'000),
                    event(kClick, 2, "a", "r2", "", "c2", 4 * kH + 300'000),
                    event(kView, 0, "b", "r1", "ads", "c3", 4 * kH + 1'800'000),
                    event(kClick, 2, "b", "r1", "ads", "c3", 5 * kH),
                    event(kView, 0, "a", "r1", "news", "c4", 6 * kH)});  // after the range
  Append(other->id, {event(kView, 0, "a", "r1", "news", "c9", 3 * kH)});

  StatsQuery q;
  q.site_id = site->id;
  q.from_ms = 3 * kH;
  q.to_ms = 6 * kH;
  auto all = store_->QueryStats(q);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(Text(all->totals), Text(2, 3, 1, 0, 2));
  EXPECT_NEAR(all->unique_subscribers, 3, 0.15);
  ASSERT_EQ(all->series.size(), 3u);
  EXPECT_EQ(Text(all->series[0]), std::to_string(3 * kH) + ": " + Text(1, 1, 1, 0, 0));
  EXPECT_EQ(Text(all->series[1]), std::to_string(4 * kH) + ": " + Text(1, 1, 0, 0, 1));
  EXPECT_EQ(Text(all->series[2]), std::to_string(5 * kH) + ": " + Text(0, 1, 0, 0, 1));
  EXPECT_TRUE(all->groups.empty());
  // Unique subscribers per bucket, from the hourly sketches (views and clicks alike).
  const auto uniques = [](const std::vector<StatsRow>& rows) {
    std::string out;
    for (const StatsRow& row : rows) {
      out += row.unique_subscribers ? std::to_string(std::llround(*row.unique_subscribers)) : "-";
    }
    return out;
  };
  EXPECT_EQ(uniques(all->series), "121");
  q.bucket_ms = model::kDayMs;
  EXPECT_EQ(uniques(Value(store_->QueryStats(q)).series), "3");
  q.bucket_ms = model::kMinuteMs;
  EXPECT_EQ(uniques(Value(store_->QueryStats(q)).series), "-----") << "no sketch per minute";
  q.bucket_ms = model::kHourMs;

  q.group_by = "cid";
  auto by_cid = Value(store_->QueryStats(q));
  ASSERT_EQ(by_cid.groups.size(), 2u);
  EXPECT_EQ(Text(by_cid.groups[0]), "a: " + Text(1, 2, 1, 0, 1));
  EXPECT_EQ(Text(by_cid.groups[1]), "b: " + Text(1, 1, 0, 0, 1));
  EXPECT_EQ(uniques(by_cid.groups), "21");

  q.group_by = "reference_id";
  auto by_run = Value(store_->QueryStats(q));
  ASSERT_EQ(by_run.groups.size(), 2u);
  EXPECT_EQ(Text(by_run.groups[0]), "r1: " + Text(2, 2, 1, 0, 1));
  EXPECT_EQ(Text(by_run.groups[1]), "r2: " + Text(0, 1, 0, 0, 1));
  EXPECT_EQ(uniques(by_run.groups), "21");

  // By button, each group carries all views: the denominator of its click-through rate.
  q.group_by = "button";
  auto by_button = Value(store_->QueryStats(q));
  ASSERT_EQ(by_button.groups.size(), 3u);
  EXPECT_EQ(Text(by_button.groups[0]), "0: " + Text(2, 1, 1, 0, 0));
  EXPECT_EQ(Text(by_button.groups[1]), "1: " + Text(2, 0, 0, 0, 0));
  EXPECT_EQ(Text(by_button.groups[2]), "2: " + Text(2, 2, 0, 0, 2));

  // An absent UTM value is a group of its own, so that the groups add up to the totals.
  q.group_by = "utm_source";
  auto by_source = Value(store_->QueryStats(q));
  ASSERT_EQ(by_source.groups.size(), 3u);
  EXPECT_EQ(Text(by_source.groups[0]), ": " + Text(0, 1, 0, 0, 1));
  EXPECT_EQ(Text(by_source.groups[1]), "ads: " + Text(1, 1, 0, 0, 1));
  EXPECT_EQ(Text(by_source.groups[2]), "news: " + Text(1, 1, 1, 0, 0));
  EXPECT_EQ(uniques(by_source.groups), "---") << "no sketch per UTM value";

  q.group_by = "colour";
  EXPECT_EQ(store_->QueryStats(q).status().code(), model::StatusCode::kInvalidArgument);

  q.group_by.reset();
  q.cid = "a";
  auto of_a = Value(store_->QueryStats(q));
  EXPECT_EQ(Text(of_a.totals), Text(1, 2, 1, 0, 1));
  EXPECT_NEAR(of_a.unique_subscribers, 2, 0.1);
  q.reference_id = "r1";
  auto of_run = Value(store_->QueryStats(q));
  EXPECT_EQ(Text(of_run.totals), Text(1, 1, 1, 0, 0));
  EXPECT_NEAR(of_run.unique_subscribers, 1, 0.05);
  ASSERT_EQ(of_run.series.size(), 1u);
  EXPECT_EQ(of_run.series[0].key, std::to_string(3 * kH));
}

// Dismiss goes only to endpoints that take it, reads back as Dismiss, and is counted as
// dismissals in totals, series, every kind of group and the campaign list.
TEST_P(StoreTest, DismissalsFanOutByFilterAndAreCountedEverywhere) {
  auto site = store_->CreateSite("a");
  Endpoint plain = MakeEndpoint(site->id);
  Endpoint dismissals = MakeEndpoint(site->id, model::EventFilter{false, false, true});
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, dismissals.id)).filter,
            (model::EventFilter{false, false, true}));
  model::Event dismiss = MakeEvent(model::Action::kDismiss, "d1");
  dismiss.utm_source = "news";
  AppendResult r = Append(site->id, {MakeEvent(model::Action::kView, "v1"), dismiss,
                                     MakeEvent(model::Action::kDismiss, "d2")});
  ASSERT_EQ(r.messages.size(), 3u);
  size_t to_plain = 0;
  for (const auto& m : r.messages) to_plain += m.endpoint_id == plain.id ? 1 : 0;
  EXPECT_EQ(to_plain, 1u) << "the default filter takes the View only";
  for (const auto& m : r.messages) {
    if (m.endpoint_id != dismissals.id) continue;
    EXPECT_EQ(Value(store_->LoadDelivery(m.id)).event.action, model::Action::kDismiss);
  }

  StatsQuery q;
  q.site_id = site->id;
  q.from_ms = 0;
  q.to_ms = model::kHourMs;
  const StatsResult all = Value(store_->QueryStats(q));
  EXPECT_EQ(all.totals.views, 1);
  EXPECT_EQ(all.totals.clicks, 0);
  EXPECT_EQ(all.totals.dismissals, 2);
  ASSERT_EQ(all.series.size(), 1u);
  EXPECT_EQ(all.series[0].counters.dismissals, 2);
  q.group_by = "cid";
  EXPECT_EQ(Value(store_->QueryStats(q)).groups.at(0).counters.dismissals, 2);
  q.group_by = "utm_source";
  const StatsResult by_source = Value(store_->QueryStats(q));
  ASSERT_EQ(by_source.groups.size(), 2u);
  EXPECT_EQ(by_source.groups[0].key + ":" +
                std::to_string(by_source.groups[0].counters.dismissals) + " " +
                by_source.groups[1].key + ":" +
                std::to_string(by_source.groups[1].counters.dismissals),
            ":1 news:1");
  const auto campaigns = Campaigns(site->id);
  ASSERT_EQ(campaigns.size(), 1u);
  EXPECT_EQ(campaigns[0].counters.dismissals, 2);
}

TEST_P(StoreTest, UniqueSubscribersAreEstimatedWithinFivePercent) {
  auto site = store_->CreateSite("a");
  // 2,000 subscribers over two hours, most of them seen in both: 3,000 events.
  std::vector<model::Event> events;
  for (int i = 0; i < 3000; ++i) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.cookie_id = "subscriber-" + std::to_string(i % 2000);
    e.cid = i % 3 == 0 ? "x" : "y";
    e.occurred_at_ms = (i < 1500 ? 0 : model::kHourMs) + i;
    events.push_back(std::move(e));
  }
  for (size_t from = 0; from < events.size(); from += 500) {
    Append(site->id, std::vector<model::Event>(events.begin() + static_cast<long>(from),
                                               events.begin() + static_cast<long>(from + 500)));
  }
  StatsQuery q;
  q.site_id = site->id;
  auto all = store_->QueryStats(q);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->totals.views, 3000);
  EXPECT_NEAR(all->unique_subscribers, 2000, 100);
  q.cid = "x";  // every third event: 1,000 events of 1,000 subscribers
  EXPECT_NEAR(Value(store_->QueryStats(q)).unique_subscribers, 1000, 50);
  q.cid.reset();
  q.to_ms = model::kHourMs;  // the first hour alone: 1,500 subscribers
  EXPECT_NEAR(Value(store_->QueryStats(q)).unique_subscribers, 1500, 75);
}

// A campaign is listed under the title of the latest event that had one: an event without a
// title leaves it, whether the two arrive in one batch or in two.
TEST_P(StoreTest, ACampaignIsCalledByItsLatestTitle) {
  auto site = store_->CreateSite("a");
  const auto titled = [](std::string title) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.notification_title = std::move(title);
    return e;
  };
  const auto title = [&] {
    auto campaigns = Campaigns(site->id);
    return campaigns.size() == 1 ? campaigns[0].title
                                 : "(" + std::to_string(campaigns.size()) + ")";
  };
  Append(site->id, {titled("First")}, 1000);
  EXPECT_EQ(title(), "First");
  Append(site->id, {titled("")}, 2000);
  EXPECT_EQ(title(), "First") << "an event without a title keeps the one there is";
  Append(site->id, {titled("Second <b>"), titled("")}, 3000);
  EXPECT_EQ(title(), "Second <b>");
  Append(site->id, {titled("Third"), titled("Fourth")}, 4000);
  EXPECT_EQ(title(), "Fourth") << "within one arrival, the later event";
}

TEST_P(StoreTest, CampaignsPageMostRecentlyActiveFirst) {
  auto site = store_->CreateSite("a");
  auto other = store_->CreateSite("b");
  const auto view = [](std::string cid) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.cid = std::move(cid);
    return e;
  };
  Append(site->id, {view("a")}, 1000);
  Append(site->id, {view("c"), view("b")}, 2000);
  Append(site->id, {view("a")}, 1500);
  Append(site->id, {view("d")}, 3000);
  Append(other->id, {view("z")}, 9000);

  const auto page1 = Campaigns(site->id, 2);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_EQ(page1[0].cid, "d");
  EXPECT_EQ(page1[1].cid, "b");  // ties in activity go by cid
  EXPECT_EQ(page1[1].last_active_ms, 2000);
  CampaignQuery q;
  q.site_id = site->id;
  q.limit = 2;
  q.after = CampaignCursor{int64_t{2000}, "b"};
  auto page2 = Value(store_->ListCampaigns(q));
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].cid, "c");
  EXPECT_EQ(page2[1].cid, "a");
  EXPECT_EQ(page2[1].counters.views, 2);
  EXPECT_EQ(page2[1].first_active_ms, 1000);
  EXPECT_EQ(page2[1].last_active_ms, 1500);
  q.after = CampaignCursor{int64_t{1500}, "a"};
  EXPECT_TRUE(Value(store_->ListCampaigns(q)).empty());
}

// Every order pages through every campaign once, in order, ties broken by cid; a search finds
// text in the cid or the title, ignoring case, and takes % and _ as themselves.
TEST_P(StoreTest, CampaignsSortAndSearch) {
  auto site = store_->CreateSite("a");
  const auto event = [](std::string cid, model::Action action, std::string title = "") {
    model::Event e = MakeEvent(action, "");
    e.cid = std::move(cid);
    e.notification_title = std::move(title);
    if (action == model::Action::kClick) e.clicked_button = 1;
    return e;
  };
  using model::Action;
  // views/clicks: a 4/1 (0.25), b 2/1 (0.5), c 2/0, d 1/1 (1.0), e 0/0 with a dismissal.
  Append(site->id,
         {event("a", Action::kView, "Summer SALE"), event("a", Action::kView),
          event("a", Action::kView), event("a", Action::kView), event("a", Action::kClick),
          event("b", Action::kView, "100% off_now"), event("b", Action::kView),
          event("b", Action::kClick), event("c", Action::kView, "Winter"),
          event("c", Action::kView), event("d", Action::kView, "sale ends"),
          event("d", Action::kClick), event("e", Action::kDismiss)},
         1000);
  const auto walk = [&](CampaignSort sort, bool descending, std::string search = "") {
    CampaignQuery q;
    q.site_id = site->id;
    q.sort = sort;
    q.descending = descending;
    q.search = std::move(search);
    q.limit = 2;
    std::string order;
    for (int page = 0; page < 5; ++page) {
      const auto rows = Value(store_->ListCampaigns(q));
      for (const CampaignSummary& c : rows) order += c.cid;
      if (rows.size() < 2) return order;
      q.after = CampaignCursor{CampaignSortValueOf(rows.back(), sort), rows.back().cid};
    }
    return order + "…";
  };
  EXPECT_EQ(walk(CampaignSort::kViews, true), "abcde");
  EXPECT_EQ(walk(CampaignSort::kViews, false), "edbca");
  EXPECT_EQ(walk(CampaignSort::kClicks, true), "abdce");
  EXPECT_EQ(walk(CampaignSort::kCtr, true), "dbace");
  EXPECT_EQ(walk(CampaignSort::kCtr, false), "ceabd");
  EXPECT_EQ(walk(CampaignSort::kDismissals, true), "eabcd");
  EXPECT_EQ(walk(CampaignSort::kCid, false), "abcde");
  EXPECT_EQ(walk(CampaignSort::kCid, true), "edcba");
  EXPECT_EQ(walk(CampaignSort::kViews, true, "sale"), "ad") << "titles, any case";
  EXPECT_EQ(walk(CampaignSort::kViews, true, "C"), "c") << "cids, any case";
  EXPECT_EQ(walk(CampaignSort::kViews, true, "0%"), "b");
  EXPECT_EQ(walk(CampaignSort::kViews, true, "f_"), "b");
  EXPECT_EQ(walk(CampaignSort::kViews, true, "%"), "b") << "% is a character, not a wildcard";
  EXPECT_EQ(walk(CampaignSort::kViews, true, "n_w"), "") << "_ is a character too";
  EXPECT_EQ(walk(CampaignSort::kViews, true, "autumn"), "");
}

// Text beyond ASCII is found as it is written, on either backend (PostgreSQL's lower() folds
// "Ä", SQLite's does not: the pattern goes through the same lower() as the text).
TEST_P(StoreTest, CampaignSearchFindsTextBeyondAsciiAsWritten) {
  auto site = store_->CreateSite("a");
  model::Event e = MakeEvent(model::Action::kView, "");
  e.cid = "Ärger";
  e.notification_title = "Größe ÜBER alles";
  Append(site->id, {e}, 1000);
  // Case is ignored in every script that has it, on both stores (SQLite's own lower() maps
  // ASCII only); what has no case, or is another letter, is not found.
  for (const std::string search :
       {"Ärger", "rger", "RGER", "Größe", "ÜBER", "über", "Über", "äRGER", "GRÖSSE", "Uber"}) {
    CampaignQuery q;
    q.site_id = site->id;
    q.search = search;
    q.limit = 10;
    const auto found = Value(store_->ListCampaigns(q));
    if (search == "GRÖSSE" || search == "Uber") {
      EXPECT_TRUE(found.empty()) << search;
      continue;
    }
    ASSERT_EQ(found.size(), 1u) << search;
    EXPECT_EQ(found[0].cid, "Ärger");
  }
}

// A campaign's unique subscribers add up across arrivals, hours and runs, and a sketch that
// already holds the stored one replaces it (PostgreSQL once kept the smaller one).
TEST_P(StoreTest, CampaignUniqueSubscribersAddUpAcrossArrivals) {
  auto site = store_->CreateSite("a");
  const auto view = [](std::string cookie, std::string run, int64_t at_ms) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.cookie_id = std::move(cookie);
    e.reference_id = std::move(run);
    e.occurred_at_ms = at_ms;
    return e;
  };
  Append(site->id, {view("s1", "r1", 0)}, 1000);
  Append(site->id, {view("s1", "r1", 1), view("s2", "r1", 2)}, 2000);
  Append(site->id, {view("s3", "r2", model::kHourMs), view("s1", "r2", model::kHourMs)}, 3000);
  const auto campaigns = Campaigns(site->id);
  ASSERT_EQ(campaigns.size(), 1u);
  EXPECT_NEAR(campaigns[0].unique_subscribers, 3, 0.01);
  StatsQuery q;
  q.site_id = site->id;
  q.cid = "42";
  q.to_ms = model::kHourMs;
  EXPECT_NEAR(Value(store_->QueryStats(q)).unique_subscribers, 2, 0.01) << "the first hour";
}

// Each undoes one migration, on either backend; the first SQLite's 19, 18 and 17, which every
// SQLite rewind below runs again.
constexpr const char* kUndoMessageColumns =
    "ALTER TABLE attempts DROP COLUMN batch_id; ALTER TABLE messages DROP COLUMN last_batch_id; "
    "ALTER TABLE messages DROP COLUMN splits; "
    "INSERT OR REPLACE INTO attempts(message_id, attempt, at, status_code, latency_us, error, "
    "response) SELECT id, last_attempt, last_at, last_status, last_latency_us, last_error, "
    "last_response FROM messages WHERE last_attempt > 0; "
    "ALTER TABLE messages DROP COLUMN last_attempt; ALTER TABLE messages DROP COLUMN last_at; "
    "ALTER TABLE messages DROP COLUMN last_latency_us; "
    "ALTER TABLE messages DROP COLUMN last_response; ";
constexpr const char* kUndoAttemptStats =
    "DROP TABLE attempt_stats_hour; DROP INDEX messages_failed_by_endpoint; ";
constexpr const char* kUndoUtmButtons =
    "ALTER TABLE stats_utm_minute DROP COLUMN b0; ALTER TABLE stats_utm_minute DROP COLUMN b1; "
    "ALTER TABLE stats_utm_minute DROP COLUMN b2; ";
constexpr const char* kUndoReplayKeys =
    "DROP INDEX events_by_replay_key; ALTER TABLE events DROP COLUMN replay_key; ";
constexpr const char* kUndoPreviousSecrets =
    "ALTER TABLE endpoints ADD COLUMN previous_secret TEXT NOT NULL DEFAULT ''; "
    "ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at BIGINT NOT NULL DEFAULT 0; "
    "ALTER TABLE endpoints DROP COLUMN previous_secrets; "
    "ALTER TABLE sites ADD COLUMN beacon_secret_previous TEXT NOT NULL DEFAULT ''; "
    "ALTER TABLE sites ADD COLUMN beacon_secret_previous_until BIGINT NOT NULL DEFAULT 0; "
    "ALTER TABLE sites DROP COLUMN previous_beacon_secrets; ";

// A database from before hourly attempt counts gets them from the attempts it stored when it
// migrates: the same answers as counting them as they were recorded.
TEST_P(StoreTest, MigratingCountsTheAttemptsAlreadyStored) {
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  Endpoint other = MakeEndpoint(site->id);
  std::vector<model::Event> events;
  for (int i = 0; i < 40; ++i) events.push_back(MakeEvent(model::Action::kView, std::to_string(i)));
  AppendResult r = Append(site->id, events);
  std::vector<AttemptRecord> records;
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const int64_t at = static_cast<int64_t>(i % 3) * model::kHourMs + 7;
    const int code = i % 4 == 0 ? 500 : 200;
    const MessageStatus status = i % 5 == 0 ? MessageStatus::kFailed : MessageStatus::kDelivered;
    records.push_back(
        {r.messages[i].id, 1, at, code, static_cast<int64_t>(i * i * 37 + 5), "", "", status, at});
  }
  Record(records);
  const auto answers = [&]() {
    std::string out;
    for (const Endpoint& endpoint : {e, other}) {
      for (int64_t since : {int64_t{0}, model::kHourMs, 2 * model::kHourMs}) {
        const EndpointStats s = Value(store_->GetEndpointStats(endpoint.id, since));
        out += std::to_string(s.attempts) + "/" + std::to_string(s.successes) + "/" +
               std::to_string(s.failures) + "/" + std::to_string(s.latency_p50_us) + "/" +
               std::to_string(s.latency_p99_us) + "/" + std::to_string(s.pending) + "/" +
               std::to_string(s.failed_messages) + " ";
      }
    }
    return out;
  };
  const std::string counted = answers();
  ASSERT_EQ(Value(store_->GetEndpointStats(e.id, 0)).attempts, 40u);
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RunSql(
      kUndoAttemptStats +
      std::string(Postgres() ? "UPDATE pushhook_schema SET version = 13"
                             : kUndoMessageColumns + std::string("PRAGMA user_version = 12"))));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(answers(), counted);
}

// A database from before UTM rows counted buttons gets them where they are known: a row that
// holds all of its minute's clicks has the minute's buttons; rows that share a minute's clicks
// keep 0, since nothing says which button each value's clicks were on.
TEST_P(StoreTest, MigratingGivesUtmRowsTheButtonsOfTheirMinuteWhereTheyAreKnown) {
  auto site = store_->CreateSite("a");
  const auto click = [](int button, std::string source, int64_t at) {
    model::Event e = MakeEvent(model::Action::kClick, "");
    e.clicked_button = button;
    e.utm_source = std::move(source);
    e.occurred_at_ms = at;
    return e;
  };
  constexpr int64_t kM = model::kMinuteMs;
  // Minute 0: every click from "news". Minute 1: "news" and "ads" share the clicks.
  Append(site->id, {click(0, "news", 1000), click(2, "news", 2000), click(2, "news", 3000),
                    click(1, "news", kM), click(2, "ads", kM + 1000)});
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(
      RunSql(kUndoAttemptStats + std::string(kUndoUtmButtons) +
             (Postgres() ? "UPDATE pushhook_schema SET version = 12"
                         : kUndoMessageColumns + std::string("PRAGMA user_version = 11"))));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  StatsQuery q;
  q.site_id = site->id;
  q.from_ms = 0;
  q.to_ms = kM;
  q.group_by = "utm_source";
  const auto groups = [&]() {
    std::string out;
    for (const StatsRow& row : Value(store_->QueryStats(q)).groups) out += Text(row) + "; ";
    return out;
  };
  EXPECT_EQ(groups(), "news: " + Text(0, 3, 1, 0, 2) + "; ");
  q.from_ms = kM;
  q.to_ms = 2 * kM;
  EXPECT_EQ(groups(), "ads: " + Text(0, 1, 0, 0, 0) + "; news: " + Text(0, 1, 0, 0, 0) + "; ");
  q.group_by = "utm_medium";  // absent from every event: one value holds the minute's clicks
  EXPECT_EQ(groups(), ": " + Text(0, 2, 0, 1, 1) + "; ");
  // What arrives after the upgrade is counted by button.
  Append(site->id, {click(1, "ads", kM + 2000)});
  q.group_by = "utm_source";
  EXPECT_EQ(groups(), "ads: " + Text(0, 2, 0, 1, 0) + "; news: " + Text(0, 1, 0, 0, 0) + "; ");
}

// A database from before lists of previous secrets kept one of each: migrating keeps it.
TEST_P(StoreTest, MigratingKeepsTheOnePreviousSecretOfEach) {
  auto site = store_->CreateSite("a");
  const Endpoint e = MakeEndpoint(site->id);
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(
      RunSql(kUndoAttemptStats + std::string(kUndoUtmButtons) + kUndoPreviousSecrets +
             std::string(
                 "UPDATE endpoints SET previous_secret = 'whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4', "
                 "previous_secret_expires_at = 777; "
                 "UPDATE sites SET beacon_secret_previous = "
                 "'bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=', "
                 "beacon_secret_previous_until = 888; ") +
             (Postgres() ? "UPDATE pushhook_schema SET version = 11"
                         : kUndoMessageColumns + std::string("PRAGMA user_version = 10"))));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, e.id)).previous_secrets,
            (std::vector<PreviousSecret>{{"whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4", 777}}));
  EXPECT_EQ(
      Value(store_->GetSite(site->id)).previous_beacon_secrets,
      (std::vector<PreviousSecret>{{"bsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 888}}));
  auto other = store_->CreateSite("b");
  EXPECT_TRUE(Value(store_->GetSite(other->id)).previous_beacon_secrets.empty());
}

// A database from before replay keys stored a beaconed event's key as its event_id: migrating
// moves it over, so a replay of a token counted before the upgrade is still a duplicate.
TEST_P(StoreTest, MigratingMovesBeaconIdsToReplayKeys) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  Append(site->id, {MakeEvent(model::Action::kClick, "bcn_0123_Click_1"),
                    MakeEvent(model::Action::kView, "client-id")});
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RunSql(
      kUndoAttemptStats + std::string(kUndoUtmButtons) + kUndoPreviousSecrets + kUndoReplayKeys +
      (Postgres() ? "UPDATE pushhook_schema SET version = 10"
                  : kUndoMessageColumns + std::string("PRAGMA user_version = 9"))));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  model::Event replay = MakeEvent(model::Action::kClick, "another-id");
  replay.replay_key = "bcn_0123_Click_1";
  model::Event fresh = MakeEvent(model::Action::kClick, "");
  fresh.replay_key = "client-id";  // only keys that were beacons' move over
  AppendResult r = Append(site->id, {replay, fresh});
  EXPECT_EQ(r.duplicates, 1u);
  EXPECT_EQ(r.accepted, 1u);
}

// A database from before campaign sketches gets them from its hourly sketches when it migrates.
TEST_P(StoreTest, MigratingFillsCampaignSketchesFromHourlyOnes) {
  auto site = store_->CreateSite("a");
  std::vector<model::Event> events;
  for (int i = 0; i < 300; ++i) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.cid = i % 2 == 0 ? "even" : "odd";
    e.cookie_id = "s" + std::to_string(i % 100);
    e.reference_id = "run" + std::to_string(i % 3);
    e.occurred_at_ms = (i % 4) * model::kHourMs;
    events.push_back(std::move(e));
  }
  // And one whose hourly sketches are dense (over 1,024 registers set): 3,000 subscribers.
  for (int i = 0; i < 6000; ++i) {
    model::Event e = MakeEvent(model::Action::kView, "");
    e.cid = "big";
    e.cookie_id = "b" + std::to_string(i % 3000);
    e.reference_id = "run" + std::to_string(i % 2);
    e.occurred_at_ms = (i % 2) * model::kHourMs;
    events.push_back(std::move(e));
  }
  Append(site->id, events, 1000);
  store_.reset();
  // Undone: the campaign sketches and every migration after them.
  ASSERT_NO_FATAL_FAILURE(RunSql(
      std::string("DROP TABLE stats_uniques_campaign; ") +
      "ALTER TABLE endpoints DROP COLUMN field_filter; "
      "ALTER TABLE endpoints DROP COLUMN batch_max_events; "
      "ALTER TABLE endpoints DROP COLUMN batch_max_wait_ms; "
      "ALTER TABLE messages DROP COLUMN batch_id; " +
      kUndoAttemptStats + kUndoUtmButtons + kUndoPreviousSecrets + kUndoReplayKeys +
      std::string(Postgres() ? "UPDATE pushhook_schema SET version = 7"
                             : kUndoMessageColumns + std::string("PRAGMA user_version = 6"))));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::map<std::string, double> uniques;
  for (const CampaignSummary& c : Campaigns(site->id)) uniques[c.cid] = c.unique_subscribers;
  ASSERT_EQ(uniques.size(), 3u);
  // Even events come from even subscribers, odd from odd: 50 each.
  EXPECT_NEAR(uniques["even"], 50, 1);
  EXPECT_NEAR(uniques["odd"], 50, 1);
  EXPECT_NEAR(uniques["big"], 3000, 150);
  Append(site->id, {MakeEvent(model::Action::kView, "")}, 2000);
  EXPECT_EQ(Campaigns(site->id).size(), 4u) << "the migrated store takes events";
}

// Receivers de-duplicate by webhook-id (msg_<id>): an id is never given twice, even once the
// rows that had the newest ids are deleted (retention) and the store restarts.
TEST_P(StoreTest, IdsAreNotGivenAgainAfterTheirRowsAreDeletedAndTheStoreRestarts) {
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  const AppendResult first =
      Append(site->id, {MakeEvent(model::Action::kView, ""), MakeEvent(model::Action::kClick, "")});
  ASSERT_EQ(first.messages.size(), 2u);
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RunSql("DELETE FROM messages; DELETE FROM events;"));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const AppendResult second = Append(site->id, {MakeEvent(model::Action::kView, "")});
  ASSERT_EQ(second.messages.size(), 1u);
  EXPECT_GT(second.messages[0].id, first.messages[1].id);
  for (const DueMessage& old : first.messages) {
    EXPECT_NE(second.messages[0].stored->event.event_id, old.stored->event.event_id);
  }
}

// Schema 16 took the ids of events and messages from SQLite's AUTOINCREMENT to the writer
// (row_ids.h): a database from before keeps its rows under their ids, and its new rows start
// past every id its sqlite_sequence had given, also those whose rows are deleted.
TEST_P(StoreTest, MigratingToWriterGivenIdsStartsPastTheOldSequence) {
  if (Postgres()) GTEST_SKIP() << "PostgreSQL's ids come from its sequences";
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  const AppendResult stored = Append(
      site->id, {MakeEvent(model::Action::kView, "e1"), MakeEvent(model::Action::kView, "e2")});
  ASSERT_EQ(stored.messages.size(), 2u);
  const int64_t kept = stored.messages[0].id;
  const int64_t deleted = stored.messages[1].id;
  store_.reset();
  // As schema 15 left it: the sequence past the newest row, which retention deleted.
  ASSERT_NO_FATAL_FAILURE(
      RunSql("ALTER TABLE attempts DROP COLUMN batch_id; "
             "DELETE FROM meta WHERE key IN ('next_event_id', 'next_message_id'); "
             "DELETE FROM messages WHERE id = " +
             std::to_string(deleted) +
             "; "
             "DELETE FROM events WHERE event_id = 'e2'; "
             "INSERT INTO sqlite_sequence(name, seq) VALUES('events', 700), ('messages', 900); "
             "PRAGMA user_version = 15"));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const Message old = Value(store_->GetMessage(site->id, kept));
  EXPECT_EQ(old.event.event_id, "e1");
  const AppendResult next = Append(site->id, {MakeEvent(model::Action::kView, "")});
  ASSERT_EQ(next.messages.size(), 1u);
  EXPECT_EQ(next.messages[0].id, 901);
  // And the event the same: its generated event_id carries its row id.
  EXPECT_TRUE(next.messages[0].stored->event.event_id.ends_with("701"))
      << next.messages[0].stored->event.event_id;
}

// Messages attempted before migration 17 keep their attempts in attempts; one attempted again
// after it lists the old ones and the new.
TEST_P(StoreTest, MigratingKeepsEarlierAttemptsListedBesideNewOnes) {
  if (Postgres()) GTEST_SKIP() << "SQLite's migration 17";
  auto site = store_->CreateSite("a");
  MakeEndpoint(site->id);
  const int64_t id = Append(site->id, {MakeEvent(model::Action::kView, "x")}).messages.at(0).id;
  Record({{id, 1, 1000, 500, 10, "", "a", MessageStatus::kPending, 2000},
          {id, 2, 2000, 502, 20, "", "b", MessageStatus::kPending, 3000}});
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(RunSql(kUndoMessageColumns + std::string("PRAGMA user_version = 16")));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  Record({{id, 3, 3000, 204, 30, "", "c", MessageStatus::kDelivered, 3000}});
  std::string bodies;
  for (const Attempt& a : Value(store_->ListAttempts(id))) {
    bodies += std::to_string(a.attempt) + a.response_prefix;
  }
  EXPECT_EQ(bodies, "1a2b3c");
}

// Fan-out sends an event to an endpoint only when every field its filter names holds a listed
// value: cids through the index, the other fields beside it; a change of filter applies to the
// next event, and a replay sends what the filter would have let through.
TEST_P(StoreTest, FieldFiltersDecideTheFanOutAndTheReplay) {
  auto site = store_->CreateSite("a");
  const auto filtered =
      [&](std::vector<std::pair<model::FilterField, std::vector<std::string>>> lists,
          model::EventFilter actions = {}) {
        Endpoint e;
        e.site_id = site->id;
        e.url = "http://127.0.0.1:9/hook";
        e.filter = actions;
        e.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
        for (auto& [field, values] : lists) e.field_filter.Set(field, std::move(values));
        return Value(store_->CreateEndpoint(e));
      };
  using model::FilterField;
  const Endpoint all = filtered({});
  const Endpoint xy = filtered({{FilterField::kCid, {"x", "y"}}});
  const Endpoint x_from_izooto =
      filtered({{FilterField::kCid, {"x"}}, {FilterField::kUtmSource, {"izooto"}}});
  const Endpoint untagged_runs = filtered({{FilterField::kReferenceId, {""}}});
  const Endpoint y_clicks = filtered({{FilterField::kCid, {"y"}}}, {false, true, false});
  EXPECT_EQ(Value(store_->GetEndpoint(site->id, x_from_izooto.id)).field_filter,
            x_from_izooto.field_filter)
      << "the filter reads back as written";

  const auto event = [](std::string id, std::string cid, std::string source, std::string run,
                        model::Action action = model::Action::kView) {
    model::Event e = MakeEvent(action, std::move(id));
    if (action == model::Action::kClick) e.clicked_button = 1;
    e.cid = std::move(cid);
    e.utm_source = std::move(source);
    e.reference_id = std::move(run);
    e.occurred_at_ms = 100;
    return e;
  };
  // Which endpoints each event went to: "event:endpoint,endpoint event:…", by event, then name
  // (endpoints made in the same millisecond have no order of their own).
  std::map<std::string, std::string> names{{all.id, "all"},
                                           {xy.id, "xy"},
                                           {x_from_izooto.id, "x-izooto"},
                                           {untagged_runs.id, "no-run"},
                                           {y_clicks.id, "y-clicks"}};
  const auto fanned = [&](const AppendResult& r) {
    std::map<std::string, std::vector<std::string>> by_event;
    for (const DueMessage& m : r.messages) {
      by_event[m.stored->event.event_id].push_back(names[m.endpoint_id]);
    }
    std::string out;
    for (auto& [id, endpoints] : by_event) {
      std::sort(endpoints.begin(), endpoints.end());
      out += (out.empty() ? "" : " ") + id + ":";
      for (size_t i = 0; i < endpoints.size(); ++i) out += (i ? "," : "") + endpoints[i];
    }
    return out;
  };
  EXPECT_EQ(fanned(Append(site->id, {event("1", "x", "izooto", ""), event("2", "x", "mail", "r"),
                                     event("3", "y", "", "r", model::Action::kClick),
                                     event("4", "z", "izooto", "")})),
            "1:all,no-run,x-izooto,xy 2:all,xy 3:all,xy,y-clicks 4:all,no-run");

  EndpointPatch patch;
  patch.field_filter = model::FieldFilter();
  patch.field_filter->Set(FilterField::kCid, {"z"});
  ASSERT_TRUE(store_->UpdateEndpoint(site->id, xy.id, patch, 2000).ok());
  EXPECT_EQ(fanned(Append(site->id, {event("5", "x", "", "r"), event("6", "z", "", "r")})),
            "5:all 6:all,xy")
      << "the new filter applies to the next event";
  patch.field_filter = model::FieldFilter();  // none: every event again
  ASSERT_TRUE(store_->UpdateEndpoint(site->id, xy.id, patch, 2000).ok());
  EXPECT_TRUE(Value(store_->GetEndpoint(site->id, xy.id)).field_filter.empty());
  EXPECT_EQ(fanned(Append(site->id, {event("7", "q", "", "r")})), "7:all,xy");

  ReplayQuery q;
  q.site_id = site->id;
  q.endpoint_id = x_from_izooto.id;
  q.since_ms = 0;
  q.until_ms = 1000;
  q.field_filter = x_from_izooto.field_filter;
  std::vector<std::string> replayed;
  for (const DueMessage& m : Value(store_->ReplayEvents(q, 9000))) {
    replayed.push_back(Value(store_->LoadDelivery(m.id)).event.event_id);
  }
  EXPECT_EQ(replayed, std::vector<std::string>{"1"});
}

TEST_P(StoreTest, ReadyOnceOpen) {
  EXPECT_TRUE(store_->Ready());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_TRUE(store_->Ready());
}

INSTANTIATE_TEST_SUITE_P(store, StoreTest, ::testing::Values("sqlite", "postgres"), BackendName);

// Several nodes on one database, each with a store of its own: PostgreSQL only (an SQLite file
// belongs to one process).
class SharedStoreTest : public StoreTest {
 protected:
  std::unique_ptr<Store> OpenAnother() {
    auto opened = OpenStore(options_);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    return opened.ok() ? std::move(opened.value()) : nullptr;
  }

  static AppendResult AppendTo(Store& store, const std::string& site_id,
                               std::vector<model::Event> events) {
    std::promise<model::StatusOr<AppendResult>> promise;
    store.AppendEvents(site_id, std::move(events), 1000,
                       [&](model::StatusOr<AppendResult> r) { promise.set_value(std::move(r)); });
    auto result = promise.get_future().get();
    EXPECT_TRUE(result.ok()) << result.status().message();
    return result.ok() ? result.value() : AppendResult{};
  }

  static std::vector<std::string> Sorted(std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    return ids;
  }
};

TEST_P(SharedStoreTest, AnEventSentToTwoNodesAtOnceIsStoredOnce) {
  auto other = OpenAnother();
  ASSERT_NE(other, nullptr);
  auto site = Value(store_->CreateSite("a"));
  MakeEndpoint(site.id);
  // The same 300 event ids reach both nodes at the same moment, in opposite orders (the order
  // that makes two transactions wait for each other), in batches of 50.
  std::vector<model::Event> events;
  for (int i = 0; i < 300; ++i)
    events.push_back(MakeEvent(model::Action::kView, "e" + std::to_string(i)));
  std::vector<model::Event> reversed(events.rbegin(), events.rend());
  const auto send_all = [&](Store& store, const std::vector<model::Event>& all) {
    size_t accepted = 0;
    size_t messages = 0;
    for (size_t i = 0; i < all.size(); i += 50) {
      AppendResult r = AppendTo(store, site.id, {all.begin() + i, all.begin() + i + 50});
      accepted += r.accepted;
      messages += r.messages.size();
    }
    return std::pair(accepted, messages);
  };
  auto first = std::async(std::launch::async, send_all, std::ref(*store_), std::cref(events));
  auto second = std::async(std::launch::async, send_all, std::ref(*other), std::cref(reversed));
  const auto [accepted_a, messages_a] = first.get();
  const auto [accepted_b, messages_b] = second.get();
  EXPECT_EQ(accepted_a + accepted_b, 300u);
  EXPECT_EQ(messages_a + messages_b, 300u);
  EXPECT_EQ(AllPending().size(), 300u);
}

TEST_P(SharedStoreTest, LeasesSplitEndpointsFairlyAndMoveWhenAHolderStops) {
  auto other = OpenAnother();
  ASSERT_NE(other, nullptr);
  auto site = Value(store_->CreateSite("a"));
  for (int i = 0; i < 4; ++i) MakeEndpoint(site.id);
  LeaseRequest a{"node-a", 600, {}, false, {}};
  LeaseRequest b{"node-b", 600, {}, false, {}};

  // Alone, a node takes every endpoint.
  LeaseRound round = Value(store_->coordination()->KeepLeases(a));
  EXPECT_EQ(round.held.size(), 4u);
  EXPECT_EQ(round.endpoints, 4);
  ASSERT_EQ(round.nodes.size(), 1u);
  // A second node finds nothing free; the first gives back what is over its fair share (2),
  // and the second takes exactly that.
  round = Value(other->coordination()->KeepLeases(b));
  EXPECT_TRUE(round.held.empty());
  EXPECT_EQ(round.nodes.size(), 2u);
  EXPECT_EQ(round.share, 2);
  round = Value(store_->coordination()->KeepLeases(a));
  EXPECT_EQ(round.share, 2);  // b has fewer than its floor share: a keeps only that
  std::vector<std::string> all = round.held;
  a.release = {all[2], all[3]};
  EXPECT_EQ(Sorted(Value(store_->coordination()->KeepLeases(a)).held), Sorted({all[0], all[1]}));
  a.release.clear();
  round = Value(other->coordination()->KeepLeases(b));
  EXPECT_EQ(Sorted(round.held), Sorted({all[2], all[3]}));
  EXPECT_EQ(round.nodes.size(), 2u);
  for (const NodeInfo& node : round.nodes) EXPECT_EQ(node.endpoints, 2) << node.node_id;
  // A third node with none: the others' share drops to the floor (1), its own is the ceiling.
  LeaseRequest c{"node-c", 600, {}, false, {}};
  auto third = OpenAnother();
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(Value(third->coordination()->KeepLeases(c)).share, 2);
  EXPECT_EQ(Value(store_->coordination()->KeepLeases(a)).share, 1);
  c.leaving = true;
  Value(third->coordination()->KeepLeases(c));

  // Node a stops renewing: once its leases expired, b is alone and takes all four.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  round = Value(other->coordination()->KeepLeases(b));
  EXPECT_EQ(round.held.size(), 4u);
  ASSERT_EQ(round.nodes.size(), 1u);
  EXPECT_EQ(round.nodes[0].node_id, "node-b");

  // Leaving gives everything back at once, and a is alone again.
  b.leaving = true;
  Value(other->coordination()->KeepLeases(b));
  EXPECT_EQ(Value(store_->coordination()->KeepLeases(a)).held.size(), 4u);
}

// Every node answers an endpoint's statistics with the circuit of the node that delivers for
// it, as that node last wrote it with its lease.
TEST_P(SharedStoreTest, TheLeaseHoldersOpenCircuitIsSeenFromEveryNode) {
  auto other = OpenAnother();
  ASSERT_NE(other, nullptr);
  auto site = Value(store_->CreateSite("a"));
  const Endpoint e = MakeEndpoint(site.id);
  LeaseRequest a{"node-a", 60'000, {}, false, {}};
  ASSERT_EQ(Value(store_->coordination()->KeepLeases(a)).held, std::vector<std::string>{e.id});
  EXPECT_EQ(Value(other->GetEndpointStats(e.id, 0)).circuit_open_for_ms, std::nullopt);

  a.open_circuits = {{e.id, 30'000}};
  Value(store_->coordination()->KeepLeases(a));
  const auto open_for = Value(other->GetEndpointStats(e.id, 0)).circuit_open_for_ms;
  ASSERT_TRUE(open_for.has_value());
  EXPECT_GT(*open_for, 20'000);
  EXPECT_LE(*open_for, 30'000);
  // Letting a probe through: open for 0 more ms.
  a.open_circuits = {{e.id, 0}};
  Value(store_->coordination()->KeepLeases(a));
  EXPECT_LE(Value(other->GetEndpointStats(e.id, 0)).circuit_open_for_ms.value_or(1), 0);
  // Closed again: the next round says so.
  a.open_circuits.clear();
  Value(store_->coordination()->KeepLeases(a));
  EXPECT_EQ(Value(other->GetEndpointStats(e.id, 0)).circuit_open_for_ms, std::nullopt);
  // A node that leaves takes its circuits with its leases.
  a.open_circuits = {{e.id, 30'000}};
  Value(store_->coordination()->KeepLeases(a));
  a.leaving = true;
  Value(store_->coordination()->KeepLeases(a));
  EXPECT_EQ(Value(other->GetEndpointStats(e.id, 0)).circuit_open_for_ms, std::nullopt);
}

TEST_P(SharedStoreTest, ANodeHearsOfTheOtherNodesMessagesAndEndpoints) {
  auto other = OpenAnother();
  ASSERT_NE(other, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ChangeNotice> heard;
  other->coordination()->Subscribe([&](const ChangeNotice& notice) {
    std::lock_guard lock(mu);
    heard.push_back(notice);
    cv.notify_all();
  });
  auto site = Value(store_->CreateSite("a"));
  Endpoint e = MakeEndpoint(site.id);
  AppendResult r =
      Append(site.id, {MakeEvent(model::Action::kView, "x"), MakeEvent(model::Action::kView, "y")});
  ASSERT_EQ(r.messages.size(), 2u);
  std::unique_lock lock(mu);
  const bool got = cv.wait_for(lock, std::chrono::seconds(10), [&] {
    return std::any_of(heard.begin(), heard.end(), [](const ChangeNotice& n) {
      return n.kind == ChangeNotice::Kind::kMessages;
    });
  });
  ASSERT_TRUE(got) << "no notice of the new messages";
  bool endpoint_heard = false;
  for (const ChangeNotice& n : heard) {
    if (n.kind == ChangeNotice::Kind::kEndpoint) endpoint_heard |= n.endpoint_id == e.id;
    if (n.kind != ChangeNotice::Kind::kMessages) continue;
    EXPECT_EQ(n.endpoint_id, e.id);
    EXPECT_EQ(n.first_id, r.messages[0].id);
    EXPECT_EQ(n.last_id, r.messages[1].id);
  }
  EXPECT_TRUE(endpoint_heard) << "no notice of the new endpoint";
}

INSTANTIATE_TEST_SUITE_P(store, SharedStoreTest, ::testing::Values("postgres"), BackendName);

}  // namespace
}  // namespace pushhook::store
