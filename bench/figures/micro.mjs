// Figure 7: the C++ microbenchmarks (build/bench/pushhook_micro_bench).

import fs from 'node:fs';

import { SIZES, opts } from '../lib/context.mjs';
import { runCommand, tail } from '../lib/processes.mjs';
import { log, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export async function figureMicro() {
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
