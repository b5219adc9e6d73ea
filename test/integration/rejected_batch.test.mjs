// DESIGN section 2: ingest is all-or-nothing; one bad event rejects the whole request with a
// detail naming its index and field, and nothing of it is stored or delivered.
import assert from 'node:assert/strict';
import http from 'node:http';
import { expectStatus, itest, makeEvent, payloadFor, sleep, waitFor } from '../helpers/harness.mjs';

itest('a batch with one bad event answers 400 invalid_event and delivers nothing', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Rejected');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });

  const batch = [makeEvent(0), makeEvent(1, { action: 'Open' }), makeEvent(2)];
  const answer = await serve.ingest(site.ingest_key, batch);
  const body = expectStatus(answer, 400, 'POST /v1/events (one bad event)');
  assert.equal(body.error.code, 'invalid_event');
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.ok(Array.isArray(body.error.details), 'error.details is an array');
  assert.equal(body.error.details.length, 1, `one detail per bad event: ${answer.text}`);
  assert.equal(body.error.details[0].index, 1);
  assert.equal(body.error.details[0].field, 'action');
  assert.equal(typeof body.error.details[0].message, 'string');

  // A good event posted afterwards is delivered; once it has arrived, anything stored from the
  // rejected batch would have been sent beside it.
  const sentinel = makeEvent(99);
  expectStatus(await serve.ingest(site.ingest_key, sentinel), 202, 'POST sentinel');
  await waitFor(() => recorder.requests.length >= 1, { what: 'the sentinel delivery' });
  await sleep(1000);
  assert.deepEqual(recorder.requests.map((r) => r.body), [payloadFor(sentinel)]);
});

itest('every bad event gets its own detail, and a non-JSON body answers invalid_json', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Details');

  const batch = [
    makeEvent(0, { cookie_id: '' }),
    makeEvent(1),
    makeEvent(2, { action: 'View', clicked_button: 2 }),
    makeEvent(3, { utm_source: null }),
  ];
  const body = expectStatus(await serve.ingest(site.ingest_key, batch), 400, 'POST /v1/events (three bad events)');
  assert.equal(body.error.code, 'invalid_event');
  assert.deepEqual(body.error.details.map((d) => d.index), [0, 2, 3]);
  assert.deepEqual(body.error.details.map((d) => d.field), ['cookie_id', 'clicked_button', 'utm_source']);

  const broken = expectStatus(await serve.ingest(site.ingest_key, '{"action":"View",'), 400, 'POST /v1/events (not JSON)');
  assert.equal(broken.error.code, 'invalid_json');
});

function oversizedBatch() {
  const events = [];
  let size = 2;
  for (let i = 0; size <= 1024 * 1024 + 1024; i += 1) {
    const event = makeEvent(i, { notification_title: 'x'.repeat(900) });
    events.push(event);
    size += JSON.stringify(event).length + 1;
  }
  return JSON.stringify(events);
}

// POSTs `body` with `expect: 100-continue`, sending it only if the server asks for it, as curl
// does for large bodies. Resolves to {status, text, sentBody}.
function postExpectingContinue(port, urlPath, headers, body) {
  return new Promise((resolve, reject) => {
    let sentBody = false;
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: urlPath,
      headers: { ...headers, 'content-length': Buffer.byteLength(body), expect: '100-continue' },
      timeout: 15_000,
    });
    req.on('continue', () => {
      sentBody = true;
      req.end(body);
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        resolve({ status: res.statusCode, text, sentBody });
        req.destroy();
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
  });
}

async function assertNothingStored(serve, site, recorder) {
  const sentinel = makeEvent(1_000_000);
  expectStatus(await serve.ingest(site.ingest_key, sentinel), 202, 'POST sentinel');
  await waitFor(() => recorder.requests.length >= 1, { what: 'the sentinel delivery' });
  await sleep(500);
  assert.deepEqual(recorder.requests.map((r) => r.body), [payloadFor(sentinel)]);
}

itest('a body over 1 MiB answers 413 before it is sent (expect: 100-continue) and stores nothing', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Too large');
  await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });

  const answer = await postExpectingContinue(
    serve.port,
    '/v1/events',
    { 'content-type': 'application/json', 'x-pushhook-key': site.ingest_key },
    oversizedBatch(),
  );
  assert.equal(answer.status, 413, answer.text.slice(0, 300));
  assert.equal(answer.sentBody, false, 'the server refused on content-length, without asking for the body');
  assert.equal(typeof JSON.parse(answer.text).error.code, 'string');
  await assertNothingStored(serve, site, recorder);
});

// Sending the whole body at once (as fetch does) races the server's close after its 413: unless the
// server drains the rest before closing (a lingering close), the kernel answers the unread bytes
// with a reset that can discard the 413 before the client reads it.
itest(
  'a body over 1 MiB sent at once answers 413 (the server closes with a lingering drain)',
  async (fx) => {
    const recorder = await fx.startRecorder();
    const serve = await fx.startServe();
    const site = await serve.createSite('Too large at once');
    await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });
    const body = oversizedBatch();
    for (let i = 0; i < 5; i += 1) {
      const answer = await serve.ingest(site.ingest_key, body);
      assert.equal(answer.status, 413, answer.text.slice(0, 300));
    }
    await assertNothingStored(serve, site, recorder);
  },
);
