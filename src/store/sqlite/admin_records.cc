#include <sqlite3.h>

#include <algorithm>
#include <charconv>

#include "model/random.h"
#include "store/sqlite/sqlite_store_impl.h"

namespace pushhook::store::sqlite {

StatusOr<Site> SqliteStore::CreateSite(const std::string& name) {
  Site site{"site_" + model::RandomToken(16), name, "pk_" + model::RandomToken(32), NowMs()};
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare("INSERT INTO sites(id, name, ingest_key, created_at) VALUES(?,?,?,?)");
    if (!st.ok()) return st.status();
    return (*st)
        ->Bind(1, site.id)
        .Bind(2, site.name)
        .Bind(3, site.ingest_key)
        .Bind(4, site.created_at_ms)
        .Run();
  });
  if (!s.ok()) return s;
  return site;
}

StatusOr<Site> SqliteStore::GetSite(const std::string& site_id) {
  auto sites =
      QuerySites("SELECT id, name, ingest_key, created_at FROM sites WHERE id = ?", site_id);
  if (!sites.ok()) return sites.status();
  if (sites->empty()) return model::NotFound("site " + site_id + " not found");
  return std::move(sites->front());
}

StatusOr<Site> SqliteStore::FindSiteByIngestKey(const std::string& ingest_key) {
  auto sites = QuerySites("SELECT id, name, ingest_key, created_at FROM sites WHERE ingest_key = ?",
                          ingest_key);
  if (!sites.ok()) return sites.status();
  if (sites->empty()) return model::NotFound("no site has this ingest key");
  return std::move(sites->front());
}

Status SqliteStore::AddSiteToken(const std::string& site_id, const std::string& token_hash,
                                 TokenScope scope) {
  if (auto site = GetSite(site_id); !site.ok()) return site.status();
  return WriteSync([&](Connection& c) {
    auto st = c.Prepare(
        "INSERT INTO site_tokens(token_hash, site_id, created_at, scope) VALUES(?,?,?,?)");
    if (!st.ok()) return st.status();
    return (*st)
        ->Bind(1, token_hash)
        .Bind(2, site_id)
        .Bind(3, NowMs())
        .Bind(4, internal::TokenScopeName(scope))
        .Run();
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
  const std::string sealed_previous = box_.Seal(e.previous_secret);
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(std::string("INSERT INTO endpoints(") + kEndpointColumns +
                        ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
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
        .Bind(12, e.previous_secret_expires_ms)
        .Bind(13, e.created_at_ms)
        .Bind(14, e.updated_at_ms)
        .Bind(15, e.disabled_reason)
        .Bind(16, e.disabled_at_ms)
        .Run();
  });
  if (!s.ok()) return s;
  return e;
}

StatusOr<Endpoint> SqliteStore::GetEndpoint(const std::string& site_id,
                                            const std::string& endpoint_id) {
  auto found = QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                                  " FROM endpoints WHERE id = ? AND site_id = ? AND deleted = 0",
                              endpoint_id, site_id);
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<Endpoint> SqliteStore::GetEndpointById(const std::string& endpoint_id) {
  auto found = QueryEndpoints(
      std::string("SELECT ") + kEndpointColumns + " FROM endpoints WHERE id = ? AND deleted = 0",
      endpoint_id, std::nullopt);
  if (!found.ok()) return found.status();
  if (found->empty()) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(found->front());
}

StatusOr<std::vector<Endpoint>> SqliteStore::ListEndpoints(const std::string& site_id) {
  return QueryEndpoints(std::string("SELECT ") + kEndpointColumns +
                            " FROM endpoints WHERE site_id = ? AND deleted = 0 "
                            "ORDER BY created_at, id",
                        site_id, std::nullopt);
}

StatusOr<Endpoint> SqliteStore::UpdateEndpoint(const std::string& site_id,
                                               const std::string& endpoint_id,
                                               const EndpointPatch& patch, int64_t now_ms) {
  const std::vector<internal::ColumnValue> columns =
      internal::EndpointPatchColumns(patch, now_ms, box_);
  std::optional<Endpoint> updated;
  Status s = WriteSync([&](Connection& c) {
    auto st = c.Prepare(internal::UpdateEndpointSql(columns, '?'));
    if (!st.ok()) return st.status();
    int n = 0;
    for (const internal::ColumnValue& column : columns) {
      std::visit([&](const auto& value) { (*st)->Bind(++n, value); }, column.value);
    }
    (*st)->Bind(n + 1, endpoint_id).Bind(n + 2, site_id);
    Status step;
    if ((*st)->Step(&step)) updated = ReadEndpoint(**st, 0, box_);
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  if (!updated) return model::NotFound("endpoint " + endpoint_id + " not found");
  return std::move(*updated);
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

StatusOr<std::vector<Site>> SqliteStore::QuerySites(const std::string& sql,
                                                    const std::optional<std::string>& arg) {
  std::vector<Site> out;
  Status s = Read([&](Connection& c) {
    auto st = c.Prepare(sql);
    if (!st.ok()) return st.status();
    if (arg) (*st)->Bind(1, *arg);
    Status step;
    while ((*st)->Step(&step)) {
      out.push_back(Site{(*st)->Text(0), (*st)->Text(1), (*st)->Text(2), (*st)->Int(3)});
    }
    (*st)->Reset();
    return step;
  });
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<Endpoint>> SqliteStore::QueryEndpoints(
    const std::string& sql, const std::string& arg1, const std::optional<std::string>& arg2) {
  std::vector<Endpoint> out;
  Status s = Read([&](Connection& c) {
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
