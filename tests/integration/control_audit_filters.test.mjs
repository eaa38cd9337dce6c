// control_audit_filters.test.mjs: GET /api/v1/audit-log as the dashboard's audit view reads it:
// filtered by actor, target and time (with action and target type), newest first, paged, each
// row with the object before and after the change; who may read which rows; bad filters; and
// that no filter reads the table by a sequential scan.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startControl, createRoleSplitDatabase } from './lib/control.mjs';
import { waitFor } from './lib/harness.mjs';

let cp;
let roles;
let admin; // platform admin token
let A; // tenant A
let B; // tenant B
const u = {}; // users
const keys = {}; // keys made through the API

const log = (token, query = {}) => cp.api('GET', `/api/v1/audit-log?${new URLSearchParams(query)}`, { token });
const keysPath = (t, id = '', suffix = '') => `/api/v1/tenants/${t.id}/keys${id ? `/${id}` : ''}${suffix}`;

async function all(token, query, limit = 200) {
  const rows = [];
  let cursor = null;
  for (let pages = 0; pages < 1000; pages++) {
    const r = await log(token, { ...query, limit: String(limit), ...(cursor ? { cursor } : {}) });
    assert.equal(r.status, 200, r.text);
    rows.push(...r.body.data);
    cursor = r.body.next_cursor;
    if (!cursor) return rows;
  }
  throw new Error('more than 1000 pages');
}

// The rows the database holds, newest first, as a person would select them
function expected(where) {
  const out = cp.sql(`SELECT coalesce(string_agg(id::text, ',' ORDER BY id DESC), '') FROM audit_log WHERE ${where}`);
  return out ? out.split(',').map(Number) : [];
}

before(async () => {
  roles = createRoleSplitDatabase();
  cp = await startControl({ roles });
  admin = await cp.login();
  A = await cp.makeTenant(admin, 'audit-a');
  B = await cp.makeTenant(admin, 'audit-b');
  u.adminA = await cp.makeUser('admin@a.example', { tenantId: A.id, role: 'admin' });
  u.viewerA = await cp.makeUser('viewer@a.example', { tenantId: A.id, role: 'viewer' });
  u.ownerB = await cp.makeUser('owner@b.example', { tenantId: B.id, role: 'owner' });
  const make = async (token, t, name) => {
    const r = await cp.api('POST', keysPath(t), { token, body: { name } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  keys.a1 = await make(u.adminA.token, A, 'a1');
  keys.a2 = await make(admin, A, 'a2');
  keys.b1 = await make(u.ownerB.token, B, 'b1');
  keys.b2 = await make(admin, B, 'b2');
  let r = await cp.api('PATCH', keysPath(A, keys.a1.id), { token: u.adminA.token, body: { name: 'a1-renamed', rpm_limit: 60 } });
  assert.equal(r.status, 200, r.text);
  r = await cp.api('POST', keysPath(A, keys.a1.id, '/revoke'), { token: admin });
  assert.equal(r.status, 200, r.text);
  r = await cp.api('DELETE', keysPath(A, keys.a2.id), { token: u.adminA.token });
  assert.equal(r.status, 204, r.text);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

test('actor_id, target_id, action and target_type filter, newest first, each row with before and after', async () => {
  let rows = await all(admin, { actor_id: u.adminA.id });
  assert.deepEqual(rows.map((x) => x.id), expected(`actor_id = '${u.adminA.id}'`));
  assert.deepEqual(rows.map((x) => x.action), ['key.delete', 'key.update', 'key.create']);
  assert.ok(rows.every((x) => x.actor_id === u.adminA.id && x.actor === 'user:admin@a.example'));

  rows = await all(admin, { target_id: keys.a1.id });
  assert.deepEqual(rows.map((x) => x.action), ['key.revoke', 'key.update', 'key.create']);
  const [revoke, update, create] = rows;
  // the object before and after each change, for the browser's diff
  assert.equal(create.before, null);
  assert.equal(create.after.name, 'a1');
  assert.deepEqual([update.before.name, update.after.name, update.before.rpm_limit, update.after.rpm_limit], ['a1', 'a1-renamed', null, 60]);
  assert.deepEqual([revoke.before.revoked_at, typeof revoke.after.revoked_at], [null, 'string']);
  assert.ok(!JSON.stringify(rows).includes('key_hash'), 'no secret in a row');
  rows = await all(admin, { target_id: keys.a2.id, action: 'key.delete' });
  assert.deepEqual([rows.length, rows[0].after, rows[0].before.name], [1, null, 'a2']);

  // filters combine, with the tenant too
  rows = await all(admin, { actor_id: (await cp.api('GET', '/api/v1/me', { token: admin })).body.id, tenant_id: B.id, target_type: 'key' });
  assert.deepEqual(rows.map((x) => x.target_id), [keys.b2.id]);
  assert.deepEqual(await all(admin, { actor_id: u.adminA.id, tenant_id: B.id }), []);
  assert.deepEqual(await all(admin, { actor_id: randomUUID() }), []);
  assert.deepEqual(await all(admin, { target_id: 'no-such-target' }), []);
});

test('from (inclusive) and to (exclusive) select by time, pages have no duplicates or gaps', async () => {
  const ts = cp.sql('SELECT string_agg(id || \' \' || to_char(ts AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'), \',\' ORDER BY id) FROM audit_log')
    .split(',').map((x) => x.split(' '));
  const [fromId, from] = ts[2];
  const [toId, to] = ts[ts.length - 3];
  const rows = await all(admin, { from, to }, 2);
  assert.deepEqual(rows.map((x) => x.id), expected(`ts >= '${from}' AND ts < '${to}'`));
  assert.ok(rows.length >= 3);
  assert.ok(rows.some((x) => x.id === Number(fromId)), 'from is inclusive');
  assert.ok(!rows.some((x) => x.id === Number(toId)) || ts.filter((x) => x[1] === to).length > 1, 'to is exclusive');
  // an offset is honoured
  const shifted = new Date(Date.parse(from) + 2 * 3600e3).toISOString().replace('Z', '+02:00');
  assert.deepEqual((await all(admin, { from: shifted, to })).map((x) => x.id), rows.map((x) => x.id));
  // paging one row at a time through the tenant's rows, filtered
  const paged = await all(u.adminA.token, { tenant_id: A.id, target_type: 'key' }, 1);
  assert.deepEqual(paged.map((x) => x.id), expected(`tenant_id = '${A.id}' AND target_type = 'key'`));
  assert.equal(new Set(paged.map((x) => x.id)).size, paged.length);
});

test('tenant admins read their tenant\'s rows only; another tenant is 404 like a random id', async () => {
  let r = await log(u.adminA.token, { tenant_id: A.id, actor_id: u.ownerB.id });
  assert.deepEqual([r.status, r.body.data], [200, []]);
  r = await log(u.adminA.token, { tenant_id: A.id });
  assert.ok(r.body.data.every((x) => x.tenant_id === A.id));
  const other = await log(u.adminA.token, { tenant_id: B.id, actor_id: u.ownerB.id });
  const random = await log(u.adminA.token, { tenant_id: randomUUID(), actor_id: u.ownerB.id });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, random.body);
  assert.equal((await log(u.viewerA.token, { tenant_id: A.id, target_id: keys.a1.id })).status, 403);
  assert.equal((await log(u.adminA.token, { actor_id: u.adminA.id })).status, 400);
});

test('bad filters are a 400 naming the parameter', async () => {
  const cases = [
    [{ actor_id: 'bob' }, 'actor_id'],
    [{ target_id: 'x'.repeat(65) }, 'target_id'],
    [{ target_id: '' }, 'target_id'],
    [{ action: 'a'.repeat(65) }, 'action'],
    [{ from: 'yesterday' }, 'from'],
    [{ to: '2026-01-01' }, 'to'],
    [{ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }, 'from'],
    [{ limit: '0' }, 'limit'],
    [{ cursor: 'x' }, 'cursor'],
  ];
  for (const [q, field] of cases) {
    const r = await log(admin, q);
    assert.equal(r.status, 400, `${JSON.stringify(q)}: ${r.text}`);
    assert.deepEqual([r.body.error.code, r.body.error.field], ['invalid_query', field], JSON.stringify(q));
  }
  // a misspelt filter would answer every row: refused
  let r = await cp.api('GET', '/api/v1/audit-log?actor=me', { token: admin });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /"actor"/);
  r = await cp.api('GET', `/api/v1/audit-log?actor_id=${u.adminA.id}&actor_id=${u.ownerB.id}`, { token: admin });
  assert.deepEqual([r.status, r.body.error.field], [400, 'actor_id']);
});

// ---- index use ----

function seqRows() {
  return Number(cp.sql(`SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables WHERE relname = 'audit_log'`));
}

async function stopAndSettle() {
  assert.equal((await cp.stop()).code, 0);
  await waitFor(() => cp.sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${roles.app}'`) === '0', 10000, 'the server\'s backends to end');
}

test('on 100,000 rows every filter reads an index, never a sequential scan', async () => {
  // rows straight into the table over 90 days (their hashes are not a chain: this test reads only)
  const actors = cp.sql('SELECT string_agg(id::text, \',\' ORDER BY email) FROM users').split(',');
  await promisify(execFile)('psql', [cp.dbUrl, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `INSERT INTO audit_log
    (ts, actor_id, actor_label, tenant_id, action, target_type, target_id, before, after, prev_hash, row_hash)
    SELECT now() - make_interval(secs => (100000 - i) * 77), ('{${actors}}'::uuid[])[1 + i % ${actors.length}], 'user:x',
      CASE WHEN i % 3 = 0 THEN '${A.id}'::uuid WHEN i % 3 = 1 THEN '${B.id}'::uuid END,
      'key.update', 'key', md5((i % 5000)::text)::uuid::text, '{"name":"x"}', '{"name":"y"}', '\\x00', '\\x00'
    FROM generate_series(1, 100000) i; ANALYZE audit_log`]);
  await stopAndSettle();
  const before = seqRows();
  cp = await startControl({ roles });
  const token = await cp.login();
  const day = (n) => new Date(Date.now() - n * 86400e3).toISOString();
  const target = cp.sql(`SELECT md5('17')::uuid::text`);
  const queries = [
    {}, { actor_id: u.adminA.id }, { target_id: target }, { from: day(40), to: day(30) }, { to: day(80) },
    { tenant_id: A.id }, { tenant_id: A.id, actor_id: u.viewerA.id }, { tenant_id: B.id, target_id: target },
    { tenant_id: A.id, from: day(10) }, { action: 'key.update', target_type: 'key', from: day(5) },
  ];
  for (const query of queries) {
    let r = await log(token, { ...query, limit: '50' });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length > 0, JSON.stringify(query));
    if (r.body.next_cursor) r = await log(token, { ...query, limit: '50', cursor: r.body.next_cursor });
    assert.equal(r.status, 200, r.text);
  }
  await stopAndSettle();
  assert.equal(seqRows(), before, 'rows read by sequential scans of audit_log');
});
