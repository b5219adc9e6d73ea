// DESIGN sections 3, 4 and 7 (issue 3): the operational routes of the delivery log and the limits
// that keep the server standing. The message log's filters and cursor paging; the attempts route;
// replay of a time window (and of one campaign or run); the test route; endpoint stats; retention
// purging old messages; back-pressure on ingest while the backlog is over --max-backlog.
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { expectStatus, itest, makeEvent, siteWithEndpoint, sleep, waitFor, webhookHeaders } from '../helpers/harness.mjs';
import {
  allMessages, getAttempts, getMessage, getStats, listMessages, waitForMessageStatus,
} from '../helpers/delivery_api.mjs';
import { hang, slow, startMisbehavingReceiver, status } from '../helpers/misbehaving_receiver.mjs';

// Ingests `events` (all must be accepted) and returns the answer.
async function ingest(serve, key, events) {
  const answer = expectStatus(await serve.ingest(key, events), 202, 'POST /v1/events');
  assert.equal(answer.accepted, events.length);
  return answer;
}

const count = async (serve, siteId, params) => (await allMessages(serve, siteId, { ...params, limit: 250 })).length;

itest('message log: filters by endpoint, status and cid; cursor paging is stable under new events', async (fx, t) => {
  const good = await startMisbehavingReceiver({ behaviour: 204, t });
  const bad = await startMisbehavingReceiver({ behaviour: 500, t });
  const hung = await startMisbehavingReceiver({ behaviour: hang(), t });
  const serve = await fx.startServe({
    retrySchedule: '100ms',
    args: ['--circuit-threshold', '10000', '--delivery-timeout', '60s', '--shutdown-grace', '500ms'],
  });
  const site = await serve.createSite('Log');
  const epGood = await serve.createEndpoint(site.id, { url: `${good.url}/a` });
  const epBad = await serve.createEndpoint(site.id, { url: `${bad.url}/b` });
  const epHung = await serve.createEndpoint(site.id, { url: `${hung.url}/c` });

  const events = Array.from({ length: 30 }, (_, i) => makeEvent(i, { cid: i % 2 === 0 ? 'c-even' : 'c-odd' }));
  await ingest(serve, site.ingest_key, events);

  await waitFor(
    async () => (await count(serve, site.id, { status: 'delivered' })) === 30 &&
      (await count(serve, site.id, { status: 'failed' })) === 30,
    { timeoutMs: 20_000, intervalMs: 200, what: '30 delivered and 30 failed' },
  );
  await waitFor(() => hung.requests.length === 16, { timeoutMs: 10_000, what: '16 hung requests (max_in_flight)' });

  const delivered = await allMessages(serve, site.id, { status: 'delivered' });
  assert.ok(delivered.every((m) => m.endpoint_id === epGood.id && m.status === 'delivered' && m.attempts === 1));
  const failed = await allMessages(serve, site.id, { status: 'failed' });
  assert.ok(failed.every((m) => m.endpoint_id === epBad.id && m.status === 'failed' && m.attempts === 2));
  assert.ok(failed.every((m) => m.last_status_code === 500 && m.next_attempt_at === null));
  const pending = await allMessages(serve, site.id, { status: 'pending' });
  assert.equal(pending.length, 30);
  assert.ok(pending.every((m) => m.endpoint_id === epHung.id && m.status === 'pending'));

  assert.equal(await count(serve, site.id, { endpoint: epBad.id }), 30);
  assert.equal(await count(serve, site.id, { endpoint: epBad.id, status: 'delivered' }), 0);
  const odd = await allMessages(serve, site.id, { cid: 'c-odd' });
  assert.equal(odd.length, 45, 'three endpoints × 15 events of campaign c-odd');
  assert.ok(odd.every((m) => m.event.cid === 'c-odd'));
  const oddGood = await allMessages(serve, site.id, { cid: 'c-odd', endpoint: epGood.id, status: 'delivered' });
  assert.deepEqual(
    oddGood.map((m) => m.event.cookie_id).sort(),
    events.filter((e) => e.cid === 'c-odd').map((e) => e.cookie_id).sort(),
  );
  assert.equal(await count(serve, site.id, { cid: 'no-such-campaign' }), 0);

  // Cursor paging: pages of 7, newest first, no repeats, no gaps, even when new messages arrive
  // between pages.
  const whole = await allMessages(serve, site.id, { endpoint: epGood.id, limit: 250 });
  assert.equal(whole.length, 30);
  const pages = [];
  let cursor;
  for (let i = 0; i < 10; i += 1) {
    const page = await listMessages(serve, site.id, { endpoint: epGood.id, limit: 7, cursor });
    pages.push(page.data);
    if (i === 0) await ingest(serve, site.ingest_key, [makeEvent(100), makeEvent(101)]);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  assert.deepEqual(pages.map((p) => p.length), [7, 7, 7, 7, 2]);
  // A last page that is full says that it is the last: no empty page after it.
  const exact = await listMessages(serve, site.id, { endpoint: epGood.id, limit: 2, cursor: pages[3].at(-1).id });
  assert.equal(exact.data.length, 2);
  assert.equal(exact.next_cursor, null, 'the last page, full, has no next_cursor');
  const paged = pages.flat().map((m) => m.id);
  assert.deepEqual(paged, whole.map((m) => m.id), 'the pages, end to end, are the log as it was');
  const created = pages.flat().map((m) => Date.parse(m.created_at));
  for (let i = 1; i < created.length; i += 1) assert.ok(created[i] <= created[i - 1], 'newest first');

  const limits = 'limit must be an integer from 1 to 250';
  for (const [bad, message] of [['status=bogus', 'status must be pending, delivered or failed'], ['limit=0', limits],
    ['limit=251', limits], ['limit=%205', limits], ['limit=5x', limits], ['cursor=not-a-cursor', 'cursor is not one this server gave'],
    ['cid=50%off', "query parameter 'cid' is not percent-encoded UTF-8 text (a % is written %25)"]]) {
    const answer = await serve.api('GET', `/v1/sites/${site.id}/messages?${bad}`);
    assert.equal(answer.status, 400, `?${bad} answered ${answer.status}`);
    assert.equal(answer.json?.error?.code, 'invalid_request', `?${bad}`);
    assert.equal(answer.json?.error?.message, message, `?${bad}`);
  }
  // An endpoint filter names one of the site's endpoints: a mistyped id, or another site's, is
  // not an endpoint without messages.
  const other = await serve.createSite('other');
  const othersEndpoint = await serve.createEndpoint(other.id, { url: 'http://127.0.0.1:9/x' });
  for (const id of ['ep_nope', othersEndpoint.id]) {
    const answer = await serve.api('GET', `/v1/sites/${site.id}/messages?endpoint=${id}`);
    assert.equal(answer.status, 404, `?endpoint=${id}`);
    assert.deepEqual(answer.json, { error: { code: 'not_found', message: `endpoint ${id} not found` } });
  }
});

itest('attempts route: status, latency, error and the first 1 KiB of the response body', async (fx, t) => {
  const bigBody = Array.from({ length: 320 }, (_, i) => `${String(i).padStart(15, '0')}|`).join(''); // 5 KiB
  assert.equal(bigBody.length, 5_120);
  const rx = await startMisbehavingReceiver({
    behaviour: (_r, i) => (i === 0 ? slow(150, status(500, { 'content-type': 'text/plain' }, bigBody)) : status(200, {}, 'ok')),
    t,
  });
  const serve = await fx.startServe({ retrySchedule: '200ms' });
  const { site, key } = await siteWithEndpoint(serve, `${rx.url}/hooks`);
  await ingest(serve, key, [makeEvent(1)]);
  const id = (await waitFor(() => rx.requests[0], { what: 'a request' })).webhookId;
  await waitForMessageStatus(serve, site.id, id, 'delivered');

  const attempts = await getAttempts(serve, site.id, id);
  assert.equal(attempts.length, 2);
  const [first, second] = attempts;
  assert.equal(first.attempt, 1);
  assert.equal(first.status_code, 500);
  assert.ok(first.latency_ms >= 150, `latency ${first.latency_ms} ms < the receiver's 150 ms delay`);
  assert.ok(first.error.length > 0, 'a 500 is described in the error');
  assert.equal(first.response_body, bigBody.slice(0, 1024), 'the first 1 KiB of the answer, exactly');
  assert.equal(second.attempt, 2);
  assert.equal(second.status_code, 200);
  assert.equal(second.error, '');
  assert.equal(second.response_body, 'ok');
  assert.ok(Date.parse(second.at) >= Date.parse(first.at) + 150, `attempt times ${first.at}, ${second.at}`);

  const unknown = await serve.api('GET', `/v1/sites/${site.id}/messages/msg_nonexistent/attempts`);
  assert.equal(unknown.status, 404);
});

itest('replay re-sends exactly the events of the window (and of one cid or run), with new webhook-ids', async (fx, t) => {
  const rx = await startMisbehavingReceiver({ behaviour: 204, t });
  const other = await startMisbehavingReceiver({ behaviour: 204, t });
  const serve = await fx.startServe();
  const site = await serve.createSite('Replay');
  const ep = await serve.createEndpoint(site.id, { url: `${rx.url}/hooks`, payload_format: 'extended' });
  await serve.createEndpoint(site.id, { url: `${other.url}/hooks` });

  const batch = (from, specs) =>
    specs.map(([cid, run], i) => makeEvent(from + i, { cid, reference_id: run, event_id: `ev-${from + i}` }));
  const b1 = batch(0, [['c1', 'r1'], ['c1', 'r1'], ['c2', 'r1']]);
  const b2 = batch(10, [['c1', 'r2'], ['c2', 'r2']]);
  const b3 = batch(20, [['c2', 'r3'], ['c1', 'r3']]);
  const start = Date.now();
  await ingest(serve, site.ingest_key, b1);
  await sleep(400);
  const since = Date.now();
  await ingest(serve, site.ingest_key, b2);
  const until = Date.now();
  await sleep(400);
  await ingest(serve, site.ingest_key, b3);
  const end = Date.now() + 1_000;
  await waitFor(() => rx.requests.length === 7 && other.requests.length === 7, { what: 'first deliveries' });
  await sleep(300);
  const seenIds = new Set(rx.requests.map((r) => r.webhookId));
  const eventIdsOf = (requests) => requests.map((r) => JSON.parse(r.body).event_id).sort();
  const replay = async (body) =>
    expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${ep.id}/replay`, body), 202, 'POST replay');

  // The middle window, as RFC 3339.
  let before = rx.requests.length;
  const middle = await replay({ since: new Date(since).toISOString(), until: new Date(until).toISOString() });
  assert.equal(middle.replayed, 2);
  await waitFor(() => rx.requests.length >= before + 2, { what: 'the replayed window' });
  await sleep(500);
  let replayed = rx.requests.slice(before);
  assert.deepEqual(eventIdsOf(replayed), ['ev-10', 'ev-11'], 'exactly the events of the window');
  for (const r of replayed) assert.ok(!seenIds.has(r.webhookId), `replay reused webhook-id ${r.webhookId}`);
  for (const r of replayed) seenIds.add(r.webhookId);
  assert.equal(new Set(replayed.map((r) => r.webhookId)).size, 2);

  // All of it, one campaign, as Unix milliseconds.
  before = rx.requests.length;
  const c2 = await replay({ since: start - 1_000, until: end, cid: 'c2' });
  assert.equal(c2.replayed, 3);
  await waitFor(() => rx.requests.length >= before + 3, { what: 'the replayed campaign' });
  await sleep(500);
  replayed = rx.requests.slice(before);
  assert.deepEqual(eventIdsOf(replayed), ['ev-11', 'ev-2', 'ev-20'], 'exactly the events of campaign c2');
  for (const r of replayed) assert.ok(!seenIds.has(r.webhookId), `replay reused webhook-id ${r.webhookId}`);
  for (const r of replayed) seenIds.add(r.webhookId);

  // One run.
  before = rx.requests.length;
  const r3 = await replay({ since: start - 1_000, until: end, reference_id: 'r3' });
  assert.equal(r3.replayed, 2);
  await waitFor(() => rx.requests.length >= before + 2, { what: 'the replayed run' });
  await sleep(500);
  assert.deepEqual(eventIdsOf(rx.requests.slice(before)), ['ev-20', 'ev-21']);

  // An empty window replays nothing; the other endpoint never saw a replay.
  const none = await replay({ since: end + 60_000, until: end + 120_000 });
  assert.equal(none.replayed, 0);
  assert.equal(other.requests.length, 7, 'a replay to one endpoint sends nothing to another');
  // A time it cannot take is refused naming the field and what came, as the reporting routes do.
  for (const [body, message] of [
    [{ since: 'yesterday', until: end }, "field 'since' must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not 'yesterday'"],
    [{ since: start, until: 253402300800000 }, "field 'until' must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '253402300800000'"],
    [{ since: 1.5, until: end }, "field 'since' must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '1.5'"],
    [{ since: true, until: end }, "field 'since' must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not 'true'"],
    [{ since: start, until: '9999-12-31T23:59:59.999-23:59' }, "field 'until' must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '9999-12-31T23:59:59.999-23:59'"],
    [{ until: end }, "field 'since' is required"],
    [{ since: end, until: start }, "'since' must be before 'until'"],
  ]) {
    const bad = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${ep.id}/replay`, body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.message, message);
  }

  // A numeric cid, as ingest takes it.
  await ingest(serve, site.ingest_key, [makeEvent(30, { cid: 42, event_id: 'ev-30' })]);
  await waitFor(() => rx.requests.length >= before + 3, { what: 'the numeric campaign\'s event' });
  before = rx.requests.length;
  const numeric = await replay({ since: start - 1_000, until: Date.now() + 1_000, cid: 42 });
  assert.equal(numeric.replayed, 1);
  await waitFor(() => rx.requests.length >= before + 1, { what: 'the replayed numeric campaign' });
  assert.deepEqual(eventIdsOf(rx.requests.slice(before)), ['ev-30']);
  const mistyped = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${ep.id}/replay`, { since: start, until: end, cid: true });
  assert.equal(mistyped.status, 400);
  assert.equal(mistyped.json.error.message, "field 'cid' must be a string or a number");
  // As ingest takes a cid: an integer as its digits (another number may have been rounded when
  // read), never empty.
  for (const [cid, message] of [
    [1.5, "field 'cid' is a number with a fraction, an exponent or more than 64 bits, which may have been rounded when read: send it as the string ingest stores (1.5 as \"1.5\")"],
    [1e20, "field 'cid' is a number with a fraction, an exponent or more than 64 bits, which may have been rounded when read: send it as the string ingest stores (1.5 as \"1.5\")"],
    ['', "field 'cid' must not be empty (leave it out for every campaign)"],
    // PostgreSQL once cut 'a\0b' at its NUL and replayed campaign 'a'.
    ['a\u0000b', "field 'cid' must not contain NUL characters"],
    ['a\u0001b', "field 'cid' must not contain control characters"],
  ]) {
    const refused = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${ep.id}/replay`, { since: start, until: end, cid });
    assert.equal(refused.status, 400, `cid ${JSON.stringify(cid)}: ${refused.text}`);
    assert.equal(refused.json.error.message, message);
  }
  const referenceWithNul = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${ep.id}/replay`, { since: start, until: end, reference_id: '\u0000x' });
  assert.equal(referenceWithNul.status, 400, referenceWithNul.text);
  assert.equal(referenceWithNul.json.error.message, "field 'reference_id' must not contain NUL characters");
});

itest('test route: sends a signed sample now and answers with the attempt (204 and 500 receivers)', async (fx, t) => {
  const ok = await startMisbehavingReceiver({ behaviour: 204, t });
  const failing = await startMisbehavingReceiver({ behaviour: status(500, {}, 'nope'), t });
  const serve = await fx.startServe();
  const site = await serve.createSite('Test route');
  const epOk = await serve.createEndpoint(site.id, { url: `${ok.url}/hooks` });
  const epFailing = await serve.createEndpoint(site.id, { url: `${failing.url}/hooks` });

  const before = Date.now();
  const good = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${epOk.id}/test`), 200, 'POST test');
  assert.equal(good.success, true);
  assert.match(good.webhook_id, /^msg_test_/);
  assert.equal(good.webhook_id, ok.requests[0].headers['webhook-id'], 'the answer names the webhook-id the receiver saw');
  const at = Date.parse(good.at);
  assert.ok(at >= before - 1_000 && at <= Date.now() + 1_000, `at ${good.at}`);
  assert.equal(good.status_code, 204);
  assert.equal(typeof good.latency_ms, 'number');
  assert.ok(good.latency_ms >= 0);
  assert.equal(good.error, '');
  assert.equal(ok.requests.length, 1);
  const sample = ok.requests[0];
  const payload = new Webhook(epOk.secret).verify(sample.body, webhookHeaders(sample));
  assert.equal(payload.action, 'Click', 'the sample is a payload of DESIGN section 1');
  assert.equal(payload.clicked_button, 1);
  // An endpoint that takes no Click is sent an action it takes.
  for (const [events, action] of [[['View'], 'View'], [['Dismiss'], 'Dismiss'], [['Dismiss', 'View'], 'View']]) {
    const only = await serve.createEndpoint(site.id, { url: `${ok.url}/${action}`, events });
    expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${only.id}/test`), 200, `POST test ${events}`);
    const got = new Webhook(only.secret).verify(ok.requests.at(-1).body, webhookHeaders(ok.requests.at(-1)));
    assert.equal(got.action, action, `events ${events}`);
    assert.equal(got.clicked_button, 0);
  }

  const bad = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${epFailing.id}/test`), 200, 'POST test');
  assert.equal(bad.success, false);
  assert.equal(bad.status_code, 500);
  assert.equal(bad.response_body, 'nope');
  assert.ok(bad.error.length > 0);
  assert.equal(failing.requests.length, 1, 'a test is sent once, never retried');

  await sleep(500);
  assert.equal(failing.requests.length, 1, 'a test is sent once, never retried');
  assert.equal((await listMessages(serve, site.id)).data.length, 0, 'a test is not a message of the log');
});

itest('stats route counts attempts, successes, failures, pending, failed and in-flight requests', async (fx, t) => {
  const flaky = await startMisbehavingReceiver({ behaviour: (_r, i) => (i < 3 ? 500 : slow(20, 204)), t });
  const dead = await startMisbehavingReceiver({ behaviour: 500, t });
  const hung = await startMisbehavingReceiver({ behaviour: hang(), t });
  const serve = await fx.startServe({ retrySchedule: '200ms', args: ['--delivery-timeout', '60s', '--shutdown-grace', '500ms'] });
  const site = await serve.createSite('Stats');
  // Each endpoint gets its own site, so that each sees exactly its own events.
  const epFlaky = await serve.createEndpoint(site.id, { url: `${flaky.url}/hooks`, max_in_flight: 1 });
  const deadSite = await serve.createSite('Stats dead');
  const epDead = await serve.createEndpoint(deadSite.id, { url: `${dead.url}/hooks` });
  const hungSite = await serve.createSite('Stats hung');
  const epHung = await serve.createEndpoint(hungSite.id, { url: `${hung.url}/hooks` });

  await ingest(serve, site.ingest_key, Array.from({ length: 5 }, (_, i) => makeEvent(i)));
  await ingest(serve, deadSite.ingest_key, [makeEvent(10), makeEvent(11)]);
  await ingest(serve, hungSite.ingest_key, [makeEvent(20)]);

  await waitFor(async () => (await count(serve, site.id, { status: 'delivered' })) === 5, { what: '5 delivered' });
  await waitFor(async () => (await count(serve, deadSite.id, { status: 'failed' })) === 2, { what: '2 failed' });
  await waitFor(() => hung.requests.length === 1, { what: 'the hung request' });

  const flakyStats = await getStats(serve, site.id, epFlaky.id);
  assert.equal(flakyStats.attempts, 8, '5 first attempts and 3 retries');
  assert.equal(flakyStats.successes, 5);
  assert.equal(flakyStats.failures, 3);
  assert.equal(flakyStats.pending, 0);
  assert.equal(flakyStats.failed, 0);
  assert.equal(flakyStats.in_flight, 0);
  assert.equal(flakyStats.state, 'enabled');
  assert.equal(flakyStats.circuit, 'closed');
  assert.ok(flakyStats.latency_ms.p50 > 0 && flakyStats.latency_ms.p50 <= flakyStats.latency_ms.p99,
    `latency ${JSON.stringify(flakyStats.latency_ms)}`);

  const deadStats = await getStats(serve, deadSite.id, epDead.id);
  assert.equal(deadStats.attempts, 4);
  assert.equal(deadStats.successes, 0);
  assert.equal(deadStats.failures, 4);
  assert.equal(deadStats.failed, 2);
  assert.equal(deadStats.pending, 0);

  const hungStats = await getStats(serve, hungSite.id, epHung.id);
  assert.equal(hungStats.pending, 1, 'stats pending while its one message hangs');
  assert.equal(hungStats.in_flight, 1, `stats in_flight while one request has hung for ${Date.now() - hung.requests[0].at} ms`);
  assert.equal(hungStats.attempts, 0, 'an attempt counts once it ends');

  // Another site's endpoint is not found under this site.
  const cross = await serve.api('GET', `/v1/sites/${site.id}/endpoints/${epDead.id}/stats`);
  assert.equal(cross.status, 404);
});

itest('retention: delivered and failed messages are purged after a few seconds; pending ones stay', async (fx, t) => {
  const good = await startMisbehavingReceiver({ behaviour: 204, t });
  const bad = await startMisbehavingReceiver({ behaviour: 500, t });
  const hung = await startMisbehavingReceiver({ behaviour: hang(), t });
  const serve = await fx.startServe({
    retrySchedule: '100ms',
    args: ['--delivery-timeout', '60s', '--circuit-threshold', '10000', '--shutdown-grace', '500ms'],
    env: { PUSHHOOK_RETENTION_DELIVERED: '2s', PUSHHOOK_RETENTION_FAILED: '2s' },
  });
  // A pending message, older than the others.
  const waitSite = await serve.createSite('Retention pending');
  await serve.createEndpoint(waitSite.id, { url: `${hung.url}/hooks` });
  await ingest(serve, waitSite.ingest_key, [makeEvent(0)]);
  await waitFor(() => hung.requests.length === 1, { what: 'the hung request' });

  const site = await serve.createSite('Retention');
  const epGood = await serve.createEndpoint(site.id, { url: `${good.url}/hooks` });
  await serve.createEndpoint(site.id, { url: `${bad.url}/hooks` });
  const ingestedAt = Date.now();
  await ingest(serve, site.ingest_key, Array.from({ length: 5 }, (_, i) => makeEvent(i + 1)));
  await waitFor(async () => (await count(serve, site.id, { status: 'delivered' })) === 5 &&
    (await count(serve, site.id, { status: 'failed' })) === 5, { what: '5 delivered and 5 failed' });
  const oldIds = new Set((await allMessages(serve, site.id)).map((m) => m.id));
  assert.equal(oldIds.size, 10);
  const someId = [...oldIds][0];

  const purgedAt = await waitFor(async () => ((await count(serve, site.id, {})) === 0 ? Date.now() : null), {
    timeoutMs: 10_000,
    intervalMs: 250,
    what: 'the delivered and failed messages to be purged',
  });
  assert.ok(purgedAt - ingestedAt >= 1_800, `purged ${purgedAt - ingestedAt} ms after ingest, before the 2 s retention`);
  const gone = await serve.api('GET', `/v1/sites/${site.id}/messages/${someId}`);
  assert.equal(gone.status, 404, 'a purged message is gone');
  const goneAttempts = await serve.api('GET', `/v1/sites/${site.id}/messages/${someId}/attempts`);
  assert.ok([404].includes(goneAttempts.status) || goneAttempts.json?.data?.length === 0, 'its attempts are gone too');

  const pending = await allMessages(serve, waitSite.id);
  assert.equal(pending.length, 1, 'a pending message is never purged');
  assert.equal(pending[0].status, 'pending');

  // Receivers de-duplicate by webhook-id: a new message must never reuse a purged message's id.
  const before = good.requests.length;
  await ingest(serve, site.ingest_key, [makeEvent(50)]);
  await waitFor(() => good.requests.length > before, { what: 'the new event delivered' });
  const fresh = good.requests[before];
  assert.equal(JSON.parse(fresh.body).cookie_id, makeEvent(50).cookie_id);
  const oldGoodIds = new Set(good.requests.slice(0, before).map((r) => r.webhookId));
  assert.ok(!oldGoodIds.has(fresh.webhookId), `the new message reuses the webhook-id ${fresh.webhookId} of a purged one`);
  const newIds = (await allMessages(serve, site.id)).map((m) => m.id);
  for (const id of newIds) assert.ok(!oldIds.has(id), `message id ${id} reused after the purge`);
  assert.equal((await getMessage(serve, site.id, fresh.webhookId)).endpoint_id, epGood.id);
});

itest('back-pressure: over --max-backlog ingest answers 503 with Retry-After, and recovers by itself', async (fx, t) => {
  const rx = await startMisbehavingReceiver({ behaviour: hang(), t });
  const serve = await fx.startServe({
    retrySchedule: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms',
    // The one site may fill the whole backlog here (by default a site may fill half of it).
    args: ['--max-backlog', '10', '--max-site-backlog', '10', '--delivery-timeout', '2s', '--circuit-threshold', '10000', '--shutdown-grace', '500ms'],
  });
  const { site, endpoint, key } = await siteWithEndpoint(serve, `${rx.url}/hooks`, { max_in_flight: 2, payload_format: 'extended' });

  const acked = new Set();
  const refused = new Set();
  let n = 0;
  let pushedBack = null;
  const post = async () => {
    const eventId = `bp-${n}`;
    const answer = await serve.ingest(key, [makeEvent(n, { event_id: eventId })]);
    n += 1;
    if (answer.status === 202) acked.add(eventId);
    else refused.add(eventId);
    return { answer, eventId };
  };
  for (let i = 0; i < 60 && !pushedBack; i += 1) {
    const { answer } = await post();
    if (answer.status !== 202) pushedBack = answer;
    else await sleep(30);
  }
  assert.ok(pushedBack, `60 events accepted against a hung receiver and --max-backlog 10 (${acked.size} acked)`);
  assert.equal(pushedBack.status, 503, `pushed back with ${pushedBack.status}: ${pushedBack.text}`);
  const retryAfterHeader = pushedBack.headers.get('retry-after');
  assert.ok(/^\d+$/.test(retryAfterHeader ?? '') && Number(retryAfterHeader) >= 1, `Retry-After: ${retryAfterHeader}`);
  assert.equal(typeof pushedBack.json?.error?.code, 'string');
  assert.ok(acked.size >= 10, `only ${acked.size} events accepted before pushing back at a backlog of 10`);
  assert.ok(acked.size <= 20, `${acked.size} events accepted at --max-backlog 10`);
  t.diagnostic(`pushed back after ${acked.size} accepted events, Retry-After: ${retryAfterHeader}`);

  // Still over the limit: still refused.
  const { answer: again } = await post();
  assert.equal(again.status, 503);
  // A replay would add to the backlog every site's ingest shares: refused alike, nothing made.
  const replay = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/replay`,
    { since: 0, until: '2100-01-01T00:00:00Z' });
  assert.equal(replay.status, 503, replay.text);
  assert.deepEqual(replay.json, { error: { code: 'unavailable', message: 'too many messages are waiting for delivery; retry later' } });
  assert.equal(replay.headers.get('retry-after'), '5');

  // The receiver recovers; the hung attempts time out, the retries are answered, the backlog
  // drains and ingest is accepted again without anyone touching the server.
  rx.setBehaviour(204);
  await waitFor(async () => (await post()).answer.status === 202, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'ingest to be accepted again after the receiver recovered',
  });
  await waitFor(async () => (await count(serve, site.id, { status: 'delivered' })) === acked.size, {
    timeoutMs: 20_000,
    intervalMs: 250,
    what: `the ${acked.size} acknowledged events delivered`,
  });
  const delivered = new Set(rx.requests.filter((r) => r.action?.status === 204).map((r) => JSON.parse(r.body).event_id));
  assert.deepEqual([...delivered].sort(), [...acked].sort(), 'every acknowledged event delivered, no refused one');
});

itest('back-pressure per site: a site over --max-site-backlog is refused alone; the others go on', async (fx, t) => {
  const down = await startMisbehavingReceiver({ behaviour: hang(), t });
  const up = await startMisbehavingReceiver({ behaviour: 204, t });
  const serve = await fx.startServe({
    retrySchedule: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms',
    args: ['--max-backlog', '1000', '--max-site-backlog', '5', '--delivery-timeout', '2s', '--circuit-threshold', '10000', '--shutdown-grace', '500ms'],
  });
  const busy = await siteWithEndpoint(serve, `${down.url}/hooks`, { max_in_flight: 1 });
  const other = await siteWithEndpoint(serve, `${up.url}/hooks`);
  const refusal = { error: { code: 'unavailable', message: "more than 5 of this site's messages are waiting for delivery " +
    '(its endpoints are behind or failing; see its message log); retry later' } };

  let pushedBack = null;
  let acked = 0;
  for (let n = 0; n < 60 && !pushedBack; n += 1) {
    const answer = await serve.ingest(busy.key, [makeEvent(n)]);
    if (answer.status === 202) acked += 1;
    else pushedBack = answer;
    await sleep(30);  // the backlog is counted at most every 100 ms
  }
  assert.ok(pushedBack, `60 events accepted for a site whose receiver hangs, at --max-site-backlog 5 (${acked} acked)`);
  assert.equal(pushedBack.status, 503, pushedBack.text);
  assert.deepEqual(pushedBack.json, refusal);
  assert.equal(pushedBack.headers.get('retry-after'), '5');
  assert.ok(acked >= 5 && acked <= 12, `${acked} events accepted before pushing back at a site backlog of 5`);
  const replay = (site) => serve.api('POST', `/v1/sites/${site.site.id}/endpoints/${site.endpoint.id}/replay`,
    { since: 0, until: '2100-01-01T00:00:00Z' });
  const refusedReplay = await replay(busy);
  assert.equal(refusedReplay.status, 503, refusedReplay.text);
  assert.deepEqual(refusedReplay.json, refusal);

  // The other site is not held back: its events, and a replay of them, are taken and delivered.
  const taken = expectStatus(await serve.ingest(other.key, Array.from({ length: 20 }, (_, i) => makeEvent(100 + i))), 202, 'the other site');
  assert.equal(taken.accepted, 20);
  expectStatus(await replay(other), 202, "the other site's replay");
  await waitFor(() => up.requests.length >= 40, { what: "the other site's 20 events and their replay delivered" });

  // Its receiver back, the busy site drains and is taken again, by itself.
  down.setBehaviour(204);
  await waitFor(async () => (await serve.ingest(busy.key, [makeEvent(200)])).status === 202, {
    timeoutMs: 20_000,
    intervalMs: 300,
    what: 'the busy site taken again once its receiver answers',
  });
});
