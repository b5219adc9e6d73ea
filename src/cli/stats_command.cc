#include "cli/stats_command.h"

#include <curl/curl.h>

#include <boost/json.hpp>
#include <cstdio>
#include <sstream>
#include <vector>

#include "cli/request_failure.h"

namespace pushhook::cli {
namespace {

namespace json = boost::json;

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string Escape(CURL* curl, const std::string& s) {
  char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

std::string Percent(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %%", ratio * 100.0);
  return buf;
}

// Left-aligned columns, two spaces apart.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string Int(const json::value& v) {
  return v.is_int64() ? std::to_string(v.as_int64()) : std::to_string(v.to_number<int64_t>());
}

// A row's count that older servers may not send.
std::string IntOr0(const json::object& row, std::string_view name) {
  const json::value* v = row.if_contains(name);
  return v != nullptr && v->is_number() ? Int(*v) : "0";
}

// A group's key as one cell of one line: control characters (a UTM value may hold a newline)
// shown as escapes, "" as (none).
std::string KeyCell(std::string_view key) {
  if (key.empty()) return "(none)";
  std::string out;
  for (const char c : key) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The tables of a stats document; throws when a field is missing or of another type.
std::string StatsTable(const json::value& doc, const StatsCommandOptions& options) {
  const json::object& totals = doc.at("totals").as_object();
  std::string out = "campaign " + (options.cid.empty() ? std::string("(all)") : options.cid);
  if (!options.reference_id.empty()) out += ", run " + options.reference_id;
  out += "\n\n";
  const json::object& buttons = totals.at("clicks_by_button").as_object();
  out += Table({{"views", "clicks", "ctr", "unique subscribers", "button 0", "button 1", "button 2",
                 "dismissals"},
                {Int(totals.at("views")), Int(totals.at("clicks")),
                 Percent(totals.at("ctr").to_number<double>()),
                 "~" + Int(totals.at("unique_subscribers")), Int(buttons.at("0")),
                 Int(buttons.at("1")), Int(buttons.at("2")), Int(totals.at("dismissals"))}});
  std::vector<std::vector<std::string>> series{
      {options.bucket, "views", "clicks", "ctr", "dismissals"}};
  for (const json::value& row : doc.at("series").as_array()) {
    const json::object& r = row.as_object();
    series.push_back({std::string(r.at("bucket").as_string()), Int(r.at("views")),
                      Int(r.at("clicks")), Percent(r.at("ctr").to_number<double>()),
                      IntOr0(r, "dismissals")});
  }
  out += "\n" + Table(series);
  if (const json::value* groups = doc.as_object().if_contains("groups")) {
    std::vector<std::vector<std::string>> rows{
        {options.group_by, "views", "clicks", "ctr", "dismissals"}};
    for (const json::value& row : groups->as_array()) {
      const json::object& r = row.as_object();
      rows.push_back({KeyCell(r.at("key").as_string()), Int(r.at("views")), Int(r.at("clicks")),
                      Percent(r.at("ctr").to_number<double>()), IntOr0(r, "dismissals")});
    }
    out += "\n" + Table(rows);
  }
  return out;
}

}  // namespace

std::string FormatStatsTable(const std::string& stats_json, const StatsCommandOptions& options) {
  json::error_code ec;
  json::value doc = json::parse(stats_json, ec);
  if (ec || !doc.is_object() || !doc.as_object().contains("totals")) return "";
  // A document of another shape (an older or newer server, a proxy's page) is not a stats
  // document, as the caller then says: not a crash.
  try {
    return StatsTable(doc, options);
  } catch (const std::exception&) {
    return "";
  }
}

int RunStatsCommand(const StatsCommandOptions& options) {
  if (options.token.empty()) {
    std::fprintf(stderr, "pushhook: stats needs a token: set PUSHHOOK_ADMIN_TOKEN or --token\n");
    return 2;
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return 1;
  std::string url = options.server + "/v1/sites/" + Escape(curl, options.site) +
                    "/stats?bucket=" + Escape(curl, options.bucket);
  const std::pair<const char*, const std::string*> params[] = {
      {"cid", &options.cid},
      {"reference_id", &options.reference_id},
      {"from", &options.from},
      {"to", &options.to},
      {"group_by", &options.group_by}};
  for (const auto& [name, value] : params) {
    if (!value->empty()) url += std::string("&") + name + "=" + Escape(curl, *value);
  }
  std::string body;
  const std::string auth = "authorization: Bearer " + options.token;
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30'000L);
  if (!options.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_file.c_str());
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    std::fprintf(stderr, "pushhook: cannot reach %s: %s\n", options.server.c_str(),
                 RequestFailure(rc).c_str());
    return 1;
  }
  if (status != 200) {
    std::fprintf(stderr, "pushhook: the server answered %ld: %s\n", status, body.c_str());
    return status == 400 ? 2 : 1;
  }
  const std::string table = FormatStatsTable(body, options);
  if (table.empty()) {
    std::fprintf(stderr, "pushhook: the server's answer was not a stats document\n");
    return 1;
  }
  std::fputs(table.c_str(), stdout);
  return 0;
}

}  // namespace pushhook::cli
