// The browser SDK (DESIGN section 10) in real headless Chromium, end to end: a page on a
// loopback origin registers the example's worker, which loads sdk/pushhook-sw.js; pushes are
// delivered through the DevTools protocol (there is no push service here), and what the worker
// reports goes through a real `pushhook serve` to a real `pushhook receive`.
import assert from 'node:assert/strict';
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
async function setUp(fx, { worker = 'sw.js', module = false } = {}) {
  const servePort = await freePort();
  const dataDir = fx.tempDir('pushhook-sdk-');
  const serve = await fx.startServe({ dataDir, listen: `127.0.0.1:${servePort}` });
  const receivePort = await freePort();
  const site = await serve.createSite('SDK');
  const endpoint = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${receivePort}/hooks` });
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
