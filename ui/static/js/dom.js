// Small DOM and formatting helpers: elements are built with `h`, text is always set as text
// (never parsed as HTML), so nothing the API returns can inject markup.

/** `h('a', {href: '#'}, 'text', child…)`. Attributes starting with `on` become listeners. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the page's content. */
export function mount(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return main;
}

/** Says something to screen readers. */
export function announce(text) { document.getElementById('status').textContent = text; }

const usdFmt = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/** An exact decimal USD string (or a number) for display: cents above a dollar, up to six
 *  significant digits below (an LLM call often costs a fraction of a cent). */
export function usd(value) {
  if (value === undefined || value === null || value === '') return '—';
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (n !== 0 && Math.abs(n) < 1) {
    const digits = Number(Math.abs(n).toPrecision(6)).toFixed(9).replace(/0+$/, '');
    return (n < 0 ? '-$' : '$') + digits;
  }
  return usdFmt.format(n);
}

/** Nano-USD (display only; exact figures come from the API's `_usd` strings). */
export function nanosToUsd(nanos) { return Number(nanos) / 1e9; }

export function num(n) { return n === undefined || n === null ? '—' : Number(n).toLocaleString('en-US'); }

/** The browser's IANA zone: reports are asked for in it. */
export function zone() { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; }

/** `YYYY-MM-DD` of `date` in the browser's zone. */
export function ymd(date) {
  return new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }).format(date);
}

/** `YYYY-MM-DD` plus `days` (calendar arithmetic on the date, not on instants). */
export function addDays(ymdStr, days) {
  const [y, m, d] = ymdStr.split('-').map(Number);
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return t.toISOString().slice(0, 10);
}

export function monthStart(ymdStr) { return ymdStr.slice(0, 8) + '01'; }
export function nextMonthStart(ymdStr) {
  const [y, m] = ymdStr.split('-').map(Number);
  return new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10);
}

export function when(rfc3339OrMs) {
  const d = new Date(rfc3339OrMs);
  return Number.isNaN(d.getTime()) ? String(rfc3339OrMs) : d.toLocaleString();
}

/** Alert severity of the highest threshold crossed (the control plane's rule). */
export function severityOf(pct) {
  if (pct === null || pct === undefined) return 'ok';
  if (pct >= 100) return 'critical';
  if (pct >= 80) return 'warning';
  return 'info';
}

/** An API error as the page shows it: the API's own code, message and field. */
export function errorBox(err) {
  const parts = [h('strong', {}, err.status ? `${err.status} ${err.code}` : 'Error'), ': ', err.message];
  if (err.field) parts.push(' (field ', h('code', {}, err.field), ')');
  return h('div', { class: 'error', role: 'alert' }, ...parts);
}

export function card(title, ...body) {
  return h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), ...body);
}

export function table(headers, rows, { caption, numeric = [] } = {}) {
  return h('div', { class: 'scroll' }, h('table', {},
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((t, i) => h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, t)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h('td', { class: numeric.includes(i) ? 'num' : null }, c)))))));
}

/** Saves `blob` as a file named `name`. */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
