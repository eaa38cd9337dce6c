import { h, append as domAppend, uid } from '../dom.js';
import { DASH, money, time, confirm as uiConfirm, secretOnce as uiSecretOnce, errorText as uiErrorText } from '../ui.js';

// _kit.js: small building blocks shared by the admin views (tenants, tenant, budgets, users,
// providers, routes, prices, tokens, audit, profile). Every value is put in the page as text
// (textContent / createTextNode / attributes), never parsed as HTML.

// el(tag, props, ...children): dom.js's h(), with `on: {event: fn}` for listeners. Strings are
// text nodes; href/src accept only same-origin forms (dom.js refuses the rest).
export function el(tag, props, ...children) {
  if (props && props.on && typeof props === 'object' && !(props instanceof Node)) {
    const { on, ...rest } = props;
    for (const [ev, fn] of Object.entries(on)) rest[`on${ev[0].toUpperCase()}${ev.slice(1)}`] = fn;
    props = rest;
  }
  return h(tag, props || null, ...children);
}

export function append(parent, children) {
  return domAppend(parent, children);
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export { DASH, money, time };

// A value for a table cell: missing (undefined/null) shows as a dash.
export function val(v) {
  return v === undefined || v === null || v === '' ? DASH : String(v);
}

export { uid };

// ---- roles ----------------------------------------------------------------------------------

const RANK = { viewer: 1, member: 2, admin: 3, owner: 4 };

export function isPlatform(ctx) {
  if (typeof ctx.can === 'function') return !!ctx.can('platform');
  return !!(ctx.me && ctx.me.is_platform_admin);
}

export function roleIn(ctx, tid) {
  const m = (ctx.me && ctx.me.memberships || []).find((x) => x.tenant_id === tid);
  return m ? m.role : null;
}

// 'read' | 'write' (member) | 'admin' | 'owner' in tenant tid.
export function can(ctx, action, tid) {
  if (typeof ctx.can === 'function') return !!ctx.can(action, tid);
  if (ctx.me && ctx.me.is_platform_admin) return true;
  if (action === 'platform') return false;
  const r = RANK[roleIn(ctx, tid)] || 0;
  const need = { read: 1, write: 2, admin: 3, owner: 4 }[action] || 99;
  return r >= need;
}

export function setTitle(ctx, title) {
  if (typeof ctx.setTitle === 'function') ctx.setTitle(title);
  else document.title = `${title} · Tollgate`;
}

export function go(ctx, hash) {
  if (typeof ctx.navigate === 'function') ctx.navigate(hash);
  else location.hash = hash;
}

// ---- page pieces ----------------------------------------------------------------------------

// The page's title row; buttons go in its .actions.
export function heading(text) {
  const actions = el('div', { class: 'page-actions' });
  const head = el('div', { class: 'page-header' }, el('h1', { id: 'page-title' }, text), actions);
  head.actions = actions;
  return head;
}

export function section(title, ...children) {
  const id = uid('sec');
  return el('section', { class: 'card', 'aria-labelledby': id }, el('h2', { id }, title), ...children);
}

export function emptyState(...text) {
  return el('div', { class: 'empty' }, el('p', null, ...text));
}

// An alert region: role=alert, filled when there is something to say.
export function alertBox() {
  const box = el('div', { class: 'alert', role: 'alert' });
  box.hidden = true;
  return {
    el: box,
    show(msg, kind = 'error') { box.className = `alert alert-${kind}`; box.textContent = msg; box.hidden = false; },
    clear() { box.textContent = ''; box.hidden = true; },
  };
}

// A status line for successes (role=status, polite).
export function statusBox() {
  const box = el('div', { class: 'alert alert-ok', role: 'status' });
  box.hidden = true;
  return {
    el: box,
    show(msg) { box.textContent = msg; box.hidden = false; },
    clear() { box.textContent = ''; box.hidden = true; },
  };
}

export function errorText(err) {
  if (!err) return 'Something went wrong.';
  return uiErrorText(err);
}

// ---- tables ---------------------------------------------------------------------------------

// columns: [{label, cell: (row) => string|Node, class?}]; empty: words for no rows.
export function table({ columns, rows, empty, caption }) {
  if (!rows || rows.length === 0) return emptyState(empty || 'Nothing here yet.');
  const thead = el('thead', null, el('tr', null, columns.map((c) => el('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = el('tbody');
  for (const r of rows) tbody.append(rowOf(columns, r));
  const t = el('table', { class: 'data' }, caption ? el('caption', { class: 'visually-hidden' }, caption) : null, thead, tbody);
  return el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || 'Table' }, t);
}

export function rowOf(columns, r) {
  return el('tr', null, columns.map((c) => {
    let v = c.cell(r);
    if (v === undefined || v === null || v === '') v = DASH;
    return el('td', { class: c.class, 'data-label': c.label }, v);
  }));
}

// A list read page by page with "Load more": load(cursor) resolves {data, next_cursor}.
export async function pagedTable({ columns, empty, load, caption }) {
  const wrap = el('div', { class: 'paged' });
  const first = await load(null);
  const rows = first.data || [];
  if (rows.length === 0) { wrap.append(emptyState(empty)); return wrap; }
  const tableWrap = table({ columns, rows, caption });
  wrap.append(tableWrap);
  const tbody = tableWrap.querySelector('tbody');
  let cursor = first.next_cursor;
  const more = el('button', { type: 'button', class: 'btn' }, 'Load more');
  const status = alertBox();
  more.addEventListener('click', async () => {
    more.disabled = true;
    more.setAttribute('aria-busy', 'true');
    more.textContent = 'Loading…';
    try {
      const page = await load(cursor);
      for (const r of page.data || []) tbody.append(rowOf(columns, r));
      cursor = page.next_cursor;
    } catch (err) {
      status.show(errorText(err));
    } finally {
      more.disabled = false;
      more.removeAttribute('aria-busy');
      more.textContent = 'Load more';
      more.hidden = !cursor;
    }
  });
  more.hidden = !cursor;
  wrap.append(el('div', { class: 'pager' }, more), status.el);
  return wrap;
}

// Reads every page (for short configuration lists, capped).
export async function loadAll(api, path, query = {}, max = 2000) {
  const out = [];
  let cursor = null;
  do {
    const page = await api.get(path, { ...query, limit: 200, ...(cursor ? { cursor } : {}) });
    out.push(...(page.data || []));
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// ---- forms ----------------------------------------------------------------------------------

// A labelled field. spec: {name, label, type ('text'|'email'|'password'|'number'|'select'|
// 'checkbox'|'textarea'|'datetime-local'), value, required, options [{value,label}], help,
// check(value, values) -> message|null, min, max, step, maxlength, pattern, autocomplete}.
export function field(spec) {
  const id = uid('fld');
  const errId = `${id}-err`;
  const helpId = spec.help ? `${id}-help` : null;
  let input;
  const type = spec.type || 'text';
  const common = {
    id, name: spec.name, 'aria-describedby': [helpId, errId].filter(Boolean).join(' '),
    required: spec.required ? true : null, autocomplete: spec.autocomplete || (type === 'password' ? 'new-password' : 'off'),
  };
  if (type === 'select') {
    input = el('select', common, (spec.options || []).map((o) => el('option', { value: o.value }, o.label)));
    if (spec.value !== undefined && spec.value !== null) input.value = String(spec.value);
  } else if (type === 'textarea') {
    input = el('textarea', { ...common, rows: spec.rows || 3 });
    input.value = spec.value ?? '';
  } else if (type === 'checkbox') {
    input = el('input', { ...common, type: 'checkbox', autocomplete: null });
    input.checked = !!spec.value;
  } else {
    input = el('input', {
      ...common, type, min: spec.min, max: spec.max, step: spec.step, maxlength: spec.maxlength,
      inputmode: spec.inputmode, placeholder: spec.placeholder, spellcheck: type === 'text' ? 'false' : null,
    });
    input.value = spec.value ?? '';
  }
  const err = el('p', { id: errId, class: 'field-error', 'aria-live': 'polite' });
  const label = el('label', { for: id }, spec.label, spec.required ? el('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
  const wrap = type === 'checkbox'
    ? el('div', { class: 'field field-check', dataset: { field: spec.name } }, input, label, spec.help ? el('p', { id: helpId, class: 'hint' }, spec.help) : null, err)
    : el('div', { class: 'field', dataset: { field: spec.name } }, label, input, spec.help ? el('p', { id: helpId, class: 'hint' }, spec.help) : null, err);
  const f = {
    spec, el: wrap, input,
    get() {
      if (type === 'checkbox') return input.checked;
      return input.value;
    },
    set(v) { if (type === 'checkbox') input.checked = !!v; else input.value = v ?? ''; },
    setError(msg) {
      err.textContent = msg || '';
      if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    },
    // Checks the value; returns the message (also shown) or null.
    check(values) {
      if (wrap.hidden) { f.setError(''); return null; }
      const v = f.get();
      let msg = null;
      if (spec.required && type !== 'checkbox' && String(v).trim() === '') msg = `${spec.label} is required.`;
      else if (type === 'number' && String(v).trim() !== '') {
        const n = Number(v);
        if (!Number.isFinite(n)) msg = `${spec.label} must be a number.`;
        else if (spec.integer && !Number.isInteger(n)) msg = `${spec.label} must be a whole number.`;
        else if (spec.min !== undefined && n < Number(spec.min)) msg = `${spec.label} must be at least ${spec.min}.`;
        else if (spec.max !== undefined && n > Number(spec.max)) msg = `${spec.label} must be at most ${spec.max}.`;
      }
      if (!msg && spec.check && !(String(v).trim() === '' && !spec.required)) msg = spec.check(v, values) || null;
      f.setError(msg);
      return msg;
    },
  };
  return f;
}

// A form of fields: validates each field as it is typed in, and all on submit; onSubmit(values)
// may throw an API error, shown next to the field it names (or above the button).
// opts: {fields, submit (button text), onSubmit, fieldFor(apiField) -> name, cancel, class}
export function form(opts) {
  const fields = opts.fields;
  const byName = new Map(fields.map((f) => [f.spec.name, f]));
  const alert = alertBox();
  const button = el('button', { type: 'submit', class: opts.danger ? 'btn btn-danger' : 'btn btn-primary' }, opts.submit || 'Save');
  const cancel = opts.cancel ? el('button', { type: 'button', class: 'btn', on: { click: opts.cancel } }, 'Cancel') : null;
  const f = el('form', { class: `form ${opts.class || ''}`.trim(), novalidate: true, 'aria-label': opts.label || null },
    fields.map((x) => x.el), opts.extra || null, alert.el, el('div', { class: 'form-actions' }, button, cancel));
  const values = () => Object.fromEntries(fields.map((x) => [x.spec.name, x.get()]));
  for (const x of fields) {
    const ev = x.spec.type === 'checkbox' || x.spec.type === 'select' ? 'change' : 'input';
    x.input.addEventListener(ev, () => { x.check(values()); alert.clear(); });
    x.input.addEventListener('blur', () => x.check(values()));
  }
  let busy = false;
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy) return;
    alert.clear();
    const vals = values();
    let firstBad = null;
    for (const x of fields) if (x.check(vals) && !firstBad) firstBad = x;
    if (firstBad) { (firstBad.focus ? firstBad.focus() : firstBad.input.focus()); return; }
    if (opts.validate) {
      // a message for the form, or [field name, message] for one field
      const extra = opts.validate(vals);
      if (Array.isArray(extra) && byName.has(extra[0])) {
        const x = byName.get(extra[0]);
        x.setError(extra[1]);
        x.input.focus();
        return;
      }
      if (extra) { alert.show(String(extra)); return; }
    }
    busy = true;
    button.disabled = true;
    f.setAttribute('aria-busy', 'true');
    const label = button.textContent;
    button.textContent = opts.busyText || 'Saving…';
    try {
      await opts.onSubmit(vals, f);
    } catch (err) {
      // a 409 is about the unique field (a slug, a name, an alias, an email), whether or not the
      // API names it: say it with the value the person typed
      if (err && err.status === 409 && opts.conflict && byName.has(opts.conflict[0])
          && (!err.field || err.field === opts.conflict[0])) {
        err.field = opts.conflict[0];
        err.message = opts.conflict[1](vals);
      }
      showApiError(err, { byName, alert, fieldFor: opts.fieldFor });
    } finally {
      busy = false;
      button.disabled = false;
      f.removeAttribute('aria-busy');
      button.textContent = label;
    }
  });
  return { el: f, fields: byName, alert, values, button };
}

export function showApiError(err, { byName, alert, fieldFor }) {
  const apiField = err && err.field;
  let name = apiField ? (fieldFor ? fieldFor(apiField) : apiField) : null;
  if (name && !byName.has(name) && apiField) {
    const root = String(apiField).split(/[.[]/)[0];
    if (byName.has(root)) name = root;
  }
  const target = name && byName.get(name);
  if (target && !target.el.hidden) {
    target.setError(errorText(err));
    if (target.focus) target.focus(); else target.input.focus();
  } else {
    alert.show(errorText(err));
  }
}

// Numbers from form strings: '' is null.
export function num(v) {
  const s = String(v ?? '').trim();
  return s === '' ? null : Number(s);
}

export function str(v) {
  const s = String(v ?? '').trim();
  return s === '' ? null : s;
}

// A <dialog> asking to confirm; resolves true or false (Escape and Cancel say no).
export function confirm(message, { confirmLabel = 'Confirm', danger = true } = {}) {
  return uiConfirm(message, { confirm: confirmLabel, danger });
}

// A button that asks first, runs act(), reports errors in `alert`.
export function dangerButton(text, { message, confirmLabel, act, alert, label }) {
  const b = el('button', { type: 'button', class: 'btn btn-danger btn-small', 'aria-label': label || null }, text);
  b.addEventListener('click', async () => {
    if (!(await confirm(message, { confirmLabel: confirmLabel || text }))) { b.focus(); return; }
    b.disabled = true;
    b.setAttribute('aria-busy', 'true');
    try {
      await act();
    } catch (err) {
      if (alert) alert.show(errorText(err)); else throw err;
    } finally {
      if (b.isConnected) { b.disabled = false; b.removeAttribute('aria-busy'); }
    }
  });
  return b;
}

// A secret shown this once, with a copy button and a warning.
export function secretOnce(secret, what = 'secret') {
  return uiSecretOnce(secret, { label: `The new ${what}`, what });
}

// A toggled area: a button that shows or hides `body` (for add/edit forms).
export function disclosure(buttonText, build, { open = false, buttonClass = 'btn btn-primary' } = {}) {
  const area = el('div', { class: 'disclosure-body' });
  area.hidden = true;
  const b = el('button', { type: 'button', class: buttonClass, 'aria-expanded': 'false' }, buttonText);
  const close = () => { area.hidden = true; clear(area); b.setAttribute('aria-expanded', 'false'); b.focus(); };
  const openIt = () => {
    clear(area);
    area.append(build(close));
    area.hidden = false;
    b.setAttribute('aria-expanded', 'true');
    const first = area.querySelector('input, select, textarea');
    if (first) first.focus();
  };
  b.addEventListener('click', () => (area.hidden ? openIt() : close()));
  if (open) openIt();
  return { button: b, area, close, open: openIt };
}

// Query strings for hash routes: #/path?a=1&b=2
export function hashWith(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// datetime-local value (UTC) <-> RFC 3339
export function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().slice(0, 16);
}

export function fromLocalInput(v) {
  const s = String(v || '').trim();
  if (!s) return null;
  const d = new Date(`${s.length === 16 ? `${s}:00` : s}Z`);
  return Number.isNaN(d.getTime()) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const ROLES = ['owner', 'admin', 'member', 'viewer'];

// PUT through the shell's api (members, prices).
export function put(api, path, body) {
  if (typeof api.put === 'function') return api.put(path, body);
  if (typeof api.request === 'function') return api.request('PUT', path, body);
  throw new Error('PUT is not available');
}

export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
