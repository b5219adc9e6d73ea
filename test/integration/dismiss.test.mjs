// DESIGN sections 1 and 6: "Dismiss" (the notification closed without a click) is ingested,
// counted in the statistics as `dismissals`, and delivered only to endpoints whose `events` list
// names it, so that a receiver written for View and Click never meets one.
import assert from 'node:assert/strict';
import { expectStatus, itest, makeEvent, sleep, waitFor } from '../helpers/harness.mjs';

itest('Dismiss reaches only the endpoints that ask for it, and is counted', async (fx) => {
  const defaults = await fx.startRecorder();
  const dismissals = await fx.startRecorder();
  const serve = await fx.startServe();
  const site = await serve.createSite('Dismiss');
  const plain = await serve.createEndpoint(site.id, { url: `${defaults.url}/hooks` });
  assert.deepEqual(plain.events, ['View', 'Click'], 'the default list leaves Dismiss out');
  const all = await serve.createEndpoint(site.id, {
    url: `${dismissals.url}/hooks`, events: ['View', 'Click', 'Dismiss'],
  });
  assert.deepEqual(all.events, ['View', 'Click', 'Dismiss']);

  const batch = [
    makeEvent(1),
    makeEvent(2, { action: 'Dismiss' }),
    makeEvent(3, { action: 'Click', clicked_button: 2 }),
    makeEvent(4, { action: 'Dismiss' }),
  ];
  assert.deepEqual(expectStatus(await serve.ingest(site.ingest_key, batch), 202, 'POST /v1/events'),
    { accepted: 4, duplicates: 0 });

  await waitFor(() => dismissals.requests.length >= 4, { what: 'four deliveries to the Dismiss endpoint' });
  await waitFor(() => defaults.requests.length >= 2, { what: 'two deliveries to the default endpoint' });
  const actions = (recorder) => recorder.requests.map((r) => JSON.parse(r.body)).map((p) => `${p.action}/${p.clicked_button}`).sort();
  assert.deepEqual(actions(dismissals), ['Click/2', 'Dismiss/0', 'Dismiss/0', 'View/0']);
  const dismiss = dismissals.requests.map((r) => r.body).find((b) => b.startsWith('{"action":"Dismiss"'));
  assert.equal(dismiss,
    '{"action":"Dismiss","cookie_id":"cookie-000002","cid":"555","notification_title":"Title 2",' +
    '"reference_id":"run-1","utm_campaign":"","utm_content":"","utm_medium":"","utm_source":"izooto",' +
    '"utm_term":"","clicked_button":0}');
  // Anything the default endpoint would get has had time to arrive beside the two it did.
  await sleep(500);
  assert.deepEqual(actions(defaults), ['Click/2', 'View/0']);

  const stats = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats?cid=555`), 200, 'GET stats');
  assert.equal(stats.totals.views, 1);
  assert.equal(stats.totals.clicks, 1);
  assert.equal(stats.totals.dismissals, 2);
  assert.equal(stats.totals.ctr, 1, 'a dismissal is not a view: CTR stays clicks / views');
  assert.equal(stats.series.reduce((sum, s) => sum + s.dismissals, 0), 2);
  const bySource = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/stats?group_by=utm_source`), 200, 'GET stats by source');
  assert.deepEqual(bySource.groups.map((g) => [g.key, g.dismissals]), [['izooto', 2]]);
  const campaigns = expectStatus(await serve.api('GET', `/v1/sites/${site.id}/campaigns`), 200, 'GET campaigns');
  assert.equal(campaigns.data.find((c) => c.cid === '555').dismissals, 2);

  // Turning Dismiss on later is a PATCH of the list.
  const patched = expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${plain.id}`,
    { events: ['Dismiss'] }), 200, 'PATCH events');
  assert.deepEqual(patched.events, ['Dismiss']);
  expectStatus(await serve.ingest(site.ingest_key, makeEvent(5, { action: 'Dismiss' })), 202, 'POST a Dismiss');
  await waitFor(() => defaults.requests.length >= 3, { what: 'the Dismiss after the PATCH' });
  assert.equal(JSON.parse(defaults.requests[2].body).action, 'Dismiss');
});

itest('a Dismiss with a button is refused with the field named', async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Dismiss button');
  const answer = await serve.ingest(site.ingest_key, makeEvent(1, { action: 'Dismiss', clicked_button: 1 }));
  const body = expectStatus(answer, 400, 'POST a Dismiss with a button');
  assert.deepEqual(body.error.details, [{ index: 0, field: 'clicked_button', message: 'must be 0 for a Dismiss' }]);
});
