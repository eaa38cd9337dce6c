// control_fit.test.mjs: capability-aware routing as an admin sets it up (docs/routing.md): the
// routes API takes the cheapest strategy and an override of a target's model info; the snapshot
// carries the catalog's model info (or the override) to the data plane, whose routing and
// GET /v1/models use it; GET /api/v1/usage/recommendations prices a tenant's token volumes on
// the route's other targets and on catalog models with the same capabilities, checked against
// sums computed here from the catalog file, and answers only the tenant's members.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl, usageEvent } from './lib/control.mjs';

const catalog = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
const entry = (model) => catalog.models.find((m) => m.kind === 'openai' && (m.vendor || 'openai') === 'openai' && m.model === model);
const TOOLS = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
const IMAGE = { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } };

let m1;
let m2;
let cp;
let gw;
let admin;
let tenantA;
let tenantB;
let p1;
let p2;
let key;

before(async () => {
  [m1, m2] = await Promise.all([startOpenAIMock(), startOpenAIMock()]);
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  admin = await cp.login();
  tenantA = await cp.makeTenant(admin, 'acme');
  tenantB = await cp.makeTenant(admin, 'globex');
  const prov = async (name, url) => {
    const r = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
      name, kind: 'openai', base_url: url, credentials: { api_key: 'sk-upstream-test' } } });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  p1 = await prov('one', m1.url);
  p2 = await prov('two', m2.url);
  const route = async (body) => {
    const r = await cp.api('POST', '/api/v1/routes', { token: admin, body });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  // gpt-4 takes no images (catalog); gpt-5-nano does
  await route({ alias: 'smart', targets: [{ provider_id: p1.id, model: 'gpt-4' }, { provider_id: p2.id, model: 'gpt-5-nano' }] });
  // the same model on both, one without tools by the admin's word
  await route({ alias: 'ovr', strategy: 'cheapest', targets: [
    { provider_id: p1.id, model: 'gpt-5-mini', info: { capabilities: { tools: false } } },
    { provider_id: p2.id, model: 'gpt-5-mini', info: { context_window: 123456 } }] });
  const k = await cp.api('POST', `/api/v1/tenants/${tenantA.id}/keys`, { token: admin, body: { name: 'app', models: ['smart', 'ovr'] } });
  assert.equal(k.status, 201, k.text);
  key = k.body;
  gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'test-dp-token' } });
  await waitFor(async () => (await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key.key}` } })).status === 200,
    10000, 'the key reaches the data plane');
});

after(async () => {
  await gw?.stop();
  await cp?.stop();
  await Promise.all([m1?.close(), m2?.close()]);
});

function post(body) {
  return fetch(`${gw.url}/v1/chat/completions`, { method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

test('the routes API takes the cheapest strategy and a target info override, and refuses bad ones', async () => {
  const list = await cp.api('GET', '/api/v1/routes', { token: admin });
  const ovr = list.body.data.find((r) => r.alias === 'ovr');
  assert.equal(ovr.strategy, 'cheapest');
  assert.deepEqual(ovr.targets.map((t) => t.info), [{ capabilities: { tools: false } }, { context_window: 123456 }]);
  assert.equal(list.body.data.find((r) => r.alias === 'smart').targets[0].info, undefined, 'no override: left out');
  const before = cp.sql('SELECT count(*) FROM route_targets');
  const bad = async (info, status, field, message) => {
    const r = await cp.api('POST', '/api/v1/routes', { token: admin, body: {
      alias: `bad-${randomUUID()}`, targets: [{ provider_id: p1.id, model: 'gpt-4', info }] } });
    assert.equal(r.status, status, r.text);
    assert.equal(r.body.error.field, field);
    assert.match(r.body.error.message, message);
  };
  await bad({ window: 5 }, 400, 'targets[0].info.window', /unknown field/);
  await bad({ context_window: 0 }, 422, 'targets[0].info.context_window', /from 1 to 1000000000/);
  await bad({ capabilities: { tools: 'yes' } }, 400, 'targets[0].info.capabilities', /must be true or false/);
  await bad({ capabilities: { teleport: true } }, 400, 'targets[0].info.capabilities.teleport', /unknown field/);
  await bad('big', 400, 'targets[0].info', /must be an object/);
  const s = await cp.api('POST', '/api/v1/routes', { token: admin, body: {
    alias: 'bad-strategy', strategy: 'cheapest-ish', targets: [{ provider_id: p1.id, model: 'gpt-4' }] } });
  assert.ok(s.status === 400 || s.status === 422, s.text);
  assert.match(s.body.error.message, /cheapest/);
  assert.equal(cp.sql('SELECT count(*) FROM route_targets'), before, 'nothing was stored');
});

test("the snapshot carries the catalog's model info, and the admin's override over it", async () => {
  const snap = await fetch(`${cp.url}/dp/v1/snapshot`, { headers: { authorization: 'Bearer test-dp-token',
    'x-tollgate-dataplane': 'test', 'x-tollgate-version': 'test' } });
  assert.equal(snap.status, 200);
  const doc = await snap.json();
  const smart = doc.routes.find((r) => r.alias === 'smart');
  const g4 = entry('gpt-4');
  assert.deepEqual(smart.targets[0].info, { context_window: g4.context_window, max_output_tokens: g4.max_output_tokens,
    capabilities: g4.capabilities });
  const ovr = doc.routes.find((r) => r.alias === 'ovr');
  const mini = entry('gpt-5-mini');
  assert.deepEqual(ovr.targets[0].info.capabilities, { ...mini.capabilities, tools: false });
  assert.equal(ovr.targets[0].info.context_window, mini.context_window);
  assert.equal(ovr.targets[1].info.context_window, 123456);
  assert.equal(ovr.strategy, 'cheapest');
});

test('the data plane routes by it: images skip the text-only target, tools skip the overridden one', async () => {
  m1.reset(); m2.reset();
  for (let i = 0; i < 8; i++) {
    const r = await post({ ...chatBody([{ type: 'text', text: 'what is it' }, IMAGE]), model: 'smart' });
    assert.equal(r.status, 200, await r.text());
    const t = await post({ ...chatBody('hi'), model: 'ovr', tools: TOOLS });
    assert.equal(t.status, 200, await t.text());
  }
  assert.equal(m1.requests.length, 0, 'gpt-4 (text only) and the target without tools got nothing');
  assert.equal(m2.requests.length, 16);
});

test('GET /v1/models shows the model info of the catalog through the snapshot', async () => {
  const r = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key.key}` } });
  const body = await r.json();
  assert.deepEqual(body.data.map((m) => m.id), ['smart', 'ovr']);
  const smart = body.data[0].model_info;
  const nano = entry('gpt-5-nano');
  const g4 = entry('gpt-4');
  assert.equal(smart.max_input_tokens, Math.max(nano.context_window, g4.context_window));
  assert.equal(smart.max_output_tokens, Math.max(nano.max_output_tokens, g4.max_output_tokens));
  assert.equal(smart.supports_vision, true);
  assert.equal(smart.supports_function_calling, true);
  assert.equal(smart.input_cost_per_token, Number(g4.prices.input) / 1e6, 'the dearer target\'s price');
  assert.equal(smart.output_cost_per_token, Number(g4.prices.output) / 1e6);
});

// what events cost at a catalog entry's prices, as a request's real cost is: each event at the
// long-context tier its prompt is more than (docs/catalog.md, "Exact cost"), all else as the base
function costOf(entry, events) {
  let sum = 0;
  for (const { p, c, o } of events) {
    let prices = entry.prices;
    for (const t of entry.long_context ?? []) if (p > t.from_input_tokens) prices = t;
    const i = Number(prices.input);
    const ci = prices.cached_input !== undefined && prices.cached_input !== null ? Number(prices.cached_input) : i;
    sum += ((p - c) * i + c * ci + o * Number(prices.output || 0)) / 1e6;
  }
  return sum;
}

test('recommendations: per model, the same volumes on the other targets and on catalog models, cheapest first', async () => {
  const vol = { p: 1_000_000, c: 200_000, o: 500_000 };
  const evs = [{ p: 600_000, c: 150_000, o: 200_000 }, { p: 400_000, c: 50_000, o: 300_000 }];
  const ev = (tenant, o) => usageEvent({ ts: new Date().toISOString(), tenant_id: tenant, key_id: key.id, model: 'smart',
    provider: p1.id, upstream_model: 'gpt-4', ...o });
  // tenant A: two events adding up to vol, on gpt-4 at p1; tenant B's event must not count
  await cp.postUsage([
    ev(tenantA.id, { prompt_tokens: 600_000, cached_tokens: 150_000, completion_tokens: 200_000, cost_usd: 1.5 }),
    ev(tenantA.id, { prompt_tokens: 400_000, cached_tokens: 50_000, completion_tokens: 300_000, cost_usd: 2.25 }),
    ev(tenantB.id, { key_id: null, prompt_tokens: 9_000_000, completion_tokens: 9_000_000, cost_usd: 99 }),
  ]);
  const viewer = await cp.makeUser('viewer-a@example.com', { tenantId: tenantA.id, role: 'viewer' });
  // (the data plane's requests of the tests above are in the report too, as other models)
  let r;
  const mine = () => r.body.models.find((x) => x.model === 'smart' && x.provider_id === p1.id);
  await waitFor(async () => {
    r = await cp.api('GET', `/api/v1/usage/recommendations?tenant_id=${tenantA.id}`, { token: viewer.token });
    return r.status === 200 && mine()?.requests === 2;
  }, 10000, 'the rollups hold the events');
  assert.equal(r.body.models[0], mine(), 'the model that cost the most comes first');
  const m = mine();
  assert.equal(m.model, 'smart');
  assert.equal(m.provider_id, p1.id);
  assert.equal(m.upstream_model, 'gpt-4');
  assert.deepEqual([m.prompt_tokens, m.cached_tokens, m.completion_tokens], [vol.p, vol.c, vol.o]);
  assert.equal(m.cost_usd, 3.75);
  // the route's other target: gpt-5-nano at its catalog prices
  const nano = entry('gpt-5-nano');
  const route = m.alternatives.filter((a) => a.source === 'route');
  assert.equal(route.length, 1);
  assert.equal(route[0].provider_id, p2.id);
  assert.equal(route[0].provider, 'two');
  assert.equal(route[0].model, 'gpt-5-nano');
  const nanoCost = costOf(nano, evs); // 800k * 0.05 + 200k * 0.005 + 500k * 0.40, per million
  assert.ok(Math.abs(nanoCost - 0.241) < 1e-12, `by hand ${nanoCost}`);
  assert.ok(Math.abs(route[0].cost_usd - nanoCost) < 1e-12, `${route[0].cost_usd} vs ${nanoCost}`);
  assert.ok(Math.abs(route[0].savings_usd - (3.75 - nanoCost)) < 1e-12);
  // catalog chat models with every capability gpt-4 has and a window at least as large, none of
  // the route's own, the 10 cheapest
  const g4 = entry('gpt-4');
  const need = Object.entries(g4.capabilities).filter(([, v]) => v === true).map(([k]) => k);
  const byHand = catalog.models
    .filter((x) => x.mode === 'chat' && x.prices?.input !== undefined && x.prices?.input !== null)
    .filter((x) => !(x.kind === 'openai' && (x.vendor || '') === 'openai' && ['gpt-4', 'gpt-5-nano'].includes(x.model)))
    .filter((x) => need.every((k) => x.capabilities?.[k] === true))
    .filter((x) => (x.context_window || 0) >= g4.context_window)
    .map((x) => costOf(x, evs))
    .sort((a, b) => a - b)
    .slice(0, 10);
  const cat = m.alternatives.filter((a) => a.source === 'catalog');
  assert.equal(cat.length, byHand.length);
  cat.forEach((a, i) => assert.ok(Math.abs(a.cost_usd - byHand[i]) < 1e-12, `${a.model}: ${a.cost_usd} vs ${byHand[i]}`));
  assert.ok(cat.every((a) => a.kind && a.provider_id === null));
  // cheapest first across both sources
  const costs = m.alternatives.map((a) => a.cost_usd);
  assert.deepEqual(costs, [...costs].sort((a, b) => a - b));
});

test('recommendations are role- and tenant-scoped: another tenant answers like a random id', async () => {
  const viewerA = await cp.makeUser('viewer2-a@example.com', { tenantId: tenantA.id, role: 'viewer' });
  const memberB = await cp.makeUser('member-b@example.com', { tenantId: tenantB.id, role: 'member' });
  const get = (token, q) => cp.api('GET', `/api/v1/usage/recommendations${q}`, { token });
  const other = await get(viewerA.token, `?tenant_id=${tenantB.id}`);
  const random = await get(viewerA.token, `?tenant_id=${randomUUID()}`);
  assert.equal(other.status, 404);
  assert.equal(random.status, 404);
  assert.deepEqual(other.body, random.body);
  const b = await get(memberB.token, `?tenant_id=${tenantB.id}`);
  assert.equal(b.status, 200);
  assert.equal(b.body.models.length, 1);
  assert.equal(b.body.models[0].cost_usd, 99, "tenant B sees its own spend only");
  assert.equal((await get(memberB.token, `?tenant_id=${tenantA.id}`)).status, 404);
  assert.equal((await get(viewerA.token, '')).status, 400, 'tenant_id is required');
  assert.equal((await get(viewerA.token, `?tenant_id=${tenantA.id}&bucket=day`)).status, 400, 'unknown parameter');
  assert.equal((await get(null, `?tenant_id=${tenantA.id}`)).status, 401);
});
