// usage_stream.test.mjs: usage events travel from tollgate-data (--control-url) through its spool
// to Postgres via the real tollgate-control, exactly once, whichever side is killed on the way
// (docs/usage.md, "Spool (data plane)").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const execFileP = promisify(execFile);
const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };

let mock;
let cp;
let world;

// The database as a person would look at it, without blocking the test's event loop.
async function sql(dbUrl, q) {
  const { stdout } = await execFileP('psql', [dbUrl, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', q]);
  return stdout.trim();
}

async function rowsOf(dbUrl, keyId) {
  const out = await sql(dbUrl, `SELECT id, request_id, cost_usd::text, tenant_id FROM usage_events WHERE key_id = '${keyId}'`);
  return out ? out.split('\n').map((l) => { const [id, rid, cost, tenant] = l.split('|'); return { id, rid, cost, tenant }; }) : [];
}

// A tenant, the mock as a provider with a price, and a route, made through the admin API.
async function makeWorld(c) {
  const admin = await c.login();
  const tenant = await c.makeTenant(admin, 'acme');
  await c.mockRoute(admin, mock.url, { price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } });
  return { admin, tenant };
}

async function newKey(c, w, name) {
  const r = await c.api('POST', `/api/v1/tenants/${w.tenant.id}/keys`, { token: w.admin, body: { name, models: ['gpt-4o-mini'] } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function chat(gw, key, i = 0) {
  const res = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify(chatBody(`hello ${i}`)),
  });
  await res.arrayBuffer();
  return { status: res.status, rid: res.headers.get('x-request-id') };
}

// n requests, `concurrency` at a time; onDone(count) after each answer. A request the data plane
// never answered (it was killed) counts as {status: 0}.
async function load(gw, key, n, { concurrency = 8, onDone = () => {} } = {}) {
  const results = [];
  let next = 0;
  let done = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      let r;
      try { r = await chat(gw, key, i); } catch { r = { status: 0, rid: null }; }
      results[i] = r;
      onDone(++done);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return results;
}

async function startDP(c, opts = {}) {
  const gw = await startGateway({ args: ['--control-url', c.url], env: DP_ENV, ...opts });
  return gw;
}

async function metric(gw, name) {
  const text = await (await fetch(gw.url + '/metrics')).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

// The events in the spool files, as the data plane wrote them (whole lines only).
function spoolEvents(stateDir) {
  const dir = path.join(stateDir, 'spool');
  if (!existsSync(dir)) return [];
  const out = [];
  for (const f of readdirSync(dir).filter((n) => /^usage-\d+\.ndjson$/.test(n)).sort()) {
    let text;
    try { text = readFileSync(path.join(dir, f), 'utf8'); } catch (e) {
      if (e.code === 'ENOENT') continue; // acknowledged and deleted meanwhile
      throw e;
    }
    const lines = text.split('\n');
    lines.pop(); // after the last "\n": empty, or a line cut short by the kill
    for (const l of lines) out.push(JSON.parse(l));
  }
  return out;
}

// The events in the loops' journals not yet handed to the writer (docs/usage.md, "Journals"):
// a header (magic, written, persisted: little-endian u64) and a 1 MiB ring after 4096 bytes.
function journalEvents(stateDir) {
  const dir = path.join(stateDir, 'spool');
  const CAP = 1 << 20;
  const out = [];
  for (const f of readdirSync(dir).filter((n) => /^journal-\d+$/.test(n))) {
    const b = readFileSync(path.join(dir, f));
    const written = Number(b.readBigUInt64LE(8));
    const persisted = Number(b.readBigUInt64LE(16));
    let text = '';
    for (let q = persisted; q < written; q++) text += String.fromCharCode(b[4096 + (q % CAP)]);
    const lines = Buffer.from(text, 'latin1').toString('utf8').split('\n');
    lines.pop();
    for (const l of lines) out.push(JSON.parse(l));
  }
  return out;
}

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: CP_ENV });
  world = await makeWorld(cp);
});

after(async () => {
  await cp.stop();
  await mock.close();
});

test('every request served becomes exactly one row in usage_events within seconds, priced exactly', async () => {
  const k = await newKey(cp, world, 'stream');
  const gw = await startDP(cp);
  try {
    await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the key to work');
    const res = await load(gw, k.key, 60);
    assert.ok(res.every((r) => r.status === 200));
    const served = 61;
    const t0 = Date.now();
    const rows = await waitFor(async () => {
      const r = await rowsOf(cp.dbUrl, k.id);
      return r.length >= served && r;
    }, 10000, `${served} usage rows`);
    console.log(`# ${served} events in Postgres ${Date.now() - t0} ms after the last answer`);
    assert.equal(rows.length, served);
    assert.equal(new Set(rows.map((r) => r.id)).size, served, 'ids are unique');
    const rids = new Set(rows.map((r) => r.rid));
    for (const r of res) assert.ok(rids.has(r.rid), `request ${r.rid} has its row`);
    assert.ok(rows.every((r) => r.tenant === world.tenant.id));
    // the rows are the records the data plane wrote, cost to the picodollar
    const spooled = new Map(spoolEvents(gw.stateDir).map((e) => [e.id, e]));
    const text = readFileSync(path.join(gw.stateDir, 'spool', readdirSync(path.join(gw.stateDir, 'spool'))
      .filter((n) => n.endsWith('.ndjson'))[0]), 'utf8');
    for (const r of rows) {
      const e = spooled.get(r.id);
      assert.ok(e, `row ${r.id} is an event of the spool`);
      assert.equal(e.request_id, r.rid);
      const raw = new RegExp(`"id":"${r.id}".*"cost_usd":([0-9.]+),`).exec(text)[1];
      assert.equal(r.cost, raw, 'cost_usd stored as written');
    }
    assert.ok(Number(rows[0].cost) > 0, 'the price applied');
    await waitFor(async () => (await metric(gw, 'tollgate_usage_spooled_events')) === 0, 5000, 'nothing pending');
    assert.equal(await metric(gw, 'tollgate_usage_shipped_events_total'), served);
    assert.equal(await metric(gw, 'tollgate_usage_written_events_total'), served);
    assert.equal(await metric(gw, 'tollgate_usage_ship_failures_total'), 0);
    assert.equal(readFileSync(path.join(gw.stateDir, 'spool', 'cursor'), 'utf8').split(' ').length, 2);
    // the usage file is not written when a control plane takes the events
    assert.equal(gw.usage().length, 0);
  } finally {
    await gw.stop();
  }
});

test('an upstream reporting absurd usage still leaves its row: counts and cost at the bounds the control plane takes, nothing rejected', async () => {
  const k = await newKey(cp, world, 'absurd');
  const gw = await startDP(cp);
  try {
    await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the key to work');
    // 5 * 10^12 reasoning tokens (counted in completion_tokens, as OpenAI does): past the
    // per-event bound, and $3,000,000 at $0.60 per million output tokens
    const res = await fetch(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer ${k.key}` },
      body: JSON.stringify(chatBody('mock:reasoning=5000000000000 hello')),
    });
    assert.equal(res.status, 200, await res.text());
    const rid = res.headers.get('x-request-id');
    const row = await waitFor(async () => {
      const out = await sql(cp.dbUrl, `SELECT completion_tokens, reasoning_tokens, cost_usd::text FROM usage_events WHERE request_id = '${rid}'`);
      return out || false;
    }, 10000, 'the row of the absurd request');
    const [completion, reasoning, cost] = row.split('|');
    assert.equal(completion, '1000000000000');
    assert.equal(reasoning, '1000000000000');
    assert.equal(Number(cost), 1000000);
    assert.equal(await metric(gw, 'tollgate_usage_rejected_events_total'), 0);
  } finally {
    await gw.stop();
  }
});

test('the control plane killed under load: the data plane keeps serving, and after a restart every event arrives exactly once', async () => {
  const own = await startControl({ env: CP_ENV });
  let own2;
  const w = await makeWorld(own);
  const k = await newKey(own, w, 'cp-kill');
  const gw = await startDP(own);
  try {
    await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the key to work');
    const port = new URL(own.url).port;
    let killed;
    const res = await load(gw, k.key, 300, { onDone: (n) => {
      if (n === 100) { own.proc.kill('SIGKILL'); killed = own.stop(); }
    } });
    await killed;
    assert.deepEqual(res.filter((r) => r.status !== 200), [], 'every request answered while the control plane was away');
    const served = 301;
    // the data plane noticed, once, and holds the events
    await waitFor(() => /event=ship_failed/.test(gw.logs()), 5000, 'the failure to be logged');
    await waitFor(async () => (await metric(gw, 'tollgate_usage_ship_failures_total')) >= 3, 10000, 'a few retries');
    assert.equal(gw.logs().match(/event=ship_failed/g).length, 1, 'one warning per outage, not per try');
    assert.ok((await metric(gw, 'tollgate_usage_spooled_events')) > 0);
    // the control plane comes back on the same database and port
    own2 = await startControl({ dbUrl: own.dbUrl, env: CP_ENV, args: ['--listen', `127.0.0.1:${port}`] });
    const rows = await waitFor(async () => {
      const r = await rowsOf(own.dbUrl, k.id);
      return r.length >= served && r;
    }, 20000, `${served} usage rows after the restart`);
    assert.equal(rows.length, served, 'every event exactly once');
    const rids = new Set(rows.map((r) => r.rid));
    for (const r of res) assert.ok(rids.has(r.rid), `request ${r.rid} has its row`);
    await waitFor(() => /event=ship_resumed/.test(gw.logs()), 5000, 'the recovery to be logged');
    await waitFor(async () => (await metric(gw, 'tollgate_usage_spooled_events')) === 0, 5000, 'nothing pending');
    assert.equal(Number(await sql(own.dbUrl, `SELECT requests FROM spend WHERE key_id = '${k.id}' AND period = 'total'`)), served,
      'spend counted each event once');
  } finally {
    await gw.stop();
    if (own2) await own2.stop();
  }
});

test('after a long outage the data plane ships within a second of the control plane answering again', async () => {
  const own = await startControl({ env: CP_ENV });
  let own2;
  const w = await makeWorld(own);
  const k = await newKey(own, w, 'cp-back');
  const gw = await startDP(own);
  try {
    await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the key to work');
    const port = new URL(own.url).port;
    await own.stop();
    const res = await load(gw, k.key, 20);
    assert.ok(res.every((r) => r.status === 200));
    // long enough for an exponential backoff to have grown to several seconds
    await new Promise((r) => setTimeout(r, 8000));
    const failures = await metric(gw, 'tollgate_usage_ship_failures_total');
    own2 = await startControl({ dbUrl: own.dbUrl, env: CP_ENV, args: ['--listen', `127.0.0.1:${port}`] });
    const t0 = Date.now();
    await waitFor(async () => (await rowsOf(own.dbUrl, k.id)).length >= 21, 10000, 'the events after the restart');
    const took = Date.now() - t0;
    console.log(`# shipped ${took} ms after the control plane came back (${failures} failed tries while away)`);
    assert.ok(took < 1500, `shipping resumed after ${took} ms`);
  } finally {
    await gw.stop();
    if (own2) await own2.stop();
  }
});

test('the data plane killed under load: after a restart on the same state dir every spooled event is in Postgres once', async () => {
  const k = await newKey(cp, world, 'dp-kill');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  const gw1 = await startDP(cp, { stateDir });
  await waitFor(async () => (await chat(gw1, k.key)).status === 200, 5000, 'the key to work');
  // a first part, known to be in the spool (the loops hand their records over within ~100 ms)
  const first = await load(gw1, k.key, 100);
  await waitFor(async () => (await metric(gw1, 'tollgate_usage_written_events_total')) === 101, 5000, 'the first part spooled');
  const res = await load(gw1, k.key, 200, { onDone: (n) => {
    if (n === 100) gw1.proc.kill('SIGKILL');
  } });
  await gw1.stop();
  const answered = res.filter((r) => r.status === 200).length;
  const events = spoolEvents(stateDir);
  const ids = [...new Set(events.map((e) => e.id))];
  assert.equal(ids.length, events.length, 'no event twice in the spool');
  const spooledRids = new Set(events.map((e) => e.request_id));
  for (const r of first) assert.ok(spooledRids.has(r.rid), `request ${r.rid} is in the spool`);
  const before = (await rowsOf(cp.dbUrl, k.id)).length;
  console.log(`# ${answered} of the second part answered before the kill; ${ids.length} events in the spool, ${before} in Postgres`);
  // plus what the loops recorded in their journals and had not handed to the writer yet
  for (const e of journalEvents(stateDir)) if (!ids.includes(e.id)) ids.push(e.id);
  const gw2 = await startDP(cp, { stateDir });
  try {
    const rows = await waitFor(async () => {
      const r = await rowsOf(cp.dbUrl, k.id);
      return r.length >= ids.length && r;
    }, 15000, 'the spooled events to arrive');
    assert.equal(rows.length, ids.length, 'every spooled or journaled event, none doubled, nothing else');
    const got = new Set(rows.map((r) => r.id));
    for (const id of ids) assert.ok(got.has(id), `event ${id} is in Postgres`);
    assert.match(gw2.logs(), /event=spool_opened .*backlog_events=\d+/);
    await waitFor(async () => (await metric(gw2, 'tollgate_usage_spooled_events')) === 0, 5000, 'nothing pending');
    // once acknowledged, the old run's segment is deleted
    await waitFor(() => spoolEvents(stateDir).length === 0, 5000, 'the finished segment to be deleted');
  } finally {
    await gw2.stop();
  }
});

test('kill -9 at random moments under load, again and again: every answered request has exactly one row', async () => {
  const k = await newKey(cp, world, 'kill-loop');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  const answered = []; // request ids of every 2xx the client received
  const RUNS = 6;
  for (let run = 0; run < RUNS; run++) {
    const gw = await startDP(cp, { stateDir });
    await waitFor(async () => {
      const r = await chat(gw, k.key);
      if (r.status === 200) answered.push(r.rid);
      return r.status === 200;
    }, 5000, 'the key to work');
    // the kill lands anywhere in the load, often within the loops' hand-over interval
    const killAfter = 20 + Math.floor(Math.random() * 150);
    let n = 0;
    const res = await load(gw, k.key, 400, { concurrency: 8, onDone: () => {
      if (++n === killAfter) gw.proc.kill('SIGKILL');
    } });
    await gw.stop();
    for (const r of res) if (r.status === 200) answered.push(r.rid);
  }
  // a last start sends what the killed runs left behind
  const gw = await startDP(cp, { stateDir });
  try {
    // The spool gauge may read 0 before the shipper has counted what the start recovered (a
    // loaded run once read the rows then and found a third of them): wait for the rows too, and
    // let the assertions below say what is missing if they never come.
    const answeredSet = new Set(answered);
    await waitFor(async () => (await metric(gw, 'tollgate_usage_spooled_events')) === 0
      && (await rowsOf(cp.dbUrl, k.id)).filter((r) => answeredSet.has(r.rid)).length >= answeredSet.size,
    15000, 'the spool to drain').catch(() => {});
    const rows = await rowsOf(cp.dbUrl, k.id);
    const per = new Map();
    for (const r of rows) per.set(r.rid, (per.get(r.rid) || 0) + 1);
    const missing = answered.filter((rid) => !per.has(rid));
    const doubled = [...per].filter(([, c]) => c > 1);
    console.log(`# ${RUNS} kills, ${answered.length} answers, ${rows.length} rows; missing ${missing.length}, doubled ${doubled.length}`);
    assert.deepEqual(missing, [], 'every answer the client received has its row');
    assert.deepEqual(doubled, [], 'no request has two rows');
    assert.equal(new Set(answered).size, answered.length);
  } finally {
    await gw.stop();
  }
});

test('SIGTERM delivers what was recorded before the process exits', async () => {
  const k = await newKey(cp, world, 'sigterm');
  const gw = await startDP(cp);
  await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the key to work');
  const res = await load(gw, k.key, 40);
  assert.ok(res.every((r) => r.status === 200));
  const t0 = Date.now();
  const e = await gw.stop('SIGTERM');
  assert.equal(e.code, 0);
  // no waiting: the rows are there when the process is gone
  assert.equal((await rowsOf(cp.dbUrl, k.id)).length, 41);
  console.log(`# stopped in ${Date.now() - t0} ms`);
  assert.match(gw.logs(), /event=shipper_stopped shipped=\d+ left_in_spool=0/);
});

test('SIGTERM with the control plane unreachable keeps the events; the next start sends them', async () => {
  const k = await newKey(cp, world, 'later');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  const gw1 = await startDP(cp, { stateDir });
  await waitFor(async () => (await chat(gw1, k.key)).status === 200, 5000, 'the key to work');
  await gw1.stop();
  // the state snapshot serves; nothing listens on port 1
  const gw2 = await startGateway({ args: ['--control-url', 'http://127.0.0.1:1'], env: DP_ENV, stateDir });
  const res = await load(gw2, k.key, 20);
  assert.ok(res.every((r) => r.status === 200));
  const t0 = Date.now();
  await gw2.stop();
  assert.ok(Date.now() - t0 < 6000, 'the last try is bounded');
  assert.match(gw2.logs(), /event=shipper_stopped shipped=0 left_in_spool=20/);
  assert.equal(spoolEvents(stateDir).length, 20);
  const gw3 = await startDP(cp, { stateDir });
  try {
    await waitFor(async () => (await rowsOf(cp.dbUrl, k.id)).length === 21, 10000, 'the spooled events to arrive');
  } finally {
    await gw3.stop();
  }
});

test('two data planes cannot share one spool', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  const gw1 = await startDP(cp, { stateDir });
  try {
    await assert.rejects(startDP(cp, { stateDir }), /cannot lock the spool .*another tollgate-data uses this state dir/);
  } finally {
    await gw1.stop();
  }
});

test('a spool left by an earlier run is replayed: invalid events are rejected and logged, a torn last line is skipped', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  mkdirSync(path.join(stateDir, 'spool'));
  const ev = (id) => JSON.stringify({ id, ts: new Date().toISOString(), request_id: 'r-old', key_id: null, tenant_id: null,
    model: 'gpt-4o-mini', provider: null, upstream_model: null, endpoint: null, status: 401, streamed: false,
    prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0, total_tokens: 0,
    usage_source: 'none', cost_usd: 0, latency_ms: 0.5, ttfb_ms: null, error: 'invalid_api_key' });
  const good = [randomUUID(), randomUUID()];
  const bad = 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz';
  writeFileSync(path.join(stateDir, 'spool', 'usage-00000000000000000003.ndjson'),
    `${ev(good[0])}\n${ev(bad)}\n${ev(good[1])}\n${ev(randomUUID()).slice(0, 60)}`);
  const gw = await startDP(cp, { stateDir });
  try {
    await waitFor(async () => Number(await sql(cp.dbUrl,
      `SELECT count(*) FROM usage_events WHERE id IN ('${good[0]}', '${good[1]}')`)) === 2, 10000, 'the replayed events');
    await waitFor(() => /event=event_rejected id=zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz line=2 message="id is not a UUID"/.test(gw.logs()),
      5000, 'the rejection to be logged');
    await waitFor(() => /event=spool_garbage_skipped seq=3 .*reason="a line cut short by a crash"/.test(gw.logs()),
      5000, 'the torn line to be skipped');
    assert.match(gw.logs(), /event=spool_opened .*backlog_events=3 /);
    await waitFor(() => !existsSync(path.join(stateDir, 'spool', 'usage-00000000000000000003.ndjson')), 5000,
      'the replayed segment to be deleted');
    assert.equal(await metric(gw, 'tollgate_usage_rejected_events_total'), 1);
    assert.equal(await metric(gw, 'tollgate_usage_spooled_events'), 0);
  } finally {
    await gw.stop();
  }
});

test('journals left by a killed run are recovered, also when the cursor is past every segment; a torn record is not sent', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-spool-'));
  mkdirSync(path.join(stateDir, 'spool'));
  const ev = (id) => JSON.stringify({ id, ts: new Date().toISOString(), request_id: 'r-journal', key_id: null,
    tenant_id: null, model: 'gpt-4o-mini', provider: null, upstream_model: null, endpoint: null, status: 401,
    streamed: false, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0, total_tokens: 0,
    usage_source: 'none', cost_usd: 0, latency_ms: 0.5, ttfb_ms: null, error: 'invalid_api_key' });
  const ids = [randomUUID(), randomUUID(), randomUUID()];
  // what a run killed right after its shipper moved the cursor to a segment its writer had not
  // made yet leaves: a cursor past every segment, and records only in a journal. The first
  // record was handed over already (persisted); the last one is torn (the kill hit the copy).
  writeFileSync(path.join(stateDir, 'spool', 'cursor'), '7 0\n');
  const CAP = 1 << 20;
  const b = Buffer.alloc(4096 + CAP);
  b.writeBigUInt64LE(0x314c4e524a475455n, 0);
  const first = Buffer.from(`${ev(ids[0])}\n`);
  const rest = Buffer.from(`${ev(ids[1])}\n${ev(ids[2])}\n${ev(randomUUID()).slice(0, 50)}`);
  first.copy(b, 4096);
  rest.copy(b, 4096 + first.length);
  b.writeBigUInt64LE(BigInt(first.length + rest.length), 8); // written
  b.writeBigUInt64LE(BigInt(first.length), 16); // persisted
  writeFileSync(path.join(stateDir, 'spool', 'journal-0'), b);
  const gw = await startDP(cp, { stateDir });
  try {
    assert.match(gw.logs(), /event=journal_recovered events=2 seq=8 /);
    await waitFor(async () => Number(await sql(cp.dbUrl,
      `SELECT count(*) FROM usage_events WHERE id IN ('${ids[1]}', '${ids[2]}')`)) === 2, 10000, 'the journaled events');
    assert.equal(Number(await sql(cp.dbUrl, `SELECT count(*) FROM usage_events WHERE id = '${ids[0]}'`)), 0,
      'a record the writer already had is not taken from the journal');
    assert.equal(Number(await sql(cp.dbUrl, `SELECT count(*) FROM usage_events WHERE request_id = 'r-journal'`)), 2);
  } finally {
    await gw.stop();
  }
});
