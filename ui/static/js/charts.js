// Charts on uPlot (MIT, vendor/uPlot.iife.min.js, loaded before the modules). Each chart is a
// canvas labelled for screen readers; the figures it draws are also in a table on the page.

const palette = ['#0969da', '#bf3989', '#1a7f37', '#9a6700', '#8250df', '#cf222e', '#1b7c83', '#57606a'];

export function color(i) { return palette[i % palette.length]; }

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

const usdTick = (v) => (v === null ? '' : '$' + (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : Number(v.toPrecision(3)).toString()));

/**
 * A time chart in `el`. `x`: Unix seconds; `series`: [{label, values, color, dash, fill}];
 * `band`: [upperIndex, lowerIndex] (1-based series indexes) shaded between; `hlines`:
 * [{value, label, color}] drawn across (thresholds, limits); `bars`: draw series as bars;
 * `vlines`: [{value (Unix s), label}] drawn down (the moment an alert links to);
 * `xRange`: [from, to] in Unix seconds. `band` may be a list of such pairs.
 */
export function timeChart(el, { x, series, band, hlines = [], vlines = [], bars = false, label, height = 280, xRange }) {
  el.replaceChildren();
  el.setAttribute('role', 'img');
  el.setAttribute('aria-label', label);
  const fg = css('--fg'), grid = css('--line');
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
  const opts = {
    width: Math.max(280, el.clientWidth || 600),
    height,
    // The range asked for, not just the buckets that had spend (one bucket would fill it all).
    scales: { x: xRange ? { time: true, range: () => xRange } : { time: true } },
    axes: [axis, { ...axis, values: (u, vals) => vals.map(usdTick), size: 70 }],
    legend: { live: true },
    series: [{}, ...series.map((s) => ({
      label: s.label,
      stroke: s.color,
      width: s.width || 2,
      dash: s.dash,
      fill: s.fill,
      points: { show: s.points ?? false },
      paths: bars && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined,
      value: (u, v) => (v === null || v === undefined ? '—' : usdTick(v)),
    }))],
    bands: !band ? [] : (Array.isArray(band[0]) ? band : [band]).map((pair) => ({ series: pair, fill: css('--band') })),
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        for (const line of hlines) {
          const y = u.valToPos(line.value, 'y', true);
          if (!Number.isFinite(y) || y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
          ctx.save();
          ctx.strokeStyle = line.color || css('--muted');
          ctx.setLineDash([6, 4]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(u.bbox.left, y);
          ctx.lineTo(u.bbox.left + u.bbox.width, y);
          ctx.stroke();
          ctx.fillStyle = line.color || css('--muted');
          ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
          // At the right end, clear of the axis labels on the left.
          ctx.textAlign = 'right';
          ctx.fillText(line.label, u.bbox.left + u.bbox.width - 4 * devicePixelRatio, y - 4 * devicePixelRatio);
          ctx.restore();
        }
        for (const line of vlines) {
          const x = u.valToPos(line.value, 'x', true);
          if (!Number.isFinite(x)) continue;
          ctx.save();
          ctx.strokeStyle = css('--warn');
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillStyle = css('--warn');
          ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
          ctx.fillText(line.label, x + 4 * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
          ctx.restore();
        }
      }],
    },
  };
  // Threshold and limit lines stay in view even when spend is far below them.
  const top = Math.max(0, ...hlines.map((l) => l.value));
  if (top > 0) opts.scales.y = { range: (u, min, max) => [0, Math.max(max, top) * 1.08] };
  const chart = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
  const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(280, el.clientWidth), height }));
  resize.observe(el);
  return chart;
}
