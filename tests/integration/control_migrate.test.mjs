// control_migrate.test.mjs: `tollgate-control migrate` and what it leaves in the database, plus
// the per-address login limit (a property of one running replica).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN } from './lib/harness.mjs';
import { createDatabase, psql, startControl } from './lib/control.mjs';

// the numbered files in migrations/, each applied once
const VERSIONS = readdirSync(path.resolve('migrations')).filter((f) => /^\d{4}_.*\.sql$/.test(f))
  .map((f) => Number(f.slice(0, 4))).sort((a, b) => a - b);
const MIGRATIONS = VERSIONS.length;

function migrate(dbUrl, args = [], env = {}) {
  return new Promise((resolve) => {
    const p = spawn(path.join(BIN, 'tollgate-control'), ['migrate', ...args], {
      env: { ...process.env, TOLLGATE_DATABASE_URL: dbUrl, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
}

test('two replicas migrating one database at once apply each migration exactly once', async () => {
  const db = createDatabase();
  const [a, b] = await Promise.all([migrate(db), migrate(db)]);
  assert.equal(a.code, 0, a.out);
  assert.equal(b.code, 0, b.out);
  const applied = (a.out.match(/event=applied /g) || []).length + (b.out.match(/event=applied /g) || []).length;
  assert.equal(applied, MIGRATIONS, 'each migration was applied by one of them');
  assert.equal(psql(db, 'SELECT string_agg(version::text, \',\' ORDER BY version) FROM schema_migrations'), VERSIONS.join(','));
  // and again: nothing to do
  const c = await migrate(db);
  assert.equal(c.code, 0);
  assert.match(c.out, /event=up_to_date applied=0/);
});

test('usage events land in their month\'s partition, made ahead for this month and the next two', async () => {
  const db = createDatabase();
  assert.equal((await migrate(db)).code, 0);
  const parts = psql(db, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'usage_events'::regclass`);
  assert.equal(parts, '4', 'default + three months');
  const where = psql(db, `INSERT INTO usage_events (id, ts, status) VALUES (gen_random_uuid(), now(), 200)
                          RETURNING tableoid::regclass`);
  const now = new Date();
  const want = `usage_events_y${now.getUTCFullYear()}m${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  assert.equal(where, want);
  const later = psql(db, `INSERT INTO usage_events (id, ts, status) VALUES (gen_random_uuid(), now() + interval '40 days', 200)
                          RETURNING tableoid::regclass`);
  const ahead = new Date(now.getTime() + 40 * 86400e3);
  assert.equal(later, `usage_events_y${ahead.getUTCFullYear()}m${String(ahead.getUTCMonth() + 1).padStart(2, '0')}`);
});

test('migration 8 fills the coarser usage rollups from usage_hourly, sums and histograms', async () => {
  const db = createDatabase();
  assert.equal((await migrate(db)).code, 0);
  // the database as schema version 7 left it, with hourly rows (two days, three keys, two
  // models, histograms and none) ingested before the upgrade
  psql(db, `DROP TABLE usage_daily, usage_hourly_nokey, usage_daily_nokey, usage_hourly_all, usage_daily_all; DROP INDEX usage_hourly_key_hour;
    DELETE FROM schema_migrations WHERE version = 8`);
  psql(db, `INSERT INTO usage_hourly (hour, tenant_id, key_id, model, provider, requests, errors, prompt_tokens, cost_usd, latency_hist)
    SELECT date_trunc('day', now(), 'UTC') - interval '3 days' + make_interval(hours => h),
           md5('t' || (k % 2))::uuid, md5('k' || k)::uuid, 'm' || (h % 2), 'p', 1 + h + k, h % 3, 10 * h, (h + k) / 7.0,
           CASE WHEN h % 7 <> 0 THEN ARRAY[((h % 5)::bigint << 40) + 3, ((10 + k)::bigint << 40) + h] END
    FROM generate_series(0, 47) h, generate_series(1, 3) k`);
  const m = await migrate(db);
  assert.equal(m.code, 0, m.out);
  assert.match(m.out, /event=applied migration=0008_/);
  // each rollup, grouped by its own columns, from usage_hourly and from itself: the same lines
  const lines = (table, time, cols) => psql(db, `SELECT concat_ws(' / ',
      (SELECT string_agg(l, ';' ORDER BY l) FROM (SELECT concat_ws('|', ${time}, ${cols}, sum(requests), sum(errors),
        sum(prompt_tokens), trim_scale(sum(cost_usd))) AS l FROM ${table} GROUP BY ${time}, ${cols}) a),
      (SELECT string_agg(l, ';' ORDER BY l) FROM (SELECT concat_ws('|', ${time}, ${cols}, x >> 40, sum(x & 1099511627775)) AS l
        FROM ${table}, unnest(latency_hist) x GROUP BY ${time}, ${cols}, x >> 40) b))`);
  const day = "date_trunc('day', hour, 'UTC')";
  for (const [table, time, cols] of [
    ['usage_daily', 'day', 'tenant_id, key_id, model, provider'],
    ['usage_hourly_nokey', 'hour', 'tenant_id, model, provider'],
    ['usage_daily_nokey', 'day', 'tenant_id, model, provider'],
    ['usage_hourly_all', 'hour', 'model, provider'],
    ['usage_daily_all', 'day', 'model, provider'],
  ]) {
    const want = lines('usage_hourly', time === 'day' ? day : 'hour', cols);
    assert.ok(want.length > 100, want);
    assert.equal(lines(table, time, cols), want, table);
  }
  // two days x two tenants x two models
  assert.equal(psql(db, 'SELECT count(*) FROM usage_daily_nokey'), '8');
});

test('migration 13 stores the stored catalogs as rows and fills the band rollup from usage_events', async () => {
  const db = createDatabase();
  assert.equal((await migrate(db)).code, 0);
  // the database as schema version 12 left it: 0009's and 0011's views, none of 0013's objects
  const sql = (f) => readFileSync(path.resolve('migrations', f), 'utf8');
  const view = (text, name) => new RegExp(`CREATE (?:OR REPLACE )?VIEW ${name} AS[\\s\\S]*?;\\n`).exec(text)[0]
    .replace(/^CREATE (OR REPLACE )?VIEW/, 'CREATE OR REPLACE VIEW');
  psql(db, [view(sql('0009_model_catalog.sql'), 'catalog_models'), view(sql('0009_model_catalog.sql'), 'provider_vendors'),
    view(sql('0011_exact_cost.sql'), 'catalog_long_context'),
    `DROP TRIGGER model_catalogs_rows ON model_catalogs; DROP FUNCTION catalog_rows_on_insert(), catalog_rows_fill(bigint, jsonb),
       usage_prompt_band(bigint), usage_volume_cost(bigint, numeric, numeric, numeric, numeric, numeric, numeric, numeric,
       numeric, numeric, numeric, numeric, numeric, json);
     DROP TABLE usage_daily_bands, usage_prompt_bounds, catalog_model_rows, catalog_vendor_rows;
     DELETE FROM schema_migrations WHERE version = 13`].join('\n'));
  // a catalog with a tier above 1,000 input tokens, and events on both sides of it
  psql(db, `INSERT INTO model_catalogs (origin, version, generated_on, sha256, doc) VALUES ('import', 'v', '2099-01-01',
    repeat('a', 64), '{"vendors": {"openai": {"kind": "openai", "hosts": ["api.openai.com"], "default_for_kind": true}},
      "models": [{"kind": "anthropic", "model": "m", "mode": "chat", "prices": {"input": "1", "output": "2"},
      "long_context": [{"from_input_tokens": 1000, "input": "2", "output": "4"}]}]}')`);
  psql(db, `INSERT INTO usage_events (id, ts, request_id, tenant_id, model, provider, endpoint, status, streamed, prompt_tokens,
      completion_tokens, cached_tokens, reasoning_tokens, cache_write_tokens, cache_write_1h_tokens, cost_usd, usage_source)
    SELECT gen_random_uuid(), now(), 'r' || n, md5('t')::uuid, 'alias', 'p', 'chat.completions', 200, false, p, 10, 1, 2, 3, 4,
           0.5, 'provider'
    FROM generate_series(1, 4) n, (VALUES (1000), (1001), (5000)) v(p)`);
  const m = await migrate(db);
  assert.equal(m.code, 0, m.out);
  assert.match(m.out, /event=applied migration=0013_/);
  assert.equal(psql(db, "SELECT kind || '/' || vendor || '/' || model || ' ' || c.input_per_mtok || ' ' || r.long_context::text FROM catalog_models c JOIN catalog_model_rows r USING (kind, vendor, model)"),
    'anthropic//m 1 [{"above_input_tokens":1000,"input_per_mtok":2,"output_per_mtok":4}]');
  assert.equal(psql(db, 'SELECT string_agg(above::text, \',\') FROM usage_prompt_bounds'), '1000');
  // 1,000 tokens is not more than the threshold; 1,001 and 5,000 are
  assert.equal(psql(db, `SELECT string_agg(concat_ws('|', above, requests, prompt_tokens, cached_tokens, cache_write_tokens,
      cache_write_1h_tokens, completion_tokens, reasoning_tokens, trim_scale(cost_usd)), ';' ORDER BY above) FROM usage_daily_bands`),
    '0|4|4000|4|12|16|40|8|2;1000|8|24004|8|24|32|80|16|4');
});

test('a bad migration target is refused with a clear message', async () => {
  const r = await migrate('postgresql:///no_such_db_for_tollgate?host=/nonexistent&user=postgres');
  assert.equal(r.code, 1);
  assert.match(r.out, /could not connect to the database/);
});

// A pod's database may come up after the pod (and the image has no shell to wait in): the
// socket appears only after 1.5 s, in a directory the URL already names.
test('migrate --wait-db-s retries the first connection until the database answers, and is bounded', async () => {
  const db = new URL(createDatabase());
  const realSock = path.join(db.searchParams.get('host'), '.s.PGSQL.5432');
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-waitdb-'));
  try {
    db.searchParams.set('host', dir);
    const url = db.toString();
    const t0 = Date.now();
    setTimeout(() => symlinkSync(realSock, path.join(dir, '.s.PGSQL.5432')), 1500);
    const r = await migrate(url, ['--wait-db-s', '20']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /event=db_wait attempt=1 /);
    assert.match(r.out, /event=up_to_date applied=\d+/);
    assert.ok(Date.now() - t0 >= 1400, 'it waited for the socket');
    assert.ok(Date.now() - t0 < 15000, 'and connected once it was there');

    // nothing appears: it gives up after the bound with the last error
    rmSync(path.join(dir, '.s.PGSQL.5432'));
    const t1 = Date.now();
    const f = await migrate(url, ['--wait-db-s', '2']);
    assert.equal(f.code, 1, f.out);
    assert.match(f.out, /could not connect to the database/);
    assert.ok(Date.now() - t1 >= 1900 && Date.now() - t1 < 10000, `gave up after ${Date.now() - t1} ms`);

    // a bad value is refused before any connection, as a flag and from the environment
    const e = await migrate(url, ['--wait-db-s', 'x']);
    assert.equal(e.code, 2);
    assert.match(e.out, /--wait-db-s must be an integer from 0 to 3600/);
    const v = await migrate(url, [], { TOLLGATE_WAIT_DB_S: '3601' });
    assert.equal(v.code, 2);
    assert.match(v.out, /TOLLGATE_WAIT_DB_S must be an integer from 0 to 3600/);
    // the environment's bound is the one used when no flag is given
    const t2 = Date.now();
    const w = await migrate(url, [], { TOLLGATE_WAIT_DB_S: '1' });
    assert.equal(w.code, 1, w.out);
    assert.match(w.out, /event=db_wait attempt=1 /);
    assert.ok(Date.now() - t2 >= 900, 'waited about a second');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many failed logins from one address are limited, whatever the account', async () => {
  const cp = await startControl();
  try {
    for (let i = 0; i < 20; i++) {
      const r = await cp.api('POST', '/api/v1/auth/login', { body: { email: `ghost${i}@example.com`, password: 'wrong' } });
      assert.equal(r.status, 401);
    }
    const r = await cp.api('POST', '/api/v1/auth/login', { body: { email: 'admin@example.com', password: 'admin-password-for-tests' } });
    assert.equal(r.status, 429);
    assert.equal(r.body.error.code, 'too_many_attempts');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
  } finally {
    await cp.stop();
  }
});
