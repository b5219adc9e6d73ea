// pushhook's service-worker SDK: reports a web-push notification's View, Click and (if asked)
// Dismiss to pushhook's ingest API, and loses none of them when the network or pushhook is down.
//
//   importScripts('/pushhook-sw.js');            // or: import './pushhook-sw.mjs' in a module worker
//   Pushhook.init({endpoint: 'https://pushhook.example.com/v1/events', key: 'pk_…'});
//   self.addEventListener('push', (event) => {
//     const message = event.data ? event.data.json() : {};
//     event.waitUntil(Pushhook.show(message.title, message.options));
//   });
//
// The campaign fields come from the notification's `data.pushhook` ({cid, cookie_id,
// reference_id, utm_*, beacon}), which the push backend puts in the push message; notifications
// without it are not reported. Every event is written to IndexedDB before it is sent and leaves
// it on a 202, or when pushhook refuses that very event for good (README, "What each answer
// does"); a subscriber who is offline, or a pushhook that is restarting, costs nothing: the queue
// is sent again with the next event, when the worker next starts, and on Background Sync where
// the browser has it, whose own backoff paces the retries.
//
// No dependencies; runs as a classic worker script or, imported for its side effect, in a module
// worker (it is strict-mode code that only assigns self.Pushhook).
(function () {
  'use strict';

  const DB_NAME = 'pushhook';
  const DB_VERSION = 2;  // 2 added the 'state' store
  const DB_QUEUE = 'queue';
  const DB_STATE = 'state';
  const SYNC_TAG = 'pushhook-flush';
  // Events kept while pushhook cannot be reached; beyond it the oldest give way.
  const MAX_QUEUE = 1000;
  // Events per request: what the ingest API takes in one go comfortably.
  const MAX_BATCH = 100;
  // Chromium refuses a keepalive request whose body exceeds 64 KiB (UTF-8 bytes); batches stay
  // under this, and an event that alone exceeds it goes without keepalive.
  const MAX_BATCH_BYTES = 60 * 1024;
  // The ingest API's limits (DESIGN section 1), in UTF-8 bytes.
  const MAX_TITLE_BYTES = 1024;
  const MAX_UTM_BYTES = 256;
  const ID_FIELDS = ['cid', 'cookie_id', 'reference_id'];
  const UTM_FIELDS = ['utm_campaign', 'utm_content', 'utm_medium', 'utm_source', 'utm_term'];
  // Fields that ingest also takes as a JSON number (stored as its decimal string).
  const NUMBER_FIELDS = ['cid', 'reference_id'];
  // 401 codes that refuse the events they name for good.
  const BEACON_CODES = ['beacon_invalid', 'beacon_expired', 'beacon_required'];
  // The longest Retry-After honoured: a bogus "a year" must not silence a subscriber for good.
  const MAX_PAUSE_MS = 60 * 60 * 1000;
  // A pause (Retry-After) ending within this is waited out by the flush that meets it, under the
  // event that keeps the worker alive: left to Background Sync, the events would wait for its
  // backoff (Chromium: 5, then 15 minutes), or for the subscriber's next notification.
  const WAIT_OUT_MS = 30 * 1000;
  // How far past a pause's end the flush that waited comes back, at most (at random).
  const MAX_SPREAD_MS = 5 * 1000;
  // A request that neither answers nor fails is abandoned after this (the events stay queued).
  const REQUEST_TIMEOUT_MS = 30 * 1000;
  // An event whose request keeps being answered with something other than 202 (and not 429 or
  // 503, which only ask for patience) is given up after this many answers and this age, so that
  // one event a proxy always refuses cannot hold back the queue behind it for ever.
  const GIVE_UP_TRIES = 10;
  const GIVE_UP_AGE_MS = 3 * 24 * 60 * 60 * 1000;

  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  let config = null;
  // Flushes run one after another, so that two never send the same events; a flush asked for
  // while one runs waits for it, then sends what came meanwhile.
  let chain = Promise.resolve();
  let next = null;  // the flush waiting its turn, shared by everyone who asks meanwhile
  let syncing = 0;  // sync events of ours running in this worker

  // --- pure logic (exposed as Pushhook._internal for the SDK's own tests) --------------------

  function utf8Length(text) {
    return encoder.encode(text).length;
  }

  // `text` as well-formed UTF-16 (a lone surrogate becomes U+FFFD, which JSON parsers take),
  // cut to at most `maxBytes` UTF-8 bytes at a character boundary.
  function cutUtf8(text, maxBytes = Infinity) {
    const bytes = encoder.encode(text);
    let end = Math.min(bytes.length, maxBytes);
    while (end < bytes.length && end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
    return decoder.decode(bytes.subarray(0, end));
  }

  // The clicked button's position: 1 or 2 for the first or second action, 0 for the body.
  // An action id that is not among the notification's first two actions counts as the body.
  function buttonIndex(actions, action) {
    if (!action) return 0;
    const index = (actions || []).findIndex((a) => a && a.action === action);
    return index === 0 || index === 1 ? index + 1 : 0;
  }

  // A campaign field as ingest takes it: a string as it is, and for cid and reference_id an
  // integer that JavaScript holds exactly, as it is (ingest stores its digits). Anything else is
  // left out with a warning, rather than sent as another id: a number past 2^53 or with a
  // fraction may have been rounded when the push message was parsed (12345678901234567890 reads
  // as 12345678901234567000), and an object would become "[object Object]".
  function fieldValue(name, value) {
    if (value === undefined || value === null) return '';
    if (typeof value === 'string') return value;
    if (NUMBER_FIELDS.includes(name) && Number.isSafeInteger(value)) return value;
    const why = typeof value === 'number' && NUMBER_FIELDS.includes(name)
      ? 'a number JavaScript may have rounded: send it as a string'
      : `not a string (${typeof value})`;
    console.warn(`pushhook: data.pushhook.${name} is ${why}; left out`);
    return undefined;
  }

  // The ingest event for a notification, or null when it carries no `data.pushhook`. The title
  // and UTM fields are cut to what ingest takes; ids are not (a cut id would be another id).
  function buildEvent(action, notification, clickedButton, eventId, now) {
    const fields = notification && notification.data && notification.data.pushhook;
    if (!fields || typeof fields !== 'object') return null;
    const title = typeof notification.title === 'string' ? notification.title : '';
    const event = {
      action,
      notification_title: cutUtf8(title, MAX_TITLE_BYTES),
      clicked_button: action === 'Click' ? clickedButton : 0,
      event_id: eventId,
      occurred_at: now,
    };
    for (const name of [...ID_FIELDS, ...UTM_FIELDS]) {
      const value = fieldValue(name, fields[name]);
      if (value === undefined) continue;
      event[name] = UTM_FIELDS.includes(name) ? cutUtf8(value, MAX_UTM_BYTES) : value;
    }
    if (typeof fields.beacon === 'string' && fields.beacon !== '') event.beacon = fields.beacon;
    return event;
  }

  // Splits queued events into request bodies of at most MAX_BATCH events and MAX_BATCH_BYTES
  // UTF-8 bytes; an event larger than that on its own makes a batch of one.
  function makeBatches(events) {
    const batches = [];
    let current = [];
    let bytes = 2;  // the brackets
    for (const event of events) {
      const size = utf8Length(JSON.stringify(event)) + 1;  // and a comma
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

  // The positions (0 ≤ i < count) that a refusal's error.details names.
  function namedEvents(body, count) {
    const details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
    const named = new Set();
    for (const detail of details) {
      const index = detail && detail.index;
      if (Number.isInteger(index) && index >= 0 && index < count) named.add(index);
    }
    return named;
  }

  // ": cid too long; beacon has expired" — what error.details says of each event refused (the
  // field and the server's message, each reason once, at most five), or "".
  function refusalDetails(body, count) {
    const details = body && body.error && Array.isArray(body.error.details) ? body.error.details : [];
    const reasons = [];
    for (const detail of details) {
      if (!detail || !Number.isInteger(detail.index) || detail.index < 0 || detail.index >= count) continue;
      const reason = [detail.field, detail.message].filter((part) => typeof part === 'string' && part !== '').join(' ');
      if (reason && !reasons.includes(reason)) reasons.push(reason);
    }
    if (reasons.length === 0) return '';
    const shown = reasons.slice(0, 5).join('; ');
    return `: ${shown}${reasons.length > 5 ? `; and ${reasons.length - 5} more` : ''}`;
  }

  // What to do with a batch of `count` events after an answer (status 0: no answer at all):
  //   {verdict: 'sent'}           202: the events are durable at pushhook;
  //   {verdict: 'drop-named', named}  400 invalid_event, or 401 beacon_*: those events will be
  //                               refused whenever they are sent; the others were not stored
  //                               (all or nothing) and go again;
  //   {verdict: 'split'}          413 for several events: send each half;
  //   {verdict: 'drop'}           413 for one event: it can never fit;
  //   {verdict: 'retry'}          anything else (401 other, 403, 404, 408, 429, 5xx, a proxy's
  //                               200, no answer): keep them and try later.
  function decide(status, body, count) {
    if (status === 202) return { verdict: 'sent' };
    if (status === 413) return { verdict: count > 1 ? 'split' : 'drop' };
    const code = body && body.error ? body.error.code : undefined;
    if ((status === 400 && code === 'invalid_event') || (status === 401 && BEACON_CODES.includes(code))) {
      const named = namedEvents(body, count);
      if (named.size > 0) return { verdict: 'drop-named', named };
    }
    return { verdict: 'retry' };
  }

  // Milliseconds a Retry-After header value (delta-seconds or an HTTP date) asks to wait from
  // `now`, within [0, MAX_PAUSE_MS]; 0 when absent or unreadable.
  function retryAfterMs(value, now) {
    if (typeof value !== 'string' || value.trim() === '') return 0;
    const text = value.trim();
    const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
    return Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_PAUSE_MS) : 0;
  }

  // Whether a queued record ({event, tries}) that was just answered with a failure is given up.
  function givesUp(record, now) {
    const occurred = Number(record.event.occurred_at);
    return record.tries >= GIVE_UP_TRIES && !(now - occurred < GIVE_UP_AGE_MS);
  }

  // How many of the oldest queued events must go to keep the queue within MAX_QUEUE.
  function overflow(queued, max = MAX_QUEUE) {
    return Math.max(0, queued - max);
  }

  // What to tell the site's engineer when ingest refuses a batch for a reason waiting will not
  // fix by itself (a wrong key, a wrong endpoint): the events stay queued and go again later,
  // but silence would leave nobody knowing why nothing arrives. Null for any other answer.
  function refusalWarning(status, body) {
    if (status < 400 || status >= 500 || status === 408 || status === 429) return null;
    const error = body && body.error ? body.error : {};
    const why = [error.code, error.message].filter((part) => typeof part === 'string' && part !== '').join(': ');
    return `pushhook: ingest refused the events (HTTP ${status}${why ? ` ${why}` : ''}); ` +
      'they stay queued and are sent again later';
  }

  function ingestUrl(endpoint, key) {
    return endpoint + (endpoint.includes('?') ? '&' : '?') + 'key=' + encodeURIComponent(key);
  }

  // --- IndexedDB queue -------------------------------------------------------------------------
  // 'queue' holds {event, tries} records (version 1 held bare events; both are read), in order;
  // 'state' holds 'paused_until', the time before which no request goes (Retry-After), and the
  // notifications clicked (noteClicked).

  function request(req) {
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function openDb() {
    const open = indexedDB.open(DB_NAME, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains(DB_QUEUE)) db.createObjectStore(DB_QUEUE, { autoIncrement: true });
      if (!db.objectStoreNames.contains(DB_STATE)) db.createObjectStore(DB_STATE);
    };
    return request(open).then((db) => {
      db.onversionchange = () => db.close();  // a newer SDK in a newer worker wants to upgrade
      return db;
    });
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
      const tx = db.transaction(DB_QUEUE, 'readwrite');
      const store = tx.objectStore(DB_QUEUE);
      store.add({ event, tries: 0 });
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

  // The queued records in order ({key, event, tries}), and the pause.
  async function readQueue(db) {
    const tx = db.transaction([DB_QUEUE, DB_STATE], 'readonly');
    const store = tx.objectStore(DB_QUEUE);
    const [keys, values, pausedUntil] = await Promise.all([request(store.getAllKeys()),
      request(store.getAll()), request(tx.objectStore(DB_STATE).get('paused_until'))]);
    const records = keys.map((key, i) => {
      const value = values[i];
      if (value && value.event) return { key, event: value.event, tries: value.tries || 0 };
      return { key, event: value, tries: 0 };
    });
    return { records, pausedUntil: Number(pausedUntil) || 0 };
  }

  async function remove(db, records) {
    const tx = db.transaction(DB_QUEUE, 'readwrite');
    const store = tx.objectStore(DB_QUEUE);
    for (const record of records) store.delete(record.key);
    await done(tx);
  }

  // After a failed request: remembers the pause it asked for, counts a try on each of its
  // events and gives up those that have had enough (GIVE_UP_TRIES and GIVE_UP_AGE_MS).
  async function noteFailure(db, records, answer) {
    const patience = answer.status === 429 || answer.status === 503;
    const counts = answer.status !== 0 && !patience;
    // Only the answers that ask for patience pause sending; a Retry-After on anything else (a
    // proxy's 500) is not a request to wait that long and then send again.
    const pause = patience ? answer.retryAfterMs : 0;
    if (!counts && pause === 0) return;
    const now = Date.now();
    const tx = db.transaction([DB_QUEUE, DB_STATE], 'readwrite');
    if (pause > 0) tx.objectStore(DB_STATE).put(now + pause, 'paused_until');
    let given = 0;
    for (const record of counts ? records : []) {
      record.tries += 1;
      if (givesUp(record, now)) {
        tx.objectStore(DB_QUEUE).delete(record.key);
        given += 1;
      } else {
        tx.objectStore(DB_QUEUE).put({ event: record.event, tries: record.tries }, record.key);
      }
    }
    if (given > 0) {
      console.warn(`pushhook: gave up ${given} events refused ${GIVE_UP_TRIES} times (HTTP ${answer.status})`);
    }
    await done(tx);
  }

  // --- sending -------------------------------------------------------------------------------

  // POSTs `events`; resolves (never rejects) to {status, body, retryAfterMs}, status 0 when no
  // answer came (offline, refused, timed out).
  async function post(events) {
    const body = JSON.stringify(events);
    const timeout = typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(REQUEST_TIMEOUT_MS) : undefined;
    try {
      const response = await fetch(ingestUrl(config.endpoint, config.key), {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body,
        keepalive: utf8Length(body) <= MAX_BATCH_BYTES,
        credentials: 'omit',
        signal: timeout,
      });
      // Read the body even of a 202: until it is, Chromium counts the request against the 64 KiB
      // that keepalive requests in flight may carry in all, and refuses the next batch.
      const text = await response.text();
      let json = null;
      try {
        json = response.status === 202 ? null : JSON.parse(text);
      } catch (error) {
        // Not JSON (a proxy's HTML page): the status alone decides.
      }
      const pause = retryAfterMs(response.headers.get('retry-after'), Date.now());
      return { status: response.status, body: json, retryAfterMs: pause };
    } catch (error) {
      return { status: 0, body: null, retryAfterMs: 0 };
    }
  }

  // Sends what is queued. Resolves (never rejects) to 'done' when the queue is empty, 'paused'
  // when a Retry-After still holds, 'retry' when a request failed, 'error' when the queue could
  // not be read; all but 'done' leave the rest queued for a later flush.
  function flush() {
    if (!config) return Promise.resolve('done');
    if (!next) {
      next = chain.then(() => {
        next = null;
        return sendQueued();
      }).catch((error) => {
        console.warn('pushhook: could not send queued events:', error);
        return 'error';
      });
      chain = next;
    }
    return next;
  }

  // Sends the queue, waiting out one pause that ends within WAIT_OUT_MS (a 429's Retry-After: 1
  // among them), and a little past it, at random: every subscriber of a site shares its key, and
  // those paused together must not all come back in the same millisecond. A second pause, or a
  // longer one, is left to a later flush: waiting again and again would send more requests to a
  // server that asked for fewer.
  async function sendQueued() {
    const first = await sendOnce();
    if (first.outcome !== 'paused') return first.outcome;
    const wait = first.pausedUntil - Date.now();
    if (wait > WAIT_OUT_MS) return 'paused';
    const spread = Math.random() * Math.min(MAX_SPREAD_MS, Math.max(wait, 500) / 2);
    await new Promise((resolve) => { setTimeout(resolve, Math.max(0, wait) + spread); });
    return (await sendOnce()).outcome;
  }

  // One pass over the queue: {outcome: 'done' | 'retry'}, or {outcome: 'paused', pausedUntil}
  // when a pause holds, before the pass or set by an answer in it.
  async function sendOnce() {
    const db = await openDb();
    try {
      const { records, pausedUntil } = await readQueue(db);
      if (records.length === 0) return { outcome: 'done' };
      if (Date.now() < pausedUntil) return { outcome: 'paused', pausedUntil };
      const byId = new Map(records.map((r) => [r.event.event_id, r]));
      for (const batch of makeBatches(records.map((r) => r.event))) {
        if (!(await sendBatch(db, batch.map((event) => byId.get(event.event_id))))) {
          const after = await readQueue(db);
          return Date.now() < after.pausedUntil ? { outcome: 'paused', pausedUntil: after.pausedUntil } : { outcome: 'retry' };
        }
      }
      return { outcome: 'done' };
    } finally {
      db.close();
    }
  }

  // Sends one batch of records; true when none of them needs sending any more.
  async function sendBatch(db, records) {
    const answer = await post(records.map((r) => r.event));
    const { verdict, named } = decide(answer.status, answer.body, records.length);
    const code = answer.body && answer.body.error && answer.body.error.code ? ` ${answer.body.error.code}` : '';
    if (verdict === 'sent') {
      await remove(db, records);
      return true;
    }
    if (verdict === 'drop') {
      console.warn(`pushhook: dropped an event too large for the server (HTTP 413${code})`);
      await remove(db, records);
      return true;
    }
    if (verdict === 'split') {
      const half = Math.ceil(records.length / 2);
      return (await sendBatch(db, records.slice(0, half))) && sendBatch(db, records.slice(half));
    }
    if (verdict === 'drop-named') {
      // A bad field or a forged token in one event does not cost the others theirs.
      console.warn(`pushhook: dropped ${named.size === 1 ? 'an event' : `${named.size} events`} the server refused ` +
        `(HTTP ${answer.status}${code})${refusalDetails(answer.body, records.length)}`);
      await remove(db, records.filter((_, i) => named.has(i)));
      const rest = records.filter((_, i) => !named.has(i));
      return rest.length === 0 || sendBatch(db, rest);
    }
    const warning = refusalWarning(answer.status, answer.body);
    if (warning) console.warn(warning);
    await noteFailure(db, records, answer);
    return false;
  }

  // Asks the browser for a Background Sync, once: not while one of ours runs (re-registering
  // during a sync event makes Chromium fire it again at once) nor while one is pending (its
  // backoff would restart).
  async function registerSync() {
    const sync = self.registration && self.registration.sync;
    if (!sync || syncing > 0) return;
    try {
      if ((await sync.getTags()).includes(SYNC_TAG)) return;
      await sync.register(SYNC_TAG);
    } catch (error) {
      // No Background Sync here (or no permission): the next event or start flushes instead.
    }
  }

  // Queues an event and sends the queue. Resolves when the send settles either way; never
  // rejects. Without a usable IndexedDB the event is sent once, directly, and not kept.
  async function report(action, notification, clickedButton) {
    try {
      const event = buildEvent(action, notification, clickedButton, crypto.randomUUID(), Date.now());
      if (!event || !config) return;
      try {
        await enqueue(event);
      } catch (error) {
        console.warn('pushhook: cannot queue events (no IndexedDB); sending this one once:', error);
        const answer = await post([event]);
        if (answer.status !== 202) console.warn(`pushhook: a ${action} was not delivered (HTTP ${answer.status})`);
        return;
      }
      if ((await flush()) !== 'done') await registerSync();
    } catch (error) {
      console.warn(`pushhook: could not report a ${action}:`, error);
    }
  }

  // Keeps the worker alive for `promise` when the event allows it. A synthetic event (one a
  // script dispatched) refuses waitUntil with InvalidStateError; the work goes on regardless.
  function keepAlive(event, promise) {
    try {
      event.waitUntil(promise);
    } catch (error) {
      promise.catch(() => {});  // not dispatched by the browser: nobody else will see it fail
    }
    return promise;
  }

  // The notifications clicked, so that closing one later is no Dismiss (DESIGN section 1: a
  // Dismiss is a close without a click). Chromium stops an idle worker within a minute and a
  // person may close a clicked notification much later, so each click is kept in IndexedDB
  // ('state', under "clicked\0…", its value the time of the click) for CLICK_MEMORY_MS, and in
  // memory for the worker's life (for when IndexedDB cannot be used).
  const CLICK_MEMORY_MS = 7 * 24 * 60 * 60 * 1000;
  const MAX_CLICKED = 256;
  const clicked = new Set();
  // What tells a notification from another: the browser gives each event its own object.
  function notificationKey(n) {
    const fields = (n.data && n.data.pushhook) || {};
    return ['clicked', n.timestamp, n.tag, n.title, fields.cid, fields.cookie_id].join('\u0000');
  }
  // Every click kept: the keys from "clicked\0" to before "clicked\u0001".
  const clickedKeys = () => IDBKeyRange.bound('clicked\u0000', 'clicked\u0001', false, true);

  // Resolves once the click is kept; never rejects.
  async function noteClicked(notification) {
    const key = notificationKey(notification);
    clicked.add(key);
    if (clicked.size > MAX_CLICKED) clicked.delete(clicked.values().next().value);
    try {
      const db = await openDb();
      try {
        const tx = db.transaction(DB_STATE, 'readwrite');
        const store = tx.objectStore(DB_STATE);
        const now = Date.now();
        store.put(now, key);
        // The clicks past CLICK_MEMORY_MS go (a person closes a notification within days).
        const cursor = store.openCursor(clickedKeys());
        cursor.onsuccess = () => {
          const at = cursor.result;
          if (!at) return;
          if (!(now - Number(at.value) < CLICK_MEMORY_MS)) at.delete();
          at.continue();
        };
        await done(tx);
      } finally {
        db.close();
      }
    } catch (error) {
      // No IndexedDB: the memory above is all there is.
    }
  }

  // Whether `notification` was clicked (and forgets it); false when that cannot be told.
  async function wasClicked(notification) {
    const key = notificationKey(notification);
    if (clicked.delete(key)) return true;
    try {
      const db = await openDb();
      try {
        const tx = db.transaction(DB_STATE, 'readwrite');
        const store = tx.objectStore(DB_STATE);
        const seen = await request(store.get(key));
        if (seen !== undefined) store.delete(key);
        await done(tx);
        return seen !== undefined;
      } finally {
        db.close();
      }
    } catch (error) {
      return false;
    }
  }

  // A sync event's work: it fails while events remain, so that the browser tries again later
  // on its own backoff (Chromium: after 5 and then 15 minutes), instead of at once.
  function syncFlush() {
    syncing += 1;
    return flush().then((outcome) => {
      if (outcome !== 'done') throw new Error(`pushhook: events remain queued (${outcome}); the browser syncs again later`);
    }).finally(() => {
      syncing -= 1;
    });
  }

  // --- public API ----------------------------------------------------------------------------

  function init(options) {
    if (!options || typeof options.endpoint !== 'string' || typeof options.key !== 'string') {
      throw new TypeError('Pushhook.init needs {endpoint, key}');
    }
    // A relative endpoint would post the events, and the key, to the site's own server.
    let url = null;
    try {
      url = new URL(options.endpoint);
    } catch (error) {
      // not absolute: refused below
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      throw new TypeError('Pushhook.init: endpoint must be an absolute http or https URL, such as ' +
        `https://pushhook.example.com/v1/events, not ${JSON.stringify(options.endpoint)}`);
    }
    if (options.key === '') throw new TypeError('Pushhook.init: key must be the site\'s ingest key, not empty');
    if (options.dismiss !== undefined && typeof options.dismiss !== 'boolean') {
      throw new TypeError(`Pushhook.init: dismiss must be true or false, not ${JSON.stringify(options.dismiss)}`);
    }
    const first = config === null;
    config = { endpoint: options.endpoint, key: options.key, dismiss: options.dismiss === true };
    if (first) {
      self.addEventListener('notificationclick', (event) => {
        const n = event.notification;
        keepAlive(event, Promise.all([noteClicked(n), report('Click', n, buttonIndex(n.actions, event.action))]));
      });
      self.addEventListener('notificationclose', (event) => {
        // A Dismiss is a notification closed without a click (DESIGN section 1): one clicked
        // and left open by the site's handler, closed later, is not one.
        if (!config.dismiss) return;
        const n = event.notification;
        keepAlive(event, wasClicked(n).then((wasIt) => (wasIt ? undefined : report('Dismiss', n, 0))));
      });
      self.addEventListener('sync', (event) => {
        if (event.tag === SYNC_TAG) keepAlive(event, syncFlush());
      });
    }
    // The worker just started: send what an earlier life of it could not. This runs outside any
    // event, so the browser may stop the worker part way; whatever was not acknowledged stays
    // queued, and the event that started the worker flushes again under its own waitUntil.
    return flush();
  }

  // Shows the notification and reports its View; resolves once the report has settled (sent,
  // safely queued, or failed), so `event.waitUntil(Pushhook.show(…))` keeps the worker alive for
  // both. Rejects only when the notification cannot be shown, never because of the report.
  async function show(title, options) {
    if (!config) console.warn('pushhook: show() before init(): this View is not reported');
    const shown = options ?? {};  // null too, as showNotification takes it
    await self.registration.showNotification(title, shown);
    await report('View', { title, data: shown.data, actions: shown.actions }, 0);
  }

  self.Pushhook = Object.freeze({
    init,
    show,
    flush,
    _internal: Object.freeze({ buttonIndex, buildEvent, cutUtf8, makeBatches, decide, namedEvents,
      retryAfterMs, givesUp, overflow, ingestUrl, refusalWarning, refusalDetails, MAX_QUEUE, MAX_BATCH, MAX_BATCH_BYTES,
      MAX_TITLE_BYTES, MAX_UTM_BYTES, MAX_PAUSE_MS, WAIT_OUT_MS, GIVE_UP_TRIES, GIVE_UP_AGE_MS }),
  });
})();
