// #/tokens: the signed-in admin's own API tokens (for automation). A new token's secret is shown
// once, with a copy button and a warning; revoking asks first. A user whose every role is
// viewer gets the list only (no create or revoke control).
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, setTitle, pagedTable, time, errorText, fromLocalInput, secretOnce, loadAll,
} from './_kit.js';

const RANK = { viewer: 1, member: 2, admin: 3, owner: 4 };
const ROLE_ORDER = ['viewer', 'member', 'admin', 'owner'];

function tokenStatus(t) {
  if (t.revoked_at) return 'revoked';
  if (t.expires_at && new Date(t.expires_at) <= new Date()) return 'expired';
  return 'active';
}

export async function render(root, ctx) {
  setTitle(ctx, 'API tokens');
  const platform = isPlatform(ctx);
  const memberships = ctx.me.memberships || [];
  const mayWrite = platform || memberships.some((m) => RANK[m.role] >= RANK.member);
  // platform admins may scope a token to any tenant
  let allTenants = [];
  if (platform) {
    try {
      allTenants = (await loadAll(ctx.api, '/api/v1/tenants', {}, 1000)).map((t) => ({ tenant_id: t.id, slug: t.slug, name: t.name }));
    } catch { allTenants = ctx.tenants || []; }
  }
  const tenantName = new Map([...allTenants, ...memberships].map((m) => [m.tenant_id, m.name]));
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');
  const secretArea = el('div');
  const head = heading('API tokens');
  clear(root);

  async function refresh(message) {
    clear(listArea);
    const columns = [
      { label: 'Name', cell: (t) => el('span', { class: 'cell-text' }, t.name) },
      { label: 'Ends in', cell: (t) => el('span', { class: 'mono' }, `…${t.last4}`) },
      { label: 'Role', cell: (t) => (t.role === 'admin' && !t.tenant_id ? 'platform admin' : t.role) },
      { label: 'Tenant', cell: (t) => (t.tenant_id ? (tenantName.get(t.tenant_id) ?? t.tenant_id) : 'all of yours') },
      { label: 'Status', cell: tokenStatus },
      { label: 'Expires', cell: (t) => (t.expires_at ? time(t.expires_at) : 'never') },
      { label: 'Last used', cell: (t) => (t.last_used_at ? time(t.last_used_at) : 'never') },
      { label: 'Created', cell: (t) => time(t.created_at) },
    ];
    if (mayWrite) {
      columns.push({
        label: 'Actions',
        cell: (t) => (tokenStatus(t) === 'revoked' ? '' : dangerButton('Revoke', {
          label: `Revoke ${t.name}`,
          message: `Revoke the token "${t.name}" (…${t.last4})? Anything using it gets 401 at once.`,
          confirmLabel: 'Revoke token',
          alert,
          act: async () => { await ctx.api.del(`/api/v1/tokens/${encodeURIComponent(t.id)}`); clear(secretArea); await refresh(`The token ${t.name} was revoked.`); },
        })),
      });
    }
    try {
      listArea.append(await pagedTable({
        columns,
        empty: mayWrite ? 'No API tokens yet — create one for a script or a CI job.' : 'No API tokens yet.',
        load: (cursor) => ctx.api.get('/api/v1/tokens', cursor ? { cursor } : {}),
      }));
    } catch (err) {
      alert.show(`Could not load the tokens: ${errorText(err)}`);
    }
    if (message) status.show(message);
  }

  append(root, [head, el('p', { class: 'lead' }, 'Tokens act as you, capped at the role you give them and, with a tenant, limited to it. Use them with "Authorization: Bearer tgat-…".'),
    alert.el, status.el, secretArea]);

  if (mayWrite) {
    const create = disclosure('Create token', (close) => {
      const tenantOpts = [{ value: '', label: platform ? 'None (every tenant; "admin" is platform scope)' : 'None (every tenant you belong to)' },
        ...(platform ? allTenants : memberships.filter((m) => RANK[m.role] >= RANK.member))
          .map((m) => ({ value: m.tenant_id, label: `${m.name} (${m.slug})` }))];
      const roleOpts = (tid) => {
        if (platform) return ROLE_ORDER.map((r) => ({ value: r, label: !tid && r === 'admin' ? 'admin (platform scope)' : r }));
        if (!tid) return ROLE_ORDER.filter((r) => r !== 'admin').map((r) => ({ value: r, label: r }));
        const mine = RANK[(memberships.find((m) => m.tenant_id === tid) || {}).role] || 0;
        return ROLE_ORDER.filter((r) => RANK[r] <= mine).map((r) => ({ value: r, label: r }));
      };
      const fs = [
        field({ name: 'name', label: 'Name', required: true, maxlength: 200, help: 'What uses it, e.g. "ci-deploy".' }),
        field({ name: 'tenant_id', label: 'Tenant', type: 'select', options: tenantOpts }),
        field({ name: 'role', label: 'Role', type: 'select', options: roleOpts(''), value: 'viewer' }),
        field({ name: 'expires_at', label: 'Expires (UTC, optional)', type: 'datetime-local', help: 'Empty: until revoked.', check: (v) => { const s = fromLocalInput(v); return s && new Date(s) > new Date() ? null : 'Pick a time in the future.'; } }),
      ];
      const tenantF = fs[1]; const roleF = fs[2];
      tenantF.input.addEventListener('change', () => {
        const keep = roleF.get();
        clear(roleF.input);
        for (const o of roleOpts(tenantF.get())) roleF.input.append(el('option', { value: o.value }, o.label));
        if ([...roleF.input.options].some((o) => o.value === keep)) roleF.input.value = keep;
      });
      return form({
        fields: fs, submit: 'Create token', cancel: close, label: 'Create token',
        onSubmit: async (v) => {
          const body = { name: v.name.trim(), role: v.role };
          if (v.tenant_id) body.tenant_id = v.tenant_id;
          const exp = fromLocalInput(v.expires_at);
          if (exp) body.expires_at = exp;
          const t = await ctx.api.post('/api/v1/tokens', body);
          close();
          clear(secretArea);
          secretArea.append(section(`New token: ${t.name}`, secretOnce(t.token, 'token')));
          await refresh(`The token ${t.name} was created.`);
          const input = secretArea.querySelector('input');
          if (input) input.focus();
        },
      }).el;
    });
    head.actions.append(create.button);
    root.append(create.area);
  } else {
    root.append(el('p', { class: 'note' }, 'Your roles are read-only, so you cannot create API tokens. Ask a tenant admin for a wider role if you need one.'));
  }
  root.append(section('Your tokens', listArea));
  await refresh();
}
