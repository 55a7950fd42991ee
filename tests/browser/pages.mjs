// The dashboard's editing and monitoring pages in headless Chromium (run by
// tests/tests/dashboard.rs after starting the whole gateway): profiles (created from the
// keyboard, a validation error, an edit conflict, a delete refused while a budget names it),
// budget edit, conflict and delete, alert channels (created, tested against a real signed
// webhook receiver, deleted), alerts and their deliveries, an anomaly raised by injected
// history and its links into the charts, chargeback and the invoice's PDF.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { launch, api, until, governedCall, assert, CP, TOKEN } from './harness.mjs';
import { focused } from './a11y.mjs';

const TEAM = 'pages';
const BUDGET = 'pages-team';
const PROFILE = 'pages-tier';
const SECRET = 'whsec-browser-test-0123456789';
const HOUR = 3600e3;

/** A signed-webhook receiver checking each signature with its own HMAC (docs/alerts.md). */
function receiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const parts = Object.fromEntries(String(req.headers['tollgate-signature'] || '').split(',').map((p) => p.split('=')));
      const mac = createHmac('sha256', SECRET).update(`${parts.t}.`).update(raw).digest('hex');
      got.push({ body: JSON.parse(raw.toString()), signed: mac === parts.v1 });
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, got, url: `http://127.0.0.1:${server.address().port}/hook` })));
}

/** Four weeks of $1 an hour for `scope` on gpt-4o, then $20 in the hour two hours ago: the
 *  history of control-plane/tests/anomalies.rs, dated from now. */
async function importSpike(scope) {
  const t0 = Math.floor(Date.now() / HOUR) * HOUR;
  let csv = 'request_id,ended_at,provider,charged_model,cost_nanos,scopes\n';
  for (let h = 28 * 24; h >= 1; h--) csv += `spike-${h},${t0 - h * HOUR + HOUR / 2},openai,gpt-4o,${h === 2 ? 20e9 : 1e9},${scope}\n`;
  const resp = await fetch(CP + '/v1/ledger/import?format=tollgate_csv', { method: 'POST', body: csv,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'text/csv' } });
  assert(resp.ok, `import: ${resp.status} ${await resp.text()}`);
  return t0 - 2 * HOUR;
}

/** Replaces an input's text from the keyboard. */
async function retype(p, selector, text) {
  await p.focus(selector);
  await p.keyboard.down('Control'); await p.keyboard.press('a'); await p.keyboard.up('Control');
  await p.keyboard.press('Backspace');
  await p.keyboard.type(text);
}

/** Two tabs edit the same record from the same version: the second save is a 412, shown as an
 *  edit conflict with its edits kept; saving again overwrites. */
async function conflict(t, { route, name, field, mine, theirs, after, read }) {
  const other = await t.tab();
  await t.open(route, name);
  await t.open(route, name, other);
  await retype(other, field, theirs);
  await Promise.all([t.ready(after.name, after.hash, other), other.click('form button[type="submit"]')]);
  await other.close();
  await retype(t.page, field, mine);
  await t.expecting([/ answered 412/, /status of 412/], async () => {
    await t.page.click('form button[type="submit"]');
    await t.page.waitForSelector('[data-testid="conflict"]');
  });
  const said = await t.text('.error[role="alert"]');
  assert(/Edit conflict/.test(said) && /412 precondition_failed/.test(said), `the conflict is said as such: ${said}`);
  assert(await t.page.$eval(field, (e) => e.value) === mine, 'the edits are kept');
  assert(await read() === theirs, 'the other edit was saved');
  await t.shot(`${name}-conflict`);
  await Promise.all([t.ready(after.name, after.hash), t.page.click('form button[type="submit"]')]);
  assert(await read() === mine, 'saving again overwrites');
}

const hook = await receiver();
const t = await launch();
const { page } = t;
try {
  await page.goto(CP + '/ui/', { waitUntil: 'load' });
  await page.waitForSelector('#token');
  await page.keyboard.type(TOKEN);
  await Promise.all([t.ready('overview'), page.keyboard.press('Enter')]);

  // Profiles: the shipped tiers listed; one created from the keyboard alone, a bad limit first.
  await t.open('#/profiles', 'profiles');
  const tiers = await page.$$eval('main tbody tr td:first-child', (tds) => tds.map((td) => td.innerText));
  assert(['low', 'medium'].every((x) => tiers.includes(x)), `the shipped tiers are listed: ${tiers}`);
  await t.shot('profiles');
  await t.open('#/profiles/new', 'profiles');
  await page.reload({ waitUntil: 'load' });
  await t.ready('profiles', '#/profiles/new');
  await page.keyboard.press('Tab');
  assert((await focused(page)).text === 'Skip to content', 'the skip link comes first');
  await page.keyboard.press('Enter');
  assert((await focused(page)).id === 'main', `the skip link focuses the content: ${JSON.stringify(await focused(page))}`);
  await page.keyboard.press('Tab');
  assert((await focused(page)).id === 'p-id', `then the form's first field: ${JSON.stringify(await focused(page))}`);
  await page.keyboard.type(PROFILE);
  await page.keyboard.press('Tab');
  await page.keyboard.type('Made by the browser test');
  await page.keyboard.press('Tab');
  await page.keyboard.type('-1');
  await t.expecting([/\/v1\/profiles.* answered 400/, /status of 400/], async () => {
    await page.keyboard.press('Enter');
    await page.waitForSelector('.error[role="alert"]');
  });
  const refused = await t.text('.error[role="alert"]');
  assert(/400 invalid_field/.test(refused) && /settings\.limit_usd/.test(refused), `the API's validation is shown: ${refused}`);
  const at = await focused(page);
  assert(at.id === 'p-limit_usd' && at.ring, `the field at fault has the focus and a ring: ${JSON.stringify(at)}`);
  assert(await page.$eval('#p-limit_usd', (e) => e.getAttribute('aria-invalid') === 'true'), 'the field at fault is marked');
  await t.shot('profile-form-validation');
  await retype(page, '#p-limit_usd', '25');
  await Promise.all([t.ready('profiles', '#/profiles'), page.keyboard.press('Enter')]);
  const made = await api('GET', `/v1/profiles/${PROFILE}`);
  assert(made.settings.limit_usd === '25' && made.origin === 'custom', JSON.stringify(made));

  // Edited from two tabs at once: a conflict, then an overwrite.
  await conflict(t, {
    route: `#/profiles/edit/${PROFILE}`, name: 'profiles', field: '#p-description', mine: 'mine', theirs: 'theirs',
    after: { name: 'profiles', hash: '#/profiles' },
    read: async () => (await api('GET', `/v1/profiles/${PROFILE}`)).description,
  });

  // A budget names the profile: deleting the profile is refused with the API's reason; the
  // budget deleted through its form, the profile goes.
  await api('POST', '/v1/budgets', { id: 'pages-profiled', scopes: ['team:pages-profiled'], profile: PROFILE });
  await t.open(`#/profiles/edit/${PROFILE}`, 'profiles');
  assert((await t.text('[data-testid="profile-users"]')).includes('pages-profiled'), 'the budgets naming it are listed');
  await page.click('section[aria-label="Delete"] button.ghost');
  await t.expecting([/\/v1\/profiles.* answered 400/, /status of 400/], async () => {
    await page.click('section[aria-label="Delete"] button.danger');
    await page.waitForSelector('section[aria-label="Delete"] .error');
  });
  const kept = await t.text('section[aria-label="Delete"] .error');
  assert(/400 invalid_field/.test(kept) && kept.includes('pages-profiled'), `the refusal names the budget: ${kept}`);
  await t.open('#/budgets/edit/pages-profiled', 'budgets');
  await page.click('section[aria-label="Delete"] button.ghost');
  await Promise.all([t.ready('budgets', '#/budgets'), page.click('section[aria-label="Delete"] button.danger')]);
  const gone = await fetch(CP + '/v1/budgets/pages-profiled', { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert(gone.status === 404, `the budget is deleted: ${gone.status}`);
  await t.open(`#/profiles/edit/${PROFILE}`, 'profiles');
  await page.click('section[aria-label="Delete"] button.ghost');
  await Promise.all([t.ready('profiles', '#/profiles'), page.click('section[aria-label="Delete"] button.danger')]);
  const left = await api('GET', '/v1/profiles');
  assert(!left.some((p) => p.id === PROFILE), 'the profile is deleted');

  // A budget edited through its form, then from two tabs at once.
  await api('POST', '/v1/budgets', { id: BUDGET, scopes: [`team:${TEAM}`], limit_usd: '0.0000001', period: 'monthly', enforcement: 'shadow' });
  await t.open(`#/budgets/edit/${BUDGET}`, 'budgets');
  await retype(page, '#f-thresholds_pct', '50, 100');
  await Promise.all([t.ready('budget', `#/budget/${BUDGET}`), page.click('form button[type="submit"]')]);
  const edited = await api('GET', `/v1/budgets/${BUDGET}`);
  assert(JSON.stringify(edited.budget.thresholds_pct) === '[50,100]', `the edit is saved: ${JSON.stringify(edited.budget)}`);
  await conflict(t, {
    route: `#/budgets/edit/${BUDGET}`, name: 'budgets', field: '#f-description', mine: 'mine', theirs: 'theirs',
    after: { name: 'budget', hash: `#/budget/${BUDGET}` },
    read: async () => (await api('GET', `/v1/budgets/${BUDGET}`)).budget.description,
  });

  // An alert channel: a short secret refused on its field, then created, tested, and sent the
  // budget's threshold alerts.
  await t.open('#/alerts/channels/new', 'alerts');
  await page.type('#ch-id', 'browser-hook');
  await page.type('#ch-url', hook.url);
  await page.type('#ch-secret', 'short');
  await t.expecting([/\/v1\/channels answered 400/, /status of 400/], async () => {
    await page.click('form button[type="submit"]');
    await page.waitForSelector('.error[role="alert"]');
  });
  const weak = await t.text('.error[role="alert"]');
  assert(/400 invalid_field/.test(weak) && /target\.secret/.test(weak), `the API's validation is shown: ${weak}`);
  assert((await focused(page)).id === 'ch-secret', 'the secret field has the focus');
  await t.shot('channel-form-validation');
  await retype(page, '#ch-secret', SECRET);
  await Promise.all([t.ready('alerts', '#/alerts/channels'), page.click('form button[type="submit"]')]);
  await page.click('button[aria-label="Send test alert to browser-hook"]');
  await page.waitForSelector('[data-channel="browser-hook"] [data-testid="test-outcome"]');
  const outcome = await t.text('[data-channel="browser-hook"] [data-testid="test-outcome"]');
  assert(/test delivered \(HTTP 200\)/.test(outcome), `the test's outcome is shown: ${outcome}`);
  assert(hook.got.length === 1 && hook.got[0].signed && hook.got[0].body.alert.kind === 'channel_test', `the receiver got one signed test: ${JSON.stringify(hook.got)}`);
  await t.shot('channels');

  const r = await governedCall(TEAM);
  assert(r.status === 200, `governed call: ${r.status} ${r.body}`);
  const alert = await until('a threshold alert is delivered', async () => {
    const a = (await api('GET', '/v1/alerts?limit=50')).find((x) => x.kind === 'budget_threshold' && x.budget_id === BUDGET);
    if (!a) return null;
    const d = await api('GET', `/v1/alerts/${encodeURIComponent(a.id)}/deliveries`);
    return d.some((x) => x.channel_id === 'browser-hook' && x.state === 'delivered') ? a : null;
  });
  await t.open('#/alerts', 'alerts');
  assert(await page.$(`main tbody a[href="#/budget/${BUDGET}?at=${alert.at_ms}"]`), `the alert links to its budget's chart at its moment`);
  await t.shot('alerts');
  await page.click(`a[aria-label="Deliveries of ${alert.id}"]`);
  await t.ready('alerts', `#/alerts/deliveries/${encodeURIComponent(alert.id)}`);
  const delivered = await t.text('section[aria-label="Delivery to browser-hook"]');
  assert(/delivered/.test(delivered) && /200/.test(delivered), `the delivery and its attempt are shown: ${delivered}`);
  await t.shot('alert-deliveries');
  await page.click(`a[href="#/budget/${BUDGET}?at=${alert.at_ms}"]`);
  await t.ready('budget', `#/budget/${BUDGET}?at=${alert.at_ms}`);
  await page.waitForSelector('#budget-chart canvas');
  await t.open('#/alerts/dead-letters', 'alerts');
  await t.shot('dead-letters');

  await t.open('#/alerts/channels', 'alerts');
  await page.click('button[aria-label="Delete browser-hook"]');
  await Promise.all([page.waitForNavigation(), page.click('td button.danger')]);
  await t.ready('alerts', '#/alerts/channels');
  assert(!(await api('GET', '/v1/channels')).some((c) => c.id === 'browser-hook'), 'the channel is deleted');

  // An anomaly raised by injected history: listed, and linked into its scope's chart and its
  // budget's chart at its hour.
  await api('POST', '/v1/budgets', { id: 'spiky', scopes: ['team:spiky'], limit_usd: '10000', period: 'monthly' });
  const spikeMs = await importSpike('team:spiky');
  const pass = await api('GET', '/v1/anomalies?scope=team:spiky');
  const found = pass.anomalies.find((a) => a.metric === 'spend');
  assert(found && found.hour_start_ms === spikeMs && found.direction === 'up', `the API finds the spike: ${JSON.stringify(pass)}`);
  await t.open('#/anomalies', 'anomalies');
  const rows = await page.$$eval('main tbody tr', (trs) => trs.map((tr) => tr.innerText));
  assert(rows.some((row) => row.includes('team:spiky') && row.includes('gpt-4o') && row.includes('spend above usual')), `the page lists it: ${rows}`);
  await t.shot('anomalies');
  const chartLink = `a[aria-label^="Spend chart of team:spiky on gpt-4o"]`;
  await page.click(chartLink);
  await t.ready('reports');
  await page.waitForSelector('#report-chart canvas');
  const spikeRow = await page.$$eval('#report-out tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.innerText)));
  const spikeHour = spikeRow.find((cells) => Date.parse(cells[0]) === spikeMs);
  assert(spikeHour && Number(spikeHour[2]) === 20, `the chart's table has the spike's hour at $20: ${JSON.stringify(spikeRow.slice(-5))}`);
  await t.shot('anomaly-scope-chart');
  await t.open('#/anomalies', 'anomalies');
  await page.click(`a[href="#/budget/spiky?at=${spikeMs}"]`);
  await t.ready('budget', `#/budget/spiky?at=${spikeMs}`);
  await page.waitForSelector('#budget-chart canvas');
  await t.shot('anomaly-budget-chart');
  await t.open('#/overview', 'overview');
  const recent = await t.text('section[aria-label="Recent anomalies"]');
  assert(recent.includes('team:spiky') && /spend above usual on gpt-4o from \d/.test(recent), `the overview lists it: ${recent}`);

  // Chargeback by team and the invoice of the spiky team, as the API computes them; the PDF
  // is a real PDF with the same amount.
  await t.open('#/reports/chargeback', 'reports');
  const from = await page.$eval('#r-from', (e) => e.value);
  const to = await page.$eval('#r-to', (e) => e.value);
  const tz = await page.$eval('#r-tz', (e) => e.value);
  const cb = await api('GET', `/v1/reports/chargeback?from=${from}&to=${to}&tz=${encodeURIComponent(tz)}&by=team&allocation=unallocated`);
  const cbRows = await page.$$eval('#report-out tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.innerText)));
  const spiky = cb.rows.find((x) => x.key === 'spiky');
  assert(spiky && cbRows.some((c) => c[0] === 'spiky' && c[3] === spiky.cost_usd), `chargeback shows the API's ${JSON.stringify(spiky)}: ${JSON.stringify(cbRows)}`);
  await t.shot('report-chargeback');
  await t.open('#/reports/invoice?scope=team:spiky', 'reports');
  await page.waitForSelector('section[aria-label="Invoice"]');
  const inv = await api('GET', `/v1/reports/invoice?from=${from}&to=${to}&tz=${encodeURIComponent(tz)}&scope=team:spiky&markup_pct=0&fee_usd=0&billing=pay_as_you_go`);
  const shown = await t.text('section[aria-label="Invoice"]');
  const due = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(Number(inv.amount_due_usd));
  assert(inv.amount_due_nanos > 0 && shown.includes(inv.number) && shown.includes(`amount due ${due}`), `the invoice shows ${inv.number}, ${due}: ${shown}`);
  await t.shot('report-invoice');
  await page.click('#invoice-pdf');
  const pdfName = `invoice-team_spiky-${from}.pdf`;
  const pdf = await t.download(pdfName);
  assert(pdf.subarray(0, 5).toString() === '%PDF-', 'the download is a PDF');
  const text = execFileSync('pdftotext', ['-layout', join(t.downloads, pdfName), '-']).toString();
  assert(text.includes(inv.number) && text.includes('team:spiky'), `pdftotext reads the invoice: ${text.slice(0, 400)}`);
  t.check('end');
  console.log('pages: every step passed');
} catch (err) {
  await t.shot('pages-failure').catch(() => {});
  console.log('page at failure:\n' + await page.$eval('main', (m) => m.innerText).catch(() => '?'));
  throw err;
} finally {
  await t.close();
  hook.server.close();
}
