// Budgets: the list, and a form to create, edit and delete one. The API validates; its
// message, code and field are shown as it sent them, and a stale edit (412 on If-Match) is
// shown as the conflict it is, with the edits kept.
import { get, request, allBudgets, ApiError } from '../api.js';
import { h, mount, table, usd, errorBox, announce } from '../dom.js';
import { clearMarks, showApiError, deleteSection } from '../forms.js';

const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'quarterly', 'yearly', 'total'];

export default async function budgets({ args }) {
  if (args[0] === 'new') return form(null);
  if (args[0] === 'edit') return form(await loadForEdit(args[1]));
  const list = await allBudgets();
  mount(
    h('h1', {}, 'Budgets'),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/budgets/new' }, 'New budget')),
    list.length ? table(['Budget', 'Scopes', 'Limit', 'Period', 'Enforcement', 'Profile', h('span', { class: 'sr-only' }, 'Actions')],
      list.map((v) => {
        const b = v.budget;
        return [h('a', { href: '#/budget/' + encodeURIComponent(b.id) }, b.id), b.scopes.join(', '),
          limitText(b), periodText(b.period), enforcementText(b.enforcement), v.profile ? v.profile.id : '—',
          h('a', { href: '#/budgets/edit/' + encodeURIComponent(b.id), 'aria-label': `Edit ${b.id}` }, 'Edit')];
      }), { caption: 'Budgets' })
      : h('p', { class: 'muted' }, 'No budgets yet.'));
}

export function limitText(b) {
  const parts = [];
  if (b.limit_usd) parts.push(usd(b.limit_usd));
  if (b.limit_tokens) parts.push(`${Number(b.limit_tokens).toLocaleString('en-US')} tokens`);
  if (b.limit_requests) parts.push(`${Number(b.limit_requests).toLocaleString('en-US')} requests`);
  return parts.join(' · ') || '—';
}
export function periodText(p) { return typeof p === 'object' ? `${p.seconds} s` : p; }
export function enforcementText(e) { return typeof e === 'object' ? 'downgrade' : e; }

async function loadForEdit(id) {
  const resp = await request('GET', '/v1/budgets/' + encodeURIComponent(id));
  const view = await resp.json();
  return { view, written: view.profile ? view.profile.written : view.budget };
}

/** The form; `existing` is `{view, written}` when editing. */
async function form(existing) {
  const profiles = await get('/v1/profiles');
  const b = existing ? existing.written : { thresholds_pct: [50, 80, 90, 100] };
  let version = existing ? existing.view.version : null;
  const field = (name, label, input, hint) => h('div', {},
    h('label', { for: 'f-' + name }, label, hint ? h('span', { class: 'hint' }, ` (${hint})`) : null), input);
  const input = (name, value, attrs = {}) => h('input', { id: 'f-' + name, name, value: value ?? '', ...attrs });
  const select = (name, options, value) => h('select', { id: 'f-' + name, name },
    options.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') }, t)));
  const check = (name, label, value) => h('div', {}, h('label', {},
    h('input', { type: 'checkbox', id: 'f-' + name, name, checked: !!value }), ' ', label));
  const enforcement = typeof b.enforcement === 'object' ? 'downgrade' : (b.enforcement ?? '');
  const fields = h('div', { class: 'row' },
    field('id', 'Id', input('id', b.id, { required: true, readonly: !!existing, pattern: '[A-Za-z0-9._-]{1,64}' }), 'letters, digits . _ -'),
    field('description', 'Description', input('description', b.description)),
    field('scopes', 'Scopes', input('scopes', (b.scopes || []).join(', '), { required: true }), 'comma-separated: team:a, user:bob, global'),
    field('profile', 'Profile', select('profile', [['', 'none'], ...profiles.map((p) => [p.id, p.id])], b.profile)),
    field('model', 'Model', input('model', b.model), 'only this model counts'),
    field('limit_usd', 'Limit, USD', input('limit_usd', b.limit_usd, { inputmode: 'decimal' })),
    field('limit_tokens', 'Limit, tokens', input('limit_tokens', b.limit_tokens, { inputmode: 'numeric' })),
    field('limit_requests', 'Limit, requests', input('limit_requests', b.limit_requests, { inputmode: 'numeric' })),
    field('period', 'Period', select('period', [['', b.profile ? 'from the profile' : 'choose…'], ...PERIODS.map((p) => [p, p])],
      typeof b.period === 'object' ? '' : b.period)),
    field('timezone', 'Time zone', input('timezone', b.timezone), 'IANA, default UTC'),
    field('enforcement', 'Enforcement', select('enforcement', [['', 'default (hard)'], ['hard', 'hard: refuse'], ['shadow', 'shadow: record and alert'], ['downgrade', 'downgrade (map in JSON)']], enforcement)),
    field('thresholds_pct', 'Alert thresholds, %', input('thresholds_pct', (b.thresholds_pct || []).join(', ')), 'comma-separated'),
    field('fail_mode', 'When the control plane is unreachable', select('fail_mode', [['', 'default (open)'], ['open', 'let calls through'], ['closed', 'refuse calls']], b.fail_mode)),
    check('suspend_on_exceed', 'Stay closed once exceeded, until reopened', b.suspend_on_exceed),
    check('cutoff_mid_stream', 'Cut streams off at the limit', b.cutoff_mid_stream));
  const json = h('textarea', { id: 'f-json', class: 'code', spellcheck: 'false', 'aria-describedby': 'json-help' });
  const useJson = h('input', { type: 'checkbox', id: 'f-use-json', checked: typeof b.enforcement === 'object' || typeof b.period === 'object' || !!b.unknown_model });
  const problems = h('div', { 'aria-live': 'assertive' });
  const formEl = h('form', { id: 'budget-form', 'aria-label': existing ? `Edit budget ${b.id}` : 'New budget', novalidate: true }, fields,
    h('details', { open: useJson.checked },
      h('summary', {}, 'The body as JSON'),
      h('p', { id: 'json-help', class: 'muted' }, 'What Save sends (docs/control-plane.md). Tick the box to send this text as written, for settings the form has no field for (a downgrade map, a seconds period, an unknown-model policy).'),
      h('label', {}, useJson, ' Send the JSON as written'), json),
    problems,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, existing ? 'Save changes' : 'Create budget'),
      h('a', { class: 'button ghost', href: existing ? '#/budget/' + encodeURIComponent(b.id) : '#/budgets' }, 'Cancel')));

  const fromForm = () => {
    const data = new FormData(formEl);
    const s = (k) => String(data.get(k) ?? '').trim();
    const body = existing && typeof b.enforcement === 'object' ? { enforcement: b.enforcement } : {};
    if (typeof b.period === 'object') body.period = b.period;
    if (b.unknown_model) body.unknown_model = b.unknown_model;
    body.id = s('id');
    if (s('description')) body.description = s('description');
    body.scopes = s('scopes').split(',').map((x) => x.trim()).filter(Boolean);
    for (const k of ['profile', 'model', 'limit_usd', 'timezone', 'fail_mode']) if (s(k)) body[k] = s(k);
    for (const k of ['limit_tokens', 'limit_requests']) if (s(k)) body[k] = /^\d+$/.test(s(k)) ? Number(s(k)) : s(k);
    if (s('period')) body.period = s('period');
    if (s('enforcement') && s('enforcement') !== 'downgrade') body.enforcement = s('enforcement');
    if (s('thresholds_pct')) body.thresholds_pct = s('thresholds_pct').split(',').map((x) => x.trim()).filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
    if (data.get('suspend_on_exceed')) body.suspend_on_exceed = true;
    if (data.get('cutoff_mid_stream')) body.cutoff_mid_stream = true;
    return body;
  };
  const sync = () => { if (!useJson.checked) json.value = JSON.stringify(fromForm(), null, 2); };
  json.value = JSON.stringify(existing ? b : fromForm(), null, 2);
  formEl.addEventListener('input', (ev) => { if (ev.target !== json && ev.target !== useJson) sync(); });

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
    try {
      const resp = existing
        ? await request('PUT', '/v1/budgets/' + encodeURIComponent(b.id), { body, ifMatch: version })
        : await request('POST', '/v1/budgets', { body });
      announce(existing ? 'Budget saved' : 'Budget created');
      location.hash = '#/budget/' + encodeURIComponent(body.id);
      void resp;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      await showError(err);
    }
  });

  async function showError(err) {
    if (err.status === 412) {
      // Saving again overwrites: the next write is checked against the version read now
      // (read before the message shows, so a save right after it is the overwrite).
      try { version = (await get('/v1/budgets/' + encodeURIComponent(b.id))).version; } catch { /* the message still stands */ }
    }
    showApiError(formEl, problems, err, {
      prefix: 'f-', what: `budget ${b.id}`, reloadHref: '#/budgets/edit/' + encodeURIComponent(b.id),
      fieldOf: (f) => (useJson.checked ? null : f.split(/[.[]/)[0]),
    });
  }

  const children = [h('h1', {}, existing ? `Edit budget ${b.id}` : 'New budget'), formEl];
  if (existing) {
    children.push(deleteSection('Delete', `Delete ${b.id}? Its counters go with it.`, 'Delete budget', async () => {
      await request('DELETE', '/v1/budgets/' + encodeURIComponent(b.id), { ifMatch: version });
      announce('Budget deleted');
      location.hash = '#/budgets';
    }));
  }
  mount(...children);
}
