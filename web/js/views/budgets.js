// #/t/:tid/budgets: a tenant's spend limits (for the whole tenant or one key), with what was
// spent in the current period. Admins and owners create, change and delete them.
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  can, setTitle, table, money, num, errorText, loadAll, time,
} from './_kit.js';

const PERIODS = [
  { value: 'daily', label: 'Daily (UTC day)' },
  { value: 'monthly', label: 'Monthly (UTC calendar month)' },
  { value: 'total', label: 'Total (lifetime)' },
];

function limitCheck(v) {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 && n <= 1e9 ? null : 'A number of USD from 0 to 1000000000.';
}

function thresholdCheck(v) {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 && n <= 100 ? null : 'A percentage more than 0 and at most 100.';
}

function pct(threshold) {
  if (threshold === null || threshold === undefined) return null;
  return Math.round(Number(threshold) * 1e6) / 1e4;
}

// The spend of one budget against its limit: a meter and the words.
export function spendCell(b) {
  if (b.spent_usd === undefined || b.spent_usd === null) return '—';
  const spent = Number(b.spent_usd);
  const limit = Number(b.limit_usd);
  const ratio = limit > 0 ? Math.min(spent / limit, 1) : 1;
  const text = `${money(spent)} of ${money(limit)}`;
  return el('div', { class: 'spend' },
    el('meter', { min: 0, max: 1, value: ratio, low: 0.8, high: 0.99, optimum: 0, 'aria-label': `Spent ${text}` }),
    el('span', null, text));
}

export function budgetColumns(keysById) {
  return [
    { label: 'Scope', cell: (b) => (b.key_id ? `Key: ${keysById.get(b.key_id) ?? b.key_id}` : 'Whole tenant') },
    { label: 'Period', cell: (b) => (b.period_start ? el('span', null, `${b.period}, since `, time(b.period_start)) : b.period) },
    { label: 'Limit', cell: (b) => money(b.limit_usd) },
    { label: 'Alert at', cell: (b) => (b.alert_threshold === null || b.alert_threshold === undefined ? '—' : `${pct(b.alert_threshold)}%`) },
    { label: 'Spent this period', cell: spendCell },
  ];
}

export async function render(root, ctx, params) {
  const tid = params.tid;
  setTitle(ctx, 'Budgets');
  // A tenant the caller has no role in answers 404 like a random id: the shell shows its one
  // \"Not found\" page for both.
  const tenant = await ctx.api.get(`/api/v1/tenants/${encodeURIComponent(tid)}`);
  setTitle(ctx, `Budgets · ${tenant.name}`);
  const admin = can(ctx, 'admin', tid);
  const base = `/api/v1/tenants/${encodeURIComponent(tid)}/budgets`;
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');
  let keys = [];
  try {
    keys = await loadAll(ctx.api, `/api/v1/tenants/${encodeURIComponent(tid)}/keys`, {}, 1000);
  } catch { keys = []; }
  const keysById = new Map(keys.map((k) => [k.id, k.name]));

  async function refresh(message) {
    let rows;
    try {
      rows = await loadAll(ctx.api, base);
    } catch (err) {
      alert.show(`Could not load the budgets: ${errorText(err)}`);
      return;
    }
    clear(listArea);
    const columns = budgetColumns(keysById);
    if (admin) {
      columns.push({
        label: 'Actions',
        cell: (b) => {
          const scope = b.key_id ? `key ${keysById.get(b.key_id) ?? b.key_id}` : 'the tenant';
          const edit = disclosure('Edit', (close) => editForm(b, close), { buttonClass: 'btn btn-small' });
          edit.button.setAttribute('aria-label', `Edit the ${b.period} budget of ${scope}`);
          return el('div', { class: 'row-actions' }, edit.button, dangerButton('Delete', {
            label: `Delete the ${b.period} budget of ${scope}`,
            message: `Delete the ${b.period} budget of ${scope}? Spending is no longer limited by it.`,
            confirmLabel: 'Delete budget',
            alert,
            act: async () => { await ctx.api.del(`${base}/${encodeURIComponent(b.id)}`); await refresh('The budget was deleted.'); },
          }), edit.area);
        },
      });
    }
    listArea.append(table({
      columns, rows,
      empty: admin ? 'No budgets yet — add one to cap what the tenant or a key may spend.' : 'No budgets yet.',
    }));
    if (message) status.show(message);
  }

  function editForm(b, close) {
    const fs = [
      field({ name: 'limit_usd', label: 'Limit (USD)', type: 'number', min: 0, step: 'any', required: true, value: b.limit_usd, check: limitCheck }),
      field({ name: 'alert_threshold', label: 'Alert at (% of the limit)', type: 'number', step: 'any', value: pct(b.alert_threshold) ?? '', help: 'Empty: no alert.', check: thresholdCheck }),
    ];
    return form({
      fields: fs, submit: 'Save budget', cancel: close, label: 'Edit budget',
      onSubmit: async (v) => {
        const t = num(v.alert_threshold);
        await ctx.api.patch(`${base}/${encodeURIComponent(b.id)}`, {
          limit_usd: num(v.limit_usd), alert_threshold: t === null ? null : Math.round(t * 100) / 10000,
        });
        await refresh('The budget was saved.');
      },
      fieldFor: (f) => f,
    }).el;
  }

  clear(root);
  const head = heading(`Budgets of ${tenant.name}`);
  append(root, [
    el('p', { class: 'crumbs' }, el('a', { href: `#/t/${encodeURIComponent(tid)}` }, tenant.name), ' › Budgets'),
    head, alert.el, status.el,
  ]);
  if (admin) {
    const create = disclosure('Add budget', (close) => {
      const fs = [
        field({
          name: 'key_id', label: 'Scope', type: 'select',
          options: [{ value: '', label: 'Whole tenant' }, ...keys.map((k) => ({ value: k.id, label: `Key: ${k.name}` }))],
        }),
        field({ name: 'period', label: 'Period', type: 'select', options: PERIODS, value: 'monthly' }),
        field({ name: 'limit_usd', label: 'Limit (USD)', type: 'number', min: 0, step: 'any', required: true, check: limitCheck }),
        field({ name: 'alert_threshold', label: 'Alert at (% of the limit)', type: 'number', step: 'any', help: 'Optional, e.g. 80.', check: thresholdCheck }),
      ];
      return form({
        fields: fs, submit: 'Add budget', cancel: close, label: 'Add budget',
        conflict: ['period', () => 'This scope already has a budget for that period: edit it instead.'],
        onSubmit: async (v) => {
          const body = { period: v.period, limit_usd: num(v.limit_usd) };
          if (v.key_id) body.key_id = v.key_id;
          const t = num(v.alert_threshold);
          if (t !== null) body.alert_threshold = Math.round(t * 100) / 10000;
          await ctx.api.post(base, body);
          close();
          await refresh('The budget was added.');
        },
      }).el;
    });
    head.actions.append(create.button);
    root.append(create.area);
  }
  root.append(section('Budgets', listArea));
  await refresh();
}
