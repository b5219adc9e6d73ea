// DESIGN section 4 (issue 3, isolation): one slow or dead endpoint never delays any other. On one
// server and one site, the healthy endpoint's delivery rate is measured twice in the same test:
// alone, then with a second endpoint of the same site whose receiver never answers. The second
// rate must be at least 80 % of the first.
//
// Rate = events delivered to the healthy receiver / time from the first to the last arrival of
// that phase's events. Each phase posts all its events in a few large batches (a fraction of the
// phase's time), so that the measure is dominated by delivery, not by the test's own posting.
// The healthy receiver answers after HEALTHY_DELAY_MS, like a real one: the rate is then set by
// how well the dispatcher keeps the endpoint's max_in_flight slots busy (what a hanging neighbour
// could take away), not by how much CPU this shared 2-core machine happens to give the server.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, sleep, waitFor } from '../helpers/harness.mjs';
import { hang, slow, startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';

const N = 1_500; // events per phase: ~2 s, long enough for a few timeouts of the hanging endpoint
const BATCH = 500;
const HEALTHY_DELAY_MS = 20;
const MIN_RATIO = 0.8;

itest('a hanging endpoint does not slow a healthy one on the same site (rate ratio ≥ 0.8)', { timeout: 110_000 }, async (fx, t) => {
  const healthy = await startMisbehavingReceiver({ behaviour: slow(HEALTHY_DELAY_MS, 204), t });
  const hanging = await startMisbehavingReceiver({ behaviour: hang(), t });
  const serve = await fx.startServe({
    retrySchedule: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms',
    args: ['--delivery-timeout', '1s', '--connect-timeout', '500ms', '--shutdown-grace', '1s'],
  });
  const site = await serve.createSite('Isolation');
  await serve.createEndpoint(site.id, { url: `${healthy.url}/hooks`, payload_format: 'extended' });
  const key = site.ingest_key;

  let next = 0;
  // Posts `count` events as batches; resolves to their event_ids.
  const post = async (count, prefix) => {
    const ids = [];
    for (let i = 0; i < count; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, count - i) }, () => {
        const n = next++;
        const eventId = `${prefix}-${n}`;
        ids.push(eventId);
        return makeEvent(n, { event_id: eventId });
      });
      const answer = expectStatus(await serve.ingest(key, batch), 202, `POST /v1/events (${prefix})`);
      assert.equal(answer.accepted, batch.length);
    }
    return ids;
  };
  // Index of the healthy receiver's requests by event_id (first arrival only).
  const arrivals = new Map();
  let scanned = 0;
  const scan = () => {
    for (; scanned < healthy.requests.length; scanned += 1) {
      const r = healthy.requests[scanned];
      const eventId = JSON.parse(r.body).event_id;
      if (!arrivals.has(eventId)) arrivals.set(eventId, r.at);
    }
  };
  const measure = async (prefix) => {
    const ids = await post(N, prefix);
    await waitFor(
      () => {
        scan();
        return ids.every((id) => arrivals.has(id));
      },
      { timeoutMs: 40_000, intervalMs: 100, what: `${N} deliveries to the healthy endpoint (${prefix})` },
    );
    const times = ids.map((id) => arrivals.get(id));
    const spanMs = Math.max(...times) - Math.min(...times);
    return (N - 1) / Math.max(spanMs, 1) * 1_000;
  };

  // Warm up (connections, caches); then, three times, the healthy endpoint alone and beside a
  // hanging endpoint of the same site (every event is due there too). The best of each counts, so
  // that a moment of noise on a busy machine does not decide the ratio.
  await measure('warmup');
  const rates = { alone: [], withHanging: [] };
  let hangingRequests = 0;
  for (let round = 0; round < 3; round += 1) {
    rates.alone.push(await measure(`alone-${round}`));
    const ep = await serve.createEndpoint(site.id, { url: `${hanging.url}/hooks` });
    const before = hanging.requests.length;
    rates.withHanging.push(await measure(`with-hanging-${round}`));
    hangingRequests += hanging.requests.length - before;
    assert.ok(hanging.requests.length > before, 'the hanging endpoint was being tried during the measure');
    expectStatus(await serve.api('DELETE', `/v1/sites/${site.id}/endpoints/${ep.id}`), 204, 'DELETE the hanging endpoint');
  }
  const alone = Math.max(...rates.alone);
  const withHanging = Math.max(...rates.withHanging);
  const ratio = withHanging / alone;
  const rounded = JSON.stringify(rates, (_k, v) => (typeof v === 'number' ? Math.round(v) : v));
  t.diagnostic(
    `healthy endpoint: ${alone.toFixed(0)} events/s alone, ${withHanging.toFixed(0)} events/s beside a hanging ` +
      `endpoint (ratio ${ratio.toFixed(2)}); hanging endpoints saw ${hangingRequests} requests, at most ` +
      `${hanging.maxInFlight} at once; rounds ${rounded}`,
  );
  assert.ok(
    ratio >= MIN_RATIO,
    `healthy delivery rate fell from ${alone.toFixed(0)}/s alone to ${withHanging.toFixed(0)}/s beside a ` +
      `hanging endpoint (ratio ${ratio.toFixed(2)} < ${MIN_RATIO})`,
  );
});

// Issue 3, breaker and fairness: while one endpoint of a site is dead (answers 500), its attempt
// rate falls off (the circuit opens, with growing pauses and single probes); the site's other
// endpoint keeps getting every event promptly; when the dead one recovers, its backlog drains.
itest('breaker and fairness: a dead endpoint backs off, a healthy one is unaffected, the backlog drains on recovery', { timeout: 60_000 }, async (fx, t) => {
  const healthy = await startMisbehavingReceiver({ behaviour: 204, t });
  const dead = await startMisbehavingReceiver({ behaviour: 500, t });
  const serve = await fx.startServe({
    retrySchedule: Array(50).fill('200ms').join(','),
    args: ['--circuit-threshold', '5', '--circuit-pause', '500ms'],
  });
  const site = await serve.createSite('Breaker and fairness');
  await serve.createEndpoint(site.id, { url: `${healthy.url}/hooks`, payload_format: 'extended' });
  await serve.createEndpoint(site.id, { url: `${dead.url}/hooks`, payload_format: 'extended' });

  // A steady trickle: one event every 50 ms for 4 s, each noted with the time of its 202.
  const ackedAt = new Map();
  const downFrom = Date.now();
  for (let i = 0; Date.now() - downFrom < 4_000; i += 1) {
    const eventId = `bf-${i}`;
    expectStatus(await serve.ingest(site.ingest_key, [makeEvent(i, { event_id: eventId })]), 202, 'POST /v1/events');
    ackedAt.set(eventId, Date.now());
    await sleep(50);
  }
  const downUntil = Date.now();
  const total = ackedAt.size;

  // The healthy endpoint got every event, each soon after its 202.
  const firstArrival = (rx) => {
    const out = new Map();
    for (const r of rx.requests) {
      const eventId = JSON.parse(r.body).event_id;
      if (!out.has(eventId)) out.set(eventId, r.at);
    }
    return out;
  };
  await waitFor(() => firstArrival(healthy).size === total, { timeoutMs: 10_000, what: `${total} events at the healthy endpoint` });
  const lags = [...firstArrival(healthy)].map(([id, at]) => at - ackedAt.get(id)).sort((a, b) => a - b);
  const p50 = lags[Math.floor(lags.length / 2)];
  const worst = lags[lags.length - 1];
  t.diagnostic(`healthy endpoint lag after the 202: p50 ${p50} ms, max ${worst} ms over ${total} events`);
  assert.ok(p50 <= 200, `the healthy endpoint's median lag was ${p50} ms beside a dead endpoint`);
  assert.ok(worst <= 1_500, `an event reached the healthy endpoint ${worst} ms after its 202`);

  // The dead endpoint's attempt rate fell off: without a breaker it would take every new event
  // and every retry (several per second per message); with it, single probes at growing pauses.
  const deadDuring = dead.requests.filter((r) => r.at <= downUntil);
  const early = deadDuring.filter((r) => r.at < downFrom + 1_000).length;
  const late = deadDuring.filter((r) => r.at >= downUntil - 2_000).length;
  t.diagnostic(`dead endpoint: ${deadDuring.length} attempts while down (${early} in the first second, ${late} in the last two)`);
  assert.ok(early >= 5, `only ${early} attempts in the first second: the circuit opened before its threshold`);
  assert.ok(late <= 4, `${late} attempts in the last 2 s of the outage: the attempt rate did not fall off`);
  assert.ok(deadDuring.length <= 30, `${deadDuring.length} attempts against a dead endpoint in 4 s`);

  // Recovery: the next probe succeeds, the circuit closes, the backlog drains. With the pause
  // doubling from 500 ms, the next probe is due within about 4 s of the end of the outage.
  dead.setBehaviour(204);
  const recoveredAt = Date.now();
  await waitFor(
    () => new Set(dead.requests.filter((r) => r.outcome === 'answered' && r.action?.status === 204)
      .map((r) => JSON.parse(r.body).event_id)).size === total,
    { timeoutMs: 20_000, intervalMs: 100, what: `the dead endpoint's backlog of ${total} to drain after it recovered` },
  );
  const drained = Date.now() - recoveredAt;
  t.diagnostic(`backlog of ${total} drained ${drained} ms after recovery`);
  assert.ok(drained <= 9_000, `the backlog took ${drained} ms to drain after recovery`);
});

