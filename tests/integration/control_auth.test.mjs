// control_auth.test.mjs: logging in to tollgate-control and what a session token is worth.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { startControl, ADMIN } from './lib/control.mjs';

let cp;

before(async () => { cp = await startControl(); });
after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

function b64url(s) { return Buffer.from(s).toString('base64url'); }

test('the first admin is created from the environment and can log in', async () => {
  const r = await cp.api('POST', '/api/v1/auth/login', { body: ADMIN });
  assert.equal(r.status, 200);
  assert.equal(r.body.token_type, 'Bearer');
  const me = await cp.api('GET', '/api/v1/me', { token: r.body.token });
  assert.equal(me.status, 200);
  assert.equal(me.body.email, ADMIN.email);
  assert.equal(me.body.is_platform_admin, true);
  // only an argon2id hash is stored
  assert.match(cp.sql(`SELECT password_hash FROM users WHERE email = '${ADMIN.email}'`), /^\$argon2id\$/);
});

test('a wrong password is 401 with the same message as an unknown account', async () => {
  const a = await cp.api('POST', '/api/v1/auth/login', { body: { email: ADMIN.email, password: 'nope' } });
  const b = await cp.api('POST', '/api/v1/auth/login', { body: { email: 'ghost@example.com', password: 'nope' } });
  assert.equal(a.status, 401);
  assert.equal(b.status, 401);
  assert.equal(a.body.error.message, b.body.error.message);
  cp.sql('DELETE FROM login_failures');
});

test('bad login bodies get 400 and change nothing', async () => {
  for (const raw of ['', '{', '[]', '{"email":1,"password":"x"}', '{"email":"a@b.c"}',
    '{"email":"a@b.c","password":"x","extra":1}']) {
    const r = await cp.api('POST', '/api/v1/auth/login', { raw });
    assert.ok(r.status === 400 || r.status === 422, `${raw} -> ${r.status}`);
    assert.ok(r.body.error.message);
  }
});

test('five failed logins in a row make that address wait, even with the right password', async () => {
  cp.sql(`INSERT INTO users (email, password_hash) SELECT 'lock@example.com', password_hash FROM users WHERE email = '${ADMIN.email}'`);
  for (let i = 0; i < 5; i++) {
    const r = await cp.api('POST', '/api/v1/auth/login', { body: { email: 'lock@example.com', password: 'wrong' } });
    assert.equal(r.status, 401);
  }
  const r = await cp.api('POST', '/api/v1/auth/login', { body: { email: 'lock@example.com', password: ADMIN.password } });
  assert.equal(r.status, 429);
  assert.equal(r.body.error.code, 'account_locked');
  assert.equal(r.headers.get('retry-after'), '1');
  cp.sql('DELETE FROM login_failures');
});

test('tampered, expired and alg:none tokens are refused', async () => {
  const token = await cp.login();
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  // tampered payload, original signature
  const other = claims.sub.endsWith('0') ? '1' : '0'; // a different user id, certainly
  const forged = `${h}.${b64url(JSON.stringify({ ...claims, sub: claims.sub.replace(/.$/, other) }))}.${s}`;
  assert.equal((await cp.api('GET', '/api/v1/me', { token: forged })).status, 401);
  // alg:none, no signature
  const none = `${b64url('{"alg":"none","typ":"JWT"}')}.${p}.`;
  assert.equal((await cp.api('GET', '/api/v1/me', { token: none })).status, 401);
  // correctly signed but expired
  const secret = 'test-jwt-secret-that-is-long-enough-0123456789';
  const body = `${h}.${b64url(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }))}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  assert.equal((await cp.api('GET', '/api/v1/me', { token: `${body}.${sig}` })).status, 401);
  // the same construction with a valid exp is accepted, so the checks above are what refused
  const okBody = `${h}.${b64url(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 }))}`;
  const okSig = createHmac('sha256', secret).update(okBody).digest('base64url');
  assert.equal((await cp.api('GET', '/api/v1/me', { token: `${okBody}.${okSig}` })).status, 200);
});

test('logout revokes the session token', async () => {
  const token = await cp.login();
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 200);
  assert.equal((await cp.api('POST', '/api/v1/auth/logout', { token })).status, 204);
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 401);
});

test('health, readiness and metrics answer without a token', async () => {
  assert.equal((await cp.api('GET', '/healthz')).status, 200);
  const r = await cp.api('GET', '/readyz');
  assert.equal(r.status, 200);
  const latest = Math.max(...readdirSync(new URL('../../migrations', import.meta.url))
    .filter((f) => /^\d{4}_.*\.sql$/.test(f)).map((f) => Number(f.slice(0, 4))));
  assert.equal(r.body.schema_version, latest);
  const m = await fetch(cp.url + '/metrics').then((x) => x.text());
  assert.match(m, /tollgate_control_responses_total\{class="2xx"\} \d+/);
});

test('unknown endpoints are 404 and wrong methods 405', async () => {
  assert.equal((await cp.api('GET', '/api/v1/nope')).status, 404);
  assert.equal((await cp.api('PUT', '/api/v1/me')).status, 405);
});
