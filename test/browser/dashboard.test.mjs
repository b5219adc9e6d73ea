// The dashboard (DESIGN section 8) in real headless Chromium against a real `pushhook serve`:
// a person signs in with a token, and every number on screen must equal what the API says; each
// endpoint action must change what the API then says; a site token sees its site only, a read
// token changes nothing; event text stays text; no console error or CSP violation occurs.
// Full-page screenshots of each view land in build/screenshots/dashboard-*.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { SCREENSHOTS, haveChromium, openBrowser, screenshot } from '../helpers/browser.mjs';
import { SAMPLE_EVENT, expectStatus, freePort, itest, makeEvent, stop, waitFor } from '../helpers/harness.mjs';

const SKIP = haveChromium() ? false : 'Chromium is not installed (scripts/install-deps installs it)';
const HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">';
const LONG_CID = `bulk-${'x'.repeat(59)}`; // 64 bytes, the longest cid

// A site with two campaigns of known events, one endpoint on a live `pushhook receive` and one
// on a port where nothing listens (its messages fail).
async function seed(fx) {
  // A circuit that never opens, so the dead endpoint's messages run out of retries at once.
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-'), retrySchedule: '50ms',
    args: ['--circuit-threshold', '1000'] });
  const site = await serve.createSite('Shoes & Co');
  const receivePort = await freePort();
  const live = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${receivePort}/hooks`, description: 'CRM' });
  const receive = await fx.startReceive({ secret: live.secret, listen: `127.0.0.1:${receivePort}` });
  const deadPort = await freePort();
  const dead = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${deadPort}/gone` });
  const events = [];
  for (let i = 0; i < 12; ++i) events.push(makeEvent(i, { cid: 'spring', notification_title: HOSTILE_TITLE, utm_source: i % 2 ? 'izooto' : 'mail' }));
  for (let i = 0; i < 5; ++i) events.push(makeEvent(i, { action: 'Click', cid: 'spring', clicked_button: i % 3, notification_title: HOSTILE_TITLE }));
  for (let i = 0; i < 3; ++i) events.push(makeEvent(100 + i, { cid: 'autumn', reference_id: i === 2 ? 'run-2' : 'run-1' }));
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const api = async (path, token) => expectStatus(await serve.api('GET', path, undefined, token), 200, `GET ${path}`);
  await waitFor(async () => (await api(`/v1/sites/${site.id}/messages?status=failed&endpoint=${dead.id}`)).data.length === events.length,
    { timeoutMs: 30_000, what: 'the dead endpoint\'s messages to fail' });
  return { serve, site, live, dead, receive, api, events };
}

async function signIn(page, baseUrl, token) {
  await page.goto(`${baseUrl}/`);
  await page.getByLabel('Operator or site token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const text = (page, testId) => page.getByTestId(testId).textContent();
// A campaign's row: its cid and title (one cell, the title under the cid), then its five numbers.
async function campaignRow(page, cid) {
  const row = page.locator(`tr[data-cid="${cid}"]`);
  const title = (await row.locator('.sub').count()) === 0 ? '' : await row.locator('.sub').textContent();
  return [await row.locator('td a').first().textContent(), title, ...(await row.locator('td').allTextContents()).slice(1, 6)];
}
// The element with the focus: its text, whether it is an action's result, whether it is in view.
const focused = (page) => page.evaluate(() => {
  const el = document.activeElement;
  const box = el.getBoundingClientRect();
  return { text: el.textContent, result: el.classList.contains('result'), inView: box.top >= 0 && box.bottom <= window.innerHeight };
});
// Fails the test if the page opens an alert, confirm or prompt: the dashboard asks and answers in the page.
function noDialogs(page) {
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return dialogs;
}
const count = (n) => new Intl.NumberFormat('en-US').format(n);
const percent = (r) => `${(r * 100).toFixed(1)} %`;

itest('an operator signs in and reads the numbers the API gives, and event text stays text', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { page, errors } = await openBrowser(fx);
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  assert.ok(!(await page.url()).includes(s.serve.adminToken), 'the token is never in the URL');

  const totals = (await s.api(`/v1/sites/${s.site.id}/stats`)).totals;
  assert.equal(await text(page, 'site-views'), count(totals.views));
  assert.equal(await text(page, 'site-clicks'), count(totals.clicks));
  assert.equal(await text(page, 'site-ctr'), percent(totals.ctr));
  assert.equal(await text(page, 'failed-messages'), count(s.events.length));
  await page.getByTestId('queue-depth').waitFor();
  await screenshot(page, 'dashboard-overview');
  // The overview follows new events by itself (it polls every 10 s).
  const oneMore = makeEvent(500, { cid: 'autumn' });
  expectStatus(await s.serve.ingest(s.site.ingest_key, [oneMore]), 202, 'one more view');
  s.events.push(oneMore);
  const later = (await s.api(`/v1/sites/${s.site.id}/stats`)).totals;
  assert.equal(later.views, totals.views + 1);
  await waitFor(async () => (await text(page, 'site-views')) === count(later.views), { timeoutMs: 15_000, what: 'the overview to show the new view' });

  await page.getByRole('link', { name: 'Campaigns' }).click();
  const campaigns = (await s.api(`/v1/sites/${s.site.id}/campaigns`)).data;
  await page.locator('tr[data-cid]').first().waitFor();
  for (const c of campaigns) {
    assert.deepEqual(await campaignRow(page, c.cid), [c.cid, c.title, count(c.views), count(c.clicks), percent(c.ctr),
      count(c.dismissals), count(c.unique_subscribers)]);
  }
  const shown = () => page.locator('tr[data-cid]').evaluateAll((rows) => rows.map((r) => r.dataset.cid));
  const showsSoon = async (want, what) => {
    await waitFor(async () => JSON.stringify(await shown()) === JSON.stringify(want), { what: `${what}: ${JSON.stringify(want)}` })
      .catch(async (error) => { throw new Error(`${error.message}; the page shows ${JSON.stringify(await shown())}`); });
  };
  // Sorting asks the server (it spans every campaign): the page's order is the API's.
  await page.getByRole('button', { name: 'Views' }).click();
  const byViews = (await s.api(`/v1/sites/${s.site.id}/campaigns?sort=views&order=desc`)).data.map((c) => c.cid);
  await showsSoon(byViews, 'sorted by views, most first');
  await page.getByRole('button', { name: /^Views/ }).click();
  await showsSoon([...byViews].reverse(), 'a second click reverses it');
  assert.equal(await page.locator('th[aria-sort="ascending"]').textContent(), 'Views ↑');
  assert.equal(await page.locator('th[aria-sort]').count(), 1, 'aria-sort is on the sorted column\'s <th> alone');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.sort), 'views', 'the focus stays on the header clicked');
  await page.getByText('2 campaigns', { exact: true }).waitFor();
  await page.getByLabel('Search').fill('aut');
  await showsSoon(['autumn'], 'the search keeps only "autumn"');
  await page.getByText('1 campaign whose id or title contains “aut”', { exact: true }).waitFor();
  await page.getByLabel('Search').fill('ONERROR');
  await showsSoon(['spring'], 'and finds a campaign by its title');
  await page.getByLabel('Search').fill('no such campaign');
  await page.getByText('No campaign\'s id or title contains “no such campaign”.').waitFor();
  await page.getByLabel('Search').fill('');
  await page.getByRole('button', { name: 'Last activity' }).click();
  await showsSoon(campaigns.map((c) => c.cid), 'back to the most recently active first');
  await screenshot(page, 'dashboard-campaigns');

  await page.getByRole('link', { name: 'spring' }).click();
  await page.getByTestId('views').waitFor();
  const spring = (await s.api(`/v1/sites/${s.site.id}/stats?cid=spring&bucket=hour`)).totals;
  assert.equal(await text(page, 'views'), count(spring.views));
  assert.equal(await text(page, 'clicks'), count(spring.clicks));
  for (const b of ['0', '1', '2']) assert.equal(await text(page, `button-${b}`), count(spring.clicks_by_button[b]));
  await page.locator('.chart canvas').waitFor();
  const drawn = (await page.locator('.chart canvas').boundingBox()).width;
  assert.ok(drawn > 200, 'the chart draws');
  // A narrower window: the chart follows its box, then grows back.
  await page.setViewportSize({ width: 700, height: 900 });
  await waitFor(async () => (await page.locator('.chart canvas').boundingBox()).width <= 700 - 48,
    { what: 'the chart to fit a 700 px window' });
  await page.setViewportSize({ width: 1280, height: 900 });
  await waitFor(async () => (await page.locator('.chart canvas').boundingBox()).width === drawn,
    { what: 'the chart to take its width again' });
  // By run, each group has its unique subscribers too; by a UTM field, none is kept.
  await page.getByLabel('Group by').selectOption('reference_id');
  await page.getByRole('columnheader', { name: 'Unique subscribers' }).waitFor();
  await page.getByLabel('Group by').selectOption('utm_source');
  await page.getByRole('cell', { name: 'izooto' }).waitFor();
  assert.equal(await page.getByRole('columnheader', { name: 'Unique subscribers' }).count(), 0);
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download CSV' }).click();
  const csv = fs.readFileSync(await (await download).path(), 'utf8');
  assert.match(csv, /^bucket,views,clicks/, 'the CSV is the API\'s');
  await screenshot(page, 'dashboard-campaign');
  // The campaign's messages, each saying which endpoint it went to.
  await page.getByTestId('campaign-messages').click();
  await page.getByTestId('message-filter').filter({ hasText: 'campaign ' }).waitFor();
  await page.getByTestId('message-endpoint').first().waitFor();
  const where = await page.getByTestId('message-endpoint').allTextContents();
  // By its description, or by host and path where it has none.
  const names = [s.live, s.dead].map((e) => e.description || e.url.replace(/^https?:\/\//, ''));
  assert.deepEqual([...new Set(where)].sort(), names.sort(), `each message names its endpoint: ${JSON.stringify(where)}`);

  await page.getByRole('link', { name: 'Messages' }).click();
  await page.locator('tr[data-message]').first().waitFor();
  const titles = await page.locator('tr[data-message] td.title').allTextContents();
  assert.ok(titles.includes(HOSTILE_TITLE), 'the title is shown as the text it is');
  assert.equal(await page.locator('main img').count(), 0, 'no element was made from event text');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await screenshot(page, 'dashboard-messages');

  // Past 100 failed messages (where the overview's list stops), and a campaign whose id and title
  // are long unbroken text.
  const bulk = [];
  for (let i = 0; i < 90; ++i) bulk.push(makeEvent(200 + i, { cid: LONG_CID, notification_title: 'T'.repeat(200) }));
  expectStatus(await s.serve.ingest(s.site.ingest_key, bulk), 202, 'ingest');
  s.events.push(...bulk);
  await waitFor(async () => (await s.api(`/v1/sites/${s.site.id}/endpoints/${s.dead.id}/stats`)).failed === s.events.length,
    { timeoutMs: 30_000, what: `the dead endpoint's ${s.events.length} messages to fail` });

  // Each view on a phone's width (390 px): nothing wider than the screen but a table, which
  // scrolls in its own box.
  await page.setViewportSize({ width: 390, height: 844 });
  const failed = (await s.api(`/v1/sites/${s.site.id}/messages?status=failed&limit=1`)).data[0];
  for (const [name, route, ready] of [
    ['overview', 'overview', '[data-testid="site-views"]'],
    ['campaigns', 'campaigns', 'tr[data-cid]'],
    ['campaign', 'campaigns/spring', '.chart canvas'],
    ['endpoints', 'endpoints', 'tr[data-endpoint]'],
    ['endpoint', `endpoints/${s.dead.id}`, 'form'],
    ['messages', 'messages', 'tr[data-message]'],
    ['message', `messages/${failed.id}`, '[data-testid="message-status"]'],
  ]) {
    await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/${route}`);
    await page.locator(ready).first().waitFor();
    if (name === 'overview') assert.equal(await text(page, 'failed-messages'), count(s.events.length), 'past 100, the endpoints\' own counts');
    if (name === 'messages') {
      // A message's status is in view on a phone: the Endpoint column gives way to it.
      assert.equal(await page.getByRole('columnheader', { name: 'Endpoint' }).isVisible(), false);
      const status = await page.locator('tr[data-message] .state').first().boundingBox();
      assert.ok(status && status.x + status.width <= 390, `the status ends at ${status && status.x + status.width} px`);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} at 390 px is ${overflow} px wider than the screen`);
    await screenshot(page, `dashboard-${name}-390`);
  }
  // A long cid is cut (whole in its tooltip), and a campaign's views, clicks and CTR are in view.
  await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/campaigns`);
  const long = page.locator(`tr[data-cid="${LONG_CID}"]`);
  await long.waitFor();
  assert.equal(await long.locator('a').getAttribute('title'), LONG_CID);
  for (const cell of await long.locator('td.num').all().then((cells) => cells.slice(0, 3))) {
    const box = await cell.boundingBox();
    assert.ok(box.x + box.width <= 390, `a number ends at ${box.x + box.width} px, past the screen`);
  }
  assert.deepEqual(errors, [], 'no console error, exception or CSP violation');
});

itest('endpoint actions change what the API says, and redeliver reaches a live receiver', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { page, errors } = await openBrowser(fx);
  const dialogs = noDialogs(page);
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const endpointPath = `/v1/sites/${s.site.id}/endpoints/${s.live.id}`;

  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.locator(`tr[data-endpoint="${s.dead.id}"]`).waitFor();
  await screenshot(page, 'dashboard-endpoints');
  // A plain http:// endpoint keeps its scheme in the list, to stand out from https:// ones.
  await page.getByRole('link', { name: s.live.url }).click();
  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByRole('button', { name: 'Enable' }).waitFor();
  assert.equal((await s.api(endpointPath)).enabled, false, 'Disable disabled it');
  assert.match((await focused(page)).text, /^Disabled: /, 'the re-rendered page says what was done, where the focus is');
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByRole('button', { name: 'Disable' }).waitFor();
  assert.equal((await s.api(endpointPath)).enabled, true, 'Enable enabled it');
  assert.match((await focused(page)).text, /^Enabled: /);

  await page.getByRole('checkbox', { name: 'Dismiss' }).check();
  await page.getByLabel('Rate limit (requests/s)').fill('25');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => (await s.api(endpointPath)).rate_limit === 25, { what: 'the saved rate limit' });
  await page.getByText('Saved.').waitFor();
  assert.deepEqual(await focused(page), { text: 'Saved.', result: true, inView: true });
  assert.deepEqual((await s.api(endpointPath)).events, ['View', 'Click', 'Dismiss']);
  // The filter: one value per line; what the API then holds is shown back.
  await page.getByLabel('cid', { exact: true }).fill('spring\n autumn \n\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => JSON.stringify((await s.api(endpointPath)).filter) === JSON.stringify({ cid: ['spring', 'autumn'] }),
    { what: 'the saved filter' });
  await page.getByTestId('filter').filter({ hasText: 'cid: spring, autumn' }).waitFor();
  await page.getByLabel('utm_source', { exact: true }).fill('x'.repeat(300));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Save failed: filter.utm_source[0] is 300 bytes; at most 256').waitFor();
  assert.deepEqual((await s.api(endpointPath)).filter, { cid: ['spring', 'autumn'] }, 'a refused filter changed nothing');
  await page.getByLabel('utm_source', { exact: true }).fill('');
  // Batches: on with a size and a wait, shown back; a size out of range is the API's 400.
  await page.getByLabel('Events a request (empty: one at a time)').fill('100');
  await page.getByLabel('Longest wait for a batch to fill (ms)').fill('250');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => JSON.stringify((await s.api(endpointPath)).batch) === JSON.stringify({ max_events: 100, max_wait_ms: 250 }),
    { what: 'the saved batch' });
  await page.getByTestId('batch').filter({ hasText: 'up to 100 events a request, waiting at most 250 ms for them' }).waitFor();
  await page.getByLabel('Events a request (empty: one at a time)').fill('5000');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText("field 'batch.max_events' must be an integer from 1 to 1000").waitFor();
  await page.getByLabel('Events a request (empty: one at a time)').fill('');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => (await s.api(endpointPath)).batch === null, { what: 'batching turned off' });
  for (const name of ['View', 'Click', 'Dismiss']) await page.getByRole('checkbox', { name }).uncheck();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('field \'events\' must be a non-empty array of "View", "Click" and "Dismiss"').waitFor();
  assert.deepEqual((await s.api(endpointPath)).events, ['View', 'Click', 'Dismiss'], 'a refused change changed nothing');
  // Settings the API holds but the form could not write back (an empty filter value, a rate
  // below 1 a second) survive a Save of something else: only what was changed is sent.
  const kept = { filter: { cid: ['spring', ' padded '], utm_source: ['izooto', ''] }, rate_limit: 0.5 };
  expectStatus(await s.serve.api('PATCH', endpointPath, kept), 200, 'PATCH filter and rate');
  await page.reload();
  await page.getByTestId('filter').filter({ hasText: 'cid: spring, " padded "; utm_source: izooto, ""' }).waitFor();
  await page.getByLabel('Description').fill('only this changes');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Saved.').waitFor();
  const afterSave = await s.api(endpointPath);
  assert.deepEqual({ filter: afterSave.filter, rate_limit: afterSave.rate_limit, description: afterSave.description },
    { ...kept, description: 'only this changes' });
  // Editing one field's box leaves the other fields' values as they were.
  await page.locator('#edit-filter-cid').fill('summer');  // its label's name now holds its text
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => JSON.stringify((await s.api(endpointPath)).filter) === JSON.stringify({ cid: ['summer'], utm_source: ['izooto', ''] }),
    { what: 'one field of the filter changed, the other kept' });
  await page.getByTestId('filter').filter({ hasText: 'cid: summer; utm_source: izooto, ""' }).waitFor();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Nothing to save: no setting was changed.').waitFor();
  expectStatus(await s.serve.api('PATCH', endpointPath, { filter: null, rate_limit: 25 }), 200, 'PATCH back');
  await page.reload();
  await page.getByRole('button', { name: 'Send test' }).waitFor();

  // Each action's result shows under the actions and takes the focus (it is in view and read out).
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.getByText(/^Delivered: HTTP 2\d\d/).waitFor();
  await page.getByText(/^Sent as webhook-id msg_test_[A-Za-z0-9]+\.$/).waitFor();
  const now = await focused(page);
  assert.ok(now.result && now.inView && /^Delivered: HTTP 2\d\d/.test(now.text), JSON.stringify(now));


  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replay failed: Give both ends of the window.').waitFor();
  assert.equal((await focused(page)).text, 'Replay failed: Give both ends of the window.', 'an action\'s error is titled by it');

  const since = new Date(Date.now() - 3600_000).toISOString().slice(0, 16);
  const until = new Date(Date.now() + 3600_000).toISOString().slice(0, 16);
  await page.getByLabel('Replay from (UTC)').fill(since);
  await page.getByLabel('to', { exact: true }).fill(until);
  await page.getByLabel('campaign', { exact: true }).fill('autumn');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replaying 3 events to this endpoint.').waitFor();
  assert.equal((await focused(page)).text, 'Replaying 3 events to this endpoint.');
  await page.getByLabel('run (reference_id)').fill(' run-2 ');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replaying 1 event to this endpoint.').waitFor();
  await screenshot(page, 'dashboard-endpoint');

  const failed = (await s.api(`/v1/sites/${s.site.id}/messages?status=failed&endpoint=${s.dead.id}&limit=1`)).data[0];
  // The receiver comes back for the dead endpoint: a redeliver now reaches it.
  const againPort = await freePort();
  const again = await fx.startReceive({ secret: s.dead.secret, listen: `127.0.0.1:${againPort}` });
  expectStatus(await s.serve.api('PATCH', `/v1/sites/${s.site.id}/endpoints/${s.dead.id}`,
    { url: `http://127.0.0.1:${againPort}/again` }), 200, 'PATCH the dead endpoint\'s url');
  await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/messages/${failed.id}`);
  await page.getByTestId('message-status').waitFor();
  assert.equal(await text(page, 'message-status'), 'failed');
  await page.getByRole('button', { name: 'Redeliver' }).click();
  await page.getByText('Queued to go again: its next attempt is listed below once it is made.').waitFor();
  await waitFor(async () => {
    const m = await s.api(`/v1/sites/${s.site.id}/messages/${failed.id}`);
    return m.status === 'delivered' ? m : null;
  }, { timeoutMs: 15_000, what: 'the redelivered message to be delivered' }).catch(async (error) => {
    throw new Error(`${error.message}\n${JSON.stringify(await s.api(`/v1/sites/${s.site.id}/messages/${failed.id}/attempts`))}`);
  });
  await waitFor(() => fs.existsSync(again.out) && fs.readFileSync(again.out, 'utf8').length > 0, { what: 'the receiver to store it' });
  await waitFor(async () => (await text(page, 'message-status')) === 'delivered', { what: 'the page to show it delivered' });
  await screenshot(page, 'dashboard-message');
  assert.deepEqual(errors, Array(3).fill('console: Failed to load resource: the server responded with a status of 400 (Bad Request)'),
    'no console error, exception or CSP violation but the three refused saves');
  assert.deepEqual(dialogs, []);
});

itest('a batch member redelivered alone: its attempts say which request each went in', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-') });
  const site = await serve.createSite('Batches');
  const port = await freePort();
  const endpoint = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${port}/hooks`, batch: { max_events: 10 } });
  await fx.startReceive({ secret: endpoint.secret, listen: `127.0.0.1:${port}` });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1), makeEvent(2)]), 202, 'ingest');
  const api = async (path) => expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
  const delivered = await waitFor(async () => {
    const page = (await api(`/v1/sites/${site.id}/messages`)).data;
    return page.length === 2 && page.every((m) => m.status === 'delivered') && page;
  }, { what: 'the batch delivered' });
  const [message] = delivered;
  const batch = message.batch_id;
  assert.match(batch, /^bat_/);
  expectStatus(await serve.api('POST', `/v1/sites/${site.id}/messages/${message.id}/redeliver`), 202, 'redeliver');
  await waitFor(async () => (await api(`/v1/sites/${site.id}/messages/${message.id}/attempts`)).data.length === 2,
    { what: 'the second attempt' });

  const { page, errors } = await openBrowser(fx);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/messages/${message.id}`);
  await page.getByTestId('attempt-batch').first().waitFor();
  assert.deepEqual(await page.getByTestId('attempt-batch').allTextContents(), [`batch ${batch}`, 'alone']);
  assert.equal(await text(page, 'message-batch'), 'a request of its own', 'it last went alone');
  await screenshot(page, 'dashboard-message-batched');
  // The batch leads to what it carried: both messages, this one sent alone since included.
  await page.getByTestId('attempt-batch').first().getByRole('link', { name: batch }).click();
  await page.getByTestId('message-filter').waitFor();
  assert.equal(await text(page, 'message-filter'), `Only batch ${batch} · every message`);
  await page.locator('tr[data-message]').nth(1).waitFor();
  assert.deepEqual(await page.locator('tr[data-message]').evaluateAll((rows) => rows.map((r) => r.dataset.message)),
    delivered.map((m) => m.id));
  await screenshot(page, 'dashboard-messages-of-batch');
  // A receiver's webhook-id finds its message, or says what a webhook-id looks like.
  const finder = page.getByLabel('Webhook-id');
  await finder.fill('evt_1');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByText('A webhook-id starts with msg_ (one message) or bat_ (a batch).').waitFor();
  await finder.fill(` ${delivered[1].id} `);
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('heading', { name: `Message ${delivered[1].id}` }).waitFor();
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/messages`);
  await page.getByLabel('Webhook-id').fill(batch);
  await page.getByLabel('Webhook-id').press('Enter');
  await page.getByText(`Only batch ${batch}`).waitFor();
  await page.locator('tr[data-message]').nth(1).waitFor();
  // A message that never went in a batch shows no such column.
  expectStatus(await serve.api('PATCH', `/v1/sites/${site.id}/endpoints/${endpoint.id}`, { batch: null }), 200, 'batching off');
  expectStatus(await serve.ingest(site.ingest_key, makeEvent(3)), 202, 'ingest');
  const alone = await waitFor(async () => {
    const m = (await api(`/v1/sites/${site.id}/messages?limit=1`)).data[0];
    return m.id !== message.id && m.status === 'delivered' && m;
  }, { what: 'a message sent alone' });
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/messages/${alone.id}`);
  await page.getByRole('heading', { name: `Message ${alone.id}` }).waitFor();
  await page.getByRole('columnheader', { name: 'Answer' }).waitFor();
  assert.equal(await page.getByRole('columnheader', { name: 'Sent in' }).count(), 0);
  assert.equal(await text(page, 'message-batch'), 'a request of its own');
  assert.deepEqual(errors, [], 'no console error, exception or CSP violation');
});

itest('rotating a secret asks in the page first, and ending the old secrets stops them signing', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { page, errors } = await openBrowser(fx);
  const dialogs = noDialogs(page);
  const rotations = [];
  page.on('request', (request) => { if (request.url().endsWith('/rotate-secret')) rotations.push(request.postData()); });
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const endpointPath = `/v1/sites/${s.site.id}/endpoints/${s.live.id}`;
  await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/endpoints/${s.live.id}`);
  const rotate = page.getByRole('button', { name: 'Rotate secret' });
  const question = page.getByRole('group', { name: /^A new signing secret replaces this one\. The old one keeps signing beside it for 24 hours/ });
  const hasFocus = (locator) => locator.evaluate((el) => el === document.activeElement);
  // The receiver knows the secret the endpoint was made with: a test delivery shows whether it still signs.
  const sendTest = async () => {
    await page.getByRole('button', { name: 'Send test' }).click();
    const said = page.locator('.result strong').filter({ hasText: /^(Delivered|Not delivered):/ });
    await said.waitFor();
    return said.textContent();
  };

  // Asked, then not: nothing is sent, and the focus is back on the button.
  await rotate.click();
  await question.waitFor();
  assert.ok(await hasFocus(question), 'the question takes the focus');
  assert.equal(await page.locator('.result[aria-live]').getByRole('group').count(), 1, 'it is in the actions\' live region');
  await screenshot(page, 'dashboard-endpoint-rotate-asked');
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'dashboard-endpoint-rotate-asked-390');
  await page.setViewportSize({ width: 1280, height: 900 });
  await question.getByRole('button', { name: 'Cancel' }).click();
  await question.waitFor({ state: 'detached' });
  assert.ok(await hasFocus(rotate), 'Cancel gives the focus back to Rotate secret');
  await page.keyboard.press('Enter');
  await question.waitFor();
  await page.keyboard.press('Tab');
  assert.ok(await hasFocus(question.getByRole('checkbox', { name: 'End the old secrets now (use this when a secret leaked)' })));
  await page.keyboard.press('Escape');
  await question.waitFor({ state: 'detached' });
  assert.ok(await hasFocus(rotate), 'Escape gives the focus back to Rotate secret');
  assert.deepEqual(rotations, [], 'no rotation was asked of the server');

  // Rotated, the old secret kept: the new one is shown once, and the old one still signs.
  const before = (await s.api(endpointPath)).updated_at;
  await rotate.click();
  await question.getByRole('button', { name: 'Rotate' }).click();
  const first = await page.getByTestId('new-secret').textContent();
  assert.match(first, /^whsec_[A-Za-z0-9+/=]{32,}$/);
  assert.deepEqual(rotations, ['{}']);
  assert.notEqual((await s.api(endpointPath)).updated_at, before, 'the API saw the rotation');
  assert.match(await text(page, 'old-secrets'), /^The old secret signs beside it until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\.$/);
  const now = await focused(page);
  assert.ok(now.result && now.inView && now.text.includes(first), `the new secret, shown once, has the focus and is in view: ${JSON.stringify(now)}`);
  await screenshot(page, 'dashboard-endpoint-rotated');
  assert.match(await sendTest(), /^Delivered: HTTP 2\d\d/, 'the old secret still signs beside the new one');

  // Rotated with the old secrets ended (a leak): the receiver that knows only the first secret refuses.
  await rotate.click();
  await question.getByRole('checkbox', { name: 'End the old secrets now (use this when a secret leaked)' }).check();
  await question.getByRole('button', { name: 'Rotate' }).click();
  await page.getByText('The old secrets no longer sign.').waitFor();
  const second = await page.getByTestId('new-secret').textContent();
  assert.notEqual(second, first);
  assert.deepEqual(rotations, ['{}', '{"expire_previous":true}']);
  assert.equal(await sendTest(), 'Not delivered: HTTP 401', 'no signature the old receiver knows');
  // The secret shown is the one that signs: a receiver given it accepts.
  const port = await freePort();
  await fx.startReceive({ secret: second, listen: `127.0.0.1:${port}` });
  expectStatus(await s.serve.api('PATCH', endpointPath, { url: `http://127.0.0.1:${port}/hooks` }), 200, 'PATCH the url');
  await page.reload();
  assert.match(await sendTest(), /^Delivered: HTTP 2\d\d/);
  assert.deepEqual(errors, []);
  assert.deepEqual(dialogs, []);
});

itest('a CSV download that fails says why beside its button, in the page', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-') });
  const site = await serve.createSite('CSV shop');
  expectStatus(await serve.ingest(site.ingest_key, SAMPLE_EVENT), 202, 'a click');
  const { page, errors } = await openBrowser(fx);
  const dialogs = noDialogs(page);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/campaigns/${SAMPLE_EVENT.cid}`);
  await page.getByTestId('views').waitFor();
  // The CSV alone fails: the chart's figures come from the same route, as JSON.
  const stats = /\/stats\?cid=/;
  const busy = (route) => (route.request().headers().accept === 'text/csv'
    ? route.fulfill({ status: 503, json: { error: { code: 'unavailable', message: 'The store is busy: try again in a moment.' } } })
    : route.continue());
  await page.route(stats, busy);
  const button = page.getByRole('button', { name: 'Download CSV' });
  await button.click();
  const said = 'Download CSV failed: The store is busy: try again in a moment.';
  await page.getByText(said).waitFor();
  assert.deepEqual(await focused(page), { text: said, result: true, inView: true }, 'the notice has the focus, in a live region');
  assert.equal(await page.locator('.result[aria-live] [role="alert"]').textContent(), said);
  assert.equal(await button.evaluate((b) => b.closest('.controls').nextElementSibling.textContent), said, 'right under the button');
  await screenshot(page, 'dashboard-campaign-csv-failed');
  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, 'dashboard-campaign-csv-failed-390');

  // Once the server answers again, the file comes and the notice goes.
  await page.unroute(stats, busy);
  const download = page.waitForEvent('download');
  await button.click();
  assert.match(fs.readFileSync(await (await download).path(), 'utf8'), /^bucket,views,clicks/);
  await page.getByText(said).waitFor({ state: 'detached' });
  assert.deepEqual(dialogs, [], 'no alert');
  assert.deepEqual(errors.filter((e) => !/status of 503/.test(e)), []);
});

itest('the messages\' status is in the URL: a reload keeps it, and Back goes to the one before', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  await waitFor(async () => (await s.api(`/v1/sites/${s.site.id}/messages?status=delivered&endpoint=${s.live.id}`)).data.length === s.events.length,
    { timeoutMs: 30_000, what: 'the live endpoint\'s messages to be delivered' });
  const { page, errors } = await openBrowser(fx);
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const select = page.getByLabel('Status');
  const shown = () => page.locator('tr[data-message]').evaluateAll((rows) => rows.map((r) => r.dataset.message));
  // The page lists what the API lists for that status, and its select says which.
  const shows = async (status) => {
    const want = (await s.api(`/v1/sites/${s.site.id}/messages?limit=50${status === 'all' ? '' : `&status=${status}`}`)).data.map((m) => m.id);
    assert.ok(want.length > 0);
    await waitFor(async () => (await select.inputValue()) === status && JSON.stringify(await shown()) === JSON.stringify(want),
      { what: `the ${status} messages` }).catch(async (error) => {
      throw new Error(`${error.message}; the select says ${await select.inputValue()}, at ${page.url()}`);
    });
  };

  // The overview's count of failed messages leads to them.
  await page.getByRole('link', { name: /^Failed messages/ }).click();
  await shows('failed');
  assert.ok(page.url().endsWith(`#/s/${s.site.id}/messages?status=failed`), page.url());
  await select.focus();
  await select.selectOption('delivered');
  await shows('delivered');
  assert.ok(page.url().endsWith('/messages?status=delivered'), page.url());
  assert.ok(await select.evaluate((el) => el === document.activeElement), 'the select keeps the focus');
  await page.reload();
  await shows('delivered');
  await screenshot(page, 'dashboard-messages-delivered');
  await select.selectOption('all');
  await shows('all');
  assert.ok(page.url().endsWith('/messages?status=all'), page.url());
  await page.goBack();
  await shows('delivered');
  await page.goBack();
  await shows('failed');
  await page.goForward();
  await shows('delivered');
  // The menu's Messages: the failed ones, as before.
  await page.getByRole('link', { name: 'Messages' }).click();
  await shows('failed');
  assert.deepEqual(errors, []);
});

// The lines each tile's value is laid out on, as text, and whether each part of it stays in its tile.
const tileLines = (page) => page.locator('.tile .value').evaluateAll((values) => values.map((value) => {
  const lines = [];
  let top = null;
  const walker = document.createTreeWalker(value, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; ++i) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      if (lines.length === 0 || (box.width > 0 && box.top > top + 1)) {
        lines.push('');
        top = box.top;
      }
      lines[lines.length - 1] += node.data[i];
    }
  }
  const tile = value.closest('.tile').getBoundingClientRect();
  const inside = [...value.children].every((part) => part.getBoundingClientRect().right <= tile.right);
  return { lines: lines.map((line) => line.trim()), inside };
}));

itest('a tile\'s value breaks between its parts only, never between a number and its unit', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { page, errors } = await openBrowser(fx);
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  // Figures as wide as they come: a slow receiver's latencies, a campaign's thousands of subscribers.
  const widen = (changes) => async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    await route.fulfill({ response, json: changes(json) });
  };
  await page.route(new RegExp(`/endpoints/${s.live.id}/stats$`), widen((j) => ({ ...j, latency_ms: { ...j.latency_ms, p50: 12.3, p99: 45.6 } })));
  await page.route(/\/stats\?cid=spring&bucket=hour$/,
    widen((j) => ({ ...j, totals: { ...j.totals, unique_subscribers: 12809, unique_subscribers_error: 0.016 } })));
  for (const [name, route, wide] of [['endpoint', `endpoints/${s.live.id}`, ['latency', '12.3 / 45.6 ms']],
    ['campaign', 'campaigns/spring', ['unique', '12,809 (±1.6 %)']]]) {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/${route}`);
    await page.getByTestId(wide[0]).waitFor();
    assert.equal(await text(page, wide[0]), wide[1]);
    // Every width from a phone's to a desktop's: a line may break before "(±…" or after "/" only.
    let broken = 0;
    for (let width = 1280; width >= 390; width -= 5) {
      await page.setViewportSize({ width, height: 900 });
      for (const { lines, inside } of await tileLines(page)) {
        const bad = lines.some((line, i) => i > 0 && !line.startsWith('(') && !lines[i - 1].endsWith('/'));
        assert.ok(!bad, `at ${width} px a value breaks inside a part: ${JSON.stringify(lines)}`);
        assert.ok(inside, `at ${width} px a part of ${JSON.stringify(lines)} sticks out of its tile`);
        if (lines.length > 1) broken += 1;
      }
      if (width === 390) await screenshot(page, `dashboard-tiles-${name}-390`);
    }
    assert.ok(broken > 0, `${wide[1]} has to break somewhere between 390 and 1280 px for this test to mean anything`);
    await page.setViewportSize({ width: 1280, height: 900 });
    await screenshot(page, `dashboard-tiles-${name}-1280`);
  }
  assert.deepEqual(errors, []);
});

// Holds the page's requests whose URL matches `pattern` until released. `asked` resolves with the
// first one; release() lets it go on, waits until it has ended (answered, or aborted by the page),
// and gives the page a moment to paint whatever it would paint with it.
async function hold(page, pattern) {
  let seen;
  const asked = new Promise((resolve) => { seen = resolve; });
  let go;
  const released = new Promise((resolve) => { go = resolve; });
  const handler = async (route) => {
    seen(route.request());
    await released;
    await route.continue().catch(() => {}); // the page may have aborted it
  };
  await page.route(pattern, handler);
  return {
    asked,
    release: async () => {
      const request = await asked;
      go();
      const response = await request.response().catch(() => null);
      await response?.finished().catch(() => {});
      await page.unroute(pattern, handler);
      // A painted answer shows within a frame or two; nothing here can be awaited for its absence.
      await page.waitForTimeout(150);
    },
  };
}

itest('a slow answer never paints over what was chosen after it, and stale figures say so', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { browser, page, errors } = await openBrowser(fx);
  await page.clock.install();
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const base = `${s.serve.baseUrl}/#/s/${s.site.id}`;
  const heading = () => page.locator('main h1').allTextContents();
  const currentLink = () => page.locator('nav a[aria-current="page"]').textContent();

  // A campaign still loading when the person picks Messages.
  const campaignStats = await hold(page, /\/stats\?cid=spring&bucket=hour$/);
  await page.goto(`${base}/campaigns/spring`);
  await campaignStats.asked;
  await page.getByRole('link', { name: 'Messages' }).click();
  await page.locator('tr[data-message]').first().waitFor();
  await campaignStats.release();
  assert.deepEqual(await heading(), ['Messages'], 'the late campaign did not replace the messages');
  assert.equal(await currentLink(), 'Messages');

  // Group by changed twice: the table under "By utm_medium" lists utm_medium's values.
  await page.goto(`${base}/campaigns/spring`);
  await page.locator('.chart canvas').waitFor();
  const bySource = await hold(page, /group_by=utm_source/);
  await page.getByLabel('Group by').selectOption('utm_source');
  await bySource.asked;
  await page.getByLabel('Group by').selectOption('utm_medium');
  await page.getByRole('heading', { name: 'By utm_medium' }).waitFor();
  await bySource.release();
  const groups = page.locator('main table').last();
  const want = (await s.api(`/v1/sites/${s.site.id}/stats?cid=spring&group_by=utm_medium`)).groups.map((g) => g.key || '(none)');
  assert.equal(await page.locator('main h2').last().textContent(), 'By utm_medium');
  assert.equal(await groups.locator('th').first().textContent(), 'utm_medium');
  assert.deepEqual(await groups.locator('tbody tr td:first-child').allTextContents(), want);
  assert.equal(await page.getByLabel('Group by').inputValue(), 'utm_medium');

  // The overview left while it loads: it neither paints nor starts polling.
  await page.getByRole('link', { name: 'Campaigns', exact: true }).click();
  await page.locator('tr[data-cid]').first().waitFor();
  const siteStats = new RegExp(`/v1/sites/${s.site.id}/stats$`);
  const overviewStats = await hold(page, siteStats);
  await page.getByRole('link', { name: 'Overview' }).click();
  await overviewStats.asked;
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.locator('tr[data-endpoint]').first().waitFor();
  await overviewStats.release();
  const polls = [];
  page.on('request', (request) => { if (siteStats.test(request.url())) polls.push(request.url()); });
  await page.clock.runFor(25_000);
  await page.waitForTimeout(150);
  assert.deepEqual(await heading(), ['Endpoints']);
  assert.deepEqual(polls, [], 'no overview polling on the endpoints page');

  // The overview cannot refresh: it says since when its figures are; then it recovers.
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByTestId('site-views').waitFor();
  await page.route(siteStats, (route) => route.abort());
  await page.clock.runFor(10_000);
  const stale = page.getByText(/^Could not refresh: these figures are from \d\d:\d\d:\d\d UTC\.$/);
  await stale.waitFor();
  assert.equal(await page.getByText('The server did not answer. Is pushhook running? Trying again every 10 s.').count(), 1,
    'the reason and the retry, each a sentence of its own');
  await screenshot(page, 'dashboard-overview-stale');
  await page.unroute(siteStats);
  await page.clock.runFor(10_000);
  await stale.waitFor({ state: 'detached' });
  // A server's message without a full stop gets one before the retry note.
  await page.route(siteStats, (route) => route.fulfill({ status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'unavailable', message: 'the store is busy' } }) }));
  await page.clock.runFor(10_000);
  await stale.waitFor();
  assert.equal(await page.getByText('the store is busy. Trying again every 10 s.', { exact: true }).count(), 1);
  await page.unroute(siteStats);
  await page.clock.runFor(10_000);
  await stale.waitFor({ state: 'detached' });
  assert.deepEqual(errors.filter((e) => !/net::ERR_FAILED|status of 503/.test(e)), [], 'no console error but the refused refreshes');

  // Another time zone: the chart's times are still UTC, like the tables and the CSV.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'America/Los_Angeles' });
  const la = await context.newPage();
  await signIn(la, s.serve.baseUrl, s.serve.adminToken);
  await la.getByTestId('site-views').waitFor();
  await la.goto(`${base}/campaigns/spring`);
  await la.locator('.chart .u-over').hover();
  const bucket = (await s.api(`/v1/sites/${s.site.id}/stats?cid=spring&bucket=hour`)).series[0].bucket;
  const legend = la.locator('.u-legend .u-series').first().locator('.u-value');
  await waitFor(async () => (await legend.textContent()) === `${bucket.slice(0, 10)} ${bucket.slice(11, 16)} UTC`,
    { what: `the chart to read ${bucket} in UTC` }).catch(async (error) => {
    throw new Error(`${error.message}; it reads ${await legend.textContent()}`);
  });
  assert.notEqual(await la.evaluate(() => new Date().getTimezoneOffset()), 0, 'the browser is not on UTC');
  await screenshot(la, 'dashboard-campaign-los-angeles');
});

itest('a read token sees its own site only and is offered no action', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const other = await s.serve.createSite('Other shop');
  const read = expectStatus(await s.serve.api('POST', `/v1/sites/${other.id}/tokens`, { scope: 'read' }), 201, 'token');
  await s.serve.createEndpoint(other.id, { url: 'http://127.0.0.1:9/x' });
  const { page, errors } = await openBrowser(fx);
  await signIn(page, s.serve.baseUrl, read.token);
  await page.getByTestId('site-views').waitFor();
  assert.equal(await text(page, 'site-name'), 'Other shop');
  assert.equal(await page.locator('#site').count(), 0, 'no site picker: there is one site to see');
  assert.equal(await page.getByTestId('queue-depth').count(), 0, 'server-wide figures are the operator\'s');
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByRole('link', { name: 'http://127.0.0.1:9/x' }).click();
  await page.getByTestId('state').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Disable' }).count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Rotate secret' }).count(), 0);

  await page.goto(`${s.serve.baseUrl}/#/s/${s.site.id}/campaigns`);
  await page.getByText('No such site.').waitFor();
  assert.equal(await page.locator('tr[data-cid]').count(), 0, 'another site\'s campaigns stay unseen');
  // A hand-edited link with a bare % is no page, not an exception over the last page.
  await page.goto(`${s.serve.baseUrl}/#/s/${other.id}/campaigns`);
  await page.getByText('No campaigns yet.').waitFor();
  await page.goto(`${s.serve.baseUrl}/#/s/${other.id}/campaigns/50%off`);
  await page.getByText('No such page.').waitFor();
  assert.equal(await page.getByText('No campaigns yet.').count(), 0, 'the list it came from is gone');
  assert.equal(await page.locator('nav a[aria-current="page"]').textContent(), 'Campaigns', 'the menu says where the URL is');
  const asked = await page.evaluate(async (url) => (await fetch(url, {
    headers: { authorization: `Bearer ${sessionStorage.getItem('pushhook.token')}` } })).status,
  `/v1/sites/${s.site.id}/campaigns`);
  assert.equal(asked, 404, 'and the API the page uses will not give them either');
  await screenshot(page, 'dashboard-read-token');
  assert.deepEqual(errors.filter((e) => !/status of 404/.test(e)), [], 'no console error but the 404 asked for');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Operator or site token').waitFor();
  await page.evaluate(() => new Promise((resolve) => { setTimeout(resolve, 100); })); // past any hashchange
  assert.equal(await page.getByText('Signed out.').count(), 1, 'the sign-in form says the person signed out');
  assert.equal(await page.getByRole('navigation').count(), 0, 'no empty menu landmark on the sign-in form');
});

itest('after the README\'s quick start, the dashboard shows its click', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  // No token given: the server makes one and writes it where the README says.
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-'), adminToken: null });
  const token = fs.readFileSync(`${serve.dataDir}/admin-token`, 'utf8').trim();
  const site = expectStatus(await serve.api('POST', '/v1/sites', { name: 'My site' }, token), 201, 'the site');
  expectStatus(await serve.ingest(site.ingest_key, SAMPLE_EVENT), 202, 'the quick start\'s click');
  const { page, errors } = await openBrowser(fx);
  // With the keyboard only: the token field has the focus; Enter signs in.
  await page.goto(`${serve.baseUrl}/`);
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByTestId('site-views').waitFor();
  await page.getByRole('link', { name: 'Campaigns' }).focus();
  await page.keyboard.press('Enter');
  await page.locator('tr[data-cid]').first().waitFor();
  assert.deepEqual((await campaignRow(page, SAMPLE_EVENT.cid)).slice(0, 4), [SAMPLE_EVENT.cid, SAMPLE_EVENT.notification_title, '0', '1']);
  await page.getByRole('link', { name: SAMPLE_EVENT.cid }).click();
  assert.equal(await text(page, 'button-2'), '1', 'the click was on button 2');
  assert.deepEqual(errors, []);
});

itest('"Load more" from the keyboard, on campaigns and messages: the first row it adds takes the focus', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-') });
  const site = await serve.createSite('Many campaigns');
  // 60 events for an endpoint where nothing listens: 60 messages too.
  await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${await freePort()}/gone` });
  const events = Array.from({ length: 60 }, (_, i) => makeEvent(i, { action: 'View', cid: `c-${i}` }));
  expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  const { page, errors } = await openBrowser(fx);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const focusedRow = (selector) => page.evaluate((sel) => [...document.querySelectorAll(sel)].indexOf(document.activeElement), selector);
  for (const [link, selector, url] of [['Campaigns', 'tr[data-cid]', 'campaigns'], ['Messages', 'tr[data-message]', 'messages?status=all']]) {
    await page.goto(`${serve.baseUrl}/#/s/${site.id}/${url}`);
    await page.locator(selector).nth(49).waitFor();
    const more = page.getByRole('button', { name: 'Load more' });
    await more.focus();
    await page.keyboard.press('Enter');
    await page.locator(selector).nth(59).waitFor();
    assert.equal(await more.isHidden(), true, `${link}: the last page is in, and the button gone`);
    assert.equal(await focusedRow(selector), 50, `${link}: the focus is on the first row the button added, not on the page's top`);
    // The next Tab goes on from there, into that row's link.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate((sel) => document.activeElement.closest(sel) === document.querySelectorAll(sel)[50], selector), true,
      `${link}: Tab goes on from the row`);
  }
  await screenshot(page, 'dashboard-messages-load-more');
  assert.deepEqual(errors, []);
});

// The y axis is as wide as its widest tick label: "150,000" and "1,234,567" never run under the
// axis title "events". Checked in the chart's own pixels: left of the y axis's box, where uPlot
// puts the title, the only ink is the title's, one narrow upright block.
itest('the chart\'s tick labels stay clear of the axis title at six and seven digits, wide and narrow', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-'), args: ['--durability', 'normal'] });
  const site = await serve.createSite('Big campaign');
  const total = 150_000;
  for (let sent = 0; sent < total; sent += 2500) {
    const events = Array.from({ length: 2500 }, (_, i) => ({ action: 'View', cid: 'big', cookie_id: `u-${sent + i}` }));
    expectStatus(await serve.ingest(site.ingest_key, events), 202, 'ingest');
  }
  const { page, errors } = await openBrowser(fx);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  // The ink left of the y axis's box, over the plot's height: its rows as runs (gaps of a few
  // pixels, as between letters, do not part a run), and the span of its columns (CSS px).
  const titleBand = () => page.evaluate(() => {
    const canvas = document.querySelector('.chart canvas');
    const box = canvas.getBoundingClientRect();
    const plot = document.querySelector('.chart .u-over').getBoundingClientRect();
    const yAxis = document.querySelectorAll('.chart .u-axis')[1].getBoundingClientRect(); // x, y, CTR
    const ratio = canvas.width / box.width;
    const width = Math.round((yAxis.left - box.left) * ratio);
    const top = Math.round((plot.top - box.top) * ratio);
    const height = Math.round(plot.height * ratio);
    const pixels = canvas.getContext('2d').getImageData(0, top, width, height).data;
    const rows = [];
    let left = Infinity;
    let right = -Infinity;
    for (let y = 0; y < height; y += 1) {
      let inked = false;
      for (let x = 0; x < width; x += 1) {
        if (pixels[(y * width + x) * 4 + 3] <= 64) continue;
        inked = true;
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
      if (!inked) continue;
      const last = rows[rows.length - 1];
      if (last && y - last[1] <= 4 * ratio) last[1] = y; // the gap between two letters of the title
      else rows.push([y, y]);
    }
    return { band: width / ratio, rows: rows.map(([from, to]) => [from / ratio, to / ratio]), columns: (right - left + 1) / ratio };
  });
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  // A series of one hour with `views`: the real answer, scaled for 1,234,567.
  for (const views of [total, 1_234_567]) {
    await page.unroute(/\/stats\?cid=big&bucket=hour$/);
    if (views !== total) {
      await page.route(/\/stats\?cid=big&bucket=hour$/, async (route) => {
        const response = await route.fetch();
        const json = await response.json();
        json.series[0].views = views;
        json.totals.views = views;
        await route.fulfill({ response, json });
      });
    }
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(`${serve.baseUrl}/#/s/${site.id}/campaigns/big`);
      await page.reload();
      assert.equal(await page.getByTestId('views').textContent(), count(views));
      await page.locator('.chart canvas').waitFor();
      const ink = await titleBand();
      const where = `${views} at ${width} px (${JSON.stringify(ink)})`;
      assert.equal(ink.rows.length, 1, `${where}: one block of ink, the title's; no tick label reaches into its band`);
      assert.ok(ink.rows[0][1] - ink.rows[0][0] > 25, `${where}: the block is the title, upright`);
      assert.ok(ink.columns <= 16, `${where}: one line of text wide`);
      await page.locator('.chart').screenshot({ path: `${SCREENSHOTS}/dashboard-chart-${views}-${width}.png` });
    }
  }
  assert.deepEqual(errors, []);
});

itest('hours without events are drawn as none, and a restarted server\'s rates are measured again, never negative', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe();
  const site = await serve.createSite('Gaps');
  const hour = 3600_000;
  const first = Math.floor(Date.now() / hour) * hour - 5 * hour;
  const at = (t) => new Date(t).toISOString();
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1, { cid: 'gappy', occurred_at: at(first) }),
    makeEvent(2, { cid: 'gappy', occurred_at: at(first + 3 * hour) })]), 202, 'ingest');
  const { page, errors } = await openBrowser(fx);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/campaigns/gappy`);
  const chart = page.getByTestId('chart');
  await chart.locator('canvas').waitFor();
  const shown = (t) => `${at(t).slice(0, 10)} ${at(t).slice(11, 19)} UTC`;
  // Two hours with events, three apart: four hours drawn, the two between them as none.
  assert.equal(await chart.getAttribute('aria-label'),
    `Views, clicks and CTR by hour: 4 hours, ${shown(first)} to ${shown(first + 3 * hour)}`);
  await chart.screenshot({ path: `${SCREENSHOTS}/dashboard-chart-gaps.png` });

  // The operator's overview: /metrics as a server restarted between two refreshes would answer.
  let accepted = 5_000;
  await page.route('**/metrics', (route) => route.fulfill({ contentType: 'text/plain',
    body: `pushhook_ingest_events_total{result="accepted"} ${accepted}\n` +
      `pushhook_delivery_attempts_total{outcome="delivered"} ${accepted}\npushhook_delivery_queue_depth 0\n` }));
  await page.goto(`${serve.baseUrl}/#/s/${site.id}/overview`);
  const rate = page.getByTestId('ingest-rate');
  await rate.filter({ hasText: 'measuring' }).waitFor();
  await rate.filter({ hasText: '0.0 /s' }).waitFor({ timeout: 15_000 });  // a refresh every 5 s
  accepted = 7;  // restarted: its counters began again at zero
  await rate.filter({ hasText: 'measuring' }).waitFor({ timeout: 15_000 });
  accepted = 17;
  await rate.filter({ hasText: /^\d+\.\d \/s$/ }).waitFor({ timeout: 15_000 });
  const measured = Number.parseFloat(await rate.textContent());
  assert.ok(measured > 1 && measured <= 2.1, `10 events in about 5 s after the restart: ${measured} /s`);
  assert.deepEqual(errors, []);
});

itest('a refused token and an unreachable server each say what to do', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-') });
  const { page } = await openBrowser(fx);
  await page.clock.install();
  await signIn(page, serve.baseUrl, 'not-a-token');
  await page.getByText('That token was refused.').waitFor();
  await screenshot(page, 'dashboard-refused');

  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByText('No site yet.').waitFor();
  await screenshot(page, 'dashboard-no-site');

  const site = await serve.createSite('Fresh');
  await page.reload();
  await page.getByTestId('site-views').waitFor();
  await page.getByRole('link', { name: 'Campaigns' }).click();
  await page.getByText('No campaigns yet.').waitFor();
  assert.equal(site.name, 'Fresh');

  // A token the server stops taking while the overview refreshes itself (10 s) signs the page
  // out, as on navigation, rather than leaving old figures up with a retry note.
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByTestId('site-views').waitFor();
  await page.evaluate(() => sessionStorage.setItem('pushhook.token', 'a-token-since-rotated'));
  await page.clock.runFor(10_000);
  await page.getByText('That token is no longer accepted.').waitFor();
  assert.equal(await page.getByText('Sign in again.').count(), 1);
  assert.equal(await page.getByTestId('site-views').count(), 0, 'no figure that looks live stays up');
  await screenshot(page, 'dashboard-token-gone');
  // And the refreshes stop: the site's figures (10 s) and the server's rates (5 s) alike.
  const asked = [];
  page.on('request', (request) => asked.push(request.url()));
  await page.clock.runFor(60_000);
  await page.waitForTimeout(150);
  assert.deepEqual(asked, [], 'nothing asked after the sign-out');
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();

  await stop(serve);
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByText('The server is unreachable.').waitFor();
  await screenshot(page, 'dashboard-unreachable');
});

// What an audit of the dashboard in Chromium found, each checked as a person meets it.
itest('the dashboard holds up: paging never repeats, a revoked token ends the session, and what is pending says when', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { browser, page, errors } = await openBrowser(fx);
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const base = `${s.serve.baseUrl}/#/s/${s.site.id}`;
  assert.equal(await page.title(), 'Overview · Shoes & Co · pushhook', 'the tab says where');

  // The overview says why each endpoint needs attention; the lists tell endpoints apart.
  const why = await page.locator(`tr[data-endpoint="${s.dead.id}"] [data-testid="why"]`).textContent();
  assert.equal(why, `${count(s.events.length)} out of retries: redeliver once the receiver is fixed`);
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.locator(`tr[data-endpoint="${s.live.id}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-endpoint="${s.live.id}"] .sub`).textContent(), 'CRM', 'the description under the URL');

  // "Load more" is not offered before the first page is in: a click then loaded it twice.
  const bulk = Array.from({ length: 60 }, (_, i) => makeEvent(300 + i, { cid: 'winter' }));
  expectStatus(await s.serve.ingest(s.site.ingest_key, bulk), 202, 'ingest');
  await waitFor(async () => (await s.api(`/v1/sites/${s.site.id}/messages?status=failed&endpoint=${s.dead.id}&limit=200`)).data.length
    === s.events.length + bulk.length, { timeoutMs: 30_000, what: 'the new messages to fail' });
  const firstPage = await hold(page, /\/messages\?status=failed&limit=50$/);
  await page.goto(`${base}/messages?status=failed`);
  await firstPage.asked;
  assert.equal(await page.getByRole('button', { name: 'Load more' }).isVisible(), false, 'no Load more while the first page loads');
  await firstPage.release();
  await page.getByRole('button', { name: 'Load more' }).click();
  await page.locator('tr[data-message]').nth(50).waitFor();
  const ids = await page.locator('tr[data-message]').evaluateAll((rows) => rows.map((r) => r.dataset.message));
  assert.equal(new Set(ids).size, ids.length, 'no message listed twice');

  // The endpoint page leads to all of its messages, and only its.
  await page.goto(`${base}/endpoints/${s.live.id}`);
  await page.getByTestId('all-messages').click();
  await page.getByTestId('message-filter').waitFor();
  // The filter shows before the page of messages is in: wait for its rows, then compare.
  const want = (await s.api(`/v1/sites/${s.site.id}/messages?endpoint=${s.live.id}&limit=50`)).data.map((m) => m.id);
  await page.locator('tr[data-message]').nth(want.length - 1).waitFor();
  const own = await page.locator('tr[data-message]').evaluateAll((rows) => rows.map((r) => r.dataset.message));
  assert.deepEqual(own, want);
  await screenshot(page, 'dashboard-messages-of-endpoint');

  // Redeliver queues the message: the page says so, not that it was sent.
  const failed = (await s.api(`/v1/sites/${s.site.id}/messages?status=failed&endpoint=${s.dead.id}&limit=1`)).data[0];
  await page.goto(`${base}/messages/${failed.id}`);
  await page.getByRole('button', { name: 'Redeliver' }).click();
  await page.getByText('Queued to go again: its next attempt is listed below once it is made.').waitFor();
  await page.getByRole('heading', { name: 'Attempts' }).waitFor();
  const cells = await page.locator('main table tbody tr').first().locator('td').allTextContents();
  assert.match(cells[4], /^\d+\.\d ms$/, `latency with one decimal: ${cells[4]}`);
  // A pending message says when it goes next: here, once its endpoint is enabled again.
  expectStatus(await s.serve.api('PATCH', `/v1/sites/${s.site.id}/endpoints/${s.dead.id}`, { enabled: false }), 200, 'disable');
  expectStatus(await s.serve.ingest(s.site.ingest_key, [makeEvent(800, { cid: 'held' })]), 202, 'ingest');
  const held = (await s.api(`/v1/sites/${s.site.id}/messages?status=pending&endpoint=${s.dead.id}&limit=1`)).data[0];
  await page.goto(`${base}/messages/${held.id}`);
  assert.equal(await text(page, 'next-attempt'), 'once its endpoint is enabled again');
  await screenshot(page, 'dashboard-message-pending');
  expectStatus(await s.serve.api('PATCH', `/v1/sites/${s.site.id}/endpoints/${s.dead.id}`, { enabled: true }), 200, 'enable');

  // A campaign nobody sent is said to be none, not a page of zeros.
  await page.goto(`${base}/campaigns/no-such-campaign`);
  await page.getByText('No such campaign yet.').waitFor();
  assert.equal(await page.getByTestId('views').count(), 0);
  // A message that is not there is named as such.
  await page.goto(`${base}/messages/msg_nothere`);
  await page.getByText(/^No such message\.$/).waitFor();

  // Settings: each input sits next to its label, and an old error goes once the form changes.
  await page.goto(`${base}/endpoints/${s.live.id}`);
  const label = await page.locator('label[for="edit-description"]').boundingBox();
  const input = await page.locator('#edit-description').boundingBox();
  assert.ok(input.x - (label.x + label.width) < 260, `the description's input is ${input.x - label.x - label.width} px from its label`);
  await page.getByLabel('Events a request (empty: one at a time)').fill('5000');
  await page.getByRole('button', { name: 'Save' }).click();
  const refused = page.getByText(/^Save failed: /);
  await refused.waitFor();
  await page.getByLabel('Events a request (empty: one at a time)').fill('50');
  await refused.waitFor({ state: 'detached' });
  await screenshot(page, 'dashboard-endpoint-settings');

  // A title with a right-to-left override shows the override, not a reversed name.
  const spoof = 'Invoice \u202Eexe.pdf';
  expectStatus(await s.serve.ingest(s.site.ingest_key, [makeEvent(900, { cid: 'spoof', notification_title: spoof })]), 202, 'ingest');
  await page.goto(`${base}/campaigns/spoof`);
  await page.getByTestId('campaign-title').waitFor();
  assert.equal(await text(page, 'campaign-title'), 'Invoice \ufffdexe.pdf');
  const spoofed = await waitFor(async () => (await s.api(`/v1/sites/${s.site.id}/messages?cid=spoof&limit=1`)).data[0],
    { what: 'the spoof\'s message' });
  await page.goto(`${base}/messages/${spoofed.id}`);
  const shownEvent = await page.locator('pre.event').textContent();
  assert.ok(shownEvent.includes('Invoice \ufffdexe.pdf') && !shownEvent.includes('\u202e'), shownEvent);

  // A long site name on a phone: cut in the menu, no sideways scroll.
  const long = await s.serve.createSite('A very long site name for the northern european marketing department 2026 🎉');
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const small = await phone.newPage();
  await signIn(small, s.serve.baseUrl, s.serve.adminToken);
  await small.getByTestId('site-views').waitFor();
  await small.goto(`${s.serve.baseUrl}/#/s/${long.id}/overview`);
  await small.getByTestId('site-views').waitFor();
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
  await screenshot(small, 'dashboard-long-site-name-390');
  await phone.close();

  // A token revoked while the page is open: the next action signs out, saying so.
  const admin = expectStatus(await s.serve.api('POST', `/v1/sites/${s.site.id}/tokens`, { scope: 'admin' }), 201, 'token');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(page, s.serve.baseUrl, admin.token);
  await page.getByTestId('site-views').waitFor();
  await page.goto(`${base}/endpoints/${s.live.id}`);
  await page.getByRole('button', { name: 'Send test' }).waitFor();
  expectStatus(await s.serve.api('DELETE', `/v1/sites/${s.site.id}/tokens/${admin.id}`), 204, 'revoke');
  await page.getByRole('button', { name: 'Send test' }).click();
  await page.getByText('That token is no longer accepted.').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send test' }).count(), 0, 'the page it was on is gone');
  await screenshot(page, 'dashboard-revoked-during-action');
  assert.deepEqual(errors.filter((e) => !/status of (400|401|404)/.test(e)), [], 'no console error but the refusals asked for');
});

itest('an endpoint is registered from the dashboard, its secret shown once, and deleted after asking', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-'), dev: true });
  const site = await serve.createSite('Self-service');
  const { page, errors } = await openBrowser(fx);
  const dialogs = noDialogs(page);
  await signIn(page, serve.baseUrl, serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByText('No endpoint yet.').waitFor();

  // A refusal of the API is shown as it is, and goes once the form changes.
  await page.getByLabel('URL').fill('ftp://example.com/x');
  await page.getByRole('button', { name: 'Register' }).click();
  const refused = page.getByText(/^Register failed: /);
  await refused.waitFor();
  await page.getByLabel('URL').fill('');
  await refused.waitFor({ state: 'detached' });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hooks`;
  await page.getByLabel('URL').fill(url);
  await page.getByLabel('Description').fill('Warehouse');
  await page.getByRole('checkbox', { name: 'Dismiss' }).check();
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByTestId('registered').waitFor();
  const secret = await page.getByTestId('new-endpoint-secret').textContent();
  assert.match(secret, /^whsec_/);
  const [made] = (await serve.api('GET', `/v1/sites/${site.id}/endpoints`)).json.data;
  assert.equal(made.url, url);
  assert.equal(made.description, 'Warehouse');
  assert.deepEqual(made.events, ['View', 'Click', 'Dismiss']);
  // The list is read again beside the secret, which keeps the focus (it is read out).
  await page.locator(`tr[data-endpoint="${made.id}"]`).waitFor();
  assert.equal((await focused(page)).result, true);
  assert.equal(await page.getByLabel('URL').inputValue(), '', 'the form is ready for another');
  await screenshot(page, 'dashboard-endpoint-registered');
  // The secret shown is the one deliveries are signed with: pushhook receive takes them.
  const receive = await fx.startReceive({ secret, listen: `127.0.0.1:${port}` });
  expectStatus(await serve.ingest(site.ingest_key, [makeEvent(1)]), 202, 'ingest');
  await waitFor(() => fs.existsSync(receive.out) && fs.readFileSync(receive.out, 'utf8').length > 0, { what: 'the receiver to store it' });
  await page.reload();
  await page.locator(`tr[data-endpoint="${made.id}"]`).waitFor();
  assert.equal(await page.getByTestId('registered').count(), 0, 'the secret is not shown again');

  // Deleting asks first; Cancel changes nothing; Delete removes it and says so on the list.
  await page.getByRole('link', { name: url }).click();
  await page.getByRole('button', { name: 'Delete endpoint' }).click();
  await page.getByText(/cannot be undone/).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await serve.api('GET', `/v1/sites/${site.id}/endpoints/${made.id}`)).status, 200);
  await page.getByRole('button', { name: 'Delete endpoint' }).click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await page.getByText(`Deleted ${url}.`).waitFor();
  assert.ok(page.url().endsWith(`#/s/${site.id}/endpoints`), page.url());
  assert.equal((await serve.api('GET', `/v1/sites/${site.id}/endpoints/${made.id}`)).status, 404);
  await page.getByText('No endpoint yet.').waitFor();
  assert.deepEqual(dialogs, []);
  assert.deepEqual(errors.filter((e) => !/status of 400/.test(e)), []);
});
