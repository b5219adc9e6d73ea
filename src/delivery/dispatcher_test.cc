#include "delivery/dispatcher.h"

#include <gtest/gtest.h>

#include <future>

#include "model/signature.h"
#include "store/testing/test_store.h"
#include "util/testing/file_size_limit.h"
#include "util/testing/temp_dir.h"

namespace pushhook::delivery {
namespace {

using namespace std::chrono_literals;

// Records every request and answers from a script; requests to a "held" URL are kept open
// until released. Stands in for the network, which AsioClient's own tests cover.
class ScriptedClient : public HttpClient {
 public:
  void Send(OutboundRequest request, std::function<void(OutboundResult)> done) override {
    std::unique_lock lock(mu_);
    requests_.push_back(request);
    sent_at_.push_back(std::chrono::steady_clock::now());
    if (request.url == held_url_) {
      held_.push_back(std::move(done));
      cv_.notify_all();
      return;
    }
    OutboundResult result;
    result.status = 204;
    auto it = script_.find(request.url);
    if (it != script_.end() && !it->second.empty()) {
      result = it->second.front();
      it->second.pop_front();
    }
    cv_.notify_all();
    lock.unlock();
    done(result);
  }

  void Script(const std::string& url, std::deque<OutboundResult> results) {
    std::lock_guard lock(mu_);
    script_[url] = std::move(results);
  }
  void Hold(const std::string& url) {
    std::lock_guard lock(mu_);
    held_url_ = url;
  }
  std::vector<OutboundRequest> Requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // When each request was sent, on the dispatcher's side: a test thread that wakes late does
  // not shorten a wait measured with these.
  std::vector<std::chrono::steady_clock::time_point> SentAt() {
    std::lock_guard lock(mu_);
    return sent_at_;
  }
  size_t HeldCount() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  // Waits until `pred(requests)` holds, up to `timeout`.
  bool WaitFor(const std::function<bool(const std::vector<OutboundRequest>&)>& pred,
               std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(requests_); });
  }
  void ReleaseHeld() {
    std::vector<std::function<void(OutboundResult)>> held;
    {
      std::lock_guard lock(mu_);
      held.swap(held_);
    }
    for (auto& done : held) {
      OutboundResult ok;
      ok.status = 204;
      done(ok);
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<OutboundRequest> requests_;
  std::vector<std::chrono::steady_clock::time_point> sent_at_;  // one per request
  std::map<std::string, std::deque<OutboundResult>> script_;
  std::string held_url_;
  std::vector<std::function<void(OutboundResult)>> held_;
};

std::string HeaderOf(const OutboundRequest& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

// Polls `pred` until it holds, for state the scripted client is not told about.
bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

OutboundResult Status(int code, std::string retry_after = "") {
  OutboundResult r;
  r.status = code;
  r.retry_after = std::move(retry_after);
  return r;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::testing::OpenTestStore(dir_);
    site_ = store_->CreateSite("s")->id;
  }
  void TearDown() override {
    if (dispatcher_) dispatcher_->Stop(0ms);
    dispatcher_.reset();
    store_.reset();
  }

  void StartDispatcher(const std::string& schedule) {
    DispatcherOptions options;
    options.schedule = *RetrySchedule::Parse(schedule);
    options.seed = 7;
    dispatcher_ = std::make_unique<Dispatcher>(*store_, client_, clock_, options);
    ASSERT_TRUE(dispatcher_->Start().ok());
  }

  store::Endpoint AddEndpoint(const std::string& url, int max_in_flight = 16) {
    store::Endpoint e;
    e.site_id = site_;
    e.url = url;
    e.secret = model::NewSecret();
    e.max_in_flight = max_in_flight;
    return store_->CreateEndpoint(e).value();
  }

  std::vector<store::DueMessage> Ingest(int n) {
    std::vector<model::Event> events(static_cast<size_t>(n));
    for (auto& e : events) {
      e.cookie_id = "c";
      e.cid = "1";
    }
    std::promise<std::vector<store::DueMessage>> promise;
    store_->AppendEvents(site_, events, clock_.NowMs(),
                         [&](auto r) { promise.set_value(r.value().messages); });
    return promise.get_future().get();
  }

  util::testing::TempDir dir_{"pushhook-dispatch"};
  model::SystemClock clock_;
  std::unique_ptr<store::Store> store_;
  std::string site_;
  ScriptedClient client_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(DispatcherTest, SignedRequestCarriesTheStandardWebhooksHeaders) {
  const store::Endpoint ep = AddEndpoint("http://127.0.0.1:1/a");
  StartDispatcher("50ms");
  dispatcher_->Enqueue(Ingest(1));
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 1; }));
  const OutboundRequest r = client_.Requests()[0];
  EXPECT_EQ(r.url, ep.url);
  EXPECT_EQ(HeaderOf(r, "content-type"), "application/json");
  // The client names itself (ClientOptions::user_agent); a second user-agent would go out twice.
  EXPECT_EQ(HeaderOf(r, "user-agent"), "");
  const std::string id = HeaderOf(r, "webhook-id");
  const int64_t ts = std::stoll(HeaderOf(r, "webhook-timestamp"));
  EXPECT_NEAR(static_cast<double>(ts), static_cast<double>(clock_.NowMs() / 1000), 5);
  EXPECT_TRUE(model::VerifySignatureHeader(HeaderOf(r, "webhook-signature"),
                                           *model::DecodeSecret(ep.secret), id, ts, r.body));
}

TEST_F(DispatcherTest, RetriesWithTheSameIdUntilSuccess) {
  AddEndpoint("http://127.0.0.1:1/a");
  client_.Script("http://127.0.0.1:1/a", {Status(500), Status(500), Status(204)});
  StartDispatcher("20ms,20ms,20ms");
  const auto messages = Ingest(1);
  dispatcher_->Enqueue(messages);
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 3; }));
  const auto requests = client_.Requests();
  EXPECT_EQ(HeaderOf(requests[0], "webhook-id"), HeaderOf(requests[2], "webhook-id"));
  ASSERT_TRUE(Eventually([&] { return dispatcher_->counts().delivered == 1; }));
  dispatcher_->Stop(1s);
  dispatcher_.reset();
  store_.reset();  // flush attempt records
  store_ = store::testing::OpenTestStore(dir_);
  auto attempts = store_->ListAttempts(messages[0].id).value();
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].status_code, 500);
  EXPECT_EQ(attempts[2].status_code, 204);
  EXPECT_EQ(store_->GetMessage(site_, messages[0].id)->status, store::MessageStatus::kDelivered);
}

TEST_F(DispatcherTest, MessageFailsWhenTheScheduleRunsOut) {
  AddEndpoint("http://127.0.0.1:1/a");
  client_.Script("http://127.0.0.1:1/a", {Status(500), Status(500), Status(500), Status(204)});
  StartDispatcher("10ms,10ms");
  dispatcher_->Enqueue(Ingest(1));
  ASSERT_TRUE(Eventually([&] { return dispatcher_->counts().failed == 1; }));
  EXPECT_EQ(client_.Requests().size(), 3u);  // the first attempt and two retries
}

TEST_F(DispatcherTest, RetryAfterDelaysAtLeastThatLongCappedByTheSchedule) {
  AddEndpoint("http://127.0.0.1:1/a");
  // Retry-After of 1 s against a 10 ms schedule whose longest step is 600 ms: waits ~600 ms.
  client_.Script("http://127.0.0.1:1/a", {Status(429, "1"), Status(204)});
  StartDispatcher("10ms,600ms");
  dispatcher_->Enqueue(Ingest(1));
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 2; }));
  const auto sent_at = client_.SentAt();
  EXPECT_GE(sent_at[1] - sent_at[0], 550ms);
}

TEST_F(DispatcherTest, MaxInFlightBoundsConcurrentRequestsPerEndpoint) {
  AddEndpoint("http://127.0.0.1:1/slow", 3);
  client_.Hold("http://127.0.0.1:1/slow");
  StartDispatcher("10ms");
  dispatcher_->Enqueue(Ingest(10));
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 3; }));
  std::this_thread::sleep_for(100ms);  // give it the chance to overshoot
  EXPECT_EQ(client_.HeldCount(), 3u);
  client_.ReleaseHeld();
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 6; }));
}

TEST_F(DispatcherTest, AHungEndpointDoesNotHoldUpAnother) {
  AddEndpoint("http://127.0.0.1:1/hung", 2);
  AddEndpoint("http://127.0.0.1:1/fast");
  client_.Hold("http://127.0.0.1:1/hung");
  StartDispatcher("10ms");
  dispatcher_->Enqueue(Ingest(200));
  ASSERT_TRUE(client_.WaitFor([](auto& r) {
    return std::count_if(r.begin(), r.end(),
                         [](const OutboundRequest& q) { return q.url.ends_with("/fast"); }) == 200;
  }));
  EXPECT_EQ(client_.HeldCount(), 2u);
  client_.ReleaseHeld();
}

TEST_F(DispatcherTest, PendingMessagesAreSentAfterARestart) {
  AddEndpoint("http://127.0.0.1:1/a");
  const auto messages = Ingest(5);  // committed, never handed to a dispatcher
  StartDispatcher("10ms");
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 5; }));
  std::set<std::string> ids;
  for (const auto& r : client_.Requests()) ids.insert(HeaderOf(r, "webhook-id"));
  EXPECT_EQ(ids.size(), 5u);
}

TEST_F(DispatcherTest, DisabledEndpointWaitsAndResumesWhenEnabled) {
  const store::Endpoint ep = AddEndpoint("http://127.0.0.1:1/a");
  StartDispatcher("10ms");
  store::EndpointPatch off;
  off.enabled = false;
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, off, 1).ok());
  dispatcher_->EndpointChanged(ep.id);
  // Messages made while it was enabled, then held back by the switch.
  store::EndpointPatch on;
  on.enabled = true;
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, on, 2).ok());
  auto messages = Ingest(3);
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, off, 3).ok());
  dispatcher_->Enqueue(messages);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(client_.Requests().size(), 0u);
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, on, 4).ok());
  dispatcher_->EndpointChanged(ep.id);
  ASSERT_TRUE(client_.WaitFor([](auto& r) { return r.size() == 3; }));
}

// The disk fills up after the webhook went out: the attempt record cannot be written. That is
// counted and logged, and the message stays pending in the store, so a restart sends it again.
TEST_F(DispatcherTest, AnAttemptRecordTheStoreRefusesIsCountedAndTheMessageStaysPending) {
  AddEndpoint("http://127.0.0.1:1/a");
  StartDispatcher("1h");
  const auto messages = Ingest(1);
  util::testing::ScopedFileSizeLimit full_disk(1024);  // no file of the store grows past 1 KiB
  dispatcher_->Enqueue(messages);
  const bool counted = Eventually([&] { return dispatcher_->counts().record_failures == 1; });
  full_disk.Lift();
  ASSERT_TRUE(counted);
  EXPECT_EQ(client_.Requests().size(), 1u);
  EXPECT_EQ(dispatcher_->counts().delivered, 1u) << "the receiver did take it";
  EXPECT_EQ(store_->GetMessage(site_, messages[0].id)->status, store::MessageStatus::kPending);
}

}  // namespace
}  // namespace pushhook::delivery
