// Anomalies: an anomaly pass run now (GET /v1/anomalies, the last 24 hours of every scope and
// model, or those the filter keeps), each incident linked into its scope's hourly spend chart
// at its hour, and into the chart of every budget counting that scope.
import { get, qs, serves, allBudgets, ApiError } from '../api.js';
import { h, mount, table, usd, num, when, errorBox } from '../dom.js';
import { field } from '../forms.js';

export default async function anomalies({ params }) {
  if (!(await serves('/v1/anomalies'))) {
    mount(h('h1', {}, 'Anomalies'), h('p', { class: 'note' }, 'This control plane does not detect anomalies (no GET /v1/anomalies).'));
    return;
  }
  const scope = params.get('scope') || '';
  const model = params.get('model') || '';
  const out = h('div', { id: 'anomaly-out', 'aria-live': 'polite' });
  const formEl = h('form', { 'aria-label': 'Anomaly filter' },
    h('div', { class: 'row' },
      field('a-scope', 'Scope', h('input', { id: 'a-scope', name: 'scope', value: scope, placeholder: 'team:a, global' })),
      field('a-model', 'Model', h('input', { id: 'a-model', name: 'model', value: model, placeholder: 'gpt-4o' }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Run a pass')));
  formEl.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(formEl);
    location.hash = '#/anomalies' + qs({ scope: String(data.get('scope')).trim(), model: String(data.get('model')).trim() });
  });
  mount(h('h1', {}, 'Anomalies'),
    h('p', { class: 'muted' }, 'Hourly spend and request counts of every scope and model that left their usual pattern in the last 24 hours (docs/anomalies.md), judged now.'),
    formEl, out);
  let report, budgets;
  try {
    [report, budgets] = await Promise.all([get('/v1/anomalies' + qs({ scope, model })), allBudgets()]);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    out.replaceChildren(errorBox(err));
    return;
  }
  out.replaceChildren(
    h('p', {}, `Pass at ${when(report.at_ms)}: ${num(report.series_judged)} series judged`,
      report.series_skipped ? `, ${num(report.series_skipped)} left out (max_series)` : '', '.'),
    report.anomalies.length ? table(['Severity', 'Scope', 'Model', 'What', 'Hour', 'Observed', 'Expected', 'Score', 'Charts'],
      report.anomalies.map((a) => [h('span', { class: `badge sev-${a.severity}` }, a.severity), a.scope, a.model,
        `${a.metric} ${a.direction === 'up' ? 'above' : 'below'} usual (${a.detector.replace(/_/g, ' ')})`,
        when(a.hour_start_ms), amount(a, a.observed), amount(a, a.expected), a.score.toFixed(1),
        chartLinks(a, budgets)]),
      { caption: 'Anomalies', numeric: [5, 6, 7] })
      : h('p', { class: 'muted', 'data-testid': 'no-anomalies' }, 'No anomalies in the last 24 hours.'));
}

function amount(a, v) { return a.metric === 'spend' ? usd(v / 1e9) : num(v); }

/** The scope's hourly spend report around the anomaly's hour, for its model. */
export function scopeChartHref(a) {
  return '#/reports/spend' + qs({ scope: a.scope === 'global' ? '' : a.scope, model: a.model, at: a.hour_start_ms, bucket: 'hour', group_by: 'model' });
}

function chartLinks(a, budgets) {
  const links = [h('a', { href: scopeChartHref(a), 'aria-label': `Spend chart of ${a.scope} on ${a.model} at ${when(a.hour_start_ms)}` }, 'spend chart')];
  for (const v of budgets) {
    const b = v.budget;
    if (!b.scopes.includes(a.scope) || (b.model && b.model !== a.model)) continue;
    links.push(', ', h('a', { href: `#/budget/${encodeURIComponent(b.id)}?at=${a.hour_start_ms}`, 'aria-label': `Budget ${b.id} at ${when(a.hour_start_ms)}` }, `budget ${b.id}`));
  }
  return h('span', {}, ...links);
}

/** One anomaly in a line (the overview's list), linked into its scope's chart at its hour. */
export function anomalyLine(a) {
  return [h('span', { class: `badge sev-${a.severity}` }, a.severity), ' ',
    h('a', { href: scopeChartHref(a) }, a.scope),
    ` ${a.metric} ${a.direction === 'up' ? 'above' : 'below'} usual on ${a.model} from ${when(a.hour_start_ms)}`];
}
