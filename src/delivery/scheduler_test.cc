// The delivery rules, exactly: time is a number the test passes in, outcomes are handed back by
// hand, and the store is a real SQLite database in a temporary folder. Nothing sleeps.
#include "delivery/scheduler.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "model/signature.h"
#include "store/testing/test_store.h"
#include "util/testing/temp_dir.h"

namespace pushhook::delivery {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kT0 = 1'800'000'000'000;  // a fixed "now", in Unix ms

OutboundResult Answer(int status, std::string retry_after = "") {
  OutboundResult r;
  r.status = status;
  r.retry_after = std::move(retry_after);
  r.latency = 3ms;
  return r;
}

OutboundResult Failure(OutboundError kind, std::string error) {
  OutboundResult r;
  r.error_kind = kind;
  r.error = std::move(error);
  return r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = store::testing::OpenTestStore(dir_);
    site_ = store_->CreateSite("s")->id;
  }
  void TearDown() override {
    scheduler_.reset();
    store_.reset();
  }

  void Start(const std::string& schedule, SchedulerOptions options = {}) {
    options.schedule = *RetrySchedule::Parse(schedule);
    options.seed = 42;
    scheduler_ = std::make_unique<Scheduler>(*store_, options);
    ASSERT_TRUE(scheduler_->LoadAll(kT0).ok());
  }

  store::Endpoint AddEndpoint(const std::string& path, int max_in_flight = 16,
                              double rate_limit = 0) {
    store::Endpoint e;
    e.site_id = site_;
    e.url = "https://receiver.example" + path;
    e.secret = model::NewSecret();
    e.max_in_flight = max_in_flight;
    e.rate_limit = rate_limit;
    return store_->CreateEndpoint(e).value();
  }

  // Stores `n` events; the answer's messages, one per event and endpoint.
  std::vector<store::DueMessage> Ingest(int n, int64_t now_ms = kT0) {
    std::vector<model::Event> events(static_cast<size_t>(n));
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].cookie_id = "c";
      events[i].cid = std::to_string(i);  // tells the events apart
    }
    std::promise<std::vector<store::DueMessage>> promise;
    store_->AppendEvents(site_, events, now_ms,
                         [&](auto r) { promise.set_value(r.value().messages); });
    return promise.get_future().get();
  }

  void Admit(const std::vector<store::DueMessage>& messages, int64_t now_ms = kT0) {
    for (const auto& m : messages) scheduler_->Admit(m, now_ms);
  }

  SchedulerOutput Poll(int64_t now_ms) {
    SchedulerOutput out;
    scheduler_->Poll(now_ms, &out);
    return out;
  }

  SchedulerOutput Complete(const Send& send, OutboundResult result, int64_t now_ms,
                           int64_t started_ms = -1) {
    SchedulerOutput out;
    scheduler_->Complete(
        Completion{send.endpoint, send.messages, started_ms < 0 ? now_ms : started_ms, result,
                   send.batch, send.splits},
        now_ms, &out);
    return out;
  }

  // Hands the scheduler back the split batches of `out`, as the dispatcher does once their
  // records are written (`durable`) or could not be.
  void SplitsRecorded(const SchedulerOutput& out, bool durable, int64_t now_ms) {
    for (const SplitBatch& split : out.splits) scheduler_->SplitRecorded(split, durable, now_ms);
  }

  // Sends everything each poll allows, answering each with `status`, until nothing is due at
  // `now_ms`; how many requests went to `url`.
  std::map<std::string, int> DrainAt(int64_t now_ms, int status) {
    std::map<std::string, int> sent;
    for (int round = 0; round < 1000; ++round) {
      SchedulerOutput out = Poll(now_ms);
      if (out.sends.empty()) break;
      for (const Send& s : out.sends) {
        ++sent[s.target->url];
        Complete(s, Answer(status), now_ms);
      }
    }
    return sent;
  }

  // Turns batching on for `endpoint`, as PATCH does.
  void Batch(const store::Endpoint& endpoint, int max_events, int max_wait_ms) {
    store::EndpointPatch patch;
    patch.batch = store::BatchOptions{max_events, max_wait_ms};
    ASSERT_TRUE(store_->UpdateEndpoint(site_, endpoint.id, patch, kT0).ok());
  }

  // Each message's event's cid: its index among the messages of one Ingest().
  static std::map<int64_t, std::string> CidsOf(const std::vector<store::DueMessage>& messages) {
    std::map<int64_t, std::string> cids;
    for (size_t i = 0; i < messages.size(); ++i) cids[messages[i].id] = std::to_string(i);
    return cids;
  }

  // One endpoint, the scheduler started with `schedule`, and the first attempts of `n` fresh
  // messages, all sent at kT0.
  std::vector<Send> SendFresh(int n, const std::string& schedule) {
    AddEndpoint("/a");
    Start(schedule);
    Admit(Ingest(n));
    SchedulerOutput out = Poll(kT0);
    EXPECT_EQ(out.sends.size(), static_cast<size_t>(n));
    return out.sends;
  }

  // One endpoint with batch {max_events, max_wait_ms}, and the scheduler started.
  store::Endpoint StartBatching(int max_events, int max_wait_ms, const std::string& schedule = "1s",
                                int max_in_flight = 16) {
    store::Endpoint ep = AddEndpoint("/a", max_in_flight);
    Batch(ep, max_events, max_wait_ms);
    Start(schedule);
    return ep;
  }

  // Disables `endpoint` at `at` and enables it again a millisecond later, as PATCH does, telling
  // the scheduler each time: it parks the endpoint, then reads its pending messages again.
  void DisableAndEnable(const store::Endpoint& endpoint, int64_t at) {
    store::EndpointPatch patch;
    patch.enabled = false;
    ASSERT_TRUE(store_->UpdateEndpoint(site_, endpoint.id, patch, at).ok());
    scheduler_->EndpointChanged(endpoint.id, at);
    patch.enabled = true;
    ASSERT_TRUE(store_->UpdateEndpoint(site_, endpoint.id, patch, at + 1).ok());
    scheduler_->EndpointChanged(endpoint.id, at + 1);
  }

  // One endpoint batching up to 10 events at once, whose circuit opens for 5 s after `failures`
  // in a row, and the scheduler started with `schedule`.
  void StartBatchingWithCircuit(int failures, const std::string& schedule) {
    Batch(AddEndpoint("/a"), 10, 0);
    SchedulerOptions options;
    options.circuit = CircuitOptions{failures, 5s, 60s};
    Start(schedule, options);
  }

  // One endpoint taking `max_in_flight` requests at once, whose circuit is `circuit`, and the
  // scheduler started with `schedule`.
  store::Endpoint StartWithCircuit(CircuitOptions circuit, const std::string& schedule,
                                   int max_in_flight = 16) {
    store::Endpoint ep = AddEndpoint("/a", max_in_flight);
    SchedulerOptions options;
    options.circuit = circuit;
    Start(schedule, options);
    return ep;
  }

  // One message whose first attempt, at kT0, failed and opened its endpoint's circuit for a
  // minute, redelivered at kT0 + 1 s: the request that redelivery makes at once.
  Send RedeliverIntoAnOpenCircuit(const std::string& schedule) {
    StartWithCircuit(CircuitOptions{1, 60s, 600s}, schedule);
    const auto messages = Ingest(1);
    Admit(messages);
    const Send first = Poll(kT0).sends.at(0);
    Record(Complete(first, Answer(500), kT0));
    EXPECT_EQ(scheduler_->Runtime(first.target->id, kT0 + 1).circuit, "open");
    auto requeued = store_->RequeueMessage(site_, messages[0].id, kT0 + 1'000);
    EXPECT_TRUE(requeued.ok()) << requeued.status().message();
    scheduler_->Admit(*requeued, kT0 + 1'000);
    const SchedulerOutput probe = Poll(kT0 + 1'000);
    EXPECT_EQ(probe.sends.size(), 1u);
    return probe.sends.at(0);
  }

  // Makes the store unable (or able again) to read events, as a busy or absent database is.
  void EventsReadable(bool readable) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.File("test.db").c_str(), &db), SQLITE_OK);
    const char* sql = readable ? "ALTER TABLE events_away RENAME TO events"
                               : "ALTER TABLE events RENAME TO events_away";
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  // One message whose first launch could not read the store (it waits a second to try again),
  // redelivered meanwhile, sent alone and failed; then its endpoint turns batching on.
  void RedeliverWhileItWaitsForTheStoreThenBatch(const store::Endpoint& ep) {
    Start("1s,1s,1s");
    auto messages = Ingest(1);
    messages[0].stored = nullptr;  // not in memory: its launch reads the store
    EventsReadable(false);
    Admit(messages);
    EXPECT_TRUE(Poll(kT0).sends.empty()) << "the store could not be read: a second later";
    EventsReadable(true);
    auto requeued = store_->RequeueMessage(site_, messages[0].id, kT0 + 1);
    ASSERT_TRUE(requeued.ok()) << requeued.status().message();
    scheduler_->Admit(*requeued, kT0 + 1);
    const SchedulerOutput alone = Poll(kT0 + 1);
    ASSERT_EQ(alone.sends.size(), 1u);
    EXPECT_EQ(alone.sends[0].batch, store::kAlone);
    Record(Complete(alone.sends[0], Answer(500), kT0 + 2));
    Batch(ep, 10, 0);
    scheduler_->EndpointChanged(ep.id, kT0 + 3);
  }

  // Every request from `from_ms` to `to_ms`, polled each 10 ms and answered with `status`, as
  // (batch, attempt) of each message it carried.
  std::vector<std::pair<int64_t, int>> SentFrom(int64_t from_ms, int64_t to_ms, int status) {
    std::vector<std::pair<int64_t, int>> sent;
    for (int64_t t = from_ms; t <= to_ms; t += 10) {
      for (const Send& s : Poll(t).sends) {
        for (const OutgoingMessage& m : s.messages) sent.emplace_back(s.batch, m.attempt);
        if (s.batch > 0) Assign(s);
        Record(Complete(s, Answer(status), t));
      }
    }
    return sent;
  }

  // Fixes a batch's members in the store, as the dispatcher does before sending it.
  // Writes the attempt records of `out`, as the dispatcher does.
  void Record(const SchedulerOutput& out) {
    std::promise<model::Status> recorded;
    store_->RecordAttempts(out.records, [&](model::Status s) { recorded.set_value(s); });
    ASSERT_TRUE(recorded.get_future().get().ok());
  }

  void Assign(const Send& send) {
    std::vector<int64_t> ids;
    for (const OutgoingMessage& m : send.messages) ids.push_back(m.id);
    std::promise<model::Status> done;
    store_->AssignBatch(ids, send.batch, [&](model::Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  static std::vector<int64_t> Ids(const Send& send) {
    std::vector<int64_t> ids;
    for (const OutgoingMessage& m : send.messages) ids.push_back(m.id);
    return ids;
  }
  static std::vector<int64_t> Ids(const std::vector<store::DueMessage>& messages) {
    std::vector<int64_t> ids;
    for (const store::DueMessage& m : messages) ids.push_back(m.id);
    return ids;
  }

  util::testing::TempDir dir_{"pushhook-scheduler"};
  std::unique_ptr<store::Store> store_;
  std::string site_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, AFreshMessageGoesAtOnceWithItsEventFromMemory) {
  const store::Endpoint ep = AddEndpoint("/a");
  Start("5s");
  const auto messages = Ingest(1);
  Admit(messages);
  EXPECT_EQ(scheduler_->NextWakeMs(), 0);  // runnable now
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 1u);
  const Send& send = out.sends[0];
  EXPECT_EQ(send.target->id, ep.id);
  EXPECT_EQ(send.site_id, site_);
  ASSERT_EQ(send.messages.size(), 1u);
  EXPECT_EQ(send.messages[0].id, messages[0].id);
  EXPECT_EQ(send.messages[0].attempt, 1);
  EXPECT_EQ(send.messages[0].event.get(), messages[0].stored.get()) << "not copied, not read back";
  EXPECT_EQ(scheduler_->counts().in_flight, 1u);

  SchedulerOutput done = Complete(send, Answer(204), kT0 + 3);
  ASSERT_EQ(done.records.size(), 1u);
  EXPECT_EQ(done.records[0].new_status, store::MessageStatus::kDelivered);
  EXPECT_EQ(done.records[0].attempt, 1);
  EXPECT_EQ(done.records[0].status_code, 204);
  EXPECT_EQ(scheduler_->counts().delivered, 1u);
  EXPECT_EQ(scheduler_->counts().in_flight, 0u);
  EXPECT_EQ(scheduler_->NextWakeMs(), std::nullopt);
}

TEST_F(SchedulerTest, FailuresFollowTheJitteredScheduleUntilItRunsOut) {
  AddEndpoint("/a");
  Start("10s,1m");
  Admit(Ingest(1));
  Send first = Poll(kT0).sends.at(0);
  SchedulerOutput out = Complete(first, Answer(500), kT0);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].new_status, store::MessageStatus::kPending);
  EXPECT_EQ(out.records[0].error, "HTTP 500");
  const int64_t second_at = out.records[0].next_attempt_ms;
  EXPECT_GE(second_at, kT0 + 8'000);  // 10 s ± 20 %
  EXPECT_LT(second_at, kT0 + 12'000);
  EXPECT_EQ(scheduler_->NextWakeMs(), second_at);
  EXPECT_TRUE(Poll(second_at - 1).sends.empty());

  Send second = Poll(second_at).sends.at(0);
  EXPECT_EQ(second.messages[0].id, first.messages[0].id);
  EXPECT_EQ(second.messages[0].attempt, 2);
  out = Complete(second, Answer(502), second_at);
  const int64_t third_at = out.records[0].next_attempt_ms;
  EXPECT_GE(third_at, second_at + 48'000);  // 1 min ± 20 %
  EXPECT_LT(third_at, second_at + 72'000);

  Send third = Poll(third_at).sends.at(0);
  EXPECT_EQ(third.messages[0].attempt, 3);
  out = Complete(third, Answer(500), third_at);
  EXPECT_EQ(out.records[0].new_status, store::MessageStatus::kFailed);
  EXPECT_EQ(scheduler_->counts().failed, 1u);
  EXPECT_EQ(scheduler_->counts().retries, 2u);
  EXPECT_EQ(scheduler_->NextWakeMs(), std::nullopt);
}

TEST_F(SchedulerTest, RetryAfterWaitsAtLeastThatLongButNoLongerThanTheLongestStep) {
  const std::vector<Send> sends = SendFresh(2, "1s,10s");
  ASSERT_EQ(sends.size(), 2u);
  // Asked for 2 s, more than the first step's 0.8-1.2 s: exactly 2 s.
  SchedulerOutput a = Complete(sends[0], Answer(503, "2"), kT0);
  EXPECT_EQ(a.records[0].next_attempt_ms, kT0 + 2'000);
  // Asked for an hour: capped at the schedule's longest step, 10 s.
  SchedulerOutput b = Complete(sends[1], Answer(429, "3600"), kT0);
  EXPECT_EQ(b.records[0].next_attempt_ms, kT0 + 10'000);
}

TEST_F(SchedulerTest, RetryAfterOnOtherStatusesIsIgnored) {
  AddEndpoint("/a");
  Start("1s,10s");
  Admit(Ingest(1));
  SchedulerOutput out = Complete(Poll(kT0).sends.at(0), Answer(500, "3600"), kT0);
  EXPECT_LT(out.records[0].next_attempt_ms, kT0 + 1'200);
}

TEST_F(SchedulerTest, GoneDisablesTheEndpointAtOnceAndItsMessagesWait) {
  const store::Endpoint ep = AddEndpoint("/a");
  Start("1s");
  Admit(Ingest(3));
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 3u);
  SchedulerOutput gone = Complete(out.sends[0], Answer(410), kT0);
  ASSERT_EQ(gone.disables.size(), 1u);
  EXPECT_EQ(gone.disables[0].endpoint_id, ep.id);
  EXPECT_EQ(gone.disables[0].reason, "the receiver answered 410 Gone");
  EXPECT_EQ(gone.records[0].new_status, store::MessageStatus::kPending);
  // The other two answer after the park: they wait too, with no retry of their own.
  SchedulerOutput late = Complete(out.sends[1], Answer(500), kT0 + 1);
  EXPECT_EQ(late.records[0].new_status, store::MessageStatus::kPending);
  EXPECT_TRUE(late.disables.empty());
  Complete(out.sends[2], Answer(204), kT0 + 1);
  EXPECT_EQ(scheduler_->counts().endpoint_waits, 2u);
  EXPECT_EQ(scheduler_->counts().in_flight, 0u);
  EXPECT_EQ(scheduler_->NextWakeMs(), std::nullopt);
  EXPECT_TRUE(Poll(kT0 + 3'600'000).sends.empty());
}

TEST_F(SchedulerTest, ABurstOfGoneAnswersDisablesTheEndpointOnce) {
  size_t disables = 0;
  for (const Send& send : SendFresh(3, "1s")) {
    disables += Complete(send, Answer(410), kT0).disables.size();
  }
  EXPECT_EQ(disables, 1u) << "each a write on the dispatcher's thread: one is enough";
}

TEST_F(SchedulerTest, ARefusedDestinationOrABadUrlDisablesInsteadOfRetrying) {
  AddEndpoint("/a");
  AddEndpoint("/b");
  AddEndpoint("/c");
  Start("1s");
  Admit(Ingest(1));
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 3u);
  SchedulerOutput refused = Complete(
      out.sends[0],
      Failure(OutboundError::kRefused,
              "destination 10.0.0.7 is a private address (private destinations are not allowed)"),
      kT0);
  ASSERT_EQ(refused.disables.size(), 1u);
  EXPECT_EQ(refused.disables[0].reason,
            "cannot be delivered to: destination 10.0.0.7 is a private address (private "
            "destinations are not allowed)");
  SchedulerOutput malformed = Complete(
      out.sends[1], Failure(OutboundError::kInvalidRequest, "malformed URL (no host)"), kT0);
  ASSERT_EQ(malformed.disables.size(), 1u);
  // A timeout may pass: it is retried, and the endpoint stays.
  SchedulerOutput timeout =
      Complete(out.sends[2], Failure(OutboundError::kTimeout, "timed out after 15000 ms"), kT0);
  EXPECT_TRUE(timeout.disables.empty());
  EXPECT_EQ(timeout.records[0].error, "timed out after 15000 ms");
  EXPECT_GT(timeout.records[0].next_attempt_ms, kT0);
}

TEST_F(SchedulerTest, AnEndpointFailingForDisableAfterIsDisabled) {
  AddEndpoint("/a");
  SchedulerOptions options;
  options.disable_after = 60s;
  options.circuit.failure_threshold = 1000;  // only the schedule paces it here
  Start("20s,20s,20s,20s,20s,20s", options);
  Admit(Ingest(1));
  int64_t now = kT0;
  std::optional<DisableEndpoint> disabled;
  int attempts = 0;
  while (!disabled && attempts < 6) {
    SchedulerOutput out = Poll(now);
    ASSERT_EQ(out.sends.size(), 1u) << "attempt " << attempts;
    SchedulerOutput done = Complete(out.sends[0], Answer(500), now);
    ++attempts;
    if (!done.disables.empty()) {
      disabled = done.disables[0];
      EXPECT_EQ(done.records[0].new_status, store::MessageStatus::kPending);
      EXPECT_GE(now - kT0, 60'000);
    } else {
      EXPECT_LT(now - kT0, 60'000);
      now = done.records[0].next_attempt_ms;
    }
  }
  ASSERT_TRUE(disabled.has_value());
  EXPECT_EQ(disabled->reason, "every attempt failed for 60 s");
  EXPECT_EQ(attempts, 4);  // at about 0, 20, 40 and 60 s
}

TEST_F(SchedulerTest, TheCircuitOpensLetsOneProbeThroughAndClosesOnItsSuccess) {
  AddEndpoint("/a", 1);
  SchedulerOptions options;
  options.circuit = CircuitOptions{2, 5s, 60s};
  Start("1s,1s,1s,1s,1s,1s,1s,1s", options);
  Admit(Ingest(3));
  // Two failures in a row open the circuit for 5 s.
  Complete(Poll(kT0).sends.at(0), Answer(500), kT0);
  SchedulerOutput second = Poll(kT0);
  ASSERT_EQ(second.sends.size(), 1u);
  Complete(second.sends[0], Answer(500), kT0 + 10);
  EXPECT_EQ(scheduler_->Runtime(second.sends[0].target->id, kT0 + 10).circuit, "open");
  EXPECT_TRUE(Poll(kT0 + 5'009).sends.empty()) << "open until 5 s after the second failure";
  // Half-open: one probe, and nothing else while it is out.
  SchedulerOutput probe = Poll(kT0 + 5'010);
  ASSERT_EQ(probe.sends.size(), 1u);
  EXPECT_TRUE(Poll(kT0 + 5'011).sends.empty());
  // The probe fails: open again, for twice as long.
  Complete(probe.sends[0], Answer(500), kT0 + 5'020);
  EXPECT_TRUE(Poll(kT0 + 15'019).sends.empty());
  SchedulerOutput probe2 = Poll(kT0 + 15'020);
  ASSERT_EQ(probe2.sends.size(), 1u);
  Complete(probe2.sends[0], Answer(204), kT0 + 15'021);
  EXPECT_EQ(scheduler_->Runtime(probe2.sends[0].target->id, kT0 + 15'021).circuit, "closed");
  EXPECT_EQ(DrainAt(kT0 + 20'000, 204).size(), 1u) << "closed: the rest go";
  EXPECT_EQ(scheduler_->counts().delivered, 3u);
}

// A redelivery asks for the message now, the receiver mended perhaps: it probes an open
// circuit at once rather than wait out the pause, and its success closes the circuit.
TEST_F(SchedulerTest, ARedeliveryProbesAnOpenCircuitAtOnce) {
  const Send probe = RedeliverIntoAnOpenCircuit("1h");
  EXPECT_EQ(scheduler_->Runtime(probe.target->id, kT0 + 1'000).circuit, "half_open");
  Complete(probe, Answer(204), kT0 + 1'001);
  EXPECT_EQ(scheduler_->Runtime(probe.target->id, kT0 + 1'001).circuit, "closed");
}

// A new URL is a new receiver: the circuit the old one's failures opened closes, and what waits
// goes at once rather than after the pause (it once waited out a pause grown to minutes).
TEST_F(SchedulerTest, ANewUrlClosesTheCircuitTheOldOneOpened) {
  const store::Endpoint ep = StartWithCircuit(CircuitOptions{1, 60s, 600s}, "1s");
  Admit(Ingest(1));
  const Send first = Poll(kT0).sends.at(0);
  Record(Complete(first, Answer(500), kT0));
  EXPECT_TRUE(Poll(kT0 + 2'000).sends.empty()) << "due, but the circuit is open for a minute";
  store::EndpointPatch same_url;  // a change that is not the URL leaves the circuit as it is
  same_url.description = "still broken";
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, same_url, kT0 + 2'000).ok());
  scheduler_->EndpointChanged(ep.id, kT0 + 2'000);
  EXPECT_TRUE(Poll(kT0 + 2'000).sends.empty());
  EXPECT_EQ(scheduler_->Runtime(ep.id, kT0 + 2'000).circuit, "open");
  store::EndpointPatch moved;
  moved.url = "https://receiver.example/mended";
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, moved, kT0 + 2'000).ok());
  scheduler_->EndpointChanged(ep.id, kT0 + 2'000);
  EXPECT_EQ(scheduler_->Runtime(ep.id, kT0 + 2'000).circuit, "closed");
  const SchedulerOutput out = Poll(kT0 + 2'000);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].target->url, "https://receiver.example/mended");
}

// Ingest refuses a site whose own messages fill more than its share of the backlog: the counts
// name the sites over SchedulerOptions::max_site_backlog, counting what waits and what is in
// flight, and only those, until their messages go.
TEST_F(SchedulerTest, TheSitesOverTheirBacklogAreNamedUntilTheirMessagesGo) {
  SchedulerOptions options;
  options.max_site_backlog = 3;
  AddEndpoint("/a", /*max_in_flight=*/1);
  const std::string busy = site_;
  site_ = store_->CreateSite("t")->id;
  const std::string quiet = site_;
  AddEndpoint("/b", /*max_in_flight=*/1);
  Start("1s", options);
  Admit(Ingest(3));  // the quiet site: 3, not over
  site_ = busy;
  Admit(Ingest(4));  // the busy one: 4, of which 1 goes now
  const SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(scheduler_->counts().backlog, 7u);
  EXPECT_EQ(scheduler_->counts().backlogged_sites, std::vector<std::string>{busy});
  EXPECT_NE(busy, quiet);
  for (const Send& send : out.sends) Complete(send, Answer(204), kT0 + 1);
  EXPECT_EQ(DrainAt(kT0 + 100, 204).size(), 2u);
  Poll(kT0 + 200);
  EXPECT_EQ(scheduler_->counts().backlog, 0u);
  EXPECT_TRUE(scheduler_->counts().backlogged_sites.empty());
}

TEST_F(SchedulerTest, TheBacklogCountsWaitingMessagesAndComesBackToZero) {
  // The queue-depth gauge: messages due, in flight or scheduled, and nothing else (not the
  // rate limit's wake-ups); and once the last one is delivered, zero, without another input.
  AddEndpoint("/a", 16, /*rate_limit=*/1.0);
  Start("1s");
  Admit(Ingest(3));
  int64_t now = kT0;
  size_t delivered = 0;
  for (int round = 0; round < 20; ++round) {
    SchedulerOutput out = Poll(now);
    EXPECT_EQ(scheduler_->counts().backlog, 3 - delivered) << "at +" << now - kT0 << " ms";
    for (const Send& s : out.sends) {
      Complete(s, Answer(204), now);
      ++delivered;
    }
    if (delivered == 3) break;
    const std::optional<int64_t> wake = scheduler_->NextWakeMs();
    ASSERT_TRUE(wake.has_value());
    now = std::max(*wake, now + 100);  // counts are taken at most every 100 ms
  }
  ASSERT_EQ(delivered, 3u);
  // The last count was taken before the last completion: the scheduler asks to count again,
  // and then has nothing left to wake for.
  EXPECT_EQ(scheduler_->NextWakeMs(), std::nullopt);
  const std::optional<int64_t> count = scheduler_->NextCountMs();
  ASSERT_TRUE(count.has_value());
  EXPECT_LE(*count, now + 100);
  Poll(std::max(*count, now));
  EXPECT_EQ(scheduler_->counts().backlog, 0u);
  EXPECT_EQ(scheduler_->counts().scheduled, 0u);
  EXPECT_EQ(scheduler_->NextCountMs(), std::nullopt);
}

TEST_F(SchedulerTest, TheRateLimitSpacesRequests) {
  AddEndpoint("/a", 100, 2);  // two a second; the bucket holds one second's worth
  Start("1s");
  Admit(Ingest(6));
  int sent = 0;
  std::vector<int64_t> times;
  for (int64_t now = kT0; now <= kT0 + 2'000; now += 50) {
    for (const Send& s : Poll(now).sends) {
      ++sent;
      times.push_back(now);
      Complete(s, Answer(204), now);
    }
  }
  // Two at once (the bucket's burst), then one every 500 ms.
  ASSERT_EQ(times.size(), 6u);
  EXPECT_EQ(times[0], kT0);
  EXPECT_EQ(times[1], kT0);
  EXPECT_EQ(times[2], kT0 + 500);
  EXPECT_EQ(times[3], kT0 + 1'000);
  EXPECT_EQ(times[5], kT0 + 2'000);
}

TEST_F(SchedulerTest, MaxInFlightIsNeverExceeded) {
  AddEndpoint("/a", 3);
  Start("1s");
  Admit(Ingest(10));
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 3u);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());
  Complete(out.sends[0], Answer(204), kT0 + 2);
  SchedulerOutput next = Poll(kT0 + 2);
  ASSERT_EQ(next.sends.size(), 1u);
  EXPECT_EQ(scheduler_->Runtime(next.sends[0].target->id, kT0 + 2).in_flight, 3);
}

TEST_F(SchedulerTest, AStuckEndpointDoesNotHoldUpAnother) {
  AddEndpoint("/stuck", 2);
  AddEndpoint("/fast", 4);
  Start("1s");
  Admit(Ingest(100));
  int stuck = 0;
  int fast = 0;
  for (int round = 0; round < 100; ++round) {
    for (const Send& s : Poll(kT0).sends) {
      if (s.target->url.ends_with("/stuck")) {
        ++stuck;  // never answered
      } else {
        ++fast;
        Complete(s, Answer(204), kT0);
      }
    }
  }
  EXPECT_EQ(stuck, 2);
  EXPECT_EQ(fast, 100);
}

TEST_F(SchedulerTest, MessagesLeftInTheStoreAreLoadedAtStart) {
  AddEndpoint("/a");
  const auto messages = Ingest(4);  // stored, never admitted
  Start("1s");
  EXPECT_EQ(scheduler_->max_admitted_id(), messages.back().id);
  const auto sent = DrainAt(kT0, 204);
  EXPECT_EQ(sent.begin()->second, 4);
}

TEST_F(SchedulerTest, MessagesNotInMemoryAreReadAheadAndEachGoesOnceWithItsOwnEvent) {
  AddEndpoint("/a", /*max_in_flight=*/2);
  const std::vector<store::DueMessage> messages = Ingest(600);  // more than one read ahead takes
  Start("1s");  // loaded from the store: no event in memory

  const std::map<int64_t, std::string> cid_of = CidsOf(messages);
  std::map<int64_t, std::vector<int>> attempts;  // by message id
  bool failed_one = false;
  for (int64_t now = kT0; now <= kT0 + 5'000; now += 1'000) {
    for (int round = 0; round < 1000; ++round) {
      SchedulerOutput out = Poll(now);
      if (out.sends.empty()) break;
      for (const Send& send : out.sends) {
        ASSERT_EQ(send.messages.size(), 1u);
        const OutgoingMessage& m = send.messages[0];
        ASSERT_NE(m.event, nullptr);
        EXPECT_EQ(m.event->event.cid, cid_of.at(m.id)) << "message " << m.id;
        attempts[m.id].push_back(m.attempt);
        // The first answer fails: its retry must count from the attempt made.
        Complete(send, Answer(failed_one ? 204 : 500), now);
        failed_one = true;
      }
    }
  }
  ASSERT_EQ(attempts.size(), messages.size());
  EXPECT_EQ(attempts[messages[0].id], (std::vector<int>{1, 2}));
  for (size_t i = 1; i < messages.size(); ++i) {
    EXPECT_EQ(attempts[messages[i].id], std::vector<int>{1}) << "message " << messages[i].id;
  }
  EXPECT_EQ(scheduler_->counts().delivered, messages.size());
}

TEST_F(SchedulerTest, MessagesReadAheadGoInBatchesWhenBatchingIsTurnedOn) {
  const store::Endpoint ep = AddEndpoint("/a", /*max_in_flight=*/1);
  const std::vector<store::DueMessage> messages = Ingest(300);
  Start("1s");
  SchedulerOutput out = Poll(kT0);  // one goes; the next ones are read ahead
  ASSERT_EQ(out.sends.size(), 1u);
  Complete(out.sends[0], Answer(204), kT0);
  Batch(ep, 100, 0);
  scheduler_->EndpointChanged(ep.id, kT0);

  const std::map<int64_t, std::string> cid_of = CidsOf(messages);
  std::map<int64_t, int> sent = {{out.sends[0].messages[0].id, 1}};
  for (int round = 0; round < 100; ++round) {
    out = Poll(kT0 + 1);
    if (out.sends.empty()) break;
    ASSERT_EQ(out.sends.size(), 1u);
    const Send& batch = out.sends[0];
    EXPECT_GT(batch.batch, 0);
    EXPECT_LE(batch.messages.size(), 100u);
    Assign(batch);
    for (const OutgoingMessage& m : batch.messages) {
      EXPECT_EQ(m.event->event.cid, cid_of.at(m.id)) << "message " << m.id;
      EXPECT_EQ(m.attempt, 1);
      ++sent[m.id];
    }
    Complete(batch, Answer(204), kT0 + 1);
  }
  EXPECT_EQ(sent.size(), messages.size());
  for (const auto& [id, times] : sent) EXPECT_EQ(times, 1) << "message " << id;
}

TEST_F(SchedulerTest, ADisabledEndpointsMessagesWaitInTheStoreUntilItIsEnabled) {
  const store::Endpoint ep = AddEndpoint("/a");
  Start("1s");
  const auto messages = Ingest(3);
  store::EndpointPatch off;
  off.enabled = false;
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, off, kT0).ok());
  Admit(messages);  // read the endpoint: disabled
  EXPECT_TRUE(Poll(kT0).sends.empty());
  store::EndpointPatch on;
  on.enabled = true;
  ASSERT_TRUE(store_->UpdateEndpoint(site_, ep.id, on, kT0 + 1).ok());
  scheduler_->EndpointChanged(ep.id, kT0 + 1);
  EXPECT_EQ(DrainAt(kT0 + 1, 204).begin()->second, 3);
}

// Events are kept in memory for first attempts up to a bound shared by every endpoint: those of
// an endpoint that sends nothing must not take it up.
TEST_F(SchedulerTest, ADisabledEndpointKeepsNoEventsInMemory) {
  const store::Endpoint off = AddEndpoint("/off");
  const store::Endpoint on = AddEndpoint("/on");
  Start("1s");
  store::EndpointPatch disable;
  disable.enabled = false;
  ASSERT_TRUE(store_->UpdateEndpoint(site_, off.id, disable, kT0).ok());
  scheduler_->EndpointChanged(off.id, kT0);
  // More than the 20,000 events the scheduler keeps, all for the disabled endpoint.
  for (const store::DueMessage& m : Ingest(20'001)) {
    if (m.endpoint_id == off.id) scheduler_->Admit(m, kT0);
  }
  EXPECT_TRUE(Poll(kT0).sends.empty());
  std::vector<store::DueMessage> next = Ingest(1);
  std::erase_if(next, [&](const store::DueMessage& m) { return m.endpoint_id != on.id; });
  ASSERT_EQ(next.size(), 1u);
  Admit(next);
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].messages[0].event.get(), next[0].stored.get()) << "not read back";
}

// The database cannot answer for a moment (here: the endpoints table is away, as a busy or
// unreachable database would be). That is not a deletion: an endpoint read before keeps
// delivering as it was, one never read waits in the store, and both are read again a second
// later.
TEST_F(SchedulerTest, AnEndpointTheStoreCannotReadIsReadAgainNotTakenForDeleted) {
  const store::Endpoint known = AddEndpoint("/known");
  Start("1s");
  Admit(Ingest(1));
  for (const Send& send : Poll(kT0).sends) Complete(send, Answer(204), kT0);
  const store::Endpoint added = AddEndpoint("/added");
  const auto messages = Ingest(2);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("test.db").c_str(), &db), SQLITE_OK);
  const auto exec = [db](const char* sql) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  };
  exec("ALTER TABLE endpoints RENAME TO endpoints_away");
  scheduler_->EndpointChanged(known.id, kT0);
  Admit(messages);
  std::map<std::string, int> sent = DrainAt(kT0, 204);
  EXPECT_EQ(sent[known.url], 2) << "read before: delivers as it was";
  EXPECT_EQ(sent[added.url], 0) << "never read: waits";
  exec("ALTER TABLE endpoints_away RENAME TO endpoints");
  sqlite3_close(db);

  EXPECT_TRUE(DrainAt(kT0 + 999, 204).empty());
  sent = DrainAt(kT0 + 1'000, 204);
  EXPECT_EQ(sent[added.url], 2) << "read again a second later, with what waited in the store";
  EXPECT_EQ(sent[known.url], 0);
}

TEST_F(SchedulerTest, ADeletedEndpointsMessagesAreNotSent) {
  const store::Endpoint ep = AddEndpoint("/a");
  Start("1s");
  const auto messages = Ingest(2);
  ASSERT_TRUE(store_->DeleteEndpoint(site_, ep.id).ok());
  Admit(messages);
  scheduler_->EndpointChanged(ep.id, kT0);
  EXPECT_TRUE(Poll(kT0).sends.empty());
}

TEST_F(SchedulerTest, SharingTheDatabaseOnlyTheLeaseHolderDelivers) {
  const store::Endpoint ep = AddEndpoint("/a");
  SchedulerOptions options;
  options.shared = true;
  Start("1s", options);
  const auto messages = Ingest(3);
  Admit(messages);  // not this node's endpoint (yet)
  EXPECT_TRUE(Poll(kT0).sends.empty());

  scheduler_->Gained(ep.id, kT0 + 1);  // loads what waits in the store
  SchedulerOutput out = Poll(kT0 + 1);
  ASSERT_EQ(out.sends.size(), 3u);
  Admit(messages, kT0 + 1);  // a late notice of the same messages: admitted once only
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());

  // The lease goes while the requests are out: their outcomes still count, and nothing more
  // goes from here; the messages are another node's now.
  scheduler_->Lost(ep.id);
  SchedulerOutput done = Complete(out.sends[0], Answer(204), kT0 + 2);
  EXPECT_EQ(done.records[0].new_status, store::MessageStatus::kDelivered);
  ASSERT_EQ(done.finished.size(), 1u);
  SchedulerOutput failed = Complete(out.sends[1], Answer(500), kT0 + 2);
  EXPECT_EQ(failed.records[0].new_status, store::MessageStatus::kPending);
  EXPECT_EQ(scheduler_->NextWakeMs(), std::nullopt) << "no retry from a node without the lease";
  EXPECT_EQ(scheduler_->counts().in_flight, 1u);
}

TEST_F(SchedulerTest, ABatchFillsAcrossIngestsUpToMaxEvents) {
  const store::Endpoint ep = StartBatching(5, 1'000);
  const auto first = Ingest(3);
  Admit(first);
  EXPECT_TRUE(Poll(kT0).sends.empty()) << "3 of 5: waits for more";
  EXPECT_EQ(scheduler_->NextWakeMs(), kT0 + 1'000);
  const auto second = Ingest(4, kT0 + 10);
  Admit(second, kT0 + 10);
  SchedulerOutput out = Poll(kT0 + 10);
  ASSERT_EQ(out.sends.size(), 1u) << "full at 5: goes at once";
  const Send batch = out.sends[0];
  EXPECT_EQ(batch.batch, first[0].id) << "named after its first message";
  EXPECT_EQ(Ids(batch), (std::vector<int64_t>{first[0].id, first[1].id, first[2].id, second[0].id,
                                              second[1].id}));
  for (const OutgoingMessage& m : batch.messages) EXPECT_EQ(m.attempt, 1);
  EXPECT_EQ(scheduler_->counts().in_flight, 1u) << "one request";

  // The other two wait for max_wait_ms from when they were ready, then go as they are.
  EXPECT_TRUE(Poll(kT0 + 1'009).sends.empty());
  out = Poll(kT0 + 1'010);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(Ids(out.sends[0]), (std::vector<int64_t>{second[2].id, second[3].id}));
  EXPECT_EQ(out.sends[0].batch, second[2].id);

  SchedulerOutput done = Complete(batch, Answer(204), kT0 + 20);
  ASSERT_EQ(done.records.size(), 5u) << "one record per message";
  for (const store::AttemptRecord& r : done.records) {
    EXPECT_EQ(r.new_status, store::MessageStatus::kDelivered);
    EXPECT_EQ(r.counts_request, &r == &done.records.front()) << "one request";
  }
  EXPECT_EQ(done.records.front().endpoint_id, ep.id) << "the endpoint whose statistics it joins";
  EXPECT_EQ(scheduler_->counts().delivered, 5u);
}

// A batch waits at most max_wait_ms from its first member's arrival (DESIGN 1), also when its
// members are read again from the store: after a restart, or with the endpoint enabled again.
TEST_F(SchedulerTest, ABatchReadAgainWaitsOnlyWhatIsLeftOfMaxWait) {
  const store::Endpoint ep = AddEndpoint("/a");
  Batch(ep, 100, 60'000);
  const auto before = Ingest(2, kT0 - 15'000);  // stored before a restart at kT0
  Start("1s");
  EXPECT_TRUE(Poll(kT0 + 44'999).sends.empty());
  SchedulerOutput out = Poll(kT0 + 45'000);
  ASSERT_EQ(out.sends.size(), 1u) << "a minute after the first arrived, not after the restart";
  EXPECT_EQ(Ids(out.sends[0]), Ids(before));
  Record(Complete(out.sends[0], Answer(204), kT0 + 45'000));

  const auto later = Ingest(3, kT0 + 50'000);
  Admit(later, kT0 + 50'000);
  DisableAndEnable(ep, kT0 + 70'000);
  EXPECT_TRUE(Poll(kT0 + 109'999).sends.empty());
  out = Poll(kT0 + 110'000);
  ASSERT_EQ(out.sends.size(), 1u)
      << "a minute after they arrived, not after the endpoint came back";
  EXPECT_EQ(Ids(out.sends[0]), Ids(later));
}

TEST_F(SchedulerTest, MaxWaitZeroSendsWhatIsReadyAtOnce) {
  StartBatching(100, 0, "1s", /*max_in_flight=*/1);
  Admit(Ingest(1));
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].messages.size(), 1u);
  // While it is out, the one request allowed is taken: what comes meanwhile goes together.
  Admit(Ingest(7));
  EXPECT_TRUE(Poll(kT0).sends.empty());
  Complete(out.sends[0], Answer(200), kT0 + 1);
  out = Poll(kT0 + 1);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].messages.size(), 7u);
}

// A replay can make a second message of an event while the first waits for its batch: each
// event goes at most once per batch (DESIGN 1), the second in the next one, which has waited
// max_wait_ms since its first member arrived, and not that again after the first batch left.
TEST_F(SchedulerTest, ABatchCarriesEachEventOnce) {
  const store::Endpoint ep = StartBatching(10, 1'000);
  const auto messages = Ingest(2);
  store::ReplayQuery replay;
  replay.site_id = site_;
  replay.endpoint_id = ep.id;
  replay.until_ms = kT0 + 1;
  const auto again = store_->ReplayEvents(replay, kT0).value();
  ASSERT_EQ(again.size(), 2u);
  Admit(messages);
  Admit(again);
  const auto event_ids = [](const Send& send) {
    std::vector<std::string> ids;
    for (const OutgoingMessage& m : send.messages) ids.push_back(m.event->event.event_id);
    return ids;
  };
  EXPECT_TRUE(Poll(kT0 + 999).sends.empty());
  SchedulerOutput out = Poll(kT0 + 1'000);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(Ids(out.sends[0]), Ids(messages));
  const std::vector<std::string> first = event_ids(out.sends[0]);
  EXPECT_NE(first[0], first[1]);
  EXPECT_EQ(Ids(out.sends[1]), Ids(again));
  EXPECT_EQ(event_ids(out.sends[1]), first);
}

// A message redelivered while it waits its turn, never sent, goes alone, and only alone: batching
// turned on before its first entry came up must not put that entry in a batch beside it.
TEST_F(SchedulerTest, AMessageRedeliveredBeforeItsFirstAttemptGoesOnlyAlone) {
  const store::Endpoint ep = AddEndpoint("/a", /*max_in_flight=*/2);
  Start("1s");
  const auto messages = Ingest(4);
  Admit(messages);
  const SchedulerOutput first = Poll(kT0);
  ASSERT_EQ(first.sends.size(), 2u) << "two in flight, two waiting";
  auto requeued = store_->RequeueMessage(site_, messages[2].id, kT0 + 1);
  ASSERT_TRUE(requeued.ok()) << requeued.status().message();
  scheduler_->Admit(*requeued, kT0 + 1);
  Batch(ep, 10, 0);
  scheduler_->EndpointChanged(ep.id, kT0 + 1);
  std::map<int64_t, int> sent;
  std::vector<Send> out = first.sends;
  for (int64_t t = kT0 + 2; t < kT0 + 20 && !out.empty(); ++t) {
    for (const Send& s : out) {
      for (const OutgoingMessage& m : s.messages) ++sent[m.id];
      Complete(s, Answer(204), t);
    }
    out = Poll(t).sends;
  }
  EXPECT_EQ(sent.size(), messages.size());
  for (const auto& [id, times] : sent) EXPECT_EQ(times, 1) << "message " << id;
}

// A message that waits for its endpoint's first batch is not sent alone on request: it would
// reach the receiver under two webhook-ids. Once its batch has gone, it may be.
TEST_F(SchedulerTest, AMessageWaitingForItsFirstBatchIsNotRedelivered) {
  StartBatching(10, 60'000);
  const auto messages = Ingest(2);
  Admit(messages);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());
  const model::Status refused = store_->RequeueMessage(site_, messages[0].id, kT0 + 1).status();
  EXPECT_EQ(refused.code(), model::StatusCode::kAlreadyExists);
  EXPECT_EQ(refused.message(),
            "the message has not been sent yet: it goes in its endpoint's next batch; redeliver it "
            "once that batch has been sent");
  const Send batch = Poll(kT0 + 60'000).sends.at(0);
  EXPECT_EQ(Ids(batch), Ids(messages)) << "both, in one batch";
  Assign(batch);
  Record(Complete(batch, Answer(204), kT0 + 60'001));
  auto requeued = store_->RequeueMessage(site_, messages[0].id, kT0 + 60'002);
  ASSERT_TRUE(requeued.ok()) << requeued.status().message();
  scheduler_->Admit(*requeued, kT0 + 60'002);
  const Send alone = Poll(kT0 + 60'002).sends.at(0);
  EXPECT_EQ(alone.batch, store::kAlone);
  EXPECT_EQ(Ids(alone), std::vector<int64_t>{messages[0].id});
  EXPECT_EQ(Complete(alone, Answer(204), kT0 + 60'003).records.at(0).sent_in, 0) << "it went alone";
}

// Parked and enabled again while a batch is out, the endpoint finds the batch's members pending
// in the store: they go again when that request's outcome says so, not beside it.
TEST_F(SchedulerTest, ABatchInFlightIsNotSentAgainWhenTheEndpointIsEnabledAgain) {
  const store::Endpoint ep = StartBatching(3, 0);
  Admit(Ingest(3));
  const Send batch = Poll(kT0).sends.at(0);
  Assign(batch);
  ASSERT_NO_FATAL_FAILURE(DisableAndEnable(ep, kT0));
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty()) << "the batch is still out";
  SchedulerOutput out = Complete(batch, Answer(500), kT0 + 2);
  ASSERT_EQ(out.records.size(), 3u);
  const int64_t retry_at = out.records[0].next_attempt_ms;
  out = Poll(retry_at);
  ASSERT_EQ(out.sends.size(), 1u) << "retried once, whole";
  EXPECT_EQ(out.sends[0].batch, batch.batch);
  EXPECT_EQ(Ids(out.sends[0]), Ids(batch));
}

TEST_F(SchedulerTest, AFailedBatchIsRetriedWholeOnTheSchedule) {
  StartBatching(10, 0, "10s,1m");
  const auto messages = Ingest(4);
  Admit(messages);
  const Send first = Poll(kT0).sends.at(0);
  SchedulerOutput out = Complete(first, Answer(500), kT0);
  ASSERT_EQ(out.records.size(), 4u);
  const int64_t retry_at = out.records[0].next_attempt_ms;
  for (const store::AttemptRecord& r : out.records) {
    EXPECT_EQ(r.new_status, store::MessageStatus::kPending);
    EXPECT_EQ(r.next_attempt_ms, retry_at) << "one decision for the batch";
  }
  // Newer events do not join a batch that is fixed already.
  Admit(Ingest(2, kT0 + 1), kT0 + 1);
  SchedulerOutput later = Poll(kT0 + 1);
  ASSERT_EQ(later.sends.size(), 1u);
  EXPECT_EQ(later.sends[0].messages.size(), 2u);

  out = Poll(retry_at);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].batch, first.batch);
  EXPECT_EQ(Ids(out.sends[0]), Ids(messages));
  for (const OutgoingMessage& m : out.sends[0].messages) EXPECT_EQ(m.attempt, 2);
  out = Complete(out.sends[0], Answer(502), retry_at);
  const Send third = Poll(out.records[0].next_attempt_ms).sends.at(0);
  out = Complete(third, Answer(500), out.records[0].next_attempt_ms);
  for (const store::AttemptRecord& r : out.records) {
    EXPECT_EQ(r.new_status, store::MessageStatus::kFailed) << "the schedule ran out";
  }
}

// A receiver whose body limit a batch exceeds answers 413 to it on every retry: the batch goes
// again at once as two halves, halved again until each fits, and later batches start at the
// size that fit. The circuit stays closed and the splits leave the retry schedule whole.
TEST_F(SchedulerTest, ABatchRefusedAsTooLargeGoesAgainAtOnceInHalves) {
  StartBatchingWithCircuit(2, "10s");  // two failures in a row open it
  const auto messages = Ingest(7);
  Admit(messages);
  const Send whole = Poll(kT0).sends.at(0);
  ASSERT_EQ(whole.messages.size(), 7u);
  SchedulerOutput out = Complete(whole, Answer(413), kT0 + 1);
  ASSERT_EQ(out.records.size(), 7u);
  const std::vector<int64_t> ids = Ids(messages);
  for (const store::AttemptRecord& r : out.records) {
    EXPECT_EQ(r.batch, r.message_id < ids[4] ? 0 : ids[4])
        << "the second half fixed under its number with the record";
    EXPECT_EQ(r.batch_from, r.message_id < ids[4] ? 0 : whole.batch);
    EXPECT_EQ(r.new_status, store::MessageStatus::kPending);
    EXPECT_EQ(r.next_attempt_ms, kT0 + 1) << "at once";
    EXPECT_EQ(r.status_code, 413);
    EXPECT_EQ(r.error,
              "HTTP 413: the receiver refused a batch of 7 events as too large; they go again "
              "at once, as batches of 4 and 3");
  }
  ASSERT_EQ(out.splits.size(), 1u);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty()) << "the halves wait for the records that fix them";
  SplitsRecorded(out, true, kT0 + 1);
  out = Poll(kT0 + 1);
  ASSERT_EQ(out.sends.size(), 2u);
  std::map<int64_t, std::vector<int64_t>> sent;
  for (const Send& s : out.sends) {
    sent[s.batch] = Ids(s);
    for (const OutgoingMessage& m : s.messages) EXPECT_EQ(m.attempt, 2);
  }
  EXPECT_EQ(sent[whole.batch], std::vector<int64_t>(ids.begin(), ids.begin() + 4))
      << "the first half keeps the batch's id";
  EXPECT_EQ(sent[ids[4]], std::vector<int64_t>(ids.begin() + 4, ids.end()))
      << "the second is named after its first message";

  // The first half is still too large: its halves of 2 go; the second half fits.
  const Send& four = out.sends[0].batch == whole.batch ? out.sends[0] : out.sends[1];
  const Send& three = out.sends[0].batch == whole.batch ? out.sends[1] : out.sends[0];
  Complete(three, Answer(204), kT0 + 2);
  SplitsRecorded(Complete(four, Answer(413), kT0 + 2), true, kT0 + 2);
  out = Poll(kT0 + 2);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(out.sends[0].messages.size(), 2u);
  EXPECT_EQ(out.sends[1].messages.size(), 2u);
  // Two of the three attempts so far were splits: a failure of the third is retried on the
  // schedule's one step, not taken for the schedule's end.
  SchedulerOutput failed = Complete(out.sends[0], Answer(500), kT0 + 3);
  ASSERT_EQ(failed.records.size(), 2u);
  EXPECT_EQ(failed.records[0].attempt, 3);
  EXPECT_EQ(failed.records[0].new_status, store::MessageStatus::kPending);
  EXPECT_GE(failed.records[0].next_attempt_ms, kT0 + 3 + 8'000);
  EXPECT_EQ(scheduler_->Runtime(whole.target->id, kT0 + 3).circuit, "closed")
      << "one failure in a row (the 500): the 413 before it is not counted";
  EXPECT_EQ(scheduler_->counts().retries, 7u + 4u + 2u) << "the splits, and the 500";
  Complete(out.sends[1], Answer(200), kT0 + 3);
  EXPECT_EQ(scheduler_->counts().delivered, 5u);

  // New batches start at the size that fit, not at max_events.
  Admit(Ingest(5, kT0 + 4), kT0 + 4);
  out = Poll(kT0 + 4);
  ASSERT_EQ(out.sends.size(), 3u);
  EXPECT_EQ(out.sends[0].messages.size(), 2u);
  EXPECT_EQ(out.sends[1].messages.size(), 2u);
  EXPECT_EQ(out.sends[2].messages.size(), 1u);
}

// The circuit's probe may be a batch: a 413 to it says nothing of the receiver's health, but
// the circuit must not wait for an outcome that probe never reports: one of the halves probes.
TEST_F(SchedulerTest, ABatchProbeRefusedAsTooLargeLetsAHalfProbe) {
  StartBatchingWithCircuit(1, "1m");
  Admit(Ingest(1));
  Complete(Poll(kT0).sends.at(0), Answer(500), kT0);
  Admit(Ingest(4, kT0 + 1), kT0 + 1);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty()) << "open";
  SchedulerOutput probe = Poll(kT0 + 5'000);
  ASSERT_EQ(probe.sends.size(), 1u);
  ASSERT_EQ(probe.sends[0].messages.size(), 4u) << "the waiting batch is the probe";
  const std::string endpoint = probe.sends[0].target->id;
  SplitsRecorded(Complete(probe.sends[0], Answer(413), kT0 + 5'001), true, kT0 + 5'001);
  EXPECT_EQ(scheduler_->Runtime(endpoint, kT0 + 5'001).circuit, "half_open");
  SchedulerOutput half = Poll(kT0 + 5'001);
  ASSERT_EQ(half.sends.size(), 1u) << "one half probes, the other waits for its outcome";
  EXPECT_EQ(half.sends[0].messages.size(), 2u);
  Complete(half.sends[0], Answer(204), kT0 + 5'002);
  EXPECT_EQ(scheduler_->Runtime(endpoint, kT0 + 5'002).circuit, "closed");
  SchedulerOutput rest = Poll(kT0 + 5'002);
  ASSERT_EQ(rest.sends.size(), 1u);
  EXPECT_EQ(rest.sends[0].messages.size(), 2u);
}

// When the 413's records cannot be written, the store still has every member in the batch: it
// goes again whole, under its id, shortly, and is split once its records are written.
TEST_F(SchedulerTest, ASplitWhoseRecordsAreNotWrittenGoesAgainWhole) {
  StartBatching(10, 0, "10s");
  const auto messages = Ingest(4);
  Admit(messages);
  const Send whole = Poll(kT0).sends.at(0);
  SchedulerOutput out = Complete(whole, Answer(413), kT0);
  SplitsRecorded(out, false, kT0 + 1);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());
  out = Poll(kT0 + 1'001);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].batch, whole.batch);
  EXPECT_EQ(Ids(out.sends[0]), Ids(messages));
  out = Complete(out.sends[0], Answer(413), kT0 + 1'002);
  SplitsRecorded(out, true, kT0 + 1'002);
  EXPECT_EQ(Poll(kT0 + 1'002).sends.size(), 2u);
}

// Parked and enabled again while a batch is out, the endpoint reads the batch's members again;
// refused as too large, the batch goes as its halves only, not whole beside them.
TEST_F(SchedulerTest, ABatchReadAgainWhileOutIsSplitNotSentWhole) {
  const store::Endpoint ep = StartBatching(10, 0);
  const auto messages = Ingest(4);
  Admit(messages);
  const Send batch = Poll(kT0).sends.at(0);
  Assign(batch);
  ASSERT_NO_FATAL_FAILURE(DisableAndEnable(ep, kT0));
  SchedulerOutput out = Complete(batch, Answer(413), kT0 + 2);
  Record(out);
  SplitsRecorded(out, true, kT0 + 2);
  out = Poll(kT0 + 2);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(out.sends[0].messages.size() + out.sends[1].messages.size(), 4u);
  EXPECT_EQ(out.sends[0].messages.size(), 2u);
}

// The splits are counted in the store: after a restart, a batch split twice still has the
// whole schedule ahead of it.
TEST_F(SchedulerTest, SplitsStillLeaveTheScheduleWholeAfterARestart) {
  StartBatching(10, 0, "10s");
  Admit(Ingest(4));
  const Send whole = Poll(kT0).sends.at(0);
  Assign(whole);
  SchedulerOutput out = Complete(whole, Answer(413), kT0);
  Record(out);
  SplitsRecorded(out, true, kT0);
  out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 2u);
  for (const Send& half : out.sends) Assign(half);
  out = Complete(out.sends[0], Answer(413), kT0 + 1);
  Record(out);
  Start("10s");  // a restart: the halves of one and one, and the half of two, from the store
  out = Poll(kT0 + 2);
  ASSERT_EQ(out.sends.size(), 3u);
  const auto twice = std::find_if(out.sends.begin(), out.sends.end(),
                                  [](const Send& s) { return s.messages.size() == 1; });
  ASSERT_NE(twice, out.sends.end());
  EXPECT_EQ(twice->messages[0].attempt, 3) << "its third attempt, after two splits";
  out = Complete(*twice, Answer(500), kT0 + 3);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].new_status, store::MessageStatus::kPending)
      << "the schedule's one step is still ahead";
}

// A 413 to a batch sent before the circuit opened says nothing about the probe out now: the
// probe stays the only request until its own outcome.
TEST_F(SchedulerTest, ALate413DoesNotReleaseTheProbe) {
  StartBatchingWithCircuit(1, "1m");
  Admit(Ingest(4));
  const Send early = Poll(kT0).sends.at(0);
  Admit(Ingest(1, kT0 + 1), kT0 + 1);
  const Send failing = Poll(kT0 + 1).sends.at(0);
  Complete(failing, Answer(500), kT0 + 2);  // opens the circuit until kT0 + 5'002
  Admit(Ingest(2, kT0 + 3), kT0 + 3);
  SchedulerOutput probe = Poll(kT0 + 5'002);
  ASSERT_EQ(probe.sends.size(), 1u);
  SplitsRecorded(Complete(early, Answer(413), kT0 + 5'003, /*started_ms=*/kT0), true, kT0 + 5'003);
  EXPECT_TRUE(Poll(kT0 + 5'003).sends.empty()) << "the probe is still out";
  Complete(probe.sends[0], Answer(204), kT0 + 5'004);
  EXPECT_EQ(Poll(kT0 + 5'004).sends.size(), 2u) << "closed: the halves go";
}

// Read again from the store while its records are written (a reload), a split batch's
// members stay in their halves: the batch does not go whole beside them.
TEST_F(SchedulerTest, ASplitBatchReadAgainBeforeItsRecordsGoesInHalvesOnly) {
  const store::Endpoint ep = StartBatching(10, 0);
  Admit(Ingest(4));
  const Send batch = Poll(kT0).sends.at(0);
  Assign(batch);
  SchedulerOutput out = Complete(batch, Answer(413), kT0 + 1);
  Admit(store_->LoadPendingForEndpoint(ep.id, 0, 10).value(), kT0 + 1);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());
  Record(out);
  SplitsRecorded(out, true, kT0 + 2);
  out = Poll(kT0 + 2);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(out.sends[0].messages.size() + out.sends[1].messages.size(), 4u);
}

// A learned cap is not for ever: after 64 full batches in a row taken at it, it doubles.
TEST_F(SchedulerTest, ALearnedCapDoublesAfterFullBatchesAreTaken) {
  StartBatching(8, 0);
  Admit(Ingest(4));
  int64_t now = kT0;
  SchedulerOutput out = Complete(Poll(now).sends.at(0), Answer(413), now);
  SplitsRecorded(out, true, now);
  for (const Send& s : Poll(now).sends) Complete(s, Answer(204), now);  // cap 2: two taken
  for (int i = 2; i < 64; ++i) {
    ++now;
    Admit(Ingest(2, now), now);
    out = Poll(now);
    ASSERT_EQ(out.sends.size(), 1u);
    ASSERT_EQ(out.sends[0].messages.size(), 2u) << "at the cap, batch " << i;
    Complete(out.sends[0], Answer(204), now);
  }
  ++now;
  Admit(Ingest(8, now), now);
  out = Poll(now);
  ASSERT_EQ(out.sends.size(), 2u);
  EXPECT_EQ(out.sends[0].messages.size(), 4u) << "doubled";
}

// A single event refused as too large cannot be split: it is retried on the schedule.
TEST_F(SchedulerTest, ABatchOfOneRefusedAsTooLargeFollowsTheSchedule) {
  StartBatching(10, 0, "10s");
  Admit(Ingest(1));
  const Send one = Poll(kT0).sends.at(0);
  SchedulerOutput out = Complete(one, Answer(413), kT0);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].error, "HTTP 413");
  EXPECT_GE(out.records[0].next_attempt_ms, kT0 + 8'000);
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty());
}

TEST_F(SchedulerTest, ABatchFoundPendingAtStartGoesAgainAsItWas) {
  StartBatching(3, 0);
  const auto messages = Ingest(5);
  Admit(messages);
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 2u);  // 3 and 2
  Assign(out.sends[0]);
  Assign(out.sends[1]);
  // A crash before any outcome is recorded; more events came in the meantime.
  const auto later = Ingest(2, kT0 + 5);
  Start("1s");
  out = Poll(kT0 + 10);
  ASSERT_EQ(out.sends.size(), 3u);
  std::map<int64_t, std::vector<int64_t>> sent;
  for (const Send& s : out.sends) sent[s.batch] = Ids(s);
  EXPECT_EQ(sent[messages[0].id],
            (std::vector<int64_t>{messages[0].id, messages[1].id, messages[2].id}));
  EXPECT_EQ(sent[messages[3].id], (std::vector<int64_t>{messages[3].id, messages[4].id}))
      << "the same members under the same id, though there was room for more";
  EXPECT_EQ(sent[later[0].id], Ids(later));
}

TEST_F(SchedulerTest, AMessageSentAloneBeforeBatchingWasTurnedOnKeepsGoingAlone) {
  const store::Endpoint ep = AddEndpoint("/a");
  Start("10s,1m");
  const auto tried = Ingest(2);
  Admit(tried);
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 2u);
  SchedulerOutput failed = Complete(out.sends[0], Answer(500), kT0);
  const SchedulerOutput failed_too = Complete(out.sends[1], Answer(500), kT0);
  failed.records.insert(failed.records.end(), failed_too.records.begin(), failed_too.records.end());
  Record(failed);
  const int64_t retry_at = failed.records[0].next_attempt_ms;
  Batch(ep, 10, 0);
  scheduler_->EndpointChanged(ep.id, kT0 + 1);
  const auto fresh = Ingest(3, kT0 + 1);
  Admit(fresh, kT0 + 1);

  out = Poll(std::max(retry_at, failed.records[1].next_attempt_ms));
  std::vector<std::vector<int64_t>> alone;
  std::vector<int64_t> batched;
  for (const Send& send : out.sends) {
    if (send.batch > 0) {
      batched = Ids(send);
    } else {
      EXPECT_EQ(send.batch, store::kUnbatched) << "its webhook-id stays msg_…";
      alone.push_back(Ids(send));
      EXPECT_EQ(send.messages[0].attempt, 2);
    }
  }
  std::sort(alone.begin(), alone.end());
  EXPECT_EQ(alone, (std::vector<std::vector<int64_t>>{{tried[0].id}, {tried[1].id}}));
  EXPECT_EQ(batched, Ids(fresh)) << "the new ones go in a batch";
}

TEST_F(SchedulerTest, ARedeliveredMessageGoesAlone) {
  StartBatching(10, 0);
  const auto messages = Ingest(3);
  Admit(messages);
  const Send batch = Poll(kT0).sends.at(0);
  Assign(batch);
  EXPECT_EQ(store_->RequeueMessage(site_, messages[1].id, kT0 + 1).status().code(),
            model::StatusCode::kAlreadyExists)
      << "not while its batch is pending";
  SchedulerOutput done = Complete(batch, Answer(204), kT0 + 1);
  for (const store::AttemptRecord& r : done.records) EXPECT_EQ(r.sent_in, batch.batch);
  std::promise<model::Status> recorded;
  store_->RecordAttempts(done.records, [&](model::Status s) { recorded.set_value(s); });
  ASSERT_TRUE(recorded.get_future().get().ok());
  auto requeued = store_->RequeueMessage(site_, messages[1].id, kT0 + 2);
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(requeued->batch, store::kAlone);
  scheduler_->Admit(*requeued, kT0 + 2);
  SchedulerOutput out = Poll(kT0 + 2);
  ASSERT_EQ(out.sends.size(), 1u);
  EXPECT_EQ(out.sends[0].batch, store::kAlone);
  EXPECT_EQ(Ids(out.sends[0]), std::vector<int64_t>{messages[1].id});
}

TEST_F(SchedulerTest, AMessageRedeliveredWhileItWaitsForARetryGoesOnceAtATime) {
  // Redeliver sends a message that waits for its retry now. Its retry timer still stands: it
  // must neither send the message beside the redelivery still in flight, nor repeat an attempt
  // number once the redelivery's own outcome has set what comes next.
  AddEndpoint("/a");
  Start("10s,10s,10s");
  const auto messages = Ingest(1);
  Admit(messages);
  const Send first = Poll(kT0).sends.at(0);
  SchedulerOutput failed = Complete(first, Answer(500), kT0);
  Record(failed);
  const int64_t retry_at = failed.records.at(0).next_attempt_ms;

  auto requeued = store_->RequeueMessage(site_, messages[0].id, kT0 + 1000);
  ASSERT_TRUE(requeued.ok());
  scheduler_->Admit(*requeued, kT0 + 1000);
  const Send redelivery = Poll(kT0 + 1000).sends.at(0);
  EXPECT_EQ(redelivery.messages.at(0).attempt, 2);
  EXPECT_TRUE(Poll(retry_at).sends.empty()) << "the retry's timer came while it was in flight";

  SchedulerOutput again = Complete(redelivery, Answer(500), retry_at);
  Record(again);
  const int64_t next_at = again.records.at(0).next_attempt_ms;
  std::vector<int> attempts;
  for (int64_t t = next_at; t <= next_at + 60'000; t += 1'000) {
    for (const Send& s : Poll(t).sends) attempts.push_back(s.messages.at(0).attempt);
  }
  EXPECT_EQ(attempts, std::vector<int>{3}) << "one third attempt, once";
}

TEST_F(SchedulerTest, ARetryTimerAnEarlierRedeliveryOvertookIsDropped) {
  // The redelivery failed before the retry's time came, and set its own retry: the old timer
  // then stands for an attempt already made.
  AddEndpoint("/a");
  Start("10s,10s,10s");
  const auto messages = Ingest(1);
  Admit(messages);
  Record(Complete(Poll(kT0).sends.at(0), Answer(500), kT0));
  auto requeued = store_->RequeueMessage(site_, messages[0].id, kT0 + 1000);
  ASSERT_TRUE(requeued.ok());
  scheduler_->Admit(*requeued, kT0 + 1000);
  Record(Complete(Poll(kT0 + 1000).sends.at(0), Answer(500), kT0 + 1001));
  // The receiver keeps failing: the schedule's attempts follow, each once and a step (10 s,
  // less its 20 % jitter) after the one before, then the end.
  std::vector<int> attempts;
  std::vector<int64_t> times{kT0 + 1001};
  for (int64_t t = kT0 + 1002; t <= kT0 + 120'000; t += 500) {
    for (const Send& s : Poll(t).sends) {
      attempts.push_back(s.messages.at(0).attempt);
      times.push_back(t);
      Record(Complete(s, Answer(500), t));
    }
  }
  EXPECT_EQ(attempts, (std::vector<int>{3, 4}));
  for (size_t i = 1; i < times.size(); ++i) {
    EXPECT_GE(times[i] - times[i - 1], 8'000) << "attempt " << i + 2 << " came early";
  }
}

// A message whose first launch could not read the store waits a second to try again. Were it
// redelivered meanwhile, and sent alone, and batching turned on before that second ends, the
// old entry must not take it into a batch too: the receiver would get it under two webhook-ids
// (and here, after a failure, as two attempts at once).
TEST_F(SchedulerTest, AnEntryARedeliveryOvertookJoinsNoBatch) {
  ASSERT_NO_FATAL_FAILURE(RedeliverWhileItWaitsForTheStoreThenBatch(AddEndpoint("/a")));
  EXPECT_EQ(SentFrom(kT0 + 3, kT0 + 5'000, 204),
            (std::vector<std::pair<int64_t, int>>{{store::kAlone, 2}}))
      << "its retry goes, alone, once; nothing else does";
}

// A redelivery that probes an open circuit while the message's earlier retry waits behind it:
// that entry, come up in the turn that completes the probe (before the probe's record is
// committed, so the store still counts one attempt), must not repeat attempt 2, whether the
// probe delivered the message or failed.
TEST_F(SchedulerTest, ARetryARedeliveryOvertookDoesNotRepeatItsAttempt) {
  for (const int answer : {204, 500}) {
    SCOPED_TRACE(answer);
    TearDown();
    SetUp();
    // The first attempt's retry is due about 5 s (±20 %) after it.
    const Send probe = RedeliverIntoAnOpenCircuit("5s,5s,5s,5s");
    EXPECT_EQ(probe.messages.at(0).attempt, 2);
    EXPECT_TRUE(Poll(kT0 + 7'000).sends.empty()) << "the old retry waits behind the probe";
    // As the dispatcher does: Complete, then Poll in the same turn, then write the records.
    const SchedulerOutput done = Complete(probe, Answer(answer), kT0 + 8'000);
    for (const Send& s : Poll(kT0 + 8'000).sends) {
      ADD_FAILURE() << "attempt " << s.messages[0].attempt << " again";
    }
    Record(done);
  }
}

// A batch that forms but cannot read its members was never fixed: its messages form a batch
// again, which leaves out one a redelivery took meanwhile, rather than go as the batch it was.
TEST_F(SchedulerTest, ABatchThatCouldNotFormFormsAgain) {
  ASSERT_NO_FATAL_FAILURE(RedeliverWhileItWaitsForTheStoreThenBatch(AddEndpoint("/a")));
  EventsReadable(false);  // busy again when the old entry comes up
  EXPECT_TRUE(Poll(kT0 + 1'000).sends.empty()) << "nothing can be read";
  EventsReadable(true);
  EXPECT_EQ(SentFrom(kT0 + 1'001, kT0 + 20'000, 500),
            (std::vector<std::pair<int64_t, int>>{
                {store::kAlone, 2}, {store::kAlone, 3}, {store::kAlone, 4}}));
}

// A wake-up set before the endpoint was parked is stale once it is enabled again: a circuit
// open again is still woken for its probe.
TEST_F(SchedulerTest, AnEndpointParkedAndOpenAgainIsWokenForItsProbe) {
  const store::Endpoint ep =
      StartWithCircuit(CircuitOptions{1, 60s, 600s}, "10m", /*max_in_flight=*/1);
  Admit(Ingest(3));
  SchedulerOutput out = Poll(kT0);
  ASSERT_EQ(out.sends.size(), 1u);
  Record(Complete(out.sends[0], Answer(500), kT0));
  EXPECT_TRUE(Poll(kT0 + 1).sends.empty()) << "open";
  Admit(Ingest(1, kT0 + 2), kT0 + 2);
  EXPECT_TRUE(Poll(kT0 + 2).sends.empty());
  DisableAndEnable(ep, kT0 + 3);
  out = Poll(kT0 + 4);
  ASSERT_EQ(out.sends.size(), 1u) << "a fresh circuit";
  Record(Complete(out.sends[0], Answer(500), kT0 + 4));  // open until kT0 + 60'004
  EXPECT_TRUE(Poll(kT0 + 5).sends.empty());
  int64_t probe_at = 0;
  for (int64_t t = kT0 + 100; t <= kT0 + 70'000 && probe_at == 0; t += 100) {
    // As the dispatcher does: it polls only when the scheduler asks (or an input comes).
    const std::optional<int64_t> wake = scheduler_->NextWakeMs();
    if (!wake || *wake > t) continue;
    out = Poll(t);
    if (!out.sends.empty()) probe_at = t;
    Record(out);
  }
  EXPECT_GE(probe_at, kT0 + 60'004) << "the circuit reopened until 60.004 s";
  EXPECT_LE(probe_at, kT0 + 60'100);
}

}  // namespace
}  // namespace pushhook::delivery
