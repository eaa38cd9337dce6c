// control_usage_rollups.test.mjs: GET /api/v1/usage reads the coarsest rollup that answers a
// report (usage_hourly, usage_daily, and both without the key: migration 0008), all kept by the
// one ingest statement of POST /dp/v1/usage. Every (bucket, group_by, filter) combination must
// answer exactly what the known events sum to, so a rollup that misses an event, or counts one
// twice (a duplicate sent again, a row updated by a later batch), fails here. And a report too
// large for the rollups is refused before anything is aggregated.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startControl, usageEvent as event } from './lib/control.mjs';

let cp;
let admin;
let A, B;
const k = {};

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const D = Math.floor(Date.now() / DAY) * DAY - 4 * DAY; // midnight UTC, four days ago
const at = (ms) => new Date(ms).toISOString();
const iso = (ms) => at(ms).replace('.000Z', 'Z');
const pgTime = (ms) => at(ms).replace('.000Z', '+00:00');

// a small deterministic generator (mulberry32), so that a failure can be run again
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let events = []; // every distinct event stored, with costMicro (its cost in millionths)

before(async () => {
  cp = await startControl();
  admin = await cp.login();
  A = await cp.makeTenant(admin, 'roll-a');
  B = await cp.makeTenant(admin, 'roll-b');
  for (const [name, t] of [['a1', A], ['a2', A], ['b1', B]]) {
    k[name] = cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
      VALUES ('${t.id}', '${name}', decode(md5('${name}') || md5('${name}'), 'hex'), 'xxxx') RETURNING id`);
  }
  const who = [
    { tenant_id: A.id, key_id: k.a1 }, { tenant_id: A.id, key_id: k.a1 }, { tenant_id: A.id, key_id: k.a2 },
    { tenant_id: B.id, key_id: k.b1 }, { tenant_id: null, key_id: null },
  ];
  const models = [['gpt-4o-mini', 'openai'], ['claude-sonnet', 'anthropic'], ['gpt-4o-mini', 'azure'], ['gemini', null], [null, null]];
  // latencies well inside their histogram buckets (and none)
  const lat = [0.4, 3, 12.5, 47, 180, 900, 4000, 65000, null];
  const status = [200, 200, 200, 200, 429, 502, 400];
  const r = rng(12);
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  for (let i = 0; i < 900; i++) {
    const w = pick(who);
    const [model, provider] = pick(models);
    const st = pick(status);
    const costMicro = st === 200 ? Math.floor(r() * 5000000) : 0;
    events.push(event({
      ...w, model, provider, status: st,
      // three days and a bit, hours and minutes spread: many events share an hour, a day
      ts: at(D + Math.floor(r() * (3 * DAY + 5 * HOUR) / 60e3) * 60e3 + 1000),
      prompt_tokens: Math.floor(r() * 3000), completion_tokens: Math.floor(r() * 800),
      cached_tokens: Math.floor(r() * 100), reasoning_tokens: Math.floor(r() * 50),
      cost_usd: costMicro / 1e6, latency_ms: pick(lat),
      usage_source: st === 200 ? 'provider' : 'none', error: st === 200 ? null : 'upstream_error',
    }));
    events[i].costMicro = costMicro;
  }
  // batches of uneven sizes, so that later batches update rows earlier ones made; then some
  // sent again (a data plane's retry): duplicates that no rollup may count
  const wire = (es) => es.map(({ costMicro, ...e }) => e);
  let off = 0;
  for (const n of [1, 37, 200, 12, 350, 300]) {
    await cp.postUsage(wire(events.slice(off, off + n)));
    off += n;
  }
  const again = await cp.postUsage(wire([...events.slice(100, 250), ...events.slice(880)]));
  assert.equal(again.accepted, 0);
  assert.equal(again.duplicates, 170);
});

after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

// ---- what the events sum to, computed here from the inputs ----

const bucketOf = (ms) => (ms < 1 ? 0 : Math.min(1 + Math.floor(Math.log(ms) / Math.log(2) * 4), 81));
const bucketMs = (kk) => (kk <= 0 ? 0.5 : kk >= 81 ? 1048576 : Number((2 ** ((kk - 0.5) / 4)).toFixed(2)));
function pct(hist, p) {
  const ks = [...hist.keys()].sort((a, b) => a - b);
  const tot = ks.reduce((s, kk) => s + hist.get(kk), 0);
  if (!tot) return null;
  let cum = 0;
  for (const kk of ks) { cum += hist.get(kk); if (cum >= (p / 100) * tot) return bucketMs(kk); }
  return null;
}
function sums(es) {
  const hist = new Map();
  for (const e of es) if (e.latency_ms !== null) { const b = bucketOf(e.latency_ms); hist.set(b, (hist.get(b) || 0) + 1); }
  return {
    requests: es.length, errors: es.filter((e) => e.status >= 400).length,
    prompt_tokens: es.reduce((s, e) => s + e.prompt_tokens, 0), completion_tokens: es.reduce((s, e) => s + e.completion_tokens, 0),
    cached_tokens: es.reduce((s, e) => s + e.cached_tokens, 0), reasoning_tokens: es.reduce((s, e) => s + e.reasoning_tokens, 0),
    cost_usd: es.reduce((s, e) => s + e.costMicro, 0) / 1e6, latency_p50_ms: pct(hist, 50), latency_p95_ms: pct(hist, 95),
  };
}
const groupOf = { key: (e) => e.key_id, model: (e) => e.model, provider: (e) => e.provider, tenant: (e) => e.tenant_id };
function expected({ tenant_id, key_id }, bucket, group_by) {
  const step = bucket === 'day' ? DAY : HOUR;
  const es = events.filter((e) => (!tenant_id || e.tenant_id === tenant_id) && (!key_id || e.key_id === key_id));
  const points = new Map();
  for (const e of es) {
    const ts = Math.floor(Date.parse(e.ts) / step) * step;
    const g = group_by ? groupOf[group_by](e) : undefined;
    const id = `${ts}|${g}`;
    if (!points.has(id)) points.set(id, { ts, g, es: [] });
    points.get(id).es.push(e);
  }
  const series = [...points.values()]
    .sort((x, y) => x.ts - y.ts || (x.g === y.g ? 0 : x.g === null ? -1 : y.g === null ? 1 : x.g < y.g ? -1 : 1))
    .map((p) => ({ ts: pgTime(p.ts), ...(group_by ? { group: p.g } : {}), ...sums(p.es) }));
  return { from: pgTime(D), to: pgTime(D + 4 * DAY), bucket, group_by: group_by || null, totals: sums(es), series };
}

test('every bucket, group_by and filter answers exactly what the events sum to', async () => {
  const filters = [{}, { tenant_id: A.id }, { tenant_id: B.id }, { key_id: k.a1 }, { tenant_id: A.id, key_id: k.a2 }];
  let n = 0;
  for (const f of filters) {
    for (const bucket of ['hour', 'day']) {
      for (const group_by of [undefined, 'key', 'model', 'provider', 'tenant']) {
        const q = { ...f, from: iso(D), to: iso(D + 4 * DAY), bucket, ...(group_by ? { group_by } : {}) };
        const r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams(q)}`, { token: admin });
        assert.equal(r.status, 200, r.text);
        const want = expected(f, bucket, group_by);
        assert.deepEqual(r.body, want, `GET /api/v1/usage?${new URLSearchParams(q)}`);
        n++;
      }
    }
  }
  assert.equal(n, 50);
  // the events cover every kind of row: several per hour and day, every group and none
  assert.ok(expected({}, 'hour').series.some((p) => p.requests > 1));
  assert.ok(expected({}, 'day', 'provider').series.some((p) => p.group === null));
});

test('each rollup holds every stored event once', () => {
  const want = `${events.length}|${events.reduce((s, e) => s + e.costMicro, 0) / 1e6}`;
  assert.equal(cp.sql('SELECT count(*) || \'|\' || trim_scale(sum(cost_usd)) FROM usage_events'), want);
  for (const t of ['usage_hourly', 'usage_daily', 'usage_hourly_nokey', 'usage_daily_nokey', 'usage_hourly_all', 'usage_daily_all']) {
    assert.equal(cp.sql(`SELECT sum(requests) || '|' || trim_scale(sum(cost_usd)) FROM ${t}`), want, t);
  }
  // coarser rows: a day without the key holds several hourly rows' worth
  assert.ok(Number(cp.sql('SELECT count(*) FROM usage_daily_nokey')) < Number(cp.sql('SELECT count(*) FROM usage_hourly')) / 4);
  assert.equal(cp.sql(`SELECT count(*) FROM usage_daily WHERE day <> date_trunc('day', day, 'UTC')`), '0');
});

test('a report that would read too many rollup rows or hold too many points is refused before aggregating', async () => {
  // The planner's estimates decide (the events above are few): make it believe that the hourly
  // rollup of every tenant at once holds a billion rows (autovacuum leaves it: it would need 10^8
  // changes to analyze it again).
  cp.sql(`ANALYZE usage_hourly_all`);
  cp.sql(`UPDATE pg_class SET reltuples = 1e9 WHERE relname = 'usage_hourly_all'`);
  try {
    const q = { from: iso(D - 300 * DAY), to: iso(D + 4 * DAY) };
    let r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams(q)}`, { token: admin });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.code, 'invalid_query');
    assert.equal(r.body.error.field, 'bucket');
    assert.match(r.body.error.message, /would read about \d+ rollup rows, more than 1000000; use bucket=day, a shorter range, tenant_id or key_id/);
    // by day it reads the daily rollup, which it answers from
    r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, bucket: 'day' })}`, { token: admin });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.totals.requests, events.length);
    // fewer rows, but grouped into more points than a report may hold
    cp.sql(`UPDATE pg_class SET reltuples = 5e5 WHERE relname = 'usage_hourly_all'`);
    r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, group_by: 'model' })}`, { token: admin });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.body.error.field, 'group_by');
    assert.match(r.body.error.message, /grouped by model, this range and bucket would hold about \d+ points, more than 20000; use bucket=day, a shorter range, tenant_id or key_id/);
    // with the table's true size the same reports are answered
    cp.sql(`ANALYZE usage_hourly_all`);
    for (const g of [{}, { group_by: 'model' }]) {
      r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, ...g })}`, { token: admin });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.totals.requests, events.length);
    }
  } finally {
    cp.sql(`ANALYZE usage_hourly_all`);
  }
});

test('group_by=endpoint, read from the events, is refused past 1000000 events, from the planner\'s estimate', async () => {
  const q = { from: iso(D - 300 * DAY), to: iso(D + 4 * DAY), group_by: 'endpoint' };
  cp.sql(`ANALYZE usage_events`);
  // a billion rows in each of the events' tables, as the planner sees them
  cp.sql(`UPDATE pg_class SET reltuples = 1e9 WHERE relname LIKE 'usage_events%' AND relkind = 'r'`);
  try {
    for (const bucket of ['hour', 'day', 'total']) {
      const r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, bucket })}`, { token: admin });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual([r.body.error.code, r.body.error.field], ['invalid_query', 'from']);
      assert.match(r.body.error.message, /would read about \d+ usage events, more than 1000000; use a shorter range, tenant_id or key_id/);
    }
    // the rollups answer the same range, split otherwise
    const r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, bucket: 'total', group_by: 'model' })}`, { token: admin });
    assert.equal(r.status, 200, r.text);
  } finally {
    cp.sql(`ANALYZE usage_events`);
  }
  // with the tables' true size: every event, per endpoint (all of them chat completions here)
  const r = await cp.api('GET', `/api/v1/usage?${new URLSearchParams({ ...q, bucket: 'total' })}`, { token: admin });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.series.map((p) => [p.group, p.requests]), [['chat.completions', events.length]]);
});
