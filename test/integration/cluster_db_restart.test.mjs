// DESIGN sections 2, 7 and 8: two `pushhook serve` nodes on a PostgreSQL server of the test's own;
// under a steady load of small batches to both nodes, the server is killed (immediate shutdown)
// and started again about 3 s later on the same port.
//
// Checked: while the database is down, ingest answers 503 with a JSON error, never 202, and
// /readyz answers 503, both within a few seconds of the kill; once it is back, both nodes answer
// 202 and /readyz 200 again within 15 s, by themselves (same processes, no restart); every event
// acknowledged with a 202, before, during or after the outage, is delivered; and no event of a
// request answered 503 while the database was down is delivered (the 503 told the truth).
//
// Only requests started after the server was confirmed down (pg_ctl had returned and its port
// refused connections) and answered before it was started again count as "during the outage":
// a request in flight at the kill may have been committed, and one answered after the restart
// may have been stored then.
import assert from 'node:assert/strict';
import { itest, makeEvent, sleep, waitFor } from '../helpers/harness.mjs';
import { startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';
import { clusterView, freshDatabase, listening, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

const BATCH = 5;
const PAUSE_MS = 25; // between one node's requests
const REQUEST_TIMEOUT_MS = 10_000;
const DOWN_MS = 3_000;
const NOTICE_MS = 5_000; // from confirmed down to 503s on ingest and /readyz
const RECOVER_MS = 15_000; // from the server back up to 202s and /readyz 200

// One HTTP call with its own timeout; resolves to {status, json, text} or {error}.
async function call(url, init = {}) {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, json, text, retryAfter: response.headers.get('retry-after') };
  } catch (err) {
    return { status: null, error: err.name === 'TimeoutError' ? 'timeout' : err.message };
  }
}

itest(
  'cluster: PostgreSQL killed and restarted under load: 503 while down, recovery without restart, nothing acknowledged lost',
  { timeout: 110_000, skip: postgresSkipReason({ ownServer: true }) },
  async (fx, t) => {
    const { url: database, server } = await freshDatabase(fx, { ownServer: true });
    const nodes = await startNodes(fx, { database, count: 2, lease: '2s' });
    const pids = nodes.map((n) => n.pid);
    const rx = await startMisbehavingReceiver({ behaviour: 204, t });
    const site = await nodes[0].createSite('Cluster database restart');
    const endpoint = await nodes[0].createEndpoint(site.id, { url: `${rx.url}/hooks`, payload_format: 'extended' });
    const key = site.ingest_key;

    // The load: per node, one request at a time, BATCH new events each, every attempt recorded.
    const attempts = []; // {node, startedAt, endedAt, status, json, error, ids}
    let running = true;
    const loadFrom = Date.now();
    const loop = async (node) => {
      for (let n = 0; running && n < 3_000 && Date.now() - loadFrom < 70_000; n += 1) {
        const ids = Array.from({ length: BATCH }, (_, i) => `dr-${node.nodeId}-${n}-${i}`);
        const startedAt = Date.now();
        const answer = await call(`${node.baseUrl}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-pushhook-key': key },
          body: JSON.stringify(ids.map((id, i) => makeEvent(n * BATCH + i, { event_id: id }))),
        });
        attempts.push({ node: node.nodeId, startedAt, endedAt: Date.now(), ids, ...answer });
        await sleep(PAUSE_MS);
      }
    };
    const loads = Promise.all(nodes.map((node) => loop(node)));
    const readyz = (node) => call(`${node.baseUrl}/readyz`);
    const of = (node, from, status) => attempts.filter((a) => a.node === node.nodeId && a.startedAt >= from && a.status === status);

    let downAt;
    let restartFrom;
    let upAt;
    const noticed = {};
    const recovered = {};
    try {
      await waitFor(() => nodes.every((node) => of(node, loadFrom, 202).length >= 10), {
        timeoutMs: 15_000,
        what: 'both nodes acknowledging the load',
      });
      for (const node of nodes) assert.equal((await readyz(node)).status, 200, `${node.nodeId} /readyz before the kill`);

      const ownersBefore = await Promise.all(nodes.map(async (node) => [node.nodeId, (await clusterView(node)).owned_endpoints]));
      await server.kill();
      assert.equal(await listening(server.port), false, 'PostgreSQL still accepts connections after pg-cluster kill');
      downAt = Date.now();

      // Within NOTICE_MS, each node answers 503 with a JSON error on ingest and on /readyz.
      await Promise.all(
        nodes.map(async (node) => {
          const ingest = await waitFor(() => of(node, downAt, 503)[0], {
            timeoutMs: NOTICE_MS,
            intervalMs: 20,
            what: `${node.nodeId} to answer 503 on POST /v1/events after the database went down`,
          });
          const ready = await waitFor(async () => ((await readyz(node)).status === 503 ? Date.now() : null), {
            timeoutMs: NOTICE_MS,
            intervalMs: 100,
            what: `${node.nodeId} /readyz to answer 503 after the database went down`,
          });
          noticed[node.nodeId] = { ingest503Ms: ingest.endedAt - downAt, readyz503Ms: ready - downAt, first503: ingest.text };
        }),
      );
      t.diagnostic(`database down: ${JSON.stringify(noticed)}`);

      await sleep(Math.max(0, downAt + DOWN_MS - Date.now()));
      restartFrom = Date.now();
      await server.start();
      upAt = Date.now();

      // Back within RECOVER_MS: 202 on ingest, 200 on /readyz, the same processes.
      await Promise.all(
        nodes.map(async (node) => {
          const ingest = await waitFor(() => of(node, upAt, 202)[0], {
            timeoutMs: RECOVER_MS,
            intervalMs: 50,
            what: `${node.nodeId} to answer 202 again after the database came back`,
          });
          const ready = await waitFor(async () => ((await readyz(node)).status === 200 ? Date.now() : null), {
            timeoutMs: RECOVER_MS,
            intervalMs: 100,
            what: `${node.nodeId} /readyz to answer 200 again after the database came back`,
          });
          recovered[node.nodeId] = { ingest202Ms: ingest.endedAt - upAt, readyz200Ms: ready - upAt };
        }),
      );
      t.diagnostic(`database back (restart took ${upAt - restartFrom} ms): ${JSON.stringify(recovered)}`);
      await sleep(1_000); // more load against the recovered cluster
      const owners = await Promise.all(nodes.map(async (node) => [node.nodeId, (await clusterView(node)).owned_endpoints]));
      t.diagnostic(`endpoint ownership before the kill ${JSON.stringify(ownersBefore)}, after the recovery ${JSON.stringify(owners)}`);
    } finally {
      running = false;
      await loads;
    }
    nodes.forEach((node, i) => {
      assert.ok(node.proc.exitCode === null && node.proc.signalCode === null, `${node.nodeId} exited during the test`);
      assert.equal(node.proc.pid, pids[i], `${node.nodeId} is the process started before the outage`);
    });

    // During the outage: never 202; always 503 with a JSON error once the node had noticed.
    const during = attempts.filter((a) => a.startedAt >= downAt && a.endedAt <= restartFrom);
    const statuses = {};
    for (const a of during) statuses[a.status ?? a.error] = (statuses[a.status ?? a.error] ?? 0) + 1;
    t.diagnostic(`${during.length} requests during the outage, by answer: ${JSON.stringify(statuses)}`);
    const acked202 = during.filter((a) => a.status === 202);
    assert.deepEqual(
      acked202.map((a) => `${a.node} at +${a.startedAt - downAt} ms: ${a.text}`),
      [],
      'requests answered 202 while the database was down',
    );
    for (const node of nodes) {
      const firstNotice = downAt + noticed[node.nodeId].ingest503Ms;
      const afterNotice = during.filter((a) => a.node === node.nodeId && a.startedAt >= firstNotice);
      const other = afterNotice.filter((a) => a.status !== 503 || typeof a.json?.error?.code !== 'string');
      assert.deepEqual(
        other.slice(0, 5).map((a) => `+${a.startedAt - downAt} ms: ${a.status ?? a.error} ${a.text ?? ''}`),
        [],
        `${node.nodeId}: answers other than 503 with a JSON error while the database was down (${other.length} of ${afterNotice.length})`,
      );
    }

    // Everything acknowledged is delivered; nothing refused during the outage is.
    const acked = new Set(attempts.filter((a) => a.status === 202).flatMap((a) => a.ids));
    const refused = new Set(during.filter((a) => a.status === 503).flatMap((a) => a.ids));
    const delivered = new Map(); // event_id -> deliveries
    let scanned = 0;
    const scan = () => {
      for (; scanned < rx.requests.length; scanned += 1) {
        const eventId = JSON.parse(rx.requests[scanned].body).event_id;
        delivered.set(eventId, (delivered.get(eventId) ?? 0) + 1);
      }
    };
    const lost = () => {
      scan();
      return [...acked].filter((id) => !delivered.has(id));
    };
    try {
      await waitFor(() => lost().length === 0, { timeoutMs: 30_000, intervalMs: 200, what: `all ${acked.size} acknowledged events delivered` });
    } catch (err) {
      const missing = lost();
      const where = missing.slice(0, 5).map((id) => {
        const a = attempts.find((x) => x.ids.includes(id));
        return `${id} (202 from ${a.node} at ${a.startedAt - downAt} ms from the kill)`;
      });
      const views = await Promise.all(nodes.map(async (node) => (await node.api('GET', '/v1/cluster')).text));
      const stats = await Promise.all(nodes.map(async (node) => (await node.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats`)).text));
      throw new Error(
        `${err.message}: ${missing.length} missing, e.g. ${where.join(', ')}; GET /v1/cluster: ${views.join(' ')}; ` +
          `endpoint stats per node: ${stats.join(' ')}`,
      );
    }
    await sleep(500);
    scan();
    const repeats = [...delivered.values()].reduce((sum, c) => sum + c - 1, 0);
    const refusedButDelivered = [...refused].filter((id) => delivered.has(id));
    t.diagnostic(
      `${attempts.length} requests, ${acked.size} events acknowledged, ${refused.size} refused during the outage; ` +
        `${rx.requests.length} deliveries (${repeats} repeats)`,
    );
    assert.ok(attempts.some((a) => a.status === 202 && a.startedAt >= upAt), 'no event was acknowledged after the recovery');
    assert.deepEqual(refusedButDelivered.slice(0, 10), [], `events answered 503 while the database was down were delivered (${refusedButDelivered.length})`);
  },
);
