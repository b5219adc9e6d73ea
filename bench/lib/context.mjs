// What a run is asked to do: the command line (bench/run --help), the sizes it implies, and
// the fixed inputs every figure shares.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(BENCH_DIR, '..');

export const USAGE = `usage: bench/run [options]
  --smoke, --quick   tiny counts, 1 repetition, every figure's code path in seconds (for CI)
  --only N,M         figures to run (0 nginx, 1 ingest, 2 batched ingest, 3 end to end,
                     4 latency, 5 backlog, 6 slow receiver, 7 microbenchmarks, 8 PostgreSQL
                     scale-out, 9 reporting reads on a big site, 10 filters at ingest, 11 batched
                     delivery); the nginx reference (0) is run as well whenever 1 or 3 need
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

export function parseArgs(argv) {
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
        if (!Number.isInteger(n) || n < 0 || n > 11) usageError(`--only takes figure numbers 0-11, not "${s}"`);
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
  const all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  o.figures = new Set(o.only ? all.filter((n) => o.only.has(n)) : all);
  if (o.figures.has(1) || o.figures.has(3)) o.figures.add(0);
  return o;
}

export function usageError(message) {
  console.error(`bench/run: ${message}\n${USAGE}`);
  process.exit(2);
}

export const opts = parseArgs(process.argv.slice(2));

// Sizes of each figure's load. Smoke keeps every code path with counts that take moments.
export const SIZES = opts.smoke
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
      reportingEvents: 20_000,
      reportingCampaigns: 200,
      reportingQueries: 5,
      filterEndpoints: 50,
      filterEvents: 5_000,
      batchDeliveryEvents: { batched: 3_000, single: 3_000 },
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
      reportingEvents: 10_000_000,
      reportingCampaigns: 10_000,
      reportingQueries: 21,
      filterEndpoints: 1000,
      filterEvents: 300_000,
      // Each run lasts a few seconds: the unbatched twin is about 15 times slower.
      batchDeliveryEvents: { batched: 1_000_000, single: 100_000 },
    };
export const SLOW_DELAY_MS = 200;
export const ADMIN_TOKEN = `bench-${process.pid}-${Date.now().toString(36)}`;
export const EVENT_BODY = fs.readFileSync(path.join(BENCH_DIR, 'event.json'), 'utf8').trim();
