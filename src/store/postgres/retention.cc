#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

StatusOr<size_t> PostgresStore::PurgeMessages(int64_t delivered_before_ms, int64_t failed_before_ms,
                                              int limit) {
  // Several nodes purge at once: each takes rows nobody else has locked, in batches small
  // enough to keep transactions short and let autovacuum reuse the space as it goes. Attempt
  // counts go by the hour with the delivered messages they counted. Endpoints are only ever
  // soft-deleted, so every counted endpoint is listed, and each one's rows are a range of the
  // primary key.
  auto r = Query(
      "WITH picked AS (SELECT id FROM messages WHERE "
      "  (status = 1 AND next_attempt_at < $1) OR (status = 2 AND next_attempt_at < $2) "
      "  LIMIT $3 FOR UPDATE SKIP LOCKED), "
      "gone_attempts AS (DELETE FROM attempts WHERE message_id IN (SELECT id FROM picked)), "
      "gone_counts AS (DELETE FROM attempt_stats_hour WHERE "
      "  endpoint_id IN (SELECT id FROM endpoints) AND hour < $4) "
      "DELETE FROM messages WHERE id IN (SELECT id FROM picked)",
      Params()
          .Add(delivered_before_ms)
          .Add(failed_before_ms)
          .Add(limit)
          .Add(internal::AttemptHour(delivered_before_ms)));
  if (!r.ok()) return r.status();
  return static_cast<size_t>(r->affected());
}

}  // namespace pushhook::store::postgres
