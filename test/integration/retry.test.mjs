// DESIGN section 4: retries on a non-2xx answer, with the same webhook-id and a fresh signed
// timestamp on every attempt, until a 2xx; then no more attempts.
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import {
  SAMPLE_EVENT, SAMPLE_PAYLOAD, expectStatus, itest, siteWithEndpoint, sleep, waitFor, webhookHeaders,
} from '../helpers/harness.mjs';

const STEP_MS = 300;

itest('a receiver that answers 500 twice then 204 gets exactly three attempts, same webhook-id', async (fx) => {
  const recorder = await fx.startRecorder({ respond: (_record, index) => (index < 2 ? 500 : 204) });
  const serve = await fx.startServe({ retrySchedule: `${STEP_MS}ms,${STEP_MS}ms,${STEP_MS}ms` });
  const { key, endpoint } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  expectStatus(await serve.ingest(key, SAMPLE_EVENT), 202, 'POST /v1/events');
  await waitFor(() => recorder.requests.length >= 3, { timeoutMs: 15_000, what: 'three attempts' });
  // The third attempt succeeded: a fourth would come one step (±20 %) later at most.
  await sleep(STEP_MS * 4);
  const attempts = recorder.requests;
  assert.equal(attempts.length, 3, 'exactly three attempts');

  const ids = attempts.map((r) => r.headers['webhook-id']);
  assert.match(ids[0], /^msg_/);
  assert.deepEqual(ids, [ids[0], ids[0], ids[0]], 'the same webhook-id on every attempt');

  const verifier = new Webhook(endpoint.secret);
  for (const [i, attempt] of attempts.entries()) {
    assert.equal(attempt.body, SAMPLE_PAYLOAD, `attempt ${i + 1} body`);
    assert.deepEqual(verifier.verify(attempt.body, webhookHeaders(attempt)), SAMPLE_EVENT, `attempt ${i + 1} verifies`);
  }

  // The schedule was followed: each retry waited at least its step less the 20 % jitter.
  for (let i = 1; i < attempts.length; i += 1) {
    const gap = attempts[i].at - attempts[i - 1].at;
    assert.ok(gap >= STEP_MS * 0.8 - 30, `retry ${i} came after ${gap} ms, before the ${STEP_MS} ms step less jitter`);
  }
});

itest('each attempt carries its own timestamp, signed with it', async (fx) => {
  // Steps of 1.5 s (at least 1.2 s with jitter) put the two attempts in different seconds.
  const recorder = await fx.startRecorder({ respond: (_record, index) => (index < 1 ? 503 : 204) });
  const serve = await fx.startServe({ retrySchedule: '1500ms,1500ms' });
  const { key, endpoint } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  expectStatus(await serve.ingest(key, SAMPLE_EVENT), 202, 'POST /v1/events');
  await waitFor(() => recorder.requests.length >= 2, { timeoutMs: 15_000, what: 'two attempts' });
  const [first, second] = recorder.requests;
  assert.equal(first.headers['webhook-id'], second.headers['webhook-id']);
  assert.ok(
    Number(second.headers['webhook-timestamp']) > Number(first.headers['webhook-timestamp']),
    `timestamps ${first.headers['webhook-timestamp']} then ${second.headers['webhook-timestamp']}`,
  );
  assert.notEqual(first.headers['webhook-signature'], second.headers['webhook-signature']);
  const verifier = new Webhook(endpoint.secret);
  verifier.verify(first.body, webhookHeaders(first));
  verifier.verify(second.body, webhookHeaders(second));
});
