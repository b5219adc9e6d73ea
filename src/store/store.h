// The Store: everything pushhook keeps — sites, tokens, endpoints, events, messages and their
// attempts — behind one interface with an SQLite implementation (embedded default) and a
// PostgreSQL one (scale-out). SQL, connections and threading live inside the implementations.
//
// Thread safety: every method may be called from any thread. Writes that sit on a hot path
// (AppendEvents, RecordAttempts) are asynchronous and group-committed: their callbacks run once
// the transaction that holds them is durable, on a store thread, and must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/aggregates.h"
#include "model/event.h"
#include "model/field_filter.h"
#include "model/status.h"

namespace pushhook::store {

class Coordination;  // coordination.h

// Whether a site's browser events must carry a signed beacon token (DESIGN section 2a): `off`
// ignores tokens, `optional` checks those present, `required` refuses events without one.
enum class BeaconMode { kOff, kOptional, kRequired };

// "off", "optional" or "required": the mode's name in the API and in the database.
inline std::string_view BeaconModeName(BeaconMode mode) {
  switch (mode) {
    case BeaconMode::kOff:
      return "off";
    case BeaconMode::kOptional:
      return "optional";
    case BeaconMode::kRequired:
      return "required";
  }
  return "optional";
}
inline std::optional<BeaconMode> ParseBeaconMode(std::string_view name) {
  if (name == "off") return BeaconMode::kOff;
  if (name == "optional") return BeaconMode::kOptional;
  if (name == "required") return BeaconMode::kRequired;
  return std::nullopt;
}

// A secret that a rotation replaced: it still signs (an endpoint's) or verifies (a site's beacon
// secret) until `until_ms`, beside the one in force, so that a receiver or a push backend has
// time to change over.
struct PreviousSecret {
  std::string secret;
  int64_t until_ms = 0;
  bool operator==(const PreviousSecret&) const = default;
};

// How many previous secrets a rotation keeps: rotating again within the overlap (a second
// rotation, a double click) keeps the ones before valid for their own 24 h, up to this many.
inline constexpr size_t kMaxPreviousSecrets = 5;

// The previous secrets once `current` is rotated out at `now_ms`: `current` (unless empty),
// valid until `until_ms`, first, then those of `previous` still valid at `now_ms`, newest first,
// at most kMaxPreviousSecrets in all.
std::vector<PreviousSecret> RotatedOut(std::string current, int64_t until_ms,
                                       const std::vector<PreviousSecret>& previous, int64_t now_ms);
// The previous secrets after a rotation at `now_ms` with `overlap_ms`: RotatedOut, or none when
// the overlap is 0.
std::vector<PreviousSecret> AfterRotation(std::string current,
                                          const std::vector<PreviousSecret>& previous,
                                          int64_t now_ms, int64_t overlap_ms);

struct Site {
  std::string id;
  std::string name;
  std::string ingest_key;
  int64_t created_at_ms = 0;
  BeaconMode beacons = BeaconMode::kOptional;
  // "bsec_…", opened (kept sealed at rest like endpoint secrets). After a rotation the previous
  // ones still verify tokens, each until its time; newest first.
  std::string beacon_secret;
  std::vector<PreviousSecret> previous_beacon_secrets;
};

struct SitePatch {
  std::optional<std::string> name;
  std::optional<BeaconMode> beacons;
};

// How long a rotated-out beacon secret still verifies tokens (DESIGN section 2a).
inline constexpr int64_t kBeaconSecretOverlapMs = 24LL * 3600 * 1000;

// What a site token may do (DESIGN section 3): everything of its site, or only look.
enum class TokenScope { kAdmin, kRead };

struct SiteToken {
  std::string site_id;
  TokenScope scope = TokenScope::kAdmin;
};

// A site token's public id: "tok_" + the first 16 hex digits of its SHA-256. It names a token in
// a list and in a revocation without the token, or the whole hash, ever being shown again.
inline std::string SiteTokenId(std::string_view token_hash) {
  return "tok_" + std::string(token_hash.substr(0, 16));
}

// A site token as it is listed: what it is called and may do, never the token or its hash.
struct SiteTokenInfo {
  std::string id;  // SiteTokenId
  TokenScope scope = TokenScope::kAdmin;
  int64_t created_at_ms = 0;
  bool operator==(const SiteTokenInfo&) const = default;
};

// How long an ingest key that a rotation replaced is still accepted: the service workers in
// subscribers' browsers hold the key they were installed with until they update.
inline constexpr int64_t kIngestKeyOverlapMs = 24LL * 3600 * 1000;

// An endpoint's batching: off (max_events 0), or up to max_events (1..1000) events per request,
// the first of them waiting at most max_wait_ms (0..60000) for the rest.
struct BatchOptions {
  int max_events = 0;
  int max_wait_ms = 0;
  bool on() const { return max_events > 0; }
  bool operator==(const BatchOptions&) const = default;
};
inline constexpr int kMaxBatchEvents = 1000;
inline constexpr int kMaxBatchWaitMs = 60'000;

struct Endpoint {
  std::string id;
  std::string site_id;
  std::string url;
  std::string description;
  model::EventFilter filter;
  // Which events by their fields (DESIGN section 3); empty: all of them.
  model::FieldFilter field_filter;
  model::PayloadFormat format = model::PayloadFormat::kIzooto;
  // Batched delivery (DESIGN section 1): up to `max_events` events in one request, waiting at
  // most `max_wait_ms` for them. Off when max_events is 0.
  BatchOptions batch;
  bool enabled = true;
  int max_in_flight = 16;
  double rate_limit = 0;  // requests per second; 0 = unlimited
  std::string secret;
  // The secrets in force before the last rotations, each signing until its time; newest first.
  std::vector<PreviousSecret> previous_secrets;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  // Why and since when it is disabled: "" when enabled, or when an admin disabled it; the
  // dispatcher's reason (410 Gone, a refused destination, failing for days) otherwise.
  std::string disabled_reason;
  int64_t disabled_at_ms = 0;  // 0 while enabled
};

// A partial update of an endpoint: only the set fields change, and no other writer's change to
// another field is lost (one UPDATE of the set columns).
struct EndpointPatch {
  std::optional<std::string> url;
  std::optional<std::string> description;
  std::optional<model::EventFilter> filter;
  std::optional<model::FieldFilter> field_filter;
  std::optional<model::PayloadFormat> format;
  std::optional<BatchOptions> batch;  // max_events 0 turns batching off
  // Disabling records the time and `disabled_reason` ("" if unset); enabling clears both.
  std::optional<bool> enabled;
  std::optional<std::string> disabled_reason;
  std::optional<int> max_in_flight;
  std::optional<double> rate_limit;
  // Rotation: the new secret, and the previous ones (RotatedOut) with the times they stop signing.
  std::optional<std::string> secret;
  std::optional<std::vector<PreviousSecret>> previous_secrets;
};

enum class MessageStatus { kPending = 0, kDelivered = 1, kFailed = 2 };

// An event as it was just stored, with its site: what a first attempt needs besides the
// endpoint, handed from ingest to the dispatcher so that it need not read it back.
struct StoredEvent {
  model::Event event;  // event_id set, also for events that came without one
  std::string site_id;
};

// A message as the dispatcher tracks it: ids and a due time. Messages just made by ingest may
// also carry their event (shared by the event's messages); the dispatcher keeps a bounded number
// of those and reads every other message from the store when it is due.
struct DueMessage {
  int64_t id = 0;
  std::string endpoint_id;
  int64_t due_ms = 0;
  int attempts = 0;
  std::shared_ptr<const StoredEvent> stored;
  // Which request it goes in: kUnbatched, kAlone, or the batch it was first sent in.
  int64_t batch = 0;
  // Of its attempts, those that were a batch refused as too large (413) and split: they do not
  // use up the retry schedule.
  int splits = 0;
};

// A message's `batch` (the messages.batch_id column): not yet sent in a batch (a batching
// endpoint may put it in one), to be sent alone (redelivered), or a positive batch number: the
// id of the batch's first message, fixed before the batch is first sent so that every resend,
// after a crash too, carries the same members under the same webhook-id.
inline constexpr int64_t kUnbatched = 0;
inline constexpr int64_t kAlone = -1;

struct AppendResult {
  size_t accepted = 0;
  size_t duplicates = 0;
  // One per (accepted event, endpoint that takes its action), disabled endpoints included:
  // their messages wait, pending, until the endpoint is enabled again.
  std::vector<DueMessage> messages;
};

// What one attempt needs: the message, its event and its endpoint as they are now.
struct Delivery {
  int64_t message_id = 0;
  std::string site_id;
  int attempts = 0;  // made before this one
  MessageStatus status = MessageStatus::kPending;
  model::Event event;
  Endpoint endpoint;
};

// The result of one attempt and what follows from it.
struct AttemptRecord {
  int64_t message_id = 0;
  int attempt = 0;  // 1-based
  int64_t at_ms = 0;
  int status_code = 0;  // 0 when no HTTP answer was received
  int64_t latency_us = 0;
  std::string error;
  std::string response_prefix;  // first 1 KiB of the answer's body
  MessageStatus new_status = MessageStatus::kPending;
  int64_t next_attempt_ms = 0;  // when still pending; when it finished, once delivered or failed
  // The record that stands for its HTTP request in the endpoint's statistics (attempts,
  // successes, latency): the only one of a lone message, the first of a batch's.
  bool counts_request = true;
  // The message's endpoint, whose statistics the counted record's request joins (SQLite; on
  // PostgreSQL the update answers it).
  std::string endpoint_id = {};
  // Positive: the batch the message goes in from now on (the second half of a batch refused as
  // too large), if it is still in `batch_from`, the batch it was sent in. 0 leaves its batch.
  int64_t batch = 0;
  int64_t batch_from = 0;
  int splits = 0;       // DueMessage::splits, this attempt's included
  int64_t sent_in = 0;  // the batch this attempt went in; 0 when it went alone
};

struct Attempt {
  int attempt = 0;
  int64_t at_ms = 0;
  int status_code = 0;
  int64_t latency_us = 0;
  std::string error;
  std::string response_prefix;
  int64_t batch = 0;  // the batch it went in; 0 when it went alone
};

struct Message {
  int64_t id = 0;
  std::string site_id;
  std::string endpoint_id;
  MessageStatus status = MessageStatus::kPending;
  int attempts = 0;
  int64_t next_attempt_ms = 0;
  int64_t created_at_ms = 0;
  int last_status_code = 0;
  std::string last_error;
  // The batch it is fixed in, or the last it went in once redelivered alone (the log shows it);
  // kUnbatched when it never went in one.
  int64_t batch = kUnbatched;
  model::Event event;
};

struct MessageQuery {
  std::string site_id;
  std::optional<std::string> endpoint_id;
  std::optional<MessageStatus> status;
  std::optional<std::string> cid;
  // Only the messages that went in this batch, or are fixed to go in it; 0: any.
  int64_t batch = 0;
  int64_t before_id = 0;  // cursor: only ids below this; 0 = from the newest
  int limit = 50;
};

struct ReplayQuery {
  std::string site_id;
  std::string endpoint_id;
  int64_t since_ms = 0;  // occurred_at >= since
  int64_t until_ms = 0;  // occurred_at < until
  std::optional<std::string> cid;
  std::optional<std::string> reference_id;
  // The endpoint's filter: a replay sends what the endpoint would have been sent.
  model::FieldFilter field_filter;
  // More events than this to send refuses the whole replay (internal::ReplayTooLarge): the
  // messages it makes are held in memory until they are handed to delivery.
  size_t max_events = 1'000'000;
};

struct EndpointStats {
  uint64_t attempts = 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  int64_t latency_p50_us = 0;
  int64_t latency_p99_us = 0;
  uint64_t pending = 0;
  uint64_t failed_messages = 0;
  // Shared database: the circuit of the node that holds the endpoint's lease, as of its last
  // lease round: how many more ms it stays open (0 or less: it lets a probe through); nullopt
  // when closed, unheld, or on SQLite (one node, whose own state is the answer).
  std::optional<int64_t> circuit_open_for_ms;
};

// A reporting question (DESIGN section 6). Times are occurred_at, [from, to).
struct StatsQuery {
  std::string site_id;
  std::optional<std::string> cid;
  std::optional<std::string> reference_id;
  int64_t from_ms = INT64_MIN / 2;
  int64_t to_ms = INT64_MAX / 2;
  int64_t bucket_ms = model::kHourMs;
  // "cid", "reference_id", "button" or a UTM field name; nullopt for no groups.
  std::optional<std::string> group_by;
};

struct StatsRow {
  std::string key;  // the bucket's start (Unix ms, as text) or the group's value
  model::Counters counters;
  // A HyperLogLog estimate over the hours the row covers: for buckets of whole hours (hour,
  // day) and groups by cid or reference_id, when the answer has at most kMaxUniqueRows of them;
  // nullopt otherwise (minute buckets, UTM groups: no sketch is kept at that grain).
  std::optional<double> unique_subscribers = std::nullopt;
};

// The most series buckets, or groups, that get unique subscribers of their own: each holds a
// 4 KiB sketch while the hourly ones are merged.
inline constexpr size_t kMaxUniqueRows = 2000;

struct StatsResult {
  model::Counters totals;
  double unique_subscribers = 0;  // HyperLogLog estimate over the hours the range touches
  std::vector<StatsRow> series;
  std::vector<StatsRow> groups;
};

struct CampaignSummary {
  std::string cid;
  std::string title;  // the latest notification title seen; "" when none had one
  model::Counters counters;
  double unique_subscribers = 0;  // HyperLogLog estimate over the campaign's whole life
  int64_t first_active_ms = 0;
  int64_t last_active_ms = 0;
};

// What a campaigns list is ordered by; ties are broken by cid, ascending.
enum class CampaignSort { kLastActive, kViews, kClicks, kCtr, kDismissals, kCid };

// The value a campaigns list sorts by: an integer column, the CTR, or the cid.
using CampaignSortValue = std::variant<int64_t, double, std::string>;

// Keyset cursor over a campaigns list: the last row's sort value and cid.
struct CampaignCursor {
  CampaignSortValue value;
  std::string cid;
};

struct CampaignQuery {
  std::string site_id;
  // Text to find in a campaign's cid or title, ignoring ASCII case; "" lists every campaign.
  std::string search;
  CampaignSort sort = CampaignSort::kLastActive;
  bool descending = true;
  std::optional<CampaignCursor> after;
  int limit = 50;
};

// The value `summary` has in a list sorted by `sort`, for its cursor.
CampaignSortValue CampaignSortValueOf(const CampaignSummary& summary, CampaignSort sort);

using AppendCallback = std::function<void(model::StatusOr<AppendResult>)>;

// What the store counts of its own failures, for /metrics.
struct StoreCounts {
  uint64_t commit_failures = 0;  // transactions that did not commit (each also logged)
};

class Store {
 public:
  virtual ~Store() = default;

  // A random id fixed when the database was made: message ids carry it so that webhook-ids
  // stay unique across databases that share receivers.
  virtual const std::string& instance_id() const = 0;

  virtual model::StatusOr<Site> CreateSite(const std::string& name) = 0;
  virtual model::StatusOr<Site> GetSite(const std::string& site_id) = 0;
  virtual model::StatusOr<std::vector<Site>> ListSites() = 0;
  virtual model::StatusOr<Site> UpdateSite(const std::string& site_id, const SitePatch& patch) = 0;
  // Gives the site a new beacon secret; the current one verifies tokens until now_ms plus
  // overlap_ms (kBeaconSecretOverlapMs by default) beside those rotated out before; an overlap
  // of 0 ends them all now (a leaked secret). Answers the site with its new secret.
  virtual model::StatusOr<Site> RotateBeaconSecret(const std::string& site_id, int64_t now_ms,
                                                   int64_t overlap_ms) = 0;
  // Gives the site a new ingest key; the one it replaces is still accepted until now_ms plus
  // overlap_ms (kIngestKeyOverlapMs by default), beside those replaced before that are still
  // valid; an overlap of 0 ends them all now (a leaked key). Answers the site with its new key.
  virtual model::StatusOr<Site> RotateIngestKey(const std::string& site_id, int64_t now_ms,
                                                int64_t overlap_ms) = 0;
  // The site whose ingest key, or whose replaced key still valid at `now_ms`, is `ingest_key`.
  // kNotFound for a key no site has; another code when the database could not say.
  virtual model::StatusOr<Site> FindSiteByIngestKey(const std::string& ingest_key,
                                                    int64_t now_ms) = 0;

  // Site tokens are kept as their SHA-256; the plain token is never stored. Answers the token
  // as ListSiteTokens shows it.
  virtual model::StatusOr<SiteTokenInfo> AddSiteToken(const std::string& site_id,
                                                      const std::string& token_hash,
                                                      TokenScope scope) = 0;
  // kNotFound for an unknown token; another code when the database could not say.
  virtual model::StatusOr<SiteToken> FindSiteToken(const std::string& token_hash) = 0;
  // The site's tokens, newest first.
  virtual model::StatusOr<std::vector<SiteTokenInfo>> ListSiteTokens(
      const std::string& site_id) = 0;
  // Revokes the site's token with id `token_id` (SiteTokenId): the next request that shows it is
  // refused. kNotFound when the site has no such token.
  virtual model::Status DeleteSiteToken(const std::string& site_id,
                                        const std::string& token_id) = 0;

  virtual model::StatusOr<Endpoint> CreateEndpoint(Endpoint endpoint) = 0;
  virtual model::StatusOr<Endpoint> GetEndpoint(const std::string& site_id,
                                                const std::string& endpoint_id) = 0;
  // By id alone, for the dispatcher; deleted endpoints are not found.
  virtual model::StatusOr<Endpoint> GetEndpointById(const std::string& endpoint_id) = 0;
  virtual model::StatusOr<std::vector<Endpoint>> ListEndpoints(const std::string& site_id) = 0;
  virtual model::StatusOr<Endpoint> UpdateEndpoint(const std::string& site_id,
                                                   const std::string& endpoint_id,
                                                   const EndpointPatch& patch, int64_t now_ms) = 0;
  // Gives the endpoint a new secret; the one it replaces signs until now_ms + overlap_ms beside
  // those rotated out before (RotatedOut); an overlap of 0 ends them all now (a leaked secret).
  // Read and written in one transaction, so that two rotations at once both keep what they
  // replaced. Answers the endpoint with its new secret.
  virtual model::StatusOr<Endpoint> RotateEndpointSecret(const std::string& site_id,
                                                         const std::string& endpoint_id,
                                                         int64_t now_ms, int64_t overlap_ms) = 0;
  virtual model::Status DeleteEndpoint(const std::string& site_id,
                                       const std::string& endpoint_id) = 0;

  // Stores the events of one request in one transaction shared with other concurrent requests,
  // skips those whose event_id the site already has, and makes their messages. `done` runs once
  // the transaction is durable, or with an error when it could not be.
  virtual void AppendEvents(const std::string& site_id, std::vector<model::Event> events,
                            int64_t now_ms, AppendCallback done) = 0;

  // Records attempts and the messages' new states, group-committed like AppendEvents, but a
  // commit of nothing but attempt records waits up to 5 ms for more to share it (the webhooks
  // were sent already; a crash in between sends them again, as it could before).
  virtual void RecordAttempts(std::vector<AttemptRecord> records,
                              std::function<void(model::Status)> done) = 0;

  // Fixes the members of a batch before it is first sent: sets their `batch` to `batch`, in one
  // transaction, group-committed like AppendEvents; `done` runs once it is committed. The
  // commit does not wait for a sync of its own (SQLite synchronous=NORMAL, PostgreSQL
  // synchronous_commit off): it survives a crash of the process; a power cut can lose it, and
  // then the members go again in a batch of another id: duplicates at worst, never a lost event.
  virtual void AssignBatch(std::vector<int64_t> message_ids, int64_t batch,
                           std::function<void(model::Status)> done) = 0;

  // The endpoints that have pending messages, in id order: the dispatcher's start-up reads each
  // one's with LoadPendingForEndpoint.
  virtual model::StatusOr<std::vector<std::string>> ListPendingEndpoints() = 0;
  // An endpoint's pending messages in id order after `after_id`: at start-up, and when it is
  // enabled again.
  virtual model::StatusOr<std::vector<DueMessage>> LoadPendingForEndpoint(
      const std::string& endpoint_id, int64_t after_id, int limit) = 0;
  virtual model::StatusOr<Delivery> LoadDelivery(int64_t message_id) = 0;
  // The deliveries of several messages at once, for a dispatcher launching a batch; messages
  // not found are left out. By default, one LoadDelivery each.
  virtual model::StatusOr<std::vector<Delivery>> LoadDeliveries(const std::vector<int64_t>& ids);

  virtual model::StatusOr<std::vector<Message>> ListMessages(const MessageQuery& query) = 0;
  virtual model::StatusOr<Message> GetMessage(const std::string& site_id, int64_t message_id) = 0;
  virtual model::StatusOr<std::vector<Attempt>> ListAttempts(int64_t message_id) = 0;

  // Makes a message pending again, due at `now_ms`, keeping its id and attempts; it goes alone
  // (kAlone), not in a batch.
  virtual model::StatusOr<DueMessage> RequeueMessage(const std::string& site_id, int64_t message_id,
                                                     int64_t now_ms) = 0;

  // New messages to one endpoint for the site's stored events in a window (DESIGN section 3);
  // kUnprocessable, and none made, when there are more than query.max_events.
  virtual model::StatusOr<std::vector<DueMessage>> ReplayEvents(const ReplayQuery& query,
                                                                int64_t now_ms) = 0;

  // Attempt statistics of one endpoint from the start of `since_ms`'s hour: attempts are counted
  // by the hour, and latencies within about 9 % (store/internal/attempt_stats.h).
  virtual model::StatusOr<EndpointStats> GetEndpointStats(const std::string& endpoint_id,
                                                          int64_t since_ms) = 0;

  // Deletes up to `limit` delivered messages finished before `delivered_before_ms` and failed
  // ones before `failed_before_ms`, with their attempts; returns how many went.
  virtual model::StatusOr<size_t> PurgeMessages(int64_t delivered_before_ms,
                                                int64_t failed_before_ms, int limit) = 0;

  virtual model::StatusOr<StatsResult> QueryStats(const StatsQuery& query) = 0;
  // A page of a site's campaigns, with their totals and unique subscribers.
  virtual model::StatusOr<std::vector<CampaignSummary>> ListCampaigns(
      const CampaignQuery& query) = 0;

  // True once migrations ran and the database answers.
  virtual bool Ready() = 0;
  virtual StoreCounts counts() const = 0;

  // What nodes sharing this database coordinate through (PostgreSQL); null when this node is
  // the only one (SQLite).
  virtual Coordination* coordination() { return nullptr; }
};

// Message ids on the wire: "msg_" + instance id + decimal row id.
// Events stored without a client event_id are named the same way: "evt_" + instance + row id.
std::string FormatMessageId(const std::string& instance_id, int64_t row_id);
std::optional<int64_t> ParseMessageId(const std::string& instance_id, std::string_view text);
std::string FormatEventId(const std::string& instance_id, int64_t row_id);
// Batch ids (the webhook-id of a batch): "bat_" + instance id + the batch number.
std::string FormatBatchId(const std::string& instance_id, int64_t batch);
std::optional<int64_t> ParseBatchId(const std::string& instance_id, std::string_view text);

struct StoreOptions {
  std::string database;  // "sqlite://<path>" (or a bare path), or "postgres://..."
  size_t pool_size = 8;  // PostgreSQL: connections for reads and admin writes
  bool durability_full = true;
  size_t max_pending_writes = 100'000;  // events waiting for a commit before ingest is refused
  // 32 raw bytes that seal endpoint secrets at rest (model::SecretBox); empty stores them plain.
  std::string secrets_key;
  // Keep campaign statistics as events are stored; off only to measure what they cost.
  bool aggregates = true;
};

// The error of a store opened with another secrets key than the one that sealed its secrets: a
// configuration error (InvalidArgument), which IsWrongSecretsKey tells from the others.
model::Status WrongSecretsKey();
bool IsWrongSecretsKey(const model::Status& status);

}  // namespace pushhook::store
