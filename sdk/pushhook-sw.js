// pushhook's service-worker SDK: reports a web-push notification's View, Click and (if asked)
// Dismiss to pushhook's ingest API, and loses none of them when the network or pushhook is down.
//
//   importScripts('/pushhook-sw.js');            // or: import './pushhook-sw.mjs' in a module worker
//   Pushhook.init({endpoint: 'https://pushhook.example.com/v1/events', key: 'pk_…'});
//   self.addEventListener('push', (event) => {
//     const message = event.data.json();
//     event.waitUntil(Pushhook.show(message.title, message.options));
//   });
//
// The campaign fields come from the notification's `data.pushhook` ({cid, cookie_id,
// reference_id, utm_*, beacon}), which the push backend puts in the push message; notifications
// without it are not reported. Every event is written to IndexedDB before it is sent and leaves
// it only when pushhook answers 202, so a subscriber who is offline, or a pushhook that is
// restarting, costs nothing: the queue is sent again with the next event, when the worker next
// starts, and on Background Sync where the browser has it.
//
// No dependencies; runs as a classic worker script or, imported for its side effect, in a module
// worker (it is strict-mode code that only assigns self.Pushhook).
(function () {
  'use strict';

  const DB_NAME = 'pushhook';
  const DB_STORE = 'queue';
  const SYNC_TAG = 'pushhook-flush';
  // Events kept while pushhook cannot be reached; beyond it the oldest give way.
  const MAX_QUEUE = 1000;
  // Events per request: what the ingest API takes in one go comfortably.
  const MAX_BATCH = 100;
  // A keepalive request's body may not exceed 64 KiB in Chromium; stay under it.
  const MAX_BATCH_BYTES = 60 * 1024;
  const STRING_FIELDS = ['cid', 'cookie_id', 'reference_id', 'utm_campaign', 'utm_content',
    'utm_medium', 'utm_source', 'utm_term'];

  let config = null;
  // Flushes run one after another, so that two never send the same events; a flush asked for
  // while one runs waits for it, then sends what came meanwhile.
  let chain = Promise.resolve();
  let next = null;  // the flush waiting its turn, shared by everyone who asks meanwhile

  // --- pure logic (exposed as Pushhook._internal for the SDK's own tests) --------------------

  // The clicked button's position: 1 or 2 for the first or second action, 0 for the body.
  // An action id that is not among the notification's first two actions counts as the body.
  function buttonIndex(actions, action) {
    if (!action) return 0;
    const index = (actions || []).findIndex((a) => a && a.action === action);
    return index === 0 || index === 1 ? index + 1 : 0;
  }

  // The ingest event for a notification, or null when it carries no `data.pushhook`.
  function buildEvent(action, notification, clickedButton, eventId, now) {
    const fields = notification && notification.data && notification.data.pushhook;
    if (!fields || typeof fields !== 'object') return null;
    const event = {
      action,
      notification_title: typeof notification.title === 'string' ? notification.title : '',
      clicked_button: action === 'Click' ? clickedButton : 0,
      event_id: eventId,
      occurred_at: now,
    };
    for (const name of STRING_FIELDS) {
      const value = fields[name];
      event[name] = value === undefined || value === null ? '' : String(value);
    }
    if (typeof fields.beacon === 'string' && fields.beacon !== '') event.beacon = fields.beacon;
    return event;
  }

  // Splits queued events into request bodies of at most MAX_BATCH events and MAX_BATCH_BYTES.
  function makeBatches(events) {
    const batches = [];
    let current = [];
    let bytes = 2;  // the brackets
    for (const event of events) {
      const size = JSON.stringify(event).length + 1;  // and a comma
      if (current.length > 0 && (current.length === MAX_BATCH || bytes + size > MAX_BATCH_BYTES)) {
        batches.push(current);
        current = [];
        bytes = 2;
      }
      current.push(event);
      bytes += size;
    }
    if (current.length > 0) batches.push(current);
    return batches;
  }

  // What to do with a batch after an answer: 'sent' (202), 'drop' (refused for good: any other
  // 4xx but 429; sending it again would be refused again) or 'keep' (429, 5xx, no answer).
  function decide(status) {
    if (status === 202) return 'sent';
    if (status >= 400 && status < 500 && status !== 429) return 'drop';
    return 'keep';
  }

  // The positions of the events a refusal names (its error.details), when they are some but not
  // all of a batch of `count`; otherwise null, and the refusal is the whole batch's. Ingest is
  // all or nothing, so the events it did not name were not stored and can go again alone.
  function refusedOnly(body, count) {
    const details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
    const named = new Set();
    for (const detail of details) {
      if (Number.isInteger(detail.index) && detail.index >= 0 && detail.index < count) named.add(detail.index);
    }
    return named.size > 0 && named.size < count ? named : null;
  }

  // How many of the oldest queued events must go to keep the queue within MAX_QUEUE.
  function overflow(queued, max = MAX_QUEUE) {
    return Math.max(0, queued - max);
  }

  function ingestUrl(endpoint, key) {
    return endpoint + (endpoint.includes('?') ? '&' : '?') + 'key=' + encodeURIComponent(key);
  }

  // --- IndexedDB queue -------------------------------------------------------------------------

  function request(req) {
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function openDb() {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(DB_STORE, { autoIncrement: true });
    return request(open);
  }

  function done(tx) {
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  // Adds `event`, dropping the oldest beyond MAX_QUEUE; resolves once it is durable.
  async function enqueue(event) {
    const db = await openDb();
    try {
      const tx = db.transaction(DB_STORE, 'readwrite');
      const store = tx.objectStore(DB_STORE);
      store.add(event);
      const excess = overflow(await request(store.count()));
      if (excess > 0) {
        console.warn(`pushhook: the queue is full (${MAX_QUEUE} events); dropped the ${excess} oldest`);
        let left = excess;
        const cursor = store.openCursor();
        cursor.onsuccess = () => {
          const c = cursor.result;
          if (c && left > 0) {
            c.delete();
            left -= 1;
            c.continue();
          }
        };
      }
      await done(tx);
    } finally {
      db.close();
    }
  }

  // The queued events in order, with their keys.
  async function readQueue(db) {
    const tx = db.transaction(DB_STORE, 'readonly');
    const store = tx.objectStore(DB_STORE);
    const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
    return keys.map((key, i) => ({ key, event: values[i] }));
  }

  async function remove(db, keys) {
    const tx = db.transaction(DB_STORE, 'readwrite');
    const store = tx.objectStore(DB_STORE);
    for (const key of keys) store.delete(key);
    await done(tx);
  }

  // --- sending -------------------------------------------------------------------------------

  // Sends what is queued, batch by batch, until the queue is empty or pushhook cannot take more
  // now. Never rejects: what was not sent stays queued for the next flush.
  function flush() {
    if (!config) return Promise.resolve();
    if (!next) {
      next = chain.then(() => {
        next = null;
        return sendQueued();
      }).catch((error) => {
        console.warn('pushhook: could not send queued events:', error);
      });
      chain = next;
    }
    return next;
  }

  async function sendQueued() {
    const db = await openDb();
    try {
      const queued = await readQueue(db);
      const byId = new Map(queued.map((q) => [q.event.event_id, q.key]));
      for (const batch of makeBatches(queued.map((q) => q.event))) {
        let status = 0;
        let body = null;
        try {
          const response = await fetch(ingestUrl(config.endpoint, config.key), {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            body: JSON.stringify(batch),
            keepalive: true,
            credentials: 'omit',
          });
          status = response.status;
          if (status !== 202) body = await response.json().catch(() => null);
        } catch (error) {
          status = 0;  // offline, DNS, refused: try again later
        }
        const verdict = decide(status);
        if (verdict === 'keep') {
          await registerSync();
          return;
        }
        if (verdict === 'drop') {
          const code = body && body.error && body.error.code ? ` ${body.error.code}` : '';
          const only = refusedOnly(body, batch.length);
          if (only) {
            // A forged token or a bad field in one event does not cost the others theirs.
            console.warn(`pushhook: dropped ${only.size} events the server refused (HTTP ${status}${code})`);
            await remove(db, batch.filter((_, i) => only.has(i)).map((event) => byId.get(event.event_id)));
            return sendQueued();
          }
          console.warn(`pushhook: dropped ${batch.length} events the server refused (HTTP ${status}${code})`);
        }
        await remove(db, batch.map((event) => byId.get(event.event_id)));
      }
    } finally {
      db.close();
    }
  }

  async function registerSync() {
    try {
      if (self.registration && self.registration.sync) await self.registration.sync.register(SYNC_TAG);
    } catch (error) {
      // No Background Sync here (or no permission): the next event or start flushes instead.
    }
  }

  // Queues an event and sends the queue. Resolves when the send settles either way.
  async function report(action, notification, clickedButton) {
    const event = buildEvent(action, notification, clickedButton, crypto.randomUUID(), Date.now());
    if (!event) return;
    await enqueue(event);
    await flush();
  }

  // Keeps the worker alive for `promise` when the event allows it. A synthetic event (one a
  // script dispatched) refuses waitUntil with InvalidStateError; the work goes on regardless.
  function keepAlive(event, promise) {
    try {
      event.waitUntil(promise);
    } catch (error) {
      // Not dispatched by the browser: nothing to extend.
    }
    return promise;
  }

  // --- public API ----------------------------------------------------------------------------

  function init(options) {
    if (!options || typeof options.endpoint !== 'string' || typeof options.key !== 'string') {
      throw new TypeError('Pushhook.init needs {endpoint, key}');
    }
    const first = config === null;
    config = { endpoint: options.endpoint, key: options.key, dismiss: options.dismiss === true };
    if (first) {
      self.addEventListener('notificationclick', (event) => {
        const n = event.notification;
        keepAlive(event, report('Click', n, buttonIndex(n.actions, event.action)));
      });
      self.addEventListener('notificationclose', (event) => {
        if (config.dismiss) keepAlive(event, report('Dismiss', event.notification, 0));
      });
      self.addEventListener('sync', (event) => {
        if (event.tag === SYNC_TAG) keepAlive(event, flush());
      });
    }
    // The worker just started: send what an earlier life of it could not.
    return flush();
  }

  // Shows the notification and reports its View; resolves once the report has settled (sent or
  // safely queued), so `event.waitUntil(Pushhook.show(…))` keeps the worker alive for both.
  async function show(title, options = {}) {
    await self.registration.showNotification(title, options);
    await report('View', { title, data: options.data, actions: options.actions }, 0);
  }

  self.Pushhook = Object.freeze({
    init,
    show,
    flush,
    _internal: Object.freeze({ buttonIndex, buildEvent, makeBatches, decide, refusedOnly, overflow,
      ingestUrl, MAX_QUEUE, MAX_BATCH, MAX_BATCH_BYTES }),
  });
})();
