// DESIGN section 4: one message per (event, endpoint) whose `events` filter takes the action.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, payloadFor, sleep, waitFor } from '../helpers/harness.mjs';

itest('fan-out to two endpoints, one filtered to Click', async (fx) => {
  const clicksOnly = await fx.startRecorder();
  const everything = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Fan-out');
  const filtered = await serve.createEndpoint(site.id, { url: `${clicksOnly.url}/clicks`, events: ['Click'] });
  assert.deepEqual(filtered.events, ['Click']);
  await serve.createEndpoint(site.id, { url: `${everything.url}/all` });

  const view = makeEvent(1, { action: 'View', clicked_button: 0 });
  const click = makeEvent(2, { action: 'Click', clicked_button: 1 });
  const answer = await serve.ingest(site.ingest_key, [view, click]);
  assert.deepEqual(expectStatus(answer, 202, 'POST /v1/events'), { accepted: 2, duplicates: 0 });

  await waitFor(() => everything.requests.length >= 2 && clicksOnly.requests.length >= 1, {
    what: 'both deliveries to the unfiltered endpoint and one to the filtered one',
  });
  // A View wrongly sent to the filtered endpoint would have arrived with the others by now; give
  // it a little more time anyway before counting.
  await sleep(500);
  assert.deepEqual(clicksOnly.requests.map((r) => r.body), [payloadFor(click)]);
  assert.deepEqual(everything.requests.map((r) => r.body).sort(), [payloadFor(view), payloadFor(click)].sort());
  // Each (event, endpoint) is its own message.
  const ids = new Set([...clicksOnly.requests, ...everything.requests].map((r) => r.headers['webhook-id']));
  assert.equal(ids.size, 3);
});
