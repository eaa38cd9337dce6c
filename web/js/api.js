// api.js: the admin API from the browser. Same-origin fetch; the session is the HttpOnly
// `tollgate_session` cookie (never seen by JS), and every mutating call carries the CSRF token
// the login or /me answer gave (kept in memory only; a reload gets it again from /me).
//
// Paths may be written with or without the /api/v1 prefix: api.get('/tenants') and
// api.get('/api/v1/tenants') are the same call.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || null;
    this.field = field || null;
  }
}

let csrfToken = null;
let onUnauthorized = null;

export function setCsrf(token) { csrfToken = token || null; }
export function hasCsrf() { return csrfToken !== null; }
// Called (once per failed call) when the API answers 401 to a signed-in call.
export function setOnUnauthorized(fn) { onUnauthorized = fn; }

export function url(path, query) {
  const p = path.startsWith('/api/') ? path : `/api/v1${path.startsWith('/') ? '' : '/'}${path}`;
  const qs = new URLSearchParams();
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => qs.append(k, String(x)));
      else qs.append(k, String(v));
    }
  }
  const s = qs.toString();
  return s ? `${p}?${s}` : p;
}

async function request(method, path, { query, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(url(path, query), init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check the connection and try again.', null);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!res.ok) {
    const e = (json && json.error) || {};
    const err = new ApiError(res.status, e.code, e.message || `${res.status} ${res.statusText}`, e.field);
    if (res.status === 401 && !path.endsWith('/auth/login') && onUnauthorized) onUnauthorized(err);
    throw err;
  }
  return json;
}

// Fetches every page of a list (at most `max` rows) — for small lists such as memberships.
async function all(path, query = {}, max = 1000) {
  const out = [];
  let cursor = null;
  do {
    const page = await request('GET', path, { query: { ...query, limit: 200, cursor } });
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

export const api = {
  get: (path, query, opts) => request('GET', path, { ...opts, query }),
  post: (path, body, opts) => request('POST', path, { ...opts, body }),
  put: (path, body, opts) => request('PUT', path, { ...opts, body }),
  patch: (path, body, opts) => request('PATCH', path, { ...opts, body }),
  del: (path, query, opts) => request('DELETE', path, { ...opts, query }),
  all,
  url,
  async login(email, password) {
    const r = await request('POST', '/auth/login', { body: { email, password, cookie: true } });
    setCsrf(r && r.csrf_token);
    return r;
  },
  async logout() {
    try {
      await request('POST', '/auth/logout');
    } finally {
      setCsrf(null);
    }
  },
  async me() {
    const me = await request('GET', '/me');
    if (me && me.csrf_token) setCsrf(me.csrf_token);
    return me;
  },
};
