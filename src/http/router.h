// Maps (method, path pattern) to handlers. Patterns are literal segments and {placeholders},
// e.g. "/v1/sites/{site}/endpoints/{id}"; placeholder values land in Request::path_params.
// Built once at start-up, then read-only: Handle() is safe from any thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/http_types.h"

namespace pushhook::http {

class Router {
 public:
  void Add(std::string method, std::string_view pattern, Handler handler);

  // Runs the matching handler; 404 when no pattern matches the path, 405 when one does but
  // not for this method.
  void Handle(Request&& request, Responder respond) const;

  // Called with the request's path on each of the router's own refusals before it is sent (the
  // 404 of a path no route matches, the 405 of a method the path does not take, the 400 of a
  // query that cannot be read): the caller may add headers such as CORS, so that a page or a
  // worker posting to a mistyped path can read why, and count it. Set at start-up.
  using Refusal = std::function<void(std::string_view path, Response&)>;
  void OnRefusal(Refusal decorate) { on_refusal_ = std::move(decorate); }

  // Every route as "METHOD /path/{}/…" (placeholders as {}), in the order they were added: what
  // the test that holds the API's description to the router reads.
  std::vector<std::string> Routes() const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{}" for a placeholder
    Handler handler;
  };
  std::vector<Route> routes_;
  Refusal on_refusal_;
};

}  // namespace pushhook::http
