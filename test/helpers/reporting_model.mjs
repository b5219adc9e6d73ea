// An independent model of pushhook's campaign reporting (DESIGN section 6) for the integration
// tests: a seeded random generator, random event streams with duplicates and timestamps on bucket
// edges, and the numbers that `GET /v1/sites/{site}/stats` and `/campaigns` must answer for the
// stored events, counted here from the events themselves (never from the server's aggregates).
//
// Range semantics modelled (the route's contract, "[from, to) on occurred_at at minute
// granularity"): a minute counts when it overlaps [from, to), i.e. minute >= floor_minute(from)
// and minute < to. Unique subscribers come from hourly sketches, so the model counts the hours
// that overlap [from, to); tests compare uniques only on whole-hour ranges, where both agree.

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
export const BUCKETS = { minute: MINUTE_MS, hour: HOUR_MS, day: DAY_MS };
export const UTM_FIELDS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'];
export const GROUP_BYS = ['cid', 'reference_id', 'button', ...UTM_FIELDS];

// --- randomness ---------------------------------------------------------------------------

// sfc32 seeded through splitmix32: small, fast, and the same sequence on every platform.
export function makeRng(seed) {
  let s = seed >>> 0;
  const splitmix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 2 ** 32;
  };
  for (let i = 0; i < 12; i += 1) next();
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)],
    // `pairs`: [[weight, value], ...]
    weighted(pairs) {
      const total = pairs.reduce((sum, [w]) => sum + w, 0);
      let r = next() * total;
      for (const [w, value] of pairs) {
        if (r < w) return value;
        r -= w;
      }
      return pairs[pairs.length - 1][1];
    },
    sample(items, n) {
      const copy = [...items];
      for (let i = copy.length - 1; i > 0; i -= 1) {
        const j = Math.floor(next() * (i + 1));
        [copy[i], copy[j]] = [copy[j], copy[i]];
      }
      return copy.slice(0, n);
    },
    hex: (n) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join(''),
  };
  return rng;
}

// A seed from the environment (decimal or 0x hex), else `fallback`.
export function seedFromEnv(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${text}`);
  return value >>> 0;
}

// --- time ---------------------------------------------------------------------------------

export function floorTo(ms, size) {
  return ms - (((ms % size) + size) % size);
}

// RFC 3339 with milliseconds, in UTC ("…Z") or at a fixed offset in minutes ("…+05:30").
export function rfc3339(ms, offsetMinutes = 0, { millis = true } = {}) {
  const local = new Date(ms + offsetMinutes * MINUTE_MS).toISOString(); // 2026-11-27T20:00:00.000Z
  const stamp = millis ? local.slice(0, 23) : local.slice(0, 19);
  if (offsetMinutes === 0) return `${stamp}Z`;
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${stamp}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

// A time as the API takes it: RFC 3339 (UTC or offset) or Unix milliseconds.
export function encodeTime(rng, ms) {
  return rng.weighted([
    [4, () => ms],
    [4, () => rfc3339(ms, 0, { millis: ms % 1000 !== 0 || rng.chance(0.5) })],
    [2, () => rfc3339(ms, rng.pick([60, -300, 330, 540, -30]))],
  ])();
}

// --- streams ------------------------------------------------------------------------------

// Campaign ids, run ids and UTM values, with characters that CSV must quote and that URLs must
// escape; the all-digit ones are sometimes sent as JSON numbers.
const CID_POOL = ['1123123', '42', 'spring-sale', 'recover "carts", v2', 'café-été', 'x'];
const REF_POOL = ['run-1', '123422', 'run,2', ''];
const UTM_POOL = ['izooto', 'push_notifications', 'news, "daily"', 'line1\nline2', 'Ünicode ✓', 'a b'];

// A stream of events as the test knows them ("canonical": what the server must store) for one
// site. Returns {entries, cids, refs, base, days, hotEdges}; entries[i] = {canon, dupOf?}. About `dupRate`
// of the entries repeat an earlier event_id, some close behind (often in the same batch), some
// far; half repeat the event exactly, half change its content (the first one must win).
// About `noIdRate` of the new events carry no event_id (never duplicates).
export function generateStream(rng, { label, count, dupRate = 0.1, noIdRate = 0.07, base = Date.UTC(2026, 10, 26), days = 3 }) {
  const cids = rng.sample(CID_POOL, rng.int(3, 5));
  const refs = rng.sample(REF_POOL, rng.int(2, 3));
  const utm = Object.fromEntries(UTM_FIELDS.map((f) => [f, ['', ...rng.sample(UTM_POOL, rng.int(1, 3))]]));
  const cookies = Array.from({ length: rng.int(200, 3000) }, (_, i) => `${label}-${rng.hex(8)}-${i}`);
  // 20:00:00.000 of the middle day and the midnights: hit exactly, and 1 ms before.
  const hotEdges = [base + DAY_MS + 20 * HOUR_MS, base + DAY_MS, base + 2 * DAY_MS];
  const occurredAt = () =>
    rng.weighted([
      [8, () => rng.pick(hotEdges) - rng.pick([0, 1])],
      [
        32,
        () => {
          const size = rng.weighted([[2, DAY_MS], [4, HOUR_MS], [4, MINUTE_MS]]);
          const edge = floorTo(base + rng.int(0, days * DAY_MS - 1), size) + (size === DAY_MS ? DAY_MS : 0);
          return edge + rng.pick([0, -1, 1, -rng.int(1, 59_999), rng.int(0, 59_999)]);
        },
      ],
      [60, () => base + rng.int(0, days * DAY_MS - 1)],
    ])();
  const fresh = (n) => {
    const action = rng.weighted([[62, 'View'], [30, 'Click'], [8, 'Dismiss']]);
    return {
      event_id: rng.chance(noIdRate) ? null : `${label}-ev-${n}`,
      action,
      cookie_id: rng.pick(cookies),
      cid: rng.pick(cids),
      reference_id: rng.pick(refs),
      ...Object.fromEntries(UTM_FIELDS.map((f) => [f, rng.pick(utm[f])])),
      button: action === 'Click' ? rng.weighted([[5, 0], [3, 1], [2, 2]]) : 0,
      occurred_at_ms: occurredAt(),
    };
  };
  const entries = [];
  const originals = []; // indexes of first occurrences that carry an event_id
  while (entries.length < count) {
    if (originals.length > 0 && rng.chance(dupRate)) {
      const recent = rng.chance(0.4);
      const dupOf = recent
        ? originals[originals.length - 1 - rng.int(0, Math.min(20, originals.length - 1))]
        : rng.pick(originals);
      const original = entries[dupOf].canon;
      // A changed duplicate: other content under the same event_id.
      const canon = rng.chance(0.5) ? { ...original } : { ...fresh(entries.length), event_id: original.event_id };
      entries.push({ canon, dupOf });
      continue;
    }
    const canon = fresh(entries.length);
    if (canon.event_id !== null) originals.push(entries.length);
    entries.push({ canon });
  }
  return { entries, cids, refs, base, days, hotEdges };
}

// Splits the entries into requests (`batches`, arrays of entry indexes) posted in `waves` of 1 to
// 3 concurrent requests. A duplicate whose original is in another request of the same wave is
// made an exact copy, since which of two concurrent requests commits first is not ours to know.
export function planRequests(rng, entries) {
  const batches = [];
  for (let i = 0; i < entries.length;) {
    const size = rng.weighted([[2, () => rng.int(1, 5)], [8, () => rng.int(20, 400)]])();
    batches.push(Array.from({ length: Math.min(size, entries.length - i) }, (_, k) => i + k));
    i += size;
  }
  const waves = [];
  for (let b = 0; b < batches.length;) {
    const n = Math.min(rng.int(1, 3), batches.length - b);
    waves.push(Array.from({ length: n }, (_, k) => b + k));
    b += n;
  }
  const batchOf = new Array(entries.length);
  batches.forEach((batch, b) => batch.forEach((i) => { batchOf[i] = b; }));
  const waveOf = new Array(batches.length);
  waves.forEach((wave, w) => wave.forEach((b) => { waveOf[b] = w; }));
  entries.forEach((entry, i) => {
    if (entry.dupOf === undefined) return;
    const ob = batchOf[entry.dupOf];
    if (ob !== batchOf[i] && waveOf[ob] === waveOf[batchOf[i]]) entry.canon = { ...entries[entry.dupOf].canon };
  });
  return { batches, waves };
}

// The JSON event that says `canon`, spelled one of the ways the ingest API takes: numbers for
// all-digit ids, defaults left out or given, times in any of the accepted forms.
export function encodeEvent(rng, canon) {
  const wire = { action: canon.action, cookie_id: canon.cookie_id };
  const digits = (s) => /^[1-9][0-9]{0,14}$/.test(s);
  wire.cid = digits(canon.cid) && rng.chance(0.5) ? Number(canon.cid) : canon.cid;
  if (canon.reference_id !== '') {
    wire.reference_id = digits(canon.reference_id) && rng.chance(0.5) ? Number(canon.reference_id) : canon.reference_id;
  } else if (rng.chance(0.3)) {
    wire.reference_id = '';
  }
  for (const f of UTM_FIELDS) {
    if (canon[f] !== '' || rng.chance(0.4)) wire[f] = canon[f];
  }
  if (canon.button !== 0 || rng.chance(0.6)) wire.clicked_button = canon.button;
  if (rng.chance(0.3)) wire.notification_title = `Title ${rng.hex(4)}`;
  if (canon.event_id !== null) wire.event_id = canon.event_id;
  wire.occurred_at = encodeTime(rng, canon.occurred_at_ms);
  return wire;
}

// What the site stores: the first event of each event_id (events without one are all kept).
export function dedupe(canons) {
  const seen = new Set();
  const out = [];
  for (const c of canons) {
    if (c.event_id !== null) {
      if (seen.has(c.event_id)) continue;
      seen.add(c.event_id);
    }
    out.push(c);
  }
  return out;
}

// --- expected answers ---------------------------------------------------------------------

function zero() {
  return { views: 0, clicks: 0, b: [0, 0, 0], dismissals: 0 };
}

function add(n, e) {
  if (e.action === 'View') {
    n.views += 1;
  } else if (e.action === 'Dismiss') {
    n.dismissals += 1;
  } else {
    n.clicks += 1;
    n.b[e.button] += 1;
  }
}

export function ctr(views, clicks) {
  return views === 0 ? 0 : clicks / views;
}

// q: {cid?, reference_id?, fromMs?, toMs?, bucket: 'minute'|'hour'|'day', groupBy?}.
// Returns {totals, uniques, series: Map(bucketMs → counters), groups: Map(key → counters)}.
export function expectedStats(stored, q) {
  const minuteLo = q.fromMs === undefined ? -Infinity : floorTo(q.fromMs, MINUTE_MS);
  const hourLo = q.fromMs === undefined ? -Infinity : floorTo(q.fromMs, HOUR_MS);
  const hi = q.toMs === undefined ? Infinity : q.toMs;
  const size = BUCKETS[q.bucket];
  const totals = zero();
  const series = new Map();
  const groups = new Map();
  const cookies = new Set();
  for (const e of stored) {
    if (q.cid !== undefined && e.cid !== q.cid) continue;
    if (q.reference_id !== undefined && e.reference_id !== q.reference_id) continue;
    const hour = floorTo(e.occurred_at_ms, HOUR_MS);
    if (hour >= hourLo && hour < hi) cookies.add(e.cookie_id);
    const minute = floorTo(e.occurred_at_ms, MINUTE_MS);
    if (minute < minuteLo || minute >= hi) continue;
    add(totals, e);
    const bucket = floorTo(e.occurred_at_ms, size);
    if (!series.has(bucket)) series.set(bucket, zero());
    add(series.get(bucket), e);
    if (q.groupBy && q.groupBy !== 'button') {
      const key = e[q.groupBy];
      if (!groups.has(key)) groups.set(key, zero());
      add(groups.get(key), e);
    }
  }
  if (q.groupBy === 'button') {
    // Each button's clicks over all views, the denominator of its CTR.
    for (const b of [0, 1, 2]) groups.set(String(b), { views: totals.views, clicks: totals.b[b], b: [0, 0, 0], dismissals: 0 });
  }
  return { totals, uniques: cookies.size, series, groups };
}

// Per campaign over all time: Map(cid → counters).
export function expectedCampaigns(stored) {
  const out = new Map();
  for (const e of stored) {
    if (!out.has(e.cid)) out.set(e.cid, zero());
    add(out.get(e.cid), e);
  }
  return out;
}

function sameCtr(actual, views, clicks) {
  return actual === ctr(views, clicks);
}

// Every difference between a stats JSON answer and the model, as readable lines ("" none).
// `uniques`: compare unique_subscribers (whole-hour ranges only) within 5 % or ±2.
export function diffStats(actual, expected, q, { uniques = false } = {}) {
  const out = [];
  const check = (where, got, want) => {
    if (got !== want) out.push(`${where}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  };
  const checkCounters = (where, got, want, { buttons = true } = {}) => {
    if (!got || typeof got !== 'object') {
      out.push(`${where}: missing`);
      return;
    }
    check(`${where}.views`, got.views, want.views);
    check(`${where}.clicks`, got.clicks, want.clicks);
    check(`${where}.dismissals`, got.dismissals, want.dismissals);
    if (buttons) {
      for (const b of [0, 1, 2]) check(`${where}.clicks_by_button.${b}`, got.clicks_by_button?.[String(b)], want.b[b]);
    }
    if (!sameCtr(got.ctr, want.views, want.clicks)) {
      out.push(`${where}.ctr: expected ${ctr(want.views, want.clicks)} (${want.clicks}/${want.views}), got ${JSON.stringify(got.ctr)}`);
    }
  };
  if (!actual || typeof actual !== 'object') return [`answer is not a JSON object: ${JSON.stringify(actual)}`];
  checkCounters('totals', actual.totals, expected.totals);
  if (uniques) {
    const got = actual.totals?.unique_subscribers;
    const want = expected.uniques;
    const tolerance = Math.max(2, 0.05 * want);
    if (typeof got !== 'number' || Math.abs(got - want) > tolerance) {
      out.push(`totals.unique_subscribers: expected ${want} ± ${tolerance.toFixed(1)} (exact distinct cookie_id), got ${got}`);
    }
  }
  const error = actual.totals?.unique_subscribers_error;
  if (typeof error !== 'number' || !(error > 0 && error <= 0.05)) {
    out.push(`totals.unique_subscribers_error: expected the sketch's relative error (0 < e ≤ 0.05), got ${JSON.stringify(error)}`);
  }

  const size = BUCKETS[q.bucket];
  if (!Array.isArray(actual.series)) {
    out.push('series: not an array');
  } else {
    let previous = -Infinity;
    const seen = new Set();
    for (const [i, row] of actual.series.entries()) {
      const ms = Date.parse(row.bucket);
      if (typeof row.bucket !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(row.bucket) || Number.isNaN(ms)) {
        out.push(`series[${i}].bucket: not "YYYY-MM-DDTHH:MM:SSZ": ${JSON.stringify(row.bucket)}`);
        continue;
      }
      if (ms % size !== 0) out.push(`series[${i}].bucket ${row.bucket} is not on a ${q.bucket} boundary`);
      if (ms <= previous) out.push(`series[${i}].bucket ${row.bucket} is not after the previous bucket`);
      previous = ms;
      seen.add(ms);
      checkCounters(`series[${row.bucket}]`, row, expected.series.get(ms) ?? zero());
    }
    for (const [ms, n] of expected.series) {
      if (!seen.has(ms)) out.push(`series: bucket ${new Date(ms).toISOString()} missing (expected views ${n.views}, clicks ${n.clicks})`);
    }
  }

  if (!q.groupBy) {
    if (actual.groups !== undefined) out.push('groups: present without group_by');
  } else if (!Array.isArray(actual.groups)) {
    out.push('groups: not an array');
  } else {
    const seen = new Set();
    for (const row of actual.groups) {
      if (typeof row.key !== 'string') {
        out.push(`groups: key not a string: ${JSON.stringify(row)}`);
        continue;
      }
      if (seen.has(row.key)) out.push(`groups: key ${JSON.stringify(row.key)} twice`);
      seen.add(row.key);
      checkCounters(`groups[${JSON.stringify(row.key)}]`, row, expected.groups.get(row.key) ?? zero(), { buttons: false });
    }
    for (const [key, n] of expected.groups) {
      if (!seen.has(key)) out.push(`groups: key ${JSON.stringify(key)} missing (expected views ${n.views}, clicks ${n.clicks})`);
    }
  }
  return out;
}

// The stats route's query string for q (URLSearchParams escapes ',', '"', '+' and the rest).
// `from`/`to` are sent as q.fromText/q.toText when given (other spellings of the same time).
export function statsQueryString(q) {
  const params = new URLSearchParams();
  if (q.cid !== undefined) params.set('cid', q.cid);
  if (q.reference_id !== undefined) params.set('reference_id', q.reference_id);
  if (q.fromMs !== undefined) params.set('from', String(q.fromText ?? q.fromMs));
  if (q.toMs !== undefined) params.set('to', String(q.toText ?? q.toMs));
  if (!q.defaultBucket) params.set('bucket', q.bucket);
  if (q.groupBy) params.set('group_by', q.groupBy);
  return params.toString();
}
