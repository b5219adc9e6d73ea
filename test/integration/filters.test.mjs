// DESIGN section 3: an endpoint's `filter` ({field: [values]} over cid, reference_id and the UTM
// fields) decides which events it is sent, on create and PATCH, and a replay sends only what the
// filter takes. Every bad filter is a 400 whose message names what is wrong, and changes nothing.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, payloadFor, sleep, waitFor } from '../helpers/harness.mjs';

itest('filters: each endpoint gets exactly the events its filter takes; PATCH and replay honour it', async (fx) => {
  const recorders = { all: await fx.startRecorder(), spring: await fx.startRecorder(), mail: await fx.startRecorder() };
  const serve = await fx.startServe();
  const site = await serve.createSite('Filters');
  const all = await serve.createEndpoint(site.id, { url: `${recorders.all.url}/all` });
  assert.equal(all.filter, null, 'no filter reads as null');
  const spring = await serve.createEndpoint(site.id, {
    url: `${recorders.spring.url}/spring`, filter: { cid: ['spring', 2026], reference_id: ['run-1'] },
  });
  assert.deepEqual(spring.filter, { cid: ['spring', '2026'], reference_id: ['run-1'] }, 'numbers become their decimal text, as on ingest');
  const mail = await serve.createEndpoint(site.id, { url: `${recorders.mail.url}/mail`, filter: { utm_source: ['mail', ''] } });

  const events = [
    makeEvent(1, { cid: 'spring' }), // spring (run-1), not mail (izooto)
    makeEvent(2, { cid: 'spring', reference_id: 'run-2', utm_source: 'mail' }), // mail only
    makeEvent(3, { cid: 2026 }), // spring
    makeEvent(4, { cid: 'autumn', utm_source: '' }), // mail (no utm_source)
    makeEvent(5, { cid: 'autumn' }), // all only
  ].map((e, i) => ({ ...e, event_id: `f-${i + 1}` }));
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const bodies = (r) => r.requests.map((q) => q.body).sort();
  const expectDelivered = async (want) => {
    await waitFor(() => Object.entries(want).every(([name, list]) => recorders[name].requests.length >= list.length),
      { what: 'the deliveries the filters let through' });
    await sleep(300); // anything a filter should have stopped would have come by now
    for (const [name, list] of Object.entries(want)) {
      assert.deepEqual(bodies(recorders[name]), list.map((e) => payloadFor(e)).sort(), `${name} got exactly its events`);
    }
  };
  await expectDelivered({ all: events, spring: [events[0], events[2]], mail: [events[1], events[3]] });

  // PATCH: the next events go by the new filter; null removes it.
  const patched = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${spring.id}`,
    { filter: { utm_term: ['t1'] } }), 200, 'PATCH filter');
  assert.deepEqual(patched.filter, { utm_term: ['t1'] });
  const later = [makeEvent(6, { cid: 'spring', event_id: 'f-6' }), makeEvent(7, { cid: 'x', utm_term: 't1', event_id: 'f-7' })];
  expectStatus(await serve.ingest(site.ingest_key, later), 202, 'ingest after PATCH');
  await expectDelivered({ all: [...events, ...later], spring: [events[0], events[2], later[1]], mail: [events[1], events[3]] });
  const cleared = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${mail.id}`, { filter: null }), 200, 'PATCH filter null');
  assert.equal(cleared.filter, null);

  // Replay to the spring endpoint (now utm_term t1): only f-7 of the seven stored events.
  for (const r of Object.values(recorders)) r.requests.length = 0;
  const window = { since: new Date(Date.now() - 3600_000).toISOString(), until: new Date(Date.now() + 3600_000).toISOString() };
  const replay = expectStatus(await serve.api('POST', `/v1/sites/${site.id}/endpoints/${spring.id}/replay`, window), 202, 'replay');
  assert.equal(replay.replayed, 1, 'the replay counts what the filter takes');
  await expectDelivered({ spring: [later[1]] });
});

itest('filters: every bad filter is a 400 naming what is wrong, and changes nothing', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Bad filters');
  const recorder = await fx.startRecorder();
  const endpoint = await serve.createEndpoint(site.id, { url: `${recorder.url}/h`, filter: { cid: ['keep'] } });
  const many = Array.from({ length: 1001 }, (_, i) => `c${i}`);
  const cases = [
    ['not an object', ['cid'], "field 'filter' must be an object of field names to lists of values, or null"],
    ['an unknown field', { cookie_id: ['a'] },
      "filter names an unknown field 'cookie_id'; it may name cid, reference_id, utm_campaign, utm_content, utm_medium, utm_source and utm_term"],
    ['notification_title is not filterable', { notification_title: ['a'] },
      "filter names an unknown field 'notification_title'; it may name cid, reference_id, utm_campaign, utm_content, utm_medium, utm_source and utm_term"],
    ['an empty list', { cid: [] }, 'filter.cid must be a non-empty array of strings'],
    ['a list that is not one', { utm_source: 'izooto' }, 'filter.utm_source must be a non-empty array of strings'],
    ['1,001 values', { cid: many }, 'filter.cid has 1001 values; at most 1000'],
    ['a null value', { reference_id: ['a', null] }, 'filter.reference_id[1] must be a string or a number'],
    ['a number for a UTM field', { utm_medium: [5] }, 'filter.utm_medium[0] must be a string'],
    ['an empty cid', { cid: [''] }, 'filter.cid[0] is empty; every event has a cid'],
    ['a cid over 64 bytes', { cid: ['x'.repeat(65)] }, 'filter.cid[0] is 65 bytes; at most 64'],
    ['a reference_id over 64 bytes', { reference_id: ['r'.repeat(65)] }, 'filter.reference_id[0] is 65 bytes; at most 64'],
    ['a UTM value over 256 bytes', { utm_campaign: ['ok', 'é'.repeat(129)] }, 'filter.utm_campaign[1] is 258 bytes; at most 256'],
    ['a control character in a cid', { cid: ['a\nb'] }, 'filter.cid[0] must not contain control characters'],
    ['NUL in a UTM value', { utm_medium: ['a\u0000b'] }, 'filter.utm_medium[0] must not contain NUL characters'],
  ];
  for (const [what, filter, message] of cases) {
    for (const [method, path] of [['POST', `/v1/sites/${site.id}/endpoints`], ['PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`]]) {
      const body = method === 'POST' ? { url: `${recorder.url}/h2`, filter } : { filter };
      const res = await serve.api(method, path, body);
      assert.equal(res.status, 400, `${method} with ${what}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.equal(res.json?.error?.message, message, `${method} with ${what}`);
    }
  }
  const after = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/endpoints`), 200, 'list');
  assert.equal(after.data.length, 1, 'no endpoint was made');
  assert.deepEqual(after.data[0].filter, { cid: ['keep'] }, 'the filter is as it was');
  // The edges that are allowed: 1,000 values, 64 and 256 bytes, "" for an absent UTM field.
  const edges = { cid: many.slice(0, 1000), reference_id: ['r'.repeat(64), ''], utm_term: ['t'.repeat(256)] };
  const ok = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { filter: edges }), 200, 'edges');
  assert.equal(ok.filter.cid.length, 1000);
  assert.deepEqual(ok.filter.reference_id, edges.reference_id);
});
