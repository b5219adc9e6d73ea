// The outbound HTTP client on libcurl's multi interface: one thread drives every transfer and
// keeps connections alive per host; refuses non-public destinations on the resolved address
// before connecting. Send() may be called from any thread; results arrive on the client's thread.
// curl itself stays inside curl_client.cc.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "delivery/http_client.h"

namespace pushhook::delivery {

using CurlClientOptions = ClientOptions;

class CurlClient final : public HttpClient {
 public:
  // Starts the client's thread. Throws std::runtime_error if libcurl cannot be set up (start-up
  // only).
  explicit CurlClient(CurlClientOptions options);
  // Stop(), then frees everything. Must not run on the client's own thread (in a `done`).
  ~CurlClient() override;
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  // After Stop(), `done` runs at once on the caller's thread with error "client stopped".
  void Send(OutboundRequest request, std::function<void(OutboundResult)> done) override;

  // Starts nothing new, aborts transfers in flight (each `done` gets error "client stopped") and
  // joins the thread. Idempotent; from a `done` callback it only asks the thread to stop.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pushhook::delivery
