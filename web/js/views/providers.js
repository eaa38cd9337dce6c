// #/providers: the upstreams routes send to (platform admins only). Credentials are write-only:
// typed into password inputs, sent once, never shown back; the list shows only whether a
// provider has credentials and their names.
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, setTitle, pagedTable, time, errorText, str,
} from './_kit.js';

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const KINDS = ['openai', 'azure', 'anthropic', 'gemini', 'bedrock'];
const BASE_HINT = {
  openai: 'https://api.openai.com/v1, or an OpenAI-compatible server\'s /v1 root',
  azure: 'https://{resource}.openai.azure.com/openai',
  anthropic: 'https://api.anthropic.com/v1',
  gemini: 'https://generativelanguage.googleapis.com/v1beta',
  bedrock: 'https://bedrock-runtime.{region}.amazonaws.com',
};

function urlCheck(v) {
  const s = v.trim();
  if (!/^https?:\/\/[^\s\\/?#@]+/i.test(s)) return 'Start with http:// or https:// and a host, no user or password.';
  if (/[\s\\#]/.test(s)) return 'No spaces, "\\" or "#" in the URL.';
  return null;
}

// Extra headers as "Name: value" lines <-> an object.
function headersText(obj) {
  return Object.entries(obj || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}
function parseHeaders(text) {
  const out = {};
  for (const line of String(text || '').split('\n')) {
    if (!line.trim()) continue;
    const i = line.indexOf(':');
    if (i <= 0) throw Object.assign(new Error(`"${line.trim()}" is not "Name: value".`), { field: 'headers' });
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}
function headersCheck(v) {
  try { parseHeaders(v); return null; } catch (e) { return e.message; }
}

// The fields for a kind; on edit, credentials left empty are kept as stored.
function providerFields(p, editing) {
  const kind = p ? p.kind : 'openai';
  const fs = [
    field({ name: 'name', label: 'Name', required: true, value: p ? p.name : '', maxlength: 63, help: 'Lower-case letters, digits, ".", "_" and "-".', check: (v) => (NAME_RE.test(v) ? null : 'Use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit (at most 63).') }),
    field({ name: 'kind', label: 'Kind', type: 'select', options: KINDS.map((k) => ({ value: k, label: k })), value: kind }),
    field({ name: 'base_url', label: 'Base URL', type: 'url', required: true, value: p ? p.base_url : '', help: BASE_HINT[kind], check: urlCheck }),
    field({ name: 'region', label: 'AWS region', value: p && p.settings ? p.settings.region || '' : '', help: 'e.g. us-east-1', check: (v) => (/^[a-z0-9-]{1,64}$/.test(v.trim()) ? null : 'Lower-case letters, digits and "-", e.g. us-east-1.') }),
    field({ name: 'api_version', label: 'API version (optional)', value: p && p.settings ? p.settings.api_version || '' : '', maxlength: 64 }),
    field({ name: 'api_key', label: editing ? 'New API key' : 'API key', type: 'password', help: editing ? 'Leave empty to keep the stored credentials.' : 'Optional for OpenAI-compatible servers without auth.' }),
    field({ name: 'aws_access_key_id', label: editing ? 'New AWS access key id' : 'AWS access key id', type: 'password' }),
    field({ name: 'aws_secret_access_key', label: editing ? 'New AWS secret access key' : 'AWS secret access key', type: 'password' }),
    field({ name: 'aws_session_token', label: 'AWS session token (optional)', type: 'password' }),
    field({ name: 'headers', label: 'Extra upstream headers (optional)', type: 'textarea', value: p ? headersText(p.headers) : '', help: 'One "Name: value" per line. Secrets go in the credentials above.', check: headersCheck }),
  ];
  if (editing && p && p.has_credentials) {
    fs.push(field({ name: 'remove_credentials', label: 'Remove the stored credentials', type: 'checkbox' }));
  }
  const by = new Map(fs.map((x) => [x.spec.name, x]));
  const sync = () => {
    const k = by.get('kind').get();
    const bedrock = k === 'bedrock';
    by.get('region').el.hidden = !bedrock;
    by.get('region').spec.required = bedrock;
    by.get('api_key').el.hidden = bedrock;
    by.get('aws_access_key_id').el.hidden = !bedrock;
    by.get('aws_secret_access_key').el.hidden = !bedrock;
    by.get('aws_session_token').el.hidden = !bedrock;
    by.get('aws_access_key_id').spec.required = bedrock && !editing;
    by.get('aws_secret_access_key').spec.required = bedrock && !editing;
    by.get('api_version').el.hidden = bedrock || k === 'gemini';
    const help = by.get('base_url').el.querySelector('.hint');
    if (help) help.textContent = BASE_HINT[k];
  };
  by.get('kind').input.addEventListener('change', sync);
  sync();
  return fs;
}

function credentialsOf(v) {
  if (v.kind === 'bedrock') {
    if (!v.aws_access_key_id && !v.aws_secret_access_key && !v.aws_session_token) return null;
    const c = { aws_access_key_id: v.aws_access_key_id, aws_secret_access_key: v.aws_secret_access_key };
    if (v.aws_session_token) c.aws_session_token = v.aws_session_token;
    return c;
  }
  return v.api_key ? { api_key: v.api_key } : null;
}

function settingsOf(v, old) {
  const s = { ...(old || {}) };
  delete s.region;
  delete s.api_version;
  if (v.kind === 'bedrock' && str(v.region)) s.region = v.region.trim();
  if (v.kind !== 'bedrock' && v.kind !== 'gemini' && str(v.api_version)) s.api_version = v.api_version.trim();
  return s;
}

// API field names -> form fields (credentials.api_key, settings.region, headers.X...).
function fieldFor(f) {
  if (f.startsWith('credentials.')) return f.slice('credentials.'.length);
  if (f === 'credentials') return 'api_key';
  if (f.startsWith('settings.')) return f.slice('settings.'.length);
  if (f.startsWith('headers')) return 'headers';
  return f;
}

export async function render(root, ctx) {
  setTitle(ctx, 'Providers');
  clear(root);
  if (!isPlatform(ctx)) {
    append(root, [heading('Providers'), el('p', null, 'Providers are platform configuration: only platform admins see and change them.'),
      el('p', null, el('a', { href: '#/routes' }, 'See the routes'), ' to learn which models you can call.')]);
    return;
  }
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');
  const head = heading('Providers');

  async function refresh(message) {
    clear(listArea);
    const columns = [
      { label: 'Name', cell: (p) => el('span', { class: 'mono cell-text' }, p.name) },
      { label: 'Kind', cell: (p) => p.kind },
      { label: 'Base URL', cell: (p) => el('span', { class: 'mono cell-text' }, p.base_url) },
      {
        label: 'Credentials',
        cell: (p) => (p.has_credentials
          ? (p.credential_names ? `set: ${p.credential_names.join(', ')}` : 'set, but cannot be opened with the current master key')
          : 'none'),
      },
      { label: 'Updated', cell: (p) => time(p.updated_at) },
      {
        label: 'Actions',
        cell: (p) => {
          const edit = disclosure('Edit', (close) => {
            const fs = providerFields(p, true);
            return form({
              fields: fs, submit: 'Save provider', cancel: close, label: `Edit provider ${p.name}`, fieldFor,
              onSubmit: async (v) => {
                const body = {};
                if (v.name !== p.name) body.name = v.name;
                if (v.kind !== p.kind) body.kind = v.kind;
                if (v.base_url.trim() !== p.base_url) body.base_url = v.base_url.trim();
                const settings = settingsOf(v, p.settings);
                if (JSON.stringify(settings) !== JSON.stringify(p.settings || {})) body.settings = settings;
                const headers = parseHeaders(v.headers);
                if (JSON.stringify(headers) !== JSON.stringify(p.headers || {})) body.headers = headers;
                if (v.remove_credentials) body.credentials = null;
                else {
                  const c = credentialsOf(v);
                  if (c) body.credentials = c;
                }
                if (Object.keys(body).length === 0) { close(); status.show('Nothing to change.'); return; }
                await ctx.api.patch(`/api/v1/providers/${encodeURIComponent(p.id)}`, body);
                await refresh(`Provider ${v.name} was saved.`);
              },
            }).el;
          }, { buttonClass: 'btn btn-small' });
          edit.button.setAttribute('aria-label', `Edit ${p.name}`);
          return el('div', { class: 'row-actions' }, edit.button, dangerButton('Delete', {
            label: `Delete ${p.name}`,
            message: `Delete the provider "${p.name}" and its prices? A route that still sends to it must be changed first.`,
            confirmLabel: 'Delete provider',
            alert,
            act: async () => { await ctx.api.del(`/api/v1/providers/${encodeURIComponent(p.id)}`); await refresh(`Provider ${p.name} was deleted.`); },
          }), edit.area);
        },
      },
    ];
    try {
      listArea.append(await pagedTable({
        columns,
        empty: 'No providers yet — add one above, then a route that sends to it.',
        load: (cursor) => ctx.api.get('/api/v1/providers', cursor ? { cursor } : {}),
      }));
    } catch (err) {
      alert.show(`Could not load the providers: ${errorText(err)}`);
    }
    if (message) status.show(message);
  }

  const create = disclosure('Add provider', (close) => {
    const fs = providerFields(null, false);
    return form({
      fields: fs, submit: 'Add provider', cancel: close, label: 'Add provider', fieldFor,
      conflict: ['name', (v) => `A provider named "${v.name}" exists: pick another name.`],
      onSubmit: async (v) => {
        const body = { name: v.name, kind: v.kind, base_url: v.base_url.trim() };
        const c = credentialsOf(v);
        if (c) body.credentials = c;
        const settings = settingsOf(v, {});
        if (Object.keys(settings).length) body.settings = settings;
        const headers = parseHeaders(v.headers);
        if (Object.keys(headers).length) body.headers = headers;
        const p = await ctx.api.post('/api/v1/providers', body);
        close();
        await refresh(`Provider ${p.name} was added.`);
      },
    }).el;
  });
  head.actions.append(create.button);
  append(root, [head, alert.el, status.el, create.area, section('All providers', listArea)]);
  await refresh();
}
