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

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { figureBacklog } from './figures/backlog.mjs';
import { figureBatches } from './figures/batches.mjs';
import { figureEndToEnd } from './figures/end_to_end.mjs';
import { figureFilters } from './figures/filters.mjs';
import { figureBatchedIngest, figuresNginxAndIngest } from './figures/ingest.mjs';
import { figureLatency } from './figures/latency.mjs';
import { figureMicro } from './figures/micro.mjs';
import { figurePostgres } from './figures/postgres.mjs';
import { figureReporting } from './figures/reporting.mjs';
import { figureSlowReceiver } from './figures/slow_receiver.mjs';
import { opts } from './lib/context.mjs';
import { cleanupAndExit, killAll, runCommand, setTempRoot, sleep, tmpRoot } from './lib/processes.mjs';
import { START, log, results } from './lib/results.mjs';
import { printTable } from './lib/table.mjs';

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
  setTempRoot(fs.mkdtempSync(path.join(os.tmpdir(), 'pushhook-bench-')));
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
    [9, 'reporting reads on a big site', figureReporting],
    [10, 'filters at ingest', figureFilters],
    [11, 'batched delivery', figureBatches],
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
