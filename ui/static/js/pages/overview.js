// Overview: spend today and this month, every budget's window against its limit (coloured by
// the highest threshold crossed), top teams and models, alerts, anomalies, fail-open episodes.
import { get, qs, allBudgets, records, serves } from '../api.js';
import { h, mount, card, table, usd, num, zone, ymd, addDays, monthStart, nextMonthStart, when, severityOf } from '../dom.js';
import { anomalyLine, scopeChartHref } from './anomalies.js';

/** Fail-open records closer than this belong to one episode. */
const EPISODE_GAP_MS = 5 * 60 * 1000;

export default async function overview() {
  const tz = zone();
  const today = ymd(new Date());
  const month = { from: monthStart(today), to: nextMonthStart(today), tz };
  const now = new Date();
  const dayAgo = new Date(now.getTime() - 24 * 3600 * 1000);
  const [budgets, todayReport, monthReport, topTeams, topModels, alerts, recent, anomalies] = await Promise.all([
    allBudgets().then((list) => Promise.all(list.map((b) => get('/v1/budgets/' + encodeURIComponent(b.budget.id))))),
    get('/v1/reports/spend' + qs({ from: today, to: addDays(today, 1), tz })),
    get('/v1/reports/spend' + qs(month)),
    get('/v1/reports/spend' + qs({ ...month, group_by: 'team', top: 5 })),
    get('/v1/reports/spend' + qs({ ...month, group_by: 'model', top: 5 })),
    get('/v1/alerts?limit=10'),
    records(dayAgo.toISOString(), now.toISOString()),
    loadAnomalies(),
  ]);

  const crossed = budgets.filter((b) => b.usage && b.usage.thresholds_crossed.length);
  mount(
    h('h1', {}, 'Overview'),
    h('div', { class: 'grid' },
      card('Spend today', h('p', { class: 'stat', 'data-testid': 'spend-today' }, usd(todayReport.total_usd),
        h('small', {}, ` · ${num(todayReport.total.requests)} calls`))),
      card('Spend this month', h('p', { class: 'stat', 'data-testid': 'spend-month' }, usd(monthReport.total_usd),
        h('small', {}, ` · ${num(monthReport.total.requests)} calls`))),
      card('Budgets', h('p', { class: 'stat' }, num(budgets.length),
        h('small', {}, ` · ${crossed.length} past a threshold`)))),
    h('div', { class: 'grid', style: { marginTop: '16px' } },
      card('Budgets this period', budgets.length ? budgets.map(utilisation) : h('p', { class: 'muted' }, 'No budgets yet. ', h('a', { href: '#/budgets' }, 'Create one'), '.')),
      h('div', {},
        topCard('Top teams this month', 'team', topTeams),
        h('div', { style: { height: '16px' } }),
        topCard('Top models this month', 'model', topModels))),
    h('div', { class: 'grid', style: { marginTop: '16px' } },
      card('Active alerts', alertList(alerts)),
      card('Recent anomalies', anomalyList(anomalies)),
      card('Fail-open episodes (24 h)', episodeList(recent))));
}

async function loadAnomalies() {
  if (!(await serves('/v1/anomalies'))) return null;
  return (await get('/v1/anomalies')).anomalies;
}

/** One budget's bar: spend over limit (USD, else tokens, else requests) with threshold ticks. */
export function utilisation(view) {
  const b = view.budget, u = view.usage;
  if (!u) return null;
  let used, limit, text;
  if (u.limit_nanos) {
    used = u.spent_nanos + u.reserved_nanos; limit = u.limit_nanos;
    text = `${usd(u.spent_usd)} of ${usd(b.limit_usd)}`;
  } else if (b.limit_tokens) {
    used = u.tokens + u.reserved_tokens; limit = b.limit_tokens;
    text = `${num(u.tokens)} of ${num(limit)} tokens`;
  } else if (b.limit_requests) {
    used = u.requests; limit = b.limit_requests;
    text = `${num(used)} of ${num(limit)} requests`;
  } else {
    return null;
  }
  const pct = limit > 0 ? (used / limit) * 100 : 0;
  const top = u.thresholds_crossed.length ? Math.max(...u.thresholds_crossed) : null;
  const sev = severityOf(top);
  const label = `${b.id}: ${pct.toFixed(1)} % used`;
  return h('div', { class: `util sev-${sev}`, 'data-budget': b.id },
    h('div', { class: 'label' },
      h('a', { href: '#/budget/' + encodeURIComponent(b.id) }, b.id),
      h('span', {}, text, ' ', h('span', { class: 'badge' }, u.suspended ? 'suspended' : top === null ? 'ok' : `${top} % crossed`))),
    h('div', { class: 'bar', role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.min(100, pct).toFixed(1) },
      h('div', { class: 'fill', style: { width: `${Math.min(100, pct)}%` } }),
      b.thresholds_pct.filter((t) => t < 100).map((t) => h('div', { class: 'tick', style: { left: `${t}%` }, title: `${t} %` }))),
    h('div', { class: 'muted' }, `${b.period === 'total' ? 'all time' : typeof b.period === 'object' ? `${b.period.seconds} s window` : b.period}`,
      u.resets_at ? ` · resets ${when(u.resets_at)}` : ''));
}

function topCard(title, key, report) {
  const rows = report.report ? report.report.rows : report.rows;
  if (!rows.length) return card(title, h('p', { class: 'muted' }, 'No spend this month.'));
  return card(title, table([key === 'team' ? 'Team' : 'Model', 'Spend', 'Calls'],
    rows.map((r) => [r.other ? 'other' : (r.group[key] ?? `(no ${key})`), usd(r.cost_usd), num(r.requests)]),
    { caption: title, numeric: [1, 2] }));
}

function alertList(alerts) {
  if (!alerts.length) return h('p', { class: 'muted' }, 'No alerts.');
  return h('ul', {}, alerts.map((a) => h('li', { class: `sev-${a.severity}` },
    h('span', { class: 'badge' }, a.severity), ' ', ...alertLine(a))));
}

/** One alert in words, linked to the budget's (or the scope's) chart at that moment. */
export function alertLine(a, { time = true } = {}) {
  const at = time ? ` · ${when(a.at_ms)}` : '';
  const budgetLink = a.budget_id ? h('a', { href: `#/budget/${encodeURIComponent(a.budget_id)}?at=${a.at_ms}` }, a.budget_id) : null;
  switch (a.kind) {
    case 'budget_threshold': return [budgetLink, ` crossed ${a.threshold_pct} %`, at];
    case 'budget_suspended': return [budgetLink, ' suspended until reopened', at];
    case 'emergency_switch': {
      const e = a.emergency || {};
      return [a.scope || '', e.mode ? ` emergency ${e.mode.replace('_', ' ')}${e.model ? ' to ' + e.model : ''} by ${e.by}` : ` emergency lifted by ${e.by}`, at];
    }
    case 'anomaly': {
      const d = a.anomaly || {};
      const scope = a.scope || 'global';
      return [h('a', { href: scopeChartHref({ scope, model: d.model, hour_start_ms: d.hour_start_ms ?? a.at_ms }) }, scope),
        ` ${d.metric || ''} anomaly on ${d.model || 'a model'} (${d.direction || ''})`, at];
    }
    case 'fail_open_episode': {
      const f = a.fail_open || {};
      return [`fail-open: ${num(f.calls)} calls from ${when(f.start_ms)} to ${when(f.end_ms)}`];
    }
    case 'budget_forecast_runout': return [budgetLink, ` forecast to reach its limit ${when(a.runout_at_ms)}, before its period ends`, at];
    case 'unpriced_model': {
      const u = a.unpriced || {};
      return [`model ${u.model} (${u.provider}) has no price: ${(u.action || '').replace('_', ' ')}`, at];
    }
    default: return [a.kind, budgetLink ? [' ', budgetLink] : '', at];
  }
}

function anomalyList(anomalies) {
  if (anomalies === null) return h('p', { class: 'note' }, 'This control plane does not detect anomalies (no GET /v1/anomalies).');
  if (!anomalies.length) return h('p', { class: 'muted' }, 'No anomalies in the last 24 hours.');
  return h('ul', {}, anomalies.slice(0, 10).map((a) => h('li', {}, anomalyLine(a))));
}

/** Records with outcome `failed_open`, split into episodes by gaps longer than 5 minutes. */
export function episodes(recs) {
  const open = recs.filter((r) => r.outcome === 'failed_open').sort((a, b) => a.ended_at_ms - b.ended_at_ms);
  const out = [];
  for (const r of open) {
    const last = out[out.length - 1];
    if (last && r.ended_at_ms - last.end <= EPISODE_GAP_MS) {
      last.end = r.ended_at_ms; last.calls += 1; last.cost += r.cost_nanos;
    } else {
      out.push({ start: r.ended_at_ms, end: r.ended_at_ms, calls: 1, cost: r.cost_nanos });
    }
  }
  return out.reverse();
}

function episodeList(recs) {
  const eps = episodes(recs);
  if (!eps.length) return h('p', { class: 'muted' }, 'None: every call was admitted by the control plane.');
  return table(['From', 'To', 'Calls', 'Spend'], eps.map((e) => [when(e.start), when(e.end), num(e.calls), usd(e.cost / 1e9)]),
    { caption: 'Fail-open episodes', numeric: [2, 3] });
}
