// chart.js: time-series charts with uPlot (loaded by index.html from /vendor as window.uPlot),
// each followed by the same numbers as a table (for screen readers, keyboard users and anyone
// who wants the figures). Buckets the API leaves out (no requests) are drawn as zeros.
import { h, uid } from './dom.js';
import { timeText } from './ui.js';

const STEP = { hour: 3600, day: 86400 };

// Every bucket start from `from` (inclusive) to `to` (exclusive), unix seconds.
export function buckets(from, to, bucket) {
  const step = STEP[bucket] || 3600;
  const out = [];
  let t = Math.floor(new Date(from).getTime() / 1000);
  const end = Math.floor(new Date(to).getTime() / 1000);
  for (; t < end && out.length < 5000; t += step) out.push(t);
  return out;
}

// Sums `points` ({ts, ...}, maybe several per ts when grouped) into one value per bucket.
export function fill(xs, points, field) {
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = xs.map(() => 0);
  for (const p of points || []) {
    const i = at.get(Math.floor(new Date(p.ts).getTime() / 1000));
    if (i !== undefined && typeof p[field] === 'number') ys[i] += p[field];
  }
  return ys;
}

const COLORS = ['#1d4ed8', '#b42318', '#1a7f37', '#8250df', '#bf8700', '#0e7490'];

// timeChart({title, xs, series: [{label, values, format?}], height, id}) -> <figure>
export function timeChart({ title, xs, series, height = 220, id = uid('chart'), bucket = 'hour' }) {
  const plotEl = h('div', { class: 'chart', role: 'img', 'aria-label': `${title}: chart; the same numbers are in the table below it` });
  const total = series.map((s) => s.values.reduce((a, b) => a + b, 0));
  const fmtX = (x) => {
    const t = timeText(new Date(x * 1000).toISOString());
    return bucket === 'day' ? t.slice(0, 10) : t.slice(0, 16);
  };
  const rows = xs.map((x, i) => ({ x, vals: series.map((s) => s.values[i]) })).filter((r) => r.vals.some((v) => v));
  const tableEl = rows.length
    ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `${title}: data` },
      h('table', { class: 'chart-data' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, bucket === 'day' ? 'Day' : 'Hour'),
          series.map((s) => h('th', { scope: 'col', class: 'num' }, s.label)))),
        h('tbody', null, rows.map((r) => h('tr', { 'data-ts': String(r.x) },
          h('th', { scope: 'row' }, h('time', { datetime: new Date(r.x * 1000).toISOString() }, fmtX(r.x))),
          r.vals.map((v, i) => h('td', { class: 'num' }, series[i].format ? series[i].format(v) : String(v))))))))
    : h('p', { class: 'muted' }, 'No requests in this period.');
  const fig = h('figure', { class: 'card chart-card', id, 'data-totals': JSON.stringify(total) },
    h('figcaption', null, h('h2', null, title)),
    plotEl,
    h('details', { class: 'chart-table' }, h('summary', null, 'Show the numbers'), tableEl));

  let plot = null;
  let ro = null;
  const make = (width) => {
    if (!window.uPlot) {
      plotEl.replaceChildren(h('p', { class: 'chart-fallback' }, 'The chart library did not load; the numbers are below.'));
      return;
    }
    plot = new window.uPlot({
      width, height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => (series[0].axis ? series[0].axis(v) : v)) }],
      series: [{ value: (u, v) => (v == null ? '' : fmtX(v)) },
        ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: xs.length < 60 }, value: (u, v) => (v == null ? '' : s.format ? s.format(v) : String(v)) }))],
    }, [xs, ...series.map((s) => s.values)], plotEl);
  };
  ro = new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w <= 0) return;
    if (!plot) make(w);
    else if (Math.abs(plot.width - w) > 1) plot.setSize({ width: w, height });
  });
  ro.observe(plotEl);
  fig.destroy = () => { if (ro) ro.disconnect(); if (plot) plot.destroy(); plot = null; };
  return fig;
}
