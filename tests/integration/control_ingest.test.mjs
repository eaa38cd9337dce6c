// control_ingest.test.mjs: POST /dp/v1/usage on tollgate-control (docs/usage.md). Events are
// stored once whatever is sent twice; spend (per key and tenant, daily/monthly/total, UTC) and the
// hourly rollup are exact to the picodollar, checked against sums made here from what was sent;
// bad lines are refused one by one; concurrent overlapping batches neither deadlock nor miscount.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startControl, createRoleSplitDatabase, pgHost } from './lib/control.mjs';

const DP_TOKEN = 'test-dp-token'; // what startControl sets as TOLLGATE_DP_TOKEN
const ZERO = '00000000-0000-0000-0000-000000000000';
const DAY = 86400e3;

let cp;
let admin;
let tenantA;
let tenantB;
let keyA1;
let keyA2;
let keyB1;
let keyIdle; // a key with a budget and no spend

function post(body, { token = DP_TOKEN, dataplane = 'dp-test-1', version = '0.1.0-test' } = {}) {
  const headers = { 'content-type': 'application/x-ndjson' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (dataplane) headers['x-tollgate-dataplane'] = dataplane;
  if (version) headers['x-tollgate-version'] = version;
  return fetch(`${cp.url}/dp/v1/usage`, { method: 'POST', headers, body }).then(async (res) => {
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    return { status: res.status, body: json, text };
  });
}

// A cost as exact text and in picodollars.
function cost(picos) {
  const s = picos.toString().padStart(13, '0');
  return { text: `${s.slice(0, -12)}.${s.slice(-12)}`, picos: BigInt(picos) };
}

// One event: {line (NDJSON text), ev (the fields, cost in picos)}.
function event({ tenant, key, ts = new Date(), picos = Math.floor(Math.random() * 5e9), costText,
  model = 'gpt-4o-mini', provider = 'openai', status = 200, prompt = 12, completion = 30, ...more } = {}) {
  const c = costText ? { text: costText.text, picos: costText.picos } : cost(picos);
  const ev = {
    id: randomUUID(), ts: ts.toISOString(), request_id: `req-${Math.random().toString(36).slice(2)}`,
    key_id: key ?? null, tenant_id: tenant ?? null, model, provider, upstream_model: model && `${model}-2024-07-18`,
    endpoint: 'chat.completions', status, streamed: false, prompt_tokens: prompt, completion_tokens: completion,
    cached_tokens: 2, reasoning_tokens: 1, total_tokens: prompt + completion, usage_source: 'provider',
    cost_usd: '__COST__', latency_ms: 12.5, ttfb_ms: null, error: status >= 400 ? 'upstream_error' : null, ...more,
  };
  const line = JSON.stringify(ev).replace('"__COST__"', c.text);
  return { line, ev: { ...ev, cost_usd: c.picos } };
}

const body = (events) => events.map((e) => e.line).join('\n') + '\n';
const utcDay = (iso) => iso.slice(0, 10);
const utcMonth = (iso) => `${iso.slice(0, 7)}-01`;
const utcHour = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 13)}:00:00+00`;

// spend rows as this test expects them from stored events: "tenant|key|period|start" -> {picos, n}
function expectedSpend(evs) {
  const m = new Map();
  const add = (k, e) => {
    const v = m.get(k) || { picos: 0n, n: 0 };
    v.picos += e.cost_usd;
    v.n += 1;
    m.set(k, v);
  };
  for (const e of evs) {
    if (!e.tenant_id) continue;
    const scopes = [ZERO];
    if (e.key_id) scopes.push(e.key_id);
    for (const s of scopes) {
      add(`${e.tenant_id}|${s}|daily|${utcDay(e.ts)}`, e);
      add(`${e.tenant_id}|${s}|monthly|${utcMonth(e.ts)}`, e);
      add(`${e.tenant_id}|${s}|total|1970-01-01`, e);
    }
  }
  return m;
}

function expectedHourly(evs) {
  const m = new Map();
  for (const e of evs) {
    const k = `${e.tenant_id ?? ZERO}|${utcHour(e.ts)}|${e.key_id ?? ZERO}|${e.model ?? ''}|${e.provider ?? ''}`;
    const v = m.get(k) || { requests: 0, errors: 0, prompt: 0, completion: 0, cached: 0, reasoning: 0, picos: 0n };
    v.requests += 1;
    if (e.status >= 400) v.errors += 1;
    v.prompt += e.prompt_tokens;
    v.completion += e.completion_tokens;
    v.cached += e.cached_tokens;
    v.reasoning += e.reasoning_tokens;
    v.picos += e.cost_usd;
    m.set(k, v);
  }
  return m;
}

// The spend table, in the same shape (cost in picodollars, exactly, by SQL numeric arithmetic).
function spendTable(where = 'true') {
  const out = cp.sql(`SELECT tenant_id, key_id, period, period_start, (cost_usd * 1000000000000)::numeric(40,0), requests
    FROM spend WHERE ${where} ORDER BY 1, 2, 3, 4`);
  const m = new Map();
  for (const row of out ? out.split('\n') : []) {
    const [t, k, p, s, picos, n] = row.split('|');
    m.set(`${t}|${k}|${p}|${s}`, { picos: BigInt(picos), n: Number(n) });
  }
  return m;
}

function hourlyTable(where = 'true') {
  const out = cp.sql(`SELECT tenant_id, hour, key_id, model, provider, requests, errors, prompt_tokens, completion_tokens,
    cached_tokens, reasoning_tokens, (cost_usd * 1000000000000)::numeric(40,0) FROM usage_hourly WHERE ${where}`);
  const m = new Map();
  for (const row of out ? out.split('\n') : []) {
    const [t, h, k, mo, pr, requests, errors, prompt, completion, cached, reasoning, picos] = row.split('|');
    m.set(`${t}|${h}|${k}|${mo}|${pr}`, { requests: +requests, errors: +errors, prompt: +prompt, completion: +completion,
      cached: +cached, reasoning: +reasoning, picos: BigInt(picos) });
  }
  return m;
}

const sorted = (m) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));

function newKey(tenantId, name) {
  return cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4)
    VALUES ('${tenantId}', '${name}', sha256('${randomUUID()}'::bytea), 'abcd') RETURNING id`);
}

function resetUsage() {
  cp.sql('TRUNCATE usage_events, spend, usage_hourly');
}

before(async () => {
  cp = await startControl({ roles: createRoleSplitDatabase(), env: { TOLLGATE_LOG_LEVEL: 'info' } });
  admin = await cp.login();
  tenantA = (await cp.makeTenant(admin, 'ingest-a')).id;
  tenantB = (await cp.makeTenant(admin, 'ingest-b')).id;
  keyA1 = newKey(tenantA, 'a1');
  keyA2 = newKey(tenantA, 'a2');
  keyB1 = newKey(tenantB, 'b1');
  keyIdle = newKey(tenantB, 'idle');
});

after(async () => {
  await cp?.stop();
});

test('wrong_or_missing_dp_token_gets_401_and_writes_nothing', async () => {
  resetUsage();
  const evs = [event({ tenant: tenantA, key: keyA1 }), event({ tenant: tenantA, key: keyA2 })];
  for (const token of [null, 'wrong-token', `${DP_TOKEN}x`, '', admin]) {
    const r = await post(body(evs), { token, dataplane: 'dp-intruder' });
    assert.equal(r.status, 401, `token ${JSON.stringify(token)}: ${r.text}`);
    assert.equal(r.body.error.code, 'unauthenticated');
    assert.equal(r.body.spend, undefined);
  }
  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), '0');
  assert.equal(cp.sql('SELECT count(*) FROM spend'), '0');
  assert.equal(cp.sql('SELECT count(*) FROM usage_hourly'), '0');
  assert.equal(cp.sql("SELECT count(*) FROM dataplanes WHERE id = 'dp-intruder'"), '0');
});

test('batch_is_stored_with_spend_per_key_tenant_and_period_exact_to_the_picodollar', async () => {
  resetUsage();
  const now = Date.now();
  const times = [new Date(now), new Date(now - DAY), new Date(now - 40 * DAY), new Date(now - 3600e3),
    new Date(Date.UTC(2025, 0, 31, 23, 59, 59, 999)), new Date(Date.UTC(2025, 1, 1, 0, 0, 0, 0))];
  const evs = [];
  for (let i = 0; i < 600; i++) {
    const ts = times[i % times.length];
    const pick = i % 10;
    if (pick < 4) evs.push(event({ tenant: tenantA, key: keyA1, ts }));
    else if (pick < 6) evs.push(event({ tenant: tenantA, key: keyA2, ts, model: 'claude-x', provider: 'anthropic' }));
    else if (pick < 8) evs.push(event({ tenant: tenantB, key: keyB1, ts, status: i % 3 ? 200 : 502 }));
    else if (pick < 9) evs.push(event({ tenant: tenantA, key: null, ts, model: null, provider: null })); // no key known
    else evs.push(event({ tenant: null, key: null, ts, status: 401, picos: 0, prompt: 0, completion: 0 })); // refused
  }
  // amounts at the edges of numeric(20,12): the largest cost allowed, exponents, zero, a whole number
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '999999.999999999999', picos: 999999999999999999n } }));
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '1000000', picos: 1000000000000000000n } }));
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '2e-05', picos: 20000000n } }));
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '1.5E+1', picos: 15000000000000n } }));
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '0', picos: 0n } }));
  evs.push(event({ tenant: tenantA, key: keyA1, costText: { text: '3', picos: 3000000000000n } }));
  const r = await post(body(evs));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, evs.length);
  assert.equal(r.body.duplicates, 0);
  assert.deepEqual(r.body.rejected, []);

  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), String(evs.length));
  const want = expectedSpend(evs.map((e) => e.ev));
  assert.deepEqual(sorted(spendTable()), sorted(want));
  // and the same from SQL, summing the stored events (what the dashboard could recompute)
  const drift = cp.sql(`WITH e AS (SELECT tenant_id, key_id, ts, cost_usd FROM usage_events WHERE tenant_id IS NOT NULL),
    s AS (SELECT tenant_id, key_id, ts, cost_usd FROM e WHERE key_id IS NOT NULL
          UNION ALL SELECT tenant_id, '${ZERO}'::uuid, ts, cost_usd FROM e),
    x AS (SELECT tenant_id, key_id, p.period, p.start, sum(cost_usd) AS c, count(*) AS n FROM s
          CROSS JOIN LATERAL (VALUES ('daily', (ts AT TIME ZONE 'UTC')::date),
            ('monthly', date_trunc('month', ts AT TIME ZONE 'UTC')::date), ('total', date '1970-01-01')) p (period, start)
          GROUP BY 1, 2, 3, 4)
    SELECT count(*) FROM (
      (SELECT tenant_id, key_id, period, start, c, n FROM x EXCEPT SELECT tenant_id, key_id, period, period_start, cost_usd, requests FROM spend)
      UNION ALL
      (SELECT tenant_id, key_id, period, period_start, cost_usd, requests FROM spend EXCEPT SELECT tenant_id, key_id, period, start, c, n FROM x)) d`);
  assert.equal(drift, '0');
  // the boundary: 23:59:59.999 on Jan 31 is January's, 00:00 on Feb 1 is February's (UTC)
  assert.ok(spendTable(`key_id = '${keyA1}' AND period = 'monthly' AND period_start = '2025-01-01'`).size === 1);
  assert.ok(spendTable(`key_id = '${keyA1}' AND period = 'monthly' AND period_start = '2025-02-01'`).size === 1);

  assert.deepEqual(sorted(hourlyTable()), sorted(expectedHourly(evs.map((e) => e.ev))));
  assert.equal(cp.sql(`SELECT count(*) FROM usage_hourly WHERE tenant_id = '${ZERO}' AND key_id = '${ZERO}' AND errors = requests`),
    String(new Set(evs.filter((e) => !e.ev.tenant_id).map((e) => utcHour(e.ev.ts))).size));

  // one stored row, field by field
  const e = evs[0].ev;
  const row = cp.sql(`SELECT id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), request_id, tenant_id, key_id,
    model, provider, upstream_model, endpoint, status, streamed, prompt_tokens, completion_tokens, cached_tokens,
    reasoning_tokens, (cost_usd * 1000000000000)::numeric(40,0), latency_ms, ttfb_ms IS NULL, usage_source, error IS NULL
    FROM usage_events WHERE id = '${e.id}'`);
  assert.equal(row, [e.id, e.ts, e.request_id, e.tenant_id, e.key_id, e.model, e.provider, e.upstream_model,
    e.endpoint, e.status, 'f', e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.reasoning_tokens,
    e.cost_usd, '12.5', 't', 'provider', 't'].join('|'));
  // this month's events are in this month's partition, not the default one
  assert.equal(cp.sql(`SELECT tableoid::regclass FROM usage_events WHERE id = '${e.id}'`),
    `usage_events_y${e.ts.slice(0, 4)}m${e.ts.slice(5, 7)}`);
});

test('text_fields_keep_escapes_and_unicode_exactly', async () => {
  const odd = 'tab\there "quote" back\\slash\nnewline\r\u00e9\u4e2d\ud83d\ude00 \\N \\. end';
  const e = event({ tenant: tenantA, key: keyA1, request_id: odd, error: '\\', model: 'm\u00e9' });
  // also escapes a JSON writer may use: \u escapes, \/ and a surrogate pair spelled out
  const line2 = event({ tenant: tenantA, key: keyA1 });
  const raw2 = line2.line.replace(/"request_id":"[^"]*"/, '"request_id":"\\u0041\\/\\uD83D\\uDE00\\t"');
  const r = await post(`${e.line}\n${raw2}\n`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, 2);
  const got = cp.sql(`SELECT json_build_array(request_id, error, model) FROM usage_events WHERE id = '${e.ev.id}'`);
  assert.deepEqual(JSON.parse(got), [odd, '\\', 'm\u00e9']);
  const got2 = cp.sql(`SELECT json_build_array(request_id) FROM usage_events WHERE id = '${line2.ev.id}'`);
  assert.deepEqual(JSON.parse(got2), ['A/\ud83d\ude00\t']);
});

test('same_batch_twice_counts_duplicates_and_leaves_spend_unchanged', async () => {
  resetUsage();
  const evs = [];
  for (let i = 0; i < 200; i++) evs.push(event({ tenant: i % 2 ? tenantA : tenantB, key: i % 2 ? keyA1 : keyB1 }));
  let r = await post(body(evs));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, 200);
  const spend1 = spendTable();
  const hourly1 = hourlyTable();
  r = await post(body(evs));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.accepted, r.body.duplicates], [0, 200]);
  assert.deepEqual(spendTable(), spend1);
  assert.deepEqual(hourlyTable(), hourly1);
  // half old, half new; and an event repeated inside one batch is stored once
  const more = [];
  for (let i = 0; i < 100; i++) more.push(event({ tenant: tenantA, key: keyA2 }));
  r = await post(body([...evs.slice(0, 100), ...more, more[0]]));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.accepted, r.body.duplicates], [100, 101]);
  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), '300');
  assert.deepEqual(sorted(spendTable()), sorted(expectedSpend([...evs, ...more].map((e) => e.ev))));
});

test('bad_lines_are_rejected_with_line_numbers_and_good_ones_stored', async () => {
  resetUsage();
  const good = () => event({ tenant: tenantA, key: keyA1 });
  const g = [good(), good(), good(), good()];
  const mutate = (patch) => {
    const e = good();
    return JSON.stringify({ ...JSON.parse(e.line), ...patch });
  };
  const lines = [
    g[0].line, //                                                     1
    'not json', //                                                    2
    '', //                                                            3 (blank: skipped, still counted)
    '[1,2]', //                                                       4
    mutate({ id: 'not-a-uuid' }), //                                  5
    mutate({ ts: '2025-02-30T00:00:00Z' }), //                        6
    mutate({ ts: '2025-01-01 00:00:00' }), //                         7 (no zone)
    mutate({ key_id: 42 }), //                                        8
    mutate({ tenant_id: 'acme' }), //                                 9
    mutate({ status: 1000 }), //                                      10
    mutate({ status: '200' }), //                                     11
    mutate({ prompt_tokens: -1 }), //                                 12
    mutate({ cost_usd: -0.5 }), //                                    13
    mutate({ model: 'a\u0000b' }), //                                 14
    good().line.replace('{', '{"id":"00000000-0000-0000-0000-000000000001",'), // 15 duplicate field
    `${g[1].line}\r`, //                                              16 CRLF is fine
    mutate({ completion_tokens: 1.5 }), //                            17
    `${mutate({})} trailing`, //                                      18
    mutate({ streamed: 'yes' }), //                                   19
    mutate({ model: 'x'.repeat(513) }), //                            20
    mutate({ status: undefined }), //                                 21 (missing)
    g[2].line, //                                                     22
    '{"id":"', //                                                     23 (truncated)
    `  ${g[3].line}\t `, //                                           24 blanks around are fine
    mutate({ ts: new Date(Date.now() + 3 * 86400000).toISOString() }), // 25 days ahead
  ];
  const r = await post(lines.join('\n'));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, 4);
  assert.equal(r.body.duplicates, 0);
  assert.deepEqual(r.body.rejected, [
    { line: 2, message: 'not a JSON object' },
    { line: 4, message: 'not a JSON object' },
    { line: 5, message: 'id is not a UUID' },
    { line: 6, message: 'ts is not an RFC 3339 date-time' },
    { line: 7, message: 'ts is not an RFC 3339 date-time' },
    { line: 8, message: 'key_id is neither a UUID nor null' },
    { line: 9, message: 'tenant_id is neither a UUID nor null' },
    { line: 10, message: 'status is not an integer from 0 to 999' },
    { line: 11, message: 'status is not an integer from 0 to 999' },
    { line: 12, message: 'prompt_tokens is negative' },
    { line: 13, message: 'cost_usd is negative' },
    { line: 14, message: 'model contains a NUL character' },
    { line: 15, message: 'duplicate field "id"' },
    { line: 17, message: 'completion_tokens is not an integer from 0 to 1000000000000' },
    { line: 18, message: 'not valid JSON: text after the object' },
    { line: 19, message: 'streamed is not a boolean' },
    { line: 20, message: 'model is longer than 512 bytes' },
    { line: 21, message: 'status is not an integer from 0 to 999' },
    { line: 23, message: 'not valid JSON' },
    { line: 25, message: "ts is more than a day ahead of the control plane's clock" },
  ]);
  const ids = cp.sql('SELECT id FROM usage_events ORDER BY id').split('\n');
  assert.deepEqual(ids, g.map((e) => e.ev.id).sort());
  const m = await cp.api('GET', '/metrics');
  assert.match(m.text, /tollgate_control_usage_events_total\{result="rejected"\} [1-9]\d*/);
});

test('body_over_8_MiB_or_5000_events_gets_413_and_writes_nothing', async () => {
  resetUsage();
  const e = event({ tenant: tenantA, key: keyA1 });
  const pad = `{"pad":"${'x'.repeat(1 << 20)}"}\n`;
  let r = await post(e.line + '\n' + pad.repeat(9));
  assert.equal(r.status, 413, r.text.slice(0, 200));
  assert.equal(r.body.error.code, 'payload_too_large');
  // just under 8 MiB is fine (the padding lines are events with no id: rejected one by one)
  r = await post(e.line + '\n' + pad.repeat(7));
  assert.equal(r.status, 200, r.text.slice(0, 200));
  assert.equal(r.body.accepted, 1);
  assert.equal(r.body.rejected.length, 7);
  resetUsage();
  const many = [];
  for (let i = 0; i < 5001; i++) many.push(event({ tenant: tenantA, key: keyA1 }));
  r = await post(body(many));
  assert.equal(r.status, 413, r.text);
  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), '0');
  r = await post(body(many.slice(0, 5000)));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, 5000);
});

test('empty_body_is_a_heartbeat_that_returns_every_budget_with_its_spend', async () => {
  resetUsage();
  cp.sql('DELETE FROM budgets');
  const budgets = {
    aDaily: cp.sql(`INSERT INTO budgets (tenant_id, period, limit_usd) VALUES ('${tenantA}', 'daily', 10) RETURNING id`),
    a1Monthly: cp.sql(`INSERT INTO budgets (tenant_id, key_id, period, limit_usd) VALUES ('${tenantA}', '${keyA1}', 'monthly', 2.5) RETURNING id`),
    a1Total: cp.sql(`INSERT INTO budgets (tenant_id, key_id, period, limit_usd) VALUES ('${tenantA}', '${keyA1}', 'total', 0.000000001) RETURNING id`),
    idleDaily: cp.sql(`INSERT INTO budgets (tenant_id, key_id, period, limit_usd) VALUES ('${tenantB}', '${keyIdle}', 'daily', 1) RETURNING id`),
  };
  const now = new Date();
  const evs = [
    event({ tenant: tenantA, key: keyA1, picos: 1250000000000 }), // $1.25
    event({ tenant: tenantA, key: keyA1, picos: 1 }),
    event({ tenant: tenantA, key: keyA2, picos: 2000000000000 }),
    event({ tenant: tenantA, key: keyA1, ts: new Date(now - 2 * DAY), picos: 7000000000000 }), // not today
  ];
  let r = await post(body(evs));
  assert.equal(r.status, 200, r.text);
  const t0 = Date.now();
  r = await post('', { dataplane: 'dp-test-2' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.accepted, r.body.duplicates, r.body.rejected], [0, 0, []]);
  assert.ok(Math.abs(r.body.spend_as_of - t0) < 2000, `spend_as_of ${r.body.spend_as_of} vs ${t0}`);
  assert.ok(r.body.live_dataplanes >= 2, r.text);
  const today = utcDay(now.toISOString());
  const twoDaysAgo = new Date(now - 2 * DAY).toISOString();
  const sameMonth = utcMonth(twoDaysAgo) === utcMonth(now.toISOString());
  const want = [
    { budget: budgets.aDaily, tenant: tenantA, key: null, period: 'daily', period_start: today, limit_usd: 10, spent_usd: 3.250000000001 },
    { budget: budgets.a1Monthly, tenant: tenantA, key: keyA1, period: 'monthly', period_start: utcMonth(now.toISOString()),
      limit_usd: 2.5, spent_usd: sameMonth ? 8.250000000001 : 1.250000000001 },
    { budget: budgets.a1Total, tenant: tenantA, key: keyA1, period: 'total', period_start: '1970-01-01', limit_usd: 1e-9, spent_usd: 8.250000000001 },
    { budget: budgets.idleDaily, tenant: tenantB, key: keyIdle, period: 'daily', period_start: today, limit_usd: 1, spent_usd: 0 },
  ].sort((a, b) => (a.budget < b.budget ? -1 : 1));
  assert.deepEqual(r.body.spend, want);
  // the numbers are the exact decimals Postgres holds, not floats printed long
  assert.match(r.text, /"spent_usd":3\.250000000001[,}]/);
  assert.match(r.text, /"limit_usd":0\.000000001[,}]/);
  assert.deepEqual(Object.keys(r.body), ['accepted', 'duplicates', 'rejected', 'live_dataplanes', 'spend_as_of', 'spend']);
});

test('the_call_registers_the_data_plane_and_touches_last_seen', async () => {
  let r = await post('', { dataplane: 'dp-usage-only', version: '1.2.3' });
  assert.equal(r.status, 200, r.text);
  assert.equal(cp.sql("SELECT version || ' ' || snapshot_version FROM dataplanes WHERE id = 'dp-usage-only'"), '1.2.3 0');
  cp.sql("UPDATE dataplanes SET last_seen = now() - interval '1 hour', snapshot_version = 7 WHERE id = 'dp-usage-only'");
  const live0 = (await post('', { dataplane: null })).body.live_dataplanes;
  r = await post('', { dataplane: 'dp-usage-only', version: '1.2.4' });
  assert.equal(r.body.live_dataplanes, live0 + 1);
  // a usage post keeps the snapshot version the poll recorded
  assert.equal(cp.sql(`SELECT version || ' ' || snapshot_version || ' ' || (last_seen > now() - interval '5 seconds')
    FROM dataplanes WHERE id = 'dp-usage-only'`), '1.2.4 7 true');
  const l = await cp.api('GET', '/api/v1/dataplanes', { token: admin });
  assert.equal(l.status, 200);
  const dp = l.body.data.find((x) => x.id === 'dp-usage-only');
  assert.equal(dp.live, true);
  assert.equal(dp.snapshot_version, 7);
  // the version data planes are compared with: up to date when their snapshot_version equals it
  assert.equal(l.body.config_version, Number(cp.sql('SELECT v FROM config_version')));
  const t = await cp.api('POST', '/api/v1/tenants', { token: admin, body: { slug: 'dp-version-bump', name: 'x' } });
  assert.equal(t.status, 201, t.text);
  const l1 = await cp.api('GET', '/api/v1/dataplanes', { token: admin });
  assert.ok(l1.body.config_version > l.body.config_version);
  // live means heard from within 10 s
  cp.sql("UPDATE dataplanes SET last_seen = now() - interval '11 seconds' WHERE id = 'dp-usage-only'");
  const l2 = await cp.api('GET', '/api/v1/dataplanes', { token: admin });
  assert.equal(l2.body.data.find((x) => x.id === 'dp-usage-only').live, false);
});

test('concurrent_overlapping_batches_neither_deadlock_nor_miscount', async () => {
  resetUsage();
  const pool = [];
  const keys = [[tenantA, keyA1], [tenantA, keyA2], [tenantB, keyB1]];
  const hours = [0, 1, 2].map((h) => new Date(Date.now() - h * 3600e3));
  for (let i = 0; i < 3000; i++) {
    const [t, k] = keys[i % 3];
    pool.push(event({ tenant: t, key: k, ts: hours[i % 2 === 0 ? 0 : (i % 3)], model: ['m1', 'm2'][i % 2] }));
  }
  // 8 posters, 4 batches each, every batch 1000 events drawn from the pool (heavy overlap), in
  // different orders; all at once
  const batches = [];
  for (let p = 0; p < 8; p++) {
    for (let b = 0; b < 4; b++) {
      const start = ((p * 4 + b) * 389) % pool.length;
      const sel = [];
      for (let i = 0; i < 1000; i++) sel.push(pool[(start + i * (p % 2 ? 1 : 3)) % pool.length]);
      if (b % 2) sel.reverse();
      batches.push(sel);
    }
  }
  const posters = [];
  const results = [];
  for (let p = 0; p < 8; p++) {
    posters.push((async () => {
      for (let b = 0; b < 4; b++) results.push(await post(body(batches[p * 4 + b]), { dataplane: `dp-par-${p}` }));
    })());
  }
  await Promise.all(posters);
  for (const r of results) assert.equal(r.status, 200, r.text);
  const sent = new Map();
  for (const sel of batches) for (const e of sel) sent.set(e.ev.id, e.ev);
  const accepted = results.reduce((n, r) => n + r.body.accepted, 0);
  const dups = results.reduce((n, r) => n + r.body.duplicates, 0);
  assert.equal(accepted, sent.size);
  assert.equal(accepted + dups, 32000);
  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), String(sent.size));
  assert.deepEqual(sorted(spendTable()), sorted(expectedSpend([...sent.values()])));
  assert.deepEqual(sorted(hourlyTable()), sorted(expectedHourly([...sent.values()])));
  assert.doesNotMatch(cp.logs(), /event=batch_failed/);
  const retries = (cp.logs().match(/event=batch_retry/g) || []).length;
  console.log(`# ${sent.size} distinct events in 32 batches from 8 posters; ${retries} batch retries`);
});

test('metrics_count_accepted_duplicate_and_rejected_events', async () => {
  const m = (await cp.api('GET', '/metrics')).text;
  const get = (res) => Number(new RegExp(`tollgate_control_usage_events_total\\{result="${res}"\\} (\\d+)`).exec(m)?.[1]);
  assert.ok(get('accepted') > 0 && get('duplicate') > 0 && get('rejected') > 0, m);
  assert.match(m, /tollgate_control_usage_batches_total\{result="ok"\} \d+/);
});

// last: it takes the database away
test('database_unreachable_gets_503_and_the_batch_goes_in_on_retry', async () => {
  resetUsage();
  const dbName = new URL(cp.dbUrl).pathname.slice(1);
  const su = (sql) => execFileSync('psql', ['-h', pgHost(), '-U', 'postgres', '-d', 'postgres', '-X', '-q', '-A', '-t',
    '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  const evs = [event({ tenant: tenantA, key: keyA1 })];
  su(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
  try {
    su(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${dbName}'`);
    const r = await post(body(evs));
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.error.code, 'database_unavailable');
  } finally {
    su(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`);
  }
  let r;
  for (let i = 0; i < 20; i++) {
    r = await post(body(evs));
    if (r.status === 200) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.accepted, 1);
  assert.equal(cp.sql('SELECT count(*) FROM usage_events'), '1');
});
