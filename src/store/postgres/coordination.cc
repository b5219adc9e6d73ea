#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

StatusOr<std::vector<DueMessage>> PostgresStore::LoadPendingSince(
    const std::vector<std::string>& endpoints, int64_t after_id, int limit) {
  ArrayLiteral ids;
  for (const std::string& id : endpoints) ids.Add(id);
  if (ids.size() == 0) return std::vector<DueMessage>{};
  auto r = Query(
      "SELECT id, endpoint_id, next_attempt_at, attempts, batch_id, splits FROM messages "
      "WHERE status = 0 AND id > $1 AND endpoint_id = ANY($3::text[]) ORDER BY id LIMIT $2",
      Params().Add(after_id).Add(limit).Add(ids.Finish()));
  if (!r.ok()) return r.status();
  return ReadDue(*r);
}

StatusOr<LeaseRound> PostgresStore::KeepLeases(const LeaseRequest& request) {
  LeaseRound round;
  Status s = InTransaction([&](Connection& c) { return LeaseRoundIn(c, request, &round); });
  if (!s.ok()) return s;
  return round;
}

void PostgresStore::NotifyEndpoint(const std::string& endpoint_id) {
  NoticeWriter notice(origin_);
  notice.Endpoint(endpoint_id);
  Notify(notice.Finish());
}

void PostgresStore::NotifyMessages(const std::string& endpoint_id, int64_t first, int64_t last) {
  NoticeWriter notice(origin_);
  notice.Messages(endpoint_id, first, last);
  Notify(notice.Finish());
}

// Best effort: a notice that is lost is made up for by the owner's polling backstop.
void PostgresStore::Notify(const std::vector<std::string>& chunks) {
  for (const std::string& chunk : chunks) {
    auto r = Query("SELECT pg_notify($1, $2)", Params().Add(kChannel).Add(chunk));
    if (!r.ok()) {
      util::Log(util::LogLevel::kWarn, "notification not sent", {{"error", r.status().message()}});
    }
  }
}

// One lease round, inside the caller's transaction. Times are the database's, so that nodes
// whose clocks differ still agree on when a lease expires.
Status PostgresStore::LeaseRoundIn(Connection& c, const LeaseRequest& request, LeaseRound* round) {
  // A round that waits on a lock for longer than a third of the lease fails instead, and its
  // node pauses delivery before its leases can run out under it (LeaseKeeper).
  const int64_t timeout_ms = std::max<int64_t>(100, request.lease_ms / 3);
  if (auto r = c.Query("SET LOCAL statement_timeout = " + std::to_string(timeout_ms)); !r.ok()) {
    return r.status();
  }
  auto now_row = c.Query(std::string("SELECT ") + kNowMs);
  if (!now_row.ok()) return now_row.status();
  const int64_t now = now_row->Int(0, 0);
  const int64_t until = now + request.lease_ms;
  auto step = [&](const std::string& sql, const Params& params) -> StatusOr<Result> {
    return c.Query(sql, params);
  };
  if (request.leaving) {
    auto r = step("DELETE FROM endpoint_leases WHERE node_id = $1", Params().Add(request.node_id));
    if (r.ok()) r = step("DELETE FROM nodes WHERE node_id = $1", Params().Add(request.node_id));
    return r.status();
  }
  if (auto r = step("INSERT INTO nodes(node_id, heartbeat_at) VALUES($1, $2) "
                    "ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                    Params().Add(request.node_id).Add(now));
      !r.ok()) {
    return r.status();
  }
  if (!request.release.empty()) {
    ArrayLiteral release;
    for (const std::string& id : request.release) release.Add(id);
    auto r =
        step("DELETE FROM endpoint_leases WHERE node_id = $1 AND endpoint_id = ANY($2::text[])",
             Params().Add(request.node_id).Add(release.Finish()));
    if (!r.ok()) return r.status();
  }
  // Renew what this node holds, with its circuits' state; forget leases on deleted endpoints;
  // forget long-dead nodes.
  if (auto r = step("UPDATE endpoint_leases SET expires_at = $2, circuit_open_until = NULL WHERE "
                    "node_id = $1",
                    Params().Add(request.node_id).Add(until));
      !r.ok()) {
    return r.status();
  }
  if (!request.open_circuits.empty()) {
    ArrayLiteral ids, open_for;
    for (const auto& [id, ms] : request.open_circuits) {
      ids.Add(id);
      open_for.Add(ms);
    }
    auto r = step(
        "UPDATE endpoint_leases l SET circuit_open_until = $2 + c.ms FROM unnest($3::text[], "
        "$4::bigint[]) AS c(id, ms) WHERE l.node_id = $1 AND l.endpoint_id = c.id",
        Params().Add(request.node_id).Add(now).Add(ids.Finish()).Add(open_for.Finish()));
    if (!r.ok()) return r.status();
  }
  if (auto r = step("DELETE FROM endpoint_leases l USING endpoints e WHERE e.id = "
                    "l.endpoint_id AND e.deleted = 1 AND l.node_id = $1",
                    Params().Add(request.node_id));
      !r.ok()) {
    return r.status();
  }
  if (auto r = step("DELETE FROM nodes WHERE heartbeat_at < $1",
                    Params().Add(now - 100 * request.lease_ms));
      !r.ok()) {
    return r.status();
  }
  // This node's share: at most ceil(endpoints / live nodes); only floor(endpoints / live
  // nodes) while another live node holds fewer than that, so that no node is left idle
  // (4 endpoints on 3 nodes would otherwise settle at 2 / 2 / 0).
  auto counts = step(
      "SELECT n.node_id, (SELECT count(*) FROM endpoint_leases l WHERE l.node_id = n.node_id "
      "AND l.expires_at > $1), (SELECT count(*) FROM endpoints WHERE deleted = 0) "
      "FROM nodes n WHERE n.heartbeat_at > $2",
      Params().Add(now).Add(now - request.lease_ms));
  if (!counts.ok()) return counts.status();
  const int64_t live = std::max(1, counts->rows());
  round->endpoints = counts->rows() > 0 ? static_cast<int>(counts->Int(0, 2)) : 0;
  const int64_t floor_share = round->endpoints / live;
  int64_t mine = 0;
  bool starving = false;
  for (int i = 0; i < counts->rows(); ++i) {
    if (counts->Text(i, 0) == request.node_id) {
      mine = counts->Int(i, 1);
    } else if (counts->Int(i, 1) < floor_share) {
      starving = true;
    }
  }
  round->share = static_cast<int>(starving ? floor_share : (round->endpoints + live - 1) / live);
  const int64_t want = round->share - mine;
  if (want > 0) {
    // Leases whose holder stopped renewing, skipping rows another node is taking right now;
    // then endpoints that never had a lease.
    auto taken = step(
        "UPDATE endpoint_leases SET node_id = $1, expires_at = $2, circuit_open_until = NULL "
        "WHERE endpoint_id IN ("
        "  SELECT l.endpoint_id FROM endpoint_leases l JOIN endpoints e ON e.id = "
        "  l.endpoint_id AND e.deleted = 0 WHERE l.expires_at <= $3 "
        "  ORDER BY l.endpoint_id LIMIT $4 FOR UPDATE OF l SKIP LOCKED)",
        Params().Add(request.node_id).Add(until).Add(now).Add(want));
    if (!taken.ok()) return taken.status();
    const int64_t rest = want - taken->affected();
    if (rest > 0) {
      auto fresh = step(
          "INSERT INTO endpoint_leases(endpoint_id, node_id, expires_at) "
          "SELECT id, $1, $2 FROM endpoints e WHERE deleted = 0 AND NOT EXISTS ("
          "  SELECT 1 FROM endpoint_leases l WHERE l.endpoint_id = e.id) "
          "ORDER BY random() LIMIT $3 ON CONFLICT (endpoint_id) DO NOTHING",
          Params().Add(request.node_id).Add(until).Add(rest));
      if (!fresh.ok()) return fresh.status();
    }
  }
  auto held = step("SELECT endpoint_id FROM endpoint_leases WHERE node_id = $1 ORDER BY 1",
                   Params().Add(request.node_id));
  if (!held.ok()) return held.status();
  for (int i = 0; i < held->rows(); ++i) round->held.push_back(held->String(i, 0));
  auto nodes = step(
      "SELECT n.node_id, n.heartbeat_at, (SELECT count(*) FROM endpoint_leases l WHERE "
      "l.node_id = n.node_id AND l.expires_at > $1) FROM nodes n WHERE n.heartbeat_at > $2 "
      "ORDER BY n.node_id",
      Params().Add(now).Add(now - request.lease_ms));
  if (!nodes.ok()) return nodes.status();
  for (int i = 0; i < nodes->rows(); ++i) {
    round->nodes.push_back(
        NodeInfo{nodes->String(i, 0), nodes->Int(i, 1), static_cast<int>(nodes->Int(i, 2))});
  }
  return Status::Ok();
}

void PostgresStore::Parse(std::string_view payload) {
  // The first line is the sender's origin. A node's own new messages reach its dispatcher
  // in-process; its own endpoint changes are told too, so that its lease keeper looks for an
  // owner of a new endpoint at once.
  const size_t first_nl = payload.find('\n');
  if (first_nl == std::string_view::npos) return;
  const bool own = payload.substr(0, first_nl) == origin_;
  payload.remove_prefix(first_nl + 1);
  while (!payload.empty()) {
    const size_t nl = payload.find('\n');
    std::string_view line = payload.substr(0, nl);
    payload.remove_prefix(nl == std::string_view::npos ? payload.size() : nl + 1);
    std::vector<std::string_view> parts;
    while (!line.empty()) {
      const size_t sp = line.find(' ');
      parts.push_back(line.substr(0, sp));
      line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    }
    ChangeNotice notice;
    if (parts.size() == 4 && parts[0] == "m" && !own) {
      notice.kind = ChangeNotice::Kind::kMessages;
      notice.endpoint_id = std::string(parts[1]);
      std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), notice.first_id);
      std::from_chars(parts[3].data(), parts[3].data() + parts[3].size(), notice.last_id);
    } else if (parts.size() == 2 && parts[0] == "e") {
      notice.kind = ChangeNotice::Kind::kEndpoint;
      notice.endpoint_id = std::string(parts[1]);
    } else {
      continue;
    }
    Deliver(notice);
  }
}

// Holds a connection that LISTENs; when it breaks, connects again and tells the listeners to
// look again (kResync), since notifications sent meanwhile are lost.
void PostgresStore::ListenLoop(std::unique_ptr<Connection> conn) {
  while (!stopping_) {
    if (!conn || !conn->healthy()) {
      conn.reset();
      auto fresh = Connection::Open(url_);
      if (fresh.ok() && fresh.value()->Exec(std::string("LISTEN ") + kChannel).ok()) {
        conn = std::move(fresh.value());
        Deliver(ChangeNotice{});
      } else {
        for (int i = 0; i < 10 && !stopping_; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        continue;
      }
    }
    pollfd fd{PQsocket(conn->raw()), POLLIN, 0};
    if (poll(&fd, 1, 200) < 0) continue;
    if (PQconsumeInput(conn->raw()) == 0) {
      util::Log(util::LogLevel::kWarn, "database notifications interrupted; reconnecting",
                {{"error", PQerrorMessage(conn->raw())}});
      conn.reset();
      continue;
    }
    while (PGnotify* n = PQnotifies(conn->raw())) {
      Parse(n->extra);
      PQfreemem(n);
    }
  }
}

}  // namespace pushhook::store::postgres
