#include "delivery/asio_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "delivery/address_guard.h"
#include "model/utf8.h"

namespace pushhook::delivery {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A receiver may answer with any amount of body; beyond this much we stop reading (closing the
// connection) and keep the response, so a huge answer cannot hold a request until its timeout.
constexpr uint64_t kMaxBodyBytesRead = 1 << 20;
// How often deadlines are checked while requests are in flight, and idle connections otherwise.
constexpr milliseconds kBusySweep{5};
constexpr milliseconds kIdleSweep{1000};
// An idle connection is closed after this long (receivers commonly drop theirs after 60-120 s).
constexpr auto kIdleLifetime = std::chrono::seconds(55);
// Parsed URLs kept: about as many as the endpoints that receive webhooks at once.
constexpr size_t kMaxTargets = 4096;
// Name lookups that may wait on name servers at once.
constexpr int kLookupThreads = 4;

NameLookup SystemLookup(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  NameLookup out;
  if (const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
      rc != 0) {
    out.error = gai_strerror(rc);
    return out;
  }
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN];
    const void* address = nullptr;
    if (a->ai_family == AF_INET) {
      address = &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
    } else if (a->ai_family == AF_INET6) {
      address = &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
    }
    if (address != nullptr && inet_ntop(a->ai_family, address, text, sizeof text) != nullptr) {
      out.addresses.emplace_back(text);
    }
  }
  freeaddrinfo(found);
  return out;
}

// Name lookups on threads of their own. getaddrinfo blocks for as long as the name servers
// take (seconds, for a domain whose servers drop queries), and Asio's resolver runs an
// io_context's lookups one after another on one thread: one endpoint's slow name would hold up
// every other endpoint's new connections. Stop() joins the threads, so it waits for lookups
// under way, as Asio's resolver does when its io_context goes.
class NameLookups {
 public:
  using Lookup = std::function<NameLookup(const std::string& host, uint16_t port)>;
  using Done = std::function<void(NameLookup)>;

  NameLookups(int threads, Lookup lookup)
      : lookup_(lookup ? std::move(lookup) : Lookup(SystemLookup)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~NameLookups() { Stop(); }
  NameLookups(const NameLookups&) = delete;
  NameLookups& operator=(const NameLookups&) = delete;

  // `done` runs on a lookup thread, unless Stop() comes first.
  void Resolve(std::string host, uint16_t port, Done done) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      jobs_.push_back(Job{std::move(host), port, std::move(done)});
    }
    cv_.notify_one();
  }

  // Drops the lookups not begun and joins the threads; from its return on, no `done` runs.
  // Not from a `done`.
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      jobs_.clear();
    }
    cv_.notify_all();
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  struct Job {
    std::string host;
    uint16_t port = 0;
    Done done;
  };

  void Work() {
    pthread_setname_np(pthread_self(), "ph-lookup");
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job.done(lookup_(job.host, job.port));
    }
  }

  const Lookup lookup_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;   // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> threads_;
};

std::string Lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

std::string Ms(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

// Where a URL says to connect, and what to ask for there.
struct Target {
  bool tls = false;
  std::string host;         // name or address, without IPv6 brackets: resolved, SNI, verified
  std::string host_header;  // as the Host header carries it: "[::1]:8080"
  uint16_t port = 0;
  std::string path;    // origin-form request target: "/hooks?x=1"
  std::string origin;  // "https://host:443": the key of a connection pool
  std::string head;    // "POST /hooks?x=1 HTTP/1.1\r\nHost: ...\r\nUser-Agent: ...\r\n"
};

// Fills `target` from `url` and answers "", or answers the reason it cannot be sent to, with
// `kind` kRefused for what policy forbids and kInvalidRequest for what is malformed.
std::string ParseTarget(std::string_view url, bool allow_http, Target& target,
                        OutboundError& kind) {
  kind = OutboundError::kInvalidRequest;
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) return "malformed URL (no scheme)";
  const std::string scheme = Lowercase(url.substr(0, colon));
  if (scheme == "http" && !allow_http) {
    kind = OutboundError::kRefused;
    return "plain http destinations are not allowed (use https, or allow http in the "
           "configuration)";
  }
  if (scheme != "http" && scheme != "https") {
    return "unsupported URL scheme \"" + scheme + "\" (only http and https are allowed)";
  }
  if (HasLineBreakOrNul(url)) return "malformed URL (contains a line break)";
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return "malformed URL: " + parsed.error().message();
  const boost::urls::url_view& u = *parsed;
  if (u.has_userinfo()) return "malformed URL (user information is not supported)";
  target.tls = scheme == "https";
  const uint16_t default_port = target.tls ? 443 : 80;
  target.port = default_port;
  if (u.has_port() && !u.port().empty()) {
    // port_number() keeps only the low 16 bits: 99999 would be port 34463.
    if (!IsTcpPort(u.port())) return "malformed URL (invalid port)";
    target.port = u.port_number();
  }
  target.host = Lowercase(u.encoded_host_address());
  if (target.host.empty()) return "malformed URL (no host)";
  const bool ipv6 = u.host_type() == boost::urls::host_type::ipv6;
  target.host_header = ipv6 ? "[" + target.host + "]" : target.host;
  if (target.port != default_port) target.host_header += ":" + std::to_string(target.port);
  target.path = std::string(u.encoded_path());
  // "host:abc/x": Boost.URL reads "abc/x" as the path (CheckWebhookUrl says more).
  if (!target.path.empty() && target.path.front() != '/') return "malformed URL (invalid port)";
  if (target.path.empty()) target.path = "/";
  if (u.has_query()) target.path += "?" + std::string(u.encoded_query());
  target.origin = scheme + "://" + target.host_header;
  return "";
}

// The reason a header cannot be sent as given, or "".
std::string CheckHeaders(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty() || HasLineBreakOrNul(name) || name.find(':') != std::string::npos) {
      return "invalid header name \"" + name + "\"";
    }
    if (HasLineBreakOrNul(value)) return "header " + name + " has a line break in its value";
  }
  return "";
}

// "127.0.0.1 port 8080", as errors name the place a connection went to.
std::string DescribeEndpoint(const tcp::endpoint& endpoint) {
  return FormatAddress(endpoint.data(), endpoint.size()) + " port " +
         std::to_string(endpoint.port());
}

// A response body for Beast's parser that keeps only the first kBodyPrefixBytes, and stops the
// read with error::body_limit beyond kMaxBodyBytesRead.
struct PrefixBody {
  struct value_type {
    std::string prefix;
    uint64_t bytes = 0;
  };

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<uint64_t>&, beast::error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      ec = {};
      size_t bytes = 0;
      for (const asio::const_buffer buffer : beast::buffers_range_ref(buffers)) {
        const size_t room = HttpClient::kBodyPrefixBytes - body_.prefix.size();
        body_.prefix.append(static_cast<const char*>(buffer.data()), std::min(room, buffer.size()));
        bytes += buffer.size();
      }
      body_.bytes += bytes;
      if (body_.bytes > kMaxBodyBytesRead) ec = http::error::body_limit;
      return bytes;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// One request from Send() to its result. A connection keeps it (and so the request's bytes)
// until the connection is done with them, even after `done` has run.
struct Transfer {
  OutboundRequest request;
  std::function<void(OutboundResult)> done;  // empty once the result was given
  Clock::time_point started;                 // at Send(): the result's latency counts from here
  std::shared_ptr<const Target> target;
  bool retried = false;  // sent again once after a kept-alive connection turned out closed
};

struct Host;

enum class Phase { kIdle, kResolving, kConnecting, kHandshaking, kExchanging };

struct Connection {
  Connection(asio::io_context& io, Host& owner) : socket(io), host(&owner) {}

  tcp::socket socket;
  std::optional<ssl::stream<tcp::socket&>> tls;
  Host* host;
  Phase phase = Phase::kIdle;
  bool closed = false;
  size_t served = 0;  // requests answered on this connection
  std::unique_ptr<Transfer> transfer;
  Clock::time_point begun;     // when `transfer` got this connection: its timeouts count from here
  Clock::time_point deadline;  // of the current phase
  Clock::time_point idle_since;
  std::vector<tcp::endpoint> endpoints;  // from resolution, tried in order
  size_t next_endpoint = 0;
  std::string refused;        // the guard's reason for an address it refused
  std::string connect_error;  // the last failed connect, named
  std::string head;           // the serialised request line and headers
  beast::flat_buffer buffer;
  std::optional<http::response_parser<PrefixBody>> parser;
};

using ConnectionPtr = std::shared_ptr<Connection>;

// The connections to one origin and the requests waiting for one of them.
struct Host {
  size_t open = 0;  // connections, busy or idle
  std::vector<ConnectionPtr> idle;
  std::deque<std::unique_ptr<Transfer>> waiting;
  bool starved = false;  // in Impl::starved_: waits for a connection under the global limit
};

}  // namespace

class AsioClient::Impl {
 public:
  explicit Impl(ClientOptions options)
      : options_(std::move(options)),
        work_(asio::make_work_guard(io_)),
        tls_context_(ssl::context::tls_client),
        sweep_(io_) {
    tls_context_.set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (options_.ca_file.empty()) {
      tls_context_.set_default_verify_paths(ec);
      if (ec) ca_error_ = "cannot use the system CA store: " + ec.message();
    } else {
      tls_context_.load_verify_file(options_.ca_file, ec);
      if (ec) ca_error_ = "cannot use the CA file: " + options_.ca_file + ": " + ec.message();
    }
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ph-client");
      io_.run();
    });
    thread_id_ = thread_.get_id();
  }

  ~Impl() { Stop(); }

  void Send(OutboundRequest request, std::function<void(OutboundResult)> done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->started = Clock::now();
    transfer->request = std::move(request);
    transfer->done = std::move(done);
    std::unique_ptr<Transfer> refused;
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        refused = std::move(transfer);
      } else {
        // Only the first request of a batch wakes the thread; it takes the whole queue at once.
        wake = queue_.empty();
        queue_.push_back(std::move(transfer));
      }
    }
    if (refused != nullptr) return Fail(*refused, OutboundError::kStopped, "client stopped");
    if (wake) asio::post(io_, [this] { Drain(); });
  }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        stopping_ = true;
        asio::post(io_, [this] { Shutdown(); });
      }
    }
    if (std::this_thread::get_id() == thread_id_) return;  // from a `done`: run() ends after it
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  // --- requests in --------------------------------------------------------------------------

  void Drain() {
    std::vector<std::unique_ptr<Transfer>> batch;
    {
      std::lock_guard lock(mutex_);
      batch.swap(queue_);
    }
    for (auto& transfer : batch) Admit(std::move(transfer));
  }

  void Admit(std::unique_ptr<Transfer> t) {
    std::string reason;
    OutboundError kind = OutboundError::kNone;
    t->target = TargetOf(t->request.url, reason, kind);
    if (reason.empty()) {
      reason = CheckHeaders(t->request.headers);
      kind = OutboundError::kInvalidRequest;
    }
    if (reason.empty() && t->target->tls && !ca_error_.empty()) {
      reason = ca_error_;
      kind = OutboundError::kTls;  // the server's configuration, not the endpoint's fault
    }
    if (!reason.empty()) return Fail(*t, kind, std::move(reason));
    Host& host = hosts_[t->target->origin];
    host.waiting.push_back(std::move(t));
    Pump(host);
  }

  // The target of `url`, parsed on its first request only; null with `reason` if it is refused.
  std::shared_ptr<const Target> TargetOf(const std::string& url, std::string& reason,
                                         OutboundError& kind) {
    if (const auto it = targets_.find(url); it != targets_.end()) return it->second;
    auto target = std::make_shared<Target>();
    reason = ParseTarget(url, options_.allow_http, *target, kind);
    if (!reason.empty()) return nullptr;
    target->head = "POST " + target->path + " HTTP/1.1\r\nHost: " + target->host_header +
                   "\r\nUser-Agent: " + options_.user_agent + "\r\n";
    if (targets_.size() >= kMaxTargets) targets_.clear();  // requests keep theirs
    targets_.emplace(url, target);
    return target;
  }

  // Gives waiting requests of `host` an idle connection or a new one, within the limits. A
  // request going again because a kept connection failed under it takes a new one: the idle
  // connections beside it have waited as long, and the receiver has likely closed them too.
  void Pump(Host& host) {
    while (!host.waiting.empty()) {
      const bool fresh = host.waiting.front()->retried;
      if (!fresh) {
        if (ConnectionPtr c = TakeIdle(host)) {
          Begin(c, TakeWaiting(host));
          continue;
        }
      }
      if (host.open >= options_.max_connections_per_host) {
        if (!fresh || host.idle.empty()) return;
        Discard(*host.idle.front());  // the longest idle makes room
      }
      if (open_ >= options_.max_total_connections && !CloseAnIdleConnection()) {
        if (!host.starved) {
          host.starved = true;
          starved_.push_back(&host);
        }
        return;
      }
      auto c = std::make_shared<Connection>(io_, host);
      ++host.open;
      ++open_;
      connections_.emplace(c.get(), c);
      Begin(c, TakeWaiting(host));
    }
  }

  // The most recently used idle connection that is still open at the other end, if any; those
  // the receiver has closed meanwhile are closed here too.
  ConnectionPtr TakeIdle(Host& host) {
    while (!host.idle.empty()) {
      ConnectionPtr c = std::move(host.idle.back());
      host.idle.pop_back();
      if (!HungUp(*c)) return c;
      Discard(*c);
    }
    return nullptr;
  }

  // Whether the receiver has closed an idle connection, or sent on it unasked (which leaves it
  // unusable just the same): either way its socket has something to read. Asked before every
  // reuse, however short the wait: bytes a receiver sent after its answer would otherwise be
  // read as the next request's answer (a 200 for a message its receiver never took). A FIN
  // that is still on its way is not seen; MayRetry covers that.
  static bool HungUp(Connection& c) {
    if (c.buffer.size() > 0) return true;
    pollfd p{c.socket.native_handle(), POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }

  static std::unique_ptr<Transfer> TakeWaiting(Host& host) {
    std::unique_ptr<Transfer> t = std::move(host.waiting.front());
    host.waiting.pop_front();
    return t;
  }

  // Frees a place under the global limit by closing the longest idle connection, if any.
  bool CloseAnIdleConnection() {
    Connection* oldest = nullptr;
    for (auto& [origin, host] : hosts_) {
      for (const ConnectionPtr& c : host.idle) {
        if (oldest == nullptr || c->idle_since < oldest->idle_since) oldest = c.get();
      }
    }
    if (oldest == nullptr) return false;
    Discard(*oldest);
    return true;
  }

  // Starts `t` on `c`: connects first if `c` is new.
  void Begin(const ConnectionPtr& c, std::unique_ptr<Transfer> t) {
    c->begun = Clock::now();
    c->transfer = std::move(t);
    ArmSweep(kBusySweep);
    if (c->socket.is_open()) {
      c->deadline = c->begun + Timeout(*c->transfer);
      return Write(c);
    }
    c->deadline = c->begun + std::min(Timeout(*c->transfer), ConnectTimeout(*c->transfer));
    Resolve(c);
  }

  // Zero would mean "never": at least a millisecond.
  static milliseconds Timeout(const Transfer& t) {
    return std::max(t.request.timeout, milliseconds(1));
  }
  static milliseconds ConnectTimeout(const Transfer& t) {
    return std::max(t.request.connect_timeout, milliseconds(1));
  }

  // --- connecting ---------------------------------------------------------------------------

  void Resolve(const ConnectionPtr& c) {
    const Target& target = *c->transfer->target;
    boost::system::error_code ec;
    const asio::ip::address literal = asio::ip::make_address(target.host, ec);
    if (!ec) {
      c->endpoints = {tcp::endpoint(literal, target.port)};
      return Connect(c);
    }
    c->phase = Phase::kResolving;
    // Weakly: a lookup thread must never hold a connection's last reference, whose release
    // would destroy the connection there, beside the client's thread.
    std::weak_ptr<Connection> weak = c;
    lookups_.Resolve(target.host, target.port, [this, weak](NameLookup found) {
      asio::post(io_, [this, weak, found = std::move(found)] {
        if (const ConnectionPtr live = weak.lock()) Resolved(live, found);
      });
    });
  }

  void Resolved(const ConnectionPtr& c, const NameLookup& found) {
    if (c->closed) return;  // abandoned meanwhile (its connect timeout, Stop)
    const Target& target = *c->transfer->target;
    if (!found.error.empty()) {
      return Abandon(*c, OutboundError::kDns,
                     "could not resolve the host name: " + target.host + ": " + found.error);
    }
    for (const std::string& text : found.addresses) {
      boost::system::error_code bad;
      const asio::ip::address address = asio::ip::make_address(text, bad);
      if (!bad) c->endpoints.emplace_back(address, target.port);
    }
    Connect(c);
  }

  // Why `endpoint` is not connected to. An address the URL named is said as given; one a host
  // name resolved to is not: the tenant who registered the URL would learn from it what the
  // server's name service answers for internal names (and their addresses).
  static std::string Refusal(const Connection& c, const tcp::endpoint& endpoint,
                             AddressClass address_class) {
    const std::string what = std::string(DescribeAddressClass(address_class)) +
                             " (private destinations are not allowed)";
    boost::system::error_code not_literal;
    if (c.transfer != nullptr) {
      const std::string& host = c.transfer->target->host;
      asio::ip::make_address(host, not_literal);
      if (not_literal) return "the host name " + host + " resolves to " + what;
    }
    return "destination " + FormatAddress(endpoint.data(), endpoint.size()) + " is " + what;
  }

  // Tries the next address the guard allows.
  void Connect(const ConnectionPtr& c) {
    c->phase = Phase::kConnecting;
    while (c->next_endpoint < c->endpoints.size()) {
      const tcp::endpoint& endpoint = c->endpoints[c->next_endpoint++];
      if (!options_.allow_private_destinations) {
        const AddressClass address_class = ClassifyAddress(endpoint.data(), endpoint.size());
        if (address_class != AddressClass::kPublic) {
          if (c->refused.empty()) c->refused = Refusal(*c, endpoint, address_class);
          continue;
        }
      }
      boost::system::error_code ec;
      if (c->socket.is_open()) c->socket.close(ec);
      c->socket.open(endpoint.protocol(), ec);
      if (ec) {
        c->connect_error = "could not connect: " + ec.message();
        continue;
      }
      c->socket.async_connect(endpoint,
                              [this, c, endpoint](const boost::system::error_code& error) {
                                if (c->closed) return;
                                if (error) {
                                  c->connect_error = DescribeConnectError(error, endpoint);
                                  return Connect(c);
                                }
                                boost::system::error_code ignored;
                                c->socket.set_option(tcp::no_delay(true), ignored);
                                if (c->transfer->target->tls) return Handshake(c);
                                Connected(c);
                              });
      return;
    }
    // No address left: the last connect's failure, or the guard's reason if nothing was tried.
    if (!c->connect_error.empty()) return Abandon(*c, OutboundError::kConnect, c->connect_error);
    if (!c->refused.empty()) return Abandon(*c, OutboundError::kRefused, c->refused);
    Abandon(*c, OutboundError::kDns,
            "could not resolve the host name: " + c->transfer->target->host + ": no addresses");
  }

  static std::string DescribeConnectError(const boost::system::error_code& error,
                                          const tcp::endpoint& endpoint) {
    if (error == asio::error::connection_refused) {
      return "connection refused by " + DescribeEndpoint(endpoint);
    }
    if (error == asio::error::network_unreachable) {
      return "network unreachable: " + DescribeEndpoint(endpoint);
    }
    if (error == asio::error::host_unreachable) {
      return "host unreachable: " + DescribeEndpoint(endpoint);
    }
    return "could not connect to " + DescribeEndpoint(endpoint) + ": " + error.message();
  }

  void Handshake(const ConnectionPtr& c) {
    c->phase = Phase::kHandshaking;
    const Target& target = *c->transfer->target;
    c->tls.emplace(c->socket, tls_context_);
    SSL* native = c->tls->native_handle();
    boost::system::error_code ec;
    asio::ip::make_address(target.host, ec);
    const bool literal = !ec;
    // Verify the certificate against the host we meant: its name, or its address.
    // Should OpenSSL refuse the name, the handshake would check the chain but not whose it is:
    // no request goes then.
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    bool named = false;
    if (literal) {
      named = X509_VERIFY_PARAM_set1_ip_asc(param, target.host.c_str()) == 1;
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      named = SSL_set_tlsext_host_name(native, target.host.c_str()) == 1 &&
              X509_VERIFY_PARAM_set1_host(param, target.host.c_str(), target.host.size()) == 1;
    }
    if (!named) {
      return Abandon(*c, OutboundError::kTls,
                     "cannot set " + target.host + " as the name to verify the certificate for");
    }
    c->tls->async_handshake(
        ssl::stream_base::client, [this, c](const boost::system::error_code& error) {
          if (c->closed) return;
          if (error) return Abandon(*c, OutboundError::kTls, DescribeTlsFailure(*c, error));
          Connected(c);
        });
  }

  static std::string DescribeTlsFailure(Connection& c, const boost::system::error_code& error) {
    const long verify = SSL_get_verify_result(c.tls->native_handle());
    if (verify != X509_V_OK) {
      std::string reason = "TLS certificate verification failed: ";
      reason += X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        reason += " (the certificate is not valid for " + c.transfer->target->host + ")";
      }
      return reason;
    }
    return "TLS handshake failed: " + error.message();
  }

  void Connected(const ConnectionPtr& c) {
    // The connect timeout no longer applies; the request's own runs from Begin().
    c->deadline = c->begun + Timeout(*c->transfer);
    Write(c);
  }

  // --- one exchange -------------------------------------------------------------------------

  void Write(const ConnectionPtr& c) {
    c->phase = Phase::kExchanging;
    const OutboundRequest& request = c->transfer->request;
    std::string& head = c->head;
    head.assign(c->transfer->target->head);
    for (const auto& [name, value] : request.headers) {
      head.append(name).append(": ").append(value).append("\r\n");
    }
    head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n\r\n");
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(request.body)};
    auto written = [this, c](const boost::system::error_code& error, size_t) {
      if (c->closed) return;
      if (error) {
        if (MayRetry(*c, error)) return Retry(*c);
        return Abandon(*c, OutboundError::kProtocol,
                       "connection lost while sending the request: " + error.message());
      }
      Read(c);
    };
    if (c->tls) {
      asio::async_write(*c->tls, buffers, std::move(written));
    } else {
      asio::async_write(c->socket, buffers, std::move(written));
    }
  }

  void Read(const ConnectionPtr& c) {
    c->parser.emplace();
    c->parser->body_limit(boost::none);  // PrefixBody keeps its own
    auto read = [this, c](const boost::system::error_code& error, size_t) {
      if (c->closed) return;
      OnResponse(c, error);
    };
    if (c->tls) {
      http::async_read(*c->tls, c->buffer, *c->parser, std::move(read));
    } else {
      http::async_read(c->socket, c->buffer, *c->parser, std::move(read));
    }
  }

  void OnResponse(const ConnectionPtr& c, const boost::system::error_code& error) {
    auto& response = c->parser->get();
    const int status = response.result_int();
    if (!error && status / 100 == 1 && status != 101) return Read(c);  // 100 Continue, 103...
    // A body beyond the limit still leaves the status: the answer counts, the connection goes.
    const bool answered = !error || (error == http::error::body_limit && status > 0);
    if (!answered) {
      if (!c->parser->got_some() && MayRetry(*c, error)) return Retry(*c);
      return Abandon(*c, OutboundError::kProtocol, DescribeReadFailure(*c, error));
    }
    OutboundResult result;
    result.status = status;
    // Kept as text: the store's text columns and the admin API's JSON take nothing else.
    const PrefixBody::value_type& body = response.body();
    result.body_prefix = model::ToValidUtf8(body.prefix, /*cut=*/body.bytes > body.prefix.size());
    if (const auto retry_after = response.find(http::field::retry_after);
        retry_after != response.end()) {
      result.retry_after = std::string(retry_after->value());
    }
    const bool keep_alive = !error && c->parser->keep_alive();
    Complete(*c->transfer, std::move(result));
    ++c->served;
    Release(c, keep_alive);
  }

  static std::string DescribeReadFailure(Connection& c, const boost::system::error_code& error) {
    const bool got_some = c.parser->got_some();
    if (error == http::error::end_of_stream || error == asio::error::eof ||
        error == ssl::error::stream_truncated) {
      return got_some ? "the response ended early: the receiver closed the connection"
                      : "the receiver closed the connection without a response";
    }
    if (error == http::error::partial_message) {
      return "the response ended early: the receiver closed the connection";
    }
    if (error.category() == http::make_error_code(http::error::bad_version).category()) {
      return "invalid HTTP response: " + error.message();
    }
    return "connection lost while receiving the response: " + error.message();
  }

  // A kept-alive connection the receiver had closed fails before any answer: that is not the
  // receiver's verdict on the request, so it goes once more on a new connection.
  static bool MayRetry(const Connection& c, const boost::system::error_code& error) {
    return c.served > 0 && !c.transfer->retried &&
           (error == asio::error::eof || error == http::error::end_of_stream ||
            error == asio::error::connection_reset || error == asio::error::broken_pipe ||
            error == ssl::error::stream_truncated);
  }

  void Retry(Connection& c) {
    std::unique_ptr<Transfer> t = std::move(c.transfer);
    t->retried = true;
    Host& host = *c.host;
    host.waiting.push_front(std::move(t));
    Close(c);
  }

  // The request on `c` is done; `c` serves the next one waiting, idles, or closes.
  void Release(const ConnectionPtr& c, bool keep_alive) {
    Host& host = *c->host;
    if (!keep_alive) return Close(*c);
    c->phase = Phase::kIdle;
    if (!host.waiting.empty()) return Begin(c, TakeWaiting(host));
    if (!starved_.empty()) return Close(*c);  // another origin needs the place more
    c->idle_since = Clock::now();
    host.idle.push_back(c);
  }

  // Gives up the request on `c` with `error`, and the connection with it.
  void Abandon(Connection& c, OutboundError kind, std::string error) {
    if (c.transfer != nullptr && c.transfer->done) Fail(*c.transfer, kind, std::move(error));
    Close(c);
  }

  // Closes `c`, then lets the requests that waited for its place go.
  void Close(Connection& c) {
    if (c.closed) return;
    Host& host = *c.host;
    Discard(c);
    if (!host.waiting.empty()) Pump(host);
    while (!starved_.empty() && open_ < options_.max_total_connections) {
      Host* next = starved_.front();
      starved_.pop_front();
      next->starved = false;
      Pump(*next);
    }
  }

  // Closes `c` and forgets it; its pending operations end with operation_aborted and see
  // `closed`. The handlers' references keep the object (and the request's bytes) alive.
  void Discard(Connection& c) {
    c.closed = true;
    boost::system::error_code ignored;
    c.socket.close(ignored);
    Host& host = *c.host;
    std::erase_if(host.idle, [&](const ConnectionPtr& idle) { return idle.get() == &c; });
    --host.open;
    --open_;
    connections_.erase(&c);
  }

  // Forgets the origins left without connections or requests. Only the sweep calls it, from the
  // top of the stack: a request that fails at once (a refused address) closes its connection
  // inside Pump(), whose loop still holds its Host.
  void ForgetUnusedHosts() {
    std::erase_if(hosts_, [](const auto& entry) {
      const Host& host = entry.second;
      return host.open == 0 && host.waiting.empty() && !host.starved;
    });
  }

  // --- deadlines ----------------------------------------------------------------------------

  // Makes sure a sweep runs within `period`.
  void ArmSweep(milliseconds period) {
    const Clock::time_point due = Clock::now() + period;
    if (sweep_armed_ && sweep_due_ <= due) return;
    sweep_armed_ = true;
    sweep_due_ = due;
    sweep_.expires_at(due);  // a wait already pending ends with operation_aborted
    sweep_.async_wait([this](const boost::system::error_code& error) {
      if (error == asio::error::operation_aborted) return;
      sweep_armed_ = false;
      Sweep();
    });
  }

  void Sweep() {
    const Clock::time_point now = Clock::now();
    std::vector<ConnectionPtr> expired;
    bool busy = false;
    for (auto& [raw, c] : connections_) {
      if (c->phase == Phase::kIdle) {
        if (now - c->idle_since > kIdleLifetime) expired.push_back(c);
      } else if (now >= c->deadline) {
        expired.push_back(c);
      } else {
        busy = true;
      }
    }
    for (const ConnectionPtr& c : expired) {
      if (c->closed) continue;
      if (c->phase == Phase::kIdle) {
        Close(*c);
      } else {
        Abandon(*c, OutboundError::kTimeout, DescribeTimeout(*c));
      }
    }
    ForgetUnusedHosts();
    if (busy) {
      ArmSweep(kBusySweep);
    } else if (!connections_.empty()) {
      ArmSweep(kIdleSweep);
    }
  }

  static std::string DescribeTimeout(const Connection& c) {
    const OutboundRequest& request = c.transfer->request;
    switch (c.phase) {
      case Phase::kResolving:
        return "DNS resolution timed out after " +
               Ms(std::min(request.timeout, request.connect_timeout));
      case Phase::kConnecting:
      case Phase::kHandshaking:
        return "connect timed out after " + Ms(std::min(request.timeout, request.connect_timeout));
      default:
        return "timed out after " + Ms(request.timeout);
    }
  }

  // --- results ------------------------------------------------------------------------------

  static void Fail(Transfer& t, OutboundError kind, std::string error) {
    OutboundResult result;
    result.error_kind = kind;
    result.error = std::move(error);
    Complete(t, std::move(result));
  }

  static void Complete(Transfer& t, OutboundResult result) {
    result.latency =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t.started);
    auto done = std::move(t.done);
    t.done = nullptr;
    done(std::move(result));
  }

  void Shutdown() {
    for (auto& [origin, host] : hosts_) {
      for (auto& t : host.waiting) Fail(*t, OutboundError::kStopped, "client stopped");
      host.waiting.clear();
    }
    std::vector<ConnectionPtr> all;
    for (auto& [raw, c] : connections_) all.push_back(c);
    starved_.clear();
    for (const ConnectionPtr& c : all) Abandon(*c, OutboundError::kStopped, "client stopped");
    hosts_.clear();
    std::vector<std::unique_ptr<Transfer>> late;
    {
      std::lock_guard lock(mutex_);
      late.swap(queue_);
    }
    for (auto& t : late) Fail(*t, OutboundError::kStopped, "client stopped");
    sweep_.cancel();
    work_.reset();
    io_.stop();
  }

  const ClientOptions options_;
  asio::io_context io_{1};
  // After io_: joined (and so done posting to io_) before io_ goes.
  NameLookups lookups_{kLookupThreads, options_.lookup};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  ssl::context tls_context_;
  std::string ca_error_;  // why https cannot be verified, if it cannot
  std::thread thread_;
  std::thread::id thread_id_;
  std::mutex join_mutex_;

  std::mutex mutex_;
  std::vector<std::unique_ptr<Transfer>> queue_;  // guarded by mutex_
  bool stopping_ = false;                         // guarded by mutex_

  // Owned by the client's thread.
  // By origin. Entries left without connections or requests go at the next sweep.
  std::unordered_map<std::string, Host> hosts_;
  // By URL, at most kMaxTargets (then it starts again).
  std::unordered_map<std::string, std::shared_ptr<const Target>> targets_;
  std::unordered_map<Connection*, ConnectionPtr> connections_;
  std::deque<Host*> starved_;  // origins waiting for a place under max_total_connections
  size_t open_ = 0;
  asio::steady_timer sweep_;
  bool sweep_armed_ = false;
  Clock::time_point sweep_due_;
};

model::Status AsioClient::CheckCaFile(const std::string& path) {
  ssl::context context(ssl::context::tls_client);
  boost::system::error_code ec;
  context.load_verify_file(path, ec);
  if (!ec) return model::Status::Ok();
  return model::InvalidArgument("delivery.ca_file (--ca-file) cannot be used: " + path + ": " +
                                ec.message());
}

AsioClient::AsioClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
AsioClient::~AsioClient() = default;
void AsioClient::Send(OutboundRequest request, std::function<void(OutboundResult)> done) {
  impl_->Send(std::move(request), std::move(done));
}
void AsioClient::Stop() { impl_->Stop(); }

}  // namespace pushhook::delivery
