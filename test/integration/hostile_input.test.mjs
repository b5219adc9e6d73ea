// Issue 4, hostile input: bodies and requests crafted to break the ingest route. Each one gets the
// right 4xx with a JSON error code, none of them stores anything (the message log, the campaign
// statistics and the receiver stay empty), and the server still answers afterwards. Then the
// batch-size limit exactly at its edge: 10,000 events are taken, 10,001 answer 413.
import assert from 'node:assert/strict';
import {
  SAMPLE_EVENT, expectStatus, itest, request, siteWithEndpoint, waitFor,
} from '../helpers/harness.mjs';
import { rawRequest } from '../helpers/raw_http.mjs';

const MAX_BODY = 1 << 20; // the default ingest.max_body_bytes
const MAX_EVENTS = 10_000; // the default batch limit

const valid = (n) => ({ action: 'View', cookie_id: `c${n}`, cid: '1' });
const json = (value) => JSON.stringify(value);
const eventWith = (fieldsJson) => `{"action":"View","cookie_id":"c1","cid":"1",${fieldsJson}}`;

// [name, body, content-type, status, error code, extra check of the answer]
const CASES = [
  ['truncated object', '{"action":"View","cookie_id":"c1","ci', 'application/json', 400, 'invalid_json',
    (a, body) => assert.equal(a.json.error.offset, body.length, 'offset is where the input ended')],
  ['truncated array', `[${json(valid(1))},`, 'application/json', 400, 'invalid_json'],
  ['truncated inside a string escape', '{"action":"View","cookie_id":"\\u00', 'application/json', 400, 'invalid_json'],
  ['10,000 unclosed [', '['.repeat(10_000), 'application/json', 400, 'invalid_json'],
  ['10,000 nested [ ] balanced', `${'['.repeat(10_000)}${']'.repeat(10_000)}`, 'application/json', 400, 'invalid_json',
    (a) => assert.match(a.json.error.message, /nested|deep/i)],
  ['10,000 nested objects inside a field', eventWith(`"utm_term":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`),
    'application/json', 400, 'invalid_json'],
  ['deep nesting on an NDJSON line', `${json(valid(1))}\n${'['.repeat(10_000)}\n`, 'application/x-ndjson', 400, 'invalid_json'],
  ['cid 1e400', '{"action":"View","cookie_id":"c1","cid":1e400}', 'application/json', 400, 'invalid_event',
    (a) => assert.equal(a.json.error.details[0].field, 'cid')],
  ['clicked_button beyond 64 bits', '{"action":"Click","cookie_id":"c1","cid":"1","clicked_button":99999999999999999999999}',
    'application/json', 400, 'invalid_event'],
  ['a 5,000-digit cid', `{"action":"View","cookie_id":"c1","cid":${'9'.repeat(5_000)}}`, 'application/json', 400, 'invalid_event'],
  ['occurred_at 1e300', eventWith('"occurred_at":1e300'), 'application/json', 400, 'invalid_event'],
  ['clicked_button -0.0', '{"action":"View","cookie_id":"c1","cid":"1","clicked_button":-0.0}', 'application/json', 400, 'invalid_event'],
  ['invalid UTF-8 (0xff) in a string', Buffer.concat([Buffer.from('{"action":"View","cookie_id":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('","cid":"1"}')]),
    'application/json', 400, 'invalid_json'],
  ['overlong UTF-8 encoding of "/"', Buffer.concat([Buffer.from('{"action":"View","cookie_id":"a'), Buffer.from([0xc0, 0xaf]), Buffer.from('","cid":"1"}')]),
    'application/json', 400, 'invalid_json'],
  ['UTF-8 encoded surrogate', Buffer.concat([Buffer.from(eventWith('"notification_title":"')), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
    'application/json', 400, 'invalid_json'],
  ['lone surrogate escape', eventWith('"notification_title":"\\ud800"'), 'application/json', 400, 'invalid_json'],
  ['raw NUL inside a string', Buffer.concat([Buffer.from('{"action":"View","cookie_id":"a'), Buffer.from([0]), Buffer.from('b","cid":"1"}')]),
    'application/json', 400, 'invalid_json'],
  ['raw NUL between tokens', Buffer.concat([Buffer.from(json(valid(1))), Buffer.from([0])]), 'application/json', 400, 'invalid_json'],
  ['\\u0000 in cookie_id', '{"action":"View","cookie_id":"a\\u0000b","cid":"1"}', 'application/json', 400, 'invalid_event',
    (a) => assert.equal(a.json.error.details[0].field, 'cookie_id')],
  ['\\u0000 in notification_title', eventWith('"notification_title":"x\\u0000"'), 'application/json', 400, 'invalid_event'],
  ['duplicate key', '{"action":"View","action":"Click","cookie_id":"c1","cid":"1","clicked_button":1}', 'application/json', 400, 'invalid_event',
    (a) => assert.equal(a.json.error.details[0].field, 'action')],
  ['duplicate key with the same value', '{"action":"View","cookie_id":"c1","cookie_id":"c1","cid":"1"}', 'application/json', 400, 'invalid_event'],
  ['one bad event at the end of a batch of 500', json([...Array.from({ length: 499 }, (_, i) => valid(i)), { ...valid(499), cid: null }]),
    'application/json', 400, 'invalid_event', (a) => assert.deepEqual(a.json.error.details.map((d) => d.index), [499])],
  ['a bad NDJSON line after good ones', `${json(valid(1))}\n${json(valid(2))}\n{"action":"View"}\n`, 'application/x-ndjson', 400, 'invalid_event'],
  ['JSON that is not an event', '"just a string"', 'application/json', 400, 'invalid_event'],
  ['an empty body', '', 'application/json', 400, 'invalid_json', (a) => assert.equal(a.json.error.offset, 0)],
  ['a body of whitespace', ' \n ', 'application/json', 400, 'invalid_json', (a) => assert.equal(a.json.error.offset, 3)],
  ['an empty array', '[]', 'application/json', 400, 'invalid_event',
    (a) => assert.equal(a.json.error.message, 'body holds no events')],
  ['application/xml', '<event><action>View</action></event>', 'application/xml', 415, 'unsupported_media_type'],
  ['multipart/form-data', '--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n', 'multipart/form-data; boundary=x', 415, 'unsupported_media_type'],
  ['application/x-www-form-urlencoded', 'action=View&cookie_id=c1&cid=1', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
  ['a valid event under a wrong type', json(SAMPLE_EVENT), 'text/html', 415, 'unsupported_media_type'],
  ['10,001 events', json(Array.from({ length: MAX_EVENTS + 1 }, (_, i) => valid(i))), 'application/json', 413, 'too_many_events'],
];

async function totals(serve, siteId) {
  const stats = expectStatus(await serve.api('GET', `/v1/sites/${siteId}/stats`), 200, 'GET stats');
  return stats.totals;
}

async function messages(serve, siteId) {
  return expectStatus(await serve.api('GET', `/v1/sites/${siteId}/messages?limit=100`), 200, 'GET messages').data;
}

async function healthy(serve) {
  return (await request(serve.baseUrl, 'GET', '/healthz')).status === 200;
}

function assertJsonError(answer, status, code, what) {
  assert.equal(answer.status, status, `${what}: ${answer.status} ${answer.text?.slice(0, 300)}`);
  assert.equal(typeof answer.json?.error?.code, 'string', `${what}: no JSON error code in ${answer.text?.slice(0, 300)}`);
  if (code) assert.equal(answer.json.error.code, code, `${what}: ${answer.text.slice(0, 300)}`);
  assert.equal(typeof answer.json.error.message, 'string');
}

itest('hostile bodies, headers and sizes: the right 4xx, nothing stored, the server stays up', { timeout: 180_000 }, async (fx, t) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const { site, key } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  for (const [name, body, type, status, code, check] of CASES) {
    await t.test(name, async () => {
      const answer = await request(serve.baseUrl, 'POST', '/v1/events', {
        body,
        headers: { 'content-type': type, 'x-pushhook-key': key },
      });
      assertJsonError(answer, status, code, name);
      check?.(answer, body);
    });
  }

  await t.test('a header of 1 MiB: 431 or a closed connection, and the server stays up', async () => {
    const head = [
      'POST /v1/events HTTP/1.1', 'host: 127.0.0.1', `x-pushhook-key: ${key}`, 'content-type: application/json',
      `x-padding: ${'a'.repeat(1 << 20)}`, `content-length: ${json(SAMPLE_EVENT).length}`,
    ].join('\r\n');
    const answer = await rawRequest(serve.port, head, json(SAMPLE_EVENT));
    t.diagnostic(`1 MiB header: ${answer.status ?? `no answer, connection ${answer.error}`}`);
    if (answer.status !== null) {
      assertJsonError(answer, 431, null, '1 MiB header');
    } else {
      assert.ok(['reset', 'closed', 'EPIPE'].includes(answer.error), `the connection ended with ${answer.error}`);
    }
    assert.ok(await healthy(serve));
  });

  await t.test('1 MiB of header lines (10,000 small headers): 431 or a closed connection', async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `x-h${i}: ${'b'.repeat(100)}`);
    const head = ['POST /v1/events HTTP/1.1', 'host: 127.0.0.1', `x-pushhook-key: ${key}`, ...lines, 'content-length: 2'].join('\r\n');
    const answer = await rawRequest(serve.port, head, '{}');
    if (answer.status !== null) assertJsonError(answer, 431, null, '10,000 headers');
    assert.ok(await healthy(serve));
  });

  await t.test('a body over the limit, with content-length: 413 before it is read', async () => {
    const body = Buffer.alloc(MAX_BODY + 1, 0x20);
    const head = ['POST /v1/events HTTP/1.1', 'host: 127.0.0.1', `x-pushhook-key: ${key}`,
      'content-type: application/json', `content-length: ${body.length}`].join('\r\n');
    const answer = await rawRequest(serve.port, head, body);
    assertJsonError(answer, 413, null, 'body over the limit');
  });

  await t.test('a body over the limit, chunked: 413', async () => {
    const events = json(Array.from({ length: 30_000 }, (_, i) => valid(i)));
    assert.ok(events.length > MAX_BODY);
    const chunks = [];
    for (let i = 0; i < events.length; i += 64 * 1024) {
      const part = events.slice(i, i + 64 * 1024);
      chunks.push(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
    }
    chunks.push('0\r\n\r\n');
    const head = ['POST /v1/events HTTP/1.1', 'host: 127.0.0.1', `x-pushhook-key: ${key}`,
      'content-type: application/json', 'transfer-encoding: chunked'].join('\r\n');
    const answer = await rawRequest(serve.port, head, chunks.join(''));
    assertJsonError(answer, 413, null, 'chunked body over the limit');
  });

  await t.test('a content-length the body never reaches does not store a prefix', async () => {
    const body = json(SAMPLE_EVENT);
    const head = ['POST /v1/events HTTP/1.1', 'host: 127.0.0.1', `x-pushhook-key: ${key}`,
      'content-type: application/json', `content-length: ${body.length + 100}`].join('\r\n');
    // We half-close nothing and send less than announced; the server must not treat it as a body.
    const answer = await rawRequest(serve.port, head, body, { timeoutMs: 1_500 });
    assert.notEqual(answer.status, 202, 'a short body was accepted');
  });

  await t.test('nothing of it was stored or sent', async () => {
    assert.ok(await healthy(serve), '/healthz answers');
    assert.deepEqual(await messages(serve, site.id), [], 'the message log is empty');
    const before = await totals(serve, site.id);
    assert.equal(before.views, 0);
    assert.equal(before.clicks, 0);
    assert.equal(before.unique_subscribers, 0);
    // A valid event now goes through on its own: the pipeline is live and nothing queued before it.
    assert.deepEqual(expectStatus(await serve.ingest(key, SAMPLE_EVENT), 202, 'valid event'), { accepted: 1, duplicates: 0 });
    await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery of the valid event' });
    assert.equal(recorder.requests.length, 1, 'only the valid event was delivered');
    assert.deepEqual(JSON.parse(recorder.requests[0].body), SAMPLE_EVENT);
    assert.equal((await messages(serve, site.id)).length, 1);
    const after = await totals(serve, site.id);
    assert.equal(after.views, 0);
    assert.equal(after.clicks, 1);
  });
});

itest('10,000 events in one batch are accepted, 10,001 answer 413 and store nothing', { timeout: 180_000 }, async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Big batches');
  const batch = (n, offset) => json(Array.from({ length: n }, (_, i) => valid(offset + i)));

  const tooMany = await serve.ingest(site.ingest_key, batch(MAX_EVENTS + 1, 0));
  assertJsonError(tooMany, 413, 'too_many_events', '10,001 events');
  assert.equal((await totals(serve, site.id)).views, 0);

  const body = batch(MAX_EVENTS, 100_000);
  assert.ok(body.length < MAX_BODY, 'the batch fits the body limit, so only the count is tested');
  const accepted = expectStatus(await serve.ingest(site.ingest_key, body), 202, '10,000 events');
  assert.deepEqual(accepted, { accepted: MAX_EVENTS, duplicates: 0 });
  assert.equal((await totals(serve, site.id)).views, MAX_EVENTS);

  // And the same limit for NDJSON.
  const ndjson = Array.from({ length: MAX_EVENTS + 1 }, (_, i) => json(valid(200_000 + i))).join('\n');
  const tooManyLines = await serve.ingest(site.ingest_key, ndjson, { 'content-type': 'application/x-ndjson' });
  assertJsonError(tooManyLines, 413, 'too_many_events', '10,001 NDJSON lines');
  assert.equal((await totals(serve, site.id)).views, MAX_EVENTS);
  assert.ok(await healthy(serve));
});
