// DESIGN sections 1 and 7: on PostgreSQL, a batching endpoint's batches are formed by the node
// that holds its lease. Two nodes share the database; events are posted to both, alternately;
// the owner puts events ingested at either node into the same batches, and every event arrives
// once by webhook-id + index, with its message's batch_id in the log.
import assert from 'node:assert/strict';
import { expectStatus, itest, listItems, makeEvent, sleep, waitFor } from '../helpers/harness.mjs';
import { startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';
import { freshDatabase, ownership, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

const ROUNDS = 20;
const PER_ROUND = 10;

itest(
  'cluster: the lease holder forms the batches, of events ingested at any node',
  { timeout: 90_000, skip: postgresSkipReason() },
  async (fx, t) => {
    const { url: database } = await freshDatabase(fx);
    const nodes = await startNodes(fx, { database, count: 2, lease: '2s' });
    const rx = await startMisbehavingReceiver({ behaviour: 204, t });
    const site = await nodes[0].createSite('Cluster batches');
    const endpoint = await nodes[0].createEndpoint(site.id, {
      url: `${rx.url}/b`, payload_format: 'extended', batch: { max_events: 50, max_wait_ms: 300 },
    });
    const owned = await waitFor(async () => {
      const own = await ownership(nodes);
      const holders = Object.entries(own).filter(([, ids]) => ids.includes(endpoint.id));
      return holders.length === 1 && holders[0][0];
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'the endpoint to be owned by one node' });
    t.diagnostic(`lease holder: ${owned}`);

    const nodeOf = new Map(); // event_id -> the node it was posted to
    for (let round = 0; round < ROUNDS; round += 1) {
      const node = nodes[round % 2];
      const events = Array.from({ length: PER_ROUND }, (_, i) =>
        makeEvent(round * PER_ROUND + i, { event_id: `cb-${round * PER_ROUND + i}` }));
      expectStatus(await node.ingest(site.ingest_key, events), 202, `ingest at ${node.nodeId}`);
      for (const e of events) nodeOf.set(e.event_id, node.nodeId);
      await sleep(20);
    }
    const total = ROUNDS * PER_ROUND;
    const seen = new Map(); // event_id -> `${webhook-id}#${index}`
    await waitFor(() => {
      for (const r of rx.requests) {
        const body = JSON.parse(r.body);
        assert.ok(Array.isArray(body), 'a batch');
        body.forEach((element, index) => {
          const key = `${r.webhookId}#${index}`;
          const before = seen.get(element.event_id);
          assert.ok(before === undefined || before === key, `${element.event_id} under ${before} and ${key}`);
          seen.set(element.event_id, key);
        });
      }
      return seen.size === total;
    }, { timeoutMs: 30_000, what: `all ${total} events delivered` });
    assert.equal(rx.requests.length, new Set(rx.requests.map((r) => r.webhookId)).size, 'no batch sent twice');
    assert.ok(rx.requests.length < total / 2, `${rx.requests.length} requests for ${total} events: not batched`);
    const mixed = rx.requests.filter((r) => new Set(JSON.parse(r.body).map((e) => nodeOf.get(e.event_id))).size === 2);
    assert.ok(mixed.length > 0, 'no batch held events ingested at both nodes: the batches were not formed by one node');

    const log = listItems(expectStatus(await nodes[1].api('GET', `/v1/sites/${site.id}/messages?limit=250`), 200, 'messages'));
    assert.equal(log.length, total);
    const sentIds = new Set(rx.requests.map((r) => r.webhookId));
    for (const m of log) assert.ok(sentIds.has(m.batch_id), `message ${m.id} has batch_id ${m.batch_id}`);
    t.diagnostic(`${total} events in ${rx.requests.length} batches, ${mixed.length} of them with events from both nodes`);
  },
);
