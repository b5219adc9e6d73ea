#include "delivery/curl_client.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "delivery/address_guard.h"

namespace pushhook::delivery {
namespace {

using Clock = std::chrono::steady_clock;

// A receiver may answer with any amount of body; beyond this much we stop reading (closing the
// connection) and keep the response, so a huge answer cannot hold a transfer until its timeout.
constexpr size_t kMaxBodyBytesRead = 1 << 20;
// Upper bound on one curl_multi_poll; curl shortens it to its own next timer.
constexpr int kPollTimeoutMs = 1000;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view TrimHeaderValue(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string Lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One request from Send() to its result. Owned by the queue, then by the in-flight map; it does
// not move while curl holds pointers into it (body, error buffer, callback data).
struct Transfer {
  OutboundRequest request;
  std::function<void(OutboundResult)> done;
  Clock::time_point started;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  bool allow_private = false;
  // Filled by curl's callbacks on the client's thread.
  std::string body_prefix;
  std::string retry_after;
  size_t body_bytes = 0;
  bool body_cut_off = false;
  bool connected = false;
  std::string refused;   // why the address guard refused a destination, if it did
  std::string endpoint;  // the last address a connection was opened to, "1.2.3.4 port 443"
  std::string origin;    // scheme://host:port of the URL: the per-host limit's key
  char error_buffer[CURL_ERROR_SIZE] = {};
};

// "https://user@host:443/path?q" -> "https://user@host:443": what the per-host limit counts.
std::string OriginOf(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const size_t end = url.find_first_of("/?#", scheme + 3);
  return std::string(url.substr(0, end));
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (t->body_prefix.size() < HttpClient::kBodyPrefixBytes) {
    t->body_prefix.append(data,
                          std::min(bytes, HttpClient::kBodyPrefixBytes - t->body_prefix.size()));
  }
  t->body_bytes += bytes;
  if (t->body_bytes > kMaxBodyBytesRead) {
    t->body_cut_off = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  const std::string_view line(data, bytes);
  if (line.substr(0, 5) == "HTTP/") {
    t->retry_after.clear();  // a new response (after a 1xx) starts: forget the previous one's
  } else if (const size_t colon = line.find(':');
             colon != std::string_view::npos && IEquals(line.substr(0, colon), "retry-after")) {
    t->retry_after = std::string(TrimHeaderValue(line.substr(colon + 1)));
  }
  return bytes;
}

// Runs with the address curl is about to connect to, after DNS and before connect().
curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  if (purpose == CURLSOCKTYPE_IPCXN && !t->allow_private) {
    const AddressClass address_class = ClassifyAddress(&address->addr, address->addrlen);
    if (address_class != AddressClass::kPublic) {
      if (t->refused.empty()) {
        t->refused = "destination " + FormatAddress(&address->addr, address->addrlen) + " is " +
                     std::string(DescribeAddressClass(address_class)) +
                     " (private destinations are not allowed)";
      }
      return CURL_SOCKET_BAD;
    }
  }
  t->endpoint = FormatAddress(&address->addr, address->addrlen);
  if (address->family == AF_INET && address->addrlen >= sizeof(sockaddr_in)) {
    sockaddr_in v4;
    std::memcpy(&v4, &address->addr, sizeof(v4));
    t->endpoint += " port " + std::to_string(ntohs(v4.sin_port));
  } else if (address->family == AF_INET6 && address->addrlen >= sizeof(sockaddr_in6)) {
    sockaddr_in6 v6;
    std::memcpy(&v6, &address->addr, sizeof(v6));
    t->endpoint += " port " + std::to_string(ntohs(v6.sin6_port));
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Runs once the connection (new or reused) is up, just before the request is sent.
int OnConnected(void* user, char*, char*, int, int) {
  static_cast<Transfer*>(user)->connected = true;
  return CURL_PREREQFUNC_OK;
}

std::string Ms(std::chrono::milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// Why a transfer ended without a response, in words an operator can act on.
std::string DescribeFailure(CURLcode code, const Transfer& t, CURL* easy) {
  // The guard's reason, unless some other (allowed) address was tried too: then its fate counts.
  if (!t.refused.empty() && t.endpoint.empty()) return t.refused;
  const std::string detail = t.error_buffer[0] != '\0' ? t.error_buffer : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      if (t.connected) return "timed out after " + Ms(t.request.timeout);
      // The connect timeout covers name resolution too.
      return (detail.rfind("Resolving timed out", 0) == 0 ? "DNS resolution timed out after "
                                                          : "connect timed out after ") +
             Ms(std::min(t.request.timeout, t.request.connect_timeout));
    case CURLE_COULDNT_CONNECT: {
      long os_errno = 0;
      curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
      const std::string where = t.endpoint.empty() ? "the destination" : t.endpoint;
      if (os_errno == ECONNREFUSED) return "connection refused by " + where;
      if (os_errno == ENETUNREACH) return "network unreachable: " + where;
      if (os_errno == EHOSTUNREACH) return "host unreachable: " + where;
      return "could not connect: " + detail;
    }
    case CURLE_COULDNT_RESOLVE_HOST:
      return "could not resolve the host name: " + detail;
    case CURLE_PEER_FAILED_VERIFICATION:
      return "TLS certificate verification failed: " + detail;
    case CURLE_SSL_CONNECT_ERROR:
      return "TLS handshake failed: " + detail;
    case CURLE_SSL_CACERT_BADFILE:
      return "cannot use the CA file: " + detail;
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return "TLS error: " + detail;
    case CURLE_GOT_NOTHING:
      return "the receiver closed the connection without a response";
    case CURLE_SEND_ERROR:
      return "connection lost while sending the request: " + detail;
    case CURLE_RECV_ERROR:
      return "connection lost while receiving the response: " + detail;
    case CURLE_WEIRD_SERVER_REPLY:
      return "invalid HTTP response: " + detail;
    case CURLE_PARTIAL_FILE:
      return "the response ended early: " + detail;
    case CURLE_UNSUPPORTED_PROTOCOL:
      return "unsupported URL scheme (only http and https are allowed)";
    case CURLE_URL_MALFORMAT:
      return "malformed URL: " + detail;
    default:
      return std::string(curl_easy_strerror(code)) + ": " + detail;
  }
}

// The reason a request cannot be sent at all, or "" when it can.
std::string CheckRequest(const OutboundRequest& request, bool allow_http) {
  const size_t colon = request.url.find("://");
  if (colon == std::string::npos || colon == 0) return "malformed URL (no scheme)";
  const std::string scheme = Lowercase(std::string_view(request.url).substr(0, colon));
  if (scheme == "http" && !allow_http) {
    return "plain http destinations are not allowed (use https, or allow http in the "
           "configuration)";
  }
  if (scheme != "http" && scheme != "https") {
    return "unsupported URL scheme \"" + scheme + "\" (only http and https are allowed)";
  }
  if (HasLineBreakOrNul(request.url)) return "malformed URL (contains a line break)";
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || HasLineBreakOrNul(name) || name.find(':') != std::string::npos) {
      return "invalid header name \"" + name + "\"";
    }
    if (HasLineBreakOrNul(value)) return "header " + name + " has a line break in its value";
  }
  return "";
}

}  // namespace

class CurlClient::Impl {
 public:
  explicit Impl(CurlClientOptions options) : options_(std::move(options)) {
    static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (global != CURLE_OK) {
      throw std::runtime_error(std::string("cannot initialise libcurl: ") +
                               curl_easy_strerror(global));
    }
    multi_ = curl_multi_init();
    if (multi_ == nullptr) throw std::runtime_error("cannot initialise libcurl: curl_multi_init");
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(options_.max_connections_per_host));
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      static_cast<long>(options_.max_total_connections));
    // Keep as many idle connections as we may open, so that every endpoint keeps its own alive.
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(options_.max_total_connections));
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ph-curl");
      Run();
    });
    thread_id_ = thread_.get_id();
  }

  ~Impl() {
    Stop();
    for (CURL* easy : free_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
  }

  void Send(OutboundRequest request, std::function<void(OutboundResult)> done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->started = Clock::now();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        // Only the first request of a batch wakes the thread; it takes the whole queue at once.
        wake = queue_.empty();
        queue_.push_back(std::move(transfer));
      }
    }
    if (transfer != nullptr) return Fail(*transfer, "client stopped");
    if (wake) curl_multi_wakeup(multi_);
  }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    if (std::this_thread::get_id() == thread_id_) return;  // from a `done`: Run() ends after it
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::vector<std::unique_ptr<Transfer>> batch;
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) break;
        batch.swap(queue_);
      }
      for (auto& transfer : batch) Admit(std::move(transfer));
      batch.clear();
      int running = 0;
      curl_multi_perform(multi_, &running);
      ReapFinished();
      curl_multi_poll(multi_, nullptr, 0, kPollTimeoutMs, nullptr);
    }
    for (auto& [raw, transfer] : in_flight_) {
      curl_multi_remove_handle(multi_, transfer->easy);
      Release(*transfer);
      Fail(*transfer, "client stopped");
    }
    in_flight_.clear();
    for (auto& [origin, host] : hosts_) {
      for (auto& transfer : host.waiting) Fail(*transfer, "client stopped");
    }
    hosts_.clear();
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
    }
    for (auto& transfer : batch) Fail(*transfer, "client stopped");
  }

  // Starts a transfer, or queues it while its host has max_connections_per_host transfers with
  // curl: handed to curl, the surplus would wait in curl's pending list, which it walks on every
  // turn (1,000 endpoints on one receiver put 16,000 requests there).
  void Admit(std::unique_ptr<Transfer> owned) {
    owned->origin = OriginOf(owned->request.url);
    Host& host = hosts_[owned->origin];
    if (host.active >= options_.max_connections_per_host) {
      host.waiting.push_back(std::move(owned));
      return;
    }
    const std::string origin = owned->origin;
    if (Start(std::move(owned))) {
      ++host.active;
    } else if (host.active == 0 && host.waiting.empty()) {
      hosts_.erase(origin);
    }
  }

  // A transfer of `origin` left curl: the next ones waiting for that host take its place.
  void Vacate(const std::string& origin) {
    const auto it = hosts_.find(origin);
    if (it == hosts_.end()) return;
    Host& host = it->second;
    --host.active;
    while (!host.waiting.empty() && host.active < options_.max_connections_per_host) {
      std::unique_ptr<Transfer> next = std::move(host.waiting.front());
      host.waiting.pop_front();
      if (Start(std::move(next))) ++host.active;  // else it finished at once (a refused URL)
    }
    if (host.active == 0 && host.waiting.empty()) hosts_.erase(it);
  }

  // Hands a transfer to curl; false if it was finished at once instead.
  bool Start(std::unique_ptr<Transfer> owned) {
    Transfer& t = *owned;
    if (std::string reason = CheckRequest(t.request, options_.allow_http); !reason.empty()) {
      Fail(t, std::move(reason));
      return false;
    }
    for (const auto& [name, value] : t.request.headers) {
      // curl drops a header written "Name:"; "Name;" is how it sends one with an empty value.
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      t.headers = curl_slist_append(t.headers, line.c_str());
    }
    t.headers = curl_slist_append(t.headers, "Expect:");
    if (!free_.empty()) {
      t.easy = free_.back();
      free_.pop_back();
    } else {
      t.easy = curl_easy_init();
    }
    if (t.easy == nullptr || t.headers == nullptr) {
      Release(t);
      Fail(t, "cannot start a transfer: out of memory");
      return false;
    }
    t.allow_private = options_.allow_private_destinations;
    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_buffer);
    curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, options_.allow_http ? "http,https" : "https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    // An explicit empty proxy: a proxy taken from the environment would reach private addresses
    // on our behalf, past the address guard.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    // Zero means "no timeout" to curl; never let a configuration of 0 mean that.
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max<long>(1, t.request.timeout.count()));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     std::max<long>(1, t.request.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.request.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t.request.body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OnOpenSocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, OnConnected);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
    if (const CURLMcode rc = curl_multi_add_handle(multi_, e); rc != CURLM_OK) {
      Release(t);
      Fail(t, std::string("cannot start a transfer: ") + curl_multi_strerror(rc));
      return false;
    }
    in_flight_.emplace(&t, std::move(owned));
    return true;
  }

  void ReapFinished() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      // The message is freed by remove_handle: copy what we need first.
      CURL* easy = message->easy_handle;
      const CURLcode code = message->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
      const auto it = in_flight_.find(raw);
      if (it == in_flight_.end()) continue;
      std::unique_ptr<Transfer> transfer = std::move(it->second);
      in_flight_.erase(it);
      curl_multi_remove_handle(multi_, easy);
      Finish(*transfer, code);
      Vacate(transfer->origin);
    }
  }

  void Finish(Transfer& t, CURLcode code) {
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    const bool answered = code == CURLE_OK || (code == CURLE_WRITE_ERROR && t.body_cut_off);
    if (answered && status > 0) {
      OutboundResult result;
      result.status = static_cast<int>(status);
      result.body_prefix = std::move(t.body_prefix);
      result.retry_after = std::move(t.retry_after);
      Release(t);
      return Complete(t, std::move(result));
    }
    std::string error =
        answered ? "no HTTP status in the response" : DescribeFailure(code, t, t.easy);
    if (!answered && status > 0) error += " (after response status " + std::to_string(status) + ")";
    Release(t);
    Fail(t, std::move(error));
  }

  // Returns the easy handle to the free list (its connection stays in the multi's cache).
  void Release(Transfer& t) {
    if (t.easy != nullptr) {
      curl_easy_reset(t.easy);
      if (free_.size() < options_.max_total_connections) {
        free_.push_back(t.easy);
      } else {
        curl_easy_cleanup(t.easy);
      }
      t.easy = nullptr;
    }
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
  }

  void Fail(Transfer& t, std::string error) {
    OutboundResult result;
    result.error = std::move(error);
    Complete(t, std::move(result));
  }

  void Complete(Transfer& t, OutboundResult result) {
    result.latency =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t.started);
    auto done = std::move(t.done);
    done(std::move(result));
  }

  const CurlClientOptions options_;
  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::thread::id thread_id_;
  std::mutex join_mutex_;

  std::mutex mutex_;
  std::vector<std::unique_ptr<Transfer>> queue_;  // guarded by mutex_
  bool stopping_ = false;                         // guarded by mutex_

  // Owned by the client's thread.
  struct Host {
    size_t active = 0;  // transfers with curl
    std::deque<std::unique_ptr<Transfer>> waiting;
  };
  std::unordered_map<std::string, Host> hosts_;  // by origin, while it has transfers
  std::unordered_map<Transfer*, std::unique_ptr<Transfer>> in_flight_;
  std::vector<CURL*> free_;
};

CurlClient::CurlClient(CurlClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
CurlClient::~CurlClient() = default;
void CurlClient::Send(OutboundRequest request, std::function<void(OutboundResult)> done) {
  impl_->Send(std::move(request), std::move(done));
}
void CurlClient::Stop() { impl_->Stop(); }

}  // namespace pushhook::delivery
