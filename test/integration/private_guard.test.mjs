// Issue 4 and DESIGN section 4, the private-network guard end to end. The server runs without
// --dev and without --allow-private-destinations, but with --allow-http, so that the guard is the
// only thing that refuses. Registration refuses every literal loopback form of a URL with 422 and
// a message that says why. A host name that is not a literal but resolves to loopback (from
// /etc/hosts) gets through registration and is then refused at connect time, on the resolved
// address: the loopback receiver sees no request and the attempt says so.
//
// Every destination here is a loopback address: no traffic leaves this machine.
import assert from 'node:assert/strict';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import { expectStatus, itest, waitFor } from '../helpers/harness.mjs';
import { getAttempts } from '../helpers/delivery_api.mjs';

const GUARDED = { dev: false, args: ['--allow-http'] };

function isLoopback(address) {
  return /^127\./.test(address) || address === '::1' || /^::ffff:127\./i.test(address);
}

// A name from /etc/hosts, other than the localhost names that registration refuses on sight,
// whose every resolved address is loopback (this machine's host name often is one).
async function loopbackHostName() {
  let hosts = '';
  try {
    hosts = fs.readFileSync('/etc/hosts', 'utf8');
  } catch {
    return null;
  }
  const names = new Set();
  for (const line of hosts.split('\n')) {
    const fields = line.replace(/#.*/, '').trim().split(/\s+/);
    if (fields.length < 2 || !isLoopback(fields[0])) continue;
    for (const name of fields.slice(1)) {
      const lower = name.toLowerCase();
      if (lower === 'localhost' || lower.endsWith('.localhost') || !/^[a-z0-9.-]+$/.test(lower)) continue;
      names.add(lower);
    }
  }
  for (const name of names) {
    try {
      const addresses = await dns.lookup(name, { all: true });
      if (addresses.length > 0 && addresses.every((a) => isLoopback(a.address))) return name;
    } catch {
      // not resolvable here
    }
  }
  return null;
}

itest('registration refuses every literal loopback form with 422', async (fx, t) => {
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe(GUARDED);
  const site = await serve.createSite('Guarded');
  const port = recorder.port;
  const refused = [
    `http://127.0.0.1:${port}/`,
    `http://localhost:${port}/`,
    `http://LOCALHOST:${port}/`,
    `http://localhost.:${port}/`,
    `http://hooks.localhost:${port}/`,
    `http://[::1]:${port}/`,
    `http://[::ffff:127.0.0.1]:${port}/`,
    `http://[::ffff:7f00:1]:${port}/`,
    `http://[0:0:0:0:0:ffff:127.0.0.1]:${port}/`,
    `http://2130706433:${port}/`,
    `http://0x7f.1:${port}/`,
    `http://0x7f000001:${port}/`,
    `http://017700000001:${port}/`,
    `http://127.1:${port}/`,
    `http://127.0.1:${port}/`,
    `http://0.0.0.0:${port}/`,
    `http://0:${port}/`,
    `http://[::]:${port}/`,
  ];
  for (const url of refused) {
    await t.test(url, async () => {
      const answer = await serve.api('POST', `/v1/sites/${site.id}/endpoints`, { url });
      assert.equal(answer.status, 422, `${url}: ${answer.status} ${answer.text}`);
      assert.equal(typeof answer.json?.error?.code, 'string');
      assert.match(answer.json.error.message, /loopback|unspecified|private/i, answer.json.error.message);
      assert.match(answer.json.error.message, /allow_private_destinations/, 'the message names the setting that allows it');
    });
  }

  await t.test('PATCH to a loopback URL is refused the same way', async () => {
    const endpoint = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints`, { url: 'http://hooks.example.invalid/hooks' }), 201, 'POST public endpoint');
    const answer = await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { url: `http://[::1]:${port}/` });
    assert.equal(answer.status, 422, answer.text);
    const after = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 200, 'GET endpoint');
    assert.equal(after.url, 'http://hooks.example.invalid/hooks');
    // Removed again so that the dispatcher never has a reason to reach beyond loopback.
    expectStatus(await serve.api('DELETE', `/v1/sites/${site.id}/endpoints/${endpoint.id}`), 204, 'DELETE endpoint');
  });

  await t.test('nothing reached the loopback receiver', () => {
    assert.equal(recorder.requests.length, 0);
  });
});

itest('a name that resolves to loopback is refused at connect time, and nothing is sent', async (fx, t) => {
  const name = await loopbackHostName();
  if (!name) {
    t.skip('no name in /etc/hosts resolves to loopback only (besides localhost): cannot test the connect-time check here');
    return;
  }
  t.diagnostic(`using ${name}, which /etc/hosts maps to loopback`);
  const recorder = await fx.startRecorder();
  const serve = await fx.startServe(GUARDED);
  const site = await serve.createSite('Guarded');
  const url = `http://${name}:${recorder.port}/hooks`;
  const endpoint = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints`, { url }), 201,
    `POST endpoint ${url} (not a literal, so registration lets it through)`);

  // The test send answers with the refused attempt.
  const test = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${endpoint.id}/test`), 200, 'POST test');
  t.diagnostic(`the test send's error: ${test.error}`);
  assert.equal(test.success, false);
  assert.equal(test.status_code, null);
  assert.match(test.error, /loopback/i, test.error);
  assert.match(test.error, /refus|not allowed|private/i, test.error);

  // An event's message is refused at its first attempt. Retrying would meet the same refusal, so
  // the endpoint is disabled at once and the message waits, pending, for its URL to be fixed.
  expectStatus(await serve.ingest(site.ingest_key, { action: 'View', cookie_id: 'c1', cid: '1' }), 202, 'ingest');
  const messages = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages`), 200, 'GET messages').data;
  assert.equal(messages.length, 1);
  const disabled = await waitFor(async () => {
    const ep = await serve.api('GET', `/v1/sites/${site.id}/endpoints/${endpoint.id}`);
    return ep.json?.enabled === false ? ep.json : null;
  }, { timeoutMs: 20_000, what: 'the endpoint to be disabled' });
  assert.equal(disabled.enabled, false);
  // The address the name resolved to is not said: it would tell a tenant what the server's name
  // service answers for internal names.
  assert.equal(disabled.disabled_reason,
    `cannot be delivered to: the host name ${name} resolves to a loopback address (private destinations are not allowed)`);
  assert.equal(test.error, `the host name ${name} resolves to a loopback address (private destinations are not allowed)`);
  assert.ok(Date.parse(disabled.disabled_at) > Date.now() - 60_000, `disabled_at ${disabled.disabled_at}`);
  const attempts = await waitFor(async () => {
    const list = await getAttempts(serve, site.id, messages[0].id);
    return list.length > 0 ? list : null;
  }, { timeoutMs: 20_000, what: 'the refused attempt to be recorded' });
  assert.equal(attempts.length, 1, 'refused once, not retried on the schedule');
  assert.equal(attempts[0].status_code, null);
  assert.match(attempts[0].error, /loopback/i, attempts[0].error);
  const waiting = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/messages/${messages[0].id}`), 200, 'GET message');
  assert.equal(waiting.status, 'pending', 'the message waits for the endpoint');
  assert.equal(recorder.requests.length, 0, 'the loopback receiver saw a request');
});
