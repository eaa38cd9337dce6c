// dom.js: builds elements from values. Every string becomes a text node or an attribute value,
// never markup: nothing in web/js turns a string into HTML, so a name like
// `<img src=x onerror=...>` is shown as those characters.

const SAFE_URL = /^(#|\/(?!\/)|\.\/|blob:|data:text\/csv|mailto:)/i;

// h(tag, props, ...children)
//   props: {class, id, text, dataset: {}, style: {}, on<Event>: fn, hidden, disabled, value,
//           checked, selected, any other attribute}; null/undefined/false values are skipped.
//   children: nodes, strings, numbers, arrays of them, null/false (skipped).
// `href`/`src`/`action` accept only same-origin forms (#..., /..., blob:, data:text/csv); any
// other value (javascript:, http://elsewhere) throws, so an API value can never become a link
// somewhere else.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

const PROP_KEYS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'readOnly',
  'required', 'multiple', 'open', 'indeterminate', 'tabIndex']);

export function setProps(el, props) {
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class' || k === 'className') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (/^on[A-Z]/.test(k) && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (PROP_KEYS.has(k)) el[k] = v;
    else if (k === 'href' || k === 'src' || k === 'action') {
      const s = String(v);
      if (!SAFE_URL.test(s)) throw new Error(`refusing ${k}=${JSON.stringify(s.slice(0, 60))}`);
      el.setAttribute(k, s);
    } else if (/^on/i.test(k)) {
      throw new Error(`refusing attribute ${k}`);
    } else el.setAttribute(k, v === true ? '' : String(v));
  }
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === true) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Empties `el` and fills it with `children`.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function $(sel, root = document) { return root.querySelector(sel); }
export function $$(sel, root = document) { return Array.from(root.querySelectorAll(sel)); }

let idSeq = 0;
// A document-unique id for label/aria links.
export function uid(prefix = 'f') { idSeq += 1; return `${prefix}-${idSeq}`; }
