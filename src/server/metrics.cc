#include "server/metrics.h"

#include <charconv>
#include <sstream>
#include <string_view>

namespace pushhook::server {
namespace {

class Exposition {
 public:
  void Metric(std::string_view name, std::string_view type, std::string_view help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  template <typename T>
  void Sample(std::string_view series, T value) {
    out_ << series << ' ' << value << '\n';
  }
  // Shortest text that reads back as the same double: a stream's six significant digits would
  // stop a growing sum (seconds of latency) from moving once it passed a million.
  void Sample(std::string_view series, double value) {
    char text[32];
    const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
    out_ << series << ' ' << std::string_view(text, static_cast<size_t>(end - text)) << '\n';
  }
  std::string Text() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

}  // namespace

std::string PrometheusText(const MetricsSnapshot& snapshot) {
  const ingest::IngestHandler::Counts& in = snapshot.ingest;
  const delivery::DeliveryCounts& out = snapshot.delivery;
  Exposition e;
  e.Metric("pushhook_ingest_events_total", "counter", "Events taken by ingest, by result.");
  e.Sample("pushhook_ingest_events_total{result=\"accepted\"}", in.accepted);
  e.Sample("pushhook_ingest_events_total{result=\"duplicate\"}", in.duplicates);
  e.Metric("pushhook_ingest_requests_refused_total", "counter",
           "Ingest requests answered 4xx (rejected) or 429/503 (back-pressure).");
  e.Sample("pushhook_ingest_requests_refused_total{reason=\"invalid\"}", in.rejected);
  e.Sample("pushhook_ingest_requests_refused_total{reason=\"overload\"}", in.refused);
  e.Metric(
      "pushhook_store_commit_failures_total", "counter",
      "Store transactions that did not commit (a full disk, a database away); each is logged.");
  e.Sample("pushhook_store_commit_failures_total", snapshot.store.commit_failures);
  e.Metric("pushhook_delivery_attempts_total", "counter", "Delivery attempts, by outcome.");
  e.Sample("pushhook_delivery_attempts_total{outcome=\"delivered\"}", out.delivered);
  e.Sample("pushhook_delivery_attempts_total{outcome=\"retry\"}", out.retries);
  e.Sample("pushhook_delivery_attempts_total{outcome=\"failed\"}", out.failed);
  e.Sample("pushhook_delivery_attempts_total{outcome=\"endpoint_disabled\"}", out.endpoint_waits);
  e.Metric("pushhook_delivery_record_failures_total", "counter",
           "Attempt records the store could not write (their messages stay pending).");
  e.Sample("pushhook_delivery_record_failures_total", out.record_failures);
  e.Metric("pushhook_delivery_attempt_duration_seconds", "histogram",
           "Time from sending an attempt to its outcome.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < delivery::kLatencyBuckets.size(); ++i) {
    cumulative += out.latency_counts[i];
    std::ostringstream le;
    le << delivery::kLatencyBuckets[i];
    e.Sample("pushhook_delivery_attempt_duration_seconds_bucket{le=\"" + le.str() + "\"}",
             cumulative);
  }
  cumulative += out.latency_counts.back();
  e.Sample("pushhook_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"}", cumulative);
  e.Sample("pushhook_delivery_attempt_duration_seconds_sum", out.latency_sum_seconds);
  e.Sample("pushhook_delivery_attempt_duration_seconds_count", cumulative);
  e.Metric("pushhook_delivery_queue_depth", "gauge",
           "Messages waiting for delivery (due, scheduled for a retry, or parked).");
  e.Sample("pushhook_delivery_queue_depth", out.backlog);
  e.Metric("pushhook_delivery_in_flight", "gauge", "Delivery requests open now.");
  e.Sample("pushhook_delivery_in_flight", out.in_flight);
  e.Metric("pushhook_delivery_open_circuits", "gauge", "Endpoints whose circuit is open.");
  e.Sample("pushhook_delivery_open_circuits", out.open_circuits);
  if (snapshot.cluster) {
    e.Metric("pushhook_cluster_owned_endpoints", "gauge",
             "Endpoints whose lease this node holds (it delivers for them).");
    e.Sample("pushhook_cluster_owned_endpoints", snapshot.cluster->owned.size());
    e.Metric("pushhook_cluster_live_nodes", "gauge", "Nodes renewing leases on the database.");
    e.Sample("pushhook_cluster_live_nodes", snapshot.cluster->nodes.size());
  }
  return e.Text();
}

}  // namespace pushhook::server
