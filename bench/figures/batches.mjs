// Figure 11: batched delivery (DESIGN section 1). Three measures, each beside its unbatched twin
// in the same run:
//   - end to end, one endpoint with batches of up to 100 (max_wait_ms 100), into
//     `pushhook receive`: events/s stored by the receiver, timed from the first ingest request;
//   - the drain: the same events stored while the endpoint was disabled, then enabled, so that
//     delivery alone is timed (ingest above is the slower half of end to end);
//   - latency at 200 events/s with batches of 100 and max_wait_ms 0, from occurred_at to the
//     receiver's received_at_ms: batching must not add latency when asked not to.

import { SIZES, opts } from '../lib/context.mjs';
import { sleep } from '../lib/processes.mjs';
import { expectOk, httpCall, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';
import { EndToEnd } from './end_to_end.mjs';
import { latencyRun } from './latency.mjs';

const BATCH = { max_events: 100, max_wait_ms: 100 };

// Stores `events` with the endpoint disabled, enables it, and times the receiver storing them.
async function drain(setup, events) {
  const { serve, receiver } = setup;
  const path = `/v1/sites/${setup.site.id}/endpoints/${setup.created[0].id}`;
  const patch = (body) => expectOk(httpCall(serve.base, 'PATCH', path, { body }), 'PATCH endpoint');
  await patch({ enabled: false });
  const baseline = receiver.counts.stored;
  const sent = await send(serve, setup.site.ingest_key, { count: events, batch: 100, connections: 4, maxSeconds: 120 });
  if (sent.accepted !== events) throw new Error(`drain: only ${sent.accepted} of ${events} accepted`);
  await sleep(500); // the last commits reach the dispatcher, which parks them with the endpoint
  const start = Date.now();
  await patch({ enabled: true });
  const waited = await receiver.waitStored(baseline + events, 120_000);
  const crossing = receiver.crossing(baseline + events, start, baseline);
  const seconds = ((crossing ? crossing.estimate : Date.now()) - start) / 1000;
  return { events, seconds, timed_out: waited.timedOut, events_per_second: events / seconds };
}

export async function figureBatches() {
  const events = SIZES.batchDeliveryEvents;
  const variants = { batched: BATCH, single: {} };
  const runs = { end_to_end: { batched: [], single: [] }, drain: { batched: [], single: [] }, latency: { batched: [], single: [] } };
  const setups = {};
  try {
    for (const [name, batch] of Object.entries(variants)) {
      setups[name] = await EndToEnd.create(`fig11-${name}`, 1, { endpoint: name === 'batched' ? { batch } : {} });
      await setups[name].run(Math.min(events[name], 20_000), { timeoutMs: 60_000 }); // warm-up
    }
    for (let rep = 0; rep < opts.reps; ++rep) {
      for (const name of Object.keys(variants)) {
        const r = await setups[name].run(events[name], { timeoutMs: 120_000 });
        runs.end_to_end[name].push(r);
        const d = await drain(setups[name], events[name]);
        runs.drain[name].push(d);
        log(`fig 11 rep ${rep + 1}, ${name}: end to end ${r.webhooks_per_second.toFixed(0)} events/s ` +
          `(${r.stored}/${r.webhooks} in ${r.seconds.toFixed(2)} s, ingest ${r.ingest_seconds.toFixed(2)} s); ` +
          `drain ${d.events_per_second.toFixed(0)} events/s (${d.seconds.toFixed(2)} s)${r.timed_out || d.timed_out ? '; TIMED OUT' : ''}`);
        if (r.timed_out || d.timed_out) results.warnings.push(`figure 11: ${name} timed out`);
      }
    }
  } finally {
    for (const setup of Object.values(setups)) await setup.close();
  }
  for (let rep = 0; rep < opts.reps; ++rep) {
    // Each goes first in turn: the first run after the million-event databases above meets the
    // disk still writing them back, and its syncs (so its p99) are slower.
    const names = Object.keys(variants);
    for (const name of rep % 2 === 0 ? names : names.reverse()) {
      const r = await latencyRun(`fig11-latency-${name}-${rep}`, 200,
        name === 'batched' ? { batch: { max_events: 100, max_wait_ms: 0 } } : {});
      runs.latency[name].push(r);
      log(`fig 11 rep ${rep + 1}, latency at 200/s, ${name}: p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms (${r.delivered} samples)`);
    }
  }
  const med = (list, f) => median(list.map(f));
  results.figures.batches = {
    batch: BATCH,
    events,
    runs,
    median: {
      end_to_end_events_per_second: {
        batched: med(runs.end_to_end.batched, (r) => r.webhooks_per_second),
        single: med(runs.end_to_end.single, (r) => r.webhooks_per_second),
      },
      drain_events_per_second: {
        batched: med(runs.drain.batched, (r) => r.events_per_second),
        single: med(runs.drain.single, (r) => r.events_per_second),
      },
      latency_p99_ms_at_200: {
        batched: med(runs.latency.batched, (r) => r.p99_ms),
        single: med(runs.latency.single, (r) => r.p99_ms),
      },
      latency_p50_ms_at_200: {
        batched: med(runs.latency.batched, (r) => r.p50_ms),
        single: med(runs.latency.single, (r) => r.p50_ms),
      },
    },
  };
}
