// The delivery rules of DESIGN section 4 as one single-threaded state machine: which message
// goes to which endpoint when, and what follows from each outcome. Per endpoint it keeps at most
// max_in_flight requests open, spaces them by the rate limit, stops behind an open circuit, and
// endpoints take turns, so one slow or dead endpoint never holds up another. A failed attempt is
// retried on the jittered schedule (a Retry-After of 429/503 waits at least that long, within
// the schedule's longest step) until the schedule runs out; 410 Gone, a destination the policy
// refuses, a URL that cannot be sent to, or failing for `disable_after` disables the endpoint,
// and its messages wait in the store until it is enabled again.
//
// It has no thread, lock or clock of its own: the caller (the Dispatcher) passes the time into
// every call and carries out what it asks for (SchedulerOutput: requests to send, attempt
// records to write, endpoints to disable). It reads the store synchronously for what it does
// not hold (an endpoint, a message's delivery, an endpoint's pending messages): those reads are
// the store's own business and fail into a retry a second later, and tests run it on a real
// SQLite store with a made-up clock, exactly and without sleeping.
//
// Memory stays bounded whatever the backlog (DESIGN section 7): it holds message ids and due
// times, and the events of at most kMaxFresh messages that ingest has just made (their first
// attempt needs no read); every other attempt reads its message back.
//
// Not thread safe: one thread owns it. The Store must outlive it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "delivery/circuit_breaker.h"
#include "delivery/delivery_service.h"
#include "delivery/http_client.h"
#include "delivery/retry_schedule.h"
#include "store/store.h"
#include "util/token_bucket.h"

namespace pushhook::delivery {

struct SchedulerOptions {
  RetrySchedule schedule = *RetrySchedule::Parse(RetrySchedule::kDefault);
  uint64_t seed = std::random_device{}();  // jitter; tests fix it
  CircuitOptions circuit;
  // An endpoint whose every attempt has failed for this long is disabled.
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};
  // Several nodes share the database: this one delivers only for the endpoints it holds a lease
  // on (Gained/Lost), and the same message may be announced more than once, so it keeps the ids
  // it holds per endpoint to admit each once. Off: one node, owner of every endpoint.
  bool shared = false;
  // A site with more messages than this waiting in memory is named in counts().backlogged_sites,
  // for ingest to refuse that site alone (one tenant's dead endpoints must not fill the backlog
  // that every tenant's ingest shares). 0: no limit per site.
  uint64_t max_site_backlog = 0;
};

// One message of a request to send.
struct OutgoingMessage {
  int64_t id = 0;
  int attempt = 0;  // the number of this attempt, 1-based
  std::shared_ptr<const store::StoredEvent> event;
};

// A request the scheduler wants sent: to one endpoint, as it is now. One message, or a batch:
// its messages in id order, sent as one JSON array once their batch number is durable
// (Store::AssignBatch), so that a resend after a crash carries the same members under the same
// webhook-id.
struct Send {
  uint32_t endpoint = 0;  // the scheduler's handle, given back in the Completion
  std::shared_ptr<const store::Endpoint> target;
  std::string site_id;
  std::vector<OutgoingMessage> messages;
  // A positive batch number (store::DueMessage::batch), or one message's kUnbatched or kAlone.
  int64_t batch = store::kUnbatched;
  // The attempts of its messages that were a larger batch refused as too large (413): they
  // do not use up the retry schedule.
  int splits = 0;
};

// The outcome of a Send.
struct Completion {
  uint32_t endpoint = 0;
  std::vector<OutgoingMessage> messages;  // as sent (the events may be dropped)
  int64_t started_ms = 0;
  OutboundResult result;
  int64_t batch = store::kUnbatched;  // as in the Send
  int splits = 0;                     // as in the Send
};

// An endpoint the rules took out of delivery; the caller stores the change.
struct DisableEndpoint {
  std::string endpoint_id;
  std::string site_id;
  std::string reason;
};

// A batch refused as too large (413), split in two: `first` (the batch's own number) and
// `second`. The attempt's records fix each member in its half; the halves go once those records
// are durable (Scheduler::SplitRecorded), so that no resend after a crash can carry a member of
// one half under the other's webhook-id.
struct SplitBatch {
  uint32_t endpoint = 0;
  int64_t first = 0;
  int64_t second = 0;
};

// What the caller must carry out after a call, in this order: write `records` (one transaction
// may hold them all), store `disables`, send `sends`; once `records` are written, hand each of
// `splits` back through SplitRecorded().
struct SchedulerOutput {
  std::vector<Send> sends;
  std::vector<store::AttemptRecord> records;
  std::vector<DisableEndpoint> disables;
  // Shared database: finished messages (endpoint, id) to hand back through Recorded() once their
  // records are durable; until then they stay held, so that no notice admits them again.
  std::vector<std::pair<uint32_t, int64_t>> finished;
  // Endpoints whose runtime changed (for the admin API), with their runtime now: Publish().
  std::vector<std::pair<std::string, EndpointRuntime>> runtime;
  std::vector<SplitBatch> splits;

  bool empty() const {
    return sends.empty() && records.empty() && disables.empty() && finished.empty() &&
           runtime.empty() && splits.empty();
  }
};

class Scheduler {
 public:
  Scheduler(store::Store& store, SchedulerOptions options);

  // One node: admits every pending message in the store. Sharing the database, a node loads an
  // endpoint's messages when it gains its lease, so this does nothing.
  model::Status LoadAll(int64_t now_ms);

  // A message announced by ingest, the store or another node; ignored when known already or
  // (shared) when this node does not deliver for its endpoint.
  void Admit(const store::DueMessage& message, int64_t now_ms);
  // An admin changed, enabled, disabled or deleted the endpoint: read it again.
  void EndpointChanged(const std::string& endpoint_id, int64_t now_ms);
  // Shared database: this node gained or lost the endpoint's lease.
  void Gained(const std::string& endpoint_id, int64_t now_ms);
  void Lost(const std::string& endpoint_id);
  // Shared database: notices may have been missed; reload every owned endpoint's messages.
  void Resync(int64_t now_ms);
  // Shared database: a finished message's record is durable; it may be forgotten.
  void Recorded(uint32_t endpoint, int64_t message_id);
  // The records of a split batch were written (`durable`) or not: its halves go now, or, their
  // members still the whole batch's in the store, the whole batch goes again shortly.
  void SplitRecorded(const SplitBatch& split, bool durable, int64_t now_ms);

  // The outcome of a Send: the attempt record, and a retry, a finish or a disable.
  void Complete(Completion completion, int64_t now_ms, SchedulerOutput* out);
  // Fires due timers and launches what each endpoint's limits allow now.
  void Poll(int64_t now_ms, SchedulerOutput* out);
  // Puts the runtime of each endpoint changed since the last call into `out` (once however
  // often it changed: a burst of completions costs one entry an endpoint, not one each).
  void Publish(SchedulerOutput* out);
  // When Poll has something to do next, or nullopt when only an input can bring work.
  std::optional<int64_t> NextWakeMs() const;
  // When Poll should count the backlog again, having counted it before the last input changed
  // it (counts are taken at most every 100 ms); nullopt while the counts are current. Waiting
  // for the earlier of this and NextWakeMs() keeps the gauges from staying where the last
  // burst left them.
  std::optional<int64_t> NextCountMs() const;

  int64_t max_admitted_id() const { return max_admitted_id_; }
  // Counts as of the last call; in_flight and backlog are gauges.
  const DeliveryCounts& counts() const { return counts_; }
  // The circuit's state as of `now_ms`.
  EndpointRuntime Runtime(const std::string& endpoint_id, int64_t now_ms) const;

 private:
  // A message in memory: its id, the attempts made so far as this node knows them (the
  // store's count may lag behind while the last attempt's record waits for its commit), and its
  // batch (store::DueMessage::batch). In `ready` and in timers, an entry with a batch number
  // stands for the whole batch, whose members wait in EndpointState::batches.
  struct Due {
    int64_t id = 0;
    int attempts = 0;
    int64_t batch = store::kUnbatched;
    int64_t ready_ms = 0;  // when it fell due (0: now): a batch being filled waits from its first
    int splits = 0;        // as in Send (store::DueMessage::splits)
  };
  struct Timer {
    int64_t due_ms;
    // id 0: wake the endpoint (its rate limit or circuit allows again), unless it names a
    // batch; kReloadTimer: reload its messages; kRefreshTimer: read the endpoint again.
    Due message;
    uint32_t endpoint;
    uint32_t generation;  // the endpoint's generation when set; stale once it was parked
    bool operator>(const Timer& o) const { return due_ms > o.due_ms; }
  };
  // A pending message's event and attempt count, read before it goes.
  struct ReadAhead {
    int attempts = 0;
    std::shared_ptr<const store::StoredEvent> event;
  };
  struct EndpointState {
    std::string id;
    std::deque<Due> ready;  // due now, in order
    // The members of batches fixed already (retries, and batches found pending at start), by
    // batch number, in id order: one entry in `ready` or a timer sends them all.
    std::unordered_map<int64_t, std::vector<Due>> batches;
    // The halves of split batches waiting for their records (SplitBatch), by batch number.
    std::unordered_map<int64_t, std::vector<Due>> splitting;
    int64_t fill_wake_ms = 0;  // the wake-up set for a batch being filled, 0 when none
    // The receiver refused a batch as too large (413): new batches are at most this many
    // events, doubled after kCapRelaxAfter full ones in a row are taken (one event too large on
    // its own must not pin the endpoint to batches of one), and forgotten when the endpoint is
    // read again. 0: its max_events.
    size_t batch_cap = 0;
    int taken_at_cap = 0;     // full batches taken since the cap was last set
    uint32_t generation = 0;  // bumped each time the endpoint is parked (disabled)
    int in_flight = 0;
    int max_in_flight = 16;
    size_t timed = 0;  // messages waiting in timers_ for their time (not batches, not wake-ups)
    std::unordered_set<int64_t> sending;          // messages in flight alone (Launch)
    std::unordered_set<int64_t> batches_sending;  // batches in flight (LaunchBatch)
    // The attempts of redelivered messages made in the last kRedeliveredKeptMs, by id, and the
    // order they came in: a message redelivered has a second entry, and an older one that comes
    // up before this attempt's record is committed would read the store's count from before
    // it, and repeat the attempt.
    std::unordered_map<int64_t, int> redelivered_attempts;
    std::deque<std::pair<int64_t, int64_t>> redelivered_order;  // (at, id)
    bool enabled = true;  // delivering: enabled by its owner, and (shared) this node's lease
    bool owned = true;    // shared database: this node holds the endpoint's lease
    // Shared database: ids due, scheduled or in flight, so that each is admitted once.
    std::unordered_set<int64_t> held;
    // The endpoint as last read, and messages just made by ingest with their events.
    std::shared_ptr<const store::Endpoint> endpoint;
    std::unordered_map<int64_t, std::shared_ptr<const store::StoredEvent>> fresh;
    // Pending messages read from the store ahead of their turn (Prefetch), by id.
    std::unordered_map<int64_t, ReadAhead> read_ahead;
    bool queued = false;   // in runnable_
    bool changed = false;  // in changed_
    std::string site_id;
    CircuitBreaker circuit;
    util::TokenBucket bucket;
    int64_t failing_since_ms = 0;  // 0 while the last attempt succeeded
  };

  uint32_t Intern(const std::string& endpoint_id, int64_t now_ms);
  void KeepEvent(EndpointState& state, const store::DueMessage& message);
  // Whether an entry for `message_id` made before `attempts` were counted stands for an attempt
  // a redelivery made since (redelivered_attempts).
  static bool Superseded(EndpointState& state, int64_t message_id, int attempts, int64_t now_ms);
  void LoadEndpointPending(uint32_t endpoint, int64_t now_ms);
  void Forget(uint32_t endpoint, int64_t message_id);
  void Schedule(int64_t due_ms, Due message, uint32_t endpoint, int64_t now_ms);
  void MarkRunnable(uint32_t endpoint);
  void Refresh(uint32_t endpoint, int64_t now_ms);
  void Park(uint32_t endpoint);
  void DropReadAhead(EndpointState& state);
  void Prefetch(uint32_t endpoint, int64_t now_ms);
  void LaunchReady(uint32_t endpoint, int64_t now_ms, SchedulerOutput* out);
  // Sends one message, unless it turned out to need no sending (delivered, gone, parked).
  void Launch(uint32_t endpoint, Due message, int64_t now_ms, SchedulerOutput* out);
  // Whether a message may go in a new batch: one never sent. A message sent alone before its
  // endpoint turned batching on keeps going alone, under the webhook-id it was first sent with
  // (DESIGN 4: the same on every retry), or a receiver would store it twice.
  static bool Batchable(const Due& due) {
    return due.batch == store::kUnbatched && due.attempts == 0;
  }
  // Forms a new batch from the unbatched messages at the front of `ready` when it is full, or
  // its first message has waited max_wait_ms, or something else waits behind it; true when it
  // took them.
  bool FillBatch(uint32_t endpoint, int64_t now_ms, SchedulerOutput* out);
  // Sends the members of batch `batch` that still need sending as one request. `forming`: a new
  // batch (FillBatch), in which each event goes at most once (DESIGN 1); a second message of an
  // event in it (a replay's) waits in `ready` for the next batch.
  void LaunchBatch(uint32_t endpoint, int64_t batch, std::vector<Due> members, int64_t now_ms,
                   SchedulerOutput* out, bool forming = false);
  // Puts a batch's members back to wait for `due_ms`, merged with any already waiting.
  void ScheduleBatch(uint32_t endpoint, int64_t batch, std::vector<Due> members, int64_t due_ms,
                     int64_t now_ms);
  // The accounting shared by every request that goes: limits, circuit, counts.
  Send& StartSend(uint32_t endpoint, int64_t now_ms, SchedulerOutput* out);
  void TakeEndpoint(EndpointState& state, store::Delivery& delivery);
  std::shared_ptr<const store::StoredEvent> TakeInMemory(EndpointState& state, int64_t message_id,
                                                         int* attempts);
  void WakeAt(int64_t when_ms, uint32_t endpoint);
  void Disable(uint32_t endpoint, std::string reason, SchedulerOutput* out);
  // Notes that the endpoint's runtime changed, for the next Publish().
  void Changed(uint32_t endpoint);
  void CountBacklog(int64_t now_ms);
  // Puts `message` in timers_ for `due_ms`, counted in its endpoint's `timed`.
  void SetTimer(int64_t due_ms, Due message, uint32_t endpoint);

  store::Store& store_;
  const SchedulerOptions options_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::vector<EndpointState> endpoints_;
  std::unordered_map<std::string, uint32_t> endpoint_index_;
  std::deque<uint32_t> runnable_;
  std::vector<uint32_t> changed_;  // endpoints whose runtime the next Publish() reports
  std::mt19937_64 rng_;
  int64_t max_admitted_id_ = 0;
  int64_t backlog_counted_ms_ = INT64_MIN / 2;  // long ago, without overflowing a difference
  // A call since the last count may have changed it (NextCountMs).
  bool backlog_stale_ = false;
  size_t fresh_count_ = 0;       // events held in EndpointState::fresh, at most kMaxFresh
  size_t read_ahead_count_ = 0;  // held in EndpointState::read_ahead, at most kMaxReadAhead
  DeliveryCounts counts_;
};

}  // namespace pushhook::delivery
