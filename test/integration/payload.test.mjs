// DESIGN sections 1 and 4: the sample event arrives at the endpoint byte-for-byte as DESIGN shows
// it, with the Standard Webhooks headers, whatever the layout and key order of the ingested JSON.
import assert from 'node:assert/strict';
import {
  SAMPLE_EVENT, SAMPLE_PAYLOAD, expectStatus, itest, siteWithEndpoint, waitFor,
} from '../helpers/harness.mjs';

itest('the sample event arrives byte-for-byte, compact, in the documented key order', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const { key } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  // Posted pretty-printed, as DESIGN section 1 shows it.
  const before = Math.floor(Date.now() / 1000);
  const answer = await serve.ingest(key, JSON.stringify(SAMPLE_EVENT, null, 2));
  assert.deepEqual(expectStatus(answer, 202, 'POST /v1/events'), { accepted: 1, duplicates: 0 });

  await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery' });
  const after = Math.ceil(Date.now() / 1000);
  const [delivery] = recorder.requests;
  assert.equal(delivery.method, 'POST');
  assert.equal(delivery.url, '/hooks');
  assert.equal(delivery.body, SAMPLE_PAYLOAD);
  assert.match(delivery.headers['content-type'], /^application\/json(\s*;.*)?$/);
  assert.match(delivery.headers['user-agent'], /^pushhook\//);
  // Each header once: Node keeps only the first of a repeated user-agent in `headers`.
  const names = delivery.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], `repeated headers in ${names.join(', ')}`);
  assert.match(delivery.headers['webhook-id'], /^msg_\S+$/);
  assert.match(delivery.headers['webhook-timestamp'], /^\d+$/);
  const timestamp = Number(delivery.headers['webhook-timestamp']);
  assert.ok(timestamp >= before - 5 && timestamp <= after + 5, `webhook-timestamp ${timestamp} not within 5 s of [${before}, ${after}]`);
  assert.match(delivery.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*( v1,[A-Za-z0-9+/]+=*)*$/);
});

itest('key order and number ids on ingest do not change the payload', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const { key } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  // Keys reversed, cid and reference_id as JSON numbers (DESIGN section 1 turns them into strings).
  const reversed = Object.fromEntries(
    Object.entries({ ...SAMPLE_EVENT, cid: 1123123, reference_id: 123422 }).reverse(),
  );
  const answer = await serve.ingest(key, JSON.stringify(reversed));
  assert.deepEqual(expectStatus(answer, 202, 'POST /v1/events'), { accepted: 1, duplicates: 0 });

  await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery' });
  assert.equal(recorder.requests[0].body, SAMPLE_PAYLOAD);

  // Any number: its decimal string, from the literal's digits (JSON.parse would lose the 1.50 and
  // the twenty-digit id, so the body is written by hand).
  const numbers = await serve.ingest(key,
    '[{"action":"View","cookie_id":"c-1","cid":-7,"reference_id":1.50},' +
    '{"action":"View","cookie_id":"c-2","cid":12345678901234567890123,"reference_id":25e-3}]');
  assert.deepEqual(expectStatus(numbers, 202, 'POST /v1/events'), { accepted: 2, duplicates: 0 });
  await waitFor(() => recorder.requests.length >= 3, { what: 'the deliveries of numeric ids' });
  const ids = recorder.requests.slice(1).map((r) => JSON.parse(r.body)).map((p) => [p.cid, p.reference_id]).sort();
  assert.deepEqual(ids, [['-7', '1.5'], ['12345678901234567890123', '0.025']]);

  const tooLong = await serve.ingest(key, { action: 'View', cookie_id: 'c-3', cid: 1e64 });
  assert.equal(tooLong.status, 400, tooLong.text);
  assert.deepEqual(tooLong.json.error.details, [{ index: 0, field: 'cid', message: 'must be at most 64 bytes as a decimal string' }]);
});

itest('absent optional fields become "" and clicked_button 0', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const { key } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);

  const answer = await serve.ingest(key, { action: 'View', cookie_id: 'c-1', cid: '42' });
  assert.deepEqual(expectStatus(answer, 202, 'POST /v1/events'), { accepted: 1, duplicates: 0 });

  await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery' });
  assert.equal(
    recorder.requests[0].body,
    '{"action":"View","cookie_id":"c-1","cid":"42","notification_title":"","reference_id":"",' +
      '"utm_campaign":"","utm_content":"","utm_medium":"","utm_source":"","utm_term":"","clicked_button":0}',
  );
});
