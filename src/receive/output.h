// Where the receiver keeps what it accepted: a SQLite file (path ending in ".db") or an NDJSON
// file (one payload per line, appended; the webhook ids stored in <path>.ids). An Output is used by
// one thread at a time — the receiver's writer thread — and owns its database connection or file
// descriptor.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/status.h"

namespace pushhook::receive {

// One verified, de-duplicated webhook request: its id and the payloads it carried (one for a
// single object, one per element for a batch).
struct AcceptedRequest {
  std::string webhook_id;
  int64_t received_at_ms = 0;
  std::vector<std::string> payloads;
};

class Output {
 public:
  virtual ~Output() = default;

  // The webhook ids an earlier run stored, so that de-duplication survives a restart. NDJSON
  // keeps them beside the payloads, in <path>.ids (none for a pipe or a device).
  virtual model::StatusOr<std::vector<std::string>> StoredIds() = 0;

  // Writes every payload of `requests` or none of them. Once it returns OK the data survives a
  // crash of this process; with `sync` (see OpenOutput) it survives a power loss too.
  virtual model::Status Append(std::span<const AcceptedRequest> requests) = 0;

  // Flushes and closes; the Output must not be used afterwards.
  virtual model::Status Close() = 0;
};

// Opens `path`, creating it if needed: SQLite (WAL mode) when it ends with ".db", NDJSON
// otherwise. With `sync`, every Append waits for the disk (fsync); without it, for the kernel.
model::StatusOr<std::unique_ptr<Output>> OpenOutput(const std::string& path, bool sync);

}  // namespace pushhook::receive
