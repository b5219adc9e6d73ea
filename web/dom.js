// Building the page: elements made with text nodes only. Nothing the server says (an event's
// title, a receiver's error) is ever parsed as HTML.

// h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child, [more]) -> element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const integer = new Intl.NumberFormat('en-US');
export const formatCount = (n) => integer.format(n ?? 0);
// "1 event", "3 events", "1,024 events": English plurals of the nouns the pages count.
export const countOf = (n, noun) => `${formatCount(n)} ${noun}${n === 1 ? '' : 's'}`;
export const formatPercent = (ratio) => `${((ratio ?? 0) * 100).toFixed(1)} %`;

// "2026-12-05T15:41:13.461Z" -> "2026-12-05 15:41:13 UTC"; '' for null.
export function formatTime(text) {
  if (!text) return '';
  return `${text.slice(0, 10)} ${text.slice(11, 19)} UTC`;
}

// A message that says what happened and what to do, in the given role.
export function notice(kind, title, detail) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('strong', {}, title), detail ? h('p', {}, detail) : null);
}

export const loading = (what) => h('p', { class: 'loading', role: 'status' }, `Loading ${what}…`);
