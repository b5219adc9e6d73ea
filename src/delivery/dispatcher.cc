#include "delivery/dispatcher.h"

#include <pthread.h>

#include <utility>

#include "model/payload.h"
#include "model/random.h"
#include "model/signature.h"
#include "util/log.h"

namespace pushhook::delivery {
namespace {

constexpr int kPendingPage = 10'000;
// The most deliveries read in one call when a batch of ready messages is about to go.
constexpr size_t kPrefetchMax = 256;
// A timer's message id that means "load the endpoint's pending messages again".
constexpr int64_t kReloadTimer = -1;
// Events kept in memory for first attempts (about 0.5 KiB each). Beyond it, and for every
// message loaded from the store, an attempt reads its message, event and endpoint back: memory
// stays bounded whatever the backlog (DESIGN section 7).
constexpr size_t kMaxFresh = 20'000;

bool IsSuccess(int status) { return status >= 200 && status < 300; }

// The headers of DESIGN section 4: content type, user agent and the Standard Webhooks trio,
// signed with the endpoint's secret and, while it is still valid, its previous one.
void SignRequest(OutboundRequest& request, const store::Endpoint& endpoint,
                 const std::string& msg_id, int64_t now_ms) {
  const int64_t timestamp = now_ms / 1000;
  std::vector<std::string> keys;
  if (auto key = model::DecodeSecret(endpoint.secret)) keys.push_back(std::move(*key));
  if (!endpoint.previous_secret.empty() && endpoint.previous_secret_expires_ms > now_ms) {
    if (auto key = model::DecodeSecret(endpoint.previous_secret)) keys.push_back(std::move(*key));
  }
  request.headers = {
      {"content-type", "application/json"},
      {"user-agent", "pushhook/" PUSHHOOK_VERSION},
      {"webhook-id", msg_id},
      {"webhook-timestamp", std::to_string(timestamp)},
      {"webhook-signature", model::SignatureHeader(keys, msg_id, timestamp, request.body)},
  };
}

}  // namespace

Dispatcher::Dispatcher(store::Store& store, HttpClient& client, const model::Clock& clock,
                       DispatcherOptions options)
    : store_(store),
      client_(client),
      clock_(clock),
      options_(std::move(options)),
      rng_(options_.seed) {}

Dispatcher::~Dispatcher() { Stop(std::chrono::milliseconds(0)); }

model::Status Dispatcher::Start() {
  const int64_t now = clock_.NowMs();
  int64_t after = 0;
  // Sharing the database, this node loads an endpoint's messages when it gains its lease.
  while (!options_.shared) {
    auto page = store_.LoadPending(after, kPendingPage);
    if (!page.ok()) return page.status();
    for (const store::DueMessage& m : page.value()) {
      Admit(m, now);
      after = m.id;
    }
    if (page->size() < static_cast<size_t>(kPendingPage)) break;
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ph-dispatch");
    Run();
  });
  return model::Status::Ok();
}

void Dispatcher::Enqueue(std::vector<store::DueMessage> messages) {
  {
    std::lock_guard lock(mu_);
    if (inbox_.empty()) {
      inbox_ = std::move(messages);
    } else {
      inbox_.insert(inbox_.end(), std::make_move_iterator(messages.begin()),
                    std::make_move_iterator(messages.end()));
    }
  }
  cv_.notify_all();
}

void Dispatcher::EndpointChanged(const std::string& endpoint_id) {
  {
    std::lock_guard lock(mu_);
    changed_endpoints_.push_back(endpoint_id);
  }
  cv_.notify_all();
}

void Dispatcher::SetOwnership(std::vector<std::string> gained, std::vector<std::string> lost) {
  {
    std::lock_guard lock(mu_);
    gained_.insert(gained_.end(), std::make_move_iterator(gained.begin()),
                   std::make_move_iterator(gained.end()));
    lost_.insert(lost_.end(), std::make_move_iterator(lost.begin()),
                 std::make_move_iterator(lost.end()));
  }
  cv_.notify_all();
}

void Dispatcher::Resync() {
  {
    std::lock_guard lock(mu_);
    resync_ = true;
  }
  cv_.notify_all();
}

void Dispatcher::Stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  {
    // Wait for requests in flight to finish, up to the grace period.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, grace, [this] { return counts_.in_flight == 0; });
    halted_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

DispatcherCounts Dispatcher::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

uint32_t Dispatcher::Intern(const std::string& endpoint_id) {
  auto [it, inserted] =
      endpoint_index_.try_emplace(endpoint_id, static_cast<uint32_t>(endpoints_.size()));
  if (inserted) {
    endpoints_.emplace_back();
    endpoints_.back().id = endpoint_id;
    endpoints_.back().circuit = CircuitBreaker(options_.circuit);
    endpoints_.back().owned = !options_.shared;
    RefreshEndpoint(it->second);
  }
  return it->second;
}

void Dispatcher::RefreshEndpoint(uint32_t index) {
  EndpointState& state = endpoints_[index];
  auto endpoint = store_.GetEndpointById(state.id);
  if (!endpoint.ok()) {
    // Deleted: its messages were marked failed in the store; forget them here.
    Park(index);
    state.endpoint.reset();
    return;
  }
  state.endpoint = *endpoint;
  state.max_in_flight = std::max(1, endpoint->max_in_flight);
  state.bucket.SetRate(endpoint->rate_limit);
  state.site_id = endpoint->site_id;
  if (!endpoint->enabled || !state.owned) {
    if (state.enabled) Park(index);
    return;
  }
  if (!state.enabled) {
    // Enabled again by its owner, or this node took its lease: a fresh start, with every
    // message that waited in the store.
    state.enabled = true;
    state.circuit = CircuitBreaker(options_.circuit);
    state.failing_since_ms = 0;
    LoadEndpointPending(index, clock_.NowMs());
  }
  MarkRunnable(index);
}

void Dispatcher::LoadEndpointPending(uint32_t index, int64_t now_ms) {
  int64_t after = 0;
  for (;;) {
    auto page = store_.LoadPendingForEndpoint(endpoints_[index].id, after, kPendingPage);
    if (!page.ok()) {
      // The database is busy or away: try again in a second, or the messages would wait for
      // the next restart.
      util::Log(util::LogLevel::kError, "cannot load an endpoint's waiting messages",
                {{"endpoint_id", endpoints_[index].id}, {"error", page.status().message()}});
      timers_.push(Timer{now_ms + 1000, kReloadTimer, index, endpoints_[index].generation, 0});
      break;
    }
    for (const store::DueMessage& m : *page) {
      Admit(m, now_ms);
      after = m.id;
    }
    if (page->size() < static_cast<size_t>(kPendingPage)) break;
  }
}

void Dispatcher::Admit(const store::DueMessage& m, int64_t now_ms) {
  const uint32_t index = Intern(m.endpoint_id);
  EndpointState& state = endpoints_[index];
  if (options_.shared) {
    // Not this node's to deliver: the store keeps it for its owner.
    if (!state.enabled) return;
    if (!state.held.insert(m.id).second) {
      // Here already: a notice of another node's transaction can name this node's own new
      // messages before its ingest hands them over. Keep the event that comes now, so that the
      // attempt need not read it back (Forget drops it with the message).
      KeepEvent(state, m);
      return;
    }
  }
  KeepEvent(state, m);
  if (m.id > max_admitted_id_.load(std::memory_order_relaxed)) {
    max_admitted_id_.store(m.id, std::memory_order_relaxed);
  }
  Schedule(std::max(m.due_ms, now_ms), Due{m.id, m.attempts}, index, now_ms);
}

void Dispatcher::KeepEvent(EndpointState& state, const store::DueMessage& m) {
  if (m.stored && fresh_count_ < kMaxFresh && state.fresh.emplace(m.id, m.stored).second) {
    ++fresh_count_;
  }
}

void Dispatcher::Forget(uint32_t index, int64_t message_id) {
  if (!options_.shared) return;
  EndpointState& state = endpoints_[index];
  state.held.erase(message_id);
  fresh_count_ -= state.fresh.erase(message_id);
}

void Dispatcher::Park(uint32_t index) {
  // The endpoint's messages stay pending in the store, which is where they come back from when
  // it is enabled; memory keeps nothing for it. Timers set before now are recognised as stale by
  // their generation.
  EndpointState& state = endpoints_[index];
  state.enabled = false;
  ++state.generation;
  state.ready.clear();
  state.held.clear();
  fresh_count_ -= state.fresh.size();
  state.fresh.clear();
}

void Dispatcher::Schedule(int64_t due_ms, Due message, uint32_t endpoint, int64_t now_ms) {
  if (due_ms <= now_ms) {
    endpoints_[endpoint].ready.push_back(message);
    MarkRunnable(endpoint);
  } else {
    timers_.push(
        Timer{due_ms, message.id, endpoint, endpoints_[endpoint].generation, message.attempts});
  }
}

void Dispatcher::MarkRunnable(uint32_t endpoint) {
  EndpointState& state = endpoints_[endpoint];
  if (!state.queued && !state.ready.empty()) {
    state.queued = true;
    runnable_.push_back(endpoint);
  }
}

void Dispatcher::Run() {
  std::vector<store::DueMessage> inbox;
  std::vector<Completion> completions;
  std::vector<std::string> changed;
  std::vector<std::string> gained;
  std::vector<std::string> lost;
  std::vector<std::pair<uint32_t, int64_t>> recorded;
  std::vector<store::AttemptRecord> records;
  for (;;) {
    bool stopping;
    bool halted;
    bool resync;
    {
      std::unique_lock lock(mu_);
      const auto has_work = [&] {
        return halted_ || !inbox_.empty() || !completions_.empty() || !changed_endpoints_.empty() ||
               !gained_.empty() || !lost_.empty() || resync_ || !recorded_.empty() ||
               (!stopping_ && !runnable_.empty());
      };
      if (!has_work()) {
        if (!timers_.empty() && !stopping_) {
          const int64_t wait = timers_.top().due_ms - clock_.NowMs();
          if (wait > 0) cv_.wait_for(lock, std::chrono::milliseconds(wait), has_work);
        } else {
          cv_.wait(lock, has_work);
        }
      }
      halted = halted_;
      inbox.swap(inbox_);
      completions.swap(completions_);
      changed.swap(changed_endpoints_);
      gained.swap(gained_);
      lost.swap(lost_);
      resync = std::exchange(resync_, false);
      recorded.swap(recorded_);
      stopping = stopping_;
    }
    const int64_t now = clock_.NowMs();
    for (const std::string& id : lost) {
      const uint32_t index = Intern(id);
      endpoints_[index].owned = false;
      if (endpoints_[index].enabled) Park(index);
    }
    for (const std::string& id : gained) {
      const uint32_t index = Intern(id);
      endpoints_[index].owned = true;
      RefreshEndpoint(index);
    }
    if (resync) {
      for (uint32_t index = 0; index < endpoints_.size(); ++index) {
        if (endpoints_[index].enabled) LoadEndpointPending(index, now);
      }
    }
    lost.clear();
    gained.clear();
    for (const auto& [index, id] : recorded) Forget(index, id);
    recorded.clear();
    for (const std::string& id : changed) {
      const auto it = endpoint_index_.find(id);
      if (it != endpoint_index_.end()) RefreshEndpoint(it->second);
    }
    changed.clear();
    for (const store::DueMessage& m : inbox) Admit(m, now);
    inbox.clear();
    for (Completion& c : completions) Complete(c, &records, now);
    if (!records.empty()) {
      // Shared database: a finished message stays held until its record is durable, or a
      // notice or the backstop could read it as pending meanwhile and send it again.
      std::function<void(model::Status)> recorded = [](model::Status) {};
      if (options_.shared && !finishing_.empty()) {
        recorded = [this, finished = std::move(finishing_)](model::Status) mutable {
          {
            std::lock_guard lock(mu_);
            recorded_.insert(recorded_.end(), finished.begin(), finished.end());
          }
          cv_.notify_all();
        };
      }
      finishing_.clear();
      store_.RecordAttempts(std::move(records), std::move(recorded));
      records.clear();
    }
    {
      std::lock_guard lock(mu_);
      counts_.in_flight -= completions.size();
    }
    if (!completions.empty()) cv_.notify_all();  // Stop() may be waiting for in_flight == 0
    completions.clear();
    // After the grace period: what finished is recorded above; what is still out stays pending.
    if (halted) return;
    while (!timers_.empty() && timers_.top().due_ms <= now) {
      const Timer t = timers_.top();
      timers_.pop();
      EndpointState& target = endpoints_[t.endpoint];
      if (t.generation != target.generation) continue;  // set before the endpoint was parked
      if (t.message_id == kReloadTimer) {
        LoadEndpointPending(t.endpoint, now);
        continue;
      }
      if (t.message_id != 0) target.ready.push_back(Due{t.message_id, t.attempts});
      MarkRunnable(t.endpoint);
    }
    if (stopping) continue;
    // Endpoints take turns: each runnable endpoint launches what its capacity, rate limit and
    // circuit allow; completions and wake-up timers put it back in line.
    for (size_t n = runnable_.size(); n > 0; --n) {
      const uint32_t index = runnable_.front();
      runnable_.pop_front();
      endpoints_[index].queued = false;
      LaunchReady(index, now);
    }
    // The backlog is for back-pressure and metrics: a tenth of a second stale is fine, and
    // counting every endpoint's queues on every turn would not be.
    if (now - backlog_counted_ms_ >= 100) {
      backlog_counted_ms_ = now;
      size_t waiting = 0;
      uint64_t open = 0;
      for (const EndpointState& e : endpoints_) {
        waiting += e.ready.size();
        open += e.circuit.state(now) == CircuitBreaker::State::kOpen;
      }
      std::lock_guard lock(mu_);
      counts_.scheduled = timers_.size();
      counts_.backlog = timers_.size() + waiting + static_cast<uint64_t>(total_in_flight_);
      counts_.open_circuits = open;
    }
  }
}

// Reads, in one call, the deliveries of the ready messages about to go that are not in memory
// (a node delivering messages another node stored, retries): one round trip for the batch
// instead of one per message.
void Dispatcher::Prefetch(uint32_t index, int64_t now_ms) {
  EndpointState& state = endpoints_[index];
  prefetched_.clear();
  if (!state.enabled || state.ready.size() < 2 || !state.circuit.CanRequest(now_ms) ||
      state.circuit.state(now_ms) != CircuitBreaker::State::kClosed ||
      state.bucket.NextTokenMs(now_ms) > now_ms) {
    return;
  }
  const size_t room = static_cast<size_t>(std::max(0, state.max_in_flight - state.in_flight));
  std::vector<int64_t> ids;
  // The messages that will go now are the first `room` ones, those in memory among them.
  const size_t going = std::min({state.ready.size(), room, kPrefetchMax});
  for (size_t i = 0; i < going; ++i) {
    if (!state.fresh.contains(state.ready[i].id)) ids.push_back(state.ready[i].id);
  }
  if (ids.size() < 2) return;
  auto loaded = store_.LoadDeliveries(ids);
  if (!loaded.ok()) return;  // each Launch reads its own, and handles the error
  for (store::Delivery& d : *loaded) prefetched_.emplace(d.message_id, std::move(d));
}

void Dispatcher::LaunchReady(uint32_t index, int64_t now_ms) {
  Prefetch(index, now_ms);
  EndpointState& state = endpoints_[index];
  while (!state.ready.empty() && state.in_flight < state.max_in_flight) {
    if (!state.enabled) {
      state.ready.clear();  // they wait in the store
      break;
    }
    if (const int64_t next = state.bucket.NextTokenMs(now_ms); next > now_ms) {
      WakeAt(next, index);
      break;
    }
    if (!state.circuit.CanRequest(now_ms)) {
      // Open: wake when the probe may go. Half-open with the probe out: its completion wakes us.
      if (state.circuit.state(now_ms) == CircuitBreaker::State::kOpen) {
        WakeAt(state.circuit.open_until_ms(), index);
      }
      break;
    }
    const Due due = state.ready.front();
    state.ready.pop_front();
    Launch(index, due, now_ms);
  }
}

void Dispatcher::WakeAt(int64_t when_ms, uint32_t endpoint) {
  timers_.push(Timer{when_ms, 0, endpoint, endpoints_[endpoint].generation, 0});
}

// The event of a first attempt of a message ingest just made, from memory; null to read the
// message from the store.
std::shared_ptr<const store::StoredEvent> Dispatcher::TakeFresh(EndpointState& state,
                                                                int64_t message_id) {
  const auto it = state.fresh.find(message_id);
  if (it == state.fresh.end()) return nullptr;
  std::shared_ptr<const store::StoredEvent> stored = std::move(it->second);
  state.fresh.erase(it);
  --fresh_count_;
  if (!state.endpoint) return nullptr;
  return stored;
}

bool Dispatcher::Launch(uint32_t endpoint, Due message, int64_t now_ms) {
  const int64_t message_id = message.id;
  EndpointState& state = endpoints_[endpoint];
  // From memory (just ingested: nothing copied), read ahead with others (Prefetch), or read now.
  std::shared_ptr<const store::StoredEvent> fresh = TakeFresh(state, message_id);
  std::optional<store::Delivery> loaded;
  int attempts = message.attempts;
  if (fresh == nullptr) {
    const auto prefetched = prefetched_.find(message_id);
    model::StatusOr<store::Delivery> delivery =
        prefetched != prefetched_.end()
            ? model::StatusOr<store::Delivery>(std::move(prefetched->second))
            : store_.LoadDelivery(message_id);
    if (prefetched != prefetched_.end()) prefetched_.erase(prefetched);
    if (!delivery.ok()) {
      // Gone (its endpoint was deleted, or it was purged) is final; anything else is the
      // database being busy, and the message is tried again shortly.
      if (delivery.status().code() != model::StatusCode::kNotFound) {
        timers_.push(
            Timer{now_ms + 1000, message_id, endpoint, state.generation, message.attempts});
      } else {
        Forget(endpoint, message_id);
      }
      return false;
    }
    if (delivery->status != store::MessageStatus::kPending) {
      Forget(endpoint, message_id);  // finished meanwhile (by this node, or the last owner)
      return false;
    }
    loaded = std::move(delivery.value());
    state.endpoint = loaded->endpoint;  // read just now: the freshest there is
    state.site_id = loaded->site_id;
    // This node's count of a message it retries is ahead of the store's until the last
    // attempt's record is committed: numbering from the store's would repeat an attempt number.
    attempts = std::max(loaded->attempts, message.attempts);
  } else {
    state.site_id = fresh->site_id;
  }
  const store::Endpoint& target = *state.endpoint;
  const model::Event& event = fresh != nullptr ? fresh->event : loaded->event;
  state.max_in_flight = std::max(1, target.max_in_flight);
  state.bucket.SetRate(target.rate_limit);
  if (!target.enabled) {
    Park(endpoint);
    return false;
  }
  state.circuit.AllowRequest(now_ms);
  state.bucket.TryTake(now_ms);

  OutboundRequest request;
  request.url = target.url;
  request.timeout = options_.timeout;
  request.connect_timeout = options_.connect_timeout;
  request.body = model::Payload(event, target.format, state.site_id);
  SignRequest(request, target, store::FormatMessageId(store_.instance_id(), message_id), now_ms);
  ++state.in_flight;
  ++total_in_flight_;
  {
    std::lock_guard lock(mu_);
    ++counts_.in_flight;
    ++counts_.attempts;
  }
  Publish(endpoint);
  client_.Send(std::move(request), [this, endpoint, message_id, attempts,
                                    now_ms](OutboundResult result) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      // Only the first of a burst wakes the thread; it takes them all at once.
      wake = completions_.empty();
      completions_.push_back(Completion{endpoint, message_id, attempts, std::move(result), now_ms});
    }
    if (wake) cv_.notify_all();
  });
  return true;
}

void Dispatcher::Disable(uint32_t index, const std::string& reason) {
  EndpointState& state = endpoints_[index];
  Park(index);
  store::EndpointPatch patch;
  patch.enabled = false;
  auto updated = store_.UpdateEndpoint(state.site_id, state.id, patch, clock_.NowMs());
  util::Log(util::LogLevel::kWarn, "endpoint disabled",
            {{"endpoint_id", state.id},
             {"reason", reason},
             {"stored", updated.ok() ? std::string_view("yes") : updated.status().message()}});
}

void Dispatcher::Publish(uint32_t index) {
  const EndpointState& state = endpoints_[index];
  std::lock_guard lock(mu_);
  EndpointRuntime& runtime = runtime_[state.id];
  runtime.circuit_opened = state.circuit.state(0) != CircuitBreaker::State::kClosed;
  runtime.circuit_open_until_ms = state.circuit.open_until_ms();
  runtime.in_flight = state.in_flight;
  runtime.queued = state.ready.size();
}

EndpointRuntime Dispatcher::Runtime(const std::string& endpoint_id) const {
  EndpointRuntime runtime;
  {
    std::lock_guard lock(mu_);
    auto it = runtime_.find(endpoint_id);
    if (it != runtime_.end()) runtime = it->second;
  }
  // The circuit's state is a function of time: name it as of now, not as of the last change.
  if (runtime.circuit_opened) {
    runtime.circuit = clock_.NowMs() < runtime.circuit_open_until_ms ? "open" : "half_open";
  }
  return runtime;
}

void Dispatcher::SendTest(const store::Endpoint& endpoint, const std::string& site_id,
                          std::function<void(OutboundResult)> done) {
  model::Event sample;
  sample.action = model::Action::kClick;
  sample.cookie_id = "00000000-0000-4000-8000-000000000000";
  sample.cid = "test";
  sample.notification_title = "pushhook test event";
  sample.reference_id = "test";
  sample.utm_source = "pushhook";
  sample.clicked_button = 1;
  sample.event_id = "evt_test_" + model::RandomToken(12);
  const int64_t now_ms = clock_.NowMs();
  sample.occurred_at_ms = now_ms;
  OutboundRequest request;
  request.url = endpoint.url;
  request.timeout = options_.timeout;
  request.connect_timeout = options_.connect_timeout;
  request.body = model::Payload(sample, endpoint.format, site_id);
  SignRequest(request, endpoint, "msg_test_" + model::RandomToken(16), now_ms);
  client_.Send(std::move(request), std::move(done));
}

void Dispatcher::Complete(Completion& c, std::vector<store::AttemptRecord>* records,
                          int64_t now_ms) {
  const OutboundResult& r = c.result;
  const uint32_t index = c.endpoint;
  EndpointState& state = endpoints_[index];
  --state.in_flight;
  --total_in_flight_;
  MarkRunnable(index);

  store::AttemptRecord record;
  record.message_id = c.message_id;
  record.attempt = c.attempts + 1;
  record.at_ms = c.started_ms;
  record.status_code = r.status;
  record.latency_us = r.latency.count();
  record.error = r.error;
  record.response_prefix = r.body_prefix;
  {
    std::lock_guard lock(mu_);
    const double seconds = static_cast<double>(r.latency.count()) / 1e6;
    size_t bucket = 0;
    while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
    ++counts_.latency_counts[bucket];
    counts_.latency_sum_seconds += seconds;
  }
  if (IsSuccess(r.status)) {
    state.circuit.OnSuccess();
    state.failing_since_ms = 0;
    record.new_status = store::MessageStatus::kDelivered;
    record.next_attempt_ms = now_ms;  // a finished message's time of finishing, for retention
    finishing_.emplace_back(index, c.message_id);
    std::lock_guard lock(mu_);
    ++counts_.delivered;
  } else {
    if (record.error.empty()) record.error = "HTTP " + std::to_string(r.status);
    state.circuit.OnFailure(now_ms);
    if (state.failing_since_ms == 0) state.failing_since_ms = c.started_ms;
    if (r.status == 410) {
      // Gone: the receiver asks for no more. The message waits for the endpoint to be enabled.
      Disable(index, "the receiver answered 410 Gone");
    } else if (state.enabled && now_ms - state.failing_since_ms >= options_.disable_after.count()) {
      Disable(index, "every attempt failed for " +
                         std::to_string(options_.disable_after.count() / 1000) + " s");
    }
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto delay = options_.schedule.DelayAfter(record.attempt, uniform(rng_));
    if (delay && (r.status == 429 || r.status == 503) && !r.retry_after.empty()) {
      // The receiver asked for a pause: wait at least that long, within the schedule's range.
      if (auto asked = ParseRetryAfter(r.retry_after, now_ms)) {
        *delay = std::max(*delay, std::min(*asked, options_.schedule.longest()));
      }
    }
    if (!state.enabled) {
      // A disabled endpoint's messages wait without using up their retries' schedule.
      record.new_status = store::MessageStatus::kPending;
      record.next_attempt_ms = now_ms;
      std::lock_guard lock(mu_);
      ++counts_.endpoint_waits;
    } else if (delay) {
      record.new_status = store::MessageStatus::kPending;
      record.next_attempt_ms = now_ms + delay->count();
      Schedule(record.next_attempt_ms, Due{c.message_id, record.attempt}, index, now_ms);
      std::lock_guard lock(mu_);
      ++counts_.retries;
    } else {
      record.new_status = store::MessageStatus::kFailed;
      record.next_attempt_ms = now_ms;
      finishing_.emplace_back(index, c.message_id);
      std::lock_guard lock(mu_);
      ++counts_.failed;
    }
  }
  records->push_back(std::move(record));
  Publish(index);
}

}  // namespace pushhook::delivery
