#include "http/server.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>
#include <thread>
#include <vector>

namespace pushhook::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
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
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  out.remote_address = std::move(remote);
  return out;
}

// One connection: read a request, hand it to the handler, write its answer, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const ServerLimits& limits, const Handler& handler,
          std::atomic<size_t>& connections)
      : stream_(std::move(socket)), limits_(limits), handler_(handler), connections_(connections) {
    beast::error_code ec;
    const auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = endpoint.address().to_string();
  }
  ~Session() { connections_.fetch_sub(1, std::memory_order_relaxed); }

  void Start() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::ReadHeader, shared_from_this()));
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(limits_.max_header_bytes));
    parser_->body_limit(limits_.max_body_bytes);
    // A keep-alive connection waits idle_timeout for the first byte; a header must then be
    // complete within header_timeout. Beast reads both in one call, so the larger applies.
    stream_.expires_after(first_request_ ? limits_.header_timeout
                                         : std::max(limits_.idle_timeout, limits_.header_timeout));
    first_request_ = false;
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (ec) return FailRead(ec);
    const auto& header = parser_->get();
    if (const auto length = parser_->content_length(); length && *length > limits_.max_body_bytes) {
      return WriteError(413, "payload_too_large",
                        "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes",
                        false);
    }
    stream_.expires_after(limits_.body_timeout);
    if (beast::iequals(header[bhttp::field::expect], "100-continue")) {
      auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                       header.version());
      bhttp::async_write(stream_, *cont,
                         [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                           if (ec) return self->Close();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (ec) return FailRead(ec);
    stream_.expires_never();
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    Request request = ToRequest(message, remote_);
    request.body = std::move(message.body());
    // The responder may run on any thread: it hops back onto this connection's strand.
    handler_(std::move(request), [self = shared_from_this()](Response response) {
      asio::dispatch(self->stream_.get_executor(),
                     [self, response = std::move(response)]() mutable {
                       self->Write(std::move(response), self->keep_alive_);
                     });
    });
  }

  void FailRead(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return WriteError(413, "payload_too_large",
                        "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes",
                        false);
    }
    if (ec == bhttp::error::header_limit) {
      return WriteError(
          431, "header_too_large",
          "request header exceeds " + std::to_string(limits_.max_header_bytes) + " bytes", false);
    }
    if (ec == beast::error::timeout || ec == bhttp::error::end_of_stream ||
        ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted) {
      return Close();
    }
    // Anything else is a malformed request: say so, then hang up.
    WriteError(400, "bad_request", "malformed HTTP request: " + ec.message(), false);
  }

  void WriteError(int status, std::string_view code, std::string_view message, bool keep_alive) {
    Write(Response::Error(status, code, message), keep_alive);
  }

  void Write(Response response, bool keep_alive) {
    auto out = std::make_shared<bhttp::response<bhttp::string_body>>();
    out->result(static_cast<unsigned>(response.status));
    out->version(version_);
    out->set(bhttp::field::server, "pushhook/" PUSHHOOK_VERSION);
    for (auto& [name, value] : response.headers) out->insert(name, value);
    out->body() = std::move(response.body);
    out->keep_alive(keep_alive);
    out->prepare_payload();
    stream_.expires_after(limits_.body_timeout);
    bhttp::async_write(stream_, *out,
                       [self = shared_from_this(), out, keep_alive](beast::error_code ec, size_t) {
                         if (ec || !keep_alive) return self->Close();
                         self->ReadHeader();
                       });
  }

  // Ends the connection. Closing with unread request bytes makes the kernel send a reset that
  // can destroy the answer before the client reads it (a 413 for a body we refused to read), so
  // the sending side is shut first and what the client still sends is read and dropped, for a
  // bounded time, until it closes too ("lingering close").
  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return stream_.socket().close(ec);
    stream_.expires_after(kLingerTimeout);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerBytes) {
                                beast::error_code ignored;
                                self->stream_.socket().close(ignored);
                                return;
                              }
                              self->Drain();
                            });
  }

  static constexpr std::chrono::seconds kLingerTimeout{2};
  static constexpr size_t kLingerBytes = 16 << 20;
  std::array<char, 16384> drain_buffer_;
  size_t drained_ = 0;

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const ServerLimits& limits_;
  const Handler& handler_;
  std::atomic<size_t>& connections_;
  std::string remote_;
  bool keep_alive_ = false;
  bool first_request_ = true;
  unsigned version_ = 11;
};

}  // namespace

class Server::Impl {
 public:
  Impl(ServerLimits limits, Handler handler)
      : limits_(limits), handler_(std::move(handler)), acceptor_(asio::make_strand(ioc_)) {}

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
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return model::Unavailable("cannot listen on " + std::string(host_port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    return model::Status::Ok();
  }

  uint16_t port() const { return port_; }

  void Start(int threads) {
    Accept();
    threads_.reserve(static_cast<size_t>(threads));
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "ph-http");
        ioc_.run();
      });
  }

  void StopAccepting() {
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
    });
  }

  void Stop() {
    ioc_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        if (connections_.fetch_add(1, std::memory_order_relaxed) >= limits_.max_connections) {
          connections_.fetch_sub(1, std::memory_order_relaxed);
          s.close(ec);  // over the limit: refuse rather than let one client exhaust descriptors
        } else {
          s.set_option(tcp::no_delay(true), ec);
          std::make_shared<Session>(std::move(s), limits_, handler_, connections_)->Start();
        }
      }
      Accept();
    });
  }

  ServerLimits limits_;
  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> connections_{0};
  uint16_t port_ = 0;
};

Server::Server(ServerLimits limits, Handler handler)
    : impl_(std::make_unique<Impl>(limits, std::move(handler))) {}
Server::~Server() { impl_->Stop(); }
model::Status Server::Listen(std::string_view host_port) { return impl_->Listen(host_port); }
uint16_t Server::port() const { return impl_->port(); }
void Server::Start(int threads) { impl_->Start(threads); }
void Server::StopAccepting() { impl_->StopAccepting(); }
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
