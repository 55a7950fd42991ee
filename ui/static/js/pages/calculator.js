// The cost calculator: prices a call in the browser with tollgate-model's own pricing code
// (compiled to WebAssembly, ../pkg), with this control plane's price overrides applied, and
// shows which budgets the call would count toward and what they have left.
import init, { Calculator } from '../../pkg/tollgate_model_wasm.js';
import { get, allBudgets, ApiError } from '../api.js';
import { h, mount, card, table, usd, num, errorBox } from '../dom.js';

let calc = null;
const overrides = new Map();

async function calculator() {
  if (!calc) {
    await init();
    calc = new Calculator();
  }
  return calc;
}

const TOKEN_FIELDS = [
  ['uncached_input_tokens', 'Input tokens (not cached)'],
  ['cached_input_tokens', 'Cached input tokens'],
  ['cache_write_5m_tokens', 'Cache writes, 5 minutes'],
  ['cache_write_1h_tokens', 'Cache writes, 1 hour'],
  ['output_tokens', 'Output tokens (reasoning included)'],
  ['reasoning_tokens', 'Of which reasoning'],
  ['audio_input_tokens', 'Of the input, audio'],
  ['audio_output_tokens', 'Of the output, audio'],
  ['web_searches', 'Web searches'],
];

export default async function page({ params }) {
  const c = await calculator();
  const models = c.models();
  const out = h('div', { id: 'calc-out', 'aria-live': 'polite' });
  const modelInput = h('input', { id: 'c-model', name: 'model', list: 'c-models', value: params.get('model') || 'gpt-4o-mini', autocomplete: 'off' });
  const scopes = h('input', { id: 'c-scopes', name: 'scopes', value: params.get('scopes') || '', placeholder: 'team:a, user:bob' });
  const at = h('input', { id: 'c-at', name: 'at', type: 'date', value: new Date().toISOString().slice(0, 10) });
  const tokens = TOKEN_FIELDS.map(([k, label]) => h('div', {}, h('label', { for: 'c-' + k }, label),
    h('input', { id: 'c-' + k, name: k, type: 'number', min: 0, step: 1, value: k === 'uncached_input_tokens' ? 1000 : k === 'output_tokens' ? 500 : 0 })));
  const tier = h('div', {}, h('label', { for: 'c-tier' }, 'Service tier'),
    h('select', { id: 'c-tier', name: 'service_tier' }, ['standard', 'batch', 'priority'].map((t) => h('option', { value: t }, t))));
  const body = h('textarea', { id: 'c-body', name: 'body', class: 'code', spellcheck: 'false', 'aria-describedby': 'c-body-help',
    placeholder: '{"model":"gpt-4o-mini","max_tokens":256,"messages":[{"role":"user","content":"…"}]}' });
  const mode = (v) => h('label', {}, h('input', { type: 'radio', name: 'mode', value: v, checked: v === 'tokens' }), ' ', v === 'tokens' ? 'Model and token counts' : 'Paste a request');
  const formEl = h('form', { 'aria-label': 'Cost calculator' },
    h('fieldset', {}, h('legend', {}, 'Price'), h('div', { class: 'row' }, mode('tokens'), mode('request'))),
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'c-model' }, 'Model ', h('span', { class: 'hint' }, '(price-table id or alias)')), modelInput,
        h('datalist', { id: 'c-models' }, models.map((m) => h('option', { value: m })))),
      h('div', {}, h('label', { for: 'c-at' }, 'Priced on'), at),
      h('div', {}, h('label', { for: 'c-scopes' }, 'Caller\'s scopes ', h('span', { class: 'hint' }, '(for the budgets it hits)')), scopes)),
    h('div', { class: 'row', id: 'c-tokens' }, ...tokens, tier),
    h('div', { id: 'c-request', hidden: true },
      h('label', { for: 'c-body' }, 'Request body'),
      h('p', { id: 'c-body-help', class: 'muted' }, 'Priced as the filter reserves it: its own input-token estimate of the body plus the output cap the body sets (or the model\'s default). The model field above, when filled, replaces the body\'s.'),
      body),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Price it')),
    h('p', { class: 'muted' }, `Prices: the shipped table ${c.tableVersion()}, with this control plane's overrides for the model priced.`));
  formEl.addEventListener('change', (ev) => {
    if (ev.target.name !== 'mode') return;
    const request = ev.target.value === 'request';
    document.getElementById('c-tokens').hidden = request;
    document.getElementById('c-request').hidden = !request;
  });
  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      out.replaceChildren(...await price(c, new FormData(formEl)));
    } catch (err) {
      out.replaceChildren(errorBox(err instanceof ApiError ? err : { message: String(err && err.message ? err.message : err) }));
    }
  });
  mount(h('h1', {}, 'Cost calculator'), formEl, out);
}

/** Applies the control plane's override of `model`, once per page load. */
async function withOverride(c, model) {
  const id = c.models().includes(model) ? model : null;
  if (id === null || overrides.has(id)) return;
  const view = await get('/v1/prices/' + encodeURIComponent(id));
  overrides.set(id, view.source);
  if (view.source === 'override') c.applyOverride(JSON.stringify(view.entry));
}

async function price(c, data) {
  const s = (k) => String(data.get(k) ?? '').trim();
  const at = `${s('at') || new Date().toISOString().slice(0, 10)}T12:00:00Z`;
  let result;
  if (s('mode') === 'request') {
    const bodyModel = (() => { try { return JSON.parse(s('body')).model; } catch { return null; } })();
    await withOverride(c, s('model') || bodyModel);
    result = JSON.parse(c.estimateRequest(s('body'), s('model') || undefined, at));
  } else {
    await withOverride(c, s('model'));
    const usage = { service_tier: s('service_tier') };
    for (const [k] of TOKEN_FIELDS) usage[k] = Number(s(k) || 0);
    result = JSON.parse(c.cost(s('model'), JSON.stringify(usage), at));
  }
  const b = result.breakdown;
  const parts = [
    card('Cost', h('p', { class: 'stat' }, h('span', { 'data-testid': 'total-usd' }, usd(result.total_usd)),
      h('small', {}, ' · ', h('span', { 'data-testid': 'total-nanos' }, result.total_nanos), ' nano-USD')),
      h('p', {}, `${result.model}, prices from ${result.price_effective_from}, ${result.service_tier} tier${result.long_context ? ', long-context prices' : ''}.`),
      result.input_tokens !== undefined ? h('p', {}, `Reserved as ${num(result.input_tokens)} input tokens (estimated) and ${num(result.max_output_tokens)} output tokens (the cap).`) : null,
      table(['Part', 'nano-USD'], [['input', b.uncached_input_nanos], ['cached input', b.cached_input_nanos], ['cache writes 5 min', b.cache_write_5m_nanos],
        ['cache writes 1 h', b.cache_write_1h_nanos], ['output', b.output_nanos], ['reasoning', b.reasoning_nanos], ['per request and per search', b.request_fee_nanos],
        ['images', b.images_nanos], ['audio', b.audio_nanos]].filter(([, v]) => v !== '0'), { caption: 'Cost by part', numeric: [1] })),
  ];
  if (s('scopes')) parts.push(await budgetsHit(s('scopes'), result));
  return parts;
}

/** Budgets whose selector the caller's scopes hold (and whose model, if any, is the one
 *  priced), with what each has left and what this call would do there. */
async function budgetsHit(scopeText, result) {
  const scopes = new Set(['global', ...scopeText.split(',').map((x) => x.trim()).filter(Boolean)]);
  const list = await allBudgets();
  const hit = list.filter((v) => v.budget.scopes.every((s) => scopes.has(s)) && (!v.budget.model || v.budget.model === result.model));
  if (!hit.length) return card('Budgets it counts toward', h('p', { class: 'muted' }, 'None.'));
  const views = await Promise.all(hit.map((v) => get('/v1/budgets/' + encodeURIComponent(v.budget.id))));
  const cost = BigInt(result.total_nanos);
  return card('Budgets it counts toward', table(['Budget', 'Left', 'After this call', 'Outcome'], views.map((v) => {
    const u = v.usage;
    if (!u || u.remaining_nanos === undefined) return [v.budget.id, '—', '—', 'no USD limit'];
    const left = BigInt(u.remaining_nanos);
    const fits = cost <= left;
    const e = v.budget.enforcement;
    const outcome = fits ? 'allowed' : e === 'shadow' ? 'allowed (shadow: recorded and alerted)' : typeof e === 'object' ? 'downgraded if its map names the model, else refused' : 'refused';
    return [h('a', { href: '#/budget/' + encodeURIComponent(v.budget.id) }, v.budget.id), usd(u.remaining_usd), usd(Number(left - cost) / 1e9), outcome];
  }), { caption: 'Budgets hit' }));
}
