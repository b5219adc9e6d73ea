// DESIGN sections 4 and 7: an endpoint's limits hold for the whole cluster, not per node. Three
// `pushhook serve` nodes share one database; events for one endpoint are posted to all three, so
// every node holds messages for it, but only the node that owns the endpoint's lease sends them.
//
// max_in_flight 4 against a receiver that answers after 100 ms: the receiver never sees more
// than 4 requests at once, and does see at least 2 (the limit is used, not replaced by 1).
// rate_limit 20/s: the whole cluster sends at 20/s after the burst, as one node would.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, waitFor } from '../helpers/harness.mjs';
import { slow, startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';
import { clusterView, freshDatabase, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

const NODES = 3;

// Starts the nodes and one endpoint for `rx` with `endpointOptions`; waits until a node owns it.
async function setup(fx, rx, endpointOptions) {
  const { url: database } = await freshDatabase(fx);
  const nodes = await startNodes(fx, { database, count: NODES, lease: '2s' });
  const site = await nodes[0].createSite('Cluster limits');
  const endpoint = await nodes[0].createEndpoint(site.id, { url: `${rx.url}/hooks`, payload_format: 'extended', ...endpointOptions });
  const owners = await waitFor(
    async () => {
      const views = await Promise.all(nodes.map((n) => clusterView(n)));
      const owning = views.filter((v) => v.owned_endpoints.includes(endpoint.id)).map((v) => v.node_id);
      return owning.length > 0 && owning;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: `a node to own ${endpoint.id}` },
  );
  assert.equal(owners.length, 1, `${endpoint.id} is owned by more than one node: ${owners}`);
  return { nodes, site, endpoint, key: site.ingest_key, owner: owners[0] };
}

// Posts `count` events as batches of `batch`, round-robin over the nodes; resolves to their ids.
async function postSpread(nodes, key, count, batch, prefix) {
  const ids = [];
  for (let i = 0, b = 0; i < count; i += batch, b += 1) {
    const events = Array.from({ length: Math.min(batch, count - i) }, (_, j) => {
      const eventId = `${prefix}-${i + j}`;
      ids.push(eventId);
      return makeEvent(i + j, { event_id: eventId });
    });
    const node = nodes[b % nodes.length];
    const answer = expectStatus(await node.ingest(key, events), 202, `POST /v1/events to ${node.nodeId}`);
    assert.equal(answer.accepted, events.length, `${node.nodeId} accepted ${answer.accepted} of ${events.length}`);
  }
  return ids;
}

// event_id -> first arrival time at `rx`, for the requests it answered.
function arrivals(rx) {
  const out = new Map();
  for (const r of rx.requests) {
    const eventId = JSON.parse(r.body).event_id;
    if (!out.has(eventId)) out.set(eventId, r.at);
  }
  return out;
}

itest(
  'cluster: max_in_flight 4 holds across three nodes (peak ≤ 4, and ≥ 2)',
  { timeout: 90_000, skip: postgresSkipReason() },
  async (fx, t) => {
    const N = 300;
    const rx = await startMisbehavingReceiver({ behaviour: slow(100, 204), t });
    const { nodes, endpoint, key, owner } = await setup(fx, rx, { max_in_flight: 4 });
    const ids = await postSpread(nodes, key, N, 10, 'mif');
    await waitFor(() => {
      const seen = arrivals(rx);
      return ids.every((id) => seen.has(id));
    }, {
      timeoutMs: 40_000,
      intervalMs: 200,
      what: `all ${N} events delivered to ${endpoint.id}`,
    });
    const times = [...arrivals(rx).values()];
    const span = Math.max(...times) - Math.min(...times);
    t.diagnostic(
      `${endpoint.id} owned by ${owner}: ${rx.requests.length} requests for ${N} events over ${span} ms, ` +
        `at most ${rx.maxInFlight} at once`,
    );
    assert.ok(rx.maxInFlight <= 4, `the receiver saw ${rx.maxInFlight} requests at once with max_in_flight 4 on a 3-node cluster`);
    assert.ok(rx.maxInFlight >= 2, `the receiver never saw more than ${rx.maxInFlight} request at once: max_in_flight 4 was not used`);
    // 300 requests of 100 ms, at most 4 at a time, cannot take less than 7.5 s.
    assert.ok(span >= (N / 4 - 1) * 100, `${N} requests of 100 ms, at most 4 at a time, spread over only ${span} ms`);
  },
);

itest(
  'cluster: rate_limit 20/s holds across three nodes (a burst of 20, then 20 per second)',
  { timeout: 90_000, skip: postgresSkipReason() },
  async (fx, t) => {
    const N = 100;
    const RATE = 20;
    const rx = await startMisbehavingReceiver({ behaviour: 204, t });
    const { nodes, endpoint, key, owner } = await setup(fx, rx, { rate_limit: RATE });
    const ids = await postSpread(nodes, key, N, 5, 'rl');
    await waitFor(() => {
      const seen = arrivals(rx);
      return ids.every((id) => seen.has(id));
    }, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `all ${N} events delivered to ${endpoint.id}`,
    });
    const times = rx.requests.map((r) => r.at).sort((a, b) => a - b);
    const span = times[times.length - 1] - times[0];
    let busiest = 0;
    for (let i = 0; i < times.length; i += 1) {
      busiest = Math.max(busiest, times.filter((x) => x >= times[i] && x < times[i] + 1_000).length);
    }
    t.diagnostic(`${endpoint.id} owned by ${owner}: ${times.length} requests over ${span} ms, at most ${busiest} in any 1 s`);
    // After the burst of RATE, the other N - RATE come at RATE per second: 4 s (less 10 % slack).
    assert.ok(span >= ((N - RATE) / RATE) * 1_000 * 0.9, `${N} requests at ${RATE}/s (burst ${RATE}) took only ${span} ms on a 3-node cluster`);
    assert.ok(busiest <= 2 * RATE + 1, `${busiest} requests within 1 s at rate_limit ${RATE}`);
  },
);
