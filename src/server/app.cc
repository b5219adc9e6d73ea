#include "server/app.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <thread>

#include "admin/admin_api.h"
#include "admin/auth.h"
#include "delivery/asio_client.h"
#include "delivery/dispatcher.h"
#include "delivery/lease_keeper.h"
#include "http/router.h"
#include "http/server.h"
#include "ingest/ingest_handler.h"
#include "model/clock.h"
#include "model/digest.h"
#include "model/json_string.h"
#include "model/rfc3339.h"
#include "reporting/reporting_api.h"
#include "server/key_files.h"
#include "server/metrics.h"
#include "store/coordination.h"
#include "store/open_store.h"
#include "store/store.h"
#include "util/log.h"
#include "web/dashboard.h"

namespace pushhook::server {
namespace {

using util::Log;
using util::LogLevel;

constexpr std::string_view kEventsPath = "/v1/events";

// Whether `path` reaches ingest's route: the router takes no empty segment for one ("//v1/events"
// and "/v1/events/" reach it too), so neither is a reason to leave an answer uncounted.
bool IsEventsPath(std::string_view path) {
  constexpr std::string_view kSegments[] = {"v1", "events"};
  size_t matched = 0;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (segment.empty()) continue;
    if (matched == std::size(kSegments) || segment != kSegments[matched]) return false;
    ++matched;
  }
  return matched == std::size(kSegments);
}

}  // namespace

class App::Impl {
 public:
  explicit Impl(ServeConfig config) : config_(std::move(config)) {}

  ~Impl() { Stop(); }

  model::Status Listen() {
    // The HTTP server first: bad TLS files and a listen address that cannot be bound are found
    // before anything is created on disk. Connections that arrive before Start() wait in the
    // listening socket's backlog.
    http::ServerLimits server_limits;
    server_limits.max_body_bytes = config_.max_body_bytes;
    server_limits.header_timeout = config_.header_timeout;
    server_limits.body_timeout = config_.body_timeout;
    http_ = std::make_unique<http::Server>(
        server_limits,
        [this](http::Request&& r, http::Responder respond) {
          router_.Handle(std::move(r), std::move(respond));
        },
        [this](std::string_view path, http::Response& response) {
          if (!IsEventsPath(path)) return;
          ingest::AddCorsHeaders(response);
          ingest_->CountAnswer(response.status);
        });
    if (!config_.tls_cert_file.empty()) {
      if (model::Status s = http_->EnableTls(config_.tls_cert_file, config_.tls_key_file);
          !s.ok()) {
        return s;
      }
    }
    if (!config_.ca_file.empty()) {
      if (model::Status s = delivery::AsioClient::CheckCaFile(config_.ca_file); !s.ok()) return s;
    }
    if (model::Status s = http_->Listen(config_.listen); !s.ok()) return s;
    listening_ = true;
    return model::Status::Ok();
  }

  model::Status Start() {
    if (!listening_) {
      if (model::Status s = Listen(); !s.ok()) return s;
    }
    model::Status s = OpenAndServe();
    if (!s.ok()) {
      // A start that fails leaves no key file it made behind (README): the next start would
      // take a key that seals nothing, or a token nobody was told of, for the real one.
      for (const std::filesystem::path& file : made_files_) {
        std::error_code ec;
        std::filesystem::remove(file, ec);
      }
    }
    made_files_.clear();
    return s;
  }

  uint16_t port() const { return http_ ? http_->port() : 0; }

  std::vector<std::string> Routes() const { return router_.Routes(); }

  model::Status ReloadTls() {
    if (config_.tls_cert_file.empty() || !http_) {
      return model::InvalidArgument("not serving HTTPS: there is no certificate to reload");
    }
    return http_->ReloadTls();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    accepting_ = false;
    // Requests in flight and deliveries in flight share the grace period.
    const auto deadline = std::chrono::steady_clock::now() + config_.shutdown_grace;
    {
      std::lock_guard lock(housekeeping_mu_);
      housekeeping_stop_ = true;
    }
    housekeeping_cv_.notify_all();
    if (housekeeping_.joinable()) housekeeping_.join();
    // The gate: no new connections, and every request already taken is answered while the
    // store still runs (ingest answers once its group commit is durable). Only then stop.
    if (http_) {
      if (!http_->Drain(deadline)) {
        Log(LogLevel::kWarn, "shutdown grace over: closing connections with requests in flight",
            {{"grace_ms", config_.shutdown_grace.count()}});
      }
      http_->Stop();
    }
    if (leases_) leases_->Stop(false);  // no new endpoints while deliveries finish
    if (dispatcher_) {
      dispatcher_->Stop(std::max<std::chrono::milliseconds>(
          std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(
                                            deadline - std::chrono::steady_clock::now())));
    }
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
  // The part of Start() after Listen(): key files, store, dispatcher, routes. Key files it makes
  // are put in made_files_ while a failure should still take them back.
  model::Status OpenAndServe() {
    std::error_code ec;
    std::filesystem::create_directories(config_.data_dir, ec);
    if (ec) {
      return model::InvalidArgument("cannot create data directory " + config_.data_dir + ": " +
                                    ec.message());
    }
    const std::filesystem::path data_dir(config_.data_dir);
    const std::filesystem::path token_file = data_dir / "admin-token";
    const std::filesystem::path key_file = data_dir / "secrets-key";
    // Only a file this start creates is ever taken back; one that was there stays as it is.
    const bool had_token_file = std::filesystem::exists(token_file, ec);
    const bool had_key_file = std::filesystem::exists(key_file, ec);
    bool made_token = false;
    auto token = LoadOrCreateOperatorToken(config_.admin_token, config_.data_dir, &made_token);
    if (!token.ok()) return token.status();
    if (made_token && !had_token_file) made_files_.push_back(token_file);

    store::StoreOptions store_options;
    store_options.database = config_.DatabaseUrl();
    store_options.durability_full = config_.durability_full;
    store_options.pool_size = config_.database_pool;
    bool made_key = false;
    auto secrets_key = LoadOrCreateSecretsKey(config_.secrets_key, config_.data_dir, &made_key);
    if (!secrets_key.ok()) return secrets_key.status();
    if (made_key && !had_key_file) made_files_.push_back(key_file);
    store_options.secrets_key = std::move(secrets_key.value());
    auto store = store::OpenStore(store_options);
    if (!store.ok() && made_key && store::IsWrongSecretsKey(store.status())) {
      // A database restored without its key: the key just made can never open it (Start takes
      // it back).
      return model::InvalidArgument(
          "this database's endpoint secrets were sealed with a secrets key, and there is none "
          "here: put the key that sealed them in " +
          key_file.string() + " (keep it with your backups) or set PUSHHOOK_SECRETS_KEY");
    }
    if (!store.ok() && store::IsWrongSecretsKey(store.status())) {
      const std::string given = config_.secrets_key.empty()
                                    ? "the secrets key in " + key_file.string()
                                    : std::string(
                                          "the secrets key given as secrets_key "
                                          "(PUSHHOOK_SECRETS_KEY)");
      return model::InvalidArgument(
          given +
          " is not the one that sealed this database's endpoint secrets: start with that key "
          "(kept with your backups); every node sharing a database needs the same one");
    }
    if (!store.ok()) return store.status();
    if (made_key) {
      // The store now holds this key's check: from here on the key is the database's, and
      // stays whatever happens next.
      std::erase(made_files_, key_file);
      Log(LogLevel::kInfo, "generated the key that seals endpoint secrets",
          {{"path", key_file.string()}});
    }
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
    dispatcher_options.shared = store_->coordination() != nullptr;
    dispatcher_options.max_site_backlog = config_.SiteBacklogLimit();
    dispatcher_ =
        std::make_unique<delivery::Dispatcher>(*store_, *client_, clock_, dispatcher_options);
    if (model::Status s = dispatcher_->Start(); !s.ok()) return s;
    if (store::Coordination* coordination = store_->coordination()) {
      delivery::LeaseOptions lease_options;
      lease_options.node_id = config_.node_id.empty() ? DefaultNodeId() : config_.node_id;
      lease_options.lease = config_.lease;
      leases_ = std::make_unique<delivery::LeaseKeeper>(*store_, *coordination, *dispatcher_,
                                                        lease_options);
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
        [this](const std::string& site_id) { return Overloaded(site_id); });
    auth_ = std::make_unique<admin::Authenticator>(*store_, model::Sha256Hex(*token));
    admin::AdminOptions admin_options;
    admin_options.allow_http = config_.allow_http;
    admin_options.allow_private_destinations = config_.allow_private_destinations;
    admin_options.site_changed = [this](const std::string& site_id) {
      ingest_->SiteChanged(site_id);
    };
    admin_options.overloaded = [this](const std::string& site_id) { return Overloaded(site_id); };
    admin_ =
        std::make_unique<admin::AdminApi>(*store_, *dispatcher_, *auth_, clock_, admin_options);
    reporting_ = std::make_unique<reporting::ReportingApi>(*store_, *auth_);
    reporting_->Register(router_);

    router_.Add("POST", kEventsPath, [this](http::Request&& r, http::Responder respond) {
      ingest_->HandlePost(std::move(r), std::move(respond));
    });
    router_.Add("OPTIONS", kEventsPath, [this](http::Request&& r, http::Responder respond) {
      ingest_->HandlePreflight(std::move(r), std::move(respond));
    });
    // A worker posting to a mistyped path (/v1/event, or the server's bare URL) reads the 404
    // or 405, as it reads every answer on ingest's route: without CORS headers the browser hides
    // it as a network failure, and the SDK would keep the events and never say why. On ingest's
    // own route (a 405, a query that cannot be read) the refusal counts as one.
    router_.OnRefusal([this](std::string_view path, http::Response& response) {
      ingest::AddCorsHeaders(response);
      if (IsEventsPath(path)) ingest_->CountAnswer(response.status);
    });
    admin_->Register(router_);
    router_.Add("GET", "/metrics", [this](http::Request&&, http::Responder respond) {
      http::Response response;
      response.body = PrometheusText(Metrics());
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
    web::RegisterDashboard(router_);
    router_.Add("GET", "/healthz", [](http::Request&&, http::Responder respond) {
      respond(http::Response::Json(200, R"({"status":"ok"})"));
    });
    router_.Add("GET", "/readyz", [this](http::Request&&, http::Responder respond) {
      if (!accepting_.load() || !store_->Ready()) {
        return respond(http::Response::Error(503, "unavailable", "not ready"));
      }
      respond(http::Response::Json(200, R"({"status":"ready"})"));
    });

    if (made_token) {
      // Said only now that nothing can fail any more: a token a failed start made is gone again.
      Log(LogLevel::kWarn, "no operator token configured: generated one",
          {{"path", token_file.string()}, {"hint", "read it from that file (mode 0600)"}});
    }
    http_->Start(config_.http_threads);
    accepting_ = true;
    housekeeping_ = std::thread([this] { Housekeeping(); });
    Log(LogLevel::kInfo, "listening",
        {{"address", config_.listen.substr(0, config_.listen.rfind(':')) + ":" +
                         std::to_string(http_->port())},
         {"port", static_cast<int>(http_->port())},
         {"tls", !config_.tls_cert_file.empty()}});
    return model::Status::Ok();
  }

  MetricsSnapshot Metrics() const {
    MetricsSnapshot snapshot{ingest_->counts(), dispatcher_->counts(), store_->counts(),
                             std::nullopt};
    if (leases_) snapshot.cluster = leases_->status();
    return snapshot;
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

  // Why ingest (or a replay) for the site should refuse work now, or nullopt. Cheap: read on
  // every ingest request.
  std::optional<std::string> Overloaded(const std::string& site_id) const {
    if (low_disk_.load(std::memory_order_relaxed)) {
      return "the data folder's disk is nearly full";
    }
    const delivery::DeliveryCounts counts = dispatcher_->counts();
    if (counts.backlog > config_.max_backlog) return "too many messages are waiting for delivery";
    if (std::binary_search(counts.backlogged_sites.begin(), counts.backlogged_sites.end(),
                           site_id)) {
      return "more than " + std::to_string(config_.SiteBacklogLimit()) +
             " of this site's messages are waiting for delivery (its endpoints are behind or "
             "failing; see its message log)";
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
  bool listening_ = false;
  // The key files this start made while a failure should still take them back (Start).
  std::vector<std::filesystem::path> made_files_;
};

App::App(ServeConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
App::~App() = default;
model::Status App::Listen() { return impl_->Listen(); }
model::Status App::Start() { return impl_->Start(); }
uint16_t App::port() const { return impl_->port(); }
std::vector<std::string> App::Routes() const { return impl_->Routes(); }
void App::Stop() { impl_->Stop(); }
model::Status App::ReloadTls() { return impl_->ReloadTls(); }

}  // namespace pushhook::server
