// control_boundaries.test.mjs: the edges between tenants, between a token and its user, between a
// member and its admins, and between one login address and another: who may add whom to a
// tenant, what a member may change on a key an admin limited, what a narrow token reaches, how
// failed logins are counted and locked, and which sessions a password change ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startControl, ADMIN } from './lib/control.mjs';

let cp;
let admin; // platform admin session
let acme;
let globex;
let side; // a tenant acme's admin also administers
const users = {};
const RANDOM = '6f1c0c36-9a43-4d43-9a6f-3d1b0b1b2c3d';
const PW = ADMIN.password; // cp.makeUser gives every user this password

before(async () => {
  cp = await startControl({ args: ['--threads', '16'] }); // enough workers to race
  admin = await cp.login();
  acme = await cp.makeTenant(admin, 'acme');
  globex = await cp.makeTenant(admin, 'globex');
  side = await cp.makeTenant(admin, 'side');
  users.admin = await cp.makeUser('admin@acme.test', { tenantId: acme.id, role: 'admin' });
  users.member = await cp.makeUser('member@acme.test', { tenantId: acme.id, role: 'member' });
  users.outsider = await cp.makeUser('owner@globex.test', { tenantId: globex.id, role: 'owner' });
  users.sider = await cp.makeUser('viewer@side.test', { tenantId: side.id, role: 'viewer' });
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${users.admin.id}', '${side.id}', 'admin')`);
  cp.sql(`INSERT INTO routes (alias) VALUES ('m-a'), ('m-b'), ('m-c')`);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const count = (table, where = 'true') => Number(cp.sql(`SELECT count(*) FROM ${table} WHERE ${where}`));

async function newToken(token, body) {
  const r = await cp.api('POST', '/api/v1/tokens', { token, body: { name: 'tok', ...body } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

// A login from a chosen loopback source address (all of 127/8 reaches the control plane), so that
// addresses can be told apart. Returns {status, body, retryAfter, ms}.
function loginFrom(source, email, password) {
  const payload = JSON.stringify({ email, password });
  const u = new URL(cp.url);
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: '/api/v1/auth/login', method: 'POST', localAddress: source,
      agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({
        status: res.statusCode, body: JSON.parse(text), retryAfter: res.headers['retry-after'],
        ms: Number(process.hrtime.bigint() - t0) / 1e6,
      }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// n logins at once, each on its own connection from `source`. The connections are opened one
// after the other first, so that the control plane's worker threads take them in (each thread
// serves its connections in turn); then every request is sent at the same moment, so that the
// threads check them concurrently. Returns [{status, body, retryAfter}].
async function concurrentLogins(source, email, password, n) {
  const u = new URL(cp.url);
  const payload = JSON.stringify({ email, password });
  const request = `POST /api/v1/auth/login HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`;
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: u.hostname, port: Number(u.port), localAddress: source });
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    socks.push(s);
  }
  const answers = socks.map((s) => new Promise((resolve, reject) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d) => { text += d; });
    s.on('error', reject);
    s.on('end', () => {
      const [head, body] = text.split('\r\n\r\n');
      const retry = /^retry-after: *(\d+)/im.exec(head);
      resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(body), retryAfter: retry && retry[1] });
    });
  }));
  for (const s of socks) s.write(request);
  return Promise.all(answers);
}

const tally = (rs) => rs.reduce((m, r) => ({ ...m, [r.status]: (m[r.status] || 0) + 1 }), {});

// ---- adding members ----

test("a tenant admin cannot add another tenant's user: the answer is a random id's, nothing changes", async () => {
  const put = (uid, token = users.admin.token) =>
    cp.api('PUT', `/api/v1/tenants/${acme.id}/members/${uid}`, { token, body: { role: 'admin' } });
  const before = count('memberships');
  const random = await put(RANDOM);
  assert.equal(random.status, 404);
  for (const uid of [users.outsider.id, users.outsider.id.toUpperCase()]) {
    const r = await put(uid);
    assert.equal(r.status, random.status);
    assert.equal(r.text, random.text);
    assert.ok(!r.text.includes('globex.test'));
  }
  assert.equal(count('memberships'), before);
  // ...so it cannot mint a token in a foreign service account's name either
  const bot = cp.sql(`INSERT INTO users (email, is_service) VALUES ('bot@globex.test', true) RETURNING id`);
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${bot}', '${globex.id}', 'admin')`);
  assert.equal((await put(bot)).text, random.text);
  const mint = await cp.api('POST', '/api/v1/tokens', { token: users.admin.token, body: { name: 'x', role: 'admin', tenant_id: acme.id, user_id: bot } });
  assert.equal(mint.status, 404);
  assert.equal(count('api_tokens', `user_id = '${bot}'`), 0);
  // a user of a tenant the caller also administers is one it can already see
  const ok = await put(users.sider.id);
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.email, 'viewer@side.test');
  // but not through a token scoped to acme: a token acts with its own scope
  const scoped = await newToken(users.admin.token, { role: 'admin', tenant_id: acme.id });
  cp.sql(`DELETE FROM memberships WHERE user_id = '${users.sider.id}' AND tenant_id = '${acme.id}'`);
  assert.equal((await put(users.sider.id, scoped.token)).text, random.text);
  // platform admins still add anyone
  const p = await put(users.outsider.id, admin);
  assert.equal(p.status, 201);
  assert.equal((await cp.api('DELETE', `/api/v1/tenants/${acme.id}/members/${users.outsider.id}`, { token: admin })).status, 204);
});

test('a tenant admin creates a new user in its tenant, and only there', async () => {
  const create = (body, token = users.admin.token) => cp.api('POST', '/api/v1/users', { token, body });
  const body = { email: 'New.Hire@acme.test', name: 'New', password: 'a-long-first-password' };
  const users0 = count('users');
  // outside a tenant, in another tenant, as a member, as a platform admin, as a new owner: no
  for (const [b, token, status, field] of [
    [body, users.admin.token, 403, 'tenant_id'],
    [{ ...body, tenant_id: globex.id, role: 'member' }, users.admin.token, 404, null],
    [{ ...body, tenant_id: RANDOM, role: 'member' }, users.admin.token, 404, null],
    [{ ...body, tenant_id: acme.id, role: 'member' }, users.member.token, 403, null],
    [{ ...body, tenant_id: acme.id }, users.admin.token, 400, 'role'],
    [{ ...body, tenant_id: acme.id, role: 'owner' }, users.admin.token, 403, 'role'],
    [{ ...body, tenant_id: acme.id, role: 'member', is_platform_admin: true }, users.admin.token, 403, 'is_platform_admin'],
    [{ ...body, role: 'member' }, admin, 422, 'role'],
    [{ ...body, tenant_id: RANDOM, role: 'member' }, admin, 404, 'tenant_id'],
  ]) {
    const r = await create(b, token);
    assert.equal(r.status, status, `${JSON.stringify(b)}: ${r.text}`);
    if (field) assert.equal(r.body.error.field, field);
  }
  assert.equal(count('users'), users0);
  const r = await create({ ...body, tenant_id: acme.id, role: 'member' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.email, 'new.hire@acme.test');
  assert.equal(cp.sql(`SELECT role FROM memberships WHERE user_id = '${r.body.id}' AND tenant_id = '${acme.id}'`), 'member');
  assert.equal(count('memberships', `user_id = '${r.body.id}'`), 1);
  assert.equal(typeof (await cp.login('new.hire@acme.test', 'a-long-first-password')), 'string');
  // both changes are in the tenant's audit log
  const log = await cp.api('GET', `/api/v1/audit-log?tenant_id=${acme.id}`, { token: users.admin.token });
  const actions = log.body.data.filter((e) => e.target_id === r.body.id).map((e) => e.action).sort();
  assert.deepEqual(actions, ['member.put', 'user.create']);
  // a service account for the tenant's automation, too
  const bot = await create({ email: 'ci@acme.test', is_service: true, tenant_id: acme.id, role: 'member' });
  assert.equal(bot.status, 201, bot.text);
  const t = await cp.api('POST', '/api/v1/tokens', { token: users.admin.token, body: { name: 'ci', role: 'member', tenant_id: acme.id, user_id: bot.body.id } });
  assert.equal(t.status, 201, t.text);
});

// ---- a member's key ----

test('a member narrows, never widens, the limits an admin set on its key', async () => {
  const created = await cp.api('POST', `/api/v1/tenants/${acme.id}/keys`, {
    token: users.admin.token,
    body: { name: 'for-member', owner_user_id: users.member.id, models: ['m-a', 'm-b'], rpm_limit: 10, tpm_limit: 1000, expires_at: '2030-01-01T00:00:00Z' },
  });
  assert.equal(created.status, 201, created.text);
  const id = created.body.id;
  const url = `/api/v1/tenants/${acme.id}/keys/${id}`;
  const row = () => cp.sql(`SELECT row(models, rpm_limit, tpm_limit, expires_at, limits_set_by_admin)::text FROM virtual_keys WHERE id = '${id}'`);
  const patch = (body, token = users.member.token) => cp.api('PATCH', url, { token, body });
  const was = row();
  for (const [body, field] of [
    [{ rpm_limit: 11 }, 'rpm_limit'], [{ rpm_limit: null }, 'rpm_limit'],
    [{ tpm_limit: 1001 }, 'tpm_limit'], [{ tpm_limit: null }, 'tpm_limit'],
    [{ expires_at: '2030-01-02T00:00:00Z' }, 'expires_at'], [{ expires_at: null }, 'expires_at'],
    [{ models: ['m-a', 'm-c'] }, 'models'], [{ name: 'ok', rpm_limit: 5, models: ['m-a', 'm-b', 'm-c'] }, 'models'],
  ]) {
    const r = await patch(body);
    assert.equal(r.status, 403, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.field, field);
    assert.match(r.body.error.message, new RegExp(`"${field}".*narrow`));
    assert.equal(row(), was, 'a refused change changes nothing');
  }
  // narrowing, or keeping a value, is the member's to do
  const n = await patch({ name: 'mine', rpm_limit: 5, tpm_limit: 1000, expires_at: '2029-06-01T00:00:00Z', models: ['m-b'] });
  assert.equal(n.status, 200, n.text);
  assert.deepEqual([n.body.rpm_limit, n.body.tpm_limit, n.body.models], [5, 1000, ['m-b']]);
  // ...and once narrowed, the member cannot go back up; an admin can
  assert.equal((await patch({ rpm_limit: 10 })).status, 403);
  assert.equal((await patch({ rpm_limit: 50, models: ['m-a', 'm-b', 'm-c'] }, users.admin.token)).status, 200);

  // a key the member made itself, with no admin's limits on it, is the member's to widen
  const own = await cp.api('POST', `/api/v1/tenants/${acme.id}/keys`, { token: users.member.token, body: { name: 'own', rpm_limit: 10 } });
  assert.equal(own.status, 201);
  const ownUrl = `/api/v1/tenants/${acme.id}/keys/${own.body.id}`;
  assert.equal((await cp.api('PATCH', ownUrl, { token: users.member.token, body: { rpm_limit: 20, models: ['m-a'] } })).status, 200);
  // until an admin sets its limits
  assert.equal((await cp.api('PATCH', ownUrl, { token: users.admin.token, body: { rpm_limit: 15 } })).status, 200);
  const up = await cp.api('PATCH', ownUrl, { token: users.member.token, body: { rpm_limit: 16 } });
  assert.equal(up.status, 403);
  assert.equal(up.body.error.field, 'rpm_limit');
  // a renaming admin sets no limits
  const own2 = await cp.api('POST', `/api/v1/tenants/${acme.id}/keys`, { token: users.member.token, body: { name: 'own2', rpm_limit: 10 } });
  const own2Url = `/api/v1/tenants/${acme.id}/keys/${own2.body.id}`;
  assert.equal((await cp.api('PATCH', own2Url, { token: users.admin.token, body: { name: 'renamed' } })).status, 200);
  assert.equal((await cp.api('PATCH', own2Url, { token: users.member.token, body: { rpm_limit: null } })).status, 200);
});

// ---- a token's own scope ----

test('a narrower token neither sees nor revokes its user\'s wider tokens', async () => {
  const wide = await newToken(users.admin.token, { role: 'admin', tenant_id: acme.id });
  const narrow = await newToken(users.admin.token, { role: 'viewer', tenant_id: acme.id });
  const anyMember = await newToken(users.admin.token, { role: 'member' });
  const sideViewer = await newToken(users.admin.token, { role: 'viewer', tenant_id: side.id });
  const list = async (token) => {
    const r = await cp.api('GET', '/api/v1/tokens?limit=200', { token });
    assert.equal(r.status, 200);
    return new Set(r.body.data.map((t) => t.id));
  };
  const seen = await list(narrow.token);
  assert.ok(seen.has(narrow.id));
  assert.ok(!seen.has(wide.id) && !seen.has(anyMember.id) && !seen.has(sideViewer.id));
  const seenByMember = await list(anyMember.token);
  assert.ok(seenByMember.has(narrow.id) && seenByMember.has(anyMember.id) && seenByMember.has(sideViewer.id));
  assert.ok(!seenByMember.has(wide.id));
  const seenByWide = await list(wide.token);
  assert.ok(seenByWide.has(wide.id) && seenByWide.has(narrow.id));
  assert.ok(!seenByWide.has(anyMember.id) && !seenByWide.has(sideViewer.id));
  // the session sees them all
  const all = await list(users.admin.token);
  for (const t of [wide, narrow, anyMember, sideViewer]) assert.ok(all.has(t.id));

  // revoking a wider token answers like a random id and changes nothing
  const random = await cp.api('DELETE', `/api/v1/tokens/${RANDOM}`, { token: narrow.token });
  for (const [by, target] of [[narrow, wide], [anyMember, wide], [wide, anyMember], [narrow, sideViewer]]) {
    const r = await cp.api('DELETE', `/api/v1/tokens/${target.id}`, { token: by.token });
    assert.equal(r.status, 404);
    assert.equal(r.text, random.text);
  }
  assert.equal(count('api_tokens', `id IN ('${wide.id}', '${anyMember.id}', '${sideViewer.id}') AND revoked_at IS NULL`), 3);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: wide.token })).status, 200);
  // within its scope it may
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${narrow.id}`, { token: wide.token })).status, 204);
  assert.equal((await cp.api('DELETE', `/api/v1/tokens/${sideViewer.id}`, { token: anyMember.token })).status, 204);
});

test('a token cannot change the user it belongs to, nor see its other tenants', async () => {
  const scoped = await newToken(users.admin.token, { role: 'admin', tenant_id: acme.id });
  const unscoped = await newToken(users.admin.token, { role: 'owner' });
  const before = cp.sql(`SELECT row(name, email, password_hash, session_gen)::text FROM users WHERE id = '${users.admin.id}'`);
  for (const token of [scoped.token, unscoped.token]) {
    for (const body of [{ name: 'pwned' }, { password: 'a-new-long-password', current_password: PW }]) {
      const r = await cp.api('PATCH', `/api/v1/users/${users.admin.id}`, { token, body });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.body.error.field, Object.keys(body)[0]);
      assert.match(r.body.error.message, /sign in/);
    }
  }
  assert.equal(cp.sql(`SELECT row(name, email, password_hash, session_gen)::text FROM users WHERE id = '${users.admin.id}'`), before);
  // the session may
  const r = await cp.api('PATCH', `/api/v1/users/${users.admin.id}`, { token: users.admin.token, body: { name: 'Ada' } });
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'Ada');
  // a tenant-scoped token's /me shows its tenant only
  const me = await cp.api('GET', '/api/v1/me', { token: scoped.token });
  assert.deepEqual(me.body.memberships.map((m) => m.slug), ['acme']);
  const full = await cp.api('GET', '/api/v1/me', { token: users.admin.token });
  assert.deepEqual(full.body.memberships.map((m) => m.slug), ['acme', 'side']);
});

test("a platform admin's token of a tenant role lists the tenants it reaches", async () => {
  const slugs = async (token) => (await cp.api('GET', '/api/v1/tenants', { token })).body.data.map((t) => t.slug).sort();
  const one = await newToken(admin, { role: 'viewer', tenant_id: globex.id });
  const every = await newToken(admin, { role: 'viewer' });
  assert.equal((await cp.api('GET', `/api/v1/tenants/${globex.id}`, { token: one.token })).status, 200);
  assert.deepEqual(await slugs(one.token), ['globex']);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: every.token })).status, 200);
  assert.deepEqual(await slugs(every.token), await slugs(admin));
});

// ---- logins ----

test('parallel wrong logins: exactly five are checked and counted, then the address waits', async () => {
  const real = await concurrentLogins('127.0.0.11', ADMIN.email, 'wrong-password', 20);
  assert.deepEqual(tally(real), { 401: 5, 429: 15 });
  assert.equal(cp.sql(`SELECT failures FROM login_failures WHERE email = '${ADMIN.email}' AND source = '127.0.0.11'`), '5');
  // an unknown email answers the same, count for count and byte for byte
  const ghost = await concurrentLogins('127.0.0.12', 'ghost@nowhere.test', 'wrong-password', 20);
  assert.deepEqual(tally(ghost), { 401: 5, 429: 15 });
  const body = (rs, s) => JSON.stringify(rs.find((r) => r.status === s).body);
  assert.equal(body(ghost, 401), body(real, 401));
  assert.equal(body(ghost, 429), body(real, 429));
  const locked = real.find((r) => r.status === 429);
  assert.equal(locked.body.error.code, 'account_locked');
  assert.equal(locked.retryAfter, '1');
  // even the right password waits from that address (the wait made long enough not to pass
  // while this machine is busy)...
  cp.sql(`UPDATE login_failures SET locked_until = now() + interval '1 minute' WHERE source = '127.0.0.11'`);
  assert.equal((await loginFrom('127.0.0.11', ADMIN.email, ADMIN.password)).status, 429);
  // ...while the platform admin logs in from anywhere else
  const elsewhere = await loginFrom('127.0.0.13', ADMIN.email, ADMIN.password);
  assert.equal(elsewhere.status, 200);
});

test('the wait doubles with each further failure, up to 15 minutes, and a success ends it', async () => {
  const email = users.member.email;
  const src = '127.0.0.21';
  for (let i = 0; i < 5; i++) assert.equal((await loginFrom(src, email, 'nope-nope-nope')).status, 401);
  // time passing, without sleeping: the lock is moved into the past
  const expire = () => cp.sql(`UPDATE login_failures SET locked_until = now() - interval '1 second' WHERE email = '${email}' AND source = '${src}'`);
  const waits = [];
  for (let i = 0; i < 4; i++) {
    expire();
    assert.equal((await loginFrom(src, email, 'nope-nope-nope')).status, 401);
    waits.push((await loginFrom(src, email, 'nope-nope-nope')).retryAfter);
  }
  assert.deepEqual(waits, ['2', '4', '8', '16']);
  cp.sql(`UPDATE login_failures SET failures = 30 WHERE email = '${email}' AND source = '${src}'`);
  expire();
  assert.equal((await loginFrom(src, email, 'nope-nope-nope')).status, 401);
  assert.equal((await loginFrom(src, email, PW)).retryAfter, '900');
  expire();
  assert.equal((await loginFrom(src, email, PW)).status, 200);
  assert.equal(count('login_failures', `email = '${email}' AND source = '${src}'`), 0);
  assert.equal((await loginFrom(src, email, 'nope-nope-nope')).status, 401);
  assert.equal(cp.sql(`SELECT failures FROM login_failures WHERE email = '${email}' AND source = '${src}'`), '1');
});

test('a wrong password takes as long for an unknown email as for a real one', async () => {
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const known = [];
  const unknown = [];
  for (let i = 0; i < 8; i++) { // below the five free failures of each address
    const [k, u] = i < 4 ? ['127.0.0.31', '127.0.0.32'] : ['127.0.0.33', '127.0.0.34'];
    known.push((await loginFrom(k, users.outsider.email, 'wrong-password')).ms);
    unknown.push((await loginFrom(u, 'nobody-at-all@x.test', 'wrong-password')).ms);
  }
  // argon2 dominates both; without the dummy hash an unknown email answers in a fraction of it
  assert.ok(median(unknown) > median(known) * 0.5, `known ${known} unknown ${unknown}`);
});

// ---- sessions ----

test('a password change ends the user\'s other sessions; the session that made it gets a fresh one', async () => {
  const u = await cp.makeUser('changer@acme.test', { tenantId: acme.id, role: 'viewer' });
  const other = await cp.login(u.email, PW);
  const api = await newToken(u.token, { role: 'viewer', tenant_id: acme.id });
  const r = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: u.token, body: { password: 'a-brand-new-password', current_password: PW } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.session.token_type, 'Bearer');
  assert.equal((await cp.api('GET', '/api/v1/me', { token: other })).status, 401);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: u.token })).status, 401);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: r.body.session.token })).status, 200);
  // API tokens are not sessions: they stay until revoked
  assert.equal((await cp.api('GET', '/api/v1/me', { token: api.token })).status, 200);
  assert.equal((await cp.api('POST', '/api/v1/auth/login', { body: { email: u.email, password: PW } })).status, 401);
  const fresh = await cp.login(u.email, 'a-brand-new-password');
  // a platform admin's reset ends every session of the user, and hands none out
  const reset = await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: admin, body: { password: 'reset-by-the-admin' } });
  assert.equal(reset.status, 200);
  assert.equal(reset.body.session, undefined);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: fresh })).status, 401);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: r.body.session.token })).status, 401);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: admin })).status, 200);
  // a name change ends nothing
  const s = await cp.login(u.email, 'reset-by-the-admin');
  assert.equal((await cp.api('PATCH', `/api/v1/users/${u.id}`, { token: s, body: { name: 'C' } })).status, 200);
  assert.equal((await cp.api('GET', '/api/v1/me', { token: s })).status, 200);
});
