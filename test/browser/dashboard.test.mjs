// The dashboard (DESIGN section 8) in real headless Chromium against a real `pushhook serve`:
// a person signs in with a token, and every number on screen must equal what the API says; each
// endpoint action must change what the API then says; a site token sees its site only, a read
// token changes nothing; event text stays text; no console error or CSP violation occurs.
// Full-page screenshots of each view land in build/screenshots/dashboard-*.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { haveChromium, openBrowser, screenshot } from '../helpers/browser.mjs';
import { SAMPLE_EVENT, expectStatus, freePort, itest, makeEvent, stop, waitFor } from '../helpers/harness.mjs';

const SKIP = haveChromium() ? false : 'Chromium is not installed (scripts/install-deps installs it)';
const HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">';

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
  for (let i = 0; i < 3; ++i) events.push(makeEvent(100 + i, { cid: 'autumn' }));
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
  expectStatus(await s.serve.ingest(s.site.ingest_key, [makeEvent(500, { cid: 'autumn' })]), 202, 'one more view');
  const later = (await s.api(`/v1/sites/${s.site.id}/stats`)).totals;
  assert.equal(later.views, totals.views + 1);
  await waitFor(async () => (await text(page, 'site-views')) === count(later.views), { timeoutMs: 15_000, what: 'the overview to show the new view' });

  await page.getByRole('link', { name: 'Campaigns' }).click();
  const campaigns = (await s.api(`/v1/sites/${s.site.id}/campaigns`)).data;
  await page.locator('tr[data-cid]').first().waitFor();
  for (const c of campaigns) {
    const cells = await page.locator(`tr[data-cid="${c.cid}"] td`).allTextContents();
    assert.deepEqual(cells.slice(0, 7), [c.cid, c.title, count(c.views), count(c.clicks), percent(c.ctr),
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
  assert.equal(await page.locator('th button[aria-sort="ascending"]').textContent(), 'Views ↑');
  await page.getByLabel('Search').fill('aut');
  await showsSoon(['autumn'], 'the search keeps only "autumn"');
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
  assert.ok((await page.locator('.chart canvas').boundingBox()).width > 200, 'the chart draws');
  await page.getByLabel('Group by').selectOption('utm_source');
  await page.getByRole('cell', { name: 'izooto' }).waitFor();
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download CSV' }).click();
  const csv = fs.readFileSync(await (await download).path(), 'utf8');
  assert.match(csv, /^bucket,views,clicks/, 'the CSV is the API\'s');
  await screenshot(page, 'dashboard-campaign');

  await page.getByRole('link', { name: 'Messages' }).click();
  await page.locator('tr[data-message]').first().waitFor();
  const titles = await page.locator('tr[data-message] td.title').allTextContents();
  assert.ok(titles.includes(HOSTILE_TITLE), 'the title is shown as the text it is');
  assert.equal(await page.locator('main img').count(), 0, 'no element was made from event text');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await screenshot(page, 'dashboard-messages');

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
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name} at 390 px is ${overflow} px wider than the screen`);
    await screenshot(page, `dashboard-${name}-390`);
  }
  assert.deepEqual(errors, [], 'no console error, exception or CSP violation');
});

itest('endpoint actions change what the API says, and redeliver reaches a live receiver', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const s = await seed(fx);
  const { page, errors } = await openBrowser(fx);
  page.on('dialog', (dialog) => dialog.accept());
  await signIn(page, s.serve.baseUrl, s.serve.adminToken);
  await page.getByTestId('site-views').waitFor();
  const endpointPath = `/v1/sites/${s.site.id}/endpoints/${s.live.id}`;

  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.locator(`tr[data-endpoint="${s.dead.id}"]`).waitFor();
  await screenshot(page, 'dashboard-endpoints');
  await page.getByRole('link', { name: s.live.url }).click();
  await page.getByRole('button', { name: 'Disable' }).click();
  await page.getByRole('button', { name: 'Enable' }).waitFor();
  assert.equal((await s.api(endpointPath)).enabled, false, 'Disable disabled it');
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByRole('button', { name: 'Disable' }).waitFor();
  assert.equal((await s.api(endpointPath)).enabled, true, 'Enable enabled it');

  await page.getByRole('checkbox', { name: 'Dismiss' }).check();
  await page.getByLabel('Rate limit (requests/s)').fill('25');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => (await s.api(endpointPath)).rate_limit === 25, { what: 'the saved rate limit' });
  assert.deepEqual((await s.api(endpointPath)).events, ['View', 'Click', 'Dismiss']);
  // The filter: one value per line; what the API then holds is shown back.
  await page.getByLabel('cid', { exact: true }).fill('spring\n autumn \n\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor(async () => JSON.stringify((await s.api(endpointPath)).filter) === JSON.stringify({ cid: ['spring', 'autumn'] }),
    { what: 'the saved filter' });
  await page.getByTestId('filter').filter({ hasText: 'cid: spring, autumn' }).waitFor();
  await page.getByLabel('utm_source', { exact: true }).fill('x'.repeat(300));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('filter.utm_source[0] is 300 bytes; at most 256').waitFor();
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
  await page.reload();
  await page.getByRole('button', { name: 'Send test' }).waitFor();

  await page.getByRole('button', { name: 'Send test' }).click();
  await page.getByText(/^Delivered: HTTP 2\d\d/).waitFor();

  const before = (await s.api(endpointPath)).updated_at;
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  const secret = await page.getByTestId('new-secret').textContent();
  assert.match(secret, /^whsec_[A-Za-z0-9+/=]{32,}$/);
  assert.notEqual((await s.api(endpointPath)).updated_at, before, 'the API saw the rotation');

  const since = new Date(Date.now() - 3600_000).toISOString().slice(0, 16);
  const until = new Date(Date.now() + 3600_000).toISOString().slice(0, 16);
  await page.getByLabel('Replay from (UTC)').fill(since);
  await page.getByLabel('to', { exact: true }).fill(until);
  await page.getByLabel('campaign', { exact: true }).fill('autumn');
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replaying 3 event(s) to this endpoint.').waitFor();
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
  const asked = await page.evaluate(async (url) => (await fetch(url, {
    headers: { authorization: `Bearer ${sessionStorage.getItem('pushhook.token')}` } })).status,
  `/v1/sites/${s.site.id}/campaigns`);
  assert.equal(asked, 404, 'and the API the page uses will not give them either');
  await screenshot(page, 'dashboard-read-token');
  assert.deepEqual(errors.filter((e) => !/status of 404/.test(e)), [], 'no console error but the 404 asked for');
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
  const cells = await page.locator(`tr[data-cid="${SAMPLE_EVENT.cid}"] td`).allTextContents();
  assert.deepEqual(cells.slice(0, 4), [SAMPLE_EVENT.cid, SAMPLE_EVENT.notification_title, '0', '1']);
  await page.getByRole('link', { name: SAMPLE_EVENT.cid }).click();
  assert.equal(await text(page, 'button-2'), '1', 'the click was on button 2');
  assert.deepEqual(errors, []);
});

itest('a refused token and an unreachable server each say what to do', { skip: SKIP, timeout: 120_000 }, async (fx) => {
  const serve = await fx.startServe({ dataDir: fx.tempDir('pushhook-dash-') });
  const { page } = await openBrowser(fx);
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

  await stop(serve);
  await page.getByRole('link', { name: 'Endpoints' }).click();
  await page.getByText('The server is unreachable.').waitFor();
  await screenshot(page, 'dashboard-unreachable');
});
