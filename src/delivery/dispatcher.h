// The dispatcher: runs the Scheduler's rules on a thread of their own and carries out what they
// ask for. It signs and sends each request through the HttpClient, writes attempt records and
// endpoint changes through the Store, and feeds outcomes back. Everything that reaches it from
// other threads (new messages, endpoint changes, ownership, completions) goes through one mailbox.
//
// Thread safety: the DeliveryService methods and Stop() may be called from any thread. The Store,
// HttpClient and Clock must outlive it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "delivery/delivery_service.h"
#include "delivery/http_client.h"
#include "delivery/scheduler.h"
#include "model/clock.h"
#include "store/store.h"
#include "util/failure_report.h"

namespace pushhook::delivery {

struct DispatcherOptions : SchedulerOptions {
  std::chrono::milliseconds timeout{15'000};
  std::chrono::milliseconds connect_timeout{5'000};
};

class Dispatcher final : public DeliveryService {
 public:
  Dispatcher(store::Store& store, HttpClient& client, const model::Clock& clock,
             DispatcherOptions options);
  ~Dispatcher() override;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Loads every pending message from the store and starts the dispatcher thread.
  model::Status Start();

  // Sends nothing new, waits up to `grace` for requests in flight, then stops. What was not
  // delivered stays pending in the store for the next start.
  void Stop(std::chrono::milliseconds grace);

  void Enqueue(std::vector<store::DueMessage> messages) override;
  void EndpointChanged(const std::string& endpoint_id) override;
  void SetOwnership(std::vector<std::string> gained, std::vector<std::string> lost) override;
  void Resync() override;
  int64_t max_admitted_id() const override;
  void SendTest(const store::Endpoint& endpoint, const std::string& site_id,
                std::function<void(TestSend)> done) override;
  DeliveryCounts counts() const override;
  EndpointRuntime Runtime(const std::string& endpoint_id) const override;

 private:
  // What other threads leave for the dispatcher thread.
  struct Mailbox {
    std::vector<store::DueMessage> messages;
    std::vector<Completion> completions;
    std::vector<std::string> changed;
    std::vector<std::string> gained;
    std::vector<std::string> lost;
    // Shared database: finished messages (endpoint, id) whose records are durable.
    std::vector<std::pair<uint32_t, int64_t>> recorded;
    // Split batches whose records were written (true) or could not be (false).
    std::vector<std::pair<SplitBatch, bool>> split_records;
    bool resync = false;

    bool empty() const {
      return messages.empty() && completions.empty() && changed.empty() && gained.empty() &&
             lost.empty() && recorded.empty() && split_records.empty() && !resync;
    }
  };

  void Run();
  // Hands what the mailbox held to the scheduler.
  void Deliver(Mailbox& mail, int64_t now_ms, SchedulerOutput* out);
  // Writes records and disables, sends requests, publishes counts and runtimes.
  void CarryOut(SchedulerOutput& out);
  // The signed request of a Send.
  OutboundRequest Build(Send& send) const;
  // Sends it: at once for one message; a batch once its members are fixed in the store.
  void Launch(Send send);
  void SendNow(OutboundRequest request, Completion pending);
  // Hands an outcome to the dispatcher thread.
  void Completed(Completion completion);
  void Sign(OutboundRequest& request, const store::Endpoint& endpoint, const std::string& msg_id,
            int64_t now_ms) const;

  store::Store& store_;
  HttpClient& client_;
  const model::Clock& clock_;
  const DispatcherOptions options_;
  util::FailureReport record_failures_{"cannot store attempt records"};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Mailbox mailbox_;                                           // guarded by mu_
  bool stopping_ = false;                                     // guarded by mu_
  bool halted_ = false;                                       // guarded by mu_: grace is over
  DeliveryCounts counts_;                                     // guarded by mu_
  std::unordered_map<std::string, EndpointRuntime> runtime_;  // guarded by mu_
  int64_t max_admitted_id_ = 0;                               // guarded by mu_

  Scheduler scheduler_;  // owned by the dispatcher thread (and Start(), before it runs)
  std::thread thread_;
};

}  // namespace pushhook::delivery
