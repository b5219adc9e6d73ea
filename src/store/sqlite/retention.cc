#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/internal/attempt_stats.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

StatusOr<size_t> SqliteStore::PurgeMessages(int64_t delivered_before_ms, int64_t failed_before_ms,
                                            int limit) {
  size_t purged = 0;
  Status s = WriteSync([&](Connection& c) {
    // A finished message's next_attempt_at is when it finished (delivered or failed); the
    // partial index on it keeps each batch a short range scan.
    auto pick = c.Prepare(
        "SELECT id FROM messages WHERE status = 1 AND next_attempt_at < ?1 "
        "UNION ALL SELECT id FROM messages WHERE status = 2 AND next_attempt_at < ?2 LIMIT ?3");
    if (!pick.ok()) return pick.status();
    (*pick)->Bind(1, delivered_before_ms).Bind(2, failed_before_ms).Bind(3, limit);
    std::vector<int64_t> ids;
    Status step;
    while ((*pick)->Step(&step)) ids.push_back((*pick)->Int(0));
    (*pick)->Reset();
    if (!step.ok()) return step;
    auto del_attempts = c.Prepare("DELETE FROM attempts WHERE message_id = ?");
    auto del_message = c.Prepare("DELETE FROM messages WHERE id = ?");
    if (!del_attempts.ok()) return del_attempts.status();
    if (!del_message.ok()) return del_message.status();
    for (int64_t id : ids) {
      if (Status r = (*del_attempts)->Bind(1, id).Run(); !r.ok()) return r;
      if (Status r = (*del_message)->Bind(1, id).Run(); !r.ok()) return r;
    }
    purged = ids.size();
    // Attempt counts go by the hour with the delivered messages they counted. Endpoints are
    // only ever soft-deleted, so every counted endpoint is listed, and each one's rows are a
    // range of the primary key.
    auto del_stats = c.Prepare(
        "DELETE FROM attempt_stats_hour WHERE endpoint_id IN (SELECT id FROM endpoints) "
        "AND hour < ?");
    if (!del_stats.ok()) return del_stats.status();
    return (*del_stats)->Bind(1, internal::AttemptHour(delivered_before_ms)).Run();
  });
  if (!s.ok()) return s;
  return purged;
}

}  // namespace pushhook::store::sqlite
