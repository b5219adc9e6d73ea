// The outbound HTTP/1.1 client: one thread and one io_context drive every request over a pool of
// keep-alive connections per origin (scheme, host, port), plain or TLS (OpenSSL, verified against
// the system store or ClientOptions::ca_file, by host name or IP). Responses are read with Beast's
// parser. Destinations are checked against the address guard after name resolution and before
// connecting. Send() may be called from any thread; results arrive on the client's thread.
//
// It took the place of libcurl's multi interface, which cost 47-58 us of CPU per request here
// against 23-27 us for this client (three poll() calls and two recv() per request, and a fresh
// set of options per transfer); see BENCHMARKS.md, figure 7.
#pragma once

#include <memory>
#include <string>

#include "delivery/http_client.h"
#include "model/status.h"

namespace pushhook::delivery {

class AsioClient final : public HttpClient {
 public:
  // Starts the client's thread. A CA file that cannot be read does not throw: every https
  // request then fails with "cannot use the CA file: ...". CheckCaFile() finds that at start.
  explicit AsioClient(ClientOptions options);
  // Stop(), then frees everything. Must not run on the client's own thread (in a `done`).
  ~AsioClient() override;
  AsioClient(const AsioClient&) = delete;
  AsioClient& operator=(const AsioClient&) = delete;

  // Whether `path` holds CA certificates the client can verify with: an InvalidArgument that
  // names the file and the reason if not.
  static model::Status CheckCaFile(const std::string& path);

  // After Stop(), `done` runs at once on the caller's thread with error "client stopped".
  void Send(OutboundRequest request, std::function<void(OutboundResult)> done) override;

  // Starts nothing new, aborts requests in flight (each `done` gets error "client stopped") and
  // joins the thread. Idempotent; from a `done` callback it only asks the thread to stop.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushhook::delivery
