// The Prometheus text exposition of `GET /metrics` (DESIGN section 8): what ingest, delivery and
// (sharing a database) the lease keeper have counted, as one snapshot. Written by hand, since the
// format is small and Debian has no Prometheus client for C++. Pure function.
#pragma once

#include <optional>
#include <string>

#include "delivery/delivery_service.h"
#include "delivery/lease_keeper.h"
#include "ingest/ingest_handler.h"
#include "store/store.h"

namespace pushhook::server {

struct MetricsSnapshot {
  ingest::IngestHandler::Counts ingest;
  delivery::DeliveryCounts delivery;
  store::StoreCounts store;
  std::optional<delivery::ClusterStatus> cluster;  // only when sharing a database
};

std::string PrometheusText(const MetricsSnapshot& snapshot);

}  // namespace pushhook::server
