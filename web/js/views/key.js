// #/t/:tid/keys/:kid: one key: its details, edit (models, limits, expiry), its budgets, rotate,
// revoke (with confirmation), delete, and its own usage — so a customer team can serve itself.
import { h, replace } from '../dom.js';
import { form, table, alert, notice, badge, time, secretOnce, confirm, pageHeader, section, money, num, pct, ms, empty, DASH } from '../ui.js';
import { keyFields, routeAliases } from './keys.js';
import { timeChart, buckets, fill } from '../chart.js';
import { RANGES, iso } from '../report.js';

export async function render(root, ctx, params, query) {
  const { api, me } = ctx;
  const { tid, kid } = params;
  let key = await api.get(`/tenants/${tid}/keys/${kid}`);
  ctx.setTitle(`Key ${key.name}`);
  const isAdmin = ctx.can('admin', tid);
  const canManage = isAdmin || (ctx.can('write', tid) && key.owner_user_id === me.id);
  const cleanups = [];

  const head = h('div');
  const flash = h('div', { id: 'key-flash' });
  const details = h('div');
  const editArea = h('div');
  const budgetsArea = h('div');
  const usageArea = h('div');
  root.append(head, flash, details, usageArea, editArea, budgetsArea);

  const actions = () => {
    if (!canManage) return [];
    const out = [];
    if (key.status !== 'revoked') {
      out.push(h('button', { type: 'button', class: 'btn', id: 'rotate-key', onClick: rotate }, 'Rotate'));
      out.push(h('button', { type: 'button', class: 'btn btn-danger', id: 'revoke-key', onClick: revoke }, 'Revoke'));
    }
    out.push(h('button', { type: 'button', class: 'btn', id: 'delete-key', onClick: del }, 'Delete'));
    return out;
  };

  function drawHead() {
    replace(head,
      h('p', { class: 'breadcrumb' }, h('a', { href: `#/t/${tid}/keys` }, 'Keys'), ' / '),
      pageHeader(h('span', null, key.name, ' ', badge(key.status)), actions()));
    replace(details, section('Details', h('dl', { class: 'props', id: 'key-details' },
      h('dt', null, 'Key'), h('dd', null, h('code', null, `tg-…${key.last4}`)),
      h('dt', null, 'Status'), h('dd', { id: 'key-status' }, key.status),
      h('dt', null, 'Allowed models'), h('dd', null, key.models.length ? key.models.join(', ') : 'none (this key can call nothing)'),
      h('dt', null, 'Requests per minute'), h('dd', null, key.rpm_limit ?? 'no limit of its own'),
      h('dt', null, 'Tokens per minute'), h('dd', null, key.tpm_limit ?? 'no limit of its own'),
      h('dt', null, 'Expires'), h('dd', null, key.expires_at ? time(key.expires_at) : 'never'),
      h('dt', null, 'Owner'), h('dd', null, key.owner_user_id === me.id ? 'you' : h('code', null, key.owner_user_id)),
      h('dt', null, 'Created'), h('dd', null, time(key.created_at)),
      h('dt', null, 'Updated'), h('dd', null, time(key.updated_at)),
      key.revoked_at ? [h('dt', null, 'Revoked'), h('dd', null, time(key.revoked_at))] : null,
      h('dt', null, 'Id'), h('dd', null, h('code', null, key.id)))));
  }

  async function rotate() {
    const ok = await confirm(`Rotate "${key.name}"? A new secret is made and the current one stops working at once: every application using it must get the new one.`, { title: 'Rotate this key?', confirm: 'Rotate' });
    if (!ok) return;
    try {
      const r = await api.post(`/tenants/${tid}/keys/${kid}/rotate`);
      const { key: secret, ...rest } = r;
      key = rest;
      drawHead();
      replace(flash, section('New secret', secretOnce(secret, { label: 'The new key', what: 'key' })));
      flash.querySelector('.secret-value').focus();
    } catch (e) {
      replace(flash, alert(e));
    }
  }

  async function revoke() {
    const ok = await confirm(`Revoke "${key.name}"? Applications using it get 401 within seconds. This cannot be undone (create a new key instead).`, { title: 'Revoke this key?', confirm: 'Revoke' });
    if (!ok) return;
    try {
      key = await api.post(`/tenants/${tid}/keys/${kid}/revoke`);
      drawHead();
      replace(editArea);
      replace(flash, notice(`Key "${key.name}" is revoked.`));
      head.querySelector('h1').focus();
    } catch (e) {
      replace(flash, alert(e));
    }
  }

  async function del() {
    const ok = await confirm(`Delete "${key.name}"? It stops working, and its budgets are deleted with it; its past usage stays in reports.`, { title: 'Delete this key?', confirm: 'Delete' });
    if (!ok) return;
    try {
      await api.del(`/tenants/${tid}/keys/${kid}`);
      ctx.navigate(`/t/${tid}/keys`);
    } catch (e) {
      replace(flash, alert(e));
    }
  }

  drawHead();

  // ---- edit ----
  if (canManage && key.status !== 'revoked') {
    const aliases = await routeAliases(api);
    const f = form({
      id: 'edit-key-form',
      submit: 'Save changes',
      fields: keyFields({ aliases, key, me }),
      onSubmit: async (v) => {
        const body = {};
        if (v.name.trim() !== key.name) body.name = v.name.trim();
        if (JSON.stringify([...v.models].sort()) !== JSON.stringify([...key.models].sort())) body.models = v.models;
        for (const n of ['rpm_limit', 'tpm_limit']) if ((v[n] ?? null) !== (key[n] ?? null)) body[n] = v[n];
        const oldExp = key.expires_at ? new Date(key.expires_at).getTime() : null;
        const newExp = v.expires_at ? new Date(v.expires_at).getTime() : null;
        if (Math.floor((oldExp ?? 0) / 60000) !== Math.floor((newExp ?? 0) / 60000)) body.expires_at = v.expires_at;
        if (!Object.keys(body).length) { replace(flash, notice('Nothing changed.')); return; }
        key = await api.patch(`/tenants/${tid}/keys/${kid}`, body);
        drawHead();
        replace(flash, notice('Saved.'));
      },
    });
    replace(editArea, section('Edit', f));
  }

  // ---- budgets of this key ----
  async function drawBudgets() {
    let list;
    try {
      list = (await api.get(`/tenants/${tid}/budgets`, { key_id: kid, limit: 200 })).data;
    } catch (e) {
      replace(budgetsArea, section('Budgets', alert(e)));
      return;
    }
    const rows = table({
      caption: 'Budgets of this key',
      columns: [
        { label: 'Period', value: (b) => b.period },
        { label: 'Limit', numeric: true, value: (b) => money(b.limit_usd) },
        { label: 'Spent', numeric: true, value: (b) => (typeof b.spent_usd === 'number' ? money(b.spent_usd) : DASH) },
        { label: 'Alert at', numeric: true, value: (b) => (b.alert_threshold != null ? pct(Number(b.alert_threshold), 0) : DASH) },
        ...(isAdmin ? [{ label: 'Actions', value: (b) => h('button', { type: 'button', class: 'btn btn-small', onClick: async () => {
          if (!(await confirm(`Remove the ${b.period} budget of ${money(b.limit_usd)}?`, { title: 'Remove budget?', confirm: 'Remove' }))) return;
          try { await api.del(`/tenants/${tid}/budgets/${b.id}`); } catch (e) { replace(flash, alert(e)); }
          drawBudgets();
        } }, 'Remove') }] : []),
      ],
      rows: list,
      empty: isAdmin ? 'No budget on this key yet — add one below.' : 'No budget on this key.',
    });
    let add = null;
    const periods = ['daily', 'monthly', 'total'].filter((p) => !list.some((b) => b.period === p));
    if (isAdmin && periods.length) {
      add = form({
        id: 'key-budget-form',
        submit: 'Set budget',
        fields: [
          { name: 'period', label: 'Period', type: 'select', value: periods.includes('monthly') ? 'monthly' : periods[0], options: periods.map((p) => ({ value: p, label: p })) },
          { name: 'limit_usd', label: 'Limit (USD)', type: 'number', required: true, min: 0, max: 1000000000, step: 'any' },
        ],
        onSubmit: async (v) => {
          await api.post(`/tenants/${tid}/budgets`, { key_id: kid, period: v.period, limit_usd: v.limit_usd });
          await drawBudgets();
        },
      });
    }
    replace(budgetsArea, section('Budgets', rows, add));
  }
  await drawBudgets();

  // ---- its own usage ----
  const rangeKey = RANGES[query.range] ? query.range : '30d';
  const range = RANGES[rangeKey];
  try {
    const r = await api.get('/usage', { tenant_id: tid, key_id: kid, from: iso(range.from()), bucket: range.bucket });
    const xs = buckets(r.from, r.to, r.bucket);
    const t = r.totals;
    const c = timeChart({ id: 'key-usage-chart', title: `Requests — ${range.label.toLowerCase()}`, xs, bucket: r.bucket,
      series: [{ label: 'Requests', values: fill(xs, r.series, 'requests') }, { label: 'Errors', values: fill(xs, r.series, 'errors') }] });
    const c2 = timeChart({ id: 'key-spend-chart', title: `Spend — ${range.label.toLowerCase()}`, xs, bucket: r.bucket,
      series: [{ label: 'Spend (USD)', values: fill(xs, r.series, 'cost_usd'), format: money }] });
    cleanups.push(c.destroy, c2.destroy);
    const reqLink = `#/requests?tenant_id=${tid}&key_id=${kid}`;
    replace(usageArea, h('section', { 'aria-labelledby': 'key-usage-h' },
      h('h2', { id: 'key-usage-h' }, 'Usage of this key'),
      h('nav', { 'aria-label': 'Usage period' }, h('ul', { class: 'inline-list' }, Object.entries(RANGES).map(([k, rr]) =>
        h('li', null, h('a', { href: `#/t/${tid}/keys/${kid}?range=${k}`, 'aria-current': k === rangeKey ? 'true' : null }, rr.label))))),
      h('dl', { class: 'stats', id: 'key-usage-totals' },
        h('div', { class: 'stat' }, h('dt', null, 'Requests'), h('dd', { id: 'key-requests' }, num(t.requests))),
        h('div', { class: 'stat' }, h('dt', null, 'Errors'), h('dd', null, num(t.errors), h('span', { class: 'sub' }, t.requests ? pct(t.errors / t.requests) : DASH))),
        h('div', { class: 'stat' }, h('dt', null, 'Tokens in / out'), h('dd', null, `${num(t.prompt_tokens)} / ${num(t.completion_tokens)}`)),
        h('div', { class: 'stat' }, h('dt', null, 'Spend'), h('dd', { id: 'key-spend' }, money(t.cost_usd))),
        h('div', { class: 'stat' }, h('dt', null, 'Latency p50 / p95'), h('dd', null, t.latency_p50_ms === undefined ? DASH : `${ms(t.latency_p50_ms)} / ${ms(t.latency_p95_ms)}`))),
      t.requests ? h('div', { class: 'grid grid-wide' }, c, c2) : empty(`No requests with this key in the ${range.label.toLowerCase()}. Send one through a data plane with the key and it shows here within seconds.`),
      h('p', null, h('a', { href: reqLink }, 'See this key\'s requests in the request log'), ' · ',
        h('a', { href: `#/usage?tenant_id=${tid}&key_id=${kid}` }, 'Explore its usage'))));
  } catch (e) {
    replace(usageArea, section('Usage of this key', alert(e)));
  }
  return () => cleanups.forEach((f) => f());
}
