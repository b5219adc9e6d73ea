#include "http/server.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "http/tls_context.h"
#include "util/log.h"

namespace pushhook::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

Request ToRequest(const bhttp::request<bhttp::string_body>& in, std::string remote) {
  Request out;
  out.method = std::string(in.method_string());
  const std::string_view target = in.target();
  const size_t q = target.find('?');
  out.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) out.query = std::string(target.substr(q + 1));
  out.headers.reserve(8);
  for (const auto& field : in) {
    std::string name(field.name_string());
    // Field names are tokens (RFC 9110 section 5.1): ASCII, lowercased without the C locale.
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    out.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  out.remote_address = std::move(remote);
  return out;
}

// The HTTP/1.1 answer to `response`, serialised in one buffer for one write. 1xx, 204 and 304
// answers carry no Content-Length (RFC 9110 section 8.6); an HTTP/1.0 client is told when the
// connection stays open, an HTTP/1.1 client when it does not. The answer to a HEAD request
// leaves the body out and keeps its Content-Length (RFC 9110 section 9.3.2).
std::string Serialize(const Response& response, unsigned version, bool keep_alive, bool head) {
  const int status = response.status;
  const std::string_view reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  std::string out;
  out.reserve(128 + response.body.size());
  out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out.append(std::to_string(status)).append(" ").append(reason).append("\r\n");
  out.append("Server: pushhook/" PUSHHOOK_VERSION "\r\n");
  // Handlers' names and values are ours, but a line break would start a header of its own.
  const auto append_clean = [&out](std::string_view text) {
    for (char c : text) {
      if (c != '\r' && c != '\n') out.push_back(c);
    }
  };
  for (const auto& [name, value] : response.headers) {
    append_clean(name);
    out.append(": ");
    append_clean(value);
    out.append("\r\n");
  }
  if (!(status < 200 || status == 204 || status == 304)) {
    out.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n");
  }
  if (version == 10 && keep_alive) out.append("Connection: keep-alive\r\n");
  if (version != 10 && !keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n");
  if (!head) out.append(response.body);
  return out;
}

class Session;

// What a server's connections share. Outlives them: it is declared before the workers.
struct Shared {
  ServerLimits limits;
  Handler handler;
  OwnAnswerHeaders own_answer_headers;
  HeadCheck head_check;
  std::atomic<size_t> connections{0};
  // Body bytes declared by the requests being read (ServerLimits::max_body_bytes_reading).
  std::atomic<size_t> body_bytes_reading{0};
  // Set once by Drain(): answers say "connection: close" and idle connections end.
  std::atomic<bool> draining{false};
  std::mutex drained_mu;
  std::condition_variable drained_cv;

  void ConnectionEnded() {
    if (connections.fetch_sub(1) == 1 && draining.load()) {
      std::lock_guard lock(drained_mu);
      drained_cv.notify_all();
    }
  }
};

// One thread and its io_context, with the connections it serves. A connection lives on one
// worker from accept to close, so its handlers never run concurrently and need no strand.
// Timeouts are deadlines that a sweep checks a few times a second, not a timer per read and
// write: arming and cancelling timers three times per request cost more than the request.
struct Worker {
  asio::io_context ioc{1};
  asio::steady_timer sweep{ioc};
  std::vector<std::weak_ptr<Session>> sessions;  // this worker's thread only
  std::shared_ptr<ssl::context> tls;  // this worker's thread only once it runs; null: plain HTTP
  std::thread thread;
};

constexpr std::chrono::milliseconds kSweepInterval{100};

using Clock = std::chrono::steady_clock;
using TlsStream = ssl::stream<tcp::socket&>;

// One connection: read a request, hand it to the handler, write its answer, repeat. On a TLS
// port the first byte decides: a handshake record starts TLS, a letter is plain HTTP sent to
// the wrong port (answered 400), anything else is hung up on.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Shared& shared) : socket_(std::move(socket)), shared_(shared) {
    beast::error_code ec;
    const auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) remote_ = endpoint.address().to_string();
  }
  ~Session() {
    ReleaseBody();
    shared_.ConnectionEnded();
  }

  // On the session's worker thread; `tls` is the worker's context, null for plain HTTP.
  void Start(std::shared_ptr<ssl::context> tls) {
    // Taken from the backlog while the gate closes, and no request has come: nothing to answer.
    if (shared_.draining.load(std::memory_order_relaxed) && NothingArrived()) {
      beast::error_code ec;
      return socket_.close(ec);
    }
    if (!tls) return ReadHeader();
    tls_context_ = std::move(tls);
    ReadFirstBytes();
  }

  // Called by the sweep, on the session's worker thread: ends the pending read or write of a
  // session past its deadline, which then answers 408 or closes the connection.
  void ExpireIfDue(Clock::time_point now) {
    if (now < deadline_) return;
    deadline_ = Clock::time_point::max();
    timed_out_ = true;
    beast::error_code ec;
    socket_.cancel(ec);
  }

  // Called by Drain(), on the session's worker thread: a connection waiting for a request none
  // of whose bytes have come is closed; any other finishes what it is doing. The pending read is
  // cancelled rather than the socket closed: the kernel may have handed it bytes already, with
  // its handler still queued behind this one, and that handler then serves them (EndIdle).
  void CloseIfIdle() {
    if (!waiting_for_request_ || (parser_ && parser_->got_some()) || !NothingArrived()) return;
    idle_read_cancelled_ = true;
    beast::error_code ec;
    socket_.cancel(ec);
  }

 private:
  static constexpr size_t kFirstRead = 1536;
  static constexpr size_t kBodyReadSize = 64 << 10;

  void SetDeadline(std::chrono::milliseconds after) { deadline_ = Clock::now() + after; }
  void ClearDeadline() { deadline_ = Clock::time_point::max(); }

  // Runs `f` on the connection's stream: the TLS stream once a handshake is done, else the socket.
  template <class F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(socket_);
    }
  }

  // No byte of a next request is here: not in our buffer, not in the TLS layer, not in the kernel.
  bool NothingArrived() {
    if (buffer_.size() > 0) return false;
    if (tls_ && SSL_has_pending(tls_->native_handle()) == 1) return false;
    beast::error_code ec;
    return socket_.available(ec) == 0 && !ec;
  }

  // Ends a connection whose read CloseIfIdle cancelled, unless a request's bytes came since: they
  // are read as usual. With no answer to protect and nothing unread, closing at once cannot reset
  // anything the client needs, and lingering would keep the gate shut on clients that do not
  // read their idle connections.
  void EndIdle(void (Session::*read_on)()) {
    if (!NothingArrived()) return (this->*read_on)();
    beast::error_code ec;
    socket_.close(ec);
  }

  // Whether `ec` is the end of a read that CloseIfIdle cancelled (and not the sweep).
  bool CancelledAsIdle(beast::error_code ec) {
    return std::exchange(idle_read_cancelled_, false) && ec == asio::error::operation_aborted &&
           !timed_out_;
  }

  // On the TLS port: the first bytes tell a TLS handshake from plain HTTP.
  void ReadFirstBytes() {
    SetDeadline(shared_.limits.header_timeout);
    waiting_for_request_ = true;
    socket_.async_read_some(buffer_.prepare(kFirstRead),
                            beast::bind_front_handler(&Session::OnFirstBytes, shared_from_this()));
  }

  void OnFirstBytes(beast::error_code ec, size_t n) {
    waiting_for_request_ = false;
    if (CancelledAsIdle(ec)) return EndIdle(&Session::ReadFirstBytes);
    if (ec) return Linger();
    buffer_.commit(n);
    const auto first = static_cast<unsigned char>(*static_cast<const char*>(buffer_.data().data()));
    if (first == 0x16) {  // a TLS record of type handshake: a ClientHello
      tls_ = std::make_unique<TlsStream>(socket_, *tls_context_);
      tls_->async_handshake(ssl::stream_base::server, buffer_.data(),
                            beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
      return;
    }
    if (first >= 'A' && first <= 'Z') {  // a method name: plain HTTP on the TLS port
      plain_on_tls_port_ = true;
      return ReadHeader();
    }
    Linger();  // neither: not worth a word
  }

  void OnHandshake(beast::error_code ec, size_t used) {
    // A failed handshake is the client's problem or an attack, and not worth a log line.
    if (ec) {
      tls_.reset();
      return Linger();
    }
    buffer_.consume(used);
    tls_established_ = true;
    ReadHeader();
  }

  void ReadHeader() {
    // The gate is closing: an idle keep-alive connection ends rather than wait for a request.
    // As in CloseIfIdle, at once: its answer is written and nothing is unread, and a TLS
    // close_notify would wait out the linger time on a client that does not read its idle
    // connections (when Drain() came while the answer was still being written).
    if (shared_.draining.load(std::memory_order_relaxed) && !first_request_ && NothingArrived()) {
      beast::error_code ec;
      return socket_.close(ec);
    }
    parser_.emplace();
    request_.reset();
    head_ = false;
    parser_->header_limit(static_cast<uint32_t>(shared_.limits.max_header_bytes));
    parser_->body_limit(shared_.limits.max_body_bytes);
    // A keep-alive connection waits idle_timeout for the first byte; a header must then be
    // complete within header_timeout. Beast reads both in one call, so the larger applies.
    SetDeadline(first_request_
                    ? shared_.limits.header_timeout
                    : std::max(shared_.limits.idle_timeout, shared_.limits.header_timeout));
    first_request_ = false;
    waiting_for_request_ = true;
    WithStream([this](auto& stream) {
      bhttp::async_read_header(stream, buffer_, *parser_,
                               beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
    });
  }

  void OnHeader(beast::error_code ec, size_t) {
    waiting_for_request_ = false;
    if (CancelledAsIdle(ec)) return EndIdle(&Session::ReadHeader);
    if (ec) return FailRead(ec);
    NoteHead();
    if (plain_on_tls_port_) {
      return WriteError(400, "https_required",
                        "this port serves HTTPS only: send the request to the https:// URL");
    }
    const auto& header = parser_->get();
    if (const auto length = parser_->content_length();
        length && *length > shared_.limits.max_body_bytes) {
      return WriteError(413, "payload_too_large", BodyLimitMessage());
    }
    if (shared_.head_check) {
      request_.emplace(ToRequest(header, remote_));
      if (auto answer = shared_.head_check(*request_)) {
        request_.reset();
        return Write(std::move(*answer), false);
      }
    }
    if (!ReserveBody(parser_->chunked() ? shared_.limits.max_body_bytes
                                        : parser_->content_length().value_or(0))) {
      return WriteError(503, "busy",
                        "too many request bodies are being received at once; retry shortly",
                        {{"retry-after", "1"}});
    }
    SetDeadline(shared_.limits.body_timeout);
    if (beast::iequals(header[bhttp::field::expect], "100-continue")) {
      out_ = "HTTP/1.1 100 Continue\r\n\r\n";
      WithStream([this](auto& stream) {
        asio::async_write(stream, asio::buffer(out_),
                          [self = shared_from_this()](beast::error_code write_error, size_t) {
                            if (write_error) return self->Close();
                            self->ReadBody();
                          });
      });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    // The body usually arrived with the header: parse it from the buffer, without a read.
    if (!parser_->is_done() && buffer_.size() > 0) {
      parser_->eager(true);
      beast::error_code ec;
      buffer_.consume(parser_->put(buffer_.data(), ec));
      if (ec && ec != bhttp::error::need_more) return FailRead(ec);
    }
    if (parser_->is_done()) return OnBody({}, 0);
    // Beast reads at most the buffer's free capacity per call, and no less than 512 bytes: room
    // for the rest of the body (up to kBodyReadSize) reads a batch of events in a few calls
    // rather than one per 512 bytes. Given back once the request is read.
    if (const auto left = parser_->content_length_remaining(); left && *left > 512) {
      buffer_.reserve(static_cast<size_t>(std::min<uint64_t>(*left, kBodyReadSize)));
    }
    WithStream([this](auto& stream) {
      bhttp::async_read(stream, buffer_, *parser_,
                        beast::bind_front_handler(&Session::OnBody, shared_from_this()));
    });
  }

  void OnBody(beast::error_code ec, size_t) {
    ReleaseBody();
    if (ec) return FailRead(ec);
    ClearDeadline();
    if (buffer_.capacity() > kFirstRead) buffer_.shrink_to_fit();  // idle connections stay small
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    // The head check read the header already; the body is all that came since.
    Request request = request_ ? std::move(*request_) : ToRequest(message, remote_);
    request_.reset();
    request.body = std::move(message.body());
    // The responder may run on any thread: it hops back onto this connection's worker. Once
    // the gate is closing, the answer ends the connection. It answers once: a handler that
    // throws after handing it on is answered by whichever comes first.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Responder respond = [self = shared_from_this(), answered](Response response) {
      if (answered->exchange(true)) return;
      asio::dispatch(self->socket_.get_executor(), [self,
                                                    response = std::move(response)]() mutable {
        self->Write(std::move(response),
                    self->keep_alive_ && !self->shared_.draining.load(std::memory_order_relaxed));
      });
    };
    const std::string method = request.method;
    const std::string path = request.path;
    try {
      shared_.handler(std::move(request), respond);
    } catch (const std::exception& e) {
      // A bug in one handler costs its request a 500, not every tenant the process.
      util::Log(util::LogLevel::kError, "a request handler failed",
                {{"method", method}, {"path", path}, {"error", e.what()}});
      respond(Response::Error(500, "internal", "internal error; it is in the server's log"));
    }
  }

  // Whether the request is a HEAD, as soon as its request line is parsed (the method stays
  // `unknown` until then): the answers the server writes itself (413, 431, 408) leave out their
  // body for a HEAD too.
  void NoteHead() { head_ = parser_ && parser_->get().method() == bhttp::verb::head; }

  void FailRead(beast::error_code ec) {
    ReleaseBody();
    NoteHead();
    if (ec == bhttp::error::body_limit) {
      return WriteError(413, "payload_too_large", BodyLimitMessage());
    }
    if (ec == bhttp::error::header_limit) {
      return WriteError(
          431, "header_too_large",
          "request header exceeds " + std::to_string(shared_.limits.max_header_bytes) + " bytes");
    }
    const bool request_begun = parser_ && (parser_->got_some() || buffer_.size() > 0);
    if (timed_out_) {
      // A request that began and did not finish in time is told so; an idle connection ends.
      if (!request_begun || plain_on_tls_port_) return Close();
      return WriteError(408, "request_timeout",
                        "the request did not arrive within the time allowed");
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        plain_on_tls_port_ || ec.category() == asio::error::get_ssl_category() ||
        ec == ssl::error::stream_truncated) {
      return Close();
    }
    // Anything else is a malformed request: say so, then hang up.
    WriteError(400, "bad_request", "malformed HTTP request: " + ec.message());
  }

  // Counts `bytes` against max_body_bytes_reading until ReleaseBody(); false, counting
  // nothing, when they do not fit. A body alone within max_body_bytes always fits when nothing
  // else is being read, so no request is refused for ever.
  bool ReserveBody(size_t bytes) {
    const size_t limit = shared_.limits.max_body_bytes_reading;
    if (limit == 0 || bytes == 0) return true;
    size_t reading = shared_.body_bytes_reading.load(std::memory_order_relaxed);
    do {
      if (reading > 0 && reading + bytes > limit) return false;
    } while (!shared_.body_bytes_reading.compare_exchange_weak(reading, reading + bytes,
                                                               std::memory_order_relaxed));
    body_reserved_ = bytes;
    return true;
  }
  void ReleaseBody() {
    if (body_reserved_ == 0) return;
    shared_.body_bytes_reading.fetch_sub(body_reserved_, std::memory_order_relaxed);
    body_reserved_ = 0;
  }

  std::string BodyLimitMessage() const {
    return "request body exceeds " + std::to_string(shared_.limits.max_body_bytes) + " bytes";
  }

  // The path of the request being read: from the parser once it has the request line (it
  // parses, and takes from the buffer, that line as soon as it is whole), else from the buffer
  // if that much has arrived; "" when not known.
  std::string RequestPath() const {
    std::string_view target;
    if (parser_ && !parser_->get().target().empty()) {
      target = parser_->get().target();
    } else {
      const std::string_view raw(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      const std::string_view line = raw.substr(0, raw.find('\n'));
      const size_t method_end = line.find(' ');
      if (method_end == std::string_view::npos) return {};
      const size_t target_end = line.find(' ', method_end + 1);
      if (target_end == std::string_view::npos) return {};  // the target may not be complete
      target = line.substr(method_end + 1, target_end - method_end - 1);
    }
    return std::string(target.substr(0, target.find('?')));
  }

  // An answer of the server's own, which ends the connection. The route's own-answer headers
  // (ingest's CORS) are added when the path is known.
  void WriteError(
      int status, std::string_view code, std::string_view message,
      std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
    Response response = Response::Error(status, code, message);
    for (const auto& [name, value] : headers) response.With(std::string(name), std::string(value));
    if (shared_.own_answer_headers) {
      if (const std::string path = RequestPath(); !path.empty()) {
        shared_.own_answer_headers(path, response);
      }
    }
    Write(std::move(response), false);
  }

  void Write(Response response, bool keep_alive) {
    out_ = Serialize(response, version_, keep_alive, head_);
    SetDeadline(shared_.limits.body_timeout);
    WithStream([this, keep_alive](auto& stream) {
      asio::async_write(stream, asio::buffer(out_),
                        [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                          if (ec || !keep_alive) return self->Close();
                          self->ReadHeader();
                        });
    });
  }

  // Ends the connection: over TLS with a close_notify first (bounded by the linger time), so
  // that the client knows the answer is complete, then as plain TCP does.
  void Close() {
    if (!socket_.is_open()) return;
    if (!tls_established_) return Linger();
    tls_established_ = false;
    SetDeadline(kLingerTimeout);
    tls_->async_shutdown([self = shared_from_this()](beast::error_code) { self->Linger(); });
  }

  // Closing with unread request bytes makes the kernel send a reset that can destroy the answer
  // before the client reads it (a 413 for a body we refused to read), so the sending side is
  // shut first and what the client still sends is read and dropped, for a bounded time, until
  // it closes too ("lingering close").
  void Linger() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return socket_.close(ec);
    SetDeadline(kLingerTimeout);
    DrainUnread();
  }

  void DrainUnread() {
    socket_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerBytes) {
                                self->ClearDeadline();
                                beast::error_code ignored;
                                self->socket_.close(ignored);
                                return;
                              }
                              self->DrainUnread();
                            });
  }

  static constexpr std::chrono::milliseconds kLingerTimeout{2000};
  static constexpr size_t kLingerBytes = 16 << 20;
  std::array<char, 16384> drain_buffer_;
  size_t drained_ = 0;
  size_t body_reserved_ = 0;  // counted in Shared::body_bytes_reading (ReserveBody)

  tcp::socket socket_;
  std::shared_ptr<ssl::context> tls_context_;  // kept while the connection may use it
  std::unique_ptr<TlsStream> tls_;             // on socket_, so declared after it
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<Request> request_;  // as the head check saw it, until its body is read
  std::string out_;                 // the answer being written
  Shared& shared_;
  std::string remote_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool timed_out_ = false;
  bool keep_alive_ = false;
  bool head_ = false;  // the request being answered is a HEAD: its answer has no body
  bool first_request_ = true;
  bool waiting_for_request_ = false;  // a read for the next request is pending
  bool idle_read_cancelled_ = false;  // by CloseIfIdle, and its handler has not run yet
  bool tls_established_ = false;
  bool plain_on_tls_port_ = false;
  unsigned version_ = 11;
};

}  // namespace

class Server::Impl {
 public:
  Impl(ServerLimits limits, Handler handler, OwnAnswerHeaders own_answer_headers,
       HeadCheck head_check) {
    shared_.limits = limits;
    shared_.handler = std::move(handler);
    shared_.own_answer_headers = std::move(own_answer_headers);
    shared_.head_check = std::move(head_check);
    workers_.push_back(std::make_unique<Worker>());
    acceptor_.emplace(workers_.front()->ioc);
  }

  ~Impl() { Stop(); }

  model::Status EnableTls(const std::string& cert_file, const std::string& key_file) {
    auto credentials = TlsCredentials::Load(cert_file, key_file);
    if (!credentials.ok()) return credentials.status();
    std::lock_guard lock(tls_mu_);
    cert_file_ = cert_file;
    key_file_ = key_file;
    credentials_ = std::move(credentials.value());
    return model::Status::Ok();
  }

  model::Status ReloadTls() {
    std::string cert_file;
    std::string key_file;
    {
      std::lock_guard lock(tls_mu_);
      if (!credentials_) return model::InvalidArgument("this server does not serve TLS");
      cert_file = cert_file_;
      key_file = key_file_;
    }
    auto credentials = TlsCredentials::Load(cert_file, key_file);
    if (!credentials.ok()) return credentials.status();
    std::lock_guard lock(tls_mu_);
    credentials_ = std::move(credentials.value());
    if (started_) {
      // Each worker takes its new context between two of its handlers; connections already
      // open hold on to the old one.
      for (auto& worker : workers_) {
        asio::post(worker->ioc, [w = worker.get(), context = NewServerContext(*credentials_)] {
          w->tls = context;
        });
      }
    }
    return model::Status::Ok();
  }

  model::Status Listen(std::string_view host_port) {
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(host_port, &host, &port)) {
      return model::InvalidArgument("listen address must be host:port, got '" +
                                    std::string(host_port) + "'");
    }
    beast::error_code ec;
    const auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return model::InvalidArgument("listen address '" + host + "' is not an IP address");
    const tcp::endpoint endpoint(address, port);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return model::Unavailable("cannot listen on " + std::string(host_port) + ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint(ec).port();
    return model::Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Start(int threads) {
    while (workers_.size() < static_cast<size_t>(std::max(1, threads))) {
      workers_.push_back(std::make_unique<Worker>());
    }
    {
      std::lock_guard lock(tls_mu_);
      if (credentials_) {
        for (auto& worker : workers_) worker->tls = NewServerContext(*credentials_);
      }
      started_ = true;
    }
    Accept();
    for (auto& worker : workers_) {
      Sweep(*worker);
      worker->thread = std::thread([w = worker.get()] {
        pthread_setname_np(pthread_self(), "ph-http");
        w->ioc.run();
      });
    }
  }

  void StopAccepting() {
    asio::post(acceptor_->get_executor(), [this] {
      if (!acceptor_->is_open()) return;
      // Connections in the backlog have been accepted by the kernel, and their clients may
      // have sent a request: closing the socket would reset them. Take them first.
      beast::error_code ec;
      acceptor_->non_blocking(true, ec);
      while (!ec) {
        Worker& worker = NextWorker();
        tcp::socket socket(worker.ioc);
        acceptor_->accept(socket, ec);
        if (!ec) Adopt(worker, std::move(socket));
      }
      acceptor_->close(ec);
    });
  }

  bool Drain(Clock::time_point deadline) {
    shared_.draining.store(true);
    StopAccepting();
    for (auto& worker : workers_) {
      asio::post(worker->ioc, [w = worker.get()] {
        for (const auto& weak : w->sessions) {
          if (auto session = weak.lock()) session->CloseIfIdle();
        }
      });
    }
    std::unique_lock lock(shared_.drained_mu);
    return shared_.drained_cv.wait_until(lock, deadline,
                                         [this] { return shared_.connections.load() == 0; });
  }

  void Stop() {
    for (auto& worker : workers_) worker->ioc.stop();
    for (auto& worker : workers_) {
      if (worker->thread.joinable()) worker->thread.join();
    }
  }

 private:
  Worker& NextWorker() { return *workers_[next_worker_++ % workers_.size()]; }

  // Accepts on the first worker and hands each connection to the next worker in turn.
  void Accept() {
    Worker& worker = NextWorker();
    acceptor_->async_accept(worker.ioc, [this, &worker](beast::error_code ec, tcp::socket s) {
      // A connection accepted just before StopAccepting() closed the socket is still served.
      if (!ec) Adopt(worker, std::move(s));
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
      Accept();
    });
  }

  // On the first worker's thread: serves `socket` on `worker`.
  void Adopt(Worker& worker, tcp::socket socket) {
    beast::error_code ec;
    if (shared_.connections.fetch_add(1) >= shared_.limits.max_connections) {
      shared_.ConnectionEnded();
      socket.close(ec);  // over the limit: refuse rather than let one client exhaust descriptors
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<Session>(std::move(socket), shared_);
    asio::post(worker.ioc, [&worker, session] {
      worker.sessions.push_back(session);
      session->Start(worker.tls);
    });
  }

  // Every kSweepInterval: expires the sessions past their deadline, forgets the ended ones.
  void Sweep(Worker& worker) {
    worker.sweep.expires_after(kSweepInterval);
    worker.sweep.async_wait([this, &worker](beast::error_code ec) {
      if (ec) return;
      const auto now = Clock::now();
      auto& sessions = worker.sessions;
      for (size_t i = 0; i < sessions.size();) {
        if (auto session = sessions[i].lock()) {
          session->ExpireIfDue(now);
          ++i;
        } else {
          sessions[i] = std::move(sessions.back());
          sessions.pop_back();
        }
      }
      Sweep(worker);
    });
  }

  // Declared in this order so that connections (owned by the workers' queues) end before what
  // they refer to, and the acceptor before its worker.
  Shared shared_;
  std::mutex tls_mu_;
  std::string cert_file_;                              // guarded by tls_mu_
  std::string key_file_;                               // guarded by tls_mu_
  std::shared_ptr<const TlsCredentials> credentials_;  // guarded by tls_mu_; null: plain HTTP
  bool started_ = false;                               // guarded by tls_mu_
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<tcp::acceptor> acceptor_;
  size_t next_worker_ = 0;
  uint16_t port_ = 0;
};

Server::Server(ServerLimits limits, Handler handler, OwnAnswerHeaders own_answer_headers,
               HeadCheck head_check)
    : impl_(std::make_unique<Impl>(limits, std::move(handler), std::move(own_answer_headers),
                                   std::move(head_check))) {}
Server::~Server() = default;
model::Status Server::EnableTls(const std::string& cert_file, const std::string& key_file) {
  return impl_->EnableTls(cert_file, key_file);
}
model::Status Server::ReloadTls() { return impl_->ReloadTls(); }
model::Status Server::Listen(std::string_view host_port) { return impl_->Listen(host_port); }
uint16_t Server::port() const { return impl_->port(); }
void Server::Start(int threads) { impl_->Start(threads); }
void Server::StopAccepting() { impl_->StopAccepting(); }
bool Server::Drain(std::chrono::steady_clock::time_point deadline) {
  return impl_->Drain(deadline);
}
void Server::Stop() { impl_->Stop(); }

bool SplitHostPort(std::string_view host_port, std::string* host, uint16_t* port) {
  size_t colon;
  if (!host_port.empty() && host_port.front() == '[') {
    const size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return false;
    }
    *host = std::string(host_port.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = host_port.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    *host = std::string(host_port.substr(0, colon));
  }
  const std::string_view digits = host_port.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
      value > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace pushhook::http
