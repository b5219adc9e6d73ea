// pushhook serve and receive as measured processes, their admin API, and `pushhook send` as load.

import fs from 'node:fs';
import path from 'node:path';

import { ADMIN_TOKEN, opts } from './context.mjs';
import { runCommand, sleep, startChild, stopChild, tail, waitLog } from './processes.mjs';
import { log } from './results.mjs';

export async function httpCall(base, method, urlPath, { body, headers = {}, timeoutMs = 30_000 } = {}) {
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

export async function expectOk(promise, what) {
  const res = await promise;
  if (res.status < 200 || res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  return res.json;
}

export class Serve {
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

export async function waitReady(base, timeoutMs, h) {
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

export function readStatusKiB(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (key) => Number((text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

// `pushhook receive` with every secret; tracks its once-a-second "counts" lines with the time
// each arrived here.
export class Receiver {
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
export async function send(server, key, { count, rate = 0, batch = 1, connections = 8, maxSeconds = 60, extra = [] }) {
  const args = ['send', '--server', server.base, '--key', key, '--count', String(count),
    '--batch', String(batch), '--connections', String(connections), '--max-seconds', String(maxSeconds), ...extra];
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
