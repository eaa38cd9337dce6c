// lifecycle.test.mjs: tollgate-data's process lifecycle over real signals: SIGHUP snapshot
// reloads (under load, refused ones, revoked keys), SIGTERM drains (in-flight requests finish,
// the listener closes, usage is flushed, a deadline bounds it), SIGKILL with a usage file (the
// loops' journals) and starting without a snapshot.
// Each test that changes gateway state runs its own gateway; the two provider mocks are shared
// and reset before every test.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, readSSE, waitFor, tryConnect, within } from './lib/harness.mjs';

const KEY = 'tg-test-key';
let mockA;
let mockB;

before(async () => {
  mockA = await startOpenAIMock();
  mockB = await startOpenAIMock();
});

after(async () => {
  await mockA.close();
  await mockB.close();
});

beforeEach(() => {
  mockA.reset();
  mockB.reset();
});

// `gpt-4o-mini` goes to provider `target` ('a' or 'b'), as upstream model `model-<target>`: the
// mock echoes the upstream model, so every answer tells which provider served it.
function snapFor(version, target, { keys, onlyTarget = false } = {}) {
  const all = [
    { id: 'a', kind: 'openai', base_url: mockA.url, api_key: 'sk-upstream-test' },
    { id: 'b', kind: 'openai', base_url: mockB.url, api_key: 'sk-upstream-test' },
  ];
  const prices = [
    { provider: 'a', model: 'model-a', input_per_mtok: 1, output_per_mtok: 2 },
    { provider: 'b', model: 'model-b', input_per_mtok: 10, output_per_mtok: 20 },
  ];
  return makeSnapshot({
    version,
    keys: keys || { [KEY]: { models: ['gpt-4o-mini'] } },
    providers: onlyTarget ? all.filter((p) => p.id === target) : all,
    prices: onlyTarget ? prices.filter((p) => p.provider === target) : prices,
    routes: [{ alias: 'gpt-4o-mini', targets: [{ provider: target, model: `model-${target}` }] }],
  });
}

function chat(gw, content, { key = KEY, stream = false, signal } = {}) {
  return fetch(gw.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(chatBody(content, stream ? { stream: true } : {})),
    signal: signal || AbortSignal.timeout(10_000),
  });
}

// One complete exchange: {status, model, text, done} (done: the stream ended with [DONE]).
async function exchange(gw, content, opts = {}) {
  const r = await chat(gw, content, opts);
  if (r.status !== 200) return { status: r.status, body: await r.text() };
  if (!opts.stream) {
    const j = await r.json();
    return { status: 200, model: j.model, text: j.choices[0].message.content, done: true, rid: r.headers.get('x-request-id') };
  }
  const events = await readSSE(r);
  const done = events.at(-1) === '[DONE]';
  const chunks = (done ? events.slice(0, -1) : events).map((e) => JSON.parse(e));
  return {
    status: 200,
    model: chunks[0]?.model,
    models: new Set(chunks.map((c) => c.model)),
    text: chunks.map((c) => c.choices?.[0]?.delta?.content || '').join(''),
    done,
    rid: r.headers.get('x-request-id'),
  };
}

async function readyVersion(gw) {
  const r = await fetch(gw.url + '/readyz', { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200);
  return (await r.json()).snapshot_version;
}

// Writes raw file content (need not be JSON) and SIGHUPs; resolves 'loaded' or 'refused'.
async function reloadRaw(gw, text) {
  const before = gw.logs().length;
  writeFileSync(gw.snapPath, text);
  gw.proc.kill('SIGHUP');
  return waitFor(() => {
    const tail = gw.logs().slice(before);
    if (/event=reload_refused/.test(tail)) return 'refused';
    if (/event=snapshot_loaded/.test(tail)) return 'loaded';
    return null;
  }, 5000, 'the reload outcome');
}

test('SIGHUP reloads under load lose no request and switch the route', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a') });
  try {
    const results = [];
    let stop = false;
    const loop = async (id) => {
      for (let i = 0; !stop; i++) {
        const stream = (i + id) % 2 === 1;
        // streams dribble, so reloads land while some are mid-body
        const content = stream ? `load ${id}.${i} mock:words=4 mock:chunk_delay_ms=15` : `load ${id}.${i} mock:words=3`;
        try {
          results.push({ stream, ...(await exchange(gw, content, { stream })) });
        } catch (e) {
          results.push({ stream, status: 0, error: String(e.cause?.code || e) });
        }
      }
    };
    const loops = Array.from({ length: 8 }, (_, id) => loop(id));
    const targets = ['b', 'a', 'b'];
    try {
      for (let v = 2; v <= 4; v++) {
        const mark = results.length;
        await waitFor(() => results.length >= mark + 40, 8000, 'load between reloads');
        assert.equal(await gw.reload(snapFor(v, targets[v - 2])), 'loaded');
      }
      const mark = results.length;
      await waitFor(() => results.length >= mark + 40, 8000, 'load after the last reload');
    } finally {
      stop = true;
      await Promise.all(loops);
    }

    const bad = results.filter((r) => r.status !== 200 || !r.done);
    assert.deepEqual(bad, [], 'every request under reloads succeeds');
    for (const r of results) {
      assert.equal(r.text, r.stream ? 'w1 w2 w3 w4' : 'w1 w2 w3');
      assert.ok(r.model === 'model-a' || r.model === 'model-b', r.model);
      if (r.stream) assert.equal(r.models.size, 1, 'a stream is served by one provider');
    }
    assert.ok(results.length >= 160, `${results.length} requests`);
    assert.ok(results.some((r) => r.stream) && results.some((r) => !r.stream));
    assert.ok(results.some((r) => r.model === 'model-a') && results.some((r) => r.model === 'model-b'),
      'both snapshots served traffic');

    // after the last reload, new requests (on new and reused connections) go to b only
    mockA.reset();
    mockB.reset();
    const after = await Promise.all(Array.from({ length: 16 }, (_, i) => exchange(gw, `after ${i}`, { stream: i % 2 === 1 })));
    for (const r of after) {
      assert.equal(r.status, 200);
      assert.equal(r.model, 'model-b');
    }
    assert.equal(mockA.stats().requests, 0, 'nothing reaches the provider of the old route');
    assert.equal(mockB.stats().requests, 16);
    for (let i = 0; i < 4; i++) assert.equal(await readyVersion(gw), 4);
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0);
  }
});

test('a request that started before a reload finishes on the old snapshot', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a') });
  try {
    const slow = exchange(gw, 'slow mock:delay_ms=400 mock:words=2');
    await waitFor(() => mockA.stats().active === 1, 3000, 'the slow request to reach provider a');
    // the new snapshot drops provider a and its price altogether
    assert.equal(await gw.reload(snapFor(2, 'b', { onlyTarget: true })), 'loaded');
    const fresh = await exchange(gw, 'fresh mock:words=2');
    assert.equal(fresh.status, 200);
    assert.equal(fresh.model, 'model-b');
    assert.equal(mockA.stats().active, 1, 'the slow request is still in flight after the reload');

    const old = await slow;
    assert.equal(old.status, 200);
    assert.equal(old.model, 'model-a');
    assert.equal(old.text, 'w1 w2');
    // its usage record is attributed and priced with the old snapshot's provider and prices
    const u = await gw.waitUsage((us) => us.some((x) => x.request_id === old.rid) && us.some((x) => x.request_id === fresh.rid));
    const rec = u.find((x) => x.request_id === old.rid);
    assert.equal(rec.provider, 'a');
    assert.equal(rec.upstream_model, 'model-a');
    const want = (rec.prompt_tokens * 1 + rec.completion_tokens * 2) / 1e6;
    assert.ok(Math.abs(rec.cost_usd - want) < 1e-12, `${rec.cost_usd} vs ${want}`);
    const recB = u.find((x) => x.request_id === fresh.rid);
    assert.equal(recB.provider, 'b');
    const wantB = (recB.prompt_tokens * 10 + recB.completion_tokens * 20) / 1e6;
    assert.ok(Math.abs(recB.cost_usd - wantB) < 1e-12, `${recB.cost_usd} vs ${wantB}`);
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0);
  }
});

test('an invalid snapshot is refused and the previous one keeps serving', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a') });
  try {
    const badKey = snapFor(2, 'b');
    badKey.keys[0].sha256 = 'not-a-sha256';
    const unknownProvider = snapFor(2, 'b');
    unknownProvider.routes[0].targets[0].provider = 'nope';
    const cases = [
      ['invalid JSON', '{"version": 2, "tenants": ['],
      ['not an object', '[]'],
      ['key with a bad sha256', JSON.stringify(badKey)],
      ['route to an unknown provider', JSON.stringify(unknownProvider)],
      ['empty file', ''],
    ];
    for (const [what, text] of cases) {
      assert.equal(await reloadRaw(gw, text), 'refused', what);
      const r = await exchange(gw, `after ${what}`);
      assert.equal(r.status, 200, what);
      assert.equal(r.model, 'model-a', `${what}: still routed by snapshot 1`);
      assert.equal(await readyVersion(gw), 1, what);
    }
    assert.equal(mockB.stats().requests, 0);
    // reloading still works after refusals
    assert.equal(await gw.reload(snapFor(2, 'b')), 'loaded');
    assert.equal((await exchange(gw, 'now b')).model, 'model-b');
    assert.equal(await readyVersion(gw), 2);
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0);
  }
});

test('a key removed by a reload gets 401 right after', async () => {
  const keys = { [KEY]: { models: ['gpt-4o-mini'] }, 'tg-doomed': { models: ['gpt-4o-mini'] } };
  const gw = await startGateway({ snapshot: snapFor(1, 'a', { keys }) });
  try {
    // warm keep-alive connections for both keys, so the check also covers reused connections
    const warm = await Promise.all([0, 1, 2, 3].map((i) => exchange(gw, `warm ${i}`, { key: i % 2 ? 'tg-doomed' : KEY })));
    assert.deepEqual(warm.map((r) => r.status), [200, 200, 200, 200]);

    assert.equal(await gw.reload(snapFor(2, 'a', { keys: { [KEY]: { models: ['gpt-4o-mini'] } } })), 'loaded');
    mockA.reset();
    const rs = await Promise.all(Array.from({ length: 6 }, () => chat(gw, 'revoked?', { key: 'tg-doomed' })));
    for (const r of rs) {
      assert.equal(r.status, 401);
      assert.equal((await r.json()).error.code, 'invalid_api_key');
    }
    assert.equal(mockA.stats().requests, 0, 'a revoked key reaches no provider');
    assert.equal((await exchange(gw, 'kept')).status, 200, 'the remaining key still works');
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0);
  }
});

test('SIGTERM drains: in-flight requests finish, new connections are refused, usage is flushed, exit 0', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a'), args: ['--drain-timeout-ms', '10000'] });
  let usage;
  try {
    const slowP = exchange(gw, 'drain slow mock:delay_ms=800 mock:words=3');
    const streamRes = await chat(gw, 'drain stream mock:chunk_delay_ms=100 mock:words=8', { stream: true });
    assert.equal(streamRes.status, 200);
    const streamP = readSSE(streamRes);
    await waitFor(() => mockA.stats().active === 2, 3000, 'both requests to be in flight upstream');

    gw.proc.kill('SIGTERM');
    await waitFor(() => /event=draining/.test(gw.logs()), 3000, 'the drain to begin');
    // the listeners close at once; the requests in flight are still running
    await waitFor(async () => (await tryConnect(gw.port)) === 'ECONNREFUSED', 2000, 'new connections to be refused');
    assert.equal(mockA.stats().active, 2, 'both requests still in flight while new connections are refused');
    assert.equal(gw.proc.exitCode, null, 'the process is still draining');

    const slow = await slowP;
    assert.equal(slow.status, 200);
    assert.equal(slow.text, 'w1 w2 w3');
    const events = await streamP;
    assert.equal(events.at(-1), '[DONE]');
    const text = events.slice(0, -1).map((e) => JSON.parse(e)).map((c) => c.choices[0]?.delta?.content || '').join('');
    assert.equal(text, 'w1 w2 w3 w4 w5 w6 w7 w8');

    const e = await within(gw.exited, 5000);
    assert.ok(e, 'the process exits once the drain is done');
    assert.deepEqual(e, { code: 0, signal: null });
    assert.equal(mockA.stats().completed, 2);
    assert.equal(mockA.stats().aborted, 0);
    usage = gw.usage();
    const streamRid = streamRes.headers.get('x-request-id');
    const recSlow = usage.find((x) => x.request_id === slow.rid);
    const recStream = usage.find((x) => x.request_id === streamRid);
    assert.ok(recSlow, 'usage of the slow request is in the file after exit');
    assert.ok(recStream, 'usage of the stream is in the file after exit');
    assert.equal(recSlow.status, 200);
    assert.equal(recSlow.completion_tokens, 3);
    assert.equal(recStream.streamed, true);
    assert.equal(recStream.completion_tokens, 8);
    assert.equal(recStream.usage_source, 'provider');
  } finally {
    await gw.stop();
  }
});

test('a SIGHUP, a second SIGTERM or a SIGINT during the drain does not cut it short', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a'), args: ['--drain-timeout-ms', '10000'] });
  try {
    const slowP = exchange(gw, 'drain slow mock:delay_ms=600 mock:words=2');
    await waitFor(() => mockA.stats().active === 1, 3000, 'the request to be in flight upstream');
    gw.proc.kill('SIGTERM');
    await waitFor(() => /event=draining/.test(gw.logs()), 3000, 'the drain to begin');
    for (const sig of ['SIGHUP', 'SIGTERM', 'SIGINT']) gw.proc.kill(sig);
    const slow = await slowP;
    assert.equal(slow.status, 200, 'the request in flight completes');
    assert.equal(slow.text, 'w1 w2');
    const e = await within(gw.exited, 5000);
    assert.deepEqual(e, { code: 0, signal: null });
    assert.ok(gw.usage().some((x) => x.request_id === slow.rid), 'its usage is flushed');
  } finally {
    await gw.stop();
  }
});

test('the drain deadline ends a stalled request and cancels its upstream transfer', async () => {
  const gw = await startGateway({ snapshot: snapFor(1, 'a'), args: ['--drain-timeout-ms', '300'] });
  try {
    const stalled = chat(gw, 'mock:stall').then((r) => r.text().then((body) => ({ status: r.status, body })), (err) => err);
    await waitFor(() => mockA.stats().active === 1, 3000, 'the stalled request to reach the provider');
    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    const e = await within(gw.exited, 5000);
    const took = Date.now() - t0;
    assert.ok(e, 'the process exits despite the stalled request');
    assert.deepEqual(e, { code: 0, signal: null });
    assert.ok(took >= 250, `the grace period is honoured (${took} ms)`);
    assert.ok(took < 3000, `exit within a bounded time (${took} ms)`);
    await waitFor(() => mockA.stats().aborted >= 1, 3000, 'the stalled upstream request to be cancelled');
    assert.equal(mockA.stats().active, 0);
    // the client is not left hanging: its connection is closed (or answered)
    const out = await within(stalled, 3000, 'hung');
    assert.notEqual(out, 'hung');
    assert.ok(out instanceof Error || out.status >= 500, String(out?.status ?? out));
    assert.match(gw.logs(), /event=drain_deadline/);
  } finally {
    await gw.stop();
  }
});

test('without a snapshot: /healthz 200, /readyz 503, API requests 503 in OpenAI shape', async () => {
  const gw = await startGateway({ snapshot: null });
  try {
    const h = await fetch(gw.url + '/healthz');
    assert.equal(h.status, 200);
    const ready = await fetch(gw.url + '/readyz');
    assert.equal(ready.status, 503);
    await ready.text();
    const r = await chat(gw, 'hi');
    assert.equal(r.status, 503);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const j = await r.json();
    assert.equal(typeof j.error.message, 'string');
    assert.ok(j.error.message.length > 10, j.error.message);
    assert.equal(typeof j.error.type, 'string');
    assert.ok('code' in j.error && 'param' in j.error, JSON.stringify(j));
    const m = await fetch(gw.url + '/v1/models', { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(m.status, 503);
    assert.ok((await m.json()).error);
    assert.equal(mockA.stats().requests + mockB.stats().requests, 0);
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0);
  }
});

// The usage file of a state dir, line by line (a torn last line is kept, as text).
function usageLines(stateDir) {
  let text = '';
  try { text = readFileSync(path.join(stateDir, 'usage.ndjson'), 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean);
}

test('without a control plane, kill -9 under load, again and again: every answered request has exactly one line in the usage file', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-usagefile-'));
  const answered = [];
  const RUNS = 4;
  try {
    for (let run = 0; run < RUNS; run++) {
      const gw = await startGateway({ snapshot: snapFor(1, 'a'), stateDir });
      // the kill lands anywhere in the load, often within the loops' 100 ms hand-over
      const killAfter = 20 + Math.floor(Math.random() * 120);
      let done = 0;
      let next = 0;
      const worker = async () => {
        while (next < 300) {
          next++;
          try {
            const r = await chat(gw, `kill ${run} ${next}`, { signal: AbortSignal.timeout(5000) });
            const rid = r.headers.get('x-request-id');
            await r.text();
            if (r.status === 200) answered.push(rid);
          } catch { /* the connection died with the process */ }
          if (++done === killAfter) gw.proc.kill('SIGKILL');
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      const e = await gw.stop();
      assert.equal(e.signal, 'SIGKILL', `run ${run} was killed`);
    }
    // a last start saves what the journals of the killed runs held; SIGTERM writes the rest
    const gw = await startGateway({ snapshot: snapFor(1, 'a'), stateDir });
    await gw.stop();
    const per = new Map();
    for (const l of usageLines(stateDir)) {
      const rid = JSON.parse(l).request_id;
      per.set(rid, (per.get(rid) || 0) + 1);
    }
    const missing = answered.filter((rid) => !per.has(rid));
    const doubled = [...per].filter(([, c]) => c > 1);
    console.log(`# ${RUNS} kills, ${answered.length} answers, ${per.size} records; missing ${missing.length}, doubled ${doubled.length}`);
    assert.ok(answered.length > RUNS * 20, 'requests were answered before each kill');
    assert.deepEqual(missing, [], 'every answer the client received has its line');
    assert.deepEqual(doubled, [], 'no request has two lines');
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a usage file: a killed run\'s journal is appended but for what the file holds; a torn line is cut', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-usagefile-'));
  const rec = (tag) => JSON.stringify({ id: randomUUID(), ts: new Date().toISOString(), request_id: tag, status: 200 });
  const [older, a, b, c] = ['r-older', 'r-a', 'r-b', 'r-c'].map(rec);
  // what a run killed while the writer was on batch [b] leaves: a was handed over (persisted),
  // b is in the file but its journal room not yet marked free, c only in the journal, a last
  // record torn in the journal (the kill hit the copy) and a write torn in the file
  writeFileSync(path.join(stateDir, 'usage.ndjson'), `${older}\n${a}\n${b}\n{"id":"torn-in-the-fi`);
  mkdirSync(path.join(stateDir, 'usage-journal'));
  const CAP = 1 << 20;
  const j = Buffer.alloc(4096 + CAP);
  j.writeBigUInt64LE(0x314c4e524a475455n, 0);
  const first = Buffer.from(`${a}\n`);
  const rest = Buffer.from(`${b}\n${c}\n${rec('r-torn').slice(0, 40)}`);
  first.copy(j, 4096);
  rest.copy(j, 4096 + first.length);
  j.writeBigUInt64LE(BigInt(first.length + rest.length), 8); // written
  j.writeBigUInt64LE(BigInt(first.length), 16); // persisted
  writeFileSync(path.join(stateDir, 'usage-journal', 'journal-0'), j);
  try {
    const gw = await startGateway({ snapshot: snapFor(1, 'a'), stateDir });
    try {
      assert.match(gw.logs(), /event=usage_file_torn_line_dropped bytes=21 /);
      assert.match(gw.logs(), /event=journal_recovered events=1 already_in_file=1 /);
      assert.deepEqual(usageLines(stateDir), [older, a, b, c], 'each record once, the torn ones gone');
      // a new record starts its own line
      assert.equal((await exchange(gw, 'after recovery')).status, 200);
    } finally {
      await gw.stop();
    }
    const lines = usageLines(stateDir);
    assert.equal(lines.length, 5);
    assert.equal(JSON.parse(lines[4]).status, 200);
    // a second run on the same state dir is refused: the journals are one process's
    const gw1 = await startGateway({ snapshot: snapFor(1, 'a'), stateDir });
    try {
      await assert.rejects(startGateway({ snapshot: snapFor(1, 'a'), stateDir }),
        /cannot lock the usage journal .*another tollgate-data uses this state dir/);
    } finally {
      await gw1.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
