// Reports: spend by any grouping in calendar buckets (chart + table + CSV), chargeback, and
// invoices (HTML preview, PDF download). Every figure is the API's; the CSV is the table's.
import { get, qs, request, ApiError } from '../api.js';
import { h, mount, card, table, usd, num, zone, ymd, addDays, monthStart, nextMonthStart, errorBox, download } from '../dom.js';
import { timeChart, color } from '../charts.js';

const GROUP_KEYS = ['team', 'project', 'user', 'key', 'org', 'tag', 'model', 'provider'];
const BUCKETS = [['', 'whole range'], ['hour', 'hour'], ['day', 'day'], ['week', 'week'], ['month', 'month']];

export default async function reports({ args, params }) {
  const view = args[0] || 'spend';
  const today = ymd(new Date());
  let from = params.get('from') || monthStart(today);
  let to = params.get('to') || nextMonthStart(today);
  const at = params.get('at');
  if (at) {
    // Linked from an anomaly: the days around it.
    const d = ymd(new Date(Number(at)));
    from = addDays(d, -3); to = addDays(d, 2);
  }
  const tabs = h('nav', { class: 'actions', 'aria-label': 'Report kinds' },
    ['spend', 'chargeback', 'invoice'].map((k) => h('a', { class: k === view ? 'button' : 'button ghost', href: `#/reports/${k}`, 'aria-current': k === view ? 'page' : null },
      k[0].toUpperCase() + k.slice(1))));
  const out = h('div', { id: 'report-out', 'aria-live': 'polite' });
  const range = [
    field('from', 'From', h('input', { id: 'r-from', name: 'from', type: 'date', value: from, required: true })),
    field('to', 'To (exclusive)', h('input', { id: 'r-to', name: 'to', type: 'date', value: to, required: true })),
    field('tz', 'Time zone', h('input', { id: 'r-tz', name: 'tz', value: params.get('tz') || zone() })),
  ];
  const forms = { spend: spendForm, chargeback: chargebackForm, invoice: invoiceForm };
  const form = (forms[view] || spendForm)(range, out, params);
  mount(h('h1', {}, 'Reports'), tabs, form, out);
  await form.run();
}

function field(name, label, input) {
  return h('div', {}, h('label', { for: input.id }, label), input);
}
function select(id, name, options, value, attrs = {}) {
  return h('select', { id, name, ...attrs }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
}
function values(formEl) {
  const data = new FormData(formEl);
  const o = {};
  for (const [k, v] of data.entries()) o[k] = o[k] ? [].concat(o[k], v) : v;
  return o;
}
function guard(out, fn) {
  return async () => {
    try { await fn(); } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      out.replaceChildren(errorBox(err));
    }
  };
}

function spendForm(range, out, params) {
  // The moment an anomaly or alert links to, marked on the chart.
  const at = params.get('at') ? Number(params.get('at')) : null;
  const groups = h('fieldset', {}, h('legend', {}, 'Group by'),
    h('div', { class: 'row' }, GROUP_KEYS.map((k) => h('label', {},
      h('input', { type: 'checkbox', name: 'group_by', value: k, checked: (params.get('group_by') || 'team').split(',').includes(k) }), ' ', k))));
  const formEl = h('form', { 'aria-label': 'Spend report' },
    h('div', { class: 'row' }, ...range,
      field('bucket', 'Bucket', select('r-bucket', 'bucket', BUCKETS, params.get('bucket') ?? 'day')),
      field('scope', 'Scopes', h('input', { id: 'r-scope', name: 'scope', value: params.get('scope') || '', placeholder: 'team:a,user:bob' })),
      field('model', 'Model', h('input', { id: 'r-model', name: 'model', value: params.get('model') || '', placeholder: 'every model' })),
      field('top', 'Top groups', h('input', { id: 'r-top', name: 'top', type: 'number', min: 1, value: params.get('top') || '8' }))),
    groups,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Run report')));
  let last = null;
  const run = guard(out, async () => {
    const v = values(formEl);
    const q = { from: v.from, to: v.to, tz: v.tz, bucket: v.bucket, group_by: [].concat(v.group_by || []), scope: v.scope, model: v.model, top: v.top };
    const report = await get('/v1/reports/spend' + qs(q));
    last = { report, q };
    out.replaceChildren(...renderSpend(report, q, () => last, at));
  });
  formEl.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  formEl.run = run;
  return formEl;
}

function groupName(row, keys) {
  if (row.other) return 'other';
  if (!keys.length) return 'total';
  return keys.map((k) => `${k}=${row.group[k] ?? '(none)'}`).join(' ');
}

function renderSpend(report, q, current, at) {
  const keys = report.group_by;
  const rows = report.rows;
  const chartEl = h('div', { class: 'chart', id: 'report-chart' });
  const csv = h('button', { type: 'button', class: 'ghost', onclick: () => {
    const { report: r, q: qq } = current();
    download(new Blob([toCsv(r)], { type: 'text/csv' }), `tollgate-spend-${qq.from}-${qq.to}.csv`);
  } }, 'Download CSV');
  const records = h('button', { type: 'button', class: 'ghost', onclick: async () => {
    const resp = await request('GET', '/v1/ledger/records' + qs({ from: `${q.from}T00:00:00Z`, to: `${q.to}T00:00:00Z`, format: 'csv' }));
    download(await resp.blob(), `tollgate-records-${q.from}-${q.to}.csv`);
  } }, 'Download the calls (CSV)');
  const parts = [
    h('p', {}, h('strong', {}, `Total ${usd(report.total_usd)}`), ` · ${num(report.total.requests)} calls · ${num(report.total.denied)} refused · from ${report.source.replace('_', ' ')}`),
    h('div', { class: 'actions' }, csv, records),
  ];
  if (report.bucket && rows.length) {
    parts.push(chartEl);
    queueMicrotask(() => drawSpend(chartEl, report, at));
  } else if (rows.length) {
    const max = Math.max(...rows.map((r) => Number(r.cost_usd)), 1e-12);
    parts.push(h('div', {}, rows.map((r) => h('div', { class: 'util sev-info' },
      h('div', { class: 'label' }, h('span', {}, groupName(r, keys)), h('span', {}, usd(r.cost_usd))),
      h('div', { class: 'bar', 'aria-hidden': 'true' }, h('div', { class: 'fill', style: { width: `${(Number(r.cost_usd) / max) * 100}%` } }))))));
  }
  parts.push(rows.length ? table([report.bucket ? 'Bucket' : null, ...keys, 'Spend (USD)', 'Calls', 'Refused', 'Input tokens', 'Output tokens'].filter(Boolean),
    rows.map((r) => [report.bucket ? r.bucket_start : null, ...keys.map((k) => (r.other ? 'other' : r.group[k] ?? '(none)')), r.cost_usd, num(r.requests), num(r.denied),
      num(r.tokens.uncached_input + r.tokens.cached_input + r.tokens.cache_write_5m + r.tokens.cache_write_1h), num(r.tokens.output)].filter((c) => c !== null)),
    { caption: 'Spend report rows', numeric: [1, 2, 3, 4, 5].map((i) => i + keys.length - (report.bucket ? 0 : 1)) })
    : h('p', { class: 'muted' }, 'No spend in this range.'));
  return parts;
}

/** The report as CSV: one line per row, the exact decimal USD, the groups as columns. */
export function toCsv(report) {
  const keys = report.group_by;
  const esc = (v) => { const s = v === null || v === undefined ? '' : String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  // cost_usd is the API's exact decimal string (nano-USD as JSON numbers could lose digits in
  // JavaScript above 2^53).
  const head = ['bucket_start', ...keys, 'other', 'cost_usd', 'requests', 'denied',
    'uncached_input_tokens', 'cached_input_tokens', 'cache_write_5m_tokens', 'cache_write_1h_tokens', 'output_tokens', 'reasoning_tokens'];
  const lines = [head.join(',')];
  for (const r of report.rows) {
    lines.push([r.bucket_start ?? '', ...keys.map((k) => r.group[k] ?? ''), r.other, r.cost_usd, r.requests, r.denied,
      r.tokens.uncached_input, r.tokens.cached_input, r.tokens.cache_write_5m, r.tokens.cache_write_1h, r.tokens.output, r.tokens.reasoning].map(esc).join(','));
  }
  return lines.join('\n') + '\n';
}

function drawSpend(el, report, at) {
  const keys = report.group_by;
  const xs = [...new Set(report.rows.map((r) => Math.floor(Date.parse(r.bucket_start) / 1000)))].sort((a, b) => a - b);
  const names = [...new Set(report.rows.map((r) => groupName(r, keys)))];
  const series = names.map((name, i) => {
    const vals = xs.map(() => 0);
    for (const r of report.rows) if (groupName(r, keys) === name) vals[xs.indexOf(Math.floor(Date.parse(r.bucket_start) / 1000))] += Number(r.cost_usd);
    return { label: name, values: vals, color: color(i), points: xs.length < 3 };
  });
  const vlines = at ? [{ value: Math.floor(at / 1000), label: 'linked hour' }] : [];
  timeChart(el, { x: xs, series, vlines, bars: xs.length < 40 && names.length === 1, xRange: [Date.parse(report.from) / 1000, Date.parse(report.to) / 1000], label: `Spend per ${report.bucket}${keys.length ? ' by ' + keys.join(' and ') : ''}` });
}

function chargebackForm(range, out, params) {
  const formEl = h('form', { 'aria-label': 'Chargeback' },
    h('div', { class: 'row' }, ...range,
      field('by', 'By', select('c-by', 'by', ['team', 'project', 'department', 'tag', 'org', 'user', 'key'].map((k) => [k, k]), params.get('by') || 'team')),
      field('allocation', 'Unallocated spend', select('c-allocation', 'allocation', [['unallocated', 'its own row'], ['proportional', 'shared proportionally']], params.get('allocation') || 'unallocated')),
      field('tag_prefix', 'Tag prefix', h('input', { id: 'c-tag_prefix', name: 'tag_prefix', placeholder: 'cost-center=' }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Run chargeback')));
  const run = guard(out, async () => {
    const v = values(formEl);
    const r = await get('/v1/reports/chargeback' + qs(v));
    out.replaceChildren(
      h('p', {}, h('strong', {}, `Total ${usd(r.total_usd)}`), r.shared ? ' · unallocated spend shared' : ''),
      table([v.by, 'Direct', 'Shared', 'Cost (USD)', 'Calls'], r.rows.map((row) => [row.key ?? '(unallocated)',
        usd(row.direct_nanos / 1e9), usd(row.shared_nanos / 1e9), row.cost_usd, num(row.requests)]), { caption: 'Chargeback', numeric: [1, 2, 3, 4] }));
  });
  formEl.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  formEl.run = run;
  return formEl;
}

function invoiceForm(range, out, params) {
  const formEl = h('form', { 'aria-label': 'Invoice' },
    h('div', { class: 'row' }, ...range,
      field('scope', 'Payer scope', h('input', { id: 'i-scope', name: 'scope', required: true, value: params.get('scope') || '', placeholder: 'team:payments' })),
      field('markup_pct', 'Markup, %', h('input', { id: 'i-markup_pct', name: 'markup_pct', inputmode: 'decimal', value: '0' })),
      field('fee_usd', 'Fixed fee, USD', h('input', { id: 'i-fee_usd', name: 'fee_usd', inputmode: 'decimal', value: '0' })),
      field('billing', 'Billing', select('i-billing', 'billing', [['pay_as_you_go', 'pay as you go'], ['prepaid', 'prepaid']], 'pay_as_you_go')),
      field('credit_usd', 'Credit, USD (prepaid)', h('input', { id: 'i-credit_usd', name: 'credit_usd', inputmode: 'decimal' }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Show invoice'),
      h('button', { type: 'button', class: 'ghost', id: 'invoice-pdf', onclick: guard(out, async () => {
        const v = values(formEl);
        const resp = await request('GET', '/v1/reports/invoice' + qs({ ...v, format: 'pdf' }));
        download(await resp.blob(), `invoice-${v.scope.replace(/[^A-Za-z0-9=-]/g, '_')}-${v.from}.pdf`);
      }) }, 'Download PDF')));
  const run = guard(out, async () => {
    const v = values(formEl);
    if (!v.scope) { out.replaceChildren(h('p', { class: 'muted' }, 'Name the payer scope to see its invoice.')); return; }
    const inv = await get('/v1/reports/invoice' + qs(v));
    out.replaceChildren(h('section', { class: 'card', 'aria-label': 'Invoice' },
      h('h2', {}, inv.number || 'Invoice'),
      table(['Model', 'Provider', 'Calls', 'Input tokens', 'Output tokens', 'Cost', 'Markup', 'Amount'],
        inv.lines.map((l) => [l.model, l.provider, num(l.requests), num(l.input_tokens), num(l.output_tokens), usd(l.cost_nanos / 1e9), usd(l.markup_nanos / 1e9), usd(l.amount_nanos / 1e9)]),
        { caption: 'Invoice lines', numeric: [2, 3, 4, 5, 6, 7] }),
      h('p', {}, `Subtotal ${usd(inv.subtotal_nanos / 1e9)} · fee ${usd(inv.fee_nanos / 1e9)} · `, h('strong', {}, `amount due ${usd(inv.amount_due_usd)}`))));
  });
  formEl.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
  formEl.run = run;
  return formEl;
}
