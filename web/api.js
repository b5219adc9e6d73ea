// The dashboard's only way to the server: the admin and reporting API, with the bearer token of
// the person signed in. The token lives in sessionStorage (gone with the tab), never in a URL.

const TOKEN_KEY = 'pushhook.token';
export const TOKEN_REFUSED = 'pushhook:token-refused';

export class ApiError extends Error {
  // status 0: the server did not answer at all.
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// `signal` aborts the request: the promise then rejects with an AbortError (see isAbort), and an
// answer that arrives after the abort is never returned.
async function call(method, path, { token, body, accept = 'application/json', signal } = {}) {
  const used = token ?? savedToken() ?? '';
  const headers = { accept, authorization: `Bearer ${used}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, 'unreachable', 'The server did not answer. Is pushhook running?');
  }
  if (accept === 'text/csv' && response.ok) return response.blob();
  const text = await response.text();
  signal?.throwIfAborted();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (!response.ok) {
    // The signed-in token is refused (revoked, rotated): whatever asked, the session ends
    // (app.js listens), so no action's error leaves the person on a page they may no longer use.
    // Only for the token signed in with now: a late answer to an earlier token's request must
    // not end the session of the one that replaced it.
    if (response.status === 401 && used === savedToken()) window.dispatchEvent(new Event(TOKEN_REFUSED));
    const error = json?.error;
    throw new ApiError(response.status, error?.code ?? 'http_error',
      error?.message ?? `The server answered HTTP ${response.status}.`);
  }
  return json;
}

export const api = {
  get: (path, options) => call('GET', path, options),
  post: (path, body) => call('POST', path, { body: body ?? {} }),
  patch: (path, body) => call('PATCH', path, { body }),
  remove: (path) => call('DELETE', path),
  csv: (path) => call('GET', path, { accept: 'text/csv' }),
};

export const isAbort = (error) => error?.name === 'AbortError';

// For a control whose newest request alone counts (a select, a sort, a search): each call aborts
// the request started by the previous call and gives the signal for the next one, which the
// view's own signal (gone when the person leaves the page) aborts too.
export function newestOnly(viewSignal) {
  let controller = null;
  return () => {
    controller?.abort();
    controller = new AbortController();
    return AbortSignal.any([viewSignal, controller.signal]);
  };
}

// "/v1/sites/<site>" + rest, each id percent-encoded.
export function sitePath(site, ...rest) {
  return ['/v1/sites', site, ...rest].map((part, i) => (i === 0 ? part : encodeURIComponent(part))).join('/');
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
