#include "delivery/asio_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "http/server.h"

namespace pushhook::delivery {
namespace {

using std::chrono::milliseconds;

// A socket bound to 127.0.0.1 on a free port; listening only if asked to.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(int backlog = -1) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
    if (backlog >= 0) {
      EXPECT_EQ(listen(fd_, backlog), 0);
    }
  }
  ~LoopbackSocket() { close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// When a CountingServer hangs up on a connection it answered (it never says so in the answer).
enum class Hangup {
  kNever,
  kAfterAnswering,   // at once
  kWhenIdle,         // after kIdleHangupMs without a request, as receivers' keep-alive timeouts do
  kOnSecondRequest,  // instead of answering it: the hang-up and the request cross
};
// Long enough that a test thread woken late does not see a connection it is reusing closed under
// it.
constexpr int kIdleHangupMs = 300;

// A bare HTTP/1.1 responder for what http::Server does not expose: how many TCP connections
// were accepted, and answers written byte by byte. Answers every request with `response` (200
// "ok" by default) and keeps the connection open, or hangs up as `hangup` says.
class CountingServer {
 public:
  static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

  explicit CountingServer(std::string response = std::string(kOk), Hangup hangup = Hangup::kNever)
      : listener_(16), response_(std::move(response)), hangup_(hangup) {
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~CountingServer() {
    shutdown(listener_.fd(), SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    std::lock_guard lock(mutex_);
    for (const int fd : connections_) shutdown(fd, SHUT_RDWR);
    for (auto& t : threads_) t.join();
    for (const int fd : connections_) close(fd);
  }

  uint16_t port() const { return listener_.port(); }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/"; }
  int accepted() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }
  // The request line and headers of the last request, lowercased.
  std::string last_head() {
    std::lock_guard lock(mutex_);
    return last_head_;
  }

 private:
  void AcceptLoop() {
    while (true) {
      const int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      accepted_.fetch_add(1);
      std::lock_guard lock(mutex_);
      connections_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[4096];
    int answered = 0;
    while (true) {
      if (hangup_ == Hangup::kWhenIdle && answered > 0 && buffer.empty()) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, kIdleHangupMs) == 0) {
          shutdown(fd, SHUT_RDWR);
          return;
        }
      }
      const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return;
      buffer.append(chunk, static_cast<size_t>(n));
      while (true) {
        const size_t header_end = buffer.find("\r\n\r\n");
        if (header_end == std::string::npos) break;
        std::string header = buffer.substr(0, header_end);
        std::transform(header.begin(), header.end(), header.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        size_t body_length = 0;
        if (const size_t at = header.find("content-length:"); at != std::string::npos) {
          body_length = std::stoul(header.substr(at + 15));
        }
        if (buffer.size() < header_end + 4 + body_length) break;
        buffer.erase(0, header_end + 4 + body_length);
        {
          std::lock_guard lock(mutex_);
          last_head_ = header;
        }
        if (hangup_ == Hangup::kOnSecondRequest && answered == 1) {
          shutdown(fd, SHUT_RDWR);
          return;
        }
        requests_.fetch_add(1);
        if (send(fd, response_.data(), response_.size(), MSG_NOSIGNAL) < 0) return;
        ++answered;
        if (hangup_ == Hangup::kAfterAnswering) {
          shutdown(fd, SHUT_RDWR);
          return;
        }
      }
    }
  }

  LoopbackSocket listener_;
  const std::string response_;
  const Hangup hangup_;
  std::string last_head_;  // guarded by mutex_
  std::thread accept_thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::vector<int> connections_;
  std::vector<std::thread> threads_;
};

ClientOptions LoopbackOptions() {
  ClientOptions options;
  options.allow_private_destinations = true;
  options.allow_http = true;
  return options;
}

// Sends `request`; its result comes through the future.
std::future<OutboundResult> Send(HttpClient& client, OutboundRequest request) {
  auto promise = std::make_shared<std::promise<OutboundResult>>();
  auto future = promise->get_future();
  client.Send(std::move(request),
              [promise](OutboundResult result) { promise->set_value(std::move(result)); });
  return future;
}

OutboundResult SendAndWait(HttpClient& client, OutboundRequest request) {
  return Send(client, std::move(request)).get();
}

OutboundRequest Post(std::string url, std::string body = "{}") {
  OutboundRequest request;
  request.url = std::move(url);
  request.body = std::move(body);
  request.headers = {{"content-type", "application/json"}};
  return request;
}

// Sends `n` requests to `url` at once and waits for every answer: as many kept connections as
// the client opened for them (up to `n`).
std::vector<OutboundResult> SendAtOnce(HttpClient& client, const std::string& url, int n) {
  std::vector<std::future<OutboundResult>> sent;
  for (int i = 0; i < n; ++i) sent.push_back(Send(client, Post(url, std::to_string(i))));
  std::vector<OutboundResult> results;
  for (auto& f : sent) results.push_back(f.get());
  return results;
}

// A loopback receiver on pushhook's own http::Server. Paths choose the answer:
// /status/N, /big/N (N bytes of body), /not-text, /retry-after, /redirect, /target, /hang
// (never answers until the test ends).
class AsioClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<http::Server>(http::ServerLimits{},
                                             [this](http::Request&& r, http::Responder respond) {
                                               Handle(std::move(r), std::move(respond));
                                             });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    server_->Start(2);
  }

  void TearDown() override {
    server_->Stop();
    {
      std::lock_guard lock(mutex_);
      held_.clear();
    }
    server_.reset();
  }

  void Handle(http::Request&& r, http::Responder respond) {
    http::Response response = http::Response::Empty(200);
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(r);
      if (r.path == "/hang") {
        held_.push_back(std::move(respond));
        seen_.notify_all();
        return;
      }
    }
    seen_.notify_all();
    if (r.path.rfind("/status/", 0) == 0) {
      const int status = std::stoi(r.path.substr(8));
      response = http::Response::Empty(status);
      if (status != 204) response.body = "status " + std::to_string(status);
    } else if (r.path.rfind("/big/", 0) == 0) {
      const size_t size = std::stoul(r.path.substr(5));
      response.body.resize(size);
      for (size_t i = 0; i < size; ++i) response.body[i] = static_cast<char>('a' + i % 26);
    } else if (r.path == "/not-text") {
      // What a gzip or Latin-1 answer looks like: NUL, bytes that are not UTF-8, and a
      // three-byte character cut by the 1 KiB that is kept.
      response.body =
          std::string("\x1f\x8b\0caf\xE9 ", 8) + std::string(1014, 'x') + "\xE2\x82\xAC!";
    } else if (r.path == "/retry-after") {
      response = http::Response::Empty(429).With("Retry-After", r.QueryParam("v").value_or("120"));
    } else if (r.path == "/redirect") {
      response = http::Response::Empty(302).With("Location", "/target");
    }
    respond(std::move(response));
  }

  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path);
  }

  size_t RequestCount() {
    std::lock_guard lock(mutex_);
    return requests_.size();
  }

  void WaitForRequests(size_t count) {
    std::unique_lock lock(mutex_);
    seen_.wait(lock, [&] { return requests_.size() >= count; });
  }

  std::unique_ptr<http::Server> server_;
  std::mutex mutex_;
  std::condition_variable seen_;
  std::vector<http::Request> requests_;
  std::vector<http::Responder> held_;
};

TEST_F(AsioClientTest, PostsTheRequestAsGivenAndPassesStatusesThrough) {
  AsioClient client(LoopbackOptions());
  for (const int status : {200, 204, 400, 410, 500, 503}) {
    OutboundRequest request = Post(Url("/status/" + std::to_string(status)), R"({"n":1})");
    request.headers.emplace_back("webhook-id", "msg_1");
    request.headers.emplace_back("x-empty", "");
    const OutboundResult result = SendAndWait(client, std::move(request));
    EXPECT_EQ(result.status, status);
    EXPECT_EQ(result.error, "");
    EXPECT_EQ(result.body_prefix, status == 204 ? "" : "status " + std::to_string(status));
    EXPECT_GT(result.latency.count(), 0);
  }
  std::lock_guard lock(mutex_);
  ASSERT_EQ(requests_.size(), 6u);
  const http::Request& seen = requests_.back();
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.body, R"({"n":1})");
  EXPECT_EQ(seen.Header("content-type"), "application/json");
  EXPECT_EQ(seen.Header("webhook-id"), "msg_1");
  EXPECT_EQ(seen.Header("user-agent"), "pushhook/" PUSHHOOK_VERSION);
  EXPECT_EQ(seen.Header("expect"), "");
  const auto empty = std::find_if(seen.headers.begin(), seen.headers.end(),
                                  [](const auto& h) { return h.first == "x-empty"; });
  ASSERT_NE(empty, seen.headers.end()) << "a header with an empty value is still sent";
  EXPECT_EQ(empty->second, "");
}

TEST_F(AsioClientTest, SendsLargeBodiesWithoutExpectContinue) {
  AsioClient client(LoopbackOptions());
  const std::string body(200'000, 'x');
  const OutboundResult result = SendAndWait(client, Post(Url("/status/200"), body));
  EXPECT_EQ(result.status, 200) << result.error;
  std::lock_guard lock(mutex_);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].body, body);
  EXPECT_EQ(requests_[0].Header("expect"), "");
}

TEST_F(AsioClientTest, KeepsOnlyTheFirstKibibyteOfTheBody) {
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(client, Post(Url("/big/5000")));
  EXPECT_EQ(result.status, 200);
  ASSERT_EQ(result.body_prefix.size(), 1024u);
  EXPECT_EQ(result.body_prefix.substr(0, 5), "abcde");
  EXPECT_EQ(result.body_prefix[1023], static_cast<char>('a' + 1023 % 26));
}

// The kept body goes into the store's text columns and the admin API's JSON: PostgreSQL refuses
// NUL and ill-formed UTF-8 in text, and such a refusal would fail every write committed with it.
TEST_F(AsioClientTest, KeepsTheBodyAsWellFormedUtf8WithoutNul) {
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(client, Post(Url("/not-text")));
  EXPECT_EQ(result.status, 200);
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(result.body_prefix, "\x1f" + r + r + "caf" + r + " " + std::string(1014, 'x'))
      << "the euro sign the 1 KiB cut through is left out, not replaced";
}

TEST_F(AsioClientTest, AHugeBodyStillCountsAsTheResponse) {
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(client, Post(Url("/big/3000000")));
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.body_prefix.size(), 1024u);
}

TEST_F(AsioClientTest, CapturesRetryAfter) {
  AsioClient client(LoopbackOptions());
  OutboundResult result = SendAndWait(client, Post(Url("/retry-after?v=120")));
  EXPECT_EQ(result.status, 429);
  EXPECT_EQ(result.retry_after, "120");
  result = SendAndWait(client,
                       Post(Url("/retry-after?v=Wed%2C%2021%20Oct%202015%2007%3A28%3A00%20GMT")));
  EXPECT_EQ(result.retry_after, "Wed, 21 Oct 2015 07:28:00 GMT");
  result = SendAndWait(client, Post(Url("/status/503")));
  EXPECT_EQ(result.retry_after, "") << "not carried over from an earlier response";
}

TEST_F(AsioClientTest, DoesNotFollowRedirects) {
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(client, Post(Url("/redirect")));
  EXPECT_EQ(result.status, 302);
  EXPECT_EQ(result.error, "");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(requests_.size(), 1u);
  EXPECT_EQ(requests_[0].path, "/redirect");
}

TEST_F(AsioClientTest, TimesOutQuicklyWithStatusZero) {
  AsioClient client(LoopbackOptions());
  OutboundRequest request = Post(Url("/hang"));
  request.timeout = milliseconds(300);
  const OutboundResult result = SendAndWait(client, std::move(request));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error, "timed out after 300 ms");
  EXPECT_GE(result.latency, milliseconds(250));  // the deadline sweep runs every few ms
  EXPECT_LT(result.latency, milliseconds(3000));
}

TEST_F(AsioClientTest, ConnectTimeoutIsNamedAsSuch) {
  // A listener with a full accept queue: Linux drops further SYNs, so connecting hangs.
  LoopbackSocket listener(0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(listener.port());
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    fillers.push_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    connect(fillers.back(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  }
  AsioClient client(LoopbackOptions());
  OutboundRequest request = Post("http://127.0.0.1:" + std::to_string(listener.port()) + "/", "{}");
  request.connect_timeout = milliseconds(200);
  const OutboundResult result = SendAndWait(client, std::move(request));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error, "connect timed out after 200 ms");
  EXPECT_LT(result.latency, milliseconds(3000));
  for (const int fd : fillers) close(fd);
}

TEST_F(AsioClientTest, ConnectionRefusedOnAClosedPort) {
  const LoopbackSocket bound_not_listening;
  AsioClient client(LoopbackOptions());
  const std::string port = std::to_string(bound_not_listening.port());
  const OutboundResult result = SendAndWait(client, Post("http://127.0.0.1:" + port + "/"));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error, "connection refused by 127.0.0.1 port " + port);
}

TEST_F(AsioClientTest, RefusesLoopbackUnlessAllowedAndSendsNothing) {
  ClientOptions options = LoopbackOptions();
  options.allow_private_destinations = false;
  AsioClient client(options);
  const OutboundResult result = SendAndWait(client, Post(Url("/status/200")));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error,
            "destination 127.0.0.1 is a loopback address (private destinations are not allowed)");
  EXPECT_EQ(RequestCount(), 0u);
}

TEST(AsioClientGuardTest, RefusesANameThatResolvesToLoopbackBeforeConnecting) {
  CountingServer server;
  ClientOptions options = LoopbackOptions();
  options.allow_private_destinations = false;
  AsioClient client(options);
  const std::string url = "http://localhost:" + std::to_string(server.port()) + "/";
  const OutboundResult result = SendAndWait(client, Post(url));
  EXPECT_EQ(result.status, 0);
  // The address it resolved to is not said: a tenant would learn internal names' addresses.
  EXPECT_EQ(result.error,
            "the host name localhost resolves to a loopback address (private destinations are "
            "not allowed)");
  EXPECT_EQ(server.accepted(), 0);
}

// A name whose servers do not answer holds up its own request only: another name's goes
// meanwhile (Asio's own resolver would look the two up one after the other).
TEST_F(AsioClientTest, ASlowNameLookupHoldsUpNoOtherRequest) {
  std::mutex mutex;
  std::condition_variable released;
  bool release = false;
  ClientOptions options = LoopbackOptions();
  options.lookup = [&](const std::string& host, uint16_t) {
    if (host == "slow.test") {
      std::unique_lock lock(mutex);
      released.wait(lock, [&] { return release; });
    }
    if (host == "nowhere.test") return NameLookup{{}, "Name or service not known"};
    return NameLookup{{"127.0.0.1"}, ""};
  };
  AsioClient client(options);
  const std::string port = std::to_string(server_->port());
  std::future<OutboundResult> slow = Send(client, Post("http://slow.test:" + port + "/status/200"));
  EXPECT_EQ(SendAndWait(client, Post("http://fast.test:" + port + "/status/204")).status, 204);
  const OutboundResult nowhere = SendAndWait(client, Post("http://nowhere.test:" + port + "/"));
  EXPECT_EQ(nowhere.error_kind, OutboundError::kDns);
  EXPECT_EQ(nowhere.error,
            "could not resolve the host name: nowhere.test: Name or service not known");
  EXPECT_EQ(slow.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  released.notify_all();
  EXPECT_EQ(slow.get().status, 200);
}

// Stopping waits for a lookup under way (as Asio's resolver does), and what it finds is dropped.
TEST_F(AsioClientTest, StoppingDuringALookupWaitsForItAndSendsNothing) {
  std::atomic<bool> release = false;
  ClientOptions options = LoopbackOptions();
  options.lookup = [&](const std::string&, uint16_t) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return NameLookup{{"127.0.0.1"}, ""};
  };
  std::future<OutboundResult> pending;
  std::thread releaser;
  {
    AsioClient client(options);
    pending = Send(client, Post("http://slow.test:" + std::to_string(server_->port()) + "/"));
    releaser = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      release = true;
    });
  }
  releaser.join();
  EXPECT_EQ(pending.get().error, "client stopped");
  EXPECT_EQ(RequestCount(), 0u);
}

TEST_F(AsioClientTest, RefusesPlainHttpUnlessAllowed) {
  ClientOptions options = LoopbackOptions();
  options.allow_http = false;
  AsioClient client(options);
  OutboundResult result = SendAndWait(client, Post(Url("/status/200")));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error,
            "plain http destinations are not allowed (use https, or allow http in the "
            "configuration)");
  result = SendAndWait(client, Post("ftp://127.0.0.1/x"));
  EXPECT_EQ(result.error, "unsupported URL scheme \"ftp\" (only http and https are allowed)");
  result = SendAndWait(client, Post("127.0.0.1/x"));
  EXPECT_EQ(result.error, "malformed URL (no scheme)");
  EXPECT_EQ(RequestCount(), 0u);
}

TEST_F(AsioClientTest, RefusesHeadersThatWouldInjectLines) {
  AsioClient client(LoopbackOptions());
  OutboundRequest request = Post(Url("/status/200"));
  request.headers.emplace_back("webhook-id", "msg_1\r\nx-injected: 1");
  OutboundResult result = SendAndWait(client, std::move(request));
  EXPECT_EQ(result.error, "header webhook-id has a line break in its value");
  request = Post(Url("/status/200"));
  request.headers.emplace_back("bad:name", "v");
  result = SendAndWait(client, std::move(request));
  EXPECT_EQ(result.error, "invalid header name \"bad:name\"");
  EXPECT_EQ(RequestCount(), 0u);
}

TEST_F(AsioClientTest, HttpsToAPlainServerIsATlsError) {
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(
      client, Post("https://127.0.0.1:" + std::to_string(server_->port()) + "/status/200"));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("TLS handshake failed: ", 0), 0u) << result.error;
}

TEST(AsioClientReuseTest, SequentialRequestsShareOneConnection) {
  CountingServer server;
  AsioClient client(LoopbackOptions());
  for (int i = 0; i < 10; ++i) {
    const OutboundResult result = SendAndWait(client, Post(server.Url(), std::to_string(i)));
    ASSERT_EQ(result.status, 200) << result.error;
    EXPECT_EQ(result.body_prefix, "ok");
  }
  EXPECT_EQ(server.requests(), 10);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(AsioClientReuseTest, AKeptConnectionTheReceiverClosedIsReplacedOnce) {
  // The server answers without "Connection: close" and then hangs up: the client learns it only
  // when it reuses the connection, and sends that request again on a new one.
  CountingServer server(std::string(CountingServer::kOk), Hangup::kAfterAnswering);
  AsioClient client(LoopbackOptions());
  for (int i = 0; i < 3; ++i) {
    // Let the hang-up arrive before the next request goes out on the kept connection.
    std::this_thread::sleep_for(milliseconds(50));
    const OutboundResult result = SendAndWait(client, Post(server.Url(), std::to_string(i)));
    EXPECT_EQ(result.status, 200) << i << ": " << result.error;
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.accepted(), 3);
}

TEST(AsioClientReuseTest, IdleConnectionsTheReceiverClosedAreNotUsed) {
  // Several connections open at once, then all idle past the receiver's keep-alive timeout (a
  // Node server's is 5 s): each request after that goes out on a new connection, at once,
  // rather than on the closed ones, one failure (and one attempt of the message) each.
  CountingServer server(std::string(CountingServer::kOk), Hangup::kWhenIdle);
  AsioClient client(LoopbackOptions());
  for (const OutboundResult& r : SendAtOnce(client, server.Url(), 4)) ASSERT_EQ(r.status, 200);
  const int opened = server.accepted();
  // Past the hang-up (the client looks at a kept connection before each reuse).
  std::this_thread::sleep_for(milliseconds(800));
  for (int i = 0; i < 3; ++i) {
    const OutboundResult result =
        SendAndWait(client, Post(server.Url(), "after " + std::to_string(i)));
    EXPECT_EQ(result.status, 200) << i << ": " << result.error;
  }
  EXPECT_EQ(server.accepted(), opened + 1) << "one new connection, kept for the three";
}

// A receiver that writes a second answer 20 ms after each first one, unasked, on every
// connection; the first request of each connection gets its 200, any later one a 500.
class StrayAnswerServer {
 public:
  StrayAnswerServer() : listener_(8) {
    thread_ = std::thread([this] {
      for (int connection = 0; connection < 2; ++connection) {
        const int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        accepted_.fetch_add(1);
        fds_.push_back(fd);
        std::string head;
        char chunk[4096];
        while (head.find("\r\n\r\n{}") == std::string::npos) {
          const ssize_t n = read(fd, chunk, sizeof chunk);
          if (n <= 0) break;
          head.append(chunk, static_cast<size_t>(n));
        }
        constexpr std::string_view kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        constexpr std::string_view kStray = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray";
        EXPECT_EQ(write(fd, kAnswer.data(), kAnswer.size()), static_cast<ssize_t>(kAnswer.size()));
        std::this_thread::sleep_for(milliseconds(20));
        EXPECT_EQ(write(fd, kStray.data(), kStray.size()), static_cast<ssize_t>(kStray.size()));
      }
    });
  }
  ~StrayAnswerServer() {
    shutdown(listener_.fd(), SHUT_RDWR);
    thread_.join();
    for (const int fd : fds_) close(fd);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(listener_.port()) + "/"; }
  int accepted() const { return accepted_.load(); }

 private:
  LoopbackSocket listener_;
  std::thread thread_;
  std::vector<int> fds_;  // the server thread's until it is joined
  std::atomic<int> accepted_{0};
};

TEST(AsioClientReuseTest, BytesSentUnaskedAreNeverTakenForTheNextAnswer) {
  // The second request comes 100 ms after the first answer, well within any keep-alive: the
  // stray answer waiting on the kept connection must not be read as its own (it was once, a
  // "200 stray" for a message whose receiver never saw it); a new connection carries it.
  StrayAnswerServer server;
  AsioClient client(LoopbackOptions());
  OutboundResult first = SendAndWait(client, Post(server.Url()));
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.body_prefix, "ok");
  std::this_thread::sleep_for(milliseconds(100));
  OutboundResult second = SendAndWait(client, Post(server.Url()));
  EXPECT_EQ(second.status, 200) << second.error;
  EXPECT_EQ(second.body_prefix, "ok") << "read the bytes sent before the request was";
  EXPECT_EQ(server.accepted(), 2);
}

TEST(AsioClientReuseTest, ARequestSentAgainGoesOnANewConnection) {
  // Two kept connections, each of which the receiver closes as the next request arrives (the
  // hang-up and the request crossed): the request sent again must not take the other one,
  // which fails the same way, but a new connection.
  CountingServer server(std::string(CountingServer::kOk), Hangup::kOnSecondRequest);
  AsioClient client(LoopbackOptions());
  for (const OutboundResult& r : SendAtOnce(client, server.Url(), 2)) ASSERT_EQ(r.status, 200);
  ASSERT_EQ(server.accepted(), 2) << "the test needs two kept connections";
  const OutboundResult result = SendAndWait(client, Post(server.Url(), "again"));
  EXPECT_EQ(result.status, 200) << result.error;
  EXPECT_EQ(server.accepted(), 3);
}

TEST(AsioClientReuseTest, TheTotalLimitClosesAnIdleConnectionOfAnotherHost) {
  CountingServer a;
  CountingServer b;
  ClientOptions options = LoopbackOptions();
  options.max_total_connections = 1;
  AsioClient client(options);
  for (CountingServer* server : {&a, &b, &a, &a}) {
    const OutboundResult result = SendAndWait(client, Post(server->Url()));
    ASSERT_EQ(result.status, 200) << result.error;
  }
  EXPECT_EQ(a.accepted(), 2) << "a's connection was closed to make room for b's, then made again";
  EXPECT_EQ(a.requests(), 3);
  EXPECT_EQ(b.accepted(), 1);
}

TEST(AsioClientResponseTest, ReadsChunkedInterimAndCloseDelimitedResponses) {
  struct Case {
    std::string response;
    int status;
    std::string body;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
       200, "abcde"},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
       "HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\ndone",
       202, "done"},
      {"HTTP/1.0 500 Internal Server Error\r\n\r\nuntil the end", 500, "until the end"},
      {"HTTP/1.1 204 No Content\r\n\r\n", 204, ""},
  };
  for (const Case& c : cases) {
    // Closing after each answer ends the close-delimited body.
    CountingServer server(c.response, Hangup::kAfterAnswering);
    AsioClient client(LoopbackOptions());
    const OutboundResult result = SendAndWait(client, Post(server.Url()));
    EXPECT_EQ(result.status, c.status) << c.response << "\n" << result.error;
    EXPECT_EQ(result.body_prefix, c.body) << c.response;
  }
}

TEST(AsioClientResponseTest, AGarbledResponseIsNamedAsSuch) {
  CountingServer server("SMTP ready\r\n\r\n", Hangup::kAfterAnswering);
  AsioClient client(LoopbackOptions());
  const OutboundResult result = SendAndWait(client, Post(server.Url()));
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(result.error.rfind("invalid HTTP response: ", 0), 0u) << result.error;
}

TEST(AsioClientResponseTest, SendsHostWithItsPortAndTheTargetWithItsQuery) {
  CountingServer server;
  AsioClient client(LoopbackOptions());
  const std::string url =
      "http://127.0.0.1:" + std::to_string(server.port()) + "/hooks/a%20b?site=1&x=%2F#frag";
  const OutboundResult result = SendAndWait(client, Post(url));
  ASSERT_EQ(result.status, 200) << result.error;
  const std::string head = server.last_head();
  EXPECT_EQ(head.rfind("post /hooks/a%20b?site=1&x=%2f http/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("\r\nhost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << head;
  EXPECT_NE(head.find("\r\ncontent-length: 2"), std::string::npos) << head;
}

TEST(AsioClientResponseTest, RefusesUrlsItCannotSendTo) {
  AsioClient client(LoopbackOptions());
  EXPECT_EQ(SendAndWait(client, Post("http://user:pw@127.0.0.1:1/")).error,
            "malformed URL (user information is not supported)");
  EXPECT_EQ(SendAndWait(client, Post("http://127.0.0.1:0/")).error, "malformed URL (invalid port)");
  // Not port 34463 (99999's low 16 bits), which a URL stored before registration checked ports
  // would otherwise reach.
  EXPECT_EQ(SendAndWait(client, Post("http://127.0.0.1:99999/")).error,
            "malformed URL (invalid port)");
  // Not port 80 with the request target "abc/v".
  EXPECT_EQ(SendAndWait(client, Post("http://127.0.0.1:abc/v")).error,
            "malformed URL (invalid port)");
  EXPECT_EQ(SendAndWait(client, Post("http://[::1/")).error.rfind("malformed URL: ", 0), 0u);
  EXPECT_EQ(SendAndWait(client, Post("http:///path")).error, "malformed URL (no host)");
}

TEST_F(AsioClientTest, ManyConcurrentRequestsEachCompleteOnce) {
  constexpr int kRequests = 200;
  AsioClient client(LoopbackOptions());
  std::mutex mutex;
  std::condition_variable all_done;
  std::vector<int> calls(kRequests, 0);
  std::vector<int> statuses(kRequests, 0);
  int finished = 0;
  std::vector<std::thread> senders;
  for (int s = 0; s < 4; ++s) {
    senders.emplace_back([&, s] {
      for (int i = s; i < kRequests; i += 4) {
        client.Send(Post(Url("/status/" + std::to_string(200 + i % 3))), [&, i](OutboundResult r) {
          std::lock_guard lock(mutex);
          ++calls[static_cast<size_t>(i)];
          statuses[static_cast<size_t>(i)] = r.status;
          if (++finished == kRequests) all_done.notify_all();
        });
      }
    });
  }
  for (auto& t : senders) t.join();
  std::unique_lock lock(mutex);
  all_done.wait(lock, [&] { return finished == kRequests; });
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(calls[static_cast<size_t>(i)], 1) << i;
    EXPECT_EQ(statuses[static_cast<size_t>(i)], 200 + i % 3) << i;
  }
}

TEST_F(AsioClientTest, AHostGetsAtMostItsConnectionLimitAndTheRestWaitTheirTurn) {
  ClientOptions options = LoopbackOptions();
  options.max_connections_per_host = 3;
  AsioClient client(options);
  std::mutex mutex;
  std::condition_variable changed;
  int finished = 0;
  for (int i = 0; i < 7; ++i) {
    client.Send(Post(Url("/hang")), [&](OutboundResult) {
      std::lock_guard lock(mutex);
      ++finished;
      changed.notify_all();
    });
  }
  // Three reach the server; the other four wait for a place.
  WaitForRequests(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(RequestCount(), 3u);
  // Each answer lets one more through, until all seven were answered.
  for (size_t answered = 0; answered < 7; ++answered) {
    WaitForRequests(std::min<size_t>(answered + 3, 7));
    http::Responder respond;
    {
      std::lock_guard lock(mutex_);
      ASSERT_FALSE(held_.empty());
      respond = std::move(held_.front());
      held_.erase(held_.begin());
    }
    respond(http::Response::Empty(204));
  }
  std::unique_lock lock(mutex);
  changed.wait_for(lock, std::chrono::seconds(10), [&] { return finished == 7; });
  EXPECT_EQ(finished, 7);
  EXPECT_EQ(RequestCount(), 7u);
}

TEST_F(AsioClientTest, StopAbortsInFlightRequestsAndAnswersLateSends) {
  AsioClient client(LoopbackOptions());
  std::mutex mutex;
  std::vector<OutboundResult> results;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 3; ++i) {
    client.Send(Post(Url("/hang")), [&](OutboundResult r) {
      std::lock_guard lock(mutex);
      results.push_back(std::move(r));
      threads.push_back(std::this_thread::get_id());
    });
  }
  WaitForRequests(3);
  client.Stop();
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(results.size(), 3u);
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].status, 0);
      EXPECT_EQ(results[i].error, "client stopped");
      EXPECT_NE(threads[i], std::this_thread::get_id()) << "done runs on the client's thread";
    }
  }
  client.Stop();  // idempotent
  int late_calls = 0;
  client.Send(Post(Url("/status/200")), [&](OutboundResult r) {
    ++late_calls;
    EXPECT_EQ(r.error, "client stopped");
  });
  EXPECT_EQ(late_calls, 1);
}

TEST_F(AsioClientTest, StopFromADoneCallbackDoesNotDeadlock) {
  auto client = std::make_unique<AsioClient>(LoopbackOptions());
  std::promise<void> stopped;
  client->Send(Post(Url("/status/200")), [&](OutboundResult r) {
    EXPECT_EQ(r.status, 200);
    client->Stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  client.reset();  // joins the thread, which ends after the callback
}

TEST_F(AsioClientTest, DestructorAbortsWhatIsInFlight) {
  std::promise<OutboundResult> promise;
  {
    AsioClient client(LoopbackOptions());
    client.Send(Post(Url("/hang")), [&](OutboundResult r) { promise.set_value(std::move(r)); });
    WaitForRequests(1);
  }
  EXPECT_EQ(promise.get_future().get().error, "client stopped");
}

}  // namespace
}  // namespace pushhook::delivery
