// DESIGN section 4 under faults (issue 3): one test per misbehaviour of a receiver, each with the
// exact outcome the contract promises: how many attempts, how far apart, what the message log
// and the attempts route say, what becomes of the endpoint. Plus the per-endpoint controls that
// shape delivery: disable_after, the circuit breaker, max_in_flight and rate_limit.
//
// Each retry schedule step is jittered by ±20 %, so spacing is asserted as at least 0.8 × step
// (less a little for timer slack); upper bounds are generous, only tight enough to catch a wait
// that ignored its cap or pause.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, siteWithEndpoint, sleep, waitFor } from '../helpers/harness.mjs';
import {
  allMessages, gaps, getAttempts, getEndpoint, getMessage, getStats, patchEndpoint, waitForMessageStatus,
} from '../helpers/delivery_api.mjs';
import {
  closeWithoutAnswer, hang, redirect, reset, retryAfter, slow, startMisbehavingReceiver, status,
} from '../helpers/misbehaving_receiver.mjs';

const SLACK_MS = 40; // timer and scheduling slack on a busy machine

// A receiver scripted with `behaviour`, a server with `schedule` and `args`, and a site with one
// endpoint (extra fields in `endpoint`) pointing at the receiver.
async function setup(fx, t, { behaviour = 204, schedule = '200ms,200ms,200ms', args = [], endpoint = {}, keepAliveMs } = {}) {
  const rx = await startMisbehavingReceiver({ behaviour, keepAliveMs, t });
  const serve = await fx.startServe({ retrySchedule: schedule, args });
  const { site, endpoint: ep, key } = await siteWithEndpoint(serve, `${rx.url}/hooks`, endpoint);
  return { rx, serve, site, ep, key };
}

async function ingest(serve, key, events) {
  const answer = expectStatus(await serve.ingest(key, events), 202, 'POST /v1/events');
  assert.equal(answer.accepted, Array.isArray(events) ? events.length : 1);
}

// The webhook-id (= message id) of the receiver's first request.
async function firstMessageId(rx, timeoutMs = 10_000) {
  const first = await waitFor(() => rx.requests[0], { timeoutMs, what: 'the first request' });
  assert.match(first.webhookId, /^msg_/);
  return first.webhookId;
}

function assertSpacing(requests, minGapMs, what) {
  for (const [i, gap] of gaps(requests).entries()) {
    assert.ok(gap >= minGapMs - SLACK_MS, `${what}: attempt ${i + 2} came ${gap} ms after attempt ${i + 1} (min ${minGapMs})`);
  }
}

itest('500 until the schedule runs out: failed after N+1 attempts, then redeliver delivers it', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: status(500, {}, 'boom'), schedule: '200ms,200ms,200ms' });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);

  const failed = await waitForMessageStatus(serve, site.id, id, 'failed', 15_000);
  assert.equal(failed.attempts, 4, 'three retries after the first attempt');
  assert.equal(failed.last_status_code, 500);
  assert.equal(failed.next_attempt_at, null, 'a failed message is not scheduled');

  const attempts = await getAttempts(serve, site.id, id);
  assert.deepEqual(attempts.map((a) => a.attempt), [1, 2, 3, 4]);
  assert.deepEqual(attempts.map((a) => a.status_code), [500, 500, 500, 500]);
  for (const a of attempts) assert.equal(a.response_body, 'boom');

  await sleep(800); // four more steps' worth: a fifth attempt would show
  assert.equal(rx.requests.length, 4, 'no attempt after the message failed');
  assert.deepEqual(rx.requests.map((r) => r.webhookId), [id, id, id, id]);
  assertSpacing(rx.requests, 200 * 0.8, 'retries');

  // Failed messages stay visible under the failed filter...
  const listed = await allMessages(serve, site.id, { status: 'failed' });
  assert.deepEqual(listed.map((m) => m.id), [id]);

  // ...and can be sent again.
  rx.setBehaviour(204);
  const again = await serve.api('POST', `/v1/sites/${site.id}/messages/${id}/redeliver`);
  expectStatus(again, 202, 'POST redeliver');
  const delivered = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(delivered.last_status_code, 204);
  assert.equal(rx.requests.length, 5);
  assert.equal(rx.requests[4].webhookId, id, 'a redelivery keeps the webhook-id');
  const after = await getAttempts(serve, site.id, id);
  assert.equal(after.length, 5);
  assert.equal(after[4].status_code, 204);
});

itest('503 with Retry-After: 2 (seconds) delays the retry at least 2 s', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: (_r, i) => (i === 0 ? retryAfter(503, 2) : 204),
    schedule: '200ms,200ms,5s', // longest step 5 s: the cap does not apply
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'delivered', 15_000);
  assert.equal(message.attempts, 2);
  const [gap] = gaps(rx.requests);
  assert.ok(gap >= 1_900, `the retry came ${gap} ms after a 503 with Retry-After: 2`);
  const attempts = await getAttempts(serve, site.id, id);
  assert.deepEqual(attempts.map((a) => a.status_code), [503, 204]);
});

itest('429 with Retry-After as an HTTP date delays the retry until that date', async (fx, t) => {
  let until = null;
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: (r, i) => {
      if (i > 0) return 204;
      // HTTP dates have whole seconds: this one is 2 to 3 s after the request.
      until = new Date(Math.floor((r.at + 3_000) / 1_000) * 1_000);
      return retryAfter(429, until);
    },
    schedule: '200ms,200ms,10s',
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  await waitForMessageStatus(serve, site.id, id, 'delivered', 15_000);
  const second = rx.requests[1];
  assert.ok(
    second.at >= until.getTime() - 100,
    `the retry came at ${new Date(second.at).toISOString()}, before Retry-After ${until.toUTCString()}`,
  );
  assert.ok(gaps(rx.requests)[0] >= 1_900);
});

itest('Retry-After longer than the schedule is capped at its longest step', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: (_r, i) => (i === 0 ? retryAfter(503, 30) : 204),
    schedule: '200ms,1s',
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  const [gap] = gaps(rx.requests);
  // Capped at 1 s (±20 % if the cap is jittered), and still longer than the first 200 ms step.
  // The bound above leaves room for a busy machine: 3 s is still a tenth of what was asked.
  assert.ok(gap <= 3_000, `the retry came ${gap} ms later: Retry-After: 30 was not capped at the 1 s longest step`);
  assert.ok(gap >= 750, `the retry came ${gap} ms later: Retry-After was ignored`);
});

itest('410 Gone disables the endpoint at once; its message waits, and resumes when it is enabled', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, { behaviour: 410, schedule: '200ms,200ms,200ms' });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);

  await waitFor(async () => (await getEndpoint(serve, site.id, ep.id)).enabled === false, {
    timeoutMs: 5_000,
    what: 'the endpoint to be disabled after a 410',
  });
  const stats = await getStats(serve, site.id, ep.id);
  assert.equal(stats.state, 'disabled');

  await sleep(1_200); // six schedule steps: every retry would have come and gone
  assert.equal(rx.requests.length, 1, 'no request to a disabled endpoint');
  const waiting = await getMessage(serve, site.id, id);
  assert.equal(waiting.status, 'pending', 'the message waits; it does not burn its retries');
  assert.equal(waiting.attempts, 1);
  assert.equal(waiting.last_status_code, 410);

  rx.setBehaviour(204);
  const enabled = await patchEndpoint(serve, site.id, ep.id, { enabled: true });
  assert.equal(enabled.enabled, true);
  const delivered = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(delivered.attempts, 2);
  assert.deepEqual(rx.requests.map((r) => r.webhookId), [id, id]);
});

// DESIGN section 4: one message per (event, endpoint) whose `events` filter takes the action, and
// a disabled endpoint's messages wait. An event that arrives while the endpoint is disabled (by a
// 410, disable_after or an operator) must not be silently dropped for it.
itest('events that arrive while an endpoint is disabled wait for it too, and are delivered when it is enabled', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, { behaviour: 410, schedule: '200ms,200ms,200ms' });
  await ingest(serve, key, makeEvent(1));
  await firstMessageId(rx);
  await waitFor(async () => (await getEndpoint(serve, site.id, ep.id)).enabled === false, {
    timeoutMs: 5_000,
    what: 'the endpoint to be disabled after a 410',
  });

  await ingest(serve, key, makeEvent(2));
  await sleep(600);
  assert.equal(rx.requests.length, 1, 'no request to a disabled endpoint');
  const pending = await allMessages(serve, site.id, { endpoint: ep.id, status: 'pending' });
  assert.equal(pending.length, 2, 'a pending message for the event that arrived while the endpoint was disabled');

  rx.setBehaviour(204);
  await patchEndpoint(serve, site.id, ep.id, { enabled: true });
  await waitFor(async () => (await allMessages(serve, site.id, { endpoint: ep.id, status: 'delivered' })).length === 2, {
    timeoutMs: 10_000,
    what: 'both messages delivered after re-enabling',
  });
  assert.equal(new Set(rx.requests.filter((r) => r.action.status === 204).map((r) => r.body)).size, 2);
});

itest('a receiver that hangs past --delivery-timeout: the attempt times out and is retried', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: (_r, i) => (i === 0 ? hang() : 204),
    schedule: '300ms,300ms',
    args: ['--delivery-timeout', '500ms'],
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(message.attempts, 2);

  const attempts = await getAttempts(serve, site.id, id);
  assert.equal(attempts[0].status_code, null, 'no status for an attempt that got no answer');
  assert.match(attempts[0].error, /timed? ?out/i);
  assert.ok(attempts[0].latency_ms >= 400 && attempts[0].latency_ms < 3_000, `latency ${attempts[0].latency_ms} ms`);
  assert.equal(attempts[1].status_code, 204);

  const hung = rx.requests[0];
  assert.ok(hung.endAt !== null, 'pushhook gave up the hung request');
  assert.ok(hung.endAt - hung.at < 3_000, `pushhook held the hung request ${hung.endAt - hung.at} ms`);
  assert.ok(rx.requests[1].at - hung.at >= 500 + 300 * 0.8 - SLACK_MS, 'the retry waited for the timeout and a step');
});

itest('a connection reset is an error with no status, recorded and retried', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: (_r, i) => (i === 0 ? reset() : 204) });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(message.attempts, 2);
  const attempts = await getAttempts(serve, site.id, id);
  assert.equal(attempts[0].status_code, null);
  assert.match(attempts[0].error, /reset|lost|recv/i, 'the reset is described in the attempt');
  assert.equal(attempts[1].status_code, 204);
  assertSpacing(rx.requests, 200 * 0.8, 'retry after a reset');
});

itest('a connection closed without an answer is an error, recorded and retried', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: (_r, i) => (i === 0 ? closeWithoutAnswer() : 204) });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(message.attempts, 2);
  const attempts = await getAttempts(serve, site.id, id);
  assert.equal(attempts[0].status_code, null);
  assert.match(attempts[0].error, /clos|empty|without/i, 'the closed connection is described in the attempt');
  assert.equal(attempts[1].status_code, 204);
});

itest('a slow (300 ms) answer within the timeout is delivered, with its latency recorded', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: slow(300, 204) });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'delivered', 10_000);
  assert.equal(message.attempts, 1);
  const [attempt] = await getAttempts(serve, site.id, id);
  assert.equal(attempt.status_code, 204);
  assert.ok(attempt.latency_ms >= 300, `latency_ms ${attempt.latency_ms} < the receiver's 300 ms delay`);
  assert.ok(attempt.latency_ms < 5_000, `latency_ms ${attempt.latency_ms}`);
  await sleep(500);
  assert.equal(rx.requests.length, 1);
});

itest('a receiver that closes idle connections: the next event still goes through on its first attempt', async (fx, t) => {
  // Answers that take a while open several connections at once; then all of them sit idle past
  // the receiver's keep-alive timeout and it closes them (Node closes an idle connection about
  // 1 s after its keepAliveTimeout: 300 ms here, 5 s by default).
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: slow(150), keepAliveMs: 300, schedule: '5s' });
  await ingest(serve, key, Array.from({ length: 4 }, (_, i) => makeEvent(i)));
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === 4, {
    timeoutMs: 10_000,
    what: 'the first four deliveries',
  });
  assert.ok(rx.maxInFlight >= 2, `the first four went over ${rx.maxInFlight} connection(s); the test needs several`);
  await sleep(2_500);
  rx.setBehaviour(204);
  await ingest(serve, key, makeEvent(4));
  const delivered = await waitFor(async () => {
    const all = await allMessages(serve, site.id, { status: 'delivered' });
    return all.length === 5 ? all : null;
  }, { timeoutMs: 4_000, what: 'the fifth event delivered well before the 5 s retry' });
  for (const m of delivered) assert.equal(m.attempts, 1, `message ${m.id} took ${m.attempts} attempts`);
  assert.equal(rx.requests.length, 5, 'each event reached the receiver once');
});

itest('a 302 redirect is a failure and is not followed', async (fx, t) => {
  const target = await startMisbehavingReceiver({ behaviour: 204, t });
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: redirect(`${target.url}/elsewhere`),
    schedule: '200ms,200ms',
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const message = await waitForMessageStatus(serve, site.id, id, 'failed', 10_000);
  assert.equal(message.attempts, 3);
  const attempts = await getAttempts(serve, site.id, id);
  assert.deepEqual(attempts.map((a) => a.status_code), [302, 302, 302]);
  assert.equal(rx.requests.length, 3);
  assert.equal(target.requests.length, 0, 'the redirect target must see no request');
});

itest('an endpoint that fails every attempt for --disable-after is disabled; its message waits', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, {
    behaviour: 500,
    schedule: Array(40).fill('200ms').join(','),
    // The circuit breaker stays out of the way here.
    args: ['--disable-after', '2s', '--circuit-threshold', '1000'],
  });
  await ingest(serve, key, makeEvent(1));
  const id = await firstMessageId(rx);
  const firstAt = rx.requests[0].at;

  await waitFor(async () => (await getEndpoint(serve, site.id, ep.id)).enabled === false, {
    timeoutMs: 8_000,
    intervalMs: 50,
    what: 'the endpoint to be disabled after failing for 2 s',
  });
  const disabledSeenAt = Date.now();
  assert.ok(disabledSeenAt - firstAt >= 1_800, `disabled ${disabledSeenAt - firstAt} ms after the first failure, before 2 s`);
  assert.ok(disabledSeenAt - firstAt <= 4_500, `disabled only ${disabledSeenAt - firstAt} ms after the first failure`);
  assert.ok(rx.requests.length >= 5, `only ${rx.requests.length} attempts in 2 s of 200 ms steps`);

  const count = rx.requests.length;
  await sleep(1_000);
  assert.equal(rx.requests.length, count, 'no attempt after the endpoint was disabled');
  const message = await getMessage(serve, site.id, id);
  assert.equal(message.status, 'pending', 'the message of a disabled endpoint waits');
  assert.equal((await getStats(serve, site.id, ep.id)).state, 'disabled');
});

// With max_in_flight 1 the order is exact: three failures, a pause, one probe, a doubled pause.
itest('circuit breaker: 3 consecutive failures open it for ~1 s, then one probe; a failed probe doubles the pause', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, {
    behaviour: 500,
    schedule: Array(30).fill('200ms').join(','),
    args: ['--circuit-threshold', '3', '--circuit-pause', '1s'],
    endpoint: { max_in_flight: 1 },
  });
  await ingest(serve, key, Array.from({ length: 10 }, (_, i) => makeEvent(i)));
  await waitFor(() => rx.requests.length >= 3, { timeoutMs: 10_000, what: 'three failures' });

  // While open: the stats route says so, and nothing is sent.
  const states = new Set();
  await waitFor(
    async () => {
      const s = await getStats(serve, site.id, ep.id);
      states.add(`${s.state}/${s.circuit}`);
      return rx.requests.length >= 4;
    },
    { timeoutMs: 6_000, intervalMs: 100, what: 'the probe after the pause' },
  );
  assert.ok(states.has('circuit_open/open'), `stats during the pause said ${[...states].join(', ')}`);
  const g = gaps(rx.requests);
  assert.ok(g[0] < 800 && g[1] < 800, `the first three failures were not back to back: ${g}`);
  assert.ok(g[2] >= 800, `the probe came ${g[2]} ms after the third failure, inside the 1 s pause`);
  assert.ok(g[2] <= 2_500, `the probe came ${g[2]} ms after the third failure, well after the 1 s pause`);

  // The probe failed: exactly one request, then the circuit is open again for ~2 s.
  await sleep(600);
  assert.equal(rx.requests.length, 4, 'one probe, not a burst');
  rx.setBehaviour(204);
  await waitFor(() => rx.requests.length >= 5, { timeoutMs: 6_000, what: 'the second probe' });
  const second = rx.requests[4].at - rx.requests[3].at;
  assert.ok(second >= 1_600, `the second probe came ${second} ms after the first; the pause should have doubled to 2 s`);

  // The probe succeeded: the circuit closes and the backlog drains.
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === 10, {
    timeoutMs: 10_000,
    what: 'the backlog to drain after the circuit closed',
  });
  const after = await getStats(serve, site.id, ep.id);
  assert.equal(after.circuit, 'closed');
  assert.equal(after.state, 'enabled');
});

// While the circuit is open nothing goes before its pause ends: the message log says so, rather
// than show a retry time that has passed.
itest('circuit breaker: while it is open, next_attempt_at is not before the pause ends', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, {
    behaviour: 500,
    schedule: Array(10).fill('200ms').join(','),
    args: ['--circuit-threshold', '3', '--circuit-pause', '30s'],
    endpoint: { max_in_flight: 1 },
  });
  await ingest(serve, key, Array.from({ length: 5 }, (_, i) => makeEvent(i)));
  await waitFor(async () => (await getStats(serve, site.id, ep.id)).circuit === 'open', {
    timeoutMs: 10_000, what: 'the circuit to open after three failures',
  });
  const openedAt = Date.now();
  const pending = await allMessages(serve, site.id, { status: 'pending' });
  assert.equal(pending.length, 5);
  for (const m of [...pending, await getMessage(serve, site.id, pending[0].id)]) {
    const next = Date.parse(m.next_attempt_at);
    assert.ok(next >= openedAt + 25_000, `${m.id}: next_attempt_at ${m.next_attempt_at} is inside the 30 s pause`);
    assert.ok(next <= openedAt + 31_000, `${m.id}: next_attempt_at ${m.next_attempt_at} is after the pause ends`);
  }
  assert.equal(rx.requests.length, 3, 'nothing sent while open');
});

// A receiver mended and tested with Redeliver does not wait out the circuit's pause: the
// redelivery probes at once, and its success closes the circuit.
itest('circuit breaker: a redelivery probes an open circuit at once', async (fx, t) => {
  const { rx, serve, site, ep, key } = await setup(fx, t, {
    behaviour: 500,
    schedule: Array(10).fill('5s').join(','),
    args: ['--circuit-threshold', '3', '--circuit-pause', '30s'],
    endpoint: { max_in_flight: 1 },
  });
  await ingest(serve, key, Array.from({ length: 5 }, (_, i) => makeEvent(i)));
  await waitFor(async () => (await getStats(serve, site.id, ep.id)).circuit === 'open', {
    timeoutMs: 10_000, what: 'the circuit to open after three failures',
  });
  assert.equal(rx.requests.length, 3);
  rx.setBehaviour(204);
  const [message] = await allMessages(serve, site.id, { status: 'pending' });
  expectStatus(await serve.api('POST', `/v1/sites/${site.id}/messages/${message.id}/redeliver`), 202, 'redeliver');
  await waitForMessageStatus(serve, site.id, message.id, 'delivered', 5_000);
  // Closed by it: the rest go now, long before the 30 s pause would have ended.
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === 5, {
    timeoutMs: 10_000, what: 'the rest to go once the probe closed the circuit',
  });
  assert.equal((await getStats(serve, site.id, ep.id)).circuit, 'closed');
});

// The realistic case: a receiver dies with many requests in flight. Those failures land while
// the circuit is already open; they must not stretch the first pause (it doubles per failed probe).
itest('circuit breaker: a burst of concurrent failures opens the circuit for the first pause, not longer', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, {
    behaviour: 500,
    schedule: Array(30).fill('200ms').join(','),
    args: ['--circuit-threshold', '3', '--circuit-pause', '1s'],
  });
  const N = 10;
  await ingest(serve, key, Array.from({ length: N }, (_, i) => makeEvent(i)));
  await waitFor(() => rx.requests.length >= N, { timeoutMs: 10_000, what: `${N} first attempts` });
  const burstEnd = Math.max(...rx.requests.slice(0, N).map((r) => r.endAt ?? r.at));
  assert.equal(new Set(rx.requests.slice(0, N).map((r) => r.webhookId)).size, N, 'the burst is one attempt per message');

  const probe = await waitFor(() => rx.requests[N], {
    timeoutMs: 8_000,
    what: 'a probe about 1 s (--circuit-pause) after the burst of failures',
  });
  const pause = probe.at - burstEnd;
  assert.ok(pause >= 800, `the probe came ${pause} ms after the failures, inside the pause`);
  assert.ok(pause <= 2_500, `the probe came ${pause} ms after the failures: the pause was stretched`);
  await sleep(500);
  assert.equal(rx.requests.length, N + 1, 'one probe while half-open');

  rx.setBehaviour(204);
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === N, {
    timeoutMs: 15_000,
    what: 'the backlog to drain after recovery',
  });
});

itest('max_in_flight 2: a slow receiver never sees more than 2 requests at once, and sees 2', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: slow(300, 204), endpoint: { max_in_flight: 2 } });
  const N = 10;
  await ingest(serve, key, Array.from({ length: N }, (_, i) => makeEvent(i)));
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === N, {
    timeoutMs: 15_000,
    what: 'all messages delivered',
  });
  assert.equal(rx.requests.length, N);
  assert.equal(rx.maxInFlight, 2, `max concurrency seen by the receiver: ${rx.maxInFlight}`);
  const span = rx.requests[N - 1].at - rx.requests[0].at;
  assert.ok(span >= ((N / 2) - 1) * 300 - 100, `${N} requests of 300 ms, two at a time, spread over only ${span} ms`);
});

itest('rate_limit 5/s: 20 messages take about 3 s (a burst of 5, then 5 per second)', async (fx, t) => {
  const { rx, serve, site, key } = await setup(fx, t, { behaviour: 204, endpoint: { rate_limit: 5 } });
  const N = 20;
  await ingest(serve, key, Array.from({ length: N }, (_, i) => makeEvent(i)));
  await waitFor(async () => (await allMessages(serve, site.id, { status: 'delivered' })).length === N, {
    timeoutMs: 20_000,
    what: 'all messages delivered',
  });
  assert.equal(rx.requests.length, N);
  const times = rx.requests.map((r) => r.at);
  const span = times[N - 1] - times[0];
  assert.ok(span >= 2_600, `20 requests at 5/s (burst 5) took only ${span} ms`);
  assert.ok(span <= 7_000, `20 requests at 5/s took ${span} ms`);
  // In any 1 s window: at most the burst plus one second's tokens.
  for (let i = 0; i < N; i += 1) {
    const inWindow = times.filter((x) => x >= times[i] && x < times[i] + 1_000).length;
    assert.ok(inWindow <= 11, `${inWindow} requests within 1 s from request ${i + 1}`);
  }
});
