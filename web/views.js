// One function per view. Each gets the view's element, the context ({site, who, canChange,
// params, query, signal, get, every, after, rerender}: see route() in app.js) and fills the
// element from the API; numbers are the API's, never recomputed differently. Event text goes in as
// text (dom.js). Every request a view makes carries the view's signal (ctx.get does), so once the
// person has gone to another page none of its answers paints anything.

import { api, ApiError, isAbort, newestOnly, query, sitePath } from '/assets/api.js';
import { countOf, formatCount, formatPercent, formatTime, h, loading, notice, replace } from '/assets/dom.js';
import uPlot from '/assets/uPlot.esm.js';

const UTM_FIELDS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];

// The error state of a view, saying what to do.
export function errorNotice(error, what) {
  if (error instanceof ApiError && error.status === 0) {
    return notice('error', 'The server is unreachable.', `${error.message} Then reload this page.`);
  }
  if (error instanceof ApiError && error.status === 404) {
    return notice('error', `No such ${what}.`, 'It may have been removed, or this token may not see it.');
  }
  if (error instanceof ApiError && error.status === 403) {
    return notice('error', 'This token may not do that.', error.message);
  }
  return notice('error', `Could not load ${what}.`, error.message);
}

// The error of an action, titled by it: "Replay failed: …".
function actionError(action, error) {
  const why = error instanceof ApiError && error.status === 403 ? `this token may not do that. ${error.message}` : error.message;
  return notice('error', `${action} failed: ${why}`);
}

// A live region that shows an action's result and takes the focus, so that it is both seen (it
// scrolls into view) and read out.
function resultRegion() {
  const region = h('div', { class: 'result', 'aria-live': 'polite', tabindex: -1 });
  region.show = (content) => {
    replace(region, content);
    region.focus();
  };
  return region;
}

// Text from outside with its bidirectional controls (U+202A-U+202E, U+2066-U+2069) made
// visible: an override in a title would show "evil.exe" as "exe.live". Right-to-left scripts
// need none of them to show right.
export const defused = (text) => String(text ?? '').replace(/[\u202a-\u202e\u2066-\u2069]/g, '\ufffd');

// Long text (an id, a URL, a title) cut to one line with an ellipsis; the whole of it in the
// title attribute. `href` makes it a link.
function clipped(text, href, extraClass) {
  const shown = defused(text);
  return h(href ? 'a' : 'span', { class: extraClass ? `clip ${extraClass}` : 'clip', href, title: shown || null }, shown);
}

// A label and its control kept together on one line when a row of them wraps (on a phone).
function field(label, control) {
  return h('span', { class: 'field' }, h('label', { for: control.id }, label), control);
}

// An endpoint in a list: its URL without "https://" (a plain http:// one keeps its scheme, to
// stand out), cut wider than other text since URLs share their start; its description under it.
function endpointCell(e, site) {
  return [clipped(e.url.replace(/^https:\/\//, ''), `#/s/${site}/endpoints/${e.id}`, 'url'),
    e.description ? h('span', { class: 'clip sub' }, defused(e.description)) : null];
}

// An endpoint's state as a person reads it, coloured as the message states are.
const STATE_TEXT = { enabled: 'enabled', disabled: 'disabled', circuit_open: 'circuit open' };
const stateText = (state) => h('span', { class: `state ${state}` }, STATE_TEXT[state] ?? state);

// Why an endpoint needs attention, in a few words.
function attentionReason(e, s) {
  if (s.state === 'disabled') return e.disabled_reason || 'disabled';
  if (s.circuit === 'open') return 'its receiver keeps failing: sending pauses, then probes';
  if (s.circuit === 'half_open') return 'probing its receiver after failures';
  if (s.failed > 0) return `${formatCount(s.failed)} out of retries: redeliver once the receiver is fixed`;
  return '';
}

// `value`: its text, or its parts (["809", "(±1.6 %)"]): a narrow tile breaks the line between
// parts, never inside one, so a number stays with its unit. `href` makes the whole tile a link.
function tile(label, value, testId, href) {
  return h(href ? 'a' : 'div', { class: 'tile', href }, h('span', { class: 'label' }, label),
    h('span', { class: 'value', 'data-testid': testId }, [value].flat().map((part, i) => [i > 0 ? ' ' : null, h('span', {}, part)])));
}

// Headers whose column holds numbers are right-aligned over them.
const NUMERIC = new Set(['Views', 'Clicks', 'CTR', 'Dismissals', 'Unique subscribers', 'Attempts', 'Latency', 'Pending', 'Failed',
  'Failed messages', 'Success (24 h)', 'p50 / p99']);

// A table in its own box, which scrolls sideways when the table is wider than the screen (the
// page never does). `sorted`: {label, order} puts aria-sort on that column's header.
function table(headers, rows, { caption, sorted } = {}) {
  const label = (x) => (typeof x === 'string' ? x : x.dataset?.label);
  return h('div', { class: 'table-box' }, h('table', {}, caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', {
      scope: 'col', class: NUMERIC.has(label(x)) ? 'num' : null,
      'aria-sort': sorted && sorted.label === label(x) ? sorted.order : null,
    }, x)))),
    h('tbody', {}, rows)));
}

// After "Load more": the first row it added takes the focus, so that a keyboard or screen reader
// goes on from there, not from the page's top (the button itself goes with the last page).
function focusRow(container, index) {
  const row = container.querySelectorAll('tbody tr')[index];
  if (!row) return;
  row.tabIndex = -1;
  row.focus();
}

// A click-through rate, or "–" where there is no view to divide by (clicks can come first).
const ctrText = (counts) => (counts.views === 0 ? '–' : formatPercent(counts.ctr));

// "15:41:13", in UTC like every time on the dashboard.
const clock = (date) => date.toISOString().slice(11, 19);

// ---- Overview -------------------------------------------------------------------------------

// The site's totals and the endpoints that need attention, refreshed every 10 s (a notice says
// when a refresh fails and how old the figures are); the server's rates (operator only) every 5 s.
export async function overview(el, ctx) {
  replace(el, h('h1', {}, 'Overview'), loading('the overview'));
  const site = h('div');
  const stale = h('div');
  const server = h('section', { 'aria-labelledby': 'server-h' });
  let drawnAt = null;
  const draw = async () => {
    const [stats, endpoints, failed] = await Promise.all([
      ctx.get(sitePath(ctx.site, 'stats')),
      ctx.get(sitePath(ctx.site, 'endpoints')),
      ctx.get(sitePath(ctx.site, 'messages') + query({ status: 'failed', limit: 100 })),
    ]);
    const health = await Promise.all(endpoints.data.map((e) =>
      ctx.get(sitePath(ctx.site, 'endpoints', e.id, 'stats')).then((s) => ({ endpoint: e, stats: s }))));
    // The list counts up to 100; past that, the endpoints' own counts give the number.
    const failedCount = failed.data.length < 100 ? failed.data.length
      : health.length > 0 ? health.reduce((sum, { stats }) => sum + stats.failed, 0) : null;
    const failing = health.filter(({ stats }) => stats.state !== 'enabled' || stats.circuit !== 'closed' || stats.failed > 0);
    const t = stats.totals;
    replace(site,
      h('div', { class: 'tiles' },
        tile('Views', formatCount(t.views), 'site-views'),
        tile('Clicks', formatCount(t.clicks), 'site-clicks'),
        tile('CTR', ctrText(t), 'site-ctr'),
        tile('Dismissals', formatCount(t.dismissals), 'site-dismissals'),
        tile('Unique subscribers', formatCount(t.unique_subscribers), 'site-unique'),
        tile('Failed messages', failedCount === null ? '100+' : formatCount(failedCount), 'failed-messages',
          `#/s/${ctx.site}/messages?status=failed`)),
      h('h2', {}, 'Endpoints that need attention'),
      endpoints.data.length === 0
        ? notice('info', 'No endpoint yet.', 'Register a webhook URL under Endpoints to start deliveries.')
        : failing.length === 0
          ? notice('ok', endpoints.data.length === 1 ? 'The endpoint is healthy.' : `All ${countOf(endpoints.data.length, 'endpoint')} are healthy.`)
          : table(['Endpoint', 'Failed messages', 'State', 'Why'], failing.map(({ endpoint, stats }) =>
            h('tr', { 'data-endpoint': endpoint.id }, h('td', {}, endpointCell(endpoint, ctx.site)),
              h('td', { class: 'num' }, formatCount(stats.failed)), h('td', {}, stateText(stats.state)),
              h('td', { class: 'text', 'data-testid': 'why' }, attentionReason(endpoint, stats))))));
    drawnAt = new Date();
  };
  const refresh = async () => {
    try {
      await draw();
      replace(stale);
    } catch (error) {
      if (ctx.signal.aborted) return;
      if (error.status === 401) throw error;  // the token is gone: ctx.every signs out
      if (stale.firstChild) return;
      replace(stale, notice('error', `Could not refresh: these figures are from ${clock(drawnAt)} UTC.`,
        `${/[.!?]$/.test(error.message) ? error.message : `${error.message}.`} Trying again every 10 s.`));
    }
  };
  await draw();
  replace(el, h('h1', {}, 'Overview'), stale, site, ctx.who.token === 'operator' ? server : null);
  ctx.every(10_000, refresh);
  if (ctx.who.token === 'operator') await serverRates(server, ctx);
}

// Server-wide rates from /metrics (operator only: they span every site), refreshed every 5 s.
async function serverRates(section, ctx) {
  let previous = null;
  const draw = async () => {
    let text;
    try {
      const response = await fetch('/metrics', { cache: 'no-store', signal: ctx.signal });
      text = await response.text();
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      replace(section, h('h2', { id: 'server-h' }, 'Server'), notice('error', 'The server is unreachable.'));
      return;
    }
    const value = (name) => {
      let sum = 0;
      for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      return sum;
    };
    const now = { at: Date.now(), ingested: value('pushhook_ingest_events_total{result="accepted"}'),
      delivered: value('pushhook_delivery_attempts_total{outcome="delivered"}') };
    // A counter that went down is a server that restarted (its counters start at zero): the rate
    // is measured again from here, never shown negative.
    const rate = (key) => (previous && now.at > previous.at && now[key] >= previous[key]
      ? ((now[key] - previous[key]) * 1000) / (now.at - previous.at) : null);
    const shown = (r) => (r === null ? 'measuring…' : `${r.toFixed(1)} /s`);
    replace(section, h('h2', { id: 'server-h' }, 'Server (all sites)'), h('div', { class: 'tiles' },
      tile('Ingest', shown(rate('ingested')), 'ingest-rate'),
      tile('Deliveries', shown(rate('delivered')), 'delivery-rate'),
      tile('Queue depth', formatCount(value('pushhook_delivery_queue_depth')), 'queue-depth'),
      tile('Open circuits', formatCount(value('pushhook_delivery_open_circuits')), 'open-circuits')));
    previous = now;
  };
  await draw();
  ctx.every(5000, draw);
}

// ---- Campaigns ------------------------------------------------------------------------------

// [label, the API's sort name (null: not sortable), the cell]. Sorting and searching are the
// server's (GET /campaigns ?sort, ?order, ?q), so they span every campaign, not the loaded ones.
// The title goes under the cid, so that on a phone the first numbers fit beside them.
const CAMPAIGN_COLUMNS = [
  ['Campaign', 'cid', (c, site) => [clipped(c.cid, `#/s/${site}/campaigns/${encodeURIComponent(c.cid)}`),
    c.title ? h('span', { class: 'clip sub', title: defused(c.title) }, defused(c.title)) : null]],
  ['Views', 'views', (c) => formatCount(c.views)],
  ['Clicks', 'clicks', (c) => formatCount(c.clicks)],
  ['CTR', 'ctr', (c) => ctrText(c)],
  ['Dismissals', 'dismissals', (c) => formatCount(c.dismissals)],
  ['Unique subscribers', null, (c) => formatCount(c.unique_subscribers)],
  ['Last activity', 'last_active', (c) => formatTime(c.last_active_at)],
];
const PAGE = 50;

export async function campaigns(el, ctx) {
  replace(el, h('h1', {}, 'Campaigns'), loading('campaigns'));
  // focusSort: the header whose button was clicked, given the focus back once the rows are in.
  const state = { rows: [], cursor: null, sort: 'last_active', order: 'desc', q: '', focusSort: null };
  const fresh = newestOnly(ctx.signal);
  let signal = fresh();
  const body = h('div');
  const more = h('button', { type: 'button', onclick: () => {
    const first = state.rows.length;
    load().then(() => focusRow(body, first), showError).finally(() => { more.disabled = false; });
  } }, 'Load more');
  let typing = null;
  const search = h('input', {
    type: 'search', id: 'campaign-search', placeholder: 'cid or title contains…', maxlength: 256,
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => restart({ q: search.value.trim() }), 250);
    },
  });
  const showError = (error) => {
    if (!isAbort(error)) replace(body, errorNotice(error, 'campaigns'));
  };
  // Loads the next page. A newer search or sort aborts it (restart), so no answer to an older
  // list is shown.
  const load = async () => {
    more.disabled = true;
    const page = await api.get(sitePath(ctx.site, 'campaigns') + query({
      limit: PAGE, cursor: state.cursor, sort: state.sort, order: state.order, q: state.q || null,
    }), { signal });
    state.rows.push(...page.data);
    state.cursor = page.next_cursor;
    render();
  };
  const restart = (changes) => {
    Object.assign(state, { focusSort: null }, changes, { rows: [], cursor: null });
    signal = fresh();
    replace(body, loading('campaigns'));
    more.hidden = true;
    load().catch(showError);
  };
  const render = () => {
    more.hidden = !state.cursor;
    more.disabled = false;
    if (state.rows.length === 0) {
      replace(body, state.q
        ? notice('info', `No campaign's id or title contains “${state.q}”.`, 'Try fewer letters, or clear the search.')
        : notice('info', 'No campaigns yet.',
          'Campaigns appear here with their first View or Click. The README\'s quick start sends one.'));
      return;
    }
    const header = CAMPAIGN_COLUMNS.map(([label, sort]) => {
      if (!sort) return label;
      const active = state.sort === sort;
      const firstOrder = sort === 'cid' ? 'asc' : 'desc';
      return h('button', {
        type: 'button', class: 'sort', 'data-label': label, 'data-sort': sort,
        onclick: () => restart({ sort, order: active ? (state.order === 'desc' ? 'asc' : 'desc') : firstOrder, focusSort: sort }),
      }, label, active ? (state.order === 'desc' ? ' ↓' : ' ↑') : '');
    });
    const caption = `${countOf(state.rows.length, 'campaign')}${state.q ? ` whose id or title contains “${state.q}”` : ''}` +
      (state.cursor ? ', more below' : '');
    const sortedLabel = CAMPAIGN_COLUMNS.find(([, sort]) => sort === state.sort)[0];
    replace(body, table(header, state.rows.map((c) => h('tr', { 'data-cid': c.cid },
      CAMPAIGN_COLUMNS.map(([label, , cell]) =>
        h('td', { class: NUMERIC.has(label) ? 'num' : null }, cell(c, ctx.site))))),
    { caption, sorted: { label: sortedLabel, order: state.order === 'desc' ? 'descending' : 'ascending' } }));
    // The clicked header's button was rebuilt: the focus goes back to it, not to the page's top.
    const lost = document.activeElement === null || document.activeElement === document.body;
    if (state.focusSort && lost) body.querySelector(`button[data-sort="${state.focusSort}"]`)?.focus();
    state.focusSort = null;
  };
  await load();
  replace(el, h('h1', {}, 'Campaigns'), h('div', { class: 'controls' }, field('Search', search)), body, more);
}

export async function campaign(el, ctx) {
  const cid = ctx.params[0];
  replace(el, h('h1', {}, `Campaign ${defused(cid)}`), loading('the campaign'));
  const bucket = h('select', { id: 'bucket' }, ['minute', 'hour', 'day'].map((b) => h('option', { value: b, selected: b === 'hour' }, b)));
  const groupBy = h('select', { id: 'group-by' },
    ['reference_id', ...UTM_FIELDS].map((g) => h('option', { value: g }, g)));
  // A failed download says why under the button and takes the focus, as an action's result does.
  const csvResult = resultRegion();
  const csv = h('button', { type: 'button', onclick: () => download().then(() => replace(csvResult),
    (e) => csvResult.show(actionError('Download CSV', e))) }, 'Download CSV');
  const content = h('div');
  const fresh = newestOnly(ctx.signal);
  // A change of bucket or grouping aborts the draw still waiting for an older choice's answers,
  // so the figures shown are always those of the choices shown.
  const draw = async () => {
    const signal = fresh();
    const size = bucket.value;
    const field = groupBy.value;
    const [series, groups] = await Promise.all([
      api.get(sitePath(ctx.site, 'stats') + query({ cid, bucket: size }), { signal }),
      api.get(sitePath(ctx.site, 'stats') + query({ cid, group_by: field }), { signal }),
    ]);
    const t = series.totals;
    const chart = h('div', { class: 'chart', 'data-testid': 'chart' });
    // Groups by run carry their own unique subscribers; UTM groups have none (no sketch per value).
    const uniques = groups.groups.some((g) => g.unique_subscribers !== undefined);
    replace(content,
      h('div', { class: 'tiles' },
        tile('Views', formatCount(t.views), 'views'), tile('Clicks', formatCount(t.clicks), 'clicks'),
        tile('CTR', ctrText(t), 'ctr'), tile('Dismissals', formatCount(t.dismissals), 'dismissals'),
        tile('Unique subscribers', [formatCount(t.unique_subscribers), `(±${(t.unique_subscribers_error * 100).toFixed(1)} %)`], 'unique')),
      h('h2', {}, 'Over time'), series.series.length === 0 ? notice('info', 'No events in this window.') : chart,
      h('h2', {}, 'Clicks by button'),
      table(['Button', 'Clicks'], ['0', '1', '2'].map((b) => h('tr', {},
        h('td', {}, b === '0' ? 'the notification itself' : `button ${b}`),
        h('td', { class: 'num', 'data-testid': `button-${b}` }, formatCount(t.clicks_by_button[b]))))),
      h('h2', {}, `By ${field}`),
      groups.groups.length === 0 ? notice('info', 'Nothing to group yet.') :
        table([field, 'Views', 'Clicks', 'CTR', 'Dismissals', ...(uniques ? ['Unique subscribers'] : [])],
          groups.groups.map((g) => h('tr', {},
            h('td', {}, g.key === '' ? '(none)' : clipped(g.key)), h('td', { class: 'num' }, formatCount(g.views)),
            h('td', { class: 'num' }, formatCount(g.clicks)), h('td', { class: 'num' }, ctrText(g)),
            h('td', { class: 'num' }, formatCount(g.dismissals)),
            ...(uniques ? [h('td', { class: 'num' }, formatCount(g.unique_subscribers))] : [])))));
    if (series.series.length > 0) drawChart(chart, series.series, BUCKET_SECONDS[size]);
    return t;
  };
  const download = async () => {
    const blob = await api.csv(sitePath(ctx.site, 'stats') + query({ cid, bucket: bucket.value }));
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: `campaign-${cid}-${bucket.value}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  const redraw = () => draw().catch((e) => {
    if (!isAbort(e)) replace(content, errorNotice(e, 'campaign statistics'));
  });
  bucket.addEventListener('change', redraw);
  groupBy.addEventListener('change', redraw);
  // The notification's title is in the campaigns list (found by a search for the cid), not in
  // the statistics; without it the page still shows.
  const listed = new Blob([cid]).size > 256 ? Promise.resolve('') // longer than a search may be
    : ctx.get(sitePath(ctx.site, 'campaigns') + query({ q: cid, limit: 500 }))
      .then((page) => page.data.find((c) => c.cid === cid)?.title ?? '', () => '');
  const back = h('p', {}, h('a', { href: `#/s/${ctx.site}/campaigns` }, '← Campaigns'));
  // A campaign is its events: with none at all (a mistyped link), there is nothing to chart.
  const t = await draw();
  if (t.views === 0 && t.clicks === 0 && t.dismissals === 0) {
    replace(el, back, h('h1', {}, `Campaign ${defused(cid)}`), notice('info', 'No such campaign yet.',
      'No View, Click or Dismiss has come with this cid. Campaigns appear with their first event.'));
    return;
  }
  const title = await listed;
  replace(el, back,
    h('h1', {}, `Campaign ${defused(cid)}`),
    title ? h('p', { class: 'subtitle', 'data-testid': 'campaign-title', title: defused(title) }, defused(title)) : null,
    h('div', { class: 'controls' }, field('Bucket', bucket), field('Group by', groupBy), csv,
      h('a', { href: `#/s/${ctx.site}/messages${query({ status: 'all', cid })}`, 'data-testid': 'campaign-messages' },
        'Its messages →')),
    csvResult, content);
}

const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };
// An axis's width from its widest tick label: uPlot's fixed default leaves room for about four
// digits, and six or seven ("1,000,000") ran under the axis title.
const axisSize = (u, values, axisIndex) => {
  const axis = u.axes[axisIndex];
  if (!values) return 50;
  u.ctx.font = axis.font[0];
  const widest = Math.max(0, ...values.map((v) => u.ctx.measureText(String(v)).width)) / uPlot.pxRatio;
  return Math.max(50, Math.ceil(widest + axis.gap + axis.ticks.size + 8));
};

// The API answers only the buckets that have events: the ones between them are drawn as zero
// views and clicks (and no CTR), not as a line carried across hours that had nothing. A window
// of more than 20,000 buckets breaks the lines at its gaps instead.
function withEmptyBuckets(buckets, bucketSeconds) {
  const step = bucketSeconds * 1000;
  const first = Date.parse(buckets[0].bucket);
  const span = (Date.parse(buckets[buckets.length - 1].bucket) - first) / step;
  const empty = (at, count) => ({ bucket: new Date(at).toISOString(), views: count, clicks: count, ctr: null });
  const out = [];
  for (const b of buckets) {
    const at = Date.parse(b.bucket);
    const previous = out.length > 0 ? Date.parse(out[out.length - 1].bucket) : at;
    if (span <= 20_000) {
      for (let t = previous + step; t < at; t += step) out.push(empty(t, 0));
    } else if (at - previous > step) {
      out.push(empty(previous + step, null));
    }
    out.push(b);
  }
  return out;
}

// Steps between the ticks of a count: whole numbers (1, 2, 5, 10, 20, 50, ...), never 0.5 event.
const WHOLE_STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));

// The steps between time ticks: whole multiples of the bucket, in seconds.
function tickSteps(bucketSeconds) {
  const minute = 60;
  const hour = 3600;
  const day = 86400;
  const steps = [minute, 5 * minute, 15 * minute, 30 * minute, hour, 2 * hour, 3 * hour, 6 * hour, 12 * hour,
    day, 2 * day, 7 * day, 14 * day, 30 * day, 91 * day, 182 * day, 365 * day];
  return steps.filter((s) => s >= bucketSeconds && s % bucketSeconds === 0);
}

// uPlot's dates are read through this: a Date whose local fields hold the UTC time.
const utcDate = (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'UTC');
const dayLabel = uPlot.fmtDate('{YYYY}-{MM}-{DD}');
const timeLabel = uPlot.fmtDate('{HH}:{mm}');

// Views and clicks per bucket on the left axis, CTR on its own axis at the right; times in UTC,
// like the tables and the CSV. The x axis spans the buckets (one bucket either side), the y axes
// start at zero, so a single bucket still reads as a point in time with its count.
function drawChart(el, buckets, bucketSeconds) {
  const series = withEmptyBuckets(buckets, bucketSeconds);
  // What the canvas shows, for a screen reader (the tables below carry the numbers).
  const unit = { 60: 'minute', 3600: 'hour', 86400: 'day' }[bucketSeconds] ?? 'bucket';
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', `Views, clicks and CTR by ${unit}: ${formatCount(series.length)} ` +
    `${unit}${series.length === 1 ? '' : 's'}, ${formatTime(series[0].bucket)} to ${formatTime(series[series.length - 1].bucket)}`);
  const x = series.map((s) => Date.parse(s.bucket) / 1000);
  // No views, no CTR (as the tiles say "–"): a gap in its line, not a 0 %.
  const ctr = series.map((s) => (s.ctr === null || !s.views ? null : s.ctr * 100));
  const top = Math.max(1, ...series.map((s) => Math.max(s.views, s.clicks)));
  const topCtr = Math.max(1, ...ctr);
  const widthFor = (room) => Math.max(300, Math.min(1100, room - 16));
  const width = widthFor(el.clientWidth || document.body.clientWidth - 48);
  const percent = (v) => (v === null || v === undefined ? '--' : `${v.toFixed(1)} %`); // '--': uPlot's own blank
  // "14:00", with the date under the first tick and under midnight; the date alone for days.
  const tick = (split, i) => {
    const date = utcDate(split);
    if (bucketSeconds >= 86400) return dayLabel(date);
    const midnight = date.getHours() === 0 && date.getMinutes() === 0;
    return i === 0 || midnight ? `${timeLabel(date)}\n${dayLabel(date)}` : timeLabel(date);
  };
  const plot = new uPlot({
    width, height: 260,
    tzDate: utcDate,
    scales: {
      x: { time: true, range: () => [x[0] - bucketSeconds, x[x.length - 1] + bucketSeconds] },
      y: { range: () => [0, Math.ceil(top * 1.15)] },
      ctr: { range: () => [0, Math.ceil(topCtr * 1.15)] },
    },
    series: [{ label: 'Time', value: '{YYYY}-{MM}-{DD} {HH}:{mm} UTC' }, { label: 'Views', stroke: '#2563eb', width: 2, points: { size: 7 } },
      { label: 'Clicks', stroke: '#d97706', width: 2, points: { size: 7 } },
      { label: 'CTR', scale: 'ctr', stroke: '#059669', width: 2, dash: [6, 4], points: { size: 7 }, value: (u, v) => percent(v) }],
    // Ticks a whole number of buckets apart, far enough for a label with its date: never two
    // ticks inside one bucket, which would print the same time twice.
    axes: [{ label: 'UTC', values: (u, splits) => splits.map(tick), space: 90, incrs: tickSteps(bucketSeconds) },
      { label: 'events', size: axisSize, incrs: WHOLE_STEPS },
      { scale: 'ctr', side: 1, label: 'CTR', grid: { show: false }, size: axisSize, values: (u, splits) => splits.map((v) => `${v} %`) }],
  }, [x, series.map((s) => s.views), series.map((s) => s.clicks), ctr], el);
  // The chart follows its box when the window is resized or a phone turns.
  new ResizeObserver(() => {
    const fits = widthFor(el.clientWidth);
    if (el.isConnected && fits !== plot.width) plot.setSize({ width: fits, height: 260 });
  }).observe(el);
}

// ---- Endpoints ------------------------------------------------------------------------------

export async function endpoints(el, ctx) {
  replace(el, h('h1', {}, 'Endpoints'), loading('endpoints'));
  const list = h('div');
  // The list, read again after a registration without leaving the page: the new secret, shown
  // once, stays on screen whatever the reading does.
  const drawList = async () => {
    const endpointsNow = await ctx.get(sitePath(ctx.site, 'endpoints'));
    const stats = await Promise.all(endpointsNow.data.map((e) => ctx.get(sitePath(ctx.site, 'endpoints', e.id, 'stats'))));
    replace(list, endpointsNow.data.length === 0
      ? notice('info', 'No endpoint yet.', ctx.canChange ? 'Register a webhook URL below; its events start with the next one to come.'
        : 'Ask an administrator of this site to register one.')
      : table(['Endpoint', 'State', 'Success (24 h)', 'p50 / p99', 'Pending', 'Failed'], endpointsNow.data.map((e, i) => {
        const s = stats[i];
        return h('tr', { 'data-endpoint': e.id },
          h('td', {}, endpointCell(e, ctx.site)),
          h('td', {}, stateText(s.state)),
          h('td', { class: 'num' }, s.attempts === 0 ? '–' : formatPercent(s.successes / s.attempts)),
          h('td', { class: 'num' }, `${s.latency_ms.p50.toFixed(1)} / ${s.latency_ms.p99.toFixed(1)} ms`),
          h('td', { class: 'num' }, formatCount(s.pending)), h('td', { class: 'num' }, formatCount(s.failed)));
      })));
  };
  await drawList();
  const refresh = () => drawList().catch((error) => {
    if (!isAbort(error) && !ctx.signal.aborted) replace(list, errorNotice(error, 'endpoints'));
  });
  replace(el, h('h1', {}, 'Endpoints'), ctx.after?.text ? notice('ok', ctx.after.text) : null, list,
    ctx.canChange ? registerForm(ctx, refresh) : null);
}

// Registers an endpoint (POST …/endpoints): its URL, what it is, the events it takes; the rest
// (filter, batches, limits) is set on its page. The API's refusal (a bad URL, a private address)
// is shown as it is; the new secret is shown at once, where the result goes, then `refresh`
// reads the list again.
function registerForm(ctx, refresh) {
  const url = h('input', { type: 'url', id: 'new-url', required: true, placeholder: 'https://example.com/hooks', maxlength: 2048 });
  const description = h('input', { type: 'text', id: 'new-description', maxlength: 1000 });
  const events = ['View', 'Click', 'Dismiss'].map((name) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'new-events', value: name, checked: name !== 'Dismiss' }), ` ${name}`));
  const result = resultRegion();
  const submit = h('button', { type: 'submit' }, 'Register');
  const register = async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const chosen = events.map((label) => label.querySelector('input')).filter((box) => box.checked).map((box) => box.value);
      const made = await api.post(sitePath(ctx.site, 'endpoints'),
        { url: url.value.trim(), description: description.value, events: chosen });
      form.reset();
      result.show(h('div', { class: 'notice ok', 'data-testid': 'registered' },
        h('strong', {}, `Registered ${made.url}. Its signing secret, shown this once:`),
        h('p', {}, h('code', { 'data-testid': 'new-endpoint-secret' }, made.secret)),
        h('p', {}, 'Give it to the receiver to verify signatures with. ',
          h('a', { href: `#/s/${ctx.site}/endpoints/${made.id}` }, 'Open the endpoint →'))));
      await refresh();
    } catch (error) {
      result.show(actionError('Register', error));
    } finally {
      submit.disabled = false;
    }
  };
  const form = h('form', { class: 'edit', onsubmit: register, oninput: () => replace(result), 'aria-labelledby': 'register-h' },
    h('h2', { id: 'register-h' }, 'Register an endpoint'),
    h('label', { for: 'new-url' }, 'URL'), url,
    h('label', { for: 'new-description' }, 'Description'), description,
    h('fieldset', {}, h('legend', {}, 'Events'), events),
    h('div', {}, submit), h('div', {}, result));
  return form;
}

export async function endpoint(el, ctx) {
  const id = ctx.params[0];
  const path = (...rest) => sitePath(ctx.site, 'endpoints', id, ...rest);
  replace(el, h('h1', {}, 'Endpoint'), loading('the endpoint'));
  const [e, s, recent] = await Promise.all([ctx.get(path()), ctx.get(path('stats')),
    ctx.get(sitePath(ctx.site, 'messages') + query({ endpoint: id, limit: 20 }))]);
  // Results show right under the actions (and under Save for the settings), and take the focus.
  const result = resultRegion();
  const saved = resultRegion();
  // fn answers what to show, or null (nothing done: the focus goes back to the button); after a
  // reload the new page announces what was done.
  const act = (label, fn, className) => {
    const button = h('button', { type: 'button', class: className, onclick: async () => {
      button.disabled = true;
      let shown;
      try {
        shown = await fn();
      } catch (error) {
        shown = actionError(label, error);
      }
      button.disabled = false;
      if (!button.isConnected) return;
      if (shown) result.show(shown);
      else button.focus();
    } }, label);
    return button;
  };
  const reload = (text, at = 'actions') => ctx.rerender({ text, at });
  // An action that asks first, where results show: `what` says what it does (its element has
  // the id `whatId`), `go` (an act() button) does it. Cancel or Escape gives the focus back to
  // `opener`; neither stops what was already asked for.
  const askFirst = (opener, whatId, what, go) => {
    const cancel = () => {
      if (go.disabled) return;
      replace(result);
      opener.focus();
    };
    const ask = h('div', { class: 'notice confirm', role: 'group', 'aria-labelledby': whatId, tabindex: -1,
      onkeydown: (event) => event.key === 'Escape' && cancel() },
    what, h('div', { class: 'controls' }, go, h('button', { type: 'button', onclick: cancel }, 'Cancel')));
    replace(result, ask);
    ask.focus();
  };
  // Rotating says whether the old secrets end now (a leak); the new secret is shown once.
  const rotate = h('button', { type: 'button', onclick: () => {
    const expire = h('input', { type: 'checkbox' });
    askFirst(rotate, 'rotate-what', [h('p', { id: 'rotate-what' },
      'A new signing secret replaces this one. The old one keeps signing beside it for 24 hours, so receivers can switch over.'),
    h('label', { class: 'check' }, expire, ' End the old secrets now (use this when a secret leaked)')],
    act('Rotate', async () => {
      const r = await api.post(path('rotate-secret'), expire.checked ? { expire_previous: true } : undefined);
      return h('div', { class: 'notice ok' }, h('strong', {}, 'The new secret, shown this once:'),
        h('p', {}, h('code', { 'data-testid': 'new-secret' }, r.secret)),
        h('p', { 'data-testid': 'old-secrets' }, r.previous_secret_expires_at
          ? `The old secret signs beside it until ${formatTime(r.previous_secret_expires_at)}.` : 'The old secrets no longer sign.'));
    }));
  } }, 'Rotate secret');
  // Deleting cannot be undone: it says what becomes of the messages, then goes to the list.
  const remove = h('button', { type: 'button', class: 'danger', onclick: () => {
    askFirst(remove, 'delete-what', h('p', { id: 'delete-what' },
      'Deleting stops this endpoint\'s deliveries at once: its pending messages fail as "endpoint deleted"; ' +
      'its log stays. It cannot be undone.'),
    act('Delete', async () => {
      await api.remove(path());
      if (ctx.signal.aborted) return null;  // the person went elsewhere meanwhile
      // Replaced, not pushed: Back must not lead to the page of what is gone.
      history.replaceState(null, '', `#/s/${ctx.site}/endpoints`);
      ctx.rerender({ text: `Deleted ${e.url}.` });
      return null;
    }, 'danger'));
  } }, 'Delete endpoint');
  const since = h('input', { type: 'datetime-local', id: 'replay-since' });
  const until = h('input', { type: 'datetime-local', id: 'replay-until' });
  const replayCid = h('input', { type: 'text', id: 'replay-cid', placeholder: 'every campaign' });
  const replayRun = h('input', { type: 'text', id: 'replay-run', placeholder: 'every run' });
  const utc = (input) => (input.value ? new Date(`${input.value}Z`).toISOString() : '');
  const actions = ctx.canChange ? h('section', { 'aria-labelledby': 'actions-h' },
    h('h2', { id: 'actions-h' }, 'Actions'),
    h('div', { class: 'controls' },
      e.enabled
        ? act('Disable', async () => {
          await api.patch(path(), { enabled: false });
          reload('Disabled: nothing is sent to this endpoint until it is enabled again.');
        })
        : act('Enable', async () => {
          await api.patch(path(), { enabled: true });
          reload('Enabled: deliveries to this endpoint resume.');
        }),
      act('Send test', async () => {
        const r = await api.post(path('test'));
        const sent = `Sent as webhook-id ${r.webhook_id}.`;
        return notice(r.success ? 'ok' : 'error', r.success ? `Delivered: HTTP ${r.status_code} in ${r.latency_ms} ms.`
          : `Not delivered: ${r.error}`, r.response_body ? `${sent} The receiver said: ${r.response_body}` : sent);
      }),
      rotate, remove),
    h('form', { class: 'controls', onsubmit: (event) => event.preventDefault() },
      field('Replay from (UTC)', since), field('to', until), field('campaign', replayCid),
      field('run (reference_id)', replayRun),
      act('Replay', async () => {
        if (!since.value || !until.value) throw new ApiError(400, 'invalid', 'Give both ends of the window.');
        const body = { since: utc(since), until: utc(until) };
        if (replayCid.value.trim()) body.cid = replayCid.value.trim();
        if (replayRun.value.trim()) body.reference_id = replayRun.value.trim();
        const r = await api.post(path('replay'), body);
        return notice('ok', `Replaying ${countOf(r.replayed, 'event')} to this endpoint.`);
      })), result) : null;
  replace(el, h('p', {}, h('a', { href: `#/s/${ctx.site}/endpoints` }, '← Endpoints')),
    h('h1', {}, e.url),
    e.description ? h('p', { class: 'subtitle' }, defused(e.description)) : null,
    h('div', { class: 'tiles' },
      tile('State', STATE_TEXT[s.state] ?? s.state, 'state'), tile('Circuit', s.circuit.replace('_', ' '), 'circuit'),
      tile('Success (24 h)', s.attempts === 0 ? '–' : formatPercent(s.successes / s.attempts), 'success'),
      tile('p50 / p99', [`${s.latency_ms.p50.toFixed(1)} /`, `${s.latency_ms.p99.toFixed(1)} ms`], 'latency'),
      tile('Pending', formatCount(s.pending), 'pending'), tile('Failed', formatCount(s.failed), 'failed')),
    // Disabled by a person, it is no failure; by the delivery rules, it is.
    e.disabled_reason ? notice(e.disabled_reason === MANUAL_DISABLE ? 'info' : 'error',
      `Disabled since ${formatTime(e.disabled_at)}.`, e.disabled_reason) : null,
    h('dl', {}, h('dt', {}, 'Events'), h('dd', {}, e.events.join(', ')),
      h('dt', {}, 'Payload'), h('dd', {}, e.payload_format),
      h('dt', {}, 'Max in flight'), h('dd', {}, String(e.max_in_flight)),
      h('dt', {}, 'Rate limit'), h('dd', {}, e.rate_limit === null ? 'none' : `${e.rate_limit} /s`),
      h('dt', {}, 'Filter'), h('dd', { 'data-testid': 'filter' }, describeFilter(e.filter)),
      h('dt', {}, 'Batches'), h('dd', { 'data-testid': 'batch' }, describeBatch(e.batch))),
    actions, ctx.canChange ? editForm(e, path(), saved, reload) : null,
    h('h2', {}, 'Recent messages'), messageTable(recent.data, ctx, 'No message for this endpoint yet.'),
    recent.data.length > 0 ? h('p', {}, h('a', { href: `#/s/${ctx.site}/messages${query({ status: 'all', endpoint: id })}`,
      'data-testid': 'all-messages' }, 'All messages of this endpoint →')) : null);
  if (ctx.after) (ctx.after.at === 'save' ? saved : result).show(notice('ok', ctx.after.text));
}

// The reason the API gives an endpoint disabled through it (PATCH {"enabled": false}).
const MANUAL_DISABLE = 'disabled through the admin API';

// The fields an endpoint's filter may name (DESIGN section 3), in the payload's order.
const FILTER_FIELDS = ['cid', 'reference_id', 'utm_campaign', 'utm_content', 'utm_medium', 'utm_source', 'utm_term'];

// "cid: a, b; utm_source: mail" (at most five values a field), or what no filter means. An empty
// value (events without the field) or one with spaces at an end is shown quoted: "".
function describeFilter(filter) {
  if (!filter) return 'none: every event';
  const shown = (value) => (value === '' || value.trim() !== value ? JSON.stringify(value) : value);
  return Object.entries(filter).map(([field, values]) =>
    `${field}: ${values.slice(0, 5).map(shown).join(', ')}${values.length > 5 ? ` and ${formatCount(values.length - 5)} more` : ''}`)
    .join('; ');
}

// "up to 100 events, waiting at most 1000 ms", or what no batching means.
function describeBatch(batch) {
  if (!batch) return 'off: one event per request';
  return `up to ${formatCount(batch.max_events)} events a request, ` +
    (batch.max_wait_ms === 0 ? 'never waiting for more' : `waiting at most ${formatCount(batch.max_wait_ms)} ms for them`);
}

// What an endpoint receives and how fast: events, filter, batches, description, rate limit, max
// in flight. The API's 400 (its message names the field) is shown as it is, in `result`.
function editForm(e, path, result, reload) {
  const events = ['View', 'Click', 'Dismiss'].map((name) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'events', value: name, checked: e.events.includes(name) }), ` ${name}`));
  const description = h('input', { type: 'text', id: 'edit-description', value: e.description, maxlength: 1000 });
  // The API's range (0.001 to 1,000,000 a second): a form that refused a rate the API set could
  // save nothing else.
  const rate = h('input', { type: 'number', id: 'edit-rate', min: 0.001, max: 1000000, step: 'any',
    value: e.rate_limit ?? '', placeholder: 'no limit' });
  const inFlight = h('input', { type: 'number', id: 'edit-in-flight', min: 1, step: 1, value: e.max_in_flight });
  // Empty "events a request" turns batching off.
  const batchEvents = h('input', { type: 'number', id: 'edit-batch-events', min: 1, step: 1,
    value: e.batch?.max_events ?? '', placeholder: 'off' });
  const batchWait = h('input', { type: 'number', id: 'edit-batch-wait', min: 0, step: 1,
    value: e.batch?.max_wait_ms ?? 0 });
  // One box per field, one value per line; an empty box does not filter on that field.
  const lists = FILTER_FIELDS.map((field) => h('textarea', {
    id: `edit-filter-${field}`, name: field, rows: 2, spellcheck: 'false',
  }, (e.filter?.[field] ?? []).join('\n')));
  // A box left as it was keeps its values exactly as stored (an empty value, which takes events
  // without the field, or spaces, are not lines a box can show); an edited one is read a line a
  // value, trimmed, empty lines left out.
  const filterBody = () => {
    const filter = {};
    for (const box of lists) {
      const values = box.value === box.defaultValue ? (e.filter?.[box.name] ?? [])
        : box.value.split('\n').map((line) => line.trim()).filter((line) => line !== '');
      if (values.length > 0) filter[box.name] = values;
    }
    return Object.keys(filter).length > 0 ? filter : null;
  };
  // Only what was changed is sent (PATCH): a setting the form shows but the person did not touch
  // stays exactly as the API has it.
  const changes = () => {
    const body = {};
    const chosen = events.map((label) => label.querySelector('input')).filter((box) => box.checked).map((box) => box.value);
    if (chosen.join() !== ['View', 'Click', 'Dismiss'].filter((name) => e.events.includes(name)).join()) body.events = chosen;
    if (description.value !== e.description) body.description = description.value;
    const rateLimit = rate.value === '' ? null : Number(rate.value);
    if (rateLimit !== (e.rate_limit ?? null)) body.rate_limit = rateLimit;
    if (Number(inFlight.value) !== e.max_in_flight) body.max_in_flight = Number(inFlight.value);
    if (lists.some((box) => box.value !== box.defaultValue)) body.filter = filterBody();
    const batch = batchEvents.value === '' ? null
      : { max_events: Number(batchEvents.value), max_wait_ms: batchWait.value === '' ? 0 : Number(batchWait.value) };
    if (JSON.stringify(batch) !== JSON.stringify(e.batch ?? null)) body.batch = batch;
    return body;
  };
  const save = async (event) => {
    event.preventDefault();
    const body = changes();
    if (Object.keys(body).length === 0) {
      result.show(notice('info', 'Nothing to save: no setting was changed.'));
      return;
    }
    try {
      await api.patch(path, body);
      reload('Saved.', 'save');
    } catch (error) {
      result.show(actionError('Save', error));
    }
  };
  // A result from an earlier Save goes once the form changes: the browser's own check may stop
  // the next Save, and the old error would then seem to be about the new values.
  return h('form', { class: 'edit', onsubmit: save, oninput: () => replace(result), 'aria-labelledby': 'edit-h' },
    h('h2', { id: 'edit-h' }, 'Settings'),
    h('fieldset', {}, h('legend', {}, 'Events'), events),
    h('fieldset', { class: 'filter' }, h('legend', {}, 'Filter: only events whose fields hold one of these values'),
      h('p', { class: 'hint' }, 'One value per line. An empty box takes any value.'),
      FILTER_FIELDS.map((field, i) => h('label', {}, h('span', {}, field), lists[i]))),
    h('label', { for: 'edit-description' }, 'Description'), description,
    h('label', { for: 'edit-rate' }, 'Rate limit (requests/s)'), rate,
    h('label', { for: 'edit-in-flight' }, 'Max in flight'), inFlight,
    h('fieldset', { class: 'batch' }, h('legend', {}, 'Batches: several events in one request'),
      h('label', { for: 'edit-batch-events' }, 'Events a request (empty: one at a time)'), batchEvents,
      h('label', { for: 'edit-batch-wait' }, 'Longest wait for a batch to fill (ms)'), batchWait),
    h('div', {}, h('button', { type: 'submit' }, 'Save')), h('div', {}, result));
}

// ---- Messages -------------------------------------------------------------------------------

// `endpoints`, a Map of the site's endpoints by id, adds the column that says where each went
// (a list of one endpoint's messages leaves it out).
function messageTable(rows, ctx, empty = 'No messages here.', endpoints = null) {
  if (rows.length === 0) return notice('info', empty);
  const where = (m) => {
    const e = endpoints.get(m.endpoint_id);
    // Host and path only (the scheme is on the endpoint's page): the part that tells them apart.
    return h('td', { 'data-testid': 'message-endpoint' }, e
      ? clipped(e.description || e.url.replace(/^https?:\/\//, ''), `#/s/${ctx.site}/endpoints/${e.id}`)
      : h('span', { class: 'sub', title: m.endpoint_id }, 'a deleted endpoint'));
  };
  return table(['Message', ...(endpoints ? ['Endpoint'] : []), 'Status', 'Attempts', 'Last answer', 'Campaign', 'Title', 'Created'],
    rows.map((m) => h('tr', { 'data-message': m.id },
      h('td', {}, clipped(m.id, `#/s/${ctx.site}/messages/${m.id}`)), endpoints ? where(m) : null,
      h('td', {}, h('span', { class: `state ${m.status}` }, m.status)), h('td', { class: 'num' }, String(m.attempts)),
      h('td', {}, clipped(m.last_status_code ? `HTTP ${m.last_status_code}` : m.last_error || '')),
      h('td', {}, clipped(m.event?.cid ?? '')), h('td', { class: 'title' }, clipped(m.event?.notification_title ?? '')),
      h('td', {}, formatTime(m.created_at)))));
}

// The messages of a batch: every status, since its members may have ended differently.
function batchLink(site, batch) {
  return h('a', { href: `#/s/${site}/messages${query({ status: 'all', batch })}` }, batch);
}

// Finds what a receiver logged by its webhook-id: a message's page, or a batch's messages.
function webhookIdFinder(ctx) {
  const id = h('input', { type: 'search', id: 'find-webhook-id', placeholder: 'msg_… or bat_…', maxlength: 64 });
  const why = h('span', { class: 'hint', role: 'status' });
  const find = (event) => {
    event.preventDefault();
    const text = id.value.trim();
    if (/^(msg|bat)_test_/.test(text)) {
      why.textContent = 'That is a test send (Send test): it is not kept in the message log.';
    } else if (/^msg_[A-Za-z0-9]+$/.test(text)) {
      location.hash = `#/s/${ctx.site}/messages/${text}`;
    } else if (/^bat_[A-Za-z0-9]+$/.test(text)) {
      location.hash = `#/s/${ctx.site}/messages${query({ status: 'all', batch: text })}`;
    } else {
      why.textContent = 'A webhook-id starts with msg_ (one message) or bat_ (a batch).';
    }
  };
  return h('form', { class: 'find', onsubmit: find, oninput: () => { why.textContent = ''; } },
    field('Webhook-id', id), h('button', { type: 'submit' }, 'Find'), why);
}

// The status shown is in the URL (#/s/<site>/messages?status=pending; none: failed), so a reload
// keeps it and Back goes to the one chosen before; so are an endpoint, a campaign and a batch to
// show only theirs (?endpoint=…, ?cid=…, ?batch=…: the endpoint and message pages link here).
export async function messages(el, ctx) {
  const chosen = ctx.query.get('status') ?? 'failed';
  const only = {
    endpoint: ctx.query.get('endpoint') || null, cid: ctx.query.get('cid') || null, batch: ctx.query.get('batch') || null,
  };
  const status = h('select', { id: 'message-status' },
    ['failed', 'pending', 'delivered', 'all'].map((value) => h('option', { value, selected: value === chosen }, value)));
  const list = h('div');
  // Shown once a page says another follows: a click before the first page is in would load it
  // twice.
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;
  let rows = [];
  // The site's endpoints, read with the first page (and again with a new status), to name
  // where each message went.
  let endpointList = null;
  const endpointsById = async () => {
    endpointList ??= api.get(sitePath(ctx.site, 'endpoints'), { signal })
      .then((r) => new Map(r.data.map((e) => [e.id, e])));
    return endpointList;
  };
  // A change of status aborts what an older one still waits for.
  const fresh = newestOnly(ctx.signal);
  let signal = null;
  const load = async (reset) => {
    if (reset) {
      cursor = null;
      rows = [];
      signal = fresh();
      endpointList = null;
      more.hidden = true;
      replace(list, loading('messages'));
    }
    more.disabled = true;
    const [page, names] = await Promise.all([api.get(sitePath(ctx.site, 'messages') +
      query({ status: status.value === 'all' ? null : status.value, limit: 50, cursor, ...only }), { signal }),
    only.endpoint ? null : endpointsById()]);
    rows = rows.concat(page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    const which = status.value === 'all' ? 'messages' : `${status.value} messages`;
    replace(list, messageTable(rows, ctx, `No ${which}${only.endpoint || only.cid || only.batch ? ' of this filter' : ''}.`, names));
  };
  const fail = (e) => {
    if (!isAbort(e)) replace(list, errorNotice(e, 'messages'));
  };
  // A new history entry without a new page: the select keeps the focus while the list reloads.
  status.addEventListener('change', () => {
    history.pushState(null, '', `#/s/${ctx.site}/messages${query({ status: status.value, ...only })}`);
    load(true).catch(fail);
  });
  more.addEventListener('click', () => {
    const first = rows.length;
    load(false).then(() => focusRow(list, first), fail).finally(() => { more.disabled = false; });
  });
  // Which endpoint or campaign the list keeps to, and the way back to every message (of the
  // status chosen now).
  const everyMessage = h('a', { href: `#/s/${ctx.site}/messages${query({ status: chosen })}` }, 'every message');
  status.addEventListener('change', () => everyMessage.setAttribute('href', `#/s/${ctx.site}/messages${query({ status: status.value })}`));
  const kept = [
    only.endpoint ? ['endpoint ', h('a', { href: `#/s/${ctx.site}/endpoints/${encodeURIComponent(only.endpoint)}` }, only.endpoint)] : null,
    only.cid ? `campaign ${defused(only.cid)}` : null,
    only.batch ? `batch ${only.batch}` : null,
  ].filter(Boolean);
  const filtered = kept.length === 0 ? null : h('p', { 'data-testid': 'message-filter' },
    'Only ', kept.flatMap((part, i) => (i === 0 ? [part] : [', ', part])), ' · ', everyMessage);
  replace(el, h('h1', {}, 'Messages'), filtered,
    h('div', { class: 'controls' }, field('Status', status), webhookIdFinder(ctx)), list, more);
  await load(true);
}

export async function message(el, ctx) {
  const id = ctx.params[0];
  const path = (...rest) => sitePath(ctx.site, 'messages', id, ...rest);
  replace(el, h('h1', {}, `Message ${id}`), loading('the message'));
  const [m, attempts] = await Promise.all([ctx.get(path()), ctx.get(path('attempts'))]);
  const result = resultRegion();
  // The page is read again a second later, for the new attempt; it says what was done.
  const redeliver = ctx.canChange ? h('button', { type: 'button', onclick: async (event) => {
    event.target.disabled = true;
    try {
      await api.post(path('redeliver'));
      // Queued, not sent: its endpoint may be at its max_in_flight or rate limit; the page read
      // again shows the attempt, or says when it is due.
      setTimeout(() => ctx.rerender({ text: 'Queued to go again: its next attempt is listed below once it is made.' }), 1000);
    } catch (error) {
      event.target.disabled = false;
      result.show(actionError('Redeliver', error));
    }
  } }, 'Redeliver') : null;
  // The request of its latest attempt; the message's own batch_id names the batch it went in
  // even once it has gone alone since.
  const last = attempts.data.at(-1);
  const lastSentIn = !last ? 'not sent yet' : last.batch_id ? ['batch ', batchLink(ctx.site, last.batch_id)] : 'a request of its own';
  // A pending message's next attempt: at a time, or when its endpoint is enabled again.
  const next = m.status !== 'pending' ? null
    : m.next_attempt_at ? formatTime(m.next_attempt_at) : 'once its endpoint is enabled again';
  replace(el, h('p', {}, h('a', { href: `#/s/${ctx.site}/messages` }, '← Messages')),
    h('h1', {}, `Message ${id}`),
    h('dl', {}, h('dt', {}, 'Status'),
      h('dd', {}, h('span', { class: `state ${m.status}`, 'data-testid': 'message-status' }, m.status)),
      next ? [h('dt', {}, 'Next attempt'), h('dd', { 'data-testid': 'next-attempt' }, next)] : null,
      h('dt', {}, 'Endpoint'), h('dd', {}, h('a', { href: `#/s/${ctx.site}/endpoints/${m.endpoint_id}` }, m.endpoint_id)),
      h('dt', {}, 'Created'), h('dd', {}, formatTime(m.created_at)),
      h('dt', {}, 'Last sent in'), h('dd', { 'data-testid': 'message-batch' }, lastSentIn)),
    h('div', { class: 'controls' }, redeliver), result,
    h('h2', {}, 'Event'), h('pre', { class: 'event' }, defused(JSON.stringify(m.event, null, 2))),
    h('h2', {}, 'Attempts'),
    attempts.data.length === 0 ? notice('info', 'No attempt yet.') : attemptTable(attempts.data, ctx.site));
  if (ctx.after) result.show(notice('ok', ctx.after.text));
}

// A message's attempts; which request each went in only where one went in a batch. The answer
// and its error come first (on a phone they are what the row is for); an error that only repeats
// the status ("HTTP 500") is not said twice; a long answer body scrolls in its own box.
function attemptTable(attempts, site) {
  const batched = attempts.some((a) => a.batch_id);
  return table(['#', 'At', 'Answer', 'Error', 'Latency', ...(batched ? ['Sent in'] : []), 'Response'],
    attempts.map((a) => h('tr', {},
      h('td', {}, String(a.attempt)), h('td', {}, formatTime(a.at)),
      h('td', {}, a.status_code ? `HTTP ${a.status_code}` : '–'),
      h('td', { class: 'text' }, a.error === `HTTP ${a.status_code}` ? '' : defused(a.error)),
      h('td', { class: 'num' }, `${Number(a.latency_ms).toFixed(1)} ms`),
      batched ? h('td', { 'data-testid': 'attempt-batch' }, a.batch_id ? ['batch ', batchLink(site, a.batch_id)] : 'alone') : null,
      h('td', { class: 'text' }, a.response_body ? h('div', { class: 'response' }, h('code', {}, defused(a.response_body))) : ''))));
}
