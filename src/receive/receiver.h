// The receiving side (DESIGN section 5): an HTTP endpoint that verifies Standard Webhooks
// signatures and timestamps, de-duplicates by webhook-id, and stores each payload once before it
// answers 204. It is what customers run to capture webhooks and what benchmarks use as a sink.
//
// Thread safety: Start(), Stop() and ReloadTls() are called from one thread; port() and counts()
// from any.
// A Receiver owns its server threads, its writer thread and its output file.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/payload.h"
#include "model/status.h"

namespace pushhook::receive {

// The largest batch `pushhook serve` sends: store::kMaxBatchEvents (1,000) of the longest
// payloads, comma-separated in brackets (receiver_test holds it to the store's limit). About
// 16 MiB, and only when every byte of every field needs escaping; typical batches of 1,000 are
// under 1 MiB.
inline constexpr size_t kMaxBatchBodyBytes = 1000 * (model::kMaxPayloadBytes + 1) + 1;

struct ReceiverOptions {
  std::string listen = "127.0.0.1:9000";
  // "whsec_" secrets; a request that verifies with any one of them is accepted.
  std::vector<std::string> secrets;
  // "" keeps nothing on disk; a path ending in ".db" is a SQLite file (de-duplication survives a
  // restart); anything else is an NDJSON file, one payload per line, appended.
  std::string out_path;
  // How far webhook-timestamp may be from now, in either direction.
  std::chrono::seconds tolerance{300};
  // Threads that serve HTTP (`--threads`).
  int threads = 2;
  // Largest request body taken; larger answers 413. By default the largest batch that
  // `pushhook serve` can send, so that no batch it makes is refused here.
  size_t max_body_bytes = kMaxBatchBodyBytes;
  // fsync every write before answering, so a stored payload survives a power loss and not only a
  // crash of this process. Costs throughput.
  bool sync_writes = false;
  // Answer each request this long after it arrived: a slow receiver, for benchmarks and tests.
  // Those refused at their header (413, or a 401 for signature headers that already fail) are
  // answered at once.
  std::chrono::milliseconds respond_delay{0};
  // Serve HTTPS with these PEM files (both or neither; "" = plain HTTP).
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Running totals. `received` counts every POST; each one then ends as accepted (its payloads add
// to `stored`), a duplicate, or rejected (401 for a bad signature or timestamp, 400 for a body
// that is not a JSON object or array of objects, 413, 503 when the output could not be written
// or too many bodies were arriving at once). Without an output file, `stored` counts the
// payloads accepted.
struct ReceiverCounts {
  uint64_t received = 0;
  uint64_t stored = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;

  bool operator==(const ReceiverCounts&) const = default;
};

class Receiver {
 public:
  explicit Receiver(ReceiverOptions options);
  ~Receiver();  // Stop()s
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Validates the options (InvalidArgument, one line, naming the bad one), opens the output,
  // loads the ids it already holds, listens and serves. Unavailable when it cannot listen or
  // open the output. Called once.
  model::Status Start();
  // The port listened on (useful with port 0); 0 before Start().
  uint16_t port() const;
  ReceiverCounts counts() const;
  // Stops taking requests, writes what was queued, answers it, stops serving, closes the output.
  void Stop();
  // Re-reads the TLS files (on SIGHUP): new connections get the new certificate, open ones keep
  // theirs; on error the old one stays and the error says why.
  model::Status ReloadTls();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// `pushhook receive`: starts a Receiver, logs a JSON "listening" line to stderr, then a "counts"
// line about once a second when the counts changed, until SIGINT or SIGTERM; SIGHUP reloads the
// TLS files. Returns the exit code: 0 after a signal and a clean stop, 2 for bad options, 1 for
// any other failure. Blocks SIGINT, SIGTERM and SIGHUP in the calling thread while it runs
// (threads it starts inherit that).
int RunReceive(const ReceiverOptions& options);

}  // namespace pushhook::receive
