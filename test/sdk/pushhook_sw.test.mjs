// The SDK's own logic, under Node: which button was clicked, what event a notification makes,
// how the queue is cut into requests, and what each answer means for the events sent.
import assert from 'node:assert/strict';
import test from 'node:test';

globalThis.self = globalThis;  // the SDK assigns self.Pushhook, as in a worker
const { Pushhook } = await import('../../sdk/pushhook-sw.mjs');
const {
  buttonIndex, buildEvent, cutUtf8, makeBatches, decide, namedEvents, retryAfterMs, givesUp, overflow, ingestUrl,
  refusalWarning, refusalDetails,
} = Pushhook._internal;
const bytes = (text) => Buffer.byteLength(text, 'utf8');

// Runs `fn` with console.warn recorded; returns what it warned.
function warnings(fn) {
  const seen = [];
  const original = console.warn;
  console.warn = (...args) => seen.push(args.join(' '));
  try {
    fn();
  } finally {
    console.warn = original;
  }
  return seen;
}

const ACTIONS = [{ action: 'read', title: 'Read' }, { action: 'later', title: 'Later' }];
const NOTIFICATION = {
  title: 'Sale <b>today</b>',
  actions: ACTIONS,
  data: {
    pushhook: {
      cid: 1123123, cookie_id: '7e32b7a1', reference_id: '123422', utm_source: 'izooto',
      utm_medium: 'push_notifications', beacon: 'v1.1798761600.sig',
    },
  },
};

test('the clicked button is the action\'s position, the body is 0', () => {
  assert.equal(buttonIndex(ACTIONS, 'read'), 1);
  assert.equal(buttonIndex(ACTIONS, 'later'), 2);
  assert.equal(buttonIndex(ACTIONS, ''), 0);
  assert.equal(buttonIndex(ACTIONS, undefined), 0);
  assert.equal(buttonIndex(ACTIONS, 'unknown'), 0, 'an action that is not shown counts as the body');
  assert.equal(buttonIndex([...ACTIONS, { action: 'third' }], 'third'), 0, 'only two buttons count');
  assert.equal(buttonIndex(undefined, 'read'), 0);
});

test('an event carries the campaign fields of data.pushhook as given, absent ones as ""', () => {
  const e = buildEvent('Click', NOTIFICATION, 2, 'id-1', 1700000000000);
  assert.deepEqual(e, {
    action: 'Click', notification_title: 'Sale <b>today</b>', clicked_button: 2, event_id: 'id-1',
    occurred_at: 1700000000000, cid: 1123123, cookie_id: '7e32b7a1', reference_id: '123422',
    utm_campaign: '', utm_content: '', utm_medium: 'push_notifications', utm_source: 'izooto',
    utm_term: '', beacon: 'v1.1798761600.sig',
  });
});

test('a View and a Dismiss have button 0; no beacon field without a beacon', () => {
  const plain = { title: 't', data: { pushhook: { cid: 'c', cookie_id: 'u' } } };
  const view = buildEvent('View', plain, 2, 'id', 1);
  assert.equal(view.clicked_button, 0);
  assert.equal('beacon' in view, false);
  assert.equal(buildEvent('Dismiss', plain, 1, 'id', 1).clicked_button, 0);
  assert.equal(buildEvent('View', { title: 't', data: { pushhook: { cid: 'c', beacon: '' } } }, 0, 'id', 1).beacon, undefined);
});

test('a notification without data.pushhook is not reported', () => {
  assert.equal(buildEvent('View', { title: 't' }, 0, 'id', 1), null);
  assert.equal(buildEvent('View', { title: 't', data: { url: '/x' } }, 0, 'id', 1), null);
  assert.equal(buildEvent('View', { title: 't', data: { pushhook: 'cid' } }, 0, 'id', 1), null);
});

test('requests carry at most 100 events and stay under the keepalive limit', () => {
  const small = Array.from({ length: 250 }, (_, i) => ({ event_id: String(i), cid: 'c' }));
  const batches = makeBatches(small);
  assert.deepEqual(batches.map((b) => b.length), [100, 100, 50]);
  assert.deepEqual(batches.flat(), small, 'in order, each once');

  const big = Array.from({ length: 100 }, (_, i) => ({ event_id: String(i), notification_title: 'x'.repeat(1000) }));
  const cut = makeBatches(big);
  assert.ok(cut.length > 1);
  for (const b of cut) assert.ok(bytes(JSON.stringify(b)) <= Pushhook._internal.MAX_BATCH_BYTES, 'under 60 KiB');
  assert.deepEqual(cut.flat(), big);
  assert.deepEqual(makeBatches([]), []);
});

test('batches are measured in UTF-8 bytes, not UTF-16 units', () => {
  // 100 events with 250-character Japanese titles (750 bytes, within ingest's 1,024): about
  // 30 K UTF-16 units but 80 KB of UTF-8, more than a keepalive request may carry as one.
  const title = 'カートに残っている商品がまもなく売り切れます'.repeat(12).slice(0, 250);
  const events = Array.from({ length: 100 }, (_, i) => ({ event_id: String(i), notification_title: title, cid: 'c' }));
  assert.ok(JSON.stringify(events).length < Pushhook._internal.MAX_BATCH_BYTES);
  assert.ok(bytes(JSON.stringify(events)) > 64 * 1024);
  const batches = makeBatches(events);
  assert.ok(batches.length >= 2);
  for (const b of batches) assert.ok(bytes(JSON.stringify(b)) <= Pushhook._internal.MAX_BATCH_BYTES);
  assert.deepEqual(batches.flat(), events);
});

test('an event larger than a keepalive body alone goes in a batch of its own', () => {
  const huge = { event_id: 'huge', cookie_id: 'u'.repeat(70_000) };
  const batches = makeBatches([{ event_id: 'a' }, huge, { event_id: 'b' }]);
  assert.deepEqual(batches.map((b) => b.map((e) => e.event_id)), [['a'], ['huge'], ['b']]);
});

test('202 sends; 413 splits, or drops a single event; everything else keeps and retries', () => {
  assert.deepEqual(decide(202, null, 5), { verdict: 'sent' });
  assert.deepEqual(decide(413, null, 5), { verdict: 'split' });
  assert.deepEqual(decide(413, null, 1), { verdict: 'drop' });
  for (const status of [0, 200, 204, 401, 403, 404, 408, 409, 415, 422, 429, 500, 502, 503]) {
    assert.deepEqual(decide(status, { error: { code: 'x' } }, 3), { verdict: 'retry' }, String(status));
  }
  // A proxy's HTML 404 during a deploy, or a wrong key: not the events' fault.
  assert.deepEqual(decide(404, null, 3), { verdict: 'retry' });
  assert.deepEqual(decide(401, { error: { code: 'unauthorized', details: [{ index: 0 }] } }, 3), { verdict: 'retry' });
});

test('400 invalid_event and 401 beacon_* drop only the events they name', () => {
  const refusal = (code, indexes) => ({ error: { code, details: indexes.map((index) => ({ index, field: 'f', message: 'm' })) } });
  assert.deepEqual([...decide(400, refusal('invalid_event', [0, 2]), 3).named], [0, 2]);
  assert.deepEqual([...decide(400, refusal('invalid_event', [0, 1, 2]), 3).named], [0, 1, 2], 'all named: all go');
  for (const code of ['beacon_invalid', 'beacon_expired', 'beacon_required']) {
    const d = decide(401, refusal(code, [1]), 3);
    assert.equal(d.verdict, 'drop-named', code);
    assert.deepEqual([...d.named], [1]);
  }
  assert.deepEqual(decide(400, refusal('invalid_event', []), 3), { verdict: 'retry' }, 'none named: kept');
  assert.deepEqual(decide(400, refusal('invalid_json', [0]), 3), { verdict: 'retry' }, 'not about events');
  assert.deepEqual(decide(400, refusal('invalid_event', [5, -1, 1.5]), 3), { verdict: 'retry' }, 'outside the batch');
  assert.deepEqual([...namedEvents(null, 3)], []);
  assert.deepEqual([...namedEvents({ error: { details: [null, { index: 2 }] } }, 3)], [2]);
});

test('Retry-After is read as seconds or as a date, and capped', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(retryAfterMs('30', now), 30_000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000);
  assert.equal(retryAfterMs('Tue, 31 Dec 2024 23:00:00 GMT', now), 0, 'a date in the past');
  assert.equal(retryAfterMs('31536000', now), Pushhook._internal.MAX_PAUSE_MS, 'a year is capped');
  assert.equal(retryAfterMs(null, now), 0);
  assert.equal(retryAfterMs('soon', now), 0);
  assert.equal(retryAfterMs('-5', now), 0);
});

test('an event is given up only after enough refusals and enough time', () => {
  const { GIVE_UP_TRIES, GIVE_UP_AGE_MS } = Pushhook._internal;
  const now = 10 * GIVE_UP_AGE_MS;
  const old = now - GIVE_UP_AGE_MS;
  assert.equal(givesUp({ event: { occurred_at: old }, tries: GIVE_UP_TRIES }, now), true);
  assert.equal(givesUp({ event: { occurred_at: old }, tries: GIVE_UP_TRIES - 1 }, now), false, 'too few tries');
  assert.equal(givesUp({ event: { occurred_at: old + 1 }, tries: 1000 }, now), false, 'too recent');
});

test('text is cut to a byte limit at a UTF-8 character boundary, and made well-formed', () => {
  assert.equal(cutUtf8('abc', 10), 'abc');
  assert.equal(cutUtf8('abcdef', 3), 'abc');
  assert.equal(cutUtf8('ab日', 4), 'ab', 'a 3-byte character that does not fit goes whole');
  assert.equal(cutUtf8('ab日', 5), 'ab日');
  assert.equal(cutUtf8('a😀', 4), 'a', 'a 4-byte character too');
  assert.equal(cutUtf8('x\ud800y'), 'x\ufffdy', 'a lone surrogate, which a JSON parser may refuse');
  const title = 'L'.repeat(1023) + '日本';
  assert.equal(cutUtf8(title, 1024), 'L'.repeat(1023));
});

test('the title is cut to 1,024 bytes and UTM fields to 256; ids are never cut', () => {
  const long = 'é'.repeat(300);  // 600 bytes
  const e = buildEvent('View', {
    title: '日'.repeat(400),  // 1,200 bytes
    data: { pushhook: { cid: 'c'.repeat(100), cookie_id: 'u'.repeat(200), reference_id: 'r'.repeat(80), utm_term: long, utm_source: long } },
  }, 0, 'id', 1);
  assert.equal(e.notification_title, '日'.repeat(341));
  assert.equal(bytes(e.notification_title), 1023);
  assert.equal(e.utm_term, 'é'.repeat(128));
  assert.equal(e.utm_source, 'é'.repeat(128));
  assert.equal(e.cid, 'c'.repeat(100), 'a cut id would name another campaign: ingest refuses it instead');
  assert.equal(e.cookie_id, 'u'.repeat(200));
  assert.equal(e.reference_id, 'r'.repeat(80));
});

test('campaign fields of another type are left out with a warning, not made into strings', () => {
  let e;
  const warned = warnings(() => {
    e = buildEvent('View', {
      title: 't',
      data: { pushhook: { cid: { id: 5 }, cookie_id: true, reference_id: 77, utm_source: ['a', 'b'], utm_term: 5, utm_medium: 'm' } },
    }, 0, 'id', 1);
  });
  assert.equal('cid' in e, false);
  assert.equal('cookie_id' in e, false);
  assert.equal(e.reference_id, 77, 'numbers are sent as numbers for cid and reference_id');
  assert.equal('utm_source' in e, false);
  assert.equal('utm_term' in e, false, 'but not for the other fields');
  assert.equal(e.utm_medium, 'm');
  assert.equal(warned.length, 4);
  for (const field of ['cid', 'cookie_id', 'utm_source', 'utm_term']) {
    assert.ok(warned.some((w) => w.includes(`data.pushhook.${field} `)), field);
  }
  const numbers = warnings(() => {
    e = buildEvent('View', { title: 't', data: { pushhook: { cid: -1, reference_id: Number.MAX_SAFE_INTEGER } } }, 0, 'id', 1);
  });
  assert.deepEqual([e.cid, e.reference_id, numbers.length], [-1, 9007199254740991, 0], 'integers JavaScript holds exactly');
  for (const value of [12345678901234567890, 1.5, NaN, Infinity]) {
    const odd = warnings(() => {
      e = buildEvent('View', { title: 't', data: { pushhook: { cid: value, reference_id: value } } }, 0, 'id', 1);
    });
    assert.equal('cid' in e, false, `${value} may have been rounded: sent, it would be another id`);
    assert.equal('reference_id' in e, false);
    assert.deepEqual(odd, [
      'pushhook: data.pushhook.cid is a number JavaScript may have rounded: send it as a string; left out',
      'pushhook: data.pushhook.reference_id is a number JavaScript may have rounded: send it as a string; left out',
    ]);
  }
});

test('the queue keeps the newest 1,000 events', () => {
  assert.equal(overflow(999), 0);
  assert.equal(overflow(1000), 0);
  assert.equal(overflow(1001), 1);
  assert.equal(overflow(1500), 500);
  assert.equal(Pushhook._internal.MAX_QUEUE, 1000);
});

test('the ingest key goes in the query, escaped', () => {
  assert.equal(ingestUrl('https://h/v1/events', 'pk_a+b'), 'https://h/v1/events?key=pk_a%2Bb');
  assert.equal(ingestUrl('https://h/v1/events?x=1', 'k'), 'https://h/v1/events?x=1&key=k');
});

test('init refuses a configuration without endpoint or key', () => {
  assert.throws(() => Pushhook.init({ endpoint: 'https://h/v1/events' }), /Pushhook.init needs \{endpoint, key\}/);
  assert.throws(() => Pushhook.init(), TypeError);
});

// A relative endpoint would post the events and the key to the site's own server; an empty key
// or a dismiss read from text would fail without a word. Each is refused, saying what it got.
test('init refuses an endpoint that is not an absolute http(s) URL, an empty key, a dismiss that is not a boolean', () => {
  const refused = (options, message) => assert.throws(() => Pushhook.init(options), { name: 'TypeError', message });
  for (const endpoint of ['pushhook.example.com/v1/events', '/v1/events', 'ftp://h/v1/events', '']) {
    refused({ endpoint, key: 'pk_1' }, 'Pushhook.init: endpoint must be an absolute http or https URL, such as ' +
      `https://pushhook.example.com/v1/events, not ${JSON.stringify(endpoint)}`);
  }
  refused({ endpoint: 'https://h/v1/events', key: '' }, "Pushhook.init: key must be the site's ingest key, not empty");
  refused({ endpoint: 'https://h/v1/events', key: 'pk_1', dismiss: 'true' }, 'Pushhook.init: dismiss must be true or false, not "true"');
});

test('show before init shows the notification and says its View is not reported', async () => {
  const shown = [];
  globalThis.registration = { showNotification: async (title) => { shown.push(title); } };
  const seen = [];
  const original = console.warn;
  console.warn = (...args) => seen.push(args.join(' '));
  try {
    await Pushhook.show('Hello', {});
  } finally {
    console.warn = original;
    delete globalThis.registration;
  }
  assert.deepEqual(shown, ['Hello']);
  assert.deepEqual(seen, ['pushhook: show() before init(): this View is not reported']);
});

test('a refusal that waiting will not fix is told to the console; the rest are not', () => {
  assert.equal(refusalWarning(401, { error: { code: 'unauthorized', message: 'unknown ingest key' } }),
    'pushhook: ingest refused the events (HTTP 401 unauthorized: unknown ingest key); they stay queued and are sent again later');
  assert.equal(refusalWarning(404, null),
    'pushhook: ingest refused the events (HTTP 404); they stay queued and are sent again later');
  for (const status of [0, 202, 408, 429, 500, 503]) assert.equal(refusalWarning(status, null), null, String(status));
});

test('a warning for dropped events names each reason the server gave, once, for the events sent', () => {
  const body = (details) => ({ error: { code: 'invalid_event', message: 'x', details } });
  assert.equal(refusalDetails(body([{ index: 0, field: 'cid', message: 'is 70 bytes; at most 64' },
    { index: 2, field: 'beacon', message: 'has expired' }, { index: 3, field: 'beacon', message: 'has expired' }]), 4),
  ': cid is 70 bytes; at most 64; beacon has expired');
  assert.equal(refusalDetails(body([{ index: 9, field: 'cid', message: 'not in this request' }]), 4), '');
  assert.equal(refusalDetails(body('not a list'), 4), '');
  assert.equal(refusalDetails(null, 4), '');
  const many = Array.from({ length: 7 }, (_, i) => ({ index: i, field: `f${i}`, message: 'bad' }));
  assert.equal(refusalDetails(body(many), 7), ': f0 bad; f1 bad; f2 bad; f3 bad; f4 bad; and 2 more');
});
