// #/me: who you are, your roles, and your own name and password. Changing the password ends
// your other sessions; this one gets a fresh session (and CSRF token) in the same answer.
import {
  el, append, clear, heading, section, field, form, statusBox, setTitle, table, val,
} from './_kit.js';
import { setCsrf } from '../api.js';

export async function render(root, ctx) {
  setTitle(ctx, 'Profile');
  let me = ctx.me;
  const status = statusBox();
  clear(root);
  const facts = el('dl', { class: 'props' });
  const showFacts = () => {
    clear(facts);
    append(facts, [
      el('dt', null, 'Email'), el('dd', { class: 'cell-text' }, me.email),
      el('dt', null, 'Name'), el('dd', { class: 'cell-text' }, val(me.name)),
      el('dt', null, 'Platform admin'), el('dd', null, me.is_platform_admin ? 'yes' : 'no'),
    ]);
  };
  showFacts();
  append(root, [heading('Your profile'), status.el, section('Account', facts)]);

  root.append(section('Your roles', table({
    columns: [
      { label: 'Tenant', cell: (m) => el('a', { href: `#/t/${encodeURIComponent(m.tenant_id)}`, class: 'cell-text' }, m.name) },
      { label: 'Slug', cell: (m) => el('span', { class: 'mono cell-text' }, m.slug) },
      { label: 'Role', cell: (m) => m.role },
    ],
    rows: me.memberships || [],
    empty: me.is_platform_admin ? 'No tenant memberships — as a platform admin you reach every tenant.' : 'You are not a member of any tenant yet — ask an admin to add you.',
  })));

  const nameForm = form({
    fields: [field({ name: 'name', label: 'Name', required: true, value: me.name || '', maxlength: 200, autocomplete: 'name' })],
    submit: 'Save name', label: 'Change your name',
    onSubmit: async (v) => {
      const u = await ctx.api.patch(`/api/v1/users/${encodeURIComponent(me.id)}`, { name: v.name.trim() });
      me = { ...me, name: u.name };
      showFacts();
      // the header shows the new name
      if (typeof ctx.refresh === 'function') { try { me = { ...(await ctx.refresh()) }; } catch { /* shown below anyway */ } }
      status.show('Your name was saved.');
    },
  });
  root.append(section('Name', nameForm.el));

  const pw = form({
    fields: [
      field({ name: 'current_password', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' }),
      field({ name: 'password', label: 'New password', type: 'password', required: true, autocomplete: 'new-password', help: 'At least 12 characters.', check: (v) => (v.length < 12 ? 'The new password needs at least 12 characters.' : null) }),
      field({ name: 'confirm', label: 'New password again', type: 'password', required: true, autocomplete: 'new-password', check: (v, all) => (v !== all.password ? 'The two new passwords differ.' : null) }),
    ],
    submit: 'Change password', label: 'Change your password', busyText: 'Changing…',
    onSubmit: async (v, formEl) => {
      const r = await ctx.api.patch(`/api/v1/users/${encodeURIComponent(me.id)}`, { current_password: v.current_password, password: v.password });
      const csrf = r && ((r.session && r.session.csrf_token) || r.csrf_token);
      if (csrf) setCsrf(csrf);
      formEl.reset();
      status.show('Your password was changed. Your other sessions were signed out.');
    },
  });
  // the second copy is checked again when the first changes
  pw.fields.get('password').input.addEventListener('input', () => {
    const again = pw.fields.get('confirm');
    if (again.get()) again.check(pw.values());
  });
  root.append(section('Password', pw.el));
}
