// Issue 14 item 4, every answer a browser can read: the answers that the HTTP server writes
// itself on the ingest route, without reaching the ingest handler (413 for a body over the limit,
// 431 for a header over it, 400 for a malformed request, 408 for one that stalls), carry the same
// CORS header as the handler's own, so that a service worker can tell "too large" from "network
// down". Each is sent with an Origin header, as a browser sends it; other routes get no CORS.
import assert from 'node:assert/strict';
import net from 'node:net';
import { itest } from '../helpers/harness.mjs';
import { rawRequest } from '../helpers/raw_http.mjs';

const ORIGIN = 'https://shop.example';

// Sends `bytes` as they are and resolves to what arrived before the server closed (latin1).
function exchange(port, bytes, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const chunks = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

function assertCors(answer, status, code, what) {
  assert.equal(answer.status, status, `${what}: ${answer.error ?? ''} ${answer.text}`);
  assert.equal(answer.headers['access-control-allow-origin'], '*', `${what}: no CORS header`);
  // Once: a browser refuses an answer whose allow-origin holds two values.
  assert.equal(answer.raw.toString('latin1').match(/\r\naccess-control-allow-origin:/gi).length, 1, `${what}: ${answer.raw}`);
  assert.equal(answer.json?.error?.code, code, `${what}: ${answer.text}`);
}

itest("the transport's own answers on the ingest route carry CORS", async (fx, t) => {
  const serve = await fx.startServe({
    args: ['--max-body-bytes', '2000', '--header-timeout', '1s', '--body-timeout', '1s'],
  });
  const site = await serve.createSite('Browser');
  const path = `/v1/events?key=${site.ingest_key}`;
  const head = (extra) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\ncontent-type: text/plain\r\n${extra}`;

  await t.test('413: a body over the limit, by content-length', async () => {
    const answer = await rawRequest(serve.port, head('content-length: 5000'), 'x'.repeat(5000));
    assertCors(answer, 413, 'payload_too_large', '413 by content-length');
  });

  await t.test('413: a chunked body over the limit', async () => {
    const chunk = 'x'.repeat(3000);
    const body = `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    const answer = await rawRequest(serve.port, head('transfer-encoding: chunked'), body);
    assertCors(answer, 413, 'payload_too_large', '413 chunked');
  });

  await t.test('431: a header over the limit', async () => {
    const answer = await rawRequest(serve.port, head(`x-padding: ${'a'.repeat(20_000)}`));
    assertCors(answer, 431, 'header_too_large', '431');
  });

  await t.test('400: a malformed request', async () => {
    const answer = await rawRequest(serve.port, head('content-length: nope'));
    assertCors(answer, 400, 'bad_request', '400');
  });

  await t.test('408: a header that stalls', async () => {
    const started = Date.now();
    const raw = await exchange(serve.port, `${head('x-more: 1')}\r\n`);
    const took = Date.now() - started;
    assert.match(raw, /^HTTP\/1\.1 408 Request Timeout\r\n/, raw);
    assert.match(raw, /\r\naccess-control-allow-origin: \*\r\n/i, raw);
    assert.match(raw, /"code":"request_timeout"/, raw);
    assert.ok(took >= 900 && took < 5_000, `answered after ${took} ms (header timeout 1 s)`);
  });

  await t.test('408: a body that stalls', async () => {
    const raw = await exchange(serve.port, `${head('content-length: 100')}\r\n${'x'.repeat(10)}`);
    assert.match(raw, /^HTTP\/1\.1 408 Request Timeout\r\n/, raw);
    assert.match(raw, /\r\naccess-control-allow-origin: \*\r\n/i, raw);
  });

  await t.test('405: a method the route does not take', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const answer = await rawRequest(serve.port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\ncontent-length: 0`);
      assertCors(answer, 405, 'method_not_allowed', `405 for ${method}`);
      assert.equal(answer.headers.allow, 'POST, OPTIONS', method);
    }
  });

  await t.test("other routes' transport answers carry no CORS header", async () => {
    const answer = await rawRequest(
      serve.port,
      `POST /v1/sites HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\ncontent-length: 5000`,
      'x'.repeat(5000),
    );
    assert.equal(answer.status, 413, answer.text);
    assert.equal(answer.headers['access-control-allow-origin'], undefined);
  });

  await t.test('a post to a mistyped path (/v1/event, the bare server) is a 404 or 405 a worker can read', async () => {
    for (const [path, status, code] of [[`/v1/event?key=${site.ingest_key}`, 404, 'not_found'], ['/v1/events/extra', 404, 'not_found'],
      [`/?key=${site.ingest_key}`, 405, 'method_not_allowed']]) {
      const answer = await rawRequest(serve.port,
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\ncontent-type: text/plain\r\ncontent-length: 2`, '{}');
      assertCors(answer, status, code, path);
    }
    // A route that exists keeps its own rules: a site not found is no CORS matter.
    const admin = await rawRequest(serve.port, `GET /v1/sites/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}`);
    assert.equal(admin.status, 401, admin.text);
    assert.equal(admin.headers['access-control-allow-origin'], undefined);
  });

  await t.test('a connection that never sends a byte is closed without a word', async () => {
    assert.equal(await exchange(serve.port, ''), '');
  });
});

itest("a worker can read Retry-After from a 429: the ingest route exposes it", async (fx) => {
  const serve = await fx.startServe({ args: ['--ingest-rate-limit', '1'] });
  const site = await serve.createSite('Exposed');
  const body = '{"action":"View","cookie_id":"c","cid":"1"}';
  const post = () => rawRequest(
    serve.port,
    `POST /v1/events?key=${site.ingest_key} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ORIGIN}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}`,
    body,
  );
  let refused;
  for (let i = 0; i < 10 && !refused; i += 1) {
    const answer = await post();
    if (answer.status === 429) refused = answer;
  }
  assert.ok(refused, 'ten requests at once over a limit of one a second: one was refused');
  assert.match(refused.headers['retry-after'] ?? '', /^\d+$/);
  assert.equal(refused.headers['access-control-allow-origin'], '*');
  assert.match(refused.headers['access-control-expose-headers'] ?? '', /(^|,\s*)retry-after(\s*,|$)/i);
});

itest('a method a route does not take answers 405 naming the ones it does (Allow)', async (fx) => {
  const serve = await fx.startServe();
  const answer = await serve.api('DELETE', '/v1/sites');
  assert.equal(answer.status, 405);
  assert.equal(answer.json?.error?.code, 'method_not_allowed');
  assert.deepEqual((answer.headers.get('allow') ?? '').split(/,\s*/).sort(), ['GET', 'HEAD', 'POST']);
});

itest('HEAD answers as GET would, without the body', async (fx) => {
  const serve = await fx.startServe();
  for (const path of ['/', '/healthz', '/openapi.json']) {
    const get = await fetch(`${serve.baseUrl}${path}`);
    const getBody = await get.arrayBuffer();
    const head = await fetch(`${serve.baseUrl}${path}`, { method: 'HEAD' });
    assert.equal(head.status, get.status, `HEAD ${path}`);
    assert.equal(head.headers.get('content-type'), get.headers.get('content-type'), `HEAD ${path}`);
    assert.equal(Number(head.headers.get('content-length')), getBody.byteLength, `HEAD ${path}: the GET body's length`);
    assert.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${path}: no body`);
  }
});
