// DESIGN section 3: the admin API: tokens and their reach, sites, endpoint CRUD, strict request
// bodies, URL rules without --dev; and the generated operator token.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { expectStatus, itest, listItems, makeEvent, request, waitFor } from '../helpers/harness.mjs';
import { slow, startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';

function assertError(res, status, what) {
  assert.equal(res.status, status, `${what}: ${res.status} ${res.text}`);
  assert.equal(typeof res.json?.error?.code, 'string', `${what}: error.code in ${res.text}`);
  assert.equal(typeof res.json?.error?.message, 'string', `${what}: error.message in ${res.text}`);
}

itest('admin API: tokens, sites, endpoints', async (fx, t) => {
  const serve = await fx.startServe();

  await t.test('/healthz and /readyz answer 200', async () => {
    assert.equal((await request(serve.baseUrl, 'GET', '/healthz')).status, 200);
    assert.equal((await request(serve.baseUrl, 'GET', '/readyz')).status, 200);
  });

  await t.test('no token or a wrong token answers 401', async () => {
    assertError(await serve.api('GET', '/v1/sites', undefined, null), 401, 'no token');
    assertError(await serve.api('GET', '/v1/sites', undefined, 'wrong-token'), 401, 'wrong token');
    assertError(await serve.api('POST', '/v1/sites', { name: 'x' }, null), 401, 'POST without a token');
  });

  const siteA = await serve.createSite('Site A');
  const siteB = await serve.createSite('Site B');

  await t.test('a site answers {id, name, ingest_key}; sites list and read', async () => {
    assert.equal(typeof siteA.id, 'string');
    assert.equal(siteA.name, 'Site A');
    assert.equal(typeof siteA.ingest_key, 'string');
    assert.ok(siteA.ingest_key.length >= 16);
    assert.notEqual(siteA.ingest_key, siteB.ingest_key);
    const list = listItems(expectStatus(await serve.api('GET', '/v1/sites'), 200, 'GET /v1/sites'));
    assert.deepEqual(list.map((s) => s.id).sort(), [siteA.id, siteB.id].sort());
    const one = expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}`), 200, 'GET one site');
    assert.equal(one.id, siteA.id);
    assert.equal(one.name, 'Site A');
    assertError(await serve.api('GET', '/v1/sites/no-such-site'), 404, 'unknown site');
  });

  await t.test('a site token reaches its own site only', async () => {
    const created = expectStatus(await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, {}), 201, 'POST tokens');
    assert.equal(typeof created.token, 'string');
    const token = created.token;
    await serve.createEndpoint(siteB.id, { url: 'http://127.0.0.1:9/b' });

    const own = expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}/endpoints`, undefined, token), 200, 'own endpoints');
    assert.ok(Array.isArray(listItems(own)));
    assertError(await serve.api('GET', `/v1/sites/${siteB.id}/endpoints`, undefined, token), 404, 'another site\'s endpoints');
    assertError(await serve.api('GET', `/v1/sites/${siteB.id}`, undefined, token), 404, 'another site');
    const mine = await serve.createEndpoint(siteA.id, { url: 'http://127.0.0.1:9/a' }, token);
    assert.match(mine.secret, /^whsec_/);
    const makeSite = await serve.api('POST', '/v1/sites', { name: 'not allowed' }, token);
    assert.ok([403, 404].includes(makeSite.status), `a site token making a site: ${makeSite.status} ${makeSite.text}`);
  });

  await t.test('a read token looks at its site and changes nothing', async () => {
    const admin = expectStatus(await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, {}), 201, 'admin token');
    assert.equal(admin.scope, 'admin');
    // The site's admin token hands a read token to the site's marketers.
    const read = expectStatus(await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, { scope: 'read' }, admin.token), 201, 'read token');
    assert.equal(read.scope, 'read');
    const looked = expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}/endpoints`, undefined, read.token), 200, 'read endpoints');
    const [endpoint] = listItems(looked);
    assert.ok(endpoint, 'site A has an endpoint to look at');
    expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}/stats`, undefined, read.token), 200, 'read stats');
    expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}/messages`, undefined, read.token), 200, 'read messages');
    const refusal = 'this token may only read: changes need an admin token';
    for (const [method, path, body] of [
      ['POST', `/v1/sites/${siteA.id}/endpoints`, { url: 'http://127.0.0.1:9/r' }],
      ['PATCH', `/v1/sites/${siteA.id}/endpoints/${endpoint.id}`, { enabled: false }],
      ['DELETE', `/v1/sites/${siteA.id}/endpoints/${endpoint.id}`, undefined],
      ['POST', `/v1/sites/${siteA.id}/endpoints/${endpoint.id}/rotate-secret`, undefined],
      ['POST', `/v1/sites/${siteA.id}/endpoints/${endpoint.id}/test`, undefined],
      ['POST', `/v1/sites/${siteA.id}/tokens`, { scope: 'read' }],
    ]) {
      const answer = await serve.api(method, path, body, read.token);
      assert.equal(answer.status, 403, `${method} ${path} with a read token: ${answer.status} ${answer.text}`);
      assert.equal(answer.json.error.code, 'forbidden');
      assert.equal(answer.json.error.message, refusal);
    }
    assert.equal(expectStatus(await serve.api('GET', `/v1/sites/${siteA.id}/endpoints/${endpoint.id}`), 200, 'unchanged').enabled, true);
    assertError(await serve.api('GET', `/v1/sites/${siteB.id}/endpoints`, undefined, read.token), 404, 'another site, read token');
    // Only the operator makes admin tokens; scope is admin or read.
    const adminByAdmin = await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, { scope: 'admin' }, admin.token);
    assert.equal(adminByAdmin.status, 403);
    assert.equal(adminByAdmin.json.error.message, 'only the operator token makes admin tokens; a site token may make read tokens');
    const bad = await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, { scope: 'owner' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.message, 'field \'scope\' must be "admin" or "read"');
    assert.equal((await serve.api('POST', `/v1/sites/${siteA.id}/tokens`, { scope: 'read', extra: 1 })).status, 400);
  });

  await t.test('endpoint create, list (no secrets), read, patch, delete', async () => {
    const created = await serve.createEndpoint(siteA.id, {
      url: 'http://127.0.0.1:9/crud',
      events: ['View'],
      description: 'first',
    });
    assert.equal(typeof created.id, 'string');
    assert.equal(created.url, 'http://127.0.0.1:9/crud');
    assert.match(created.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    const base = `/v1/sites/${siteA.id}/endpoints`;

    const list = listItems(expectStatus(await serve.api('GET', base), 200, 'GET list'));
    const listed = list.find((e) => e.id === created.id);
    assert.ok(listed, 'the new endpoint is listed');
    for (const e of list) assert.equal(e.secret, undefined, `the list shows a secret: ${JSON.stringify(e)}`);
    assert.ok(!JSON.stringify(list).includes(created.secret), 'the secret appears nowhere in the list');

    const read = expectStatus(await serve.api('GET', `${base}/${created.id}`), 200, 'GET one');
    assert.equal(read.url, 'http://127.0.0.1:9/crud');
    assert.equal(read.description, 'first');

    const patched = expectStatus(
      await serve.api('PATCH', `${base}/${created.id}`, { url: 'http://127.0.0.1:9/changed', description: 'second', enabled: false }),
      200,
      'PATCH',
    );
    assert.equal(patched.url, 'http://127.0.0.1:9/changed');
    assert.equal(patched.description, 'second');
    assert.equal(patched.enabled, false);
    const reread = expectStatus(await serve.api('GET', `${base}/${created.id}`), 200, 'GET after PATCH');
    assert.equal(reread.url, 'http://127.0.0.1:9/changed');
    assert.equal(reread.description, 'second');
    assert.equal(reread.enabled, false);
    assert.deepEqual(reread.events, ['View']);
    assert.equal(reread.disabled_reason, 'disabled through the admin API');
    assert.ok(Math.abs(Date.parse(reread.disabled_at) - Date.now()) < 60_000, `disabled_at ${reread.disabled_at}`);
    // Created disabled: the same reason and time as a PATCH that disables.
    const createdOff = expectStatus(await serve.api('POST', base, { url: 'http://127.0.0.1:9/off', enabled: false }), 201, 'POST disabled');
    assert.deepEqual([createdOff.enabled, createdOff.disabled_reason], [false, 'disabled through the admin API']);
    assert.equal(createdOff.disabled_at, createdOff.created_at);

    const deleted = await serve.api('DELETE', `${base}/${created.id}`);
    assert.ok([200, 204].includes(deleted.status), `DELETE: ${deleted.status} ${deleted.text}`);
    assertError(await serve.api('GET', `${base}/${created.id}`), 404, 'GET after DELETE');
    const after = listItems(expectStatus(await serve.api('GET', base), 200, 'GET list after DELETE'));
    assert.ok(!after.some((e) => e.id === created.id));
  });

  await t.test('unknown fields and bad values in a request body answer 400', async () => {
    assertError(await serve.api('POST', '/v1/sites', { name: 'x', colour: 'blue' }), 400, 'unknown field in site');
    assertError(
      await serve.api('POST', `/v1/sites/${siteA.id}/endpoints`, { url: 'http://127.0.0.1:9/x', secrett: 'typo' }),
      400,
      'unknown field in endpoint',
    );
    const badFilter = await serve.api('POST', `/v1/sites/${siteA.id}/endpoints`, { url: 'http://127.0.0.1:9/x', events: ['Open'] });
    assertError(badFilter, 400, 'unknown event type');
    assert.equal(badFilter.json.error.message, 'field \'events\' may hold only "View", "Click" and "Dismiss"');
    const emptyFilter = await serve.api('POST', `/v1/sites/${siteA.id}/endpoints`, { url: 'http://127.0.0.1:9/x', events: [] });
    assertError(emptyFilter, 400, 'no event type');
    assert.equal(emptyFilter.json.error.message, 'field \'events\' must be a non-empty array of "View", "Click" and "Dismiss"');
    assertError(await serve.api('POST', '/v1/sites', '{"name":'), 400, 'malformed JSON');
    // A field named twice is refused, as ingest refuses it: a JSON reader would keep one silently.
    for (const [body, field] of [
      ['{"url":"http://127.0.0.1:9/a","url":"http://127.0.0.1:9/b"}', 'url'],
      ['{"url":"http://127.0.0.1:9/a","batch":{"max_events":2,"max_events":3}}', 'batch.max_events'],
    ]) {
      const twice = await serve.api('POST', `/v1/sites/${siteA.id}/endpoints`, body);
      assertError(twice, 400, `${field} twice`);
      assert.equal(twice.json.error.message, `field '${field}' appears more than once`);
    }
    // A route that takes no fields refuses them too, before it looks anything up.
    const redeliver = `/v1/sites/${siteA.id}/messages/msg_none/redeliver`;
    const unknown = await serve.api('POST', redeliver, { now: true });
    assertError(unknown, 400, 'a field on redeliver');
    assert.equal(unknown.json.error.message, "unknown field 'now'");
    assertError(await serve.api('POST', redeliver, 'garbage'), 400, 'malformed JSON on redeliver');
    assertError(await serve.api('POST', redeliver), 404, 'redeliver of a message that does not exist');
  });

  await t.test('a body sent as another media type answers 415; fetch\'s and curl -d\'s defaults are read as JSON', async () => {
    const post = (contentType) => request(serve.baseUrl, 'POST', '/v1/sites', {
      body: JSON.stringify({ name: `typed ${contentType}` }),
      headers: contentType === undefined ? {} : { 'content-type': contentType },
      token: serve.adminToken,
    });
    for (const type of ['application/xml', 'text/csv', 'multipart/form-data; boundary=x']) {
      const answer = await post(type);
      assertError(answer, 415, type);
      assert.equal(answer.json.error.code, 'unsupported_media_type');
      assert.equal(answer.json.error.message,
        `the request body must be JSON (content-type: application/json), not ${type.split(';')[0]}`);
    }
    for (const type of ['application/json', 'Application/JSON; charset=utf-8', 'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded']) {
      expectStatus(await post(type), 201, type);
    }
  });
});

itest('without --dev, http:// and literal loopback URLs are refused at registration', async (fx) => {
  const serve = await fx.startServe({ dev: false });
  const site = await serve.createSite('No dev');
  const base = `/v1/sites/${site.id}/endpoints`;

  for (const url of ['http://hooks.example.com/in', 'https://127.0.0.1/hooks', 'https://10.1.2.3/hooks']) {
    const res = await serve.api('POST', base, { url });
    assert.ok(res.status >= 400 && res.status < 500, `${url}: ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error?.code, 'string', `${url}: error.code in ${res.text}`);
    assert.ok(res.json.error.message.length > 0);
  }
  // An https URL with a public host name is fine (nothing is resolved or fetched at registration).
  await serve.createEndpoint(site.id, { url: 'https://hooks.example.com/in' });
});

itest('redelivering a message of a deleted endpoint is a 409 that says so; the message stays readable', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Deleted');
  const receive = await fx.startRecorder({ respond: () => 500 });
  const endpoint = await serve.createEndpoint(site.id, { url: `${receive.url}/hooks` });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1)]), 202, 'ingest');
  await waitFor(() => receive.requests.length >= 1, { what: 'the first attempt' });
  const id = receive.requests[0].headers['webhook-id'];
  expectStatus(await serve.api('DELETE', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 204, 'delete');
  const message = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${id}`), 200, 'the message');
  assert.deepEqual([message.status, message.last_error], ['failed', 'endpoint deleted']);
  // Still listed under the deleted endpoint's id, while it has messages.
  const listed = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?endpoint=${endpoint.id}`), 200, 'by endpoint');
  assert.deepEqual(listed.data.map((m) => m.id), [id]);
  assertError(await serve.api('GET', `/v1/sites/${site.id}/messages?endpoint=${endpoint.id}&status=pending`), 404, 'none pending');
  const res = await serve.api('POST', `/v1/sites/${site.id}/messages/${id}/redeliver`);
  assertError(res, 409, 'redeliver');
  assert.deepEqual(res.json.error, { code: 'conflict', message: "the message's endpoint was deleted: there is nowhere to send it" });
});

// The endpoint is deleted while an attempt is out: its answer, a failure, comes after the message
// was failed as "endpoint deleted", and must not make it pending again (nothing would send it).
itest('an attempt answered after its endpoint was deleted leaves the message failed', async (fx, t) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Deleted while sending');
  const receiver = await startMisbehavingReceiver({ behaviour: slow(800, 500), t });
  const endpoint = await serve.createEndpoint(site.id, { url: `${receiver.url}/hooks` });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1)]), 202, 'ingest');
  await waitFor(() => receiver.requests.length >= 1, { what: 'the first attempt' });
  const id = receiver.requests[0].webhookId;
  expectStatus(await serve.api('DELETE', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 204, 'delete');
  const message = await waitFor(async () => {
    const m = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${id}`), 200, 'the message');
    return m.attempts === 1 && m;
  }, { what: 'the attempt to be recorded' });
  assert.deepEqual([message.status, message.next_attempt_at], ['failed', null]);
  const [attempt] = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${id}/attempts`), 200, 'attempts').data;
  assert.deepEqual([attempt.status_code, attempt.error], [500, 'HTTP 500'], 'the attempt is recorded as it went');
  assertError(await serve.api('GET', `/v1/sites/${site.id}/messages?endpoint=${endpoint.id}&status=pending`), 404, 'none pending');
});

itest('redelivering a message of a disabled endpoint is a 409 until the endpoint is enabled', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Disabled');
  const receive = await fx.startRecorder({ respond: () => 204 });
  const endpoint = await serve.createEndpoint(site.id, { url: `${receive.url}/hooks` });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1)]), 202, 'ingest');
  await waitFor(() => receive.requests.length >= 1, { what: 'the delivery' });
  const id = receive.requests[0].headers['webhook-id'];
  const path = `/v1/sites/${site.id}/endpoints/${endpoint.id}`;
  expectStatus(await serve.api('PATCH', path, { enabled: false }), 200, 'disable');
  const refused = await serve.api('POST', `/v1/sites/${site.id}/messages/${id}/redeliver`);
  assertError(refused, 409, 'redeliver to a disabled endpoint');
  assert.deepEqual(refused.json.error, {
    code: 'conflict',
    message: `the message's endpoint ${endpoint.id} is disabled: enable it before redelivering`,
  });
  const message = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${id}`), 200, 'the message');
  assert.equal(message.status, 'delivered', 'the refusal left the message as it was');

  expectStatus(await serve.api('PATCH', path, { enabled: true }), 200, 'enable');
  expectStatus(await serve.api('POST', `/v1/sites/${site.id}/messages/${id}/redeliver`), 202, 'redeliver once enabled');
  await waitFor(() => receive.requests.length >= 2, { what: 'the redelivery' });
  assert.equal(receive.requests[1].headers['webhook-id'], id);
});

itest('a message waiting for a disabled endpoint has no next attempt until it is enabled', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Waiting');
  const receive = await fx.startRecorder({ respond: () => 204 });
  const endpoint = await serve.createEndpoint(site.id, { url: `${receive.url}/hooks`, enabled: false });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1)]), 202, 'ingest');
  const log = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'the log');
  assert.equal(log.data.length, 1);
  assert.deepEqual([log.data[0].status, log.data[0].next_attempt_at], ['pending', null], 'in the list');
  const one = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${log.data[0].id}`), 200, 'the message');
  assert.deepEqual([one.status, one.next_attempt_at], ['pending', null], 'read alone');

  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { enabled: true }), 200, 'enable');
  await waitFor(() => receive.requests.length >= 1, { what: 'the delivery once enabled' });
  assert.equal(receive.requests[0].headers['webhook-id'], log.data[0].id);
});

itest('a URL whose port is outside 1 to 65535, or that carries a fragment, is refused with the reason', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Ports');
  const base = `/v1/sites/${site.id}/endpoints`;
  const refused = [
    ['http://127.0.0.1:99999/hooks', 'url port must be 1 to 65535, not 99999'],
    ['http://127.0.0.1:65536/hooks', 'url port must be 1 to 65535, not 65536'],
    ['http://127.0.0.1:0/hooks', 'url port must be 1 to 65535, not 0'],
    // Not port 80: Boost.URL ends a port at its first non-digit.
    ['http://127.0.0.1:abc/hooks', 'url port must be 1 to 65535, not abc'],
    ['http://127.0.0.1:18150:99/hooks', 'url port must be 1 to 65535, not 18150:99'],
    ['https://hooks.example.com/in#top', 'url must not carry a fragment (#top): receivers never see it'],
  ];
  for (const [url, message] of refused) {
    const res = await serve.api('POST', base, { url });
    assertError(res, 400, url);
    assert.deepEqual([res.json.error.code, res.json.error.message], ['invalid_request', message], url);
  }
  const endpoint = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:65535/hooks' });
  const patched = await serve.api('PATCH', `${base}/${endpoint.id}`, { url: 'http://127.0.0.1:99999/hooks' });
  assertError(patched, 400, 'PATCH');
  assert.equal(patched.json.error.message, 'url port must be 1 to 65535, not 99999');
});

itest('rate_limit takes 0.001 to 1000000 requests per second, or null', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Rates');
  const base = `/v1/sites/${site.id}/endpoints`;
  const message = "field 'rate_limit' must be a number of requests per second from 0.001 to 1000000, or null for no limit";
  // 1e-17 once made the wait for a token overflow, and the limit let everything through.
  for (const rate_limit of [0, -1, 1e-17, 0.0009, 1000001, '5', true]) {
    const res = await serve.api('POST', base, { url: 'http://127.0.0.1:9/hooks', rate_limit });
    assertError(res, 400, `rate_limit ${rate_limit}`);
    assert.equal(res.json.error.message, message);
  }
  // Boost.JSON reads 0e400 as NaN, and 1e400 as Infinity: neither is a rate.
  for (const number of ['0e400', '-0e999', '1e400']) {
    const res = await serve.api('POST', base, `{"url":"http://127.0.0.1:9/hooks","rate_limit":${number}}`);
    assertError(res, 400, `rate_limit ${number}`);
    assert.equal(res.json.error.message, message);
  }
  const slow = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/hooks', rate_limit: 0.001 });
  assert.equal(slow.rate_limit, 0.001);
  const fast = await serve.api('PATCH', `${base}/${slow.id}`, { rate_limit: 1000000 });
  assert.equal(expectStatus(fast, 200, 'PATCH').rate_limit, 1000000);
});

itest('a name or description with a NUL is refused, as PostgreSQL text cannot hold one', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Names');
  const endpoint = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/hooks', description: 'kept' });
  // PostgreSQL once stored 'keep' for 'keep\0this' and answered 201 with the whole value.
  for (const [method, path, body, field] of [
    ['POST', '/v1/sites', { name: '\u0000' }, 'name'],
    ['PATCH', `/v1/sites/${site.id}`, { name: 'x\u0000y' }, 'name'],
    ['POST', `/v1/sites/${site.id}/endpoints`, { url: 'http://127.0.0.1:9/hooks', description: 'keep\u0000this' }, 'description'],
    ['PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { description: 'keep\u0000this' }, 'description'],
  ]) {
    const res = await serve.api(method, path, body);
    assertError(res, 400, `${method} ${path}`);
    assert.equal(res.json.error.message, `field '${field}' must not contain NUL characters`);
  }
  assert.equal(expectStatus(await serve.api('GET', `/v1/sites/${site.id}`), 200, 'GET site').name, 'Names');
  assert.equal(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 200, 'GET endpoint').description, 'kept');
});

itest('a body that is not JSON is refused with the byte where it stops and why', async (fx) => {
  const serve = await fx.startServe();
  for (const [body, message] of [
    ['{"name":', 'request body is not valid JSON at byte 8: unexpected end of input'],
    ['{"name":"a"} x', 'request body is not valid JSON at byte 13: unexpected data after the JSON value'],
    ["{'name':'a'}", 'request body is not valid JSON at byte 1: syntax error'],
    ['{"name":"\\ud800"}', 'request body is not valid JSON at byte 15: the escape \\ud800 is half of a UTF-16 surrogate pair, and its other half does not follow'],
  ]) {
    const res = await serve.api('POST', '/v1/sites', body);
    assertError(res, 400, body);
    assert.equal(res.json.error.code, 'invalid_json');
    assert.equal(res.json.error.message, message, body);
  }
});

itest('with no PUSHHOOK_ADMIN_TOKEN, an operator token is generated into <data-dir>/admin-token, mode 0600', async (fx) => {
  const serve = await fx.startServe({ adminToken: null });
  const file = path.join(serve.dataDir, 'admin-token');
  await waitFor(() => fs.existsSync(file), { what: file });
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const token = fs.readFileSync(file, 'utf8').trim();
  assert.ok(token.length >= 16, 'a long enough token');
  expectStatus(await serve.api('GET', '/v1/sites', undefined, token), 200, 'GET /v1/sites with the generated token');
  assert.ok(!serve.stderr.includes(token), 'the token is never logged');
  assert.ok(serve.stderr.includes('admin-token'), 'the log says where the token is');
});

itest('a PUSHHOOK_ADMIN_TOKEN short enough to guess is warned about at start, never logged; one with a space is refused', async (fx) => {
  const short = await fx.startServe({ adminToken: 'Op3rator' });
  expectStatus(await short.api('GET', '/v1/sites'), 200, 'the short token still works');
  const warning = short.stderr.split('\n').filter((line) => line.includes('short enough to guess'));
  assert.equal(warning.length, 1, short.stderr);
  assert.equal(JSON.parse(warning[0]).level, 'warn');
  assert.equal(JSON.parse(warning[0]).length, '8');
  assert.ok(!short.stderr.includes('Op3rator'), 'the token is never logged');
  const long = await fx.startServe();
  assert.ok(!long.stderr.includes('short enough to guess'), 'a long token is not warned about');
  const spaced = fx.spawn(['serve', '--listen', '127.0.0.1:0', '--data-dir', fx.tempDir('pushhook-spaced-')],
    { name: 'serve with a spaced token', env: { PUSHHOOK_ADMIN_TOKEN: 'has space' } });
  assert.equal((await spaced.exited).code, 2, spaced.stderr);
  assert.match(spaced.stderr, /PUSHHOOK_ADMIN_TOKEN: admin_token must not hold spaces or control characters/);
});

itest('an endpoint disabled at creation says why, as one disabled by PATCH does', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Reasons');
  const created = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/off', enabled: false });
  assert.equal(created.enabled, false);
  assert.equal(created.disabled_reason, 'disabled through the admin API');
  const on = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/on' });
  assert.equal(on.disabled_reason, null, 'an enabled endpoint has no reason');
  const patched = expectStatus(
    await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${on.id}`, { enabled: false }), 200, 'PATCH');
  assert.equal(patched.disabled_reason, created.disabled_reason);
});

// A misspelt filter must not answer as if there were none: ?state=failed listing every message,
// ?campaign=… counting every campaign.
itest('the routes that filter refuse a query parameter they do not know, naming it and those they take', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Filters');
  const endpoint = await serve.createEndpoint(site.id, { url: 'http://127.0.0.1:9/hooks' });
  const cases = [
    [`/v1/sites/${site.id}/messages?state=failed`,
      "unknown query parameter 'state'; this route takes endpoint, status, cid, batch, limit and cursor"],
    [`/v1/sites/${site.id}/stats?cid=1&campaign=1`,
      "unknown query parameter 'campaign'; this route takes cid, reference_id, from, to, bucket and group_by"],
    [`/v1/sites/${site.id}/campaigns?search=x`,
      "unknown query parameter 'search'; this route takes q, sort, order, limit and cursor"],
    [`/v1/sites/${site.id}/endpoints/${endpoint.id}/stats?from=0`,
      "unknown query parameter 'from'; this route takes since"],
  ];
  for (const [url, message] of cases) {
    const answer = await serve.api('GET', url);
    assert.equal(answer.status, 400, url);
    assert.deepEqual(answer.json.error, { code: 'invalid_request', message }, url);
  }
  // What they take is taken.
  for (const url of [`/v1/sites/${site.id}/messages?status=failed&limit=5&cid=1&endpoint=${endpoint.id}&batch=&cursor=`,
    `/v1/sites/${site.id}/stats?cid=1&reference_id=2&from=0&to=1&bucket=day&group_by=button`,
    `/v1/sites/${site.id}/campaigns?q=x&sort=views&order=desc&limit=5`,
    `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats?since=0`]) {
    expectStatus(await serve.api('GET', url), 200, url);
  }
  // An endpoint's ?since= is refused as the reporting routes refuse a time, saying what came.
  const since = (text) => `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats?since=${encodeURIComponent(text)}`;
  for (const text of ['yesterday', '253402300800000', '1.5', '9999-12-31T23:59:59.999-23:59']) {
    const refused = await serve.api('GET', since(text));
    assert.equal(refused.status, 400, text);
    assert.equal(refused.json.error.message,
      `since must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '${text}'`);
  }
  const counted = expectStatus(await serve.api('GET', since('2026-12-07T10:30:00+01:00')), 200, 'since as RFC 3339');
  assert.equal(counted.since, '2026-12-07T09:00:00.000Z', 'taken back to its hour, in UTC');
});
