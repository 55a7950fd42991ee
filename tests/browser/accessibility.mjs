// Every page of the dashboard audited by axe-core (serious and critical violations fail) in
// the light and the dark theme (the system's choice, emulated: the page follows it without a
// reload), laid out at laptop (1280 px) and phone (375 px) width without overflowing, with a
// screenshot of each; and the navigation worked from the keyboard. Run by
// tests/tests/dashboard.rs after pages.mjs (whose alerts and anomalies fill the pages).
import { launch, api, assert, CP, TOKEN } from './harness.mjs';
import { audit, focused, fitsWidth } from './a11y.mjs';

const NAV = ['#/overview', '#/budgets', '#/profiles', '#/reports', '#/anomalies', '#/alerts', '#/calculator'];

const t = await launch();
const { page } = t;
try {
  // Something on every page: a budget, a custom profile, a channel; the alerts and anomalies
  // pages.mjs raised.
  await api('POST', '/v1/budgets', { id: 'a11y', scopes: ['team:a11y'], limit_usd: '5', period: 'monthly', description: 'For the audit' });
  await api('PUT', '/v1/profiles/a11y-tier', { id: 'a11y-tier', description: 'For the audit', settings: { limit_usd: '50', period: 'weekly' } });
  await api('POST', '/v1/channels', { id: 'a11y-mail', min_severity: 'warning',
    target: { kind: 'email', host: 'smtp.example.com', from: 'Tollgate <alerts@example.com>', to: ['finops@example.com'] } });
  const alerts = await api('GET', '/v1/alerts?limit=1');
  assert(alerts.length, 'pages.mjs left alerts to show');

  for (const scheme of ['light', 'dark']) {
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    await page.goto(CP + '/ui/', { waitUntil: 'load' });
    await page.evaluate(() => sessionStorage.clear());
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('#token');
    assert(await page.evaluate(() => document.documentElement.dataset.theme) === scheme, `the ${scheme} system theme is followed`);
    await audit(page, `login (${scheme})`);
    await t.shot(`a11y-login-${scheme}`);
  }
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  await page.keyboard.type(TOKEN);
  await Promise.all([t.ready('overview'), page.keyboard.press('Enter')]);

  // The keyboard: the skip link first, then every page of the navigation in order, each with a
  // focus ring; Enter follows a link; the theme toggle works from the keyboard.
  await page.reload({ waitUntil: 'load' });
  await t.ready('overview');
  await page.keyboard.press('Tab');
  const skip = await focused(page);
  assert(skip.text === 'Skip to content' && skip.visible && skip.ring, `the skip link comes first, shown with a ring: ${JSON.stringify(skip)}`);
  for (const href of NAV) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    assert(f.href === href && f.ring, `Tab reaches ${href} with a focus ring: ${JSON.stringify(f)}`);
  }
  await page.keyboard.press('Tab');
  assert((await focused(page)).id === 'theme', 'then the theme toggle');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
  await t.ready('overview');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  await t.ready('overview');
  await page.evaluate(() => localStorage.clear());
  await page.keyboard.down('Shift');
  for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
  await page.keyboard.up('Shift');
  assert((await focused(page)).href === '#/anomalies', 'Shift+Tab goes back');
  await Promise.all([t.ready('anomalies', '#/anomalies'), page.keyboard.press('Enter')]);
  assert(await page.$eval('nav a[href="#/anomalies"]', (a) => a.getAttribute('aria-current') === 'page'), 'the current page is marked in the navigation');

  const pages = [
    ['overview', '#/overview'], ['budgets', '#/budgets'], ['budgets', '#/budgets/new', 'budget-form'],
    ['budgets', '#/budgets/edit/a11y', 'budget-edit'], ['budget', '#/budget/a11y', 'budget-detail'],
    ['profiles', '#/profiles'], ['profiles', '#/profiles/new', 'profile-form'], ['profiles', '#/profiles/edit/a11y-tier', 'profile-edit'],
    ['anomalies', '#/anomalies'], ['alerts', '#/alerts'], ['alerts', `#/alerts/deliveries/${encodeURIComponent(alerts[0].id)}`, 'alert-deliveries'],
    ['alerts', '#/alerts/dead-letters', 'dead-letters'], ['alerts', '#/alerts/channels', 'channels'], ['alerts', '#/alerts/channels/new', 'channel-form'],
    ['reports', '#/reports/spend', 'report-spend'], ['reports', '#/reports/chargeback', 'report-chargeback'],
    ['reports', '#/reports/invoice?scope=team:spiky', 'report-invoice'], ['calculator', '#/calculator'],
  ];
  let notes = 0;
  for (const [scheme, width] of [['light', 1280], ['dark', 1280], ['light', 375]]) {
    await page.setViewport({ width, height: width > 400 ? 900 : 812 });
    await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
    await page.waitForFunction((s) => document.documentElement.dataset.theme === s, {}, scheme);
    for (const [name, hash, label = name] of pages) {
      await t.open(hash, name);
      // Charts draw after the page is ready; the audit and the screenshot wait for them.
      await page.waitForFunction(() => [...document.querySelectorAll('.chart')].every((c) => c.querySelector('canvas')));
      const tag = `${label}-${width < 400 ? 'phone' : scheme}`;
      if (width < 400) await fitsWidth(page, tag);
      else notes += await audit(page, tag);
      await t.shot(`a11y-${tag}`);
    }
  }
  t.check('end');
  console.log(`accessibility: ${pages.length} pages audited in both themes (${notes} minor or moderate findings printed), laid out at 375 px`);
} catch (err) {
  await t.shot('a11y-failure').catch(() => {});
  console.log('page at failure:\n' + await page.$eval('main', (m) => m.innerText).catch(() => '?'));
  throw err;
} finally {
  await t.close();
}
