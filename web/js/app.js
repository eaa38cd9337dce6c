// app.js: the dashboard's shell: session, header, navigation and the hash router.
//
// Interface for view modules (see the dashboard contract):
//   export async function render(root, ctx, params, query) -> optional cleanup function
//   root:   the empty <main> region (the view puts its own <h1> in it)
//   params: the route's :names ({tid, kid}); query: the part after '?' in the hash, as an object
//   ctx = {
//     me,                 // GET /api/v1/me (null on #/login)
//     tenant,             // {tenant_id, slug, name, role} or null; role is 'platform' for a
//                         //   platform admin in a tenant it has no membership in
//     tenants,            // every tenant the header's switcher offers (same shape)
//     api,                // api.js: get/post/put/patch/del/all/url
//     can(action, tid),   // action 'read'|'write'|'admin'|'owner'|'platform'; tid defaults to
//                         //   the current tenant. write = member+, admin = admin+.
//     navigate(path, {replace}), // path like '/t/<id>/keys' or '#/t/<id>/keys'
//     setTitle(text),     // document title
//     // additions to the contract (documented here, as the contract asks):
//     path,               // the current route path without query, e.g. '/requests'
//     setQuery(obj, {replace}), // navigate to the current path with these query parameters
//                         //   (null/'' dropped) — filters in the URL
//     refresh(),          // re-reads /me and redraws header and navigation (after sign-in or a
//                         //   change of one's own name/roles); resolves to the new me
//     tenantHref(suffix)  // '#/t/<current tid><suffix>' or null when there is no tenant
//     signedIn(returnTo)  // for the login view: loads /me and goes on to returnTo (or '/')
//     returnTo            // (login view only) the route the person asked for before signing in
//   }
// api.js paths may omit '/api/v1' (api.get('/tenants')).
// A view module that cannot be loaded shows "This view is not available yet."

import { h, replace, $ } from './dom.js';
import { api, ApiError, setOnUnauthorized, setCsrf } from './api.js';
import { alert, errorText } from './ui.js';

const ROUTES = [
  ['/login', 'login', { public: true }],
  ['/', 'overview'],
  ['/overview', 'overview'],
  ['/t/:tid/keys', 'keys'],
  ['/t/:tid/keys/:kid', 'key'],
  ['/requests', 'requests'],
  ['/usage', 'usage'],
  ['/tenants', 'tenants'],
  ['/t/:tid', 'tenant'],
  ['/t/:tid/budgets', 'budgets'],
  ['/users', 'users'],
  ['/providers', 'providers'],
  ['/routes', 'routes'],
  ['/prices', 'prices'],
  ['/tokens', 'tokens'],
  ['/audit', 'audit'],
  ['/me', 'profile'],
].map(([pattern, module, opts = {}]) => {
  const names = [];
  const re = new RegExp(`^${pattern.replace(/:([a-z]+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
  return { pattern, module, re, names, ...opts };
});

const ROLE_RANK = { viewer: 1, member: 2, admin: 3, owner: 4, platform: 5 };
const ACTION_RANK = { read: 1, write: 2, admin: 3, owner: 4 };

const state = {
  me: null,
  tenants: [],        // [{tenant_id, slug, name, role}]
  tenantId: null,     // the current tenant (from the URL's :tid, else the last chosen)
  cleanup: null,
  seq: 0,
  returnTo: null,
};

const els = {};

function parseHash() {
  let raw = location.hash.replace(/^#/, '');
  if (!raw.startsWith('/')) raw = `/${raw}`;
  const qi = raw.indexOf('?');
  const path = (qi >= 0 ? raw.slice(0, qi) : raw).replace(/\/+$/, '') || '/';
  const query = {};
  if (qi >= 0) for (const [k, v] of new URLSearchParams(raw.slice(qi + 1))) query[k] = v;
  return { path, query, raw };
}

function match(path) {
  for (const r of ROUTES) {
    const m = r.re.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
      return { route: r, params };
    }
  }
  return null;
}

export function navigate(path, { replace: rep = false } = {}) {
  const target = path.startsWith('#') ? path : `#${path.startsWith('/') ? '' : '/'}${path}`;
  if (location.hash === target) { route(); return; }
  if (rep) history.replaceState(null, '', target);
  else { location.hash = target; return; }
  route();
}

function queryString(obj) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null || v === '') continue;
    qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `?${s}` : '';
}

function currentTenant() {
  return state.tenants.find((t) => t.tenant_id === state.tenantId) || null;
}

function roleIn(tid) {
  if (!state.me) return null;
  if (state.me.is_platform_admin) return 'platform';
  const m = (state.me.memberships || []).find((x) => x.tenant_id === tid);
  return m ? m.role : null;
}

export function can(action, tid = state.tenantId) {
  if (!state.me) return false;
  if (state.me.is_platform_admin) return true;
  if (action === 'platform') return false;
  const role = roleIn(tid);
  if (!role) return false;
  return ROLE_RANK[role] >= (ACTION_RANK[action] || 99);
}

function setTitle(text) {
  document.title = text ? `${text} · Tollgate` : 'Tollgate';
}

function makeCtx(path) {
  return {
    me: state.me,
    tenant: currentTenant(),
    tenants: state.tenants.slice(),
    api,
    can,
    navigate,
    setTitle,
    path,
    setQuery: (obj, opts) => navigate(`${path}${queryString(obj)}`, opts),
    refresh: loadMe,
    tenantHref: (suffix = '') => (state.tenantId ? `#/t/${state.tenantId}${suffix}` : null),
    signedIn: afterSignIn,
  };
}

// ---------- session ----------
async function loadMe() {
  const me = await api.me();
  state.me = me;
  let tenants = (me.memberships || []).map((m) => ({ tenant_id: m.tenant_id, slug: m.slug, name: m.name, role: m.role }));
  if (me.is_platform_admin) {
    try {
      const all = await api.get('/tenants', { limit: 200 });
      const mine = new Map(tenants.map((t) => [t.tenant_id, t]));
      tenants = all.data.map((t) => ({ tenant_id: t.id, slug: t.slug, name: t.name, role: mine.get(t.id)?.role || 'platform' }));
    } catch { /* the memberships are enough to go on */ }
  }
  tenants.sort((a, b) => a.name.localeCompare(b.name));
  state.tenants = tenants;
  if (!tenants.some((t) => t.tenant_id === state.tenantId)) state.tenantId = tenants.length ? tenants[0].tenant_id : null;
  drawChrome();
  return me;
}

function signedOut() {
  state.me = null;
  state.tenants = [];
  state.tenantId = null;
  setCsrf(null);
  drawChrome();
}

setOnUnauthorized(() => {
  if (!state.me) return;
  const { raw } = parseHash();
  signedOut();
  if (!raw.startsWith('/login')) {
    state.returnTo = raw;
    navigate('/login', { replace: true });
  }
});

async function signOut() {
  try {
    await api.logout();
  } catch { /* signed out either way: the cookie may be gone already */ }
  signedOut();
  navigate('/login');
  status('Signed out.');
}

// ---------- header and navigation ----------
function roleSummary(me) {
  if (me.is_platform_admin) return 'Platform admin';
  const t = currentTenant();
  if (t) return `${t.role} of ${t.name}`;
  return (me.memberships || []).length ? '' : 'No tenant yet';
}

function switchTenant(tid) {
  state.tenantId = tid;
  drawChrome();
  const sel = document.getElementById('tenant-switch');
  if (sel) sel.focus(); // the redrawn header keeps the keyboard where it was
  const { path, query } = parseHash();
  const m = match(path);
  if (m && m.params.tid) {
    navigate(path.replace(/^\/t\/[^/]+/, `/t/${encodeURIComponent(tid)}`));
  } else {
    // routes without :tid carry the tenant as ?tenant_id=, so a reload or a bookmark keeps it
    navigate(`${path}${queryString({ ...query, tenant_id: tid, cursor: null, key_id: null })}`);
  }
}

function drawChrome() {
  const me = state.me;
  if (!me) {
    replace(els.header, h('a', { class: 'brand', href: '#/login' }, brandMark(), 'Tollgate'));
    replace(els.nav);
    els.nav.hidden = true;
    return;
  }
  const t = currentTenant();
  let switcher = null;
  if (state.tenants.length > 1) {
    const sel = h('select', { id: 'tenant-switch', onChange: (e) => switchTenant(e.target.value) },
      state.tenants.map((x) => h('option', { value: x.tenant_id, selected: x.tenant_id === state.tenantId }, x.name)));
    switcher = h('div', { class: 'tenant-switch' }, h('label', { for: 'tenant-switch' }, 'Tenant'), sel);
  } else if (t) {
    switcher = h('div', { class: 'tenant-switch' }, h('span', { class: 'muted' }, 'Tenant '), h('strong', null, t.name));
  }
  const roles = me.is_platform_admin ? ['Platform admin']
    : (me.memberships || []).map((m) => `${m.role} of ${m.name}`);
  replace(els.header,
    h('a', { class: 'brand', href: '#/' }, brandMark(), 'Tollgate'),
    switcher,
    h('div', { class: 'whoami' },
      h('a', { href: '#/me', class: 'who', id: 'whoami', title: me.email }, me.name || me.email),
      h('span', { class: 'roles', id: 'my-roles' }, roles.length ? roles.join(', ') : roleSummary(me)),
      h('button', { type: 'button', class: 'btn btn-small', id: 'sign-out', onClick: signOut }, 'Sign out')));

  const tid = state.tenantId;
  const tpath = (s) => `#/t/${encodeURIComponent(tid)}${s}`;
  const tq = tid ? `?tenant_id=${encodeURIComponent(tid)}` : '';
  const items = [
    ['Overview', `#/${tq}`, true],
    ['Keys', tid && tpath('/keys'), !!tid && can('read', tid)],
    ['Requests', `#/requests${tq}`, !!tid || me.is_platform_admin],
    ['Usage', `#/usage${tq}`, !!tid || me.is_platform_admin],
    ['Tenant', tid && tpath(''), !!tid && can('read', tid)],
    ['Budgets', tid && tpath('/budgets'), !!tid && can('read', tid)],
    ['Audit log', '#/audit', me.is_platform_admin || (!!tid && can('admin', tid))],
    ['Tenants', '#/tenants', me.is_platform_admin],
    ['Users', '#/users', me.is_platform_admin],
    ['Providers', '#/providers', me.is_platform_admin],
    ['Routes', '#/routes', true],
    ['Prices', '#/prices', true],
    ['API tokens', '#/tokens', true],
  ].filter(([, href, show]) => show && href);
  replace(els.nav, h('ul', null, items.map(([label, href]) => h('li', null, h('a', { href, 'data-nav': href }, label)))));
  els.nav.hidden = false;
  markCurrentNav();
}

function brandMark() {
  return h('img', { src: '/favicon.svg', alt: '', width: '24', height: '24', class: 'brand-mark' });
}

function markCurrentNav() {
  const { path } = parseHash();
  let best = null;
  for (const a of els.nav.querySelectorAll('a[data-nav]')) {
    a.removeAttribute('aria-current');
    const p = a.getAttribute('href').slice(1).replace(/\?.*$/, '').replace(/\/+$/, '') || '/';
    const hit = p === '/' ? (path === '/' || path === '/overview') : (path === p || path.startsWith(`${p}/`));
    if (hit && (!best || p.length > best.p.length)) best = { a, p };
  }
  if (best) best.a.setAttribute('aria-current', 'page');
}

function status(text) {
  els.status.textContent = '';
  setTimeout(() => { els.status.textContent = text; }, 50);
}

// ---------- routing ----------
async function route() {
  const seq = ++state.seq;
  const { path, query, raw } = parseHash();
  if (typeof state.cleanup === 'function') {
    try { state.cleanup(); } catch { /* a view's cleanup must not stop navigation */ }
  }
  state.cleanup = null;
  const m = match(path);
  const main = els.main;
  main.setAttribute('aria-busy', 'true');
  replace(main);

  if (!m) {
    setTitle('Not found');
    replace(main, h('h1', null, 'Page not found'),
      h('p', null, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the overview'), '.'));
    main.removeAttribute('aria-busy');
    markCurrentNav();
    return;
  }
  if (!m.route.public && !state.me) {
    state.returnTo = raw;
    navigate('/login', { replace: true });
    return;
  }
  if (m.route.module === 'login' && state.me) {
    navigate('/', { replace: true });
    return;
  }
  const wantTid = m.params.tid || query.tenant_id;
  if (wantTid && state.me && state.tenants.some((t) => t.tenant_id === wantTid) && state.tenantId !== wantTid) {
    state.tenantId = wantTid;
    drawChrome();
  }
  markCurrentNav();

  let mod;
  try {
    mod = await import(`./views/${m.route.module}.js`);
  } catch (e) {
    if (seq !== state.seq) return;
    setTitle('Not available');
    replace(main, h('h1', null, 'Not available'), alert('This view is not available yet.', 'info'));
    main.removeAttribute('aria-busy');
    return;
  }
  if (seq !== state.seq) return;
  const root = h('div', { class: 'view', 'data-view': m.route.module });
  replace(main, root);
  const ctx = makeCtx(path);
  if (m.route.module === 'login') ctx.returnTo = state.returnTo || '/';
  try {
    const cleanup = await mod.render(root, ctx, m.params, query);
    if (seq !== state.seq) { if (typeof cleanup === 'function') cleanup(); return; }
    state.cleanup = cleanup || null;
  } catch (err) {
    if (seq !== state.seq) return;
    replace(root, ...errorPage(err));
  } finally {
    if (seq === state.seq) main.removeAttribute('aria-busy');
  }
  if (seq === state.seq) focusMain();
}

function errorPage(err) {
  if (err instanceof ApiError && err.status === 404) {
    setTitle('Not found');
    return [h('h1', null, 'Not found'), h('p', null, 'Nothing exists at this address, or you have no access to it. ', h('a', { href: '#/' }, 'Go to the overview'), '.')];
  }
  if (err instanceof ApiError && err.status === 403) {
    setTitle('Not allowed');
    return [h('h1', null, 'Not allowed'), alert(`Your role does not allow this page. ${err.message}`)];
  }
  if (err instanceof ApiError && err.status === 401) return [];
  setTitle('Error');
  return [h('h1', null, 'Something went wrong'), alert(errorText(err))];
}

let firstRender = true;
function focusMain() {
  // Moves focus to the new page for keyboard and screen-reader users (not on the first load,
  // and not when a view already put focus inside it, e.g. on a field).
  if (firstRender) { firstRender = false; return; }
  if (els.main.contains(document.activeElement)) return;
  const h1 = els.main.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: false }); } else els.main.focus();
}

// ---------- start ----------
async function start() {
  els.header = $('#app-header');
  els.nav = $('#app-nav');
  els.main = $('#app-main');
  els.status = $('#app-status');
  $('#skip-link').addEventListener('click', (e) => { e.preventDefault(); els.main.focus(); });
  window.addEventListener('hashchange', () => route());
  try {
    await loadMe();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      replace(els.main, h('h1', null, 'Tollgate'), alert(`The control plane did not answer: ${errorText(err)}`));
      // still offer the login form: the API may be back by the time the person signs in
    }
    signedOut();
  }
  if (!location.hash || location.hash === '#') history.replaceState(null, '', state.me ? '#/' : '#/login');
  await route();
}

// For the login view: after a successful sign-in.
export async function afterSignIn(returnTo) {
  await loadMe();
  state.returnTo = null;
  const to = returnTo && !returnTo.startsWith('/login') ? returnTo : '/';
  navigate(to, { replace: true });
}

start();
