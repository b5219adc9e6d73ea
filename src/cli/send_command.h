// `pushhook send`: emits test or load events to a server's ingest API at a fixed rate (or as
// fast as it can), over keep-alive connections, and reports what was accepted. Each event gets
// a unique event_id and occurred_at = the moment it is sent, so that a receiver can measure
// event-to-delivery latency. Bounded by count and by time: it always stops by itself.
#pragma once

#include <cstdint>
#include <string>

namespace pushhook::cli {

struct SendOptions {
  std::string server = "http://127.0.0.1:8080";
  std::string key;     // the site's ingest key
  uint64_t count = 1;  // events to send in all
  double rate = 0;     // requests per second; 0 = as fast as the connections allow
  int batch = 1;       // events per request
  int connections = 8;
  double max_seconds = 60;  // stop after this long whatever is left
  std::string cid = "load";
  // With N > 1, the events go round N campaigns: <cid>-0 ... <cid>-(N-1), each titled.
  uint32_t campaigns = 1;
  std::string action = "Click";
  std::string ca_file;  // PEM certificates to trust for an https --server; "" = the system's
};

struct SendReport {
  uint64_t requests = 0;
  uint64_t accepted = 0;  // events answered 202
  uint64_t refused = 0;   // events of requests answered otherwise
  uint64_t errors = 0;    // requests that got no answer
  uint64_t not_sent = 0;  // events of --count never sent: --max-seconds ran out first
  double seconds = 0;
  // Why the first refused request was refused: "HTTP 401: {…}" (the answer's start), or the
  // transport's error; empty when none was.
  std::string first_refusal;
};

SendReport Send(const SendOptions& options);

// Prints the report as one JSON line and returns 0 if every event was accepted, else 1.
int RunSendCommand(const SendOptions& options);

}  // namespace pushhook::cli
