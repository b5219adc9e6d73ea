// Campaign reporting over HTTP (DESIGN section 6): GET /v1/sites/{site}/stats (totals, a time
// series and optional groups, as JSON or as CSV with accept: text/csv) and
// GET /v1/sites/{site}/campaigns (totals per campaign, most recently active first, cursor-paged).
// The numbers come from aggregates the store keeps as events arrive; nothing scans events here.
//
// Thread safety: stateless; handlers run on any server thread. Store and Authenticator must
// outlive it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "admin/auth.h"
#include "http/router.h"
#include "store/store.h"

namespace pushhook::reporting {

class ReportingApi {
 public:
  // The most campaigns one CSV export holds; past it the export says it was cut.
  static constexpr size_t kMaxCsvCampaigns = 100'000;

  ReportingApi(store::Store& store, const admin::Authenticator& auth,
               size_t max_csv_campaigns = kMaxCsvCampaigns);

  void Register(http::Router& router);

 private:
  void Stats(http::Request&& request, http::Responder respond);
  void Campaigns(http::Request&& request, http::Responder respond);
  void CampaignsCsv(store::CampaignQuery query, const http::Request& request,
                    http::Responder respond);

  store::Store& store_;
  const admin::Authenticator& auth_;
  const size_t max_csv_campaigns_;
};

// One CSV record (RFC 4180): fields quoted when they hold a comma, quote or line break.
std::string CsvRecord(const std::vector<std::string>& fields);

// Text that came from events (a cid, a title, a UTM value) made safe to open in a spreadsheet:
// one that begins with = + - @, a tab or a carriage return would be read as a formula, so it
// gets a leading apostrophe (OWASP's advice on CSV injection). Numbers are not passed here.
std::string SpreadsheetText(std::string text);

// Whether an accept header (RFC 9110 section 12.5.1) asks for CSV: when text/csv's quality is
// above application/json's, each taken from the most specific media range that matches it
// (text/csv, text/* or */*; application/json, application/* or */*). An absent header, equal
// qualities or a type no range lists (quality 0) keep JSON.
bool WantsCsv(std::string_view accept);

// Clicks per view, 0 when there are no views.
double ClickThroughRate(int64_t views, int64_t clicks);

}  // namespace pushhook::reporting
