#include "http/router.h"

#include "model/utf8.h"

namespace pushhook::http {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

// Whether `text` decodes to UTF-8 without a NUL: what a name or an id may be.
bool IsText(const std::optional<std::string>& decoded) {
  return decoded.has_value() && decoded->find('\0') == std::string::npos &&
         model::ToValidUtf8(*decoded) == *decoded;
}

// What is wrong with the query string, or "" when every name and value in it decodes to text.
// A parameter that cannot be read is refused rather than skipped: `?cid=50%off` would
// otherwise answer for every campaign as if it were one.
std::string QueryProblem(std::string_view query) {
  std::string problem;
  ForEachQueryPair(query, [&](std::string_view name, std::optional<std::string_view> value) {
    if (IsText(PercentDecode(name, true)) && (!value || IsText(PercentDecode(*value, true)))) {
      return false;
    }
    constexpr size_t kShown = 64;
    problem = "query parameter '" + std::string(name.substr(0, kShown)) +
              "' is not percent-encoded UTF-8 text (a % is written %25)";
    return true;
  });
  return problem;
}

}  // namespace

void Router::Add(std::string method, std::string_view pattern, Handler handler) {
  Route route{std::move(method), {}, std::move(handler)};
  for (std::string_view part : Split(pattern)) {
    route.segments.emplace_back(part.front() == '{' ? "{}" : std::string(part));
  }
  routes_.push_back(std::move(route));
}

std::vector<std::string> Router::Routes() const {
  std::vector<std::string> out;
  for (const Route& route : routes_) {
    std::string path;
    for (const std::string& segment : route.segments) path += "/" + segment;
    out.push_back(route.method + " " + (path.empty() ? "/" : path));
  }
  return out;
}

void Router::Handle(Request&& request, Responder respond) const {
  const std::vector<std::string_view> parts = Split(request.path);
  bool path_matched = false;
  std::string allowed;  // the methods the path takes, for a 405's Allow
  for (const Route& route : routes_) {
    if (route.segments.size() != parts.size()) continue;
    std::vector<std::string> params;
    bool match = true;
    for (size_t i = 0; i < parts.size() && match; ++i) {
      if (route.segments[i] == "{}") {
        // An id is text: bytes that are not UTF-8, or a NUL, name nothing (and PostgreSQL's
        // text parameters would refuse them, answering an error instead of a 404).
        auto decoded = PercentDecode(parts[i], false);
        match = IsText(decoded) && !decoded->empty();
        if (match) params.push_back(std::move(*decoded));
      } else {
        match = route.segments[i] == parts[i];
      }
    }
    if (!match) continue;
    path_matched = true;
    // HEAD is GET without the body (the server leaves it out), as RFC 9110 asks of every GET.
    const bool head_of_get = request.method == "HEAD" && route.method == "GET";
    if (route.method != request.method && !head_of_get) {
      if (!allowed.empty()) allowed += ", ";
      allowed += route.method;
      if (route.method == "GET") allowed += ", HEAD";
      continue;
    }
    if (std::string problem = QueryProblem(request.query); !problem.empty()) {
      Response response = Response::Error(400, "invalid_request", problem);
      if (on_refusal_) on_refusal_(request.path, response);
      return respond(std::move(response));
    }
    request.path_params = std::move(params);
    route.handler(std::move(request), std::move(respond));
    return;
  }
  if (path_matched) {
    Response response = Response::Error(405, "method_not_allowed",
                                        "method " + request.method + " is not allowed on " +
                                            request.path + " (allowed: " + allowed + ")");
    response.With("allow", allowed);
    if (on_refusal_) on_refusal_(request.path, response);
    respond(std::move(response));
  } else {
    Response response = Response::Error(404, "not_found", "no route for " + request.path);
    if (on_refusal_) on_refusal_(request.path, response);
    respond(std::move(response));
  }
}

}  // namespace pushhook::http
