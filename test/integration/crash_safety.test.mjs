// DESIGN sections 2, 4 and 7 (issue 3, crash safety): under continuous ingest with event_ids,
// `kill -9` the server at random moments (four times), restart it on the same data dir each time,
// and check that what the receiver got, de-duplicated by webhook-id, is exactly the set of events
// that were acknowledged with a 202: every acknowledged event delivered at least once, nothing
// delivered that was not posted, one message (one webhook-id) per event.
//
// The client behaves as a real one would: a request that fails (connection refused or cut while
// the server is down) is not counted, and the same batch, with the same event_ids, is posted
// again until it is acknowledged; event_id de-duplication makes that safe whether or not the
// lost request had been committed.
import assert from 'node:assert/strict';
import { itest, makeEvent, request, sleep, stop, waitFor } from '../helpers/harness.mjs';
import { startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';

const KILLS = 4;
const BATCH = 20;
// Seeded, so that a failure can be replayed: PUSHHOOK_IT_SEED=<n>.
const SEED = Number(process.env.PUSHHOOK_IT_SEED ?? Date.now() % 100_000);
function random(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

itest('kill -9 at random moments under continuous ingest: delivered set = acknowledged set', { timeout: 115_000 }, async (fx, t) => {
  const rand = random(SEED);
  t.diagnostic(`seed ${SEED} (PUSHHOOK_IT_SEED to replay)`);
  const rx = await startMisbehavingReceiver({ behaviour: 204, t });
  const opts = { retrySchedule: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms' };
  let serve = await fx.startServe(opts);
  const { dataDir, adminToken } = serve;
  const site = await serve.createSite('Crash');
  await serve.createEndpoint(site.id, { url: `${rx.url}/hooks`, payload_format: 'extended' });
  const key = site.ingest_key;

  const posted = new Set(); // every event_id ever sent in a request
  const acked = new Set(); // those in a request answered 202
  const stats = { requests: 0, failed: 0, duplicates: 0, refused: 0 };
  let running = true;
  let stoppedAt = 0;
  let n = 0;

  // One batch at a time, re-posted until acknowledged.
  const ingestLoop = (async () => {
    while (running) {
      const batch = Array.from({ length: BATCH }, () => {
        const i = n++;
        return makeEvent(i, { event_id: `crash-${i}` });
      });
      for (const e of batch) posted.add(e.event_id);
      for (;;) {
        stats.requests += 1;
        let answer = null;
        try {
          answer = await request(serve.baseUrl, 'POST', '/v1/events', {
            body: JSON.stringify(batch),
            headers: { 'content-type': 'application/json', 'x-pushhook-key': key },
          });
        } catch {
          stats.failed += 1; // down, or cut off mid-request: not acknowledged
        }
        if (answer?.status === 202) {
          assert.equal(answer.json.accepted + answer.json.duplicates, BATCH, `202 ${answer.text}`);
          stats.duplicates += answer.json.duplicates;
          for (const e of batch) acked.add(e.event_id);
          break;
        }
        if (answer) stats.refused += 1;
        if (!running && Date.now() > stoppedAt + 15_000) {
          throw new Error(`a batch could not be acknowledged within 15 s after the last restart (last answer ${answer?.status})`);
        }
        await sleep(20);
      }
    }
  })();

  try {
    for (let kill = 0; kill < KILLS; kill += 1) {
      await sleep(700 + rand() * 2_000);
      const before = acked.size;
      const killed = await stop(serve, 'SIGKILL');
      assert.equal(killed.signal, 'SIGKILL', `kill ${kill + 1}: the server was still running`);
      await sleep(rand() * 300); // ingest keeps trying against a dead server
      serve = await fx.startServe({ ...opts, dataDir, adminToken });
      t.diagnostic(`kill ${kill + 1}: ${before} events acknowledged before it; ${rx.requests.length} requests received so far`);
    }
    await sleep(1_000); // ingest and delivery against the last server
  } finally {
    running = false;
    stoppedAt = Date.now();
    await ingestLoop;
  }
  assert.ok(acked.size >= 500, `only ${acked.size} events acknowledged during the test`);

  // Every acknowledged event reaches the receiver (messages in flight at a kill are sent again).
  const delivered = new Map(); // webhook-id -> event_id (de-duplicated by webhook-id)
  const webhookIdsOf = new Map(); // event_id -> Set of webhook-ids
  let scanned = 0;
  const scan = () => {
    for (; scanned < rx.requests.length; scanned += 1) {
      const r = rx.requests[scanned];
      const eventId = JSON.parse(r.body).event_id;
      const known = delivered.get(r.webhookId);
      assert.ok(known === undefined || known === eventId, `webhook-id ${r.webhookId} carried ${known} and then ${eventId}`);
      delivered.set(r.webhookId, eventId);
      if (!webhookIdsOf.has(eventId)) webhookIdsOf.set(eventId, new Set());
      webhookIdsOf.get(eventId).add(r.webhookId);
    }
  };
  await waitFor(
    () => {
      scan();
      for (const id of acked) if (!webhookIdsOf.has(id)) return false;
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: `all ${acked.size} acknowledged events delivered` },
  );
  await sleep(1_000); // anything still arriving would be a message that should not exist
  scan();

  const receivedEvents = new Set(delivered.values());
  const notPosted = [...receivedEvents].filter((id) => !posted.has(id));
  assert.deepEqual(notPosted, [], 'delivered events that were never posted');
  const notAcked = [...receivedEvents].filter((id) => !acked.has(id));
  assert.deepEqual(notAcked, [], 'delivered events whose request never got a 202');
  assert.equal(receivedEvents.size, acked.size, 'the de-duplicated delivered set is the acknowledged set');
  const twoMessages = [...webhookIdsOf].filter(([, ids]) => ids.size > 1).map(([id, ids]) => `${id}: ${[...ids]}`);
  assert.deepEqual(twoMessages, [], 'events delivered under more than one webhook-id (one event, one message)');

  const redeliveries = rx.requests.length - delivered.size;
  t.diagnostic(
    `${acked.size} events acknowledged in ${stats.requests} requests (${stats.failed} failed, ${stats.refused} refused, ` +
      `${stats.duplicates} events reported duplicate on a re-post); ${rx.requests.length} deliveries, ` +
      `${redeliveries} of them repeats after a kill`,
  );
});
