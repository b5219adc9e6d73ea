// Figure 4: latency of ingest and of delivery under a steady load.

import path from 'node:path';

import { SIZES, opts } from '../lib/context.mjs';
import { freePort, makeDir, removeDir, runCommand } from '../lib/processes.mjs';
import { Receiver, Serve, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { median, percentile } from '../lib/stats.mjs';

// One latency run: `rate` events/s for latencySeconds to one endpoint (extended payloads, plus
// `endpoint`'s fields) whose receiver stores into SQLite; the percentiles of received_at_ms -
// occurred_at.
export async function latencyRun(label, rate, endpoint = {}) {
  const dir = makeDir(label);
  const serve = await Serve.start(dir);
  let receiver;
  try {
    const site = await serve.createSite();
    const port = await freePort();
    const ep = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/lat`, payload_format: 'extended', ...endpoint });
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
    if (lat.length === 0) throw new Error(`latency (${label}): no deliveries were recorded`);
    return {
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
  } finally {
    if (receiver) await receiver.stop();
    await serve.stop();
    removeDir(dir);
  }
}

export async function figureLatency() {
  const byRate = {};
  for (const rate of SIZES.latencyRates) byRate[rate] = [];
  for (let rep = 0; rep < opts.reps; ++rep) {
    for (const rate of SIZES.latencyRates) {
      const r = await latencyRun(`fig4-${rep}-${rate}`, rate);
      byRate[rate].push(r);
      log(`fig 4 rep ${rep + 1}: ${rate}/s offered (${r.achieved_events_per_second.toFixed(0)} taken, ` +
        `${r.delivered_per_second?.toFixed(0)} delivered/s): ` +
        `p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms p99.9 ${r.p999_ms} ms max ${r.max_ms} ms (${r.delivered} samples)`);
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
