// DESIGN section 5: `pushhook receive` as the sink: it verifies, de-duplicates by webhook-id and
// stores each payload once (one NDJSON line each).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import {
  SAMPLE_PAYLOAD, expectStatus, freePort, itest, makeEvent, payloadFor, randomToken, request, sleep, waitFor,
} from '../helpers/harness.mjs';

const COUNT = 50;

// POSTs the sample payload to `url`, signed with `secret` as webhook `id`.
function postSigned(url, secret, id) {
  const when = new Date();
  return request(url, 'POST', '/hooks', {
    body: SAMPLE_PAYLOAD,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, when, SAMPLE_PAYLOAD),
    },
  });
}

function lines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.length > 0);
}

itest('50 events through serve into pushhook receive end up as 50 NDJSON lines', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Receive');
  const port = await freePort();
  const endpoint = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/hooks` });
  const receiver = await fx.startReceive({ secret: endpoint.secret, listen: `127.0.0.1:${port}` });
  assert.equal(receiver.port, port);

  const events = Array.from({ length: COUNT }, (_, i) => makeEvent(i, { event_id: `r-${i}` }));
  for (let i = 0; i < COUNT; i += 10) {
    expectStatus(await serve.ingest(site.ingest_key, events.slice(i, i + 10)), 202, 'POST /v1/events');
  }

  await waitFor(() => lines(receiver.out).length >= COUNT, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: `${COUNT} lines in ${path.basename(receiver.out)}`,
  });
  await sleep(500);
  assert.deepEqual(lines(receiver.out).sort(), events.map(payloadFor).sort());
});

itest('pushhook receive takes its secrets from PUSHHOOK_RECEIVE_SECRET, out of the process list', async (fx) => {
  const secret = () => `whsec_${Buffer.from(randomToken(), 'hex').toString('base64')}`;
  const [old, current, stranger] = [secret(), secret(), secret()];
  const receiver = await fx.startReceive({ env: { PUSHHOOK_RECEIVE_SECRET: `${old} ${current}` } });
  assert.ok(!fs.readFileSync(`/proc/${receiver.pid}/cmdline`, 'utf8').includes('whsec_'), 'no secret in argv');
  const post = (key, id) => postSigned(receiver.url, key, id);
  assert.equal((await post(old, 'msg_env_1')).status, 204, 'the first secret of the list');
  assert.equal((await post(current, 'msg_env_2')).status, 204, 'the second');
  assert.equal((await post(stranger, 'msg_env_3')).status, 401, 'one it was not given');
});

itest('pushhook receive answers 401 to bad signatures and stores a webhook-id once', async (fx) => {
  const secret = `whsec_${Buffer.from(randomToken(), 'hex').toString('base64')}`;
  const receiver = await fx.startReceive({ secret });
  const signer = new Webhook(secret);
  const post = (headers, body = SAMPLE_PAYLOAD) =>
    request(receiver.url, 'POST', '/hooks', { body, headers: { 'content-type': 'application/json', ...headers } });
  const signed = (id, when = new Date(), body = SAMPLE_PAYLOAD) => ({
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
    'webhook-signature': signer.sign(id, when, body),
  });

  assert.equal((await post({})).status, 401, 'no signature headers');
  const good = signed('msg_receive_test_1');
  assert.equal((await post({ ...good, 'webhook-signature': 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' })).status, 401, 'wrong signature');
  assert.equal((await post(good, SAMPLE_PAYLOAD.replace('Click', 'View'))).status, 401, 'tampered body');
  const stale = signed('msg_receive_test_2', new Date(Date.now() - 10 * 60 * 1000));
  assert.equal((await post(stale)).status, 401, 'timestamp 10 minutes old');
  assert.equal(lines(receiver.out).length, 0, 'nothing stored from refused requests');

  assert.equal((await post(good)).status, 204, 'good signature');
  assert.equal((await post(good)).status, 204, 'same webhook-id again is acknowledged');
  const other = signed('msg_receive_test_3', new Date(), payloadFor(makeEvent(7)));
  assert.equal((await post(other, payloadFor(makeEvent(7)))).status, 204);

  await waitFor(() => lines(receiver.out).length >= 2, { what: 'two stored lines' });
  await sleep(300);
  assert.deepEqual(lines(receiver.out), [SAMPLE_PAYLOAD, payloadFor(makeEvent(7))]);
});

itest('pushhook receive serves on --threads threads, two by default, and refuses a count out of range', async (fx) => {
  const httpThreads = (pid) => fs.readdirSync(`/proc/${pid}/task`)
    .filter((task) => fs.readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim() === 'ph-http').length;
  const secret = `whsec_${Buffer.from(randomToken(), 'hex').toString('base64')}`;
  // Each thread names itself once it runs, which may come just after the "listening" line.
  const byDefault = await fx.startReceive({ secret });
  await waitFor(() => httpThreads(byDefault.pid) === 2, { what: 'two HTTP threads' });
  const four = await fx.startReceive({ secret, args: ['--threads', '4'] });
  await waitFor(() => httpThreads(four.pid) === 4, { what: 'four HTTP threads' });
  assert.equal((await postSigned(four.url, secret, 'msg_threads_1')).status, 204);

  for (const threads of ['0', '65']) {
    const refused = fx.spawn(['receive', '--secret', secret, '--threads', threads], { name: `receive --threads ${threads}` });
    const exited = await refused.exited;
    assert.equal(exited.code, 2);
    assert.match(refused.stderr, new RegExp(`--threads: Value ${threads} not in range 1 to 64`));
  }
});

itest('pushhook receive exits 2 naming an --out it cannot open, as serve does a bad --data-dir', async (fx) => {
  const secret = `whsec_${Buffer.from(randomToken(), 'hex').toString('base64')}`;
  const dir = fx.tempDir('pushhook-receive-out-');
  const file = path.join(dir, 'file.db');
  fs.writeFileSync(file, '');
  const cases = [
    [path.join(dir, 'missing', 'x.ndjson'), 'No such file or directory'],
    [path.join(file, 'x.db'), 'Not a directory'],
    [path.join(file, 'x.ndjson'), 'Not a directory'],
  ];
  for (const [out, reason] of cases) {
    const refused = fx.spawn(['receive', '--secret', secret, '--listen', '127.0.0.1:0', '--out', out], { name: `receive --out ${out}` });
    const exited = await refused.exited;
    assert.equal(exited.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`"msg":"cannot open ${out.replaceAll('.', '\\.')}: ${reason}"`));
  }
});
