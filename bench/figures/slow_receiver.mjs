// Figure 6: a slow receiver does not slow the others.

import { EndToEnd } from './end_to_end.mjs';
import { SIZES, SLOW_DELAY_MS, opts } from '../lib/context.mjs';
import { log, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export async function figureSlowReceiver() {
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
