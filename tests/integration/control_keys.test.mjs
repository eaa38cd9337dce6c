// control_keys.test.mjs: virtual keys and budgets in the admin API of tollgate-control: a key's
// secret is shown once and only its hash is stored, who may do what in which tenant, and bad
// input changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startControl, createRoleSplitDatabase } from './lib/control.mjs';
import { sha256hex } from './lib/harness.mjs';

let cp;
let admin; // platform admin token
let A; // tenant A {id, slug}
let B; // tenant B
const u = {}; // users: {id, email, token}

const KEY_RE = /^tg-[A-Za-z0-9_-]{43}$/;

before(async () => {
  cp = await startControl({ roles: createRoleSplitDatabase() });
  admin = await cp.login();
  A = await cp.makeTenant(admin, 'keys-a');
  B = await cp.makeTenant(admin, 'keys-b');
  u.owner = await cp.makeUser('owner@a.example', { tenantId: A.id, role: 'owner' });
  u.admin = await cp.makeUser('admin@a.example', { tenantId: A.id, role: 'admin' });
  u.member = await cp.makeUser('member@a.example', { tenantId: A.id, role: 'member' });
  u.member2 = await cp.makeUser('member2@a.example', { tenantId: A.id, role: 'member' });
  u.viewer = await cp.makeUser('viewer@a.example', { tenantId: A.id, role: 'viewer' });
  u.norole = await cp.makeUser('norole@example.com');
  u.other = await cp.makeUser('admin@b.example', { tenantId: B.id, role: 'admin' });
  u.platform = { id: cp.sql(`SELECT id FROM users WHERE email = 'admin@example.com'`), token: admin };
  // Routes straight in the database, so that these tests do not depend on the routes API:
  // one platform-wide alias, one of tenant A, one of tenant B.
  cp.sql(`INSERT INTO providers (name, kind, base_url) VALUES ('mock', 'openai', 'http://127.0.0.1:9')`);
  cp.sql(`INSERT INTO routes (tenant_id, alias) VALUES (NULL, 'gpt-4o'), ('${A.id}', 'a-only'),
    ('${B.id}', 'b-only'), ('${A.id}', 'émoji-🚀')`);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const keysPath = (t, id = '', suffix = '') => `/api/v1/tenants/${t.id || t}/keys${id ? `/${id}` : ''}${suffix}`;
const budgetsPath = (t, id = '') => `/api/v1/tenants/${t.id || t}/budgets${id ? `/${id}` : ''}`;

async function createKey(token, body = {}, tenant = A) {
  const r = await cp.api('POST', keysPath(tenant), { token, body: { name: 'k', ...body } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

function configVersion() { return Number(cp.sql('SELECT last_value FROM config_version_seq')); }
function rowHex(id) { return cp.sql(`SELECT encode(key_hash, 'hex') || ' ' || last4 FROM virtual_keys WHERE id = '${id}'`); }

// Every mutation below writes an audit row and bumps the config version, and a refusal does
// neither: this wraps a refusal and checks that nothing moved.
async function refused(fn) {
  const state = () => cp.sql(`SELECT concat_ws(' ', (SELECT count(*) FROM audit_log),
    (SELECT last_value FROM config_version_seq),
    (SELECT md5(coalesce(string_agg(k::text, ',' ORDER BY id), '')) FROM virtual_keys k),
    (SELECT md5(coalesce(string_agg(b::text, ',' ORDER BY id), '')) FROM budgets b),
    (SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY id), '')) FROM routes r))`);
  const before = state();
  const r = await fn();
  assert.equal(state(), before, `a refused request changed something: ${r.status} ${r.text}`);
  return r;
}

test('a created key is shown once and only its SHA-256 and last four characters are stored', async () => {
  const v0 = configVersion();
  const k = await createKey(u.member.token, { name: 'shown once' });
  assert.match(k.key, KEY_RE);
  assert.equal(k.last4, k.key.slice(-4));
  assert.equal(k.status, 'active');
  assert.equal(k.owner_user_id, u.member.id);
  assert.equal(k.tenant_id, A.id);
  assert.deepEqual(k.models, []);
  assert.equal(k.key_hash, undefined);
  assert.ok(configVersion() > v0, 'creating a key bumps the config version');
  // only the hash is stored
  assert.equal(rowHex(k.id), `${sha256hex(k.key)} ${k.key.slice(-4)}`);
  assert.equal(cp.sql(`SELECT count(*) FROM virtual_keys k WHERE strpos(k::text, '${k.key}') > 0
    OR strpos(k::text, '${k.key.slice(3, -4)}') > 0`), '0');
  // nor anywhere in the audit log: neither the secret nor its hash
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log a WHERE strpos(a::text, '${k.key.slice(3, -4)}') > 0
    OR strpos(a::text, '${sha256hex(k.key)}') > 0`), '0');
  const audit = JSON.parse(cp.sql(`SELECT after FROM audit_log WHERE action = 'key.create' AND target_id = '${k.id}'`));
  assert.equal(audit.name, 'shown once');
  assert.equal(audit.key, undefined);
  // never shown again
  const g = await cp.api('GET', keysPath(A, k.id), { token: u.member.token });
  assert.equal(g.status, 200);
  assert.equal(g.body.last4, k.last4);
  assert.equal(g.body.key, undefined);
  assert.ok(!g.text.includes(k.key.slice(3, -4)));
  const l = await cp.api('GET', keysPath(A), { token: admin });
  assert.ok(l.body.data.some((x) => x.id === k.id));
  assert.ok(!l.text.includes(k.key.slice(3, -4)));
  assert.ok(!cp.logs().includes(k.key.slice(3, -4)), 'the secret is never logged');
  // two keys never share a secret
  const k2 = await createKey(u.member.token);
  assert.notEqual(k2.key, k.key);
});

test('models must name route aliases of the tenant or of the platform', async () => {
  const k = await createKey(u.member.token, { models: ['a-only', 'gpt-4o', 'émoji-🚀'] });
  assert.deepEqual(k.models, ['a-only', 'gpt-4o', 'émoji-🚀']);
  assert.equal(cp.sql(`SELECT array_to_string(models, ',') FROM virtual_keys WHERE id = '${k.id}'`),
    'a-only,gpt-4o,émoji-🚀');
  // tenant B's alias is unknown in tenant A, and the error names it
  let r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: 'x', models: ['gpt-4o', 'b-only'] } }));
  assert.equal(r.status, 422);
  assert.equal(r.body.error.field, 'models');
  assert.match(r.body.error.message, /"b-only"/);
  r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: 'x', models: ["gpt-4o'; DROP TABLE routes; --"] } }));
  assert.equal(r.status, 422);
  assert.match(r.body.error.message, /DROP TABLE routes/);
  assert.equal(cp.sql(`SELECT count(*) FROM routes`), '4');
  for (const [models, status] of [
    [['gpt-4o', 'gpt-4o'], 422], // duplicate
    [Array.from({ length: 257 }, (_, i) => `m${i}`), 422], // too many
    [[''], 422],
    [['x'.repeat(257)], 422],
    [['a\u0001b'], 422],
    [[1], 400],
    ['gpt-4o', 400],
    [{ a: 1 }, 400],
  ]) {
    const x = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: 'x', models } }));
    assert.equal(x.status, status, `${JSON.stringify(models).slice(0, 80)} -> ${x.status} ${x.text}`);
    assert.equal(x.body.error.field, 'models');
  }
  // the same rules apply to PATCH, and a refused PATCH keeps the old list
  r = await refused(() => cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body: { models: ['b-only'] } }));
  assert.equal(r.status, 422);
  r = await cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body: { models: ['gpt-4o'] } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.models, ['gpt-4o']);
  r = await cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body: { models: [] } });
  assert.deepEqual(r.body.models, []);
});

test('expires_at takes RFC 3339 or unix seconds in the future', async () => {
  const k1 = await createKey(u.member.token, { expires_at: '2031-02-03T04:05:06+02:00' });
  assert.equal(cp.sql(`SELECT extract(epoch FROM expires_at)::bigint FROM virtual_keys WHERE id = '${k1.id}'`),
    String(Date.UTC(2031, 1, 3, 2, 5, 6) / 1000));
  assert.equal(k1.status, 'active');
  const soon = Math.floor(Date.now() / 1000) + 3600;
  const k2 = await createKey(u.member.token, { expires_at: soon });
  assert.equal(cp.sql(`SELECT extract(epoch FROM expires_at)::bigint FROM virtual_keys WHERE id = '${k2.id}'`), String(soon));
  assert.equal(Date.parse(k2.expires_at) / 1000, soon);
  for (const [v, status] of [
    ['2020-01-01T00:00:00Z', 422], // past
    [Math.floor(Date.now() / 1000) - 10, 422],
    [0, 422],
    ['2031-13-01T00:00:00Z', 422],
    ['2031-02-30T00:00:00Z', 422],
    ['2031-01-01', 422],
    ['tomorrow', 422],
    ['2031-01-01T00:00:00', 422], // no offset
    ["2031-01-01T00:00:00Z'; DROP TABLE virtual_keys; --", 422],
    [1.5, 400],
    [true, 400],
    [[], 400],
  ]) {
    const r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: 'x', expires_at: v } }));
    assert.equal(r.status, status, `${JSON.stringify(v)} -> ${r.status} ${r.text}`);
    assert.equal(r.body.error.field, 'expires_at');
  }
  // null clears an expiry
  const r = await cp.api('PATCH', keysPath(A, k1.id), { token: u.member.token, body: { expires_at: null } });
  assert.equal(r.status, 200);
  assert.equal(r.body.expires_at, null);
  // a key past its expiry shows as expired
  cp.sql(`UPDATE virtual_keys SET expires_at = now() - interval '1 minute' WHERE id = '${k2.id}'`);
  assert.equal((await cp.api('GET', keysPath(A, k2.id), { token: u.viewer.token })).body.status, 'expired');
});

// Who may do what, with exact statuses: every role of tenant A, a user with no role, a user of
// tenant B, against a key owned by member2.
test('the role matrix for keys', async () => {
  const who = ['platform', 'owner', 'admin', 'member', 'viewer', 'norole', 'other'];
  const expect = {
    create: [201, 201, 201, 201, 403, 404, 404],
    list: [200, 200, 200, 200, 200, 404, 404],
    get: [200, 200, 200, 200, 200, 404, 404],
    update: [200, 200, 200, 403, 403, 404, 404],
    rotate: [200, 200, 200, 403, 403, 404, 404],
    revoke: [200, 200, 200, 403, 403, 404, 404],
    delete: [204, 204, 204, 403, 403, 404, 404],
  };
  for (let i = 0; i < who.length; i++) {
    const token = u[who[i]].token;
    const target = await createKey(u.member2.token, { name: `target-${who[i]}` });
    const calls = {
      create: () => cp.api('POST', keysPath(A), { token, body: { name: `by-${who[i]}` } }),
      list: () => cp.api('GET', keysPath(A), { token }),
      get: () => cp.api('GET', keysPath(A, target.id), { token }),
      update: () => cp.api('PATCH', keysPath(A, target.id), { token, body: { name: 'renamed' } }),
      rotate: () => cp.api('POST', keysPath(A, target.id, '/rotate'), { token }),
      revoke: () => cp.api('POST', keysPath(A, target.id, '/revoke'), { token }),
      delete: () => cp.api('DELETE', keysPath(A, target.id), { token }),
    };
    for (const op of Object.keys(calls)) {
      const want = expect[op][i];
      const r = want >= 400 && op !== 'list' && op !== 'get' ? await refused(calls[op]) : await calls[op]();
      assert.equal(r.status, want, `${who[i]} ${op}: ${r.status} ${r.text}`);
      if (want >= 400) assert.ok(r.body.error.message);
    }
    if (expect.delete[i] === 204) assert.equal(cp.sql(`SELECT count(*) FROM virtual_keys WHERE id = '${target.id}'`), '0');
  }
});

test('a member manages its own keys and creates keys only for itself', async () => {
  const own = await createKey(u.member.token, { name: 'mine' });
  let r = await cp.api('PATCH', keysPath(A, own.id), { token: u.member.token, body: { name: 'still mine', rpm_limit: 5 } });
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'still mine');
  r = await cp.api('POST', keysPath(A, own.id, '/rotate'), { token: u.member.token });
  assert.equal(r.status, 200);
  r = await cp.api('POST', keysPath(A, own.id, '/revoke'), { token: u.member.token });
  assert.equal(r.status, 200);
  r = await cp.api('DELETE', keysPath(A, own.id), { token: u.member.token });
  assert.equal(r.status, 204);
  // naming itself as the owner is fine; naming someone else is not
  const self = await createKey(u.member.token, { owner_user_id: u.member.id });
  assert.equal(self.owner_user_id, u.member.id);
  r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: 'x', owner_user_id: u.member2.id } }));
  assert.equal(r.status, 403);
  // an admin creates keys for anyone in the tenant, not for outsiders
  const forM2 = await createKey(u.admin.token, { owner_user_id: u.member2.id });
  assert.equal(forM2.owner_user_id, u.member2.id);
  assert.equal(cp.sql(`SELECT owner_user_id FROM virtual_keys WHERE id = '${forM2.id}'`), u.member2.id);
  for (const [owner, status] of [[u.other.id, 422], [u.norole.id, 422], [randomUUID(), 422], ['nope', 422], [7, 400]]) {
    r = await refused(() => cp.api('POST', keysPath(A), { token: u.admin.token, body: { name: 'x', owner_user_id: owner } }));
    assert.equal(r.status, status, `${owner} -> ${r.text}`);
    assert.equal(r.body.error.field, 'owner_user_id');
  }
  // a key an admin made for member2 is member2's to manage, not member's
  r = await refused(() => cp.api('POST', keysPath(A, forM2.id, '/revoke'), { token: u.member.token }));
  assert.equal(r.status, 403);
  r = await cp.api('POST', keysPath(A, forM2.id, '/revoke'), { token: u.member2.token });
  assert.equal(r.status, 200);
});

test("another tenant's key ids answer 404 exactly like a random uuid", async () => {
  const ka = await createKey(u.admin.token, { name: 'tenant a secret key' });
  const rowBefore = cp.sql(`SELECT v::text FROM virtual_keys v WHERE id = '${ka.id}'`);
  const random = randomUUID();
  const ops = [
    ['GET', '', undefined],
    ['PATCH', '', { name: 'pwned' }],
    ['POST', '/rotate', undefined],
    ['POST', '/revoke', undefined],
    ['DELETE', '', undefined],
  ];
  for (const [method, suffix, body] of ops) {
    // tenant B's admin, through tenant B's path
    const real = await refused(() => cp.api(method, keysPath(B, ka.id, suffix), { token: u.other.token, body }));
    const fake = await cp.api(method, keysPath(B, random, suffix), { token: u.other.token, body });
    assert.equal(real.status, 404, `${method} ${suffix}`);
    assert.equal(real.text, fake.text);
    // even a platform admin finds A's key only under A
    const pa = await refused(() => cp.api(method, keysPath(B, ka.id, suffix), { token: admin, body }));
    assert.equal(pa.status, 404);
    assert.equal(pa.text, fake.text);
    // tenant B's admin through tenant A's path: the tenant itself is hidden
    const viaA = await refused(() => cp.api(method, keysPath(A, ka.id, suffix), { token: u.other.token, body }));
    const viaNone = await cp.api(method, keysPath(randomUUID(), ka.id, suffix), { token: u.other.token, body });
    assert.equal(viaA.status, 404);
    assert.equal(viaA.text, viaNone.text);
    // not a uuid at all: the same answer
    const junk = await cp.api(method, keysPath(B, 'not-a-uuid', suffix), { token: u.other.token, body });
    assert.equal(junk.text, fake.text);
  }
  // B's listing does not include A's keys, whatever the filter
  const l = await cp.api('GET', `${keysPath(B)}?owner_user_id=${u.admin.id}`, { token: u.other.token });
  assert.equal(l.status, 200);
  assert.deepEqual(l.body.data, []);
  assert.equal(cp.sql(`SELECT v::text FROM virtual_keys v WHERE id = '${ka.id}'`), rowBefore);
});

test('rotating issues a new secret on the same key and the old one stops matching', async () => {
  const k = await createKey(u.member.token, { name: 'rotate me', models: ['gpt-4o'], rpm_limit: 7 });
  const v0 = configVersion();
  const r = await cp.api('POST', keysPath(A, k.id, '/rotate'), { token: u.member.token });
  assert.equal(r.status, 200);
  assert.match(r.body.key, KEY_RE);
  assert.notEqual(r.body.key, k.key);
  assert.equal(r.body.id, k.id);
  assert.equal(r.body.last4, r.body.key.slice(-4));
  assert.deepEqual(r.body.models, ['gpt-4o']);
  assert.equal(r.body.rpm_limit, 7);
  assert.equal(rowHex(k.id), `${sha256hex(r.body.key)} ${r.body.key.slice(-4)}`);
  assert.equal(cp.sql(`SELECT count(*) FROM virtual_keys WHERE key_hash = decode('${sha256hex(k.key)}', 'hex')`), '0');
  assert.ok(configVersion() > v0);
  const a = JSON.parse(cp.sql(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'key.rotate' AND target_id = '${k.id}'`));
  assert.equal(a.b.last4, k.last4);
  assert.equal(a.a.last4, r.body.last4);
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log a WHERE strpos(a::text, '${r.body.key.slice(3, -4)}') > 0
    OR strpos(a::text, '${sha256hex(r.body.key)}') > 0`), '0');
  // a revoked key cannot be brought back by rotating it
  assert.equal((await cp.api('POST', keysPath(A, k.id, '/revoke'), { token: u.member.token })).status, 200);
  const x = await refused(() => cp.api('POST', keysPath(A, k.id, '/rotate'), { token: u.member.token }));
  assert.equal(x.status, 409);
});

test('revoking is idempotent and the key lists as revoked', async () => {
  const k = await createKey(u.member.token, { name: 'revoke me' });
  const r1 = await cp.api('POST', keysPath(A, k.id, '/revoke'), { token: u.admin.token });
  assert.equal(r1.status, 200);
  assert.equal(r1.body.status, 'revoked');
  assert.ok(r1.body.revoked_at);
  assert.notEqual(cp.sql(`SELECT revoked_at FROM virtual_keys WHERE id = '${k.id}'`), '');
  const r2 = await refused(() => cp.api('POST', keysPath(A, k.id, '/revoke'), { token: u.admin.token }));
  assert.equal(r2.status, 200);
  assert.equal(r2.body.revoked_at, r1.body.revoked_at);
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE action = 'key.revoke' AND target_id = '${k.id}'`), '1');
  const revoked = await cp.api('GET', `${keysPath(A)}?status=revoked&limit=200`, { token: u.viewer.token });
  assert.ok(revoked.body.data.some((x) => x.id === k.id));
  assert.ok(revoked.body.data.every((x) => x.status === 'revoked'));
  const active = await cp.api('GET', `${keysPath(A)}?status=active&limit=200`, { token: u.viewer.token });
  assert.ok(!active.body.data.some((x) => x.id === k.id));
  assert.ok(active.body.data.length > 0 && active.body.data.every((x) => x.status === 'active'));
});

test('listing pages with next_cursor and filters by owner', async () => {
  const t = await cp.makeTenant(admin, 'keys-paging');
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push((await createKey(admin, { name: `p${i}` }, t)).id);
  // owner@a is not in this tenant yet: no key can be made for them
  const x = await cp.api('POST', keysPath(t), { token: admin, body: { name: 'for-someone', owner_user_id: u.owner.id } });
  assert.equal(x.status, 422);
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${u.owner.id}', '${t.id}', 'member')`);
  const theirs = await createKey(u.owner.token, { name: 'theirs' }, t);
  const seen = [];
  let cursor = null;
  for (let page = 0; page < 10; page++) {
    const r = await cp.api('GET', `${keysPath(t)}?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length <= 2);
    seen.push(...r.body.data.map((x) => x.id));
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
  assert.deepEqual([...seen].sort(), [...mine, theirs.id].sort());
  assert.equal(new Set(seen).size, seen.length);
  const f = await cp.api('GET', `${keysPath(t)}?owner_user_id=${u.owner.id}`, { token: admin });
  assert.deepEqual(f.body.data.map((x) => x.id), [theirs.id]);
  for (const q of ['status=gone', 'owner_user_id=1', 'limit=0', 'limit=201', 'cursor=zzz', "status=active'--"]) {
    const r = await cp.api('GET', `${keysPath(t)}?${q}`, { token: admin });
    assert.equal(r.status, 400, q);
  }
});

test('PATCH changes only what it names; null clears limits; bad values change nothing', async () => {
  const k = await createKey(u.member.token, { name: 'patch me', rpm_limit: 60, tpm_limit: 1000, models: ['gpt-4o'] });
  let r = await cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body: { tpm_limit: 5000 } });
  assert.equal(r.status, 200);
  assert.equal(r.body.tpm_limit, 5000);
  assert.equal(r.body.rpm_limit, 60);
  assert.equal(r.body.name, 'patch me');
  assert.deepEqual(r.body.models, ['gpt-4o']);
  assert.equal(rowHex(k.id), `${sha256hex(k.key)} ${k.last4}`, 'PATCH keeps the secret');
  r = await cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body: { rpm_limit: null } });
  assert.equal(r.status, 200);
  assert.equal(r.body.rpm_limit, null);
  assert.equal(cp.sql(`SELECT coalesce(rpm_limit::text, 'null') || ' ' || tpm_limit FROM virtual_keys WHERE id = '${k.id}'`), 'null 5000');
  const audit = JSON.parse(cp.sql(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'key.update' AND target_id = '${k.id}' ORDER BY id DESC LIMIT 1`));
  assert.equal(audit.b.rpm_limit, 60);
  assert.equal(audit.a.rpm_limit, null);
  for (const [body, status] of [
    [{}, 400],
    [{ name: null }, 400],
    [{ models: null }, 400],
    [{ name: '' }, 422],
    [{ name: 'x'.repeat(201) }, 422],
    [{ rpm_limit: 0 }, 422],
    [{ rpm_limit: -1 }, 422],
    [{ tpm_limit: 2 ** 31 }, 422],
    [{ rpm_limit: '5' }, 400],
    [{ rpm_limit: 1.5 }, 400],
    [{ owner_user_id: u.member2.id }, 400], // not changeable
    [{ key: 'tg-x' }, 400],
    [{ name: 'ok', bogus: 1 }, 400],
  ]) {
    const x = await refused(() => cp.api('PATCH', keysPath(A, k.id), { token: u.member.token, body }));
    assert.equal(x.status, status, `${JSON.stringify(body)} -> ${x.status} ${x.text}`);
  }
});

test('bad create bodies get 400 or 422 and change nothing; odd but valid text is stored as sent', async () => {
  for (const [raw, status] of [
    ['', 400], ['{', 400], ['[]', 400], ['"name"', 400], ['null', 400],
    ['{"name":"a","name":"b"}', 400], // duplicate member
    ['{"name":"a\\u0000b"}', 400], // NUL
    ['{"name":"a\\u0007b"}', 422],
    ['{"name":"a\\u001bb"}', 422],
    ['{}', 400], ['{"name":null}', 400], ['{"name":5}', 400], ['{"name":["a"]}', 400],
    ['{"name":""}', 422], [JSON.stringify({ name: 'x'.repeat(201) }), 422],
    ['{"name":"a","extra":1}', 400], ['{"name":"a","key_hash":"00"}', 400],
    ['{"name":"a","rpm_limit":0}', 422], ['{"name":"a","rpm_limit":"many"}', 400],
    ['{"name":"a","tpm_limit":99999999999}', 422],
  ]) {
    const r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, raw }));
    assert.equal(r.status, status, `${raw.slice(0, 60)} -> ${r.status} ${r.text}`);
    assert.ok(r.body.error.code && r.body.error.message);
  }
  const names = [
    "'; DROP TABLE virtual_keys; --",
    'Robert"); DELETE FROM audit_log; --',
    'emoji 🔑🚀 and RTL مفتاح עברית',
    'combining e\u0301 a\u0308 and zero width \u200d',
    'x'.repeat(200),
    '😀'.repeat(50), // 200 bytes
    'tab\tand\nnewline',
  ];
  for (const name of names) {
    const k = await createKey(u.member.token, { name });
    assert.equal(k.name, name);
    assert.equal(cp.sql(`SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM virtual_keys WHERE id = '${k.id}'`),
      Buffer.from(name).toString('hex'));
    assert.equal((await cp.api('GET', keysPath(A, k.id), { token: u.viewer.token })).body.name, name);
  }
  // 51 four-byte emoji are 204 bytes: over the limit
  const r = await refused(() => cp.api('POST', keysPath(A), { token: u.member.token, body: { name: '😀'.repeat(51) } }));
  assert.equal(r.status, 422);
  assert.equal(cp.sql(`SELECT to_regclass('virtual_keys') IS NOT NULL AND to_regclass('audit_log') IS NOT NULL`), 't');
});

test('budgets: create, read, update and delete, with amounts as exact JSON numbers', async () => {
  const k = await createKey(u.admin.token, { name: 'budgeted' });
  const v0 = configVersion();
  let r = await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { period: 'monthly', limit_usd: 100.5, alert_threshold: 0.8 } });
  assert.equal(r.status, 201, r.text);
  const tb = r.body;
  assert.equal(tb.limit_usd, 100.5);
  assert.equal(tb.alert_threshold, 0.8);
  assert.equal(tb.key_id, null);
  assert.equal(tb.period, 'monthly');
  assert.equal(tb.tenant_id, A.id);
  assert.ok(configVersion() > v0);
  r = await cp.api('POST', budgetsPath(A), { token: u.owner.token, body: { key_id: k.id, period: 'daily', limit_usd: 0.1 } });
  assert.equal(r.status, 201, r.text);
  const kb = r.body;
  assert.match(r.text, /"limit_usd":0\.1[,}]/, 'printed as 0.1, not 0.10000000000000001');
  assert.equal(kb.alert_threshold, null);
  assert.equal(cp.sql(`SELECT limit_usd FROM budgets WHERE id = '${kb.id}'`), '0.100000000');
  r = await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { period: 'total', limit_usd: 1e9, alert_threshold: 1 } });
  assert.equal(r.status, 201);
  assert.equal(r.body.limit_usd, 1e9);
  r = await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: k.id, period: 'total', limit_usd: 0 } });
  assert.equal(r.status, 201);
  assert.equal(r.body.limit_usd, 0);
  // a second budget for the same scope and period is a conflict
  r = await refused(() => cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { period: 'monthly', limit_usd: 5 } }));
  assert.equal(r.status, 409);
  r = await refused(() => cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: k.id, period: 'daily', limit_usd: 5 } }));
  assert.equal(r.status, 409);
  // reads
  r = await cp.api('GET', budgetsPath(A, tb.id), { token: u.viewer.token });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, tb);
  r = await cp.api('GET', `${budgetsPath(A)}?key_id=${k.id}`, { token: u.viewer.token });
  assert.deepEqual(r.body.data.map((x) => x.period).sort(), ['daily', 'total']);
  r = await cp.api('GET', `${budgetsPath(A)}?period=monthly`, { token: u.viewer.token });
  assert.deepEqual(r.body.data.map((x) => x.id), [tb.id]);
  const pages = [];
  let cursor = null;
  for (let i = 0; i < 10; i++) {
    r = await cp.api('GET', `${budgetsPath(A)}?limit=1${cursor ? `&cursor=${cursor}` : ''}`, { token: u.viewer.token });
    assert.equal(r.status, 200);
    pages.push(...r.body.data.map((x) => x.id));
    cursor = r.body.next_cursor;
    if (!cursor) break;
  }
  assert.equal(pages.length, 4);
  assert.equal(new Set(pages).size, 4);
  for (const q of ['period=weekly', 'key_id=abc', 'cursor=x', 'limit=-1']) {
    assert.equal((await cp.api('GET', `${budgetsPath(A)}?${q}`, { token: u.viewer.token })).status, 400, q);
  }
  // update
  r = await cp.api('PATCH', budgetsPath(A, tb.id), { token: u.admin.token, body: { limit_usd: 250.25 } });
  assert.equal(r.status, 200);
  assert.equal(r.body.limit_usd, 250.25);
  assert.equal(r.body.alert_threshold, 0.8);
  r = await cp.api('PATCH', budgetsPath(A, tb.id), { token: u.admin.token, body: { alert_threshold: null } });
  assert.equal(r.status, 200);
  assert.equal(r.body.alert_threshold, null);
  assert.equal(cp.sql(`SELECT limit_usd || ' ' || coalesce(alert_threshold::text, 'null') FROM budgets WHERE id = '${tb.id}'`), '250.250000000 null');
  const audit = JSON.parse(cp.sql(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'budget.update' AND target_id = '${tb.id}' ORDER BY id LIMIT 1`));
  assert.equal(audit.b.limit_usd, 100.5);
  assert.equal(audit.a.limit_usd, 250.25);
  // delete
  r = await cp.api('DELETE', budgetsPath(A, tb.id), { token: u.admin.token });
  assert.equal(r.status, 204);
  assert.equal((await cp.api('GET', budgetsPath(A, tb.id), { token: u.admin.token })).status, 404);
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE action = 'budget.delete' AND target_id = '${tb.id}' AND after IS NULL`), '1');
  // deleting the key deletes its budgets, and each goes into the audit log
  r = await cp.api('DELETE', keysPath(A, k.id), { token: u.admin.token });
  assert.equal(r.status, 204);
  assert.equal(cp.sql(`SELECT count(*) FROM budgets WHERE key_id = '${k.id}'`), '0');
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE action = 'budget.delete' AND before->>'key_id' = '${k.id}'`), '2');
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE action = 'key.delete' AND target_id = '${k.id}'`), '1');
});

test('budgets carry their current period\'s spend (spent_usd, period_start), never in the audit log', async () => {
  const T = await cp.makeTenant(admin, 'spend-t');
  const k1 = await createKey(admin, { name: 'spender' }, T);
  const k2 = await createKey(admin, { name: 'idle' }, T);
  const other = await createKey(admin, { name: 'elsewhere' }, B);
  const create = async (body) => {
    const r = await cp.api('POST', budgetsPath(T), { token: admin, body: { limit_usd: 100, ...body } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  const tDaily = await create({ period: 'daily' });
  assert.equal(tDaily.spent_usd, 0);
  const now = Date.now();
  const today = new Date(now).toISOString().slice(0, 10);
  const month = `${today.slice(0, 8)}01`;
  assert.equal(tDaily.period_start, today);
  // usage as a data plane sends it: today, yesterday, the key's, another key's, another tenant's
  const ev = (o) => ({
    id: randomUUID(), ts: new Date(now - 60e3).toISOString(), request_id: 'r', model: 'm', provider: 'p', upstream_model: null,
    endpoint: 'chat.completions', status: 200, streamed: false, prompt_tokens: 1, completion_tokens: 1, cached_tokens: 0,
    reasoning_tokens: 0, total_tokens: 2, usage_source: 'provider', latency_ms: 1, ttfb_ms: null, error: null, ...o,
  });
  const yesterday = new Date(now - 86400e3);
  const events = [
    ev({ tenant_id: T.id, key_id: k1.id, cost_usd: 0.1 }),
    ev({ tenant_id: T.id, key_id: k1.id, cost_usd: 0.2 }),
    ev({ tenant_id: T.id, key_id: k1.id, cost_usd: 1, ts: yesterday.toISOString() }),
    ev({ tenant_id: B.id, key_id: other.id, cost_usd: 4 }),
    ev({ tenant_id: T.id, key_id: null, cost_usd: 8, status: 401 }),
  ];
  const res = await fetch(`${cp.url}/dp/v1/usage`, {
    method: 'POST', body: events.map((e) => JSON.stringify(e)).join('\n'),
    headers: { authorization: 'Bearer test-dp-token', 'content-type': 'application/x-ndjson' },
  });
  assert.equal(res.status, 200, await res.text());
  const sameMonth = yesterday.toISOString().slice(0, 7) === today.slice(0, 7);
  const tMonthly = await create({ period: 'monthly' });
  assert.deepEqual([tMonthly.spent_usd, tMonthly.period_start], [sameMonth ? 9.3 : 8.3, month]);
  const tTotal = await create({ period: 'total' });
  assert.deepEqual([tTotal.spent_usd, tTotal.period_start], [9.3, '1970-01-01']);
  const kDaily = await create({ period: 'daily', key_id: k1.id });
  const kTotal = await create({ period: 'total', key_id: k1.id });
  const idle = await create({ period: 'daily', key_id: k2.id });
  const want = { [tDaily.id]: 8.3, [tMonthly.id]: sameMonth ? 9.3 : 8.3, [tTotal.id]: 9.3, [kDaily.id]: 0.3, [kTotal.id]: 1.3, [idle.id]: 0 };
  // the list, one budget, and an update all answer it, as exact decimals
  let r = await cp.api('GET', budgetsPath(T), { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.fromEntries(r.body.data.map((b) => [b.id, b.spent_usd])), want);
  assert.match(r.text, /"spent_usd":0\.3[,}]/);
  assert.deepEqual(r.body.data.find((b) => b.id === kDaily.id).period_start, today);
  r = await cp.api('GET', budgetsPath(T, kTotal.id), { token: admin });
  assert.deepEqual([r.body.spent_usd, r.body.period_start, r.body.limit_usd], [1.3, '1970-01-01', 100]);
  r = await cp.api('PATCH', budgetsPath(T, kDaily.id), { token: admin, body: { limit_usd: 5 } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.spent_usd, r.body.limit_usd], [0.3, 5]);
  // the same figures the data planes get
  const dp = await (await fetch(`${cp.url}/dp/v1/usage`, { method: 'POST', body: '', headers: { authorization: 'Bearer test-dp-token' } })).json();
  for (const b of dp.spend.filter((x) => x.tenant === T.id)) {
    assert.deepEqual([b.spent_usd, b.period_start], [want[b.budget], b.period === 'daily' ? today : b.period === 'monthly' ? month : '1970-01-01']);
  }
  // the audit log records the budget as configured, never its spend
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE target_type = 'budget' AND (before ? 'spent_usd' OR after ? 'spent_usd' OR after ? 'period_start')`), '0');
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE target_id = '${kDaily.id}'`), '2');
});

test('bad budget bodies get 400 or 422 and change nothing', async () => {
  const kb = await createKey(u.other.token, { name: 'b key' }, B);
  const ka = await createKey(u.admin.token, { name: 'a key' });
  const bud = (await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: ka.id, period: 'monthly', limit_usd: 10 } })).body;
  for (const [body, status, field] of [
    [{ limit_usd: 1 }, 400, 'period'],
    [{ period: 'weekly', limit_usd: 1 }, 422, 'period'],
    [{ period: 5, limit_usd: 1 }, 400, 'period'],
    [{ period: 'daily' }, 400, 'limit_usd'],
    [{ period: 'daily', limit_usd: -0.01 }, 422, 'limit_usd'],
    [{ period: 'daily', limit_usd: 1e9 + 1 }, 422, 'limit_usd'],
    [{ period: 'daily', limit_usd: '10' }, 400, 'limit_usd'],
    [{ period: 'daily', limit_usd: true }, 400, 'limit_usd'],
    [{ period: 'daily', limit_usd: 1, alert_threshold: 0 }, 422, 'alert_threshold'],
    [{ period: 'daily', limit_usd: 1, alert_threshold: 1.01 }, 422, 'alert_threshold'],
    [{ period: 'daily', limit_usd: 1, alert_threshold: -0.5 }, 422, 'alert_threshold'],
    [{ period: 'daily', limit_usd: 1, alert_threshold: '0.5' }, 400, 'alert_threshold'],
    [{ key_id: kb.id, period: 'daily', limit_usd: 1 }, 422, 'key_id'], // tenant B's key
    [{ key_id: randomUUID(), period: 'daily', limit_usd: 1 }, 422, 'key_id'],
    [{ key_id: "'; DROP TABLE budgets; --", period: 'daily', limit_usd: 1 }, 422, 'key_id'],
    [{ key_id: 12, period: 'daily', limit_usd: 1 }, 400, 'key_id'],
    [{ period: 'daily', limit_usd: 1, spent_usd: 0 }, 400, 'spent_usd'],
  ]) {
    const r = await refused(() => cp.api('POST', budgetsPath(A), { token: u.admin.token, body }));
    assert.equal(r.status, status, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
    assert.equal(r.body.error.field, field);
  }
  for (const raw of ['', '{', '[]', '{"period":"daily","period":"total","limit_usd":1}']) {
    const r = await refused(() => cp.api('POST', budgetsPath(A), { token: u.admin.token, raw }));
    assert.equal(r.status, 400, raw);
  }
  // tenant B's key id and a random one give the same answer
  const x = await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: kb.id, period: 'daily', limit_usd: 1 } });
  const y = await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: randomUUID(), period: 'daily', limit_usd: 1 } });
  assert.equal(x.text, y.text);
  for (const [body, status] of [
    [{}, 400], [{ limit_usd: null }, 400], [{ limit_usd: -1 }, 422], [{ alert_threshold: 2 }, 422],
    [{ period: 'daily' }, 400], [{ key_id: null }, 400], [{ limit_usd: '1' }, 400],
  ]) {
    const r = await refused(() => cp.api('PATCH', budgetsPath(A, bud.id), { token: u.admin.token, body }));
    assert.equal(r.status, status, `${JSON.stringify(body)} -> ${r.text}`);
  }
  assert.equal(cp.sql(`SELECT to_regclass('budgets') IS NOT NULL`), 't');
});

test('the role matrix for budgets, and tenant B cannot see tenant A budgets', async () => {
  const who = ['platform', 'owner', 'admin', 'member', 'viewer', 'norole', 'other'];
  const expect = {
    create: [201, 201, 201, 403, 403, 404, 404],
    list: [200, 200, 200, 200, 200, 404, 404],
    get: [200, 200, 200, 200, 200, 404, 404],
    update: [200, 200, 200, 403, 403, 404, 404],
    delete: [204, 204, 204, 403, 403, 404, 404],
  };
  for (let i = 0; i < who.length; i++) {
    const token = u[who[i]].token;
    const k = await createKey(u.admin.token, { name: `budget-target-${who[i]}` });
    const target = (await cp.api('POST', budgetsPath(A), { token: admin, body: { key_id: k.id, period: 'total', limit_usd: 3 } })).body;
    const calls = {
      create: () => cp.api('POST', budgetsPath(A), { token, body: { key_id: k.id, period: 'daily', limit_usd: 1 } }),
      list: () => cp.api('GET', budgetsPath(A), { token }),
      get: () => cp.api('GET', budgetsPath(A, target.id), { token }),
      update: () => cp.api('PATCH', budgetsPath(A, target.id), { token, body: { limit_usd: 4 } }),
      delete: () => cp.api('DELETE', budgetsPath(A, target.id), { token }),
    };
    for (const op of Object.keys(calls)) {
      const want = expect[op][i];
      const r = want >= 400 && op !== 'list' && op !== 'get' ? await refused(calls[op]) : await calls[op]();
      assert.equal(r.status, want, `${who[i]} ${op}: ${r.status} ${r.text}`);
    }
  }
  // tenant B's admin, B's path, A's budget id: the same 404 as a random id
  const k = await createKey(u.admin.token, { name: 'hidden budget key' });
  const hidden = (await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: k.id, period: 'monthly', limit_usd: 9 } })).body;
  const random = randomUUID();
  for (const [method, body] of [['GET'], ['PATCH', { limit_usd: 0 }], ['DELETE']]) {
    const real = await refused(() => cp.api(method, budgetsPath(B, hidden.id), { token: u.other.token, body }));
    const fake = await cp.api(method, budgetsPath(B, random), { token: u.other.token, body });
    assert.equal(real.status, 404);
    assert.equal(real.text, fake.text);
  }
  const l = await cp.api('GET', budgetsPath(B), { token: u.other.token });
  assert.ok(!l.body.data.some((x) => x.id === hidden.id));
  assert.equal(cp.sql(`SELECT limit_usd FROM budgets WHERE id = '${hidden.id}'`), '9.000000000');
});

test('every key and budget mutation is audited and the audit chain stays intact', async () => {
  const k = await createKey(u.admin.token, { name: 'audited' });
  await cp.api('PATCH', keysPath(A, k.id), { token: u.admin.token, body: { name: 'audited 2' } });
  const rot = await cp.api('POST', keysPath(A, k.id, '/rotate'), { token: u.admin.token });
  const b = (await cp.api('POST', budgetsPath(A), { token: u.admin.token, body: { key_id: k.id, period: 'daily', limit_usd: 2 } })).body;
  await cp.api('PATCH', budgetsPath(A, b.id), { token: u.admin.token, body: { limit_usd: 3 } });
  await cp.api('DELETE', budgetsPath(A, b.id), { token: u.admin.token });
  await cp.api('POST', keysPath(A, k.id, '/revoke'), { token: u.admin.token });
  await cp.api('DELETE', keysPath(A, k.id), { token: u.admin.token });
  const rows = cp.sql(`SELECT action || ' ' || actor_label || ' ' || tenant_id FROM audit_log
    WHERE target_id IN ('${k.id}', '${b.id}') ORDER BY id`).split('\n');
  assert.deepEqual(rows.map((x) => x.split(' ')[0]), ['key.create', 'key.update', 'key.rotate',
    'budget.create', 'budget.update', 'budget.delete', 'key.revoke', 'key.delete']);
  for (const row of rows) {
    assert.match(row, /user:admin@a\.example/);
    assert.ok(row.endsWith(A.id));
  }
  for (const secret of [k.key, rot.body.key]) {
    assert.equal(cp.sql(`SELECT count(*) FROM audit_log a WHERE strpos(a::text, '${secret.slice(3, -4)}') > 0
      OR strpos(a::text, '${sha256hex(secret)}') > 0`), '0');
  }
  assert.equal(cp.sql(`SELECT count(*) FROM audit_log WHERE (before ? 'key_hash') OR (after ? 'key_hash') OR (after ? 'key')`), '0');
  const v = await cp.api('GET', '/api/v1/audit-log/verify', { token: admin });
  assert.equal(v.status, 200);
  assert.equal(v.body.intact, true);
  assert.ok(v.body.rows > 50);
});
