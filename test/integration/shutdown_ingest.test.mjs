// Issue 13 (graceful shutdown, the HTTP side): SIGTERM while ingest requests wait on their group
// commit. The server stops accepting, finishes the requests it has taken and only then stops the
// store: every request that reached it gets a whole answer (202, or 503 with Retry-After), never
// a reset or an empty reply; every event answered 202 is in the store after a restart; exit 0.
import assert from 'node:assert/strict';
import http from 'node:http';
import { expectStatus, itest, makeEvent, stop, waitFor } from '../helpers/harness.mjs';

// POSTs `body` on a connection of `agent`; resolves to {status, headers, text} or {error}, and
// calls `written()` once the whole request has been handed to the kernel.
function post(port, agent, key, body, written) {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/events',
      agent,
      headers: { 'content-type': 'application/json', 'x-pushhook-key': key, 'content-length': Buffer.byteLength(body) },
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), at: Date.now() }));
      res.on('error', (err) => resolve({ error: `${err.code ?? ''} ${err.message}`, at: Date.now() }));
    });
    req.on('error', (err) => resolve({ error: `${err.code ?? ''} ${err.message}`, at: Date.now() }));
    req.end(body, written);
  });
}

itest('SIGTERM with ingest requests in flight: each is answered, every 202 is durable, exit 0', async (fx, t) => {
  const serve = await fx.startServe({ args: ['--shutdown-grace', '30s'] });
  const site = await serve.createSite('Gate');

  // 64 requests of 1,000 events, each on a connection of its own: parsing and committing them
  // takes the server a second or more, so most are still in flight when SIGTERM arrives. Every
  // request is written whole before the signal is sent, so every one of them reached the server.
  const REQUESTS = 64;
  const EVENTS = 1_000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: REQUESTS });
  const bodies = Array.from({ length: REQUESTS }, (_, r) =>
    JSON.stringify(Array.from({ length: EVENTS }, (_, e) => makeEvent(r * EVENTS + e, { event_id: `gate-${r}-${e}` }))),
  );
  let written = 0;
  const answers = bodies.map((body) => post(serve.port, agent, site.ingest_key, body, () => { written += 1; }));
  const settled = [];
  answers.forEach((p, i) => p.then(() => settled.push(i)));
  await waitFor(() => written === REQUESTS, { timeoutMs: 30_000, intervalMs: 5, what: 'every request written' });

  const answeredBeforeSigterm = settled.length;
  const sigtermAt = Date.now();
  const exit = await stop(serve, 'SIGTERM', 40_000);
  const results = await Promise.all(answers);
  agent.destroy();
  t.diagnostic(`${answeredBeforeSigterm} of ${REQUESTS} answered before SIGTERM; exit ${JSON.stringify(exit)} after ${Date.now() - sigtermAt} ms`);
  assert.ok(answeredBeforeSigterm < REQUESTS / 2, `${answeredBeforeSigterm} of ${REQUESTS} were answered before SIGTERM: too few in flight for the test to prove anything`);
  assert.equal(exit.signal, null, `killed by ${exit.signal}`);
  assert.equal(exit.code, 0, 'exit code');

  const unanswered = results.map((r, i) => ({ i, ...r })).filter((r) => r.error !== undefined);
  assert.deepEqual(unanswered.map((r) => `request ${r.i}: ${r.error}`), [], 'requests that reached the server got no answer');
  for (const [i, r] of results.entries()) {
    assert.ok(r.status === 202 || r.status === 503, `request ${i}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    if (r.status === 503) assert.match(r.headers['retry-after'] ?? '', /^\d+$/, `request ${i}: 503 without Retry-After`);
    if (r.status === 202) assert.deepEqual(JSON.parse(r.text), { accepted: EVENTS, duplicates: 0 }, `request ${i}`);
  }
  // The answers that went out once the gate was closing told their keep-alive client so.
  assert.ok(results.some((r) => r.headers.connection === 'close'), 'no answer said "connection: close"');

  // After a restart, every event answered 202 is there: posting it again is a duplicate.
  const again = await fx.startServe({ dataDir: serve.dataDir, adminToken: serve.adminToken });
  const accepted = results.map((r, i) => (r.status === 202 ? i : -1)).filter((i) => i >= 0);
  assert.ok(accepted.length > 0, 'no request was accepted');
  for (const i of accepted) {
    const answer = expectStatus(await again.ingest(site.ingest_key, bodies[i]), 202, `POST /v1/events again (request ${i})`);
    assert.deepEqual(answer, { accepted: 0, duplicates: EVENTS }, `request ${i} was answered 202, but its events were not all stored`);
  }
});
