// Issue 4 and DESIGN section 8: no token, secret or signature ever reaches a log. One full run
// touches every path that handles one (a generated operator token read back after a restart, a
// site token, the ingest key in the header and in the query, endpoint secrets before and after
// rotation, signed deliveries to a recorder and to `pushhook receive`, a failing endpoint, a test
// send, a redelivery, wrong keys and tokens, forged requests to the receiver, a secret with a
// typo), then searches every line the processes wrote to stderr for each of those values.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import {
  SAMPLE_EVENT, expectStatus, freePort, itest, makeEvent, request, stop, waitFor, webhookHeaders,
} from '../helpers/harness.mjs';
import { allMessages, getAttempts } from '../helpers/delivery_api.mjs';

// A value with its last character changed: a token or key someone mistyped, nearly all secret.
const typo = (value) => value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A');
const SIGNATURE = /v1,[A-Za-z0-9+/]{43}=/;

itest('a full run logs no token, key, secret or signature', { timeout: 180_000 }, async (fx, t) => {
  const dataDir = fx.tempDir('pushhook-logs-');
  // No PUSHHOOK_ADMIN_TOKEN: the server generates the operator token and writes it to a file.
  const first = await fx.startServe({ dataDir, adminToken: null });
  const operator = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  assert.ok(operator.length >= 20, 'a generated operator token');
  await stop(first);
  // The second start reads it back from the file.
  const serve = await fx.startServe({ dataDir, adminToken: null });
  const api = (method, urlPath, body, token = operator) => request(serve.baseUrl, method, urlPath, { body, token });
  serve.api = api; // the readers of delivery_api.mjs call serve.api with the default token

  const site = expectStatus(await api('POST', '/v1/sites', { name: 'Logs' }), 201, 'POST /v1/sites');
  const siteToken = expectStatus(await api('POST', `/v1/sites/${site.id}/tokens`), 201, 'POST tokens').token;
  assert.equal(typeof siteToken, 'string');

  // Endpoint 1: `pushhook receive`, on a port chosen now since its secret comes with the endpoint.
  const receivePort = await freePort();
  const toReceive = expectStatus(
    await api('POST', `/v1/sites/${site.id}/endpoints`, { url: `http://127.0.0.1:${receivePort}/hooks` }, siteToken),
    201, 'POST endpoint (receive)');
  const receive = await fx.startReceive({ secret: toReceive.secret, listen: `127.0.0.1:${receivePort}` });
  // Endpoint 2: a recorder that answers 204, so that the signatures sent can be collected.
  const good = await fx.startRecorder();
  const toGood = expectStatus(await api('POST', `/v1/sites/${site.id}/endpoints`, { url: `${good.url}/ok` }), 201, 'POST endpoint (good)');
  // Endpoint 3: fails every attempt, with a body that echoes what it got.
  const bad = await fx.startRecorder({ respond: (r) => ({ status: 500, body: `nope ${r.headers['webhook-signature']}` }) });
  const toBad = expectStatus(await api('POST', `/v1/sites/${site.id}/endpoints`, { url: `${bad.url}/fail` }), 201, 'POST endpoint (bad)');

  // Rotate the recorder's and the receiver's secrets: deliveries now carry two signatures.
  const rotatedGood = expectStatus(await api('POST', `/v1/sites/${site.id}/endpoints/${toGood.id}/rotate-secret`), 200, 'rotate (good)');
  const rotatedReceive = expectStatus(
    await api('POST', `/v1/sites/${site.id}/endpoints/${toReceive.id}/rotate-secret`, undefined, siteToken), 200, 'rotate (receive)');

  // Events by every route a key can take, and some refused ones.
  const key = site.ingest_key;
  expectStatus(await serve.ingest(key, SAMPLE_EVENT), 202, 'ingest (header key)');
  expectStatus(await request(serve.baseUrl, 'POST', `/v1/events?key=${encodeURIComponent(key)}`, {
    body: JSON.stringify(makeEvent(1)), headers: { 'content-type': 'text/plain' },
  }), 202, 'ingest (query key)');
  expectStatus(await serve.ingest(key, `${JSON.stringify(makeEvent(2))}\n${JSON.stringify(makeEvent(3))}\n`,
    { 'content-type': 'application/x-ndjson' }), 202, 'ingest (NDJSON)');
  assert.equal((await serve.ingest(typo(key), SAMPLE_EVENT)).status, 401);
  assert.equal((await request(serve.baseUrl, 'POST', `/v1/events?key=${encodeURIComponent(typo(key))}`, { body: '{}' })).status, 401);
  assert.equal((await serve.ingest(key, '{"action":"View","cookie_id":"x"')).status, 400);
  assert.equal((await api('GET', '/v1/sites', undefined, typo(operator))).status, 401);
  assert.equal((await api('GET', `/v1/sites/${site.id}/endpoints`, undefined, typo(siteToken))).status, 401);
  expectStatus(await api('GET', `/v1/sites/${site.id}/endpoints/${toGood.id}`, undefined, siteToken), 200, 'GET endpoint');
  expectStatus(await api('POST', `/v1/sites/${site.id}/endpoints/${toGood.id}/test`), 200, 'POST test');

  // Deliveries: 4 events to each endpoint (plus the test send to the recorder).
  await waitFor(() => good.requests.length >= 5, { what: '5 requests at the recorder' });
  const verifyNew = new Webhook(rotatedGood.secret);
  const verifyOld = new Webhook(toGood.secret);
  for (const r of good.requests) {
    verifyNew.verify(r.body, webhookHeaders(r));
    verifyOld.verify(r.body, webhookHeaders(r));
  }
  await waitFor(() => {
    if (!fs.existsSync(receive.out)) return false;
    return fs.readFileSync(receive.out, 'utf8').trim().split('\n').length >= 4;
  }, { what: '4 payloads stored by pushhook receive' });
  const failing = await waitFor(async () => {
    const messages = await allMessages(serve, site.id, { endpoint: toBad.id });
    const retried = messages.length === 4 && messages.some((m) => m.attempts >= 2);
    return retried ? messages : null;
  }, { timeoutMs: 20_000, what: 'retries of the failing endpoint' });
  const attempts = await getAttempts(serve, site.id, failing[0].id);
  assert.match(attempts[0].response_body, /^nope v1,/, 'the failing answer was recorded');
  const delivered = await waitFor(async () => {
    const messages = await allMessages(serve, site.id, { endpoint: toGood.id, status: 'delivered' });
    return messages.length === 4 ? messages : null;
  }, { what: 'the 4 messages to the recorder delivered' });
  expectStatus(await api('POST', `/v1/sites/${site.id}/messages/${delivered[0].id}/redeliver`), 202, 'redeliver');

  // The receiver refuses forged and stale requests; its log must not echo what they carried.
  const body = JSON.stringify(SAMPLE_EVENT);
  const forgedSignature = `v1,${Buffer.alloc(32, 9).toString('base64')}`;
  const now = Math.floor(Date.now() / 1000);
  for (const [timestamp, signature] of [[now, forgedSignature], [now - 3600, good.requests[0].headers['webhook-signature']]]) {
    const answer = await request(receive.url, 'POST', '/hooks', {
      body,
      headers: { 'content-type': 'application/json', 'webhook-id': 'msg_forged', 'webhook-timestamp': String(timestamp), 'webhook-signature': signature },
    });
    assert.equal(answer.status, 401);
  }
  // A receiver started with a secret that has a typo refuses to start, without echoing it.
  const typoReceive = fx.spawn(['receive', '--listen', '127.0.0.1:0', '--secret', typo(toReceive.secret).slice(0, -1)],
    { name: 'pushhook receive (bad secret)' });
  assert.equal((await typoReceive.exited).code, 2);

  await waitFor(() => good.requests.length >= 6, { what: 'the redelivery' });
  await stop(serve);
  await stop(receive);

  const secrets = new Map([
    ['operator token', operator],
    ['mistyped operator token', typo(operator)],
    ['site token', siteToken],
    ['mistyped site token', typo(siteToken)],
    ['ingest key', key],
    ['mistyped ingest key', typo(key)],
  ]);
  const endpointSecrets = [
    ['receive endpoint secret', toReceive.secret], ['receive endpoint rotated secret', rotatedReceive.secret],
    ['recorder endpoint secret', toGood.secret], ['recorder endpoint rotated secret', rotatedGood.secret],
    ['failing endpoint secret', toBad.secret],
  ];
  for (const [name, secret] of endpointSecrets) {
    secrets.set(name, secret);
    secrets.set(`${name} (base64 part)`, secret.slice('whsec_'.length));
  }
  const signatures = new Set();
  for (const r of [...good.requests, ...bad.requests]) {
    for (const s of r.headers['webhook-signature'].split(' ')) signatures.add(s);
  }
  signatures.add(forgedSignature);
  for (const s of signatures) secrets.set(`signature ${s.slice(0, 12)}...`, s);
  const sealKeyPath = path.join(dataDir, 'secrets-key');
  if (fs.existsSync(sealKeyPath)) secrets.set('key that seals endpoint secrets', fs.readFileSync(sealKeyPath, 'utf8').trim());
  t.diagnostic(`${secrets.size} values searched for, ${signatures.size} of them signatures`);

  const logs = [
    ['serve (first start)', first.stderr], ['serve', serve.stderr], ['receive', receive.stderr],
    ['receive (bad secret)', typoReceive.stderr],
  ];
  for (const [name, text] of logs) {
    assert.ok(text.length > 0, `${name} wrote nothing to stderr: the search would prove nothing`);
    for (const [what, value] of secrets) {
      assert.ok(value && value.length >= 16, `${what} is long enough to search for`);
      assert.ok(!text.includes(value), `${name}'s log contains the ${what}`);
    }
    const line = text.split('\n').find((l) => SIGNATURE.test(l));
    assert.equal(line, undefined, `${name}'s log contains a signature: ${line}`);
  }
  // The search covered real activity: the logs say what happened without the secrets.
  assert.ok(first.logs.some((l) => /generated/.test(l.msg ?? '')), 'the first start says it generated a token');
  assert.ok(receive.stdout.length + receive.stderr.length > 0);
});
