// control_tenants.test.mjs: tenants through the admin API, who may do what with them, and the
// hash-chained audit log that records every change.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from './lib/control.mjs';

let cp;
let admin; // platform admin token
let acme;
let globex;
const users = {};

before(async () => {
  cp = await startControl();
  admin = await cp.login();
  acme = await cp.makeTenant(admin, 'acme');
  globex = await cp.makeTenant(admin, 'globex');
  for (const role of ['owner', 'admin', 'member', 'viewer'])
    users[role] = await cp.makeUser(`${role}@acme.test`, { tenantId: acme.id, role });
  users.outsider = await cp.makeUser('owner@globex.test', { tenantId: globex.id, role: 'owner' });
  users.nobody = await cp.makeUser('nobody@example.test');
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const auditCount = () => Number(cp.sql('SELECT count(*) FROM audit_log'));

test('a platform admin creates, reads, renames and deletes a tenant', async () => {
  const c = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'initech', name: 'Initech' } });
  assert.equal(c.status, 201);
  assert.equal(c.body.slug, 'initech');
  const g = await cp.api('GET', `/api/v1/tenants/${c.body.id}`, { token: admin });
  assert.equal(g.body.name, 'Initech');
  const u = await cp.api('PATCH', `/api/v1/tenants/${c.body.id}`, { token: admin, body: { name: 'Initech LLC' } });
  assert.equal(u.status, 200);
  assert.equal(u.body.name, 'Initech LLC');
  assert.equal((await cp.api('DELETE', `/api/v1/tenants/${c.body.id}`, { token: admin })).status, 204);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${c.body.id}`, { token: admin })).status, 404);
  const actions = cp.sql(`SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE target_id = '${c.body.id}'`);
  assert.equal(actions, 'tenant.create,tenant.update,tenant.delete');
});

test('role matrix for tenants: read, rename, create, delete', async () => {
  const expect = {
    //        get  patch  create delete
    owner:   [200, 200,   403,   403],
    admin:   [200, 200,   403,   403],
    member:  [200, 403,   403,   403],
    viewer:  [200, 403,   403,   403],
    outsider:[404, 404,   403,   404],
    nobody:  [404, 404,   403,   404],
  };
  for (const [who, [get, patch, create, del]] of Object.entries(expect)) {
    const token = users[who].token;
    assert.equal((await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token })).status, get, `${who} get`);
    assert.equal((await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token, body: { name: 'Acme' } })).status, patch, `${who} patch`);
    assert.equal((await cp.api('POST', '/api/v1/tenants', { token, body: { slug: `x-${who}`, name: 'x' } })).status, create, `${who} create`);
    assert.equal((await cp.api('DELETE', `/api/v1/tenants/${acme.id}`, { token })).status, del, `${who} delete`);
  }
  assert.equal(cp.sql(`SELECT count(*) FROM tenants WHERE id = '${acme.id}'`), '1');
});

test('another tenant cannot be detected: its id answers exactly like a random one', async () => {
  const token = users.outsider.token;
  const real = await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token });
  const fake = await cp.api('GET', '/api/v1/tenants/6f1c0c36-9a43-4d43-9a6f-3d1b0b1b2c3d', { token });
  assert.equal(real.status, 404);
  assert.deepEqual(real.body, fake.body);
  const list = await cp.api('GET', '/api/v1/tenants', { token });
  assert.deepEqual(list.body.data.map((t) => t.slug), ['globex']);
});

test('the tenant list pages with a cursor and filters by slug', async () => {
  for (let i = 0; i < 5; i++) await cp.makeTenant(admin, `page-${i}`);
  const seen = [];
  let cursor = null;
  do {
    const r = await cp.api('GET', `/api/v1/tenants?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length <= 2);
    seen.push(...r.body.data.map((t) => t.slug));
    cursor = r.body.next_cursor;
  } while (cursor);
  assert.equal(new Set(seen).size, seen.length, 'no tenant twice');
  assert.equal(seen.length, Number(cp.sql('SELECT count(*) FROM tenants')));
  const one = await cp.api('GET', '/api/v1/tenants?slug=page-3', { token: admin });
  assert.deepEqual(one.body.data.map((t) => t.slug), ['page-3']);
  assert.equal((await cp.api('GET', '/api/v1/tenants?limit=0', { token: admin })).status, 400);
  assert.equal((await cp.api('GET', '/api/v1/tenants?cursor=nope', { token: admin })).status, 400);
});

test('bad tenant input gets a 4xx with a message and changes nothing', async () => {
  const before = cp.sql('SELECT count(*) FROM tenants');
  const audits = auditCount();
  const cases = [
    ['{', 400], ['[]', 400], ['{"slug":"ok-slug"}', 400], ['{"slug":5,"name":"x"}', 400],
    ['{"slug":"ok","name":"x","extra":true}', 400], ['{"slug":"Bad Slug","name":"x"}', 422],
    ['{"slug":"-lead","name":"x"}', 422], [`{"slug":"${'a'.repeat(64)}","name":"x"}`, 422],
    ['{"slug":"nul","name":"a\\u0000b"}', 400], ['{"slug":"ctl","name":"a\\u0007b"}', 422], [`{"slug":"long","name":"${'n'.repeat(201)}"}`, 422],
    ['{"slug":"acme","name":"dup"}', 409], ['{"slug":"x","slug":"y","name":"dup key"}', 400],
  ];
  for (const [raw, status] of cases) {
    const r = await cp.api('POST', '/api/v1/tenants', { token: admin, raw });
    assert.equal(r.status, status, raw);
    assert.ok(r.body.error.message.length > 5);
    assert.ok('code' in r.body.error && 'field' in r.body.error);
    if (status === 409) {
      // names the field a person must change, and no part of the schema
      assert.deepEqual(r.body.error, { code: 'conflict', field: 'slug',
        message: 'a tenant with this slug exists; choose another slug' });
    }
  }
  const huge = await fetch(`${cp.url}/api/v1/tenants`, {
    method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: 'x'.repeat(2 * 1024 * 1024),
  });
  assert.equal(huge.status, 413);
  assert.equal(cp.sql('SELECT count(*) FROM tenants'), before);
  assert.equal(auditCount(), audits);
});

test('unicode and SQL metacharacters are stored literally, never executed', async () => {
  const name = "Ünïcødé 🚀 مرحبا e\u0301 '; DROP TABLE tenants; --";
  const r = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'weird', name } });
  assert.equal(r.status, 201);
  assert.equal(r.body.name, name);
  assert.equal((await cp.api('GET', `/api/v1/tenants/${r.body.id}`, { token: admin })).body.name, name);
  assert.ok(Number(cp.sql('SELECT count(*) FROM tenants')) > 1, 'the table is still there');
});

test('the audit log records actor, tenant, before/after and source ip; tenant admins see only their tenant', async () => {
  const was = (await cp.api('GET', `/api/v1/tenants/${acme.id}`, { token: admin })).body.name;
  await cp.api('PATCH', `/api/v1/tenants/${acme.id}`, { token: users.admin.token, body: { name: 'Acme Corp' } });
  const all = await cp.api('GET', '/api/v1/audit-log?action=tenant.update', { token: admin });
  const row = all.body.data.find((x) => x.tenant_id === acme.id && x.after?.name === 'Acme Corp');
  assert.ok(row, 'the rename is in the log');
  assert.equal(row.actor, 'user:admin@acme.test');
  assert.equal(row.source_ip, '127.0.0.1');
  assert.equal(typeof was, 'string');
  assert.equal(row.before.name, was, 'before holds the name the rename replaced');
  const scoped = await cp.api('GET', `/api/v1/audit-log?tenant_id=${acme.id}`, { token: users.admin.token });
  assert.equal(scoped.status, 200);
  assert.ok(scoped.body.data.length > 0 && scoped.body.data.every((x) => x.tenant_id === acme.id));
  assert.equal((await cp.api('GET', `/api/v1/audit-log?tenant_id=${globex.id}`, { token: users.admin.token })).status, 404);
  assert.equal((await cp.api('GET', `/api/v1/audit-log?tenant_id=${acme.id}`, { token: users.viewer.token })).status, 403);
  assert.equal((await cp.api('GET', '/api/v1/audit-log', { token: users.admin.token })).status, 400);
});

test('the audit log is append-only and a manual change breaks its chain visibly', async () => {
  const ok = await cp.api('GET', '/api/v1/audit-log/verify', { token: admin });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.intact, true);
  assert.ok(ok.body.rows > 5);
  assert.equal((await cp.api('GET', '/api/v1/audit-log/verify', { token: users.owner.token })).status, 403);
  // the table refuses changes outright
  assert.throws(() => cp.sql("UPDATE audit_log SET action = 'x' WHERE id = 2"), /append-only/);
  // someone with the power to disable the trigger tampers with one row
  cp.sql(`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
          UPDATE audit_log SET after = '{"name":"forged"}' WHERE id = 3;
          ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;`);
  // (an old row changed in place: the full verification reads it, docs/operations.md)
  const bad = await cp.api('GET', '/api/v1/audit-log/verify?full=true', { token: admin });
  assert.equal(bad.body.intact, false);
  assert.equal(bad.body.first_broken_id, 3);
});
