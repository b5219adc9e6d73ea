// What the Store implementations share below the interface: how an endpoint's event filter is
// stored, which columns a patch sets, the statistics groups that need no query, and the
// asynchronous writes of store.h as operations on a group-commit WriteQueue. Not for use outside
// src/store.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "model/hyperloglog.h"
#include "model/random.h"
#include "model/secret_box.h"
#include "store/store.h"
#include "store/write_queue.h"

namespace pushhook::store::internal {

// An endpoint's `events` column: a bit per action it takes.
inline constexpr int kEventsView = 1;
inline constexpr int kEventsClick = 2;
inline constexpr int kEventsDismiss = 4;

inline int FilterBits(const model::EventFilter& f) {
  return (f.view ? kEventsView : 0) | (f.click ? kEventsClick : 0) |
         (f.dismiss ? kEventsDismiss : 0);
}
inline model::EventFilter FilterFromBits(int64_t bits) {
  return model::EventFilter{(bits & kEventsView) != 0, (bits & kEventsClick) != 0,
                            (bits & kEventsDismiss) != 0};
}

// Counts 1 when the oldest stored event has no campaign row that counted it: a database that
// stored events before it kept campaign statistics (schema 2), whose campaigns table does not
// name every campaign that has events. 0: every event's campaign has its row, so a campaign
// without one has no messages (the message log's ?cid= is answered without a scan).
inline constexpr char kOldestEventUncountedSql[] =
    "SELECT count(*) FROM (SELECT site_id, cid, received_at FROM events ORDER BY id LIMIT 1) e "
    "WHERE NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.site_id = e.site_id AND c.cid = e.cid "
    "AND c.first_active <= e.received_at)";

// How a token's scope is stored: "admin" or "read" (an unknown name reads as the narrower).
inline std::string_view TokenScopeName(TokenScope scope) {
  return scope == TokenScope::kRead ? "read" : "admin";
}
inline TokenScope TokenScopeFromName(std::string_view name) {
  return name == "admin" ? TokenScope::kAdmin : TokenScope::kRead;
}

// Previous secrets as stored: a JSON array of {"secret": <sealed with box>, "until": <ms>}.
// An entry that does not read or does not open is left out.
std::string SealPreviousSecrets(const std::vector<PreviousSecret>& secrets,
                                const model::SecretBox& box);
std::vector<PreviousSecret> OpenPreviousSecrets(std::string_view text, const model::SecretBox& box);

// One column an UPDATE sets, and its value.
struct ColumnValue {
  std::string_view column;
  std::variant<int64_t, double, std::string> value;
};

// The endpoint columns `patch` sets at `now_ms` (updated_at always), secrets sealed with `box`.
std::vector<ColumnValue> EndpointPatchColumns(const EndpointPatch& patch, int64_t now_ms,
                                              const model::SecretBox& box);

// "UPDATE endpoints SET <column> = <marker>1, … WHERE id = <marker>N+1 AND site_id =
// <marker>N+2 AND deleted = 0 RETURNING <kEndpointColumns>": one statement, so a writer changes
// only what it means to and reads back the row as it left it. `marker` is '?' (SQLite's ?NNN)
// or '$' (PostgreSQL's $NNN).
std::string UpdateEndpointSql(const std::vector<ColumnValue>& columns, char marker);

// The page of campaigns `query` asks for, as one SELECT of a campaign's columns (read by
// ReadCampaign) and its parameters in order (the first is the site id). `marker` as for
// UpdateEndpointSql.
struct CampaignsSql {
  std::string sql;
  std::vector<CampaignSortValue> params;
};
CampaignsSql ListCampaignsSql(const CampaignQuery& query, char marker);

// RequeueMessage's refusal of a message pending in a batch (kAlreadyExists, 409): the batch is
// retried whole under its id, and taking one member out would shift the others' indexes.
model::Status WaitingInBatch(const std::string& instance_id, int64_t batch);

// RequeueMessage's refusal of a message never sent that waits for its endpoint's next batch
// (kAlreadyExists, 409): sent alone now as well, the receiver would get it under two webhook-ids.
model::Status WaitingForBatch();

// RequeueMessage's refusal of a message whose endpoint was deleted (kAlreadyExists, 409): it is
// there to read, and there is nowhere to send it.
model::Status EndpointDeleted();

// A new site named `name`: fresh id, ingest key and beacon secret.
Site NewSite(const std::string& name, int64_t now_ms);

// A fresh ingest key, as NewSite makes them; for a rotation.
inline std::string NewIngestKey() { return "pk_" + model::RandomToken(32); }

// The 16 hex digits of a token hash that SiteTokenId `id` carries, or nullopt for text that is
// no token id (and so names no token).
inline std::optional<std::string> TokenHashPrefix(std::string_view id) {
  constexpr std::string_view kPrefix = "tok_";
  constexpr size_t kDigits = 16;
  if (id.size() != kPrefix.size() + kDigits || !id.starts_with(kPrefix)) return std::nullopt;
  id.remove_prefix(kPrefix.size());
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return std::string(id);
}

// How the stores answer a revocation of a token the site does not have.
inline model::Status TokenNotFound(const std::string& token_id) {
  return model::NotFound("token " + token_id + " not found");
}

// Refuses (kInvalidArgument: exit 2) a database whose schema `version` is newer than the `latest`
// this build knows: a newer pushhook migrated it, and this one would misread it.
model::Status CheckSchemaVersion(int version, int latest);

// The error of migration `number` (1-based) that failed with `error`.
model::Status MigrationFailed(int number, const model::Status& error);

// group_by=button: clicks per button, each group with every view (the denominator of its CTR).
std::vector<StatsRow> ButtonGroups(const model::Counters& totals);

// A stats answer's unique subscribers, from the hourly sketches its filters select (stored per
// site, cid, reference_id and hour): the total, each series bucket of whole hours and each
// group by cid or reference_id (StatsRow::unique_subscribers). Made once the answer's series
// and groups are read; each sketch is Added once; Finish writes the estimates into `result`.
class UniquesMerger {
 public:
  UniquesMerger(const StatsQuery& query, const StatsResult& result);
  void Add(int64_t hour, std::string_view cid, std::string_view reference_id,
           const model::HyperLogLog& sketch);
  void Finish(StatsResult* result);

 private:
  int64_t bucket_ms_;  // 0: series buckets get no estimate
  enum class Group { kNone, kCid, kReferenceId };
  Group group_by_;
  model::HyperLogLog total_;
  std::map<int64_t, model::HyperLogLog> buckets_;
  std::map<std::string, model::HyperLogLog, std::less<>> groups_;
};

// The dimension number of a UTM field named by group_by, or nullopt.
std::optional<int> UtmFieldNumber(std::string_view name);

// AppendEvents as a queued write of `events` (as the caller prepared them, `count` events):
// `apply(connection, events, result)` runs in the shared transaction; `done` gets the result
// once it is durable.
template <typename Connection, typename Events, typename Apply>
void EnqueueAppend(WriteQueue<Connection>& queue, Events events, size_t count, Apply apply,
                   AppendCallback done) {
  auto result = std::make_shared<AppendResult>();
  auto shared = std::make_shared<Events>(std::move(events));
  WriteOp<Connection> op;
  op.weight = count;
  op.apply = [shared, result, apply = std::move(apply)](Connection& c) {
    return apply(c, *shared, result.get());
  };
  op.done = [result, done = std::move(done)](model::Status s) {
    if (s.ok()) {
      done(std::move(*result));
    } else {
      done(std::move(s));
    }
  };
  queue.Enqueue(std::move(op));
}

// RecordAttempts as a queued write.
template <typename Connection, typename Apply>
void EnqueueAttempts(WriteQueue<Connection>& queue, std::vector<AttemptRecord> records, Apply apply,
                     std::function<void(model::Status)> done) {
  auto shared = std::make_shared<std::vector<AttemptRecord>>(std::move(records));
  WriteOp<Connection> op;
  op.weight = shared->size();
  op.apply = [shared, apply = std::move(apply)](Connection& c) { return apply(c, *shared); };
  op.done = std::move(done);
  op.deferrable = true;
  // The webhooks went before their records: a record lost to a power cut sends its message
  // again (a duplicate the receiver drops by webhook-id), and loses nothing. A process crash
  // keeps what was committed either way.
  op.must_sync = false;
  queue.Enqueue(std::move(op));
}

// The refusal of a replay with more than `max_events` events to send (ReplayQuery::max_events).
inline model::Status ReplayTooLarge(size_t max_events) {
  return {model::StatusCode::kUnprocessable,
          "the window holds more than " + std::to_string(max_events) +
              " events to send; nothing was replayed: replay it as shorter windows, one after "
              "another"};
}

// AssignBatch as a queued write: someone waits on it (the batch goes once it is committed), so
// it does not wait for others to share its commit; and it need not wait for a sync of its own.
template <typename Connection, typename Apply>
void EnqueueBatchAssignment(WriteQueue<Connection>& queue, std::vector<int64_t> message_ids,
                            int64_t batch, Apply apply, std::function<void(model::Status)> done) {
  WriteOp<Connection> op;
  op.weight = message_ids.size();
  op.apply = [ids = std::move(message_ids), batch, apply = std::move(apply)](Connection& c) {
    return apply(c, ids, batch);
  };
  op.done = std::move(done);
  op.must_sync = false;
  queue.Enqueue(std::move(op));
}

}  // namespace pushhook::store::internal
