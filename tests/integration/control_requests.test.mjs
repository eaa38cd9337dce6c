// control_requests.test.mjs: GET /api/v1/requests, the request log: one row per usage event sent
// through POST /dp/v1/usage as a data plane sends it, newest first, filtered, paged by cursor;
// who may read which tenant's rows; and that every filter reads an index, never a scan.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startControl, createRoleSplitDatabase, usageEvent as event } from './lib/control.mjs';
import { waitFor } from './lib/harness.mjs';

let cp;
let roles;
let admin; // platform admin token
let A; // tenant A
let B; // tenant B
const u = {}; // users
const k = {}; // key ids: a1, a2 (tenant A), b1 (tenant B)

const MIN = 60e3;
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const T0 = Math.floor(Date.now() / DAY) * DAY - 2 * DAY;
const at = (ms) => new Date(ms).toISOString();
const pgTime = (ms) => at(ms).replace('Z', '+00:00').replace('.000+', '+');

const list = (token, query = {}) => cp.api('GET', `/api/v1/requests?${new URLSearchParams(query)}`, { token });

// Every page from the first to the last; asserts each is at most `limit` long.
async function all(token, query, limit) {
  const rows = [];
  let cursor = null;
  for (let pages = 0; pages < 1000; pages++) {
    const r = await list(token, { ...query, limit: String(limit), ...(cursor ? { cursor } : {}) });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length <= limit);
    rows.push(...r.body.data);
    cursor = r.body.next_cursor;
    if (!cursor) return rows;
    assert.equal(r.body.data.length, limit, 'only the last page is short');
  }
  throw new Error('more than 1000 pages');
}

// newest first: ts descending, then id descending (the order the cursor continues)
const byNewest = (a, b) => (a.ts === b.ts ? (a.id < b.id ? 1 : -1) : a.ts < b.ts ? 1 : -1);

let events; // every event sent, {ts as ms}
before(async () => {
  roles = createRoleSplitDatabase();
  cp = await startControl({ roles });
  admin = await cp.login();
  A = await cp.makeTenant(admin, 'req-a');
  B = await cp.makeTenant(admin, 'req-b');
  u.viewer = await cp.makeUser('viewer@a.example', { tenantId: A.id, role: 'viewer' });
  u.owner = await cp.makeUser('owner@a.example', { tenantId: A.id, role: 'owner' });
  u.otherOwner = await cp.makeUser('owner@b.example', { tenantId: B.id, role: 'owner' });
  u.norole = await cp.makeUser('norole@example.com');
  for (const [name, t] of [['a1', A], ['a2', A], ['b1', B]]) {
    k[name] = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
      VALUES ('${t.id}', 'key ${name}', decode(md5('${name}') || md5('${name}'), 'hex'), 'xxxx') RETURNING id`);
  }
  const a1 = { tenant_id: A.id, key_id: k.a1, model: 'gpt-4o-mini', provider: 'openai' };
  const a2 = { tenant_id: A.id, key_id: k.a2, model: 'claude-sonnet', provider: 'anthropic' };
  const b1 = { tenant_id: B.id, key_id: k.b1, model: 'gpt-4o-mini', provider: 'openai' };
  events = [];
  // 60 events of A over two days: two keys, statuses 200/429/502, several sharing one timestamp
  for (let i = 0; i < 60; i++) {
    const base = i % 2 ? a2 : a1;
    const status = i % 10 === 3 ? 429 : i % 10 === 7 ? 502 : 200;
    // groups of three share a millisecond: the cursor must break ties by id
    const ts = T0 + Math.floor(i / 3) * 37 * MIN + (i % 3 === 2 ? 0.5 : 0);
    events.push(event({
      ...base, ts: at(Math.floor(ts)), status, prompt_tokens: i, completion_tokens: 2 * i, cost_usd: i / 1000,
      error: status === 200 ? null : 'upstream_error', usage_source: i % 5 === 4 ? 'cache' : 'provider',
      latency_ms: 100 + i, ttfb_ms: i % 2 ? 20 + i : null, streamed: i % 4 === 1,
    }));
  }
  for (let i = 0; i < 10; i++) events.push(event({ ...b1, ts: at(T0 + i * 50 * MIN), cost_usd: 1 }));
  // refused before a key was known: no tenant
  events.push(event({ tenant_id: null, key_id: null, model: 'gpt-4o-mini', provider: null, ts: at(T0 + 5 * MIN), status: 401, usage_source: 'none', error: 'invalid_api_key' }));
  await cp.postUsage(events);
  for (const e of events) e.ms = Date.parse(e.ts);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

// The rows of one tenant (or every tenant), as the server should answer them
function expected(filter) {
  return events.filter(filter).map((e) => ({ id: e.id, ts: pgTime(e.ms) })).sort(byNewest).map((e) => e.id);
}

test('a row carries the event, its key\'s name and whether the cache answered', async () => {
  const r = await list(u.viewer.token, { tenant_id: A.id, limit: '200' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.data.length, 60);
  assert.equal(r.body.next_cursor, null);
  const e = events[29]; // a2, status 200, usage_source cache, streamed
  const row = r.body.data.find((x) => x.id === e.id);
  assert.deepEqual(row, {
    id: e.id, ts: pgTime(e.ms), request_id: e.request_id, tenant_id: A.id, key_id: k.a2, key_name: 'key a2',
    model: 'claude-sonnet', provider: 'anthropic', upstream_model: null, endpoint: 'chat.completions', status: 200,
    streamed: true, cache_hit: true, latency_ms: 129, ttfb_ms: 49, prompt_tokens: 29, completion_tokens: 58,
    cached_tokens: 0, reasoning_tokens: 0, cost_usd: 0.029, cache_write_tokens: 0, cache_write_1h_tokens: 0,
    unpriced: false, error: null,
  });
  const f = r.body.data.find((x) => x.id === events[7].id);
  assert.deepEqual([f.status, f.cache_hit, f.error, f.streamed, f.ttfb_ms, f.key_name], [502, false, 'upstream_error', false, 27, 'key a2']);
  assert.equal(r.body.data.find((x) => x.id === events[5].id).streamed, true);
  // cost is the exact decimal, as stored
  assert.match(r.text, /"cost_usd":0\.029[,}]/);
  // newest first, ties by id
  assert.deepEqual(r.body.data.map((x) => x.id), expected((x) => x.tenant_id === A.id));
  // a deleted key's events stay, without a name
  cp.sql(`DELETE FROM virtual_keys WHERE id = '${k.b1}'`);
  const b = await list(u.otherOwner.token, { tenant_id: B.id, limit: '1' });
  assert.deepEqual([b.body.data[0].key_id, b.body.data[0].key_name], [k.b1, null]);
});

test('filters: key, model, provider, status and class, time range, and together', async () => {
  const q = (extra) => all(u.viewer.token, { tenant_id: A.id, ...extra }, 200);
  const ids = (rows) => rows.map((x) => x.id);
  const inA = (x) => x.tenant_id === A.id;
  assert.deepEqual(ids(await q({ key_id: k.a1 })), expected((x) => inA(x) && x.key_id === k.a1));
  assert.deepEqual(ids(await q({ model: 'claude-sonnet' })), expected((x) => inA(x) && x.model === 'claude-sonnet'));
  assert.deepEqual(ids(await q({ provider: 'openai' })), expected((x) => inA(x) && x.provider === 'openai'));
  assert.deepEqual(ids(await q({ status: '429' })), expected((x) => inA(x) && x.status === 429));
  assert.equal((await q({ status: '429' })).length, 6);
  assert.deepEqual(ids(await q({ status: '5xx' })), expected((x) => inA(x) && x.status >= 500));
  assert.deepEqual(ids(await q({ status: '4xx' })), expected((x) => inA(x) && x.status >= 400 && x.status < 500));
  assert.deepEqual(ids(await q({ status: '2xx' })), expected((x) => inA(x) && x.status < 300));
  assert.deepEqual(await q({ status: '3xx' }), []);
  assert.deepEqual(await q({ model: 'no-such-model' }), []);
  // from inclusive, to exclusive
  const from = T0 + 5 * 37 * MIN, to = T0 + 12 * 37 * MIN;
  const inRange = (x) => x.ms >= from && x.ms < to;
  const ranged = await q({ from: at(from), to: at(to) });
  assert.deepEqual(ids(ranged), expected((x) => inA(x) && inRange(x)));
  assert.equal(ranged.length, 21);
  assert.deepEqual(ids(await q({ from: at(from) })), expected((x) => inA(x) && x.ms >= from));
  assert.deepEqual(ids(await q({ to: at(to) })), expected((x) => inA(x) && x.ms < to));
  // an offset is honoured
  const off = new Date(from + 2 * HOUR).toISOString().replace('Z', '+02:00');
  assert.deepEqual(ids(await q({ from: off, to: at(to) })), ids(ranged));
  const both = await q({ key_id: k.a2, status: '5xx', from: at(from), model: 'claude-sonnet', provider: 'anthropic' });
  assert.deepEqual(ids(both), expected((x) => inA(x) && x.key_id === k.a2 && x.status >= 500 && x.ms >= from));
  assert.ok(both.length > 0);
});

test('endpoint: exact match, with the other filters, within the tenant', async () => {
  // a responses turn and an embedding in A, a responses turn in B, among A's chat completions
  const added = [
    event({ tenant_id: A.id, key_id: k.a1, model: 'gpt-4o-mini', provider: 'openai', endpoint: 'responses', ts: at(T0 + 3 * MIN), prompt_tokens: 7, completion_tokens: 5, cost_usd: 0.012 }),
    event({ tenant_id: A.id, key_id: k.a2, model: 'claude-sonnet', provider: 'anthropic', endpoint: 'responses', ts: at(T0 + 90 * MIN), status: 502, error: 'upstream_error' }),
    event({ tenant_id: A.id, key_id: k.a1, model: 'text-embedding-3-small', provider: 'openai', endpoint: 'embeddings', ts: at(T0 + 4 * MIN) }),
    event({ tenant_id: B.id, key_id: k.b1, model: 'gpt-4o-mini', provider: 'openai', endpoint: 'responses', ts: at(T0 + 6 * MIN) }),
  ];
  await cp.postUsage(added);
  for (const e of added) events.push({ ...e, ms: Date.parse(e.ts) });
  const q = (extra) => all(u.viewer.token, { tenant_id: A.id, ...extra }, 200);
  const ids = (rows) => rows.map((x) => x.id);
  const inA = (x) => x.tenant_id === A.id;
  const responses = await q({ endpoint: 'responses' });
  assert.deepEqual(ids(responses), [added[1].id, added[0].id]);
  assert.deepEqual([responses[1].endpoint, responses[1].prompt_tokens, responses[1].completion_tokens, responses[1].cost_usd], ['responses', 7, 5, 0.012]);
  assert.deepEqual(ids(await q({ endpoint: 'embeddings' })), [added[2].id]);
  assert.deepEqual(ids(await q({ endpoint: 'chat.completions' })), expected((x) => inA(x) && x.endpoint === 'chat.completions'));
  assert.equal((await q({ endpoint: 'chat.completions' })).length, 60);
  assert.deepEqual(await q({ endpoint: 'messages' }), []);
  // with the other filters
  assert.deepEqual(ids(await q({ endpoint: 'responses', status: '5xx' })), [added[1].id]);
  assert.deepEqual(ids(await q({ endpoint: 'responses', key_id: k.a1 })), [added[0].id]);
  assert.deepEqual(ids(await q({ endpoint: 'responses', from: at(T0 + 10 * MIN) })), [added[1].id]);
  // paged
  assert.deepEqual(ids(await all(u.viewer.token, { tenant_id: A.id, endpoint: 'responses' }, 1)), [added[1].id, added[0].id]);
  // B's turn only for B; every tenant's for a platform admin without tenant_id
  assert.deepEqual(ids(await all(u.otherOwner.token, { tenant_id: B.id, endpoint: 'responses' }, 50)), [added[3].id]);
  assert.equal((await list(u.otherOwner.token, { tenant_id: A.id, endpoint: 'responses' })).status, 404);
  assert.deepEqual(ids(await all(admin, { endpoint: 'responses' }, 50)), expected((x) => x.endpoint === 'responses'));
  assert.equal((await all(admin, { endpoint: 'responses' }, 50)).length, 3);
});

test('pages follow each other without duplicates or gaps, also with filters', async () => {
  for (const limit of [1, 7, 30, 59, 60, 61]) {
    const rows = await all(u.viewer.token, { tenant_id: A.id }, limit);
    assert.deepEqual(rows.map((x) => x.id), expected((x) => x.tenant_id === A.id), `limit ${limit}`);
  }
  const rows = await all(u.viewer.token, { tenant_id: A.id, key_id: k.a1, status: '2xx' }, 4);
  assert.deepEqual(rows.map((x) => x.id), expected((x) => x.tenant_id === A.id && x.key_id === k.a1 && x.status < 300));
  // events arriving while paging land before the first page, never inside the pages after
  const first = await list(u.viewer.token, { tenant_id: A.id, limit: '10' });
  const late = event({ tenant_id: A.id, key_id: k.a1, model: 'm', provider: 'p', ts: at(Date.now() - MIN) });
  await cp.postUsage([late]);
  events.push({ ...late, ms: Date.parse(late.ts) });
  const rest = await all(u.viewer.token, { tenant_id: A.id, cursor: first.body.next_cursor }, 25);
  assert.deepEqual([...first.body.data, ...rest].map((x) => x.id), expected((x) => x.tenant_id === A.id && x !== events.at(-1)));
  const newest = await list(u.viewer.token, { tenant_id: A.id, limit: '1' });
  assert.equal(newest.body.data[0].model, 'm');
  // platform admins without tenant_id page through every tenant, and the events without one
  const every = await all(admin, {}, 13);
  assert.deepEqual(every.map((x) => x.id), expected(() => true));
  assert.equal(new Set(every.map((x) => x.id)).size, every.length);
  assert.ok(every.some((x) => x.tenant_id === null && x.status === 401));
});

test('another tenant answers like a random id; viewers read, others do not', async () => {
  const other = await list(u.viewer.token, { tenant_id: B.id });
  const random = await list(u.viewer.token, { tenant_id: randomUUID() });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, random.body);
  assert.equal((await list(u.norole.token, { tenant_id: A.id })).status, 404);
  assert.equal((await list(u.otherOwner.token, { tenant_id: A.id })).status, 404);
  // another tenant's key inside your tenant: nothing, like a key id that never existed
  const r = await list(u.owner.token, { tenant_id: A.id, key_id: k.b1 });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { data: [], next_cursor: null });
  // B's rows never show in A's log
  const mine = await all(u.owner.token, { tenant_id: A.id }, 200);
  assert.ok(mine.every((x) => x.tenant_id === A.id));
  // only platform admins may leave tenant_id out
  const none = await list(u.viewer.token);
  assert.equal(none.status, 400);
  assert.deepEqual([none.body.error.code, none.body.error.field], ['missing_query', 'tenant_id']);
  // an API token scoped to A reads A only, even for a platform admin's user
  const t = await cp.api('POST', '/api/v1/tokens', { token: admin, body: { name: 'a-viewer', role: 'viewer', tenant_id: A.id } });
  assert.equal(t.status, 201, t.text);
  assert.equal((await list(t.body.token, { tenant_id: A.id })).status, 200);
  assert.equal((await list(t.body.token, { tenant_id: B.id })).status, 404);
  assert.equal((await list(t.body.token)).status, 400);
  assert.equal((await cp.api('GET', `/api/v1/requests?tenant_id=${A.id}`)).status, 401);
  // a platform admin reads any tenant, and a random one is 404
  assert.equal((await list(admin, { tenant_id: B.id })).body.data.length, events.filter((x) => x.tenant_id === B.id).length);
  assert.equal((await list(admin, { tenant_id: randomUUID() })).status, 404);
});

test('bad query parameters are a 400 naming the parameter', async () => {
  const cases = [
    [{ tenant_id: 'acme' }, 'tenant_id'],
    [{ key_id: '123' }, 'key_id'],
    [{ model: '' }, 'model'],
    [{ model: 'x'.repeat(513) }, 'model'],
    [{ provider: '' }, 'provider'],
    [{ endpoint: '' }, 'endpoint'],
    [{ endpoint: 'chat' }, 'endpoint'],
    [{ endpoint: 'Responses' }, 'endpoint'],
    [{ endpoint: '/v1/responses' }, 'endpoint'],
    [{ status: 'ok' }, 'status'],
    [{ status: '6xx' }, 'status'],
    [{ status: '1000' }, 'status'],
    [{ status: '-1' }, 'status'],
    [{ status: '4x' }, 'status'],
    [{ from: 'yesterday' }, 'from'],
    [{ from: '2026-01-01' }, 'from'],
    [{ to: '2026-02-30T00:00:00Z' }, 'to'],
    [{ from: at(T0 + DAY), to: at(T0) }, 'from'],
    [{ limit: '0' }, 'limit'],
    [{ limit: '201' }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ cursor: 'abc' }, 'cursor'],
    [{ cursor: `123_${'x'.repeat(36)}` }, 'cursor'],
    [{ cursor: `99999999999999999999_${randomUUID()}` }, 'cursor'],
    [{ cursor: `_${randomUUID()}` }, 'cursor'],
  ];
  for (const [q, field] of cases) {
    const r = await list(admin, { tenant_id: A.id, ...q });
    assert.equal(r.status, 400, `${JSON.stringify(q)}: ${r.text}`);
    assert.equal(r.body.error.code, 'invalid_query');
    assert.equal(r.body.error.field, field, JSON.stringify(q));
    assert.ok(r.body.error.message.includes(field), r.body.error.message);
  }
  let r = await cp.api('GET', `/api/v1/requests?tenant_id=${A.id}&key=${k.a1}`, { token: admin });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /"key"/);
  r = await cp.api('GET', `/api/v1/requests?tenant_id=${A.id}&status=200&status=500`, { token: admin });
  assert.deepEqual([r.status, r.body.error.field], [400, 'status']);
  r = await cp.api('GET', `/api/v1/requests?tenant_id=${A.id}&model`, { token: admin });
  assert.deepEqual([r.status, r.body.error.field], [400, 'model']);
  // a well-formed cursor from nowhere is just a position: the rows older than it
  r = await list(admin, { tenant_id: A.id, cursor: `0_${randomUUID()}` });
  assert.deepEqual(r.body, { data: [], next_cursor: null });
});

// ---- index use ----

// Rows read by sequential scans of usage_events' partitions, and index scans of them, from
// Postgres' statistics. A backend reports them when it ends, so the control plane is stopped
// before each reading (an empty partition may be "scanned": it has no rows to read).
function scans() {
  const [seqRows, idx] = cp.sql(`SELECT coalesce(sum(seq_tup_read), 0) || ' ' || coalesce(sum(idx_scan), 0)
    FROM pg_stat_user_tables WHERE relname LIKE 'usage_events%'`).split(' ').map(Number);
  return { seqRows, idx };
}

async function stopAndSettle() {
  assert.equal((await cp.stop()).code, 0);
  await waitFor(() => cp.sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = '${roles.app}'`) === '0', 10000, 'the server\'s backends to end');
}

test('every filter reads an index on a big table, never a sequential scan', async () => {
  // 200,000 events over 60 days, 20 tenants, 200 keys, straight into the table (psql run
  // without blocking this process, so that it sees the server close idle connections meanwhile)
  const C = await cp.makeTenant(admin, 'req-big');
  const key = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
    VALUES ('${C.id}', 'big', decode(md5('big') || md5('big'), 'hex'), 'xxxx') RETURNING id`);
  await promisify(execFile)('psql', [cp.dbUrl, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `INSERT INTO usage_events (id, ts, tenant_id, key_id, model, provider, status, usage_source, latency_ms)
    SELECT gen_random_uuid(), now() - make_interval(secs => i * 26),
      CASE WHEN i % 20 = 0 THEN '${C.id}'::uuid ELSE md5((i % 20)::text)::uuid END,
      CASE WHEN i % 200 = 20 THEN '${key}'::uuid ELSE md5('k' || (i % 200))::uuid END, 'model-' || (i % 7), 'provider-' || (i % 3),
      CASE WHEN i % 50 = 0 THEN 503 WHEN i % 13 = 0 THEN 429 ELSE 200 END, 'provider', i % 1000
    FROM generate_series(1, 200000) i; ANALYZE usage_events`]);
  await stopAndSettle();
  const before = scans();
  cp = await startControl({ roles });
  const token = await cp.login();
  const day = (n) => at(Date.now() - n * DAY);
  const queries = [
    { tenant_id: C.id },
    { tenant_id: C.id, key_id: key },
    { tenant_id: C.id, model: 'model-3' },
    { tenant_id: C.id, provider: 'provider-1' },
    { tenant_id: C.id, status: '503' },
    { tenant_id: C.id, status: '5xx' },
    { tenant_id: C.id, status: '2xx' },
    { tenant_id: C.id, from: day(30), to: day(20) },
    { tenant_id: C.id, key_id: key, status: '4xx', from: day(50) },
    { tenant_id: C.id, model: 'model-3', provider: 'provider-1', to: day(45) },
    {},
    { model: 'model-2' },
    { status: '4xx' },
    { key_id: key },
  ];
  for (const query of queries) {
    let r = await list(token, { ...query, limit: '50' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.data.length, 50, JSON.stringify(query));
    r = await list(token, { ...query, limit: '50', cursor: r.body.next_cursor }); // and a next page
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.data.length > 0, JSON.stringify(query));
  }
  await stopAndSettle();
  const later = scans();
  assert.equal(later.seqRows, before.seqRows, 'rows read by sequential scans');
  assert.ok(later.idx >= before.idx + queries.length * 2, `index scans: ${before.idx} -> ${later.idx}`);
});
