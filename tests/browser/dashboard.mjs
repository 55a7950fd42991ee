// The dashboard end to end in headless Chromium (run by tests/tests/dashboard.rs, which
// starts Envoy with the filter, the control plane and the mock provider and passes their URLs).
import { readFileSync } from 'node:fs';
import { launch, api, until, governedCall, assert, CP, TOKEN } from './harness.mjs';

const TEAM = 'dash';
const BUDGET = 'dash-team';
const CALLS = 3;

const t = await launch();
const { page } = t;
try {
  // Log in: the token goes to session storage, never into the URL.
  await page.goto(CP + '/ui/', { waitUntil: 'load' });
  await page.waitForSelector('#token');
  await t.shot('login');
  await page.type('#token', TOKEN);
  await Promise.all([t.ready('overview'), page.click('form button[type="submit"]')]);
  assert(!page.url().includes(TOKEN), 'the token is not in the URL');
  assert(await page.evaluate(() => Object.values(sessionStorage).length === 1), 'the token is in session storage');
  await t.shot('overview-empty');

  // Create a budget through the form; a bad value first shows the API's own message and field.
  await t.open('#/budgets/new', 'budgets');
  await page.type('#f-id', BUDGET);
  await page.type('#f-scopes', `team:${TEAM}`);
  await page.type('#f-limit_usd', '0.0040000000001');
  await page.select('#f-period', 'monthly');
  await t.expecting([/\/v1\/budgets.* answered 400/, /status of 400/], async () => {
    await page.click('form button[type="submit"]');
    await page.waitForSelector('.error[role="alert"]');
  });
  const problem = await t.text('.error[role="alert"]');
  assert(/400 invalid_field/.test(problem) && /limit_usd/.test(problem), `the API's validation is shown: ${problem}`);
  assert(await page.$eval('#f-limit_usd', (e) => e.getAttribute('aria-invalid') === 'true'), 'the field at fault is marked');
  await t.shot('budget-form-validation');
  await page.$eval('#f-limit_usd', (e) => { e.value = ''; });
  await page.type('#f-limit_usd', '0.004');
  await Promise.all([t.ready('budget'), page.click('form button[type="submit"]')]);
  const created = await api('GET', `/v1/budgets/${BUDGET}`);
  assert(created.budget.limit_usd === '0.004' && created.budget.period === 'monthly', JSON.stringify(created.budget));

  // Governed calls through Envoy, settled against the budget.
  for (let i = 0; i < CALLS; i++) {
    const r = await governedCall(TEAM);
    assert(r.status === 200, `governed call ${i}: ${r.status} ${r.body}`);
  }
  const usage = await until('the calls are settled', async () => {
    const u = (await api('GET', `/v1/budgets/${BUDGET}`)).usage;
    return u.requests === CALLS && u.spent_nanos > 0 && u.reserved_nanos === 0 ? u : null;
  });

  // The overview shows them: today's spend, the budget's bar, the team among the top.
  await t.open('#/overview', 'overview');
  const today = await api('GET', `/v1/reports/spend?from=${new Date(Date.now() - 86400e3).toISOString()}&to=${new Date(Date.now() + 60e3).toISOString()}`);
  assert(today.total.requests === CALLS, `the ledger has the calls: ${JSON.stringify(today.total)}`);
  const spendToday = await t.text('[data-testid="spend-today"]');
  assert(spendToday.includes(`${CALLS} calls`), `spend today shows the calls: ${spendToday}`);
  const bar = await page.$eval(`.util[data-budget="${BUDGET}"] .bar`, (e) => Number(e.getAttribute('aria-valuenow')));
  const want = ((usage.spent_nanos / usage.limit_nanos) * 100).toFixed(1);
  assert(bar.toFixed(1) === want, `the bar shows ${bar} %, the API ${want} %`);
  const top = await page.$$eval('section[aria-label="Top teams this month"] td', (tds) => tds.map((td) => td.innerText));
  assert(top.includes(TEAM), `the team is among the top: ${top}`);
  await t.shot('overview');

  // The budget's page: its bar, its chart with the forecast band to the period end, run-out.
  await t.open(`#/budget/${BUDGET}`, 'budget');
  await page.waitForSelector('#budget-chart canvas');
  const forecast = (await api('GET', `/v1/forecasts/${BUDGET}`)).forecast;
  assert(forecast.end_of_period, `the API forecasts the budget: ${JSON.stringify(forecast)}`);
  const said = await t.text('[data-testid="forecast"]');
  assert(said.includes('95 %') && said.includes(forecast.method.replace('_', ' ')), `the page states the forecast: ${said}`);
  const legend = await page.$$eval('#budget-chart .u-legend th', (ths) => ths.map((th) => th.innerText.trim()));
  for (const s of ['forecast', '95 % high', '95 % low', '80 % high', '80 % low']) assert(legend.includes(s), `the chart draws ${s}: ${legend}`);
  assert((await t.text('[data-testid="run-out"]')).length > 0, 'the run-out is stated');
  await t.shot('budget-detail');

  // The calculator prices in the browser, with tollgate-model compiled to wasm: every shared
  // case gives the native total (model/wasm/tests/cost_cases.json).
  await t.open('#/calculator', 'calculator');
  const { cases } = JSON.parse(readFileSync(new URL('../../model/wasm/tests/cost_cases.json', import.meta.url)));
  for (const c of cases) {
    await page.$eval('#calc-out', (e) => e.replaceChildren());
    await page.$eval('#c-model', (e, v) => { e.value = v; }, c.model);
    await page.$eval('#c-at', (e, v) => { e.value = v; }, c.at.slice(0, 10));
    for (const k of ['uncached_input_tokens', 'cached_input_tokens', 'cache_write_5m_tokens', 'cache_write_1h_tokens', 'output_tokens', 'reasoning_tokens',
      'audio_input_tokens', 'audio_output_tokens', 'web_searches']) {
      await page.$eval(`#c-${k}`, (e, v) => { e.value = String(v); }, c.usage[k] ?? 0);
    }
    await page.select('#c-tier', c.usage.service_tier ?? 'standard');
    await page.click('form[aria-label="Cost calculator"] button[type="submit"]');
    await page.waitForSelector('[data-testid="total-nanos"]');
    const got = await t.text('[data-testid="total-nanos"]');
    assert(got === c.total_nanos, `${c.name}: the page priced ${got}, native ${c.total_nanos}`);
  }
  // A pasted request, and the budget it would count toward.
  await page.click('input[name="mode"][value="request"]');
  await page.$eval('#c-model', (e) => { e.value = ''; });
  await page.type('#c-body', JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 256, messages: [{ role: 'user', content: 'Summarise the quarter.' }] }));
  await page.type('#c-scopes', `team:${TEAM}`);
  await page.$eval('#calc-out', (e) => e.replaceChildren());
  await page.click('form[aria-label="Cost calculator"] button[type="submit"]');
  await page.waitForSelector('section[aria-label="Budgets it counts toward"] td');
  const hits = await page.$$eval('section[aria-label="Budgets it counts toward"] td', (tds) => tds.map((td) => td.innerText));
  assert(hits.includes(BUDGET) && hits.includes('allowed'), `the calculator names the budget: ${hits}`);
  await t.shot('calculator');

  // A report by team and hour: the chart, the table, and its CSV with the API's exact figures.
  await t.open('#/reports/spend', 'reports');
  await page.select('#r-bucket', 'hour');
  await page.click('form[aria-label="Spend report"] button[type="submit"]');
  await page.waitForSelector('#report-chart canvas');
  const cells = await page.$$eval('#report-out td', (tds) => tds.map((td) => td.innerText));
  assert(cells.includes(TEAM), `the report has the team: ${cells}`);
  await t.shot('report-spend');
  await page.click('#report-out .actions button');
  const csv = (await t.download(`tollgate-spend-${await page.$eval('#r-from', (e) => e.value)}-${await page.$eval('#r-to', (e) => e.value)}.csv`)).toString();
  const [head, ...lines] = csv.trim().split('\n');
  assert(head.startsWith('bucket_start,team,other,cost_usd,requests'), `CSV header: ${head}`);
  const line = lines.find((l) => l.split(',')[1] === TEAM);
  assert(line && line.split(',')[3] === usage.spent_usd && line.split(',')[4] === String(CALLS), `CSV row ${line} against spent ${usage.spent_usd}`);

  // Phone width and the dark theme.
  await page.setViewport({ width: 390, height: 844 });
  await t.open('#/overview', 'overview');
  await t.shot('overview-phone');
  await page.setViewport({ width: 1280, height: 900 });
  await page.click('#theme');
  await t.ready('overview');
  assert(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'dark theme on');
  await t.shot('overview-dark');
  t.check('end');
  console.log('dashboard: every step passed');
} catch (err) {
  // What the page showed when it failed, beside the screenshots.
  await t.shot('failure').catch(() => {});
  console.log('page at failure:\n' + await page.$eval('main', (m) => m.innerText).catch(() => '?'));
  throw err;
} finally {
  await t.close();
}
