// libFuzzer target for what the HTTP layer reads out of a request and a response, before any
// handler sees it: the router's path matching with percent-decoded {placeholders}, query
// parameters (Request::QueryParam, PercentDecode), and the Retry-After value a receiver answers
// with (delivery::ParseRetryAfter, delta-seconds or an HTTP-date).
//
// Invariants beyond "no crash": a router answers every request exactly once, with 404 or 405 or
// the matching handler, whose placeholders are non-empty, or with the 400 that names a query
// parameter it cannot read; PercentDecode never grows its input and
// undoes an escaping of every byte; a Retry-After wait is never negative nor above kMaxStep.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "delivery/retry_schedule.h"
#include "http/http_types.h"
#include "http/router.h"

namespace {

namespace http = pushhook::http;

void Check(bool condition) {
  if (!condition) std::abort();
}

const http::Router& TestRouter() {
  static const http::Router* const router = [] {
    auto* r = new http::Router;
    const auto echo = [](size_t params) {
      return [params](http::Request&& request, http::Responder respond) {
        Check(request.path_params.size() == params);
        for (const std::string& p : request.path_params) Check(!p.empty());
        respond(http::Response::Empty(200));
      };
    };
    r->Add("GET", "/healthz", echo(0));
    r->Add("POST", "/v1/events", echo(0));
    r->Add("GET", "/v1/sites/{site}", echo(1));
    r->Add("GET", "/v1/sites/{site}/endpoints/{id}", echo(2));
    r->Add("POST", "/v1/sites/{site}/endpoints/{id}/rotate-secret", echo(2));
    r->Add("GET", "/v1/sites/{site}/messages/{id}/attempts", echo(2));
    return r;
  }();
  return *router;
}

std::string EscapeEveryByte(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string method = in.PickValueInArray({"GET", "POST", "PATCH", "DELETE"});
  const std::string path = in.ConsumeRandomLengthString(256);
  const std::string query = in.ConsumeRandomLengthString(256);
  const std::string name = in.ConsumeRandomLengthString(16);
  const int64_t now_ms = in.ConsumeIntegralInRange<int64_t>(0, 4102444800000);  // up to 2100
  const std::string retry_after = in.ConsumeRemainingBytesAsString();

  http::Request request;
  request.method = method;
  request.path = path;
  request.query = query;
  if (const auto value = request.QueryParam(name)) Check(value->size() <= query.size());

  int answers = 0;
  TestRouter().Handle(std::move(request), [&answers](http::Response response) {
    ++answers;
    Check(response.status == 200 || response.status == 404 || response.status == 405 ||
          (response.status == 400 &&
           response.body.find("\"message\":\"query parameter '") != std::string::npos));
  });
  Check(answers == 1);

  for (bool plus_is_space : {false, true}) {
    if (const auto decoded = http::PercentDecode(query, plus_is_space)) {
      Check(decoded->size() <= query.size());
    }
    const auto undone = http::PercentDecode(EscapeEveryByte(path), plus_is_space);
    Check(undone && *undone == path);
  }

  if (const auto wait = pushhook::delivery::ParseRetryAfter(retry_after, now_ms)) {
    Check(wait->count() >= 0 && *wait <= pushhook::delivery::RetrySchedule::kMaxStep);
  }
  return 0;
}
