// DESIGN sections 3, 4 and 7: an endpoint's statistics answer its circuit's state, and on a
// shared database every node answers the same: the state of the node that holds the endpoint's
// lease and delivers for it, not its own idle view. Two `pushhook serve` nodes share one
// database; one endpoint whose receiver always fails.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, waitFor } from '../helpers/harness.mjs';
import { startMisbehavingReceiver } from '../helpers/misbehaving_receiver.mjs';
import { freshDatabase, ownership, postgresSkipReason, startNodes } from '../helpers/postgres.mjs';

const TRIPPED = ['open', 'half_open'];

itest(
  'cluster: every node shows the circuit of the node that delivers',
  { timeout: 60_000, skip: postgresSkipReason() },
  async (fx, t) => {
    const { url: database } = await freshDatabase(fx);
    const nodes = await startNodes(fx, { database, count: 2, lease: '2s' });
    const rx = await startMisbehavingReceiver({ behaviour: 500, t });
    const site = await nodes[0].createSite('Cluster circuit');
    const endpoint = await nodes[0].createEndpoint(site.id, { url: `${rx.url}/failing` });
    const owner = await waitFor(
      async () => {
        const own = await ownership(nodes);
        return nodes.find((node) => own[node.nodeId].includes(endpoint.id));
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'the endpoint to be owned' },
    );
    const other = nodes.find((node) => node !== owner);
    const stats = async (node) =>
      expectStatus(await node.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}/stats`), 200, `stats from ${node.nodeId}`);

    // Before any failure, both say closed.
    for (const node of nodes) assert.equal((await stats(node)).circuit, 'closed', node.nodeId);

    // Ten failures in a row trip the owner's circuit (five are enough).
    const events = Array.from({ length: 10 }, (_, i) => makeEvent(i, { event_id: `cc-${i}` }));
    expectStatus(await other.ingest(site.ingest_key, events), 202, 'ingest');
    await waitFor(async () => TRIPPED.includes((await stats(owner)).circuit), {
      timeoutMs: 15_000, intervalMs: 100, what: `the owner (${owner.nodeId}) to open the circuit`,
    });
    // The other node learns it from the owner's next lease round (every third of the lease).
    const seen = await waitFor(async () => {
      const answer = await stats(other);
      return TRIPPED.includes(answer.circuit) && answer;
    }, { timeoutMs: 5_000, intervalMs: 100, what: `${other.nodeId} to show the owner's open circuit` });
    if (seen.circuit === 'open') assert.equal(seen.state, 'circuit_open');
    assert.ok(rx.requests.length >= 5, `${rx.requests.length} attempts`);
  },
);
