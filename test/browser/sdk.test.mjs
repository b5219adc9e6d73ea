// The browser SDK (DESIGN section 10) in real headless Chromium, end to end: a page on a
// loopback origin registers the example's worker, which loads sdk/pushhook-sw.js; pushes are
// delivered through the DevTools protocol (there is no push service here), and what the worker
// reports goes through a real `pushhook serve` to a real `pushhook receive`.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { startStaticServer } from '../../sdk/example/serve.mjs';
import { haveChromium, openBrowser, screenshot, serviceWorkerRegistration } from '../helpers/browser.mjs';
import { freePort, itest, payloadFor, sleep, stop, waitFor } from '../helpers/harness.mjs';

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

// What sits between browsers and pushhook (a load balancer, a CDN, a deploy in progress), on
// 127.0.0.1: it forwards to `target`, or, while `front.answer` says so, answers itself: 'reset'
// drops the connection, {status, headers, body} is sent as the answer. Every POST it gets is in
// `front.posts` ({at, bytes, events, status}).
async function startFront(fx, target) {
  const front = { answer: null, posts: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const post = { at: Date.now(), bytes: body.length, events: [], status: null };
      if (req.method === 'POST') {
        try {
          post.events = JSON.parse(body.toString('utf8'));
        } catch {
          post.events = null;
        }
        front.posts.push(post);
      }
      const answer = front.answer;
      if (answer === 'reset') {
        req.socket.destroy();
        return;
      }
      if (answer) {
        post.status = answer.status;
        res.writeHead(answer.status, {
          'access-control-allow-origin': '*', 'access-control-expose-headers': 'retry-after', ...answer.headers,
        });
        res.end(answer.body ?? '');
        return;
      }
      const upstream = http.request(target + req.url, { method: req.method, headers: req.headers }, (up) => {
        const got = [];
        up.on('data', (chunk) => got.push(chunk));
        up.on('end', () => {
          post.status = up.statusCode;
          res.writeHead(up.statusCode, up.headers);
          res.end(Buffer.concat(got));
        });
      });
      upstream.on('error', () => req.socket.destroy());
      upstream.end(body);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  fx.onCleanup(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  front.url = `http://127.0.0.1:${server.address().port}`;
  return front;
}

// pushhook serve on a fixed port (the worker keeps its URL across a restart), a site whose
// endpoint is a `pushhook receive`, the example site, and Chromium with notifications allowed.
// With `front`, the worker posts to pushhook through startFront's stand-in; `key` replaces the
// site's ingest key in the worker's configuration; `init: false` registers the example worker
// without one, so that it never calls Pushhook.init. `warnings` collects what the worker passes
// to console.warn, as its console (DevTools, Application, Service workers) shows it.
async function setUp(fx, { worker = 'sw.js', module = false, events = ['View', 'Click'], front: withFront = false, serveArgs = [],
  key = null, init = true } = {}) {
  const servePort = await freePort();
  const dataDir = fx.tempDir('pushhook-sdk-');
  const serve = await fx.startServe({ dataDir, listen: `127.0.0.1:${servePort}`, args: serveArgs });
  const front = withFront ? await startFront(fx, serve.baseUrl) : null;
  const receivePort = await freePort();
  const site = await serve.createSite('SDK');
  const endpoint = await serve.createEndpoint(site.id, { url: `http://127.0.0.1:${receivePort}/hooks`, events });
  const receive = await fx.startReceive({ secret: endpoint.secret, listen: `127.0.0.1:${receivePort}` });
  const example = await startStaticServer();
  fx.onCleanup(() => example.close());
  const { context, page, errors } = await openBrowser(fx);
  const warnings = [];
  context.on('serviceworker', (sw) => sw.on('console', (message) => {
    if (message.type() === 'warning') warnings.push(message.text());
  }));
  await context.grantPermissions(['notifications'], { origin: example.url });
  const session = await context.newCDPSession(page);
  await page.goto(`${example.url}/example/`);
  const scope = `${example.url}/example/`;
  const registered = serviceWorkerRegistration(session, scope);
  const ingest = front ? front.url : serve.baseUrl;
  const params = new URLSearchParams({ endpoint: `${ingest}/v1/events`, key: key ?? site.ingest_key, dismiss: '1' });
  await page.evaluate(async ({ url, module }) => {
    await navigator.serviceWorker.register(url, module ? { type: 'module' } : {});
    await navigator.serviceWorker.ready;
  }, { url: init ? `${worker}?${params}` : worker, module });
  const registrationId = await registered;
  const deliver = (data) => session.send('ServiceWorker.deliverPushMessage', { origin: example.url, registrationId, data });
  return {
    serve, servePort, dataDir, site, receive, example, context, page, session, errors, deliver, front, warnings,
    worker: () => context.serviceWorkers()[0],
  };
}

// What `pushhook receive` has stored so far, one body per line.
function received(receive) {
  if (!fs.existsSync(receive.out)) return [];
  return fs.readFileSync(receive.out, 'utf8').split('\n').filter((line) => line.length > 0);
}

async function waitReceived(receive, count, what) {
  return waitFor(() => (received(receive).length >= count ? received(receive) : null), { timeoutMs: 15_000, what });
}

// The records of the worker's queue, {event, tries} (the page shares the origin's IndexedDB).
function queuedRecords(page) {
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

// Events waiting in the worker's queue.
async function queued(page) {
  return (await queuedRecords(page)).map((record) => record.event);
}

// Asks the worker to send its queue now (the example worker's 'flush' message).
function flushWorker(page) {
  return page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    registration.active.postMessage({ type: 'flush' });
  });
}

async function waitQueued(page, count, what) {
  return waitFor(async () => {
    const q = await queued(page);
    return q.length === count ? q : null;
  }, { timeoutMs: 20_000, what });
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

  // Clicked, then closed much later, after the browser stopped the idle worker: a Click, and no
  // Dismiss after it (the click is kept in IndexedDB, not only in the worker's memory).
  const options = { body: 'b', tag: 'kept', timestamp: 1_765_000_000_000, data: { pushhook: { ...CAMPAIGN } } };
  await s.deliver(JSON.stringify({ title: 'Clicked then closed', options }));
  await waitReceived(s.receive, 3, 'the second View');
  await worker.evaluate(async () => {
    const notification = (await self.registration.getNotifications()).find((n) => n.title === 'Clicked then closed');
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification, action: '' }));
  });
  assert.equal((await waitReceived(s.receive, 4, 'the Click'))[3], expected('Click', 'Clicked then closed', 0));
  await worker.evaluate(() => { self.lifeBeforeTheStop = true; });
  await s.session.send('ServiceWorker.stopAllWorkers');
  await flushWorker(s.page);
  // A worker started again, without the memory of the one before.
  const again = await waitFor(async () => {
    const w = s.worker();
    return w && (await w.evaluate(() => self.lifeBeforeTheStop === undefined).catch(() => false)) ? w : null;
  }, { what: 'the worker started again' });
  // The example's click handler closed it; the same notification (its fields and time) is shown
  // again, for the close the person makes later.
  await again.evaluate(async (opts) => {
    await self.registration.showNotification('Clicked then closed', opts);
    const notification = (await self.registration.getNotifications()).find((n) => n.title === 'Clicked then closed');
    self.dispatchEvent(new NotificationEvent('notificationclose', { notification }));
  }, options);
  // A push after it: once its View is in, a Dismiss reported before it would be too.
  await s.deliver(push('Marker'));
  const all = await waitReceived(s.receive, 5, 'the marker View');
  assert.equal(all[4], expected('View', 'Marker'));
  await waitQueued(s.page, 0, 'the queue to empty');
  assert.equal((await s.serve.api('GET', `/v1/sites/${s.site.id}/stats`)).json.totals.dismissals, 1, 'no Dismiss after the Click');
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
  await flushWorker(s.page);
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

// Shows `count` notifications from inside the worker (faster than that many pushes), each with
// the campaign fields and title `titleOf(i)`; `extra` is merged into data.pushhook.
function showMany(s, count, titleOf, extra = {}) {
  return s.worker().evaluate(async ({ count, titles, fields }) => {
    for (let i = 0; i < count; i += 1) {
      await Pushhook.show(titles[i], { tag: 'many', data: { pushhook: fields } });
    }
  }, { count, titles: Array.from({ length: count }, (_, i) => titleOf(i)), fields: { ...CAMPAIGN, ...extra } });
}

itest('with Background Sync, a 503 with Retry-After costs one request, and the queue goes once the pause is over', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  await s.context.grantPermissions(['notifications', 'background-sync'], { origin: s.example.url });
  s.front.answer = { status: 503, headers: { 'retry-after': '5' }, body: '{"error":{"code":"overloaded","message":"busy"}}' };
  await s.deliver(push('During the overload'));
  await waitFor(() => s.front.posts.length >= 1, { what: 'the first request' });
  const start = s.front.posts[0].at;
  // The pause (5 s) is short: the flush that met it waits it out under the push's waitUntil,
  // rather than leave the events to Background Sync's backoff (minutes). No request meanwhile.
  await sleep(Math.max(0, start + 1_500 - Date.now()));
  assert.equal(s.front.posts.length, 1, 'no loop of requests');

  // pushhook is fine again, but Retry-After said 5 s: a View that comes meanwhile waits with the first.
  s.front.answer = null;
  await s.deliver(push('During the pause'));
  await waitQueued(s.page, 2, 'both Views queued');
  // Then both go by themselves, in one request, once the pause is over: nobody flushes here.
  const lines = await waitReceived(s.receive, 2, 'both Views after the pause');
  assert.ok(s.front.posts[1].at >= start + 5_000, `the second request ${s.front.posts[1].at - start} ms after the first`);
  // pushhook delivers the two of one request side by side, in either order.
  assert.deepEqual([...lines].sort(), [expected('View', 'During the overload'), expected('View', 'During the pause')].sort());
  assert.equal(s.front.posts.length, 2);
  assert.deepEqual(s.front.posts[1].events.map((e) => e.notification_title), ['During the overload', 'During the pause']);
  assert.equal(s.front.posts[1].status, 202);
  await waitQueued(s.page, 0, 'the queue to empty');
});

itest('multibyte events over 64 KiB in all arrive in requests under the keepalive limit, and a huge one goes alone', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  s.front.answer = 'reset';
  // 250 Japanese characters: 750 bytes of UTF-8, 250 units of UTF-16.
  const title = 'カートに残っている商品がまもなく売り切れます'.repeat(12).slice(0, 250);
  await showMany(s, 100, (i) => `${i} ${title}`);
  const waiting = await waitQueued(s.page, 100, '100 events queued');
  assert.ok(Buffer.byteLength(JSON.stringify(waiting)) > 64 * 1024, 'more than one keepalive body');
  const before = s.front.posts.length;
  s.front.answer = null;
  await flushWorker(s.page);
  const lines = await waitReceived(s.receive, 100, 'the 100 Views');
  const titles = lines.map((line) => JSON.parse(line).notification_title);
  assert.deepEqual([...titles].sort(), Array.from({ length: 100 }, (_, i) => `${i} ${title}`).sort());
  await waitQueued(s.page, 0, 'the queue to empty');
  const sent = s.front.posts.slice(before);
  assert.ok(sent.length >= 2, `split into several requests (${sent.length})`);
  for (const post of sent) {
    assert.ok(post.bytes <= 60 * 1024, `a request of ${post.bytes} bytes`);
    assert.equal(post.status, 202);
  }
  assert.equal(sent.reduce((n, post) => n + post.events.length, 0), 100, 'each event once');

  // One event larger than a keepalive body (a 70 KB cookie_id, which pushhook refuses as too
  // long) is still sent, alone, and dropped on pushhook's 400 instead of staying for ever.
  await showMany(s, 1, () => 'Huge', { cookie_id: 'u'.repeat(70_000) });
  const huge = await waitFor(() => s.front.posts.find((post) => post.bytes > 64 * 1024), { what: 'the huge request' });
  assert.equal(huge.events.length, 1);
  await waitFor(() => huge.status, { what: 'its answer' });
  assert.equal(huge.status, 400);
  await waitQueued(s.page, 0, 'the refused event to leave the queue');
});

itest('a title over 1,024 bytes and a UTM field over 256 bytes arrive cut at a character boundary', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  const title = 'L'.repeat(1023) + '日本';  // 1,029 bytes; '日' would straddle the limit
  await s.deliver(push(title, { utm_term: 'é'.repeat(200), reference_id: 123422 }));
  const [line] = await waitReceived(s.receive, 1, 'the View');
  const payload = JSON.parse(line);
  assert.equal(payload.notification_title, 'L'.repeat(1023));
  assert.equal(payload.utm_term, 'é'.repeat(128), '256 bytes');
  assert.equal(payload.reference_id, '123422', 'a number is taken for reference_id');
  assert.equal(payload.cid, CAMPAIGN.cid);
  await waitQueued(s.page, 0, 'the queue to empty');
});

itest('without IndexedDB, show() still resolves and the View is sent directly', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  const outcome = await s.worker().evaluate(async (fields) => {
    // As in some private modes: opening a database fails.
    Object.defineProperty(self, 'indexedDB', {
      configurable: true,
      get: () => ({
        open() {
          const req = {};
          setTimeout(() => {
            req.error = new DOMException('no IndexedDB here', 'InvalidStateError');
            if (req.onerror) req.onerror();
          }, 0);
          return req;
        },
      }),
    });
    try {
      await Pushhook.show('No IndexedDB', { data: { pushhook: fields } });
      return 'resolved';
    } catch (error) {
      return `rejected: ${error.message}`;
    }
  }, CAMPAIGN);
  assert.equal(outcome, 'resolved');
  assert.deepEqual(await waitReceived(s.receive, 1, 'the View'), [expected('View', 'No IndexedDB')]);
});

itest('a 404, 408, 401 or 200 from what sits in front of pushhook keeps the events until a 202', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  const answers = [
    ['During a deploy', { status: 404, headers: { 'content-type': 'text/html' }, body: '<h1>Not Found</h1>' }],
    ['Timed out', { status: 408 }],
    ['Wrong key', { status: 401, headers: { 'content-type': 'application/json' }, body: '{"error":{"code":"unauthorized","message":"unknown key"}}' }],
    ['From a cache', { status: 200, body: '{}' }],
  ];
  for (const [i, [title, answer]] of answers.entries()) {
    s.front.answer = answer;
    await s.deliver(push(title));
    // Each send carries the whole queue: everything refused so far, and the new one. (Chromium
    // itself may send a request again after a 408.)
    const post = await waitFor(() => s.front.posts.find((p) => p.events.some((e) => e.notification_title === title)),
      { what: `the request answered ${answer.status}` });
    assert.deepEqual(post.events.map((e) => e.notification_title), answers.slice(0, i + 1).map(([t]) => t));
  }
  await waitQueued(s.page, 4, 'all four still queued');
  const before = s.front.posts.length;
  s.front.answer = null;
  await flushWorker(s.page);
  const lines = await waitReceived(s.receive, 4, 'the four Views');
  assert.deepEqual([...lines].sort(), answers.map(([title]) => expected('View', title)).sort());
  await waitQueued(s.page, 0, 'the queue to empty');
  assert.deepEqual(s.front.posts.slice(before).map((p) => [p.events.length, p.status]), [[4, 202]]);
  assert.equal(received(s.receive).length, 4, 'each once');
});

itest('a 400 drops only the event it names; the others in the request arrive', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  s.front.answer = 'reset';
  await s.deliver(push('Good one'));
  await s.deliver(push('Bad one', { cid: '' }));
  await s.deliver(push('Good two'));
  await waitQueued(s.page, 3, 'three queued');
  const before = s.front.posts.length;
  s.front.answer = null;
  await flushWorker(s.page);
  const good = [expected('View', 'Good one'), expected('View', 'Good two')].sort();
  assert.deepEqual([...await waitReceived(s.receive, 2, 'the good ones')].sort(), good);
  await waitQueued(s.page, 0, 'the queue to empty');
  const sent = s.front.posts.slice(before);
  assert.deepEqual(sent.map((post) => [post.events.length, post.status]), [[3, 400], [2, 202]]);
  assert.deepEqual(sent[1].events.map((e) => e.notification_title), ['Good one', 'Good two']);
  assert.deepEqual(received(s.receive).sort(), good, 'the bad one was not sent again');
});

itest('a 413 splits the request in halves until it fits; every event arrives once', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true, serveArgs: ['--max-body-bytes', '8192'] });
  s.front.answer = 'reset';
  await showMany(s, 30, (i) => `Queued ${i}`);
  await waitQueued(s.page, 30, '30 queued');
  const before = s.front.posts.length;
  s.front.answer = null;
  await flushWorker(s.page);
  const lines = await waitReceived(s.receive, 30, 'the 30 Views');
  assert.deepEqual([...lines].sort(), Array.from({ length: 30 }, (_, i) => expected('View', `Queued ${i}`)).sort());
  await waitQueued(s.page, 0, 'the queue to empty');
  const sent = s.front.posts.slice(before);
  assert.deepEqual(sent[0].events.length, 30);
  assert.equal(sent[0].status, 413);
  const accepted = sent.filter((post) => post.status === 202);
  assert.equal(accepted.reduce((n, post) => n + post.events.length, 0), 30, 'each event once');
  for (const post of sent) assert.ok(post.status === 413 || post.status === 202, `HTTP ${post.status}`);
  assert.ok(accepted.every((post) => post.bytes <= 8192));
});

// Rewrites the queued records whose title `change` names: change[title](record) edits the
// {event, tries} record in place (the page shares the worker's IndexedDB).
function editQueued(page, change) {
  return page.evaluate((edits) => new Promise((resolve, reject) => {
    const open = indexedDB.open('pushhook');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction('queue', 'readwrite');
      const cursor = tx.objectStore('queue').openCursor();
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (!at) return;
        const edit = edits[at.value.event.notification_title];
        if (edit) at.update({ ...at.value, ...edit, event: { ...at.value.event, ...edit.event } });
        at.continue();
      };
      tx.oncomplete = () => {
        db.close();
        resolve();
      };
      tx.onerror = () => reject(tx.error);
    };
  }), change);
}

// How many times each queued event has been refused, by title.
async function queuedTries(page) {
  return Object.fromEntries((await queuedRecords(page)).map((r) => [r.event.notification_title, r.tries]));
}

itest('an event refused 10 times and over 3 days old is given up; a younger one is kept and arrives', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  s.front.answer = { status: 404, headers: { 'content-type': 'text/html' }, body: '<h1>Not Found</h1>' };
  await s.deliver(push('Given up'));
  await waitFor(async () => ((await queuedTries(s.page))['Given up'] >= 1 ? true : null), { what: 'the first refusal counted' });
  await s.deliver(push('Still young'));
  await waitFor(async () => ((await queuedTries(s.page))['Still young'] >= 1 ? true : null), { what: 'the second refusal counted' });
  // Nine refusals each; only the first is also older than three days.
  const fourDaysAgo = Date.now() - 4 * 24 * 60 * 60 * 1000;
  await editQueued(s.page, { 'Given up': { tries: 9, event: { occurred_at: fourDaysAgo } }, 'Still young': { tries: 9 } });
  await s.deliver(push('Fresh'));
  await waitFor(async () => {
    const tries = await queuedTries(s.page);
    return tries['Given up'] === undefined && tries['Still young'] === 10 && tries.Fresh === 1 ? tries : null;
  }, { what: 'the old event given up at its tenth refusal, the others kept' });
  const before = s.front.posts.length;
  s.front.answer = null;
  await flushWorker(s.page);
  const lines = await waitReceived(s.receive, 2, 'the two kept Views');
  assert.deepEqual([...lines].sort(), [expected('View', 'Still young'), expected('View', 'Fresh')].sort());
  await waitQueued(s.page, 0, 'the queue to empty');
  assert.deepEqual(s.front.posts.slice(before).map((p) => [p.events.map((e) => e.notification_title).sort(), p.status]),
    [[['Fresh', 'Still young'], 202]]);
});

// A configuration that cannot work is refused where it is written, in the worker, with the value
// it got: a relative endpoint would post the events and the key to the site's own server.
itest('init refuses, naming the value, an endpoint that is not an absolute http(s) URL, an empty key and a dismiss that is not a boolean', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  const endpoint = `${s.serve.baseUrl}/v1/events`;
  const key = s.site.ingest_key;
  const outcomes = await s.worker().evaluate((configurations) => configurations.map((options) => {
    try {
      Pushhook.init(options);
      return 'accepted';
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  }), [
    { endpoint: 'pushhook.example.com/v1/events', key }, // the scheme left out
    { endpoint: '/v1/events', key }, // a path on the site's own server
    { endpoint: 'ftp://127.0.0.1/v1/events', key },
    { endpoint, key: '' },
    { endpoint, key, dismiss: 'true' },
    { endpoint, key: undefined },
  ]);
  const notAbsolute = (value) => 'TypeError: Pushhook.init: endpoint must be an absolute http or https URL, ' +
    `such as https://pushhook.example.com/v1/events, not "${value}"`;
  assert.deepEqual(outcomes, [
    notAbsolute('pushhook.example.com/v1/events'),
    notAbsolute('/v1/events'),
    notAbsolute('ftp://127.0.0.1/v1/events'),
    "TypeError: Pushhook.init: key must be the site's ingest key, not empty",
    'TypeError: Pushhook.init: dismiss must be true or false, not "true"',
    'TypeError: Pushhook.init needs {endpoint, key}',
  ]);
  // None of them replaced the configuration the worker started with.
  await s.deliver(push('After the refusals'));
  assert.deepEqual(await waitReceived(s.receive, 1, 'the View'), [expected('View', 'After the refusals')]);
  assert.deepEqual(s.warnings, []);
});

itest('a wrong ingest key warns once per flush with the status and pushhook\'s message; the events stay queued', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true, key: 'pk_this_is_not_the_key' });
  const refused = 'pushhook: ingest refused the events (HTTP 401 unauthorized: unknown ingest key); ' +
    'they stay queued and are sent again later';
  await s.deliver(push('First'));
  await waitFor(() => s.warnings.length >= 1, { what: 'the first warning' });
  // The second flush sends both events in one request: one warning for it, not one per event.
  await s.deliver(push('Second'));
  await waitFor(() => s.warnings.length >= 2, { what: 'the second warning' });
  assert.deepEqual(s.front.posts.map((p) => [p.events.map((e) => e.notification_title), p.status]),
    [[['First'], 401], [['First', 'Second'], 401]]);
  // The warning comes before the refusal is counted: wait for the count.
  await waitFor(async () => ((await queuedTries(s.page)).Second === 1 ? true : null), { what: 'the second refusal counted' });
  assert.deepEqual(await queuedTries(s.page), { First: 2, Second: 1 }, 'both kept');

  // A 500 only asks for patience: it is counted, but says nothing new.
  s.front.answer = { status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":{"code":"internal","message":"boom"}}' };
  await s.deliver(push('Third'));
  await waitFor(async () => ((await queuedTries(s.page)).Third === 1 ? true : null), { what: 'the 500 counted' });
  assert.deepEqual(s.warnings, [refused, refused]);

  // With the right key the queue goes, each event once.
  s.front.answer = null;
  await s.worker().evaluate((options) => Pushhook.init(options),
    { endpoint: `${s.front.url}/v1/events`, key: s.site.ingest_key, dismiss: true });
  const lines = await waitReceived(s.receive, 3, 'the three Views');
  assert.deepEqual([...lines].sort(), ['First', 'Second', 'Third'].map((t) => expected('View', t)).sort());
  await waitQueued(s.page, 0, 'the queue to empty');
  assert.deepEqual(s.warnings, [refused, refused]);
});

itest('show() before init() shows the notification and warns that its View is not reported', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { init: false });
  await s.deliver(push('Before init'));
  await waitFor(() => s.warnings.length >= 1, { what: 'the warning' });
  assert.deepEqual(s.warnings, ['pushhook: show() before init(): this View is not reported']);
  const shown = await s.worker().evaluate(async () => (await self.registration.getNotifications()).map((n) => n.title));
  assert.deepEqual(shown, ['Before init']);
  assert.deepEqual(await queued(s.page), [], 'nothing queued');
  assert.deepEqual(received(s.receive), []);
});

itest('a 429 with a short Retry-After is waited out: the events go seconds later with no new event, and flush() waits too', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  await s.context.grantPermissions(['notifications', 'background-sync'], { origin: s.example.url });
  s.front.answer = { status: 429, headers: { 'retry-after': '1' }, body: '{"error":{"code":"rate_limited","message":"slow down"}}' };
  await s.deliver(push('Burst one'));
  await waitFor(() => s.front.posts.length >= 1, { what: 'the refused request' });
  s.front.answer = null;
  // No other event, no flush from the page: the flush that met the pause sends again after it.
  await waitReceived(s.receive, 1, 'the View, a second later');
  assert.deepEqual(s.front.posts.map((p) => p.status), [429, 202]);
  assert.ok(s.front.posts[1].at - s.front.posts[0].at >= 1_000, 'not before the pause ended');

  // flush() called during a pause waits it out and resolves 'done'; a pause past 30 s is 'paused'.
  s.front.answer = { status: 429, headers: { 'retry-after': '2' } };
  await s.deliver(push('Burst two'));
  await waitFor(() => s.front.posts.length >= 3, { what: 'the second refusal' });
  s.front.answer = null;
  const outcome = await s.worker().evaluate(() => Pushhook.flush());
  assert.equal(outcome, 'done');
  await waitReceived(s.receive, 2, 'the second View');
  s.front.answer = { status: 503, headers: { 'retry-after': '120' } };
  await s.deliver(push('Long pause'));
  await waitFor(() => s.front.posts.length >= 5, { what: 'the long refusal' });
  assert.equal(await s.worker().evaluate(() => Pushhook.flush()), 'paused');
  await waitQueued(s.page, 1, 'kept for later');
  // A pause that long is left to Background Sync: one registration, and its sync (which
  // Chromium fires at once) sends nothing while the pause holds.
  const tags = await waitFor(async () => {
    const t = await s.worker().evaluate(() => self.registration.sync.getTags());
    return t.includes('pushhook-flush') ? t : null;
  }, { what: 'the sync registration' });
  assert.deepEqual(tags, ['pushhook-flush']);
  await sleep(2_000);
  assert.equal(s.front.posts.length, 5, 'nothing sent during the pause');
});

itest('show() takes null options as none; a warning for dropped events says why each was refused', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx, { front: true });
  const shown = await s.worker().evaluate(async () => {
    await Pushhook.show('Plain', null);
    return (await self.registration.getNotifications()).map((n) => n.title);
  });
  assert.deepEqual(shown, ['Plain']);
  // Refused in one request: a cid too long and an empty one; two reasons, one warning.
  s.front.answer = 'reset';
  await s.deliver(push('Too long', { cid: 'x'.repeat(70) }));
  await s.deliver(push('Empty', { cid: '' }));
  await waitQueued(s.page, 2, 'both queued');
  s.front.answer = null;
  await flushWorker(s.page);
  const warning = await waitFor(() => s.warnings.find((w) => w.startsWith('pushhook: dropped')), { what: 'the warning' });
  assert.match(warning, /^pushhook: dropped 2 events the server refused \(HTTP 400 invalid_event\): cid .+; cid .+$/);
  await waitQueued(s.page, 0, 'both dropped');
});

itest('a mistyped endpoint path warns with pushhook\'s 404, as the README says; the events stay queued and go once it is right', { skip: SKIP }, async (fx) => {
  const s = await setUp(fx);
  await s.worker().evaluate((options) => Pushhook.init(options),
    { endpoint: `${s.serve.baseUrl}/v1/event`, key: s.site.ingest_key, dismiss: true });
  await s.deliver(push('Lost in a typo'));
  const warning = await waitFor(() => s.warnings.find((w) => w.includes('HTTP 404')), { what: 'the warning' });
  assert.equal(warning, 'pushhook: ingest refused the events (HTTP 404 not_found: no route for /v1/event); ' +
    'they stay queued and are sent again later');
  await waitQueued(s.page, 1, 'kept');
  await s.worker().evaluate((options) => Pushhook.init(options),
    { endpoint: `${s.serve.baseUrl}/v1/events`, key: s.site.ingest_key, dismiss: true });
  assert.deepEqual(await waitReceived(s.receive, 1, 'the View'), [expected('View', 'Lost in a typo')]);
});
