// Budget profiles: the list, and a form to create, edit and delete one (a changed shipped tier
// goes back to as shipped). The API validates; its message, code and field are shown as it
// sent them, and a stale edit (412 on If-Match) is shown as the conflict it is.
import { get, request, ApiError } from '../api.js';
import { h, mount, table, usd, announce, errorBox } from '../dom.js';
import { field, select, clearMarks, showApiError, deleteSection } from '../forms.js';

const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'quarterly', 'yearly', 'total'];
const ORIGIN = { shipped: 'shipped', override: 'shipped, changed', custom: 'custom' };

export default async function profiles({ args }) {
  if (args[0] === 'new') return form(null);
  if (args[0] === 'edit') return form(await get('/v1/profiles/' + encodeURIComponent(args[1])));
  const list = await get('/v1/profiles');
  mount(
    h('h1', {}, 'Profiles'),
    h('p', { class: 'muted' }, 'A profile holds settings budgets inherit by naming it; a change reaches every such budget.'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/profiles/new' }, 'New profile')),
    table(['Profile', 'Origin', 'Limit', 'Period', 'Enforcement', 'Thresholds', 'Description', h('span', { class: 'sr-only' }, 'Actions')],
      list.map((p) => [p.id, ORIGIN[p.origin] || p.origin, limitText(p.settings), periodText(p.settings.period),
        enforcementText(p.settings.enforcement), (p.settings.thresholds_pct || []).map((t) => `${t} %`).join(', ') || '—',
        p.description || '',
        h('a', { href: '#/profiles/edit/' + encodeURIComponent(p.id), 'aria-label': `Edit ${p.id}` }, 'Edit')]),
      { caption: 'Profiles' }));
}

function limitText(s) {
  const parts = [];
  if (s.limit_usd) parts.push(usd(s.limit_usd));
  if (s.limit_tokens) parts.push(`${Number(s.limit_tokens).toLocaleString('en-US')} tokens`);
  if (s.limit_requests) parts.push(`${Number(s.limit_requests).toLocaleString('en-US')} requests`);
  return parts.join(' · ') || '—';
}
function periodText(p) { return p === undefined ? '—' : typeof p === 'object' ? `${p.seconds} s` : p; }
function enforcementText(e) { return e === undefined ? '—' : typeof e === 'object' ? 'downgrade' : e; }

/** The form; `existing` is the API's ProfileView when editing. */
function form(existing) {
  const p = existing || { settings: { period: 'monthly', thresholds_pct: [50, 80, 90, 100] } };
  const s = p.settings;
  let version = existing ? existing.version ?? null : null;
  const id = (name) => 'p-' + name;
  const input = (name, value, attrs = {}) => h('input', { id: id(name), name, value: value ?? '', ...attrs });
  const tri = (name, value) => select(id(name), name, [['', 'not set (the budget\'s own, else off)'], ['true', 'yes'], ['false', 'no']],
    value === undefined ? '' : String(value));
  const complex = typeof s.enforcement === 'object' || typeof s.period === 'object' || !!s.unknown_model;
  const fields = h('div', { class: 'row' },
    field(id('id'), 'Id', input('id', p.id, { required: true, readonly: !!existing, pattern: '[A-Za-z0-9._-]{1,64}' }), 'letters, digits . _ -'),
    field(id('description'), 'Description', input('description', p.description)),
    field(id('limit_usd'), 'Limit, USD', input('limit_usd', s.limit_usd, { inputmode: 'decimal' })),
    field(id('limit_tokens'), 'Limit, tokens', input('limit_tokens', s.limit_tokens, { inputmode: 'numeric' })),
    field(id('limit_requests'), 'Limit, requests', input('limit_requests', s.limit_requests, { inputmode: 'numeric' })),
    field(id('period'), 'Period', select(id('period'), 'period', [['', 'not set'], ...PERIODS.map((x) => [x, x])], typeof s.period === 'object' ? '' : s.period)),
    field(id('timezone'), 'Time zone', input('timezone', s.timezone), 'IANA'),
    field(id('enforcement'), 'Enforcement', select(id('enforcement'), 'enforcement', [['', 'not set'], ['hard', 'hard: refuse'], ['shadow', 'shadow: record and alert'], ['downgrade', 'downgrade (map in JSON)']],
      typeof s.enforcement === 'object' ? 'downgrade' : s.enforcement)),
    field(id('thresholds_pct'), 'Alert thresholds, %', input('thresholds_pct', (s.thresholds_pct || []).join(', ')), 'comma-separated'),
    field(id('fail_mode'), 'When the control plane is unreachable', select(id('fail_mode'), 'fail_mode', [['', 'not set'], ['open', 'let calls through'], ['closed', 'refuse calls']], s.fail_mode)),
    field(id('suspend_on_exceed'), 'Stay closed once exceeded', tri('suspend_on_exceed', s.suspend_on_exceed)),
    field(id('cutoff_mid_stream'), 'Cut streams off at the limit', tri('cutoff_mid_stream', s.cutoff_mid_stream)));
  const json = h('textarea', { id: id('json'), class: 'code', spellcheck: 'false', 'aria-describedby': id('json-help') });
  const useJson = h('input', { type: 'checkbox', id: id('use-json'), checked: complex });
  const problems = h('div', { 'aria-live': 'assertive' });
  const formEl = h('form', { id: 'profile-form', 'aria-label': existing ? `Edit profile ${p.id}` : 'New profile', novalidate: true }, fields,
    h('details', { open: complex },
      h('summary', {}, 'The body as JSON'),
      h('p', { id: id('json-help'), class: 'muted' }, 'What Save sends (PUT /v1/profiles/{id}). Tick the box to send this text as written, for settings the form has no field for (a downgrade map, a seconds period, an unknown-model policy).'),
      h('label', { for: id('use-json') }, useJson, ' Send the JSON as written'), json),
    problems,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, existing ? 'Save changes' : 'Create profile'),
      h('a', { class: 'button ghost', href: '#/profiles' }, 'Cancel')));

  const fromForm = () => {
    const data = new FormData(formEl);
    const v = (k) => String(data.get(k) ?? '').trim();
    // Settings the form cannot show are kept as they were.
    const settings = {};
    if (typeof s.period === 'object') settings.period = s.period;
    if (typeof s.enforcement === 'object') settings.enforcement = s.enforcement;
    if (s.unknown_model) settings.unknown_model = s.unknown_model;
    for (const k of ['limit_usd', 'timezone', 'fail_mode', 'period']) if (v(k)) settings[k] = v(k);
    for (const k of ['limit_tokens', 'limit_requests']) if (v(k)) settings[k] = /^\d+$/.test(v(k)) ? Number(v(k)) : v(k);
    if (v('enforcement') && v('enforcement') !== 'downgrade') settings.enforcement = v('enforcement');
    if (v('thresholds_pct')) settings.thresholds_pct = v('thresholds_pct').split(',').map((x) => x.trim()).filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
    for (const k of ['suspend_on_exceed', 'cutoff_mid_stream']) if (v(k)) settings[k] = v(k) === 'true';
    const body = { id: v('id') };
    if (v('description')) body.description = v('description');
    body.settings = settings;
    return body;
  };
  json.value = JSON.stringify(existing ? { id: p.id, ...(p.description ? { description: p.description } : {}), settings: s } : fromForm(), null, 2);
  formEl.addEventListener('input', (ev) => {
    if (ev.target !== json && ev.target !== useJson && !useJson.checked) json.value = JSON.stringify(fromForm(), null, 2);
  });

  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearMarks(formEl);
    let body;
    if (useJson.checked) {
      try { body = JSON.parse(json.value); } catch (e) {
        problems.replaceChildren(errorBox({ message: `The JSON does not parse: ${e.message}` }));
        return;
      }
    } else {
      body = fromForm();
    }
    const target = existing ? p.id : body.id;
    if (!target) {
      // The id is the URL's last part: without one there is nothing to send it to.
      showApiError(formEl, problems, { message: 'A profile needs an id.', field: 'id' }, { prefix: 'p-' });
      return;
    }
    try {
      await request('PUT', '/v1/profiles/' + encodeURIComponent(target || ''), { body, ifMatch: existing ? version : undefined });
      announce(existing ? 'Profile saved' : 'Profile created');
      location.hash = '#/profiles';
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 412) {
        // Saving again overwrites: the next write is checked against the version read now
        // (read before the message shows, so a save right after it is the overwrite).
        try { version = (await get('/v1/profiles/' + encodeURIComponent(p.id))).version ?? null; } catch { /* the message still stands */ }
      }
      showApiError(formEl, problems, err, {
        prefix: 'p-', what: `profile ${p.id}`, reloadHref: '#/profiles/edit/' + encodeURIComponent(p.id),
        fieldOf: (f) => (useJson.checked ? null : f.replace(/^settings\./, '').split(/[.[]/)[0]),
      });
    }
  });

  const children = [h('h1', {}, existing ? `Edit profile ${p.id}` : 'New profile')];
  if (existing) {
    children.push(h('p', { class: 'muted', 'data-testid': 'profile-users' }, existing.budgets && existing.budgets.length
      ? ['Budgets that name it: ', ...existing.budgets.flatMap((b, i) => [i ? ', ' : '', h('a', { href: '#/budget/' + encodeURIComponent(b) }, b)])]
      : 'No budget names it.'));
  }
  children.push(formEl);
  if (existing && existing.origin !== 'shipped') {
    const restoring = existing.origin === 'override';
    children.push(deleteSection(restoring ? 'Restore' : 'Delete',
      restoring ? `Put ${p.id} back as shipped? Budgets that name it take the shipped settings.` : `Delete ${p.id}?`,
      restoring ? 'Restore as shipped' : 'Delete profile',
      async () => {
        await request('DELETE', '/v1/profiles/' + encodeURIComponent(p.id), { ifMatch: version });
        announce(restoring ? 'Profile restored' : 'Profile deleted');
        location.hash = '#/profiles';
      }));
  } else if (existing) {
    children.push(h('p', { class: 'muted' }, 'A shipped tier cannot be deleted; change it here and restore it later.'));
  }
  mount(...children);
}
