// DESIGN section 2: the ingest key (header or query), and CORS for browsers' service workers.
import assert from 'node:assert/strict';
import { SAMPLE_EVENT, expectStatus, itest, request } from '../helpers/harness.mjs';

const ORIGIN = 'https://shop.example';

itest('ingest authentication and CORS', async (fx, t) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Ingest auth');
  const other = await serve.createSite('Other');
  const body = JSON.stringify(SAMPLE_EVENT);
  const post = (urlPath, headers) => request(serve.baseUrl, 'POST', urlPath, { body, headers });

  await t.test('no key answers 401', async () => {
    const res = await post('/v1/events', { 'content-type': 'application/json' });
    assert.equal(res.status, 401);
    assert.equal(typeof res.json?.error?.code, 'string', res.text);
  });

  await t.test('a wrong key answers 401', async () => {
    const res = await post('/v1/events', { 'content-type': 'application/json', 'x-pushhook-key': 'nope' });
    assert.equal(res.status, 401);
    assert.equal(typeof res.json?.error?.code, 'string', res.text);
    const inQuery = await post('/v1/events?key=nope', { 'content-type': 'application/json' });
    assert.equal(inQuery.status, 401);
  });

  await t.test('the operator token is not an ingest key', async () => {
    const res = await post('/v1/events', { 'content-type': 'application/json', 'x-pushhook-key': serve.adminToken });
    assert.equal(res.status, 401);
  });

  await t.test('the key in the header works', async () => {
    const res = await post('/v1/events', { 'content-type': 'application/json', 'x-pushhook-key': site.ingest_key });
    assert.deepEqual(expectStatus(res, 202, 'header key'), { accepted: 1, duplicates: 0 });
  });

  await t.test('the key in the query works', async () => {
    const res = await post(`/v1/events?key=${encodeURIComponent(site.ingest_key)}`, { 'content-type': 'application/json' });
    assert.deepEqual(expectStatus(res, 202, 'query key'), { accepted: 1, duplicates: 0 });
  });

  await t.test('two different keys answer 401 and store nothing; the same key twice is fine', async () => {
    // An event_id tells afterwards whether the refused request stored the event anywhere.
    const tagged = JSON.stringify({ ...SAMPLE_EVENT, event_id: 'two-keys' });
    const send = (urlPath, headers) =>
      request(serve.baseUrl, 'POST', urlPath, { body: tagged, headers: { 'content-type': 'application/json', ...headers } });
    const res = await send(`/v1/events?key=${encodeURIComponent(site.ingest_key)}`, { 'x-pushhook-key': other.ingest_key });
    assert.equal(res.status, 401);
    assert.deepEqual(res.json, { error: { code: 'unauthorized',
      message: 'two different ingest keys: the x-pushhook-key header and ?key= must agree, or send one' } });
    for (const s of [other, site]) {
      const stored = await send('/v1/events', { 'x-pushhook-key': s.ingest_key });
      assert.deepEqual(expectStatus(stored, 202, s.name), { accepted: 1, duplicates: 0 }, `${s.name} had not stored it`);
    }
    const same = await send(`/v1/events?key=${encodeURIComponent(site.ingest_key)}`, { 'x-pushhook-key': site.ingest_key });
    assert.deepEqual(expectStatus(same, 202, 'the same key twice'), { accepted: 0, duplicates: 1 });
  });

  await t.test('another site\'s key is accepted for that site only', async () => {
    const res = await post('/v1/events', { 'content-type': 'application/json', 'x-pushhook-key': other.ingest_key });
    assert.deepEqual(expectStatus(res, 202, 'other site key'), { accepted: 1, duplicates: 0 });
  });

  await t.test('a text/plain JSON body with the key in the query is accepted (CORS-simple request)', async () => {
    const res = await post(`/v1/events?key=${encodeURIComponent(site.ingest_key)}`, {
      'content-type': 'text/plain;charset=UTF-8',
      origin: ORIGIN,
    });
    assert.deepEqual(expectStatus(res, 202, 'text/plain'), { accepted: 1, duplicates: 0 });
  });

  await t.test('OPTIONS preflight answers 204 with the CORS headers', async () => {
    const res = await request(serve.baseUrl, 'OPTIONS', '/v1/events', {
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, x-pushhook-key',
      },
    });
    assert.equal(res.status, 204);
    const allowOrigin = res.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `access-control-allow-origin: ${allowOrigin}`);
    const allowHeaders = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    assert.ok(allowHeaders === '*' || allowHeaders.split(/\s*,\s*/).includes('x-pushhook-key'), `allow-headers: ${allowHeaders}`);
    assert.ok(allowHeaders === '*' || allowHeaders.split(/\s*,\s*/).includes('content-type'), `allow-headers: ${allowHeaders}`);
    const allowMethods = (res.headers.get('access-control-allow-methods') ?? 'POST').toUpperCase();
    assert.ok(allowMethods.includes('POST'), `allow-methods: ${allowMethods}`);
  });

  await t.test('a cross-origin POST answer carries access-control-allow-origin', async () => {
    const res = await post('/v1/events', {
      'content-type': 'application/json',
      'x-pushhook-key': site.ingest_key,
      origin: ORIGIN,
    });
    expectStatus(res, 202, 'cross-origin POST');
    const allowOrigin = res.headers.get('access-control-allow-origin');
    assert.ok(allowOrigin === '*' || allowOrigin === ORIGIN, `access-control-allow-origin: ${allowOrigin}`);
  });
});
