// #/t/:tid: one tenant: its details, keys, members (with roles) and budgets. A tenant the caller
// has no role in looks exactly like one that does not exist (the API answers 404 for both).
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, can, isPlatform, setTitle,
  table, time, val, num, errorText, loadAll, DASH,
} from './_kit.js';
import { membersPanel } from './_members.js';
import { budgetColumns } from './budgets.js';

function limitCheck(v) {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 2147483647 ? null : 'A whole number from 1 to 2147483647, or empty for no limit.';
}

export async function render(root, ctx, params) {
  const tid = params.tid;
  setTitle(ctx, 'Tenant');
  const enc = encodeURIComponent(tid);
  // The four reads go out together (the view waited for each in turn): each settles into
  // {ok} or {err}, so that a 404 for the tenant leaves no rejection unhandled.
  const settle = (p) => p.then((ok) => ({ ok }), (err) => ({ err }));
  const keysP = settle(ctx.api.get(`/api/v1/tenants/${enc}/keys`, { limit: 200 }));
  const membersP = settle(membersPanel(ctx, tid));
  const budgetsP = settle(loadAll(ctx.api, `/api/v1/tenants/${enc}/budgets`));
  // A tenant the caller has no role in answers 404 like a random id: the shell shows its one
  // \"Not found\" page for both.
  let tenant = await ctx.api.get(`/api/v1/tenants/${enc}`);
  setTitle(ctx, tenant.name);
  const platform = isPlatform(ctx);
  const admin = can(ctx, 'admin', tid);
  const writer = can(ctx, 'write', tid);
  const alert = alertBox();
  const status = statusBox();

  const details = el('div');
  function showDetails() {
    clear(details);
    details.append(el('dl', { class: 'props' },
      el('dt', null, 'Name'), el('dd', { class: 'cell-text' }, tenant.name),
      el('dt', null, 'Slug'), el('dd', { class: 'mono cell-text' }, tenant.slug),
      el('dt', null, 'Id'), el('dd', { class: 'mono' }, tenant.id),
      el('dt', null, 'Requests per minute'), el('dd', null, tenant.rpm_limit === null ? 'No tenant-wide limit' : val(tenant.rpm_limit)),
      el('dt', null, 'Tokens per minute'), el('dd', null, tenant.tpm_limit === null ? 'No tenant-wide limit' : val(tenant.tpm_limit)),
      el('dt', null, 'Your role'), el('dd', null, platform ? 'platform admin' : (ctx.me.memberships || []).find((m) => m.tenant_id === tid)?.role || DASH),
      el('dt', null, 'Created'), el('dd', null, time(tenant.created_at))));
    if (admin) {
      const fs = [field({ name: 'name', label: 'Tenant name', required: true, value: tenant.name, maxlength: 200 })];
      if (platform) {
        fs.push(
          field({ name: 'rpm_limit', label: 'Requests per minute (all keys)', type: 'number', min: 1, integer: true, value: tenant.rpm_limit ?? '', help: 'Empty: no limit.', check: limitCheck }),
          field({ name: 'tpm_limit', label: 'Tokens per minute (all keys)', type: 'number', min: 1, integer: true, value: tenant.tpm_limit ?? '', help: 'Empty: no limit.', check: limitCheck }),
        );
      }
      const f = form({
        fields: fs, submit: 'Save', label: 'Edit tenant',
        onSubmit: async (v) => {
          const body = { name: v.name.trim() };
          if (platform) { body.rpm_limit = num(v.rpm_limit); body.tpm_limit = num(v.tpm_limit); }
          tenant = await ctx.api.patch(`/api/v1/tenants/${enc}`, body);
          status.show('The tenant was saved.');
          showDetails();
          head.querySelector('h1').textContent = tenant.name;
        },
      });
      details.append(el('details', { class: 'edit' }, el('summary', null, 'Edit tenant'), f.el));
    }
  }

  const keysArea = el('div');
  const budgetsArea = el('div');
  const head = heading(tenant.name);
  clear(root);
  append(root, [head, alert.el, status.el, section('Details', details)]);
  showDetails();

  let keys = [];
  try {
    const got = await keysP;
    if (got.err) throw got.err;
    keys = got.ok.data || [];
    keysArea.append(table({
      columns: [
        { label: 'Name', cell: (k) => el('a', { href: `#/t/${enc}/keys/${encodeURIComponent(k.id)}`, class: 'cell-text' }, k.name) },
        { label: 'Ends in', cell: (k) => el('span', { class: 'mono' }, `…${k.last4}`) },
        { label: 'Status', cell: (k) => k.status },
        { label: 'Models', cell: (k) => (k.models && k.models.length ? k.models.join(', ') : 'all routes') },
        { label: 'Expires', cell: (k) => (k.expires_at ? time(k.expires_at) : 'never') },
      ],
      rows: keys.slice(0, 10),
      empty: writer ? 'No keys yet — create one on the keys page.' : 'No keys yet.',
    }));
    keysArea.append(el('p', null, el('a', { href: `#/t/${enc}/keys` },
      keys.length > 10 ? `All ${keys.length >= 200 ? '200+' : keys.length} keys` : (writer ? 'Keys page (create, rotate, revoke)' : 'Keys page'))));
  } catch (err) {
    keysArea.append(el('p', { class: 'alert alert-error', role: 'alert' }, `Could not load the keys: ${errorText(err)}`));
  }
  root.append(section('Keys', keysArea));

  const members = await membersP;
  if (members.err) throw members.err;
  root.append(section('Members', members.ok));

  try {
    const got = await budgetsP;
    if (got.err) throw got.err;
    const rows = got.ok;
    const keysById = new Map(keys.map((k) => [k.id, k.name]));
    budgetsArea.append(table({
      columns: budgetColumns(keysById), rows,
      empty: admin ? 'No budgets yet — add one on the budgets page.' : 'No budgets yet.',
    }));
    budgetsArea.append(el('p', null, el('a', { href: `#/t/${enc}/budgets` }, admin ? 'Budgets page (add, change, delete)' : 'Budgets page')));
  } catch (err) {
    budgetsArea.append(el('p', { class: 'alert alert-error', role: 'alert' }, `Could not load the budgets: ${errorText(err)}`));
  }
  root.append(section('Budgets', budgetsArea));
}
