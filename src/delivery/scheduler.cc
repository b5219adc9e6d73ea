#include "delivery/scheduler.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "util/log.h"

namespace pushhook::delivery {
namespace {

constexpr int kPendingPage = 10'000;
// The most deliveries read in one call when messages about to go are not in memory, how far
// into the ready queue it looks for them, and how many may wait in memory over all endpoints.
constexpr size_t kPrefetchMax = 256;
constexpr size_t kPrefetchScan = 4 * kPrefetchMax;
constexpr size_t kMaxReadAhead = 4096;
// Timers' message ids that mean "load the endpoint's pending messages again" and "read the
// endpoint again".
constexpr int64_t kReloadTimer = -1;
constexpr int64_t kRefreshTimer = -2;
// Events kept in memory for first attempts (about 0.5 KiB each). Beyond it, and for every
// message loaded from the store, an attempt reads its message, event and endpoint back, which
// costs the dispatcher about as much again per webhook as the rest of its work: at 20,000, a
// burst that ingest stored faster than delivery went (figure 3) was delivered a fifth slower.
// The price is memory: serve's RSS with a million messages waiting for a dead endpoint (figure
// 5) is 117 MiB, against 72 MiB at 20,000.
constexpr size_t kMaxFresh = 100'000;
// How long a read the database could not answer waits before it is tried again.
constexpr int64_t kStoreRetryMs = 1000;
// How long a redelivered message's attempt is remembered (EndpointState::redelivered_attempts):
// far longer than its record takes to commit.
constexpr int64_t kRedeliveredKeptMs = 60'000;
// Full batches taken in a row at a learned cap before it doubles (Scheduler::EndpointState).
constexpr int kCapRelaxAfter = 64;
// The backlog is for back-pressure and metrics: a tenth of a second stale is fine, and counting
// every endpoint's queues on every call would not be.
constexpr int64_t kBacklogEveryMs = 100;

bool IsSuccess(int status) { return status >= 200 && status < 300; }

// A delivery read from the store, as the event its attempt sends (it gives up its event and
// site id).
std::shared_ptr<const store::StoredEvent> EventOf(store::Delivery& d) {
  return std::make_shared<const store::StoredEvent>(
      store::StoredEvent{std::move(d.event), std::move(d.site_id)});
}

}  // namespace

Scheduler::Scheduler(store::Store& store, SchedulerOptions options)
    : store_(store), options_(std::move(options)), rng_(options_.seed) {}

model::Status Scheduler::LoadAll(int64_t now_ms) {
  if (options_.shared) return model::Status::Ok();
  auto endpoints = store_.ListPendingEndpoints();
  if (!endpoints.ok()) return endpoints.status();
  for (const std::string& endpoint_id : *endpoints) {
    const uint32_t index = Intern(endpoint_id, now_ms);
    // A disabled endpoint's messages wait in the store (Refresh parked it).
    if (endpoints_[index].enabled) LoadEndpointPending(index, now_ms);
  }
  return model::Status::Ok();
}

uint32_t Scheduler::Intern(const std::string& endpoint_id, int64_t now_ms) {
  auto [it, inserted] =
      endpoint_index_.try_emplace(endpoint_id, static_cast<uint32_t>(endpoints_.size()));
  if (inserted) {
    EndpointState& state = endpoints_.emplace_back();
    state.id = endpoint_id;
    state.circuit = CircuitBreaker(options_.circuit);
    state.owned = !options_.shared;
    Refresh(it->second, now_ms);
  }
  return it->second;
}

void Scheduler::Refresh(uint32_t index, int64_t now_ms) {
  EndpointState& state = endpoints_[index];
  auto endpoint = store_.GetEndpointById(state.id);
  if (!endpoint.ok() && endpoint.status().code() == model::StatusCode::kNotFound) {
    // Deleted: its messages were marked failed in the store; forget them here.
    Park(index);
    state.endpoint.reset();
    return;
  }
  if (!endpoint.ok()) {
    // The database is busy or away: read it again shortly. Meanwhile an endpoint read before
    // delivers as it was, and one never read waits, its messages in the store.
    util::Log(util::LogLevel::kError, "cannot read an endpoint",
              {{"endpoint_id", state.id}, {"error", endpoint.status().message()}});
    if (state.endpoint == nullptr) Park(index);
    SetTimer(now_ms + kStoreRetryMs, Due{.id = kRefreshTimer}, index);
    return;
  }
  if (state.endpoint != nullptr && state.endpoint->url != endpoint->url) {
    // A new URL is a new receiver: what the old one's failures taught (an open circuit, how
    // long every attempt has failed) is not about it.
    state.circuit = CircuitBreaker(options_.circuit);
    state.failing_since_ms = 0;
  }
  state.max_in_flight = std::max(1, endpoint->max_in_flight);
  state.bucket.SetRate(endpoint->rate_limit);
  state.site_id = endpoint->site_id;
  state.batch_cap = 0;  // its URL or its batch may have changed: learned again if need be
  state.taken_at_cap = 0;
  const bool enabled = endpoint->enabled;
  state.endpoint = std::make_shared<const store::Endpoint>(std::move(endpoint.value()));
  if (!enabled || !state.owned) {
    if (state.enabled) Park(index);
    return;
  }
  if (!state.enabled) {
    // Enabled again by its owner, or this node took its lease: a fresh start, with every
    // message that waited in the store.
    state.enabled = true;
    state.circuit = CircuitBreaker(options_.circuit);
    state.failing_since_ms = 0;
    LoadEndpointPending(index, now_ms);
  }
  MarkRunnable(index);
}

void Scheduler::LoadEndpointPending(uint32_t index, int64_t now_ms) {
  int64_t after = 0;
  for (;;) {
    auto page = store_.LoadPendingForEndpoint(endpoints_[index].id, after, kPendingPage);
    if (!page.ok()) {
      // The database is busy or away: try again shortly, or the messages would wait for the
      // next restart.
      util::Log(util::LogLevel::kError, "cannot load an endpoint's waiting messages",
                {{"endpoint_id", endpoints_[index].id}, {"error", page.status().message()}});
      SetTimer(now_ms + kStoreRetryMs, Due{.id = kReloadTimer}, index);
      return;
    }
    for (const store::DueMessage& m : *page) {
      Admit(m, now_ms);
      after = m.id;
    }
    if (page->size() < static_cast<size_t>(kPendingPage)) return;
  }
}

void Scheduler::Admit(const store::DueMessage& m, int64_t now_ms) {
  backlog_stale_ = true;
  const uint32_t index = Intern(m.endpoint_id, now_ms);
  EndpointState& state = endpoints_[index];
  // Disabled, or (shared) not this node's to deliver: the store keeps it, for when the
  // endpoint is enabled again or for its owner. Memory keeps nothing for it.
  if (!state.enabled) return;
  // A half of a split batch waiting for its records: read again from the store (a reload),
  // it is already here, and goes with its half.
  if (m.batch > 0 && state.splitting.contains(m.batch)) return;
  if (options_.shared) {
    if (!state.held.insert(m.id).second) {
      // Here already: a notice of another node's transaction can name this node's own new
      // messages before its ingest hands them over. Keep the event that comes now, so that the
      // attempt need not read it back (Forget drops it with the message).
      KeepEvent(state, m);
      return;
    }
  }
  // A redelivery is someone asking for the message now, the receiver mended perhaps: an open
  // circuit probes at once rather than make it wait out the pause.
  if (m.batch == store::kAlone) state.circuit.ProbeNow(now_ms);
  if (m.batch == store::kAlone && m.attempts == 0) {
    // Redelivered while it still waits, never sent, to go as it was: it goes alone now, and
    // only alone. Were batching turned on before the first entry went, that one would join a
    // batch, and the receiver get the message under two webhook-ids. (A message attempted
    // before is no batch's to take: no need to look.)
    std::erase_if(state.ready,
                  [&](const Due& d) { return d.id == m.id && d.batch == store::kUnbatched; });
  }
  KeepEvent(state, m);
  max_admitted_id_ = std::max(max_admitted_id_, m.id);
  const int64_t due_ms = std::max(m.due_ms, now_ms);
  // Ready since it fell due: a batch it starts waits max_wait_ms from then, not from now, when
  // it is read again after a restart or with its endpoint enabled again (DESIGN 1: at most).
  const Due due{m.id, m.attempts, m.batch, std::min(m.due_ms, now_ms), m.splits};
  if (m.batch > 0) {
    ScheduleBatch(index, m.batch, {due}, due_ms, now_ms);
  } else {
    Schedule(due_ms, due, index, now_ms);
  }
}

void Scheduler::ScheduleBatch(uint32_t index, int64_t batch, std::vector<Due> members,
                              int64_t due_ms, int64_t now_ms) {
  std::vector<Due>& waiting = endpoints_[index].batches[batch];
  // The first member to wait puts the batch in line; the others join it.
  const bool first = waiting.empty();
  for (Due& m : members) {
    const auto at = std::lower_bound(waiting.begin(), waiting.end(), m.id,
                                     [](const Due& d, int64_t id) { return d.id < id; });
    if (at == waiting.end() || at->id != m.id) waiting.insert(at, m);
  }
  if (first)
    Schedule(due_ms, Due{.attempts = members.front().attempts, .batch = batch}, index, now_ms);
}

void Scheduler::KeepEvent(EndpointState& state, const store::DueMessage& m) {
  if (m.stored && fresh_count_ < kMaxFresh && state.fresh.emplace(m.id, m.stored).second) {
    ++fresh_count_;
  }
}

bool Scheduler::Superseded(EndpointState& state, int64_t message_id, int attempts, int64_t now_ms) {
  auto& order = state.redelivered_order;
  while (!order.empty() && order.front().first + kRedeliveredKeptMs <= now_ms) {
    state.redelivered_attempts.erase(order.front().second);
    order.pop_front();
  }
  if (state.redelivered_attempts.empty()) return false;
  const auto made = state.redelivered_attempts.find(message_id);
  return made != state.redelivered_attempts.end() && made->second > attempts;
}

void Scheduler::EndpointChanged(const std::string& endpoint_id, int64_t now_ms) {
  const auto it = endpoint_index_.find(endpoint_id);
  if (it != endpoint_index_.end()) Refresh(it->second, now_ms);
}

void Scheduler::Gained(const std::string& endpoint_id, int64_t now_ms) {
  const uint32_t index = Intern(endpoint_id, now_ms);
  endpoints_[index].owned = true;
  Refresh(index, now_ms);
}

void Scheduler::Lost(const std::string& endpoint_id) {
  const auto it = endpoint_index_.find(endpoint_id);
  if (it == endpoint_index_.end()) return;
  endpoints_[it->second].owned = false;
  if (endpoints_[it->second].enabled) Park(it->second);
}

void Scheduler::Resync(int64_t now_ms) {
  for (uint32_t index = 0; index < endpoints_.size(); ++index) {
    if (endpoints_[index].enabled) LoadEndpointPending(index, now_ms);
  }
}

void Scheduler::Recorded(uint32_t endpoint, int64_t message_id) { Forget(endpoint, message_id); }

void Scheduler::SplitRecorded(const SplitBatch& split, bool durable, int64_t now_ms) {
  EndpointState& state = endpoints_[split.endpoint];
  const auto take = [&state](int64_t batch) {
    std::vector<Due> members;
    if (auto it = state.splitting.find(batch); it != state.splitting.end()) {
      members = std::move(it->second);
      state.splitting.erase(it);
    }
    return members;
  };
  std::vector<Due> first = take(split.first);
  std::vector<Due> second = take(split.second);
  if (first.empty() && second.empty()) return;  // parked meanwhile: they wait in the store
  if (durable) {
    if (!first.empty())
      ScheduleBatch(split.endpoint, split.first, std::move(first), now_ms, now_ms);
    if (!second.empty()) {
      ScheduleBatch(split.endpoint, split.second, std::move(second), now_ms, now_ms);
    }
    return;
  }
  // The store still has every member in the first batch: it goes again whole, and is split
  // again if it is refused again.
  for (Due& m : second) m.batch = split.first;
  first.insert(first.end(), second.begin(), second.end());
  std::sort(first.begin(), first.end(), [](const Due& a, const Due& b) { return a.id < b.id; });
  ScheduleBatch(split.endpoint, split.first, std::move(first), now_ms + kStoreRetryMs, now_ms);
}

void Scheduler::Forget(uint32_t index, int64_t message_id) {
  if (!options_.shared) return;
  EndpointState& state = endpoints_[index];
  state.held.erase(message_id);
  fresh_count_ -= state.fresh.erase(message_id);
  read_ahead_count_ -= state.read_ahead.erase(message_id);
}

void Scheduler::Park(uint32_t index) {
  // The endpoint's messages stay pending in the store, which is where they come back from when
  // it is enabled; memory keeps nothing for it. Timers set before now are recognised as stale by
  // their generation.
  EndpointState& state = endpoints_[index];
  state.enabled = false;
  ++state.generation;
  state.timed = 0;  // its timers are stale now
  state.ready.clear();
  state.batches.clear();
  state.splitting.clear();
  state.fill_wake_ms = 0;
  // What is read again comes from the store: an entry from before a redelivery's attempt is
  // not among them, and one read before that attempt's record is committed must still go.
  state.redelivered_attempts.clear();
  state.redelivered_order.clear();
  state.held.clear();
  fresh_count_ -= state.fresh.size();
  state.fresh.clear();
  DropReadAhead(state);
}

void Scheduler::DropReadAhead(EndpointState& state) {
  read_ahead_count_ -= state.read_ahead.size();
  state.read_ahead.clear();
}

void Scheduler::Schedule(int64_t due_ms, Due message, uint32_t endpoint, int64_t now_ms) {
  if (due_ms <= now_ms) {
    message.ready_ms = message.ready_ms > 0 ? std::min(message.ready_ms, now_ms) : now_ms;
    endpoints_[endpoint].ready.push_back(message);
    MarkRunnable(endpoint);
  } else {
    SetTimer(due_ms, message, endpoint);
  }
}

void Scheduler::SetTimer(int64_t due_ms, Due message, uint32_t endpoint) {
  EndpointState& state = endpoints_[endpoint];
  if (message.id > 0) ++state.timed;
  timers_.push(Timer{due_ms, message, endpoint, state.generation});
}

void Scheduler::MarkRunnable(uint32_t endpoint) {
  EndpointState& state = endpoints_[endpoint];
  if (!state.queued && !state.ready.empty()) {
    state.queued = true;
    runnable_.push_back(endpoint);
  }
}

void Scheduler::Poll(int64_t now_ms, SchedulerOutput* out) {
  while (!timers_.empty() && timers_.top().due_ms <= now_ms) {
    const Timer t = timers_.top();
    timers_.pop();
    EndpointState& target = endpoints_[t.endpoint];
    if (t.generation != target.generation) continue;  // set before the endpoint was parked
    if (t.message.id > 0) --target.timed;
    if (t.message.id == kReloadTimer) {
      LoadEndpointPending(t.endpoint, now_ms);
      continue;
    }
    if (t.message.id == kRefreshTimer) {
      Refresh(t.endpoint, now_ms);
      continue;
    }
    if (t.message.id != 0 || t.message.batch > 0) {
      Due due = t.message;
      due.ready_ms = now_ms;
      target.ready.push_back(due);
    }
    if (t.message.id == 0 && t.message.batch <= 0 && t.due_ms == target.fill_wake_ms) {
      target.fill_wake_ms = 0;
    }
    MarkRunnable(t.endpoint);
  }
  // Endpoints take turns: each runnable endpoint launches what its capacity, rate limit and
  // circuit allow; completions and wake-up timers put it back in line.
  for (size_t n = runnable_.size(); n > 0; --n) {
    const uint32_t index = runnable_.front();
    runnable_.pop_front();
    endpoints_[index].queued = false;
    LaunchReady(index, now_ms, out);
  }
  CountBacklog(now_ms);
}

std::optional<int64_t> Scheduler::NextWakeMs() const {
  if (!runnable_.empty()) return 0;  // now: any time in the past
  if (timers_.empty()) return std::nullopt;
  return timers_.top().due_ms;
}

std::optional<int64_t> Scheduler::NextCountMs() const {
  if (!backlog_stale_) return std::nullopt;
  return backlog_counted_ms_ + kBacklogEveryMs;
}

void Scheduler::CountBacklog(int64_t now_ms) {
  if (now_ms - backlog_counted_ms_ < kBacklogEveryMs) {
    backlog_stale_ = true;
    return;
  }
  backlog_counted_ms_ = now_ms;
  backlog_stale_ = false;
  size_t timed = 0;
  size_t waiting = 0;
  uint64_t open = 0;
  std::unordered_map<std::string_view, uint64_t> by_site;
  for (const EndpointState& e : endpoints_) {
    // A batch's entry in `ready` stands for its members, counted with the batch.
    size_t waiting_here = e.ready.size();
    for (const auto& [batch, members] : e.batches) waiting_here += members.size();
    for (const auto& [batch, members] : e.splitting) waiting_here += members.size();
    timed += e.timed;
    waiting += waiting_here;
    if (options_.max_site_backlog > 0) {
      const size_t held = e.timed + waiting_here + static_cast<size_t>(e.in_flight);
      if (held > 0) by_site[e.site_id] += held;
    }
    open += e.circuit.state(now_ms) == CircuitBreaker::State::kOpen;
  }
  counts_.scheduled = timed;
  counts_.backlog = timed + waiting + counts_.in_flight;
  counts_.open_circuits = open;
  counts_.backlogged_sites.clear();
  for (const auto& [site, held] : by_site) {
    if (held > options_.max_site_backlog) counts_.backlogged_sites.emplace_back(site);
  }
  std::sort(counts_.backlogged_sites.begin(), counts_.backlogged_sites.end());
}

// Reads, in one call, the next ready messages that are not in memory, when the one about to go
// is among them: ingest outran delivery past kMaxFresh, a node delivers what another stored,
// retries. One read for up to kPrefetchMax messages rather than one each, on this thread.
void Scheduler::Prefetch(uint32_t index, int64_t now_ms) {
  EndpointState& state = endpoints_[index];
  // Only a closed circuit sends more than one request: open, it sends none; half-open, the probe.
  if (!state.enabled || state.ready.size() < 2 || state.in_flight >= state.max_in_flight ||
      state.circuit.state(now_ms) != CircuitBreaker::State::kClosed ||
      state.bucket.NextTokenMs(now_ms) > now_ms) {
    return;
  }
  // Batches read their members when they go (LaunchBatch).
  const bool batching = state.endpoint != nullptr && state.endpoint->batch.on();
  const auto alone = [batching](const Due& due) {
    return due.batch == store::kAlone || (due.batch == store::kUnbatched && !batching);
  };
  const auto in_memory = [&state](int64_t id) {
    return state.fresh.contains(id) || state.read_ahead.contains(id);
  };
  if (!alone(state.ready.front()) || in_memory(state.ready.front().id)) return;
  const size_t budget = std::min(kPrefetchMax, kMaxReadAhead - read_ahead_count_);
  std::vector<int64_t> ids;
  const size_t scan = std::min(state.ready.size(), kPrefetchScan);
  for (size_t i = 0; i < scan && ids.size() < budget && alone(state.ready[i]); ++i) {
    if (!in_memory(state.ready[i].id)) ids.push_back(state.ready[i].id);
  }
  if (ids.size() < 2) return;  // the launch reads its own
  auto loaded = store_.LoadDeliveries(ids);
  if (!loaded.ok() || loaded->empty()) return;  // each Launch reads its own, and handles errors
  TakeEndpoint(state, loaded->front());
  for (store::Delivery& d : *loaded) {
    // A message found finished is read again when its turn comes, and forgotten then.
    if (d.status != store::MessageStatus::kPending) continue;
    if (state.read_ahead.try_emplace(d.message_id, ReadAhead{d.attempts, EventOf(d)}).second) {
      ++read_ahead_count_;
    }
  }
}

void Scheduler::LaunchReady(uint32_t index, int64_t now_ms, SchedulerOutput* out) {
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
    if (due.batch > 0) {
      state.ready.pop_front();
      const auto members = state.batches.find(due.batch);
      // None: its members went with an earlier entry of the same batch.
      if (members == state.batches.end()) continue;
      if (state.batches_sending.contains(due.batch)) {
        // Still in flight from before the endpoint was parked and enabled again: that
        // request's outcome decides what follows, as for a message in flight alone (Launch).
        state.batches.erase(members);
        continue;
      }
      std::vector<Due> going = std::move(members->second);
      state.batches.erase(members);
      LaunchBatch(index, due.batch, std::move(going), now_ms, out);
      continue;
    }
    if (Batchable(due) && state.endpoint != nullptr && state.endpoint->batch.on()) {
      if (!FillBatch(index, now_ms, out)) break;
      continue;
    }
    state.ready.pop_front();
    Launch(index, due, now_ms, out);
  }
}

bool Scheduler::FillBatch(uint32_t index, int64_t now_ms, SchedulerOutput* out) {
  EndpointState& state = endpoints_[index];
  const store::BatchOptions options = state.endpoint->batch;
  size_t most = static_cast<size_t>(options.max_events);
  if (state.batch_cap > 0) most = std::min(most, state.batch_cap);
  size_t n = 0;
  while (n < state.ready.size() && n < most && Batchable(state.ready[n])) ++n;
  // Full, or something that is not to be batched waits behind it: no reason to wait longer.
  const bool full = n == most || n < state.ready.size();
  const int64_t deadline = state.ready.front().ready_ms + options.max_wait_ms;
  if (!full && now_ms < deadline) {
    if (state.fill_wake_ms != deadline) {
      state.fill_wake_ms = deadline;
      WakeAt(deadline, index);
    }
    return false;
  }
  std::vector<Due> members(state.ready.begin(), state.ready.begin() + static_cast<ptrdiff_t>(n));
  state.ready.erase(state.ready.begin(), state.ready.begin() + static_cast<ptrdiff_t>(n));
  // Ingest order is id order; retries and reloads can bring older ones in behind newer.
  std::sort(members.begin(), members.end(), [](const Due& a, const Due& b) { return a.id < b.id; });
  const int64_t batch = members.front().id;
  for (Due& m : members) m.batch = batch;
  LaunchBatch(index, batch, std::move(members), now_ms, out, /*forming=*/true);
  return true;
}

void Scheduler::LaunchBatch(uint32_t index, int64_t batch, std::vector<Due> members, int64_t now_ms,
                            SchedulerOutput* out, bool forming) {
  EndpointState& state = endpoints_[index];
  std::vector<OutgoingMessage> messages;
  messages.reserve(members.size());
  // From memory where ingest just made them (or they were read ahead), the rest in one read.
  std::vector<int64_t> unread;
  std::unordered_map<int64_t, int> attempts;
  // A batch that forms takes messages never attempted. One attempted since its entry was made
  // (redelivered alone while that entry waited for the store) is the other entry's to send:
  // taken here too, it would reach the receiver under two webhook-ids.
  for (const Due& m : members) {
    if (forming && state.sending.contains(m.id)) continue;
    if (Superseded(state, m.id, m.attempts, now_ms)) continue;  // its redelivery's now
    int made = m.attempts;
    if (auto event = TakeInMemory(state, m.id, &made)) {
      if (forming && made > m.attempts) continue;
      messages.push_back(OutgoingMessage{m.id, made + 1, std::move(event)});
    } else {
      unread.push_back(m.id);
      attempts.emplace(m.id, m.attempts);
    }
  }
  if (!unread.empty()) {
    auto loaded = store_.LoadDeliveries(unread);
    if (!loaded.ok()) {
      // The database is busy or away: the whole batch tries again shortly. One forming was
      // never fixed: its messages form a batch again, which looks at each one again.
      if (!forming) {
        ScheduleBatch(index, batch, std::move(members), now_ms + kStoreRetryMs, now_ms);
        return;
      }
      for (Due& m : members) {
        m.batch = store::kUnbatched;
        SetTimer(now_ms + kStoreRetryMs, m, index);
      }
      return;
    }
    std::unordered_set<int64_t> found;
    bool endpoint_read = false;
    for (store::Delivery& d : *loaded) {
      found.insert(d.message_id);
      if (d.status != store::MessageStatus::kPending) {
        Forget(index, d.message_id);  // finished meanwhile
        continue;
      }
      if (!endpoint_read) {
        TakeEndpoint(state, d);  // the same for every member
        endpoint_read = true;
      }
      if (forming && d.attempts > attempts[d.message_id]) continue;
      const int made = std::max(d.attempts, attempts[d.message_id]);
      messages.push_back(OutgoingMessage{d.message_id, made + 1, EventOf(d)});
    }
    for (const int64_t id : unread) {
      if (!found.contains(id)) Forget(index, id);  // gone: its endpoint was deleted, or purged
    }
    std::sort(messages.begin(), messages.end(),
              [](const OutgoingMessage& a, const OutgoingMessage& b) { return a.id < b.id; });
  } else if (!messages.empty()) {  // none when every member was left out
    state.site_id = messages.front().event->site_id;
  }
  if (forming) {
    std::unordered_set<std::string_view> events;
    std::vector<Due> later;
    std::erase_if(messages, [&](const OutgoingMessage& m) {
      if (events.insert(m.event->event.event_id).second) return false;
      // It keeps the time it became ready: the next batch waits max_wait_ms from its first
      // member's arrival, not from this batch's departure.
      const auto member = std::lower_bound(members.begin(), members.end(), m.id,
                                           [](const Due& d, int64_t id) { return d.id < id; });
      const bool found = member != members.end() && member->id == m.id;
      later.push_back(Due{.id = m.id, .ready_ms = found ? member->ready_ms : now_ms});
      return true;
    });
    state.ready.insert(state.ready.begin(), later.begin(), later.end());
    // Numbered after its first member, as ever, should the one it was numbered after be left out.
    if (!messages.empty()) batch = messages.front().id;
  }
  if (messages.empty()) return;
  if (state.endpoint == nullptr) {  // deleted: its messages were failed in the store
    for (const OutgoingMessage& m : messages) Forget(index, m.id);
    return;
  }
  if (!state.endpoint->enabled) {
    Park(index);
    return;
  }
  Send& send = StartSend(index, now_ms, out);
  counts_.attempts += messages.size() - 1;  // one attempt per message
  send.batch = batch;
  send.splits = members.front().splits;
  send.messages = std::move(messages);
  state.batches_sending.insert(batch);
  Changed(index);
}

Send& Scheduler::StartSend(uint32_t index, int64_t now_ms, SchedulerOutput* out) {
  EndpointState& state = endpoints_[index];
  const store::Endpoint& target = *state.endpoint;
  state.max_in_flight = std::max(1, target.max_in_flight);
  state.bucket.SetRate(target.rate_limit);
  state.circuit.AllowRequest(now_ms);
  state.bucket.TryTake(now_ms);
  ++state.in_flight;
  ++counts_.in_flight;
  ++counts_.attempts;
  Send& send = out->sends.emplace_back();
  send.endpoint = index;
  send.target = state.endpoint;
  send.site_id = state.site_id;
  return send;
}

void Scheduler::WakeAt(int64_t when_ms, uint32_t endpoint) { SetTimer(when_ms, Due{}, endpoint); }

// The endpoint as a delivery just read it: the freshest there is.
void Scheduler::TakeEndpoint(EndpointState& state, store::Delivery& delivery) {
  state.endpoint = std::make_shared<const store::Endpoint>(std::move(delivery.endpoint));
  state.site_id = delivery.site_id;
}

// The event of a message in memory: made by ingest just now, or read ahead (Prefetch), whose
// attempt count then raises `attempts` (this node's count of a message it retries is ahead of
// the store's until the last attempt's record is committed). Null when it must be read now.
std::shared_ptr<const store::StoredEvent> Scheduler::TakeInMemory(EndpointState& state,
                                                                  int64_t message_id,
                                                                  int* attempts) {
  std::shared_ptr<const store::StoredEvent> event;
  if (auto fresh = state.fresh.extract(message_id)) {
    --fresh_count_;
    event = std::move(fresh.mapped());
  } else if (auto read = state.read_ahead.extract(message_id)) {
    --read_ahead_count_;
    event = std::move(read.mapped().event);
    *attempts = std::max(*attempts, read.mapped().attempts);
  }
  return state.endpoint == nullptr ? nullptr : event;
}

void Scheduler::Launch(uint32_t endpoint, Due message, int64_t now_ms, SchedulerOutput* out) {
  const int64_t message_id = message.id;
  EndpointState& state = endpoints_[endpoint];
  // A redelivery goes at once while the message's retry timer still stands: when the timer
  // comes, the message is in flight already, or has been attempted since the timer was set.
  // Either way the later attempt's outcome decides what follows, and this entry is dropped.
  if (state.sending.contains(message_id)) return;
  if (Superseded(state, message_id, message.attempts, now_ms)) return;
  // From memory (just ingested: nothing copied; or read ahead with others), or read now.
  int attempts = message.attempts;
  std::shared_ptr<const store::StoredEvent> event = TakeInMemory(state, message_id, &attempts);
  if (attempts > message.attempts) return;  // read ahead, and attempted since this was set
  if (event == nullptr) {
    model::StatusOr<store::Delivery> delivery = store_.LoadDelivery(message_id);
    if (!delivery.ok()) {
      // Gone (its endpoint was deleted, or it was purged) is final; anything else is the
      // database being busy, and the message is tried again shortly.
      if (delivery.status().code() != model::StatusCode::kNotFound) {
        SetTimer(now_ms + kStoreRetryMs, message, endpoint);
      } else {
        Forget(endpoint, message_id);
      }
      return;
    }
    if (delivery->status != store::MessageStatus::kPending) {
      Forget(endpoint, message_id);  // finished meanwhile (by this node, or the last owner)
      return;
    }
    if (delivery->attempts > message.attempts) return;  // attempted since this was set
    TakeEndpoint(state, *delivery);
    // This node's count of a message it retries is ahead of the store's until the last
    // attempt's record is committed: numbering from the store's would repeat an attempt number.
    attempts = std::max(delivery->attempts, message.attempts);
    event = EventOf(*delivery);
  } else {
    state.site_id = event->site_id;
  }
  if (!state.endpoint->enabled) {
    Park(endpoint);
    return;
  }
  Send& send = StartSend(endpoint, now_ms, out);
  send.batch = message.batch;
  send.splits = message.splits;
  send.messages.push_back(OutgoingMessage{message_id, attempts + 1, std::move(event)});
  state.sending.insert(message_id);
  Changed(endpoint);
}

void Scheduler::Disable(uint32_t index, std::string reason, SchedulerOutput* out) {
  EndpointState& state = endpoints_[index];
  Park(index);
  out->disables.push_back(DisableEndpoint{state.id, state.site_id, std::move(reason)});
}

void Scheduler::Changed(uint32_t index) {
  EndpointState& state = endpoints_[index];
  if (state.changed) return;
  state.changed = true;
  changed_.push_back(index);
}

void Scheduler::Publish(SchedulerOutput* out) {
  for (const uint32_t index : changed_) {
    EndpointState& state = endpoints_[index];
    state.changed = false;
    EndpointRuntime runtime;
    runtime.circuit_opened = state.circuit.state(0) != CircuitBreaker::State::kClosed;
    runtime.circuit_open_until_ms = state.circuit.open_until_ms();
    runtime.in_flight = state.in_flight;
    runtime.queued = state.ready.size();
    out->runtime.emplace_back(state.id, runtime);
  }
  changed_.clear();
}

EndpointRuntime Scheduler::Runtime(const std::string& endpoint_id, int64_t now_ms) const {
  EndpointRuntime runtime;
  const auto it = endpoint_index_.find(endpoint_id);
  if (it == endpoint_index_.end()) return runtime;
  const EndpointState& state = endpoints_[it->second];
  runtime.circuit = CircuitStateName(state.circuit.state(now_ms));
  runtime.circuit_opened = state.circuit.state(0) != CircuitBreaker::State::kClosed;
  runtime.circuit_open_until_ms = state.circuit.open_until_ms();
  runtime.in_flight = state.in_flight;
  runtime.queued = state.ready.size();
  return runtime;
}

void Scheduler::Complete(Completion c, int64_t now_ms, SchedulerOutput* out) {
  const OutboundResult& r = c.result;
  const uint32_t index = c.endpoint;
  EndpointState& state = endpoints_[index];
  --state.in_flight;
  --counts_.in_flight;
  backlog_stale_ = true;
  if (c.batch > 0) {
    state.batches_sending.erase(c.batch);
  } else if (c.messages.size() == 1) {
    state.sending.erase(c.messages.front().id);
  }
  if (c.batch == store::kAlone && !c.messages.empty()) {
    const OutgoingMessage& m = c.messages.front();
    int& made = state.redelivered_attempts[m.id];
    // A message already remembered keeps its first place in the order: it is forgotten a little
    // early, which the store's count, committed long before, covers.
    if (made == 0) state.redelivered_order.emplace_back(now_ms, m.id);
    made = std::max(made, m.attempt);
  }
  MarkRunnable(index);

  const double seconds = static_cast<double>(r.latency.count()) / 1e6;
  size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  ++counts_.latency_counts[bucket];
  counts_.latency_sum_seconds += seconds;

  const bool success = IsSuccess(r.status);
  // A batch refused as too large (413) goes again at once as two halves, and new batches are
  // no larger than the first half. That answer does not count against the endpoint (neither
  // the circuit nor the retry schedule), nor for it: a proxy may answer 413 for a receiver that
  // is down. A single message refused so is retried as any failure.
  const size_t members = c.messages.size();
  const bool split = r.status == 413 && c.batch > 0 && members > 1 && state.enabled;
  const size_t first_half = (members + 1) / 2;
  std::string error = r.error;
  if (success) {
    state.circuit.OnSuccess();
    state.failing_since_ms = 0;
    if (state.batch_cap > 0 && c.batch > 0 && members >= state.batch_cap &&
        ++state.taken_at_cap >= kCapRelaxAfter) {
      state.batch_cap *= 2;
      state.taken_at_cap = 0;
    }
  } else if (split) {
    state.circuit.OnInconclusive(c.started_ms);
    error = "HTTP 413: the receiver refused a batch of " + std::to_string(members) +
            " events as too large; they go again at once, as batches of " +
            std::to_string(first_half) + " and " + std::to_string(members - first_half);
    state.batch_cap = state.batch_cap == 0 ? first_half : std::min(state.batch_cap, first_half);
    state.taken_at_cap = 0;
  } else {
    if (error.empty()) error = "HTTP " + std::to_string(r.status);
    state.circuit.OnFailure(now_ms);
    if (state.failing_since_ms == 0) state.failing_since_ms = c.started_ms;
    if (state.enabled && r.status == 410) {
      // Gone: the receiver asks for no more. Its messages wait for the endpoint to be enabled.
      Disable(index, "the receiver answered 410 Gone", out);
    } else if (state.enabled && IsPermanent(r.error_kind)) {
      // Retrying in 5 s would meet the same refusal: only a change of the endpoint mends it.
      Disable(index, "cannot be delivered to: " + error, out);
    } else if (state.enabled && now_ms - state.failing_since_ms >= options_.disable_after.count()) {
      Disable(index,
              "every attempt failed for " + std::to_string(options_.disable_after.count() / 1000) +
                  " s",
              out);
    }
  }

  // One decision for the request: a batch is retried, or fails, as a whole.
  std::optional<std::chrono::milliseconds> delay;
  if (!success && !split && state.enabled && !c.messages.empty()) {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    delay = options_.schedule.DelayAfter(c.messages.front().attempt - c.splits, uniform(rng_));
    if (delay && (r.status == 429 || r.status == 503) && !r.retry_after.empty()) {
      // The receiver asked for a pause: wait at least that long, within the schedule's range.
      if (auto asked = ParseRetryAfter(r.retry_after, now_ms)) {
        *delay = std::max(*delay, std::min(*asked, options_.schedule.longest()));
      }
    }
  }
  std::vector<Due> retried;
  for (const OutgoingMessage& m : c.messages) {
    store::AttemptRecord& record = out->records.emplace_back();
    record.message_id = m.id;
    if (&m == &c.messages.front()) record.endpoint_id = state.id;
    record.attempt = m.attempt;
    record.at_ms = c.started_ms;
    record.status_code = r.status;
    record.latency_us = r.latency.count();
    record.error = error;
    record.response_prefix = r.body_prefix;
    record.next_attempt_ms = now_ms;  // a finished message's time of finishing, for retention
    record.counts_request = &m == &c.messages.front();
    record.splits = split ? c.splits + 1 : c.splits;
    record.sent_in = std::max<int64_t>(c.batch, 0);
    if (split && static_cast<size_t>(&m - c.messages.data()) >= first_half) {
      // The second half is fixed under its number with this record, before either half goes,
      // so that after a crash none of its members is taken for one of the first half's. Only
      // from this batch: a record that comes late (another node's, on a shared database) must
      // not move back a message that has moved on since.
      record.batch = c.messages[first_half].id;
      record.batch_from = c.batch;
    }
    if (success) {
      record.new_status = store::MessageStatus::kDelivered;
      out->finished.emplace_back(index, m.id);
      ++counts_.delivered;
      continue;
    }
    if (split) {
      record.new_status = store::MessageStatus::kPending;
      const int64_t half = record.batch > 0 ? record.batch : c.batch;
      retried.push_back(Due{m.id, record.attempt, half, 0, c.splits + 1});
      ++counts_.retries;
      continue;
    }
    if (!state.enabled) {
      // A disabled endpoint's messages wait without using up their retries' schedule.
      record.new_status = store::MessageStatus::kPending;
      ++counts_.endpoint_waits;
      continue;
    }
    if (delay) {
      record.new_status = store::MessageStatus::kPending;
      record.next_attempt_ms = now_ms + delay->count();
      retried.push_back(Due{m.id, record.attempt, c.batch, 0, c.splits});
      ++counts_.retries;
    } else {
      record.new_status = store::MessageStatus::kFailed;
      out->finished.emplace_back(index, m.id);
      ++counts_.failed;
    }
  }
  if (split) {
    // The members are in id order: the first half keeps the batch's number (the receiver took
    // nothing under it), the second is named after its first message, as FillBatch names a
    // batch. Members read again while the batch was out (an endpoint parked and enabled) are
    // this request's: its outcome decides, as in LaunchReady.
    std::vector<Due> second(retried.begin() + static_cast<ptrdiff_t>(first_half), retried.end());
    retried.resize(first_half);
    const SplitBatch halves{index, c.batch, second.front().batch};
    state.batches.erase(c.batch);
    state.splitting[halves.first] = std::move(retried);
    state.splitting[halves.second] = std::move(second);
    out->splits.push_back(halves);
  } else if (!retried.empty()) {
    const int64_t due_ms = now_ms + delay->count();
    if (c.batch > 0) {
      ScheduleBatch(index, c.batch, std::move(retried), due_ms, now_ms);
    } else {
      for (const Due& m : retried) Schedule(due_ms, m, index, now_ms);
    }
  }
  Changed(index);
}

}  // namespace pushhook::delivery
