#include "receive/receiver.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <queue>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "http/http_types.h"
#include "http/server.h"
#include "model/json_string.h"
#include "model/rfc3339.h"
#include "model/signature.h"
#include "receive/output.h"
#include "receive/payloads.h"

namespace pushhook::receive {
namespace {

// Requests waiting for the writer; beyond this the receiver answers 503 rather than grow without
// bound while the disk is slow.
constexpr size_t kMaxQueuedRequests = 16'384;
constexpr std::chrono::seconds kWriteErrorLogInterval{1};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes `line`, a JSON object, with the time first, as serve's log lines have it (util::Log).
void LogLine(std::string_view line) {
  std::string out = "{\"ts\":\"" + model::FormatRfc3339Ms(NowMs()) + "\",";
  out += line.substr(1);
  out.push_back('\n');
  // One write per line, so lines from several threads do not interleave.
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void LogError(std::string_view message) {
  std::string line = R"({"level":"error","msg":)";
  model::AppendJsonString(line, message);
  line += "}";
  LogLine(line);
}

http::Response InvalidSignature(std::string_view message) {
  return http::Response::Error(401, "invalid_signature", message);
}

}  // namespace

class Receiver::Impl {
 public:
  explicit Impl(ReceiverOptions options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  model::Status Start() {
    if (started_) return model::Internal("Receiver::Start() called twice");
    if (auto s = ValidateOptions(); !s.ok()) return s;
    if (!options_.out_path.empty()) {
      auto output = OpenOutput(options_.out_path, options_.sync_writes);
      if (!output.ok()) return output.status();
      auto ids = (*output)->StoredIds();
      if (!ids.ok()) {
        (*output)->Close().IgnoreError();
        return ids.status();
      }
      for (StoredWebhook& stored : *ids) {
        IdShard& shard = ShardOf(stored.webhook_id);
        shard.seen.insert_or_assign(std::move(stored.webhook_id), stored.elements);
      }
      output_ = std::move(*output);
    }
    http::ServerLimits limits;
    limits.max_body_bytes = options_.max_body_bytes;
    server_ = std::make_unique<http::Server>(
        limits,
        [this](http::Request&& request, http::Responder respond) {
          Handle(std::move(request), std::move(respond));
        },
        [this](std::string_view, http::Response& answer) { RefusedByServer(answer); },
        [this](const http::Request& head) { return CheckHead(head); });
    if (!options_.tls_cert_file.empty()) {
      if (auto s = server_->EnableTls(options_.tls_cert_file, options_.tls_key_file); !s.ok()) {
        server_.reset();
        if (output_) output_->Close().IgnoreError();
        output_.reset();
        return s;
      }
    }
    if (auto s = server_->Listen(options_.listen); !s.ok()) {
      server_.reset();
      if (output_) output_->Close().IgnoreError();
      output_.reset();
      return s;
    }
    if (output_) writer_ = std::thread([this] { WriterLoop(); });
    if (options_.respond_delay.count() > 0) delayer_ = std::thread([this] { DelayLoop(); });
    server_->Start(options_.threads);
    started_ = true;
    return model::Status::Ok();
  }

  void Stop() {
    if (!started_ || stopped_) return;
    stopped_ = true;
    server_->StopAccepting();
    // Write what is queued and answer it while the server still runs; requests that arrive on
    // open connections from now on are answered 503.
    if (writer_.joinable()) {
      {
        std::lock_guard lock(queue_mu_);
        writer_closing_ = true;
      }
      queue_cv_.notify_one();
      writer_.join();
    }
    if (delayer_.joinable()) {
      // Held answers go out now rather than be lost.
      {
        std::lock_guard lock(delay_mu_);
        delay_stop_ = true;
      }
      delay_cv_.notify_one();
      delayer_.join();
    }
    // The answers just released go out before the server stops.
    server_->Drain(std::chrono::steady_clock::now() + std::chrono::seconds(2));
    server_->Stop();
    if (output_) {
      if (auto s = output_->Close(); !s.ok()) LogError(s.message());
    }
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }

  model::Status ReloadTls() {
    if (!started_ || options_.tls_cert_file.empty()) {
      return model::InvalidArgument("not serving HTTPS: there is no certificate to reload");
    }
    return server_->ReloadTls();
  }

  ReceiverCounts counts() const {
    return {received_.load(std::memory_order_relaxed), stored_.load(std::memory_order_relaxed),
            duplicates_.load(std::memory_order_relaxed), rejected_.load(std::memory_order_relaxed)};
  }

 private:
  model::Status ValidateOptions() {
    keys_.clear();
    if (options_.secrets.empty()) {
      return model::InvalidArgument("at least one webhook secret (whsec_...) is required");
    }
    for (size_t i = 0; i < options_.secrets.size(); ++i) {
      auto key = model::DecodeSecret(options_.secrets[i]);
      if (!key) {
        // The secret itself is never echoed: it may be a real one with a typo.
        const std::string which =
            options_.secrets.size() == 1 ? "the secret" : "secret #" + std::to_string(i + 1);
        return model::InvalidArgument(which +
                                      " is not a webhook secret: expected \"whsec_\" followed by "
                                      "base64");
      }
      keys_.push_back(std::move(*key));
    }
    std::string host;
    uint16_t port = 0;
    if (!http::SplitHostPort(options_.listen, &host, &port)) {
      return model::InvalidArgument("listen address must be host:port, got '" + options_.listen +
                                    "'");
    }
    if (options_.threads < 1) {
      return model::InvalidArgument("threads must be at least 1, got " +
                                    std::to_string(options_.threads));
    }
    if (options_.tolerance.count() < 0) {
      return model::InvalidArgument("timestamp tolerance must not be negative");
    }
    if (options_.max_body_bytes == 0) {
      return model::InvalidArgument("max body size must be at least 1 byte");
    }
    if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
      return model::InvalidArgument(options_.tls_cert_file.empty()
                                        ? "--tls-key " + options_.tls_key_file +
                                              " is given without --tls-cert: HTTPS needs both"
                                        : "--tls-cert " + options_.tls_cert_file +
                                              " is given without --tls-key: HTTPS needs both");
    }
    return model::Status::Ok();
  }

  void Handle(http::Request&& request, http::Responder respond) {
    if (options_.respond_delay.count() > 0) respond = Delayed(std::move(respond));
    if (request.method == "POST") return HandleWebhook(std::move(request), std::move(respond));
    // HEAD as GET without the body (the server leaves it out), for uptime checks and curl -I.
    if (request.path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
      return respond(http::Response::Json(200, R"({"status":"ok"})"));
    }
    respond(http::Response::Error(405, "method_not_allowed",
                                  "method " + request.method +
                                      " is not allowed: webhooks are POSTed to any path, and "
                                      "GET /healthz answers 200")
                .With("allow", request.path == "/healthz" ? "GET, HEAD, POST" : "POST"));
  }

  // A responder that holds its answer until respond_delay after the request arrived.
  http::Responder Delayed(http::Responder respond) {
    const auto due = std::chrono::steady_clock::now() + options_.respond_delay;
    return [this, due, respond = std::move(respond)](http::Response response) mutable {
      {
        std::lock_guard lock(delay_mu_);
        delayed_.push(DelayedAnswer{due, std::move(respond), std::move(response)});
      }
      delay_cv_.notify_one();
    };
  }

  void DelayLoop() {
    std::unique_lock lock(delay_mu_);
    for (;;) {
      if (delayed_.empty()) {
        if (delay_stop_) return;
        delay_cv_.wait(lock);
        continue;
      }
      const auto due = delayed_.top().due;
      if (!delay_stop_ && std::chrono::steady_clock::now() < due) {
        delay_cv_.wait_until(lock, due);
        continue;
      }
      DelayedAnswer answer = std::move(const_cast<DelayedAnswer&>(delayed_.top()));
      delayed_.pop();
      lock.unlock();
      answer.respond(std::move(answer.response));
      lock.lock();
    }
  }

  // A webhook's signature headers, as far as they can be checked without its body.
  struct SignatureHeaders {
    std::string_view id;
    int64_t timestamp = 0;  // Unix seconds
    std::string_view signature;
  };

  // Reads the three signature headers into `out`: present, and a timestamp within the tolerance
  // of `now_ms`. Answers "" when they pass, else what the 401 says. Svix's SDKs send the same
  // three values as svix-id, svix-timestamp and svix-signature, and verify either set: so does
  // this receiver.
  std::string_view ReadSignatureHeaders(const http::Request& request, int64_t now_ms,
                                        SignatureHeaders* out) const {
    const auto header = [&request](std::string_view standard, std::string_view svix) {
      const std::string_view value = request.Header(standard);
      return value.empty() ? request.Header(svix) : value;
    };
    out->id = header("webhook-id", "svix-id");
    const std::string_view timestamp_text = header("webhook-timestamp", "svix-timestamp");
    out->signature = header("webhook-signature", "svix-signature");
    if (out->id.empty()) return "missing webhook-id header";
    if (timestamp_text.empty()) return "missing webhook-timestamp header";
    if (out->signature.empty()) return "missing webhook-signature header";
    const std::optional<int64_t> timestamp = model::ParseWebhookTimestamp(timestamp_text);
    if (!timestamp) return "invalid webhook-timestamp header";
    const int64_t now = now_ms / 1000;
    const int64_t tolerance = options_.tolerance.count();
    if (*timestamp < now - tolerance || *timestamp > now + tolerance) {
      return "timestamp outside tolerance";
    }
    out->timestamp = *timestamp;
    return {};
  }

  // The server's head check: a POST whose signature headers already fail is answered at its
  // header, before its body (up to --max-body-bytes of it) is read.
  std::optional<http::Response> CheckHead(const http::Request& head) {
    if (head.method != "POST") return std::nullopt;
    SignatureHeaders headers;
    const std::string_view refusal = ReadSignatureHeaders(head, NowMs(), &headers);
    if (refusal.empty()) return std::nullopt;
    received_.fetch_add(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return InvalidSignature(refusal);
  }

  void HandleWebhook(http::Request&& request, http::Responder respond) {
    received_.fetch_add(1, std::memory_order_relaxed);
    const int64_t received_at_ms = NowMs();
    // Checked again, as the head check passed them: a body that arrived slowly may have
    // outlived the tolerance.
    SignatureHeaders headers;
    const std::string_view refusal = ReadSignatureHeaders(request, received_at_ms, &headers);
    if (!refusal.empty()) return Reject(respond, InvalidSignature(refusal));
    if (!Verify(request.path, headers.signature, headers.id, headers.timestamp, request.body)) {
      return Reject(respond, InvalidSignature("no signature matches"));
    }

    AcceptedRequest accepted{std::string(headers.id), received_at_ms, {}};
    if (auto error = SplitPayloads(std::move(request.body), &accepted.payloads)) {
      return Reject(respond, std::move(*error));
    }

    {
      // A payload is known by its webhook id and index (DESIGN section 1): a resend stores
      // nothing, and a batch sent again with more elements stores only those past the ones
      // already stored.
      IdShard& shard = ShardOf(accepted.webhook_id);
      std::lock_guard lock(shard.mu);
      const auto seen = shard.seen.find(accepted.webhook_id);
      const size_t stored = seen == shard.seen.end() ? 0 : seen->second;
      const size_t elements = accepted.payloads.size();
      if (elements <= stored && seen != shard.seen.end()) {
        duplicates_.fetch_add(1, std::memory_order_relaxed);
        return respond(http::Response::Empty(204));
      }
      // The same id is being written right now: answer this copy with that write's outcome, so
      // a 204 never stands for a payload that did not reach the disk; a copy with more
      // elements than that write is asked to come back once it is done.
      if (auto it = shard.in_flight.find(accepted.webhook_id); it != shard.in_flight.end()) {
        if (elements > it->second.elements) {
          rejected_.fetch_add(1, std::memory_order_relaxed);
          return respond(http::Response::FromStatus(model::Unavailable(
              "webhook " + accepted.webhook_id + " is being stored; send it again")));
        }
        it->second.waiters.push_back(std::move(respond));
        return;
      }
      accepted.payloads.erase(accepted.payloads.begin(),
                              accepted.payloads.begin() + static_cast<std::ptrdiff_t>(stored));
      accepted.first_index = stored;
      if (!output_) {
        shard.seen.insert_or_assign(std::move(accepted.webhook_id), elements);
        stored_.fetch_add(accepted.payloads.size(), std::memory_order_relaxed);
        return respond(http::Response::Empty(204));
      }
      shard.in_flight.try_emplace(accepted.webhook_id, InFlight{elements, {}});
    }

    std::unique_lock lock(queue_mu_);
    if (writer_closing_ || queue_requests_.size() >= kMaxQueuedRequests) {
      const bool closing = writer_closing_;
      lock.unlock();
      return Finish(accepted,
                    model::Unavailable(closing ? "the receiver is shutting down"
                                               : "the receiver is overloaded"),
                    std::move(respond));
    }
    queue_requests_.push_back(std::move(accepted));
    queue_responders_.push_back(std::move(respond));
    lock.unlock();
    queue_cv_.notify_one();
  }

  // A request the HTTP server answered itself, before it reached HandleWebhook: too large, a
  // header too long, malformed, or too slow. It is counted as received and rejected, and a
  // 413 is logged (at most once a second): the sender's webhook is lost to this receiver, and
  // a sender that retries gets the same answer every time.
  void RefusedByServer(const http::Response& answer) {
    received_.fetch_add(1, std::memory_order_relaxed);
    rejected_.fetch_add(1, std::memory_order_relaxed);
    if (answer.status != 413) return;
    const int64_t now = NowMs();
    int64_t last = last_refusal_log_ms_.load(std::memory_order_relaxed);
    if (now - last < 1000 ||
        !last_refusal_log_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      return;
    }
    LogError("refused a request body over " + std::to_string(options_.max_body_bytes) +
             " bytes (413): raise --max-body-bytes to take it");
  }

  void Reject(const http::Responder& respond, http::Response response) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    respond(std::move(response));
  }

  // Answers a request that was in flight, and every copy of it that arrived meanwhile.
  void Finish(const AcceptedRequest& request, const model::Status& status,
              http::Responder respond) {
    std::vector<http::Responder> waiters;
    {
      IdShard& shard = ShardOf(request.webhook_id);
      std::lock_guard lock(shard.mu);
      auto node = shard.in_flight.extract(request.webhook_id);
      waiters = std::move(node.mapped().waiters);
      if (status.ok()) shard.seen.insert_or_assign(std::move(node.key()), node.mapped().elements);
    }
    if (status.ok()) {
      stored_.fetch_add(request.payloads.size(), std::memory_order_relaxed);
      duplicates_.fetch_add(waiters.size(), std::memory_order_relaxed);
      respond(http::Response::Empty(204));
      for (auto& waiter : waiters) waiter(http::Response::Empty(204));
      return;
    }
    // The request and the copies that waited for it are refused, and counted so: the sender
    // tries again, and nothing it sent was taken.
    rejected_.fetch_add(1 + waiters.size(), std::memory_order_relaxed);
    http::Response response = http::Response::FromStatus(status);  // 503 with Retry-After
    for (auto& waiter : waiters) waiter(response);
    respond(std::move(response));
  }

  // Group commit: everything queued while the previous write ran goes in the next one.
  void WriterLoop() {
    std::vector<AcceptedRequest> requests;
    std::vector<http::Responder> responders;
    std::optional<std::chrono::steady_clock::time_point> last_error_log;
    for (;;) {
      {
        std::unique_lock lock(queue_mu_);
        queue_cv_.wait(lock, [this] { return !queue_requests_.empty() || writer_closing_; });
        if (queue_requests_.empty()) return;
        requests.swap(queue_requests_);
        responders.swap(queue_responders_);
      }
      const model::Status status = output_->Append(requests);
      if (!status.ok()) {
        const auto now = std::chrono::steady_clock::now();
        if (!last_error_log || now - *last_error_log >= kWriteErrorLogInterval) {
          LogError(status.message());
          last_error_log = now;
        }
      }
      for (size_t i = 0; i < requests.size(); ++i) {
        Finish(requests[i], status, std::move(responders[i]));
      }
      requests.clear();
      responders.clear();
    }
  }

  // Checks the signature with each secret, starting with the one that last verified a request
  // to this path: a receiver that holds many endpoints' secrets usually has one per URL, and
  // would otherwise compute an HMAC per secret for every request.
  bool Verify(const std::string& path, std::string_view signature, std::string_view id,
              int64_t timestamp, std::string_view body) {
    size_t hint = 0;
    {
      std::shared_lock lock(hints_mu_);
      if (auto it = key_by_path_.find(path); it != key_by_path_.end()) hint = it->second;
    }
    for (size_t n = 0; n < keys_.size(); ++n) {
      const size_t i = (hint + n) % keys_.size();
      if (!model::VerifySignatureHeader(signature, keys_[i], id, timestamp, body)) continue;
      if (i != hint || n > 0) {
        std::unique_lock lock(hints_mu_);
        if (key_by_path_.size() >= kMaxPathHints) key_by_path_.clear();
        key_by_path_[path] = i;
      }
      return true;
    }
    return false;
  }

  static constexpr size_t kMaxPathHints = 100'000;

  const ReceiverOptions options_;
  std::vector<std::string> keys_;  // decoded secrets; read-only once started
  std::shared_mutex hints_mu_;
  std::unordered_map<std::string, size_t> key_by_path_;  // guarded by hints_mu_
  std::unique_ptr<Output> output_;  // used by the writer thread only, once started
  std::unique_ptr<http::Server> server_;
  std::thread writer_;

  struct DelayedAnswer {
    std::chrono::steady_clock::time_point due;
    http::Responder respond;
    http::Response response;
    bool operator>(const DelayedAnswer& o) const { return due > o.due; }
  };
  std::mutex delay_mu_;
  std::condition_variable delay_cv_;
  std::priority_queue<DelayedAnswer, std::vector<DelayedAnswer>, std::greater<>>
      delayed_;              // guarded by delay_mu_
  bool delay_stop_ = false;  // guarded by delay_mu_
  std::thread delayer_;
  bool started_ = false;
  bool stopped_ = false;

  // A webhook being written: up to which element, and the copies that wait for its outcome.
  struct InFlight {
    size_t elements = 0;
    std::vector<http::Responder> waiters;
  };
  // The webhook ids seen, split by hash so that the HTTP threads seldom wait for each other: one
  // lock for all of them made a futex call of most requests. A lock is held for a hash lookup
  // only, never across a write.
  struct alignas(64) IdShard {
    std::mutex mu;
    // id -> how many of its payloads are stored (or, without output, accepted)
    std::unordered_map<std::string, size_t> seen;
    std::unordered_map<std::string, InFlight> in_flight;
  };
  static constexpr size_t kIdShards = 16;
  IdShard& ShardOf(std::string_view webhook_id) {
    return id_shards_[std::hash<std::string_view>{}(webhook_id) % kIdShards];
  }
  std::array<IdShard, kIdShards> id_shards_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<AcceptedRequest> queue_requests_;  // and their responders, index for index
  std::vector<http::Responder> queue_responders_;
  bool writer_closing_ = false;

  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> stored_{0};
  std::atomic<uint64_t> duplicates_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<int64_t> last_refusal_log_ms_{0};
};

Receiver::Receiver(ReceiverOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Receiver::~Receiver() = default;
model::Status Receiver::Start() { return impl_->Start(); }
uint16_t Receiver::port() const { return impl_->port(); }
ReceiverCounts Receiver::counts() const { return impl_->counts(); }
void Receiver::Stop() { impl_->Stop(); }
model::Status Receiver::ReloadTls() { return impl_->ReloadTls(); }

namespace {

std::string CountsLine(std::string_view msg, const ReceiverCounts& c) {
  std::string line = R"({"level":"info","msg":)";
  model::AppendJsonString(line, msg);
  line += ",\"received\":" + std::to_string(c.received) +
          ",\"stored\":" + std::to_string(c.stored) +
          ",\"duplicates\":" + std::to_string(c.duplicates) +
          ",\"rejected\":" + std::to_string(c.rejected) + "}";
  return line;
}

int RunUntilSignal(const ReceiverOptions& options, const sigset_t& signals) {
  Receiver receiver(options);
  if (auto s = receiver.Start(); !s.ok()) {
    LogError(s.message());
    return s.code() == model::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::string host;
  uint16_t unused_port = 0;
  http::SplitHostPort(options.listen, &host, &unused_port);
  const std::string port = std::to_string(receiver.port());
  const std::string address =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  std::string line = R"({"level":"info","msg":"listening","address":)";
  model::AppendJsonString(line, address);
  line += ",\"port\":" + port + "}";
  LogLine(line);

  ReceiverCounts last;
  int signal_number = -1;
  while (signal_number < 0) {
    const timespec one_second{1, 0};
    signal_number = sigtimedwait(&signals, nullptr, &one_second);
    if (signal_number < 0 && errno != EAGAIN && errno != EINTR) {
      LogError(std::string("cannot wait for signals: ") + std::strerror(errno));
      receiver.Stop();
      return 1;
    }
    if (signal_number == SIGHUP) {
      signal_number = -1;
      if (options.tls_cert_file.empty()) {
        LogLine(
            R"json({"level":"info","msg":"SIGHUP: nothing to reload (not serving HTTPS)"})json");
      } else if (auto s = receiver.ReloadTls(); s.ok()) {
        LogLine(R"({"level":"info","msg":"TLS certificate reloaded"})");
      } else {
        std::string failure = R"({"level":"error","msg":)";
        model::AppendJsonString(failure,
                                "TLS reload failed: still serving the previous certificate");
        failure += R"(,"error":)";
        model::AppendJsonString(failure, s.message());
        LogLine(failure + "}");
      }
    }
    if (const ReceiverCounts now = receiver.counts(); now != last) {
      LogLine(CountsLine("counts", now));
      last = now;
    }
  }
  std::string stopping = R"({"level":"info","msg":"stopping","signal":)";
  model::AppendJsonString(stopping, signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  LogLine(stopping + "}");
  receiver.Stop();
  LogLine(CountsLine("stopped", receiver.counts()));
  return 0;
}

}  // namespace

int RunReceive(const ReceiverOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  sigset_t previous;
  // Blocked before any thread starts, so that the server's threads inherit the mask and the
  // signal waits for sigtimedwait here instead of killing the process.
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  const int code = RunUntilSignal(options, signals);
  // A second Ctrl-C during shutdown must not kill the process once the mask is restored.
  const timespec zero{0, 0};
  while (sigtimedwait(&signals, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  return code;
}

}  // namespace pushhook::receive
