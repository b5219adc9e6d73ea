// HTTP/1.1 over a bare TCP socket, for requests that fetch() will not send or cannot survive: a
// header of a megabyte, a body the server refuses before reading it, a connection the server
// closes mid-upload. The request bytes are written as given; the answer is whatever arrived before
// the server closed the connection (or before `timeoutMs`), parsed if it is an HTTP response.

import net from 'node:net';

// Sends `head` (a string, without the blank line that ends it) and `body` (string or Buffer) to
// 127.0.0.1:port. Resolves to {status, headers, text, json, raw, error}: status is null when no
// response came back (then `error` says what happened to the connection: 'reset', 'closed', ...).
export function rawRequest(port, head, body = '', { timeoutMs = 15_000 } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    let socketError = null;
    let settled = false;
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks), socketError ?? why));
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      // One response is all we wait for: stop once its body is complete.
      if (responseComplete(Buffer.concat(chunks))) finish(null);
    });
    socket.on('error', (err) => {
      // The server may close while we still write (EPIPE, ECONNRESET): what it answered before
      // that still counts, so keep reading until the socket closes.
      socketError = err.code === 'ECONNRESET' ? 'reset' : err.code ?? err.message;
    });
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => {
      socket.write(`${head}\r\n\r\n`);
      if (body.length > 0) socket.write(body);
    });
  });
}

function splitHead(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!match) return null;
  const headers = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(match[1]), headers, bodyStart: end + 4 };
}

function responseComplete(raw) {
  const head = splitHead(raw);
  if (!head) return false;
  const length = head.headers['content-length'];
  return length !== undefined && raw.length - head.bodyStart >= Number(length);
}

function parseResponse(raw, error) {
  const head = splitHead(raw);
  if (!head) return { status: null, headers: {}, text: '', json: undefined, raw, error };
  let bodyBytes = raw.subarray(head.bodyStart);
  const length = head.headers['content-length'];
  if (length !== undefined) bodyBytes = bodyBytes.subarray(0, Number(length));
  const text = bodyBytes.toString('utf8');
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: head.status, headers: head.headers, text, json, raw, error };
}
