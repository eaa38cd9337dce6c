// control_usage.test.mjs: GET /api/v1/usage, the dashboard's totals and time series from the
// hourly rollups, fed with usage events through POST /dp/v1/usage as a data plane sends them;
// who may read which tenant's numbers; and tenants' rate limits (rpm_limit, tpm_limit), which
// only platform admins set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startControl, createRoleSplitDatabase, usageEvent as event } from './lib/control.mjs';

let cp;
let admin; // platform admin token
let A; // tenant A {id, slug}
let B; // tenant B
const u = {}; // users: {id, email, token}
const k = {}; // key ids: a1, a2 (tenant A), b1 (tenant B)

const HOUR = 3600e3;
const DAY = 24 * HOUR;
// Three UTC days ago at midnight: every fixed event below is in the past, none in the default
// (last 24 h) window.
const D = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
const at = (ms) => new Date(ms).toISOString();
const iso = (ms) => at(ms).replace('.000Z', 'Z');
// the form Postgres writes a timestamptz in (the session is in UTC)
const pgTime = (ms) => at(ms).replace('.000Z', '+00:00');

let fixed; // the events of the fixed days, by name
before(async () => {
  cp = await startControl({ roles: createRoleSplitDatabase() });
  admin = await cp.login();
  A = await cp.makeTenant(admin, 'usage-a');
  B = await cp.makeTenant(admin, 'usage-b');
  u.owner = await cp.makeUser('owner@a.example', { tenantId: A.id, role: 'owner' });
  u.viewer = await cp.makeUser('viewer@a.example', { tenantId: A.id, role: 'viewer' });
  u.otherOwner = await cp.makeUser('owner@b.example', { tenantId: B.id, role: 'owner' });
  u.both = await cp.makeUser('both@example.com', { tenantId: A.id, role: 'viewer' });
  cp.sql(`INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${u.both.id}', '${B.id}', 'member')`);
  u.norole = await cp.makeUser('norole@example.com');
  // keys straight in the database: usage needs ids, not secrets
  for (const [name, t] of [['a1', A], ['a2', A], ['b1', B]]) {
    k[name] = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
      VALUES ('${t.id}', '${name}', decode(md5('${name}') || md5('${name}'), 'hex'), 'xxxx') RETURNING id`);
  }
  const a1 = { tenant_id: A.id, key_id: k.a1, model: 'gpt-4o-mini', provider: 'openai' };
  const a2 = { tenant_id: A.id, key_id: k.a2, model: 'claude-sonnet', provider: 'anthropic' };
  const b1 = { tenant_id: B.id, key_id: k.b1, model: 'gpt-4o-mini', provider: 'openai' };
  fixed = {
    e1: event({ ...a1, ts: at(D + 10 * HOUR + 5 * 60e3), prompt_tokens: 10, completion_tokens: 20, cached_tokens: 2, cost_usd: 0.1 }),
    e2: event({ ...a1, ts: at(D + 10 * HOUR + 40 * 60e3), prompt_tokens: 5, completion_tokens: 5, cost_usd: 0.2 }),
    e3: event({ ...a2, ts: at(D + 11 * HOUR + 15 * 60e3), status: 502, prompt_tokens: 7, usage_source: 'none', error: 'upstream_error' }),
    e4: event({ ...a2, ts: at(D + DAY + 2 * HOUR), prompt_tokens: 100, completion_tokens: 50, reasoning_tokens: 10, cost_usd: 1.25 }),
    e5: event({ ...b1, ts: at(D + 10 * HOUR + 30 * 60e3), prompt_tokens: 1000, completion_tokens: 1000, cost_usd: 9 }),
    // refused before a key was known: no tenant, no key
    e6: event({ tenant_id: null, key_id: null, model: 'gpt-4o-mini', provider: null, ts: at(D + 10 * HOUR + 50 * 60e3), status: 401, usage_source: 'none', error: 'invalid_api_key' }),
  };
  await cp.postUsage(Object.values(fixed));
  // the last hour: in everyone's default window
  await cp.postUsage([
    event({ ...a1, ts: at(Date.now() - 5 * 60e3), prompt_tokens: 3, completion_tokens: 4, cost_usd: 0.05 }),
    event({ ...b1, ts: at(Date.now() - 5 * 60e3), prompt_tokens: 300, completion_tokens: 400, cost_usd: 7 }),
  ]);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const usage = (token, query = {}) => cp.api('GET', `/api/v1/usage?${new URLSearchParams(query)}`, { token });
const RANGE = { from: iso(D), to: iso(D + 2 * DAY) };
const ZERO = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0, cost_usd: 0, latency_p50_ms: null, latency_p95_ms: null };
// every event above took 12.5 ms: its histogram bucket, [2^(14/4), 2^(15/4)) ms, answers 12.34
const counters = (o) => ({ ...ZERO, latency_p50_ms: 12.34, latency_p95_ms: 12.34, ...o });

test('totals and hourly series of a tenant are the sums of its events, per hour', async () => {
  const r = await usage(u.viewer.token, { tenant_id: A.id, ...RANGE });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.from, pgTime(D));
  assert.equal(r.body.to, pgTime(D + 2 * DAY));
  assert.equal(r.body.bucket, 'hour');
  assert.equal(r.body.group_by, null);
  assert.deepEqual(r.body.totals, counters({ requests: 4, errors: 1, prompt_tokens: 122, completion_tokens: 75, cached_tokens: 2, reasoning_tokens: 10, cost_usd: 1.55 }));
  assert.deepEqual(r.body.series, [
    { ts: pgTime(D + 10 * HOUR), ...counters({ requests: 2, prompt_tokens: 15, completion_tokens: 25, cached_tokens: 2, cost_usd: 0.3 }) },
    { ts: pgTime(D + 11 * HOUR), ...counters({ requests: 1, errors: 1, prompt_tokens: 7 }) },
    { ts: pgTime(D + DAY + 2 * HOUR), ...counters({ requests: 1, prompt_tokens: 100, completion_tokens: 50, reasoning_tokens: 10, cost_usd: 1.25 }) },
  ]);
  // cost is the exact decimal sum, a JSON number: 0.1 + 0.2 is 0.3 here
  assert.match(r.text, /"cost_usd":0\.3[,}]/);
  assert.match(r.text, /"cost_usd":1\.55[,}]/);
});

test('day buckets are UTC days, and from/to are widened to whole buckets', async () => {
  const r = await usage(u.viewer.token, { tenant_id: A.id, bucket: 'day', from: iso(D + 10 * HOUR + 30 * 60e3), to: at(D + DAY + 60e3 + 500) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.bucket, 'day');
  assert.equal(r.body.from, pgTime(D));
  assert.equal(r.body.to, pgTime(D + 2 * DAY));
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.requests, p.cost_usd]), [
    [pgTime(D), 3, 0.3],
    [pgTime(D + DAY), 1, 1.25],
  ]);
  // an offset is honoured: 02:00+02:00 is midnight UTC
  const off = new Date(D + DAY).toISOString().slice(0, 10);
  const h = await usage(u.viewer.token, { tenant_id: A.id, from: `${off}T02:00:00+02:00`, to: `${off}T03:00:00+00:00` });
  assert.equal(h.status, 200, h.text);
  assert.equal(h.body.from, pgTime(D + DAY));
  assert.deepEqual(h.body.series.map((p) => p.ts), [pgTime(D + DAY + 2 * HOUR)]);
  // hour buckets: a range inside one hour reports that whole hour
  const one = await usage(u.viewer.token, { tenant_id: A.id, from: iso(D + 10 * HOUR + 30 * 60e3), to: iso(D + 10 * HOUR + 31 * 60e3) });
  assert.equal(one.body.totals.requests, 2);
  assert.equal(one.body.from, pgTime(D + 10 * HOUR));
  assert.equal(one.body.to, pgTime(D + 11 * HOUR));
});

test('group_by key, model, provider and tenant split each bucket; "none" is null', async () => {
  let r = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, group_by: 'key' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.group_by, 'key');
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests]), [
    [pgTime(D + 10 * HOUR), k.a1, 2],
    [pgTime(D + 11 * HOUR), k.a2, 1],
    [pgTime(D + DAY + 2 * HOUR), k.a2, 1],
  ]);
  assert.equal(r.body.totals.requests, 4);

  r = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, group_by: 'model', bucket: 'day' });
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests, p.errors, p.cost_usd]), [
    [pgTime(D), 'claude-sonnet', 1, 1, 0],
    [pgTime(D), 'gpt-4o-mini', 2, 0, 0.3],
    [pgTime(D + DAY), 'claude-sonnet', 1, 0, 1.25],
  ]);

  r = await usage(admin, { ...RANGE, group_by: 'provider', bucket: 'day' });
  assert.equal(r.status, 200, r.text);
  // the refused request (no key, no provider) is the null group; B's call adds to openai
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests, p.cost_usd]), [
    [pgTime(D), null, 1, 0],
    [pgTime(D), 'anthropic', 1, 0],
    [pgTime(D), 'openai', 3, 9.3],
    [pgTime(D + DAY), 'anthropic', 1, 1.25],
  ]);

  r = await usage(admin, { ...RANGE, group_by: 'tenant', bucket: 'day' });
  const day0 = r.body.series.filter((p) => p.ts === pgTime(D));
  assert.deepEqual(day0.map((p) => [p.group, p.requests]).sort(), [[A.id, 3], [B.id, 1], [null, 1]].sort());

  r = await usage(u.owner.token, { tenant_id: A.id, key_id: k.a2, ...RANGE, group_by: 'key' });
  assert.deepEqual(r.body.series.map((p) => p.group), [k.a2, k.a2]);
  assert.equal(r.body.totals.cost_usd, 1.25);
});

test('bucket=total gives one point per group over the range; top=N keeps the N that cost the most', async () => {
  // the platform's providers over both days: openai 9.3 (3 requests), anthropic 1.25 (2), none 0 (1)
  let r = await usage(admin, { ...RANGE, group_by: 'provider', bucket: 'total' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.bucket, 'total');
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests, p.cost_usd]), [
    [pgTime(D), 'openai', 3, 9.3],
    [pgTime(D), 'anthropic', 2, 1.25],
    [pgTime(D), null, 1, 0],
  ]);
  const byDay = await usage(admin, { ...RANGE, group_by: 'provider', bucket: 'day' });
  assert.deepEqual(r.body.totals, byDay.body.totals, 'the same totals as by day');
  // top: the first N of that ranking; the totals still cover every group
  r = await usage(admin, { ...RANGE, group_by: 'provider', bucket: 'total', top: '2' });
  assert.deepEqual(r.body.series.map((p) => p.group), ['openai', 'anthropic']);
  assert.deepEqual(r.body.totals, byDay.body.totals);
  // a tenant's keys: a2 (1.25 over two requests) before a1 (0.3)
  r = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, group_by: 'key', bucket: 'total', top: '1' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.cost_usd]), [[k.a2, 2, 1.25]]);
  // its totals (percentiles included) are the tenant's, whichever rollup they are read from
  const tenantA = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, bucket: 'day' });
  assert.deepEqual(r.body.totals, tenantA.body.totals);
  assert.ok(r.body.totals.latency_p95_ms > 0, JSON.stringify(r.body.totals));
  // one key's models: its rows only, its own totals
  r = await usage(u.owner.token, { tenant_id: A.id, key_id: k.a2, ...RANGE, group_by: 'model', bucket: 'total', top: '3' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.cost_usd, p.latency_p50_ms]), [['claude-sonnet', 2, 1.25, 12.34]]);
  assert.deepEqual(r.body.totals, (await usage(u.owner.token, { tenant_id: A.id, key_id: k.a2, ...RANGE })).body.totals);
  // and the platform's keys, ranked over every tenant: b1 (9), a2 (1.25)
  r = await usage(admin, { ...RANGE, group_by: 'key', bucket: 'total', top: '2' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.cost_usd]), [[k.b1, 9], [k.a2, 1.25]]);
  assert.deepEqual(r.body.totals, byDay.body.totals);
  assert.deepEqual(r.body.series.map((p) => p.latency_p50_ms),
    (await usage(admin, { ...RANGE, group_by: 'key', bucket: 'total' })).body.series.slice(0, 2).map((p) => p.latency_p50_ms));
  // without a group, one point for the whole range
  r = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, bucket: 'total' });
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.requests]), [[pgTime(D), 4]]);
  // top needs a total and a group, and a sane number
  for (const q of [{ top: '5' }, { bucket: 'day', group_by: 'key', top: '5' }, { bucket: 'total', top: '5' },
    { bucket: 'total', group_by: 'key', top: '0' }, { bucket: 'total', group_by: 'key', top: '101' },
    { bucket: 'total', group_by: 'key', top: '5x' }, { bucket: 'total', group_by: 'key', top: '-1' }]) {
    r = await usage(admin, { ...RANGE, ...q });
    assert.equal(r.status, 400, JSON.stringify(q));
    assert.equal(r.body.error.field, 'top', JSON.stringify(q));
  }
});

test('tenant members read only their tenants: another tenant is a 404 like a random id', async () => {
  // viewers read; the default view is the caller's tenants only
  let r = await usage(u.viewer.token, RANGE);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.totals.requests, 4);
  assert.equal(r.body.totals.cost_usd, 1.55);
  r = await usage(u.viewer.token); // the last 24 h
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [1, 0.05]);
  assert.ok(Date.parse(r.body.to) - Date.parse(r.body.from) >= DAY);
  // B's numbers never show, not even grouped by tenant or by B's key
  r = await usage(u.viewer.token, { ...RANGE, group_by: 'tenant' });
  assert.deepEqual([...new Set(r.body.series.map((p) => p.group))], [A.id]);
  r = await usage(u.viewer.token, { ...RANGE, key_id: k.b1 });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.totals, ZERO);
  assert.deepEqual(r.body.series, []);

  const other = await usage(u.viewer.token, { tenant_id: B.id, ...RANGE });
  const random = await usage(u.viewer.token, { tenant_id: randomUUID(), ...RANGE });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, random.body);
  assert.equal((await usage(u.norole.token, { tenant_id: A.id })).status, 404);
  r = await usage(u.norole.token, RANGE);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.totals, ZERO);

  // B's owner sees B only
  r = await usage(u.otherOwner.token, RANGE);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [1, 9]);
  // a user in both tenants sees both, and an API token scoped to A sees A only
  r = await usage(u.both.token, RANGE);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [5, 10.55]);
  const t = await cp.api('POST', '/api/v1/tokens', { token: u.both.token, body: { name: 'a-only', role: 'viewer', tenant_id: A.id } });
  assert.equal(t.status, 201, t.text);
  r = await usage(t.body.token, RANGE);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [4, 1.55]);
  assert.equal((await usage(t.body.token, { tenant_id: B.id, ...RANGE })).status, 404);

  assert.equal((await cp.api('GET', '/api/v1/usage')).status, 401);
});

test('platform admins read every tenant, or one', async () => {
  let r = await usage(admin, RANGE);
  assert.equal(r.status, 200, r.text);
  // A's four, B's one and the refused request that has no tenant
  assert.deepEqual(r.body.totals, counters({ requests: 6, errors: 2, prompt_tokens: 1122, completion_tokens: 1075, cached_tokens: 2, reasoning_tokens: 10, cost_usd: 10.55 }));
  r = await usage(admin, { tenant_id: B.id, ...RANGE });
  assert.deepEqual(r.body.series, [{ ts: pgTime(D + 10 * HOUR), ...counters({ requests: 1, prompt_tokens: 1000, completion_tokens: 1000, cost_usd: 9 }) }]);
  r = await usage(admin);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [2, 7.05]);
  assert.equal((await usage(admin, { tenant_id: randomUUID() })).status, 404);
});

test('an event sent twice is counted once', async () => {
  await cp.postUsage([fixed.e1, fixed.e5]);
  const r = await usage(admin, RANGE);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [6, 10.55]);
});

test('group_by=endpoint: requests, tokens and cost per endpoint, the same sums as the rollups', async () => {
  // a tenant of its own, ten days before the others' events: a responses turn, two chat
  // completions (one failed), an embedding and a Messages turn; and another tenant's responses turn
  const E = await cp.makeTenant(admin, 'usage-endpoints');
  const F = await cp.makeTenant(admin, 'usage-endpoints-other');
  const viewer = await cp.makeUser('viewer@endpoints.example', { tenantId: E.id, role: 'viewer' });
  const ke = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
    VALUES ('${E.id}', 'e1', decode(md5('e1') || md5('e1'), 'hex'), 'xxxx') RETURNING id`);
  const ke2 = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
    VALUES ('${E.id}', 'e2', decode(md5('e2') || md5('e2'), 'hex'), 'xxxx') RETURNING id`);
  const E0 = D - 10 * DAY;
  const e = { tenant_id: E.id, key_id: ke, model: 'gpt-4o-mini', provider: 'openai' };
  await cp.postUsage([
    event({ ...e, endpoint: 'responses', ts: at(E0 + 9 * HOUR + 60e3), prompt_tokens: 11, completion_tokens: 7, cached_tokens: 3, reasoning_tokens: 2, cost_usd: 0.0123, latency_ms: 100 }),
    event({ ...e, endpoint: 'responses', ts: at(E0 + 10 * HOUR), key_id: ke2, prompt_tokens: 9, completion_tokens: 1, cost_usd: 0.0007, latency_ms: 300 }),
    event({ ...e, endpoint: 'chat.completions', ts: at(E0 + 9 * HOUR + 2 * 60e3), prompt_tokens: 20, completion_tokens: 30, cost_usd: 0.2 }),
    event({ ...e, endpoint: 'chat.completions', ts: at(E0 + 9 * HOUR + 3 * 60e3), status: 502, prompt_tokens: 4, usage_source: 'none', error: 'upstream_error' }),
    event({ ...e, endpoint: 'embeddings', ts: at(E0 + 9 * HOUR + 4 * 60e3), model: 'text-embedding-3-small', prompt_tokens: 50, cost_usd: 0.000001 }),
    event({ ...e, endpoint: 'messages', ts: at(E0 + DAY + HOUR), model: 'claude-sonnet', provider: 'anthropic', prompt_tokens: 5, completion_tokens: 5, cost_usd: 0.05 }),
    event({ tenant_id: F.id, key_id: null, model: 'gpt-4o-mini', provider: 'openai', endpoint: 'responses', ts: at(E0 + 9 * HOUR), prompt_tokens: 1000, completion_tokens: 1000, cost_usd: 5 }),
  ]);
  const R = { from: iso(E0), to: iso(E0 + 2 * DAY) };
  let r = await usage(viewer.token, { tenant_id: E.id, ...R, group_by: 'endpoint', bucket: 'total' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.group_by, 'endpoint');
  // the most costly first
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests, p.errors, p.prompt_tokens, p.completion_tokens, p.cached_tokens, p.reasoning_tokens, p.cost_usd]), [
    [pgTime(E0), 'chat.completions', 2, 1, 24, 30, 0, 0, 0.2],
    [pgTime(E0), 'messages', 1, 0, 5, 5, 0, 0, 0.05],
    [pgTime(E0), 'responses', 2, 0, 20, 8, 3, 2, 0.013],
    [pgTime(E0), 'embeddings', 1, 0, 50, 0, 0, 0, 0.000001],
  ]);
  assert.match(r.text, /"cost_usd":0\.013[,}]/);
  assert.match(r.text, /"cost_usd":0\.000001[,}]/);
  // latency percentiles from the same buckets as the rollups': 100 and 300 ms
  const resp = r.body.series.find((p) => p.group === 'responses');
  assert.deepEqual([resp.latency_p50_ms, resp.latency_p95_ms], [98.7, 279.17]);
  // the totals are the rollups' for the same range, percentiles included
  const plain = await usage(viewer.token, { tenant_id: E.id, ...R, bucket: 'total' });
  assert.equal(plain.status, 200, plain.text);
  assert.deepEqual(r.body.totals, plain.body.totals);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [6, 0.263001]);
  // by hour and by day
  r = await usage(viewer.token, { tenant_id: E.id, ...R, group_by: 'endpoint' });
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests, p.cost_usd]), [
    [pgTime(E0 + 9 * HOUR), 'chat.completions', 2, 0.2],
    [pgTime(E0 + 9 * HOUR), 'embeddings', 1, 0.000001],
    [pgTime(E0 + 9 * HOUR), 'responses', 1, 0.0123],
    [pgTime(E0 + 10 * HOUR), 'responses', 1, 0.0007],
    [pgTime(E0 + DAY + HOUR), 'messages', 1, 0.05],
  ]);
  r = await usage(viewer.token, { tenant_id: E.id, ...R, group_by: 'endpoint', bucket: 'day' });
  assert.deepEqual(r.body.series.map((p) => [p.ts, p.group, p.requests]), [
    [pgTime(E0), 'chat.completions', 2], [pgTime(E0), 'embeddings', 1], [pgTime(E0), 'responses', 2],
    [pgTime(E0 + DAY), 'messages', 1],
  ]);
  // one key; top
  r = await usage(viewer.token, { tenant_id: E.id, key_id: ke2, ...R, group_by: 'endpoint', bucket: 'total' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.prompt_tokens, p.cost_usd]), [['responses', 1, 9, 0.0007]]);
  assert.deepEqual([r.body.totals.requests, r.body.totals.cost_usd], [1, 0.0007]);
  r = await usage(viewer.token, { tenant_id: E.id, ...R, group_by: 'endpoint', bucket: 'total', top: '2' });
  assert.deepEqual(r.body.series.map((p) => p.group), ['chat.completions', 'messages']);
  assert.deepEqual(r.body.totals, plain.body.totals);
  assert.deepEqual(r.body.series[0].latency_p50_ms, 12.34);
  // another tenant's turns never show: not to E's viewer without tenant_id, and F is a 404
  r = await usage(viewer.token, { ...R, group_by: 'endpoint', bucket: 'total' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.cost_usd]), [
    ['chat.completions', 2, 0.2], ['messages', 1, 0.05], ['responses', 2, 0.013], ['embeddings', 1, 0.000001],
  ]);
  const other = await usage(viewer.token, { tenant_id: F.id, ...R, group_by: 'endpoint' });
  const random = await usage(viewer.token, { tenant_id: randomUUID(), ...R, group_by: 'endpoint' });
  assert.equal(other.status, 404);
  assert.deepEqual(other.body, random.body);
  r = await usage(u.norole.token, { ...R, group_by: 'endpoint', bucket: 'total' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.series, []);
  assert.deepEqual(r.body.totals, ZERO);
  // a platform admin: every tenant's
  r = await usage(admin, { ...R, group_by: 'endpoint', bucket: 'total' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.prompt_tokens, p.cost_usd]), [
    ['responses', 3, 1020, 5.013], ['chat.completions', 2, 24, 0.2], ['messages', 1, 5, 0.05], ['embeddings', 1, 50, 0.000001],
  ]);
  assert.deepEqual(r.body.totals, (await usage(admin, { ...R, bucket: 'total' })).body.totals);
  // the tenants' own events, grouped by endpoint, add up to the rollups' totals too
  r = await usage(u.owner.token, { tenant_id: A.id, ...RANGE, group_by: 'endpoint', bucket: 'total' });
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests, p.cost_usd]), [['chat.completions', 4, 1.55]]);
  assert.deepEqual(r.body.totals, (await usage(u.owner.token, { tenant_id: A.id, ...RANGE, bucket: 'total' })).body.totals);
});

test('bad query parameters are a 400 naming the parameter', async () => {
  const cases = [
    [{ tenant_id: 'acme' }, 'tenant_id'],
    [{ key_id: '123' }, 'key_id'],
    [{ from: 'yesterday' }, 'from'],
    [{ from: '2026-02-30T00:00:00Z' }, 'from'],
    [{ from: '2026-01-01' }, 'from'],
    [{ from: '2026-01-01T00:00:00' }, 'from'],
    [{ to: '2026-01-01T25:00:00Z' }, 'to'],
    [{ to: 'infinity' }, 'to'],
    [{ from: iso(D + DAY), to: iso(D) }, 'from'],
    [{ from: iso(D), to: iso(D) }, 'from'],
    [{ from: iso(Date.now() + DAY) }, 'from'],
    [{ from: iso(D - 401 * DAY), to: iso(D) }, 'from'],
    [{ bucket: 'week' }, 'bucket'],
    [{ bucket: '' }, 'bucket'],
    [{ group_by: 'user' }, 'group_by'],
  ];
  for (const [q, field] of cases) {
    const r = await usage(admin, q);
    assert.equal(r.status, 400, `${JSON.stringify(q)}: ${r.text}`);
    assert.equal(r.body.error.code, 'invalid_query');
    assert.equal(r.body.error.field, field, JSON.stringify(q));
    assert.ok(r.body.error.message.includes(field), r.body.error.message);
  }
  // a '+' left unescaped in a URL arrives as a space: refused, with a hint
  let r = await cp.api('GET', '/api/v1/usage?from=2026-01-01T00:00:00+02:00', { token: admin });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /%2B/);
  // unknown and repeated parameters would answer the wrong report: refused
  r = await cp.api('GET', '/api/v1/usage?start_date=2026-01-01', { token: admin });
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /start_date/);
  r = await cp.api('GET', '/api/v1/usage?bucket=hour&bucket=day', { token: admin });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.field, 'bucket');
  r = await cp.api('GET', '/api/v1/usage?group_by', { token: admin });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.field, 'group_by');
  // exactly 400 days is fine
  r = await usage(admin, { from: iso(D - 400 * DAY), to: iso(D), bucket: 'day' });
  assert.equal(r.status, 200, r.text);
});

// ---- latency percentiles ----

// The histogram's buckets (docs/api.md): under 1 ms, then four per doubling up to 2^20 ms.
const bucketOf = (ms) => (ms < 1 ? 0 : Math.min(1 + Math.floor(Math.log2(ms) * 4), 81));
const bucketMs = (k) => (k <= 0 ? 0.5 : k >= 81 ? 1048576 : Math.round(2 ** ((k - 0.5) / 4) * 100) / 100);
// nearest rank: the ceil(p n)-th smallest latency
const exact = (lat, p) => [...lat].sort((x, y) => x - y)[Math.ceil((p * lat.length) / 100) - 1];
const pct = (lat, p) => (lat.length ? bucketMs(bucketOf(exact(lat, p))) : null);

test('latency p50 and p95 per point and for the range, from the hourly histograms', async () => {
  const P = await cp.makeTenant(admin, 'usage-latency');
  const key = {};
  for (const name of ['p1', 'p2']) {
    key[name] = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
      VALUES ('${P.id}', '${name}', decode(md5('${name}') || md5('${name}'), 'hex'), 'xxxx') RETURNING id`);
  }
  const base = (k) => ({ tenant_id: P.id, key_id: key[k], model: 'm', provider: 'p' });
  const h1 = D + 5 * HOUR, h2 = D + 6 * HOUR;
  // p1 in the first hour: 100 latencies from 10 ms to about 1.3 s, in two batches (the second
  // adds to the rollup row the first made)
  const lat1 = Array.from({ length: 100 }, (_, i) => Math.round(10 * 1.05 ** i * 1000) / 1000);
  const ev1 = lat1.map((l, i) => event({ ...base('p1'), ts: at(h1 + i * 1000), latency_ms: l, ttfb_ms: l / 2 }));
  await cp.postUsage(ev1.slice(0, 50));
  await cp.postUsage(ev1.slice(50));
  // p2 in the first hour: answered without a latency (none measured)
  await cp.postUsage(Array.from({ length: 5 }, (_, i) => event({ ...base('p2'), ts: at(h1 + i * 1000), latency_ms: null, status: 401 })));
  // p1 in the second hour: 19 fast ones and a slow one, and a sub-millisecond cache hit
  const lat2 = [...Array(19).fill(150), 60000, 0.4];
  await cp.postUsage(lat2.map((l, i) => event({ ...base('p1'), ts: at(h2 + i * 1000), latency_ms: l })));
  // sent again: counted once
  await cp.postUsage(ev1.slice(0, 10));

  const range = { tenant_id: P.id, from: iso(D), to: iso(D + DAY) };
  let r = await usage(admin, { ...range, group_by: 'key' });
  assert.equal(r.status, 200, r.text);
  const point = (ts, k) => r.body.series.find((x) => x.ts === pgTime(ts) && x.group === key[k]);
  assert.deepEqual([point(h1, 'p1').requests, point(h1, 'p1').latency_p50_ms, point(h1, 'p1').latency_p95_ms], [100, pct(lat1, 50), pct(lat1, 95)]);
  assert.deepEqual([point(h1, 'p2').requests, point(h1, 'p2').latency_p50_ms, point(h1, 'p2').latency_p95_ms], [5, null, null]);
  assert.deepEqual([point(h2, 'p1').latency_p50_ms, point(h2, 'p1').latency_p95_ms], [pct(lat2, 50), pct(lat2, 95)]);
  assert.deepEqual([pct(lat2, 50), pct(lat2, 95), pct([0.4], 50)], [139.58, 139.58, 0.5]);
  const all = [...lat1, ...lat2];
  assert.deepEqual([r.body.totals.requests, r.body.totals.latency_p50_ms, r.body.totals.latency_p95_ms], [126, pct(all, 50), pct(all, 95)]);
  // the precision docs/api.md states: within 2^(1/8) of the exact value
  for (const [got, want] of [[r.body.totals.latency_p50_ms, exact(all, 50)], [r.body.totals.latency_p95_ms, exact(all, 95)], [point(h1, 'p1').latency_p95_ms, exact(lat1, 95)]]) {
    assert.ok(got / want <= 2 ** (1 / 8) + 1e-3 && want / got <= 2 ** (1 / 8) + 1e-3, `${got} vs ${want}`);
  }
  // a day bucket merges the hours' histograms; one key's report, only its own
  r = await usage(admin, { ...range, bucket: 'day' });
  assert.deepEqual(r.body.series.map((x) => [x.latency_p50_ms, x.latency_p95_ms]), [[pct(all, 50), pct(all, 95)]]);
  r = await usage(admin, { ...range, key_id: key.p2 });
  assert.deepEqual([r.body.totals.requests, r.body.totals.latency_p50_ms, r.body.totals.latency_p95_ms], [5, null, null]);
  // the top key's percentiles merge its own histograms; the totals' are the tenant's (read from
  // the rollup without keys), whichever keys made the top
  r = await usage(admin, { ...range, bucket: 'total', group_by: 'key', top: '1' });
  assert.deepEqual(r.body.series.map((x) => [x.group, x.requests, x.latency_p50_ms, x.latency_p95_ms]),
    [[key.p1, 121, pct(all, 50), pct(all, 95)]]);
  assert.deepEqual([r.body.totals.requests, r.body.totals.latency_p50_ms, r.body.totals.latency_p95_ms], [126, pct(all, 50), pct(all, 95)]);
  // a 60 s outlier moves p95 of its hour only when it is more than 5 % of the requests
  r = await usage(admin, { ...range, from: iso(h2), to: iso(h2 + HOUR) });
  assert.deepEqual([r.body.totals.latency_p50_ms, r.body.totals.latency_p95_ms], [139.58, 139.58]);
});

test('a report past 20000 points is refused, and asking for days answers it', async () => {
  // straight into the rollups, long before the events above: 21 keys x 1000 hours, and the same
  // rows by day (as ingestion writes both, migration 0008)
  const C = await cp.makeTenant(admin, 'usage-big');
  const end = D - 100 * DAY;
  cp.sql(`INSERT INTO usage_hourly (hour, tenant_id, key_id, model, provider, requests, cost_usd)
    SELECT to_timestamp(${end / 1000}) - make_interval(hours => h), '${C.id}', md5(k::text)::uuid, 'm', 'p', 1, 0.5
    FROM generate_series(1, 21) k, generate_series(1, 1000) h`);
  cp.sql(`INSERT INTO usage_daily (day, tenant_id, key_id, model, provider, requests, cost_usd)
    SELECT date_trunc('day', hour, 'UTC'), tenant_id, key_id, model, provider, sum(requests), sum(cost_usd)
    FROM usage_hourly WHERE tenant_id = '${C.id}' GROUP BY 1, 2, 3, 4, 5`);
  const q = { tenant_id: C.id, from: iso(end - 1000 * HOUR), to: iso(end), group_by: 'key' };
  let r = await usage(admin, q);
  assert.equal(r.status, 400, r.text.slice(0, 200));
  assert.equal(r.body.error.field, 'group_by');
  assert.match(r.body.error.message, /21000 points/);
  r = await usage(admin, { ...q, bucket: 'day' });
  assert.equal(r.status, 200);
  assert.equal(r.body.totals.requests, 21000);
  assert.equal(r.body.totals.cost_usd, 10500);
  assert.equal(r.body.series.length, 21 * 42);
});

// ---- tenants' rate limits ----

function state() {
  return cp.sql(`SELECT concat_ws(' ', (SELECT count(*) FROM audit_log), (SELECT last_value FROM config_version_seq),
    (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM tenants t))`);
}

test('platform admins set a tenant\'s rpm_limit and tpm_limit; audited, versioned, in every read', async () => {
  let r = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'limited', name: 'Limited', rpm_limit: 600, tpm_limit: 100000 } });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.rpm_limit, 600);
  assert.equal(r.body.tpm_limit, 100000);
  const id = r.body.id;
  r = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'unlimited', name: 'U', rpm_limit: null } });
  assert.equal(r.status, 201, r.text);
  assert.deepEqual([r.body.rpm_limit, r.body.tpm_limit], [null, null]);

  const v0 = Number(cp.sql('SELECT last_value FROM config_version_seq'));
  r = await cp.api('PATCH', `/api/v1/tenants/${id}`, { token: admin, body: { rpm_limit: 1200, tpm_limit: null } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.name, r.body.rpm_limit, r.body.tpm_limit], ['Limited', 1200, null]);
  assert.ok(Number(cp.sql('SELECT last_value FROM config_version_seq')) > v0, 'the config version moves');
  assert.equal(cp.sql(`SELECT rpm_limit || ' ' || coalesce(tpm_limit::text, 'null') FROM tenants WHERE id = '${id}'`), '1200 null');
  const audit = JSON.parse(cp.sql(`SELECT json_build_object('b', before, 'a', after, 'actor', actor_label, 'tenant', tenant_id) FROM audit_log
    WHERE target_id = '${id}' AND action = 'tenant.update' ORDER BY id DESC LIMIT 1`));
  assert.deepEqual([audit.b.rpm_limit, audit.b.tpm_limit, audit.a.rpm_limit, audit.a.tpm_limit], [600, 100000, 1200, null]);
  assert.equal(audit.actor, 'user:admin@example.com');
  assert.equal(audit.tenant, id);

  // a rename keeps the limits
  r = await cp.api('PATCH', `/api/v1/tenants/${id}`, { token: admin, body: { name: 'Limited Inc' } });
  assert.deepEqual([r.body.name, r.body.rpm_limit], ['Limited Inc', 1200]);
  r = await cp.api('GET', `/api/v1/tenants/${id}`, { token: admin });
  assert.deepEqual([r.body.rpm_limit, r.body.tpm_limit], [1200, null]);
  r = await cp.api('GET', '/api/v1/tenants?slug=limited', { token: admin });
  assert.deepEqual(r.body.data.map((t) => [t.rpm_limit, t.tpm_limit]), [[1200, null]]);
  // members read their tenant's limits
  r = await cp.api('GET', `/api/v1/tenants/${A.id}`, { token: u.viewer.token });
  assert.ok('rpm_limit' in r.body && 'tpm_limit' in r.body);
});

test('a tenant\'s owner may rename it but not change its limits', async () => {
  await cp.api('PATCH', `/api/v1/tenants/${A.id}`, { token: admin, body: { rpm_limit: 10 } });
  const s = state();
  for (const body of [{ rpm_limit: 1000000 }, { tpm_limit: null }, { name: 'Mine', rpm_limit: 11 }]) {
    const r = await cp.api('PATCH', `/api/v1/tenants/${A.id}`, { token: u.owner.token, body });
    assert.equal(r.status, 403, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.field, Object.keys(body).find((f) => f !== 'name'));
  }
  assert.equal(state(), s, 'nothing changed, nothing audited');
  // another tenant's owner learns nothing
  assert.equal((await cp.api('PATCH', `/api/v1/tenants/${A.id}`, { token: u.otherOwner.token, body: { rpm_limit: 5 } })).status, 404);
  const r = await cp.api('PATCH', `/api/v1/tenants/${A.id}`, { token: u.owner.token, body: { name: 'Acme' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.rpm_limit, 10);
});

test('bad limits are refused like a key\'s and change nothing', async () => {
  const s = state();
  const cases = [
    [{ rpm_limit: 0 }, 422], [{ rpm_limit: -1 }, 422], [{ tpm_limit: 2147483648 }, 422],
    [{ tpm_limit: 1e20 }, 400], [{ rpm_limit: '5' }, 400], [{ rpm_limit: 1.5 }, 400], [{ tpm_limit: true }, 400],
    [{}, 400], [{ name: null }, 400], [{ rpm_limit: 5, burst: 2 }, 400],
  ];
  for (const [body, status] of cases) {
    const r = await cp.api('PATCH', `/api/v1/tenants/${A.id}`, { token: admin, body });
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
    assert.ok(r.body.error.message.length > 5);
  }
  for (const [body, status] of cases.slice(0, 7)) {
    const r = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'bad-limits', name: 'x', ...body } });
    assert.equal(r.status, status, `create ${JSON.stringify(body)}: ${r.text}`);
    // 1e20 is no JSON integer jansson can hold: the body itself is refused
    if (body.tpm_limit !== 1e20) assert.equal(r.body.error.field, Object.keys(body)[0]);
  }
  assert.equal(state(), s);
});
