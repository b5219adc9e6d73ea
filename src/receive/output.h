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

// One verified, de-duplicated webhook request: its id and the payloads it carried that were not
// stored before (one for a single object, one per element for a batch), the first of them at
// `first_index` of its body: a payload is known by its webhook id and its index.
struct AcceptedRequest {
  std::string webhook_id;
  int64_t received_at_ms = 0;
  std::vector<std::string> payloads;
  size_t first_index = 0;
};

// What an earlier run stored of a webhook: the payloads at indexes 0 to elements - 1.
struct StoredWebhook {
  std::string webhook_id;
  size_t elements = 0;
};

class Output {
 public:
  virtual ~Output() = default;

  // What an earlier run stored, so that de-duplication survives a restart. NDJSON keeps the ids
  // beside the payloads, in <path>.ids, one line per payload (none for a pipe or a device).
  virtual model::StatusOr<std::vector<StoredWebhook>> StoredIds() = 0;

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
