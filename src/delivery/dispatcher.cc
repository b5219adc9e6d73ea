#include "delivery/dispatcher.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "model/payload.h"
#include "model/random.h"
#include "model/signature.h"
#include "util/log.h"

namespace pushhook::delivery {
namespace {

template <typename T>
void Append(std::vector<T>& to, std::vector<T>&& from) {
  if (to.empty()) {
    to = std::move(from);
  } else {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  }
}

}  // namespace

Dispatcher::Dispatcher(store::Store& store, HttpClient& client, const model::Clock& clock,
                       DispatcherOptions options)
    : store_(store),
      client_(client),
      clock_(clock),
      options_(std::move(options)),
      scheduler_(store, options_) {}

Dispatcher::~Dispatcher() { Stop(std::chrono::milliseconds(0)); }

model::Status Dispatcher::Start() {
  if (model::Status s = scheduler_.LoadAll(clock_.NowMs()); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    max_admitted_id_ = scheduler_.max_admitted_id();
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
    Append(mailbox_.messages, std::move(messages));
  }
  cv_.notify_all();
}

void Dispatcher::EndpointChanged(const std::string& endpoint_id) {
  {
    std::lock_guard lock(mu_);
    mailbox_.changed.push_back(endpoint_id);
  }
  cv_.notify_all();
}

void Dispatcher::SetOwnership(std::vector<std::string> gained, std::vector<std::string> lost) {
  {
    std::lock_guard lock(mu_);
    Append(mailbox_.gained, std::move(gained));
    Append(mailbox_.lost, std::move(lost));
  }
  cv_.notify_all();
}

void Dispatcher::Resync() {
  {
    std::lock_guard lock(mu_);
    mailbox_.resync = true;
  }
  cv_.notify_all();
}

int64_t Dispatcher::max_admitted_id() const {
  std::lock_guard lock(mu_);
  return max_admitted_id_;
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

DeliveryCounts Dispatcher::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
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
    const int64_t now_ms = clock_.NowMs();
    runtime.circuit = now_ms < runtime.circuit_open_until_ms ? "open" : "half_open";
    runtime.circuit_open_for_ms = std::max<int64_t>(0, runtime.circuit_open_until_ms - now_ms);
  }
  return runtime;
}

void Dispatcher::Run() {
  for (;;) {
    Mailbox mail;
    bool stopping;
    bool halted;
    {
      std::unique_lock lock(mu_);
      const auto has_work = [this] { return halted_ || !mailbox_.empty(); };
      if (!has_work()) {
        // The scheduler belongs to this thread; reading it here, under the lock, is still ours.
        std::optional<int64_t> wake;
        if (!stopping_) {
          wake = scheduler_.NextWakeMs();
          const std::optional<int64_t> count = scheduler_.NextCountMs();
          if (count && (!wake || *count < *wake)) wake = count;
        }
        if (!wake) {
          cv_.wait(lock, has_work);
        } else if (const int64_t wait = *wake - clock_.NowMs(); wait > 0) {
          cv_.wait_for(lock, std::chrono::milliseconds(wait), has_work);
        }
      }
      halted = halted_;
      stopping = stopping_;
      std::swap(mail, mailbox_);
    }
    const int64_t now = clock_.NowMs();
    SchedulerOutput out;
    Deliver(mail, now, &out);
    // After the grace period: what finished is recorded; what is still out stays pending.
    if (!halted && !stopping) scheduler_.Poll(now, &out);
    scheduler_.Publish(&out);
    CarryOut(out);
    if (halted) return;
  }
}

void Dispatcher::Deliver(Mailbox& mail, int64_t now_ms, SchedulerOutput* out) {
  for (const std::string& id : mail.lost) scheduler_.Lost(id);
  for (const std::string& id : mail.gained) scheduler_.Gained(id, now_ms);
  if (mail.resync) scheduler_.Resync(now_ms);
  for (const auto& [endpoint, id] : mail.recorded) scheduler_.Recorded(endpoint, id);
  for (const auto& [split, durable] : mail.split_records) {
    scheduler_.SplitRecorded(split, durable, now_ms);
  }
  for (const std::string& id : mail.changed) scheduler_.EndpointChanged(id, now_ms);
  for (const store::DueMessage& m : mail.messages) scheduler_.Admit(m, now_ms);
  // A record per message: room for them all at once, not grown (and copied) one at a time.
  size_t finished = 0;
  for (const Completion& c : mail.completions) finished += c.messages.size();
  out->records.reserve(out->records.size() + finished);
  for (Completion& c : mail.completions) scheduler_.Complete(std::move(c), now_ms, out);
}

void Dispatcher::CarryOut(SchedulerOutput& out) {
  if (!out.records.empty()) {
    // Shared database: a finished message stays held until its record is durable, or a notice
    // or the backstop could read it as pending meanwhile and send it again.
    std::vector<std::pair<uint32_t, int64_t>> finished;
    if (options_.shared) finished = std::move(out.finished);
    // The halves of a split batch go once the records that fix them are durable.
    std::vector<std::pair<SplitBatch, bool>> splits;
    for (const SplitBatch& split : out.splits) splits.emplace_back(split, false);
    store_.RecordAttempts(std::move(out.records),
                          [this, finished = std::move(finished),
                           splits = std::move(splits)](model::Status status) mutable {
                            if (!status.ok()) {
                              // The attempts were made, but the store keeps the messages pending:
                              // after a restart they are sent again, which receivers de-duplicate
                              // by webhook-id (at-least-once).
                              record_failures_.Report(clock_.NowMs(), status.message());
                            }
                            if (finished.empty() && splits.empty() && status.ok()) return;
                            for (auto& [split, durable] : splits) durable = status.ok();
                            {
                              std::lock_guard lock(mu_);
                              counts_.record_failures = record_failures_.count();
                              Append(mailbox_.recorded, std::vector(finished));
                              Append(mailbox_.split_records, std::move(splits));
                            }
                            cv_.notify_all();
                          });
  }
  for (const DisableEndpoint& d : out.disables) {
    store::EndpointPatch patch;
    patch.enabled = false;
    patch.disabled_reason = d.reason;
    auto updated = store_.UpdateEndpoint(d.site_id, d.endpoint_id, patch, clock_.NowMs());
    util::Log(util::LogLevel::kWarn, "endpoint disabled",
              {{"endpoint_id", d.endpoint_id},
               {"reason", d.reason},
               {"stored", updated.ok() ? std::string_view("yes") : updated.status().message()}});
  }
  for (Send& send : out.sends) Launch(std::move(send));
  {
    std::lock_guard lock(mu_);
    const uint64_t record_failures = counts_.record_failures;
    counts_ = scheduler_.counts();
    counts_.record_failures = record_failures;
    max_admitted_id_ = scheduler_.max_admitted_id();
    for (auto& [id, runtime] : out.runtime) runtime_[id] = runtime;
  }
  cv_.notify_all();  // Stop() may be waiting for in_flight == 0
}

// One message's payload, or a batch's compact JSON array of them, signed.
OutboundRequest Dispatcher::Build(Send& send) const {
  OutboundRequest request;
  request.url = send.target->url;
  request.timeout = options_.timeout;
  request.connect_timeout = options_.connect_timeout;
  std::string webhook_id;
  if (send.batch > 0) {
    request.body.reserve(send.messages.size() * 512);
    request.body += '[';
    for (const OutgoingMessage& m : send.messages) {
      if (request.body.size() > 1) request.body += ',';
      request.body += model::Payload(m.event->event, send.target->format, send.site_id);
    }
    request.body += ']';
    webhook_id = store::FormatBatchId(store_.instance_id(), send.batch);
  } else {
    const OutgoingMessage& message = send.messages.front();
    request.body = model::Payload(message.event->event, send.target->format, send.site_id);
    webhook_id = store::FormatMessageId(store_.instance_id(), message.id);
  }
  Sign(request, *send.target, webhook_id, clock_.NowMs());
  for (OutgoingMessage& m : send.messages) m.event.reset();  // the body holds what it needs
  return request;
}

// Sends a request; its outcome comes back through the mailbox.
void Dispatcher::SendNow(OutboundRequest request, Completion pending) {
  client_.Send(std::move(request),
               [this, pending = std::move(pending)](OutboundResult result) mutable {
                 pending.result = std::move(result);
                 Completed(std::move(pending));
               });
}

// A batch goes once its members are durably its own (Store::AssignBatch): a resend after a
// crash then carries the same members under the same webhook-id, and a receiver that
// de-duplicates by webhook-id and index stores each event once. The body is made here, on the
// dispatcher's thread; the store's writer only hands it to the client.
void Dispatcher::Launch(Send send) {
  OutboundRequest request = Build(send);
  Completion pending{send.endpoint, std::move(send.messages), clock_.NowMs(), {}, send.batch,
                     send.splits};
  if (send.batch <= 0) return SendNow(std::move(request), std::move(pending));
  std::vector<int64_t> ids;
  ids.reserve(pending.messages.size());
  for (const OutgoingMessage& m : pending.messages) ids.push_back(m.id);
  auto held = std::make_shared<std::pair<OutboundRequest, Completion>>(std::move(request),
                                                                       std::move(pending));
  store_.AssignBatch(std::move(ids), send.batch, [this, held](model::Status status) {
    if (status.ok()) return SendNow(std::move(held->first), std::move(held->second));
    // Not sent: an attempt that failed before its request, retried on the schedule.
    held->second.result.error = "the batch could not be stored before sending: " + status.message();
    Completed(std::move(held->second));
  });
}

void Dispatcher::Completed(Completion completion) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    // Only the first of a burst wakes the thread; it takes them all at once.
    wake = mailbox_.completions.empty();
    mailbox_.completions.push_back(std::move(completion));
  }
  if (wake) cv_.notify_all();
}

// The headers of DESIGN section 4 (the client adds user-agent): content type and the Standard
// Webhooks trio, signed with the endpoint's secret and each previous one still in its overlap.
void Dispatcher::Sign(OutboundRequest& request, const store::Endpoint& endpoint,
                      const std::string& msg_id, int64_t now_ms) const {
  const int64_t timestamp = now_ms / 1000;
  std::vector<std::string> keys;
  if (auto key = model::DecodeSecret(endpoint.secret)) keys.push_back(std::move(*key));
  for (const store::PreviousSecret& previous : endpoint.previous_secrets) {
    if (previous.until_ms <= now_ms) continue;
    if (auto key = model::DecodeSecret(previous.secret)) keys.push_back(std::move(*key));
  }
  // Built in place: a braced list would copy each of its strings.
  request.headers.clear();
  request.headers.reserve(4);
  request.headers.emplace_back("content-type", "application/json");
  request.headers.emplace_back("webhook-id", msg_id);
  request.headers.emplace_back("webhook-timestamp", std::to_string(timestamp));
  request.headers.emplace_back("webhook-signature",
                               model::SignatureHeader(keys, msg_id, timestamp, request.body));
}

void Dispatcher::SendTest(const store::Endpoint& endpoint, const std::string& site_id,
                          std::function<void(TestSend)> done) {
  // An action the endpoint takes, a Click where it does: a receiver written for Views only
  // should not meet its first Click in a test.
  model::Event sample;
  sample.action = endpoint.filter.click  ? model::Action::kClick
                  : endpoint.filter.view ? model::Action::kView
                                         : model::Action::kDismiss;
  sample.cookie_id = "00000000-0000-4000-8000-000000000000";
  sample.cid = "test";
  sample.notification_title = "pushhook test event";
  sample.reference_id = "test";
  sample.utm_source = "pushhook";
  sample.clicked_button = sample.action == model::Action::kClick ? 1 : 0;
  sample.event_id = "evt_test_" + model::RandomToken(12);
  const int64_t now_ms = clock_.NowMs();
  sample.occurred_at_ms = now_ms;
  OutboundRequest request;
  request.url = endpoint.url;
  request.timeout = options_.timeout;
  request.connect_timeout = options_.connect_timeout;
  request.body = model::Payload(sample, endpoint.format, site_id);
  // A batching endpoint's receiver reads arrays: its test is a batch of one, as a quiet hour
  // would send it.
  const bool batching = endpoint.batch.max_events > 0;
  if (batching) request.body = '[' + request.body + ']';
  std::string webhook_id = (batching ? "bat_test_" : "msg_test_") + model::RandomToken(16);
  Sign(request, endpoint, webhook_id, now_ms);
  client_.Send(std::move(request), [done = std::move(done), webhook_id = std::move(webhook_id),
                                    now_ms](OutboundResult result) mutable {
    done(TestSend{
        .webhook_id = std::move(webhook_id), .at_ms = now_ms, .result = std::move(result)});
  });
}

}  // namespace pushhook::delivery
