// Microbenchmark of one delivery request's trip through the outbound client (AsioClient, on
// the client's thread) to pushhook's own HTTP server on loopback, which answers 204 at once. It
// counts the CPU that each side's threads spend per request, read from /proc/self/task, beside
// the wall time: figure 3 (BENCHMARKS.md) sets those against what wrk and nginx spend here.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "delivery/asio_client.h"
#include "http/server.h"

namespace {

namespace delivery = pushhook::delivery;
namespace http = pushhook::http;

// CPU seconds (user + system) of this process's threads, by thread name.
std::map<std::string, double> ThreadCpuSeconds() {
  std::map<std::string, double> out;
  static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string name = stat.substr(open + 1, close - open - 1);
    // Fields after the name: state is field 3; utime and stime are fields 14 and 15.
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    double used = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14 || i == 15) used += std::stod(field) / ticks;
    }
    out[name] += used;
  }
  return out;
}

// range(0) requests in flight at once (a wave, as 16 to one endpoint by default), repeated, sent
// by Client, whose thread is named `thread`.
template <class Client>
void BM_DeliveryRequest(benchmark::State& state, const char* thread) {
  const int wave = static_cast<int>(state.range(0));
  http::Server server(http::ServerLimits{}, [](http::Request&&, http::Responder respond) {
    respond(http::Response::Empty(204));
  });
  if (!server.Listen("127.0.0.1:0").ok()) {
    state.SkipWithError("cannot listen");
    return;
  }
  server.Start(2);
  delivery::ClientOptions options;
  options.allow_http = true;
  options.allow_private_destinations = true;  // loopback only
  Client client(options);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/e/0";
  const std::string body(420, 'x');  // about an izooto payload
  std::mutex mu;
  std::condition_variable cv;
  const auto send_wave = [&] {
    int left = wave;
    bool failed = false;
    for (int i = 0; i < wave; ++i) {
      delivery::OutboundRequest request;
      request.url = url;
      request.body = body;
      request.headers = {{"content-type", "application/json"},
                         {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
                         {"webhook-timestamp", "1614265330"},
                         {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
      client.Send(std::move(request), [&](delivery::OutboundResult r) {
        std::lock_guard lock(mu);
        failed |= r.status != 204;
        if (--left == 0) cv.notify_one();
      });
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return left == 0; });
    return !failed;
  };
  send_wave();  // connections made before the clock runs
  const auto before = ThreadCpuSeconds();
  for (auto _ : state) {
    if (!send_wave()) {
      state.SkipWithError("a request did not get its 204");
      break;
    }
  }
  const auto after = ThreadCpuSeconds();
  const double requests = static_cast<double>(state.iterations()) * wave;
  const auto per_request_us = [&](const std::string& name) {
    const auto a = after.find(name), b = before.find(name);
    if (a == after.end()) return 0.0;
    return (a->second - (b == before.end() ? 0.0 : b->second)) * 1e6 / std::max(1.0, requests);
  };
  state.counters["client_cpu_us"] = per_request_us(thread);
  state.counters["server_cpu_us"] = per_request_us("ph-http");
  state.SetItemsProcessed(state.iterations() * wave);
  client.Stop();
  server.Stop();
}
void BM_DeliveryRequestAsio(benchmark::State& state) {
  BM_DeliveryRequest<delivery::AsioClient>(state, "ph-client");
}
BENCHMARK(BM_DeliveryRequestAsio)->ArgName("in_flight")->Arg(16)->UseRealTime();

}  // namespace
