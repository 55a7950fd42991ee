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
  try {
    return await get('/v1/forecasts/' + encodeURIComponent(id));
  } catch (err) {
    // A budget the forecaster cannot forecast (no USD limit, no history) is not a page error.
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) return { unavailable: err.message };
    throw err;
  }
}

function forecastNote(f) {
  if (f === null) return h('p', { class: 'note' }, 'This control plane does not forecast yet (no GET /v1/forecasts/{budget}): the chart shows spend so far.');
  if (f.unavailable) return h('p', { class: 'note' }, `No forecast: ${f.unavailable}`);
  return null;
}

function runOut(f, u) {
  if (f && !f.unavailable) {
    const date = f.run_out_at || f.runout_at || f.exhausted_at;
    return h('p', { 'data-testid': 'run-out' }, date ? `Expected to run out ${when(date)}` : 'Not expected to run out this period.');
  }
  if (u && u.limit_nanos && u.remaining_nanos <= 0) return h('p', {}, 'The limit is reached.');
  return h('p', { class: 'muted' }, f === null ? 'Needs a forecast (not served by this control plane).' : 'No forecast for this budget.');
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

function drawChart(el, view, series, forecast, { fromS, toS, at }) {
  const rows = series.rows || (series.report && series.report.rows) || [];
  // Cumulative spend at the end of each bucket, from the window's start.
  const xs = [], spent = [];
  let total = 0;
  for (const r of rows) {
    total += Number(r.cost_usd);
    xs.push(Math.floor(Date.parse(r.bucket_start) / 1000));
    spent.push(total);
  }
  if (!xs.length || xs[0] > fromS) { xs.unshift(fromS); spent.unshift(0); }
  xs.push(toS); spent.push(total);
  const s = [{ label: 'spent (USD)', values: spent, color: color(0), fill: undefined }];
  let band;
  const points = forecast && !forecast.unavailable ? forecastPoints(forecast) : [];
  if (points.length) {
    // The forecast continues from now to the period's end: its own x values, merged.
    const all = [...xs, ...points.map((p) => p.t).filter((t) => t > toS)];
    const pad = (vals, n) => [...vals, ...Array(n).fill(null)];
    const extra = all.length - xs.length;
    const lead = Array(xs.length - 1).fill(null);
    const fc = (k) => [...lead, total, ...points.filter((p) => p.t > toS).map((p) => p[k])];
    s[0].values = pad(spent, extra);
    s.push({ label: 'forecast', values: fc('mid'), color: color(0), dash: [6, 4] });
    s.push({ label: 'upper', values: fc('hi'), color: 'transparent', width: 0 });
    s.push({ label: 'lower', values: fc('lo'), color: 'transparent', width: 0 });
    band = [3, 4];
    xs.splice(0, xs.length, ...all);
  }
  const b = view.budget;
  const limit = b.limit_usd ? Number(b.limit_usd) : null;
  const hlines = limit ? [{ value: limit, label: `limit ${usd(b.limit_usd)}`, color: getComputedStyle(document.documentElement).getPropertyValue('--crit').trim() },
    ...b.thresholds_pct.filter((t) => t < 100).map((t) => ({ value: (limit * t) / 100, label: `${t} %` }))] : [];
  if (at) s.push({ label: 'alert time', values: xs.map((x) => (Math.abs(x - at / 1000) < 1800 ? total : null)), color: color(5), points: true, width: 0 });
  timeChart(el, { x: xs, series: s, band, hlines, label: `Spend of budget ${b.id} over time${points.length ? ' with its forecast band to the period end' : ''}` });
}

/** The forecast's points as {t (Unix s), mid, lo, hi} in USD, whatever its exact shape. */
export function forecastPoints(f) {
  const pts = f.points || f.series || f.path || [];
  return pts.map((p) => ({
    t: Math.floor(Date.parse(p.at || p.t || p.time || p.bucket_start) / 1000),
    mid: usdOf(p, 'expected') ?? usdOf(p, 'mid') ?? usdOf(p, 'cumulative'),
    lo: usdOf(p, 'low') ?? usdOf(p, 'lower') ?? usdOf(p, 'p10'),
    hi: usdOf(p, 'high') ?? usdOf(p, 'upper') ?? usdOf(p, 'p90'),
  })).filter((p) => Number.isFinite(p.t));
}

function usdOf(p, k) {
  if (p[k + '_usd'] !== undefined) return Number(p[k + '_usd']);
  if (p[k + '_nanos'] !== undefined) return Number(p[k + '_nanos']) / 1e9;
  return undefined;
}
