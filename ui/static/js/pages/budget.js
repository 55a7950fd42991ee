// One budget: its window's spend over time against the limit and thresholds, the forecast to
// the period's end with its intervals (when the control plane forecasts), the run-out date,
// and the calls it refused, downgraded or cut off in the last 24 hours.
import { get, qs, records, serves, request, ApiError } from '../api.js';
import { h, mount, card, table, usd, num, zone, when, errorBox, announce } from '../dom.js';
import { timeChart, color } from '../charts.js';
import { utilisation } from './overview.js';
import { limitText, periodText, enforcementText } from './budgets.js';

const HOUR = 3600;

export default async function budget({ args, params }) {
  const id = args[0];
  const view = await get('/v1/budgets/' + encodeURIComponent(id));
  const b = view.budget, u = view.usage;
  const at = params.get('at') ? Number(params.get('at')) : null;
  const nowS = Math.floor(Date.now() / 1000);
  // The window so far, or around a moment an alert or anomaly links to.
  let fromS = u ? Math.floor(Date.parse(u.window_start) / 1000) : nowS - 7 * 24 * HOUR;
  let toS = nowS;
  if (at) { fromS = Math.floor(at / 1000) - 2 * 24 * HOUR; toS = Math.min(nowS, Math.floor(at / 1000) + 24 * HOUR); }
  fromS = Math.max(fromS, nowS - 400 * 24 * HOUR);
  const spanS = Math.max(toS - fromS, HOUR);
  const bucket = spanS <= 4 * 24 * HOUR ? 'hour' : 'day';
  const scopes = b.scopes.filter((s) => s !== 'global');
  const dayAgo = new Date(Date.now() - 24 * HOUR * 1000);
  const [series, recent, forecast] = await Promise.all([
    get('/v1/reports/spend' + qs({ from: new Date(floorTo(fromS, bucket) * 1000).toISOString(), to: new Date((toS + HOUR) * 1000).toISOString(),
      tz: zone(), bucket, scope: scopes, model: b.model })),
    records(dayAgo.toISOString(), new Date().toISOString()),
    loadForecast(id),
  ]);

  const events = recent.filter((r) => r.budget_id === id && ['denied', 'downgraded', 'cut_off'].includes(r.outcome))
    .sort((a, c) => c.ended_at_ms - a.ended_at_ms);
  const chartEl = h('div', { class: 'chart', id: 'budget-chart' });
  const actions = h('div', { class: 'actions' },
    h('a', { class: 'button', href: '#/budgets/edit/' + encodeURIComponent(id) }, 'Edit'),
    u && u.suspended ? h('button', { type: 'button', onclick: () => reopen(id) }, 'Reopen') : null);
  mount(
    h('h1', {}, `Budget ${id}`),
    b.description ? h('p', { class: 'muted' }, b.description) : null,
    actions,
    h('div', { class: 'grid' },
      card('This window', utilisation(view) || h('p', { class: 'muted' }, 'No limit.'),
        u ? h('p', {}, `${num(u.requests)} calls · ${num(u.tokens)} tokens · reserved now ${usd(u.reserved_nanos / 1e9)}`) : null),
      card('Settings', h('dl', {},
        h('dt', {}, 'Scopes'), h('dd', {}, b.scopes.join(', ')),
        h('dt', {}, 'Limit'), h('dd', {}, limitText(b)),
        h('dt', {}, 'Period'), h('dd', {}, `${periodText(b.period)} (${b.timezone})`),
        h('dt', {}, 'Enforcement'), h('dd', {}, enforcementText(b.enforcement)),
        h('dt', {}, 'Thresholds'), h('dd', {}, b.thresholds_pct.map((t) => t + ' %').join(', ') || '—'),
        view.profile ? [h('dt', {}, 'Profile'), h('dd', {}, h('a', { href: '#/profiles' }, view.profile.id))] : null)),
      card('Run-out', runOut(forecast, u))),
    h('section', { class: 'card', style: { marginTop: '16px' }, 'aria-label': 'Spend over time' },
      h('h2', {}, at ? `Spend around ${when(at)}` : 'Spend this window'),
      forecastNote(forecast),
      chartEl),
    h('div', { style: { marginTop: '16px' } },
      card('Refused, downgraded and cut off (24 h)', events.length
        ? table(['When', 'Outcome', 'Model', 'Scopes', 'Reason'], events.slice(0, 50).map((r) => [when(r.ended_at_ms), r.outcome.replace('_', ' '),
          r.outcome === 'downgraded' ? `${r.requested_model} → ${r.charged_model}` : r.requested_model, r.scopes.join(', '), r.deny_reason || '']), { caption: 'Refusals' })
        : h('p', { class: 'muted' }, 'None.'))));
  drawChart(chartEl, view, series, forecast, { fromS, toS, at, bucket });
}

function floorTo(s, bucket) { return bucket === 'hour' ? s - (s % HOUR) : s - (s % (24 * HOUR)); }

async function loadForecast(id) {
  if (!(await serves('/v1/forecasts/{budget}'))) return null;
  return (await get('/v1/forecasts/' + encodeURIComponent(id))).forecast;
}

function forecastNote(f) {
  if (f === null) return h('p', { class: 'note' }, 'This control plane does not forecast (no GET /v1/forecasts/{budget}): the chart shows spend so far.');
  if (!f.end_of_period) return h('p', { class: 'note' }, 'No forecast to a period end (a total budget, or no history yet).');
  const e = f.end_of_period;
  return h('p', { 'data-testid': 'forecast' }, `Forecast at the period end: ${usd(e.point_usd)} (80 %: ${usd(e.p80.low_usd)} to ${usd(e.p80.high_usd)}; 95 %: ${usd(e.p95.low_usd)} to ${usd(e.p95.high_usd)}), `,
    `by ${f.method.replace('_', ' ')} on ${f.history_steps} ${f.step}s of history${f.short_history ? ' (short history: wider interval)' : ''}.`);
}

const RUNOUT = {
  exhausted: () => 'The limit is reached.',
  before_period_end: (r) => `Expected to run out ${when(r.at)}${r.earliest ? ` (95 %: as early as ${when(r.earliest)})` : ''}.`,
  not_this_period: (r) => `Not expected to run out this period${r.earliest ? ` (95 %: as early as ${when(r.earliest)})` : ''}.`,
  no_limit: () => 'No USD limit to run out of.',
};

function runOut(f, u) {
  if (f) {
    const say = RUNOUT[f.runout.status] || (() => f.runout.status);
    return [h('p', { 'data-testid': 'run-out', class: f.runout.status === 'before_period_end' || f.runout.status === 'exhausted' ? 'sev-warning' : null }, say(f.runout)),
      h('p', { class: 'muted' }, `Burn: ${usd(f.burn_rate.last_24h_usd_per_hour)}/h over the last 24 h, ${usd(f.burn_rate.forecast_usd_per_hour)}/h forecast.`)];
  }
  if (u && u.limit_nanos && u.remaining_nanos <= 0) return h('p', {}, 'The limit is reached.');
  return h('p', { class: 'muted' }, 'Needs a forecast (not served by this control plane).');
}

async function reopen(id) {
  try {
    await request('POST', `/v1/budgets/${encodeURIComponent(id)}/reopen`);
    announce('Budget reopened');
    location.reload();
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    document.getElementById('main').prepend(errorBox(err));
  }
}

function drawChart(el, view, series, forecast, { fromS, toS, at, bucket }) {
  const rows = series.rows || [];
  // Cumulative spend: flat until a bucket starts, its spend added by the bucket's end.
  const xs = [fromS], spent = [0];
  const len = bucket === 'hour' ? HOUR : 24 * HOUR;
  let total = 0;
  for (const r of rows) {
    const start = Math.floor(Date.parse(r.bucket_start) / 1000);
    if (start > xs[xs.length - 1]) { xs.push(start); spent.push(total); }
    total += Number(r.cost_usd);
    const end = Math.min(start + len, toS);
    if (end > xs[xs.length - 1]) { xs.push(end); spent.push(total); } else { spent[spent.length - 1] = total; }
  }
  if (toS > xs[xs.length - 1]) { xs.push(toS); spent.push(total); }
  const s = [{ label: 'spent (USD)', values: spent, color: color(0) }];
  let band, xEnd = toS;
  const e = forecast && forecast.end_of_period;
  if (e && !at && forecast.period_end) {
    // From what is spent now to the period end: the point forecast, and the 80 % and 95 %
    // intervals as bands (straight between the two ends: the API forecasts the end value).
    const now = Number(forecast.spent_nanos) / 1e9;
    xEnd = Math.floor(Date.parse(forecast.period_end) / 1000);
    xs.push(xEnd);
    spent.push(null);
    const lead = Array(xs.length - 2).fill(null);
    const line = (end) => [...lead, now, end];
    s.push({ label: 'forecast', values: line(e.point_usd), color: color(0), dash: [6, 4] });
    s.push({ label: '95 % high', values: line(e.p95.high_usd), color: 'transparent', width: 0 });
    s.push({ label: '95 % low', values: line(e.p95.low_usd), color: 'transparent', width: 0 });
    s.push({ label: '80 % high', values: line(e.p80.high_usd), color: 'transparent', width: 0 });
    s.push({ label: '80 % low', values: line(e.p80.low_usd), color: 'transparent', width: 0 });
    band = [[3, 4], [5, 6]];
  }
  const b = view.budget;
  const limit = b.limit_usd ? Number(b.limit_usd) : null;
  const hlines = limit ? [{ value: limit, label: `limit ${usd(b.limit_usd)}`, color: getComputedStyle(document.documentElement).getPropertyValue('--crit').trim() },
    ...b.thresholds_pct.filter((t) => t < 100).map((t) => ({ value: (limit * t) / 100, label: `${t} %` }))] : [];
  const vlines = at ? [{ value: Math.floor(at / 1000), label: 'alert' }] : [];
  timeChart(el, { x: xs, series: s, band, hlines, vlines, xRange: [fromS, xEnd],
    label: `Spend of budget ${b.id} over time${e ? ', with its forecast and 80 % and 95 % intervals to the period end' : ''}` });
}
