// Small readers of the delivery side of the admin API (DESIGN section 3) for the fault tests:
// the message log, one message, its attempts, endpoint stats; and waits built on them. Each takes
// a `serve` handle from harness.mjs startServe() and throws with the server's answer on any
// unexpected status, so that a failing test says what the server said.

import { expectStatus, waitFor } from './harness.mjs';

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

// One page of the message log: {data, next_cursor}.
export async function listMessages(serve, siteId, params = {}) {
  const path = `/v1/sites/${siteId}/messages${query(params)}`;
  return expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
}

// Every message matching `params`, following next_cursor (at most `maxPages` pages).
export async function allMessages(serve, siteId, params = {}, maxPages = 1_000) {
  const out = [];
  let cursor;
  for (let page = 0; page < maxPages; page += 1) {
    const answer = await listMessages(serve, siteId, { ...params, cursor });
    out.push(...answer.data);
    if (!answer.next_cursor) return out;
    cursor = answer.next_cursor;
  }
  throw new Error(`message log still had pages after ${maxPages}`);
}

export async function getMessage(serve, siteId, messageId) {
  const path = `/v1/sites/${siteId}/messages/${messageId}`;
  return expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
}

// The attempts of one message, oldest first: [{attempt, at, status_code, latency_ms, error, response_body}].
export async function getAttempts(serve, siteId, messageId) {
  const path = `/v1/sites/${siteId}/messages/${messageId}/attempts`;
  const answer = expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
  return [...answer.data].sort((a, b) => a.attempt - b.attempt);
}

export async function getEndpoint(serve, siteId, endpointId) {
  const path = `/v1/sites/${siteId}/endpoints/${endpointId}`;
  return expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
}

export async function getStats(serve, siteId, endpointId) {
  const path = `/v1/sites/${siteId}/endpoints/${endpointId}/stats`;
  return expectStatus(await serve.api('GET', path), 200, `GET ${path}`);
}

export async function patchEndpoint(serve, siteId, endpointId, changes) {
  const path = `/v1/sites/${siteId}/endpoints/${endpointId}`;
  return expectStatus(await serve.api('PATCH', path, changes), 200, `PATCH ${path}`);
}

// Waits until the message is in `status` and returns it.
export async function waitForMessageStatus(serve, siteId, messageId, status, timeoutMs = 15_000) {
  return waitFor(
    async () => {
      const message = await getMessage(serve, siteId, messageId);
      return message.status === status ? message : null;
    },
    { timeoutMs, intervalMs: 100, what: `message ${messageId} to be ${status}` },
  );
}

// Waits until exactly `count` messages of the site (optionally filtered) are in `status`.
export async function waitForStatusCount(serve, siteId, status, count, { timeoutMs = 30_000, ...params } = {}) {
  return waitFor(
    async () => {
      const messages = await allMessages(serve, siteId, { ...params, status, limit: 100 });
      return messages.length === count ? messages : null;
    },
    { timeoutMs, intervalMs: 200, what: `${count} ${status} messages` },
  );
}

// The gaps, in ms, between consecutive request arrival times.
export function gaps(requests) {
  const out = [];
  for (let i = 1; i < requests.length; i += 1) out.push(requests[i].at - requests[i - 1].at);
  return out;
}
