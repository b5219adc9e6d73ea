#include "server/app.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "admin/admin_api.h"
#include "admin/auth.h"
#include "delivery/asio_client.h"
#include "delivery/dispatcher.h"
#include "delivery/lease_keeper.h"
#include "http/router.h"
#include "http/server.h"
#include "ingest/ingest_handler.h"
#include "model/base64.h"
#include "model/clock.h"
#include "model/digest.h"
#include "model/json_string.h"
#include "model/random.h"
#include "model/rfc3339.h"
#include "model/secret_box.h"
#include "reporting/reporting_api.h"
#include "store/store.h"
#include "util/log.h"

namespace pushhook::server {
namespace {

using util::Log;
using util::LogLevel;

// The operator token: from configuration, else from <data_dir>/admin-token, else a new one
// written there with mode 0600.
model::StatusOr<std::string> OperatorToken(const ServeConfig& config) {
  if (!config.admin_token.empty()) return config.admin_token;
  const std::filesystem::path path = std::filesystem::path(config.data_dir) / "admin-token";
  std::ifstream in(path);
  std::string token;
  if (in && std::getline(in, token) && !token.empty()) {
    Log(LogLevel::kInfo, "operator token read from file", {{"path", path.string()}});
    return token;
  }
  token = "pha_" + model::RandomToken(40);
  const std::string tmp = path.string() + ".tmp";
  {
    const mode_t old_mask = ::umask(077);
    std::ofstream out(tmp, std::ios::trunc);
    ::umask(old_mask);
    out << token << "\n";
    out.flush();
    if (!out) return model::Internal("cannot write " + tmp);
  }
  ::chmod(tmp.c_str(), 0600);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return model::Internal("cannot write " + path.string() + ": " + ec.message());
  Log(LogLevel::kWarn, "no operator token configured: generated one",
      {{"path", path.string()}, {"hint", "read it from that file (mode 0600)"}});
  return token;
}

// The key that seals endpoint secrets: from configuration, else from <data_dir>/secrets-key,
// else a new one written there with mode 0600. Kept beside the database by default, but an
// operator who backs up or ships the database alone can keep it elsewhere (PUSHHOOK_SECRETS_KEY).
model::StatusOr<std::string> SecretsKey(const ServeConfig& config) {
  std::string encoded = config.secrets_key;
  const std::filesystem::path path = std::filesystem::path(config.data_dir) / "secrets-key";
  if (encoded.empty()) {
    std::ifstream in(path);
    std::getline(in, encoded);
  }
  if (encoded.empty()) {
    encoded = model::Base64Encode(model::RandomBytes(model::SecretBox::kKeyBytes));
    const mode_t old_mask = ::umask(077);
    std::ofstream out(path, std::ios::trunc);
    ::umask(old_mask);
    out << encoded << "\n";
    out.flush();
    if (!out) return model::Internal("cannot write " + path.string());
    Log(LogLevel::kInfo, "generated the key that seals endpoint secrets",
        {{"path", path.string()}});
  }
  auto key = model::Base64Decode(encoded);
  if (!key || key->size() != model::SecretBox::kKeyBytes) {
    return model::InvalidArgument("secrets_key must be base64 of 32 bytes");
  }
  return *key;
}

}  // namespace

class App::Impl {
 public:
  explicit Impl(ServeConfig config) : config_(std::move(config)) {}

  ~Impl() { Stop(); }

  model::Status Start() {
    std::error_code ec;
    std::filesystem::create_directories(config_.data_dir, ec);
    if (ec) {
      return model::InvalidArgument("cannot create data directory " + config_.data_dir + ": " +
                                    ec.message());
    }
    auto token = OperatorToken(config_);
    if (!token.ok()) return token.status();

    store::StoreOptions store_options;
    store_options.database = config_.database.empty()
                                 ? "sqlite://" + config_.data_dir + "/pushhook.db"
                                 : config_.database;
    store_options.durability_full = config_.durability_full;
    store_options.pool_size = config_.database_pool;
    store_options.aggregates = config_.reporting_aggregates;
    auto secrets_key = SecretsKey(config_);
    if (!secrets_key.ok()) return secrets_key.status();
    store_options.secrets_key = std::move(secrets_key.value());
    auto store = store::OpenStore(store_options);
    if (!store.ok()) return store.status();
    store_ = std::move(store.value());

    delivery::ClientOptions client_options;
    client_options.ca_file = config_.ca_file;
    client_options.allow_private_destinations = config_.allow_private_destinations;
    client_options.allow_http = config_.allow_http;
    client_ = std::make_unique<delivery::AsioClient>(client_options);

    delivery::DispatcherOptions dispatcher_options;
    dispatcher_options.schedule = config_.retry_schedule;
    dispatcher_options.timeout = config_.delivery_timeout;
    dispatcher_options.connect_timeout = config_.connect_timeout;
    dispatcher_options.disable_after = config_.disable_after;
    dispatcher_options.circuit = config_.circuit;
    dispatcher_options.shared = store_->shared();
    dispatcher_ =
        std::make_unique<delivery::Dispatcher>(*store_, *client_, clock_, dispatcher_options);
    if (model::Status s = dispatcher_->Start(); !s.ok()) return s;
    if (store_->shared()) {
      delivery::LeaseOptions lease_options;
      lease_options.node_id = config_.node_id.empty() ? DefaultNodeId() : config_.node_id;
      lease_options.lease = config_.lease;
      leases_ = std::make_unique<delivery::LeaseKeeper>(*store_, *dispatcher_, lease_options);
      leases_->Start();
      Log(LogLevel::kInfo, "sharing the database with other nodes",
          {{"node_id", lease_options.node_id}, {"lease_ms", config_.lease.count()}});
    }

    ingest::IngestLimits limits;
    limits.max_events = config_.max_events_per_request;
    ingest_ = std::make_unique<ingest::IngestHandler>(
        *store_, clock_, limits, config_.ingest_rate_limit,
        [this](std::vector<store::DueMessage> messages) {
          dispatcher_->Enqueue(std::move(messages));
        },
        [this] { return Overloaded(); });
    auth_ = std::make_unique<admin::Authenticator>(*store_, model::Sha256Hex(*token));
    admin::AdminOptions admin_options;
    admin_options.allow_http = config_.allow_http;
    admin_options.allow_private_destinations = config_.allow_private_destinations;
    admin_options.secret_overlap = std::chrono::hours(24);
    admin_ =
        std::make_unique<admin::AdminApi>(*store_, *dispatcher_, *auth_, clock_, admin_options);
    reporting_ = std::make_unique<reporting::ReportingApi>(*store_, *auth_);
    reporting_->Register(router_);

    router_.Add("POST", "/v1/events", [this](http::Request&& r, http::Responder respond) {
      ingest_->HandlePost(std::move(r), std::move(respond));
    });
    router_.Add("OPTIONS", "/v1/events", [this](http::Request&& r, http::Responder respond) {
      ingest_->HandlePreflight(std::move(r), std::move(respond));
    });
    admin_->Register(router_);
    router_.Add("GET", "/metrics", [this](http::Request&&, http::Responder respond) {
      http::Response response;
      response.body = MetricsText();
      response.With("content-type", "text/plain; version=0.0.4; charset=utf-8");
      respond(std::move(response));
    });
    router_.Add("GET", "/v1/cluster", [this](http::Request&& r, http::Responder respond) {
      http::Response error;
      auto scope = auth_->Authenticate(r, &error);
      if (!scope) return respond(std::move(error));
      if (!scope->is_operator) {
        return respond(http::Response::Error(403, "forbidden", "operator token required"));
      }
      respond(http::Response::Json(200, ClusterJson()));
    });
    router_.Add("GET", "/healthz", [](http::Request&&, http::Responder respond) {
      respond(http::Response::Json(200, R"({"status":"ok"})"));
    });
    router_.Add("GET", "/readyz", [this](http::Request&&, http::Responder respond) {
      if (!accepting_.load() || !store_->Ready()) {
        return respond(http::Response::Error(503, "unavailable", "not ready"));
      }
      respond(http::Response::Json(200, R"({"status":"ready"})"));
    });

    http::ServerLimits server_limits;
    server_limits.max_body_bytes = config_.max_body_bytes;
    server_limits.header_timeout = config_.header_timeout;
    server_limits.body_timeout = config_.body_timeout;
    http_ = std::make_unique<http::Server>(server_limits,
                                           [this](http::Request&& r, http::Responder respond) {
                                             router_.Handle(std::move(r), std::move(respond));
                                           });
    if (model::Status s = http_->Listen(config_.listen); !s.ok()) return s;
    http_->Start(config_.http_threads);
    accepting_ = true;
    housekeeping_ = std::thread([this] { Housekeeping(); });
    Log(LogLevel::kInfo, "listening",
        {{"address", config_.listen.substr(0, config_.listen.rfind(':')) + ":" +
                         std::to_string(http_->port())},
         {"port", static_cast<int>(http_->port())}});
    return model::Status::Ok();
  }

  uint16_t port() const { return http_ ? http_->port() : 0; }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    accepting_ = false;
    {
      std::lock_guard lock(housekeeping_mu_);
      housekeeping_stop_ = true;
    }
    housekeeping_cv_.notify_all();
    if (housekeeping_.joinable()) housekeeping_.join();
    if (http_) {
      http_->StopAccepting();
      http_->Stop();
    }
    if (leases_) leases_->Stop(false);  // no new endpoints while deliveries finish
    if (dispatcher_) dispatcher_->Stop(config_.shutdown_grace);
    if (client_) client_->Stop();
    // Deliveries are over: give the endpoints back so that other nodes take them at once.
    if (leases_) leases_->Stop(true);
    // The store's destructor drains queued writes (attempt records, late ingest commits) to
    // disk; their callbacks may still reach the dispatcher, so the dispatcher goes after it.
    // The store's notices reach the lease keeper until the store is gone.
    store_.reset();
    leases_.reset();
    dispatcher_.reset();
  }

 private:
  // The Prometheus text exposition of what ingest and delivery have done (DESIGN section 8).
  std::string MetricsText() const {
    const ingest::IngestHandler::Counts in = ingest_->counts();
    const delivery::DispatcherCounts out = dispatcher_->counts();
    std::string text;
    const auto metric = [&text](std::string_view name, std::string_view type,
                                std::string_view help) {
      text += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " +
              std::string(name) + " " + std::string(type) + "\n";
    };
    const auto sample = [&text](std::string_view series, auto value) {
      std::ostringstream line;
      line << series << ' ' << value << '\n';
      text += line.str();
    };
    metric("pushhook_ingest_events_total", "counter", "Events taken by ingest, by result.");
    sample("pushhook_ingest_events_total{result=\"accepted\"}", in.accepted);
    sample("pushhook_ingest_events_total{result=\"duplicate\"}", in.duplicates);
    metric("pushhook_ingest_requests_refused_total", "counter",
           "Ingest requests answered 4xx (rejected) or 429/503 (back-pressure).");
    sample("pushhook_ingest_requests_refused_total{reason=\"invalid\"}", in.rejected);
    sample("pushhook_ingest_requests_refused_total{reason=\"overload\"}", in.refused);
    metric("pushhook_delivery_attempts_total", "counter", "Delivery attempts, by outcome.");
    sample("pushhook_delivery_attempts_total{outcome=\"delivered\"}", out.delivered);
    sample("pushhook_delivery_attempts_total{outcome=\"retry\"}", out.retries);
    sample("pushhook_delivery_attempts_total{outcome=\"failed\"}", out.failed);
    sample("pushhook_delivery_attempts_total{outcome=\"endpoint_disabled\"}", out.endpoint_waits);
    metric("pushhook_delivery_attempt_duration_seconds", "histogram",
           "Time from sending an attempt to its outcome.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < delivery::kLatencyBuckets.size(); ++i) {
      cumulative += out.latency_counts[i];
      std::ostringstream le;
      le << delivery::kLatencyBuckets[i];
      sample("pushhook_delivery_attempt_duration_seconds_bucket{le=\"" + le.str() + "\"}",
             cumulative);
    }
    cumulative += out.latency_counts.back();
    sample("pushhook_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"}", cumulative);
    sample("pushhook_delivery_attempt_duration_seconds_sum", out.latency_sum_seconds);
    sample("pushhook_delivery_attempt_duration_seconds_count", cumulative);
    metric("pushhook_delivery_queue_depth", "gauge",
           "Messages waiting for delivery (due, scheduled for a retry, or parked).");
    sample("pushhook_delivery_queue_depth", out.backlog);
    metric("pushhook_delivery_in_flight", "gauge", "Delivery requests open now.");
    sample("pushhook_delivery_in_flight", out.in_flight);
    metric("pushhook_delivery_open_circuits", "gauge", "Endpoints whose circuit is open.");
    sample("pushhook_delivery_open_circuits", out.open_circuits);
    if (leases_) {
      const delivery::ClusterStatus cluster = leases_->status();
      metric("pushhook_cluster_owned_endpoints", "gauge",
             "Endpoints whose lease this node holds (it delivers for them).");
      sample("pushhook_cluster_owned_endpoints", cluster.owned.size());
      metric("pushhook_cluster_live_nodes", "gauge", "Nodes renewing leases on the database.");
      sample("pushhook_cluster_live_nodes", cluster.nodes.size());
    }
    return text;
  }

  static std::string DefaultNodeId() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
      std::snprintf(host, sizeof host, "node");
    }
    return std::string(host) + "-" + std::to_string(::getpid());
  }

  // GET /v1/cluster: this node, its endpoints, and the live nodes with their lease counts.
  std::string ClusterJson() const {
    std::string json = "{";
    if (!leases_) {
      json +=
          "\"shared\":false,\"node_id\":null,\"lease_ms\":null,\"owned_endpoints\":null,"
          "\"nodes\":[]}";
      return json;
    }
    const delivery::ClusterStatus status = leases_->status();
    json += "\"shared\":true,\"node_id\":";
    model::AppendJsonString(json, status.node_id);
    json += ",\"lease_ms\":" + std::to_string(status.lease_ms) +
            ",\"connected\":" + (status.connected ? "true" : "false") +
            ",\"endpoints\":" + std::to_string(status.endpoints) + ",\"owned_endpoints\":[";
    for (size_t i = 0; i < status.owned.size(); ++i) {
      if (i > 0) json += ",";
      model::AppendJsonString(json, status.owned[i]);
    }
    json += "],\"nodes\":[";
    for (size_t i = 0; i < status.nodes.size(); ++i) {
      const store::NodeInfo& node = status.nodes[i];
      if (i > 0) json += ",";
      json += "{\"node_id\":";
      model::AppendJsonString(json, node.node_id);
      json += ",\"last_seen\":";
      model::AppendJsonString(json, model::FormatRfc3339Ms(node.last_seen_ms));
      json += ",\"endpoints\":" + std::to_string(node.endpoints) + "}";
    }
    json += "]}";
    return json;
  }

  // Why ingest should refuse work now, or nullopt. Cheap: read on every ingest request.
  std::optional<std::string> Overloaded() const {
    if (low_disk_.load(std::memory_order_relaxed)) {
      return "the data folder's disk is nearly full";
    }
    if (dispatcher_->counts().backlog > config_.max_backlog) {
      return "too many messages are waiting for delivery";
    }
    return std::nullopt;
  }

  // Once a second: watch free disk; now and then: purge old messages in small batches, so
  // that retention never holds the writer long.
  void Housekeeping() {
    constexpr int kPurgeBatch = 500;
    const auto purge_every = std::min<std::chrono::milliseconds>(
        std::chrono::minutes(1),
        std::min(config_.retention_delivered, config_.retention_failed) / 2);
    auto next_purge = std::chrono::steady_clock::now();
    std::unique_lock lock(housekeeping_mu_);
    while (!housekeeping_stop_) {
      struct statvfs fs {};
      if (::statvfs(config_.data_dir.c_str(), &fs) == 0) {
        const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
        const bool low = free_bytes < config_.min_free_disk_bytes;
        if (low != low_disk_.exchange(low)) {
          Log(low ? LogLevel::kWarn : LogLevel::kInfo,
              low ? "disk nearly full: refusing ingest" : "disk space recovered",
              {{"free_bytes", free_bytes}});
        }
      }
      if (std::chrono::steady_clock::now() >= next_purge) {
        lock.unlock();
        const int64_t now = clock_.NowMs();
        size_t total = 0;
        for (int round = 0; round < 100; ++round) {
          auto purged = store_->PurgeMessages(now - config_.retention_delivered.count(),
                                              now - config_.retention_failed.count(), kPurgeBatch);
          if (!purged.ok() || *purged == 0) break;
          total += *purged;
          if (*purged < static_cast<size_t>(kPurgeBatch)) break;
        }
        if (total > 0) Log(LogLevel::kInfo, "retention purged messages", {{"count", total}});
        next_purge = std::chrono::steady_clock::now() + purge_every;
        lock.lock();
      }
      housekeeping_cv_.wait_for(lock, std::chrono::seconds(1),
                                [this] { return housekeeping_stop_; });
    }
  }

  const ServeConfig config_;
  model::SystemClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<delivery::AsioClient> client_;
  std::unique_ptr<delivery::Dispatcher> dispatcher_;
  std::unique_ptr<delivery::LeaseKeeper> leases_;  // sharing the database with other nodes
  std::unique_ptr<ingest::IngestHandler> ingest_;
  std::unique_ptr<admin::Authenticator> auth_;
  std::unique_ptr<admin::AdminApi> admin_;
  std::unique_ptr<reporting::ReportingApi> reporting_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::atomic<bool> accepting_{false};
  std::atomic<bool> low_disk_{false};
  std::thread housekeeping_;
  std::mutex housekeeping_mu_;
  std::condition_variable housekeeping_cv_;
  bool housekeeping_stop_ = false;  // guarded by housekeeping_mu_
  bool stopped_ = false;
};

App::App(ServeConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
App::~App() = default;
model::Status App::Start() { return impl_->Start(); }
uint16_t App::port() const { return impl_->port(); }
void App::Stop() { impl_->Stop(); }

}  // namespace pushhook::server
