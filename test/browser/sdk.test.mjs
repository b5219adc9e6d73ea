// The browser SDK (DESIGN section 10) in real headless Chromium, end to end: a page on a
// loopback origin registers the example's worker, which loads sdk/pushhook-sw.js; pushes are
// delivered through the DevTools protocol (there is no push service here), and what the worker
// reports goes through a real `pushhook serve` to a real `pushhook receive`.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { startStaticServer } from '../../sdk/example/serve.mjs';
import { haveChromium, openBrowser, screenshot, serviceWorkerRegistration } from '../helpers/browser.mjs';
import { freePort, itest, payloadFor, stop, waitFor } from '../helpers/harness.mjs';

const SKIP = haveChromium() ? false : 'Chromium is not installed (scripts/install-deps installs it)';
const COOKIE = '7e32b7a1-acfc-45db-83fb-766d2a8a2bce';
const CAMPAIGN = {
  cid: '1123123', reference_id: '123422', cookie_id: COOKIE, utm_campaign: 'recover_carts',
  utm_content: 'Article', utm_medium: 'push_notifications', utm_source: 'izooto', utm_term: 'notification3',
};
const ACTIONS = [{ action: 'open', title: 'Open' }, { action: 'later', title: 'Later' }];

function push(title, extra = {}) {
  return JSON.stringify({ title, options: { body: 'b', actions: ACTIONS, data: { pushhook: { ...CAMPAIGN, ...extra } } } });
}

// The payload pushhook must deliver for a report of `action` on a notification titled `title`.
function expected(action, title, clickedButton = 0) {
  return payloadFor({ action, notification_title: title, clicked_button: clickedButton, ...CAMPAIGN });
}

// pushhook serve on a fixed port (the worker keeps its URL across a restart), a site whose
// endpoint is a `pushhook receive`, the example site, and Chromium with notifications allowed.
async function setUp(fx, { worker = 'sw.js', module = false, events = ['View', 'Click'] } = {}) {
  const servePort = await freePort();
  const dataDir = fx.tempDir('pushhook-sdk-');
  const serve = await fx.startServe({ dataDir, listen: `127.0.0.1:${servePort}` });
  const receivePort = await freePort();
  const site = await serve.createSite('SDK');
  const endpoint = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${receivePort}/hooks`, events });
  const receive = await fx.startReceive({ secret: endpoint.secret, listen: `127.0.0.1:${receivePort}` });
  const example = await startStaticServer();
  fx.onCleanup(() => example.close());
  const { context, page, errors } = await openBrowser(fx);
  await context.grantPermissions(['notifications'], { origin: example.url });
  const session = await context.newCDPSession(page);
  await page.goto(`${example.url}/example/`);
  const scope = `${example.url}/example/`;
  const registered = serviceWorkerRegistration(session, scope);
  const params = new URLSearchParams({ endpoint: `${serve.baseUrl}/v1/events`, key: site.ingest_key, dismiss: '1' });
  await page.evaluate(async ({ url, module }) => {
    await navigator.serviceWorker.register(url, module ? { type: 'module' } : {});
    await navigator.serviceWorker.ready;
  }, { url: `${worker}?${params}`, module });
  const registrationId = await registered;
  const deliver = (data) => session.send('ServiceWorker.deliverPushMessage', { origin: example.url, registrationId, data });
  return { serve, servePort, dataDir, site, receive, example, context, page, session, errors, deliver };
}

// What `pushhook receive` has stored so far, one body per line.
function received(receive) {
  if (!fs.existsSync(receive.out)) return [];
  return fs.readFileSync(receive.out, 'utf8').split('\n').filter((line) => line.length > 0);
}

async function waitReceived(receive, count, what) {
  return waitFor(() => (received(receive).length >= count ? received(receive) : null), { timeoutMs: 15_000, what });
}

// Events waiting in the worker's queue (the page shares the origin's IndexedDB).
function queued(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('pushhook');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('queue')) {
        db.close();
        resolve([]);
        return;
      }
      const all = db.transaction('queue').objectStore('queue').getAll();
      all.onsuccess = () => {
        db.close();
        resolve(all.result);
      };
      all.onerror = () => reject(all.error);
    };
  }));
}

itest('a push shows a notification and reaches the webhook receiver as a View', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  await s.deliver(push('Your cart misses you'));
  const lines = await waitReceived(s.receive, 1, 'the View at the receiver');
  assert.deepEqual(lines, [expected('View', 'Your cart misses you')]);
  const shown = await s.page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.getNotifications()).map((n) => n.title);
  });
  assert.deepEqual(shown, ['Your cart misses you']);
  assert.deepEqual(await queued(s.page), [], 'the acknowledged View left the queue');
  assert.deepEqual(s.errors, []);
});

itest('a click on the second action arrives as a Click with button 2', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  await s.deliver(push('Two buttons'));
  await waitReceived(s.receive, 1, 'the View');
  // Headless Chromium cannot click a notification: the test dispatches the event the browser
  // would, in the worker, with the notification the push showed.
  const worker = s.context.serviceWorkers()[0];
  await worker.evaluate(async () => {
    const [notification] = await self.registration.getNotifications();
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification, action: 'later' }));
  });
  const lines = await waitReceived(s.receive, 2, 'the Click');
  assert.equal(lines[1], expected('Click', 'Two buttons', 2));
  // The site's own handler closed that one. A click on the body of the next is button 0.
  await s.deliver(push('The body'));
  await waitReceived(s.receive, 3, 'the second View');
  await worker.evaluate(async () => {
    const [notification] = await self.registration.getNotifications();
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification, action: '' }));
  });
  assert.equal((await waitReceived(s.receive, 4, 'the body click'))[3], expected('Click', 'The body', 0));
});

itest('closing a notification arrives as a Dismiss at an endpoint that asked for it', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { events: ['View', 'Click', 'Dismiss'] });
  await s.deliver(push('Closed unread'));
  await waitReceived(s.receive, 1, 'the View');
  // As with clicks, headless Chromium cannot close a notification for us: the test dispatches
  // the event the browser would, in the worker.
  const worker = s.context.serviceWorkers()[0];
  await worker.evaluate(async () => {
    const [notification] = await self.registration.getNotifications();
    self.dispatchEvent(new NotificationEvent('notificationclose', { notification }));
  });
  const lines = await waitReceived(s.receive, 2, 'the Dismiss');
  assert.equal(lines[1], expected('Dismiss', 'Closed unread'));
  const stats = await s.serve.api('GET', `/v1/sites/${s.site.id}/stats`);
  assert.equal(stats.json.totals.dismissals, 1);
});

// The token a push backend puts in data.pushhook.beacon (README, "Signed beacons").
function beaconToken(secret, site, fields, expires = Math.floor(Date.now() / 1000) + 3600) {
  const b64 = (text) => Buffer.from(text, 'utf8').toString('base64url');
  const signed = ['v1', expires, b64(site), b64(fields.cid), b64(fields.reference_id), b64(fields.cookie_id)].join('.');
  const key = Buffer.from(secret.replace(/^bsec_/, ''), 'base64');
  return `v1.${expires}.${createHmac('sha256', key).update(signed).digest('base64url')}`;
}

itest('with beacons required, a signed push is reported and a forged one is refused and dropped', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  const patched = await s.serve.api('PATCH', `/v1/sites/${s.site.id}`, { beacons: 'required' });
  assert.equal(patched.status, 200, patched.text);
  await s.deliver(push('Forged', { beacon: beaconToken('bsec_' + Buffer.alloc(32, 9).toString('base64'), s.site.id, CAMPAIGN) }));
  await s.deliver(push('Unsigned'));
  await s.deliver(push('Signed', { beacon: beaconToken(s.site.beacon_secret, s.site.id, CAMPAIGN) }));
  const lines = await waitReceived(s.receive, 1, 'the signed View');
  assert.deepEqual(lines, [expected('View', 'Signed')]);
  // The refused ones are not retried forever: a 401 is final, so they leave the queue.
  await waitFor(async () => ((await queued(s.page)).length === 0 ? true : null), { what: 'the queue to empty' });
  const metrics = await s.serve.api('GET', '/metrics');
  // The worker may send the three in one request or in several (401 names the bad events, and
  // the SDK sends the good one again alone): either way one event was stored.
  assert.match(metrics.text, /pushhook_ingest_events_total\{result="accepted"\} 1\n/);
  assert.match(metrics.text, /pushhook_ingest_requests_refused_total\{reason="invalid"\} [12]\n/);
  assert.deepEqual(received(s.receive), [expected('View', 'Signed')]);
});

itest('with pushhook down, a View waits in IndexedDB through a worker restart and arrives once', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  await stop(s.serve, 'SIGTERM');
  await s.deliver(push('While you were away'));
  const waiting = await waitFor(async () => {
    const q = await queued(s.page);
    return q.length === 1 ? q : null;
  }, { what: 'the View queued in IndexedDB' });
  assert.equal(waiting[0].action, 'View');
  assert.equal(waiting[0].notification_title, 'While you were away');
  assert.match(waiting[0].event_id, /^[0-9a-f-]{36}$/);

  // The worker stops (as browsers stop idle workers); the queue is on disk, not in its memory.
  await s.session.send('ServiceWorker.stopAllWorkers');
  assert.equal((await queued(s.page)).length, 1);

  // pushhook comes back on the same address; the next start of the worker sends the queue.
  const back = await fx.startServe({ dataDir: s.dataDir, listen: `127.0.0.1:${s.servePort}`, adminToken: s.serve.adminToken });
  assert.equal(back.port, s.servePort);
  await s.page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    registration.active.postMessage({ type: 'flush' });
  });
  const lines = await waitReceived(s.receive, 1, 'the queued View after pushhook is back');
  assert.equal(lines[0], expected('View', 'While you were away'));
  await waitFor(async () => ((await queued(s.page)).length === 0 ? true : null), { what: 'the queue to empty' });

  // Exactly once: the next event goes alone, the old one is not sent again.
  await s.deliver(push('Next one'));
  const after = await waitReceived(s.receive, 2, 'the next View');
  assert.deepEqual(after, [expected('View', 'While you were away'), expected('View', 'Next one')]);
});

itest('the ES module form of the SDK reports too', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { worker: 'sw-module.mjs', module: true });
  await s.deliver(push('From a module worker'));
  assert.deepEqual(await waitReceived(s.receive, 1, 'the View'), [expected('View', 'From a module worker')]);
});

itest('the example page registers its worker and shows a notification from a button', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  await s.page.fill('#key', s.site.ingest_key);
  await s.page.fill('#endpoint', `${s.serve.baseUrl}/v1/events`);
  await s.page.click('#register');
  await s.page.waitForSelector('#show:not([disabled])');
  await s.page.click('#show');
  const [line] = await waitReceived(s.receive, 1, 'the example View');
  const payload = JSON.parse(line);
  assert.equal(payload.action, 'View');
  assert.equal(payload.cid, 'example');
  assert.equal(payload.notification_title, 'Your cart misses you');
  assert.match(await s.page.textContent('#status'), /View goes to pushhook/);
  await screenshot(s.page, 'sdk-example-1280');
  await s.page.setViewportSize({ width: 390, height: 800 });
  await screenshot(s.page, 'sdk-example-390');
  assert.deepEqual(s.errors, []);
});
