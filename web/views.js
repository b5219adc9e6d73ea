// One function per view. Each gets the view's element, the context ({site, who, canChange,
// params, every}) and fills the element from the API; numbers are the API's, never recomputed
// differently. Event text goes in as text (dom.js).

import { api, ApiError, query, sitePath } from '/assets/api.js';
import { formatCount, formatPercent, formatTime, h, loading, notice, replace } from '/assets/dom.js';
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

function tile(label, value, testId) {
  return h('div', { class: 'tile' }, h('span', { class: 'label' }, label),
    h('span', { class: 'value', 'data-testid': testId }, value));
}

// Headers whose column holds numbers are right-aligned over them.
const NUMERIC = new Set(['Views', 'Clicks', 'CTR', 'Dismissals', 'Unique subscribers', 'Attempts', 'Latency', 'Pending', 'Failed',
  'Failed messages', 'Success (24 h)', 'p50 / p99']);

function table(headers, rows, { caption } = {}) {
  const numeric = (x) => NUMERIC.has(typeof x === 'string' ? x : x.dataset?.label);
  return h('table', {}, caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col', class: numeric(x) ? 'num' : null }, x)))),
    h('tbody', {}, rows));
}

// ---- Overview -------------------------------------------------------------------------------

// The site's totals and the endpoints that need attention, refreshed every 10 s; the server's
// rates (operator only) every 5 s.
export async function overview(el, ctx) {
  replace(el, h('h1', {}, 'Overview'), loading('the overview'));
  const site = h('div');
  const server = h('section', { 'aria-labelledby': 'server-h' });
  const draw = async () => {
    const [stats, endpoints, failed] = await Promise.all([
      api.get(sitePath(ctx.site, 'stats')),
      api.get(sitePath(ctx.site, 'endpoints')),
      api.get(sitePath(ctx.site, 'messages') + query({ status: 'failed', limit: 100 })),
    ]);
    const health = await Promise.all(endpoints.data.map((e) =>
      api.get(sitePath(ctx.site, 'endpoints', e.id, 'stats')).then((s) => ({ endpoint: e, stats: s }))));
    const failing = health.filter(({ stats }) => stats.state !== 'enabled' || stats.circuit !== 'closed' || stats.failed > 0);
    const t = stats.totals;
    replace(site,
      h('div', { class: 'tiles' },
        tile('Views', formatCount(t.views), 'site-views'),
        tile('Clicks', formatCount(t.clicks), 'site-clicks'),
        tile('CTR', formatPercent(t.ctr), 'site-ctr'),
        tile('Dismissals', formatCount(t.dismissals), 'site-dismissals'),
        tile('Unique subscribers', formatCount(t.unique_subscribers), 'site-unique'),
        tile('Failed messages', failed.data.length >= 100 ? '100+' : formatCount(failed.data.length), 'failed-messages')),
      h('h2', {}, 'Endpoints that need attention'),
      endpoints.data.length === 0
        ? notice('info', 'No endpoint yet.', 'Register a webhook URL under Endpoints to start deliveries.')
        : failing.length === 0
          ? notice('ok', `All ${endpoints.data.length} endpoint(s) are healthy.`)
          : table(['Endpoint', 'State', 'Circuit', 'Failed messages', 'Why'], failing.map(({ endpoint, stats }) =>
            h('tr', {}, h('td', {}, h('a', { href: `#/s/${ctx.site}/endpoints/${endpoint.id}` }, endpoint.url)),
              h('td', {}, stats.state), h('td', {}, stats.circuit), h('td', { class: 'num' }, formatCount(stats.failed)),
              h('td', {}, endpoint.disabled_reason ?? '')))));
  };
  await draw();
  replace(el, h('h1', {}, 'Overview'), site, ctx.who.token === 'operator' ? server : null);
  ctx.every(10_000, draw);
  if (ctx.who.token === 'operator') await serverRates(server, ctx);
}

// Server-wide rates from /metrics (operator only: they span every site), refreshed every 5 s.
async function serverRates(section, ctx) {
  let previous = null;
  const draw = async () => {
    let text;
    try {
      const response = await fetch('/metrics', { cache: 'no-store' });
      text = await response.text();
    } catch {
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
    const rate = (key) => (previous ? ((now[key] - previous[key]) * 1000) / (now.at - previous.at) : null);
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
const CAMPAIGN_COLUMNS = [
  ['Campaign', 'cid', (c, site) => h('a', { href: `#/s/${site}/campaigns/${encodeURIComponent(c.cid)}` }, c.cid)],
  ['Title', null, (c) => c.title],
  ['Views', 'views', (c) => formatCount(c.views)],
  ['Clicks', 'clicks', (c) => formatCount(c.clicks)],
  ['CTR', 'ctr', (c) => formatPercent(c.ctr)],
  ['Dismissals', 'dismissals', (c) => formatCount(c.dismissals)],
  ['Unique subscribers', null, (c) => formatCount(c.unique_subscribers)],
  ['Last activity', 'last_active', (c) => formatTime(c.last_active_at)],
];
const PAGE = 50;

export async function campaigns(el, ctx) {
  replace(el, h('h1', {}, 'Campaigns'), loading('campaigns'));
  const state = { rows: [], cursor: null, sort: 'last_active', order: 'desc', q: '', generation: 0 };
  const body = h('div');
  const more = h('button', { type: 'button', onclick: () => load().catch(showError) }, 'Load more');
  let typing = null;
  const search = h('input', {
    type: 'search', id: 'campaign-search', placeholder: 'cid or title contains…', maxlength: 256,
    oninput: () => {
      clearTimeout(typing);
      typing = setTimeout(() => restart({ q: search.value.trim() }), 250);
    },
  });
  const showError = (error) => replace(body, errorNotice(error, 'campaigns'));
  // Loads the next page; an answer to a list that has since changed (a newer search or sort) is
  // dropped.
  const load = async () => {
    const generation = state.generation;
    more.disabled = true;
    const page = await api.get(sitePath(ctx.site, 'campaigns') + query({
      limit: PAGE, cursor: state.cursor, sort: state.sort, order: state.order, q: state.q || null,
    }));
    if (generation !== state.generation) return;
    state.rows.push(...page.data);
    state.cursor = page.next_cursor;
    render();
  };
  const restart = (changes) => {
    Object.assign(state, changes, { rows: [], cursor: null, generation: state.generation + 1 });
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
        'aria-sort': active ? (state.order === 'desc' ? 'descending' : 'ascending') : null,
        onclick: () => restart({ sort, order: active ? (state.order === 'desc' ? 'asc' : 'desc') : firstOrder }),
      }, label, active ? (state.order === 'desc' ? ' ↓' : ' ↑') : '');
    });
    const caption = `${formatCount(state.rows.length)} campaign(s)${state.q ? ` whose id or title contains “${state.q}”` : ''}` +
      (state.cursor ? ', more below' : '');
    replace(body, table(header, state.rows.map((c) => h('tr', { 'data-cid': c.cid },
      CAMPAIGN_COLUMNS.map(([label, , cell]) =>
        h('td', { class: label === 'Title' ? 'title' : NUMERIC.has(label) ? 'num' : null }, cell(c, ctx.site))))),
    { caption }));
  };
  await load();
  replace(el, h('h1', {}, 'Campaigns'), h('label', { for: 'campaign-search' }, 'Search '), search, body, more);
}

export async function campaign(el, ctx) {
  const cid = ctx.params[0];
  replace(el, h('h1', {}, `Campaign ${cid}`), loading('the campaign'));
  const bucket = h('select', { id: 'bucket' }, ['minute', 'hour', 'day'].map((b) => h('option', { value: b, selected: b === 'hour' }, b)));
  const groupBy = h('select', { id: 'group-by' },
    ['reference_id', ...UTM_FIELDS].map((g) => h('option', { value: g }, g)));
  const csv = h('button', { type: 'button', onclick: () => download().catch((e) => alert(e.message)) }, 'Download CSV');
  const content = h('div');
  const draw = async () => {
    const base = { cid, bucket: bucket.value };
    const [series, groups] = await Promise.all([
      api.get(sitePath(ctx.site, 'stats') + query(base)),
      api.get(sitePath(ctx.site, 'stats') + query({ cid, group_by: groupBy.value })),
    ]);
    const t = series.totals;
    const chart = h('div', { class: 'chart', 'data-testid': 'chart' });
    replace(content,
      h('div', { class: 'tiles' },
        tile('Views', formatCount(t.views), 'views'), tile('Clicks', formatCount(t.clicks), 'clicks'),
        tile('CTR', formatPercent(t.ctr), 'ctr'), tile('Dismissals', formatCount(t.dismissals), 'dismissals'),
        tile('Unique subscribers', `${formatCount(t.unique_subscribers)} (±${(t.unique_subscribers_error * 100).toFixed(1)} %)`, 'unique')),
      h('h2', {}, 'Over time'), series.series.length === 0 ? notice('info', 'No events in this window.') : chart,
      h('h2', {}, 'Clicks by button'),
      table(['Button', 'Clicks'], ['0', '1', '2'].map((b) => h('tr', {},
        h('td', {}, b === '0' ? 'the notification itself' : `button ${b}`),
        h('td', { class: 'num', 'data-testid': `button-${b}` }, formatCount(t.clicks_by_button[b]))))),
      h('h2', {}, `By ${groupBy.value}`),
      groups.groups.length === 0 ? notice('info', 'Nothing to group yet.') :
        table([groupBy.value, 'Views', 'Clicks', 'CTR', 'Dismissals'], groups.groups.map((g) => h('tr', {},
          h('td', {}, g.key === '' ? '(none)' : g.key), h('td', { class: 'num' }, formatCount(g.views)),
          h('td', { class: 'num' }, formatCount(g.clicks)), h('td', { class: 'num' }, formatPercent(g.ctr)),
          h('td', { class: 'num' }, formatCount(g.dismissals))))));
    if (series.series.length > 0) drawChart(chart, series.series, BUCKET_SECONDS[bucket.value]);
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
  const redraw = () => draw().catch((e) => replace(content, errorNotice(e, 'campaign statistics')));
  bucket.addEventListener('change', redraw);
  groupBy.addEventListener('change', redraw);
  await draw();
  replace(el, h('p', {}, h('a', { href: `#/s/${ctx.site}/campaigns` }, '← Campaigns')),
    h('h1', {}, `Campaign ${cid}`),
    h('div', { class: 'controls' }, h('label', { for: 'bucket' }, 'Bucket '), bucket,
      h('label', { for: 'group-by' }, 'Group by '), groupBy, csv),
    content);
}

const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };

// Views and clicks per bucket; the x axis spans the buckets (one bucket either side), the y axis
// starts at zero, so a single bucket still reads as a point in time with its count.
function drawChart(el, series, bucketSeconds) {
  const x = series.map((s) => Date.parse(s.bucket) / 1000);
  const top = Math.max(1, ...series.map((s) => Math.max(s.views, s.clicks)));
  const width = Math.max(300, Math.min(1100, el.parentElement?.clientWidth || document.body.clientWidth - 48));
  // eslint-disable-next-line no-new
  new uPlot({
    width, height: 260,
    scales: {
      x: { time: true, range: () => [x[0] - bucketSeconds, x[x.length - 1] + bucketSeconds] },
      y: { range: () => [0, Math.ceil(top * 1.15)] },
    },
    series: [{}, { label: 'Views', stroke: '#2563eb', width: 2, points: { size: 7 } },
      { label: 'Clicks', stroke: '#d97706', width: 2, points: { size: 7 } }],
    axes: [{}, { label: 'events' }],
  }, [x, series.map((s) => s.views), series.map((s) => s.clicks)], el);
}

// ---- Endpoints ------------------------------------------------------------------------------

export async function endpoints(el, ctx) {
  replace(el, h('h1', {}, 'Endpoints'), loading('endpoints'));
  const list = await api.get(sitePath(ctx.site, 'endpoints'));
  const stats = await Promise.all(list.data.map((e) => api.get(sitePath(ctx.site, 'endpoints', e.id, 'stats'))));
  replace(el, h('h1', {}, 'Endpoints'), list.data.length === 0
    ? notice('info', 'No endpoint yet.', ctx.canChange
      ? 'Register one with POST /v1/sites/{site}/endpoints {"url": …} (see the README), then it appears here.'
      : 'Ask an administrator of this site to register one.')
    : table(['URL', 'State', 'Circuit', 'Success (24 h)', 'p50 / p99', 'Pending', 'Failed'], list.data.map((e, i) => {
      const s = stats[i];
      return h('tr', { 'data-endpoint': e.id },
        h('td', {}, h('a', { href: `#/s/${ctx.site}/endpoints/${e.id}` }, e.url)),
        h('td', {}, h('span', { class: `state ${s.state}` }, s.state)), h('td', {}, s.circuit),
        h('td', { class: 'num' }, s.attempts === 0 ? '–' : formatPercent(s.successes / s.attempts)),
        h('td', { class: 'num' }, `${s.latency_ms.p50.toFixed(1)} / ${s.latency_ms.p99.toFixed(1)} ms`),
        h('td', { class: 'num' }, formatCount(s.pending)), h('td', { class: 'num' }, formatCount(s.failed)));
    })));
}

export async function endpoint(el, ctx) {
  const id = ctx.params[0];
  const path = (...rest) => sitePath(ctx.site, 'endpoints', id, ...rest);
  replace(el, h('h1', {}, 'Endpoint'), loading('the endpoint'));
  const [e, s, recent] = await Promise.all([api.get(path()), api.get(path('stats')),
    api.get(sitePath(ctx.site, 'messages') + query({ endpoint: id, limit: 20 }))]);
  const result = h('div', { 'aria-live': 'polite', class: 'result' });
  const act = (label, fn) => h('button', { type: 'button', onclick: async (event) => {
    event.target.disabled = true;
    try {
      await fn();
    } catch (error) {
      replace(result, errorNotice(error, 'endpoint'));
    } finally {
      event.target.disabled = false;
    }
  } }, label);
  const reload = () => ctx.rerender();
  const since = h('input', { type: 'datetime-local', id: 'replay-since' });
  const until = h('input', { type: 'datetime-local', id: 'replay-until' });
  const replayCid = h('input', { type: 'text', id: 'replay-cid', placeholder: 'every campaign' });
  const utc = (input) => (input.value ? new Date(`${input.value}Z`).toISOString() : '');
  const actions = ctx.canChange ? h('section', { 'aria-labelledby': 'actions-h' },
    h('h2', { id: 'actions-h' }, 'Actions'),
    h('div', { class: 'controls' },
      e.enabled
        ? act('Disable', async () => { await api.patch(path(), { enabled: false }); reload(); })
        : act('Enable', async () => { await api.patch(path(), { enabled: true }); reload(); }),
      act('Send test', async () => {
        const r = await api.post(path('test'));
        replace(result, notice(r.success ? 'ok' : 'error', r.success ? `Delivered: HTTP ${r.status_code} in ${r.latency_ms} ms.`
          : `Not delivered: ${r.error}`, r.response_body ? `The receiver said: ${r.response_body}` : null));
      }),
      act('Rotate secret', async () => {
        if (!confirm('Make a new signing secret? The old one keeps signing beside it for 24 hours.')) return;
        const r = await api.post(path('rotate-secret'));
        replace(result, h('div', { class: 'notice ok', role: 'status' }, h('strong', {}, 'The new secret, shown this once:'),
          h('p', {}, h('code', { 'data-testid': 'new-secret' }, r.secret))));
      })),
    h('form', { class: 'controls', onsubmit: (event) => event.preventDefault() },
      h('label', { for: 'replay-since' }, 'Replay from (UTC) '), since,
      h('label', { for: 'replay-until' }, ' to '), until,
      h('label', { for: 'replay-cid' }, ' campaign '), replayCid,
      act('Replay', async () => {
        if (!since.value || !until.value) throw new ApiError(400, 'invalid', 'Give both ends of the window.');
        const body = { since: utc(since), until: utc(until) };
        if (replayCid.value.trim()) body.cid = replayCid.value.trim();
        const r = await api.post(path('replay'), body);
        replace(result, notice('ok', `Replaying ${formatCount(r.replayed)} event(s) to this endpoint.`));
      }))) : null;
  replace(el, h('p', {}, h('a', { href: `#/s/${ctx.site}/endpoints` }, '← Endpoints')),
    h('h1', {}, e.url),
    e.description ? h('p', {}, e.description) : null,
    h('div', { class: 'tiles' },
      tile('State', s.state, 'state'), tile('Circuit', s.circuit, 'circuit'),
      tile('Success (24 h)', s.attempts === 0 ? '–' : formatPercent(s.successes / s.attempts), 'success'),
      tile('p50 / p99', `${s.latency_ms.p50.toFixed(1)} / ${s.latency_ms.p99.toFixed(1)} ms`, 'latency'),
      tile('Pending', formatCount(s.pending), 'pending'), tile('Failed', formatCount(s.failed), 'failed')),
    e.disabled_reason ? notice('error', `Disabled since ${formatTime(e.disabled_at)}.`, e.disabled_reason) : null,
    h('dl', {}, h('dt', {}, 'Events'), h('dd', {}, e.events.join(', ')),
      h('dt', {}, 'Payload'), h('dd', {}, e.payload_format),
      h('dt', {}, 'Max in flight'), h('dd', {}, String(e.max_in_flight)),
      h('dt', {}, 'Rate limit'), h('dd', {}, e.rate_limit === null ? 'none' : `${e.rate_limit} /s`),
      h('dt', {}, 'Filter'), h('dd', { 'data-testid': 'filter' }, describeFilter(e.filter)),
      h('dt', {}, 'Batches'), h('dd', { 'data-testid': 'batch' }, describeBatch(e.batch))),
    actions, ctx.canChange ? editForm(e, path(), result, reload) : null, result,
    h('h2', {}, 'Recent messages'), messageTable(recent.data, ctx));
}

// The fields an endpoint's filter may name (DESIGN section 3), in the payload's order.
const FILTER_FIELDS = ['cid', 'reference_id', 'utm_campaign', 'utm_content', 'utm_medium', 'utm_source', 'utm_term'];

// "cid: a, b; utm_source: mail" (at most five values a field), or what no filter means.
function describeFilter(filter) {
  if (!filter) return 'none: every event';
  return Object.entries(filter).map(([field, values]) =>
    `${field}: ${values.slice(0, 5).join(', ')}${values.length > 5 ? ` and ${formatCount(values.length - 5)} more` : ''}`)
    .join('; ');
}

// "up to 100 events, waiting at most 1000 ms", or what no batching means.
function describeBatch(batch) {
  if (!batch) return 'off: one event per request';
  return `up to ${formatCount(batch.max_events)} events a request, ` +
    (batch.max_wait_ms === 0 ? 'never waiting for more' : `waiting at most ${formatCount(batch.max_wait_ms)} ms for them`);
}

// What an endpoint receives and how fast: events, filter, batches, description, rate limit, max
// in flight. The API's 400 (its message names the field) is shown as it is.
function editForm(e, path, result, reload) {
  const events = ['View', 'Click', 'Dismiss'].map((name) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'events', value: name, checked: e.events.includes(name) }), ` ${name}`));
  const description = h('input', { type: 'text', id: 'edit-description', value: e.description, maxlength: 1000 });
  const rate = h('input', { type: 'number', id: 'edit-rate', min: 1, step: 'any', value: e.rate_limit ?? '',
    placeholder: 'no limit' });
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
  const filterBody = () => {
    const filter = {};
    for (const box of lists) {
      const values = box.value.split('\n').map((line) => line.trim()).filter((line) => line !== '');
      if (values.length > 0) filter[box.name] = values;
    }
    return Object.keys(filter).length > 0 ? filter : null;
  };
  const save = async (event) => {
    event.preventDefault();
    const body = {
      events: events.map((label) => label.querySelector('input')).filter((box) => box.checked).map((box) => box.value),
      description: description.value,
      rate_limit: rate.value === '' ? null : Number(rate.value),
      max_in_flight: Number(inFlight.value),
      filter: filterBody(),
      batch: batchEvents.value === '' ? null
        : { max_events: Number(batchEvents.value), max_wait_ms: batchWait.value === '' ? 0 : Number(batchWait.value) },
    };
    try {
      await api.patch(path, body);
      reload();
    } catch (error) {
      replace(result, errorNotice(error, 'endpoint'));
    }
  };
  return h('form', { class: 'edit', onsubmit: save, 'aria-labelledby': 'edit-h' },
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
    h('div', {}, h('button', { type: 'submit' }, 'Save')));
}

// ---- Messages -------------------------------------------------------------------------------

function messageTable(rows, ctx) {
  if (rows.length === 0) return notice('info', 'No messages here.');
  return table(['Message', 'Status', 'Attempts', 'Last answer', 'Campaign', 'Title', 'Created'], rows.map((m) =>
    h('tr', { 'data-message': m.id },
      h('td', {}, h('a', { href: `#/s/${ctx.site}/messages/${m.id}` }, m.id)),
      h('td', {}, h('span', { class: `state ${m.status}` }, m.status)), h('td', { class: 'num' }, String(m.attempts)),
      h('td', { class: 'text' }, m.last_status_code ? `HTTP ${m.last_status_code}` : m.last_error || ''),
      h('td', {}, m.event?.cid ?? ''), h('td', { class: 'title' }, m.event?.notification_title ?? ''),
      h('td', {}, formatTime(m.created_at)))));
}

export async function messages(el, ctx) {
  const status = h('select', { id: 'message-status' },
    [['failed', 'failed'], ['pending', 'pending'], ['delivered', 'delivered'], ['', 'all']].map(([value, label]) =>
      h('option', { value, selected: value === (ctx.query.get('status') ?? 'failed') }, label)));
  const list = h('div');
  const more = h('button', { type: 'button' }, 'Load more');
  let cursor = null;
  let rows = [];
  const load = async (reset) => {
    if (reset) {
      cursor = null;
      rows = [];
      replace(list, loading('messages'));
    }
    const page = await api.get(sitePath(ctx.site, 'messages') + query({ status: status.value, limit: 50, cursor }));
    rows = rows.concat(page.data);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    replace(list, messageTable(rows, ctx));
  };
  const fail = (e) => replace(list, errorNotice(e, 'messages'));
  status.addEventListener('change', () => load(true).catch(fail));
  more.addEventListener('click', () => load(false).catch(fail));
  replace(el, h('h1', {}, 'Messages'), h('div', { class: 'controls' }, h('label', { for: 'message-status' }, 'Status '), status), list, more);
  await load(true);
}

export async function message(el, ctx) {
  const id = ctx.params[0];
  const path = (...rest) => sitePath(ctx.site, 'messages', id, ...rest);
  replace(el, h('h1', {}, `Message ${id}`), loading('the message'));
  const [m, attempts] = await Promise.all([api.get(path()), api.get(path('attempts'))]);
  const result = h('div', { 'aria-live': 'polite' });
  const redeliver = ctx.canChange ? h('button', { type: 'button', onclick: async () => {
    try {
      await api.post(path('redeliver'));
      replace(result, notice('ok', 'Sent again: the new attempt appears below in a moment.'));
      setTimeout(() => ctx.rerender(), 1000);
    } catch (error) {
      replace(result, errorNotice(error, 'message'));
    }
  } }, 'Redeliver') : null;
  replace(el, h('p', {}, h('a', { href: `#/s/${ctx.site}/messages` }, '← Messages')),
    h('h1', {}, `Message ${id}`),
    h('dl', {}, h('dt', {}, 'Status'), h('dd', { 'data-testid': 'message-status' }, m.status),
      h('dt', {}, 'Endpoint'), h('dd', {}, h('a', { href: `#/s/${ctx.site}/endpoints/${m.endpoint_id}` }, m.endpoint_id)),
      h('dt', {}, 'Created'), h('dd', {}, formatTime(m.created_at)),
      h('dt', {}, 'Sent in'), h('dd', { 'data-testid': 'message-batch' }, m.batch_id ? `batch ${m.batch_id}` : 'a request of its own')),
    h('div', { class: 'controls' }, redeliver), result,
    h('h2', {}, 'Event'), h('pre', { class: 'event' }, JSON.stringify(m.event, null, 2)),
    h('h2', {}, 'Attempts'),
    attempts.data.length === 0 ? notice('info', 'No attempt yet.') :
      table(['#', 'At', 'Answer', 'Latency', 'Error', 'Response'], attempts.data.map((a) => h('tr', {},
        h('td', {}, String(a.attempt)), h('td', {}, formatTime(a.at)),
        h('td', {}, a.status_code ? `HTTP ${a.status_code}` : '–'), h('td', { class: 'num' }, `${a.latency_ms} ms`),
        h('td', { class: 'text' }, a.error), h('td', { class: 'text' }, h('code', {}, a.response_body))))));
}
