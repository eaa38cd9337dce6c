// responses_workers.test.mjs: stored responses on a data plane run from a snapshot file alone (no
// control plane) with several workers (docs/responses.md, "State"): a follow-up by
// previous_response_id or item_reference, GET, input_items and DELETE find the response whichever
// worker the connection lands on, because the store thread keeps a process-wide store that a
// worker asks (off its loop) for what its own cache does not hold. Each request goes on a new
// connection, so the kernel spreads them over the workers; the cache-miss counter of /metrics
// shows that some did land on a worker that had not made the response. Also the store's metrics
// in this mode. Real tollgate-data, the OpenAI mock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, sha256hex } from './lib/harness.mjs';

const KEY = 'tg-rworkers-key';
const OTHER = 'tg-rworkers-other';
let mock, gw;

before(async () => {
  mock = await startOpenAIMock();
  const snap = makeSnapshot({ mockUrl: mock.url, keys: [] });
  snap.tenants.push({ id: 't-other', name: 'other' });
  snap.keys = [
    { id: 'k1', tenant: 't-acme', sha256: sha256hex(KEY), models: ['gpt-4o-mini'] },
    { id: 'k2', tenant: 't-other', sha256: sha256hex(OTHER), models: ['gpt-4o-mini'] },
  ];
  gw = await startGateway({ snapshot: snap, workers: 3 });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await mock.close();
});

// One request on a connection of its own (no keep-alive pool), so that it may land on any worker.
function call(method, p, body, key = KEY) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : JSON.stringify(body);
    const req = http.request(`${gw.url}${p}`, {
      method, agent: false,
      headers: { authorization: `Bearer ${key}`, connection: 'close',
        ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch { json = null; }
        resolve({ status: res.statusCode, body: json, text });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function metrics() {
  const text = (await call('GET', '/metrics')).text;
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(tollgate_responses_[a-z_]+) (\d+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

const N = 12;

test('follow_ups_find_the_response_on_every_worker_in_snapshot_mode', async () => {
  const m0 = await metrics();
  const firsts = [];
  for (let i = 0; i < N; i++) {
    const r = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: `first turn ${i}` });
    assert.equal(r.status, 200, r.text);
    firsts.push(r.body);
  }
  for (let i = 0; i < N; i++) {
    const r = await call('POST', '/v1/responses',
      { model: 'gpt-4o-mini', input: `second turn ${i}`, previous_response_id: firsts[i].id });
    assert.equal(r.status, 200, `follow-up ${i}: ${r.text}`);
    // the provider got the first turn in front of the second
    const sent = JSON.stringify(mock.requests.at(-1).body);
    assert.ok(sent.includes(`first turn ${i}`) && sent.includes(`second turn ${i}`), sent);
    const g = await call('GET', `/v1/responses/${firsts[i].id}`);
    assert.equal(g.status, 200, g.text);
    assert.equal(g.body.id, firsts[i].id);
    const items = await call('GET', `/v1/responses/${firsts[i].id}/input_items`);
    assert.equal(items.status, 200, items.text);
    assert.equal(items.body.data[0].content[0].text, `first turn ${i}`);
  }
  // an item of a stored response, by item_reference, from any worker
  for (let i = 0; i < N; i++) {
    const msg = firsts[i].output.find((o) => o.type === 'message');
    const r = await call('POST', '/v1/responses', { model: 'gpt-4o-mini',
      input: [{ type: 'item_reference', id: msg.id }, { role: 'user', content: `ref turn ${i}` }] });
    assert.equal(r.status, 200, `reference ${i}: ${r.text}`);
  }
  const m1 = await metrics();
  // some of those landed on a worker that did not make the response, and its cache missed
  assert.ok(m1.tollgate_responses_cache_misses_total - (m0.tollgate_responses_cache_misses_total ?? 0) > 0,
    JSON.stringify(m1));
  assert.ok(m1.tollgate_responses_cache_hits_total > (m0.tollgate_responses_cache_hits_total ?? 0), JSON.stringify(m1));
  // every first turn, follow-up and reference turn was stored in the process's store
  assert.equal(m1.tollgate_responses_stored_total - (m0.tollgate_responses_stored_total ?? 0), 3 * N);
  assert.ok(m1.tollgate_responses_fetches_total > (m0.tollgate_responses_fetches_total ?? 0));
  assert.equal(m1.tollgate_responses_fetch_failures_total, 0);
  assert.equal(m1.tollgate_responses_spool_depth, 0); // no spool without a control plane
});

test('another_tenant_and_a_deletion_answer_404_on_every_worker', async () => {
  const r = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'to delete' });
  assert.equal(r.status, 200, r.text);
  const id = r.body.id;
  for (let i = 0; i < 6; i++) {
    const o = await call('GET', `/v1/responses/${id}`, undefined, OTHER);
    assert.equal(o.status, 404, o.text);
    const f = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'x', previous_response_id: id }, OTHER);
    assert.equal(f.status, 400, f.text);
  }
  // warm every worker's cache with it, then delete through one
  for (let i = 0; i < 6; i++) assert.equal((await call('GET', `/v1/responses/${id}`)).status, 200);
  const d = await call('DELETE', `/v1/responses/${id}`);
  assert.equal(d.status, 200, d.text);
  assert.deepEqual(d.body, { id, object: 'response.deleted', deleted: true });
  for (let i = 0; i < 8; i++) {
    const g = await call('GET', `/v1/responses/${id}`);
    assert.equal(g.status, 404, `after delete ${i}: ${g.text}`);
    const f = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'x', previous_response_id: id });
    assert.equal(f.status, 400, f.text);
    assert.equal(f.body.error.code, 'previous_response_not_found');
  }
  assert.equal((await call('DELETE', `/v1/responses/${id}`)).status, 404);
});

test('store_false_is_not_kept_anywhere', async () => {
  const m0 = await metrics();
  const r = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'not kept', store: false });
  assert.equal(r.status, 200, r.text);
  for (let i = 0; i < 6; i++) assert.equal((await call('GET', `/v1/responses/${r.body.id}`)).status, 404);
  const m1 = await metrics();
  assert.equal(typeof m0.tollgate_responses_stored_total, 'number');
  assert.equal(m1.tollgate_responses_stored_total, m0.tollgate_responses_stored_total);
});
