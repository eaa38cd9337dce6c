// #/users: users (platform admins: every account; create, disable, delete) and memberships with
// roles, one tenant at a time (?tenant=<id>, so the view is bookmarkable).
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, setTitle, pagedTable, time, val, errorText, loadAll, hashWith, go, str, ROLES,
} from './_kit.js';
import { membersPanel } from './_members.js';

const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;

export async function render(root, ctx, params, query = {}) {
  setTitle(ctx, 'Users');
  const platform = isPlatform(ctx);
  const alert = alertBox();
  const status = statusBox();
  clear(root);
  const head = heading(platform ? 'Users and memberships' : 'Members');
  append(root, [head, alert.el, status.el]);

  let tenants = [];
  try {
    tenants = await loadAll(ctx.api, '/api/v1/tenants', {}, 1000);
  } catch (err) {
    alert.show(`Could not load the tenants: ${errorText(err)}`);
  }

  let panel = null;
  const choices = platform ? tenants : tenants.filter((t) => (ctx.me.memberships || []).some((m) => m.tenant_id === t.id));
  const tid = query.tenant || (ctx.tenant && ctx.tenant.tenant_id) || (choices[0] && choices[0].id) || '';
  if (platform) {
    const listArea = el('div');
    const emailFilter = query.email || '';
    async function refresh(message) {
      clear(listArea);
      const columns = [
        { label: 'Email', cell: (u) => el('span', { class: 'cell-text' }, u.email) },
        { label: 'Name', cell: (u) => el('span', { class: 'cell-text' }, val(u.name)) },
        { label: 'Kind', cell: (u) => [u.is_platform_admin ? 'platform admin' : null, u.is_service ? 'service account' : 'person'].filter(Boolean).join(', ') },
        { label: 'Status', cell: (u) => (u.disabled ? 'disabled' : 'active') },
        { label: 'Created', cell: (u) => time(u.created_at) },
        {
          label: 'Actions',
          cell: (u) => {
            if (u.id === ctx.me.id) return 'you';
            const toggle = el('button', { type: 'button', class: 'btn btn-small', 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.email}` }, u.disabled ? 'Enable' : 'Disable');
            toggle.addEventListener('click', async () => {
              toggle.disabled = true;
              try {
                await ctx.api.patch(`/api/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled });
                await refresh(`${u.email} is now ${u.disabled ? 'active' : 'disabled'}.`);
              } catch (err) {
                alert.show(errorText(err));
                toggle.disabled = false;
              }
            });
            return el('div', { class: 'row-actions' }, toggle, dangerButton('Delete', {
              label: `Delete ${u.email}`,
              message: `Delete the user ${u.email}? Their memberships and API tokens are deleted with them.`,
              confirmLabel: 'Delete user',
              alert,
              act: async () => { await ctx.api.del(`/api/v1/users/${encodeURIComponent(u.id)}`); await refresh(`${u.email} was deleted.`); },
            }));
          },
        },
      ];
      try {
        listArea.append(await pagedTable({
          columns,
          empty: emailFilter ? 'No user with this email — create one above.' : 'No users yet — create one above.',
          load: (cursor) => ctx.api.get('/api/v1/users', { ...(emailFilter ? { email: emailFilter } : {}), ...(cursor ? { cursor } : {}) }),
        }));
      } catch (err) {
        alert.show(`Could not load the users: ${errorText(err)}`);
      }
      if (message) status.show(message);
    }

    const create = disclosure('Create user', (close) => {
      const fs = [
        field({ name: 'email', label: 'Email', type: 'email', required: true, check: (v) => (EMAIL_RE.test(v.trim()) ? null : 'Enter an email address like name@example.com.') }),
        field({ name: 'name', label: 'Name', maxlength: 200 }),
        field({ name: 'is_service', label: 'Service account (no password; acts only through API tokens)', type: 'checkbox' }),
        field({ name: 'password', label: 'Password', type: 'password', help: 'At least 12 characters.', check: (v, all) => (!all.is_service && v.length < 12 ? 'The password needs at least 12 characters.' : null) }),
        field({ name: 'is_platform_admin', label: 'Platform admin (manages everything)', type: 'checkbox' }),
        field({ name: 'tenant_id', label: 'Tenant (optional)', type: 'select', options: [{ value: '', label: 'None' }, ...tenants.map((t) => ({ value: t.id, label: `${t.name} (${t.slug})` }))] }),
        field({ name: 'role', label: 'Role in that tenant', type: 'select', options: ROLES.map((r) => ({ value: r, label: r })), value: 'member' }),
      ];
      const byName = new Map(fs.map((x) => [x.spec.name, x]));
      const sync = () => {
        byName.get('password').el.hidden = byName.get('is_service').get();
        byName.get('role').el.hidden = !byName.get('tenant_id').get();
      };
      byName.get('is_service').input.addEventListener('change', sync);
      byName.get('tenant_id').input.addEventListener('change', sync);
      sync();
      return form({
        fields: fs, submit: 'Create user', cancel: close, label: 'Create user',
        conflict: ['email', (v) => `${v.email.trim()} already has an account.`],
        validate: (v) => (!v.is_service && !v.password ? 'A person needs a password (or tick "Service account").' : null),
        onSubmit: async (v) => {
          const body = { email: v.email.trim() };
          if (str(v.name)) body.name = v.name.trim();
          if (v.is_service) body.is_service = true; else body.password = v.password;
          if (v.is_platform_admin) body.is_platform_admin = true;
          if (v.tenant_id) { body.tenant_id = v.tenant_id; body.role = v.role; }
          const u = await ctx.api.post('/api/v1/users', body);
          close();
          await refresh(`${u.email} was created.`);
          if (panel && body.tenant_id === tid) await panel.refresh();
        },
      }).el;
    });
    head.actions.append(create.button);
    root.append(create.area);

    const searchField = field({ name: 'email', label: 'Find by email', type: 'email', value: emailFilter });
    const search = el('form', { class: 'form filters', role: 'search', 'aria-label': 'Find a user' }, searchField.el,
      el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn' }, 'Find'),
        emailFilter ? el('a', { href: hashWith('#/users', { tenant: query.tenant }) }, 'Show all') : null));
    search.addEventListener('submit', (e) => {
      e.preventDefault();
      go(ctx, hashWith('#/users', { email: searchField.get().trim(), tenant: query.tenant }));
    });
    root.append(section('Users', search, listArea));
    await refresh();
  }

  // Memberships: one tenant at a time.
  const memberArea = el('div');
  if (choices.length === 0) {
    memberArea.append(el('p', { class: 'empty' }, platform ? 'No tenants yet — create one on the tenants page first.' : 'You are not a member of any tenant yet.'));
  } else {
    const pick = field({ name: 'tenant', label: 'Tenant', type: 'select', options: choices.map((t) => ({ value: t.id, label: `${t.name} (${t.slug})` })), value: tid });
    pick.input.addEventListener('change', () => go(ctx, hashWith('#/users', { email: query.email, tenant: pick.get() })));
    memberArea.append(el('div', { class: 'form filters' }, pick.el));
    if (choices.some((t) => t.id === tid)) {
      panel = await membersPanel(ctx, tid);
      memberArea.append(panel);
    } else {
      memberArea.append(el('p', { class: 'empty' }, 'This tenant does not exist, or you do not have access to it. Pick one above.'));
    }
  }
  root.append(section('Memberships and roles', memberArea));
}
