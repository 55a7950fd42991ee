// The browser side of the dashboard tests: Debian's Chromium, headless, driven by
// puppeteer-core, with every console error, page error and failed request recorded, so a
// page that logs one fails the test (unless the step expects exactly that failure).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import puppeteer from 'puppeteer-core';

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/tests/dashboard.rs sets it)`);
  return v;
};

export const CP = env('TOLLGATE_CP_URL');
export const GATEWAY = env('TOLLGATE_GATEWAY_URL');
export const TOKEN = env('TOLLGATE_ADMIN_TOKEN');
export const SHOTS = env('TOLLGATE_SCREENSHOTS');

export function assert(cond, message) {
  if (!cond) throw new Error('assertion failed: ' + message);
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'tollgate-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: env('TOLLGATE_CHROMIUM'),
    // The flags are given in full (headless among them) so the run is what the docs say.
    headless: false,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`],
    defaultViewport: { width: 1280, height: 900 },
  });
  const problems = [];
  let expected = [];
  const expectedMatch = (text) => expected.some((re) => re.test(text));
  /** Records every console error, page error and failed request of `p`. */
  const watch = (p) => {
    p.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = `${m.text()} @ ${m.location()?.url || ''}`;
      if (!expectedMatch(text)) problems.push('console error: ' + text);
    });
    p.on('pageerror', (e) => problems.push('page error: ' + (e.stack || e.message || e)));
    p.on('requestfailed', (r) => {
      const text = `${r.method()} ${r.url()}: ${r.failure()?.errorText} (${r.resourceType()}, answered ${r.response()?.status() ?? 'nothing'})`;
      if (!expectedMatch(text)) problems.push('request failed: ' + text);
    });
    p.on('response', (r) => {
      if (r.status() < 400) return;
      const text = `${r.request().method()} ${r.url()} answered ${r.status()}`;
      if (!expectedMatch(text)) problems.push('failed request: ' + text);
    });
    return p;
  };
  const page = watch(await browser.newPage());
  const downloads = mkdtempSync(join(tmpdir(), 'tollgate-downloads-'));
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });

  const t = {
    browser, page, downloads,
    /** Fails with everything wrong so far. */
    check(step) {
      if (problems.length) throw new Error(`${step}:\n  ${problems.join('\n  ')}`);
    },
    /** Runs `fn` allowing failures matching `patterns` (a step that provokes an API error). */
    async expecting(patterns, fn) {
      expected = patterns;
      try { return await fn(); } finally { expected = []; }
    },
    /** Opens a route and waits for its page to finish; a page that ends in error fails. */
    async open(hash, name, p = page) {
      await p.evaluate((h) => { location.hash = h; }, hash);
      return t.ready(name, hash, p);
    },
    /** Waits for page `name` to finish (at route `hash`, when given: a page replacing one of
     *  the same name, a list after its form, is told apart by its route). */
    async ready(name, hash, p = page) {
      const at = hash ? `[data-route="${hash.replace(/"/g, '\\"')}"]` : '';
      await p.waitForSelector(`main[data-page="${name}"]${at}[data-state="ready"], main[data-page="${name}"]${at}[data-state="error"]`, { timeout: 20000 });
      const state = await p.$eval('main', (m) => m.dataset.state);
      if (state === 'error') throw new Error(`page ${name} failed: ` + await p.$eval('main', (m) => m.innerText));
      t.check(`page ${name}`);
    },
    async shot(name) {
      // The whole page, by a viewport as tall as it: puppeteer's fullPage capture clips a
      // narrow page's width by the scroll bar's (a 375 px layout came out 360 px wide).
      const viewport = page.viewport();
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      if (height > viewport.height) await page.setViewport({ ...viewport, height });
      await page.screenshot({ path: join(SHOTS, `${name}.png`) });
      if (height > viewport.height) await page.setViewport(viewport);
      console.log(`screenshot ${join(SHOTS, name + '.png')}`);
    },
    async text(selector) { return page.$eval(selector, (e) => e.innerText); },
    /** Another tab, watched like the first, logged in through the form. */
    async tab() {
      const p = watch(await browser.newPage());
      await p.setViewport({ width: 1280, height: 900 });
      await p.goto(CP + '/ui/', { waitUntil: 'load' });
      await p.waitForSelector('#token');
      await p.type('#token', TOKEN);
      await Promise.all([p.waitForSelector('main[data-page="overview"][data-state="ready"]', { timeout: 20000 }), p.click('form button[type="submit"]')]);
      return p;
    },
    /** Waits for a download named `name` to be complete and returns its bytes. */
    async download(name) {
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline) {
        const files = readdirSync(downloads);
        if (files.includes(name) && !files.some((f) => f.endsWith('.crdownload'))) return readFileSync(join(downloads, name));
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no download ${name} in ${downloads}: ${readdirSync(downloads)}`);
    },
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
      rmSync(downloads, { recursive: true, force: true });
    },
  };
  return t;
}

/** The admin API, called directly (to check what a page shows against the API's figures). */
export async function api(method, path, body) {
  const resp = await fetch(CP + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls `probe` until it returns a truthy value, for at most `ms`. */
export async function until(what, probe, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not so after ${ms} ms (last: ${JSON.stringify(last)})`);
}

/** One governed chat call through Envoy, as a client of `team` sends it to OpenAI (the mock
 *  answers with the recorded `fixture`). node:http, because fetch may not set `Host`. */
export function governedCall(team, { model = 'gpt-4o-mini', fixture = 'chat.json' } = {}) {
  const u = new URL('/v1/chat/completions', GATEWAY);
  const body = JSON.stringify({ model, stream: false, max_tokens: 256,
    messages: [{ role: 'user', content: 'Summarise the quarter.' }] });
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { host: 'api.openai.com', 'x-tollgate-team': team, 'x-mock-fixture': fixture,
        'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
