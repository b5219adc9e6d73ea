// An HTTP/1.1 server on Asio, parsing with Boost.Beast: keep-alive, size limits enforced where
// the read happens, timeouts as deadlines that each thread sweeps every 100 ms, one request at a
// time per connection, optionally over TLS. Each thread serves its own connections. Requests go
// to a Handler as plain values; the handler answers through its Responder, possibly later and
// from another thread (ingest answers only once its events are durable).
//
// Shutdown is a gate, as Seastar's: Drain() stops accepting, closes idle keep-alive connections,
// tells the others "connection: close" on their next answer and waits until the requests in
// flight are answered; then Stop().
//
// Thread safety: EnableTls(), Listen() and Start() are called once each, from one thread, in
// that order; ReloadTls(), StopAccepting(), Drain() and Stop() may be called from any thread, one
// at a time. Beast, Asio and OpenSSL stay inside src/http's .cc files.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/http_types.h"
#include "model/status.h"

namespace pushhook::http {

struct ServerLimits {
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = size_t{16} * 1024;
  // Time allowed to receive a whole request header, and then its body: slow clients are cut off.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  // How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60'000};
  size_t max_connections = 10'000;
  // The most body bytes that the requests being read may declare at once, over all connections
  // (a chunked body counts as max_body_bytes until it is read). A request past it is answered
  // 503 with Retry-After at its header, before any of its body is read: clients that open many
  // bodies and send them slowly, before any handler can check who they are, cannot make the
  // process hold max_connections × max_body_bytes. At least max_body_bytes; 0: no limit.
  size_t max_body_bytes_reading = size_t{64} << 20;
};

// Sees each answer the server writes itself, without calling the handler (413, 431, 400 for a
// malformed request or plain HTTP on the TLS port, 408), given the request's path as far as it
// arrived, and may add headers to it: a route's rule, such as the CORS headers of ingest, then
// covers every answer on that route, and `pushhook receive` counts these refusals with its
// own. Called on the connection's thread; must be cheap and thread-safe.
using OwnAnswerHeaders = std::function<void(std::string_view path, Response& response)>;

// Sees each request once its header has arrived, before any of its body is read (`head.body` is
// empty), and may answer it then: the answer is written as it is, and ends the connection (what
// the client still sends is read and dropped, for a bounded time). `pushhook receive` refuses
// an unsigned or stale webhook so, without waiting for a body that no signature covers. Called
// on the connection's thread; must be cheap and thread-safe.
using HeadCheck = std::function<std::optional<Response>(const Request& head)>;

class Server {
 public:
  Server(ServerLimits limits, Handler handler, OwnAnswerHeaders own_answer_headers = nullptr,
         HeadCheck head_check = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves HTTPS (TLS 1.2+) with the PEM certificate chain and key in these files. Called before
  // Start(). InvalidArgument, naming the file, when they cannot be read, hold no certificate or
  // key, or do not match. On the TLS port a plain HTTP request is answered 400 "use https" and
  // anything else that is not a TLS handshake is hung up on.
  model::Status EnableTls(const std::string& cert_file, const std::string& key_file);
  // Re-reads the files given to EnableTls(): connections accepted from now on get the new
  // certificate, open ones keep theirs. On error nothing changes and the error says why.
  model::Status ReloadTls();

  // Binds "host:port" (IPv6 as "[::1]:port"); port 0 picks a free one.
  model::Status Listen(std::string_view host_port);
  uint16_t port() const;

  // Serves on `threads` threads until Stop().
  void Start(int threads);
  // Closes the listening socket, after taking the connections already waiting in its backlog
  // (their clients have connected and may have sent a request). Open connections go on.
  void StopAccepting();
  // The gate: StopAccepting(), then ends every connection gracefully: an idle one (waiting for
  // a request, none of whose bytes have come) is closed at once; one that is receiving or
  // handling a request finishes it and is answered with "connection: close". Returns true once
  // no connection is left, false if some are still open at `deadline` (Stop() then cuts them).
  bool Drain(std::chrono::steady_clock::time_point deadline);
  // Stops serving and joins the threads. Connections still open are dropped.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" / "[v6]:port" into its parts; false if malformed.
bool SplitHostPort(std::string_view host_port, std::string* host, uint16_t* port);

}  // namespace pushhook::http
