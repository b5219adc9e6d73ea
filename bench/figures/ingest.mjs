// Figures 0-2: nginx beside single-event ingest, and batched ingest.

import { SIZES, opts } from '../lib/context.mjs';
import { runWrk, startNginx, writeWrkScript } from '../lib/nginx_wrk.mjs';
import { makeDir, removeDir, stopChild } from '../lib/processes.mjs';
import { Serve, send } from '../lib/pushhook.mjs';
import { finishPerf, log, maybePerf, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export async function figuresNginxAndIngest() {
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
export async function figureBatchedIngest() {
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
