// DESIGN sections 2 and 3: a database that cannot answer is not an unknown key, an unknown token
// or a missing site. With PostgreSQL down, a node answers 503 with Retry-After where it cannot
// tell (ingest with a key it has not seen, a site token, a site's records), and still 401 for
// what it can tell without the database (no key, no token, a wrong operator token).
import assert from 'node:assert/strict';
import { itest } from '../helpers/harness.mjs';
import { freshDatabase, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

async function call(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, retryAfter: response.headers.get('retry-after') };
}

itest('cluster: with the database down, unknowns answer 503, not 401 or 404', { timeout: 90_000, skip: postgresSkipReason({ ownServer: true }) }, async (fx) => {
  const { url: database, server } = await freshDatabase(fx, { ownServer: true });
  const [node] = await startNodes(fx, { database, count: 1 });
  const site = await node.createSite('Down');
  const token = await node.api('POST', `/v1/sites/${site.id}/tokens`, {});
  assert.equal(token.status, 201);
  const siteToken = token.json.token;
  const ingest = (key) => call(`${node.baseUrl}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-pushhook-key': key },
    body: JSON.stringify({ action: 'View', cookie_id: 'c', cid: '1' }),
  });
  const admin = (path, bearer) => call(`${node.baseUrl}${path}`, { headers: { authorization: `Bearer ${bearer}` } });

  // Up: the answers that tell the database's truth.
  assert.equal((await ingest('pk_unknown')).status, 401);
  assert.equal((await admin(`/v1/sites/${site.id}/endpoints`, siteToken)).status, 200);
  assert.equal((await admin('/v1/sites/site_missing/endpoints', node.adminToken)).status, 404);

  await server.kill();

  const unknownKey = await ingest('pk_never_seen');
  assert.equal(unknownKey.status, 503, `an unknown key with the database down: ${JSON.stringify(unknownKey.json)}`);
  assert.equal(unknownKey.json.error.code, 'unavailable');
  assert.equal(unknownKey.retryAfter, '1');

  const knownKey = await ingest(site.ingest_key);
  assert.equal(knownKey.status, 503, 'a known key: the commit cannot happen');
  assert.ok(Number(knownKey.retryAfter) >= 1);

  const bySiteToken = await admin(`/v1/sites/${site.id}/endpoints`, siteToken);
  assert.equal(bySiteToken.status, 503, `a site token cannot be checked: ${JSON.stringify(bySiteToken.json)}`);
  assert.equal(bySiteToken.retryAfter, '1');

  const missingSite = await admin('/v1/sites/site_missing/endpoints', node.adminToken);
  assert.equal(missingSite.status, 503, 'whether the site exists cannot be told');

  // What needs no database still answers as before.
  assert.equal((await ingest('')).status, 401);
  assert.equal((await admin(`/v1/sites/${site.id}/endpoints`, 'pha_wrong')).status, 503,
    'a token that is not the operator\'s could be a site token: the database must say');
  const noToken = await call(`${node.baseUrl}/v1/sites/${site.id}/endpoints`);
  assert.equal(noToken.status, 401);
});
