#!/usr/bin/env node
// The benchmark harness of issue 6 (see BENCHMARKS.md): starts its own nginx, `pushhook serve`
// and `pushhook receive` on 127.0.0.1, drives load with wrk and `pushhook send`, and prints one
// table of medians with each figure's ratio to nginx measured in the same run. Results also go to
// bench/results/latest.json (bench/results/smoke.json for --smoke). Figure 8 also starts its own
// PostgreSQL (scripts/pg-cluster) and runs several serve nodes on it.
//
// Every server listens on 127.0.0.1 only; every load stops by itself (a count and a time bound);
// every child is tracked by pid and killed on exit, failure or signal; an overall watchdog ends
// the run if something hangs. Nothing here asserts on timings: the exit status is 1 only when the
// harness could not measure (a process failed to start, a load could not finish).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');

const USAGE = `usage: bench/run [options]
  --smoke, --quick   tiny counts, 1 repetition, every figure's code path in seconds (for CI)
  --only N,M         figures to run (0 nginx, 1 ingest, 2 batched ingest, 3 end to end,
                     4 latency, 5 backlog, 6 slow receiver, 7 microbenchmarks, 8 PostgreSQL
                     scale-out); the nginx reference (0) is run as well whenever 1 or 3 need
                     its ratio. Figure 8 is skipped with a warning when PostgreSQL is not
                     installed, unless --only names it
  --reps R           repetitions per figure, median reported (default 3; smoke 1)
  --duration S       seconds per timed load (default 8; smoke 1)
  --backlog N        pending messages for figure 5 (default 1000000; smoke 2000)
  --bin PATH         the pushhook binary (default build/pushhook, or $PUSHHOOK_BIN)
  --micro PATH       the microbenchmark binary (default build/bench/pushhook_micro_bench)
  --out PATH         results JSON (default bench/results/latest.json; smoke: smoke.json)
  --perf             record \`perf record -g\` of serve during figures 1 and 3 (first repetition)
  --keep             keep the temporary folder (logs, databases, configs)`;

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = {
    smoke: false,
    only: null,
    reps: null,
    duration: null,
    backlog: null,
    bin: process.env.PUSHHOOK_BIN || path.join(REPO_ROOT, 'build', 'pushhook'),
    micro: path.join(REPO_ROOT, 'build', 'bench', 'pushhook_micro_bench'),
    out: null,
    perf: false,
    keep: false,
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${a} needs a value`);
      return argv[++i];
    };
    const positive = (text, what) => {
      const n = Number(text);
      if (!Number.isFinite(n) || n <= 0) usageError(`${what} must be a positive number, not "${text}"`);
      return n;
    };
    if (a === '--smoke' || a === '--quick') o.smoke = true;
    else if (a === '--only') {
      o.only = new Set(value().split(',').map((s) => {
        const n = Number(s.trim());
        if (!Number.isInteger(n) || n < 0 || n > 8) usageError(`--only takes figure numbers 0-8, not "${s}"`);
        return n;
      }));
    } else if (a === '--reps') o.reps = Math.round(positive(value(), '--reps'));
    else if (a === '--duration') o.duration = positive(value(), '--duration');
    else if (a === '--backlog') o.backlog = Math.round(positive(value(), '--backlog'));
    else if (a === '--bin') o.bin = path.resolve(value());
    else if (a === '--micro') o.micro = path.resolve(value());
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--perf') o.perf = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else usageError(`unknown option ${a}`);
  }
  o.reps ??= o.smoke ? 1 : 3;
  o.duration ??= o.smoke ? 1 : 8;
  o.backlog ??= o.smoke ? 2000 : 1_000_000;
  o.out ??= path.join(BENCH_DIR, 'results', o.smoke ? 'smoke.json' : 'latest.json');
  const all = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  o.figures = new Set(o.only ? all.filter((n) => o.only.has(n)) : all);
  if (o.figures.has(1) || o.figures.has(3)) o.figures.add(0);
  return o;
}

function usageError(message) {
  console.error(`bench/run: ${message}\n${USAGE}`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

// Sizes of each figure's load. Smoke keeps every code path with counts that take moments.
const SIZES = opts.smoke
  ? {
      batchCount: 5_000,
      e2eProbeWebhooks: 0, // no probe: fixed small counts
      manyEndpoints: 50, // creating 1,000 endpoints takes longer than the whole smoke run
      e2eWebhooks: 2_000,
      e2eSeconds: 0,
      latencyRates: [200, 1000],
      latencySeconds: 1,
      slowInFlight: 16,
      slowSeconds: 1,
      microMinTime: 0.1,
      pgNodeCounts: [1, 2],
      pgIngestEvents: 2_000, // in all, spread over the nodes
      pgEndToEndEvents: 300,
      pgbenchScale: 1,
      pgbenchSeconds: 1,
    }
  : {
      batchCount: 0, // bounded by --duration
      e2eProbeWebhooks: 20_000,
      manyEndpoints: 1000,
      e2eWebhooks: null, // sized from the probe so that a run lasts e2eSeconds
      e2eSeconds: Math.max(8, opts.duration),
      latencyRates: [200, 5000],
      latencySeconds: opts.duration,
      slowInFlight: 64,
      slowSeconds: Math.max(8, opts.duration),
      microMinTime: 0.5,
      pgNodeCounts: [1, 2, 3],
      pgIngestEvents: 0, // bounded by --duration
      pgEndToEndEvents: 4_000, // x 6 endpoints = 24,000 deliveries, 5-15 s here
      pgbenchScale: 10,
      pgbenchSeconds: 5,
    };
const SLOW_DELAY_MS = 200;
const ADMIN_TOKEN = `bench-${process.pid}-${Date.now().toString(36)}`;
const EVENT_BODY = fs.readFileSync(path.join(BENCH_DIR, 'event.json'), 'utf8').trim();

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked by pid and killed when we leave, however we leave.

const children = new Map(); // pid -> handle
let tmpRoot = null;

function killAll() {
  stopPostgresNow();
  for (const [pid, h] of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    children.delete(pid);
    h.killed = true;
  }
}

function cleanupAndExit(code) {
  killAll();
  if (tmpRoot && !opts.keep) fs.rmSync(tmpRoot, { recursive: true, force: true });
  if (!opts.keep) for (const dir of postgresDirs) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

process.on('exit', killAll);
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(signal, () => {
    console.error(`bench/run: ${signal}: stopping every child`);
    cleanupAndExit(128 + number);
  });
}
process.on('uncaughtException', (err) => {
  console.error(`bench/run: ${err.stack || err}`);
  cleanupAndExit(1);
});
process.on('unhandledRejection', (err) => {
  console.error(`bench/run: ${err?.stack || err}`);
  cleanupAndExit(1);
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The environment for a child: ours without PUSHHOOK_* settings (a developer's config must not
// change what is measured), plus `extra`.
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PUSHHOOK_')) env[k] = v;
  return { ...env, ...extra };
}

// Starts a long-running child. stderr lines are kept (JSON ones parsed) and copied to a log file
// in the temporary folder; `onLine` listeners see each line with its arrival time.
function startChild(name, cmd, args, { env = {}, logName = name } = {}) {
  const proc = spawn(cmd, args, { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const h = {
    name,
    proc,
    pid: proc.pid,
    stdout: '',
    stderr: '',
    logs: [],
    listeners: new Set(),
    killed: false,
  };
  if (proc.pid !== undefined) children.set(proc.pid, h);
  h.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      children.delete(proc.pid);
      resolve({ code, signal });
    });
    proc.once('error', (error) => {
      children.delete(proc.pid);
      resolve({ code: null, signal: null, error });
    });
  });
  h.exitInfo = null;
  h.exited.then((info) => {
    h.exitInfo = info;
  });
  const log = fs.createWriteStream(path.join(tmpRoot, `${logName}.log`), { flags: 'a' });
  let partial = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    const at = Date.now();
    log.write(chunk);
    h.stderr = (h.stderr + chunk).slice(-20_000);
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) {
      let parsed = null;
      try {
        parsed = JSON.parse(line);
      } catch {
        // not a JSON line
      }
      if (parsed && typeof parsed === 'object') {
        parsed._at = at;
        h.logs.push(parsed);
        if (h.logs.length > 5000) h.logs.splice(0, 1000);
      }
      for (const fn of h.listeners) fn(parsed, line, at);
    }
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    h.stdout += chunk;
  });
  proc.once('exit', () => log.end());
  return h;
}

// Stops a child: `signal`, then SIGKILL after `timeoutMs`.
async function stopChild(h, signal = 'SIGTERM', timeoutMs = 15_000) {
  if (!h || h.exitInfo || h.pid === undefined) return h?.exitInfo;
  try {
    process.kill(h.pid, signal);
  } catch {
    // raced with its exit
  }
  const result = await Promise.race([h.exited, sleep(timeoutMs).then(() => null)]);
  if (result) return result;
  try {
    process.kill(h.pid, 'SIGKILL');
  } catch {
    // gone
  }
  return Promise.race([h.exited, sleep(5000).then(() => ({ stuck: true }))]);
}

// Runs a command to completion, killed after `timeoutMs`. Resolves to {code, stdout, stderr}.
async function runCommand(name, cmd, args, { timeoutMs, env = {} } = {}) {
  const h = startChild(name, cmd, args, { env });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(h.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, timeoutMs);
  const info = await h.exited;
  clearTimeout(timer);
  if (info.error) throw new Error(`${name}: cannot run ${cmd}: ${info.error.message}`);
  if (timedOut) throw new Error(`${name}: still running after ${timeoutMs} ms; killed`);
  return { code: info.code, stdout: h.stdout, stderr: h.stderr };
}

// Resolves with the first stderr JSON line for which `pred` holds; rejects when the child exits
// first or after `timeoutMs`.
function waitLog(h, pred, timeoutMs, what) {
  const found = h.logs.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      h.listeners.delete(listener);
      fn(value);
    };
    const listener = (parsed) => {
      if (parsed && pred(parsed)) finish(resolve, parsed);
    };
    h.listeners.add(listener);
    const timer = setTimeout(
      () => finish(reject, new Error(`${h.name}: no ${what} within ${timeoutMs} ms; stderr:\n${tail(h.stderr)}`)),
      timeoutMs,
    );
    h.exited.then(({ code, signal, error }) =>
      finish(reject, new Error(`${h.name} exited (code ${code}, signal ${signal}${error ? `, ${error.message}` : ''}) ` +
        `before ${what}; stderr:\n${tail(h.stderr)}`)));
  });
}

function tail(text, n = 15) {
  return text.trim().split('\n').slice(-n).join('\n');
}

// A port on 127.0.0.1 that nothing listened on a moment ago.
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function makeDir(name) {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function removeDir(dir) {
  if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// pushhook processes and API

async function httpCall(base, method, urlPath, { body, headers = {}, timeoutMs = 30_000 } = {}) {
  const h = { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers };
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + urlPath, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

async function expectOk(promise, what) {
  const res = await promise;
  if (res.status < 200 || res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  return res.json;
}

class Serve {
  static async start(dataDir, extraArgs = [], name = 'serve', { env = {} } = {}) {
    const s = new Serve();
    s.dataDir = dataDir;
    s.startedAt = Date.now();
    s.h = startChild(name, opts.bin, [
      'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--dev', '--durability', 'full',
      ...extraArgs,
    ], { env: { ...env, PUSHHOOK_ADMIN_TOKEN: ADMIN_TOKEN }, logName: `${name}-${path.basename(dataDir)}` });
    const line = await waitLog(s.h, (l) => l.msg === 'listening' && l.port > 0, 120_000, '"listening" log line');
    s.port = line.port;
    s.listeningAt = line._at;
    s.base = `http://127.0.0.1:${s.port}`;
    s.readyAt = await waitReady(s.base, 120_000, s.h);
    return s;
  }

  async createSite(name = 'bench') {
    return expectOk(httpCall(this.base, 'POST', '/v1/sites', { body: { name } }), 'POST /v1/sites');
  }

  async createEndpoint(siteId, body) {
    return expectOk(httpCall(this.base, 'POST', `/v1/sites/${siteId}/endpoints`, { body }), 'POST endpoints');
  }

  // Creates `n` endpoints with bounded concurrency; returns them in order.
  async createEndpoints(siteId, n, bodyFor) {
    const out = new Array(n);
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        out[i] = await this.createEndpoint(siteId, bodyFor(i));
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, n) }, worker));
    return out;
  }

  rssKiB() {
    return readStatusKiB(this.h.pid);
  }

  async stop() {
    return stopChild(this.h, 'SIGTERM', 30_000);
  }
}

async function waitReady(base, timeoutMs, h) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return Date.now();
    } catch {
      // not listening yet
    }
    if (h?.exitInfo) throw new Error(`${h.name} exited while waiting for /readyz:\n${tail(h.stderr)}`);
    if (Date.now() > deadline) throw new Error(`${base}/readyz not 200 within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function readStatusKiB(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

// `pushhook receive` with every secret; tracks its once-a-second "counts" lines with the time
// each arrived here.
class Receiver {
  static async start(secrets, { listen = '127.0.0.1:0', out, delay, name = 'receive' } = {}) {
    const r = new Receiver();
    const args = ['receive', '--listen', listen];
    for (const s of secrets) args.push('--secret', s);
    if (out) args.push('--out', out);
    if (delay) args.push('--delay', delay);
    r.h = startChild(name, opts.bin, args, { logName: `${name}-${Date.now()}` });
    r.counts = { received: 0, stored: 0, duplicates: 0, rejected: 0 };
    r.history = []; // [{at, stored, received, rejected}]
    r.h.listeners.add((parsed) => {
      if (parsed && (parsed.msg === 'counts' || parsed.msg === 'stopped')) {
        r.counts = parsed;
        r.history.push({ at: parsed._at, stored: parsed.stored, received: parsed.received, rejected: parsed.rejected });
      }
    });
    const line = await waitLog(r.h, (l) => l.msg === 'listening' && l.port > 0, 30_000, '"listening" log line');
    r.port = line.port;
    return r;
  }

  // Resolves when `stored` reaches `target`, or after `timeoutMs` (then `timedOut`).
  async waitStored(target, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (this.counts.stored < target) {
      if (this.h.exitInfo) throw new Error(`receive exited early:\n${tail(this.h.stderr)}`);
      if (Date.now() > deadline) return { timedOut: true };
      await sleep(20);
    }
    return { timedOut: false };
  }

  // When `stored` crossed `target`. The receiver prints counts about once a second, so the
  // line that shows the target arrives up to a second after it happened; the crossing is
  // interpolated at the rate of the interval before it (which ran at full speed).
  crossing(target, startMs, baseline = 0) {
    const hist = this.history.filter((e) => e.at >= startMs);
    const f = hist.findIndex((e) => e.stored >= target);
    if (f < 0) return null;
    const upper = hist[f].at;
    const prev = f > 0 ? hist[f - 1] : { at: startMs, stored: baseline };
    const before = f > 1 ? hist[f - 2] : { at: startMs, stored: baseline };
    let estimate = upper;
    const rate = (prev.stored - before.stored) / Math.max(1, prev.at - before.at);
    if (rate > 0 && f > 0) estimate = Math.min(upper, prev.at + (target - prev.stored) / rate);
    return { estimate: Math.max(estimate, prev.at), lower: prev.at, upper };
  }

  async stop() {
    return stopChild(this.h, 'SIGTERM', 30_000);
  }
}

// `pushhook send`; resolves to its one JSON line.
async function send(server, key, { count, rate = 0, batch = 1, connections = 8, maxSeconds = 60 }) {
  const args = ['send', '--server', server.base, '--key', key, '--count', String(count),
    '--batch', String(batch), '--connections', String(connections), '--max-seconds', String(maxSeconds)];
  if (rate > 0) args.push('--rate', String(rate));
  const { code, stdout, stderr } = await runCommand('send', opts.bin, args, { timeoutMs: (maxSeconds + 60) * 1000 });
  const line = stdout.trim().split('\n').pop();
  let report;
  try {
    report = JSON.parse(line);
  } catch {
    throw new Error(`send (exit ${code}) printed no report: ${stdout.slice(0, 300)} ${tail(stderr)}`);
  }
  report.exit_code = code;
  return report;
}

// ---------------------------------------------------------------------------------------------
// nginx and wrk

// nginx answering 204 to everything. With `accessLog`, it writes one line per request holding
// its time ($msec, "1795817164.753\n"), which makes it a sink whose count and finishing time are
// exact and cost nothing to verify (the diagnostic variant of figure 3).
async function startNginx(name = 'nginx', { accessLog = null } = {}) {
  const dir = makeDir(name);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  const accessLine = accessLog
    ? `log_format bench_msec '$msec';\n  access_log ${accessLog} bench_msec buffer=64k flush=100ms;`
    : 'access_log off;';
  // master_process off: one process that is the one worker, so that killing the pid we know
  // stops all of nginx (a master killed by SIGKILL leaves its workers running).
  fs.writeFileSync(conf, `worker_processes 1;
master_process off;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 20000; }
worker_rlimit_nofile 40000;
http {
  ${accessLine}
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 204; }
  }
}
`);
  const h = startChild(name, 'nginx', ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`, { method: 'POST', body: EVENT_BODY, signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 204) break;
    } catch {
      // not up yet
    }
    if (h.exitInfo) throw new Error(`nginx exited (${JSON.stringify(h.exitInfo)}):\n${tail(h.stderr)}`);
    if (Date.now() > deadline) throw new Error('nginx did not answer 204 within 10 s');
    await sleep(20);
  }
  return { h, port, base: `http://127.0.0.1:${port}` };
}

// A wrk script posting the 350-byte event, counting answers by status in every thread and
// printing the totals as one JSON line at the end. nginx and ingest use the same script, so the
// cost of the Lua hook is in both sides of the ratio.
function writeWrkScript(name, headers) {
  const file = path.join(tmpRoot, `${name}.lua`);
  const headerLines = Object.entries(headers)
    .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
    .join('\n');
  fs.writeFileSync(file, `wrk.method = "POST"
wrk.body = ${luaString(EVENT_BODY)}
wrk.headers["content-type"] = "application/json"
${headerLines}

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

statuses = {}
function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      total[k] = (total[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"statuses":{%s},"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"max":%d}}\\n',
    table.concat(parts, ","), summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`);
  return file;
}

function luaString(s) {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

async function runWrk(url, script, seconds) {
  const args = ['-t2', '-c64', `-d${seconds}s`, '--timeout', '10s', '-s', script, url];
  const { code, stdout, stderr } = await runCommand('wrk', 'wrk', args, { timeoutMs: (seconds + 30) * 1000 });
  const rps = Number((stdout.match(/Requests\/sec:\s+([\d.]+)/) || [])[1]);
  const m = stdout.match(/WRK_RESULT (.*)/);
  if (code !== 0 || !Number.isFinite(rps) || !m) {
    throw new Error(`wrk failed (exit ${code}): ${stdout.slice(-500)} ${tail(stderr)}`);
  }
  const result = JSON.parse(m[1]);
  return { rps, ...result };
}

// ---------------------------------------------------------------------------------------------
// Statistics

function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

// ---------------------------------------------------------------------------------------------
// Figures

const results = {
  started_at: new Date().toISOString(),
  mode: opts.smoke ? 'smoke' : 'full',
  settings: { reps: opts.reps, duration_s: opts.duration, backlog: opts.backlog, figures: [...opts.figures] },
  machine: machineInfo(),
  figures: {},
  errors: [],
  warnings: [],
};

function machineInfo() {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  return {
    nproc: os.cpus().length,
    cpu_model: (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || 'unknown',
    mem_total_mib: Math.round(Number((meminfo.match(/^MemTotal:\s+(\d+)/m) || [])[1]) / 1024),
    kernel: os.release(),
    loadavg_start: os.loadavg().map((x) => Number(x.toFixed(2))),
  };
}

function log(message) {
  const t = ((Date.now() - START) / 1000).toFixed(1).padStart(6);
  console.error(`[${t}s] ${message}`);
}

// Runs perf record on `pid` for `seconds`, if --perf; the report goes to the results folder.
async function maybePerf(label, pid, seconds) {
  if (!opts.perf) return null;
  const data = path.join(tmpRoot, `perf-${label}.data`);
  const h = startChild(`perf-${label}`, 'perf', ['record', '-g', '-F', '499', '-p', String(pid), '-o', data, '--', 'sleep', String(seconds)]);
  return { h, data, label };
}

async function finishPerf(p) {
  if (!p) return;
  await Promise.race([p.h.exited, sleep(30_000)]);
  const report = path.join(path.dirname(opts.out), `perf-${p.label}.txt`);
  const sections = [];
  try {
    // Where serve's CPU went: by thread, by library, then the hottest symbols.
    for (const [title, sort, limit] of [['by thread', 'comm', '0.5'], ['by thread and library', 'comm,dso', '1'],
      ['hottest symbols', 'comm,dso,symbol', '0.7']]) {
      const { stdout } = await runCommand('perf-report', 'perf', ['report', '-i', p.data, '--no-children', '--stdio',
        '-g', 'none', '--percent-limit', limit, '--sort', sort], { timeoutMs: 120_000 });
      const lines = stdout.split('\n').filter((l) => l.trim() && !l.startsWith('#')).map((l) => l.replace(/\s{2,}/g, '  ').trimEnd());
      sections.push(`## ${title}\n${lines.slice(0, 60).join('\n')}`);
    }
    fs.mkdirSync(path.dirname(report), { recursive: true });
    fs.writeFileSync(report, `# perf record -g -F 499 of pushhook serve during ${p.label}\n\n${sections.join('\n\n')}\n`);
    log(`perf profile of ${p.label}: ${path.relative(REPO_ROOT, report)}`);
  } catch (err) {
    log(`perf report failed: ${err.message}`);
  }
}

// Figure 0 and 1, interleaved: nginx, ingest, nginx, ingest, ...
async function figuresNginxAndIngest() {
  const nginx = await startNginx();
  const nginxScript = writeWrkScript('nginx', {});
  const nginxRuns = [];
  const ingestRuns = [];
  try {
    for (let rep = 0; rep < opts.reps; ++rep) {
      const n = await runWrk(`${nginx.base}/`, nginxScript, opts.duration);
      nginxRuns.push(n);
      log(`fig 0 rep ${rep + 1}: nginx ${n.rps.toFixed(0)} req/s ${JSON.stringify(n.statuses)}`);
      if (!opts.figures.has(1)) continue;
      const dir = makeDir(`fig1-${rep}`);
      const serve = await Serve.start(dir);
      try {
        const site = await serve.createSite();
        const script = writeWrkScript(`ingest-${rep}`, { 'x-pushhook-key': site.ingest_key });
        const perf = rep === 0 ? await maybePerf('fig1-ingest', serve.h.pid, Math.max(1, opts.duration - 1)) : null;
        const r = await runWrk(`${serve.base}/v1/events`, script, opts.duration);
        await finishPerf(perf);
        r.non_202 = Object.entries(r.statuses).filter(([k]) => k !== '202').reduce((a, [, v]) => a + v, 0);
        r.rss_kib = serve.rssKiB().rss;
        ingestRuns.push(r);
        log(`fig 1 rep ${rep + 1}: ingest ${r.rps.toFixed(0)} req/s, non-202 ${r.non_202}, ` +
          `p50 ${(r.latency_us.p50 / 1000).toFixed(2)} ms p99 ${(r.latency_us.p99 / 1000).toFixed(2)} ms`);
      } finally {
        await serve.stop();
        removeDir(dir);
      }
    }
  } finally {
    await stopChild(nginx.h, 'SIGTERM', 5000);
  }
  const nginxMedian = median(nginxRuns.map((r) => r.rps));
  results.figures.nginx = { runs: nginxRuns, median_rps: nginxMedian };
  if (opts.figures.has(1)) {
    const m = median(ingestRuns.map((r) => r.rps));
    results.figures.ingest_single = {
      runs: ingestRuns,
      median_rps: m,
      ratio_to_nginx: m / nginxMedian,
      non_202_total: ingestRuns.reduce((a, r) => a + r.non_202, 0),
      median_latency_p99_ms: median(ingestRuns.map((r) => r.latency_us.p99 / 1000)),
    };
  }
}

// Figure 2: batches of 1,000 from `pushhook send`, with 2 and 4 connections interleaved.
async function figureBatchedIngest() {
  const byConnections = { 2: [], 4: [] };
  for (let rep = 0; rep < opts.reps; ++rep) {
    for (const connections of [2, 4]) {
      const dir = makeDir(`fig2-${rep}-${connections}`);
      const serve = await Serve.start(dir);
      try {
        const site = await serve.createSite();
        const count = SIZES.batchCount || 1_000_000 * Math.ceil(opts.duration);
        const r = await send(serve, site.ingest_key, {
          count, batch: 1000, connections, maxSeconds: opts.smoke ? 30 : opts.duration,
        });
        if (r.accepted === 0) throw new Error(`batched ingest accepted nothing: ${JSON.stringify(r)}`);
        r.rss_kib = serve.rssKiB().rss;
        byConnections[connections].push(r);
        log(`fig 2 rep ${rep + 1}: ${connections} connections: ${r.events_per_second.toFixed(0)} events/s ` +
          `(${r.accepted} accepted, ${r.refused} refused, ${r.errors} errors)`);
      } finally {
        await serve.stop();
        removeDir(dir);
      }
    }
  }
  const m2 = median(byConnections[2].map((r) => r.events_per_second));
  const m4 = median(byConnections[4].map((r) => r.events_per_second));
  results.figures.ingest_batched = {
    runs: byConnections,
    median_events_per_second: { 2: m2, 4: m4 },
    best_median_events_per_second: Math.max(m2 ?? 0, m4 ?? 0),
  };
}

// The setting of an end-to-end run: a serve with `endpoints` endpoints (paths /e/<i>) on one
// sink, which is `pushhook receive` holding every endpoint's secret, or (sink: 'nginx') an nginx
// that verifies nothing and logs each request's time, to see what serve does when the receiver
// costs nothing. Made once per variant and reused by its runs: creating 1,000 endpoints takes
// longer than a run.
class EndToEnd {
  static async create(label, endpoints, { sink = 'receive', maxInFlight, delay } = {}) {
    const e = new EndToEnd();
    Object.assign(e, { label, endpoints, sink });
    e.dir = makeDir(label);
    e.serve = await Serve.start(e.dir);
    try {
      e.site = await e.serve.createSite();
      // The receiver needs the secrets, known only once the endpoints exist: take a port, create
      // the endpoints pointing there, then start the receiver on it.
      let port;
      e.accessLog = path.join(e.dir, 'access.log');
      if (sink === 'nginx') {
        e.nginx = await startNginx(`${label}-nginx`, { accessLog: e.accessLog });
        port = e.nginx.port;
      } else {
        port = await freePort();
      }
      const setupStart = Date.now();
      const created = await e.serve.createEndpoints(e.site.id, endpoints, (i) => ({
        url: `http://127.0.0.1:${port}/e/${i}`,
        ...(maxInFlight ? { max_in_flight: maxInFlight } : {}),
      }));
      e.setupSeconds = (Date.now() - setupStart) / 1000;
      if (sink !== 'nginx') {
        e.receiver = await Receiver.start(created.map((x) => x.secret), { listen: `127.0.0.1:${port}`, delay });
      }
    } catch (err) {
      await e.close();
      throw err;
    }
    return e;
  }

  // What the sink has taken so far, and when the `n`-th of what it takes after `baseline`
  // arrived (null until it has).
  taken() {
    if (this.receiver) return this.receiver.counts.stored;
    return fs.existsSync(this.accessLog) ? Math.floor(fs.statSync(this.accessLog).size / 15) : 0; // "1795817164.753\n"
  }

  // Sends `events` events in batches as fast as they are taken; timed from the first send until
  // the sink has taken events x endpoints more payloads.
  async run(events, { timeoutMs, perfLabel } = {}) {
    const { serve, receiver } = this;
    const baseline = this.taken();
    const target = events * this.endpoints;
    const batch = Math.max(1, Math.min(100, events));
    const perf = perfLabel ? await maybePerf(perfLabel, serve.h.pid, 5) : null;
    const cpuBefore = this.cpuByThread();
    const start = Date.now();
    const sent = await send(serve, this.site.ingest_key, { count: events, batch, connections: 4, maxSeconds: 120 });
    const sentAt = Date.now();
    if (sent.accepted !== events) throw new Error(`end to end: only ${sent.accepted} of ${events} events accepted: ${JSON.stringify(sent)}`);
    let r;
    const deadline = Date.now() + timeoutMs;
    while (this.taken() < baseline + target && Date.now() < deadline) {
      if (receiver?.h.exitInfo || this.nginx?.h.exitInfo) throw new Error(`${this.sink} exited during a run`);
      await sleep(20);
    }
    const timedOut = this.taken() < baseline + target;
    if (receiver) {
      const crossing = receiver.crossing(baseline + target, start, baseline);
      const seconds = ((crossing ? crossing.estimate : Date.now()) - start) / 1000;
      r = {
        stored: Math.min(receiver.counts.stored - baseline, target),
        seconds,
        seconds_bounds: crossing ? [(crossing.lower - start) / 1000, (crossing.upper - start) / 1000] : null,
        receiver: { received: receiver.counts.received, stored: receiver.counts.stored,
          duplicates: receiver.counts.duplicates, rejected: receiver.counts.rejected },
      };
    } else {
      await sleep(300); // the access log's flush interval: the file then holds every line
      const times = fs.readFileSync(this.accessLog, 'utf8').trim().split('\n').slice(baseline)
        .map((x) => Number(x) * 1000).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
      const end = times.length >= target ? times[target - 1] : Date.now();
      r = { stored: Math.min(times.length, target), seconds: (end - start) / 1000 };
    }
    r.cpu_us_per_webhook = cpuPerItem(cpuBefore, this.cpuByThread(), r.stored);
    await finishPerf(perf);
    return {
      sink: this.sink,
      endpoints: this.endpoints,
      events,
      webhooks: target,
      timed_out: timedOut,
      ...r,
      webhooks_per_second: r.stored / r.seconds,
      endpoint_setup_seconds: this.setupSeconds,
      ingest_seconds: (sentAt - start) / 1000,
      ingest_events_per_second: sent.events_per_second,
      serve_rss_kib: serve.rssKiB().rss,
    };
  }

  // CPU seconds by thread name of serve and of the receiver.
  cpuByThread() {
    return {
      serve: threadCpuSeconds(this.serve.h.pid),
      ...(this.receiver ? { receive: threadCpuSeconds(this.receiver.h.pid) } : {}),
    };
  }

  async close() {
    if (this.receiver) await this.receiver.stop();
    if (this.nginx) await stopChild(this.nginx.h, 'SIGTERM', 5000);
    if (this.serve) await this.serve.stop();
    removeDir(this.dir);
  }
}

async function figureEndToEnd() {
  const many = SIZES.manyEndpoints;
  // The figure (sink: pushhook receive) and its diagnostic twin (sink: nginx), interleaved.
  const variants = [['receive', 1], ['receive', many], ['nginx', 1], ['nginx', many]];
  const key = (sink, endpoints) => `${sink}:${endpoints}`;
  const runs = Object.fromEntries(variants.map(([s, e]) => [key(s, e), []]));
  const webhooksFor = {};
  const setups = {};
  try {
    for (const [sink, endpoints] of variants) {
      const k = key(sink, endpoints);
      setups[k] = await EndToEnd.create(`fig3-${sink}-${endpoints}`, endpoints, { sink });
      if (SIZES.e2eWebhooks) {
        webhooksFor[k] = SIZES.e2eWebhooks;
        continue;
      }
      // A short probe (also the warm-up) sizes the measured runs to last about e2eSeconds. It
      // is smaller for many endpoints on one receiver: all of its messages go out at once, and
      // a receiver slower than serve's delivery timeout turns a big probe into retries.
      const probeWebhooks = sink === 'receive' && endpoints > 1 ? SIZES.e2eProbeWebhooks / 4 : SIZES.e2eProbeWebhooks;
      const events = Math.max(1, Math.round(probeWebhooks / endpoints));
      const probe = await setups[k].run(events, { timeoutMs: 60_000 });
      webhooksFor[k] = Math.max(endpoints, Math.round(probe.webhooks_per_second * SIZES.e2eSeconds));
      log(`fig 3 probe, ${endpoints} endpoint(s) to ${sink}: ${probe.webhooks_per_second.toFixed(0)} webhooks/s ` +
        `-> ${webhooksFor[k]} webhooks per run (endpoints made in ${probe.endpoint_setup_seconds.toFixed(1)} s)` +
        `${probe.timed_out ? ' (probe timed out)' : ''}`);
    }
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const [sink, endpoints] of variants) {
        const k = key(sink, endpoints);
        const events = Math.max(1, Math.round(webhooksFor[k] / endpoints));
        const r = await setups[k].run(events, {
          timeoutMs: Math.max(60_000, SIZES.e2eSeconds * 4000),
          perfLabel: rep === 0 && sink === 'receive' ? `fig3-e2e-${endpoints}` : null,
        });
        runs[k].push(r);
        log(`fig 3 rep ${rep + 1}, ${endpoints} endpoint(s) to ${sink}: ${r.webhooks_per_second.toFixed(0)} webhooks/s ` +
          `(${r.stored}/${r.webhooks} in ${r.seconds.toFixed(2)} s; ingest took ${r.ingest_seconds.toFixed(2)} s` +
          `${r.receiver ? `; receiver duplicates ${r.receiver.duplicates}` : ''}${r.timed_out ? '; TIMED OUT' : ''})`);
        if (r.stored === 0) throw new Error(`figure 3: nothing delivered to ${endpoints} endpoint(s) on ${sink}`);
        if (r.timed_out) results.warnings.push(`figure 3: ${endpoints} endpoint(s) to ${sink}: timed out with ${r.stored}/${r.webhooks}`);
      }
    }
  } finally {
    for (const setup of Object.values(setups)) await setup.close();
  }
  const nginx = results.figures.nginx?.median_rps;
  const med = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, median(v.map((r) => r.webhooks_per_second))]));
  results.figures.end_to_end = {
    runs,
    many_endpoints: many,
    median_webhooks_per_second: med,
    ratio_to_nginx: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, v / nginx])),
    ratio_many_to_1: {
      receive: med[key('receive', many)] / med[key('receive', 1)],
      nginx: med[key('nginx', many)] / med[key('nginx', 1)],
    },
  };
}

// Figure 4: latency from occurred_at (stamped by `send` as it builds the request) to the
// receiver's received_at_ms, at two offered rates, extended payloads stored in SQLite.
async function figureLatency() {
  const byRate = {};
  for (const rate of SIZES.latencyRates) byRate[rate] = [];
  for (let rep = 0; rep < opts.reps; ++rep) {
    for (const rate of SIZES.latencyRates) {
      const dir = makeDir(`fig4-${rep}-${rate}`);
      const serve = await Serve.start(dir);
      let receiver;
      try {
        const site = await serve.createSite();
        const port = await freePort();
        const ep = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/lat`, payload_format: 'extended' });
        const db = path.join(dir, 'lat.db');
        receiver = await Receiver.start([ep.secret], { listen: `127.0.0.1:${port}`, out: db });
        const count = Math.round(rate * SIZES.latencySeconds);
        const sent = await send(serve, site.ingest_key, {
          count, rate, batch: 1, connections: rate > 1000 ? 128 : 8, maxSeconds: SIZES.latencySeconds * 3 + 5,
        });
        const waited = await receiver.waitStored(sent.accepted, 60_000);
        await receiver.stop();
        const q = await runCommand('sqlite3', 'sqlite3', ['-separator', '\t', db,
          "SELECT received_at_ms, json_extract(payload, '$.occurred_at') FROM received"], { timeoutMs: 60_000 });
        if (q.code !== 0) throw new Error(`sqlite3 failed: ${q.stderr}`);
        const lat = [];
        let firstReceived = Infinity;
        let lastReceived = -Infinity;
        for (const row of q.stdout.trim().split('\n')) {
          if (!row) continue;
          const [recv, occurred] = row.split('\t');
          const ms = Number(recv) - Date.parse(occurred);
          if (Number.isFinite(ms)) lat.push(ms);
          firstReceived = Math.min(firstReceived, Number(recv));
          lastReceived = Math.max(lastReceived, Number(recv));
        }
        lat.sort((a, b) => a - b);
        const r = {
          offered_events_per_second: rate,
          achieved_events_per_second: sent.events_per_second,
          sent: sent.accepted,
          delivered: lat.length,
          // Deliveries per second while they arrived: below the offered rate means a queue grew,
          // and the latency then measures that queue.
          delivered_per_second: lat.length > 1 ? lat.length / Math.max(0.001, (lastReceived - firstReceived) / 1000) : null,
          timed_out: waited.timedOut,
          p50_ms: percentile(lat, 50),
          p99_ms: percentile(lat, 99),
          p999_ms: percentile(lat, 99.9),
          max_ms: lat[lat.length - 1] ?? null,
        };
        byRate[rate].push(r);
        log(`fig 4 rep ${rep + 1}: ${rate}/s offered (${r.achieved_events_per_second.toFixed(0)} taken, ` +
          `${r.delivered_per_second?.toFixed(0)} delivered/s): ` +
          `p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms p99.9 ${r.p999_ms} ms max ${r.max_ms} ms (${r.delivered} samples)`);
        if (lat.length === 0) throw new Error('latency: no deliveries were recorded');
      } finally {
        if (receiver) await receiver.stop();
        await serve.stop();
        removeDir(dir);
      }
    }
  }
  const summary = {};
  for (const [rate, runs] of Object.entries(byRate)) {
    summary[rate] = {
      p50_ms: median(runs.map((r) => r.p50_ms)),
      p99_ms: median(runs.map((r) => r.p99_ms)),
      p999_ms: median(runs.map((r) => r.p999_ms)),
      achieved_events_per_second: median(runs.map((r) => r.achieved_events_per_second)),
      delivered_per_second: median(runs.map((r) => r.delivered_per_second)),
    };
  }
  results.figures.latency = { runs: byRate, median: summary };
}

// Figure 5: a backlog of pending messages with the receiver down, then a restart.
async function figureBacklog() {
  const runs = [];
  for (let rep = 0; rep < opts.reps; ++rep) {
    const dir = makeDir(`fig5-${rep}`);
    const serveArgs = ['--retry-schedule', '1h', '--max-backlog', String(opts.backlog * 2)];
    let serve = await Serve.start(dir, serveArgs);
    let receiver;
    try {
      const site = await serve.createSite();
      const port = await freePort(); // closed: nothing listens there until the receiver starts
      const ep = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/down` });
      const t0 = Date.now();
      const sent = await send(serve, site.ingest_key, {
        count: opts.backlog, batch: 1000, connections: 2, maxSeconds: opts.smoke ? 30 : 300,
      });
      if (sent.accepted !== opts.backlog) throw new Error(`backlog: ${sent.accepted} of ${opts.backlog} accepted: ${JSON.stringify(sent)}`);
      const ingestSeconds = (Date.now() - t0) / 1000;
      await sleep(1000); // let the dispatcher take in the last commits
      const mem = serve.rssKiB();
      await serve.stop();
      const states = await pendingStates(path.join(dir, 'pushhook.db'));
      receiver = await Receiver.start([ep.secret], { listen: `127.0.0.1:${port}`, out: path.join(dir, 'first.db') });
      const restartAt = Date.now();
      serve = await Serve.start(dir, serveArgs, 'serve-restart');
      const readySeconds = (serve.readyAt - restartAt) / 1000;
      const memAfterRestart = serve.rssKiB();
      const waited = await receiver.waitStored(1, 60_000);
      if (waited.timedOut) throw new Error('backlog: no delivery within 60 s of the restart');
      await serve.stop();
      await receiver.stop();
      const q = await runCommand('sqlite3', 'sqlite3', [path.join(dir, 'first.db'), 'SELECT min(received_at_ms) FROM received'], { timeoutMs: 30_000 });
      const firstAt = Number(q.stdout.trim());
      const r = {
        pending: opts.backlog,
        ingest_seconds: ingestSeconds,
        rss_mib: mem.rss / 1024,
        peak_rss_mib: mem.hwm / 1024,
        rss_after_restart_mib: memAfterRestart.rss / 1024,
        listening_seconds: (serve.listeningAt - restartAt) / 1000,
        ready_seconds: readySeconds,
        first_delivery_seconds: (firstAt - restartAt) / 1000,
        db_mib: dirSizeMiB(dir),
        messages_before_restart: states,
      };
      runs.push(r);
      log(`fig 5 rep ${rep + 1}: ${opts.backlog} pending: RSS ${r.rss_mib.toFixed(1)} MiB (peak ${r.peak_rss_mib.toFixed(1)}), ` +
        `ready ${r.ready_seconds.toFixed(2)} s, first delivery ${r.first_delivery_seconds.toFixed(2)} s after restart`);
    } finally {
      if (receiver) await receiver.stop();
      await serve.stop();
      removeDir(dir);
    }
  }
  results.figures.backlog = {
    runs,
    median: {
      rss_mib: median(runs.map((r) => r.rss_mib)),
      peak_rss_mib: median(runs.map((r) => r.peak_rss_mib)),
      ready_seconds: median(runs.map((r) => r.ready_seconds)),
      first_delivery_seconds: median(runs.map((r) => r.first_delivery_seconds)),
    },
  };
}

// How the messages stand in serve's SQLite file (pending = status 0; attempted ones failed once
// against the closed port and wait for their 1 h retry). Best effort: it reads serve's private
// schema, so a change there gives null here rather than a failed figure.
async function pendingStates(db) {
  try {
    const q = await runCommand('sqlite3', 'sqlite3', ['-separator', ' ', db,
      'SELECT count(*), sum(attempts = 0) FROM messages WHERE status = 0; SELECT count(*) FROM messages'], { timeoutMs: 60_000 });
    const [[pending, neverAttempted], [all]] = q.stdout.trim().split('\n').map((l) => l.split(' ').map(Number));
    return { all, pending, never_attempted: neverAttempted };
  } catch {
    return null;
  }
}

function dirSizeMiB(dir) {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, name));
    if (st.isFile()) total += st.size;
  }
  return total / (1 << 20);
}

// Figure 6: a receiver that answers after 200 ms; Little's law says max_in_flight / 0.2 s.
async function figureSlowReceiver() {
  const m = SIZES.slowInFlight;
  const expected = m / (SLOW_DELAY_MS / 1000);
  const runs = [];
  const setup = await EndToEnd.create('fig6', 1, { maxInFlight: m, delay: `${SLOW_DELAY_MS}ms` });
  try {
    for (let rep = 0; rep < opts.reps; ++rep) {
      const events = Math.round(expected * SIZES.slowSeconds);
      const r = await setup.run(events, { timeoutMs: SIZES.slowSeconds * 10_000 + 30_000 });
      r.max_in_flight = m;
      r.littles_law_per_second = expected;
      runs.push(r);
      log(`fig 6 rep ${rep + 1}: ${r.webhooks_per_second.toFixed(1)} deliveries/s vs ${expected} (Little's law)` +
        `${r.timed_out ? '; TIMED OUT' : ''}`);
      if (r.stored === 0) throw new Error('figure 6: nothing delivered');
      if (r.timed_out) results.warnings.push(`figure 6: timed out with ${r.stored}/${r.webhooks} stored`);
    }
  } finally {
    await setup.close();
  }
  const med = median(runs.map((r) => r.webhooks_per_second));
  results.figures.slow_receiver = { runs, max_in_flight: m, delay_ms: SLOW_DELAY_MS, littles_law_per_second: expected, median_per_second: med, ratio_to_littles_law: med / expected };
}

// Figure 7: the Google Benchmark microbenchmarks, ns per operation.
async function figureMicro() {
  if (!fs.existsSync(opts.micro)) {
    throw new Error(`${opts.micro} is missing: build it with cmake --build build --target pushhook_micro_bench`);
  }
  const { code, stdout, stderr } = await runCommand('micro', opts.micro, [
    '--benchmark_format=json', `--benchmark_min_time=${SIZES.microMinTime}`,
    `--benchmark_repetitions=${opts.reps}`, '--benchmark_report_aggregates_only=true',
  ], { timeoutMs: 300_000 });
  if (code !== 0) throw new Error(`micro benchmarks failed (exit ${code}): ${tail(stderr)}`);
  const json = JSON.parse(stdout);
  const rows = [];
  for (const b of json.benchmarks) {
    if (b.aggregate_name && b.aggregate_name !== 'median') continue;
    // Benchmarks that count items (events, rows) report per item: CPU time, or wall time for
    // the store's, whose work runs on its writer thread (UseRealTime).
    if (b.items_per_second) {
      const row = { name: b.run_name || b.name, ns_per_op: 1e9 / b.items_per_second, unit: 'ns/event' };
      // BM_DeliveryRequest also counts each side's thread CPU per request.
      if (b.client_cpu_us !== undefined) {
        row.unit = 'ns/request';
        row.client_cpu_us = b.client_cpu_us;
        row.server_cpu_us = b.server_cpu_us;
      }
      rows.push(row);
    } else {
      rows.push({ name: b.run_name || b.name, ns_per_op: b.cpu_time, unit: 'ns/op' });
    }
  }
  results.figures.micro = { rows, context: { cpus: json.context?.num_cpus, mhz: json.context?.mhz_per_cpu } };
  log(`fig 7: ${rows.map((r) => `${r.name} ${r.ns_per_op.toFixed(0)} ${r.unit}`).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// Figure 8: PostgreSQL scale-out. 1, 2 and 3 serve nodes on one PostgreSQL (its own throw-away
// server, made by scripts/pg-cluster with pg_stat_statements loaded), SQLite beside them: batched
// ingest, end-to-end deliveries, and what PostgreSQL does per delivered message.

const PG_CLUSTER = path.join(REPO_ROOT, 'scripts', 'pg-cluster');
const PG_SERVER_SETTINGS = '-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all';
// Divisible by 1, 2 and 3, so that every node owns the same number. With 4, 3 nodes settled at
// 2 / 2 / 0: each node takes up to its fair share, ceil(4 / 3) = 2, and one node stayed idle.
const PG_ENDPOINTS = 6;
const PG_LEASE = '10s';
const PG_POOL = 8;
const postgresRunning = new Set(); // dirs of PostgreSQL servers we started and have not stopped
const postgresDirs = new Set(); // and their folders, removed at the end (not inside tmpRoot: see below)

// Stops our PostgreSQL servers at once; synchronous, so that it works in an 'exit' handler.
function stopPostgresNow() {
  for (const dir of postgresRunning) {
    spawnSync(PG_CLUSTER, ['kill', dir], { stdio: 'ignore', timeout: 30_000 });
    postgresRunning.delete(dir);
  }
}

// PostgreSQL's programs (the newest installed version, as scripts/pg-cluster picks), or null
// when something figure 8 needs is missing.
function postgresTools() {
  let versions = [];
  try {
    versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(a) - Number(b));
  } catch {
    return null;
  }
  const v = versions.pop();
  if (!v) return null;
  const bin = `/usr/lib/postgresql/${v}/bin`;
  const tools = { version: v, psql: `${bin}/psql`, pgbench: `${bin}/pgbench` };
  const needed = [`${bin}/pg_ctl`, tools.psql, tools.pgbench, `/usr/lib/postgresql/${v}/lib/pg_stat_statements.so`];
  return needed.every((f) => fs.existsSync(f)) ? tools : null;
}

class PgServer {
  static async start(tools) {
    const s = new PgServer();
    s.tools = tools;
    // Its own folder in the system's temporary folder, not in tmpRoot: the server runs as the
    // postgres user when we are root, and tmpRoot is private to us.
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-bench-pg-'));
    postgresDirs.add(s.dir);
    postgresRunning.add(s.dir);
    const r = await runCommand('pg-cluster', PG_CLUSTER, ['start', s.dir], {
      timeoutMs: 120_000, env: { PG_CLUSTER_OPTS: PG_SERVER_SETTINGS },
    });
    if (r.code !== 0) throw new Error(`scripts/pg-cluster start failed (exit ${r.code}): ${tail(r.stderr)}\n${s.logTail()}`);
    s.url = r.stdout.trim().split('\n').pop();
    // The statistics views live in the `postgres` database, so that reading them adds nothing to
    // the counts of the databases measured.
    await s.psql(s.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return s;
  }

  logTail() {
    try {
      return tail(fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8'));
    } catch {
      return '';
    }
  }

  // Runs `sql`; resolves to its rows, fields split at tabs.
  async psql(url, sql) {
    const r = await runCommand('psql', this.tools.psql, [url, '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { timeoutMs: 120_000, env: { PGCONNECT_TIMEOUT: '10' } });
    if (r.code !== 0) throw new Error(`psql failed (exit ${r.code}) on "${sql.slice(0, 80)}": ${tail(r.stderr)}`);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
  }

  databaseUrl(name) {
    const u = new URL(this.url);
    u.pathname = `/${name}`;
    return u.toString();
  }

  async createDatabase(name) {
    await this.psql(this.url, `CREATE DATABASE ${name}`);
    return this.databaseUrl(name);
  }

  async dropDatabase(name) {
    await this.psql(this.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }

  async resetStatements() {
    await this.psql(this.url, 'SELECT pg_stat_statements_reset()');
  }

  async transactions(database) {
    const [[commits, rollbacks]] = await this.psql(this.url,
      `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = '${database}'`);
    return { commits: Number(commits), rollbacks: Number(rollbacks) };
  }

  // Every statement run in `database` since the last reset: calls, rows, server time, whether
  // a client sent it (toplevel) or a function ran it, and its normalised text on one line.
  async statements(database) {
    const rows = await this.psql(this.url, `SELECT s.calls, s.rows, s.total_exec_time, s.toplevel,
        regexp_replace(s.query, '\\s+', ' ', 'g')
      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = '${database}' ORDER BY s.calls DESC`);
    return rows.map(([calls, nrows, ms, toplevel, ...query]) => ({
      calls: Number(calls), rows: Number(nrows), exec_ms: Number(ms), toplevel: toplevel === 't', query: query.join('\t'),
    }));
  }

  async stop() {
    // remove also deletes the server's files when pg-cluster had to keep them outside dir.
    const command = opts.keep ? 'stop' : 'remove';
    const r = await runCommand('pg-cluster', PG_CLUSTER, [command, this.dir], { timeoutMs: 120_000 });
    postgresRunning.delete(this.dir);
    if (r.code !== 0) log(`scripts/pg-cluster ${command}: exit ${r.code}: ${tail(r.stderr)}`);
    if (!opts.keep) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      postgresDirs.delete(this.dir);
    }
  }
}

// One setting of figure 8: `nodes` serve nodes on a fresh PostgreSQL database, or one serve on
// a fresh SQLite file. The first node starts alone (it makes the schema), the others together.
class Fig8Cluster {
  static async start(pg, variant, label) {
    const c = new Fig8Cluster();
    Object.assign(c, { pg, variant, label, nodes: [], dirs: [] });
    try {
      if (variant.store === 'sqlite') {
        c.dirs.push(makeDir(label));
        c.nodes.push(await Serve.start(c.dirs[0], [], `${label}-serve`));
        return c;
      }
      c.database = label.replace(/[^a-z0-9]/g, '_');
      c.databaseUrl = await pg.createDatabase(c.database);
      const secretsKey = randomBytes(32).toString('base64');
      const startNode = async (i) => {
        const dir = makeDir(`${label}-node-${i + 1}`);
        c.dirs.push(dir);
        const node = await Serve.start(dir, ['--database', c.databaseUrl, '--node-id', `node-${i + 1}`,
          '--lease', PG_LEASE, '--database-pool', String(PG_POOL)], `${label}-node-${i + 1}`,
        { env: { PUSHHOOK_SECRETS_KEY: secretsKey } });
        node.nodeId = `node-${i + 1}`;
        return node;
      };
      c.nodes.push(await startNode(0));
      c.nodes.push(...await Promise.all(Array.from({ length: variant.nodes - 1 }, (_, i) => startNode(i + 1))));
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  // Waits until the nodes own all `count` endpoints between them, one owner each, and (when
  // there are enough endpoints) every node owns some; returns {nodeId: owned count}.
  async waitOwnership(count, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const owned = {};
      const all = [];
      for (const node of this.nodes) {
        const view = await expectOk(httpCall(node.base, 'GET', '/v1/cluster'), 'GET /v1/cluster');
        owned[node.nodeId] = view.owned_endpoints.length;
        all.push(...view.owned_endpoints);
      }
      const complete = all.length === count && new Set(all).size === count;
      const spread = count < this.nodes.length || Object.values(owned).every((n) => n > 0);
      if (complete && spread) return { owned, complete, spread };
      if (Date.now() > deadline) return { owned, complete, spread };
      await sleep(200);
    }
  }

  // Warnings and errors the nodes have logged, but for --dev's own.
  problems() {
    const out = [];
    for (const node of this.nodes) {
      for (const l of node.h.logs) {
        if ((l.level === 'warn' || l.level === 'error') && !String(l.msg).startsWith('--dev')) {
          const { _at, ...line } = l;
          out.push({ node: node.nodeId ?? 'sqlite', ...line });
        }
      }
    }
    return out;
  }

  async close() {
    for (const node of this.nodes) await node.stop();
    if (this.database) await this.pg.dropDatabase(this.database).catch((err) => log(`drop database: ${err.message}`));
    for (const dir of this.dirs) removeDir(dir);
  }
}

// CPU seconds (user + system) a process has used; with `children`, also those of its children
// that it has reaped (for the postmaster: backends that have exited).
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;
function cpuSeconds(pid, { children = false } = {}) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return { ppid: Number(f[1]), seconds: ticks / CLOCK_TICKS };
  } catch {
    return null; // gone
  }
}

// CPU seconds (user + system) by thread name of a live process, from /proc/<pid>/task.
function threadCpuSeconds(pid) {
  const byName = {};
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return byName; // gone
  }
  for (const tid of tasks) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName[name] = (byName[name] ?? 0) + (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
    } catch {
      // the thread ended meanwhile
    }
  }
  return byName;
}

// Microseconds of CPU per item between two threadCpuSeconds snapshots of each process:
// {process: {total, threads: {name: µs}}}. Threads that ended in between are not counted.
function cpuPerItem(before, after, items) {
  const out = {};
  for (const [proc, threads] of Object.entries(after)) {
    const per = {};
    let total = 0;
    for (const [name, seconds] of Object.entries(threads)) {
      const used = seconds - (before[proc]?.[name] ?? 0);
      if (used <= 0) continue;
      per[name] = (used * 1e6) / Math.max(1, items);
      total += per[name];
    }
    out[proc] = { total, threads: per };
  }
  return out;
}

// CPU seconds of the PostgreSQL server: the postmaster with its reaped children, plus every live
// child (the backends of the pools, the WAL writer, the checkpointer, ...).
function postgresCpuSeconds(pg) {
  let postmaster;
  try {
    postmaster = Number(fs.readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  let total = cpuSeconds(postmaster, { children: true })?.seconds ?? 0;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const c = cpuSeconds(Number(name));
    if (c && c.ppid === postmaster) total += c.seconds;
  }
  return total;
}

// `total` events spread over `nodes` as evenly as they go.
function spread(total, nodes) {
  return nodes.map((_, i) => Math.floor(total / nodes.length) + (i < total % nodes.length ? 1 : 0));
}

// 8a: batches of 1,000 from one `send` per node (2 connections each), all at once.
async function fig8Ingest(pg, variant, rep) {
  const c = await Fig8Cluster.start(pg, variant, `fig8i_${variant.key}_${rep}`);
  try {
    const site = await c.nodes[0].createSite();
    const counts = SIZES.pgIngestEvents
      ? spread(SIZES.pgIngestEvents, c.nodes)
      : c.nodes.map(() => 1_000_000 * Math.ceil(opts.duration));
    const reports = await Promise.all(c.nodes.map((node, i) => send(node, site.ingest_key, {
      count: counts[i], batch: 1000, connections: variant.connections ?? 2, maxSeconds: opts.smoke ? 30 : opts.duration,
    })));
    const accepted = reports.reduce((a, r) => a + r.accepted, 0);
    const seconds = Math.max(...reports.map((r) => r.seconds));
    if (accepted === 0) throw new Error(`figure 8: ${variant.key}: ingest accepted nothing: ${JSON.stringify(reports)}`);
    const r = {
      accepted,
      refused: reports.reduce((a, x) => a + x.refused, 0),
      errors: reports.reduce((a, x) => a + x.errors, 0),
      seconds,
      events_per_second: accepted / seconds,
      connections_per_node: variant.connections ?? 2,
      per_node: reports,
      problems: c.problems(),
    };
    log(`fig 8 rep ${rep + 1}: ingest, ${variant.label}: ${r.events_per_second.toFixed(0)} events/s ` +
      `(${accepted} accepted, ${r.refused} refused, ${r.errors} errors; per node ` +
      `${reports.map((x) => x.events_per_second.toFixed(0)).join(' / ')})`);
    return r;
  } finally {
    await c.close();
  }
}

// 8b: 6 endpoints on one receiver; E events posted spread over the nodes, timed until the
// receiver has stored E x 6. On PostgreSQL, the statements and transactions of the run.
async function fig8EndToEnd(pg, variant, rep) {
  const c = await Fig8Cluster.start(pg, variant, `fig8e_${variant.key}_${rep}`);
  let receiver;
  try {
    const site = await c.nodes[0].createSite();
    const port = await freePort();
    const created = await c.nodes[0].createEndpoints(site.id, PG_ENDPOINTS, (i) => ({ url: `http://127.0.0.1:${port}/e/${i}` }));
    receiver = await Receiver.start(created.map((x) => x.secret), { listen: `127.0.0.1:${port}`, name: `${c.label}-receive` });
    let ownership = null;
    let ownershipSeconds = null;
    if (variant.store === 'postgres') {
      const asked = Date.now();
      ownership = await c.waitOwnership(PG_ENDPOINTS, 30_000);
      ownershipSeconds = (Date.now() - asked) / 1000;
      if (!ownership.complete || !ownership.spread) {
        results.warnings.push(`figure 8: ${variant.label}: ownership after 30 s: ${JSON.stringify(ownership.owned)}`);
      }
      // Idle backends flush their transaction counts within 10 s; the setup's few that may come
      // in after this snapshot add a handful of commits to the run's thousands.
      await sleep(1500);
      await pg.resetStatements();
    }
    const before = variant.store === 'postgres' ? await pg.transactions(c.database) : null;
    const cpu = () => ({
      serve: c.nodes.reduce((a, n) => a + (cpuSeconds(n.h.pid)?.seconds ?? 0), 0),
      receiver: cpuSeconds(receiver.h.pid)?.seconds ?? 0,
      postgres: variant.store === 'postgres' ? postgresCpuSeconds(pg) : null,
    });
    const cpuBefore = cpu();
    const events = SIZES.pgEndToEndEvents;
    const target = events * PG_ENDPOINTS;
    const start = Date.now();
    const reports = await Promise.all(c.nodes.map((node, i) => send(node, site.ingest_key, {
      count: spread(events, c.nodes)[i], batch: 100, connections: 2, maxSeconds: 120,
    })));
    const accepted = reports.reduce((a, r) => a + r.accepted, 0);
    if (accepted !== events) throw new Error(`figure 8: ${variant.key}: ${accepted} of ${events} events accepted: ${JSON.stringify(reports)}`);
    const ingestSeconds = (Date.now() - start) / 1000;
    const waited = await receiver.waitStored(target, opts.smoke ? 60_000 : 180_000);
    const cpuAfter = cpu();
    const crossing = receiver.crossing(target, start);
    const seconds = ((crossing ? crossing.estimate : Date.now()) - start) / 1000;
    const stored = Math.min(receiver.counts.stored, target);
    // CPU per delivered message over the run (until the receiver had everything, give or take
    // the 20 ms poll), by process; `send` is not counted.
    const cpuUs = (k) => (cpuAfter[k] === null ? null : ((cpuAfter[k] - cpuBefore[k]) * 1e6) / Math.max(1, stored));
    const r = {
      events,
      endpoints: PG_ENDPOINTS,
      webhooks: target,
      stored,
      timed_out: waited.timedOut,
      seconds,
      seconds_bounds: crossing ? [(crossing.lower - start) / 1000, (crossing.upper - start) / 1000] : null,
      webhooks_per_second: stored / seconds,
      ingest_seconds: ingestSeconds,
      ownership: ownership?.owned ?? null,
      ownership_seconds: ownershipSeconds,
      cpu_us_per_message: { serve_nodes: cpuUs('serve'), postgres: cpuUs('postgres'), receiver: cpuUs('receiver') },
      wall_seconds_to_last: (Date.now() - start) / 1000,
    };
    if (variant.store === 'postgres') {
      // pg_stat_statements counts as each statement ends; pg_stat_database only when a backend
      // flushes its counts, which an idle backend may put off for 10 s. A backend that exits
      // flushes them: stop the nodes (the run is over), then read the transactions.
      const statements = await pg.statements(c.database);
      for (const node of c.nodes) await node.stop();
      const after = await pg.transactions(c.database);
      const delivered = Math.max(1, stored);
      const top = statements.filter((s) => s.toplevel);
      const sum = (list, f) => list.reduce((a, s) => a + f(s), 0);
      r.db = {
        delivered,
        statements: sum(top, (s) => s.calls),
        statements_per_message: sum(top, (s) => s.calls) / delivered,
        nested_statements_per_message: sum(statements.filter((s) => !s.toplevel), (s) => s.calls) / delivered,
        exec_ms_per_message: sum(top, (s) => s.exec_ms) / delivered,
        commits: after.commits - before.commits,
        commits_per_message: (after.commits - before.commits) / delivered,
        rollbacks: after.rollbacks - before.rollbacks,
        by_statement: top.slice(0, 16).map((s) => ({
          // The whole text: two statements can share a long beginning (LoadDelivery and
          // LoadDeliveries differ only in their WHERE).
          query: s.query, calls: s.calls, per_message: s.calls / delivered, rows: s.rows, exec_ms: s.exec_ms,
        })),
      };
    }
    // After the figure's clock, so that it costs nothing: the receiver's duplicates tell of
    // deliveries sent twice.
    r.receiver = { ...receiver.counts };
    delete r.receiver._at;
    r.problems = c.problems();
    log(`fig 8 rep ${rep + 1}: end to end, ${variant.label}: ${r.webhooks_per_second.toFixed(0)} deliveries/s ` +
      `(${stored}/${target} in ${seconds.toFixed(2)} s; ingest ${ingestSeconds.toFixed(2)} s; duplicates ${r.receiver.duplicates}` +
      `${r.ownership ? `; owned ${JSON.stringify(r.ownership)} after ${r.ownership_seconds.toFixed(1)} s` : ''}` +
      `; CPU µs/message serve ${r.cpu_us_per_message.serve_nodes.toFixed(0)}` +
      `${r.cpu_us_per_message.postgres === null ? '' : ` postgres ${r.cpu_us_per_message.postgres.toFixed(0)}`}` +
      ` receiver ${r.cpu_us_per_message.receiver.toFixed(0)}` +
      `${r.db ? `; ${r.db.statements_per_message.toFixed(2)} statements and ${r.db.commits_per_message.toFixed(2)} commits per message` : ''}` +
      `${r.problems.length ? `; ${r.problems.length} warn/error log lines` : ''}${r.timed_out ? '; TIMED OUT' : ''})`);
    if (stored === 0) throw new Error(`figure 8: ${variant.key}: nothing delivered`);
    if (r.timed_out) results.warnings.push(`figure 8: end to end, ${variant.label}: timed out with ${stored}/${target}`);
    return r;
  } finally {
    if (receiver) await receiver.stop();
    await c.close();
  }
}

// PostgreSQL's own capacity on this machine, for the projection: pgbench select-only (-S, one
// SELECT per transaction) and simple-update (-N: BEGIN, UPDATE, SELECT, INSERT, END: five
// statements and one durable commit per transaction), 8 clients on 2 threads.
async function fig8Pgbench(pg) {
  const database = 'fig8_pgbench';
  const url = await pg.createDatabase(database);
  const bench = async (args, timeoutMs) => {
    const r = await runCommand('pgbench', pg.tools.pgbench, [...args, url], { timeoutMs, env: { PGCONNECT_TIMEOUT: '10' } });
    if (r.code !== 0) throw new Error(`pgbench ${args.join(' ')} failed (exit ${r.code}): ${tail(r.stderr)} ${tail(r.stdout)}`);
    return r.stdout;
  };
  try {
    await bench(['-i', '-q', '-s', String(SIZES.pgbenchScale)], 300_000);
    const runs = { select_only: [], simple_update: [] };
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const [key, flag] of [['select_only', '-S'], ['simple_update', '-N']]) {
        const out = await bench([flag, '-c', '8', '-j', '2', '-T', String(SIZES.pgbenchSeconds)], (SIZES.pgbenchSeconds + 60) * 1000);
        const tps = Number((out.match(/tps = ([\d.]+) \(without initial connection time\)/) || [])[1]);
        if (!Number.isFinite(tps)) throw new Error(`pgbench ${flag}: no tps in its output: ${tail(out)}`);
        runs[key].push(tps);
        log(`fig 8 rep ${rep + 1}: pgbench ${flag} -c 8 -j 2 -T ${SIZES.pgbenchSeconds}: ${tps.toFixed(0)} tps`);
      }
    }
    const selectTps = median(runs.select_only);
    const updateTps = median(runs.simple_update);
    return {
      scale: SIZES.pgbenchScale,
      seconds: SIZES.pgbenchSeconds,
      clients: 8,
      threads: 2,
      runs,
      select_only_tps: selectTps,
      select_only_statements_per_second: selectTps,
      simple_update_tps: updateTps,
      simple_update_statements_per_second: updateTps * 5,
    };
  } finally {
    await pg.dropDatabase(database).catch((err) => log(`drop database: ${err.message}`));
  }
}

// A statement in a table cell: its beginning, and its end when the middle is cut out (where
// statements that begin alike differ).
function shortQuery(query) {
  const text = query.replace(/\s+/g, ' ').trim();
  return text.length <= 80 ? text : `${text.slice(0, 52)} … ${text.slice(-25)}`;
}

// Per-statement calls per message, the median over the repetitions (0 where a repetition did not
// run the statement), top `n` by that median.
function topStatements(runs, n) {
  const keys = new Set(runs.flatMap((r) => r.db.by_statement.map((s) => s.query)));
  const rows = [...keys].map((query) => ({
    query: shortQuery(query),
    per_message: median(runs.map((r) => r.db.by_statement.find((s) => s.query === query)?.per_message ?? 0)),
  }));
  return rows.sort((a, b) => b.per_message - a.per_message).slice(0, n);
}

async function figurePostgres() {
  const tools = postgresTools();
  if (!tools) {
    const why = 'PostgreSQL (server, psql, pgbench, pg_stat_statements) is not installed: scripts/install-deps installs it';
    if (opts.only?.has(8)) throw new Error(`figure 8: ${why}`);
    results.warnings.push(`figure 8 skipped: ${why}`);
    log(`fig 8 skipped: ${why}`);
    return;
  }
  const variants = [
    { key: 'sqlite', store: 'sqlite', nodes: 1, label: 'SQLite, 1 node' },
    ...SIZES.pgNodeCounts.map((n) => ({ key: `pg${n}`, store: 'postgres', nodes: n, label: `PostgreSQL, ${n} node${n > 1 ? 's' : ''}` })),
  ];
  // A control for ingest: one node with as many connections as the most nodes have between them,
  // to tell what more nodes bring from what more requests in flight bring.
  const most = Math.max(...SIZES.pgNodeCounts);
  const control = { key: `pg1c${2 * most}`, store: 'postgres', nodes: 1, connections: 2 * most,
    label: `PostgreSQL, 1 node, ${2 * most} connections (control)` };
  const ingestVariants = [...variants, control];
  const pg = await PgServer.start(tools);
  const ingest = Object.fromEntries(ingestVariants.map((v) => [v.key, []]));
  const endToEnd = Object.fromEntries(variants.map((v) => [v.key, []]));
  let pgbench = null;
  try {
    log(`fig 8: PostgreSQL ${tools.version} at ${pg.url}`);
    // Interleaved, as in the other figures: every setting once per repetition.
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const v of ingestVariants) ingest[v.key].push(await fig8Ingest(pg, v, rep));
    }
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const v of variants) endToEnd[v.key].push(await fig8EndToEnd(pg, v, rep));
    }
    pgbench = await fig8Pgbench(pg);
  } finally {
    await pg.stop();
  }
  const byVariant = {};
  for (const v of variants) {
    const e2e = endToEnd[v.key];
    const entry = {
      label: v.label,
      store: v.store,
      nodes: v.nodes,
      median_ingest_events_per_second: median(ingest[v.key].map((r) => r.events_per_second)),
      median_deliveries_per_second: median(e2e.map((r) => r.webhooks_per_second)),
      receiver_duplicates: e2e.reduce((a, r) => a + r.receiver.duplicates, 0),
      cpu_us_per_message: Object.fromEntries(['serve_nodes', 'postgres', 'receiver'].map((k) =>
        [k, median(e2e.map((r) => r.cpu_us_per_message[k]))])),
      problem_log_lines: [...ingest[v.key], ...e2e].reduce((a, r) => a + r.problems.length, 0),
    };
    if (v.store === 'postgres') {
      const perMessage = median(e2e.map((r) => r.db.statements_per_message));
      entry.db = {
        statements_per_message: perMessage,
        nested_statements_per_message: median(e2e.map((r) => r.db.nested_statements_per_message)),
        commits_per_message: median(e2e.map((r) => r.db.commits_per_message)),
        exec_ms_per_message: median(e2e.map((r) => r.db.exec_ms_per_message)),
        top_statements: topStatements(e2e, 8),
        statements: topStatements(e2e, 16),
      };
      // A projection, not a measurement: a database that runs C statements/s serves at most
      // C / (statements per message) deliveries/s, if nothing else (the nodes' CPU, locks,
      // fsync of commits) gives out first.
      entry.projection = {
        deliveries_per_second_per_10k_statements_per_second: 10_000 / perMessage,
        at_pgbench_select_only_capacity: pgbench ? pgbench.select_only_statements_per_second / perMessage : null,
        at_pgbench_simple_update_capacity: pgbench ? pgbench.simple_update_statements_per_second / perMessage : null,
      };
    }
    byVariant[v.key] = entry;
  }
  const controlIngest = {
    label: control.label,
    connections: control.connections,
    median_ingest_events_per_second: median(ingest[control.key].map((r) => r.events_per_second)),
  };
  results.figures.postgres = {
    postgres_version: tools.version,
    server_settings: `fsync=on synchronous_commit=on max_connections=200 ${PG_SERVER_SETTINGS}`,
    endpoints: PG_ENDPOINTS,
    lease: PG_LEASE,
    database_pool: PG_POOL,
    ingest: { batch: 1000, connections_per_node: 2, runs: ingest },
    end_to_end: { events: SIZES.pgEndToEndEvents, batch: 100, connections_per_node: 2, runs: endToEnd },
    pgbench,
    median: byVariant,
    ingest_control: controlIngest,
  };
}

// ---------------------------------------------------------------------------------------------
// The table

function fmt(n, digits = 0) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// "serve 100 µs (ph-client 27, ...) + receive 38 µs (...)": medians over the runs, by thread.
function cpuMedians(runs) {
  const withCpu = (runs ?? []).filter((r) => r.cpu_us_per_webhook);
  if (withCpu.length === 0) return null;
  const parts = [];
  for (const proc of Object.keys(withCpu[0].cpu_us_per_webhook)) {
    const names = [...new Set(withCpu.flatMap((r) => Object.keys(r.cpu_us_per_webhook[proc]?.threads ?? {})))];
    const threads = names
      .map((n) => [n, median(withCpu.map((r) => r.cpu_us_per_webhook[proc]?.threads?.[n] ?? 0))])
      .filter(([, us]) => us >= 0.5)
      .sort((a, b) => b[1] - a[1]);
    const total = median(withCpu.map((r) => r.cpu_us_per_webhook[proc]?.total ?? 0));
    parts.push(`${proc} ${fmt(total)} µs (${threads.map(([n, us]) => `${n} ${fmt(us)}`).join(', ')})`);
  }
  return parts.join(' + ');
}

function tableRows() {
  const f = results.figures;
  const rows = [];
  const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(3)} ×` : '—');
  const mark = (ok) => (ok === null ? '' : ok ? 'met' : 'NOT met');
  if (f.nginx) rows.push(['0. nginx return 204, wrk -t2 -c64 (reference)', `${fmt(f.nginx.median_rps)} req/s`, '1 ×', '', '']);
  if (f.ingest_single) {
    const s = f.ingest_single;
    rows.push(['1. ingest, 1 event/request, durable, 64 conns', `${fmt(s.median_rps)} req/s (non-202: ${s.non_202_total})`,
      ratio(s.ratio_to_nginx), '≥ 0.4 × nginx', mark(s.ratio_to_nginx >= 0.4)]);
  }
  if (f.ingest_batched) {
    const b = f.ingest_batched;
    rows.push(['2. ingest, batches of 1,000, durable (2 / 4 conns)',
      `${fmt(b.median_events_per_second[2])} / ${fmt(b.median_events_per_second[4])} events/s`,
      ratio(b.best_median_events_per_second / f.nginx?.median_rps), '≥ 250,000 events/s',
      mark(b.best_median_events_per_second >= 250_000)]);
  }
  if (f.end_to_end) {
    const e = f.end_to_end;
    const many = e.many_endpoints;
    const m = e.median_webhooks_per_second;
    const r = e.ratio_to_nginx;
    rows.push(['3. end to end → pushhook receive, 1 endpoint', `${fmt(m['receive:1'])} webhooks/s`, ratio(r['receive:1']),
      '≥ 0.25 × nginx', mark(r['receive:1'] >= 0.25)]);
    rows.push([`3. end to end → pushhook receive, ${fmt(many)} endpoints`, `${fmt(m[`receive:${many}`])} webhooks/s`,
      ratio(r[`receive:${many}`]), `≥ 0.8 × 1 endpoint (is ${e.ratio_many_to_1.receive?.toFixed(2)})`,
      mark(e.ratio_many_to_1.receive >= 0.8)]);
    const cpu = cpuMedians(f.end_to_end.runs['receive:1']);
    if (cpu) rows.push(['3c. CPU per webhook, 1 endpoint → receive (by thread)', cpu, '', '', '']);
    rows.push(['3d. diagnostic: end to end → nginx sink, 1 endpoint', `${fmt(m['nginx:1'])} webhooks/s`, ratio(r['nginx:1']), '', '']);
    rows.push([`3d. diagnostic: end to end → nginx sink, ${fmt(many)} endpoints`, `${fmt(m[`nginx:${many}`])} webhooks/s`,
      ratio(r[`nginx:${many}`]), `(is ${e.ratio_many_to_1.nginx?.toFixed(2)} × 1 endpoint)`, '']);
  }
  if (f.latency) {
    for (const [rate, m] of Object.entries(f.latency.median)) {
      rows.push([`4. latency at ${fmt(Number(rate))} events/s (taken ${fmt(m.achieved_events_per_second)}, delivered ${fmt(m.delivered_per_second)}/s)`,
        `p50 ${fmt(m.p50_ms)} / p99 ${fmt(m.p99_ms)} / p99.9 ${fmt(m.p999_ms)} ms`, '',
        Number(rate) === 200 ? 'p99 ≤ 20 ms' : '', Number(rate) === 200 ? mark(m.p99_ms <= 20) : '']);
    }
  }
  if (f.backlog) {
    const b = f.backlog.median;
    rows.push([`5. backlog ${fmt(opts.backlog)} pending: RSS of serve`, `${fmt(b.rss_mib, 1)} MiB (peak ${fmt(b.peak_rss_mib, 1)})`, '',
      '≤ 200 MB', mark(b.rss_mib * 1.048576 <= 200)]);
    rows.push(['5. backlog: restart → ready / → first delivery', `${fmt(b.ready_seconds, 2)} s / ${fmt(b.first_delivery_seconds, 2)} s`, '',
      'ready ≤ 5 s', mark(b.ready_seconds <= 5)]);
  }
  if (f.slow_receiver) {
    const s = f.slow_receiver;
    rows.push([`6. slow receiver (200 ms), max_in_flight ${s.max_in_flight}`, `${fmt(s.median_per_second, 1)} deliveries/s`,
      `${s.ratio_to_littles_law?.toFixed(2)} × M/0.2 s`, `≈ ${fmt(s.littles_law_per_second)} /s`, mark(s.ratio_to_littles_law >= 0.9)]);
  }
  if (f.micro) {
    for (const r of f.micro.rows) {
      const cpu = r.client_cpu_us === undefined ? ''
        : ` (CPU per request: client ${fmt(r.client_cpu_us, 1)} µs, server ${fmt(r.server_cpu_us, 1)} µs)`;
      rows.push([`7. micro: ${r.name}`, `${fmt(r.ns_per_op)} ${r.unit}${cpu}`, '', '', '']);
    }
  }
  if (f.postgres) {
    const p = f.postgres.median;
    const all = Object.values(p);
    const pgs = all.filter((v) => v.store === 'postgres');
    const names = (list) => list.map((v) => (v.store === 'sqlite' ? 'SQLite' : `PG ${v.nodes}`)).join(' / ');
    const nodes = pgs.map((v) => v.nodes).join(' / ');
    rows.push([`8. ingest, batches of 1,000, durable, 2 conns per node: ${names(all)}`,
      `${all.map((v) => fmt(v.median_ingest_events_per_second)).join(' / ')} events/s`, '', '', '']);
    const ctl = f.postgres.ingest_control;
    if (ctl) rows.push([`8. ingest control: PG 1 node, ${ctl.connections} conns`, `${fmt(ctl.median_ingest_events_per_second)} events/s`, '', '', '']);
    rows.push([`8. end to end, ${f.postgres.endpoints} endpoints → pushhook receive: ${names(all)}`,
      `${all.map((v) => fmt(v.median_deliveries_per_second)).join(' / ')} deliveries/s`, '', '', '']);
    rows.push([`8. PostgreSQL per delivered message, ${nodes} node(s): statements (round trips) / commits`,
      `${pgs.map((v) => fmt(v.db.statements_per_message, 2)).join(' / ')} / ${pgs.map((v) => fmt(v.db.commits_per_message, 2)).join(' / ')}`, '', '', '']);
    if (f.postgres.pgbench) {
      const b = f.postgres.pgbench;
      rows.push([`8. pgbench -S / -N, -c 8 -j 2, scale ${b.scale}, this machine`, `${fmt(b.select_only_tps)} / ${fmt(b.simple_update_tps)} tps ` +
        `(${fmt(b.select_only_statements_per_second)} / ${fmt(b.simple_update_statements_per_second)} statements/s)`, '', '', '']);
      rows.push([`8. PROJECTION: deliveries/s at pgbench -S / -N statements/s, ${nodes} node(s)`,
        pgs.map((v) => `${fmt(v.projection.at_pgbench_select_only_capacity)} / ${fmt(v.projection.at_pgbench_simple_update_capacity)}`).join('; '),
        '', '', '']);
    }
    rows.push([`8. PROJECTION: deliveries/s per 10,000 statements/s of database capacity, ${nodes} node(s)`,
      pgs.map((v) => fmt(v.projection.deliveries_per_second_per_10k_statements_per_second)).join(' / '), '', '', '']);
  }
  return rows;
}

// Figure 8's top statements, one column per node count.
function statementsTable() {
  const p = results.figures.postgres?.median;
  if (!p) return null;
  const pgs = Object.values(p).filter((v) => v.store === 'postgres');
  const queries = [];
  for (const v of pgs) for (const s of v.db.top_statements) if (!queries.includes(s.query)) queries.push(s.query);
  const header = ['statement (beginning … end)', ...pgs.map((v) => `${v.nodes} node${v.nodes > 1 ? 's' : ''}`)];
  const cell = (v, q) => fmt(v.db.statements.find((s) => s.query === q)?.per_message ?? 0, 3);
  const rows = [header, ...queries.map((q) => [`\`${q.replace(/\|/g, "\\|")}\``, ...pgs.map((v) => cell(v, q))]),
    ['all statements sent (top level)', ...pgs.map((v) => fmt(v.db.statements_per_message, 2))],
    ['commits (pg_stat_database xact_commit)', ...pgs.map((v) => fmt(v.db.commits_per_message, 2))],
    ['server execution time, ms', ...pgs.map((v) => fmt(v.db.exec_ms_per_message, 3))]];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

function printTable() {
  const header = ['figure', `median of ${opts.reps}`, 'ratio', 'target', ''];
  const rows = [header, ...tableRows()];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)];
  const m = results.machine;
  console.log(`\npushhook bench (${results.mode}), ${m.nproc} × ${m.cpu_model}, ${m.mem_total_mib} MiB, ` +
    `load average at start ${m.loadavg_start.join(' ')}, at end ${m.loadavg_end?.join(' ')}`);
  console.log(out.join('\n'));
  if (opts.smoke) console.log('(smoke: counts far too small for these numbers to mean anything; it checks the harness)');
  results.table_markdown = out.join('\n');
  const statements = statementsTable();
  if (statements) {
    console.log(`\nFigure 8: PostgreSQL statements per delivered message (pg_stat_statements, calls / messages, median of ${opts.reps})`);
    console.log(statements);
    results.figures.postgres.statements_markdown = statements;
  }
}

// ---------------------------------------------------------------------------------------------

const START = Date.now();

function copyExecutable(file) {
  const copy = path.join(tmpRoot, path.basename(file));
  fs.copyFileSync(file, copy);
  fs.chmodSync(copy, 0o755);
  return copy;
}

async function main() {
  for (const [what, file] of [['pushhook binary', opts.bin]]) {
    if (!fs.existsSync(file)) {
      console.error(`bench/run: the ${what} ${file} is missing: build it first (scripts/build)`);
      process.exit(1);
    }
  }
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-bench-'));
  // Run private copies: build/ is rebuilt by others while a run goes on (the linker rewriting
  // the file makes spawn fail with ETXTBSY or EACCES), and one run should measure one binary.
  results.binary = { path: opts.bin, mtime: fs.statSync(opts.bin).mtime.toISOString() };
  const original = opts.bin;
  for (let attempt = 1; ; ++attempt) {
    opts.bin = copyExecutable(original);
    const v = await runCommand('version', opts.bin, ['version'], { timeoutMs: 10_000 }).catch((e) => ({ code: -1, stderr: e.message }));
    if (v.code === 0) {
      results.binary.version = v.stdout.trim();
      break;
    }
    if (attempt === 5) throw new Error(`${original} does not run: ${v.stderr}`);
    log(`${original} does not run yet (being rebuilt?): trying again in 10 s`);
    await sleep(10_000);
  }
  if (opts.figures.has(7) && fs.existsSync(opts.micro)) opts.micro = copyExecutable(opts.micro);
  // The watchdog: however a figure misbehaves, the run ends.
  const limitS = opts.smoke ? 600 : 60 * 60;
  setTimeout(() => {
    console.error(`bench/run: still running after ${limitS} s: stopping`);
    cleanupAndExit(1);
  }, limitS * 1000).unref();
  log(`mode ${results.mode}, ${opts.reps} repetition(s), ${opts.duration} s loads, figures ${[...opts.figures].join(',')}; ` +
    `load average ${results.machine.loadavg_start.join(' ')}; temp ${tmpRoot}`);

  const steps = [
    [0, 'nginx and single-event ingest', figuresNginxAndIngest],
    [2, 'batched ingest', figureBatchedIngest],
    [3, 'end to end', figureEndToEnd],
    [4, 'latency', figureLatency],
    [5, 'backlog', figureBacklog],
    [6, 'slow receiver', figureSlowReceiver],
    [7, 'microbenchmarks', figureMicro],
    [8, 'PostgreSQL scale-out', figurePostgres],
  ];
  for (const [n, name, fn] of steps) {
    if (!opts.figures.has(n)) continue;
    results.machine.loadavg_1min_before_figure ??= {};
    results.machine.loadavg_1min_before_figure[n] = Number(os.loadavg()[0].toFixed(2));
    try {
      await fn();
    } catch (err) {
      log(`figure ${n} (${name}) failed: ${err.stack || err.message}`);
      results.errors.push(`figure ${n} (${name}): ${err.message}`);
      killAll();
    }
  }
  results.machine.loadavg_end = os.loadavg().map((x) => Number(x.toFixed(2)));
  results.finished_at = new Date().toISOString();
  results.elapsed_seconds = (Date.now() - START) / 1000;
  printTable();
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults: ${path.relative(process.cwd(), opts.out) || opts.out} (${results.elapsed_seconds.toFixed(0)} s)`);
  if (results.warnings.length) console.error(`bench/run: warnings:\n  ${results.warnings.join('\n  ')}`);
  if (results.errors.length) {
    console.error(`bench/run: ${results.errors.length} problem(s):\n  ${results.errors.join('\n  ')}`);
    cleanupAndExit(1);
  }
  cleanupAndExit(0);
}

main();
