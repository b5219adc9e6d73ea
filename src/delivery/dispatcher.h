// The dispatcher: turns pending messages into signed webhook requests and their outcomes into
// the message's next state (delivered, retry at a jittered time, failed). It holds message ids
// and due times, never payloads; each attempt loads its message, event and endpoint afresh.
// Per endpoint it keeps at most max_in_flight requests open, and endpoints take turns, so one
// slow or dead endpoint never holds up another.
//
// Thread safety: Enqueue(), EndpointChanged() and Stop() may be called from any thread. All
// scheduling state belongs to one dispatcher thread; the Store and HttpClient must outlive it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "delivery/circuit_breaker.h"
#include "delivery/http_client.h"
#include "delivery/retry_schedule.h"
#include "model/clock.h"
#include "store/store.h"
#include "util/token_bucket.h"

namespace pushhook::delivery {

struct DispatcherOptions {
  RetrySchedule schedule = *RetrySchedule::Parse(RetrySchedule::kDefault);
  std::chrono::milliseconds timeout{15'000};
  std::chrono::milliseconds connect_timeout{5'000};
  uint64_t seed = std::random_device{}();  // jitter; tests fix it
  CircuitOptions circuit;
  // An endpoint whose every attempt has failed for this long is disabled.
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};
  // Several nodes share the database: this one delivers only for the endpoints it holds a lease
  // on (SetOwnership), and the same message may be announced more than once, so it keeps the
  // ids it holds per endpoint to admit each once. Off: one node, owner of every endpoint.
  bool shared = false;
};

// What the dispatcher knows of one endpoint right now, for the admin API.
struct EndpointRuntime {
  std::string circuit = "closed";  // closed, open, half_open
  bool circuit_opened = false;     // open or half-open: the breaker has tripped
  int64_t circuit_open_until_ms = 0;
  int in_flight = 0;
  size_t queued = 0;
};

// Upper bounds (seconds) of the attempt latency histogram's buckets; the last is +Inf.
inline constexpr std::array<double, 11> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

struct DispatcherCounts {
  uint64_t attempts = 0;
  uint64_t delivered = 0;
  uint64_t failed = 0;          // messages that ran out of retries
  uint64_t retries = 0;         // failed attempts that were scheduled again
  uint64_t endpoint_waits = 0;  // failed attempts whose endpoint was disabled (message waits)
  uint64_t in_flight = 0;
  uint64_t scheduled = 0;  // messages waiting for a retry time
  uint64_t backlog = 0;    // messages waiting in memory: due and scheduled (not a disabled
                           // endpoint's, which wait in the store)
  uint64_t open_circuits = 0;
  // Attempt latency: count per bucket of kLatencyBuckets (cumulative is made when printing),
  // plus the +Inf bucket, and the sum in seconds.
  std::array<uint64_t, kLatencyBuckets.size() + 1> latency_counts{};
  double latency_sum_seconds = 0;
};

class Dispatcher {
 public:
  Dispatcher(store::Store& store, HttpClient& client, const model::Clock& clock,
             DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Loads every pending message from the store and starts the dispatcher thread.
  model::Status Start();

  // New messages, committed; typically straight from ingest.
  void Enqueue(std::vector<store::DueMessage> messages);

  // An endpoint was changed by the admin API (enabled, limits): re-read it.
  void EndpointChanged(const std::string& endpoint_id);

  // Shared database: this node now holds the leases of `gained` and no longer delivers for
  // `lost`. A gained endpoint's pending messages are loaded from the store.
  void SetOwnership(std::vector<std::string> gained, std::vector<std::string> lost);
  // Shared database: notifications may have been missed; look again at every owned endpoint's
  // pending messages.
  void Resync();
  // The highest message id admitted so far (the backstop polls above an older value of it).
  int64_t max_admitted_id() const { return max_admitted_id_.load(std::memory_order_relaxed); }

  // Sends nothing new, waits up to `grace` for requests in flight, then stops. What was not
  // delivered stays pending in the store for the next start.
  void Stop(std::chrono::milliseconds grace);

  DispatcherCounts counts() const;
  EndpointRuntime Runtime(const std::string& endpoint_id) const;

  // Sends a sample event to `endpoint` now, outside the message log (POST .../test).
  void SendTest(const store::Endpoint& endpoint, const std::string& site_id,
                std::function<void(OutboundResult)> done);

 private:
  // A message in memory: its id, and the attempts made so far as this node knows them (the
  // store's count may lag behind while the last attempt's record waits for its commit).
  struct Due {
    int64_t id;
    int attempts;
  };
  struct Timer {
    int64_t due_ms;
    // 0: wake the endpoint (its rate limit or circuit allows again); -1: reload its messages.
    int64_t message_id;
    uint32_t endpoint;
    uint32_t generation;  // the endpoint's generation when set; stale once it was parked
    int attempts = 0;     // of the message
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
  };
  struct EndpointState {
    std::string id;
    std::deque<Due> ready;    // due now, in order
    uint32_t generation = 0;  // bumped each time the endpoint is parked (disabled)
    int in_flight = 0;
    int max_in_flight = 16;
    bool enabled = true;  // delivering: enabled by its owner, and (shared) this node's lease
    bool owned = true;    // shared database: this node holds the endpoint's lease
    // Shared database: ids due, scheduled or in flight, so that each is admitted once.
    std::unordered_set<int64_t> held;
    // The endpoint as last read (admin changes arrive through EndpointChanged), and messages
    // just made by ingest with their events: a first attempt of those reads nothing back.
    std::optional<store::Endpoint> endpoint;
    std::unordered_map<int64_t, std::shared_ptr<const store::StoredEvent>> fresh;
    bool queued = false;  // in runnable_
    std::string site_id;
    CircuitBreaker circuit;
    util::TokenBucket bucket;
    int64_t failing_since_ms = 0;  // 0 while the last attempt succeeded
  };
  struct Completion {
    uint32_t endpoint = 0;
    int64_t message_id = 0;
    int attempts = 0;  // made before this one
    OutboundResult result;
    int64_t started_ms = 0;
  };

  void Run();
  uint32_t Intern(const std::string& endpoint_id);
  // Takes a message announced by ingest, the store or another node, unless it is known already
  // or (shared) this node does not deliver for its endpoint.
  void Admit(const store::DueMessage& message, int64_t now_ms);
  // Keeps the event a message came with, within kMaxFresh, for its first attempt.
  void KeepEvent(EndpointState& state, const store::DueMessage& message);
  // Admits every pending message of an endpoint from the store.
  void LoadEndpointPending(uint32_t endpoint, int64_t now_ms);
  // A message this node no longer holds: finished, gone, or not pending any more.
  void Forget(uint32_t endpoint, int64_t message_id);
  void Schedule(int64_t due_ms, Due message, uint32_t endpoint, int64_t now_ms);
  void MarkRunnable(uint32_t endpoint);
  std::shared_ptr<const store::StoredEvent> TakeFresh(EndpointState& state, int64_t message_id);
  void Prefetch(uint32_t endpoint, int64_t now_ms);
  // Sends one message; false if it turned out to need no sending (delivered, gone, parked).
  bool Launch(uint32_t endpoint, Due message, int64_t now_ms);
  void LaunchReady(uint32_t endpoint, int64_t now_ms);
  void WakeAt(int64_t when_ms, uint32_t endpoint);
  void Disable(uint32_t endpoint, const std::string& reason);
  void Publish(uint32_t endpoint);
  // Forgets a disabled or deleted endpoint's messages in memory; they wait in the store.
  void Park(uint32_t endpoint);
  void Complete(Completion& c, std::vector<store::AttemptRecord>* records, int64_t now_ms);
  void RefreshEndpoint(uint32_t endpoint);

  store::Store& store_;
  HttpClient& client_;
  const model::Clock& clock_;
  const DispatcherOptions options_;

  // Shared with other threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<store::DueMessage> inbox_;        // guarded by mu_
  std::vector<Completion> completions_;         // guarded by mu_
  std::vector<std::string> changed_endpoints_;  // guarded by mu_
  std::vector<std::string> gained_;             // guarded by mu_
  std::vector<std::string> lost_;               // guarded by mu_
  bool resync_ = false;                         // guarded by mu_
  // Shared database: finished messages (endpoint, id) whose records are durable.
  std::vector<std::pair<uint32_t, int64_t>> recorded_;        // guarded by mu_
  bool stopping_ = false;                                     // guarded by mu_
  bool halted_ = false;                                       // guarded by mu_: grace is over
  DispatcherCounts counts_;                                   // guarded by mu_
  std::unordered_map<std::string, EndpointRuntime> runtime_;  // guarded by mu_

  // Owned by the dispatcher thread.
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::vector<EndpointState> endpoints_;
  std::unordered_map<std::string, uint32_t> endpoint_index_;
  std::deque<uint32_t> runnable_;
  std::mt19937_64 rng_;
  int total_in_flight_ = 0;
  int64_t backlog_counted_ms_ = 0;
  std::atomic<int64_t> max_admitted_id_{0};
  std::vector<std::pair<uint32_t, int64_t>> finishing_;  // finished; records not yet written
  size_t fresh_count_ = 0;  // events held in EndpointState::fresh, at most kMaxFresh
  // Deliveries read ahead for the endpoint being launched (LaunchReady), by message id.
  std::unordered_map<int64_t, store::Delivery> prefetched_;

  std::thread thread_;
};

}  // namespace pushhook::delivery
