// DESIGN section 4: a delivered request verifies, unchanged, with the npm packages
// `standardwebhooks` and `svix` (1.x), and with an HMAC computed here; tampering breaks it.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Webhook as StandardWebhook, WebhookVerificationError } from 'standardwebhooks';
import { Webhook as SvixWebhook, WebhookVerificationError as SvixVerificationError } from 'svix';
import {
  SAMPLE_EVENT, SAMPLE_PAYLOAD, expectStatus, itest, siteWithEndpoint, waitFor, webhookHeaders,
} from '../helpers/harness.mjs';

// v1 signature of DESIGN section 4, computed independently of both packages.
function sign(secret, id, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

itest('this file signs the known vector of DESIGN section 4 (sanity of the checker)', async () => {
  assert.equal(
    sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', '1614265330', '{"test": 2432232314}'),
    'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  );
});

itest('a delivered request verifies with standardwebhooks and svix; tampering fails', async (fx) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe();
  const { key, endpoint } = await siteWithEndpoint(serve, `${recorder.url}/hooks`);
  assert.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
  assert.ok(Buffer.from(endpoint.secret.slice('whsec_'.length), 'base64').length >= 24, 'secret has 24+ random bytes');

  expectStatus(await serve.ingest(key, SAMPLE_EVENT), 202, 'POST /v1/events');
  await waitFor(() => recorder.requests.length >= 1, { what: 'the delivery' });
  const delivery = recorder.requests[0];
  const headers = webhookHeaders(delivery);

  assert.deepEqual(new StandardWebhook(endpoint.secret).verify(delivery.body, headers), SAMPLE_EVENT);
  assert.deepEqual(new SvixWebhook(endpoint.secret).verify(delivery.body, headers), SAMPLE_EVENT);
  // The raw bytes too, as a receiver that never decodes would pass them.
  assert.deepEqual(new StandardWebhook(endpoint.secret).verify(delivery.raw, headers), SAMPLE_EVENT);

  const signatures = headers['webhook-signature'].split(' ');
  assert.ok(
    signatures.includes(sign(endpoint.secret, headers['webhook-id'], headers['webhook-timestamp'], SAMPLE_PAYLOAD)),
    `no signature in "${headers['webhook-signature']}" matches HMAC-SHA256 of id.timestamp.body`,
  );

  const tampered = delivery.body.replace('"clicked_button":2', '"clicked_button":1');
  assert.notEqual(tampered, delivery.body);
  assert.throws(() => new StandardWebhook(endpoint.secret).verify(tampered, headers), WebhookVerificationError);
  assert.throws(() => new SvixWebhook(endpoint.secret).verify(tampered, headers), SvixVerificationError);

  const shiftedTimestamp = { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) };
  assert.throws(() => new StandardWebhook(endpoint.secret).verify(delivery.body, shiftedTimestamp), WebhookVerificationError);

  const otherSecret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
  assert.throws(() => new StandardWebhook(otherSecret).verify(delivery.body, headers), WebhookVerificationError);
});
