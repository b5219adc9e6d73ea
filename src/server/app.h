// The wiring of `pushhook serve`: store, HTTP server, ingest, admin API, dispatcher and outbound
// client, built from one ServeConfig and started and stopped in the right order. This is the
// one place that knows every component.
//
// Thread safety: Listen(), Start(), Stop() and ReloadTls() from one thread (main).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "delivery/circuit_breaker.h"
#include "delivery/retry_schedule.h"
#include "model/status.h"

namespace pushhook::server {

struct ServeConfig {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./pushhook-data";
  std::string database;      // "" = sqlite://<data_dir>/pushhook.db
  size_t database_pool = 8;  // PostgreSQL connections per node, besides the writer's
  // Several nodes on PostgreSQL (docs/scaling.md): this node's name, and how long it holds an
  // endpoint's lease without renewing it.
  std::string node_id;  // "" = <hostname>-<pid>
  std::chrono::milliseconds lease{10'000};
  std::string admin_token;  // "" = read or make <data_dir>/admin-token
  std::string secrets_key;  // base64 of 32 bytes; "" = read or make <data_dir>/secrets-key
  bool durability_full = true;
  delivery::RetrySchedule retry_schedule =
      *delivery::RetrySchedule::Parse(delivery::RetrySchedule::kDefault);
  std::chrono::milliseconds delivery_timeout{15'000};
  std::chrono::milliseconds connect_timeout{5'000};
  bool allow_http = false;
  bool allow_private_destinations = false;
  std::string ca_file;
  std::chrono::milliseconds retention_delivered{7LL * 24 * 3600 * 1000};
  std::chrono::milliseconds retention_failed{30LL * 24 * 3600 * 1000};
  std::chrono::milliseconds shutdown_grace{10'000};
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};
  delivery::CircuitOptions circuit;
  // Ingest answers 503 while more messages than this wait for delivery, or while the data
  // folder's disk has less free space than min_free_disk_bytes.
  size_t max_backlog = 5'000'000;
  // Ingest answers 503 to one site while more of its messages than this wait (0: half of
  // max_backlog), so that one tenant's dead endpoints cannot fill the backlog all share.
  size_t max_site_backlog = 0;
  size_t SiteBacklogLimit() const {
    return max_site_backlog > 0 ? max_site_backlog : std::max<size_t>(1, max_backlog / 2);
  }
  // Requests per second per ingest key; 0 = unlimited.
  double ingest_rate_limit = 0;
  uint64_t min_free_disk_bytes = 256ULL << 20;
  size_t max_body_bytes = 1 << 20;
  // A request's header must arrive within header_timeout and its body within body_timeout:
  // slow clients (slowloris) are cut off instead of holding connections.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  size_t max_events_per_request = 10'000;
  int http_threads = 2;
  // Serve HTTPS with these PEM files (both or neither; "" = plain HTTP).
  std::string tls_cert_file;
  std::string tls_key_file;

  // The store's URL: `database`, or the SQLite file in the data folder. serve, migrate and
  // backup all ask this, so that they find the same database.
  std::string DatabaseUrl() const {
    return database.empty() ? "sqlite://" + data_dir + "/pushhook.db" : database;
  }
};

class App {
 public:
  explicit App(ServeConfig config);
  ~App();

  // Checks what needs no data folder (the TLS files, the CA file) and binds the listen address.
  // It writes nothing and logs nothing, so that its errors can be told like a bad flag's. A
  // Status with kInvalidArgument means bad configuration (exit 2); anything else is a failure.
  model::Status Listen();
  // Listens (if Listen() was not called), reads or makes the key files, opens the store, runs
  // migrations, loads pending messages and starts serving. A Status with kInvalidArgument means
  // bad configuration (exit 2); anything else is a failure (exit 1). A start that fails leaves
  // no key file that it made behind, unless the store already holds the key's check.
  model::Status Start();
  uint16_t port() const;
  // The routes it serves (http::Router::Routes), once started.
  std::vector<std::string> Routes() const;
  // Stops taking requests, lets the requests and deliveries in flight finish within the grace
  // period, stops.
  void Stop();
  // Re-reads the TLS certificate and key (on SIGHUP): new connections get the new ones, open
  // connections keep theirs; on error the old ones stay and the error says why.
  model::Status ReloadTls();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushhook::server
