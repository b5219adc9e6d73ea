#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/beacon.h"
#include "model/random.h"
#include "model/signature.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

StatusOr<Site> SqliteStore::CreateSite(const std::string& name) {
  Site site = internal::NewSite(name, NowMs());
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "INSERT INTO sites(id, name, ingest_key, created_at, beacon_secret) VALUES(?,?,?,?,?)");
    if (!st.ok()) return st.status();
    return (*st)
        ->Bind(1, site.id)
        .Bind(2, site.name)
        .Bind(3, site.ingest_key)
        .Bind(4, site.created_at_ms)
        .Bind(5, box_.Seal(site.beacon_secret))
        .Run();
  });
  if (!s.ok()) return s;
  return site;
}

StatusOr<Site> SqliteStore::GetSite(const std::string& site_id) {
  auto sites = QuerySites("WHERE id = ?1", site_id, admin_readers_);
  if (!sites.ok()) return sites.status();
  if (sites->empty()) return model::NotFound("site " + site_id + " not found");
  return std::move(sites->front());
}

StatusOr<Site> SqliteStore::FindSiteByIngestKey(const std::string& ingest_key, int64_t now_ms) {
  std::optional<Site> site;
  // One statement: the current key through its unique index, else a replaced one through the
  // primary key of previous_ingest_keys.
  Status s = ReadHotPath([&](Connection& c) {
    auto st = c.Prepare(std::string("SELECT ") + internal::kSiteColumns +
                        " FROM sites WHERE id = coalesce("
                        "(SELECT id FROM sites WHERE ingest_key = ?1), "
                        "(SELECT site_id FROM previous_ingest_keys "
                        "WHERE ingest_key = ?1 AND until_ms > ?2))");
    if (!st.ok()) return st.status();
    Status step;
    if ((*st)->Bind(1, ingest_key).Bind(2, now_ms).Step(&step)) {
      site = internal::ReadSite(**st, 0, box_);
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  if (!site) return model::NotFound("no site has this ingest key");
  return std::move(*site);
}

StatusOr<Site> SqliteStore::RotateIngestKey(const std::string& site_id, int64_t now_ms,
                                            int64_t overlap_ms) {
  const std::string key = internal::NewIngestKey();
  // Read and written in one transaction of the one writer: no rotation is lost to another.
  Status s = WriteSync([&](Connection& c) {
    auto read = c.Prepare("SELECT ingest_key FROM sites WHERE id = ?");
    if (!read.ok()) return read.status();
    Status step;
    std::optional<std::string> current;
    if ((*read)->Bind(1, site_id).Step(&step)) current = (*read)->Text(0);
    (*read)->Reset();
    if (!step.ok()) return step;
    if (!current) return model::NotFound("site " + site_id + " not found");
    // Keys whose time is over go now; with no overlap (a leaked key), every earlier key goes.
    auto expire =
        c.Prepare("DELETE FROM previous_ingest_keys WHERE site_id = ?1 AND until_ms <= ?2");
    if (!expire.ok()) return expire.status();
    const int64_t expired_before = overlap_ms > 0 ? now_ms : INT64_MAX;
    if (Status run = (*expire)->Bind(1, site_id).Bind(2, expired_before).Run(); !run.ok()) {
      return run;
    }
    if (overlap_ms > 0) {
      auto keep = c.Prepare(
          "INSERT INTO previous_ingest_keys(ingest_key, site_id, until_ms) VALUES(?,?,?)");
      if (!keep.ok()) return keep.status();
      Status run = (*keep)->Bind(1, *current).Bind(2, site_id).Bind(3, now_ms + overlap_ms).Run();
      if (!run.ok()) return run;
    }
    auto write = c.Prepare("UPDATE sites SET ingest_key = ?2 WHERE id = ?1");
    if (!write.ok()) return write.status();
    return (*write)->Bind(1, site_id).Bind(2, key).Run();
  });
  if (!s.ok()) return s;
  return GetSite(site_id);
}

StatusOr<Site> SqliteStore::UpdateSite(const std::string& site_id, const SitePatch& patch) {
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "UPDATE sites SET name = coalesce(?2, name), beacons = coalesce(?3, beacons) "
        "WHERE id = ?1");
    if (!st.ok()) return st.status();
    Statement& update = **st;
    update.Bind(1, site_id);
    // A cached statement keeps its bindings between runs: an unset field binds NULL.
    patch.name ? update.Bind(2, *patch.name) : update.BindNull(2);
    patch.beacons ? update.Bind(3, BeaconModeName(*patch.beacons)) : update.BindNull(3);
    Status run = update.Run();
    if (run.ok() && c.Changes() == 0) return model::NotFound("site " + site_id + " not found");
    return run;
  });
  if (!s.ok()) return s;
  return GetSite(site_id);
}

StatusOr<Site> SqliteStore::RotateBeaconSecret(const std::string& site_id, int64_t now_ms,
                                               int64_t overlap_ms) {
  const std::string secret = model::NewBeaconSecret();
  // Read and written in one transaction of the one writer: no rotation is lost to another.
  Status s = WriteSync([&](Connection& c) {
    auto read =
        c.Prepare(std::string("SELECT ") + internal::kSiteColumns + " FROM sites WHERE id = ?");
    if (!read.ok()) return read.status();
    Status step;
    std::optional<Site> site;
    if ((*read)->Bind(1, site_id).Step(&step)) site = internal::ReadSite(**read, 0, box_);
    (*read)->Reset();
    if (!step.ok()) return step;
    if (!site) return model::NotFound("site " + site_id + " not found");
    auto write = c.Prepare(
        "UPDATE sites SET beacon_secret = ?2, previous_beacon_secrets = ?3 WHERE id = ?1");
    if (!write.ok()) return write.status();
    return (*write)
        ->Bind(1, site_id)
        .Bind(2, box_.Seal(secret))
        .Bind(3, internal::SealPreviousSecrets(
                     AfterRotation(site->beacon_secret, site->previous_beacon_secrets, now_ms,
                                   overlap_ms),
                     box_))
        .Run();
  });
  if (!s.ok()) return s;
  return GetSite(site_id);
}

Status SqliteStore::GiveSitesBeaconSecrets() {
  auto sites = QuerySites("WHERE beacon_secret = ''", std::nullopt, admin_readers_);
  if (!sites.ok()) return sites.status();
  for (const Site& site : *sites) {
    Status s = WriteSync([&](Connection& c) {
      auto st =
          c.Prepare("UPDATE sites SET beacon_secret = ?2 WHERE id = ?1 AND beacon_secret = ''");
      if (!st.ok()) return st.status();
      return (*st)->Bind(1, site.id).Bind(2, box_.Seal(model::NewBeaconSecret())).Run();
    });
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

StatusOr<SiteTokenInfo> SqliteStore::AddSiteToken(const std::string& site_id,
                                                  const std::string& token_hash, TokenScope scope) {
  if (auto site = GetSite(site_id); !site.ok()) return site.status();
  const SiteTokenInfo token{SiteTokenId(token_hash), scope, NowMs()};
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "INSERT INTO site_tokens(token_hash, site_id, created_at, scope) VALUES(?,?,?,?)");
    if (!st.ok()) return st.status();
    return (*st)
        ->Bind(1, token_hash)
        .Bind(2, site_id)
        .Bind(3, token.created_at_ms)
        .Bind(4, internal::TokenScopeName(scope))
        .Run();
  });
  if (!s.ok()) return s;
  return token;
}

StatusOr<std::vector<SiteTokenInfo>> SqliteStore::ListSiteTokens(const std::string& site_id) {
  std::vector<SiteTokenInfo> out;
  Status s = Read([&](Connection& c) {
    auto st = c.Prepare(
        "SELECT token_hash, scope, created_at FROM site_tokens WHERE site_id = ? "
        "ORDER BY created_at DESC, token_hash DESC");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, site_id);
    Status step;
    while ((*st)->Step(&step)) {
      out.push_back(SiteTokenInfo{SiteTokenId((*st)->Text(0)),
                                  internal::TokenScopeFromName((*st)->Text(1)), (*st)->Int(2)});
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

Status SqliteStore::DeleteSiteToken(const std::string& site_id, const std::string& token_id) {
  const std::optional<std::string> prefix = internal::TokenHashPrefix(token_id);
  if (!prefix) return internal::TokenNotFound(token_id);
  return WriteSync([&](Connection& c) {
    auto st =
        c.Prepare("DELETE FROM site_tokens WHERE site_id = ? AND substr(token_hash, 1, 16) = ?");
    if (!st.ok()) return st.status();
    Status run = (*st)->Bind(1, site_id).Bind(2, *prefix).Run();
    if (run.ok() && c.Changes() == 0) return internal::TokenNotFound(token_id);
    return run;
  });
}

StatusOr<SiteToken> SqliteStore::FindSiteToken(const std::string& token_hash) {
  std::optional<SiteToken> token;
  Status s = Read([&](Connection& c) {
    auto st = c.Prepare("SELECT site_id, scope FROM site_tokens WHERE token_hash = ?");
    if (!st.ok()) return st.status();
    (*st)->Bind(1, token_hash);
    Status step;
    if ((*st)->Step(&step)) {
      token = SiteToken{(*st)->Text(0), internal::TokenScopeFromName((*st)->Text(1))};
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  if (!token) return model::NotFound("unknown token");
  return std::move(*token);
}

StatusOr<Endpoint> SqliteStore::CreateEndpoint(Endpoint e) {
  e.id = "ep_" + model::RandomToken(20);
  const std::string sealed_secret = box_.Seal(e.secret);
  const std::string sealed_previous = internal::SealPreviousSecrets(e.previous_secrets, box_);
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(std::string("INSERT INTO endpoints(") + kEndpointColumns +
                        ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) return st.status();
    const std::string_view format = model::PayloadFormatName(e.format);
    return (*st)
        ->Bind(1, e.id)
        .Bind(2, e.site_id)
        .Bind(3, e.url)
        .Bind(4, e.description)
        .Bind(5, FilterBits(e.filter))
        .Bind(6, format)
        .Bind(7, e.enabled ? 1 : 0)
        .Bind(8, e.max_in_flight)
        .Bind(9, e.rate_limit)
        .Bind(10, sealed_secret)
        .Bind(11, sealed_previous)
        .Bind(12, e.created_at_ms)
        .Bind(13, e.updated_at_ms)
        .Bind(14, e.disabled_reason)
        .Bind(15, e.disabled_at_ms)
        .Bind(16, e.field_filter.ToJson())
        .Bind(17, e.batch.max_events)
        .Bind(18, e.batch.max_wait_ms)
        .Run();
  });
  if (!s.ok()) return s;
  return e;
}

StatusOr<Endpoint> SqliteStore::GetEndpoint(const std::string& site_id,
                                            const std::string& endpoint_id) {
  auto found = QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                                  " FROM endpoints WHERE id = ? AND site_id = ? AND deleted = 0",
                              endpoint_id, site_id, admin_readers_);
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<Endpoint> SqliteStore::GetEndpointById(const std::string& endpoint_id) {
  auto found = QueryEndpoints(
      std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = ? AND deleted = 0",
      endpoint_id, std::nullopt, hot_path_readers_);
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<std::vector<Endpoint>> SqliteStore::ListEndpoints(const std::string& site_id) {
  return QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                            " FROM endpoints WHERE site_id = ? AND deleted = 0 "
                            "ORDER BY created_at, id",
                        site_id, std::nullopt, admin_readers_);
}

// Applies `patch` in the writer's transaction; `updated` is left empty when no such endpoint.
Status SqliteStore::PatchEndpoint(Connection& c, const std::string& site_id,
                                  const std::string& endpoint_id, const EndpointPatch& patch,
                                  int64_t now_ms, std::optional<Endpoint>* updated) {
  const std::vector<internal::ColumnValue> columns =
      internal::EndpointPatchColumns(patch, now_ms, box_);
  auto st = c.Prepare(internal::UpdateEndpointSql(columns, '?'));
  if (!st.ok()) return st.status();
  int n = 0;
  for (const internal::ColumnValue& column : columns) {
    std::visit([&](const auto& value) { (*st)->Bind(++n, value); }, column.value);
  }
  (*st)->Bind(n + 1, endpoint_id).Bind(n + 2, site_id);
  Status step;
  if ((*st)->Step(&step)) *updated = ReadEndpoint(**st, 0, box_);
  (*st)->Reset();
  return step;
}

StatusOr<Endpoint> SqliteStore::UpdateEndpoint(const std::string& site_id,
                                               const std::string& endpoint_id,
                                               const EndpointPatch& patch, int64_t now_ms) {
  std::optional<Endpoint> updated;
  Status s = WriteSync([&](Connection& c) {
    return PatchEndpoint(c, site_id, endpoint_id, patch, now_ms, &updated);
  });
  if (!s.ok()) return s;
  if (!updated) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(*updated);
}

StatusOr<Endpoint> SqliteStore::RotateEndpointSecret(const std::string& site_id,
                                                     const std::string& endpoint_id, int64_t now_ms,
                                                     int64_t overlap_ms) {
  std::optional<Endpoint> rotated;
  // Read and written in one transaction of the one writer: no rotation is lost to another.
  Status s = WriteSync([&](Connection& c) {
    auto read = c.Prepare(std::string("SELECT ") + kEndpointColumns +
                          " FROM endpoints WHERE id = ? AND site_id = ? AND deleted = 0");
    if (!read.ok()) return read.status();
    Status step;
    std::optional<Endpoint> current;
    if ((*read)->Bind(1, endpoint_id).Bind(2, site_id).Step(&step)) {
      current = ReadEndpoint(**read, 0, box_);
    }
    (*read)->Reset();
    if (!step.ok() || !current) return step;
    EndpointPatch patch;
    patch.secret = model::NewSecret();
    patch.previous_secrets =
        AfterRotation(current->secret, current->previous_secrets, now_ms, overlap_ms);
    return PatchEndpoint(c, site_id, endpoint_id, patch, now_ms, &rotated);
  });
  if (!s.ok()) return s;
  if (!rotated) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(*rotated);
}

Status SqliteStore::DeleteEndpoint(const std::string& site_id, const std::string& endpoint_id) {
  return WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "UPDATE endpoints SET deleted = 1, enabled = 0 WHERE id = ? AND site_id = ? AND "
        "deleted = 0");
    if (!st.ok()) return st.status();
    Status run = (*st)->Bind(1, endpoint_id).Bind(2, site_id).Run();
    if (run.ok() && c.Changes() == 0) {
      return model::NotFound("endpoint " + endpoint_id + " not found");
    }
    if (!run.ok()) return run;
    // Its pending messages have nowhere to go: they end as failed, kept for the log.
    auto fail = c.Prepare(
        "UPDATE messages SET status = 2, last_error = 'endpoint deleted' "
        "WHERE endpoint_id = ? AND status = 0");
    if (!fail.ok()) return fail.status();
    return (*fail)->Bind(1, endpoint_id).Run();
  });
}

StatusOr<std::vector<Site>> SqliteStore::QuerySites(const std::string& rest,
                                                    const std::optional<std::string>& arg,
                                                    Readers& readers) {
  std::vector<Site> out;
  Status s = ReadOn(readers, [&](Connection& c) {
    auto st = c.Prepare(std::string("SELECT ") + internal::kSiteColumns + " FROM sites " + rest);
    if (!st.ok()) return st.status();
    if (arg) (*st)->Bind(1, *arg);
    Status step;
    while ((*st)->Step(&step)) out.push_back(internal::ReadSite(**st, 0, box_));
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<Endpoint>> SqliteStore::QueryEndpoints(const std::string& sql,
                                                            const std::string& arg1,
                                                            const std::optional<std::string>& arg2,
                                                            Readers& readers) {
  std::vector<Endpoint> out;
  Status s = ReadOn(readers, [&](Connection& c) {
    auto st = c.Prepare(sql);
    if (!st.ok()) return st.status();
    (*st)->Bind(1, arg1);
    if (arg2) (*st)->Bind(2, *arg2);
    Status step;
    while ((*st)->Step(&step)) out.push_back(ReadEndpoint(**st, 0, box_));
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace pushhook::store::sqlite
