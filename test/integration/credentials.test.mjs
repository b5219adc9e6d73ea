// DESIGN section 3, withdrawing a credential: `POST /v1/sites/{site}/rotate-ingest-key` gives a
// site a new ingest key while the old one is still accepted for 24 h (service workers hold it),
// or not at all with expire_previous (a leaked key); site tokens are listed by id, never shown
// again, and revoked with `DELETE /v1/sites/{site}/tokens/{id}`, refused from the next request.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent } from '../helpers/harness.mjs';

const DAY_MS = 24 * 3600 * 1000;

function assertError(res, status, code, message, what) {
  assert.equal(res.status, status, `${what}: ${res.status} ${res.text}`);
  assert.deepEqual(res.json, { error: { code, message } }, what);
}

itest('rotate-ingest-key: the old key is accepted for 24 h, or refused at once when expired', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Keys');
  const unknown = await serve.ingest('pk_never_issued', makeEvent(0));
  assert.equal(unknown.status, 401);

  const startedAt = Date.now();
  const rotated = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/rotate-ingest-key`), 200, 'rotate');
  assert.equal(rotated.id, site.id);
  assert.equal(rotated.name, 'Keys');
  assert.match(rotated.ingest_key, /^pk_/);
  assert.notEqual(rotated.ingest_key, site.ingest_key);
  assert.equal(rotated.beacon_secret, undefined, 'the site as GET shows it');
  const until = Date.parse(rotated.previous_ingest_key_expires_at);
  assert.ok(Math.abs(until - startedAt - DAY_MS) < 60_000, `accepted for 24 h: ${rotated.previous_ingest_key_expires_at}`);
  const read = expectStatus(await serve.api('GET', `/v1/sites/${site.id}`), 200, 'GET site');
  assert.equal(read.ingest_key, rotated.ingest_key);

  expectStatus(await serve.ingest(site.ingest_key, makeEvent(1)), 202, 'the old key within its 24 h');
  expectStatus(await serve.ingest(rotated.ingest_key, makeEvent(2)), 202, 'the new key');

  assertError(await serve.api('POST', `/v1/sites/${site.id}/rotate-ingest-key`, { expire: true }), 400,
    'invalid_request', "unknown field 'expire'", 'an unknown field');
  assertError(await serve.api('POST', `/v1/sites/${site.id}/rotate-ingest-key`, { expire_previous: 'yes' }), 400,
    'invalid_request', "field 'expire_previous' must be true or false", 'not a boolean');

  const leaked = expectStatus(
    await serve.api('POST', `/v1/sites/${site.id}/rotate-ingest-key`, { expire_previous: true }), 200, 'rotate, expire_previous');
  assert.equal(leaked.previous_ingest_key_expires_at, null);
  for (const [key, what] of [[rotated.ingest_key, 'the key just replaced'], [site.ingest_key, 'the key replaced before']]) {
    const refused = await serve.ingest(key, makeEvent(3));
    assert.equal(refused.status, 401, `${what}: ${refused.text}`);
    assert.deepEqual(refused.json, unknown.json, `${what} is refused as an unknown key`);
  }
  expectStatus(await serve.ingest(leaked.ingest_key, makeEvent(4)), 202, 'the newest key');

  const reader = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/tokens`, { scope: 'read' }), 201, 'read token');
  assertError(await serve.api('POST', `/v1/sites/${site.id}/rotate-ingest-key`, undefined, reader.token), 403,
    'forbidden', 'this token may only read: changes need an admin token', 'a read token rotating');
  const other = await serve.createSite('Other');
  assertError(await serve.api('POST', `/v1/sites/${other.id}/rotate-ingest-key`, undefined, reader.token), 404,
    'not_found', `site ${other.id} not found`, 'another site');
});

itest('site tokens: listed by id, revoked, refused from the next request', async (fx, t) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Tokens');
  const other = await serve.createSite('Other');
  const tokensOf = (id) => `/v1/sites/${id}/tokens`;
  const make = async (scope, token) =>
    expectStatus(await serve.api('POST', tokensOf(site.id), { scope }, token), 201, `POST tokens ${scope}`);

  const admin = await make('admin');
  const admin2 = await make('admin');
  const reader = await make('read');
  const reader2 = await make('read', admin.token);
  const foreign = expectStatus(await serve.api('POST', tokensOf(other.id), { scope: 'admin' }), 201, 'other site token');

  await t.test('a new token answers its id and created_at beside the token', () => {
    for (const made of [admin, admin2, reader, reader2]) {
      assert.match(made.id, /^tok_[0-9a-f]{16}$/);
      assert.match(made.token, /^pht_/);
      assert.equal(made.site_id, site.id);
      assert.ok(Math.abs(Date.parse(made.created_at) - Date.now()) < 60_000, made.created_at);
    }
    assert.equal(new Set([admin.id, admin2.id, reader.id, reader2.id]).size, 4);
  });

  await t.test('the list shows ids, scopes and times, newest first, and never a secret', async () => {
    for (const token of [undefined, admin.token]) {
      const res = await serve.api('GET', tokensOf(site.id), undefined, token);
      const listed = expectStatus(res, 200, 'GET tokens');
      assert.deepEqual(Object.keys(listed), ['data']);
      assert.deepEqual(listed.data.map((x) => x.id).sort(), [admin.id, admin2.id, reader.id, reader2.id].sort());
      for (const x of listed.data) {
        assert.deepEqual(Object.keys(x).sort(), ['created_at', 'id', 'scope']);
        assert.equal(x.scope, [reader.id, reader2.id].includes(x.id) ? 'read' : 'admin');
      }
      const times = listed.data.map((x) => Date.parse(x.created_at));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
      for (const made of [admin, admin2, reader, reader2]) {
        assert.ok(!res.text.includes(made.token.slice(4)), 'a token is shown again');
      }
    }
  });

  await t.test('a read token may neither list nor revoke', async () => {
    assertError(await serve.api('GET', tokensOf(site.id), undefined, reader.token), 403, 'forbidden',
      'this token may only read statistics, campaigns, endpoints and messages', 'a read token listing');
    assertError(await serve.api('DELETE', `${tokensOf(site.id)}/${reader2.id}`, undefined, reader.token), 403, 'forbidden',
      'this token may only read: changes need an admin token', 'a read token revoking');
  });

  await t.test('a site admin token may not revoke another admin token', async () => {
    assertError(await serve.api('DELETE', `${tokensOf(site.id)}/${admin2.id}`, undefined, admin.token), 403, 'forbidden',
      'only the operator token revokes admin tokens; a site token may revoke read tokens and itself', 'admin revoking admin');
    expectStatus(await serve.api('GET', `/v1/sites/${site.id}`, undefined, admin2.token), 200, 'the other admin token still works');
  });

  await t.test('unknown ids and other sites\' tokens answer 404', async () => {
    for (const [id, token] of [['tok_0000000000000000', undefined], ['tok_0000000000000000', admin.token],
      [foreign.id, undefined], [foreign.id, admin.token], ['not-a-token-id', undefined]]) {
      assertError(await serve.api('DELETE', `${tokensOf(site.id)}/${id}`, undefined, token), 404, 'not_found',
        `token ${id} not found`, `revoking ${id}`);
    }
    assertError(await serve.api('DELETE', `${tokensOf(other.id)}/${foreign.id}`, undefined, admin.token), 404, 'not_found',
      `site ${other.id} not found`, 'a token of a site this token may not see');
  });

  await t.test('a revoked token is refused on its next request', async () => {
    expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints`, undefined, reader2.token), 200, 'before');
    assert.equal((await serve.api('DELETE', `${tokensOf(site.id)}/${reader2.id}`, undefined, admin.token)).status, 204,
      'a site admin revokes a read token');
    assertError(await serve.api('GET', `/v1/sites/${site.id}/endpoints`, undefined, reader2.token), 401, 'unauthorized',
      'unknown token', 'the revoked read token');
    assertError(await serve.api('DELETE', `${tokensOf(site.id)}/${reader2.id}`, undefined, admin.token), 404, 'not_found',
      `token ${reader2.id} not found`, 'revoking it again');

    assert.equal((await serve.api('DELETE', `${tokensOf(site.id)}/${admin2.id}`)).status, 204, 'the operator revokes an admin token');
    assertError(await serve.api('GET', `/v1/sites/${site.id}`, undefined, admin2.token), 401, 'unauthorized',
      'unknown token', 'the revoked admin token');

    assert.equal((await serve.api('DELETE', `${tokensOf(site.id)}/${admin.id}`, undefined, admin.token)).status, 204,
      'a site admin token revokes itself');
    assertError(await serve.api('GET', tokensOf(site.id), undefined, admin.token), 401, 'unauthorized',
      'unknown token', 'the token that revoked itself');

    const left = expectStatus(await serve.api('GET', tokensOf(site.id)), 200, 'GET tokens after');
    assert.deepEqual(left.data.map((x) => x.id), [reader.id]);
    expectStatus(await serve.api('GET', `/v1/sites/${site.id}`, undefined, reader.token), 200, 'the remaining token');
    expectStatus(await serve.api('GET', `/v1/sites/${other.id}`, undefined, foreign.token), 200, 'another site\'s token');
  });
});
