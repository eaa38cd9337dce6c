// ui.js: the shared components every view builds with. All of them render values as text.
import { h, replace, uid } from './dom.js';
import { ApiError } from './api.js';

export const DASH = '—';

// ---------- formatting ----------
const usdFmt2 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const usdFmt6 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 });
const numFmt = new Intl.NumberFormat('en-US');

// "$1,234.50"; small amounts keep up to 6 decimals ("$0.000123"); null/undefined is "—".
export function money(usd) {
  if (usd === null || usd === undefined || usd === '' || Number.isNaN(Number(usd))) return DASH;
  const n = Number(usd);
  return Math.abs(n) < 1 && n !== 0 ? usdFmt6.format(n) : usdFmt2.format(n);
}

export function num(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return DASH;
  return numFmt.format(Number(n));
}

export function pct(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return DASH;
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return DASH;
  const n = Number(v);
  return n >= 10000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

function pad(n) { return String(n).padStart(2, '0'); }
// "2026-12-07 13:05:09" in the browser's time zone.
export function timeText(ts) {
  if (!ts) return DASH;
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A <time> element (machine value in `datetime`, local time shown, UTC in the tooltip).
export function time(ts) {
  if (!ts) return DASH;
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, timeText(ts));
}

// ---------- page pieces ----------
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', { id: 'page-title' }, title),
    actions.flat().filter(Boolean).length ? h('div', { class: 'page-actions' }, actions) : null);
}

export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), children);
}

export function loading(what = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, what);
}

// An error region people notice (role=alert). kind: 'error' | 'warning' | 'info'.
export function alert(msg, kind = 'error') {
  return h('div', { class: `alert alert-${kind}`, role: 'alert' }, msg instanceof Error ? errorText(msg) : msg);
}

// A polite confirmation (role=status), e.g. "Saved".
export function notice(msg) {
  return h('div', { class: 'alert alert-ok', role: 'status' }, msg);
}

export function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 403) return `You are not allowed to do this. ${err.message}`;
    return err.message;
  }
  return (err && err.message) || String(err);
}

// An empty state in words: what is missing and what to do next; `action` is an optional link
// or button.
export function empty(text, action) {
  return h('div', { class: 'empty' }, h('p', null, text), action || null);
}

export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z0-9-]/gi, '')}` }, text);
}

export function link(href, text, props = {}) {
  return h('a', { href, ...props }, text);
}

// ---------- table ----------
// columns: [{label, value: row => string|number|Node, class?, numeric?}]
// rows: array; empty: text (or node) shown instead of the table when there are no rows.
export function table({ columns, rows, empty: emptyText = 'Nothing here yet.', caption, rowProps }) {
  if (!rows || rows.length === 0) {
    return emptyText instanceof Node ? emptyText : empty(emptyText);
  }
  const thead = h('thead', null, h('tr', null, columns.map((c) =>
    h('th', { scope: 'col', class: c.numeric ? 'num' : c.class }, c.label))));
  const tbody = h('tbody', null, rows.map((row) => h('tr', rowProps ? rowProps(row) : null,
    columns.map((c, i) => {
      let v = c.value(row);
      if (v === null || v === undefined || v === '') v = DASH;
      const props = { class: [c.numeric ? 'num' : '', c.class || ''].filter(Boolean).join(' ') || null };
      if (i === 0 && c.rowHeader) return h('th', { scope: 'row', ...props }, v);
      if (c.label) props['data-label'] = c.label;
      return h('td', props, v);
    }))));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || 'Table' },
    h('table', null, caption ? h('caption', { class: 'visually-hidden' }, caption) : null, thead, tbody));
}

// ---------- pager ----------
// pager(nextCursor, target): target is a function(cursor) called by a "Next page" button, or
// {href: cursor => '#/...'} for a link; `first` (a href or a function) adds "First page".
export function pager(nextCursor, target, { first } = {}) {
  const items = [];
  if (first) {
    items.push(typeof first === 'function'
      ? h('button', { type: 'button', class: 'btn', onClick: first }, 'First page')
      : h('a', { class: 'btn', href: first }, 'First page'));
  }
  if (nextCursor) {
    if (typeof target === 'function') {
      items.push(h('button', { type: 'button', class: 'btn', onClick: () => target(nextCursor) }, 'Next page'));
    } else if (target && target.href) {
      items.push(h('a', { class: 'btn', href: target.href(nextCursor), rel: 'next' }, 'Next page'));
    }
  }
  if (!items.length) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' }, items);
}

// ---------- confirm ----------
// Resolves true when the person confirms, false otherwise (Cancel, Escape).
export function confirm(message, { title = 'Are you sure?', confirm: okText = 'Confirm', danger = true } = {}) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const descId = uid('dlg');
    const ok = h('button', { type: 'submit', value: 'ok', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, okText);
    const cancel = h('button', { type: 'submit', value: 'cancel', class: 'btn', formnovalidate: true }, 'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': descId },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        h('p', { id: descId }, message),
        h('div', { class: 'form-actions' }, cancel, ok)));
    const prev = document.activeElement;
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'ok');
      dlg.remove();
      if (prev && prev.isConnected && prev.focus) prev.focus();
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// ---------- secret shown once ----------
export function secretOnce(secret, { label = 'New secret', what = 'key' } = {}) {
  const id = uid('secret');
  const input = h('input', { id, type: 'text', readOnly: true, value: secret, class: 'secret-value', spellcheck: 'false', autocomplete: 'off' });
  const status = h('span', { class: 'copy-status', role: 'status' });
  const copy = h('button', {
    type: 'button', class: 'btn btn-primary',
    onClick: async () => {
      input.select();
      let ok = false;
      try {
        await navigator.clipboard.writeText(secret);
        ok = true;
      } catch {
        try { ok = document.execCommand('copy'); } catch { ok = false; }
      }
      status.textContent = ok ? 'Copied.' : 'Copy failed: select the text and copy it by hand.';
    },
  }, 'Copy');
  return h('div', { class: 'secret-once' },
    h('p', { class: 'alert alert-warning', role: 'alert' },
      h('strong', null, `Copy this ${what} now. `),
      `It is shown only once: Tollgate keeps only a hash of it and cannot show it again. If it is lost, rotate the ${what} to get a new one.`),
    h('label', { for: id }, label),
    h('div', { class: 'secret-row' }, input, copy),
    status);
}

// ---------- forms ----------
// fields: [{name, label, type ('text'|'email'|'password'|'number'|'select'|'checkbox'|'textarea'|
//   'datetime-local'|'date'|'list'), value, required, min, max, step, minlength, maxlength, pattern,
//   options: [{value, label}] (select), hint, placeholder, autocomplete, validate: (value, all) =>
//   message|null, parse: raw => value}]
// submit: button text. onSubmit(values, api) may throw an ApiError: its `field` message is shown
// next to that field (`targets[0].model` goes to field `targets`), any other at the top of the
// form (role=alert). While it runs the button is disabled and says `busy` ("Saving…").
// Returns the <form>, with .values(), .setError(name, msg), .showError(err), .reset().
export function form({ fields, submit = 'Save', busy = 'Saving…', onSubmit, cancel, class: cls, id, live = true }) {
  const controls = new Map();
  const formAlert = h('div', { class: 'form-alert' });
  const fieldEls = fields.map((f) => {
    const cid = uid(f.name.replace(/[^a-z0-9_-]/gi, '') || 'f');
    const errId = `${cid}-err`;
    const hintId = f.hint ? `${cid}-hint` : null;
    const describedBy = [hintId, errId].filter(Boolean).join(' ');
    let control;
    const common = { id: cid, name: f.name, 'aria-describedby': describedBy, required: f.required || false, disabled: f.disabled || false };
    if (f.type === 'checkboxes') {
      // a group of checkboxes, one per option; its value is the array of checked values
      const boxes = (f.options || []).map((o) => {
        const bid = uid(cid);
        return h('div', { class: 'check' },
          h('input', { type: 'checkbox', id: bid, name: f.name, value: String(o.value), checked: (f.value || []).includes(o.value), disabled: f.disabled || false }),
          h('label', { for: bid }, o.label ?? String(o.value)));
      });
      control = h('fieldset', { id: cid, class: 'checks', 'aria-describedby': describedBy },
        h('legend', null, f.label), boxes.length ? boxes : h('p', { class: 'muted' }, f.noOptions || 'Nothing to choose from.'));
      control.value = undefined;
    } else if (f.type === 'select') {
      control = h('select', common, (f.options || []).map((o) =>
        h('option', { value: String(o.value), selected: String(o.value) === String(f.value ?? '') }, o.label ?? String(o.value))));
    } else if (f.type === 'textarea') {
      control = h('textarea', { ...common, rows: f.rows || 3, maxlength: f.maxlength, placeholder: f.placeholder }, f.value ?? '');
    } else if (f.type === 'checkbox') {
      control = h('input', { ...common, type: 'checkbox', checked: !!f.value });
    } else {
      const type = f.type === 'list' ? 'text' : (f.type || 'text');
      control = h('input', {
        ...common, type, value: f.value ?? '', min: f.min, max: f.max, step: f.step,
        minlength: f.minlength, maxlength: f.maxlength, pattern: f.pattern, placeholder: f.placeholder,
        autocomplete: f.autocomplete || (type === 'password' ? 'current-password' : 'off'),
        inputmode: f.inputmode, spellcheck: f.type === 'list' || type === 'email' ? 'false' : null,
      });
    }
    const err = h('p', { id: errId, class: 'field-error', 'aria-live': 'polite' });
    controls.set(f.name, { f, control, err, touched: false });
    const label = f.type === 'checkboxes' ? null : h('label', { for: cid }, f.label, f.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
    const hint = f.hint ? h('p', { id: hintId, class: 'hint' }, f.hint) : null;
    const wrap = f.type === 'checkbox'
      ? h('div', { class: 'field field-check' }, control, label, hint, err)
      : h('div', { class: 'field' }, label, control, hint, err);
    if (f.hidden) wrap.hidden = true;
    return wrap;
  });

  function rawValue(c) {
    const { f, control } = c;
    if (f.type === 'checkbox') return control.checked;
    if (f.type === 'checkboxes') return Array.from(control.querySelectorAll('input[type=checkbox]:checked')).map((b) => b.value);
    return control.value;
  }
  function parsed(c) {
    const { f } = c;
    const raw = rawValue(c);
    if (f.parse) return f.parse(raw);
    switch (f.type) {
      case 'number': return raw.trim() === '' ? null : Number(raw);
      case 'list': return raw.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
      case 'datetime-local': return raw ? new Date(raw).toISOString().replace(/\.000Z$/, 'Z') : null;
      case 'checkbox': return raw;
      default: return raw;
    }
  }
  function values() {
    const out = {};
    for (const [name, c] of controls) out[name] = parsed(c);
    return out;
  }
  function setError(name, msg) {
    const c = controls.get(name);
    if (!c) return false;
    c.err.textContent = msg || '';
    if (msg) c.control.setAttribute('aria-invalid', 'true');
    else c.control.removeAttribute('aria-invalid');
    return true;
  }
  function check(c) {
    const { f, control } = c;
    let msg = '';
    if (f.type !== 'checkboxes' && control.validity && !control.validity.valid) {
      if (control.validity.valueMissing) msg = `${f.label} is required.`;
      else if (control.validity.typeMismatch) msg = f.type === 'email' ? 'Enter an email address like name@example.com.' : `${f.label} is not valid.`;
      else if (control.validity.rangeUnderflow) msg = `${f.label} must be at least ${f.min}.`;
      else if (control.validity.rangeOverflow) msg = `${f.label} must be at most ${f.max}.`;
      else if (control.validity.tooShort) msg = `${f.label} needs at least ${f.minlength} characters.`;
      else if (control.validity.tooLong) msg = `${f.label} takes at most ${f.maxlength} characters.`;
      else if (control.validity.stepMismatch) msg = `${f.label} must be a whole number.`;
      else if (control.validity.badInput) msg = `${f.label} must be a number.`;
      else if (control.validity.patternMismatch) msg = f.patternMessage || `${f.label} is not in the expected form.`;
      else msg = control.validationMessage;
    }
    if (!msg && f.validate) msg = f.validate(parsed(c), values()) || '';
    setError(f.name, msg);
    return !msg;
  }
  for (const c of controls.values()) {
    const onInput = () => { c.touched = true; if (live) check(c); formAlert.replaceChildren(); };
    c.control.addEventListener('input', onInput);
    c.control.addEventListener('change', onInput);
    c.control.addEventListener('focusout', () => { if (c.touched || c.control.value) check(c); });
  }
  const submitBtn = h('button', { type: 'submit', class: 'btn btn-primary' }, submit);
  const el = h('form', { class: ['form', cls], id, novalidate: true },
    formAlert, fieldEls,
    h('div', { class: 'form-actions' }, submitBtn, cancel || null));

  function showError(err) {
    formAlert.replaceChildren();
    if (err instanceof ApiError && err.field) {
      const name = [...controls.keys()].find((n) => err.field === n || err.field.startsWith(`${n}.`) || err.field.startsWith(`${n}[`));
      if (name && setError(name, err.message)) {
        focusControl(controls.get(name).control);
        return;
      }
    }
    formAlert.replaceChildren(alert(err));
  }

  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formAlert.replaceChildren();
    let firstBad = null;
    for (const c of controls.values()) {
      if (c.f.hidden || c.control.disabled) continue;
      if (!check(c) && !firstBad) firstBad = c;
    }
    if (firstBad) { focusControl(firstBad.control); return; }
    const label = submitBtn.textContent;
    submitBtn.disabled = true;
    submitBtn.textContent = busy;
    el.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(values(), el);
    } catch (err) {
      showError(err);
    } finally {
      el.removeAttribute('aria-busy');
      if (submitBtn.isConnected) {
        submitBtn.disabled = false;
        submitBtn.textContent = label;
      }
    }
  });

  function focusControl(c) {
    const target = c.tagName === 'FIELDSET' ? c.querySelector('input') || c : c;
    target.focus();
  }

  el.values = values;
  el.setError = setError;
  el.showError = showError;
  el.control = (name) => controls.get(name)?.control;
  el.submitButton = submitBtn;
  return el;
}

// A small filter bar: fields like form(), values applied through `onApply(values)` (usually
// ctx.setQuery). Each field keeps a <label>.
export function filters({ fields, onApply, submit = 'Apply filters', reset }) {
  const f = form({ fields, submit, busy: 'Loading…', onSubmit: async (v) => onApply(v), class: 'filters', live: true, cancel: reset ? h('a', { class: 'btn', href: reset }, 'Clear') : null });
  return f;
}

// Replaces `root`'s content with a loading line while `promise` runs, then with its result
// or an alert.
export async function into(root, promise) {
  replace(root, loading());
  try {
    const r = await promise;
    replace(root, r);
  } catch (err) {
    replace(root, alert(err));
  }
}
