// Shared harness for the integration tests: runs the real `pushhook` binary (`serve`, `receive`)
// as child processes on 127.0.0.1 with fresh temporary data dirs, plus a scriptable recording
// webhook receiver written with node's http module.
//
// Every server listens on 127.0.0.1 only, every wait is bounded, and `itest()` stops the
// processes and servers it started and removes its temporary dirs whether the test passed or not.
// Set PUSHHOOK_IT_KEEP=1 to keep the temporary dirs (each process's stderr is in <dir>/*.log).

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { freePort, portInUse, sleep, spawnTracked, stopProcess, tail, waitLog } from './processes.mjs';
import { checkAnswer } from './openapi.mjs';

export { freePort, portInUse, sleep, tail };

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PUSHHOOK_BIN = process.env.PUSHHOOK_BIN || path.join(REPO_ROOT, 'build', 'pushhook');

// The sample event of DESIGN section 1, and the exact webhook body it must produce.
export const SAMPLE_EVENT = Object.freeze({
  action: 'Click',
  cookie_id: '7e32b7a1-acfc-45db-83fb-766d2a8a2bce',
  cid: '1123123',
  notification_title: 'My Campaign Name',
  reference_id: '123422',
  utm_campaign: 'recover_carts',
  utm_content: 'Article',
  utm_medium: 'push_notifications',
  utm_source: 'izooto',
  utm_term: 'notification3',
  clicked_button: 2,
});
export const SAMPLE_PAYLOAD =
  '{"action":"Click","cookie_id":"7e32b7a1-acfc-45db-83fb-766d2a8a2bce","cid":"1123123",' +
  '"notification_title":"My Campaign Name","reference_id":"123422","utm_campaign":"recover_carts",' +
  '"utm_content":"Article","utm_medium":"push_notifications","utm_source":"izooto",' +
  '"utm_term":"notification3","clicked_button":2}';

const PAYLOAD_DEFAULTS = {
  notification_title: '',
  reference_id: '',
  utm_campaign: '',
  utm_content: '',
  utm_medium: '',
  utm_source: '',
  utm_term: '',
  clicked_button: 0,
};
const PAYLOAD_ORDER = [
  'action', 'cookie_id', 'cid', 'notification_title', 'reference_id', 'utm_campaign',
  'utm_content', 'utm_medium', 'utm_source', 'utm_term', 'clicked_button',
];

// The `izooto` webhook body that DESIGN section 1 says an ingested event becomes. Only exact for
// plain ASCII strings (escaping rules of the two JSON writers could differ elsewhere).
export function payloadFor(event) {
  const out = {};
  for (const key of PAYLOAD_ORDER) {
    let value = event[key] ?? PAYLOAD_DEFAULTS[key];
    if ((key === 'cid' || key === 'reference_id') && typeof value === 'number') value = String(value);
    out[key] = value;
  }
  return JSON.stringify(out);
}

// A valid event whose payload differs for every `n` (the cookie id carries it).
export function makeEvent(n, overrides = {}) {
  return {
    action: 'View',
    cookie_id: `cookie-${String(n).padStart(6, '0')}`,
    cid: '555',
    notification_title: `Title ${n}`,
    reference_id: 'run-1',
    utm_source: 'izooto',
    clicked_button: 0,
    ...overrides,
  };
}

export function randomToken() {
  return randomBytes(24).toString('hex');
}


// Polls `predicate` (sync or async) every `intervalMs` until it returns a truthy value, which it
// returns; throws after `timeoutMs` with `what` and the last value seen.
export async function waitFor(predicate, { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await predicate();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last value: ${describe(last)})`);
    }
    await sleep(intervalMs);
  }
}

function describe(value) {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.slice(0, 300);
  } catch {
    return String(value);
  }
}

// Every temporary dir we made, so that none outlives the test process even when a test is cut
// off; the children go with the process (processes.mjs kills them at exit).
const liveDirs = new Set();
function removeDirs() {
  if (!process.env.PUSHHOOK_IT_KEEP) {
    for (const dir of liveDirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}
process.on('exit', removeDirs);
// A test process stopped by a signal (ctest's timeout, ^C) takes its children and dirs with it too.
for (const [signal, number] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]]) {
  process.once(signal, () => process.exit(128 + number));
}

export function makeTempDir(prefix = 'pushhook-it-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  liveDirs.delete(dir);
  if (!process.env.PUSHHOOK_IT_KEEP) fs.rmSync(dir, { recursive: true, force: true });
}

// Starts `PUSHHOOK_BIN args...` and tracks its stderr lines (the JSON log). Returns the handle.
export function spawnPushhook(args, { cwd, env = {}, logFile, name = args[0] } = {}) {
  return spawnTracked(name, PUSHHOOK_BIN, args, { cwd, env, logFile });
}

// spawnPushhook, then waits for its "listening" line and sets handle.port; killed if it never says.
async function spawnListening(args, options) {
  const handle = spawnPushhook(args, options);
  try {
    handle.port = (await waitListening(handle)).port;
  } catch (err) {
    await stop(handle, 'SIGKILL');
    throw err;
  }
  return handle;
}

// Waits for the `{"msg":"listening","port":N}` log line; fails early if the process exits.
export function waitListening(handle, timeoutMs = 20_000) {
  return waitLog(handle, (l) => l.msg === 'listening' && Number.isInteger(l.port) && l.port > 0, timeoutMs,
    '"listening" log line');
}

// Stops a process we started: `signal` (SIGTERM by default), then SIGKILL if it is still running
// after `timeoutMs`. Resolves to {code, signal}.
export const stop = stopProcess;

// Calls the HTTP API of `baseUrl`. `body` is JSON-encoded unless it is a string or a Buffer.
// Resolves to {status, headers, text, json} (json undefined when the body is not JSON).
export async function request(baseUrl, method, urlPath, { body, headers = {}, token } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const response = await fetch(baseUrl + urlPath, {
    method,
    headers: h,
    body: payload,
    redirect: 'manual',
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  // Every JSON answer is held to docs/openapi.json (test/helpers/openapi.mjs).
  if ((response.headers.get('content-type') ?? '').startsWith('application/json')) {
    const mismatch = checkAnswer(method, urlPath, response.status, json);
    if (mismatch) throw new Error(`the API drifted from its description: ${mismatch}`);
  }
  return { status: response.status, headers: response.headers, text, json };
}

// Throws with the answer in the message unless `res.status` is `status`.
export function expectStatus(res, status, what) {
  if (res.status !== status) {
    throw new Error(`${what}: expected HTTP ${status}, got ${res.status}: ${res.text.slice(0, 500)}`);
  }
  return res.json;
}

// A list answer may be a bare array or wrapped ({data|items|endpoints|sites: [...]}).
export function listItems(json) {
  if (Array.isArray(json)) return json;
  for (const key of ['data', 'items', 'endpoints', 'sites']) {
    if (json && Array.isArray(json[key])) return json[key];
  }
  throw new Error(`not a list answer: ${describe(json)}`);
}

// Starts `pushhook serve` on 127.0.0.1:0 in `dataDir` (a fresh temporary dir by default), with a
// random operator token, --dev and a fast retry schedule unless told otherwise.
export async function startServe(opts = {}) {
  const {
    dataDir = makeTempDir('pushhook-serve-'),
    adminToken = randomToken(),
    dev = true,
    retrySchedule = '200ms,200ms,200ms',
    listen = '127.0.0.1:0',
    args = [],
    env = {},
  } = opts;
  const fullArgs = ['serve', '--listen', listen, '--data-dir', dataDir];
  if (dev) fullArgs.push('--dev');
  if (retrySchedule) fullArgs.push('--retry-schedule', retrySchedule);
  fullArgs.push(...args);
  const envAll = { ...env };
  if (adminToken) envAll.PUSHHOOK_ADMIN_TOKEN = adminToken;
  const handle = await spawnListening(fullArgs, {
    cwd: dataDir,
    env: envAll,
    logFile: path.join(dataDir, 'serve.log'),
    name: 'pushhook serve',
  });
  handle.dataDir = dataDir;
  handle.adminToken = adminToken;
  handle.baseUrl = `http://127.0.0.1:${handle.port}`;
  // api(method, path, body, token): the admin token unless another (or null) is given.
  handle.api = (method, urlPath, body, token = adminToken) =>
    request(handle.baseUrl, method, urlPath, { body, token: token ?? undefined });
  handle.createSite = async (name = 'Test site') =>
    expectStatus(await handle.api('POST', '/v1/sites', { name }), 201, 'POST /v1/sites');
  handle.createEndpoint = async (siteId, endpoint, token = adminToken) =>
    expectStatus(
      await handle.api('POST', `/v1/sites/${siteId}/endpoints`, endpoint, token),
      201,
      `POST /v1/sites/${siteId}/endpoints`,
    );
  // Posts events (an object, an array, or a raw string) with the ingest key in x-pushhook-key.
  handle.ingest = (key, events, headers = {}) =>
    request(handle.baseUrl, 'POST', '/v1/events', {
      body: typeof events === 'string' ? events : JSON.stringify(events),
      headers: { 'content-type': 'application/json', 'x-pushhook-key': key, ...headers },
    });
  return handle;
}

// Starts `pushhook receive` on 127.0.0.1:0 with `secret`, writing to `out`.
export async function startReceive(opts) {
  // Without `secret`, the secrets come from `env` (PUSHHOOK_RECEIVE_SECRET).
  const { secret, env, dir = makeTempDir('pushhook-receive-'), out = path.join(dir, 'received.ndjson'), listen = '127.0.0.1:0', args = [] } = opts;
  const secretArgs = secret === undefined ? [] : ['--secret', secret];
  const handle = await spawnListening(['receive', '--listen', listen, ...secretArgs, '--out', out, ...args], {
    env,
    cwd: dir,
    logFile: path.join(dir, 'receive.log'),
    name: 'pushhook receive',
  });
  handle.dir = dir;
  handle.out = out;
  handle.url = `http://127.0.0.1:${handle.port}`;
  return handle;
}

// A webhook receiver on 127.0.0.1 that records every request (method, url, lowercased headers,
// the headers as sent, raw body) and answers what `respond(record, index)` says: a status, or {status, headers, body}.
// By default it answers 204.
export async function startRecorder({ port = 0, respond = () => 204 } = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const record = {
        method: req.method,
        url: req.url,
        headers: { ...req.headers },
        rawHeaders: req.rawHeaders, // as sent: names in their case, repeats kept
        raw,
        body: raw.toString('utf8'),
        at: Date.now(),
      };
      const index = requests.length;
      requests.push(record);
      let answer;
      try {
        answer = respond(record, index);
      } catch {
        answer = 500;
      }
      if (typeof answer === 'number') answer = { status: answer };
      record.answeredStatus = answer.status;
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;
  return {
    port: actualPort,
    url: `http://127.0.0.1:${actualPort}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// Runs `fn(fx, t)` as a node:test test with a fixture whose start* functions track what they
// start; afterwards (pass or fail) stops those processes, closes those servers and removes the
// temporary dirs. On failure, the tail of each process's stderr is printed.
export function itest(name, options, fn) {
  if (typeof options === 'function') {
    fn = options;
    options = {};
  }
  const timeout = options.timeout ?? 120_000;
  return test(name, { ...options, timeout }, async (t) => {
    const handles = [];
    const recorders = [];
    const dirs = [];
    const cleanups = [];
    const fx = {
      tempDir(prefix) {
        const dir = makeTempDir(prefix);
        dirs.push(dir);
        return dir;
      },
      async startServe(opts = {}) {
        const dataDir = opts.dataDir ?? fx.tempDir('pushhook-serve-');
        const handle = await startServe({ ...opts, dataDir });
        handles.push(handle);
        return handle;
      },
      async startReceive(opts) {
        const dir = opts.dir ?? fx.tempDir('pushhook-receive-');
        const handle = await startReceive({ ...opts, dir });
        handles.push(handle);
        return handle;
      },
      async startRecorder(opts) {
        const recorder = await startRecorder(opts);
        recorders.push(recorder);
        return recorder;
      },
      spawn(args, opts = {}) {
        const handle = spawnPushhook(args, opts);
        handles.push(handle);
        return handle;
      },
      track(handle) {
        handles.push(handle);
        return handle;
      },
      // Runs `fn()` (may be async) after the test, once its processes are stopped and its
      // servers closed, before its temporary dirs are removed; the latest registered runs first.
      onCleanup(fn) {
        cleanups.push(fn);
      },
    };
    // Our own deadline, a little before node:test's, so that a stuck test still reaches the
    // cleanup below (node:test reports a timeout but lets the test body run on).
    let deadline;
    const expired = new Promise((_, reject) => {
      deadline = setTimeout(
        () => reject(new Error(`test did not finish within ${timeout - 5_000} ms`)),
        Math.max(timeout - 5_000, 1_000),
      );
    });
    try {
      await Promise.race([fn(fx, t), expired]);
    } catch (err) {
      for (const h of handles) {
        console.error(`--- ${h.name} (pid ${h.pid}) stderr, last lines ---\n${tail(h.stderr)}`);
      }
      throw err;
    } finally {
      clearTimeout(deadline);
      await Promise.allSettled(handles.map((h) => stop(h, 'SIGTERM', 5_000)));
      await Promise.allSettled(recorders.map((r) => r.close()));
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup failed: ${err.message}`);
        }
      }
      for (const dir of dirs) removeTempDir(dir);
    }
  });
}

// A site with one endpoint that points at `url`: {site, endpoint, key}.
export async function siteWithEndpoint(serve, url, endpointOptions = {}) {
  const site = await serve.createSite(`site-${randomBytes(3).toString('hex')}`);
  const endpoint = await serve.createEndpoint(site.id, { url, ...endpointOptions });
  return { site, endpoint, key: site.ingest_key };
}

// Standard Webhooks headers of a recorded request, as the verifiers take them.
export function webhookHeaders(record) {
  return {
    'webhook-id': record.headers['webhook-id'],
    'webhook-timestamp': record.headers['webhook-timestamp'],
    'webhook-signature': record.headers['webhook-signature'],
  };
}
