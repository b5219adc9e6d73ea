// Figure 10: what endpoint filters cost ingest (DESIGN section 3). Two sites take the same
// stream of `filterEvents` Views spread over 100 x `filterEndpoints` campaigns (pushhook send
// --campaigns): site "filtered" has `filterEndpoints` endpoints, endpoint i filtered to the 100
// campaigns cid-(100 i) .. cid-(100 i + 99); site "unfiltered" has one endpoint without a filter.
// Each event so becomes one message on either site, and the difference is the filter check at
// fan-out. The endpoints are disabled, so their messages wait and the rate is ingest and fan-out
// alone. Each repetition runs both, in alternating order, each on a fresh serve.

import { SIZES, opts } from '../lib/context.mjs';
import { makeDir, removeDir } from '../lib/processes.mjs';
import { Serve, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

const PER_ENDPOINT = 100;

async function ingestRate(kind, rep) {
  const dir = makeDir(`fig10-${kind}-${rep}`);
  const serve = await Serve.start(dir);
  try {
    const site = await serve.createSite();
    const endpoints = kind === 'filtered' ? SIZES.filterEndpoints : 1;
    await serve.createEndpoints(site.id, endpoints, (i) => ({
      url: `http://127.0.0.1:9/e/${i}`,
      enabled: false,
      ...(kind === 'filtered'
        ? { filter: { cid: Array.from({ length: PER_ENDPOINT }, (_, k) => `cid-${i * PER_ENDPOINT + k}`) } }
        : {}),
    }));
    const count = SIZES.filterEvents;
    const r = await send(serve, site.ingest_key, {
      count, batch: 1000, connections: 4, maxSeconds: 300,
      extra: ['--campaigns', String(SIZES.filterEndpoints * PER_ENDPOINT), '--action', 'View'],
    });
    if (r.accepted !== count) throw new Error(`${kind}: ${r.accepted} of ${count} events accepted: ${JSON.stringify(r)}`);
    log(`fig 10 rep ${rep + 1}: ${kind}: ${r.events_per_second.toFixed(0)} events/s`);
    return r.events_per_second;
  } finally {
    await serve.stop();
    removeDir(dir);
  }
}

export async function figureFilters() {
  const runs = { filtered: [], unfiltered: [] };
  for (let rep = 0; rep < opts.reps; ++rep) {
    const order = rep % 2 === 0 ? ['filtered', 'unfiltered'] : ['unfiltered', 'filtered'];
    for (const kind of order) runs[kind].push(await ingestRate(kind, rep));
  }
  const filtered = median(runs.filtered);
  const unfiltered = median(runs.unfiltered);
  results.figures.filters = {
    endpoints: SIZES.filterEndpoints,
    campaigns_per_endpoint: PER_ENDPOINT,
    events: SIZES.filterEvents,
    runs,
    median_events_per_second: { filtered, unfiltered },
    ratio: filtered / unfiltered,
  };
}
