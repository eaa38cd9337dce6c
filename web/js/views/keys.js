// #/t/:tid/keys: a tenant's virtual keys: list with filters (in the URL), cursor pages, and
// (member+) the create form; the new key's secret is shown once, with a copy button.
import { h, replace } from '../dom.js';
import { form, table, pager, alert, badge, time, secretOnce, empty, pageHeader, section, filters, DASH } from '../ui.js';

const INT_MAX = 2147483647;

export function localInput(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// The route aliases a key may list: the routes every signed-in user can read.
export async function routeAliases(api) {
  try {
    const rows = await api.all('/routes', {}, 1000);
    return rows.map((r) => r.alias).sort();
  } catch {
    return [];
  }
}

// The fields of a key, for create and edit. `key` fills them in (edit).
export function keyFields({ aliases, key = null, members = null, me }) {
  const models = key ? key.models : [];
  const options = [...new Set([...aliases, ...models])].sort().map((a) => ({ value: a, label: a }));
  const limit = (name, label, hint) => ({
    name, label, type: 'number', min: 1, max: INT_MAX, step: 1, value: key && key[name] != null ? String(key[name]) : '',
    hint, inputmode: 'numeric',
  });
  const fields = [
    { name: 'name', label: 'Name', required: true, maxlength: 200, value: key ? key.name : '', hint: 'What uses this key, e.g. checkout-service.',
      validate: (v) => (v.trim() === '' ? 'Name is required.' : new TextEncoder().encode(v).length > 200 ? 'Name takes at most 200 bytes.' : null) },
    { name: 'models', label: 'Allowed models', type: 'checkboxes', options, value: models,
      noOptions: 'No routes exist yet: a platform admin adds routes first. A key without models can call nothing.',
      hint: 'The route aliases this key may call; a key with none can call nothing.' },
    limit('rpm_limit', 'Requests per minute', 'Empty: no limit of its own (the tenant\'s limit still applies).'),
    limit('tpm_limit', 'Tokens per minute', 'Empty: no limit of its own.'),
    { name: 'expires_at', label: 'Expires', type: 'datetime-local', value: localInput(key && key.expires_at),
      hint: 'Empty: never expires. Your local time.',
      validate: (v) => (v && new Date(v).getTime() <= Date.now() ? 'The expiry must be in the future.' : null) },
  ];
  if (members && !key) {
    fields.push({ name: 'owner_user_id', label: 'Owner', type: 'select', value: me.id,
      options: members.map((m) => ({ value: m.user_id, label: `${m.name || m.email} (${m.role})` })),
      hint: 'The member who owns the key and may manage it.' });
  }
  return fields;
}

export async function render(root, ctx, params, query) {
  const { api, me } = ctx;
  const tid = params.tid;
  const tenant = await api.get(`/tenants/${tid}`); // 404 for a tenant the caller has no role in
  ctx.setTitle(`Keys — ${tenant.name}`);
  const canCreate = ctx.can('write', tid);
  const isAdmin = ctx.can('admin', tid);

  const createArea = h('div', { id: 'create-key-area' });
  const createBtn = canCreate ? h('button', { type: 'button', class: 'btn btn-primary', id: 'create-key', 'aria-expanded': 'false', 'aria-controls': 'create-key-area' }, 'Create key') : null;
  const listEl = h('div', { id: 'keys-list' });
  root.append(pageHeader(`Keys — ${tenant.name}`, createBtn), createArea);

  const status = ['active', 'revoked', 'expired'].includes(query.status) ? query.status : '';
  const owner = query.owner === 'me' ? 'me' : '';
  root.append(filters({
    fields: [
      { name: 'status', label: 'Status', type: 'select', value: status,
        options: [{ value: '', label: 'Any' }, { value: 'active', label: 'Active' }, { value: 'revoked', label: 'Revoked' }, { value: 'expired', label: 'Expired' }] },
      { name: 'owner', label: 'Owner', type: 'select', value: owner,
        options: [{ value: '', label: 'Anyone' }, { value: 'me', label: 'Me' }] },
    ],
    onApply: (v) => ctx.setQuery({ status: v.status, owner: v.owner }),
  }), listEl);

  async function loadList() {
    replace(listEl, h('p', { class: 'loading' }, 'Loading keys…'));
    const page = await api.get(`/tenants/${tid}/keys`, {
      status: status || undefined, owner_user_id: owner === 'me' ? me.id : undefined, limit: 50, cursor: query.cursor,
    });
    const filtered = status || owner;
    const here = (extra) => `#/t/${tid}/keys?${new URLSearchParams(Object.entries({ status, owner, ...extra }).filter(([, v]) => v)).toString()}`;
    replace(listEl,
      table({
        caption: 'Keys',
        columns: [
          { label: 'Name', value: (k) => h('a', { href: `#/t/${tid}/keys/${k.id}` }, k.name) },
          { label: 'Key', value: (k) => h('code', null, `tg-…${k.last4}`) },
          { label: 'Status', value: (k) => badge(k.status) },
          { label: 'Models', value: (k) => (k.models.length ? k.models.join(', ') : 'none') },
          { label: 'RPM', numeric: true, value: (k) => (k.rpm_limit ?? DASH) },
          { label: 'TPM', numeric: true, value: (k) => (k.tpm_limit ?? DASH) },
          { label: 'Expires', value: (k) => (k.expires_at ? time(k.expires_at) : 'never') },
          { label: 'Created', value: (k) => time(k.created_at) },
        ],
        rows: page.data,
        empty: filtered
          ? empty('No key matches these filters.', h('a', { href: `#/t/${tid}/keys` }, 'Show every key'))
          : empty(canCreate ? 'No keys yet — create one with "Create key" above.' : 'No keys yet. A member of this tenant creates them.'),
      }),
      pager(page.next_cursor, { href: (c) => here({ cursor: c }) }, { first: query.cursor ? here({}) : null }));
  }

  if (createBtn) {
    let aliases = null;
    let members = null;
    createBtn.addEventListener('click', async () => {
      if (createBtn.getAttribute('aria-expanded') === 'true') {
        replace(createArea);
        createBtn.setAttribute('aria-expanded', 'false');
        return;
      }
      createBtn.setAttribute('aria-expanded', 'true');
      replace(createArea, h('p', { class: 'loading' }, 'Loading…'));
      if (!aliases) aliases = await routeAliases(api);
      if (isAdmin && !members) {
        try { members = await api.all(`/tenants/${tid}/members`, {}, 1000); } catch { members = null; }
      }
      showCreate();
    });
    const showCreate = () => {
      const f = form({
        id: 'create-key-form',
        submit: 'Create key',
        busy: 'Creating…',
        fields: [...keyFields({ aliases, members: isAdmin ? members : null, me }),
          ...(isAdmin ? [{ name: 'budget_usd', label: 'Monthly budget (USD)', type: 'number', min: 0, max: 1000000000, step: 'any',
            hint: 'Optional: a spend limit for this key per calendar month (UTC).' }] : [])],
        cancel: h('button', { type: 'button', class: 'btn', onClick: () => { replace(createArea); createBtn.setAttribute('aria-expanded', 'false'); createBtn.focus(); } }, 'Cancel'),
        onSubmit: async (v) => {
          const body = { name: v.name.trim(), models: v.models };
          if (v.rpm_limit != null) body.rpm_limit = v.rpm_limit;
          if (v.tpm_limit != null) body.tpm_limit = v.tpm_limit;
          if (v.expires_at) body.expires_at = v.expires_at;
          if (v.owner_user_id && v.owner_user_id !== me.id) body.owner_user_id = v.owner_user_id;
          const key = await api.post(`/tenants/${tid}/keys`, body);
          let budgetNote = null;
          if (v.budget_usd != null) {
            try {
              await api.post(`/tenants/${tid}/budgets`, { key_id: key.id, period: 'monthly', limit_usd: v.budget_usd });
            } catch (e) {
              budgetNote = alert(`The key was created, but its budget was not: ${e.message} Set it on the key's page.`);
            }
          }
          replace(createArea, section(`Key "${key.name}" created`,
            secretOnce(key.key, { label: 'The new key', what: 'key' }),
            budgetNote,
            h('p', null, h('a', { href: `#/t/${tid}/keys/${key.id}` }, 'Open the key\'s page'), ' · ',
              h('button', { type: 'button', class: 'btn btn-small', onClick: () => { replace(createArea); createBtn.setAttribute('aria-expanded', 'false'); createBtn.focus(); } }, 'Done'))));
          createArea.querySelector('.secret-value').focus();
          await loadList();
        },
      });
      replace(createArea, section('New key', f));
      f.control('name').focus();
    };
  }

  await loadList();
  return null;
}
