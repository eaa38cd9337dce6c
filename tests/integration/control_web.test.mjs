// control_web.test.mjs: the dashboard's files as tollgate-control serves them (headers, ETags,
// nothing outside the web dir), and browser sessions: the HttpOnly cookie, CSRF and Origin
// checks, logout, and Bearer tokens unchanged beside them. Over real HTTP, no browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startControl, ADMIN } from './lib/control.mjs';
import { BIN, rawExchange } from './lib/harness.mjs';

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const SECRET = 'outside-the-web-dir-7f3a9c';

// A web dir of our own, with a file beside it that must never be served.
const root = mkdtempSync(path.join(tmpdir(), 'tg-web-'));
const webDir = path.join(root, 'web');
mkdirSync(path.join(webDir, 'js'), { recursive: true });
mkdirSync(path.join(webDir, 'css'));
writeFileSync(path.join(webDir, 'index.html'), '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>T</title></head><body></body></html>\n');
writeFileSync(path.join(webDir, 'js', 'app.js'), 'export const app = 1;\n');
writeFileSync(path.join(webDir, 'css', 'app.css'), 'body { margin: 0; }\n');
writeFileSync(path.join(webDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>\n');
writeFileSync(path.join(webDir, '.env'), `${SECRET}\n`);
writeFileSync(path.join(root, 'secret.txt'), `${SECRET}\n`);

let cp;
before(async () => { cp = await startControl({ args: ['--web-dir', webDir] }); });
after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

function assertPageHeaders(r, contentType, what) {
  assert.equal(r.headers.get('content-security-policy'), CSP, what);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff', what);
  assert.equal(r.headers.get('x-frame-options'), 'DENY', what);
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer', what);
  assert.equal(r.headers.get('cache-control'), 'no-cache', what);
  assert.match(r.headers.get('etag') || '', /^"[0-9a-f]{32}"$/, what);
  if (contentType) assert.equal(r.headers.get('content-type'), contentType, what);
}

function assertApiHeaders(r, what) {
  assert.equal(r.headers.get('cache-control'), 'no-store', what);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff', what);
  assert.equal(r.headers.get('content-type'), 'application/json', what);
  assert.equal(r.headers.get('etag'), null, what);
}

async function get(p, headers = {}, method = 'GET') {
  const res = await fetch(cp.url + p, { method, headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

// A browser's sign-in: {cookie: "tollgate_session=...", setCookie, body}.
async function cookieLogin(email = ADMIN.email, password = ADMIN.password, headers = {}) {
  const r = await cp.api('POST', '/api/v1/auth/login', { body: { email, password, cookie: true }, headers });
  assert.equal(r.status, 200, r.text);
  const setCookie = r.headers.get('set-cookie');
  const m = /^tollgate_session=([^;]+);/.exec(setCookie || '');
  assert.ok(m, `Set-Cookie: ${setCookie}`);
  return { cookie: `tollgate_session=${m[1]}`, jwt: m[1], setCookie, body: r.body, text: r.text };
}

test('/ is index.html with every security header, the right type and a strong ETag', async () => {
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.equal(r.text, readFileSync(path.join(webDir, 'index.html'), 'utf8'));
  assertPageHeaders(r, 'text/html; charset=utf-8', '/');
  const again = await get('/index.html');
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('etag'), r.headers.get('etag'));
  const head = await get('/', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assertPageHeaders(head, 'text/html; charset=utf-8', 'HEAD /');
});

test('scripts, styles and images carry the same headers and their own types', async () => {
  const js = await get('/js/app.js');
  assert.equal(js.status, 200);
  assert.equal(js.text, 'export const app = 1;\n');
  assertPageHeaders(js, 'text/javascript; charset=utf-8', 'js');
  const css = await get('/css/app.css');
  assert.equal(css.status, 200);
  assertPageHeaders(css, 'text/css; charset=utf-8', 'css');
  const svg = await get('/favicon.svg');
  assert.equal(svg.status, 200);
  assertPageHeaders(svg, 'image/svg+xml', 'svg');
  assert.notEqual(js.headers.get('etag'), css.headers.get('etag'));
});

test('API answers, 200 and errors, are never cached and never sniffed', async () => {
  const token = await cp.login();
  const ok = await cp.api('GET', '/api/v1/me', { token });
  assert.equal(ok.status, 200);
  assertApiHeaders(ok, 'GET /api/v1/me');
  const unauth = await cp.api('GET', '/api/v1/me');
  assert.equal(unauth.status, 401);
  assertApiHeaders(unauth, '401');
  const missing = await cp.api('GET', '/api/v1/nothing-here', { token });
  assert.equal(missing.status, 404);
  assertApiHeaders(missing, '404');
  const health = await get('/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.headers.get('cache-control'), 'no-store');
  assert.equal(health.headers.get('x-content-type-options'), 'nosniff');
});

test('If-None-Match with the ETag is 304 with no body; another tag is the file again', async () => {
  for (const p of ['/', '/js/app.js', '/css/app.css']) {
    const first = await get(p);
    const etag = first.headers.get('etag');
    const r = await get(p, { 'if-none-match': etag });
    assert.equal(r.status, 304, p);
    assert.equal(r.text, '', p);
    assert.equal(r.headers.get('etag'), etag, p);
    assert.equal(r.headers.get('cache-control'), 'no-cache', p);
    assert.equal(r.headers.get('content-security-policy'), CSP, p);
    const list = await get(p, { 'if-none-match': `"0000", W/${etag}` });
    assert.equal(list.status, 304, `${p} in a list, weak`);
    const other = await get(p, { 'if-none-match': '"00000000000000000000000000000000"' });
    assert.equal(other.status, 200, p);
    assert.equal(other.text, first.text, p);
  }
});

test('nothing outside the web dir, no dot file and no other method is served', async () => {
  // raw requests: a client library would resolve the dots before sending
  const port = new URL(cp.url).port;
  for (const target of ['/../secret.txt', '/%2e%2e/secret.txt', '/js/../../secret.txt', '/js/%2e%2e/%2e%2e/secret.txt',
    '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/.env', '/js/../.env', '//etc/passwd', '/js/../../etc/passwd',
    '/js/app.js/', '/js/app.js%00.css', '/index.html%00', '/JS/APP.JS', '/js']) {
    const { data } = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(data, /^HTTP\/1\.1 404 /, target);
    assert.ok(!data.includes(SECRET) && !data.includes('root:'), `${target} leaked: ${data}`);
    assert.match(data, /\r\ncontent-security-policy: /i, target);
  }
  const post = await cp.api('POST', '/js/app.js', { body: {} });
  assert.equal(post.status, 405);
  assert.equal(post.body.error.code, 'method_not_allowed');
  // an encoded NUL never cuts a path short, in the API either
  const token = await cp.login();
  const me0 = await cp.api('GET', '/api/v1/me%00x', { token });
  assert.equal(me0.status, 404);
  const nope = await get('/no/such/page');
  assert.equal(nope.status, 404);
  assert.equal(JSON.parse(nope.text).error.code, 'not_found');
});

test('login with "cookie": true sets an HttpOnly SameSite=Strict cookie and keeps the JWT out of the body', async () => {
  const s = await cookieLogin();
  assert.match(s.setCookie, /^tollgate_session=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=(\d+)$/);
  const maxAge = Number(/Max-Age=(\d+)/.exec(s.setCookie)[1]);
  assert.ok(maxAge > 3590 && maxAge <= 3600, `Max-Age=${maxAge}`);
  assert.doesNotMatch(s.setCookie, /Secure/);
  assert.deepEqual(Object.keys(s.body).sort(), ['csrf_token', 'expires_at', 'token_type', 'user_id']);
  assert.equal(s.body.token_type, 'Cookie');
  assert.match(s.body.csrf_token, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(!s.text.includes(s.jwt), 'the JWT is in the body');
  assert.ok(Math.abs(s.body.expires_at - (Date.now() / 1000 + maxAge)) < 5);
  // the CSRF token is HMAC-SHA-256 of the session's jti under a key derived from the JWT secret
  const { jti } = JSON.parse(Buffer.from(s.jwt.split('.')[1], 'base64url'));
  const secret = createHash('sha256').update('test-jwt-secret-that-is-long-enough-0123456789').digest();
  const key = createHmac('sha256', secret).update('tollgate csrf key v1').digest();
  assert.equal(s.body.csrf_token, createHmac('sha256', key).update(jti).digest('base64url'));
  // without "cookie", the Bearer answer as before, and no cookie
  const b = await cp.api('POST', '/api/v1/auth/login', { body: ADMIN });
  assert.equal(b.body.token_type, 'Bearer');
  assert.equal(b.headers.get('set-cookie'), null);
  const bad = await cp.api('POST', '/api/v1/auth/login', { body: { ...ADMIN, cookie: 'yes' } });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.body.error.field, 'cookie');
});

test('the cookie authenticates reads, and /me gives the CSRF token back to a reloaded page', async () => {
  const s = await cookieLogin();
  const me = await cp.api('GET', '/api/v1/me', { headers: { cookie: s.cookie } });
  assert.equal(me.status, 200, me.text);
  assert.equal(me.body.email, ADMIN.email);
  assert.equal(me.body.csrf_token, s.body.csrf_token);
  assert.equal(me.body.expires_at, s.body.expires_at);
  const list = await cp.api('GET', '/api/v1/tenants', { headers: { cookie: s.cookie } });
  assert.equal(list.status, 200);
  // a Bearer caller's /me has neither
  const bme = await cp.api('GET', '/api/v1/me', { token: await cp.login() });
  assert.equal(bme.body.csrf_token, undefined);
  // a second session has a token of its own
  const s2 = await cookieLogin();
  assert.notEqual(s2.body.csrf_token, s.body.csrf_token);
});

test('a change through the cookie needs X-CSRF-Token; without it or with a wrong one it is 403 and changes nothing', async () => {
  const s = await cookieLogin();
  const other = await cookieLogin();
  const tries = [
    ['none', {}],
    ['empty', { 'x-csrf-token': '' }],
    ['wrong', { 'x-csrf-token': 'A'.repeat(43) }],
    ['another session\'s', { 'x-csrf-token': other.body.csrf_token }],
    ['cut', { 'x-csrf-token': s.body.csrf_token.slice(0, 42) }],
  ];
  for (const [what, headers] of tries) {
    const slug = `csrf-${what.replace(/\W/g, '')}`;
    const r = await cp.api('POST', '/api/v1/tenants', { body: { slug, name: slug }, headers: { cookie: s.cookie, ...headers } });
    assert.equal(r.status, 403, `${what}: ${r.text}`);
    assert.equal(r.body.error.code, 'csrf_failed', what);
    assertApiHeaders(r, what);
    assert.equal(cp.sql(`SELECT count(*) FROM tenants WHERE slug = '${slug}'`), '0', `${what} created the tenant`);
  }
  // refused when the headers come, before any body byte: the body is never sent here
  const port = new URL(cp.url).port;
  const { data } = await rawExchange(port, `POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nCookie: ${s.cookie}\r\n` +
    'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n', { untilMs: 3000, endWhen: (d) => d.includes('\r\n\r\n') && d.includes('}') });
  assert.match(data, /^HTTP\/1\.1 403 /);
  assert.match(data, /csrf_failed/);
  // PATCH and DELETE too
  const t = await cp.makeTenant(await cp.login(), 'csrf-target');
  const patch = await cp.api('PATCH', `/api/v1/tenants/${t.id}`, { body: { name: 'changed' }, headers: { cookie: s.cookie } });
  assert.equal(patch.status, 403);
  const del = await cp.api('DELETE', `/api/v1/tenants/${t.id}`, { headers: { cookie: s.cookie } });
  assert.equal(del.status, 403);
  assert.equal(cp.sql(`SELECT name FROM tenants WHERE id = '${t.id}'`), 'csrf-target');
  // with the token it works
  const ok = await cp.api('POST', '/api/v1/tenants', { body: { slug: 'csrf-ok', name: 'ok' }, headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token } });
  assert.equal(ok.status, 201, ok.text);
  const okPatch = await cp.api('PATCH', `/api/v1/tenants/${t.id}`, { body: { name: 'changed' }, headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token } });
  assert.equal(okPatch.status, 200, okPatch.text);
});

test('a cookie request from a foreign Origin is 403, even with the CSRF token; the server\'s own origin is fine', async () => {
  const s = await cookieLogin();
  const host = new URL(cp.url).host;
  for (const origin of ['http://evil.example', `http://${host}.evil.example`, 'null', `http://${host}:1`, `ftp://${host}`]) {
    const r = await cp.api('POST', '/api/v1/tenants', { body: { slug: 'origin-x', name: 'x' }, headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token, origin } });
    assert.equal(r.status, 403, `${origin}: ${r.text}`);
    assert.equal(r.body.error.code, 'csrf_failed');
    const g = await cp.api('GET', '/api/v1/me', { headers: { cookie: s.cookie, origin } });
    assert.equal(g.status, 403, `GET from ${origin}`);
  }
  assert.equal(cp.sql("SELECT count(*) FROM tenants WHERE slug = 'origin-x'"), '0');
  // a foreign page cannot sign the browser in either (login CSRF)
  const login = await cp.api('POST', '/api/v1/auth/login', { body: { ...ADMIN, cookie: true }, headers: { origin: 'http://evil.example' } });
  assert.equal(login.status, 403);
  assert.equal(login.headers.get('set-cookie'), null);
  const same = await cp.api('POST', '/api/v1/tenants', { body: { slug: 'origin-ok', name: 'x' }, headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token, origin: `http://${host}` } });
  assert.equal(same.status, 201, same.text);
  // Bearer callers are not browsers: no Origin rule for them
  const b = await cp.api('GET', '/api/v1/me', { token: await cp.login(), headers: { origin: 'http://evil.example' } });
  assert.equal(b.status, 200);
});

test('logout through the cookie revokes the session and clears the cookie; the old cookie is then 401', async () => {
  const s = await cookieLogin();
  const noCsrf = await cp.api('POST', '/api/v1/auth/logout', { headers: { cookie: s.cookie } });
  assert.equal(noCsrf.status, 403);
  const r = await cp.api('POST', '/api/v1/auth/logout', { headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token } });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get('set-cookie'), 'tollgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0');
  const me = await cp.api('GET', '/api/v1/me', { headers: { cookie: s.cookie } });
  assert.equal(me.status, 401);
  assertApiHeaders(me, 'after logout');
});

test('Bearer and API tokens work as before and ignore a cookie; the Authorization header always wins', async () => {
  const s = await cookieLogin();
  const u = await cp.makeUser('bearer-user@example.com');
  // a Bearer call with another user's cookie is the Bearer user's, and needs no CSRF token
  const me = await cp.api('GET', '/api/v1/me', { token: u.token, headers: { cookie: s.cookie } });
  assert.equal(me.status, 200);
  assert.equal(me.body.email, 'bearer-user@example.com');
  const t = await cp.api('POST', '/api/v1/tenants', { token: await cp.login(), body: { slug: 'bearer-t', name: 'b' }, headers: { cookie: 'tollgate_session=junk' } });
  assert.equal(t.status, 201, t.text);
  // a bad Authorization header is never rescued by a good cookie
  for (const authorization of ['Bearer nope', 'Basic YTpi', '']) {
    const r = await cp.api('GET', '/api/v1/me', { headers: { authorization, cookie: s.cookie } });
    assert.equal(r.status, 401, `Authorization: ${authorization}`);
  }
  // an admin API token is never taken from the cookie
  const tok = await cp.api('POST', '/api/v1/tokens', { token: await cp.login(), body: { name: 'web-test', role: 'admin' } });
  assert.equal(tok.status, 201, tok.text);
  const viaCookie = await cp.api('GET', '/api/v1/me', { headers: { cookie: `tollgate_session=${tok.body.token}` } });
  assert.equal(viaCookie.status, 401);
  const viaHeader = await cp.api('GET', '/api/v1/me', { token: tok.body.token });
  assert.equal(viaHeader.status, 200);
});

test('a password change through the cookie sets a new cookie and CSRF token; the old cookie ends', async () => {
  const u = await cp.makeUser('cookie-pw@example.com');
  const s = await cookieLogin(u.email);
  const r = await cp.api('PATCH', `/api/v1/users/${u.id}`, {
    body: { password: 'a-new-password-for-tests', current_password: ADMIN.password },
    headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token },
  });
  assert.equal(r.status, 200, r.text);
  const m = /^tollgate_session=([^;]+); Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/.exec(r.headers.get('set-cookie') || '');
  assert.ok(m, `Set-Cookie: ${r.headers.get('set-cookie')}`);
  assert.equal(r.body.session.token_type, 'Cookie');
  assert.equal(r.body.session.token, undefined);
  assert.ok(!r.text.includes(m[1]), 'the new JWT is in the body');
  assert.match(r.body.session.csrf_token, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(r.body.session.csrf_token, s.body.csrf_token);
  const old = await cp.api('GET', '/api/v1/me', { headers: { cookie: s.cookie } });
  assert.equal(old.status, 401);
  const cookie = `tollgate_session=${m[1]}`;
  const me = await cp.api('GET', '/api/v1/me', { headers: { cookie } });
  assert.equal(me.status, 200);
  assert.equal(me.body.csrf_token, r.body.session.csrf_token);
  const ch = await cp.api('PATCH', `/api/v1/users/${u.id}`, { body: { name: 'renamed' }, headers: { cookie, 'x-csrf-token': r.body.session.csrf_token } });
  assert.equal(ch.status, 200, ch.text);
});

test('no session cookie, JWT or CSRF token in a log line or an audit row', async () => {
  const s = await cookieLogin();
  await cp.api('POST', '/api/v1/tenants', { body: { slug: 'log-check', name: 'l' }, headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token } });
  await cp.api('POST', '/api/v1/tenants', { body: { slug: 'log-check2', name: 'l' }, headers: { cookie: s.cookie } });
  await cp.api('POST', '/api/v1/auth/logout', { headers: { cookie: s.cookie, 'x-csrf-token': s.body.csrf_token } });
  const logs = cp.logs();
  const audit = cp.sql('SELECT coalesce(string_agg(row_to_json(a)::text, E\'\\n\'), \'\') FROM audit_log a');
  for (const secret of [s.jwt, s.jwt.split('.')[2], s.body.csrf_token]) {
    assert.ok(!logs.includes(secret), 'a secret in the log');
    assert.ok(!audit.includes(secret), 'a secret in the audit log');
  }
});

test('the build serves web/ and uPlot from <build>/web by default', async () => {
  const buildWeb = path.resolve(BIN, '..', 'web');
  assert.ok(existsSync(path.join(buildWeb, 'index.html')), `${buildWeb}/index.html: build the project`);
  const def = await startControl();
  try {
    const res = await fetch(`${def.url}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), readFileSync(path.join(buildWeb, 'index.html'), 'utf8'));
    const ui = await fetch(`${def.url}/vendor/uPlot.iife.min.js`);
    assert.equal(ui.status, 200);
    assert.equal(ui.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await ui.text()).length, readFileSync(path.join(buildWeb, 'vendor', 'uPlot.iife.min.js'), 'utf8').length);
    const css = await fetch(`${def.url}/vendor/uPlot.min.css`);
    assert.equal(css.status, 200);
  } finally {
    assert.equal((await def.stop()).code, 0);
  }
});

test('without a web dir the API serves on and / says the dashboard files are missing; --secure-cookies adds Secure', async () => {
  const gone = path.join(root, 'no-such-dir');
  const c = await startControl({ args: ['--web-dir', gone, '--secure-cookies'] });
  try {
    const r = await c.api('GET', '/');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
    assert.match(r.body.error.message, /dashboard's files are missing.*build/);
    assert.equal((c.logs().match(/event=web_dir_missing/g) || []).length, 1, c.logs());
    const login = await c.api('POST', '/api/v1/auth/login', { body: { ...ADMIN, cookie: true } });
    assert.equal(login.status, 200);
    assert.match(login.headers.get('set-cookie'), /; HttpOnly; SameSite=Strict; Max-Age=\d+; Secure$/);
  } finally {
    assert.equal((await c.stop()).code, 0);
  }
  const env = await startControl({ env: { TOLLGATE_SECURE_COOKIES: '1', TOLLGATE_WEB_DIR: webDir } });
  try {
    const r = await fetch(`${env.url}/js/app.js`);
    assert.equal(await r.text(), 'export const app = 1;\n');
    const login = await env.api('POST', '/api/v1/auth/login', { body: { ...ADMIN, cookie: true } });
    assert.match(login.headers.get('set-cookie'), /; Secure$/);
  } finally {
    assert.equal((await env.stop()).code, 0);
  }
});
