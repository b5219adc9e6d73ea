// What the rest of pushhook asks of delivery: take new messages, re-read an endpoint that an
// admin changed, move endpoints between nodes, send a test, and say how things stand. Ingest,
// the admin API and the lease keeper depend on this, not on the dispatcher that implements it,
// so none of them sees its thread, its mailbox or its rules.
//
// Thread safety: every method may be called from any thread, and none blocks on a delivery.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "delivery/http_client.h"
#include "store/store.h"

namespace pushhook::delivery {

// What delivery knows of one endpoint right now, for the admin API.
struct EndpointRuntime {
  std::string circuit = "closed";  // closed, open, half_open
  bool circuit_opened = false;     // open or half-open: the breaker has tripped
  int64_t circuit_open_until_ms = 0;
  int64_t circuit_open_for_ms = 0;  // as Runtime() answers: how long it stays open from now
  int in_flight = 0;
  size_t queued = 0;
};

// Upper bounds (seconds) of the attempt latency histogram's buckets; the last is +Inf.
inline constexpr std::array<double, 11> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

struct DeliveryCounts {
  uint64_t attempts = 0;
  uint64_t delivered = 0;
  uint64_t failed = 0;          // messages that ran out of retries
  uint64_t retries = 0;         // failed attempts that were scheduled again
  uint64_t endpoint_waits = 0;  // failed attempts whose endpoint was disabled (message waits)
  // Attempt records the store could not write. Their messages stay pending in the store, so a
  // restart sends them again (at-least-once holds); until then this node does not retry them.
  uint64_t record_failures = 0;
  uint64_t in_flight = 0;
  uint64_t scheduled = 0;  // messages waiting for a retry time
  uint64_t backlog = 0;    // messages waiting in memory: due and scheduled (not a disabled
                           // endpoint's, which wait in the store)
  uint64_t open_circuits = 0;
  // Sites over SchedulerOptions::max_site_backlog, sorted; almost always none.
  std::vector<std::string> backlogged_sites;
  // Attempt latency: count per bucket of kLatencyBuckets (cumulative is made when printing),
  // plus the +Inf bucket, and the sum in seconds.
  std::array<uint64_t, kLatencyBuckets.size() + 1> latency_counts{};
  double latency_sum_seconds = 0;
};

class DeliveryService {
 public:
  virtual ~DeliveryService() = default;

  // New messages, committed; typically straight from ingest.
  virtual void Enqueue(std::vector<store::DueMessage> messages) = 0;
  // An endpoint was created, changed or deleted: read it again.
  virtual void EndpointChanged(const std::string& endpoint_id) = 0;
  // Shared database: this node now holds the leases of `gained` and no longer delivers for
  // `lost`. A gained endpoint's pending messages are loaded from the store.
  virtual void SetOwnership(std::vector<std::string> gained, std::vector<std::string> lost) = 0;
  // Shared database: notices may have been missed; look again at every owned endpoint.
  virtual void Resync() = 0;
  // The highest message id admitted so far (the backstop polls above an older value of it).
  virtual int64_t max_admitted_id() const = 0;

  // A test send's outcome, and what the receiver saw of it.
  struct TestSend {
    std::string webhook_id;  // msg_test_… (bat_test_… for a batching endpoint)
    int64_t at_ms = 0;       // when it was sent
    OutboundResult result;
  };
  // Sends a sample event to `endpoint` now, outside the message log (POST .../test).
  virtual void SendTest(const store::Endpoint& endpoint, const std::string& site_id,
                        std::function<void(TestSend)> done) = 0;

  virtual DeliveryCounts counts() const = 0;
  virtual EndpointRuntime Runtime(const std::string& endpoint_id) const = 0;
};

}  // namespace pushhook::delivery
