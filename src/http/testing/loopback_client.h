// The one loopback HTTP client of the C++ tests: raw bytes over a TCP connection to 127.0.0.1,
// for what a well-behaved client cannot send (pipelining, HTTP/1.0, stalls, garbage, half-closed
// connections), and a libcurl POST for the ordinary requests, over HTTP or HTTPS. Never goes
// anywhere but loopback; every read gives up after 5 s. For tests only.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace pushhook::http::testing {

// One TCP connection to 127.0.0.1:`port`, closed when it goes. Not thread-safe.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(uint16_t port);
  ~LoopbackSocket() { Close(); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  // False when the connection was refused.
  bool connected() const { return fd_ >= 0; }
  // The socket, for a client of its own on top (a hand-driven TLS handshake).
  int fd() const { return fd_; }
  // Sends all of `bytes`; a failure is a test failure.
  void Send(std::string_view bytes);
  // Waits until the server's kernel has acknowledged every byte sent, so that they are the
  // server's to read whatever its threads are doing (on a loaded machine, loopback delivery can
  // lag the send() that returned). Giving up after 5 s is a test failure.
  void WaitAcknowledged();
  // Shuts the sending side, as a client that gives up in the middle does.
  void HangUp();
  void Close();

  // Reads until `until` has arrived `count` times; or until the server closes, with
  // "<closed>" appended; or until 5 s pass, with "<timeout>" appended. An empty `until` reads
  // until the server closes.
  std::string Receive(std::string_view until = {}, int count = 1);

 private:
  int fd_ = -1;
};

// Writes `bytes` on a fresh connection (then hangs up if `hang_up`) and reads as
// LoopbackSocket::Receive does.
std::string Exchange(uint16_t port, std::string_view bytes, std::string_view until = {},
                     int count = 1, bool hang_up = false);

struct CurlReply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
};

// One POST of `body` to `url` over `handle` (reuse it to keep the connection alive), trusting
// only the CA in `ca_file` when one is given.
CurlReply CurlPost(CURL* handle, const std::string& url, const std::string& body,
                   const std::string& ca_file = "");

// Connections `handle` opened for its last request: 0 when it reused one.
long CurlConnects(CURL* handle);

}  // namespace pushhook::http::testing
