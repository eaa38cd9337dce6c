// catalog_budget.test.mjs: a budget counts a model priced only by the built-in model catalog, with
// no price typed by hand: a route to the mock provider (kind openai) under a catalog model name,
// usage costs exactly the catalog's price for the mock's token counts, and the budget refuses
// once that spend reaches its limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const catalog = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
const MODEL = 'gpt-5-mini';
const entry = catalog.models.find((m) => m.kind === 'openai' && m.model === MODEL);
const LIMIT = 0.0002; // USD a day for the tenant

let mock;
let cp;
let gw;
let key;

before(async () => {
  assert.ok(entry, `${MODEL} is in the catalog`);
  mock = await startOpenAIMock();
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  const admin = await cp.login();
  const tenant = await cp.makeTenant(admin, 'acme');
  const prov = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
    name: 'mock', kind: 'openai', base_url: mock.url, credentials: { api_key: 'sk-upstream-test' } } });
  assert.equal(prov.status, 201, prov.text);
  const route = await cp.api('POST', '/api/v1/routes', { token: admin, body: {
    alias: 'cheap', targets: [{ provider_id: prov.body.id, model: MODEL }] } });
  assert.equal(route.status, 201, route.text);
  const k = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name: 'app', models: ['cheap'] } });
  assert.equal(k.status, 201, k.text);
  key = k.body;
  const b = await cp.api('POST', `/api/v1/tenants/${tenant.id}/budgets`, { token: admin, body: { period: 'daily', limit_usd: LIMIT } });
  assert.equal(b.status, 201, b.text);
  assert.equal(cp.sql('SELECT count(*) FROM prices'), '0', 'no price typed by hand');
  gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'test-dp-token' } });
});

after(async () => {
  await gw?.stop();
  await cp?.stop();
  await mock?.close();
});

async function chat(i) {
  const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(chatBody(`mock:words=30 request ${i}`, { model: 'cheap', max_tokens: 40 })) });
  return { status: res.status, body: await res.json(), rid: res.headers.get('x-request-id') };
}

test('usage of a catalog-priced model costs the catalog price and the budget counts it', async () => {
  // the key reaches the data plane with the first snapshot
  await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, 10000, 'data plane ready');
  const answered = [];
  let refused = null;
  for (let i = 0; i < 40 && !refused; i++) {
    const r = await chat(i);
    if (r.status === 401) { i--; await new Promise((s) => setTimeout(s, 50)); continue; }
    if (r.status === 429) { refused = r; break; }
    assert.equal(r.status, 200, JSON.stringify(r.body));
    answered.push(r);
  }
  assert.ok(refused, 'the budget refused a request once the catalog-priced spend reached it');
  assert.equal(refused.body.error.code, 'budget_exceeded');
  assert.ok(answered.length >= 2, `${answered.length} answered before the refusal`);
  // each event costs exactly the catalog's price for the mock's token counts
  const count = () => Number(cp.sql(`SELECT count(*) FROM usage_events WHERE key_id = '${key.id}'`));
  await waitFor(() => count() >= answered.length, 20000, 'usage events');
  const rows = cp.sql(`SELECT request_id, prompt_tokens, completion_tokens, cost_usd::text FROM usage_events
    WHERE key_id = '${key.id}' AND status = 200`).split('\n').filter(Boolean).map((l) => l.split('|'));
  assert.equal(rows.length, answered.length);
  const inPico = BigInt(Math.round(Number(entry.prices.input) * 1e6));
  const outPico = BigInt(Math.round(Number(entry.prices.output) * 1e6));
  let total = 0n;
  for (const [rid, p, c, cost] of rows) {
    const r = answered.find((a) => a.rid === rid);
    assert.ok(r, `request ${rid} was answered`);
    assert.equal(Number(p), r.body.usage.prompt_tokens);
    assert.equal(Number(c), r.body.usage.completion_tokens);
    const pico = BigInt(p) * inPico + BigInt(c) * outPico;
    assert.ok(pico > 0n);
    assert.equal(BigInt(cost.replace('.', '')), pico, `cost ${cost} of ${p} + ${c} tokens`);
    total += pico;
  }
  assert.ok(Number(total) / 1e12 <= LIMIT * 1.5, `spend ${Number(total) / 1e12} near the limit ${LIMIT}`);
});
