// Issue 4, limits against abuse: a per-ingest-key rate limit answered 429 with Retry-After, and
// slow clients (slowloris) cut off by the header and body timeouts, while the server keeps
// answering everyone else.
import assert from 'node:assert/strict';
import net from 'node:net';
import { expectStatus, itest, makeEvent, request, sleep } from '../helpers/harness.mjs';

itest('an ingest key over its rate limit gets 429 with Retry-After; other keys do not', async (fx) => {
  const serve = await fx.startServe({ args: ['--ingest-rate-limit', '5'] });
  const abuser = await serve.createSite('Abuser');
  const neighbour = await serve.createSite('Neighbour');

  // 20 requests at once. The key's bucket holds a second's worth (5) and refills 5 a second: 5
  // go through, and at most as many more as refilled while the 20 were answered (bounded by the
  // time they took, not assumed: a starved test process can take a second or more).
  const started = performance.now();
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => serve.ingest(abuser.ingest_key, makeEvent(i))));
  const seconds = (performance.now() - started) / 1000;
  const statuses = answers.map((a) => a.status);
  const accepted = statuses.filter((s) => s === 202).length;
  assert.deepEqual(statuses.filter((s) => s !== 202 && s !== 429), [], `statuses ${statuses}`);
  assert.ok(accepted >= 5, `statuses ${statuses}`);
  assert.ok(accepted <= 5 + Math.ceil(5 * seconds) + 1, `${accepted} accepted in ${seconds.toFixed(2)} s: ${statuses}`);
  const refused = answers.filter((a) => a.status === 429);
  assert.ok(refused.length > 0 || seconds > 2.5, `none refused in ${seconds.toFixed(2)} s: ${statuses}`);
  for (const answer of refused) {
    assert.equal(JSON.parse(answer.text).error.code, 'rate_limited');
    assert.ok(Number(answer.headers.get('retry-after')) >= 1, `retry-after ${answer.headers.get('retry-after')}`);
  }
  // The neighbour's key has its own budget.
  expectStatus(await serve.ingest(neighbour.ingest_key, makeEvent(100)), 202, 'neighbour ingest');
  // And the abuser's recovers with time.
  await sleep(1200);
  expectStatus(await serve.ingest(abuser.ingest_key, makeEvent(200)), 202, 'ingest after waiting');
});

// Opens a connection, sends `prefix` at once and then `head` one byte at a time, `intervalMs`
// apart, until the server closes it; resolves with the time the server took to hang up, bounded
// by `maxMs`.
function trickle(port, head, intervalMs, maxMs, prefix = '') {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1', () => socket.write(prefix));
    let i = 0;
    const timer = setInterval(() => {
      if (i < head.length && !socket.destroyed) socket.write(head[i++]);
    }, intervalMs);
    const done = (closed) => {
      clearInterval(timer);
      clearTimeout(limit);
      socket.destroy();
      resolve({ closed, ms: Date.now() - started });
    };
    const limit = setTimeout(() => done(false), maxMs);
    socket.on('close', () => done(true));
    socket.on('error', () => {});
  });
}

itest('slow headers and slow bodies are cut off while others are served', async (fx) => {
  const serve = await fx.startServe({ args: ['--header-timeout', '1500ms', '--body-timeout', '1500ms'] });
  const site = await serve.createSite('Slowloris');
  const slowHeader = 'POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nx-padding: ' + 'a'.repeat(200);
  const bodyHeader = `POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
    `x-pushhook-key: ${site.ingest_key}\r\ncontent-length: 500\r\n\r\n`;
  // Ten clients crawl through their headers; one sends its header at once and crawls through
  // its body, which the body timeout must end.
  const attackers = [
    ...Array.from({ length: 10 }, () => trickle(serve.port, slowHeader, 100, 8000)),
    trickle(serve.port, ' '.repeat(500), 100, 8000, bodyHeader),
  ];
  // Meanwhile everyone else is answered promptly.
  for (let i = 0; i < 5; i++) {
    const started = Date.now();
    expectStatus(await request(serve.baseUrl, 'GET', '/healthz'), 200, 'healthz during the attack');
    expectStatus(await serve.ingest(site.ingest_key, makeEvent(i)), 202, 'ingest during the attack');
    assert.ok(Date.now() - started < 1000, 'answered promptly');
    await sleep(200);
  }
  const results = await Promise.all(attackers);
  for (const r of results) {
    assert.ok(r.closed, 'the server hung up on the slow client');
    assert.ok(r.ms >= 1400 && r.ms < 5000, `cut off after ${r.ms} ms (timeout 1500 ms)`);
  }
  expectStatus(await request(serve.baseUrl, 'GET', '/healthz'), 200, 'healthz after the attack');
});
