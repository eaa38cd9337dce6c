// _members.js: a tenant's members with their roles, for the tenant page and the users view.
// Admins and owners add, remove and change roles; only owners (and platform admins) touch the
// owner role. Viewers and members see the list only.
import {
  el, append, clear, table, field, form, alertBox, statusBox, dangerButton, disclosure, can, isPlatform,
  errorText, loadAll, ROLES, str, val, put,
} from './_kit.js';

const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;

function roleOptions(ctx, tid) {
  const owner = can(ctx, 'owner', tid);
  return ROLES.filter((r) => r !== 'owner' || owner).map((r) => ({ value: r, label: r }));
}

// Finds the id of a user the caller may add, by email: platform admins look the user up;
// tenant admins among the members of the other tenants they administer.
async function userIdByEmail(ctx, email, tid) {
  const want = email.trim().toLowerCase();
  if (isPlatform(ctx)) {
    const r = await ctx.api.get('/api/v1/users', { email: want });
    return r.data && r.data[0] ? r.data[0].id : null;
  }
  for (const m of (ctx.me.memberships || [])) {
    if (m.tenant_id === tid || !(m.role === 'admin' || m.role === 'owner')) continue;
    const rows = await loadAll(ctx.api, `/api/v1/tenants/${encodeURIComponent(m.tenant_id)}/members`);
    const hit = rows.find((u) => String(u.email).toLowerCase() === want);
    if (hit) return hit.user_id;
  }
  return null;
}

export async function membersPanel(ctx, tid) {
  const root = el('div', { class: 'members' });
  const alert = alertBox();
  const status = statusBox();
  const admin = can(ctx, 'admin', tid);
  const owner = can(ctx, 'owner', tid);
  const base = `/api/v1/tenants/${encodeURIComponent(tid)}/members`;

  async function refresh(message) {
    let rows;
    try {
      rows = await loadAll(ctx.api, base);
    } catch (err) {
      alert.show(`Could not load the members: ${errorText(err)}`);
      return;
    }
    clear(list);
    const columns = [
      { label: 'Name', cell: (m) => val(m.name) },
      { label: 'Email', cell: (m) => m.email },
      {
        label: 'Role',
        cell: (m) => {
          const mayChange = admin && (owner || m.role !== 'owner') && m.user_id !== ctx.me.id;
          if (!mayChange) return m.role;
          const id = `role-${m.user_id}`;
          const sel = el('select', { id, 'aria-label': `Role of ${m.email}` },
            roleOptions(ctx, tid).map((o) => el('option', { value: o.value }, o.label)));
          sel.value = m.role;
          // a change applies on Save only: arrow keys on a focused select fire `change` at
          // every step, and each step would otherwise be a role change
          const save = el('button', { type: 'button', class: 'btn btn-small', disabled: true,
            'aria-label': `Save ${m.email}'s role` }, 'Save');
          sel.addEventListener('change', () => { save.disabled = sel.value === m.role; });
          save.addEventListener('click', async () => {
            alert.clear();
            sel.disabled = true;
            save.disabled = true;
            try {
              await put(ctx.api, `${base}/${encodeURIComponent(m.user_id)}`, { role: sel.value });
              await refresh(`${m.email} is now ${sel.value}.`);
            } catch (err) {
              sel.value = m.role;
              alert.show(errorText(err));
            } finally {
              sel.disabled = false;
            }
          });
          return el('span', { class: 'role-edit' }, sel, ' ', save);
        },
      },
    ];
    if (admin) {
      columns.push({
        label: 'Actions',
        cell: (m) => ((owner || m.role !== 'owner')
          ? dangerButton('Remove', {
            label: `Remove ${m.email}`,
            message: `Remove ${m.email} from this tenant? They lose access to it at once.`,
            alert,
            act: async () => { await ctx.api.del(`${base}/${encodeURIComponent(m.user_id)}`); await refresh(`${m.email} was removed.`); },
          })
          : ''),
      });
    }
    list.append(table({
      columns, rows,
      empty: admin ? 'No members yet — add one below.' : 'No members yet.',
    }));
    if (message) status.show(message);
  }

  const list = el('div');
  append(root, [alert.el, status.el, list]);
  await refresh();

  if (admin) {
    const addNew = disclosure('Create a user in this tenant', (close) => {
      const fs = [
        field({ name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'off', check: (v) => (EMAIL_RE.test(v.trim()) ? null : 'Enter an email address like name@example.com.') }),
        field({ name: 'name', label: 'Name', maxlength: 200 }),
        field({ name: 'password', label: 'Password', type: 'password', required: true, help: 'At least 12 characters.', check: (v) => (v.length < 12 ? 'The password needs at least 12 characters.' : null) }),
        field({ name: 'role', label: 'Role', type: 'select', options: roleOptions(ctx, tid), value: 'member' }),
      ];
      const f = form({
        fields: fs, submit: 'Create user', cancel: close, label: 'Create a user in this tenant',
        conflict: ['email', (v) => `${v.email.trim()} already has an account: use "Add an existing user".`],
        onSubmit: async (v) => {
          const body = { email: v.email.trim(), password: v.password, tenant_id: tid, role: v.role };
          if (str(v.name)) body.name = v.name.trim();
          await ctx.api.post('/api/v1/users', body);
          close();
          await refresh(`${body.email} was created as ${v.role}.`);
        },
        fieldFor: (f2) => (f2 === 'tenant_id' ? 'role' : f2),
      });
      return f.el;
    });
    const addExisting = disclosure('Add an existing user', (close) => {
      const fs = [
        field({ name: 'email', label: 'Email of the user', type: 'email', required: true, check: (v) => (EMAIL_RE.test(v.trim()) ? null : 'Enter an email address like name@example.com.') }),
        field({ name: 'role', label: 'Role', type: 'select', options: roleOptions(ctx, tid), value: 'member' }),
      ];
      const f = form({
        fields: fs, submit: 'Add member', cancel: close, label: 'Add an existing user',
        onSubmit: async (v) => {
          const id = await userIdByEmail(ctx, v.email, tid);
          if (!id) {
            f.fields.get('email').setError('No user with this email that you can add. Create the user instead.');
            return;
          }
          await put(ctx.api, `${base}/${encodeURIComponent(id)}`, { role: v.role });
          close();
          await refresh(`${v.email.trim()} was added as ${v.role}.`);
        },
        fieldFor: (f2) => (f2 === 'user_id' ? 'email' : f2),
      });
      return f.el;
    }, { buttonClass: 'btn' });
    append(root, [el('div', { class: 'toolbar' }, addNew.button, addExisting.button), addNew.area, addExisting.area]);
  }
  root.refresh = refresh;
  return root;
}
