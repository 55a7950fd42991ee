// Accessibility checks of the dashboard's pages: axe-core's audit (pinned in package-lock.json,
// run inside the page), keyboard navigation, and layout at phone width.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { assert } from './harness.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Impacts that fail the test; `moderate` and `minor` are printed only. */
const FAILING = new Set(['serious', 'critical']);

/**
 * Runs axe-core on the page as it is now (every rule axe runs by default: WCAG 2.x A and AA,
 * colour contrast among them, and its best practices). Serious or critical violations fail,
 * each named with the elements at fault.
 */
export async function audit(page, name) {
  // Evaluated through the DevTools protocol, which the page's Content-Security-Policy (no
  // inline script) does not govern: the page itself is tested as served.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`) }));
  });
  const bad = result.filter((v) => FAILING.has(v.impact));
  for (const v of result.filter((x) => !FAILING.has(x.impact))) console.log(`axe ${name}: ${v.impact} ${v.id} (${v.help}) ${v.nodes.join(' | ')}`);
  assert(!bad.length, `axe finds serious or critical violations on ${name}:\n` +
    bad.map((v) => `  ${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.join('\n    ')}`).join('\n'));
  return result.length;
}

/** What has the keyboard focus: its tag, id, text and whether a focus ring is drawn. */
export async function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    const s = getComputedStyle(e);
    return { tag: e.tagName.toLowerCase(), id: e.id, text: (e.innerText || e.value || '').trim(), href: e.getAttribute('href'),
      ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2, visible: e.getBoundingClientRect().left >= 0 };
  });
}

/** The page fits the viewport's width: nothing but a table's own scroll box is wider. */
export async function fitsWidth(page, name) {
  // The layout's width, the vertical scroll bar left out (innerWidth counts it).
  const { scroll, inner, wide } = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    return {
      scroll: document.documentElement.scrollWidth,
      inner: width,
      wide: [...document.querySelectorAll('body *')].filter((e) => !e.closest('.scroll') && e.getBoundingClientRect().right > width + 0.5)
        .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`),
    };
  });
  assert(scroll <= inner && !wide.length, `${name} is wider than ${inner} px (${scroll} px): ${wide.join(', ')}`);
}
