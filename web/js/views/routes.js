// #/routes: model aliases and where they go: targets in fallback order with weights, the
// strategy, retry and timeout policy, cache. Everyone reads them; platform admins change them.
import {
  el, append, clear, heading, section, field, form, alertBox, statusBox, dangerButton, disclosure,
  isPlatform, setTitle, pagedTable, errorText, loadAll, num, uid,
} from './_kit.js';

const STRATEGIES = [
  { value: 'weighted', label: 'weighted (at random, in proportion to the weights)' },
  { value: 'least_busy', label: 'least busy (fewest requests in flight)' },
  { value: 'lowest_latency', label: 'lowest latency (time to first byte)' },
  { value: 'cheapest', label: 'cheapest (lowest estimated cost of each request)' },
];

function intIn(lo, hi, what = 'a whole number') {
  return (v) => {
    const n = Number(v);
    return Number.isInteger(n) && n >= lo && n <= hi ? null : `Use ${what} from ${lo} to ${hi}.`;
  };
}

function parseStatuses(v) {
  const parts = String(v || '').split(/[\s,]+/).filter(Boolean);
  const out = [];
  for (const p of parts) {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 400 || n > 599) throw new Error(`"${p}" is not a status from 400 to 599.`);
    out.push(n);
  }
  if (out.length > 32) throw new Error('At most 32 statuses.');
  return out;
}

function ms(v) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return 'none';
  return v >= 1000 && v % 1000 === 0 ? `${v / 1000} s` : `${v} ms`;
}

function retryText(r) {
  if (!r || Object.keys(r).length === 0) return 'data plane defaults';
  const parts = [];
  if (r.max_attempts !== undefined) parts.push(`${r.max_attempts} attempts per target`);
  if (r.backoff_ms !== undefined) parts.push(`backoff ${r.backoff_ms} ms`);
  if (r.on_status !== undefined) parts.push(`on ${r.on_status.length ? r.on_status.join(', ') : 'no status'}`);
  return parts.join('; ');
}

// The targets editor: a field-like object named "targets" (API errors such as
// targets[1].model are shown under it, naming the row).
function targetsEditor(providers, initial) {
  const legendId = uid('lg');
  const errId = `${legendId}-err`;
  const rowsEl = el('ol', { class: 'targets' });
  const err = el('p', { id: errId, class: 'field-error', 'aria-live': 'polite' });
  const add = el('button', { type: 'button', class: 'btn btn-small' }, 'Add target');
  const fs = el('fieldset', { class: 'field targets-field', 'aria-describedby': errId, dataset: { field: 'targets' } },
    el('legend', { id: legendId }, 'Targets, in fallback order'), rowsEl, add, err);
  const rows = [];

  function renumber() {
    rows.forEach((r, i) => {
      r.num.textContent = `Target ${i + 1}`;
      r.up.disabled = i === 0;
      r.down.disabled = i === rows.length - 1;
      r.remove.disabled = rows.length === 1;
      r.up.setAttribute('aria-label', `Move target ${i + 1} up`);
      r.down.setAttribute('aria-label', `Move target ${i + 1} down`);
      r.remove.setAttribute('aria-label', `Remove target ${i + 1}`);
    });
  }

  function addRow(t = {}) {
    const pid = uid('tp'); const mid = uid('tm'); const wid = uid('tw');
    const sel = el('select', { id: pid }, providers.map((p) => el('option', { value: p.id }, p.name)));
    if (t.provider_id) sel.value = t.provider_id;
    const model = el('input', { id: mid, type: 'text', value: t.model || '', maxlength: 256, autocomplete: 'off', spellcheck: 'false' });
    const weight = el('input', { id: wid, type: 'number', min: 0, max: 1000000, step: 1, value: t.weight ?? 1, inputmode: 'numeric' });
    const r = {
      sel, model, weight,
      info: t.info || null, // an admin's model info override (API only): kept as it is on save
      num: el('span', { class: 'target-num' }),
      up: el('button', { type: 'button', class: 'btn btn-small' }, '↑'),
      down: el('button', { type: 'button', class: 'btn btn-small' }, '↓'),
      remove: el('button', { type: 'button', class: 'btn btn-small' }, 'Remove'),
    };
    r.li = el('li', { class: 'target-row' }, r.num,
      el('div', { class: 'field' }, el('label', { for: pid }, 'Provider'), sel),
      el('div', { class: 'field' }, el('label', { for: mid }, 'Provider model'), model),
      el('div', { class: 'field narrow' }, el('label', { for: wid }, 'Weight'), weight),
      el('div', { class: 'row-actions' }, r.up, r.down, r.remove));
    r.up.addEventListener('click', () => move(r, -1));
    r.down.addEventListener('click', () => move(r, 1));
    r.remove.addEventListener('click', () => {
      rows.splice(rows.indexOf(r), 1);
      r.li.remove();
      renumber();
      (rows[0] && rows[0].model).focus();
    });
    rows.push(r);
    rowsEl.append(r.li);
    renumber();
    return r;
  }

  function move(r, d) {
    const i = rows.indexOf(r);
    const j = i + d;
    if (j < 0 || j >= rows.length) return;
    rows.splice(i, 1);
    rows.splice(j, 0, r);
    clear(rowsEl);
    for (const x of rows) rowsEl.append(x.li);
    renumber();
    (d < 0 ? r.up : r.down).disabled ? r.model.focus() : (d < 0 ? r.up : r.down).focus();
  }

  add.addEventListener('click', () => addRow().model.focus());
  for (const t of (initial && initial.length ? initial : [{}])) addRow(t);

  const f = {
    spec: { name: 'targets', label: 'Targets' },
    el: fs,
    input: fs,
    get() {
      return rows.map((r) => ({ provider_id: r.sel.value, model: r.model.value.trim(), weight: r.weight.value.trim() === '' ? 1 : Number(r.weight.value), ...(r.info ? { info: r.info } : {}) }));
    },
    set() {},
    setError(msg) {
      err.textContent = msg || '';
      for (const r of rows) r.model.removeAttribute('aria-invalid');
      const m = /^Target (\d+)/.exec(msg || '');
      if (m && rows[m[1] - 1]) rows[m[1] - 1].model.setAttribute('aria-invalid', 'true');
    },
    check() {
      let msg = null;
      const ts = f.get();
      if (providers.length === 0) msg = 'Add a provider first: a target sends to one.';
      else if (ts.length === 0) msg = 'Add at least one target.';
      else if (ts.length > 64) msg = 'At most 64 targets.';
      else {
        ts.forEach((t, i) => {
          if (msg) return;
          if (!t.model) msg = `Target ${i + 1}: the provider model is required.`;
          else if (!Number.isInteger(t.weight) || t.weight < 0 || t.weight > 1000000) msg = `Target ${i + 1}: the weight is a whole number from 0 to 1000000.`;
        });
        if (!msg && ts.reduce((a, t) => a + t.weight, 0) <= 0) msg = 'The weights must add up to more than 0.';
      }
      f.setError(msg);
      return msg;
    },
    focus() { (rows[0] && rows[0].model).focus(); },
  };
  return f;
}

function routeFields(r, providers) {
  const retry = (r && r.retry) || {};
  return [
    field({ name: 'alias', label: 'Alias (the model clients ask for)', required: true, value: r ? r.alias : '', maxlength: 256 }),
    field({ name: 'strategy', label: 'Strategy (how the first target is picked)', type: 'select', options: STRATEGIES, value: r ? r.strategy : 'weighted' }),
    targetsEditor(providers, r ? r.targets : []),
    field({ name: 'max_attempts', label: 'Retry: attempts per target', type: 'number', min: 1, max: 10, integer: true, value: retry.max_attempts ?? '', help: 'Empty: the data plane default (2).', check: intIn(1, 10) }),
    field({ name: 'on_status', label: 'Retry on statuses', value: retry.on_status ? retry.on_status.join(', ') : '', help: 'Comma-separated, 400-599. Empty: 429, 500, 502, 503, 504, 529.', check: (v) => { try { parseStatuses(v); return null; } catch (e) { return e.message; } } }),
    field({ name: 'backoff_ms', label: 'Retry backoff (ms)', type: 'number', min: 0, max: 60000, integer: true, value: retry.backoff_ms ?? '', help: 'Empty: 200 ms.', check: intIn(0, 60000) }),
    field({ name: 'connect_timeout_ms', label: 'Connect timeout (ms)', type: 'number', min: 1, max: 3600000, integer: true, value: r ? r.connect_timeout_ms : 10000, check: intIn(1, 3600000) }),
    field({ name: 'timeout_ms', label: 'Attempt timeout (ms)', type: 'number', min: 1, max: 3600000, integer: true, value: r ? r.timeout_ms : 600000, check: intIn(1, 3600000) }),
    field({ name: 'first_byte_timeout_ms', label: 'First byte timeout (ms, 0 for none)', type: 'number', min: 0, max: 3600000, integer: true, value: r ? r.first_byte_timeout_ms : 0, check: intIn(0, 3600000) }),
    field({ name: 'idle_timeout_ms', label: 'Idle timeout (ms, 0 for none)', type: 'number', min: 0, max: 3600000, integer: true, value: r ? r.idle_timeout_ms : 0, check: intIn(0, 3600000) }),
    field({ name: 'cache_ttl_s', label: 'Response cache (seconds, 0 for off)', type: 'number', min: 0, max: 2678400, integer: true, value: r ? r.cache_ttl_s : 0, check: intIn(0, 2678400) }),
  ];
}

function bodyOf(v) {
  const retry = {};
  if (num(v.max_attempts) !== null) retry.max_attempts = num(v.max_attempts);
  if (String(v.on_status).trim() !== '') retry.on_status = parseStatuses(v.on_status);
  if (num(v.backoff_ms) !== null) retry.backoff_ms = num(v.backoff_ms);
  const body = { alias: v.alias.trim(), strategy: v.strategy, targets: v.targets, retry };
  for (const k of ['connect_timeout_ms', 'timeout_ms', 'first_byte_timeout_ms', 'idle_timeout_ms', 'cache_ttl_s']) {
    if (num(v[k]) !== null) body[k] = num(v[k]);
  }
  return body;
}

function validateTimeouts(v) {
  const t = num(v.timeout_ms);
  if (t === null) return null;
  for (const [k, label] of [['connect_timeout_ms', 'connect'], ['first_byte_timeout_ms', 'first byte'], ['idle_timeout_ms', 'idle']]) {
    if (num(v[k]) !== null && num(v[k]) > t) return [k, `The ${label} timeout cannot be longer than the attempt timeout (${t} ms).`];
  }
  return null;
}

// retry.on_status -> on_status, targets[0].model -> targets (the editor names the row).
function fieldFor(f) {
  if (f.startsWith('retry.')) return f.slice('retry.'.length);
  if (f.startsWith('targets')) return 'targets';
  return f;
}

function targetList(r) {
  return el('ol', { class: 'plain' }, (r.targets || []).map((t) => el('li', null,
    el('span', { class: 'mono cell-text' }, `${t.provider}/${t.model}`), ` weight ${t.weight}`)));
}

export async function render(root, ctx) {
  setTitle(ctx, 'Routes');
  const platform = isPlatform(ctx);
  const alert = alertBox();
  const status = statusBox();
  const listArea = el('div');
  const head = heading('Routes');
  clear(root);
  let providers = [];
  if (platform) {
    try { providers = await loadAll(ctx.api, '/api/v1/providers'); } catch (err) { alert.show(`Could not load the providers: ${errorText(err)}`); }
  }

  function routeForm(r, close) {
    const fs = routeFields(r, providers);
    const f = form({
      fields: fs, submit: r ? 'Save route' : 'Add route', cancel: close, label: r ? `Edit route ${r.alias}` : 'Add route',
      fieldFor, validate: validateTimeouts,
      conflict: ['alias', (v) => `The alias "${v.alias.trim()}" is taken: every alias has one route.`],
      onSubmit: async (v) => {
        const body = bodyOf(v);
        if (r) await ctx.api.patch(`/api/v1/routes/${encodeURIComponent(r.id)}`, body);
        else await ctx.api.post('/api/v1/routes', body);
        if (!r) close();
        await refresh(`Route ${body.alias} was ${r ? 'saved' : 'added'}.`);
      },
    });
    return f.el;
  }

  async function refresh(message) {
    clear(listArea);
    const columns = [
      { label: 'Alias', cell: (r) => el('span', { class: 'mono cell-text' }, r.alias) },
      { label: 'Strategy', cell: (r) => r.strategy },
      { label: 'Targets (fallback order)', cell: targetList },
      { label: 'Retry', cell: (r) => retryText(r.retry) },
      { label: 'Timeouts', cell: (r) => `connect ${ms(r.connect_timeout_ms)}, attempt ${ms(r.timeout_ms)}, first byte ${ms(r.first_byte_timeout_ms)}, idle ${ms(r.idle_timeout_ms)}` },
      { label: 'Cache', cell: (r) => (r.cache_ttl_s ? `${r.cache_ttl_s} s` : 'off') },
    ];
    if (platform) {
      columns.push({
        label: 'Actions',
        cell: (r) => {
          const edit = disclosure('Edit', (close) => routeForm(r, close), { buttonClass: 'btn btn-small' });
          edit.button.setAttribute('aria-label', `Edit ${r.alias}`);
          return el('div', { class: 'row-actions' }, edit.button, dangerButton('Delete', {
            label: `Delete ${r.alias}`,
            message: `Delete the route "${r.alias}"? Clients asking for this model get an error at once.`,
            confirmLabel: 'Delete route',
            alert,
            act: async () => { await ctx.api.del(`/api/v1/routes/${encodeURIComponent(r.id)}`); await refresh(`Route ${r.alias} was deleted.`); },
          }), edit.area);
        },
      });
    }
    try {
      listArea.append(await pagedTable({
        columns,
        empty: platform
          ? (providers.length ? 'No routes yet — add one above.' : 'No routes yet — add a provider first, then a route.')
          : 'No routes yet — a platform admin adds them.',
        load: (cursor) => ctx.api.get('/api/v1/routes', cursor ? { cursor } : {}),
      }));
    } catch (err) {
      alert.show(`Could not load the routes: ${errorText(err)}`);
    }
    if (message) status.show(message);
  }

  append(root, [head, alert.el, status.el]);
  if (platform) {
    if (providers.length === 0) {
      root.append(el('p', { class: 'empty' }, 'No providers yet — ', el('a', { href: '#/providers' }, 'add one'), ' before adding a route.'));
    } else {
      const create = disclosure('Add route', (close) => routeForm(null, close));
      head.actions.append(create.button);
      root.append(create.area);
    }
  }
  root.append(section('All routes', listArea));
  await refresh();
}
