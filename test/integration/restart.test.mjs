// DESIGN sections 2, 4 and 7: a 202 means durable; a message is marked delivered only after its
// 2xx, so after `kill -9` and a restart on the same data dir every event is still delivered.
import assert from 'node:assert/strict';
import {
  expectStatus, freePort, itest, listItems, makeEvent, payloadFor, sleep, stop, waitFor,
} from '../helpers/harness.mjs';

const COUNT = 20;
const SCHEDULE = '1s,1s,1s,1s,1s,1s,1s,1s';

itest('events accepted before kill -9 are delivered after a restart', async (fx) => {
  const port = await freePort(); // nothing listens there until after the crash
  const first = await fx.startServe({ retrySchedule: SCHEDULE });
  const site = await first.createSite('Restart');
  await first.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/hooks` });

  const events = Array.from({ length: COUNT }, (_, i) => makeEvent(i, { event_id: `restart-${i}` }));
  // Several requests, so that more than one commit is involved.
  for (let i = 0; i < COUNT; i += 5) {
    const answer = await first.ingest(site.ingest_key, events.slice(i, i + 5));
    assert.deepEqual(expectStatus(answer, 202, `POST /v1/events [${i}..${i + 4}]`), { accepted: 5, duplicates: 0 });
  }
  const killed = await stop(first, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');

  const recorder = await fx.startRecorder({ port });
  assert.equal(recorder.requests.length, 0);
  const second = await fx.startServe({ dataDir: first.dataDir, adminToken: first.adminToken, retrySchedule: SCHEDULE });

  await waitFor(() => new Set(recorder.requests.map((r) => r.body)).size >= COUNT, {
    timeoutMs: 45_000,
    intervalMs: 100,
    what: `${COUNT} distinct payloads after the restart`,
  });
  await sleep(1500);
  assert.deepEqual(recorder.requests.map((r) => r.body).sort(), events.map(payloadFor).sort(), 'each event delivered once');
  assert.equal(new Set(recorder.requests.map((r) => r.headers['webhook-id'])).size, COUNT);

  // The restarted server still knows the site and its endpoint.
  const endpoints = expectStatus(await second.api('GET', `/v1/sites/${site.id}/endpoints`), 200, 'GET endpoints');
  assert.equal(listItems(endpoints).length, 1, 'the endpoint survives the restart');
});
