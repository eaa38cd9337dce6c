// #/tenants: the tenants the caller has a role in (platform admins: all). Platform admins create,
// rename and delete them (with confirmation) and set tenant-wide rate limits.
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, can, setTitle, pagedTable, num, time, val, errorText,
} from './_kit.js';

const SLUG_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

function limitCheck(v) {
  const n = Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 2147483647 ? null : 'A whole number from 1 to 2147483647, or empty for no limit.';
}

export async function render(root, ctx) {
  setTitle(ctx, 'Tenants');
  const platform = isPlatform(ctx);
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');

  // after a change the header's tenant switcher is redrawn too
  async function changed(message) {
    if (typeof ctx.refresh === 'function') { try { await ctx.refresh(); } catch { /* the list below is what matters */ } }
    await refresh(message);
  }

  async function refresh(message) {
    clear(listArea);
    const columns = [
      { label: 'Name', cell: (t) => el('a', { href: `#/t/${encodeURIComponent(t.id)}`, class: 'cell-text' }, t.name) },
      { label: 'Slug', cell: (t) => el('span', { class: 'mono cell-text' }, t.slug) },
      { label: 'Requests/min', cell: (t) => val(t.rpm_limit) },
      { label: 'Tokens/min', cell: (t) => val(t.tpm_limit) },
      { label: 'Created', cell: (t) => time(t.created_at) },
    ];
    if (platform || (ctx.me.memberships || []).some((m) => m.role === 'admin' || m.role === 'owner')) {
      columns.push({
        label: 'Actions',
        cell: (t) => {
          if (!can(ctx, 'admin', t.id)) return '';
          const edit = disclosure('Rename', (close) => editForm(t, close), { buttonClass: 'btn btn-small' });
          edit.button.setAttribute('aria-label', `Rename ${t.slug}`);
          return el('div', { class: 'row-actions' }, edit.button,
            platform && dangerButton('Delete', {
              label: `Delete ${t.slug}`,
              message: `Delete the tenant "${t.slug}"? Its memberships, keys, budgets and the API tokens scoped to it are deleted with it. This cannot be undone.`,
              confirmLabel: 'Delete tenant',
              alert,
              act: async () => { await ctx.api.del(`/api/v1/tenants/${encodeURIComponent(t.id)}`); await changed(`Tenant ${t.slug} was deleted.`); },
            }), edit.area);
        },
      });
    }
    try {
      listArea.append(await pagedTable({
        columns,
        empty: platform ? 'No tenants yet — create one above.' : 'You are not a member of any tenant yet — ask a platform admin to add you.',
        load: (cursor) => ctx.api.get('/api/v1/tenants', cursor ? { cursor } : {}),
      }));
    } catch (err) {
      alert.show(`Could not load the tenants: ${errorText(err)}`);
    }
    if (message) status.show(message);
  }

  function editForm(t, close) {
    const fs = [
      field({ name: 'name', label: 'Name', required: true, value: t.name, maxlength: 200 }),
    ];
    if (platform) {
      fs.push(
        field({ name: 'rpm_limit', label: 'Requests per minute (all keys)', type: 'number', min: 1, integer: true, value: t.rpm_limit ?? '', help: 'Empty: no tenant-wide limit.', check: limitCheck }),
        field({ name: 'tpm_limit', label: 'Tokens per minute (all keys)', type: 'number', min: 1, integer: true, value: t.tpm_limit ?? '', help: 'Empty: no tenant-wide limit.', check: limitCheck }),
      );
    }
    return form({
      fields: fs, submit: 'Save', cancel: close, label: `Edit tenant ${t.slug}`,
      onSubmit: async (v) => {
        const body = { name: v.name.trim() };
        if (platform) { body.rpm_limit = num(v.rpm_limit); body.tpm_limit = num(v.tpm_limit); }
        await ctx.api.patch(`/api/v1/tenants/${encodeURIComponent(t.id)}`, body);
        await changed(`Tenant ${t.slug} was saved.`);
      },
    }).el;
  }

  clear(root);
  const head = heading('Tenants');
  append(root, [head, alert.el, status.el]);

  if (platform) {
    const create = disclosure('Create tenant', (close) => {
      const fs = [
        field({ name: 'slug', label: 'Slug', required: true, maxlength: 63, help: 'Lower-case letters, digits and "-", used in URLs and logs.', check: (v) => (SLUG_RE.test(v) ? null : 'Use lower-case letters, digits and "-", not starting with "-" (at most 63).') }),
        field({ name: 'name', label: 'Name', required: true, maxlength: 200 }),
        field({ name: 'rpm_limit', label: 'Requests per minute (all keys)', type: 'number', min: 1, integer: true, help: 'Optional.', check: limitCheck }),
        field({ name: 'tpm_limit', label: 'Tokens per minute (all keys)', type: 'number', min: 1, integer: true, help: 'Optional.', check: limitCheck }),
      ];
      return form({
        fields: fs, submit: 'Create tenant', cancel: close, label: 'Create tenant',
        conflict: ['slug', (v) => `The slug "${v.slug.trim()}" is taken: pick another.`],
        onSubmit: async (v) => {
          const body = { slug: v.slug.trim(), name: v.name.trim() };
          if (num(v.rpm_limit) !== null) body.rpm_limit = num(v.rpm_limit);
          if (num(v.tpm_limit) !== null) body.tpm_limit = num(v.tpm_limit);
          const t = await ctx.api.post('/api/v1/tenants', body);
          close();
          await changed(`Tenant ${t.slug} was created.`);
        },
      }).el;
    });
    head.actions.append(create.button);
    root.append(create.area);
  }
  root.append(section('All tenants', listArea));
  await refresh();
}
