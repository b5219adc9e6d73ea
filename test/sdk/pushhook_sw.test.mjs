// The SDK's own logic, under Node: which button was clicked, what event a notification makes,
// how the queue is cut into requests, and what each answer means for the events sent.
import assert from 'node:assert/strict';
import test from 'node:test';

globalThis.self = globalThis;  // the SDK assigns self.Pushhook, as in a worker
const { Pushhook } = await import('../../sdk/pushhook-sw.mjs');
const { buttonIndex, buildEvent, makeBatches, decide, refusedOnly, overflow, ingestUrl } = Pushhook._internal;

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

test('an event carries the campaign fields of data.pushhook as strings, absent ones as ""', () => {
  const e = buildEvent('Click', NOTIFICATION, 2, 'id-1', 1700000000000);
  assert.deepEqual(e, {
    action: 'Click', notification_title: 'Sale <b>today</b>', clicked_button: 2, event_id: 'id-1',
    occurred_at: 1700000000000, cid: '1123123', cookie_id: '7e32b7a1', reference_id: '123422',
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
  for (const b of cut) assert.ok(JSON.stringify(b).length <= Pushhook._internal.MAX_BATCH_BYTES, 'under 60 KiB');
  assert.deepEqual(cut.flat(), big);
  assert.deepEqual(makeBatches([]), []);
});

test('202 removes the events; a refusal drops them; 429, 5xx and no answer keep them', () => {
  assert.equal(decide(202), 'sent');
  for (const status of [400, 401, 403, 404, 413, 415, 422]) assert.equal(decide(status), 'drop', String(status));
  for (const status of [429, 500, 502, 503, 0]) assert.equal(decide(status), 'keep', String(status));
  assert.equal(decide(200), 'keep', 'anything but 202 is not an acknowledgement');
});

test('a refusal that names some events of a batch drops only those', () => {
  const refusal = (indexes) => ({ error: { code: 'beacon_invalid', details: indexes.map((index) => ({ index, field: 'beacon', message: 'm' })) } });
  assert.deepEqual([...refusedOnly(refusal([0, 2]), 3)], [0, 2]);
  assert.equal(refusedOnly(refusal([0, 1, 2]), 3), null, 'all of them: the batch goes');
  assert.equal(refusedOnly(refusal([]), 3), null, 'none named: the batch goes');
  assert.equal(refusedOnly(refusal([5, -1, 1.5]), 3), null, 'indexes outside the batch name nothing');
  assert.equal(refusedOnly({ error: { code: 'unauthorized' } }, 3), null);
  assert.equal(refusedOnly(null, 3), null, 'no JSON body');
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
