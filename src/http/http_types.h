// The request and response that handlers see: plain values with no Boost types, so that ingest,
// admin and the receiver never include Beast. The transport (server.cc) converts to and from the
// wire. A Responder may be called from any thread, exactly once.
#pragma once

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/status.h"

namespace pushhook::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Calls fn(name, value) for each "name=value" pair of `query` in order, neither decoded; `value`
// is nullopt for a bare "name", and empty pairs ("&&") are left out. Stops, answering true, at the
// first pair for which fn answers true.
template <typename Fn>
bool ForEachQueryPair(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::optional<std::string_view> value =
        eq == std::string_view::npos ? std::nullopt : std::optional(pair.substr(eq + 1));
    if (fn(pair.substr(0, eq), value)) return true;
  }
  return false;
}

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target before '?', not decoded
  std::string query;   // the target after '?', not decoded
  HeaderList headers;  // names in lowercase
  std::string body;
  std::string remote_address;
  // Filled by the Router: the values of the {placeholders} of the matched route, in order.
  std::vector<std::string> path_params;

  // The first header of that (lowercase) name, or "" when absent.
  std::string_view Header(std::string_view lowercase_name) const;
  // The percent-decoded value of the first query parameter of that name.
  std::optional<std::string> QueryParam(std::string_view name) const;
  // A paged list's `limit` parameter: `fallback` when it is absent or empty, or an
  // invalid-argument status naming the range 1..`max`.
  model::StatusOr<int> PageLimit(int fallback, int max) const;
  // Ok when every query parameter is one of `known`; else an invalid-argument status naming the
  // first that is not and listing those that are. For the routes whose parameters filter what
  // they answer: `?state=failed` for `?status=failed` must not answer every message.
  model::Status OnlyQueryParams(std::initializer_list<std::string_view> known) const;
};

struct Response {
  int status = 200;
  std::string body;
  HeaderList headers;

  static Response Json(int status, std::string body);
  static Response Empty(int status);
  // {"error":{"code":...,"message":...}} with the given status.
  static Response Error(int status, std::string_view code, std::string_view message);
  // The error answer for a non-OK Status: its HTTP status and code name from its StatusCode.
  static Response FromStatus(const model::Status& status);

  Response& With(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

using Responder = std::function<void(Response)>;
using Handler = std::function<void(Request&&, Responder)>;

// Percent-decodes `s` ('+' as space when `plus_is_space`); nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space);

// The HTTP status and the error code name (as in DESIGN section 3) of a StatusCode.
int HttpStatusOf(model::StatusCode code);

// A content-type's media type, lowercase and without parameters: "Application/JSON;
// charset=utf-8" -> "application/json".
std::string MediaType(std::string_view content_type);

// Whether two HTTP tokens (an auth scheme, a parameter name) are equal, ignoring ASCII case.
bool EqualsIgnoringCase(std::string_view a, std::string_view b);
std::string_view ErrorCodeOf(model::StatusCode code);

}  // namespace pushhook::http
