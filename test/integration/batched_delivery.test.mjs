// DESIGN section 1, batches: an endpoint with `batch: {max_events, max_wait_ms}` gets its events
// as one compact JSON array per request, signed once, under the batch's own webhook-id (bat_…);
// batches fill across ingest requests, wait at most max_wait_ms, are retried whole, survive
// kill -9 with the same members under the same id, and a redelivered message goes alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import {
  expectStatus, itest, listItems, makeEvent, payloadFor, request, sleep, stop, waitFor, webhookHeaders,
} from '../helpers/harness.mjs';
import { slow, startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';

const eventsOf = (n, prefix, from = 0) =>
  Array.from({ length: n }, (_, i) => makeEvent(from + i, { event_id: `${prefix}-${from + i}` }));

itest('batches: one signed array per request, filled across ingests, verified by standardwebhooks and svix@1', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Batches');
  const endpoint = await serve.createEndpoint(site.id, {
    url: `${recorder.url}/batch`, batch: { max_events: 5, max_wait_ms: 60_000 },
  });
  assert.deepEqual(endpoint.batch, { max_events: 5, max_wait_ms: 60_000 });

  // Two requests, 2 and 3 events: one batch of 5, in ingest order.
  const events = eventsOf(5, 'b');
  expectStatus(await serve.ingest(site.ingest_key, events.slice(0, 2)), 202, 'first ingest');
  await sleep(300);
  assert.equal(recorder.requests.length, 0, 'a batch of 2 waits for more (max_wait_ms is a minute)');
  // Waiting for it to fill, each says when it goes at the latest: max_wait_ms after it came.
  const waiting = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'messages'));
  assert.equal(waiting.length, 2);
  for (const m of waiting) {
    assert.equal(Date.parse(m.next_attempt_at) - Date.parse(m.created_at), 60_000, JSON.stringify(m));
    const one = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${m.id}`), 200, 'message');
    assert.equal(one.next_attempt_at, m.next_attempt_at);
  }
  expectStatus(await serve.ingest(site.ingest_key, events.slice(2)), 202, 'second ingest');
  await waitFor(() => recorder.requests.length >= 1, { what: 'the batch' });
  const [delivery] = recorder.requests;
  assert.equal(delivery.headers['content-type'], 'application/json');
  const headers = webhookHeaders(delivery);
  assert.match(headers['webhook-id'], /^bat_[A-Za-z0-9]+$/);
  assert.equal(delivery.body, `[${events.map((e) => payloadFor(e)).join(',')}]`, 'the compact array, in ingest order');
  const expected = events.map((e) => JSON.parse(payloadFor(e)));
  assert.deepEqual(new StandardWebhook(endpoint.secret).verify(delivery.body, headers), expected);
  assert.deepEqual(new SvixWebhook(endpoint.secret).verify(delivery.body, headers), expected);
  assert.throws(() => new StandardWebhook(endpoint.secret).verify(delivery.body.replace('cookie-000000', 'cookie-000009'), headers));

  // The message log: one message per event, each with the batch it went in.
  const log = await waitFor(async () => {
    const page = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'messages'));
    return page.length === 5 && page.every((m) => m.status === 'delivered') && page;
  }, { what: 'five delivered messages' });
  for (const m of log) assert.equal(m.batch_id, headers['webhook-id']);
  // The endpoint's statistics count requests: one batch is one attempt.
  const stats = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats`), 200, 'endpoint stats');
  assert.equal(stats.attempts, 1, JSON.stringify(stats));
  assert.equal(stats.successes, 1, JSON.stringify(stats));

  // Redeliver one: it goes alone, as a single object under its own message id.
  const one = log.find((m) => m.event.cookie_id === events[3].cookie_id);
  expectStatus(await serve.api('POST', `/v1/sites/${site.id}/messages/${one.id}/redeliver`), 202, 'redeliver');
  await waitFor(() => recorder.requests.length >= 2, { what: 'the redelivery' });
  const alone = recorder.requests[1];
  assert.equal(alone.headers['webhook-id'], one.id);
  assert.equal(alone.body, payloadFor(events[3]));
  assert.deepEqual(new StandardWebhook(endpoint.secret).verify(alone.body, webhookHeaders(alone)), expected[3]);
  // Its attempts say which request each went in; the message still shows the batch it went in
  // (DESIGN section 1), in the log and on its own.
  const attempts = await waitFor(async () => {
    const list = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${one.id}/attempts`), 200, 'attempts'));
    return list.length === 2 && list;
  }, { what: 'two attempts' });
  assert.deepEqual(attempts.map((a) => a.batch_id), [headers['webhook-id'], null]);
  const after = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${one.id}`), 200, 'the message');
  assert.equal(after.status, 'delivered');
  assert.equal(after.batch_id, headers['webhook-id'], 'sent alone since, it still shows the batch it went in');
  const listed = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'messages'));
  assert.deepEqual(listed.map((m) => m.batch_id), log.map(() => headers['webhook-id']));
  // A receiver's webhook-id of a batch finds the messages it carried, the one sent alone since
  // too; a message's id, or another server's batch id, is refused as no batch id.
  const carried = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?batch=${headers['webhook-id']}`), 200, 'messages of the batch'));
  assert.deepEqual(carried.map((m) => m.id), log.map((m) => m.id));
  for (const bad of [one.id, 'bat_elsewhere1', `${headers['webhook-id']}x`]) {
    const refused = await serve.api('GET', `/v1/sites/${site.id}/messages?batch=${bad}`);
    assert.equal(refused.status, 400, bad);
    assert.equal(refused.json.error.message, 'batch is not a batch id this server gave (bat_…)');
  }

  // pushhook receive stores each element of the batch once, however often it arrives.
  const receive = await fx.startReceive({ secret: endpoint.secret });
  for (let i = 0; i < 2; i += 1) {
    const res = await request(receive.url, 'POST', '/batch', {
      body: delivery.body, headers: { ...headers, 'content-type': 'application/json' },
    });
    assert.equal(res.status, 204, `receive answered ${res.status} ${res.text}`);
  }
  await waitFor(() => {
    try {
      return readFileSync(receive.out, 'utf8').trim().split('\n').length === 5;
    } catch {
      return false;
    }
  }, { what: 'five stored elements' });
  await sleep(200);
  const stored = readFileSync(receive.out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(stored.length, 5, 'each element once');

  // The test send reaches a batching endpoint as its batches do: an array (of one).
  const tested = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'POST test');
  assert.equal(tested.success, true);
  assert.equal(recorder.requests.length, 3);
  const test = recorder.requests[2];
  assert.match(test.headers['webhook-id'], /^bat_test_[A-Za-z0-9]+$/);
  assert.equal(tested.webhook_id, test.headers['webhook-id']);
  const [sample, ...more] = new StandardWebhook(endpoint.secret).verify(test.body, webhookHeaders(test));
  assert.equal(more.length, 0, test.body);
  assert.equal(sample.cid, 'test');

  // PATCH batch null: one event per request again, and so is the test send.
  const off = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { batch: null }), 200, 'PATCH batch null');
  assert.equal(off.batch, null);
  const single = makeEvent(99, { event_id: 'b-99' });
  expectStatus(await serve.ingest(site.ingest_key, single), 202, 'ingest after PATCH');
  await waitFor(() => recorder.requests.length >= 4, { what: 'the single delivery' });
  assert.equal(recorder.requests[3].body, payloadFor(single));
  assert.match(recorder.requests[3].headers['webhook-id'], /^msg_/);
  expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'POST test unbatched');
  assert.equal(JSON.parse(recorder.requests[4].body).cid, 'test', 'a single object again');
  assert.match(recorder.requests[4].headers['webhook-id'], /^msg_test_/);
});

itest('batches: the largest batch serve can make reaches pushhook receive, each element as it was sent', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Largest batch');
  // A control character is the costliest byte to send (\u0001 is six): 1,000 events whose
  // title and UTM fields are full of them make a batch of about 14 MB.
  const filler = (n, i) => `${i}`.padEnd(n, '\u0001"');
  const events = Array.from({ length: 1000 }, (_, i) => makeEvent(i, {
    event_id: `big-${i}`,
    notification_title: filler(1024, i),
    ...Object.fromEntries(['utm_campaign', 'utm_content', 'utm_medium', 'utm_source', 'utm_term'].map((k) => [k, filler(256, i)])),
  }));
  // The receiver needs the endpoint's secret: the endpoint is made first, nothing sent yet.
  const endpoint = await serve.createEndpoint(site.id, {
    url: 'http://127.0.0.1:9/big', batch: { max_events: 1000, max_wait_ms: 60_000 },
  });
  const rx = await fx.startReceive({ secret: endpoint.secret });
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { url: `${rx.url}/big` }), 200, 'point at the receiver');
  // 50 events per request keep each ingest under its 1 MiB limit; the batch fills across them.
  for (let i = 0; i < events.length; i += 50) {
    expectStatus(await serve.ingest(site.ingest_key, events.slice(i, i + 50)), 202, `ingest from ${i}`);
  }
  const lines = () => {
    try {
      return readFileSync(rx.out, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  await waitFor(() => lines().length === 1000, { what: '1,000 stored elements', timeoutMs: 30_000 });
  const stored = lines();
  assert.equal(stored[7], payloadFor(events[7]), 'stored as it was signed and sent');
  assert.deepEqual(stored.map((l) => JSON.parse(l).notification_title), events.map((e) => e.notification_title));
  const page = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?limit=5`), 200, 'messages'));
  assert.ok(page.every((m) => m.status === 'delivered' && m.batch_id !== null), JSON.stringify(page.map((m) => [m.status, m.batch_id])));
});

// Receivers often cap a request's body (Express takes 100 KB by default, nginx 1 MB): a batch
// refused with 413 goes again at once in halves until each fits, and later batches start at the
// size that fit, so no event waits on the retry schedule for a limit it can never pass.
itest('batches: a batch refused as too large (413) goes again at once in halves, each event stored once', async (fx) => {
  const serve = await fx.startServe({ retrySchedule: '1h' });
  const site = await serve.createSite('Batch split');
  // Payloads of one length: the receiver takes a batch of 13 and refuses one of 14.
  const round = (from, n) => Array.from({ length: n }, (_, i) => makeEvent(from + i, {
    event_id: `split-${from + i}`, notification_title: `Title ${String(from + i).padStart(4, '0')}`,
  }));
  const first = round(0, 100);
  const length = payloadFor(first[0]).length;
  assert.ok(first.every((e) => payloadFor(e).length === length));
  const limit = 13 * length + 12 + 2;
  const endpoint = await serve.createEndpoint(site.id, {
    url: 'http://127.0.0.1:9/split', batch: { max_events: 100, max_wait_ms: 60_000 },
  });
  const rx = await fx.startReceive({ secret: endpoint.secret, args: ['--max-body-bytes', String(limit)] });
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { url: `${rx.url}/split` }), 200, 'point at the receiver');
  const stored = () => {
    try {
      return readFileSync(rx.out, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const delivered = async (n) => {
    const page = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?limit=${n}`), 200, 'messages'));
    return page.length === n && page.every((m) => m.status === 'delivered') && page;
  };

  // 100 events, one full batch: 100 and 50 are refused, 25 are refused, 13 and 12 are taken.
  expectStatus(await serve.ingest(site.ingest_key, first), 202, 'first ingest');
  await waitFor(() => stored().length >= 100, { what: '100 stored elements' });
  const log = await waitFor(() => delivered(100), { what: '100 delivered messages' });
  await sleep(200);
  assert.deepEqual(stored().sort(), first.map((e) => payloadFor(e)).sort(), 'each event stored once');
  const batches = new Set(log.map((m) => m.batch_id));
  assert.ok(!batches.has(null), 'each went in a batch');
  assert.equal(batches.size, 8, `100 = 4 × 13 + 4 × 12: ${[...batches]}`);
  for (const m of log) assert.equal(m.attempts, 4, '100, 50, 25, then 13 or 12');
  const oldest = log.at(-1);
  const attempts = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${oldest.id}/attempts`), 200, 'attempts'));
  assert.deepEqual(attempts.map((a) => a.status_code), [413, 413, 413, 204]);
  assert.equal(attempts[0].error, 'HTTP 413: the receiver refused a batch of 100 events as too large; they go again at once, as batches of 50 and 50');
  // The batch of 100 that was refused carried them all; the one each was delivered in, 12 or 13.
  const inBatch = async (id) => listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?batch=${id}&limit=250`), 200, 'messages of a batch'));
  assert.equal((await inBatch(attempts[0].batch_id)).length, 100);
  for (const id of batches) {
    const sizes = (await inBatch(id)).filter((m) => m.batch_id === id).length;
    assert.ok(sizes === 12 || sizes === 13, `batch ${id} delivered ${sizes}`);
  }
  const stats = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats`), 200, 'endpoint stats');
  assert.equal(stats.circuit, 'closed', JSON.stringify(stats));

  // The next 104 go in batches of 13 from the start, each in one attempt (and none waits
  // max_wait_ms for more: 104 is 8 × 13).
  const second = round(100, 104);
  expectStatus(await serve.ingest(site.ingest_key, second), 202, 'second ingest');
  const next = await waitFor(async () => {
    const page = await delivered(204);
    return page && page.slice(0, 104);
  }, { what: '204 delivered messages' });
  for (const m of next) assert.equal(m.attempts, 1, JSON.stringify(m));
  assert.equal(new Set(next.map((m) => m.batch_id)).size, 8);
  await waitFor(() => stored().length >= 204, { what: '204 stored elements' });
});

itest('batches: one that does not fill goes after max_wait_ms, not before; max_wait_ms 0 goes at once', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Batch wait');
  const waiting = await serve.createEndpoint(site.id, { url: `${recorder.url}/wait`, batch: { max_events: 100, max_wait_ms: 1_500 } });
  await serve.createEndpoint(site.id, { url: `${recorder.url}/now`, batch: { max_events: 100 } });
  assert.deepEqual(waiting.batch, { max_events: 100, max_wait_ms: 1_500 });
  const events = eventsOf(3, 'w');
  const sentAt = Date.now();
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const ackedAt = Date.now();
  const at = (path) => recorder.requests.filter((r) => r.url === path);
  // Sent alone now as well, a waiting member would reach the receiver under two webhook-ids.
  const pending = listItems(expectStatus(await serve.api('GET',
    `/v1/sites/${site.id}/messages?endpoint=${waiting.id}&limit=1`), 200, 'messages'));
  const refused = await serve.api('POST', `/v1/sites/${site.id}/messages/${pending[0].id}/redeliver`);
  assert.equal(refused.status, 409, refused.text);
  assert.deepEqual(refused.json, { error: { code: 'conflict', message:
    "the message has not been sent yet: it goes in its endpoint's next batch; redeliver it once that batch has been sent" } });
  await waitFor(() => at('/now').length === 1, { what: 'the max_wait_ms 0 batch' });
  assert.ok(at('/now')[0].at - sentAt < 1_000, `max_wait_ms 0 took ${at('/now')[0].at - sentAt} ms`);
  assert.equal(JSON.parse(at('/now')[0].body).length, 3);
  await waitFor(() => at('/wait').length === 1, { what: 'the waiting batch', timeoutMs: 10_000 });
  const waited = at('/wait')[0].at - ackedAt;
  assert.ok(waited >= 1_400, `sent ${waited} ms after the ingest was acknowledged: before max_wait_ms`);
  assert.equal(JSON.parse(at('/wait')[0].body).length, 3, 'as it was when the wait ran out');
  await sleep(300);
  assert.equal(at('/wait').length, 1, 'each message went once');
});

itest('batches: a failing batch is retried whole, same id and body, until a 2xx', async (fx) => {
  const recorder = await fx.startRecorder({ respond: (_, i) => (i < 2 ? 500 : 204) });
  const serve = await fx.startServe({ retrySchedule: '200ms,200ms,200ms' });
  const site = await serve.createSite('Batch retry');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/r`, batch: { max_events: 10 } });
  expectStatus(await serve.ingest(site.ingest_key, eventsOf(4, 'r')), 202, 'ingest');
  // While the batch waits for its retry, one member cannot be taken out of it.
  await waitFor(() => recorder.requests.length >= 1, { what: 'the first attempt' });
  const [waiting] = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?limit=1`), 200, 'messages'));
  const refused = await serve.api('POST', `/v1/sites/${site.id}/messages/${waiting.id}/redeliver`);
  assert.equal(refused.status, 409, refused.text);
  assert.deepEqual(refused.json, { error: { code: 'conflict', message:
    `the message is waiting in batch ${recorder.requests[0].headers['webhook-id']}, which is retried whole; redeliver it once the batch has finished` } });
  const log = await waitFor(async () => {
    const page = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'messages'));
    return page.length === 4 && page.every((m) => m.status === 'delivered') && page;
  }, { what: 'four delivered messages' });
  assert.equal(recorder.requests.length, 3, 'two failures, then the 204');
  const ids = new Set(recorder.requests.map((r) => r.headers['webhook-id']));
  assert.equal(ids.size, 1, `one webhook-id across retries: ${[...ids]}`);
  assert.equal(new Set(recorder.requests.map((r) => r.body)).size, 1, 'the same body each time');
  for (const m of log) assert.equal(m.attempts, 3);
  const attempts = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${log[0].id}/attempts`), 200, 'attempts'));
  assert.deepEqual(attempts.map((a) => a.status_code), [500, 500, 204]);
  assert.deepEqual(attempts.map((a) => a.batch_id), Array(3).fill(recorder.requests[0].headers['webhook-id']));
});

itest('batches: a message sent alone before batching was turned on is retried alone, under its own id', async (fx) => {
  const recorder = await fx.startRecorder({ respond: (_, i) => (i < 2 ? 500 : 204) });
  const serve = await fx.startServe({ retrySchedule: '1s,1s,1s' });
  const site = await serve.createSite('Batch on mid-retry');
  const endpoint = await serve.createEndpoint(site.id, { url: `${recorder.url}/r` });
  const before = eventsOf(2, 'alone');
  expectStatus(await serve.ingest(site.ingest_key, before), 202, 'ingest');
  await waitFor(() => recorder.requests.length >= 2, { what: 'both first attempts, refused' });
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`,
    { batch: { max_events: 5, max_wait_ms: 0 } }), 200, 'turn batching on');
  const after = eventsOf(2, 'batched', 2);
  expectStatus(await serve.ingest(site.ingest_key, after), 202, 'ingest after');
  await waitFor(async () => {
    const page = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'messages'));
    return page.length === 4 && page.every((m) => m.status === 'delivered');
  }, { what: 'four delivered messages' });
  // Each of the first two went twice, each time alone under its msg_ id; the new ones in a batch.
  const byId = new Map();
  for (const r of recorder.requests) byId.set(r.headers['webhook-id'], [...(byId.get(r.headers['webhook-id']) ?? []), r.body]);
  for (const event of before) {
    const sends = [...byId].filter(([, bodies]) => bodies.some((b) => b === payloadFor(event)));
    assert.equal(sends.length, 1, `${event.event_id} under one webhook-id: ${sends.map(([id]) => id)}`);
    assert.match(sends[0][0], /^msg_/);
    assert.equal(sends[0][1].length, 2, 'refused once, then delivered');
  }
  const batches = [...byId.keys()].filter((id) => id.startsWith('bat_'));
  assert.equal(batches.length, 1);
  assert.equal(byId.get(batches[0])[0], `[${after.map((e) => payloadFor(e)).join(',')}]`);
});

itest('batches: every bad batch is a 400 naming what is wrong, and changes nothing', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Bad batches');
  const recorder = await fx.startRecorder();
  const endpoint = await serve.createEndpoint(site.id, { url: `${recorder.url}/h`, batch: { max_events: 7, max_wait_ms: 9 } });
  const shape = 'field \'batch\' must be null or an object {"max_events": 1..1000, "max_wait_ms": 0..60000}';
  const events = 'field \'batch.max_events\' must be an integer from 1 to 1000';
  const wait = 'field \'batch.max_wait_ms\' must be an integer from 0 to 60000';
  // A new endpoint's batch names max_events; a PATCH of a batching one may leave it out (below).
  for (const batch of [{}, { max_wait_ms: 5 }]) {
    const res = await serve.api('POST', `/v1/sites/${site.id}/endpoints`, { url: `${recorder.url}/x`, batch });
    assert.deepEqual([res.status, res.json], [400, { error: { code: 'invalid_request', message: events } }], JSON.stringify(batch));
  }
  const cases = [
    [5, shape], ['on', shape], [true, shape], [[100], shape],
    [{ max_events: 0 }, events], [{ max_events: 1001 }, events],
    [{ max_events: '10' }, events], [{ max_events: 2.5 }, events], [{ max_events: null }, events],
    [{ max_events: 10, max_wait_ms: -1 }, wait], [{ max_events: 10, max_wait_ms: 60_001 }, wait],
    [{ max_events: 10, max_wait_ms: 0.5 }, wait], [{ max_events: 10, max_wait_ms: '1' }, wait],
    [{ max_events: 10, size: 3 }, 'unknown field \'batch.size\': batch takes max_events and max_wait_ms'],
  ];
  for (const [batch, message] of cases) {
    for (const [method, path] of [['POST', `/v1/sites/${site.id}/endpoints`], ['PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`]]) {
      const res = await serve.api(method, path, { url: `${recorder.url}/x`, batch });
      assert.equal(res.status, 400, `${method} batch ${JSON.stringify(batch)}: ${res.status} ${res.text}`);
      assert.deepEqual(res.json, { error: { code: 'invalid_request', message } }, `${method} batch ${JSON.stringify(batch)}`);
    }
  }
  const list = listItems(expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints`), 200, 'endpoints'));
  assert.equal(list.length, 1, 'no endpoint was made');
  assert.deepEqual(list[0].batch, { max_events: 7, max_wait_ms: 9 }, 'nor changed');
  assert.equal(list[0].url, `${recorder.url}/h`);
  // The limits themselves are fine.
  const edge = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`,
    { batch: { max_events: 1000, max_wait_ms: 60_000 } }), 200, 'PATCH at the limits');
  assert.deepEqual(edge.batch, { max_events: 1000, max_wait_ms: 60_000 });

  // A PATCH's batch object merges into the endpoint's: what it leaves out stays as it was.
  const path = `/v1/sites/${site.id}/endpoints/${endpoint.id}`;
  const merges = [
    [{ max_events: 5 }, { max_events: 5, max_wait_ms: 60_000 }],
    [{ max_wait_ms: 0 }, { max_events: 5, max_wait_ms: 0 }],
    [{}, { max_events: 5, max_wait_ms: 0 }],
    [null, null],
  ];
  for (const [batch, expected] of merges) {
    const patched = expectStatus(await serve.api('PATCH', path, { batch }), 200, `PATCH batch ${JSON.stringify(batch)}`);
    assert.deepEqual(patched.batch, expected, `PATCH batch ${JSON.stringify(batch)}`);
  }
  // Off again, there is nothing to merge into: max_events is needed.
  const res = await serve.api('PATCH', path, { batch: { max_wait_ms: 10 } });
  assert.deepEqual([res.status, res.json], [400, { error: { code: 'invalid_request', message: events } }]);
});

// Under continuous ingest into a batching endpoint whose receiver is slow (so batches are in
// flight), kill -9 the server three times and restart it on the same data: every acknowledged
// event reaches the receiver, and de-duplicated by webhook-id + index each is seen exactly once.
// Kills serve three times while events stream in and batches are out, then checks that every
// acknowledged event reached the receiver and that each (webhook-id, index) the receiver took
// (answered other than `refused`) always carried the same event.
async function killNineWithBatchesInFlight(fx, t, { behaviour, refused = () => false }) {
  const rx = await startMisbehavingReceiver({ behaviour, t });
  const opts = { retrySchedule: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms' };
  let serve = await fx.startServe(opts);
  const { dataDir, adminToken } = serve;
  const site = await serve.createSite('Batch crash');
  await serve.createEndpoint(site.id, {
    url: `${rx.url}/hooks`, payload_format: 'extended', batch: { max_events: 50, max_wait_ms: 100 }, max_in_flight: 4,
  });
  const posted = new Set();
  const acked = new Set();
  let running = true;
  let n = 0;
  const ingestLoop = (async () => {
    const deadline = Date.now() + 60_000;
    while (running && Date.now() < deadline) {
      const batch = eventsOf(25, 'k', n);
      n += 25;
      for (const e of batch) posted.add(e.event_id);
      for (;;) {
        let answer = null;
        try {
          answer = await request(serve.baseUrl, 'POST', '/v1/events', {
            body: JSON.stringify(batch), headers: { 'content-type': 'application/json', 'x-pushhook-key': site.ingest_key },
          });
        } catch {
          // down: not acknowledged; posted again with the same event_ids
        }
        if (answer?.status === 202) {
          for (const e of batch) acked.add(e.event_id);
          break;
        }
        if (Date.now() > deadline) throw new Error('a request could not be acknowledged');
        await sleep(20);
      }
      await sleep(10);
    }
  })();
  try {
    for (let kill = 0; kill < 3; kill += 1) {
      await sleep(1_200);
      const killed = await stop(serve, 'SIGKILL');
      assert.equal(killed.signal, 'SIGKILL');
      serve = await fx.startServe({ ...opts, dataDir, adminToken });
      t.diagnostic(`kill ${kill + 1}: ${acked.size} acknowledged, ${rx.requests.length} requests received`);
    }
    await sleep(800);
  } finally {
    running = false;
    await ingestLoop;
  }
  assert.ok(acked.size >= 300, `only ${acked.size} events acknowledged`);

  const elements = new Map(); // `${webhook-id}#${index}` -> event_id
  const keysOf = new Map(); // event_id -> Set of keys
  let scanned = 0;
  const scan = () => {
    for (; scanned < rx.requests.length; scanned += 1) {
      const r = rx.requests[scanned];
      if (refused(r)) continue;
      const body = JSON.parse(r.body);
      assert.ok(Array.isArray(body), `a batching endpoint got a single object under ${r.webhookId}`);
      assert.match(r.webhookId, /^bat_/);
      body.forEach((element, index) => {
        const key = `${r.webhookId}#${index}`;
        const known = elements.get(key);
        assert.ok(known === undefined || known === element.event_id, `${key} carried ${known} and then ${element.event_id}`);
        elements.set(key, element.event_id);
        if (!keysOf.has(element.event_id)) keysOf.set(element.event_id, new Set());
        keysOf.get(element.event_id).add(key);
      });
    }
  };
  await waitFor(() => {
    scan();
    for (const id of acked) if (!keysOf.has(id)) return false;
    return true;
  }, { timeoutMs: 40_000, intervalMs: 200, what: `all ${acked.size} acknowledged events delivered` });
  await sleep(800);
  scan();
  const twice = [...keysOf].filter(([, keys]) => keys.size > 1).map(([id, keys]) => `${id}: ${[...keys]}`);
  assert.deepEqual(twice, [], 'events seen under more than one webhook-id + index');
  const unknown = [...keysOf.keys()].filter((id) => !posted.has(id));
  assert.deepEqual(unknown, [], 'events that were never posted');
  const repeats = rx.requests.length - new Set(rx.requests.map((r) => r.webhookId)).size;
  t.diagnostic(`${acked.size} events acknowledged; ${rx.requests.length} requests, ${repeats} of them resends of a batch`);
  return rx;
}

itest('batches: kill -9 with batches in flight loses nothing; by webhook-id + index each event is seen once', { timeout: 100_000 }, async (fx, t) => {
  await killNineWithBatchesInFlight(fx, t, { behaviour: slow(40) });
});

// The same while the receiver refuses every body over 4,000 bytes (about 12 events): batches
// of 50 are split, and the kills fall between a half taken and its sibling sent.
itest('batches: kill -9 while batches refused as too large are split loses nothing; each event seen once', { timeout: 100_000 }, async (fx, t) => {
  const tooLarge = (r) => r.raw.length > 4_000;
  const rx = await killNineWithBatchesInFlight(fx, t, { behaviour: (r) => (tooLarge(r) ? 413 : slow(40)), refused: tooLarge });
  assert.ok(rx.requests.some(tooLarge), 'no batch was refused: the test did not split any');
});
