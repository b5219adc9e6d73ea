// The dashboard's shell: sign-in, the site picker, navigation, and the hash routes
//   #/s/<site>/overview | campaigns | campaigns/<cid> | endpoints | endpoints/<id>
//   | messages[?status=failed|pending|delivered|all] | messages/<id>
// Ids go in the URL; the token never does.

import { TOKEN_REFUSED, api, ApiError, forgetToken, saveToken, savedToken } from '/assets/api.js';
import { h, loading, notice, replace } from '/assets/dom.js';
import * as views from '/assets/views.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let session = null; // {who, sites}
// The page on screen. Leaving it aborts its requests and stops its timers, so a late answer
// never paints over the page the person went to.
let current = null;

function leave() {
  current?.abort();
  current = null;
}

// [pattern, view, what the page is (its tab's title, its errors' "No such …"), its menu label].
const ROUTES = [
  [/^overview$/, views.overview, 'overview', 'Overview'],
  [/^campaigns$/, views.campaigns, 'campaigns', 'Campaigns'],
  [/^campaigns\/(.+)$/, views.campaign, 'campaign'],
  [/^endpoints$/, views.endpoints, 'endpoints', 'Endpoints'],
  [/^endpoints\/([^/]+)$/, views.endpoint, 'endpoint'],
  [/^messages$/, views.messages, 'messages', 'Messages'],
  [/^messages\/([^/]+)$/, views.message, 'message'],
];

function signIn(problem) {
  document.title = 'Sign in · pushhook';
  replace(nav);
  nav.hidden = true; // an empty "Main" landmark would be announced with nothing in it
  const token = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, autofocus: true });
  const form = h('form', { class: 'sign-in', onsubmit: async (event) => {
    event.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    saveToken(value);
    await start();
  } },
  h('h1', {}, 'Sign in to pushhook'),
  problem ?? null,
  h('label', { for: 'token' }, 'Operator or site token'),
  token,
  h('p', { class: 'hint' }, 'The operator token is in <data-dir>/admin-token; the server printed where on its first start. ',
    'The token stays in this tab only.'),
  h('button', { type: 'submit' }, 'Sign in'));
  replace(main, form);
  token.focus();
}

async function start() {
  replace(main, loading('your sites'));
  try {
    const [who, sites] = await Promise.all([api.get('/v1/whoami'), api.get('/v1/sites')]);
    session = { who, sites: sites.data };
  } catch (error) {
    session = null;
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      return signIn(notice('error', 'That token was refused.', 'Check that you copied all of it, or ask the operator for a new one.'));
    }
    if (error instanceof ApiError && error.status === 0) {
      return replace(main, notice('error', 'The server is unreachable.', `${error.message} Then reload this page.`));
    }
    return replace(main, notice('error', 'Could not sign in.', error.message));
  }
  if (!location.hash.startsWith('#/s/') && session.sites.length > 0) {
    location.hash = `#/s/${session.sites[0].id}/overview`;
    return;
  }
  await route();
}

function signOut() {
  leave();
  forgetToken();
  session = null;
  // Not `location.hash = ''`: its hashchange would route to a sign-in form without the notice.
  history.replaceState(null, '', location.pathname);
  signIn(notice('info', 'Signed out.'));
}

function shell(site, section) {
  const picker = session.sites.length > 1 ? h('select', { id: 'site', 'aria-label': 'Site', onchange: (event) => {
    location.hash = `#/s/${event.target.value}/overview`;
  } }, session.sites.map((s) => h('option', { value: s.id, selected: s.id === site }, s.name || s.id))) : null;
  const named = session.sites.find((s) => s.id === site);
  nav.hidden = false;
  replace(nav,
    h('span', { class: 'brand' }, 'pushhook'),
    picker ?? h('span', { class: 'site', 'data-testid': 'site-name' }, named?.name ?? site),
    ROUTES.filter((r) => r[3]).map(([pattern, , , label]) => {
      const name = pattern.source.slice(1, -1);
      return h('a', { href: `#/s/${site}/${name}`, 'aria-current': section.startsWith(name) ? 'page' : null }, label);
    }),
    h('span', { class: 'who' }, session.who.token === 'operator' ? 'operator' : `site token (${session.who.scope})`),
    h('button', { type: 'button', onclick: signOut }, 'Sign out'));
}

// The server no longer takes the token signed in with: back to the sign-in form, saying so.
function tokenRefused() {
  leave();
  forgetToken();
  session = null;
  return signIn(notice('error', 'That token is no longer accepted.', 'Sign in again.'));
}

// A route's percent-decoded parts, or null when one is not valid percent-encoding.
function decodedParams(match) {
  try {
    return match.slice(1).map(decodeURIComponent);
  } catch (error) {
    return null;
  }
}

// `after`: what the action that re-rendered this page did, for the view to announce.
async function route(after) {
  leave();
  if (!savedToken()) return signIn();
  if (!session) return start();
  if (session.sites.length === 0) {
    nav.hidden = false;
    replace(nav, h('span', { class: 'brand' }, 'pushhook'), h('button', { type: 'button', onclick: signOut }, 'Sign out'));
    return replace(main, notice('info', 'No site yet.',
      'Make one with: curl -X POST http://<this server>/v1/sites -H "authorization: Bearer <operator token>" -d \'{"name":"My site"}\', then reload.'));
  }
  const [, site, path, search] = location.hash.match(/^#\/s\/([^/?]+)\/?([^?]*)\??(.*)$/) ?? [];
  if (!site) {
    location.hash = `#/s/${session.sites[0].id}/overview`;
    return undefined;
  }
  shell(site, path);
  if (!session.sites.some((s) => s.id === site)) {
    return replace(main, notice('error', 'No such site.',
      `This token sees ${session.sites.map((s) => s.name || s.id).join(', ')}: pick from the menu above.`));
  }
  const found = ROUTES.map(([pattern, view, what]) => [path.match(pattern), view, what]).find(([m]) => m);
  // A hand-made link may hold a bare % (#/s/…/campaigns/50%off): not a page either.
  const params = found && decodedParams(found[0]);
  if (!params) return replace(main, notice('error', 'No such page.', 'Pick one from the menu above.'));
  const [, view, what] = found;
  const siteName = session.sites.find((s) => s.id === site)?.name || site;
  document.title = `${what[0].toUpperCase()}${what.slice(1)} · ${siteName} · pushhook`;
  current = new AbortController();
  const { signal } = current;
  const ctx = {
    site,
    who: session.who,
    canChange: session.who.scope === 'admin',
    params,
    query: new URLSearchParams(search),
    signal,
    get: (url) => api.get(url, { signal }),
    // Calls fn every ms while this page is on screen (errors are fn's to show).
    every: (ms, fn) => {
      if (signal.aborted) return;
      // fn shows its own errors, but a token refused meanwhile (rotated, revoked) ends the
      // session as it does when a page is opened: figures that look live must not stay up.
      const id = setInterval(() => fn().catch((error) => {
        if (!signal.aborted && error instanceof ApiError && error.status === 401) tokenRefused();
      }), ms);
      signal.addEventListener('abort', () => clearInterval(id));
    },
    after,
    rerender: (said) => {
      if (!signal.aborted) route(said);
    },
  };
  const focused = document.activeElement;
  try {
    await view(main, ctx);
  } catch (error) {
    if (signal.aborted) return undefined;
    if (error instanceof ApiError && error.status === 401) return tokenRefused();
    replace(main, views.errorNotice(error, what));
  }
  if (signal.aborted) return undefined;
  // The new page takes the focus, unless the person moved it while the page loaded (to a link of
  // the menu, say): taking it back would send their next key somewhere else.
  const now = document.activeElement;
  if (now === focused || now === null || now === document.body) main.focus({ preventScroll: true });
  return undefined;
}

window.addEventListener('hashchange', () => route());
// Only once signed in: a token refused at sign-in is start()'s to explain.
window.addEventListener(TOKEN_REFUSED, () => {
  if (session) tokenRefused();
});
route();
