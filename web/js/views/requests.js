// #/requests: the request log, one row per usage event, newest first. Filters (tenant, key,
// model, provider, endpoint, status, time range) and the cursor live in the URL, so a view can be
// bookmarked and shared.
import { h, replace } from '../dom.js';
import { table, pager, alert, badge, time, empty, pageHeader, filters, money, num, ms, DASH } from '../ui.js';
import { localInput } from './keys.js';
import { providerNames } from '../report.js';

const FILTERS = ['tenant_id', 'key_id', 'model', 'provider', 'endpoint', 'status', 'from', 'to'];
// the endpoints a data plane records (GET /api/v1/requests?endpoint= takes these)
export const ENDPOINTS = ['chat.completions', 'completions', 'embeddings', 'messages', 'responses'];

export async function render(root, ctx, params, query) {
  const { api, me } = ctx;
  ctx.setTitle('Request log');
  const platform = me.is_platform_admin;
  const tid = query.tenant_id === 'all' && platform ? '' : (query.tenant_id || (ctx.tenant ? ctx.tenant.tenant_id : ''));
  if (!tid && !platform) {
    root.append(pageHeader('Request log'), empty('You are not a member of any tenant yet, so there are no requests to show.'));
    return null;
  }
  const q = { ...query, tenant_id: tid || (platform ? 'all' : '') };
  const keys = tid ? await api.get(`/tenants/${tid}/keys`, { limit: 200 }).then((r) => r.data).catch(() => []) : [];
  const keyName = new Map(keys.map((k) => [k.id, k.name]));
  const provName = await providerNames(api);
  const provOptions = [...provName].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => ({ value: id, label: name }));
  if (q.provider && !provName.has(q.provider)) provOptions.push({ value: q.provider, label: q.provider });
  const tenantOptions = [...(platform ? [{ value: 'all', label: 'All tenants' }] : []),
    ...ctx.tenants.map((t) => ({ value: t.tenant_id, label: t.name }))];

  const listEl = h('div', { id: 'requests-list' });
  root.append(pageHeader('Request log'), filters({
    fields: [
      ...(tenantOptions.length > 1 ? [{ name: 'tenant_id', label: 'Tenant', type: 'select', value: tid || 'all', options: tenantOptions }] : []),
      { name: 'key_id', label: 'Key', type: tid ? 'select' : 'text', value: q.key_id || '',
        options: [{ value: '', label: 'Any key' }, ...keys.map((k) => ({ value: k.id, label: `${k.name} (…${k.last4})` })),
          ...(q.key_id && !keyName.has(q.key_id) ? [{ value: q.key_id, label: q.key_id }] : [])],
        placeholder: 'key id', pattern: '[0-9a-fA-F-]{36}', patternMessage: 'A key id is a UUID.' },
      { name: 'model', label: 'Model', value: q.model || '', placeholder: 'e.g. gpt-4o-mini', maxlength: 512 },
      provOptions.length
        ? { name: 'provider', label: 'Provider', type: 'select', value: q.provider || '', options: [{ value: '', label: 'Any provider' }, ...provOptions] }
        : { name: 'provider', label: 'Provider', value: q.provider || '', placeholder: 'provider id', maxlength: 512 },
      { name: 'endpoint', label: 'Endpoint', type: 'select', value: q.endpoint || '',
        options: [{ value: '', label: 'Any endpoint' }, ...ENDPOINTS.map((e) => ({ value: e, label: e })),
          ...(q.endpoint && !ENDPOINTS.includes(q.endpoint) ? [{ value: q.endpoint, label: q.endpoint }] : [])] },
      { name: 'status', label: 'Status', type: 'select', value: q.status || '',
        options: [{ value: '', label: 'Any' }, { value: '2xx', label: '2xx success' }, { value: '4xx', label: '4xx client errors' },
          { value: '5xx', label: '5xx server errors' }, { value: '200', label: '200' }, { value: '401', label: '401' }, { value: '429', label: '429' }] },
      { name: 'from', label: 'From', type: 'datetime-local', value: localInput(q.from) },
      { name: 'to', label: 'To', type: 'datetime-local', value: localInput(q.to),
        validate: (v, all) => (v && all.from && new Date(v) <= new Date(all.from) ? '"To" must be after "From".' : null) },
    ],
    reset: '#/requests',
    onApply: (v) => ctx.setQuery({
      tenant_id: v.tenant_id ?? tid, key_id: v.key_id, model: v.model.trim(), provider: v.provider.trim(), endpoint: v.endpoint, status: v.status, from: v.from, to: v.to,
    }),
  }), listEl);

  const apiQuery = { limit: 50, cursor: q.cursor };
  for (const f of FILTERS) if (q[f] && !(f === 'tenant_id' && q[f] === 'all')) apiQuery[f] = q[f];
  let page;
  try {
    page = await api.get('/requests', apiQuery);
  } catch (e) {
    if (e.status === 404 && (!tid || ctx.tenants.some((t) => t.tenant_id === tid))) {
      replace(listEl, alert('The request log needs GET /api/v1/requests, which this control plane does not serve yet.', 'info'));
      return null;
    }
    if (e.status === 400 && e.field) {
      replace(listEl, alert(`The filter "${e.field}" is not valid: ${e.message}`));
      return null;
    }
    throw e;
  }
  const here = (extra) => {
    const p = new URLSearchParams();
    for (const f of FILTERS) if (q[f]) p.set(f, q[f]);
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    const s = p.toString();
    return `#/requests${s ? `?${s}` : ''}`;
  };
  const filtered = FILTERS.some((f) => f !== 'tenant_id' && q[f]);
  const list = table({
      caption: 'Requests, newest first',
      columns: [
        { label: 'Time', value: (r) => time(r.ts) },
        { label: 'Key', value: (r) => (r.key_id ? h('a', { href: `#/t/${r.tenant_id}/keys/${r.key_id}` }, r.key_name || keyName.get(r.key_id) || r.key_id.slice(0, 8)) : 'no key') },
        { label: 'Model', value: (r) => r.model },
        { label: 'Endpoint', value: (r) => r.endpoint || DASH },
        { label: 'Target', value: (r) => [r.provider && (provName.get(r.provider) || r.provider), r.upstream_model].filter(Boolean).join(' / ') },
        { label: 'Status', value: (r) => h('span', { title: r.error || null }, badge(String(r.status), r.status >= 400 ? 'error' : 'ok')) },
        { label: 'Latency', numeric: true, value: (r) => ms(r.latency_ms) },
        { label: 'Tokens in / out', numeric: true, value: (r) => `${num(r.prompt_tokens)} / ${num(r.completion_tokens)}` },
        { label: 'Cost', numeric: true, value: (r) => money(r.cost_usd) },
        { label: 'Cache', value: (r) => (r.cache_hit ? 'hit' : DASH) },
        { label: 'Stream', value: (r) => (r.streamed ? 'yes' : 'no') },
        { label: 'Error', value: (r) => r.error || '' },
      ],
      rows: page.data,
      empty: filtered
        ? empty('No request matches these filters.', h('a', { href: here({}).replace(/\?.*/, tid ? `?tenant_id=${tid}` : '') }, 'Clear the filters'))
        : empty('No requests yet. Requests appear here a few seconds after a data plane serves them with one of this tenant\'s keys.'),
    });
  if (list.classList.contains('table-wrap')) list.classList.add('wide'); // scrolls in its box on a phone
  replace(listEl, list,
    pager(page.next_cursor, { href: (c) => here({ cursor: c }) }, { first: q.cursor ? here({}) : null }));
  return null;
}
