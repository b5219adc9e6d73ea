#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>

#include <algorithm>
#include <charconv>

#include "model/beacon.h"
#include "model/random.h"
#include "model/signature.h"
#include "store/postgres/postgres_store_impl.h"

namespace pushhook::store::postgres {

StatusOr<Site> PostgresStore::CreateSite(const std::string& name) {
  Site site = internal::NewSite(name, NowMs());
  auto r = Query(
      "INSERT INTO sites(id, name, ingest_key, created_at, beacon_secret) VALUES($1,$2,$3,$4,$5)",
      Params()
          .Add(site.id)
          .Add(site.name)
          .Add(site.ingest_key)
          .Add(site.created_at_ms)
          .Add(box_.Seal(site.beacon_secret)));
  if (!r.ok()) return r.status();
  return site;
}

StatusOr<Site> PostgresStore::GetSite(const std::string& site_id) {
  auto sites = QuerySites("WHERE id = $1", Params().Add(site_id));
  if (!sites.ok()) return sites.status();
  if (sites->empty()) return model::NotFound("site " + site_id + " not found");
  return std::move(sites->front());
}

StatusOr<Site> PostgresStore::FindSiteByIngestKey(const std::string& ingest_key, int64_t now_ms) {
  // One statement: the current key through its unique index, else a replaced one through the
  // primary key of previous_ingest_keys.
  auto sites = QuerySites(
      "WHERE id = coalesce((SELECT s.id FROM sites s WHERE s.ingest_key = $1), "
      "(SELECT p.site_id FROM previous_ingest_keys p WHERE p.ingest_key = $1 AND p.until_ms > $2))",
      Params().Add(ingest_key).Add(now_ms));
  if (!sites.ok()) return sites.status();
  if (sites->empty()) return model::NotFound("no site has this ingest key");
  return std::move(sites->front());
}

StatusOr<Site> PostgresStore::RotateIngestKey(const std::string& site_id, int64_t now_ms,
                                              int64_t overlap_ms) {
  std::optional<Site> rotated;
  // The row is locked from the read to the write: no rotation on another node is lost.
  Status s = InTransaction([&](Connection& c) -> Status {
    rotated.reset();
    auto read =
        c.Query("SELECT ingest_key FROM sites WHERE id = $1 FOR UPDATE", Params().Add(site_id));
    if (!read.ok()) return read.status();
    if (read->rows() == 0) return Status::Ok();  // not found: nothing to write
    const std::string current = read->String(0, 0);
    // Keys whose time is over go now; with no overlap (a leaked key), every earlier key goes.
    auto expire = c.Query("DELETE FROM previous_ingest_keys WHERE site_id = $1 AND until_ms <= $2",
                          Params().Add(site_id).Add(overlap_ms > 0 ? now_ms : INT64_MAX));
    if (!expire.ok()) return expire.status();
    if (overlap_ms > 0) {
      auto keep = c.Query(
          "INSERT INTO previous_ingest_keys(ingest_key, site_id, until_ms) VALUES($1, $2, $3)",
          Params().Add(current).Add(site_id).Add(now_ms + overlap_ms));
      if (!keep.ok()) return keep.status();
    }
    auto write = c.Query(std::string("UPDATE sites SET ingest_key = $2 WHERE id = $1 RETURNING ") +
                             internal::kSiteColumns,
                         Params().Add(site_id).Add(internal::NewIngestKey()));
    if (!write.ok()) return write.status();
    rotated = internal::ReadSite(ResultRow{*write, 0}, 0, box_);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!rotated) return model::NotFound("site " + site_id + " not found");
  return std::move(*rotated);
}

StatusOr<Site> PostgresStore::UpdateSite(const std::string& site_id, const SitePatch& patch) {
  Params params;
  params.Add(site_id);
  patch.name ? params.Add(*patch.name) : params.AddNull();
  patch.beacons ? params.Add(BeaconModeName(*patch.beacons)) : params.AddNull();
  auto r = Query(std::string("UPDATE sites SET name = coalesce($2, name), "
                             "beacons = coalesce($3, beacons) WHERE id = $1 RETURNING ") +
                     internal::kSiteColumns,
                 params);
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return model::NotFound("site " + site_id + " not found");
  return internal::ReadSite(ResultRow{*r, 0}, 0, box_);
}

StatusOr<Site> PostgresStore::RotateBeaconSecret(const std::string& site_id, int64_t now_ms,
                                                 int64_t overlap_ms) {
  std::optional<Site> rotated;
  // The row is locked from the read to the write: no rotation on another node is lost.
  Status s = InTransaction([&](Connection& c) -> Status {
    rotated.reset();
    auto read = c.Query(
        std::string("SELECT ") + internal::kSiteColumns + " FROM sites WHERE id = $1 FOR UPDATE",
        Params().Add(site_id));
    if (!read.ok()) return read.status();
    if (read->rows() == 0) return Status::Ok();  // not found: nothing to write
    const Site site = internal::ReadSite(ResultRow{*read, 0}, 0, box_);
    auto write = c.Query(
        std::string("UPDATE sites SET beacon_secret = $2, previous_beacon_secrets = $3 "
                    "WHERE id = $1 RETURNING ") +
            internal::kSiteColumns,
        Params()
            .Add(site_id)
            .Add(box_.Seal(model::NewBeaconSecret()))
            .Add(internal::SealPreviousSecrets(
                AfterRotation(site.beacon_secret, site.previous_beacon_secrets, now_ms, overlap_ms),
                box_)));
    if (!write.ok()) return write.status();
    rotated = internal::ReadSite(ResultRow{*write, 0}, 0, box_);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!rotated) return model::NotFound("site " + site_id + " not found");
  return std::move(*rotated);
}

Status PostgresStore::GiveSitesBeaconSecrets() {
  auto sites = QuerySites("WHERE beacon_secret = ''", Params());
  if (!sites.ok()) return sites.status();
  for (const Site& site : *sites) {
    // Another node starting at the same time may have given it one: the first wins.
    auto r = Query("UPDATE sites SET beacon_secret = $2 WHERE id = $1 AND beacon_secret = ''",
                   Params().Add(site.id).Add(box_.Seal(model::NewBeaconSecret())));
    if (!r.ok()) return r.status();
  }
  return Status::Ok();
}

StatusOr<SiteTokenInfo> PostgresStore::AddSiteToken(const std::string& site_id,
                                                    const std::string& token_hash,
                                                    TokenScope scope) {
  if (auto site = GetSite(site_id); !site.ok()) return site.status();
  const SiteTokenInfo token{SiteTokenId(token_hash), scope, NowMs()};
  auto r =
      Query("INSERT INTO site_tokens(token_hash, site_id, created_at, scope) VALUES($1,$2,$3,$4)",
            Params()
                .Add(token_hash)
                .Add(site_id)
                .Add(token.created_at_ms)
                .Add(internal::TokenScopeName(scope)));
  if (!r.ok()) return r.status();
  return token;
}

StatusOr<std::vector<SiteTokenInfo>> PostgresStore::ListSiteTokens(const std::string& site_id) {
  auto r = Query(
      "SELECT token_hash, scope, created_at FROM site_tokens WHERE site_id = $1 "
      "ORDER BY created_at DESC, token_hash DESC",
      Params().Add(site_id));
  if (!r.ok()) return r.status();
  std::vector<SiteTokenInfo> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(SiteTokenInfo{SiteTokenId(r->Text(i, 0)),
                                internal::TokenScopeFromName(r->Text(i, 1)), r->Int(i, 2)});
  }
  return out;
}

Status PostgresStore::DeleteSiteToken(const std::string& site_id, const std::string& token_id) {
  const std::optional<std::string> prefix = internal::TokenHashPrefix(token_id);
  if (!prefix) return internal::TokenNotFound(token_id);
  auto r = Query("DELETE FROM site_tokens WHERE site_id = $1 AND left(token_hash, 16) = $2",
                 Params().Add(site_id).Add(*prefix));
  if (!r.ok()) return r.status();
  if (r->affected() == 0) return internal::TokenNotFound(token_id);
  return Status::Ok();
}

StatusOr<SiteToken> PostgresStore::FindSiteToken(const std::string& token_hash) {
  auto r = Query("SELECT site_id, scope FROM site_tokens WHERE token_hash = $1",
                 Params().Add(token_hash));
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return model::NotFound("unknown token");
  return SiteToken{r->String(0, 0), internal::TokenScopeFromName(r->Text(0, 1))};
}

StatusOr<Endpoint> PostgresStore::CreateEndpoint(Endpoint e) {
  e.id = "ep_" + model::RandomToken(20);
  auto r = Query(std::string("INSERT INTO endpoints(") + kEndpointColumns +
                     ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
                 EndpointParams(e));
  if (!r.ok()) return r.status();
  NotifyEndpoint(e.id);
  return e;
}

StatusOr<Endpoint> PostgresStore::GetEndpoint(const std::string& site_id,
                                              const std::string& endpoint_id) {
  auto found = QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                                  " FROM endpoints WHERE id = $1 AND site_id = $2 AND "
                                  "deleted = 0",
                              Params().Add(endpoint_id).Add(site_id));
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<Endpoint> PostgresStore::GetEndpointById(const std::string& endpoint_id) {
  auto found = QueryEndpoints(
      std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = $1 AND deleted = 0",
      Params().Add(endpoint_id));
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<std::vector<Endpoint>> PostgresStore::ListEndpoints(const std::string& site_id) {
  return QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                            " FROM endpoints WHERE site_id = $1 AND deleted = 0 "
                            "ORDER BY created_at, id",
                        Params().Add(site_id));
}

// The UPDATE of `patch` and its parameters.
std::pair<std::string, Params> PostgresStore::PatchEndpointSql(const std::string& site_id,
                                                               const std::string& endpoint_id,
                                                               const EndpointPatch& patch,
                                                               int64_t now_ms) const {
  const std::vector<internal::ColumnValue> columns =
      internal::EndpointPatchColumns(patch, now_ms, box_);
  Params params;
  for (const internal::ColumnValue& column : columns) {
    std::visit([&](const auto& value) { params.Add(value); }, column.value);
  }
  params.Add(endpoint_id).Add(site_id);
  return {internal::UpdateEndpointSql(columns, '$'), std::move(params)};
}

StatusOr<Endpoint> PostgresStore::UpdateEndpoint(const std::string& site_id,
                                                 const std::string& endpoint_id,
                                                 const EndpointPatch& patch, int64_t now_ms) {
  const auto [sql, params] = PatchEndpointSql(site_id, endpoint_id, patch, now_ms);
  auto r = Query(sql, params);
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return model::NotFound("endpoint " + endpoint_id + " not found");
  NotifyEndpoint(endpoint_id);
  return ReadEndpoint(*r, 0, 0, box_);
}

StatusOr<Endpoint> PostgresStore::RotateEndpointSecret(const std::string& site_id,
                                                       const std::string& endpoint_id,
                                                       int64_t now_ms, int64_t overlap_ms) {
  std::optional<Endpoint> rotated;
  // The row is locked from the read to the write: no rotation on another node is lost.
  Status s = InTransaction([&](Connection& c) -> Status {
    rotated.reset();
    auto read = c.Query(std::string("SELECT ") + kEndpointColumns +
                            " FROM endpoints WHERE id = $1 AND site_id = $2 AND deleted = 0 "
                            "FOR UPDATE",
                        Params().Add(endpoint_id).Add(site_id));
    if (!read.ok()) return read.status();
    if (read->rows() == 0) return Status::Ok();  // not found: nothing to write
    const Endpoint current = ReadEndpoint(*read, 0, 0, box_);
    EndpointPatch patch;
    patch.secret = model::NewSecret();
    patch.previous_secrets =
        AfterRotation(current.secret, current.previous_secrets, now_ms, overlap_ms);
    const auto [sql, params] = PatchEndpointSql(site_id, endpoint_id, patch, now_ms);
    auto write = c.Query(sql, params);
    if (!write.ok()) return write.status();
    if (write->rows() > 0) rotated = ReadEndpoint(*write, 0, 0, box_);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (!rotated) return model::NotFound("endpoint " + endpoint_id + " not found");
  NotifyEndpoint(endpoint_id);
  return std::move(*rotated);
}

Status PostgresStore::DeleteEndpoint(const std::string& site_id, const std::string& endpoint_id) {
  // Its pending messages have nowhere to go: they end as failed, kept for the log.
  auto r = Query(
      "WITH gone AS (UPDATE endpoints SET deleted = 1, enabled = 0 "
      "  WHERE id = $1 AND site_id = $2 AND deleted = 0 RETURNING id), "
      "failed AS (UPDATE messages SET status = 2, last_error = 'endpoint deleted' "
      "  WHERE endpoint_id IN (SELECT id FROM gone) AND status = 0) "
      "SELECT count(*) FROM gone",
      Params().Add(endpoint_id).Add(site_id));
  if (!r.ok()) return r.status();
  if (r->Int(0, 0) == 0) return model::NotFound("endpoint " + endpoint_id + " not found");
  NotifyEndpoint(endpoint_id);
  return Status::Ok();
}

// An endpoint's columns in kEndpointColumns order, secrets sealed.
Params PostgresStore::EndpointParams(const Endpoint& e) const {
  Params p;
  p.Add(e.id)
      .Add(e.site_id)
      .Add(e.url)
      .Add(e.description)
      .Add(FilterBits(e.filter))
      .Add(model::PayloadFormatName(e.format))
      .Add(e.enabled ? 1 : 0)
      .Add(e.max_in_flight)
      .Add(e.rate_limit)
      .Add(box_.Seal(e.secret))
      .Add(internal::SealPreviousSecrets(e.previous_secrets, box_))
      .Add(e.created_at_ms)
      .Add(e.updated_at_ms)
      .Add(e.disabled_reason)
      .Add(e.disabled_at_ms)
      .Add(e.field_filter.ToJson())
      .Add(e.batch.max_events)
      .Add(e.batch.max_wait_ms);
  return p;
}

StatusOr<std::vector<Site>> PostgresStore::QuerySites(const std::string& rest,
                                                      const Params& params) {
  auto r = Query(std::string("SELECT ") + internal::kSiteColumns + " FROM sites " + rest, params);
  if (!r.ok()) return r.status();
  std::vector<Site> out;
  for (int i = 0; i < r->rows(); ++i) out.push_back(internal::ReadSite(ResultRow{*r, i}, 0, box_));
  return out;
}

StatusOr<std::vector<Endpoint>> PostgresStore::QueryEndpoints(const std::string& sql,
                                                              const Params& params) {
  auto r = Query(sql, params);
  if (!r.ok()) return r.status();
  std::vector<Endpoint> out;
  for (int i = 0; i < r->rows(); ++i) out.push_back(ReadEndpoint(*r, i, 0, box_));
  return out;
}

}  // namespace pushhook::store::postgres
