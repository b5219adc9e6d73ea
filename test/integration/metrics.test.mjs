// DESIGN section 8: GET /metrics in the Prometheus text format — ingest, deliveries by outcome,
// the attempt latency histogram, queue depth and open circuits.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, request, waitFor } from '../helpers/harness.mjs';

// The value of one series in a Prometheus text exposition, or undefined.
function value(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

itest('metrics count ingest, deliveries by outcome and attempt latency', async (fx) => {
  let calls = 0;
  // The first attempt of every message fails, the retry succeeds.
  const recorder = await fx.startRecorder({ respond: () => (calls++ % 2 === 0 ? 500 : 204) });
  const serve = await fx.startServe({ retrySchedule: '100ms,100ms,100ms' });
  const site = await serve.createSite('Metrics');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/m`, max_in_flight: 1 });

  const events = [1, 2, 3].map((n) => makeEvent(n, { event_id: `m-${n}` }));
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest of duplicates');
  expectStatus(await serve.ingest(site.ingest_key, [{ action: 'Nope' }]), 400, 'bad ingest');

  let text = '';
  await waitFor(async () => {
    const res = await request(serve.baseUrl, 'GET', '/metrics');
    text = res.text;
    return value(text, 'pushhook_delivery_attempts_total{outcome="delivered"}') === 3;
  }, { what: 'three deliveries in /metrics' });

  const res = await request(serve.baseUrl, 'GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  assert.equal(value(text, 'pushhook_ingest_events_total{result="accepted"}'), 3);
  assert.equal(value(text, 'pushhook_ingest_events_total{result="duplicate"}'), 3);
  assert.equal(value(text, 'pushhook_ingest_requests_refused_total{reason="invalid"}'), 1);
  assert.equal(value(text, 'pushhook_delivery_attempts_total{outcome="retry"}'), 3);
  assert.equal(value(text, 'pushhook_delivery_attempts_total{outcome="failed"}'), 0);
  assert.equal(value(text, 'pushhook_delivery_attempt_duration_seconds_count'), 6);
  assert.equal(value(text, 'pushhook_delivery_attempt_duration_seconds_bucket{le="+Inf"}'), 6);
  // Buckets are cumulative.
  const buckets = [...text.matchAll(/^pushhook_delivery_attempt_duration_seconds_bucket\{le="[^"]+"\} (\d+)$/gm)]
    .map((m) => Number(m[1]));
  assert.deepEqual([...buckets].sort((a, b) => a - b), buckets);
  assert.match(text, /^# TYPE pushhook_delivery_attempt_duration_seconds histogram$/m);
  assert.ok(value(text, 'pushhook_delivery_queue_depth') >= 0);
  assert.equal(value(text, 'pushhook_delivery_open_circuits'), 0);
});

itest('ingest refusals count the answers the HTTP server and the router give on ingest\'s route', async (fx) => {
  const serve = await fx.startServe({ args: ['--max-body-bytes', '200'] });
  const site = await serve.createSite('Refusals');
  const refused = async () => value((await request(serve.baseUrl, 'GET', '/metrics')).text,
    'pushhook_ingest_requests_refused_total{reason="invalid"}');
  assert.equal(await refused(), 0);
  const big = JSON.stringify(makeEvent(1, { notification_title: 'x'.repeat(300) }));
  const tooLarge = await request(serve.baseUrl, 'POST', '/v1/events',
    { body: big, headers: { 'content-type': 'application/json', 'x-pushhook-key': site.ingest_key } });
  assert.equal(tooLarge.status, 413);
  assert.equal(await refused(), 1, 'the server\'s own 413');
  const wrongMethod = await request(serve.baseUrl, 'GET', '/v1/events');
  assert.equal(wrongMethod.status, 405);
  assert.equal(await refused(), 2, 'the router\'s 405');
  expectStatus(await serve.ingest(site.ingest_key, [{ action: 'Nope' }]), 400, 'bad ingest');
  assert.equal(await refused(), 3, 'the handler\'s 400');
  // The router's 400 for a query it cannot read, and ingest's route spelt with a trailing slash.
  const badQuery = await request(serve.baseUrl, 'POST', '/v1/events?key=%FF',
    { body: '{}', headers: { 'content-type': 'text/plain' } });
  assert.equal(badQuery.status, 400);
  assert.equal(badQuery.headers.get('access-control-allow-origin'), '*', 'a worker can read it');
  assert.equal(await refused(), 4, 'the router\'s 400');
  assert.equal((await request(serve.baseUrl, 'GET', '/v1/events/')).status, 405);
  assert.equal(await refused(), 5, 'a 405 on /v1/events/');
  // Answers on other routes are not ingest's.
  assert.equal((await request(serve.baseUrl, 'POST', '/healthz')).status, 405);
  assert.equal(await refused(), 5);
});

itest('queue depth counts the messages waiting, and comes back to 0 once they are delivered', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Depth');
  const ep = await serve.createEndpoint(site.id, { url: `${recorder.url}/d` });
  const depth = async () => value((await request(serve.baseUrl, 'GET', '/metrics')).text, 'pushhook_delivery_queue_depth');
  const settled = async (n, what) => {
    await waitFor(async () => (await depth()) === n, { timeoutMs: 3_000, what });
    // And stays there: nothing counted twice or left behind.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await depth(), n, what);
  };
  expectStatus(await serve.ingest(site.ingest_key, [1, 2, 3, 4, 5].map((n) => makeEvent(n))), 202, 'ingest');
  await waitFor(() => recorder.requests.length === 5, { what: 'five deliveries' });
  await settled(0, 'queue depth back to 0 after the last delivery');

  // A disabled endpoint's messages wait in the store, not in the delivery queue.
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${ep.id}`, { enabled: false }), 200, 'disable');
  expectStatus(await serve.ingest(site.ingest_key, [6, 7, 8].map((n) => makeEvent(n))), 202, 'ingest');
  await settled(0, 'queue depth 0 with the endpoint disabled');
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${ep.id}`, { enabled: true }), 200, 'enable');
  await waitFor(() => recorder.requests.length === 8, { what: 'the three that waited' });
  await settled(0, 'queue depth back to 0 after those');
});
