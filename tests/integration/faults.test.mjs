// faults.test.mjs: the control plane and a linked data plane under load while things change or
// break: a route edited in the admin API moves live traffic within a second, and a Postgres
// restart is ridden out by both planes without a failed client request and without a hand
// on either process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
// short parked polls, so that a data plane notices a control plane without a database quickly
const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };
const CLIENTS = 8;

// Everything a test starts is stopped when it ends, last started first, even when it failed.
function cleanupList(t) {
  const list = [];
  t.after(async () => {
    while (list.length) {
      try { await list.pop()(); } catch (e) { console.error('# cleanup:', e); }
    }
  });
  return list;
}

// Async, so that the load keeps running while Postgres stops and starts.
const execFileP = promisify(execFile);
async function pgsh(...args) {
  const { stdout } = await execFileP(path.join(ROOT, 'scripts/lib/pg.sh'), args, { encoding: 'utf8' });
  return stdout.trim();
}

// A tenant, one provider per mock, a route to the first and a key, all through the admin API.
async function configure(cp, mocks) {
  const admin = await cp.login();
  const tenant = await cp.makeTenant(admin, 'faults');
  const providers = [];
  for (const [i, m] of mocks.entries()) {
    const p = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
      name: `mock-${i}`, kind: 'openai', base_url: m.url, credentials: { api_key: 'sk-upstream-test' } } });
    assert.equal(p.status, 201, p.text);
    providers.push(p.body);
  }
  const route = await cp.api('POST', '/api/v1/routes', { token: admin, body: {
    alias: 'gpt-4o-mini', targets: [{ provider_id: providers[0].id, model: 'gpt-4o-mini-2024-07-18' }] } });
  assert.equal(route.status, 201, route.text);
  const newKey = async (name) => {
    const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name, models: ['gpt-4o-mini'] } });
    assert.equal(r.status, 201, r.text);
    return r.body.key;
  };
  return { admin, tenant, providers, route: route.body, newKey };
}

// One admin API call on a connection of its own (fetch would reuse a pooled one, which always
// lands on the same control-plane worker thread). Resolves to the status.
function apiOnNewConnection(cp, method, p, token) {
  return new Promise((resolve, reject) => {
    const req = http.request(cp.url + p, { method, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end();
  });
}

function chat(gw, key) {
  return fetch(gw.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(chatBody('hi')),
  });
}

// CLIENTS loops of non-streamed chat completions, each on its own keep-alive connection. Every
// answer is recorded: when it was sent and answered, its status and the provider that served it.
function startLoad(gw, key) {
  const results = [];
  let stopping = false;
  const loop = async () => {
    while (!stopping) {
      const t0 = Date.now();
      try {
        const res = await chat(gw, key);
        const text = await res.text();
        results.push({ t0, t1: Date.now(), status: res.status, target: res.headers.get('x-tollgate-target'),
          text: res.status === 200 ? undefined : text.slice(0, 300) });
      } catch (e) {
        results.push({ t0, t1: Date.now(), status: 0, text: String(e.cause || e) });
      }
    }
  };
  const loops = Array.from({ length: CLIENTS }, loop);
  return {
    results,
    failed: () => results.filter((r) => r.status !== 200),
    async stop() { stopping = true; await Promise.all(loops); },
  };
}

function summary(failed) {
  return JSON.stringify(failed.slice(0, 5));
}

test('change a route, create and revoke a key -> each live in under 1 s under load', async (t) => {
  const cleanups = cleanupList(t);
  const [a, b] = [await startOpenAIMock(), await startOpenAIMock()];
  cleanups.push(() => a.close(), () => b.close());
  const cp = await startControl({ env: CP_ENV });
  cleanups.push(() => cp.stop());
  const cfg = await configure(cp, [a, b]);
  const [pa, pb] = cfg.providers;
  const key = await cfg.newKey('load');
  const gw = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV });
  cleanups.push(() => gw.stop());
  await waitFor(async () => (await chat(gw, key)).status === 200, 5000, 'the key to work on the data plane');
  a.reset();
  b.reset();

  const load = startLoad(gw, key);
  cleanups.push(() => load.stop());
  await waitFor(() => load.results.length >= 100, 10000, '100 answers from provider A');
  const patch = await cp.api('PATCH', `/api/v1/routes/${cfg.route.id}`, { token: cfg.admin, body: {
    targets: [{ provider_id: pb.id, model: 'gpt-4o-mini-2024-07-18' }] } });
  const tPatch = Date.now();
  assert.equal(patch.status, 200, patch.text);
  // keep the load on until well after the deadline: 100 answers sent later than 1 s after the PATCH
  await waitFor(() => load.results.filter((r) => r.t0 > tPatch + 1000).length >= 100, 15000,
    '100 answers sent more than 1 s after the PATCH');
  // still under load: a key made in the API is served within 1 s, and refused within 1 s of its
  // revocation
  const made = await cp.api('POST', `/api/v1/tenants/${cfg.tenant.id}/keys`, { token: cfg.admin,
    body: { name: 'under-load', models: ['gpt-4o-mini'] } });
  assert.equal(made.status, 201, made.text);
  const tMade = Date.now();
  let extraOnB = 0; // answers to these probes reach provider B too
  const probe = async () => {
    const st = (await chat(gw, made.body.key)).status;
    if (st === 200) extraOnB++;
    return st;
  };
  await waitFor(async () => (await probe()) === 200, 1000, 'the new key within 1 s');
  const liveMs = Date.now() - tMade;
  const rev = await cp.api('POST', `/api/v1/tenants/${cfg.tenant.id}/keys/${made.body.id}/revoke`, { token: cfg.admin });
  assert.equal(rev.status, 200, rev.text);
  const tRev = Date.now();
  await waitFor(async () => (await probe()) === 401, 1000, 'the revoked key refused within 1 s');
  console.log(`# under load: key live after ${liveMs} ms, revoked after ${Date.now() - tRev} ms`);
  await load.stop();

  const res = load.results;
  assert.deepEqual(load.failed(), [], `failed client requests: ${summary(load.failed())}`);
  assert.ok(res.every((r) => r.target === pa.id || r.target === pb.id), 'every answer names provider A or B');
  const lateA = res.filter((r) => r.target === pa.id && r.t0 > tPatch + 1000);
  assert.deepEqual(lateA, [], 'requests sent more than 1 s after the PATCH answer still went to A');
  // what the providers saw agrees with what the clients were told (no hidden retries)
  const onA = res.filter((r) => r.target === pa.id).length;
  const onB = res.filter((r) => r.target === pb.id).length;
  assert.ok(onA >= 100 && onB >= 100, `A served ${onA}, B served ${onB}`);
  assert.equal(a.stats().requests, onA);
  assert.equal(b.stats().requests, onB + extraOnB);
  const lastA = Math.max(...res.filter((r) => r.target === pa.id).map((r) => r.t0));
  const firstB = Math.min(...res.filter((r) => r.target === pb.id).map((r) => r.t1));
  console.log(`# ${res.length} requests; first answer from B ${firstB - tPatch} ms after the PATCH answer, ` +
    `last request to A sent ${lastA - tPatch} ms after it`);
});

test('restart Postgres under load: both planes recover by themselves', async (t) => {
  const cleanups = cleanupList(t);
  // its own Postgres: the shared test cluster serves the other suites and must stay up
  const pgDir = mkdtempSync(path.join(tmpdir(), 'tollgate-faults-pg-'));
  cleanups.push(async () => {
    await pgsh('stop', pgDir);
    let cluster = null;
    try { cluster = readlinkSync(path.join(pgDir, 'cluster')); } catch { /* not a symlink */ }
    if (cluster) rmSync(cluster, { recursive: true, force: true });
    rmSync(pgDir, { recursive: true, force: true });
  });
  await pgsh('start', pgDir, '--fast');
  await pgsh('createdb', pgDir, 'tollgate');
  const dbUrl = await pgsh('url', pgDir, 'tollgate');

  const mock = await startOpenAIMock();
  cleanups.push(() => mock.close());
  const cp = await startControl({ dbUrl, env: CP_ENV });
  cleanups.push(() => cp.stop());
  const cfg = await configure(cp, [mock]);
  const key = await cfg.newKey('before');
  const gw = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV });
  cleanups.push(() => gw.stop());
  await waitFor(async () => (await chat(gw, key)).status === 200, 5000, 'the key to work on the data plane');
  const readyz = async () => (await fetch(cp.url + '/readyz')).status;
  assert.equal(await readyz(), 200);

  const load = startLoad(gw, key);
  cleanups.push(() => load.stop());
  await waitFor(() => load.results.length >= 50, 10000, '50 answers before the restart');

  // Postgres goes away (a fast shutdown ends every session)
  const dpLogsAtStop = gw.logs().length;
  await pgsh('stop', pgDir);
  const tDown = Date.now();
  await waitFor(async () => (await readyz()) === 503, 5000, 'the control plane /readyz to answer 503');
  // the data plane's snapshot poll has failed against the control plane without a database
  await waitFor(() => /event=poll_refused status=503/.test(gw.logs().slice(dpLogsAtStop)), 10000,
    'the data plane to see its snapshot poll refused');
  const sentWhileDown = () => load.results.filter((r) => r.t0 > tDown).length;
  await waitFor(() => sentWhileDown() >= 100, 10000, '100 answers while Postgres is down');
  const servedWhileDown = sentWhileDown();

  // Postgres comes back; nobody touches either plane
  await pgsh('start', pgDir, '--fast');
  const tUp = Date.now();
  await waitFor(async () => (await readyz()) === 200, 10000, 'the control plane /readyz to answer 200 again');
  const readyAfter = Date.now() - tUp;
  // every worker thread's first call after the restart works: none hands out its dead connection
  const statuses = await Promise.all(Array.from({ length: 16 },
    () => apiOnNewConnection(cp, 'GET', '/api/v1/routes', cfg.admin)));
  assert.deepEqual(statuses, Array(16).fill(200), 'admin API calls right after the restart');
  const key2 = await cfg.newKey('after');
  const tKey = Date.now();
  await waitFor(async () => (await chat(gw, key2)).status === 200, 10000,
    'the key made after the restart to work on the data plane');
  const keyLive = Date.now() - tKey;
  // the notifier is LISTENing again, so a change wakes the parked poll at once instead of when it
  // times out (2 s)
  await waitFor(() => (cp.logs().match(/event=listening_for_changes/g) || []).length >= 2, 5000,
    'the control plane to LISTEN again');
  const key3 = await cfg.newKey('later');
  const tKey3 = Date.now();
  await waitFor(async () => (await chat(gw, key3)).status === 200, 1000, 'the next key to work within 1 s');
  const key3Live = Date.now() - tKey3;
  const nAfter = load.results.length;
  await waitFor(() => load.results.length >= nAfter + 50, 10000, '50 more answers after the restart');
  await load.stop();

  assert.deepEqual(load.failed(), [], `failed client requests: ${summary(load.failed())}`);
  assert.ok(servedWhileDown >= 100, `served ${servedWhileDown} while Postgres was down`);
  console.log(`# ${load.results.length} requests, ${servedWhileDown} while Postgres was down; ` +
    `control plane ready ${readyAfter} ms after Postgres, new key live on the data plane after ${keyLive} ms, the next one after ${key3Live} ms`);
});
