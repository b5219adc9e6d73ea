// The run's results (bench/results/*.json), the log line of each step, and optional perf.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT, opts } from './context.mjs';
import { runCommand, sleep, startChild, tmpRoot } from './processes.mjs';

// When the run began: the log's clock and the elapsed time in the results.
export const START = Date.now();

export const results = {
  started_at: new Date().toISOString(),
  mode: opts.smoke ? 'smoke' : 'full',
  settings: { reps: opts.reps, duration_s: opts.duration, backlog: opts.backlog, figures: [...opts.figures] },
  machine: machineInfo(),
  figures: {},
  errors: [],
  warnings: [],
};

export function machineInfo() {
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

export function log(message) {
  const t = ((Date.now() - START) / 1000).toFixed(1).padStart(6);
  console.error(`[${t}s] ${message}`);
}

// Runs perf record on `pid` for `seconds`, if --perf; the report goes to the results folder.
export async function maybePerf(label, pid, seconds) {
  if (!opts.perf) return null;
  const data = path.join(tmpRoot, `perf-${label}.data`);
  const h = startChild(`perf-${label}`, 'perf', ['record', '-g', '-F', '499', '-p', String(pid), '-o', data, '--', 'sleep', String(seconds)]);
  return { h, data, label };
}

export async function finishPerf(p) {
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
