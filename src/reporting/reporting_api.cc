#include "reporting/reporting_api.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>

#include "model/base64.h"
#include "model/rfc3339.h"
#include "model/utf8.h"
#include "util/json_text.h"

namespace pushhook::reporting {
namespace json = boost::json;
namespace {

constexpr int kDefaultCampaignPage = 50;
constexpr int kMaxCampaignPage = 500;
// The standard error of the unique-subscriber sketch (model::HyperLogLog).
constexpr double kUniqueSubscribersError = 0.0163;
// At most this many buckets in one answer's series. Checked on the rows the store made, which
// are the buckets that hold events: a long range of empty minutes costs nothing to refuse.
constexpr int64_t kMaxSeriesBuckets = 100'000;

http::Response BadRequest(std::string message) {
  return http::Response::Error(400, "invalid_request", message);
}

// A bucket's start as RFC 3339 without fractions: "2026-11-27T20:00:00Z".
std::string BucketTime(int64_t ms) {
  std::string t = model::FormatRfc3339Ms(ms);
  return t.substr(0, 19) + "Z";
}

std::string Decimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

json::object ButtonsJson(const model::Counters& n) {
  return json::object{
      {"0", n.clicks_by_button[0]}, {"1", n.clicks_by_button[1]}, {"2", n.clicks_by_button[2]}};
}

std::string_view TrimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// `text` split at each `separator` outside a quoted string (RFC 9110 section 5.6.4).
std::vector<std::string_view> SplitOutsideQuotes(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (quoted && text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      quoted = !quoted;
    } else if (text[i] == separator && !quoted) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(std::min(start, text.size())));
  return parts;
}

// A qvalue (RFC 9110 section 12.4.2: "0" to "1" with at most three decimals) in thousandths,
// or nullopt when it is not one.
std::optional<int> ParseQuality(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  int thousandths = text[0] == '1' ? 1000 : 0;
  if (text.size() == 1) return thousandths;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  int scale = 100;
  for (char c : text.substr(2)) {
    if (c < '0' || c > '9') return std::nullopt;
    thousandths += (c - '0') * scale;
    scale /= 10;
  }
  if (thousandths > 1000) return std::nullopt;
  return thousandths;
}

// A row's unique subscribers for a CSV cell: "" where the answer has none (minute buckets,
// UTM groups).
std::string Uniques(const store::StatsRow& row) {
  return row.unique_subscribers ? std::to_string(std::llround(*row.unique_subscribers)) : "";
}

http::Response CsvResponse(std::string csv) {
  http::Response response;
  response.status = 200;
  response.body = std::move(csv);
  response.With("content-type", "text/csv; charset=utf-8");
  return response;
}

struct SortName {
  std::string_view name;
  store::CampaignSort sort;
};
constexpr SortName kCampaignSorts[] = {
    {"last_active", store::CampaignSort::kLastActive}, {"views", store::CampaignSort::kViews},
    {"clicks", store::CampaignSort::kClicks},          {"ctr", store::CampaignSort::kCtr},
    {"dismissals", store::CampaignSort::kDismissals},  {"cid", store::CampaignSort::kCid},
};
constexpr const char* kSortChoices = "last_active, views, clicks, ctr, dismissals or cid";
// At most this much text to search campaigns for.
constexpr size_t kMaxCampaignSearch = 256;

std::optional<store::CampaignSort> ParseCampaignSort(std::string_view name) {
  for (const SortName& s : kCampaignSorts) {
    if (s.name == name) return s.sort;
  }
  return std::nullopt;
}

// A cursor names the order it was made for, then the last row's sort value and cid:
// "<sort> <asc|desc>\n<value>\n<cid>", base64.
std::string EncodeCursor(const store::CampaignQuery& q, const store::CampaignSummary& c) {
  std::string value;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          value = "";  // the cid below says it
        } else {
          char buffer[32];
          const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
          value.assign(buffer, ec == std::errc() ? end : buffer);
        }
      },
      store::CampaignSortValueOf(c, q.sort));
  std::string sort;
  for (const SortName& s : kCampaignSorts) {
    if (s.sort == q.sort) sort = s.name;
  }
  return model::Base64Encode(sort + (q.descending ? " desc" : " asc") + "\n" + value + "\n" +
                             c.cid);
}

template <typename T>
bool ParseWhole(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// The cursor `text` continues the list of `q` (whose sort and order it must name), or nullopt.
std::optional<store::CampaignCursor> DecodeCursor(const store::CampaignQuery& q,
                                                  const std::string& text) {
  auto raw = model::Base64Decode(text);
  if (!raw) return std::nullopt;
  const size_t first = raw->find('\n');
  const size_t second = first == std::string::npos ? first : raw->find('\n', first + 1);
  if (second == std::string::npos) return std::nullopt;
  const std::string_view order = std::string_view(*raw).substr(0, first);
  const std::string_view value = std::string_view(*raw).substr(first + 1, second - first - 1);
  const size_t space = order.find(' ');
  if (space == std::string_view::npos || ParseCampaignSort(order.substr(0, space)) != q.sort ||
      order.substr(space + 1) != (q.descending ? "desc" : "asc")) {
    return std::nullopt;
  }
  store::CampaignCursor cursor;
  cursor.cid = raw->substr(second + 1);
  if (q.sort == store::CampaignSort::kCid) {
    cursor.value = cursor.cid;
  } else if (q.sort == store::CampaignSort::kCtr) {
    double ctr = 0;
    if (!ParseWhole(value, ctr)) return std::nullopt;
    cursor.value = ctr;
  } else {
    int64_t n = 0;
    if (!ParseWhole(value, n)) return std::nullopt;
    cursor.value = n;
  }
  return cursor;
}

}  // namespace

double ClickThroughRate(int64_t views, int64_t clicks) {
  return views == 0 ? 0.0 : static_cast<double>(clicks) / static_cast<double>(views);
}

bool WantsCsv(std::string_view accept) {
  // For text/csv ([0]) and application/json ([1]): how specific the most specific range that
  // matches it is (3 type/subtype, 2 type/*, 1 */*, 0 none), and that range's quality in
  // thousandths. The most specific range decides (RFC 9110 section 12.5.1); a type no range
  // matches is not acceptable.
  struct Match {
    int specificity = 0;
    int quality = 0;
  };
  constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kTypes = {
      {{"text", "csv"}, {"application", "json"}}};
  std::array<Match, 2> best;
  for (std::string_view element : SplitOutsideQuotes(accept, ',')) {
    const std::vector<std::string_view> parts = SplitOutsideQuotes(element, ';');
    const std::string_view range = TrimWhitespace(parts[0]);
    const size_t slash = range.find('/');
    if (slash == std::string_view::npos) continue;
    const std::string_view type = range.substr(0, slash), subtype = range.substr(slash + 1);
    if (type.empty() || subtype.empty() || (type == "*" && subtype != "*")) continue;
    std::optional<int> quality = 1000;
    for (size_t p = 1; p < parts.size(); ++p) {
      const std::string_view parameter = TrimWhitespace(parts[p]);
      const size_t equals = parameter.find('=');
      if (equals == std::string_view::npos ||
          !http::EqualsIgnoringCase(TrimWhitespace(parameter.substr(0, equals)), "q")) {
        continue;
      }
      quality = ParseQuality(TrimWhitespace(parameter.substr(equals + 1)));
      break;  // what follows the weight are extensions, not the media type's parameters
    }
    if (!quality) continue;  // a malformed weight: the range is not one we can read
    for (size_t t = 0; t < kTypes.size(); ++t) {
      int specificity = 0;
      if (type == "*") {
        specificity = 1;
      } else if (http::EqualsIgnoringCase(type, kTypes[t].first)) {
        specificity = subtype == "*"                                        ? 2
                      : http::EqualsIgnoringCase(subtype, kTypes[t].second) ? 3
                                                                            : 0;
      }
      Match& m = best[t];
      if (specificity > m.specificity) {
        m = Match{specificity, *quality};
      } else if (specificity > 0 && specificity == m.specificity) {
        m.quality = std::max(m.quality, *quality);
      }
    }
  }
  return best[0].quality > best[1].quality;
}

std::string CsvRecord(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out.push_back(',');
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      out += f;
      continue;
    }
    out.push_back('"');
    for (char c : f) {
      if (c == '"') out.push_back('"');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out += "\r\n";
  return out;
}

std::string SpreadsheetText(std::string text) {
  // The full-width forms of = + - @ (U+FF1D, U+FF0B, U+FF0D, U+FF20), which spreadsheets in
  // East Asian locales read as their ASCII twins.
  constexpr std::array<std::string_view, 4> kFullWidth = {"\uFF1D", "\uFF0B", "\uFF0D", "\uFF20"};
  const bool formula =
      (!text.empty() &&
       std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos) ||
      std::any_of(kFullWidth.begin(), kFullWidth.end(),
                  [&text](std::string_view sign) { return text.starts_with(sign); });
  if (formula) text.insert(text.begin(), '\'');
  return text;
}

ReportingApi::ReportingApi(store::Store& store, const admin::Authenticator& auth,
                           size_t max_csv_campaigns)
    : store_(store), auth_(auth), max_csv_campaigns_(max_csv_campaigns) {}

void ReportingApi::Register(http::Router& router) {
  // Authorised for {site} before the handlers run (Authenticator::SiteScoped).
  router.Add("GET", "/v1/sites/{site}/stats",
             auth_.SiteScoped([this](http::Request&& r, http::Responder respond) {
               Stats(std::move(r), std::move(respond));
             }));
  router.Add("GET", "/v1/sites/{site}/campaigns",
             auth_.SiteScoped([this](http::Request&& r, http::Responder respond) {
               Campaigns(std::move(r), std::move(respond));
             }));
}

void ReportingApi::Stats(http::Request&& request, http::Responder respond) {
  if (auto s = request.OnlyQueryParams({"cid", "reference_id", "from", "to", "bucket", "group_by"});
      !s.ok()) {
    return respond(BadRequest(s.message()));
  }
  const std::string& site_id = request.path_params[0];
  store::StatsQuery query;
  query.site_id = site_id;
  if (auto cid = request.QueryParam("cid"); cid && !cid->empty()) query.cid = *cid;
  if (auto ref = request.QueryParam("reference_id"); ref && !ref->empty()) {
    query.reference_id = *ref;
  }
  for (const char* name : {"from", "to"}) {
    auto text = request.QueryParam(name);
    if (!text || text->empty()) continue;
    auto t = model::ParseTimeParam(*text);
    if (!t) {
      return respond(BadRequest(model::TimeParamError(name, *text)));
    }
    (std::string_view(name) == "from" ? query.from_ms : query.to_ms) = *t;
  }
  if (query.from_ms >= query.to_ms) return respond(BadRequest("from must be before to"));
  // Empty, as every other parameter here, means absent: the default.
  std::string bucket = request.QueryParam("bucket").value_or("");
  if (bucket.empty()) bucket = "hour";
  if (bucket == "minute") {
    query.bucket_ms = model::kMinuteMs;
  } else if (bucket == "hour") {
    query.bucket_ms = model::kHourMs;
  } else if (bucket == "day") {
    query.bucket_ms = model::kDayMs;
  } else {
    return respond(
        BadRequest("bucket must be minute, hour or day, not " + model::QuotedText(bucket)));
  }
  if (auto group = request.QueryParam("group_by"); group && !group->empty()) {
    static const std::vector<std::string> kGroups = {"cid",         "reference_id", "button",
                                                     "utm_source",  "utm_medium",   "utm_campaign",
                                                     "utm_content", "utm_term"};
    if (std::find(kGroups.begin(), kGroups.end(), *group) == kGroups.end()) {
      return respond(
          BadRequest("group_by must be one of cid, reference_id, button, utm_source, utm_medium, "
                     "utm_campaign, utm_content, utm_term, not " +
                     model::QuotedText(*group)));
    }
    query.group_by = *group;
  }

  auto result = store_.QueryStats(query);
  if (!result.ok()) return respond(http::Response::FromStatus(result.status()));
  const store::StatsResult& r = *result;
  if (static_cast<int64_t>(r.series.size()) > kMaxSeriesBuckets) {
    return respond(BadRequest("the series would have more than " +
                              std::to_string(kMaxSeriesBuckets) +
                              " buckets: use a coarser bucket"));
  }
  const auto bucket_start = [](const store::StatsRow& row) {
    int64_t ms = 0;
    std::from_chars(row.key.data(), row.key.data() + row.key.size(), ms);
    return ms;
  };

  if (WantsCsv(request.Header("accept"))) {
    std::string csv;
    if (query.group_by) {
      csv += CsvRecord({*query.group_by, "views", "clicks", "clicks_button_0", "clicks_button_1",
                        "clicks_button_2", "ctr", "dismissals", "unique_subscribers"});
      for (const auto& g : r.groups) {
        const model::Counters& n = g.counters;
        csv += CsvRecord(
            {SpreadsheetText(g.key), std::to_string(n.views), std::to_string(n.clicks),
             std::to_string(n.clicks_by_button[0]), std::to_string(n.clicks_by_button[1]),
             std::to_string(n.clicks_by_button[2]), Decimal(ClickThroughRate(n.views, n.clicks)),
             std::to_string(n.dismissals), Uniques(g)});
      }
    } else {
      csv += CsvRecord({"bucket", "views", "clicks", "clicks_button_0", "clicks_button_1",
                        "clicks_button_2", "ctr", "dismissals", "unique_subscribers"});
      for (const auto& s : r.series) {
        const model::Counters& n = s.counters;
        csv += CsvRecord(
            {BucketTime(bucket_start(s)), std::to_string(n.views), std::to_string(n.clicks),
             std::to_string(n.clicks_by_button[0]), std::to_string(n.clicks_by_button[1]),
             std::to_string(n.clicks_by_button[2]), Decimal(ClickThroughRate(n.views, n.clicks)),
             std::to_string(n.dismissals), Uniques(s)});
      }
    }
    return respond(CsvResponse(std::move(csv)));
  }

  json::array series;
  for (const auto& s : r.series) {
    const model::Counters& n = s.counters;
    json::object item{{"bucket", BucketTime(bucket_start(s))},
                      {"views", n.views},
                      {"clicks", n.clicks},
                      {"clicks_by_button", ButtonsJson(n)},
                      {"ctr", ClickThroughRate(n.views, n.clicks)},
                      {"dismissals", n.dismissals}};
    if (s.unique_subscribers) item["unique_subscribers"] = std::llround(*s.unique_subscribers);
    series.push_back(std::move(item));
  }
  json::object body{
      {"totals", json::object{{"views", r.totals.views},
                              {"clicks", r.totals.clicks},
                              {"clicks_by_button", ButtonsJson(r.totals)},
                              {"ctr", ClickThroughRate(r.totals.views, r.totals.clicks)},
                              {"dismissals", r.totals.dismissals},
                              {"unique_subscribers", std::llround(r.unique_subscribers)},
                              {"unique_subscribers_error", kUniqueSubscribersError}}},
      {"series", std::move(series)}};
  if (query.group_by) {
    json::array groups;
    for (const auto& g : r.groups) {
      const model::Counters& n = g.counters;
      json::object item{{"key", g.key},
                        {"views", n.views},
                        {"clicks", n.clicks},
                        {"clicks_by_button", ButtonsJson(n)},
                        {"ctr", ClickThroughRate(n.views, n.clicks)},
                        {"dismissals", n.dismissals}};
      if (g.unique_subscribers) item["unique_subscribers"] = std::llround(*g.unique_subscribers);
      groups.push_back(std::move(item));
    }
    body["groups"] = std::move(groups);
  }
  respond(http::Response::Json(200, util::ToJsonText(body)));
}

void ReportingApi::Campaigns(http::Request&& request, http::Responder respond) {
  if (auto s = request.OnlyQueryParams({"q", "sort", "order", "limit", "cursor"}); !s.ok()) {
    return respond(BadRequest(s.message()));
  }
  store::CampaignQuery query;
  query.site_id = request.path_params[0];
  const auto limit = request.PageLimit(kDefaultCampaignPage, kMaxCampaignPage);
  if (!limit.ok()) return respond(BadRequest(limit.status().message()));
  query.limit = *limit;
  if (auto text = request.QueryParam("q")) {
    if (text->size() > kMaxCampaignSearch) {
      return respond(
          BadRequest("q must be at most " + std::to_string(kMaxCampaignSearch) + " bytes"));
    }
    query.search = *text;
  }
  if (auto text = request.QueryParam("sort"); text && !text->empty()) {
    auto sort = ParseCampaignSort(*text);
    if (!sort) {
      return respond(BadRequest(std::string("sort must be ") + kSortChoices + ", not " +
                                model::QuotedText(*text)));
    }
    query.sort = *sort;
  }
  // Numbers and times read largest first; campaign ids in their order.
  query.descending = query.sort != store::CampaignSort::kCid;
  if (auto text = request.QueryParam("order"); text && !text->empty()) {
    if (*text != "asc" && *text != "desc") {
      return respond(BadRequest("order must be asc or desc, not " + model::QuotedText(*text)));
    }
    query.descending = *text == "desc";
  }
  if (auto text = request.QueryParam("cursor"); text && !text->empty()) {
    query.after = DecodeCursor(query, *text);
    if (!query.after) {
      return respond(BadRequest("cursor is not one this server gave for this sort and order"));
    }
  }
  if (WantsCsv(request.Header("accept")))
    return CampaignsCsv(std::move(query), request, std::move(respond));
  // One more than the page, to know whether another follows: a full last page says that it is
  // the last rather than leading to an empty one.
  const auto page = static_cast<size_t>(query.limit);
  ++query.limit;
  auto campaigns = store_.ListCampaigns(query);
  if (!campaigns.ok()) return respond(http::Response::FromStatus(campaigns.status()));
  const bool more = campaigns->size() > page;
  if (more) campaigns->pop_back();
  json::array data;
  for (const auto& c : *campaigns) {
    data.push_back(json::object{{"cid", c.cid},
                                {"title", c.title},
                                {"views", c.counters.views},
                                {"clicks", c.counters.clicks},
                                {"clicks_by_button", ButtonsJson(c.counters)},
                                {"ctr", ClickThroughRate(c.counters.views, c.counters.clicks)},
                                {"dismissals", c.counters.dismissals},
                                {"unique_subscribers", std::llround(c.unique_subscribers)},
                                {"first_active_at", model::FormatRfc3339Ms(c.first_active_ms)},
                                {"last_active_at", model::FormatRfc3339Ms(c.last_active_ms)}});
  }
  json::value next;
  if (more) next = EncodeCursor(query, campaigns->back());
  respond(http::Response::Json(
      200, util::ToJsonText(json::object{{"data", std::move(data)}, {"next_cursor", next}})));
}

// The campaign list as CSV: every campaign the query matches, page after page (up to
// max_csv_campaigns_), unless the request named a page size; an export is for a spreadsheet,
// which has no cursor to follow. An export cut at the cap says so in x-pushhook-truncated.
void ReportingApi::CampaignsCsv(store::CampaignQuery query, const http::Request& request,
                                http::Responder respond) {
  const auto limit = request.QueryParam("limit");
  const bool one_page = limit.has_value() && !limit->empty();
  if (!one_page) query.limit = kMaxCampaignPage;
  std::string csv = CsvRecord({"cid", "title", "views", "clicks", "clicks_button_0",
                               "clicks_button_1", "clicks_button_2", "ctr", "dismissals",
                               "unique_subscribers", "first_active_at", "last_active_at"});
  bool truncated = false;
  for (size_t rows = 0;;) {
    if (!one_page && rows >= max_csv_campaigns_) {
      query.limit = 1;  // one more than the cap, to tell a cut export from one that fits
      auto more = store_.ListCampaigns(query);
      if (!more.ok()) return respond(http::Response::FromStatus(more.status()));
      truncated = !more->empty();
      break;
    }
    query.limit = static_cast<int>(
        std::min<size_t>(static_cast<size_t>(query.limit), max_csv_campaigns_ - rows));
    auto campaigns = store_.ListCampaigns(query);
    if (!campaigns.ok()) return respond(http::Response::FromStatus(campaigns.status()));
    for (const auto& c : *campaigns) {
      const model::Counters& n = c.counters;
      csv += CsvRecord(
          {SpreadsheetText(c.cid), SpreadsheetText(c.title), std::to_string(n.views),
           std::to_string(n.clicks), std::to_string(n.clicks_by_button[0]),
           std::to_string(n.clicks_by_button[1]), std::to_string(n.clicks_by_button[2]),
           Decimal(ClickThroughRate(n.views, n.clicks)), std::to_string(n.dismissals),
           std::to_string(std::llround(c.unique_subscribers)),
           model::FormatRfc3339Ms(c.first_active_ms), model::FormatRfc3339Ms(c.last_active_ms)});
    }
    rows += campaigns->size();
    if (one_page || campaigns->size() < static_cast<size_t>(query.limit)) break;
    query.after = store::CampaignCursor{store::CampaignSortValueOf(campaigns->back(), query.sort),
                                        campaigns->back().cid};
  }
  http::Response response = CsvResponse(std::move(csv));
  if (truncated) response.With("x-pushhook-truncated", "true");
  respond(std::move(response));
}

}  // namespace pushhook::reporting
