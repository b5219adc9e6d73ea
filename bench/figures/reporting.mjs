// Figure 9: the dashboard's reads on a big site. One site gets `reportingEvents` events spread
// over `reportingCampaigns` campaigns (pushhook send --campaigns), then the campaigns list (first
// page and a later page by cursor) and one campaign's page (its hourly series, and its groups by
// utm_source) are each asked `reportingQueries` times; the medians and p90s are wall-clock times
// of the whole HTTP exchange over loopback, so they bound the server-side time from above.

import { ADMIN_TOKEN, SIZES } from '../lib/context.mjs';
import { makeDir, removeDir } from '../lib/processes.mjs';
import { Serve, send } from '../lib/pushhook.mjs';
import { log, results } from '../lib/results.mjs';
import { median, percentile } from '../lib/stats.mjs';

async function timed(base, urlPath) {
  const started = process.hrtime.bigint();
  const response = await fetch(base + urlPath, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.json();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (response.status !== 200) throw new Error(`GET ${urlPath}: HTTP ${response.status}: ${JSON.stringify(body)}`);
  return { ms, body };
}

export async function figureReporting() {
  const dir = makeDir('fig9');
  const serve = await Serve.start(dir);
  try {
    const site = await serve.createSite();
    const { reportingEvents: count, reportingCampaigns: campaigns, reportingQueries: queries } = SIZES;
    const loaded = Date.now();
    const sent = await send(serve, site.ingest_key, {
      count, batch: 1000, connections: 4, maxSeconds: 900, extra: ['--campaigns', String(campaigns), '--action', 'View'],
    });
    if (sent.accepted !== count) throw new Error(`only ${sent.accepted} of ${count} events were accepted`);
    log(`fig 9: ${count} events over ${campaigns} campaigns stored in ${((Date.now() - loaded) / 1000).toFixed(0)} s`);
    const site_path = `/v1/sites/${site.id}`;
    const first = await timed(serve.base, `${site_path}/campaigns?limit=50`); // settles the statistics
    if (first.body.data.length !== 50) throw new Error(`campaigns: ${first.body.data.length} on the first page`);
    const cursor = encodeURIComponent(first.body.next_cursor);
    const cid = first.body.data[0].cid;
    const kinds = {
      campaigns_first_page: `${site_path}/campaigns?limit=50`,
      campaigns_next_page: `${site_path}/campaigns?limit=50&cursor=${cursor}`,
      campaign_hourly: `${site_path}/stats?cid=${encodeURIComponent(cid)}&bucket=hour`,
      campaign_by_utm_source: `${site_path}/stats?cid=${encodeURIComponent(cid)}&group_by=utm_source`,
      // Sorts that no index serves, and a search: each reads every campaign of the site.
      campaigns_by_views: `${site_path}/campaigns?limit=50&sort=views`,
      campaigns_by_ctr: `${site_path}/campaigns?limit=50&sort=ctr`,
      campaigns_search: `${site_path}/campaigns?limit=50&q=${encodeURIComponent(cid.slice(0, -1))}`,
    };
    const figure = { events: count, campaigns, queries, ms: {} };
    for (const [name, urlPath] of Object.entries(kinds)) {
      const times = [];
      for (let i = 0; i < queries; ++i) times.push((await timed(serve.base, urlPath)).ms);
      figure.ms[name] = { median: median(times), p90: percentile(times.sort((a, b) => a - b), 90) };
    }
    const views = (await timed(serve.base, kinds.campaign_hourly)).body.totals.views;
    if (views !== count / campaigns) throw new Error(`campaign ${cid} has ${views} views, not ${count / campaigns}`);
    results.figures.reporting = figure;
    log(`fig 9: ${JSON.stringify(figure.ms)}`);
  } finally {
    await serve.stop();
    removeDir(dir);
  }
}
