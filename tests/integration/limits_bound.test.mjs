// limits_bound.test.mjs: the overspend bound of docs/usage.md, over many budgets at once: one
// data plane (no overspend at all when max_tokens is sent) and two (at most what the other
// data plane admitted in one sync window), behind fast and slow upstreams. Clients keep asking
// after the budget refuses them, for several usage exchanges, since each acknowledgement is a
// moment where spend could slip between "not yet acknowledged" and the control plane's figure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const LIMIT = 0.2; // USD a day, per budget
const CLIENTS = 8; // per budget
const HAMMER_MS = 7000; // several usage exchanges (one a second) past the limit
const WINDOW_MS = 3000; // the sync window W of docs/usage.md, with room for request latency

let mock;
let cp;
let admin;
const dps = [];

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  admin = await cp.login();
  const provider = await cp.mockRoute(admin, mock.url);
  // only completion tokens cost, and each request uses exactly its max_tokens: its worst case
  // is its real cost, so the budget has no slack to hide a lapse in the count ($0.001 each; a
  // budget is 200 requests)
  const price = await cp.api('PUT', '/api/v1/prices', { token: admin, body: {
    provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 0, output_per_mtok: 100 } });
  assert.ok([200, 201].includes(price.status), price.text);
  for (let i = 0; i < 2; i++) dps.push(await startGateway({ args: ['--control-url', cp.url], env: DP_ENV }));
});

after(async () => {
  for (const g of dps) await g.stop();
  await cp?.stop();
  await mock?.close();
});

// The most spent in any window of WINDOW_MS (events sorted by time).
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

async function chat(gw, key, body) {
  const r = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  return { status: r.status, j };
}

// One budget: a tenant with one key per data plane it uses.
async function makeCase(name, ndp, delayMs) {
  const tenant = await cp.makeTenant(admin, name);
  const keys = [];
  for (let i = 0; i < ndp; i++) {
    const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin,
      body: { name: `dp${i}`, models: ['gpt-4o-mini'] } });
    assert.equal(r.status, 201, r.text);
    keys.push(r.body);
  }
  const b = await cp.api('POST', `/api/v1/tenants/${tenant.id}/budgets`, { token: admin,
    body: { period: 'daily', limit_usd: LIMIT } });
  assert.equal(b.status, 201, b.text);
  return { name, ndp, delayMs, tenant, keys, answered: 0, ok: 0, refused: 0 };
}

async function hammer(c, until) {
  const body = chatBody(`mock:delay_ms=${c.delayMs} mock:words=10 spend it`, { max_tokens: 10 });
  await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const which = i % c.ndp;
    // on a slow machine the budget may take longer to reach: go on until it has refused
    while (Date.now() < until || (!c.refused && Date.now() < until + 60000)) {
      const r = await chat(dps[which], c.keys[which].key, body);
      if (r.status === 401) continue; // the key is not on this data plane yet
      c.answered++;
      if (r.status === 200) { c.ok++; continue; }
      assert.equal(r.status, 429, JSON.stringify(r.j));
      assert.equal(r.j.error.code, 'budget_exceeded');
      c.refused++;
    }
  }));
}

async function check(c) {
  const ids = c.keys.map((k) => `'${k.id}'`).join(',');
  const count = () => Number(cp.sql(`SELECT count(*) FROM usage_events WHERE key_id IN (${ids})`));
  await waitFor(() => count() >= c.answered, 20000, `all usage events of ${c.name}`);
  assert.equal(count(), c.answered, `${c.name}: one event per answered request`);
  const rows = cp.sql(`SELECT key_id, floor(extract(epoch FROM ts) * 1000)::bigint, cost_usd
    FROM usage_events WHERE key_id IN (${ids}) ORDER BY ts`).split('\n').filter(Boolean).map((l) => l.split('|'));
  const per = c.keys.map(() => []);
  let total = 0;
  for (const [k, ts, cost] of rows) {
    total += Number(cost);
    per[c.keys.findIndex((x) => x.id === k)].push({ ts: Number(ts), cost: Number(cost) });
  }
  // one data plane: nothing past the limit; N: what the others admitted in one window
  const bound = LIMIT + (c.ndp === 1 ? 0 : Math.max(...per.map(maxWindow)));
  console.log(`# ${c.name}: ${c.ok} served of ${c.answered}, spend $${total.toFixed(6)}, ` +
    `limit $${LIMIT}, bound $${bound.toFixed(6)}`);
  assert.ok(total <= bound + 1e-9, `${c.name}: spend ${total} within the bound ${bound}`);
  assert.ok(c.refused > 0, `${c.name}: the budget refused requests`);
  // a refusal means spend + worst cases in flight reached the limit: most of it was spent
  assert.ok(total >= LIMIT * 0.5, `${c.name}: the budget was used (${total} of ${LIMIT})`);
}

test('budgets hold their bound on one and two data planes, fast and slow upstreams', async () => {
  const cases = [];
  for (let round = 0; round < 2; round++) {
    cases.push(await makeCase(`one-fast-${round}`, 1, 0));
    cases.push(await makeCase(`one-slow-${round}`, 1, 150));
    cases.push(await makeCase(`two-fast-${round}`, 2, 0));
    cases.push(await makeCase(`two-slow-${round}`, 2, 150));
  }
  // a key made after every budget: once it works on both data planes, so does everything before
  const probeTenant = await cp.makeTenant(admin, 'probe');
  const probe = await cp.api('POST', `/api/v1/tenants/${probeTenant.id}/keys`, { token: admin,
    body: { name: 'probe', models: ['gpt-4o-mini'] } });
  assert.equal(probe.status, 201, probe.text);
  for (const g of dps) {
    await waitFor(async () => (await chat(g, probe.body.key, chatBody('x', { max_tokens: 1 }))).status === 200,
      15000, 'the probe key on every data plane');
  }
  const until = Date.now() + HAMMER_MS;
  await Promise.all(cases.map((c) => hammer(c, until)));
  for (const c of cases) await check(c);
});
