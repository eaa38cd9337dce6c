// responses_metrics.test.mjs: the stored-response store of a data plane with a control plane
// (docs/responses.md, "State" and "Metrics"): its /metrics counters move as records are shipped,
// spooled through an outage, resent, refused as too large and fetched; the spool is private
// (directory 0700, files 0600, a looser directory made private at start); and
// --responses-cache-ttl-s bounds how long a deletion made through another data plane can be
// missed by a follow-up. Real tollgate-control and two tollgate-data reaching it through a proxy
// that can fail the store's calls, the OpenAI mock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, statSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, waitFor } from './lib/harness.mjs';
import { startControl, startControlProxy } from './lib/control.mjs';

const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };

let openai, cp, dp1, dp2, admin, key, proxy, dp2State;
// what the proxy answers the store's calls (/dp/v1/responses*, /dp/v1/response-items*):
// 0 passes them on, else this status
let storeStatus = 0;

async function req(gw, method, p, body) {
  const res = await fetch(gw.url + p, {
    method, headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: res.status, body: json, text };
}

async function metrics(gw) {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^(tollgate_responses_[a-z_]+) (-?\d+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// The change of every counter between two scrapes (gauges as they are now).
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, k.endsWith('_depth') ? b[k] : b[k] - (a[k] ?? 0)]));

before(async () => {
  openai = await startOpenAIMock();
  cp = await startControl({ env: CP_ENV });
  admin = await cp.login();
  const tenant = await cp.makeTenant(admin, 'acme');
  const p = await cp.api('POST', '/api/v1/providers', { token: admin,
    body: { name: 'oai', kind: 'openai', base_url: openai.url, credentials: { api_key: 'sk-upstream-test' } } });
  assert.equal(p.status, 201, p.text);
  const r = await cp.api('POST', '/api/v1/routes', { token: admin,
    body: { alias: 'gpt', targets: [{ provider_id: p.body.id, model: 'gpt-4o-mini' }], retry: { max_attempts: 1 } } });
  assert.equal(r.status, 201, r.text);
  const k = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name: 'k', models: ['gpt'] } });
  assert.equal(k.status, 201, k.text);
  key = k.body;
  proxy = await startControlProxy(cp.url, (req, res) => {
    if (storeStatus && /^\/dp\/v1\/(responses|response-items)/.test(req.url)) {
      res.writeHead(storeStatus, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"failed by the test"}}');
      return true;
    }
    return false;
  });
  // dp1 trusts a cached record 1 s; dp2 starts on a spool directory someone made readable by all
  dp1 = await startGateway({ args: ['--control-url', proxy.url, '--responses-cache-ttl-s', '1'], env: DP_ENV, workers: 1 });
  dp2State = mkdtempSync(path.join(tmpdir(), 'tollgate-rmetrics-'));
  mkdirSync(path.join(dp2State, 'responses'), { mode: 0o755 });
  dp2 = await startGateway({ args: ['--control-url', proxy.url], env: DP_ENV, workers: 1, stateDir: dp2State });
  for (const gw of [dp1, dp2]) {
    await waitFor(async () => (await req(gw, 'GET', '/v1/responses/resp_x')).status === 404, 10000, 'the key to reach the data plane');
  }
});

after(async () => {
  storeStatus = 0;
  for (const gw of [dp1, dp2]) {
    if (gw) assert.equal((await gw.stop()).code, 0);
  }
  await cp?.stop();
  await proxy?.close();
  await openai?.close();
  if (dp2State) rmSync(dp2State, { recursive: true, force: true });
});

test('metrics_count_shipped_records_fetches_and_cache_hits', async () => {
  const a0 = await metrics(dp1);
  const b0 = await metrics(dp2);
  const r = await req(dp1, 'POST', '/v1/responses', { model: 'gpt', input: 'count me' });
  assert.equal(r.status, 200, r.text);
  const a1 = await metrics(dp1);
  assert.deepEqual(delta(a0, a1), { ...delta(a0, a0), tollgate_responses_stored_total: 1 });
  // dp2 does not hold it: one miss, one fetch; then it is cached there: one hit
  for (let i = 0; i < 2; i++) {
    const f = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', input: 'next', previous_response_id: r.body.id, store: false });
    assert.equal(f.status, 200, f.text);
  }
  const d = delta(b0, await metrics(dp2));
  assert.equal(d.tollgate_responses_cache_misses_total, 1);
  assert.equal(d.tollgate_responses_fetches_total, 1);
  assert.equal(d.tollgate_responses_cache_hits_total, 1);
  assert.equal(d.tollgate_responses_fetch_failures_total, 0);
  assert.equal(d.tollgate_responses_stored_total, 0); // store: false
  // a fetch the control plane cannot answer
  storeStatus = 503;
  try {
    const u = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', input: 'x', previous_response_id: 'resp_unknown1' });
    assert.equal(u.status, 503, u.text);
  } finally { storeStatus = 0; }
  const d2 = delta(b0, await metrics(dp2));
  assert.equal(d2.tollgate_responses_fetches_total, 2);
  assert.equal(d2.tollgate_responses_fetch_failures_total, 1);
});

test('metrics_follow_a_record_through_the_spool_and_the_spool_is_private', async () => {
  const a0 = await metrics(dp1);
  storeStatus = 503;
  let id;
  try {
    const r = await req(dp1, 'POST', '/v1/responses', { model: 'gpt', input: 'spool me' });
    assert.equal(r.status, 200, r.text);
    id = r.body.id;
    const d = delta(a0, await metrics(dp1));
    assert.equal(d.tollgate_responses_spooled_total, 1);
    assert.equal(d.tollgate_responses_spool_depth, 1);
    assert.ok(d.tollgate_responses_ship_failures_total >= 1, JSON.stringify(d));
    assert.equal(d.tollgate_responses_stored_total, 0);
    // prompts and answers in the clear: only the data plane's user may read them
    const dir = path.join(dp1.stateDir, 'responses');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    assert.equal(statSync(path.join(dir, files[0])).mode & 0o777, 0o600);
  } finally { storeStatus = 0; }
  // resent once the control plane takes it again
  const d = await waitFor(async () => {
    const x = delta(a0, await metrics(dp1));
    return x.tollgate_responses_spool_depth === 0 ? x : null;
  }, 15000, 'the spool to drain');
  assert.equal(d.tollgate_responses_stored_total, 1);
  assert.equal(d.tollgate_responses_dropped_total, 0);
  assert.equal(cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id}'`), '1');
});

test('a_record_the_control_plane_refuses_as_too_large_is_counted_as_dropped', async () => {
  const a0 = await metrics(dp1);
  storeStatus = 413;
  try {
    const r = await req(dp1, 'POST', '/v1/responses', { model: 'gpt', input: 'too large' });
    assert.equal(r.status, 200, r.text);
    await waitFor(async () => delta(a0, await metrics(dp1)).tollgate_responses_dropped_total === 1, 15000, 'the drop');
  } finally { storeStatus = 0; }
  const d = delta(a0, await metrics(dp1));
  assert.equal(d.tollgate_responses_spool_depth, 0);
  assert.equal(d.tollgate_responses_stored_total, 0);
});

test('a_spool_directory_readable_by_others_is_made_private_at_start', async () => {
  assert.equal(statSync(path.join(dp2State, 'responses')).mode & 0o777, 0o700);
  assert.match(dp2.logs(), /event=spool_made_private .*mode_was=755/);
  assert.ok(existsSync(path.join(dp2State, 'responses')));
});

test('responses_cache_ttl_s_bounds_a_deletion_made_through_another_data_plane', async () => {
  const r = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', input: 'delete me elsewhere' });
  assert.equal(r.status, 200, r.text);
  const id = r.body.id;
  const next = { model: 'gpt', input: 'next', previous_response_id: id, store: false };
  assert.equal((await req(dp1, 'POST', '/v1/responses', next)).status, 200); // now cached on dp1
  assert.equal((await req(dp2, 'DELETE', `/v1/responses/${id}`)).status, 200);
  // a follow-up on dp1 may use its cached copy for at most --responses-cache-ttl-s (1 s here)
  await new Promise((res) => setTimeout(res, 1100));
  const f = await req(dp1, 'POST', '/v1/responses', next);
  assert.equal(f.status, 400, f.text);
  assert.equal(f.body.error.code, 'previous_response_not_found');
});

test('an_item_fetched_by_reference_does_not_make_its_id_a_response_id', async () => {
  const r = await req(dp1, 'POST', '/v1/responses', { model: 'gpt', input: 'refer to me' });
  assert.equal(r.status, 200, r.text);
  const msg = r.body.output.find((o) => o.type === 'message');
  // dp2 fetches the record by the item's id and caches it...
  const f = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', store: false,
    input: [{ type: 'item_reference', id: msg.id }, { role: 'user', content: 'and then' }] });
  assert.equal(f.status, 200, f.text);
  // ...under the response's id, never under the item's
  const p = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', input: 'x', previous_response_id: msg.id, store: false });
  assert.equal(p.status, 400, p.text);
  assert.equal(p.body.error.code, 'previous_response_not_found');
  const g = await req(dp2, 'POST', '/v1/responses', { model: 'gpt', input: 'x', previous_response_id: r.body.id, store: false });
  assert.equal(g.status, 200, g.text);
});

test('a GET that finds a response deleted elsewhere drops this data plane\'s cached copy', async () => {
  const r = await req(dp1, 'POST', '/v1/responses', { model: 'gpt', input: 'deleted, then looked at' });
  assert.equal(r.status, 200, r.text);
  const id = r.body.id;
  const next = { model: 'gpt', input: 'next', previous_response_id: id, store: false };
  assert.equal((await req(dp2, 'POST', '/v1/responses', next)).status, 200); // cached on dp2 (600 s)
  assert.equal((await req(dp1, 'DELETE', `/v1/responses/${id}`)).status, 200);
  assert.equal((await req(dp2, 'GET', `/v1/responses/${id}`)).status, 404);
  const f = await req(dp2, 'POST', '/v1/responses', next);
  assert.equal(f.status, 400, f.text);
  assert.equal(f.body.error.code, 'previous_response_not_found');
});
