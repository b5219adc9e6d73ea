// `pushhook stats`: a campaign's numbers as a table in the terminal, read from a running
// server's reporting API (so it works the same on SQLite and PostgreSQL), for operators without
// the dashboard.
#pragma once

#include <string>

namespace pushhook::cli {

struct StatsCommandOptions {
  std::string server = "http://127.0.0.1:8080";
  std::string token;  // operator or site token
  std::string site;
  std::string cid;
  std::string reference_id;
  std::string from;
  std::string to;
  std::string bucket = "hour";
  std::string group_by;
  std::string ca_file;  // PEM certificates to trust for an https --server; "" = the system's
};

// Prints the table to stdout; returns the exit code (0, 1 on a failed request, 2 on bad usage).
int RunStatsCommand(const StatsCommandOptions& options);

// The table for a stats answer (the JSON of GET /v1/sites/{site}/stats); empty if malformed.
std::string FormatStatsTable(const std::string& stats_json, const StatsCommandOptions& options);

}  // namespace pushhook::cli
