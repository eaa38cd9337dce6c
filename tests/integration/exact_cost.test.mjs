// exact_cost.test.mjs: every provider adapter's usage priced exactly, end to end. The control
// plane runs a catalog (the built-in one plus this test's fixture entries, imported as an admin
// would), every provider kind points at its mock, and each mock reports the usage fields its
// provider has (cache reads, Anthropic's and Bedrock's 5-minute and 1-hour cache writes,
// reasoning, Gemini's thinking, a prompt past a long-context threshold). For each answer the test
// computes the cost by hand from the catalog entry, in integer picodollars, and compares it to the
// usage event the control plane recorded; the streamed and the non-streamed answer agree.
// Then the unpriced rule: a target with no price shows as unpriced, is refused under a budget
// unless its route allows it, and its events are flagged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startAzureMock } from '../mocks/azure.mjs';
import { startAnthropicMock } from '../mocks/anthropic.mjs';
import { startGeminiMock } from '../mocks/gemini.mjs';
import { startBedrockMock } from '../mocks/bedrock.mjs';
import { startGateway, waitFor, BIN } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const builtin = JSON.parse(readFileSync(path.resolve('catalog/models.json'), 'utf8'));
const caps = { tools: true, parallel_tool_calls: true, vision: true, json_schema: true, reasoning: false, streaming_usage: true };
const entry = (o) => ({ mode: 'chat', max_output_tokens: 8192, capabilities: caps, deprecation_date: null, read_on: '2026-12-07', ...o });

// This test's own catalog entries (published list prices of the providers' pages they cite), for
// the kinds and rules the built-in file may not have (yet): they replace a built-in entry of the
// same kind and model in the imported copy.
const FIXTURE = [
  entry({ kind: 'azure', model: 'gpt-4o-mini', context_window: 128000,
    prices: { input: '0.15', cached_input: '0.075', output: '0.60' },
    source: 'https://azure.microsoft.com/en-us/pricing/details/cognitive-services/openai-service/' }),
  entry({ kind: 'anthropic', model: 'claude-sonnet-4-5', context_window: 1000000, max_output_tokens: 64000,
    prices: { input: '3', output: '15', cached_input: '0.30', cache_write: { '5m': '3.75', '1h': '6' } },
    long_context: [{ from_input_tokens: 200000, input: '6', output: '22.50', cached_input: '0.60',
      cache_write: { '5m': '7.50', '1h': '12' } }],
    source: 'https://platform.claude.com/docs/en/about-claude/pricing' }),
  entry({ kind: 'gemini', model: 'gemini-2.5-pro', context_window: 1048576, max_output_tokens: 65536,
    prices: { input: '1.25', output: '10', cached_input: '0.125' },
    long_context: [{ from_input_tokens: 200000, input: '2.50', output: '15', cached_input: '0.25' }],
    source: 'https://ai.google.dev/gemini-api/docs/pricing' }),
  entry({ kind: 'bedrock', model: 'anthropic.claude-sonnet-4-5-20250929-v1:0', context_window: 200000, max_output_tokens: 64000,
    prices: { input: '3', output: '15', cached_input: '0.30', cache_write: { '5m': '3.75', '1h': '6' } },
    source: 'https://aws.amazon.com/bedrock/pricing/' }),
  entry({ kind: 'openai', vendor: 'openai', model: 'text-embedding-3-small', mode: 'embedding', context_window: 8191,
    max_output_tokens: null, prices: { input: '0.02' }, source: 'https://platform.openai.com/docs/pricing' }),
];
const OPENAI_MODEL = 'gpt-5-mini'; // built-in entries, on OpenAI and on an OpenAI-compatible server
const COMPAT_MODEL = 'gpt-5-nano';

const find = (kind, model) => catalog.models.find((m) => m.kind === kind && m.model === model);
let catalog;
const mocks = {};
let cp;
let gw;
let admin;
let key; // a tenant without a budget
let tenantId;
const provider = {};
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tg-cost-'));

const show = (o) => JSON.stringify(o, (k, v) => (typeof v === 'bigint' ? String(v) : v));

// USD per million tokens as a decimal string -> picodollars per token, exactly
function pico(s) {
  if (s === undefined) return undefined;
  const [i, f = ''] = String(s).split('.');
  assert.ok(f.length <= 6, `${s} has at most 6 decimals`);
  return BigInt(i) * 1000000n + BigInt(f.padEnd(6, '0'));
}

// The rates a request with `prompt` input tokens pays under a catalog entry: the highest
// long-context tier its input passes prices all its tokens; what a tier or price does not list
// defaults as docs/snapshot.md says.
function rates(m, prompt) {
  let p = m.prices;
  for (const t of m.long_context ?? []) if (prompt > t.from_input_tokens) p = t;
  const input = pico(p.input);
  const output = pico(p.output ?? '0');
  const w5 = pico(p.cache_write?.['5m']) ?? input;
  return { input, output, cached: pico(p.cached_input) ?? input, w5, w1: pico(p.cache_write?.['1h']) ?? w5,
    reasoning: pico(p.reasoning) ?? output };
}

// By hand: prompt = uncached + cache reads + 5m writes + 1h writes; completion = output + reasoning.
function cost(m, u) {
  const r = rates(m, u.prompt);
  const uncached = u.prompt - u.cached - u.w5 - u.w1;
  assert.ok(uncached >= 0, show(u));
  return BigInt(uncached) * r.input + BigInt(u.cached) * r.cached + BigInt(u.w5) * r.w5 +
    BigInt(u.w1) * r.w1 + BigInt(u.completion - u.reasoning) * r.output + BigInt(u.reasoning) * r.reasoning;
}

function cli(...args) {
  const r = spawnSync(path.join(BIN, 'tollgate-control'), args, {
    env: { ...process.env, TOLLGATE_DATABASE_URL: cp.dbUrl,
      TOLLGATE_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' },
    encoding: 'utf8', timeout: 30000,
  });
  assert.equal(r.status, 0, r.stderr);
}

async function api(method, url, body) {
  const r = await cp.api(method, url, { token: admin, body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text}`);
  return r.body;
}

before(async () => {
  mocks.openai = await startOpenAIMock();
  mocks.compat = await startOpenAIMock({ apiKey: 'sk-local' });
  mocks.azure = await startAzureMock();
  mocks.anthropic = await startAnthropicMock();
  mocks.gemini = await startGeminiMock();
  mocks.bedrock = await startBedrockMock();
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  catalog = structuredClone(builtin);
  catalog.version = `${builtin.version}-exact-cost-test`;
  catalog.models = catalog.models.filter((m) => !FIXTURE.some((f) => f.kind === m.kind && f.model === m.model));
  catalog.models.push(...FIXTURE);
  const file = path.join(tmp, 'catalog.json');
  writeFileSync(file, JSON.stringify(catalog));
  cli('catalog', 'import', file); // same generated_on as the built-in one: the import wins the tie
  admin = await cp.login();
  const b = mocks.bedrock;
  const kinds = [
    ['openai', { kind: 'openai', base_url: mocks.openai.url, credentials: { api_key: 'sk-upstream-test' } }],
    ['compat', { kind: 'openai', base_url: mocks.compat.url, credentials: { api_key: 'sk-local' } }],
    ['azure', { kind: 'azure', base_url: mocks.azure.url, credentials: { api_key: mocks.azure.apiKey } }],
    ['anthropic', { kind: 'anthropic', base_url: mocks.anthropic.url, credentials: { api_key: 'sk-ant-test' } }],
    ['gemini', { kind: 'gemini', base_url: mocks.gemini.url, credentials: { api_key: 'gm-test' } }],
    ['bedrock', { kind: 'bedrock', base_url: b.url, settings: { region: b.region },
      credentials: { aws_access_key_id: b.accessKeyId, aws_secret_access_key: b.secretAccessKey } }],
  ];
  for (const [name, body] of kinds) provider[name] = (await api('POST', '/api/v1/providers', { name, ...body })).id;
  const routes = {
    'c-openai': ['openai', OPENAI_MODEL], 'c-compat': ['compat', COMPAT_MODEL], 'c-azure': ['azure', 'gpt-4o-mini'],
    'c-anthropic': ['anthropic', 'claude-sonnet-4-5'], 'c-gemini': ['gemini', 'gemini-2.5-pro'],
    'c-bedrock': ['bedrock', 'anthropic.claude-sonnet-4-5-20250929-v1:0'], 'c-embed': ['openai', 'text-embedding-3-small'],
  };
  for (const [alias, [p, model]] of Object.entries(routes)) {
    await api('POST', '/api/v1/routes', { alias, targets: [{ provider_id: provider[p], model }], retry: { max_attempts: 1 } });
  }
  const tenant = await cp.makeTenant(admin, 'cost');
  tenantId = tenant.id;
  key = await api('POST', `/api/v1/tenants/${tenant.id}/keys`, { name: 'app', models: Object.keys(routes) });
  assert.equal(cp.sql('SELECT count(*) FROM prices'), '0', 'no price typed by hand');
  gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'test-dp-token' } });
  await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, 10000, 'data plane ready');
});

after(async () => {
  if (process.env.DEBUG_COST) console.log(gw?.logs().slice(-6000));
  await gw?.stop();
  await cp?.stop();
  await Promise.all(Object.values(mocks).map((m) => m.close()));
});

async function post(k, pathname, body) {
  for (;;) {
    const res = await fetch(`${gw.url}${pathname}`, { method: 'POST',
      headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const text = await res.text();
    if (res.status === 401) { await new Promise((s) => setTimeout(s, 50)); continue; } // the key's first snapshot
    return { status: res.status, text, rid: res.headers.get('x-request-id') };
  }
}

// The usage event the control plane recorded for a request.
async function event(rid) {
  const q = `SELECT json_build_object('prompt', prompt_tokens, 'completion', completion_tokens, 'cached', cached_tokens,
    'reasoning', reasoning_tokens, 'w5', cache_write_tokens, 'w1', cache_write_1h_tokens, 'unpriced', unpriced,
    'streamed', streamed, 'cost', cost_usd::text, 'status', status) FROM usage_events WHERE request_id = '${rid}'`;
  const row = await waitFor(() => cp.sql(q), 20000, `the usage event of ${rid}`);
  const e = JSON.parse(row);
  const [i, f] = e.cost.split('.');
  e.pico = BigInt(i) * 1000000000000n + BigInt((f ?? '').padEnd(12, '0'));
  return e;
}

// One chat request, non-streamed then streamed, with the same directives: both events cost
// exactly what `expect` computes from the catalog entry, and the same.
async function both(alias, m, directives, expect) {
  // a prompt of 400 tokens unless the directives say otherwise: room for the cached parts
  const d = directives.includes('mock:prompt_tokens=') ? directives : `${directives} mock:prompt_tokens=400`;
  const body = { model: alias, max_tokens: 64, messages: [{ role: 'user', content: `price this ${d}` }] };
  const plain = await post(key, '/v1/chat/completions', body);
  assert.equal(plain.status, 200, plain.text);
  const streamed = await post(key, '/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
  assert.equal(streamed.status, 200, streamed.text);
  const events = [await event(plain.rid), await event(streamed.rid)];
  assert.deepEqual(events.map((e) => e.streamed), [false, true]);
  if (process.env.DEBUG_COST) console.log(show(events), show(await (await fetch(`${cp.url}/dp/v1/snapshot`, { headers: { authorization: "Bearer test-dp-token" } })).json().then((s) => s.prices)));
  for (const e of events) {
    const want = expect(e);
    assert.equal(e.unpriced, false);
    assert.equal(e.pico, cost(m, want), `${alias} ${directives}: ${show(e)} priced ${e.cost}`);
    for (const k of ['prompt', 'completion', 'cached', 'reasoning', 'w5', 'w1']) assert.equal(e[k], want[k], `${alias} ${k}`);
  }
  assert.equal(events[0].cost, events[1].cost, 'streamed and non-streamed cost the same');
  return events[0];
}

const usage = (e, o) => ({ prompt: e.prompt, completion: e.completion, cached: 0, reasoning: 0, w5: 0, w1: 0, ...o });

test('openai: cached input at its price, reasoning tokens as output', async () => {
  const m = find('openai', OPENAI_MODEL);
  assert.ok(m, `${OPENAI_MODEL} is in the built-in catalog`);
  const e = await both('c-openai', m, 'mock:words=7 mock:cached=12 mock:reasoning=20', (e) => usage(e, { cached: 12, reasoning: 20 }));
  assert.equal(e.completion, 27);
});

test('an OpenAI-compatible server: the catalog entry of the model name it serves', async () => {
  const m = find('openai', COMPAT_MODEL);
  assert.ok(m);
  await both('c-compat', m, 'mock:words=5 mock:cached=8', (e) => usage(e, { cached: 8 }));
});

test('azure: cached input and reasoning, priced by the deployment', async () => {
  await both('c-azure', find('azure', 'gpt-4o-mini'), 'mock:words=6 mock:cached=10 mock:reasoning=4', (e) => usage(e, { cached: 10, reasoning: 4 }));
});

test('anthropic: cache reads, 5-minute and 1-hour cache writes each at their price', async () => {
  const m = find('anthropic', 'claude-sonnet-4-5');
  const e = await both('c-anthropic', m, 'mock:words=9 mock:cache_read=40 mock:cache_write=30 mock:cache_write_hour=20',
    (e) => usage(e, { cached: 40, w5: 30, w1: 20 }));
  // a write at the 5-minute rate of a 1-hour write would cost less: the tiers are told apart
  assert.ok(cost(m, usage(e, { cached: 40, w5: 50 })) < e.pico);
});

test('anthropic: past 200k input tokens (cache reads and writes included) the whole request is at the long-context rates', async () => {
  const m = find('anthropic', 'claude-sonnet-4-5');
  const e = await both('c-anthropic', m, 'mock:words=3 mock:prompt_tokens=250000 mock:cache_read=100000 mock:cache_write=60000 mock:cache_write_hour=40000',
    (e) => usage(e, { cached: 100000, w5: 60000, w1: 40000 }));
  assert.equal(e.prompt, 250000);
  const base = { ...m, long_context: [] };
  assert.equal(e.pico, 2n * cost(base, usage(e, { cached: 100000, w5: 60000, w1: 40000, completion: 0 })) +
    BigInt(e.completion) * pico('22.50'), 'every part at twice its base rate, output at 22.50');
  // at the threshold itself the base rates apply
  const at = await both('c-anthropic', m, 'mock:words=3 mock:prompt_tokens=200000', (x) => usage(x));
  assert.equal(at.pico, cost(base, usage(at)));
});

test('gemini: cached content and thinking tokens; past 200k prompt tokens the long-context rates', async () => {
  const m = find('gemini', 'gemini-2.5-pro');
  const e = await both('c-gemini', m, 'mock:words=4 mock:cached=16 mock:thoughts=30', (e) => usage(e, { cached: 16, reasoning: 30 }));
  assert.equal(e.completion, 34, 'thinking tokens are completion tokens, billed as output');
  const long = await both('c-gemini', m, 'mock:words=4 mock:prompt_tokens=300000 mock:cached=50000', (x) => usage(x, { cached: 50000 }));
  assert.equal(long.pico, 250000n * pico('2.50') + 50000n * pico('0.25') + 4n * pico('15'));
});

test('bedrock: cache reads and writes by TTL from cacheDetails', async () => {
  await both('c-bedrock', find('bedrock', 'anthropic.claude-sonnet-4-5-20250929-v1:0'),
    'mock:words=5 mock:cached=24 mock:cache_write=18 mock:cache_write_hour=6', (e) => usage(e, { cached: 24, w5: 18, w1: 6 }));
});

test('embeddings: input tokens at the input price', async () => {
  const m = find('openai', 'text-embedding-3-small');
  const r = await post(key, '/v1/embeddings', { model: 'c-embed', input: 'embed these words please' });
  assert.equal(r.status, 200, r.text);
  const e = await event(r.rid);
  assert.ok(e.prompt > 0);
  assert.equal(e.pico, BigInt(e.prompt) * pico(m.prices.input));
});

test('the snapshot carries the catalog\'s long-context tiers with the prices', async () => {
  const res = await fetch(`${cp.url}/dp/v1/snapshot`, { headers: { authorization: 'Bearer test-dp-token' } });
  const snap = await res.json();
  const p = snap.prices.find((x) => x.provider === provider.anthropic && x.model === 'claude-sonnet-4-5');
  assert.deepEqual(p.long_context, [{ above_input_tokens: 200000, input_per_mtok: 6, cached_input_per_mtok: 0.6,
    output_per_mtok: 22.5, cache_write_per_mtok: 7.5, cache_write_1h_per_mtok: 12 }]);
  assert.equal(snap.prices.find((x) => x.provider === provider.openai && x.model === OPENAI_MODEL).long_context, undefined);
});

test('an unpriced target: shown as such, refused under a budget unless the route allows it, flagged in usage', async () => {
  const route = await api('POST', '/api/v1/routes', { alias: 'mystery', targets: [{ provider_id: provider.compat, model: 'mystery-model-1' }] });
  assert.equal(route.allow_unpriced, false, 'refused under a budget by default');
  assert.equal(route.targets[0].unpriced, true);
  const prices = await api('GET', `/api/v1/routes/${route.id}/prices`);
  assert.equal(prices.targets[0].price_source, 'none');
  assert.equal(prices.targets[0].unpriced, true);
  const mixed = await api('POST', '/api/v1/routes', { alias: 'mixed', targets: [
    { provider_id: provider.compat, model: 'mystery-model-1' }, { provider_id: provider.openai, model: OPENAI_MODEL }] });
  assert.deepEqual(mixed.targets.map((t) => t.unpriced), [true, false]);

  const tenant = await cp.makeTenant(admin, 'budgeted');
  const k = await api('POST', `/api/v1/tenants/${tenant.id}/keys`, { name: 'app', models: ['mystery', 'mixed'] });
  await api('POST', `/api/v1/tenants/${tenant.id}/budgets`, { period: 'monthly', limit_usd: 5 });
  const body = (model) => ({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hi mock:words=3' }] });
  // the budget reaches the data plane with a snapshot: wait for the refusal
  let r;
  await waitFor(async () => { r = await post(k, '/v1/chat/completions', body('mystery')); return r.status === 403; }, 10000, 'the refusal');
  const seen = mocks.compat.requests.length;
  r = await post(k, '/v1/chat/completions', body('mystery'));
  assert.equal(r.status, 403, r.text);
  assert.equal(mocks.compat.requests.length, seen, 'refused before any provider saw it');
  const err = JSON.parse(r.text).error;
  assert.equal(err.code, 'model_unpriced');
  assert.equal(err.type, 'invalid_request_error');
  assert.equal(err.param, 'model');
  assert.match(err.message, /"mystery" has no price .*mystery-model-1.*allow_unpriced/);

  // a route with a priced target serves it instead of the unpriced one
  const m = await post(k, '/v1/chat/completions', body('mixed'));
  assert.equal(m.status, 200, m.text);
  const me = await event(m.rid);
  assert.equal(me.unpriced, false);
  assert.ok(me.pico > 0n);

  await api('PATCH', `/api/v1/routes/${route.id}`, { allow_unpriced: true });
  let ok;
  await waitFor(async () => { ok = await post(k, '/v1/chat/completions', body('mystery')); return ok.status === 200; }, 10000, 'allowed');
  const e = await event(ok.rid);
  assert.equal(e.unpriced, true);
  assert.equal(e.pico, 0n);
  assert.ok(e.prompt > 0 && e.completion === 3, 'its tokens are still counted');

  // without a budget unpriced traffic passes whatever the route says, flagged
  await api('PATCH', `/api/v1/routes/${route.id}`, { allow_unpriced: false });
  const free = await api('POST', `/api/v1/tenants/${tenantId}/keys`, { name: 'free', models: ['mystery'] });
  let fr;
  await waitFor(async () => { fr = await post(free, '/v1/chat/completions', body('mystery')); return fr.status === 200; }, 10000, 'served');
  const fe = await event(fr.rid);
  assert.equal(fe.unpriced, true);
  assert.equal(fe.pico, 0n);
  // and the budgeted key is refused again
  await waitFor(async () => (await post(k, '/v1/chat/completions', body('mystery'))).status === 403, 10000, 'refused again');
});
