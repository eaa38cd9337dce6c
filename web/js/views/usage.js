// #/usage: the usage explorer: a period, a bucket (hour/day) and an optional split (key, model,
// provider, endpoint, tenant), as a chart, a table and a CSV download. The CSV holds the report's
// points as the API gave them, so its columns add up to the API's totals. Whatever the split, the
// period's requests, tokens and spend per endpoint (chat.completions, messages, responses,
// embeddings...) are a click away, each linking to its requests in the request log.
import { h, replace } from '../dom.js';
import { table, alert, pageHeader, filters, money, num, ms, empty, section, DASH } from '../ui.js';
import { timeChart, buckets, fill } from '../chart.js';
import { FIELDS, iso, utcDayStart, sumUsd, providerNames } from '../report.js';
import { ENDPOINTS } from './requests.js';

const GROUPS = ['', 'key', 'model', 'provider', 'endpoint', 'tenant'];

function dateInput(ts) {
  const d = new Date(ts);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}`;
}

// One CSV field: quoted when it holds a comma, quote or line break; a leading = + - @ is
// prefixed with ' so a spreadsheet never runs it as a formula.
export function csvField(v) {
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(report, groupName = (g) => g) {
  const lat = report.series.some((p) => p.latency_p50_ms !== undefined);
  const cols = ['ts', ...(report.group_by ? ['group', 'group_name'] : []), ...FIELDS, ...(lat ? ['latency_p50_ms', 'latency_p95_ms'] : [])];
  const lines = [cols.join(',')];
  for (const p of report.series) {
    lines.push(cols.map((c) => csvField(c === 'group_name' ? groupName(p.group) : p[c])).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

export async function render(root, ctx, params, query) {
  const { api, me } = ctx;
  ctx.setTitle('Usage');
  const platform = me.is_platform_admin;
  const tid = query.tenant_id === 'all' && platform ? '' : (query.tenant_id || (ctx.tenant ? ctx.tenant.tenant_id : ''));
  if (!tid && !platform) {
    root.append(pageHeader('Usage'), empty('You are not a member of any tenant yet, so there is no usage to show.'));
    return null;
  }
  const bucket = query.bucket === 'hour' ? 'hour' : 'day';
  const groupBy = GROUPS.includes(query.group_by) ? query.group_by : '';
  const today = utcDayStart();
  const from = query.from || iso(new Date(today.getTime() - 6 * 86400000));
  const to = query.to || iso(new Date(today.getTime() + 86400000));
  const keys = tid ? await api.get(`/tenants/${tid}/keys`, { limit: 200 }).then((r) => r.data).catch(() => []) : [];
  const keyName = new Map(keys.map((k) => [k.id, k.name]));
  const tenantName = new Map(ctx.tenants.map((t) => [t.tenant_id, t.name]));
  const provName = groupBy === 'provider' ? await providerNames(api) : new Map();
  const tenantOptions = [...(platform ? [{ value: 'all', label: 'All tenants' }] : []), ...ctx.tenants.map((t) => ({ value: t.tenant_id, label: t.name }))];

  const out = h('div', { id: 'usage-report' });
  root.append(pageHeader('Usage'), filters({
    fields: [
      ...(tenantOptions.length > 1 ? [{ name: 'tenant_id', label: 'Tenant', type: 'select', value: tid || 'all', options: tenantOptions }] : []),
      ...(tid ? [{ name: 'key_id', label: 'Key', type: 'select', value: query.key_id || '',
        options: [{ value: '', label: 'Every key' }, ...keys.map((k) => ({ value: k.id, label: `${k.name} (…${k.last4})` })),
          ...(query.key_id && !keyName.has(query.key_id) ? [{ value: query.key_id, label: query.key_id }] : [])] }] : []),
      { name: 'from', label: 'From (UTC day)', type: 'date', required: true, value: dateInput(from) },
      { name: 'to', label: 'To (UTC day, inclusive)', type: 'date', required: true, value: dateInput(new Date(new Date(to).getTime() - 1)),
        validate: (v, all) => (v && all.from && v < all.from ? '"To" must not be before "From".' : null) },
      { name: 'bucket', label: 'Per', type: 'select', value: bucket, options: [{ value: 'day', label: 'Day' }, { value: 'hour', label: 'Hour' }] },
      { name: 'group_by', label: 'Split by', type: 'select', value: groupBy,
        options: [{ value: '', label: 'Nothing' }, { value: 'key', label: 'Key' }, { value: 'model', label: 'Model' }, { value: 'provider', label: 'Provider' },
          { value: 'endpoint', label: 'Endpoint' }, ...(platform ? [{ value: 'tenant', label: 'Tenant' }] : [])] },
    ],
    reset: '#/usage',
    onApply: (v) => ctx.setQuery({
      tenant_id: v.tenant_id ?? (query.tenant_id || null), key_id: v.key_id, bucket: v.bucket, group_by: v.group_by,
      from: `${v.from}T00:00:00Z`, to: iso(new Date(new Date(`${v.to}T00:00:00Z`).getTime() + 86400000)),
    }),
  }), out);

  let r;
  try {
    r = await api.get('/usage', { tenant_id: tid || undefined, key_id: query.key_id, from, to, bucket, group_by: groupBy || undefined });
  } catch (e) {
    if (e.status === 400) { replace(out, alert(`${e.message}${e.field ? ` (${e.field})` : ''}`)); return null; }
    throw e;
  }
  // the period per endpoint, on demand: the rollups have no endpoint, so this report sums the
  // period's events (bounded by the API) and a big tenant's month would slow every visit
  const requestsOf = (endpoint) => {
    const p = new URLSearchParams({ tenant_id: tid || 'all', ...(query.key_id ? { key_id: query.key_id } : {}), endpoint,
      from: new Date(r.from).toISOString(), to: new Date(r.to).toISOString() });
    return `#/requests?${p}`;
  };
  const endpointBody = h('div', null);
  const loadEndpoints = async () => {
    let byEndpoint;
    try {
      byEndpoint = await api.get('/usage', { tenant_id: tid || undefined, key_id: query.key_id, from, to, bucket: 'total', group_by: 'endpoint' });
    } catch (e) { // a period too long to sum (400) or anything else: said in the card, not the view
      replace(endpointBody, alert(`${e.message}${e.field ? ` (${e.field})` : ''}`));
      return;
    }
    replace(endpointBody, table({
      caption: 'Usage by endpoint',
      columns: [
        { label: 'Endpoint', value: (p) => (ENDPOINTS.includes(p.group) ? h('a', { href: requestsOf(p.group), title: `The ${p.group} requests of this period` }, p.group) : p.group || 'none') },
        { label: 'Requests', numeric: true, value: (p) => num(p.requests) },
        { label: 'Errors', numeric: true, value: (p) => num(p.errors) },
        { label: 'Prompt tokens', numeric: true, value: (p) => num(p.prompt_tokens) },
        { label: 'Completion tokens', numeric: true, value: (p) => num(p.completion_tokens) },
        { label: 'Cached tokens', numeric: true, value: (p) => num(p.cached_tokens) },
        { label: 'Spend', numeric: true, value: (p) => money(p.cost_usd) },
      ],
      rows: byEndpoint.series,
      rowProps: (p) => ({ 'data-endpoint': p.group || '' }),
      empty: empty('No requests in this period.'),
    }));
  };
  replace(endpointBody, h('p', null,
    h('button', { type: 'button', class: 'btn', id: 'usage-by-endpoint-load', onClick: () => { loadEndpoints(); } }, 'Show the numbers per endpoint'),
    ' ', h('span', { class: 'muted' }, 'chat.completions, messages, responses, embeddings: read from the period\'s requests.')));
  const endpointSection = h('section', { class: 'card', id: 'usage-by-endpoint', 'aria-labelledby': 'usage-by-endpoint-title' },
    h('h2', { id: 'usage-by-endpoint-title' }, 'By endpoint'), endpointBody);

  const groupName = (g) => {
    if (g === null || g === undefined) return groupBy === 'key' ? 'no key' : groupBy === 'tenant' ? 'no tenant' : 'none';
    if (groupBy === 'key') return keyName.get(g) || g;
    if (groupBy === 'tenant') return tenantName.get(g) || g;
    if (groupBy === 'provider') return provName.get(g) || g;
    return g;
  };
  const t = r.totals;
  const lat = t.latency_p50_ms !== undefined;
  const xs = buckets(r.from, r.to, r.bucket);
  const c1 = timeChart({ id: 'usage-chart', title: 'Requests', xs, bucket: r.bucket,
    series: [{ label: 'Requests', values: fill(xs, r.series, 'requests') }, { label: 'Errors', values: fill(xs, r.series, 'errors') }] });
  const c2 = timeChart({ id: 'usage-spend-chart', title: 'Spend', xs, bucket: r.bucket,
    series: [{ label: 'Spend (USD)', values: fill(xs, r.series, 'cost_usd'), format: money }] });

  const csv = toCsv(r, groupName);
  const blobUrl = URL.createObjectURL(new Blob([csv], { type: 'text/csv;charset=utf-8' }));
  const fname = `tollgate-usage-${dateInput(r.from)}-${dateInput(new Date(new Date(r.to).getTime() - 1))}${groupBy ? `-by-${groupBy}` : ''}.csv`;
  const csvCost = sumUsd(r.series.map((p) => p.cost_usd));

  replace(out,
    h('p', { class: 'muted' }, `From ${r.from} to ${r.to} (UTC, whole ${r.bucket}s), ${r.series.length} rows.`),
    h('dl', { class: 'stats', id: 'usage-totals' },
      h('div', { class: 'stat' }, h('dt', null, 'Requests'), h('dd', { 'data-field': 'requests' }, num(t.requests))),
      h('div', { class: 'stat' }, h('dt', null, 'Errors'), h('dd', { 'data-field': 'errors' }, num(t.errors))),
      h('div', { class: 'stat' }, h('dt', null, 'Prompt tokens'), h('dd', { 'data-field': 'prompt_tokens' }, num(t.prompt_tokens))),
      h('div', { class: 'stat' }, h('dt', null, 'Completion tokens'), h('dd', { 'data-field': 'completion_tokens' }, num(t.completion_tokens))),
      h('div', { class: 'stat' }, h('dt', null, 'Spend'), h('dd', { 'data-field': 'cost_usd' }, money(t.cost_usd))),
      h('div', { class: 'stat' }, h('dt', null, 'Latency p50 / p95'), h('dd', null, lat ? `${ms(t.latency_p50_ms)} / ${ms(t.latency_p95_ms)}` : DASH))),
    h('p', null, h('a', { class: 'btn', id: 'usage-csv', href: blobUrl, download: fname }, 'Download CSV'),
      ' ', h('span', { class: 'muted' }, `${r.series.length} rows; spend column adds up to ${money(csvCost)}.`)),
    r.series.length ? h('div', { class: 'grid grid-wide' }, c1, c2) : null,
    endpointSection,
    section('Table', table({
      caption: 'Usage per bucket',
      columns: [
        { label: r.bucket === 'day' ? 'Day (UTC)' : 'Hour (UTC)', value: (p) => (r.bucket === 'day' ? p.ts.slice(0, 10) : p.ts.slice(0, 16).replace('T', ' ')) },
        ...(groupBy ? [{ label: groupBy[0].toUpperCase() + groupBy.slice(1), value: (p) => (groupBy === 'key' && p.group && tid ? h('a', { href: `#/t/${tid}/keys/${p.group}` }, groupName(p.group)) : groupName(p.group)) }] : []),
        { label: 'Requests', numeric: true, value: (p) => num(p.requests) },
        { label: 'Errors', numeric: true, value: (p) => num(p.errors) },
        { label: 'Prompt tokens', numeric: true, value: (p) => num(p.prompt_tokens) },
        { label: 'Completion tokens', numeric: true, value: (p) => num(p.completion_tokens) },
        { label: 'Cached tokens', numeric: true, value: (p) => num(p.cached_tokens) },
        { label: 'Spend', numeric: true, value: (p) => money(p.cost_usd) },
        ...(lat ? [{ label: 'p50 / p95', numeric: true, value: (p) => `${ms(p.latency_p50_ms)} / ${ms(p.latency_p95_ms)}` }] : []),
      ],
      rows: r.series,
      empty: empty('No requests in this period. Pick a longer period, or send traffic through a data plane with one of the keys.'),
    })));
  return () => { URL.revokeObjectURL(blobUrl); c1.destroy(); c2.destroy(); };
}
