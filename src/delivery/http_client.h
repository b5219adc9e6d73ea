// The seam between the dispatcher and the network: one outbound POST in, one result out,
// asynchronously. AsioClient is the real implementation; tests of the dispatcher may supply
// their own. No library types cross this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pushhook::delivery {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct OutboundRequest {
  std::string url;
  // Sent as given; content-type, user-agent and webhook-* are set by the caller. Names and values
  // must not contain CR, LF or NUL (such a request fails without being sent).
  Headers headers;
  std::string body;  // POSTed
  std::chrono::milliseconds timeout{15'000};
  std::chrono::milliseconds connect_timeout{5'000};
};

// Why no response was received, as a kind the dispatcher can act on (the text is for people).
enum class OutboundError {
  kNone,            // a complete response was received
  kRefused,         // the destination policy refused it: plain http, a private address
  kInvalidRequest,  // the URL or a header cannot be sent as given
  kDns,             // the host name did not resolve
  kConnect,         // no connection: refused, unreachable, reset while connecting
  kTls,             // the TLS handshake or the certificate failed
  kTimeout,         // a deadline passed: DNS, connect or the whole request
  kProtocol,        // the connection broke or the answer was not HTTP
  kStopped,         // the client was stopping
};

// True for failures that another try will not mend: only a change of the endpoint (its URL) or
// of the configuration can.
inline bool IsPermanent(OutboundError error) {
  return error == OutboundError::kRefused || error == OutboundError::kInvalidRequest;
}

struct OutboundResult {
  // The HTTP status of a complete response; 0 when none was received, and then `error` says why.
  int status = 0;
  OutboundError error_kind = OutboundError::kNone;
  // Empty when a response was received; else a clear reason: "connection refused ...", "timed
  // out after 15000 ms", "destination 10.0.0.1 is a private address (...)".
  std::string error;
  std::string body_prefix;  // the first 1 KiB of the response body, as UTF-8 (model::ToValidUtf8)
  std::string retry_after;  // the Retry-After response header, if any
  std::chrono::microseconds latency{0};  // from Send() to the result
};

// How a client may send: what it refuses, and how many connections it keeps.
// A host name's addresses as text ("192.0.2.1", "2001:db8::1"), or why it has none.
struct NameLookup {
  std::vector<std::string> addresses;
  std::string error;  // "" when the name was found
};

struct ClientOptions {
  std::string ca_file;  // "" = the system store
  // Private, loopback, link-local... destinations (see address_guard.h) are refused unless this
  // is set. Checked on the resolved address, before connecting.
  bool allow_private_destinations = false;
  // Plain http:// URLs (refused by default, as delivery.allow_http); https is always allowed.
  bool allow_http = false;
  size_t max_connections_per_host = 64;
  size_t max_total_connections = 1024;
  std::string user_agent = "pushhook/" PUSHHOOK_VERSION;
  // How a host name becomes addresses: getaddrinfo unless a test gives another. Runs on one of
  // the client's lookup threads, several at once, never on the thread that sends.
  std::function<NameLookup(const std::string& host, uint16_t port)> lookup;
};

// Implementations say how they share threads; the contract of Send() holds for all.
class HttpClient {
 public:
  static constexpr size_t kBodyPrefixBytes = 1024;

  virtual ~HttpClient() = default;
  // Sends one request; `done` runs exactly once, on the client's own thread, and must not block.
  virtual void Send(OutboundRequest request, std::function<void(OutboundResult)> done) = 0;
};

}  // namespace pushhook::delivery
