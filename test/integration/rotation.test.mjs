// Issue 4 and DESIGN section 4, secret rotation: `POST …/endpoints/{id}/rotate-secret` answers the
// endpoint with its new secret and when the previous one stops signing (24 h later by default).
// Until then every delivery carries two signatures (three after a second rotation within the 24 h),
// so a receiver that still has an old secret and one that already has the new one both verify it:
// with the npm `standardwebhooks` package, and with `pushhook receive`.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import {
  SAMPLE_EVENT, expectStatus, freePort, itest, makeEvent, waitFor, webhookHeaders,
} from '../helpers/harness.mjs';

const DAY_MS = 24 * 3600 * 1000;

function sign(secret, id, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

function rotate(serve, siteId, endpointId) {
  return serve.api('POST', `/v1/sites/${siteId}/endpoints/${endpointId}/rotate-secret`);
}

itest('after rotate-secret, deliveries carry both signatures and verify with either secret', async (fx, t) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Rotation');
  const endpoint = await serve.createEndpoint(site.id, { url: `${recorder.url}/hooks` });
  const oldSecret = endpoint.secret;

  expectStatus(await serve.ingest(site.ingest_key, makeEvent(1)), 202, 'ingest before rotation');
  await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery before rotation' });
  const before = recorder.requests[0];
  assert.equal(before.headers['webhook-signature'].split(' ').length, 1, 'one signature before any rotation');

  const startedAt = Date.now();
  const rotated = expectStatus(await rotate(serve, site.id, endpoint.id), 200, 'rotate-secret');
  const newSecret = rotated.secret;
  assert.equal(rotated.id, endpoint.id);
  assert.match(newSecret, /^whsec_[A-Za-z0-9+/]+=*$/);
  assert.notEqual(newSecret, oldSecret);
  assert.ok(Buffer.from(newSecret.slice(6), 'base64').length >= 24, 'the new secret has 24+ random bytes');
  const expiresAt = Date.parse(rotated.previous_secret_expires_at);
  assert.ok(Number.isFinite(expiresAt), `previous_secret_expires_at ${rotated.previous_secret_expires_at}`);
  assert.ok(Math.abs(expiresAt - startedAt - DAY_MS) < 60_000, `the old secret signs for 24 h (until ${rotated.previous_secret_expires_at})`);
  const listed = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 200, 'GET endpoint');
  assert.equal(listed.secret, undefined, 'reading the endpoint does not show a secret');
  assert.equal(listed.previous_secret, undefined);

  expectStatus(await serve.ingest(site.ingest_key, SAMPLE_EVENT), 202, 'ingest after rotation');
  await waitFor(() => recorder.requests.length >= 2, { what: 'the delivery after rotation' });
  const after = recorder.requests[1];
  const headers = webhookHeaders(after);

  await t.test('two signatures: one per secret', () => {
    const signatures = headers['webhook-signature'].split(' ');
    assert.equal(signatures.length, 2, headers['webhook-signature']);
    const id = headers['webhook-id'];
    const ts = headers['webhook-timestamp'];
    assert.deepEqual(new Set(signatures), new Set([sign(newSecret, id, ts, after.body), sign(oldSecret, id, ts, after.body)]));
  });

  await t.test('standardwebhooks verifies with the old secret and with the new one', () => {
    assert.deepEqual(new Webhook(oldSecret).verify(after.body, headers), SAMPLE_EVENT);
    assert.deepEqual(new Webhook(newSecret).verify(after.body, headers), SAMPLE_EVENT);
    assert.deepEqual(new Webhook(newSecret).verify(after.raw, headers), SAMPLE_EVENT);
  });

  await t.test('and with neither an unrelated secret nor a tampered body', () => {
    const unrelated = `whsec_${Buffer.alloc(24, 3).toString('base64')}`;
    assert.throws(() => new Webhook(unrelated).verify(after.body, headers), WebhookVerificationError);
    const tampered = after.body.replace('"clicked_button":2', '"clicked_button":1');
    assert.throws(() => new Webhook(oldSecret).verify(tampered, headers), WebhookVerificationError);
    assert.throws(() => new Webhook(newSecret).verify(tampered, headers), WebhookVerificationError);
  });

  await t.test('the delivery before rotation verifies with the old secret only', () => {
    assert.ok(new Webhook(oldSecret).verify(before.body, webhookHeaders(before)));
    assert.throws(() => new Webhook(newSecret).verify(before.body, webhookHeaders(before)), WebhookVerificationError);
  });

  await t.test('the test send carries both signatures too', async () => {
    const answer = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'POST test');
    assert.equal(answer.success, true);
    const sent = recorder.requests.at(-1);
    assert.ok(sent.headers['webhook-id'].startsWith('msg_test_'));
    new Webhook(newSecret).verify(sent.body, webhookHeaders(sent));
    new Webhook(oldSecret).verify(sent.body, webhookHeaders(sent));
  });

  await t.test('a second rotation within the overlap keeps the first secret signing too', async () => {
    const again = expectStatus(await rotate(serve, site.id, endpoint.id), 200, 'rotate again');
    assert.ok(Date.parse(again.previous_secret_expires_at) >= expiresAt, 'the newest previous secret\'s time');
    const count = recorder.requests.length;
    expectStatus(await serve.ingest(site.ingest_key, SAMPLE_EVENT), 202, 'ingest after the second rotation');
    await waitFor(() => recorder.requests.length > count, { what: 'the delivery after the second rotation' });
    const sent = recorder.requests.at(-1);
    const headers2 = webhookHeaders(sent);
    assert.equal(headers2['webhook-signature'].split(' ').length, 3, headers2['webhook-signature']);
    for (const secret of [again.secret, newSecret, oldSecret]) {
      assert.deepEqual(new Webhook(secret).verify(sent.body, headers2), SAMPLE_EVENT);
    }
  });

  await t.test('expire_previous: a leaked secret stops signing at once', async () => {
    for (const [body, message] of [[{ expire_previous: 'yes' }, "field 'expire_previous' must be true or false"],
      [{ overlap: 0 }, "unknown field 'overlap'"]]) {
      const refused = await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/rotate-secret`, body);
      assert.equal(expectStatus(refused, 400, JSON.stringify(body)).error.message, message);
    }
    const cut = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/rotate-secret`,
      { expire_previous: true }), 200, 'rotate with expire_previous');
    assert.equal(cut.previous_secret_expires_at, null);
    const count = recorder.requests.length;
    expectStatus(await serve.ingest(site.ingest_key, SAMPLE_EVENT), 202, 'ingest after the cut');
    await waitFor(() => recorder.requests.length > count, { what: 'the delivery after the cut' });
    const sent = recorder.requests.at(-1);
    assert.equal(webhookHeaders(sent)['webhook-signature'].split(' ').length, 1);
    assert.deepEqual(new Webhook(cut.secret).verify(sent.body, webhookHeaders(sent)), SAMPLE_EVENT);
    assert.throws(() => new Webhook(newSecret).verify(sent.body, webhookHeaders(sent)), WebhookVerificationError);
  });
});

itest('pushhook receive with only the old secret, or only the new one, takes deliveries after rotation', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Rotation receive');
  const oldPort = await freePort();
  const newPort = await freePort();
  const toOld = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${oldPort}/hooks` });
  const toNew = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${newPort}/hooks` });
  const keepsOld = await fx.startReceive({ secret: toOld.secret, listen: `127.0.0.1:${oldPort}` });
  const rotatedOld = expectStatus(await rotate(serve, site.id, toOld.id), 200, 'rotate (old receiver)');
  const rotatedNew = expectStatus(await rotate(serve, site.id, toNew.id), 200, 'rotate (new receiver)');
  assert.notEqual(rotatedOld.secret, toOld.secret);
  const takesNew = await fx.startReceive({ secret: rotatedNew.secret, listen: `127.0.0.1:${newPort}` });

  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1), makeEvent(2), makeEvent(3)]), 202, 'ingest');
  const lines = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);
  await waitFor(() => lines(keepsOld.out).length >= 3 && lines(takesNew.out).length >= 3, { what: 'both receivers storing 3 payloads' });
  assert.equal(lines(keepsOld.out).length, 3);
  assert.equal(lines(takesNew.out).length, 3);
  // A receiver stores a payload before serve has its answer and records the attempt.
  const delivered = async () =>
    expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages?status=delivered`), 200, 'GET messages').data;
  await waitFor(async () => (await delivered()).length >= 6, { what: 'the 6 messages recorded as delivered' });
  const messages = await delivered();
  assert.equal(messages.length, 6, 'every message delivered');
  assert.ok(messages.every((m) => m.attempts === 1), JSON.stringify(messages.map((m) => m.attempts)));
});
