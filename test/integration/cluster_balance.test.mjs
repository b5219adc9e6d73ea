// docs/scaling.md, "Leases": every live node gets a share of the endpoints. A node keeps at most
// ceil(endpoints / nodes), and while one node has fewer than floor(endpoints / nodes) the others
// give back down to the floor: 4 endpoints on 3 nodes end 2 / 1 / 1, never 2 / 2 / 0. A node that
// joins a running cluster gets its share from the others, who drain before they give it.
import assert from 'node:assert/strict';
import { itest, randomToken, waitFor } from '../helpers/harness.mjs';
import { freshDatabase, ownership, postgresSkipReason, randomSecretsKey, startNodes } from '../helpers/postgres.mjs';

const ENDPOINTS = 4;

function describe(own) {
  return Object.entries(own)
    .map(([node, endpoints]) => `${node}: ${endpoints.length}`)
    .join(', ');
}

itest(
  'cluster: 4 endpoints on 3 nodes leave no node idle, also for a node that joins later',
  { timeout: 90_000, skip: postgresSkipReason() },
  async (fx, t) => {
    let last = null;
    const { url: database } = await freshDatabase(fx);
    // Two nodes first: they split the four endpoints between them.
    const shared = { database, lease: '1500ms', adminToken: randomToken(), secretsKey: randomSecretsKey() };
    const first = await startNodes(fx, { ...shared, count: 2 });
    const site = await first[0].createSite('Balance');
    for (let i = 0; i < ENDPOINTS; i += 1) {
      await first[0].createEndpoint(site.id, { url: `http://127.0.0.1:9/ep${i}` });
    }
    const settled = async (nodes) =>
      waitFor(
        async () => {
          const own = await ownership(nodes);
          last = own;
          const counts = Object.values(own).map((e) => e.length);
          const all = Object.values(own).flat();
          const even = counts.every((n) => n >= Math.floor(ENDPOINTS / nodes.length) && n >= 1);
          return all.length === ENDPOINTS && new Set(all).size === ENDPOINTS && even && own;
        },
        { timeoutMs: 20_000, intervalMs: 200, what: `${ENDPOINTS} endpoints spread over ${nodes.length} nodes with none idle` },
      ).catch((err) => {
        throw new Error(`${err.message}; last ownership: ${JSON.stringify(last)}`);
      });
    const two = await settled(first);
    t.diagnostic(`two nodes: ${describe(two)}`);
    assert.deepEqual(Object.values(two).map((e) => e.length).sort(), [2, 2]);

    // A third node joins: the others give it at least one endpoint.
    const [third] = await startNodes(fx, { ...shared, count: 1, prefix: 'late' });
    const nodes = [...first, third];
    const three = await settled(nodes);
    t.diagnostic(`three nodes: ${describe(three)}`);
    assert.deepEqual(Object.values(three).map((e) => e.length).sort(), [1, 1, 2]);
  },
);
