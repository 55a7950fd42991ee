// The public admin API, as the dashboard calls it. The admin token lives in this tab's
// sessionStorage (gone when the tab closes) and travels only in the Authorization header.

const TOKEN_KEY = 'tollgate.admin_token';

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(t) { sessionStorage.setItem(TOKEN_KEY, t); }
export function clearToken() { sessionStorage.removeItem(TOKEN_KEY); }

/** An error answer of the API: `{"error":{"code","message","field"}}` with its status. */
export class ApiError extends Error {
  constructor(status, body, etag) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.field = e.field || null;
    this.etag = etag;
  }
}

/** One API call. `body` is sent as JSON; `ifMatch` is a version number (ETag). */
export async function request(method, path, { body, ifMatch, raw } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined && !raw) headers['Content-Type'] = 'application/json';
  if (ifMatch !== undefined && ifMatch !== null) headers['If-Match'] = `"${ifMatch}"`;
  const init = { method, headers };
  if (body !== undefined) init.body = raw ? body : JSON.stringify(body);
  const resp = await fetch(path, init);
  if (!resp.ok) {
    let parsed = null;
    try { parsed = await resp.json(); } catch { /* not JSON: the status says it */ }
    throw new ApiError(resp.status, parsed, resp.headers.get('ETag'));
  }
  // An empty answer is read to its end: left unread, Chromium cancels its load, which looks
  // like a failed request.
  if (resp.status === 204) await resp.arrayBuffer();
  return resp;
}

export async function get(path) { return (await request('GET', path)).json(); }

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** Every budget, following `next_cursor`. */
export async function allBudgets() {
  const items = [];
  let cursor = null;
  do {
    const page = await get('/v1/budgets' + qs({ limit: 500, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor || null;
  } while (cursor);
  return items;
}

/** Request records between two instants (JSON lines), parsed. */
export async function records(from, to) {
  const resp = await request('GET', '/v1/ledger/records' + qs({ from, to, format: 'jsonl' }));
  const text = await resp.text();
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

let paths = null;
/** Whether this control plane serves `path` (as its OpenAPI document lists it): forecasts and
 *  anomalies arrived in a later release, and the pages say so rather than fail. */
export async function serves(path) {
  if (!paths) {
    const doc = await (await fetch('/v1/openapi.json')).json();
    paths = new Set(Object.keys(doc.paths || {}));
  }
  return paths.has(path);
}
