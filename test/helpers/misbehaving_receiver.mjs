// A programmable webhook receiver on 127.0.0.1 for the delivery fault tests: what it does with
// each request is scripted (answer a status, with Retry-After; hang; reset the connection; close
// without answering; answer slowly; redirect), it records every request, and it counts how many
// requests are open at once.
//
// The script is a function `(record, index) => action`, or a fixed action, and can be swapped at
// any time with setBehaviour(). An action is one of:
//   204 | {status, headers?, body?}     answer at once
//   {hang: true}                        never answer (the request stays open until the client
//                                       gives up or the receiver is closed)
//   {reset: true}                       reset the TCP connection (RST) without answering
//   {close: true}                       close the connection (FIN) without answering
//   {delayMs, then?}                    wait delayMs, then do `then` (default 204)
//   {redirect: url, status?}            answer 302 (or `status`) with `location: url`
// The helpers below (status(), retryAfter(), ...) build them.
//
// Every request is recorded once its body has arrived, as {index, at, method, url, headers
// (lowercased), raw, body, webhookId, action, endAt, outcome}; `at` (its headers arrived) and
// `endAt` (answered, or dropped by either side) are Date.now() values; `outcome` is 'answered',
// 'reset', 'closed', 'client closed' or 'socket closed'. `inFlight` counts requests whose headers
// arrived and that are not yet answered or dropped; `maxInFlight` is the most seen at once.
//
// All state lives on the one node event loop: nothing here needs locking.

import http from 'node:http';

export const status = (code, headers = {}, body = '') => ({ status: code, headers, body });
// `after` is seconds (a number) or a Date, sent as an HTTP date.
export const retryAfter = (code, after) => ({
  status: code,
  headers: { 'retry-after': after instanceof Date ? after.toUTCString() : String(after) },
});
export const hang = () => ({ hang: true });
export const reset = () => ({ reset: true });
export const closeWithoutAnswer = () => ({ close: true });
export const slow = (delayMs, then = 204) => ({ delayMs, then });
export const redirect = (url, code = 302) => ({ redirect: url, status: code });

function normalise(action) {
  if (typeof action === 'number') return { status: action };
  if (!action || typeof action !== 'object') return { status: 500 };
  return action;
}

// Starts the receiver. `behaviour`: a function (record, index) => action, or an action; 204 by
// default. `keepAliveMs`: how long an idle connection stays open (Node's default is 5 s). Pass
// node:test's `t` to have it closed after the test whatever its outcome.
export async function startMisbehavingReceiver({ behaviour = 204, keepAliveMs = 5_000, t } = {}) {
  let script = behaviour;
  const requests = [];
  const pendingTimers = new Set();
  const sockets = new Set();
  // Per connection, the finishers of its requests still open (a keep-alive socket carries many).
  const openOnSocket = new WeakMap();
  const state = { inFlight: 0, maxInFlight: 0 };

  const server = http.createServer((req, res) => {
    state.inFlight += 1;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    let ended = false;
    const finish = (outcome) => {
      if (ended) return;
      ended = true;
      state.inFlight -= 1;
      record.endAt = Date.now();
      record.outcome = record.outcome ?? outcome;
    };
    const record = {
      index: -1,
      at: Date.now(),
      method: req.method,
      url: req.url,
      headers: { ...req.headers },
      raw: null,
      body: '',
      webhookId: req.headers['webhook-id'],
      action: null,
      endAt: null,
      outcome: null,
    };
    // The client may give up first (its timeout): the request is no longer in flight.
    res.on('close', () => finish(res.writableFinished ? 'answered' : 'client closed'));
    const open = openOnSocket.get(req.socket);
    open?.add(finish);
    res.on('close', () => open?.delete(finish));

    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      record.raw = Buffer.concat(chunks);
      record.body = record.raw.toString('utf8');
      record.index = requests.length;
      requests.push(record);
      let action;
      try {
        action = normalise(typeof script === 'function' ? script(record, record.index) : script);
      } catch {
        action = { status: 500 };
      }
      record.action = action;
      perform(action, req, res, record);
    });
  });

  function perform(action, req, res, record) {
    if (action.hang) return;
    if (action.reset) {
      record.outcome = 'reset';
      req.socket.resetAndDestroy();
      return;
    }
    if (action.close) {
      record.outcome = 'closed';
      req.socket.destroy();
      return;
    }
    if (action.delayMs !== undefined) {
      const timer = setTimeout(() => {
        pendingTimers.delete(timer);
        if (!res.destroyed && !res.writableEnded) perform(normalise(action.then ?? 204), req, res, record);
      }, action.delayMs);
      pendingTimers.add(timer);
      return;
    }
    if (action.redirect) {
      res.writeHead(action.status ?? 302, { location: action.redirect, 'content-length': '0' });
      res.end();
      return;
    }
    const body = action.body ?? '';
    res.writeHead(action.status, action.headers ?? {});
    res.end(body);
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    openOnSocket.set(socket, new Set());
    socket.on('close', () => {
      sockets.delete(socket);
      for (const finish of openOnSocket.get(socket)) finish('socket closed');
    });
  });
  server.keepAliveTimeout = keepAliveMs;
  // Hung requests must stay hung for as long as the client waits.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  let closed = false;
  const receiver = {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    get inFlight() {
      return state.inFlight;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    resetMaxInFlight() {
      state.maxInFlight = state.inFlight;
    },
    setBehaviour(next) {
      script = next;
    },
    // Requests with this webhook-id, in arrival order.
    requestsFor(webhookId) {
      return requests.filter((r) => r.webhookId === webhookId);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const timer of pendingTimers) clearTimeout(timer);
      pendingTimers.clear();
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
      });
    },
  };
  t?.after(() => receiver.close());
  return receiver;
}
