// #/ and #/overview: spend today and this month against the tenant's budgets, requests, error
// rate, latency percentiles, top keys and models, charts per hour or day, and (platform admins)
// the data planes. Every number comes from /api/v1/usage (the hourly rollups), never raw events.
import { h, replace } from '../dom.js';
import { money, num, pct, ms, alert, section, table, time, badge, empty, loading, DASH } from '../ui.js';
import { timeChart, buckets, fill } from '../chart.js';
import { RANGES, utcDayStart, utcMonthStart, iso, byGroup } from '../report.js';

export async function render(root, ctx, params, query) {
  ctx.setTitle('Overview');
  const { me, api } = ctx;
  const platform = me.is_platform_admin;
  const all = platform && (query.scope === 'all' || !ctx.tenant);
  const tenant = all ? null : ctx.tenant;
  const tid = tenant ? tenant.tenant_id : undefined;
  const rangeKey = RANGES[query.range] ? query.range : '24h';
  const range = RANGES[rangeKey];

  if (!tenant && !all) {
    root.append(h('h1', null, 'Overview'), empty('You are not a member of any tenant yet. Ask a tenant admin to add you; until then there is nothing to show.'));
    return null;
  }

  const scopeLinks = platform ? h('p', { class: 'scope' }, 'Showing: ',
    all ? h('strong', null, 'all tenants') : h('a', { href: `#/overview${qs({ scope: 'all', range: query.range, tenant_id: query.tenant_id })}` }, 'all tenants'),
    ctx.tenant ? [' · ', all ? h('a', { href: `#/overview${qs({ range: query.range, tenant_id: query.tenant_id })}` }, ctx.tenant.name) : h('strong', null, ctx.tenant.name)] : null) : null;
  const rangeNav = h('nav', { class: 'range-nav', 'aria-label': 'Chart period' }, h('ul', { class: 'inline-list' },
    Object.entries(RANGES).filter(([k]) => k !== '90d').map(([k, r]) => h('li', null, k === rangeKey
      ? h('a', { href: `#/overview${qs({ scope: query.scope, range: k, tenant_id: query.tenant_id })}`, 'aria-current': 'true' }, r.label)
      : h('a', { href: `#/overview${qs({ scope: query.scope, range: k, tenant_id: query.tenant_id })}` }, r.label)))));

  const statsEl = h('div', null, loading());
  const chartsEl = h('div', { class: 'charts' }, loading('Loading charts…'));
  const topEl = h('div', { class: 'grid' }, loading());
  const dpEl = platform ? h('div', null, loading()) : null;
  root.append(
    h('div', { class: 'page-header' }, h('h1', null, tenant ? `Overview — ${tenant.name}` : 'Overview — all tenants'), scopeLinks),
    statsEl, rangeNav, chartsEl, topEl,
    platform ? section('Data planes', dpEl) : null);

  const now = new Date();
  const dayStart = utcDayStart(now);
  const monthStart = utcMonthStart(now);
  const base = { tenant_id: tid };
  const usage = (q) => api.get('/usage', { ...base, ...q });
  // Top keys and models this month, ranked by the API (bucket=total&top=5: five points, however
  // many keys); a report that would read too many rollup rows is refused, then it is for today.
  const grouped = async (group_by) => {
    const top = { bucket: 'total', group_by, top: 5 };
    try {
      return { since: 'this month', r: await usage({ from: iso(monthStart), ...top }) };
    } catch (e) {
      if (e.status !== 400) throw e;
      return { since: 'today', r: await usage({ from: iso(dayStart), ...top }) };
    }
  };
  const [today, month, series, keysTop, modelsTop, budgets, dps] = await Promise.allSettled([
    usage({ from: iso(dayStart), bucket: 'day' }),
    usage({ from: iso(monthStart), bucket: 'day' }),
    usage({ from: iso(range.from()), bucket: range.bucket }),
    grouped('key'),
    grouped('model'),
    tid ? api.get(`/tenants/${tid}/budgets`, { limit: 200 }) : Promise.resolve({ data: [] }),
    platform ? api.get('/dataplanes') : Promise.resolve(null),
  ]);

  // ---- the numbers ----
  if (today.status === 'rejected' || month.status === 'rejected') {
    replace(statsEl, alert(today.reason || month.reason));
  } else {
    const t = today.value.totals;
    const m = month.value.totals;
    const tb = budgets.status === 'fulfilled' ? budgets.value.data.filter((b) => !b.key_id) : [];
    const daily = tb.find((b) => b.period === 'daily');
    const monthly = tb.find((b) => b.period === 'monthly');
    const spendStat = (label, id, spent, budget) => {
      const limit = budget ? Number(budget.limit_usd) : null;
      const used = budget && typeof budget.spent_usd === 'number' ? budget.spent_usd : spent;
      const frac = limit ? used / limit : null;
      return h('div', { class: 'stat', id },
        h('dt', null, label),
        h('dd', null, money(spent),
          budget ? h('span', { class: 'sub' }, `of ${money(limit)} budget (${pct(frac, 0)})`) : h('span', { class: 'sub' }, 'no budget set'),
          budget ? h('div', { class: ['meter', frac > 1 ? 'over' : ''], role: 'meter', 'aria-label': `${label} against the budget`, 'aria-valuemin': '0', 'aria-valuemax': String(limit), 'aria-valuenow': String(used) },
            h('span', { style: { width: `${Math.min(100, Math.round((frac || 0) * 100))}%` } })) : null));
    };
    const p50 = t.latency_p50_ms;
    const p95 = t.latency_p95_ms;
    replace(statsEl, h('dl', { class: 'stats', 'aria-label': 'Today and this month' },
      spendStat('Spend today (UTC)', 'stat-spend-today', t.cost_usd, daily),
      spendStat('Spend this month', 'stat-spend-month', m.cost_usd, monthly),
      h('div', { class: 'stat', id: 'stat-requests' }, h('dt', null, 'Requests today'),
        h('dd', null, num(t.requests), h('span', { class: 'sub' }, `${num(m.requests)} this month`))),
      h('div', { class: 'stat', id: 'stat-errors' }, h('dt', null, 'Error rate today'),
        h('dd', null, t.requests ? pct(t.errors / t.requests) : DASH, h('span', { class: 'sub' }, `${num(t.errors)} errors`))),
      h('div', { class: 'stat', id: 'stat-latency' }, h('dt', null, 'Latency today p50 / p95'),
        h('dd', null, p50 === undefined ? DASH : `${ms(p50)} / ${ms(p95)}`,
          p50 === undefined ? h('span', { class: 'sub' }, 'not reported by this server') : null))));
  }

  // ---- charts ----
  const cleanups = [];
  if (series.status === 'rejected') {
    replace(chartsEl, alert(series.reason));
  } else {
    const r = series.value;
    const xs = buckets(r.from, r.to, r.bucket);
    const c1 = timeChart({ id: 'chart-requests', title: `Requests — ${range.label.toLowerCase()}`, xs, bucket: r.bucket,
      series: [{ label: 'Requests', values: fill(xs, r.series, 'requests') }, { label: 'Errors', values: fill(xs, r.series, 'errors') }] });
    const c2 = timeChart({ id: 'chart-spend', title: `Spend — ${range.label.toLowerCase()}`, xs, bucket: r.bucket,
      series: [{ label: 'Spend (USD)', values: fill(xs, r.series, 'cost_usd'), format: money }] });
    cleanups.push(c1.destroy, c2.destroy);
    replace(chartsEl, h('div', { class: 'grid grid-wide' }, c1, c2));
  }

  // ---- top keys and models ----
  const keyName = new Map();
  if (keysTop.status === 'fulfilled' && tid) {
    const top = byGroup(keysTop.value.r.series).slice(0, 5).filter((g) => g.group);
    await Promise.all(top.map(async (g) => {
      try { keyName.set(g.group, (await api.get(`/tenants/${tid}/keys/${g.group}`)).name); } catch { /* deleted key */ }
    }));
  }
  const topTable = (res, what, label) => {
    if (res.status === 'rejected') return section(`Top ${what}`, alert(res.reason));
    const rows = byGroup(res.value.r.series).slice(0, 5);
    return section(`Top ${what} ${res.value.since}`, table({
      caption: `Top ${what}`,
      columns: [
        { label, value: label === 'Key' ? (g) => keyCell(g.group) : (g) => g.group ?? 'refused before routing' },
        { label: 'Requests', numeric: true, value: (g) => num(g.requests) },
        { label: 'Errors', numeric: true, value: (g) => num(g.errors) },
        { label: 'Spend', numeric: true, value: (g) => money(g.cost_usd) },
      ],
      rows,
      empty: `No requests ${res.value.since} yet. Traffic appears here once a data plane has served a request with a key.`,
    }));
  };
  const keyCell = (id) => {
    if (!id) return 'no key (refused before a key was known)';
    const name = keyName.get(id) || id.slice(0, 8);
    return tid ? h('a', { href: `#/t/${tid}/keys/${id}` }, name) : name;
  };
  replace(topEl, topTable(keysTop, 'keys', 'Key'), topTable(modelsTop, 'models', 'Model'));

  // ---- data planes ----
  if (dpEl) {
    if (dps.status === 'rejected') replace(dpEl, alert(dps.reason));
    else {
      replace(dpEl, table({
        caption: 'Data planes',
        columns: [
          { label: 'Data plane', value: (d) => d.id },
          { label: 'Host', value: (d) => d.host },
          { label: 'Version', value: (d) => d.version },
          { label: 'Snapshot version', numeric: true, value: (d) => (d.snapshot_version ?? DASH) },
          { label: 'Last contact', value: (d) => time(d.last_seen) },
          { label: 'State', value: (d) => (d.live ? badge('live') : badge('stale')) },
        ],
        rows: dps.value.data,
        empty: 'No data plane has contacted this control plane yet. Start tollgate-data with --control-url set to this server and the data-plane token.',
      }));
    }
  }
  return () => cleanups.forEach((f) => f());
}

function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}
