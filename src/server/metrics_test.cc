#include "server/metrics.h"

#include <gtest/gtest.h>

namespace pushhook::server {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(MetricsTest, CountersAndGaugesAreOneSampleALineWithTheirHelpAndType) {
  MetricsSnapshot s;
  s.ingest.accepted = 7;
  s.ingest.refused = 2;
  s.delivery.delivered = 5;
  s.delivery.backlog = 12;
  s.delivery.record_failures = 4;
  s.store.commit_failures = 3;
  const std::string text = PrometheusText(s);
  EXPECT_TRUE(Has(text, "# TYPE pushhook_ingest_events_total counter")) << text;
  EXPECT_TRUE(Has(text, "pushhook_ingest_events_total{result=\"accepted\"} 7")) << text;
  EXPECT_TRUE(Has(text, "pushhook_ingest_requests_refused_total{reason=\"overload\"} 2")) << text;
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempts_total{outcome=\"delivered\"} 5")) << text;
  EXPECT_TRUE(Has(text, "# TYPE pushhook_delivery_queue_depth gauge")) << text;
  EXPECT_TRUE(Has(text, "pushhook_delivery_queue_depth 12")) << text;
  EXPECT_TRUE(Has(text, "pushhook_delivery_record_failures_total 4")) << text;
  EXPECT_TRUE(Has(text, "pushhook_store_commit_failures_total 3")) << text;
  EXPECT_EQ(text.find("pushhook_cluster"), std::string::npos) << "one node: no cluster gauges";
}

TEST(MetricsTest, TheLatencyHistogramIsCumulativeAndEndsAtInf) {
  MetricsSnapshot s;
  s.delivery.latency_counts[0] = 3;      // <= 5 ms
  s.delivery.latency_counts[2] = 2;      // <= 25 ms
  s.delivery.latency_counts.back() = 1;  // > 10 s
  s.delivery.latency_sum_seconds = 12.5;
  const std::string text = PrometheusText(s);
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_bucket{le=\"0.005\"} 3"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_bucket{le=\"0.01\"} 3"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_bucket{le=\"0.025\"} 5"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_bucket{le=\"10\"} 5"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"} 6"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_count 6"));
  EXPECT_TRUE(Has(text, "pushhook_delivery_attempt_duration_seconds_sum 12.5"));
  // A sum past a million keeps every digit, so that rate(_sum) still moves.
  s.delivery.latency_sum_seconds = 1234567.891;
  EXPECT_TRUE(Has(PrometheusText(s), "pushhook_delivery_attempt_duration_seconds_sum 1234567.891"));
}

TEST(MetricsTest, ASharedDatabaseAddsTheClusterGauges) {
  MetricsSnapshot s;
  s.cluster.emplace();
  s.cluster->owned = {"ep_1", "ep_2"};
  s.cluster->nodes.resize(3);
  const std::string text = PrometheusText(s);
  EXPECT_TRUE(Has(text, "pushhook_cluster_owned_endpoints 2")) << text;
  EXPECT_TRUE(Has(text, "pushhook_cluster_live_nodes 3")) << text;
}

}  // namespace
}  // namespace pushhook::server
