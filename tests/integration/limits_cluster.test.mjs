// limits_cluster.test.mjs: a budget and a rate limit shared by two data planes linked to one
// control plane, under 50 concurrent clients: total recorded spend stays within the bound
// docs/usage.md states, and the rate limit is split between the live data planes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const CLIENTS = 50;
const WINDOW_MS = 3000; // the sync window W of docs/usage.md, with room for request latency

let mock;
let cp;
let admin;
let dps = [];

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  admin = await cp.login();
  const provider = await cp.mockRoute(admin, mock.url);
  // dear tokens, so that a budget is spent in a few hundred requests
  const price = await cp.api('PUT', '/api/v1/prices', { token: admin, body: {
    provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 100, output_per_mtok: 100 } });
  assert.ok([200, 201].includes(price.status), price.text);
  for (let i = 0; i < 2; i++) dps.push(await startGateway({ args: ['--control-url', cp.url], env: DP_ENV }));
  // both data planes know they share the limits (the control plane tells them on every usage
  // exchange)
  await waitFor(() => dps.every((g) => /event=share_changed live_dataplanes=2/.test(g.logs())),
    10000, 'both data planes to count 2 live data planes');
  for (const g of dps) {
    assert.match(await (await fetch(g.url + '/metrics')).text(), /^tollgate_ratelimit_dataplanes 2$/m);
  }
});

after(async () => {
  for (const g of dps) await g.stop();
  await cp?.stop();
  await mock?.close();
});

async function newKey(tenantId, name, extra = {}) {
  const r = await cp.api('POST', `/api/v1/tenants/${tenantId}/keys`, { token: admin,
    body: { name, models: ['gpt-4o-mini'], ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

const answered = new Map(); // key -> responses other than 401 (each one is a usage event)

async function chat(gw, key, body) {
  const r = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (r.status !== 401) answered.set(key, (answered.get(key) || 0) + 1);
  return r;
}

// Waits until the key works on every data plane.
async function live(key) {
  for (const g of dps) {
    await waitFor(async () => {
      const r = await chat(g, key, chatBody('warm-up', { max_tokens: 1 }));
      await r.text();
      return r.status !== 401;
    }, 15000, 'the key on every data plane'); // propagation speed is join's and faults' to test
  }
}

// The most spent by one key in any window of WINDOW_MS (events sorted by time).
function maxWindow(events) {
  let best = 0;
  let sum = 0;
  let lo = 0;
  for (let hi = 0; hi < events.length; hi++) {
    sum += events[hi].cost;
    while (events[hi].ts - events[lo].ts > WINDOW_MS) sum -= events[lo++].cost;
    best = Math.max(best, sum);
  }
  return best;
}

test('a tenant budget shared by two data planes and 50 clients holds within the bound', async () => {
  const tenant = await cp.makeTenant(admin, 'budgeted');
  // one key per data plane, so that the events say which data plane spent what
  const keys = [await newKey(tenant.id, 'dp1'), await newKey(tenant.id, 'dp2')];
  for (const k of keys) await live(k.key);
  const limit = 0.5;
  const b = await cp.api('POST', `/api/v1/tenants/${tenant.id}/budgets`, { token: admin,
    body: { period: 'daily', limit_usd: limit } });
  assert.equal(b.status, 201, b.text);
  // the config version that holds the budget: both data planes must have it (agreeing on an older
  // one, which they do at once, proves nothing)
  const budgetVer = Number(cp.sql('SELECT last_value FROM config_version_seq'));
  await waitFor(async () => {
    const r = await chat(dps[0], keys[0].key, chatBody('x', { max_tokens: 1 }));
    await r.text();
    const vers = await Promise.all(dps.map(async (g) => (await (await fetch(g.url + '/readyz')).json()).snapshot_version));
    return r.status === 200 && vers.every((v) => v >= budgetVer);
  }, 15000, 'the budget to reach both data planes');

  let ok = 0;
  let refused = 0;
  const deadline = Date.now() + 60000;
  const body = chatBody('mock:delay_ms=20 spend it', { max_tokens: 20 });
  await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const which = i % 2;
    while (Date.now() < deadline) {
      const r = await chat(dps[which], keys[which].key, body);
      const j = await r.json();
      if (r.status === 200) { ok++; continue; }
      assert.equal(r.status, 429, JSON.stringify(j));
      assert.equal(j.error.code, 'budget_exceeded');
      refused++;
      return;
    }
  }));
  assert.equal(refused, CLIENTS, 'every client was stopped by the budget');

  // every event arrives; then the recorded spend is what the budget must bound
  const ids = `'${keys[0].id}','${keys[1].id}'`;
  const served = answered.get(keys[0].key) + answered.get(keys[1].key);
  await waitFor(() => Number(cp.sql(`SELECT count(*) FROM usage_events WHERE key_id IN (${ids})`)) >= served,
    15000, 'all usage events');
  assert.equal(Number(cp.sql(`SELECT count(*) FROM usage_events WHERE key_id IN (${ids})`)), served,
    'one event per answered request');
  const rows = cp.sql(`SELECT key_id, floor(extract(epoch FROM ts) * 1000)::bigint, cost_usd FROM usage_events
    WHERE key_id IN (${ids}) ORDER BY ts`).split('\n').map((l) => l.split('|'));
  const per = [[], []];
  let total = 0;
  for (const [k, ts, cost] of rows) {
    const c = Number(cost);
    total += c;
    per[k === keys[0].id ? 0 : 1].push({ ts: Number(ts), cost: c });
  }
  const bound = limit + Math.max(maxWindow(per[0]), maxWindow(per[1]));
  const spend = Number(cp.sql(`SELECT cost_usd FROM spend WHERE tenant_id = '${tenant.id}'
    AND key_id = '00000000-0000-0000-0000-000000000000' AND period = 'daily'`));
  console.log(`# ${ok} requests served, spend $${total.toFixed(6)} (tenant aggregate $${spend.toFixed(6)}), ` +
    `limit $${limit}, bound $${bound.toFixed(6)}`);
  assert.ok(Math.abs(spend - total) < 1e-9, 'the running aggregate equals the events');
  assert.ok(total <= bound, `spend ${total} within the bound ${bound}`);
  assert.ok(total >= limit * 0.8, `the budget was used (${total} of ${limit})`);
});

test('a rate limit shared by two data planes: each enforces half', async () => {
  const tenant = await cp.makeTenant(admin, 'limited');
  const rpm = 120;
  const key = await newKey(tenant.id, 'rpm', { rpm_limit: rpm });
  await live(key.key); // takes one request per data plane out of the buckets
  let ok = 0;
  let limited = 0;
  const t0 = Date.now();
  const stop = t0 + 3000;
  // on a loaded machine 3 s may not be enough to use a share: go on (at most 20 s) until each
  // data plane has refused once
  const refusedBy = [0, 0];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    while (Date.now() < stop || (refusedBy.includes(0) && Date.now() < t0 + 20000)) {
      const r = await chat(dps[i % 2], key.key, chatBody('go', { max_tokens: 5 }));
      await r.text();
      if (r.status === 200) {
        ok++;
        assert.equal(r.headers.get('x-ratelimit-limit-requests'), String(rpm));
      } else {
        assert.equal(r.status, 429);
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
        limited++;
        refusedBy[i % 2]++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  // each data plane holds rpm/2 and refills rpm/2 per minute
  const most = rpm + Math.ceil((rpm * secs) / 60);
  console.log(`# ${ok} admitted, ${limited} limited in ${secs.toFixed(1)} s; at most ${most}`);
  assert.ok(ok + 2 <= most, `${ok} + 2 warm-ups within ${most}`);
  assert.ok(ok >= rpm - 10, `${ok}: both data planes used their share`);
  assert.ok(limited > 0);
});

test('a data plane that goes silent gives its share back within seconds', async () => {
  const metric = async (g) => Number(/^tollgate_ratelimit_dataplanes (\d+)$/m.exec(
    await (await fetch(g.url + '/metrics')).text())[1]);
  assert.equal(await metric(dps[0]), 2);
  const t0 = Date.now();
  await dps[1].stop('SIGKILL');
  dps = [dps[0]];
  // silent for 10 s means gone; the survivor hears it on its next exchange
  await waitFor(async () => (await metric(dps[0])) === 1, 20000, 'the share to return');
  console.log(`# share back to 1 data plane after ${Date.now() - t0} ms`);
});
