// The dashboard end to end in headless Chromium (run by tests/tests/dashboard.rs, which
// starts Envoy with the filter, the control plane and the mock provider and passes their URLs).
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
  await page.type('#f-limit_usd', '1.0000000001');
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
  await page.type('#f-limit_usd', '1');
  await Promise.all([t.ready('budget'), page.click('form button[type="submit"]')]);
  const created = await api('GET', `/v1/budgets/${BUDGET}`);
  assert(created.budget.limit_usd === '1' && created.budget.period === 'monthly', JSON.stringify(created.budget));

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

  // The budget's page: its bar and chart.
  await t.open(`#/budget/${BUDGET}`, 'budget');
  await page.waitForSelector('#budget-chart canvas');
  await t.shot('budget-detail');

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
} finally {
  await t.close();
}
