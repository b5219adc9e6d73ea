// DESIGN section 7 (PostgreSQL, scale-out): three `pushhook serve` nodes share one database with a
// 2 s endpoint lease; six endpoints of one site point at a recording receiver. Events are posted
// round-robin to the three nodes; a third of the way through, one node is killed with SIGKILL.
//
// Checked: before the kill, the six endpoints are spread over the three nodes (each owns some,
// none is owned twice); after it, the dead node's endpoints get deliveries again within
// lease × 3 + 2 s; the survivors' GET /v1/cluster lists two live nodes that together own all six
// endpoints; and every event acknowledged with a 202 by any node reaches every endpoint, under
// one webhook-id per (event, endpoint) (repeats of a message are allowed and counted).
//
// The client behaves as a real one would: a request that fails or is refused is posted again,
// same batch and same event_ids, to the next node; event_id de-duplication makes that safe.
import assert from 'node:assert/strict';
import { itest, makeEvent, request, sleep, stop, waitFor } from '../helpers/harness.mjs';
import { startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';
import { clusterView, freshDatabase, ownership, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

const NODES = 3;
const ENDPOINTS = 6;
const LEASE_MS = 2_000;
const TOTAL = 3_000;
const BATCH = 25;
const BATCH_INTERVAL_MS = 50; // 120 batches over about 6 s
const KILL_AFTER = 1_000; // acknowledged events before the kill
const MAX_FAILOVER_MS = LEASE_MS * 3 + 2_000;

itest(
  'cluster: kill -9 of one of three nodes: its endpoints move to the survivors, nothing acknowledged is lost',
  { timeout: 110_000, skip: postgresSkipReason() },
  async (fx, t) => {
    const { url: database } = await freshDatabase(fx);
    const nodes = await startNodes(fx, { database, count: NODES, lease: `${LEASE_MS}ms` });
    const rx = await startMisbehavingReceiver({ behaviour: 204, t });

    const site = await nodes[0].createSite('Cluster node loss');
    const endpointOfPath = new Map(); // receiver path -> endpoint id
    for (let i = 0; i < ENDPOINTS; i += 1) {
      const ep = await nodes[0].createEndpoint(site.id, { url: `${rx.url}/ep${i}`, payload_format: 'extended' });
      endpointOfPath.set(`/ep${i}`, ep.id);
    }
    const endpointIds = [...endpointOfPath.values()].sort();
    const key = site.ingest_key;

    for (const node of nodes) {
      const view = await clusterView(node);
      assert.equal(view.node_id, node.nodeId, 'GET /v1/cluster names the node as --node-id did');
      assert.equal(view.lease_ms, LEASE_MS, 'GET /v1/cluster reports --lease');
    }

    // The endpoints settle on the three nodes: all owned, none twice, every node owning some.
    const settleFrom = Date.now();
    const before = await waitFor(
      async () => {
        const own = await ownership(nodes);
        const all = Object.values(own).flat();
        const settled =
          all.length === ENDPOINTS &&
          new Set(all).size === ENDPOINTS &&
          Object.values(own).every((ids) => ids.length > 0);
        return settled && own;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: `the ${ENDPOINTS} endpoints to be owned by all ${NODES} nodes, each by one` },
    );
    const counts = Object.values(before).map((ids) => ids.length);
    t.diagnostic(`ownership settled in ${Date.now() - settleFrom} ms: ${JSON.stringify(before)}`);
    assert.ok(
      Math.max(...counts) - Math.min(...counts) <= 1,
      `endpoints are not spread evenly over the live nodes: ${JSON.stringify(before)}`,
    );

    // The load: TOTAL events in batches, round-robin over the nodes, each batch re-posted to the
    // next node until one acknowledges it.
    const posted = new Set();
    const acked = new Set();
    const stats = { requests: 0, failed: 0, refused: 0, duplicates: 0 };
    const load = (async () => {
      const startedAt = Date.now();
      let target = 0;
      for (let b = 0; b * BATCH < TOTAL; b += 1) {
        const wait = startedAt + b * BATCH_INTERVAL_MS - Date.now();
        if (wait > 0) await sleep(wait);
        const batch = Array.from({ length: BATCH }, (_, i) => {
          const n = b * BATCH + i;
          return makeEvent(n, { event_id: `nl-${n}` });
        });
        for (const e of batch) posted.add(e.event_id);
        const batchFrom = Date.now();
        for (;;) {
          const node = nodes[target];
          target = (target + 1) % nodes.length;
          stats.requests += 1;
          let answer = null;
          try {
            answer = await request(node.baseUrl, 'POST', '/v1/events', {
              body: JSON.stringify(batch),
              headers: { 'content-type': 'application/json', 'x-pushhook-key': key },
            });
          } catch {
            stats.failed += 1;
          }
          if (answer?.status === 202) {
            assert.equal(answer.json.accepted + answer.json.duplicates, BATCH, `202 ${answer.text}`);
            stats.duplicates += answer.json.duplicates;
            for (const e of batch) acked.add(e.event_id);
            break;
          }
          if (answer) stats.refused += 1;
          if (Date.now() - batchFrom > 15_000) {
            throw new Error(`batch ${b} was not acknowledged by any node within 15 s (last answer ${answer?.status} ${answer?.text})`);
          }
          await sleep(20);
        }
      }
    })();

    let victim;
    let killAt;
    let owned;
    try {
      await waitFor(() => acked.size >= KILL_AFTER, { timeoutMs: 20_000, what: `${KILL_AFTER} events acknowledged` });
      victim = nodes[1];
      owned = [...(await clusterView(victim)).owned_endpoints].sort();
      assert.ok(owned.length > 0, `${victim.nodeId} owned no endpoint just before the kill`);
      killAt = Date.now();
      const killed = await stop(victim, 'SIGKILL');
      assert.equal(killed.signal, 'SIGKILL', `${victim.nodeId} was not running at the kill`);
      t.diagnostic(`killed ${victim.nodeId} (owning ${owned.join(', ')}) after ${acked.size} events were acknowledged`);
    } finally {
      await load;
    }
    const survivors = nodes.filter((n) => n !== victim);
    t.diagnostic(`load done ${Date.now() - killAt} ms after the kill: ${JSON.stringify(stats)}`);

    // Deliveries, per endpoint: event_id -> {count, webhookIds, first arrival}.
    const byEndpoint = new Map(endpointIds.map((id) => [id, new Map()]));
    const stray = [];
    let scanned = 0;
    const scan = () => {
      for (; scanned < rx.requests.length; scanned += 1) {
        const r = rx.requests[scanned];
        const endpointId = endpointOfPath.get(r.url);
        if (!endpointId) {
          stray.push(r.url);
          continue;
        }
        const eventId = JSON.parse(r.body).event_id;
        const seen = byEndpoint.get(endpointId);
        const entry = seen.get(eventId) ?? { count: 0, webhookIds: new Set(), at: r.at };
        entry.count += 1;
        entry.webhookIds.add(r.webhookId);
        seen.set(eventId, entry);
      }
    };

    // The dead node's endpoints get deliveries again (from a survivor: nothing the dead node sent
    // can reach the receiver this long after the kill).
    const afterKill = killAt + 200;
    const firstAfterKill = async () =>
      Object.fromEntries(
        owned.map((id) => {
          const path = [...endpointOfPath].find(([, e]) => e === id)[0];
          const r = rx.requests.find((x) => x.url === path && x.at > afterKill);
          return [id, r ? r.at - killAt : null];
        }),
      );
    let recovery;
    await waitFor(
      async () => {
        recovery = await firstAfterKill();
        return Object.values(recovery).every((ms) => ms !== null);
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `deliveries to the dead node's endpoints (${owned.join(', ')}) after the kill` },
    );
    const failover = Math.max(...Object.values(recovery));
    t.diagnostic(`first delivery after the kill, per endpoint of ${victim.nodeId} (ms): ${JSON.stringify(recovery)}`);
    assert.ok(
      failover <= MAX_FAILOVER_MS,
      `the dead node's endpoints waited ${failover} ms for a delivery after the kill (limit ${MAX_FAILOVER_MS} ms): ${JSON.stringify(recovery)}`,
    );

    // The survivors see two live nodes and own all six endpoints between them.
    const after = await waitFor(
      async () => {
        const views = await Promise.all(survivors.map((n) => clusterView(n)));
        const live = views.map((v) => v.nodes.map((n) => n.node_id).sort());
        const all = views.flatMap((v) => v.owned_endpoints);
        const expected = survivors.map((n) => n.nodeId).sort();
        const ok =
          live.every((ids) => JSON.stringify(ids) === JSON.stringify(expected)) &&
          all.length === ENDPOINTS &&
          new Set(all).size === ENDPOINTS;
        return ok && views;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: `GET /v1/cluster on the survivors to list 2 live nodes owning all ${ENDPOINTS} endpoints` },
    );
    t.diagnostic(`${Date.now() - killAt} ms after the kill, survivors: ${JSON.stringify(after.map((v) => ({ node: v.node_id, owned: v.owned_endpoints, nodes: v.nodes })))}`);
    assert.deepEqual(
      [...after.flatMap((v) => v.owned_endpoints)].sort(),
      endpointIds,
      'the survivors together own every endpoint',
    );
    for (const view of after) {
      for (const n of view.nodes) {
        assert.ok(!Number.isNaN(Date.parse(n.last_seen)), `nodes[].last_seen is a timestamp: ${JSON.stringify(n)}`);
        assert.equal(typeof n.endpoints, 'number', `nodes[].endpoints is a count: ${JSON.stringify(n)}`);
      }
    }

    // Every acknowledged event reaches every endpoint.
    const missing = () => {
      scan();
      const out = {};
      for (const [endpointId, seen] of byEndpoint) {
        const lost = [...acked].filter((id) => !seen.has(id));
        if (lost.length) out[endpointId] = lost;
      }
      return out;
    };
    try {
      await waitFor(() => Object.keys(missing()).length === 0, {
        timeoutMs: 45_000,
        intervalMs: 250,
        what: `all ${acked.size} acknowledged events at all ${ENDPOINTS} endpoints`,
      });
    } catch (err) {
      const summary = Object.entries(missing()).map(([id, lost]) => `${id}${owned.includes(id) ? ' (dead node\'s)' : ''}: ${lost.length} missing, e.g. ${lost.slice(0, 5).join(' ')}`);
      throw new Error(`${err.message}\n${summary.join('\n')}`);
    }
    await sleep(500);
    scan();

    let repeats = 0;
    const repeatsOf = {}; // endpoint -> {repeats, firstSentBeforeKill, firstSentLast2sBeforeKill}
    const twoMessages = [];
    const notPosted = [];
    for (const [endpointId, seen] of byEndpoint) {
      const r = { repeats: 0, firstBeforeKill: 0, firstInLast2sBeforeKill: 0 };
      for (const [eventId, entry] of seen) {
        repeats += entry.count - 1;
        if (entry.count > 1) {
          r.repeats += entry.count - 1;
          if (entry.at < killAt) r.firstBeforeKill += 1;
          if (entry.at < killAt && entry.at >= killAt - 2_000) r.firstInLast2sBeforeKill += 1;
        }
        if (entry.webhookIds.size > 1) twoMessages.push(`${endpointId}/${eventId}: ${[...entry.webhookIds]}`);
        if (!posted.has(eventId)) notPosted.push(`${endpointId}/${eventId}`);
      }
      if (r.repeats) repeatsOf[`${endpointId}${owned.includes(endpointId) ? ` (${victim.nodeId}'s)` : ''}`] = r;
    }
    t.diagnostic(`repeats by endpoint (and how many of the repeated events were first sent before the kill): ${JSON.stringify(repeatsOf)}`);
    t.diagnostic(
      `${acked.size} events acknowledged (${stats.duplicates} reported duplicate on a re-post); ${rx.requests.length} deliveries ` +
        `for ${acked.size * ENDPOINTS} (event, endpoint) pairs: ${repeats} repeats; failover ${failover} ms`,
    );
    assert.deepEqual(stray, [], 'requests to paths no endpoint has');
    assert.deepEqual(notPosted, [], 'deliveries of events that were never posted');
    assert.deepEqual(twoMessages.slice(0, 10), [], `events delivered to one endpoint under more than one webhook-id (${twoMessages.length}; ${repeats} repeats in all)`);
    assert.equal(acked.size, TOTAL, 'every batch was acknowledged in the end');
  },
);
