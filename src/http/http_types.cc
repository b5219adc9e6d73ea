#include "http/http_types.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "model/json_string.h"
#include "model/utf8.h"

namespace pushhook::http {

std::string_view Request::Header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return value;
  }
  return {};
}

std::optional<std::string> Request::QueryParam(std::string_view name) const {
  std::optional<std::string> found;
  ForEachQueryPair(query, [&](std::string_view raw_name, std::optional<std::string_view> value) {
    const auto key = PercentDecode(raw_name, true);
    if (!key || *key != name) return false;
    found = value ? PercentDecode(*value, true) : std::string();
    return true;
  });
  return found;
}

model::Status Request::OnlyQueryParams(std::initializer_list<std::string_view> known) const {
  std::string message;
  ForEachQueryPair(query, [&](std::string_view raw_name, std::optional<std::string_view>) {
    const auto key = PercentDecode(raw_name, true);
    if (key && std::find(known.begin(), known.end(), *key) != known.end()) return false;
    message = "unknown query parameter " + model::QuotedText(key ? *key : raw_name) +
              "; this route takes ";
    for (size_t i = 0; i < known.size(); ++i) {
      if (i > 0) message += i + 1 == known.size() ? " and " : ", ";
      message += known.begin()[i];
    }
    return true;
  });
  return message.empty() ? model::Status::Ok() : model::InvalidArgument(std::move(message));
}

model::StatusOr<int> Request::PageLimit(int fallback, int max) const {
  const auto text = QueryParam("limit");
  if (!text || text->empty()) return fallback;
  int n = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
  if (ec != std::errc() || end != text->data() + text->size() || n < 1 || n > max) {
    return model::InvalidArgument("limit must be an integer from 1 to " + std::to_string(max));
  }
  return n;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("content-type", "application/json");
  return r;
}

Response Response::Empty(int status) {
  Response r;
  r.status = status;
  return r;
}

Response Response::Error(int status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":{\"code\":";
  model::AppendJsonString(body, code);
  body += ",\"message\":";
  // Messages quote what came in (a percent-decoded id in a path is any bytes); JSON is UTF-8.
  model::AppendJsonString(body, model::ToValidUtf8(message));
  body += "}}";
  return Json(status, std::move(body));
}

Response Response::FromStatus(const model::Status& status) {
  Response r = Error(HttpStatusOf(status.code()), ErrorCodeOf(status.code()), status.message());
  // Busy or away for now (a database restarting, a full queue): say when to come back.
  if (r.status == 503 || r.status == 429) r.With("retry-after", "1");
  return r;
}

std::optional<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      const int hi = hex(s[i + 1]);
      const int lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

int HttpStatusOf(model::StatusCode code) {
  using model::StatusCode;
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kUnsupported:
      return 415;
    case StatusCode::kUnprocessable:
      return 422;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

std::string_view ErrorCodeOf(model::StatusCode code) {
  using model::StatusCode;
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_request";
    case StatusCode::kUnauthenticated:
      return "unauthorized";
    case StatusCode::kPermissionDenied:
      return "forbidden";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kAlreadyExists:
      return "conflict";
    case StatusCode::kTooLarge:
      return "payload_too_large";
    case StatusCode::kUnsupported:
      return "unsupported_media_type";
    case StatusCode::kUnprocessable:
      return "unprocessable";
    case StatusCode::kResourceExhausted:
      return "rate_limited";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kInternal:
      return "internal";
  }
  return "internal";
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string MediaType(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  const size_t start = type.find_first_not_of(" \t");
  type.erase(0, start == std::string::npos ? type.size() : start);
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type;
}

}  // namespace pushhook::http
