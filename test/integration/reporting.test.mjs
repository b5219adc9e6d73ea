// DESIGN section 6 (issue 5): campaign reporting. Every number that `GET /v1/sites/{site}/stats`
// and `/campaigns` answer is compared with a count made here, independently, from the events the
// test posted (test/helpers/reporting_model.mjs), never from the server's aggregates:
//   - property test: seeded random streams (duplicates, bucket edges, UTMs absent or not) posted
//     over HTTP, then many random queries, JSON and CSV (RFC 4180, parsed strictly);
//   - scope: a site token reads its own site only; no token is 401;
//   - campaigns: most recently active first (by arrival), cursor paging covers each once;
//   - crash consistency: kill -9 during ingest, three times; after the restart the statistics
//     equal a recount of the rows in the database (read with the sqlite3 CLI), and every
//     acknowledged event is among them;
//   - `pushhook stats` prints the totals (exit 0), and exits 2 without a token.
//
// Seeded: PUSHHOOK_REPORTING_SEED=<n> replays a run (the seed is printed); the default is fixed so
// that a run is deterministic. PUSHHOOK_REPORTING_ROUNDS changes the number of rounds (default 3).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expectStatus, itest, request, sleep, stop, waitFor } from '../helpers/harness.mjs';
import { parseCsv } from '../helpers/csv.mjs';
import {
  DAY_MS, GROUP_BYS, HOUR_MS, MINUTE_MS, ctr, dedupe, diffStats, encodeEvent, encodeTime,
  expectedCampaigns, expectedStats, floorTo, generateStream, makeRng, planRequests, seedFromEnv,
  statsQueryString,
} from '../helpers/reporting_model.mjs';

const SEED = seedFromEnv('PUSHHOOK_REPORTING_SEED', 20261127);
const ROUNDS = Number(process.env.PUSHHOOK_REPORTING_ROUNDS ?? 3);
const QUERIES_PER_ROUND = 40; // random ones, besides the fixed edge cases
const run = promisify(execFile);

console.log(`reporting.test.mjs: seed ${SEED} (PUSHHOOK_REPORTING_SEED=${SEED} to replay)`);

// --- shared -------------------------------------------------------------------------------

const getStats = (serve, siteId, query, { token = serve.adminToken, csv = false } = {}) =>
  request(serve.baseUrl, 'GET', `/v1/sites/${encodeURIComponent(siteId)}/stats?${query}`, {
    token: token ?? undefined,
    headers: csv ? { accept: 'text/csv' } : {},
  });

const getCampaigns = (serve, siteId, params = '', token = serve.adminToken) =>
  request(serve.baseUrl, 'GET', `/v1/sites/${encodeURIComponent(siteId)}/campaigns${params}`, { token: token ?? undefined });

// All campaigns of a site, following next_cursor with pages of `limit`. Returns {items, pages}.
async function allCampaigns(serve, siteId, limit, token = serve.adminToken) {
  const items = [];
  const pages = [];
  let cursor = null;
  for (let page = 0; page < 1000; page += 1) {
    const params = new URLSearchParams({ limit: String(limit) });
    if (cursor !== null) params.set('cursor', cursor);
    const body = expectStatus(await getCampaigns(serve, siteId, `?${params}`, token), 200, `GET campaigns ?${params}`);
    assert.ok(Array.isArray(body.data), `campaigns answer has a data array: ${JSON.stringify(body).slice(0, 200)}`);
    assert.ok(body.data.length <= limit, `a page of limit ${limit} holds ${body.data.length} campaigns`);
    pages.push(body.data.length);
    items.push(...body.data);
    if (body.next_cursor === null || body.next_cursor === undefined) {
      assert.ok(body.data.length > 0 || page === 0, 'a full page before the last said that it was the last');
      return { items, pages };
    }
    assert.equal(typeof body.next_cursor, 'string', 'next_cursor is a string or null');
    assert.ok(body.data.length > 0, 'a page with a next_cursor is not empty');
    cursor = body.next_cursor;
  }
  throw new Error(`campaign paging with limit ${limit} did not end`);
}

// Differences between a campaigns list and the model (Map cid → counters).
function diffCampaigns(items, expected) {
  const out = [];
  const seen = new Set();
  let previous = Infinity;
  for (const c of items) {
    if (seen.has(c.cid)) out.push(`campaign ${JSON.stringify(c.cid)} listed twice`);
    seen.add(c.cid);
    const want = expected.get(c.cid);
    if (!want) {
      out.push(`campaign ${JSON.stringify(c.cid)} listed but has no stored event`);
      continue;
    }
    const where = `campaign ${JSON.stringify(c.cid)}`;
    if (c.views !== want.views) out.push(`${where}.views: expected ${want.views}, got ${c.views}`);
    if (c.clicks !== want.clicks) out.push(`${where}.clicks: expected ${want.clicks}, got ${c.clicks}`);
    if (c.dismissals !== want.dismissals) out.push(`${where}.dismissals: expected ${want.dismissals}, got ${c.dismissals}`);
    for (const b of [0, 1, 2]) {
      const got = c.clicks_by_button?.[String(b)];
      if (got !== want.b[b]) out.push(`${where}.clicks_by_button.${b}: expected ${want.b[b]}, got ${got}`);
    }
    if (c.ctr !== ctr(want.views, want.clicks)) out.push(`${where}.ctr: expected ${ctr(want.views, want.clicks)}, got ${c.ctr}`);
    const first = Date.parse(c.first_active_at);
    const last = Date.parse(c.last_active_at);
    if (Number.isNaN(first) || Number.isNaN(last) || first > last) {
      out.push(`${where}: first_active_at ${c.first_active_at} / last_active_at ${c.last_active_at} not two ordered times`);
    }
    if (last > previous) out.push(`${where}: last_active_at ${c.last_active_at} after the previous campaign's: not most recent first`);
    previous = last;
  }
  for (const cid of expected.keys()) {
    if (!seen.has(cid)) out.push(`campaign ${JSON.stringify(cid)} missing`);
  }
  return out;
}

// Differences between a CSV answer and the JSON answer to the same query.
function diffCsv(res, json, q) {
  const out = [];
  if (res.status !== 200) return [`CSV: HTTP ${res.status}: ${res.text.slice(0, 200)}`];
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/csv')) out.push(`CSV: content-type ${JSON.stringify(type)}`);
  if (!res.text.endsWith('\r\n')) out.push('CSV: the last record does not end with CRLF');
  let records;
  try {
    records = parseCsv(res.text);
  } catch (err) {
    return [...out, `CSV does not parse: ${err.message}`];
  }
  const header = [q.groupBy ?? 'bucket', 'views', 'clicks', 'clicks_button_0', 'clicks_button_1', 'clicks_button_2',
    'ctr', 'dismissals', 'unique_subscribers'];
  if (JSON.stringify(records[0]) !== JSON.stringify(header)) {
    out.push(`CSV header: expected ${JSON.stringify(header)}, got ${JSON.stringify(records[0])}`);
    return out;
  }
  const rows = records.slice(1);
  const items = q.groupBy ? json.groups : json.series;
  if (rows.length !== items.length) out.push(`CSV: ${rows.length} rows, JSON has ${items.length}`);
  const int = (where, field, value) => {
    if (field !== String(value)) out.push(`CSV ${where}: expected ${value}, got ${JSON.stringify(field)}`);
  };
  // Empty where the JSON item has none (minute buckets, button and UTM groups).
  const uniques = (where, field, value) => {
    if (field !== (value === undefined ? '' : String(value))) {
      out.push(`CSV ${where}: expected ${value ?? '""'}, got ${JSON.stringify(field)}`);
    }
  };
  const ratio = (where, field, value) => {
    const n = Number(field);
    if (!/^[0-9.eE+-]+$/.test(field) || !Number.isFinite(n) || Math.abs(n - value) > 1e-5 * Math.abs(value)) {
      out.push(`CSV ${where}: expected ${value} (to 6 digits), got ${JSON.stringify(field)}`);
    }
  };
  for (let i = 0; i < Math.min(rows.length, items.length); i += 1) {
    const row = rows[i];
    const item = items[i];
    if (q.groupBy) {
      if (row[0] !== item.key) out.push(`CSV row ${i + 1} key: expected ${JSON.stringify(item.key)}, got ${JSON.stringify(row[0])}`);
      const where = `row ${JSON.stringify(item.key)}`;
      int(`${where} views`, row[1], item.views);
      int(`${where} clicks`, row[2], item.clicks);
      for (const b of [0, 1, 2]) int(`${where} clicks_button_${b}`, row[3 + b], item.clicks_by_button?.[String(b)]);
      ratio(`${where} ctr`, row[6], item.ctr);
      int(`${where} dismissals`, row[7], item.dismissals);
      uniques(`${where} unique_subscribers`, row[8], item.unique_subscribers);
    } else {
      if (row[0] !== item.bucket) out.push(`CSV row ${i + 1} bucket: expected ${item.bucket}, got ${JSON.stringify(row[0])}`);
      const where = `row ${item.bucket}`;
      int(`${where} views`, row[1], item.views);
      int(`${where} clicks`, row[2], item.clicks);
      for (const b of [0, 1, 2]) int(`${where} clicks_button_${b}`, row[3 + b], item.clicks_by_button[String(b)]);
      ratio(`${where} ctr`, row[6], item.ctr);
      int(`${where} dismissals`, row[7], item.dismissals);
      uniques(`${where} unique_subscribers`, row[8], item.unique_subscribers);
    }
  }
  return out;
}

// Differences between the groups' clicks_by_button and the model's (diffStats compares the
// groups' views, clicks and dismissals): a button group counts its own button only.
function diffGroupButtons(json, want, q) {
  if (!q.groupBy || !Array.isArray(json?.groups)) return [];
  const out = [];
  for (const row of json.groups) {
    const n = want.groups.get(row.key);
    if (!n) continue; // diffStats names it
    const expected = q.groupBy === 'button' ? [0, 1, 2].map((b) => (String(b) === row.key ? n.clicks : 0)) : n.b;
    const got = [0, 1, 2].map((b) => row.clicks_by_button?.[String(b)]);
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      out.push(`groups[${JSON.stringify(row.key)}].clicks_by_button: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    }
  }
  return out;
}

const wholeHours = (q) => (q.fromMs === undefined || q.fromMs % HOUR_MS === 0) && (q.toMs === undefined || q.toMs % HOUR_MS === 0);

// A random stats query over the stream's cids, runs and time span.
function randomQuery(rng, stream) {
  const { base, days, cids, refs, hotEdges } = stream;
  const q = {};
  const cidChoice = rng.weighted([[4, 'none'], [5, 'one'], [1, 'unknown']]);
  if (cidChoice === 'one') q.cid = rng.pick(cids);
  if (cidChoice === 'unknown') q.cid = 'no-such-campaign';
  const named = refs.filter((r) => r !== '');
  const refChoice = rng.weighted([[6, 'none'], [named.length ? 4 : 0, 'one'], [0.5, 'unknown']]);
  if (refChoice === 'one') q.reference_id = rng.pick(named);
  if (refChoice === 'unknown') q.reference_id = 'no-such-run';
  const instant = () => {
    const t = base - HOUR_MS + rng.int(0, days * DAY_MS + 2 * HOUR_MS);
    return rng.weighted([
      [3, () => floorTo(t, HOUR_MS)],
      [1, () => floorTo(t, DAY_MS)],
      [2, () => floorTo(t, MINUTE_MS)],
      [2, () => t],
      [1, () => rng.pick(hotEdges) - rng.pick([0, 1])],
    ])();
  };
  const range = rng.weighted([[2, 'none'], [6, 'both'], [1, 'from'], [1, 'to']]);
  if (range === 'both') {
    let a = instant();
    let b = instant();
    if (a > b) [a, b] = [b, a];
    if (a === b) b += MINUTE_MS;
    q.fromMs = a;
    q.toMs = b;
  } else if (range === 'from') {
    q.fromMs = instant();
  } else if (range === 'to') {
    q.toMs = instant();
  }
  if (q.fromMs !== undefined) q.fromText = encodeTime(rng, q.fromMs);
  if (q.toMs !== undefined) q.toText = encodeTime(rng, q.toMs);
  q.bucket = rng.pick(['minute', 'hour', 'day', 'default']);
  if (q.bucket === 'default') {
    q.bucket = 'hour';
    q.defaultBucket = true;
  }
  if (rng.chance(0.7)) q.groupBy = rng.pick(GROUP_BYS);
  return q;
}

// Queries on the exact edges every round asks: 20:00:00.000 and 19:59:59.999 of the middle day.
function edgeQueries(stream) {
  const [edge] = stream.hotEdges;
  const midnight = stream.base + DAY_MS;
  return [
    { bucket: 'hour', defaultBucket: true },
    { bucket: 'day' },
    { bucket: 'minute', fromMs: edge - HOUR_MS, toMs: edge + HOUR_MS },
    { bucket: 'minute', fromMs: edge - MINUTE_MS, toMs: edge }, // 19:59 only, 19:59:59.999 in it
    { bucket: 'minute', fromMs: edge, toMs: edge + MINUTE_MS }, // 20:00 only, 20:00:00.000 in it
    { bucket: 'hour', fromMs: edge, toMs: edge + HOUR_MS, groupBy: 'button' },
    { bucket: 'hour', fromMs: edge - HOUR_MS, toMs: edge, groupBy: 'cid' },
    { bucket: 'day', fromMs: midnight, toMs: midnight + DAY_MS, groupBy: 'utm_source' },
    { bucket: 'minute', fromMs: edge - 1, toMs: edge }, // not minute-aligned: the 19:59 minute
    { bucket: 'day', toMs: midnight, groupBy: 'reference_id' },
    ...GROUP_BYS.map((groupBy) => ({ bucket: 'day', groupBy })),
    { bucket: 'hour', cid: stream.cids[0], groupBy: 'reference_id' },
    { bucket: 'hour', cid: 'no-such-campaign', groupBy: 'cid' },
  ];
}

// --- 1, 2: property test, JSON and CSV ----------------------------------------------------

itest(`stats answers (JSON and CSV) equal counts made from random event streams (seed ${SEED})`, { timeout: 85_000 }, async (fx, t) => {
  const serve = await fx.startServe();
  const master = makeRng(SEED);
  const jsonFailures = [];
  const csvFailures = [];
  let queriesAsked = 0;
  let uniquesCompared = 0;
  let worstUniques = 0; // largest relative error of unique_subscribers seen
  let csvQuotedFields = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    const roundSeed = master.int(0, 2 ** 32 - 1);
    const rng = makeRng(roundSeed);
    const tag = `seed ${SEED} round ${round} (round seed ${roundSeed})`;
    const site = await serve.createSite(`Reporting ${round}`);
    const stream = generateStream(rng, { label: `r${round}`, count: rng.int(2000, 5000) });
    const { entries } = stream;
    const { batches, waves } = planRequests(rng, entries);
    const wires = entries.map((e) => encodeEvent(rng, e.canon));
    const canons = entries.map((e) => e.canon);
    const stored = dedupe(canons);
    // Which entries are the first of their event_id, to know each wave's `accepted`.
    const firsts = new Set(stored);
    for (const wave of waves) {
      const answers = await Promise.all(
        wave.map((b) => serve.ingest(site.ingest_key, batches[b].map((i) => wires[i]))),
      );
      let accepted = 0;
      answers.forEach((res, k) => {
        const body = expectStatus(res, 202, `${tag}: POST /v1/events (${batches[wave[k]].length} events)`);
        assert.equal(body.accepted + body.duplicates, batches[wave[k]].length, `${tag}: accepted + duplicates = batch size`);
        accepted += body.accepted;
      });
      const expectedAccepted = wave.reduce((sum, b) => sum + batches[b].filter((i) => firsts.has(canons[i])).length, 0);
      assert.equal(accepted, expectedAccepted, `${tag}: events accepted by a wave of ${wave.length} requests`);
    }
    t.diagnostic(`${tag}: ${entries.length} events (${entries.length - stored.length} duplicates) in ${batches.length} requests, ` +
      `${stream.cids.length} cids, ${stream.refs.length} runs`);

    const queries = [...edgeQueries(stream), ...Array.from({ length: QUERIES_PER_ROUND }, () => randomQuery(rng, stream))];
    for (const q of queries) {
      const qs = statsQueryString(q);
      const where = `${tag}: GET /v1/sites/{site}/stats?${qs}`;
      const res = await getStats(serve, site.id, qs);
      queriesAsked += 1;
      if (res.status !== 200) {
        jsonFailures.push(`${where}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
        continue;
      }
      const uniques = wholeHours(q);
      const want = expectedStats(stored, q);
      if (uniques && want.uniques > 0) {
        uniquesCompared += 1;
        worstUniques = Math.max(worstUniques, Math.abs(res.json?.totals?.unique_subscribers - want.uniques) / want.uniques);
      }
      const diffs = [...diffStats(res.json, want, q, { uniques }), ...diffGroupButtons(res.json, want, q)];
      if (diffs.length) jsonFailures.push(`${where}:\n    ${diffs.slice(0, 8).join('\n    ')}${diffs.length > 8 ? `\n    … ${diffs.length - 8} more` : ''}`);
      const csvRes = await getStats(serve, site.id, qs, { csv: true });
      csvQuotedFields += (csvRes.text.match(/(^|,)"/gm) ?? []).length;
      const csv = diffCsv(csvRes, res.json, q);
      if (csv.length) csvFailures.push(`${where} (accept: text/csv):\n    ${csv.slice(0, 8).join('\n    ')}`);
    }

    // The campaigns route of the same stream: one page, then pages of 2.
    const expected = expectedCampaigns(stored);
    const one = expectStatus(await getCampaigns(serve, site.id, '?limit=500'), 200, `${tag}: GET campaigns`);
    const diffs = diffCampaigns(one.data, expected);
    if (one.next_cursor !== null) diffs.push(`next_cursor ${JSON.stringify(one.next_cursor)} on a page that is not full`);
    const paged = await allCampaigns(serve, site.id, 2);
    if (JSON.stringify(paged.items.map((c) => c.cid)) !== JSON.stringify(one.data.map((c) => c.cid))) {
      diffs.push(`pages of 2 list ${JSON.stringify(paged.items.map((c) => c.cid))}, one page ${JSON.stringify(one.data.map((c) => c.cid))}`);
    }
    // As CSV, without a limit: every campaign, the same rows as the JSON page.
    const csvCampaigns = await request(serve.baseUrl, 'GET', `/v1/sites/${encodeURIComponent(site.id)}/campaigns`, {
      token: serve.adminToken,
      headers: { accept: 'text/csv' },
    });
    if (!(csvCampaigns.headers.get('content-type') ?? '').startsWith('text/csv')) {
      diffs.push(`CSV campaigns: content-type ${csvCampaigns.headers.get('content-type')}`);
    } else {
      const [head, ...rows] = parseCsv(csvCampaigns.text);
      const columns = ['cid', 'title', 'views', 'clicks', 'clicks_button_0', 'clicks_button_1', 'clicks_button_2',
        'ctr', 'dismissals', 'unique_subscribers', 'first_active_at', 'last_active_at'];
      if (JSON.stringify(head) !== JSON.stringify(columns)) diffs.push(`CSV campaigns header ${JSON.stringify(head)}`);
      const fromJson = one.data.map((c) => [c.cid, c.title, c.views, c.clicks, c.clicks_by_button['0'], c.clicks_by_button['1'],
        c.clicks_by_button['2'], c.ctr, c.dismissals, c.unique_subscribers, c.first_active_at, c.last_active_at].map(String));
      const asNumbers = (r) => r.map((v, i) => (i === 7 ? Number(v).toFixed(6) : v));
      if (JSON.stringify(rows.map(asNumbers)) !== JSON.stringify(fromJson.map(asNumbers))) {
        diffs.push(`CSV campaigns rows differ from JSON: ${JSON.stringify(rows.slice(0, 2))} vs ${JSON.stringify(fromJson.slice(0, 2))}`);
      }
    }
    if (diffs.length) jsonFailures.push(`${tag}: GET /v1/sites/{site}/campaigns:\n    ${diffs.join('\n    ')}`);
  }
  t.diagnostic(`${queriesAsked} queries; unique subscribers compared on ${uniquesCompared}, worst relative error ` +
    `${(100 * worstUniques).toFixed(2)} %`);

  await t.test('every JSON number of /stats and /campaigns equals the count made from the stream', () => {
    assert.equal(jsonFailures.length, 0, `${jsonFailures.length} answers differ from the model:\n${jsonFailures.slice(0, 15).join('\n')}`);
  });
  await t.test('every CSV answer parses (RFC 4180) and matches the JSON answer row by row', () => {
    // The reader is strict, or this would prove little.
    assert.deepEqual(parseCsv('k,v\r\n"a,""b""\r\nc",1\r\n'), [['k', 'v'], ['a,"b"\r\nc', '1']]);
    for (const bad of ['a,b\n1,2\n', '"a"b,c\r\n', 'a"b,c\r\n', '"a,b\r\n', 'a,b\r\n1\r\n']) {
      assert.throws(() => parseCsv(bad), /at offset/, `refuses ${JSON.stringify(bad)}`);
    }
    t.diagnostic(`${csvQuotedFields} CSV fields needed quoting (commas, quotes or line breaks in keys)`);
    assert.equal(csvFailures.length, 0, `${csvFailures.length} CSV answers differ:\n${csvFailures.slice(0, 15).join('\n')}`);
  });
});

// --- 3: scope -----------------------------------------------------------------------------

itest('stats and campaigns are scoped by the token: another site is 404, no token is 401', async (fx) => {
  const serve = await fx.startServe();
  const a = await serve.createSite('Scope A');
  const b = await serve.createSite('Scope B');
  const at = Date.UTC(2026, 10, 27, 20);
  const events = (cid, views, clicks) => [
    ...Array.from({ length: views }, (_, i) => ({ action: 'View', cookie_id: `${cid}-${i}`, cid, occurred_at: at })),
    ...Array.from({ length: clicks }, (_, i) => ({ action: 'Click', cookie_id: `${cid}-${i}`, cid, clicked_button: 1, occurred_at: at })),
  ];
  expectStatus(await serve.ingest(a.ingest_key, events('a-camp', 5, 2)), 202, 'ingest A');
  expectStatus(await serve.ingest(b.ingest_key, events('b-camp', 9, 4)), 202, 'ingest B');
  const tokenA = expectStatus(await serve.api('POST', `/v1/sites/${a.id}/tokens`, {}), 201, 'token A').token;
  const tokenB = expectStatus(await serve.api('POST', `/v1/sites/${b.id}/tokens`, {}), 201, 'token B').token;

  // Own site: the site's numbers only.
  const own = expectStatus(await getStats(serve, a.id, 'group_by=cid', { token: tokenA }), 200, 'A reads A');
  assert.deepEqual([own.totals.views, own.totals.clicks], [5, 2]);
  assert.deepEqual(own.groups.map((g) => g.key), ['a-camp']);
  const ownCampaigns = expectStatus(await getCampaigns(serve, a.id, '', tokenA), 200, 'A lists A campaigns');
  assert.deepEqual(ownCampaigns.data.map((c) => c.cid), ['a-camp']);

  // Another site's: 404 as if it did not exist, JSON or CSV, both ways.
  for (const [token, site, who] of [[tokenA, b, 'A on B'], [tokenB, a, 'B on A']]) {
    for (const csv of [false, true]) {
      const res = await getStats(serve, site.id, 'bucket=day', { token, csv });
      assert.equal(res.status, 404, `${who} stats${csv ? ' (CSV)' : ''}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.equal(res.json?.error?.code, 'not_found', `${who}: ${res.text.slice(0, 200)}`);
    }
    const res = await getCampaigns(serve, site.id, '', token);
    assert.equal(res.status, 404, `${who} campaigns: ${res.status} ${res.text.slice(0, 200)}`);
    assert.ok(!res.text.includes('camp'), `${who} campaigns answer names no campaign: ${res.text}`);
  }
  // No token, or one that is not a token: 401, for every site.
  for (const site of [a, b]) {
    for (const token of [null, 'not-a-token']) {
      const label = token ? 'a wrong token' : 'no token';
      assert.equal((await getStats(serve, site.id, '', { token })).status, 401, `stats with ${label}`);
      assert.equal((await getStats(serve, site.id, '', { token, csv: true })).status, 401, `CSV stats with ${label}`);
      assert.equal((await getCampaigns(serve, site.id, '', token)).status, 401, `campaigns with ${label}`);
    }
  }
  // The operator reads both, each with its own numbers; an unknown site is 404.
  const opA = expectStatus(await getStats(serve, a.id, ''), 200, 'operator reads A');
  const opB = expectStatus(await getStats(serve, b.id, ''), 200, 'operator reads B');
  assert.deepEqual([opA.totals.views, opA.totals.clicks, opB.totals.views, opB.totals.clicks], [5, 2, 9, 4]);
  assert.deepEqual(expectStatus(await getCampaigns(serve, b.id), 200, 'operator lists B').data.map((c) => c.cid), ['b-camp']);
  assert.equal((await getStats(serve, 'no-such-site', '')).status, 404, 'operator on an unknown site');
});

// --- 4: campaigns -------------------------------------------------------------------------

itest('campaigns: most recently active first (by arrival), cursor pages cover each once, totals exact', async (fx) => {
  const rng = makeRng(SEED ^ 0x5a5a5a5a);
  const serve = await fx.startServe();
  const site = await serve.createSite('Campaigns');
  const cids = Array.from({ length: 12 }, (_, i) => (i === 7 ? 'summer, "final"' : `camp-${String(i).padStart(2, '0')}`));
  const touches = new Map(); // cid → {first: [before, after], last: [before, after], lastRequest}
  const sent = [];
  const start = Date.UTC(2026, 10, 27, 12);
  let n = 0;
  for (let r = 0; r < 30; r += 1) {
    // The first 12 requests introduce the campaigns in order; later ones touch random ones again.
    const touched = r < cids.length ? [cids[r]] : rng.sample(cids, rng.int(1, 3));
    // occurred_at runs backwards, so that an order by occurred_at would be the reverse one.
    const batch = touched.flatMap((cid) => Array.from({ length: rng.int(1, 6) }, () => {
      const click = rng.chance(0.4);
      n += 1;
      return {
        action: click ? 'Click' : 'View', cookie_id: `ck-${rng.int(1, 50)}`, cid, event_id: `camp-ev-${n}`,
        clicked_button: click ? rng.int(0, 2) : 0, occurred_at: start - r * 7 * MINUTE_MS - rng.int(0, 60_000),
      };
    }));
    const before = Date.now();
    const body = expectStatus(await serve.ingest(site.ingest_key, batch), 202, `campaign request ${r}`);
    const after = Date.now();
    assert.equal(body.accepted, batch.length);
    sent.push(...batch);
    for (const cid of touched) {
      const t = touches.get(cid) ?? { first: [before, after] };
      touches.set(cid, { ...t, last: [before, after], lastRequest: r });
    }
    await sleep(3); // the next request's arrival time is a later millisecond
  }
  // Duplicates only, of the least recently active campaign: not new activity.
  const stalest = [...touches.entries()].sort((x, y) => x[1].lastRequest - y[1].lastRequest)[0][0];
  const again = sent.filter((e) => e.cid === stalest);
  assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, again), 202, 'duplicates'), { accepted: 0, duplicates: again.length });

  const stored = sent.map((e) => ({ ...e, reference_id: '', button: e.clicked_button }));
  const expected = expectedCampaigns(stored);
  const whole = expectStatus(await getCampaigns(serve, site.id, '?limit=500'), 200, 'GET campaigns');
  const order = whole.data.map((c) => c.cid);
  assert.deepEqual([...order].sort(), [...cids].sort(), 'every campaign listed once');
  // Campaigns last touched by the same request may come in either order; otherwise, later first.
  const lastRequests = order.map((cid) => touches.get(cid).lastRequest);
  assert.ok(lastRequests.every((r, i) => i === 0 || r <= lastRequests[i - 1]),
    `most recently active (by arrival) first, duplicates are not activity: ${JSON.stringify(order.map((cid, i) => [cid, lastRequests[i]]))}`);
  assert.equal(whole.next_cursor, null, 'no next page after all campaigns');
  assert.deepEqual(diffCampaigns(whole.data, expected), []);
  const slack = 50; // ms, the server's clock read vs the test's around the request
  for (const c of whole.data) {
    const t = touches.get(c.cid);
    const first = Date.parse(c.first_active_at);
    const last = Date.parse(c.last_active_at);
    assert.ok(first >= t.first[0] - slack && first <= t.first[1] + slack,
      `${c.cid}: first_active_at ${c.first_active_at} within its first request [${new Date(t.first[0]).toISOString()}, ${new Date(t.first[1]).toISOString()}]`);
    assert.ok(last >= t.last[0] - slack && last <= t.last[1] + slack,
      `${c.cid}: last_active_at ${c.last_active_at} within its last request [${new Date(t.last[0]).toISOString()}, ${new Date(t.last[1]).toISOString()}]`);
  }
  // The default page, and cursor paging with several page sizes: each campaign exactly once, in order.
  const byDefault = expectStatus(await getCampaigns(serve, site.id), 200, 'GET campaigns (default limit)');
  assert.deepEqual(byDefault.data.map((c) => c.cid), order);
  for (const limit of [1, 5, 7, 12, 13]) {
    const { items, pages } = await allCampaigns(serve, site.id, limit);
    assert.deepEqual(items.map((c) => c.cid), order, `pages of ${limit} (${pages.join('+')}) list each campaign once, in order`);
    assert.deepEqual(diffCampaigns(items, expected), [], `totals in pages of ${limit}`);
  }
});

// --- 5: crash consistency -----------------------------------------------------------------

async function sqliteJson(dbPath, sql) {
  const { stdout } = await run('sqlite3', ['-json', dbPath, sql], { maxBuffer: 256 * 1024 * 1024 });
  return stdout.trim() === '' ? [] : JSON.parse(stdout);
}

itest('kill -9 during ingest (three times): stats equal a recount of the stored events, acked ⊆ stored', { timeout: 85_000 }, async (fx, t) => {
  const KILLS = 3;
  const WORKERS = 4;
  const rng = makeRng(SEED ^ 0x0c0ffee);
  const pool = generateStream(rng, { label: 'crash', count: 30_000, dupRate: 0, noIdRate: 0 }).entries.map((e) => e.canon);
  let nextEvent = 0;
  const sent = new Map(); // event_id → canonical event, every event ever posted
  const acked = new Set();
  let serve = await fx.startServe();
  const { dataDir, adminToken } = serve;
  const site = await serve.createSite('Crash');
  assert.match(site.id, /^[A-Za-z0-9_-]+$/);
  const key = site.ingest_key;

  // A batch of new events, now and then with an already acknowledged one again.
  const makeBatch = () => {
    if (nextEvent + 80 > pool.length) throw new Error('the crash test ran out of events');
    const batch = Array.from({ length: rng.int(10, 80) }, () => pool[nextEvent++]);
    if (acked.size > 0 && rng.chance(0.3)) batch.push(sent.get(rng.pick([...acked].slice(-200))));
    for (const c of batch) sent.set(c.event_id, c);
    return batch;
  };
  const post = async (batch) => {
    const res = await serve.ingest(key, batch.map((c) => encodeEvent(rng, c)));
    if (res.status !== 202) return res;
    assert.equal(res.json.accepted + res.json.duplicates, batch.length, 'accepted + duplicates = batch size');
    for (const c of batch) acked.add(c.event_id);
    return res;
  };
  let unacked = [];
  const abandoned = []; // lost batches never posted again: stored or not, never acknowledged
  let lostButStored = 0; // events of lost requests that the server had committed
  const statuses = new Map();
  // A client that retries: about half the batches lost with the server are posted again (same
  // event_ids); the other half is given up, so that the database may hold unacknowledged events.
  const retryUnacked = async () => {
    const batches = unacked;
    unacked = [];
    for (const batch of batches) {
      if (rng.chance(0.5)) {
        abandoned.push(batch);
        continue;
      }
      const res = await post(batch);
      expectStatus(res, 202, 'a lost batch posted again after the restart');
      lostButStored += res.json.duplicates;
    }
  };

  for (let kill = 0; kill <= KILLS; kill += 1) {
    if (kill > 0) {
      serve = await fx.startServe({ dataDir, adminToken });
      await retryUnacked();
    }
    if (kill === KILLS) break;
    const target = acked.size + rng.int(300, 1500);
    let inflight = 0;
    let stopping = false;
    const worker = async () => {
      while (!stopping) {
        const batch = makeBatch();
        inflight += 1;
        try {
          const res = await post(batch);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status !== 202) {
            unacked.push(batch);
            if (res.status !== 429 && res.status !== 503) throw new Error(`ingest answered ${res.status}: ${res.text.slice(0, 200)}`);
            await sleep(20); // pushed back: the server asked for a pause
          }
        } catch (err) {
          if (!stopping) throw err;
          unacked.push(batch); // cut by the kill: maybe stored, maybe not
        } finally {
          inflight -= 1;
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, worker);
    const failed = Promise.race(workers.map((w) => w.then(() => new Promise(() => {}))));
    await Promise.race([waitFor(() => acked.size >= target, { timeoutMs: 30_000, intervalMs: 5, what: `${target} acknowledged events` }), failed]);
    await sleep(rng.int(0, 15));
    const inflightAtKill = inflight;
    stopping = true;
    const killed = await stop(serve, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    await Promise.all(workers);
    assert.ok(inflightAtKill > 0, 'requests were in flight when the server was killed');
    t.diagnostic(`kill ${kill + 1}: ${acked.size} acknowledged so far, ${inflightAtKill} requests in flight, ${unacked.length} batches to post again`);
  }
  expectStatus(await post(makeBatch()), 202, 'ingest after the last restart');

  // What the database holds, read with the sqlite3 CLI.
  const dbPath = path.join(dataDir, 'pushhook.db');
  const rows = await sqliteJson(dbPath,
    'SELECT event_id, action, cookie_id, cid, reference_id, utm_source, utm_medium, utm_campaign, utm_content, utm_term, ' +
    `clicked_button, occurred_at FROM events WHERE site_id = '${site.id}'`);
  const stored = rows.map((r) => ({
    event_id: r.event_id, action: ['View', 'Click', 'Dismiss'][r.action], cookie_id: r.cookie_id, cid: r.cid,
    reference_id: r.reference_id, utm_source: r.utm_source, utm_medium: r.utm_medium, utm_campaign: r.utm_campaign,
    utm_content: r.utm_content, utm_term: r.utm_term, button: r.clicked_button, occurred_at_ms: r.occurred_at,
  }));
  const storedIds = new Set(stored.map((e) => e.event_id));
  const lost = [...acked].filter((id) => !storedIds.has(id));
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged events are not in the database`);
  assert.equal(storedIds.size, stored.length, 'one row per event_id');
  for (const e of stored) assert.deepEqual(e, sent.get(e.event_id), `stored row ${e.event_id} is the event that was posted`);
  const abandonedStored = abandoned.flat().filter((c) => storedIds.has(c.event_id) && !acked.has(c.event_id)).length;
  t.diagnostic(`${stored.length} events stored, ${acked.size} acknowledged, ${sent.size} posted; ingest answers ` +
    `${JSON.stringify([...statuses])}; events of requests cut by a kill found committed: ${lostButStored} posted again ` +
    `(duplicates), ${abandonedStored} given up`);

  // The recount in SQL, per campaign, and the stats and campaigns routes against it.
  const recount = await sqliteJson(dbPath,
    'SELECT cid, sum(action = 0) AS views, sum(action = 1) AS clicks, sum(action = 1 AND clicked_button = 0) AS b0, ' +
    'sum(action = 1 AND clicked_button = 1) AS b1, sum(action = 1 AND clicked_button = 2) AS b2, ' +
    'sum(action = 2) AS dismissals ' +
    `FROM events WHERE site_id = '${site.id}' GROUP BY cid ORDER BY cid`);
  const sqlCampaigns = new Map(recount.map((r) => [r.cid, { views: r.views, clicks: r.clicks, b: [r.b0, r.b1, r.b2], dismissals: r.dismissals }]));
  assert.deepEqual(sqlCampaigns, expectedCampaigns(stored), 'the SQL recount agrees with the rows');
  const failures = [];
  const queries = [
    { bucket: 'hour', defaultBucket: true },
    { bucket: 'day', groupBy: 'cid' },
    { bucket: 'day', groupBy: 'button' },
    { bucket: 'hour', groupBy: 'utm_source' },
    { bucket: 'day', groupBy: 'reference_id' },
    ...[...sqlCampaigns.keys()].map((cid) => ({ cid, bucket: 'minute' })),
  ];
  for (const q of queries) {
    const qs = statsQueryString(q);
    const json = expectStatus(await getStats(serve, site.id, qs), 200, `stats ?${qs}`);
    const diffs = diffStats(json, expectedStats(stored, q), q, { uniques: true });
    if (diffs.length) failures.push(`GET stats?${qs} after the crashes:\n    ${diffs.slice(0, 8).join('\n    ')}`);
  }
  const campaigns = await allCampaigns(serve, site.id, 500);
  const campaignDiffs = diffCampaigns(campaigns.items, sqlCampaigns);
  if (campaignDiffs.length) failures.push(`GET campaigns after the crashes:\n    ${campaignDiffs.join('\n    ')}`);
  assert.equal(failures.length, 0, `seed ${SEED}: statistics differ from the recount of stored events:\n${failures.join('\n')}`);
});

// The SQLite store writes statistics with the events' transaction only now and then (every
// 200 ms or 20,000 events), holding the committed transactions' counts in memory in between. A
// kill -9 loses what is held; the restart counts those events again from the rows. A clean stop
// writes what is held, and the next start has nothing to count again.
itest('statistics held in memory at a kill -9 are recounted at the restart; a clean stop writes them', async (fx) => {
  let serve = await fx.startServe();
  const { dataDir, adminToken } = serve;
  const site = await serve.createSite('Held statistics');
  const events = Array.from({ length: 50 }, (_, i) => ({
    action: i % 5 === 0 ? 'View' : 'Click', cookie_id: `held-${i}`, cid: 'held', reference_id: 'r1',
    notification_title: 'Held', clicked_button: i % 5 === 0 ? 0 : i % 3,
  }));
  // Killed at once after the 202: no later transaction has written the counts.
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  assert.equal((await stop(serve, 'SIGKILL')).signal, 'SIGKILL');

  serve = await fx.startServe({ dataDir, adminToken });
  const recounted = serve.logs.find((l) => l.msg === 'statistics recounted');
  assert.ok(recounted, `the restart recounted the held statistics; log:\n${serve.logs.map((l) => l.msg).join('\n')}`);
  assert.equal(recounted.events, '50', 'the 50 events after the last written mark');
  const expectCounts = async (label) => {
    const campaigns = expectStatus(await getCampaigns(serve, site.id), 200, `campaigns ${label}`).data;
    assert.equal(campaigns.length, 1, `${label}: one campaign`);
    assert.equal(campaigns[0].views, 10, `${label}: views`);
    assert.equal(campaigns[0].clicks, 40, `${label}: clicks`);
    const stats = expectStatus(await getStats(serve, site.id, 'bucket=day'), 200, `stats ${label}`);
    assert.equal(stats.totals.views + stats.totals.clicks, 50, `${label}: totals ${JSON.stringify(stats.totals)}`);
  };
  await expectCounts('after the kill');

  // Held again, then a clean stop: written at shutdown, not counted twice at the next start.
  expectStatus(await serve.ingest(site.ingest_key, events.map((e) => ({ ...e, cid: 'clean' }))), 202, 'ingest 2');
  assert.equal((await stop(serve, 'SIGTERM')).code, 0);
  serve = await fx.startServe({ dataDir, adminToken });
  assert.equal(serve.logs.find((l) => l.msg === 'statistics recounted'), undefined, 'nothing to recount after a clean stop');
  const campaigns = expectStatus(await getCampaigns(serve, site.id), 200, 'campaigns after the clean stop').data;
  assert.deepEqual(campaigns.map((c) => [c.cid, c.views, c.clicks]).sort(), [['clean', 10, 40], ['held', 10, 40]]);
});

itest('stats refuses queries it cannot answer with 400', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Bad queries');
  for (const qs of ['bucket=week', 'group_by=cookie_id', 'from=yesterday', 'to=2026-13-01T00:00:00Z',
    'from=2026-11-27T20:00:00Z&to=2026-11-27T20:00:00Z', 'from=1795809600000&to=1795806000000']) {
    const res = await getStats(serve, site.id, qs);
    assert.equal(res.status, 400, `?${qs}: ${res.status} ${res.text.slice(0, 200)}`);
    assert.equal(typeof res.json?.error?.code, 'string', `?${qs}: an error body`);
  }
  // A bad bucket or group_by is named in the message, cut to 64 bytes where a character starts.
  const groupChoices = 'group_by must be one of cid, reference_id, button, utm_source, utm_medium, utm_campaign, ' +
    'utm_content, utm_term, not';
  const unreadable = (name) => `query parameter '${name}' is not percent-encoded UTF-8 text (a % is written %25)`;
  const statsRefusals = [
    // Not read as absent: the whole site's numbers would answer for one campaign.
    ['cid=50%off', unreadable('cid')],
    ['reference_id=%FF', unreadable('reference_id')],
    ['bucket=week', "bucket must be minute, hour or day, not 'week'"],
    ['group_by=bogus', `${groupChoices} 'bogus'`],
    ['group_by=CID', `${groupChoices} 'CID'`],
    [`group_by=${'y'.repeat(64)}`, `${groupChoices} '${'y'.repeat(64)}'`],
    [`group_by=${'y'.repeat(65)}`, `${groupChoices} '${'y'.repeat(64)}'`],
    // 1 + 40 × 2 bytes: the 64th byte is the first half of an é, so 63 bytes are kept.
    [`group_by=x${encodeURIComponent('é'.repeat(40))}`, `${groupChoices} 'x${'é'.repeat(31)}'`],
    [`bucket=${encodeURIComponent('🔔'.repeat(17))}`, `bucket must be minute, hour or day, not '${'🔔'.repeat(16)}'`],
    // Bytes that are not UTF-8 are refused by name, before any handler reads them.
    ['group_by=a%FFb%E2%82', unreadable('group_by')],
    // Unix milliseconds past what RFC 3339 can write would overflow the minute rounding.
    ['from=yesterday', "from must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not 'yesterday'"],
    ['from=-9223372036854775808', "from must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '-9223372036854775808'"],
    ['to=253402300800000', "to must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '253402300800000'"],
    // RFC 3339 text whose offset carries it out of those years.
    ['from=0000-01-01T00:00:00%2B23:59', "from must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '0000-01-01T00:00:00+23:59'"],
    ['to=9999-12-31T23:59:59.999-23:59', "to must be an RFC 3339 time or Unix milliseconds, years 0000 to 9999, not '9999-12-31T23:59:59.999-23:59'"],
  ];
  for (const [qs, message] of statsRefusals) {
    const res = await fetch(`${serve.baseUrl}/v1/sites/${site.id}/stats?${qs}`, { headers: { authorization: `Bearer ${serve.adminToken}` } });
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(res.status, 400, `?${qs}`);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // throws on bytes that are not UTF-8
    assert.equal(JSON.parse(text).error.message, message, `?${qs}`);
  }
  // The route as DESIGN writes it, every parameter empty: each means absent, the hourly default.
  const blank = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats?cid=&reference_id=&from=&to=&bucket=&group_by=`), 200, 'every parameter empty');
  assert.deepEqual(blank, expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats?bucket=hour`), 200, 'hourly'));
  for (const params of ['?limit=0', '?limit=x', '?limit=501', '?cursor=not-a-cursor']) {
    assert.equal((await getCampaigns(serve, site.id, params)).status, 400, `campaigns${params}`);
  }
  // Each rule of the list's options, with the message a user reads.
  expectStatus(await serve.ingest(site.ingest_key, ['a', 'b'].map((cid) => ({ action: 'View', cookie_id: 'c', cid }))), 202, 'two campaigns');
  const byViews = expectStatus(await getCampaigns(serve, site.id, '?sort=views&limit=1'), 200, 'sorted by views');
  assert.equal(typeof byViews.next_cursor, 'string');
  const refusals = [
    ['?sort=title', "sort must be last_active, views, clicks, ctr, dismissals or cid, not 'title'"],
    ['?order=up', "order must be asc or desc, not 'up'"],
    [`?order=${'u'.repeat(100)}`, `order must be asc or desc, not '${'u'.repeat(64)}'`],
    [`?q=${'x'.repeat(257)}`, 'q must be at most 256 bytes'],
    ['?limit=501', 'limit must be an integer from 1 to 500'],
    ['?limit=1.5', 'limit must be an integer from 1 to 500'],
    [`?sort=clicks&limit=1&cursor=${encodeURIComponent(byViews.next_cursor)}`, 'cursor is not one this server gave for this sort and order'],
    [`?sort=views&order=asc&limit=1&cursor=${encodeURIComponent(byViews.next_cursor)}`, 'cursor is not one this server gave for this sort and order'],
  ];
  for (const [params, message] of refusals) {
    const res = await getCampaigns(serve, site.id, params);
    assert.equal(res.status, 400, `campaigns${params.slice(0, 60)}: ${res.status} ${res.text.slice(0, 200)}`);
    assert.equal(res.json?.error?.message, message, `campaigns${params.slice(0, 60)}`);
  }
  expectStatus(await getCampaigns(serve, site.id, `?q=${'x'.repeat(256)}`), 200, 'a search of 256 bytes');
});

itest('campaigns: every sort and order pages through each campaign once; q finds cids and titles', async (fx) => {
  const rng = makeRng(SEED ^ 0x0c0ffee);
  const serve = await fx.startServe();
  const site = await serve.createSite('Sorting');
  const titles = ['Summer SALE', '100% off_now', 'Winter', 'sale ends', '<b>Bold</b>', ''];
  const events = [];
  const expected = new Map(); // cid → {views, clicks, dismissals, title, cookies}
  for (let i = 0; i < 23; i += 1) {
    const cid = `c${String(i).padStart(2, '0')}`;
    const title = titles[i % titles.length];
    const row = { views: 0, clicks: 0, dismissals: 0, title, cookies: new Set() };
    expected.set(cid, row);
    for (let k = rng.int(0, 12); k > 0; k -= 1) {
      const action = rng.pick(['View', 'View', 'Click', 'Dismiss']);
      const cookie = `s-${rng.int(1, 8)}`;
      row[{ View: 'views', Click: 'clicks', Dismiss: 'dismissals' }[action]] += 1;
      row.cookies.add(cookie);
      events.push({ action, cookie_id: cookie, cid, notification_title: title, clicked_button: 0 });
    }
    if (row.cookies.size === 0) {
      row.views += 1;
      row.cookies.add('s-0');
      events.push({ action: 'View', cookie_id: 's-0', cid, notification_title: title });
    }
  }
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const ctrOf = (r) => (r.views === 0 ? 0 : r.clicks / r.views);
  const keys = {
    views: (r) => r.views, clicks: (r) => r.clicks, ctr: ctrOf, dismissals: (r) => r.dismissals,
  };
  const byCid = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const want = (sort, order, filter = () => true) => {
    const cids = [...expected.keys()].filter((cid) => filter(cid, expected.get(cid)));
    if (sort === 'cid') return cids.sort((a, b) => (order === 'asc' ? byCid(a, b) : byCid(b, a)));
    const key = keys[sort];
    return cids.sort((a, b) => {
      const d = key(expected.get(a)) - key(expected.get(b));
      return d !== 0 ? (order === 'asc' ? d : -d) : byCid(a, b);
    });
  };
  const walk = async (params, limit) => {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 100; page += 1) {
      const q = new URLSearchParams({ ...params, limit: String(limit) });
      if (cursor) q.set('cursor', cursor);
      const body = expectStatus(await getCampaigns(serve, site.id, `?${q}`), 200, `campaigns ?${q}`);
      items.push(...body.data);
      if (body.next_cursor === null) return items;
      cursor = body.next_cursor;
    }
    throw new Error('paging did not end');
  };
  for (const sort of ['views', 'clicks', 'ctr', 'dismissals', 'cid']) {
    for (const order of ['asc', 'desc']) {
      for (const limit of [4, 23]) {
        const items = await walk({ sort, order }, limit);
        assert.deepEqual(items.map((c) => c.cid), want(sort, order), `sort=${sort}&order=${order}, pages of ${limit}`);
      }
    }
  }
  // Defaults: numbers largest first, cids in order.
  assert.deepEqual((await walk({ sort: 'ctr' }, 5)).map((c) => c.cid), want('ctr', 'desc'));
  assert.deepEqual((await walk({ sort: 'cid' }, 5)).map((c) => c.cid), want('cid', 'asc'));
  const lower = (text) => text.replace(/[A-Z]/g, (ch) => ch.toLowerCase());
  for (const q of ['SALE', 'c1', '0%', 'f_', '%', 'n_w', '<b>', 'nothing like it']) {
    const items = await walk({ q, sort: 'cid' }, 3);
    const match = (cid, r) => lower(cid).includes(lower(q)) || lower(r.title).includes(lower(q));
    assert.deepEqual(items.map((c) => c.cid), want('cid', 'asc', match), `q=${q}`);
    for (const c of items) assert.equal(c.title, expected.get(c.cid).title, `${c.cid}: the title as sent, as text`);
  }
  // Unique subscribers: the sketch is near exact for small sets.
  for (const c of await walk({}, 50)) {
    const r = expected.get(c.cid);
    assert.ok(Math.abs(c.unique_subscribers - r.cookies.size) <= 1,
      `${c.cid}: unique_subscribers ${c.unique_subscribers}, ${r.cookies.size} distinct cookie_ids sent`);
    assert.deepEqual([c.views, c.clicks, c.dismissals], [r.views, r.clicks, r.dismissals], `${c.cid} totals`);
  }
});

// --- 6: the CLI ---------------------------------------------------------------------------

// Runs `pushhook args...` to its end: {code, stdout, stderr}.
async function runCli(fx, args, env = {}) {
  const handle = fx.spawn(args, { env, name: `pushhook ${args[0]}` });
  const closed = new Promise((resolve) => handle.proc.once('close', (code) => resolve(code)));
  const timer = setTimeout(() => handle.proc.kill('SIGKILL'), 20_000);
  const code = await closed;
  clearTimeout(timer);
  return { code, stdout: handle.stdout, stderr: handle.stderr };
}

// The row under the header line that has every one of `columns` (columns are 2+ spaces apart).
function tableRow(text, columns) {
  const lines = text.split('\n');
  const split = (line) => line.trim().split(/ {2,}/);
  for (let i = 0; i + 1 < lines.length; i += 1) {
    const header = split(lines[i]);
    if (columns.every((c) => header.includes(c))) {
      const values = split(lines[i + 1]);
      return Object.fromEntries(header.map((h, k) => [h, values[k]]));
    }
  }
  return null;
}

itest('pushhook stats prints a campaign\'s totals (exit 0) and exits 2 without a token', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('CLI');
  const at = Date.UTC(2026, 10, 27, 20, 15);
  const ev = (action, cid, button, i, utm_source = 'izooto') =>
    ({ action, cookie_id: `cli-${i}`, cid, clicked_button: button, utm_source, occurred_at: at + i * 1000 });
  const events = [
    ...Array.from({ length: 7 }, (_, i) => ev('View', 'cli-camp', 0, i)),
    ev('Click', 'cli-camp', 0, 10), ev('Click', 'cli-camp', 2, 11), ev('Click', 'cli-camp', 2, 12, 'newsletter'),
    ev('View', 'other', 0, 20), ev('Click', 'other', 1, 21), // another campaign, not in cli-camp's totals
  ];
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const token = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/tokens`, {}), 201, 'site token').token;
  const base = ['stats', '--server', serve.baseUrl, '--site', site.id, '--cid', 'cli-camp'];

  const checkTotals = (out, how) => {
    assert.equal(out.code, 0, `${how}: exit 0; stderr: ${out.stderr}`);
    const row = tableRow(out.stdout, ['views', 'clicks']);
    assert.ok(row, `${how}: a table with views and clicks columns:\n${out.stdout}`);
    assert.equal(row.views, '7', `${how}: views\n${out.stdout}`);
    assert.equal(row.clicks, '3', `${how}: clicks\n${out.stdout}`);
    const button = (b) => Object.entries(row).find(([h]) => new RegExp(`button.?${b}$`).test(h))?.[1];
    assert.deepEqual([button(0), button(1), button(2)], ['1', '0', '2'], `${how}: clicks per button\n${out.stdout}`);
    assert.ok(out.stdout.includes('cli-camp'), `${how}: names the campaign`);
  };
  checkTotals(await runCli(fx, base, { PUSHHOOK_ADMIN_TOKEN: serve.adminToken }), 'operator token from the environment');
  checkTotals(await runCli(fx, [...base, '--token', token]), 'site token from --token');

  const grouped = await runCli(fx, [...base, '--bucket', 'day', '--group-by', 'utm_source'], { PUSHHOOK_ADMIN_TOKEN: serve.adminToken });
  assert.equal(grouped.code, 0, grouped.stderr);
  assert.match(grouped.stdout, /izooto +7 +2 /, `the izooto group (7 views, 2 clicks):\n${grouped.stdout}`);
  assert.match(grouped.stdout, /newsletter +0 +1 /, `the newsletter group (0 views, 1 click):\n${grouped.stdout}`);
  assert.match(grouped.stdout, /2026-11-27T00:00:00Z +7 +3 /, `the day bucket:\n${grouped.stdout}`);

  const without = await runCli(fx, base);
  assert.equal(without.code, 2, `no token: exit 2 (stdout ${without.stdout}, stderr ${without.stderr})`);
  assert.match(without.stderr, /token/i, 'says that a token is missing');
  assert.equal(without.stdout, '', 'prints no table');
});

itest('the campaigns CSV holds every campaign, past the 500 of a JSON page', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Many campaigns');
  const N = 1_201;
  for (let first = 0; first < N; first += 500) {
    const events = [];
    for (let i = first; i < Math.min(N, first + 500); i += 1) {
      events.push({ action: 'View', cookie_id: `s${i}`, cid: `camp-${String(i).padStart(4, '0')}`, notification_title: `T, "${i}"` });
    }
    expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  }
  const answer = await request(serve.baseUrl, 'GET', `/v1/sites/${site.id}/campaigns?sort=cid`, {
    token: serve.adminToken,
    headers: { accept: 'text/csv' },
  });
  assert.equal(answer.status, 200, answer.text.slice(0, 300));
  const [head, ...rows] = parseCsv(answer.text);
  assert.equal(head[0], 'cid');
  assert.equal(rows.length, N, 'one row per campaign');
  assert.deepEqual(rows.map((r) => r[0]), Array.from({ length: N }, (_, i) => `camp-${String(i).padStart(4, '0')}`));
  assert.equal(rows[7][1], 'T, "7"', 'a title with a comma and quotes comes back whole');
  // With a limit, one page, as the JSON answer.
  const page = await request(serve.baseUrl, 'GET', `/v1/sites/${site.id}/campaigns?sort=cid&limit=3`, {
    token: serve.adminToken,
    headers: { accept: 'text/csv' },
  });
  assert.equal(parseCsv(page.text).length, 4);
});

itest('CSV exports open in a spreadsheet as text, never as a formula', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Formulas');
  const formula = '=HYPERLINK("http://evil.example/","click")';
  expectStatus(await serve.ingest(site.ingest_key, [
    { action: 'View', cookie_id: 's1', cid: '@cmd', notification_title: formula, utm_source: '+1' },
    { action: 'View', cookie_id: 's2', cid: '100', notification_title: 'a = b', utm_source: '-1' },
  ]), 202, 'ingest');
  const csv = async (query) => {
    const answer = await request(serve.baseUrl, 'GET', `/v1/sites/${site.id}/${query}`, {
      token: serve.adminToken,
      headers: { accept: 'text/csv' },
    });
    assert.equal(answer.status, 200, answer.text.slice(0, 300));
    return parseCsv(answer.text).slice(1);
  };
  const campaigns = await csv('campaigns?sort=cid');
  assert.deepEqual(campaigns.map((r) => [r[0], r[1]]), [['100', 'a = b'], ["'@cmd", `'${formula}`]]);
  const groups = await csv('stats?group_by=utm_source');
  assert.deepEqual(groups.map((r) => r[0]).sort(), ["'+1", "'-1"]);
  // The JSON answers carry the text as it came.
  const json = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/campaigns?sort=cid`), 200, 'campaigns');
  assert.deepEqual(json.data.map((c) => c.title), ['a = b', formula]);
});

itest('unique subscribers per hour or day bucket and per campaign or run, in JSON and CSV', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Reach');
  const hour = 3600_000;
  const base = Date.parse('2026-11-27T20:00:00Z');
  const view = (cookie, cid, run, at) => ({ action: 'View', cookie_id: cookie, cid, reference_id: run, occurred_at: at });
  expectStatus(await serve.ingest(site.ingest_key, [
    view('s1', 'a', 'r1', base), view('s2', 'a', 'r1', base + 60_000), view('s1', 'b', 'r2', base + 120_000),
    view('s1', 'a', 'r1', base + hour), view('s3', 'b', 'r2', base + hour + 5_000),
  ]), 202, 'ingest');
  const stats = async (query) => expectStatus(
    await serve.api('GET', `/v1/sites/${site.id}/stats?from=${base}&to=${base + 2 * hour}&${query}`), 200, query);
  const hourly = await stats('bucket=hour&group_by=cid');
  assert.equal(hourly.totals.unique_subscribers, 3);
  assert.deepEqual(hourly.series.map((s) => [s.bucket, s.unique_subscribers]),
    [['2026-11-27T20:00:00Z', 2], ['2026-11-27T21:00:00Z', 2]]);
  assert.deepEqual(hourly.groups.map((g) => [g.key, g.unique_subscribers]), [['a', 2], ['b', 2]]);
  const daily = await stats('bucket=day&group_by=reference_id');
  assert.deepEqual(daily.series.map((s) => s.unique_subscribers), [3]);
  assert.deepEqual(daily.groups.map((g) => [g.key, g.unique_subscribers]), [['r1', 2], ['r2', 2]]);
  // No sketch is kept per minute or per UTM value: the field is absent, not made up.
  const minutes = await stats('bucket=minute&group_by=utm_source');
  assert.ok(minutes.series.every((s) => !('unique_subscribers' in s)), JSON.stringify(minutes.series[0]));
  assert.ok(minutes.groups.every((g) => !('unique_subscribers' in g)), JSON.stringify(minutes.groups[0]));

  const csv = await request(serve.baseUrl, 'GET', `/v1/sites/${site.id}/stats?from=${base}&to=${base + 2 * hour}&bucket=hour`, {
    token: serve.adminToken,
    headers: { accept: 'text/csv' },
  });
  const [head, ...rows] = parseCsv(csv.text);
  const column = head.indexOf('unique_subscribers');
  assert.ok(column > 0, head.join(','));
  assert.deepEqual(rows.map((r) => r[column]), ['2', '2']);
});

itest('every group counts clicks per button, in JSON and CSV; a button group its own button only', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Buttons');
  const at = Date.parse('2026-11-27T20:00:00Z');
  const click = (button, cid, run, source, k) => ({
    action: 'Click', cookie_id: `c${k}`, cid, reference_id: run, utm_source: source, clicked_button: button, occurred_at: at + k,
  });
  expectStatus(await serve.ingest(site.ingest_key, [
    { action: 'View', cookie_id: 'v', cid: 'a', reference_id: 'r1', utm_source: 'news', occurred_at: at },
    click(0, 'a', 'r1', 'news', 1), click(2, 'a', 'r1', 'news', 2), click(2, 'a', 'r2', 'ads', 3),
    click(1, 'b', 'r2', 'ads', 4), click(1, 'b', 'r2', '', 5),
  ]), 202, 'ingest');
  const expected = {
    cid: [['a', 1, 3, [1, 0, 2]], ['b', 0, 2, [0, 2, 0]]],
    reference_id: [['r1', 1, 2, [1, 0, 1]], ['r2', 0, 3, [0, 2, 1]]],
    utm_source: [['', 0, 1, [0, 1, 0]], ['ads', 0, 2, [0, 1, 1]], ['news', 1, 2, [1, 0, 1]]],
    button: [['0', 1, 1, [1, 0, 0]], ['1', 1, 2, [0, 2, 0]], ['2', 1, 2, [0, 0, 2]]],
  };
  const range = `from=${at}&to=${at + 3600_000}`;
  for (const [groupBy, rows] of Object.entries(expected)) {
    const json = expectStatus(await getStats(serve, site.id, `${range}&group_by=${groupBy}`), 200, groupBy);
    assert.deepEqual(json.groups.map((g) => [g.key, g.views, g.clicks, [0, 1, 2].map((b) => g.clicks_by_button[String(b)])]),
      rows, `JSON groups by ${groupBy}`);
    const csv = await getStats(serve, site.id, `${range}&group_by=${groupBy}`, { csv: true });
    const [head, ...records] = parseCsv(csv.text);
    assert.deepEqual(head, [groupBy, 'views', 'clicks', 'clicks_button_0', 'clicks_button_1', 'clicks_button_2', 'ctr',
      'dismissals', 'unique_subscribers'], `CSV header by ${groupBy}`);
    assert.deepEqual(records.map((r) => r.slice(0, 6)), rows.map(([key, views, clicks, b]) => [key, views, clicks, ...b].map(String)),
      `CSV groups by ${groupBy}`);
  }
});

itest('accept chooses CSV only when text/csv has a higher quality than JSON', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Negotiation');
  const cases = [
    [undefined, 'json'],
    ['text/csv', 'csv'],
    ['text/*', 'csv'],
    ['text/csv;q=0.1, application/json', 'json'],
    ['application/json;q=0.5, TEXT/CSV ; Q=0.9', 'csv'],
    ['text/csv, application/json', 'json'],
    ['text/csv, */*', 'json'],
    ['text/csv;q=0.8, application/*;q=0.7', 'csv'],
    ['text/csv;q=0, */*;q=0.1', 'json'],
  ];
  for (const [accept, want] of cases) {
    for (const route of ['stats', 'campaigns']) {
      const res = await request(serve.baseUrl, 'GET', `/v1/sites/${site.id}/${route}`, {
        token: serve.adminToken,
        headers: accept === undefined ? {} : { accept },
      });
      assert.equal(res.status, 200, `${route} with accept ${accept}: ${res.text.slice(0, 200)}`);
      const type = res.headers.get('content-type') ?? '';
      assert.ok(type.startsWith(want === 'csv' ? 'text/csv' : 'application/json'), `${route} with accept ${accept}: ${type}`);
    }
  }
});
