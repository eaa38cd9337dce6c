// control_users.test.mjs: users, tenant memberships and admin API tokens through the admin API:
// who may do what, what bad input changes (nothing), what the tables hold (no secrets) and the
// audit rows every change leaves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startControl, ADMIN } from './lib/control.mjs';

let cp;
let admin; // platform admin session token
let adminId;
let acme;
let globex;
const users = {};
const RANDOM = '6f1c0c36-9a43-4d43-9a6f-3d1b0b1b2c3d';
const PW = 'a-good-long-password-1';

before(async () => {
  cp = await startControl();
  admin = await cp.login();
  adminId = cp.sql(`SELECT id FROM users WHERE email = '${ADMIN.email}'`);
  acme = await cp.makeTenant(admin, 'acme');
  globex = await cp.makeTenant(admin, 'globex');
  for (const role of ['owner', 'admin', 'member', 'viewer'])
    users[role] = await cp.makeUser(`${role}@acme.test`, { tenantId: acme.id, role });
  users.outsider = await cp.makeUser('owner@globex.test', { tenantId: globex.id, role: 'owner' });
  users.nobody = await cp.makeUser('nobody@example.test');
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const count = (table, where = 'true') => Number(cp.sql(`SELECT count(*) FROM ${table} WHERE ${where}`));
const q = (s) => s.replace(/'/g, "''");
const sha256hex = (s) => createHash('sha256').update(s).digest('hex');

async function newUser(body, token = admin) {
  const r = await cp.api('POST', '/api/v1/users', { token, body });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function newToken(token, body) {
  const r = await cp.api('POST', '/api/v1/tokens', { token, body });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

// Tenant admins add only users they can already see: this makes a user visible to acme's owner
// and admin by putting it in a tenant ("pool") that both administer.
let pool;
function visibleToAcmeAdmins(userId) {
  if (!pool) {
    pool = cp.sql(`INSERT INTO tenants (slug, name) VALUES ('pool', 'pool') RETURNING id`);
    cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${users.owner.id}', '${pool}', 'owner'), ('${users.admin.id}', '${pool}', 'admin')`);
  }
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${userId}', '${pool}', 'viewer')`);
}

async function verifyIntact() {
  const v = await cp.api('GET', '/api/v1/audit-log/verify', { token: admin });
  assert.equal(v.status, 200);
  assert.equal(v.body.intact, true);
}

// ---- users ----

test('a platform admin creates a user who can log in; no response carries the password hash', async () => {
  const before = count('audit_log', "action = 'user.create'");
  const u = await newUser({ email: 'Alice@Example.TEST', name: 'Alice', password: PW });
  assert.equal(u.email, 'alice@example.test');
  assert.equal(u.name, 'Alice');
  assert.equal(u.is_platform_admin, false);
  assert.equal(u.is_service, false);
  assert.equal(u.disabled, false);
  assert.ok(!('password_hash' in u) && !('password' in u));
  assert.match(cp.sql(`SELECT password_hash FROM users WHERE id = '${u.id}'`), /^\$argon2id\$/);
  const token = await cp.login('ALICE@example.test', PW);
  const g = await cp.api('GET', `/api/v1/users/${u.id}`, { token });
  assert.equal(g.status, 200);
  assert.ok(!g.text.includes('argon2') && !g.text.includes('password'));
  const list = await cp.api('GET', '/api/v1/users', { token: admin });
  assert.ok(!list.text.includes('argon2'));
  // the same address in another case is the same address
  const dup = await cp.api('POST', '/api/v1/users', { token: admin, body: { email: 'ALICE@example.test', password: PW } });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.error.field, 'email');
  assert.doesNotMatch(dup.body.error.message, /_key|users/);
  assert.equal(count('users', "lower(email) = 'alice@example.test'"), 1);
  assert.equal(count('audit_log', "action = 'user.create'"), before + 1);
  const a = cp.sql(`SELECT after::text FROM audit_log WHERE action = 'user.create' AND target_id = '${u.id}'`);
  assert.match(a, /alice@example\.test/);
  assert.ok(!a.includes('argon2') && !a.includes(PW));
});

test('bad user bodies get 400 or 422 and create nothing', async () => {
  const n = count('users');
  const audits = count('audit_log');
  const cases = [
    ['', 400], ['{', 400], ['[]', 400], ['"x"', 400],
    [JSON.stringify({ email: 1, password: PW }), 400],
    [JSON.stringify({ email: 'b@x.test', password: PW, is_service: 'yes' }), 400],
    [JSON.stringify({ email: 'b@x.test', password: PW, team: 'admin' }), 400], // unknown field
    [JSON.stringify({ email: 'b@x.test', password: PW, role: 'admin' }), 422], // a role needs tenant_id
    [JSON.stringify({ password: PW }), 400],
    [JSON.stringify({ email: 'b@x.test' }), 400], // no password, not a service account
    [JSON.stringify({ email: 'b@x.test', password: 'short-pw-11' }), 422], // 11 characters
    [JSON.stringify({ email: 'b@x.test', password: '😀😀😀😀😀😀😀😀😀😀😀' }), 422], // 11 characters, 44 bytes
    [JSON.stringify({ email: 'b@x.test', password: 'p'.repeat(1025) }), 422],
    [JSON.stringify({ email: 'no-at-sign.test', password: PW }), 422],
    [JSON.stringify({ email: 'two@at@x.test', password: PW }), 422],
    [JSON.stringify({ email: '@x.test', password: PW }), 422],
    [JSON.stringify({ email: 'b@', password: PW }), 422],
    [JSON.stringify({ email: 'b c@x.test', password: PW }), 422],
    [JSON.stringify({ email: `${'a'.repeat(250)}@x.te`, password: PW }), 422], // 255 bytes
    [JSON.stringify({ email: 'b\u0000@x.test', password: PW }), 400], // jansson refuses NUL outright
    [JSON.stringify({ email: 'b\u0001@x.test', password: PW }), 422],
    [JSON.stringify({ email: 'b@x.test', name: 'n'.repeat(201), password: PW }), 422],
    [JSON.stringify({ email: 'b@x.test', name: 'bad\u0000name', password: PW }), 400],
    [JSON.stringify({ email: 'b@x.test', name: 'bell\u0007', password: PW }), 422],
    [JSON.stringify({ email: 'b@x.test', name: 'x', password: PW, is_service: true }), 422], // a service account has no password
    [JSON.stringify({ email: 'b@x.test', password: PW, email2: 1 }), 400],
    ['{"email":"b@x.test","email":"c@x.test","password":"a-good-long-password-1"}', 400], // duplicate key
  ];
  for (const [raw, status] of cases) {
    const r = await cp.api('POST', '/api/v1/users', { token: admin, raw });
    assert.equal(r.status, status, `${raw.slice(0, 80)} -> ${r.status} ${r.text}`);
    assert.ok(r.body.error.code && r.body.error.message);
  }
  assert.equal(count('users'), n);
  assert.equal(count('audit_log'), audits);
  // exactly 12 characters, multi-byte, is long enough
  const ok = await newUser({ email: 'emoji-pw@x.test', password: '😀😀😀😀😀😀😀😀😀😀😀😀' });
  assert.equal(typeof (await cp.login('emoji-pw@x.test', '😀😀😀😀😀😀😀😀😀😀😀😀')), 'string');
  assert.ok(ok.id);
});

test('unicode names are stored as given and SQL metacharacters are stored literally', async () => {
  const names = ['Zoë 😀 Ünïcödé', 'مرحبا بالعالم', 'e\u0301\u0301 combining', "Robert'); DROP TABLE users; --"];
  for (const [i, name] of names.entries()) {
    const u = await newUser({ email: `uni${i}@x.test`, name, password: PW });
    assert.equal(u.name, name);
    assert.equal(cp.sql(`SELECT name FROM users WHERE id = '${u.id}'`), name);
  }
  const evil = await newUser({ email: "o'brien+';DROP/**/TABLE/**/users;--@x.test", password: PW });
  assert.equal(evil.email, "o'brien+';drop/**/table/**/users;--@x.test");
  assert.equal(cp.sql("SELECT to_regclass('users') IS NOT NULL"), 't');
  const f = await cp.api('GET', `/api/v1/users?email=${encodeURIComponent("O'BRIEN+';DROP/**/TABLE/**/users;--@x.test")}`, { token: admin });
  assert.equal(f.status, 200);
  assert.deepEqual(f.body.data.map((u) => u.id), [evil.id]);
});

test('only platform admins list and create users; the list filters by email and pages', async () => {
  for (const who of ['owner', 'admin', 'member', 'viewer', 'outsider', 'nobody']) {
    const token = users[who].token;
    assert.equal((await cp.api('GET', '/api/v1/users', { token })).status, 403, `${who} list`);
    const c = await cp.api('POST', '/api/v1/users', { token, body: { email: `made-by-${who}@x.test`, password: PW } });
    assert.equal(c.status, 403, `${who} create`);
  }
  assert.equal(count('users', "email LIKE 'made-by-%'"), 0);
  const byEmail = await cp.api('GET', '/api/v1/users?email=MEMBER@acme.test', { token: admin });
  assert.equal(byEmail.status, 200);
  assert.deepEqual(byEmail.body.data.map((u) => u.id), [users.member.id]);
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await cp.api('GET', `/api/v1/users?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length <= 3);
    seen.push(...r.body.data.map((u) => u.id));
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 50);
  assert.equal(seen.length, count('users'));
  assert.equal(new Set(seen).size, seen.length);
  assert.equal((await cp.api('GET', '/api/v1/users?limit=0', { token: admin })).status, 400);
  assert.equal((await cp.api('GET', '/api/v1/users?cursor=nope', { token: admin })).status, 400);
});

test('a user reads and edits themself and nobody else; others get the same 404 as a random id', async () => {
  const u = await newUser({ email: 'self@x.test', name: 'Self', password: PW });
  const token = await cp.login('self@x.test', PW);
  assert.equal((await cp.api('GET', `/api/v1/users/${u.id}`, { token })).status, 200);
  assert.equal((await cp.api('GET', `/api/v1/users/${u.id.toUpperCase()}`, { token })).status, 200);
  const other = await cp.api('GET', `/api/v1/users/${users.owner.id}`, { token });
  const random = await cp.api('GET', `/api/v1/users/${RANDOM}`, { token });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, random.body);
  assert.equal((await cp.api('GET', '/api/v1/users/not-a-uuid', { token })).status, 404);
  // patch another user, or delete: 404 for others, 403 on yourself
  assert.equal((await cp.api('PATCH', `/api/v1/users/${users.owner.id}`, { token, body: { name: 'x' } })).status, 404);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${users.owner.id}`, { token })).status, 404);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${u.id}`, { token })).status, 403);
  const r = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { name: 'Selfie 😀' } });
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'Selfie 😀');
  // only platform admins set these
  for (const body of [{ disabled: false }, { is_platform_admin: true }, { email: 'new@x.test' }]) {
    const f = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body });
    assert.equal(f.status, 403, JSON.stringify(body));
  }
  assert.equal(cp.sql(`SELECT is_platform_admin || ',' || email FROM users WHERE id = '${u.id}'`), 'false,self@x.test');
  // a password change needs the current password
  const newPw = 'another-long-password-2';
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { password: newPw } })).status, 400);
  const wrong = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { password: newPw, current_password: 'wrong-wrong-wrong' } });
  assert.equal(wrong.status, 403);
  assert.equal(wrong.body.error.field, 'current_password');
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { password: 'too-short', current_password: PW } })).status, 422);
  const hash = cp.sql(`SELECT password_hash FROM users WHERE id = '${u.id}'`);
  const ok = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { password: newPw, current_password: PW } });
  assert.equal(ok.status, 200);
  assert.ok(!ok.text.includes('argon2'));
  assert.notEqual(cp.sql(`SELECT password_hash FROM users WHERE id = '${u.id}'`), hash);
  assert.equal((await cp.api('POST', '/api/v1/auth/login', { body: { email: 'self@x.test', password: PW } })).status, 401);
  assert.equal(typeof (await cp.login('self@x.test', newPw)), 'string');
  const audit = cp.sql(`SELECT string_agg(after::text, ' ') FROM audit_log WHERE action = 'user.update' AND target_id = '${u.id}'`);
  assert.match(audit, /"password_changed": true/);
  assert.ok(!audit.includes('argon2') && !audit.includes(newPw));
});

test('bad user updates get 400 or 422 and change nothing', async () => {
  const u = await newUser({ email: 'patchme@x.test', name: 'Before', password: PW });
  const row = () => cp.sql(`SELECT row_to_json(u)::text FROM users u WHERE id = '${u.id}'`);
  const was = row();
  const audits = count('audit_log');
  const cases = [
    ['{', 400], ['[]', 400], ['{}', 400],
    [JSON.stringify({ name: 5 }), 400],
    [JSON.stringify({ disabled: 'true' }), 400],
    [JSON.stringify({ is_service: true }), 400], // cannot be changed
    [JSON.stringify({ name: 'x', password_hash: 'x' }), 400],
    [JSON.stringify({ name: 'n'.repeat(201) }), 422],
    [JSON.stringify({ name: '' }), 422],
    [JSON.stringify({ name: 'tab\u001bescape' }), 422],
    [JSON.stringify({ email: 'bad' }), 422],
    [JSON.stringify({ email: 'OWNER@acme.test' }), 409],
    [JSON.stringify({ current_password: PW }), 422],
    [JSON.stringify({ password: 'short' }), 422],
  ];
  for (const [raw, status] of cases) {
    const r = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, raw });
    assert.equal(r.status, status, `${raw.slice(0, 80)} -> ${r.status} ${r.text}`);
  }
  assert.equal(row(), was);
  assert.equal(count('audit_log'), audits);
});

test('a platform admin disables, unlocks, promotes and deletes users, but never removes itself', async () => {
  const u = await newUser({ email: 'managed@x.test', password: PW });
  let token = await cp.login('managed@x.test', PW);
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 200);
  const d = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { disabled: true } });
  assert.equal(d.status, 200);
  assert.equal(d.body.disabled, true);
  // live: the existing session stops working and a new login fails
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 401);
  assert.equal((await cp.api('POST', '/api/v1/auth/login', { body: { email: 'managed@x.test', password: PW } })).status, 401);
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { disabled: false } })).status, 200);
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 200);
  // an admin sets a password without the old one, and that clears a lockout (and ends the
  // user's sessions)
  cp.sql(`INSERT INTO login_failures (email, source, failures, locked_until) VALUES ('managed@x.test', '127.0.0.1', 9, now() + interval '1 hour')
    ON CONFLICT (email, source) DO UPDATE SET failures = 9, locked_until = now() + interval '1 hour'`);
  assert.equal((await cp.api('POST', '/api/v1/auth/login', { body: { email: 'managed@x.test', password: PW } })).status, 429);
  const newPw = 'reset-by-admin-password';
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { password: newPw } })).status, 200);
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 401);
  token = await cp.login('managed@x.test', newPw);
  // promotion makes a platform admin
  const p = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { is_platform_admin: true, email: 'Managed2@x.test' } });
  assert.equal(p.status, 200);
  assert.equal(p.body.email, 'managed2@x.test');
  assert.equal((await cp.api('GET', '/api/v1/users', { token })).status, 200);
  // ...who cannot demote, disable or delete itself
  const selfDemote = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { is_platform_admin: false } });
  assert.equal(selfDemote.status, 422);
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token, body: { disabled: true } })).status, 422);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${u.id}`, { token })).status, 422);
  assert.equal((await cp.api('PATCH', `/api/v1/users/${adminId}`, { token: admin, body: { is_platform_admin: false } })).status, 422);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${adminId}`, { token: admin })).status, 422);
  assert.equal(cp.sql(`SELECT is_platform_admin AND NOT disabled FROM users WHERE id = '${u.id}'`), 't');
  // but another platform admin can
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { is_platform_admin: false } })).status, 200);
  assert.equal((await cp.api('GET', '/api/v1/users', { token })).status, 403);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${u.id}`, { token: admin })).status, 204);
  assert.equal((await cp.api('GET', `/api/v1/users/${u.id}`, { token: admin })).status, 404);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${u.id}`, { token: admin })).status, 404);
  assert.equal((await cp.api('GET', '/api/v1/me', { token })).status, 401);
  const actions = cp.sql(`SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE target_id = '${u.id}'`);
  assert.equal(actions, 'user.create,user.update,user.update,user.update,user.update,user.update,user.delete');
  const del = cp.sql(`SELECT before::text FROM audit_log WHERE action = 'user.delete' AND target_id = '${u.id}'`);
  assert.match(del, /managed2@x\.test/);
  assert.ok(!del.includes('argon2'));
});

test('service accounts have no password, cannot log in and cannot be given one', async () => {
  const s = await newUser({ email: 'ci-bot@x.test', name: 'CI', is_service: true });
  assert.equal(s.is_service, true);
  assert.equal(cp.sql(`SELECT password_hash IS NULL FROM users WHERE id = '${s.id}'`), 't');
  assert.equal((await cp.api('POST', '/api/v1/auth/login', { body: { email: 'ci-bot@x.test', password: PW } })).status, 401);
  const r = await cp.api('PATCH', `/api/v1/users/${s.id}`, { token: admin, body: { password: PW } });
  assert.equal(r.status, 422);
  assert.equal(cp.sql(`SELECT password_hash IS NULL FROM users WHERE id = '${s.id}'`), 't');
});

// ---- memberships ----

test('role matrix for members: list, add, change, remove', async () => {
  const target = await newUser({ email: 'joiner@x.test', password: PW });
  visibleToAcmeAdmins(target.id);
  const expect = {
    //          list put  delete
    owner:     [200, 201, 204],
    admin:     [200, 201, 204],
    member:    [200, 403, 403],
    viewer:    [200, 403, 403],
    outsider:  [404, 404, 404],
    nobody:    [404, 404, 404],
  };
  for (const [who, [list, put, del]] of Object.entries(expect)) {
    const token = users[who].token;
    const l = await cp.api('GET', `/api/v1/tenants/${acme.id}/members`, { token });
    assert.equal(l.status, list, `${who} list`);
    const p = await cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${target.id}`, { token, body: { role: 'member' } });
    assert.equal(p.status, put, `${who} put`);
    if (put === 201) {
      assert.deepEqual(Object.keys(p.body).sort(), ['created_at', 'email', 'name', 'role', 'user_id']);
      assert.equal(p.body.role, 'member');
      const c = await cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${target.id}`, { token, body: { role: 'viewer' } });
      assert.equal(c.status, 200, `${who} change`);
      assert.equal(c.body.role, 'viewer');
    } else {
      cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${target.id}', '${acme.id}', 'viewer')`);
    }
    const d = await cp.api('DELETE', `/api/v1/tenants/${acme.id}/members/${target.id}`, { token });
    assert.equal(d.status, del, `${who} delete`);
    if (del !== 204) {
      assert.equal(count('memberships', `user_id = '${target.id}' AND tenant_id = '${acme.id}'`), 1, `${who} left it`);
      cp.sql(`DELETE FROM memberships WHERE user_id = '${target.id}' AND tenant_id = '${acme.id}'`);
    }
  }
  const l = await cp.api('GET', `/api/v1/tenants/${acme.id}/members`, { token: users.viewer.token });
  const roles = Object.fromEntries(l.body.data.map((m) => [m.email, m.role]));
  assert.deepEqual(roles, { 'owner@acme.test': 'owner', 'admin@acme.test': 'admin', 'member@acme.test': 'member', 'viewer@acme.test': 'viewer' });
  assert.ok(!l.text.includes('argon2') && !l.text.includes('password'));
  const actions = cp.sql(`SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE target_id = '${target.id}' AND action LIKE 'member.%'`);
  assert.equal(actions, 'member.put,member.put,member.delete,member.put,member.put,member.delete');
  assert.equal(cp.sql(`SELECT count(DISTINCT tenant_id) FROM audit_log WHERE target_id = '${target.id}' AND action LIKE 'member.%'`), '1');
});

test('only owners grant, change or remove the owner role, and the last owner stays', async () => {
  const a = await newUser({ email: 'future-owner@x.test', password: PW });
  visibleToAcmeAdmins(a.id);
  const put = (token, id, role) => cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${id}`, { token, body: { role } });
  const del = (token, id) => cp.api('DELETE', `/api/v1/tenants/${acme.id}/members/${id}`, { token });
  // a tenant admin cannot make an owner, nor touch one
  assert.equal((await put(users.admin.token, a.id, 'owner')).status, 403);
  assert.equal((await put(users.admin.token, users.admin.id, 'owner')).status, 403);
  assert.equal((await put(users.admin.token, users.owner.id, 'admin')).status, 403);
  assert.equal((await del(users.admin.token, users.owner.id)).status, 403);
  assert.equal(count('memberships', `tenant_id = '${acme.id}' AND role = 'owner'`), 1);
  // the only owner cannot step down or be removed, even by a platform admin
  assert.equal((await put(users.owner.token, users.owner.id, 'admin')).status, 422);
  assert.equal((await del(users.owner.token, users.owner.id)).status, 422);
  assert.equal((await del(admin, users.owner.id)).status, 422);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${users.owner.id}`, { token: admin })).status, 422);
  assert.equal(cp.sql(`SELECT role FROM memberships WHERE tenant_id = '${acme.id}' AND user_id = '${users.owner.id}'`), 'owner');
  // an owner makes another owner, who can then be demoted and removed
  assert.equal((await put(users.owner.token, a.id, 'owner')).status, 201);
  assert.equal((await put(users.owner.token, a.id, 'admin')).status, 200);
  assert.equal((await put(admin, a.id, 'owner')).status, 200);
  assert.equal((await del(users.owner.token, a.id)).status, 204);
  assert.equal((await del(users.owner.token, a.id)).status, 404);
  // a tenant admin may manage other admins and members
  assert.equal((await put(users.admin.token, a.id, 'admin')).status, 201);
  assert.equal((await del(users.admin.token, a.id)).status, 204);
  // with two owners, deleting one user is fine
  const b = await newUser({ email: 'co-owner@x.test', password: PW });
  assert.equal((await put(admin, b.id, 'owner')).status, 201);
  assert.equal((await cp.api('DELETE', `/api/v1/users/${b.id}`, { token: admin })).status, 204);
  assert.equal(count('memberships', `tenant_id = '${acme.id}' AND role = 'owner'`), 1);
});

test('bad membership requests get 400, 404 or 422 and change nothing', async () => {
  const t = await newUser({ email: 'bad-member@x.test', password: PW });
  const members = () => cp.sql(`SELECT string_agg(user_id || role, ',' ORDER BY user_id) FROM memberships`);
  const was = members();
  const audits = count('audit_log');
  const token = users.admin.token;
  const url = `/api/v1/tenants/${acme.id}/members/${t.id}`;
  for (const [raw, status] of [['', 400], ['{', 400], ['[]', 400], ['{}', 400], ['{"role":1}', 400],
    ['{"role":"admin","x":1}', 400], ['{"role":"superuser"}', 422], ['{"role":"platform"}', 422],
    ['{"role":"Owner"}', 422], ['{"role":"viewer\\u0000"}', 400], ['{"role":"viewer\\u0007"}', 422], [`{"role":"'; DROP TABLE memberships; --"}`, 422]]) {
    const r = await cp.api('PUT', url, { token, raw });
    assert.equal(r.status, status, `${raw} -> ${r.status} ${r.text}`);
  }
  const notFound = [
    ['PUT', `/api/v1/tenants/${acme.id}/members/${RANDOM}`],
    ['PUT', `/api/v1/tenants/${acme.id}/members/not-a-uuid`],
    ['PUT', `/api/v1/tenants/${RANDOM}/members/${t.id}`],
    ['DELETE', `/api/v1/tenants/${acme.id}/members/${t.id}`], // not a member
    ['DELETE', `/api/v1/tenants/${acme.id}/members/nope`],
  ];
  for (const [m, p] of notFound) {
    const r = await cp.api(m, p, { token, body: { role: 'viewer' } });
    assert.equal(r.status, 404, `${m} ${p}`);
  }
  // platform admin on a tenant that does not exist
  assert.equal((await cp.api('PUT', `/api/v1/tenants/${RANDOM}/members/${t.id}`, { token: admin, body: { role: 'viewer' } })).status, 404);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}/members?cursor=zzz`, { token })).status, 400);
  assert.equal(members(), was);
  assert.equal(count('audit_log'), audits);
  assert.equal(cp.sql("SELECT to_regclass('memberships') IS NOT NULL"), 't');
});

test("another tenant's members cannot be read, changed or detected", async () => {
  const token = users.outsider.token; // owner of globex
  for (const [m, p] of [
    ['GET', `/api/v1/tenants/${acme.id}/members`],
    ['PUT', `/api/v1/tenants/${acme.id}/members/${users.outsider.id}`],
    ['PUT', `/api/v1/tenants/${acme.id}/members/${users.member.id}`],
    ['DELETE', `/api/v1/tenants/${acme.id}/members/${users.member.id}`],
  ]) {
    const real = await cp.api(m, p, { token, body: m === 'PUT' ? { role: 'owner' } : undefined });
    const fake = await cp.api(m, p.replace(acme.id, RANDOM), { token, body: m === 'PUT' ? { role: 'owner' } : undefined });
    assert.equal(real.status, 404, `${m} ${p}`);
    assert.deepEqual(real.body, fake.body);
  }
  assert.equal(count('memberships', `tenant_id = '${acme.id}' AND user_id = '${users.outsider.id}'`), 0);
  assert.equal(cp.sql(`SELECT role FROM memberships WHERE tenant_id = '${acme.id}' AND user_id = '${users.member.id}'`), 'member');
  // and globex's own owner still manages globex
  const l = await cp.api('GET', `/api/v1/tenants/${globex.id}/members`, { token });
  assert.deepEqual(l.body.data.map((x) => x.email), ['owner@globex.test']);
});

test('the member list pages with a cursor', async () => {
  const t = await cp.makeTenant(admin, 'paged');
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const u = await newUser({ email: `pg${i}@x.test`, password: PW });
    assert.equal((await cp.api('PUT', `/api/v1/tenants/${t.id}/members/${u.id}`, { token: admin, body: { role: 'viewer' } })).status, 201);
    ids.push(u.id);
  }
  const seen = [];
  let cursor = null;
  let pages = 0;
  do {
    const r = await cp.api('GET', `/api/v1/tenants/${t.id}/members?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(r.status, 200);
    seen.push(...r.body.data.map((m) => m.user_id));
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 10);
  assert.equal(pages, 3);
  assert.deepEqual(seen, [...ids].sort());
});

// ---- admin API tokens ----

test('a token is shown once, stored only as a hash, and listed without its secret', async () => {
  const t = await newToken(users.owner.token, { name: 'reader', role: 'viewer', tenant_id: acme.id });
  assert.match(t.token, /^tgat-[A-Za-z0-9_-]{43}$/);
  assert.equal(t.last4, t.token.slice(-4));
  assert.equal(t.role, 'viewer');
  assert.equal(t.tenant_id, acme.id);
  assert.equal(t.user_id, users.owner.id);
  assert.equal(t.created_by, users.owner.id);
  assert.equal(t.revoked_at, null);
  const secret = t.token.slice(5);
  // the row holds the SHA-256 of the whole token and nothing containing the plaintext
  assert.equal(count('api_tokens', `id = '${t.id}' AND token_hash = sha256(convert_to('${t.token}', 'UTF8'))`), 1);
  assert.equal(cp.sql(`SELECT encode(token_hash, 'hex') FROM api_tokens WHERE id = '${t.id}'`), sha256hex(t.token));
  assert.equal(count('api_tokens', `row_to_json(api_tokens)::text LIKE '%${secret}%'`), 0);
  assert.equal(count('api_tokens', `position('${secret.slice(0, 20)}' IN row_to_json(api_tokens)::text) > 0`), 0);
  assert.equal(count('audit_log', `row_to_json(audit_log)::text LIKE '%${secret.slice(0, 20)}%'`), 0);
  assert.equal(count('audit_log', `action = 'token.create' AND target_id = '${t.id}' AND tenant_id = '${acme.id}'`), 1);
  const l = await cp.api('GET', '/api/v1/tokens', { token: users.owner.token });
  assert.equal(l.status, 200);
  assert.ok(l.body.data.some((x) => x.id === t.id));
  assert.ok(!l.text.includes(secret) && !l.text.includes('"token"') && !l.text.includes('token_hash'));
  // other users do not see it
  const o = await cp.api('GET', '/api/v1/tokens', { token: users.admin.token });
  assert.ok(!o.body.data.some((x) => x.id === t.id));
  // a platform admin lists anyone's; others may not ask
  const p = await cp.api('GET', `/api/v1/tokens?user_id=${users.owner.id}`, { token: admin });
  assert.ok(p.body.data.some((x) => x.id === t.id));
  assert.equal((await cp.api('GET', `/api/v1/tokens?user_id=${users.owner.id}`, { token: users.admin.token })).status, 403);
  assert.equal((await cp.api('GET', '/api/v1/tokens?user_id=nope', { token: admin })).status, 400);
});

test('a tenant-scoped viewer token reads its tenant, cannot write it, and cannot see another', async () => {
  // the owner's role is capped by the token: viewer, in acme only
  const { token, id } = await newToken(users.owner.token, { name: 'ci reader', role: 'viewer', tenant_id: acme.id });
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token })).status, 200);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}/members`, { token })).status, 200);
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token, body: { name: 'hacked' } })).status, 403);
  assert.equal((await cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${users.nobody.id}`, { token, body: { role: 'viewer' } })).status, 403);
  assert.equal(cp.sql(`SELECT name FROM tenants WHERE id = '${acme.id}'`), 'acme');
  // the owner also owns globex; the token does not reach it
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${users.owner.id}', '${globex.id}', 'owner')`);
  try {
    assert.equal((await cp.api('GET', `/api/v1/tenants/${globex.id}`, { token: users.owner.token })).status, 200);
    const real = await cp.api('GET', `/api/v1/tenants/${globex.id}`, { token });
    const fake = await cp.api('GET', `/api/v1/tenants/${RANDOM}`, { token });
    assert.equal(real.status, 404);
    assert.deepEqual(real.body, fake.body);
    assert.equal((await cp.api('GET', `/api/v1/tenants/${globex.id}/members`, { token })).status, 404);
    const list = await cp.api('GET', '/api/v1/tenants', { token });
    assert.deepEqual(list.body.data.map((x) => x.slug), ['acme']);
  } finally {
    cp.sql(`DELETE FROM memberships WHERE user_id = '${users.owner.id}' AND tenant_id = '${globex.id}'`);
  }
  const me = await cp.api('GET', '/api/v1/me', { token });
  assert.deepEqual(me.body.token, { id, role: 'viewer', tenant_id: acme.id });
  // it cannot mint a wider token: no tenant, another tenant, a higher role
  assert.equal((await cp.api('POST', '/api/v1/tokens', { token, body: { name: 'x', role: 'viewer' } })).status, 403);
  assert.equal((await cp.api('POST', '/api/v1/tokens', { token, body: { name: 'x', role: 'viewer', tenant_id: globex.id } })).status, 404);
  assert.equal((await cp.api('POST', '/api/v1/tokens', { token, body: { name: 'x', role: 'member', tenant_id: acme.id } })).status, 403);
  assert.equal((await cp.api('GET', '/api/v1/users', { token })).status, 403);
  assert.equal(count('api_tokens', "name = 'x'"), 0);
});

test('a token can be no wider than its creator', async () => {
  const tries = [
    // who, body, status
    ['member', { role: 'admin', tenant_id: acme.id }, 403],
    ['member', { role: 'member', tenant_id: acme.id }, 201],
    ['viewer', { role: 'member', tenant_id: acme.id }, 403],
    ['viewer', { role: 'viewer', tenant_id: acme.id }, 201],
    ['admin', { role: 'owner', tenant_id: acme.id }, 403],
    ['admin', { role: 'admin', tenant_id: acme.id }, 201],
    ['owner', { role: 'owner', tenant_id: acme.id }, 201],
    ['owner', { role: 'admin' }, 403], // platform scope
    ['owner', { role: 'viewer', tenant_id: globex.id }, 404],
    ['owner', { role: 'viewer', tenant_id: RANDOM }, 404],
    ['outsider', { role: 'viewer', tenant_id: acme.id }, 404],
    ['nobody', { role: 'viewer', tenant_id: acme.id }, 404],
    ['nobody', { role: 'viewer' }, 201], // reaches only what its user reaches: nothing
  ];
  for (const [who, body, status] of tries) {
    const r = await cp.api('POST', '/api/v1/tokens', { token: users[who].token, body: { name: `${who}-${body.role}`, ...body } });
    assert.equal(r.status, status, `${who} ${JSON.stringify(body)} -> ${r.text}`);
  }
  // what a member's member token can do: read, not administer
  const mt = await newToken(users.member.token, { name: 'm', role: 'member', tenant_id: acme.id });
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: mt.token })).status, 200);
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token: mt.token, body: { name: 'x' } })).status, 403);
  // a platform admin's admin token without a tenant is platform scope
  const pt = await newToken(admin, { name: 'platform', role: 'admin' });
  assert.equal(pt.tenant_id, null);
  assert.equal((await cp.api('GET', '/api/v1/users', { token: pt.token })).status, 200);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${globex.id}`, { token: pt.token })).status, 200);
  // a platform admin's tenant-scoped admin token is not platform scope
  const st = await newToken(admin, { name: 'scoped', role: 'admin', tenant_id: acme.id });
  assert.equal((await cp.api('GET', '/api/v1/users', { token: st.token })).status, 403);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${globex.id}`, { token: st.token })).status, 404);
  // ...but it reaches its own tenant as an admin there, membership or not
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: st.token })).status, 200);
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token: st.token, body: { name: 'Acme' } })).status, 200);
  // and a platform admin's viewer token without a tenant is not platform scope either: it reads
  // every tenant as a viewer and changes none
  const vt = await newToken(admin, { name: 'viewer-any', role: 'viewer' });
  assert.equal((await cp.api('GET', '/api/v1/users', { token: vt.token })).status, 403);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: vt.token })).status, 200);
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token: vt.token, body: { name: 'x' } })).status, 403);
});

test('bad token requests get 400, 404 or 422 and create nothing', async () => {
  const n = count('api_tokens');
  const audits = count('audit_log');
  const token = users.owner.token;
  const past = Math.floor(Date.now() / 1000) - 60;
  const cases = [
    ['', 400], ['{', 400], ['[]', 400],
    [{ role: 'viewer', tenant_id: acme.id }, 400], // no name
    [{ name: 'x', tenant_id: acme.id }, 400], // no role
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, scope: 'all' }, 400],
    [{ name: 1, role: 'viewer', tenant_id: acme.id }, 400],
    [{ name: 'x', role: 'viewer', tenant_id: 7 }, 400],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: true }, 400],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: 1.5 }, 400],
    [{ name: 'x', role: 'platform', tenant_id: acme.id }, 422],
    [{ name: 'x', role: 'Viewer', tenant_id: acme.id }, 422],
    [{ name: '', role: 'viewer', tenant_id: acme.id }, 422],
    [{ name: 'n'.repeat(201), role: 'viewer', tenant_id: acme.id }, 422],
    [{ name: 'nul\u0000', role: 'viewer', tenant_id: acme.id }, 400],
    [{ name: 'esc\u001b[31m', role: 'viewer', tenant_id: acme.id }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: 'acme' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: "'; DROP TABLE api_tokens; --" }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, user_id: 'me' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: past }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: 0 }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: new Date(Date.now() - 60000).toISOString() }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: 'tomorrow' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: 'infinity' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: '2999-01-01' }, 422], // no time
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: '2999-01-01T00:00:00' }, 422], // no offset
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: '2999-02-31T00:00:00Z' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: '2999-01-01T25:00:00Z' }, 422],
    [{ name: 'x', role: 'viewer', tenant_id: acme.id, expires_at: "2999-01-01T00:00:00Z'; --" }, 422],
  ];
  for (const [body, status] of cases) {
    const opts = typeof body === 'string' ? { token, raw: body } : { token, body };
    const r = await cp.api('POST', '/api/v1/tokens', opts);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 100)} -> ${r.status} ${r.text}`);
    assert.ok(r.body.error.message);
  }
  assert.equal(count('api_tokens'), n);
  assert.equal(count('audit_log'), audits);
  assert.equal(cp.sql("SELECT to_regclass('api_tokens') IS NOT NULL"), 't');
  // both forms of a future time are taken; names keep their unicode and quotes
  const a = await newToken(token, { name: "ci 😀 'quoted'; --", role: 'viewer', tenant_id: acme.id, expires_at: '2999-01-01T00:00:00.5+02:00' });
  assert.equal(a.name, "ci 😀 'quoted'; --");
  assert.equal(cp.sql(`SELECT expires_at = '2998-12-31 22:00:00.5+00' FROM api_tokens WHERE id = '${a.id}'`), 't');
  const b = await newToken(token, { name: 'unix', role: 'viewer', tenant_id: acme.id, expires_at: 32503680000 });
  assert.equal(cp.sql(`SELECT extract(epoch FROM expires_at)::bigint FROM api_tokens WHERE id = '${b.id}'`), '32503680000');
});

test('a revoked or expired token gets 401', async () => {
  const t = await newToken(users.admin.token, { name: 'short-lived', role: 'viewer', tenant_id: acme.id });
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: t.token })).status, 200);
  // someone else cannot revoke it, or tell it exists
  const other = await cp.api('DELETE', `/api/v1/tokens/${t.id}`, { token: users.member.token });
  const fake = await cp.api('DELETE', `/api/v1/tokens/${RANDOM}`, { token: users.member.token });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, fake.body);
  assert.equal((await cp.api('DELETE', '/api/v1/tokens/nope', { token: users.admin.token })).status, 404);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: t.token })).status, 200);
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${t.id}`, { token: users.admin.token })).status, 204);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: t.token })).status, 401);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: t.token })).status, 401);
  assert.equal(cp.sql(`SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = '${t.id}'`), 't');
  // revoking again changes nothing and writes no second audit row
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${t.id}`, { token: users.admin.token })).status, 204);
  assert.equal(count('audit_log', `action = 'token.revoke' AND target_id = '${t.id}'`), 1);
  // a token can revoke itself; a platform admin revokes anyone's
  const self = await newToken(users.admin.token, { name: 'self-revoking', role: 'viewer', tenant_id: acme.id });
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${self.id}`, { token: self.token })).status, 204);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: self.token })).status, 401);
  const third = await newToken(users.member.token, { name: 'member-own', role: 'viewer', tenant_id: acme.id });
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${third.id}`, { token: admin })).status, 204);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: third.token })).status, 401);
  // expiry, for real: two seconds ahead
  const exp = Math.floor(Date.now() / 1000) + 2;
  const e = await newToken(users.admin.token, { name: 'expiring', role: 'viewer', tenant_id: acme.id, expires_at: exp });
  assert.equal((await cp.api('GET', '/api/v1/me', { token: e.token })).status, 200);
  await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 1100));
  assert.equal((await cp.api('GET', '/api/v1/me', { token: e.token })).status, 401);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: e.token })).status, 401);
  const before = cp.sql(`SELECT before->>'revoked_at' IS NULL AND after->>'revoked_at' IS NOT NULL FROM audit_log WHERE action = 'token.revoke' AND target_id = '${t.id}'`);
  assert.equal(before, 't');
});

test('service account tokens: minted by a platform admin, or by a tenant admin for that tenant', async () => {
  const bot = await newUser({ email: 'deploy-bot@x.test', name: 'Deploy', is_service: true });
  const lone = await newUser({ email: 'lone-bot@x.test', is_service: true });
  visibleToAcmeAdmins(bot.id);
  assert.equal((await cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${bot.id}`, { token: users.admin.token, body: { role: 'admin' } })).status, 201);
  const mint = (token, body) => cp.api('POST', '/api/v1/tokens', { token, body: { name: 'bot', ...body } });
  const n = count('api_tokens');
  // members and viewers may not; nor a tenant admin without a tenant scope, or for another tenant
  assert.equal((await mint(users.member.token, { role: 'viewer', tenant_id: acme.id, user_id: bot.id })).status, 403);
  assert.equal((await mint(users.viewer.token, { role: 'viewer', tenant_id: acme.id, user_id: bot.id })).status, 403);
  assert.equal((await mint(users.admin.token, { role: 'viewer', user_id: bot.id })).status, 403);
  assert.equal((await mint(users.outsider.token, { role: 'viewer', tenant_id: globex.id, user_id: bot.id })).status, 404);
  // only for service accounts of the tenant
  assert.equal((await mint(users.admin.token, { role: 'viewer', tenant_id: acme.id, user_id: users.member.id })).status, 422);
  assert.equal((await mint(users.admin.token, { role: 'viewer', tenant_id: acme.id, user_id: lone.id })).status, 404);
  assert.equal((await mint(users.admin.token, { role: 'viewer', tenant_id: acme.id, user_id: RANDOM })).status, 404);
  assert.equal((await mint(users.admin.token, { role: 'owner', tenant_id: acme.id, user_id: bot.id })).status, 403);
  assert.equal(count('api_tokens'), n);
  const t = await newToken(users.admin.token, { name: 'deploy', role: 'member', tenant_id: acme.id, user_id: bot.id });
  assert.equal(t.user_id, bot.id);
  assert.equal(t.created_by, users.admin.id);
  const me = await cp.api('GET', '/api/v1/me', { token: t.token });
  assert.equal(me.body.email, 'deploy-bot@x.test');
  assert.equal(me.body.token.role, 'member');
  // capped at member although the account is a tenant admin
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token: t.token, body: { name: 'x' } })).status, 403);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: t.token })).status, 200);
  // the creator sees and revokes it; the account itself lists it too
  const l = await cp.api('GET', '/api/v1/tokens', { token: users.admin.token });
  assert.ok(l.body.data.some((x) => x.id === t.id));
  const own = await cp.api('GET', '/api/v1/tokens', { token: t.token });
  assert.deepEqual(own.body.data.map((x) => x.id), [t.id]);
  // a platform admin mints one without a tenant; a platform-scope one needs a platform account
  const pv = await newToken(admin, { name: 'bot-any', role: 'viewer', user_id: lone.id });
  assert.equal(pv.user_id, lone.id);
  assert.equal((await mint(admin, { role: 'admin', user_id: lone.id })).status, 422);
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${t.id}`, { token: users.admin.token })).status, 204);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: t.token })).status, 401);
  // a disabled service account gets no new tokens and its old ones stop working
  const live = await newToken(admin, { name: 'bot-live', role: 'viewer', tenant_id: acme.id, user_id: bot.id });
  assert.equal((await cp.api('GET', '/api/v1/me', { token: live.token })).status, 200);
  assert.equal((await cp.api('PATCH', `/api/v1/users/${bot.id}`, { token: admin, body: { disabled: true } })).status, 200);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: live.token })).status, 401);
  assert.equal((await mint(admin, { role: 'viewer', tenant_id: acme.id, user_id: bot.id })).status, 422);
});

test('token and user changes are audited but leave the config version alone: no data plane reads them', async () => {
  const version = () => Number(cp.sql('SELECT v FROM config_version'));
  const v0 = version();
  const t = await newToken(admin, { name: 'no-bump', role: 'viewer', tenant_id: acme.id });
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${t.id}`, { token: admin })).status, 204);
  const u = await newUser({ email: 'no-bump@x.test', name: 'Before', password: PW });
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { name: 'After' } })).status, 200);
  assert.equal(version(), v0);
  assert.equal(count('audit_log', `action IN ('token.create', 'token.revoke') AND target_id = '${t.id}'`), 2);
  assert.equal(count('audit_log', `action = 'user.update' AND target_id = '${u.id}' AND after->>'name' = 'After'`), 1);
});

test('every change above is audited without secrets and the chain verifies', async () => {
  for (const action of ['user.create', 'user.update', 'user.delete', 'member.put', 'member.delete', 'token.create', 'token.revoke'])
    assert.ok(count('audit_log', `action = '${action}'`) > 0, action);
  assert.equal(count('audit_log', "coalesce(before::text, '') || coalesce(after::text, '') LIKE '%argon2%'"), 0);
  assert.equal(count('audit_log', "coalesce(before::text, '') || coalesce(after::text, '') LIKE '%tgat-%'"), 0);
  assert.equal(count('audit_log', "coalesce(before::text, '') || coalesce(after::text, '') LIKE '%token_hash%'"), 0);
  assert.equal(count('audit_log', `coalesce(before::text, '') || coalesce(after::text, '') LIKE '%${q(PW)}%'`), 0);
  assert.equal(count('audit_log', "action LIKE 'token.%' AND actor_label NOT LIKE 'user:%'"), 0);
  await verifyIntact();
});
