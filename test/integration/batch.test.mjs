// DESIGN sections 2 and 4: a batch of 1,000 events is delivered exactly once each, and
// re-posting the same event_ids is acknowledged as duplicates and delivers nothing.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, payloadFor, sleep, waitFor } from '../helpers/harness.mjs';

const COUNT = 1000;

itest('a batch of 1,000 events is delivered exactly once each; a re-post is all duplicates', { timeout: 180_000 }, async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Batch');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });

  const events = Array.from({ length: COUNT }, (_, i) =>
    makeEvent(i, { event_id: `evt-${i}`, action: i % 3 === 0 ? 'Click' : 'View', clicked_button: i % 3 === 0 ? 1 : 0 }),
  );
  const expected = events.map(payloadFor);
  assert.equal(new Set(expected).size, COUNT);

  const first = await serve.ingest(site.ingest_key, events);
  assert.deepEqual(expectStatus(first, 202, 'POST /v1/events (1,000)'), { accepted: COUNT, duplicates: 0 });

  await waitFor(() => recorder.requests.length >= COUNT, {
    timeoutMs: 90_000,
    intervalMs: 100,
    what: `${COUNT} deliveries`,
  });
  assert.equal(new Set(recorder.requests.map((r) => r.headers['webhook-id'])).size, COUNT, 'unique webhook-ids');
  assert.deepEqual(recorder.requests.map((r) => r.body).sort(), [...expected].sort(), 'each payload once');

  const again = await serve.ingest(site.ingest_key, events);
  assert.deepEqual(expectStatus(again, 202, 'POST /v1/events (same 1,000)'), { accepted: 0, duplicates: COUNT });

  // A fresh event posted after the duplicates is delivered; by the time it arrives, anything the
  // duplicates had wrongly queued would be arriving too.
  const sentinel = makeEvent(COUNT, { event_id: 'evt-sentinel' });
  assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, sentinel), 202, 'POST sentinel'), { accepted: 1, duplicates: 0 });
  await waitFor(() => recorder.requests.some((r) => r.body === payloadFor(sentinel)), { timeoutMs: 30_000, what: 'the sentinel' });
  await sleep(1000);
  assert.equal(recorder.requests.length, COUNT + 1, 'nothing but the sentinel after the re-post');
});

itest('an event_id seen in an earlier request is counted as a duplicate and not delivered twice', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Dedupe');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });

  const a = makeEvent(1, { event_id: 'same' });
  const b = makeEvent(2, { event_id: 'other' });
  assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, a), 202, 'first'), { accepted: 1, duplicates: 0 });
  assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, [a, b]), 202, 'second'), { accepted: 1, duplicates: 1 });

  await waitFor(() => recorder.requests.length >= 2, { what: 'two deliveries' });
  await sleep(500);
  assert.deepEqual(recorder.requests.map((r) => r.body).sort(), [payloadFor(a), payloadFor(b)].sort());
});

itest('an NDJSON body is ingested as one event per line', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('NDJSON');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });

  const events = [makeEvent(1), makeEvent(2, { action: 'Click', clicked_button: 2 }), makeEvent(3)];
  const ndjson = `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;
  const answer = await serve.ingest(site.ingest_key, ndjson, { 'content-type': 'application/x-ndjson' });
  assert.deepEqual(expectStatus(answer, 202, 'POST /v1/events (NDJSON)'), { accepted: 3, duplicates: 0 });

  await waitFor(() => recorder.requests.length >= 3, { what: 'three deliveries' });
  await sleep(300);
  assert.deepEqual(recorder.requests.map((r) => r.body).sort(), events.map(payloadFor).sort());
});
