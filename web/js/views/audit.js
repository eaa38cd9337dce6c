// #/audit: the audit log, newest first. Filters (tenant, actor, action, target and time) live in
// the URL (#/audit?action=key.create&from=...), so a filtered view can be bookmarked. A row
// opens its before/after diff, computed here from the row's `before` and `after`. Platform
// admins see whether the hash chain verifies.
import {
  el, append, clear, heading, section, field, alertBox, isPlatform, can, setTitle, time, errorText,
  rowOf, hashWith, go, toLocalInput, fromLocalInput, uid, DASH,
} from './_kit.js';

const ACTIONS = [
  'tenant.create', 'tenant.update', 'tenant.delete', 'user.create', 'user.update', 'user.delete',
  'member.put', 'member.delete', 'token.create', 'token.revoke', 'key.create', 'key.update',
  'key.rotate', 'key.revoke', 'key.delete', 'budget.create', 'budget.update', 'budget.delete',
  'provider.create', 'provider.update', 'provider.delete', 'route.create', 'route.update',
  'route.delete', 'price.put', 'price.delete',
];
const TARGET_TYPES = ['tenant', 'user', 'membership', 'api_token', 'key', 'budget', 'provider', 'route', 'price'];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FILTERS = ['tenant_id', 'actor_id', 'action', 'target_type', 'target_id', 'from', 'to'];

// Flattens a JSON value into {path: scalar-as-text}; objects by key, arrays by index.
function flatten(v, prefix, out) {
  if (v !== null && typeof v === 'object') {
    const entries = Array.isArray(v) ? v.map((x, i) => [`[${i}]`, x]) : Object.entries(v).map(([k, x]) => [prefix ? `.${k}` : k, x]);
    if (entries.length === 0) out.set(prefix || '(value)', Array.isArray(v) ? '[]' : '{}');
    for (const [k, x] of entries) flatten(x, `${prefix}${k}`, out);
  } else {
    out.set(prefix || '(value)', JSON.stringify(v));
  }
  return out;
}

// The changed paths between before and after: [{path, before, after, kind}].
export function diff(before, after) {
  const a = before === null || before === undefined ? new Map() : flatten(before, '', new Map());
  const b = after === null || after === undefined ? new Map() : flatten(after, '', new Map());
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out = [];
  for (const p of paths) {
    const x = a.get(p); const y = b.get(p);
    if (x === y) continue;
    out.push({ path: p, before: x, after: y, kind: x === undefined ? 'added' : y === undefined ? 'removed' : 'changed' });
  }
  return out;
}

function diffView(row) {
  const changes = diff(row.before, row.after);
  const what = row.before == null && row.after == null ? 'No object recorded for this change.' : null;
  if (changes.length === 0) return el('p', { class: 'empty' }, what || 'Nothing changed in the recorded fields.');
  const t = el('table', { class: 'data diff' },
    el('caption', null, `Changes made by ${row.action}`),
    el('thead', null, el('tr', null, el('th', { scope: 'col' }, 'Field'), el('th', { scope: 'col' }, 'Before'), el('th', { scope: 'col' }, 'After'))),
    el('tbody', null, changes.map((c) => el('tr', { class: `diff-${c.kind}` },
      el('th', { scope: 'row', class: 'mono cell-text' }, c.path),
      el('td', { class: 'mono cell-text diff-before' }, c.before === undefined ? DASH : c.before),
      el('td', { class: 'mono cell-text diff-after' }, c.after === undefined ? DASH : c.after)))));
  return el('div', { class: 'table-wrap' }, t);
}

// The filters that rows contradict (the server did not apply them).
function ignoredFilters(q, rows) {
  const out = [];
  if (q.actor_id && rows.some((r) => r.actor_id !== q.actor_id)) out.push('actor');
  if (q.target_id && rows.some((r) => r.target_id !== q.target_id)) out.push('target');
  if ((q.from && rows.some((r) => new Date(r.ts) < new Date(q.from)))
    || (q.to && rows.some((r) => new Date(r.ts) >= new Date(q.to)))) out.push('time');
  return out;
}

function short(id) {
  return id ? `${String(id).slice(0, 8)}…` : DASH;
}

export async function render(root, ctx, params, query = {}) {
  setTitle(ctx, 'Audit log');
  const platform = isPlatform(ctx);
  const q = Object.fromEntries(FILTERS.map((k) => [k, query[k] || '']));
  const adminTenants = (ctx.me.memberships || []).filter((m) => can(ctx, 'admin', m.tenant_id));
  if (!platform && !q.tenant_id) q.tenant_id = (ctx.tenant && adminTenants.some((m) => m.tenant_id === ctx.tenant.tenant_id) ? ctx.tenant.tenant_id : (adminTenants[0] || {}).tenant_id) || '';
  const alert = alertBox();
  clear(root);
  append(root, [heading('Audit log'), alert.el]);

  if (!platform && adminTenants.length === 0) {
    root.append(el('p', { class: 'empty' }, 'The audit log is for tenant admins and owners: your roles do not include it.'));
    return;
  }

  // Chain verification (platform admins), loaded beside the list. An ordinary call checks the
  // rows after what the server already verified; "Verify everything" reads the whole log, and
  // the view says when that last ran (docs/operations.md, "The audit log").
  if (platform) {
    const v = el('p', { class: 'verify', role: 'status', 'aria-live': 'polite' }, 'Verifying the hash chain…');
    const last = el('p', { class: 'verify-full' });
    const fullBtn = el('button', { type: 'button', class: 'btn btn-small' }, 'Verify everything');
    const show = (r) => {
      clear(v);
      if (r.intact) {
        v.className = 'verify verify-ok';
        const what = r.mode === 'incremental'
          ? `rows from ${r.verified_from_id} on checked (${r.checked_rows}); the rows before were verified earlier.`
          : 'every row checked.';
        append(v, [el('strong', null, 'Intact: '), `${r.rows} rows; ${r.signed_rows ?? DASH} covered by ${r.checkpoints ?? DASH} signed checkpoints, ${r.unsigned_rows ?? DASH} after the last one (covered by the chain only); ${what}`]);
      } else {
        v.className = 'verify verify-bad';
        append(v, [el('strong', null, 'Not intact: '), r.problem || 'the chain does not verify', r.first_broken_id ? ` (first row it cannot vouch for: ${r.first_broken_id})` : '']);
      }
      clear(last);
      append(last, r.last_full
        ? ['Last full verification: ', time(r.last_full.at), r.last_full.intact ? ' (intact).' : ' (not intact).']
        : ['No full verification since the server started.']);
    };
    const run = (full) => {
      fullBtn.disabled = true;
      v.className = 'verify';
      v.textContent = full ? 'Verifying every row of the hash chain…' : 'Verifying the hash chain…';
      return ctx.api.get(`/api/v1/audit-log/verify${full ? '?full=true' : ''}`).then(show)
        .catch((err) => { v.className = 'verify verify-bad'; v.textContent = `Could not verify the chain: ${errorText(err)}`; })
        .finally(() => { fullBtn.disabled = false; });
    };
    fullBtn.addEventListener('click', () => run(true));
    root.append(section('Chain verification', v, last, fullBtn));
    run(false);
  }

  // Filters.
  const tenantOpts = platform
    ? [{ value: '', label: 'All tenants and platform changes' }, ...(ctx.tenants || ctx.me.memberships || []).map((m) => ({ value: m.tenant_id, label: m.name }))]
    : adminTenants.map((m) => ({ value: m.tenant_id, label: m.name }));
  if (q.tenant_id && !tenantOpts.some((o) => o.value === q.tenant_id)) tenantOpts.push({ value: q.tenant_id, label: q.tenant_id });
  const uuidCheck = (v) => (UUID_RE.test(v.trim()) ? null : 'An id looks like 0b727843-750e-4763-8ba0-7b277ba812fa.');
  const fs = [
    field({ name: 'tenant_id', label: 'Tenant', type: 'select', options: tenantOpts, value: q.tenant_id }),
    field({ name: 'actor_id', label: 'Actor (user id)', value: q.actor_id, check: uuidCheck, help: 'Or pick an actor in the list.' }),
    field({ name: 'action', label: 'Action', type: 'select', options: [{ value: '', label: 'Any' }, ...ACTIONS.map((a) => ({ value: a, label: a }))], value: q.action }),
    field({ name: 'target_type', label: 'Target type', type: 'select', options: [{ value: '', label: 'Any' }, ...TARGET_TYPES.map((a) => ({ value: a, label: a }))], value: q.target_type }),
    field({ name: 'target_id', label: 'Target id', value: q.target_id, maxlength: 64, check: (v) => (v.trim().length <= 64 ? null : 'A target id is at most 64 characters.') }),
    field({ name: 'from', label: 'From (UTC)', type: 'datetime-local', value: toLocalInput(q.from) }),
    field({ name: 'to', label: 'To (UTC)', type: 'datetime-local', value: toLocalInput(q.to), check: (v, all) => (all.from && fromLocalInput(v) <= fromLocalInput(all.from) ? '"To" must be after "From".' : null) }),
  ];
  const byName = new Map(fs.map((x) => [x.spec.name, x]));
  const fErr = alertBox();
  const filterForm = el('form', { class: 'form filters', role: 'search', 'aria-label': 'Filter the audit log', novalidate: true }, fs.map((x) => x.el), fErr.el,
    el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply filters'),
      el('a', { href: hashWith('#/audit', platform ? {} : { tenant_id: q.tenant_id }) }, 'Clear filters')));
  const values = () => Object.fromEntries(fs.map((x) => [x.spec.name, x.get()]));
  for (const x of fs) x.input.addEventListener(x.spec.type === 'select' ? 'change' : 'input', () => x.check(values()));
  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = values();
    if (fs.some((x) => x.check(v))) return;
    go(ctx, hashWith('#/audit', {
      tenant_id: v.tenant_id, actor_id: v.actor_id.trim(), action: v.action, target_type: v.target_type,
      target_id: v.target_id.trim(), from: fromLocalInput(v.from), to: fromLocalInput(v.to),
    }));
  });
  root.append(section('Filters', filterForm));

  // The list.
  const listArea = el('div', { 'aria-live': 'polite' });
  root.append(section('Changes', listArea));
  const apiQuery = {};
  for (const k of FILTERS) if (q[k]) apiQuery[k] = q[k];
  const filterLink = (k, v) => hashWith('#/audit', { ...q, [k]: v });
  const tenantNames = new Map([...(ctx.tenants || []), ...(ctx.me.memberships || [])].map((t) => [t.tenant_id, t.name]));

  const columns = [
    { label: 'Time', cell: (r) => time(r.ts) },
    { label: 'Actor', cell: (r) => (r.actor_id ? el('a', { href: filterLink('actor_id', r.actor_id), class: 'cell-text', title: 'Show only this actor' }, r.actor || r.actor_id) : el('span', { class: 'cell-text' }, r.actor || DASH)) },
    { label: 'Action', cell: (r) => el('a', { href: filterLink('action', r.action), title: 'Show only this action' }, r.action) },
    { label: 'Target', cell: (r) => (r.target_id ? el('a', { href: filterLink('target_id', r.target_id), class: 'mono', title: `Show only changes to ${r.target_id}` }, `${r.target_type} ${short(r.target_id)}`) : (r.target_type || DASH)) },
    { label: 'Tenant', cell: (r) => (r.tenant_id ? (tenantNames.has(r.tenant_id) ? el('span', { class: 'cell-text', title: r.tenant_id }, tenantNames.get(r.tenant_id)) : el('span', { class: 'mono', title: r.tenant_id }, short(r.tenant_id))) : 'platform') },
    {
      label: 'Changes',
      cell: (r) => {
        const id = uid('diff');
        const b = el('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false', 'aria-controls': id, 'aria-label': `Show diff of ${r.action} at ${r.ts}` }, 'Show diff');
        b.addEventListener('click', () => {
          const tr = b.closest('tr');
          const open = b.getAttribute('aria-expanded') === 'true';
          if (open) {
            const next = tr.nextElementSibling;
            if (next && next.id === id) next.remove();
            b.setAttribute('aria-expanded', 'false');
            b.textContent = 'Show diff';
            b.setAttribute('aria-label', `Show diff of ${r.action} at ${r.ts}`);
          } else {
            tr.after(el('tr', { id, class: 'diff-row' }, el('td', { colspan: columns.length }, diffView(r))));
            b.setAttribute('aria-expanded', 'true');
            b.textContent = 'Hide diff';
            b.setAttribute('aria-label', `Hide diff of ${r.action} at ${r.ts}`);
          }
        });
        return b;
      },
    },
  ];

  let page;
  try {
    page = await ctx.api.get('/api/v1/audit-log', apiQuery);
  } catch (err) {
    if (err && err.field && byName.has(err.field)) byName.get(err.field).setError(errorText(err));
    else alert.show(`Could not load the audit log: ${errorText(err)}`);
    listArea.append(el('p', { class: 'empty' }, 'No rows to show — change the filters above.'));
    return;
  }
  const rows = page.data || [];
  // A control plane older than these filters ignores them and answers every row: say so rather
  // than show rows as if they matched.
  const ignored = ignoredFilters(q, rows);
  if (ignored.length) {
    alert.show(`This control plane does not filter the audit log by ${ignored.join(', ')} yet: update it to use ${ignored.length > 1 ? 'these filters' : 'this filter'}.`);
    listArea.append(el('p', { class: 'empty' }, 'No rows to show — clear that filter to see the log.'));
    return;
  }
  if (rows.length === 0) {
    const filtered = Object.keys(apiQuery).some((k) => k !== 'tenant_id');
    listArea.append(el('p', { class: 'empty' }, filtered ? 'No changes match these filters — widen them or clear them.' : 'No changes recorded yet — every change made in this dashboard or the API will show here.'));
    return;
  }
  const tbody = el('tbody');
  for (const r of rows) tbody.append(rowOf(columns, r));
  listArea.append(el('div', { class: 'table-wrap' }, el('table', { class: 'data audit' },
    el('thead', null, el('tr', null, columns.map((c) => el('th', { scope: 'col' }, c.label)))), tbody)));
  let cursor = page.next_cursor;
  const more = el('button', { type: 'button', class: 'btn' }, 'Load more');
  more.hidden = !cursor;
  more.addEventListener('click', async () => {
    more.disabled = true;
    more.setAttribute('aria-busy', 'true');
    try {
      const next = await ctx.api.get('/api/v1/audit-log', { ...apiQuery, cursor });
      for (const r of next.data || []) tbody.append(rowOf(columns, r));
      cursor = next.next_cursor;
    } catch (err) {
      alert.show(errorText(err));
    } finally {
      more.disabled = false;
      more.removeAttribute('aria-busy');
      more.hidden = !cursor;
    }
  });
  listArea.append(el('div', { class: 'pager' }, more));
}
