#include "store/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

namespace pushhook::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/pushhook-store-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    StoreOptions options;
    options.database = "sqlite://" + dir_ + "/test.db";
    auto opened = OpenStore(options);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened.value());
  }

  Endpoint MakeEndpoint(const std::string& site_id, model::EventFilter filter = {}) {
    Endpoint e;
    e.site_id = site_id;
    e.url = "http://127.0.0.1:9/hook";
    e.filter = filter;
    e.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    auto created = store_->CreateEndpoint(e);
    EXPECT_TRUE(created.ok());
    return created.value();
  }

  AppendResult Append(const std::string& site_id, std::vector<model::Event> events) {
    std::promise<model::StatusOr<AppendResult>> promise;
    store_->AppendEvents(site_id, std::move(events), 1000,
                         [&](model::StatusOr<AppendResult> r) { promise.set_value(std::move(r)); });
    auto result = promise.get_future().get();
    EXPECT_TRUE(result.ok()) << result.status().message();
    return result.ok() ? result.value() : AppendResult{};
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

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, SitesAreFoundByIdAndIngestKey) {
  auto site = store_->CreateSite("Shop");
  ASSERT_TRUE(site.ok());
  EXPECT_EQ(site->id.rfind("site_", 0), 0u);
  EXPECT_EQ(site->ingest_key.rfind("pk_", 0), 0u);
  EXPECT_EQ(store_->GetSite(site->id)->name, "Shop");
  EXPECT_EQ(store_->FindSiteByIngestKey(site->ingest_key)->id, site->id);
  EXPECT_FALSE(store_->FindSiteByIngestKey("pk_nope").has_value());
  EXPECT_EQ(store_->GetSite("site_nope").status().code(), model::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListSites()->size(), 1u);
}

TEST_F(StoreTest, TokensMapToTheirSite) {
  auto site = store_->CreateSite("a");
  ASSERT_TRUE(store_->AddSiteToken(site->id, "hash1").ok());
  EXPECT_EQ(store_->FindSiteOfToken("hash1"), site->id);
  EXPECT_EQ(store_->FindSiteOfToken("hash2"), std::nullopt);
  EXPECT_EQ(store_->AddSiteToken("site_missing", "h").code(), model::StatusCode::kNotFound);
}

TEST_F(StoreTest, EndpointsAreScopedToTheirSite) {
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

TEST_F(StoreTest, AppendFansOutByFilterAndSkipsDuplicates) {
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

TEST_F(StoreTest, ConcurrentAppendsAllCommitAndAnswerOnce) {
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
  EXPECT_EQ(store_->LoadPending(0, 10000)->size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(StoreTest, AttemptsMoveMessagesAndSurviveReopen) {
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

  Reopen();
  auto pending = store_->LoadPending(0, 10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ(pending->front().id, r.messages[1].id);
  EXPECT_EQ(pending->front().due_ms, 9000);
  EXPECT_EQ(pending->front().attempts, 1);
  auto attempts = store_->ListAttempts(r.messages[1].id);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->front().status_code, 500);
  EXPECT_EQ(attempts->front().response_prefix, "oops");
  auto message = store_->GetMessage(site->id, r.messages[0].id);
  EXPECT_EQ(message->status, MessageStatus::kDelivered);
  EXPECT_EQ(store_->GetMessage("site_other", r.messages[0].id).status().code(),
            model::StatusCode::kNotFound);
}

TEST_F(StoreTest, MessageLogFiltersAndPagesNewestFirst) {
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
  q.cid = "nope";
  EXPECT_TRUE(store_->ListMessages(q)->empty());
}

TEST_F(StoreTest, EndpointSecretsAreSealedAtRestAndOpenOnRead) {
  store_.reset();
  StoreOptions options;
  options.database = "sqlite://" + dir_ + "/sealed.db";
  options.secrets_key = std::string(32, 's');
  store_ = std::move(OpenStore(options).value());
  auto site = store_->CreateSite("a");
  Endpoint e = MakeEndpoint(site->id);
  EXPECT_EQ(store_->GetEndpoint(site->id, e.id)->secret, e.secret);
  store_.reset();
  // The file holds no trace of the secret's text.
  std::ifstream file(dir_ + "/sealed.db", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), {});
  std::ifstream wal(dir_ + "/sealed.db-wal", std::ios::binary);
  const std::string wal_bytes((std::istreambuf_iterator<char>(wal)), {});
  const std::string secret_part = e.secret.substr(6, 20);
  EXPECT_EQ(bytes.find(secret_part), std::string::npos);
  EXPECT_EQ(wal_bytes.find(secret_part), std::string::npos);
  // Another key cannot read it: the secret reads as empty and signs nothing.
  options.secrets_key = std::string(32, 'x');
  store_ = std::move(OpenStore(options).value());
  EXPECT_EQ(store_->GetEndpoint(site->id, e.id)->secret, "");
}

TEST_F(StoreTest, MessageIdsRoundTripAndCarryTheInstance) {
  const std::string instance = store_->instance_id();  // a copy: Reopen() frees the store
  EXPECT_EQ(instance.size(), 8u);
  const std::string id = FormatMessageId(instance, 1234);
  EXPECT_EQ(ParseMessageId(instance, id), 1234);
  EXPECT_EQ(ParseMessageId(instance, "msg_other1234"), std::nullopt);
  EXPECT_EQ(ParseMessageId(instance, id + "x"), std::nullopt);
  Reopen();
  EXPECT_EQ(store_->instance_id(), instance);
}

}  // namespace
}  // namespace pushhook::store
