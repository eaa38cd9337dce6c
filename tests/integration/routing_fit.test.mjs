// routing_fit.test.mjs: capability-aware routing and the cheapest strategy, end to end over HTTP
// with a snapshot file whose targets carry model info (docs/routing.md): a request with tools
// never goes to a target without tool support, one with images never to a text-only target, one
// that does not fit a context window never there, under every strategy, for chat and
// /v1/messages; fallbacks skip unfit targets; a 400 says why when none fits; cheapest picks by the
// request's estimated cost and falls back in cost order; GET /v1/models shows the model info.
//
// Three mocks (a, b, c) stand for three providers: which one a request reached says which
// target the gateway chose.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody } from './lib/harness.mjs';

const KEY = 'tg-fit-key';
const STRATEGIES = ['weighted', 'least_busy', 'lowest_latency', 'cheapest'];
const N = 8; // requests per check: an unfiltered pick of two targets misses with p = 2^-8
let a;
let b;
let c;
let gw;

const caps = (o) => ({ tools: true, parallel_tool_calls: true, vision: true, json_schema: true,
  reasoning: false, streaming_usage: true, ...o });
const t = (provider, model, info, weight = 1) => ({ provider, model, weight, ...(info ? { info } : {}) });
const once = { max_attempts: 1 };
const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
const IMAGE = { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } };
// a PNG-sized base64 payload: 100 KB that must not count as prompt text
const BIG_B64 = 'iVBORw0KGgo'.padEnd(100_000, 'A');

function post(body, path = '/v1/chat/completions') {
  return fetch(gw.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
}
const chat = (model, extra = {}, content = 'hi') => ({ ...chatBody(content, extra), model });
const seen = (mock) => mock.requests.map((r) => r.body?.model);
const price = (provider, model, i, o) => ({ provider, model, input_per_mtok: i, output_per_mtok: o });

before(async () => {
  [a, b, c] = await Promise.all([startOpenAIMock(), startOpenAIMock(), startOpenAIMock()]);
  const routes = [];
  const prices = [];
  for (const s of STRATEGIES) {
    // the unfit target is the cheaper one, so that cheapest would pick it without the filter
    routes.push({ alias: `tools-${s}`, strategy: s, targets: [
      t('a', `notools-${s}`, { capabilities: caps({ tools: false }) }), t('b', `tools-${s}`, { capabilities: caps() })] });
    routes.push({ alias: `img-${s}`, strategy: s, targets: [
      t('a', `text-${s}`, { capabilities: caps({ vision: false }) }), t('b', `vision-${s}`, { capabilities: caps() })] });
    routes.push({ alias: `ctx-${s}`, strategy: s, targets: [
      t('a', `small-${s}`, { context_window: 1000, max_output_tokens: 500 }),
      t('b', `big-${s}`, { context_window: 1_000_000, max_output_tokens: 100_000 })] });
    prices.push(price('a', `notools-${s}`, 0.1, 0.1), price('b', `tools-${s}`, 5, 5),
      price('a', `text-${s}`, 0.1, 0.1), price('b', `vision-${s}`, 5, 5),
      price('a', `small-${s}`, 0.1, 0.1), price('b', `big-${s}`, 5, 5));
  }
  routes.push(
    { alias: 'unknown', targets: [t('a', 'unknown-model')] },
    { alias: 'none', targets: [t('a', 'n1', { capabilities: caps({ tools: false, vision: false }) }),
      t('b', 'n2', { capabilities: caps({ tools: false, vision: false }) })] },
    { alias: 'none-ctx', targets: [t('a', 'tiny', { context_window: 100 })] },
    { alias: 'imgctx', targets: [t('a', 'vis-small', { context_window: 8000, capabilities: caps() })] },
    { alias: 'fbfit', retry: once, targets: [t('a', 'first mock:status=503', { capabilities: caps() }),
      t('b', 'fb-notools', { capabilities: caps({ tools: false }) }, 0), t('c', 'fb-tools', { capabilities: caps() }, 0)] },
    { alias: 'fm-main', retry: once, targets: [t('a', 'fmmain mock:status=503', { capabilities: caps() })] },
    { alias: 'fm-notools', targets: [t('b', 'fm-notools', { capabilities: caps({ tools: false }) })] },
    { alias: 'fm-tools', targets: [t('c', 'fm-tools', { capabilities: caps() })] },
    { alias: 'cheap', strategy: 'cheapest', targets: [t('a', 'dear'), t('b', 'mid'), t('c', 'low')] },
    { alias: 'cheapfb', strategy: 'cheapest', retry: once, targets: [
      t('a', 'dear2'), t('b', 'mid2'), t('c', 'low2 mock:status=503')] },
    { alias: 'cheapout', strategy: 'cheapest', targets: [t('a', 'inheavy'), t('b', 'outheavy')] },
    { alias: 'cheaptier', strategy: 'cheapest', targets: [t('a', 'tiered'), t('b', 'flat')] },
    { alias: 'cheapthink', strategy: 'cheapest', targets: [t('a', 'think'), t('b', 'plain')] },
    { alias: 'cheaptools', strategy: 'cheapest', targets: [
      t('a', 'ct-dear', { capabilities: caps() }), t('b', 'ct-mid', { capabilities: caps() }),
      t('c', 'ct-low', { capabilities: caps({ tools: false }) })] },
  );
  prices.push(price('a', 'dear', 10, 30), price('b', 'mid', 1, 2), price('c', 'low', 0.1, 0.4),
    price('a', 'dear2', 10, 30), price('b', 'mid2', 1, 2), price('c', 'low2 mock:status=503', 0.1, 0.4),
    price('a', 'inheavy', 10, 0.1), price('b', 'outheavy', 0.1, 10),
    price('a', 'ct-dear', 10, 30), price('b', 'ct-mid', 1, 2), price('c', 'ct-low', 0.1, 0.4),
    // every rate x4 for a prompt of more than 2,000 input tokens, against a flat x2
    { ...price('a', 'tiered', 1, 1),
      long_context: [{ above_input_tokens: 2000, input_per_mtok: 4, output_per_mtok: 4 }] },
    price('b', 'flat', 2, 2),
    // reasoning billed at 8 on think, as output (3) on plain
    { ...price('a', 'think', 1, 2), reasoning_per_mtok: 8 }, price('b', 'plain', 1, 3));
  const snap = makeSnapshot({
    mockUrl: a.url,
    providers: [a, b, c].map((m, i) => ({ id: 'abc'[i], kind: 'openai', base_url: m.url, api_key: 'sk-upstream-test' })),
    routes,
    prices,
    keys: { [KEY]: { models: routes.map((r) => r.alias) } },
  });
  gw = await startGateway({ snapshot: snap, workers: 1 });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await Promise.all([a.close(), b.close(), c.close()]);
});

beforeEach(() => { a.reset(); b.reset(); c.reset(); });

async function sendN(body, path) {
  for (let i = 0; i < N; i++) {
    const r = await post(body, path);
    assert.equal(r.status, 200, await r.text());
    await r.arrayBuffer().catch(() => {});
  }
}

for (const s of STRATEGIES) {
  test(`${s}: a request with tools goes only to targets with tool support (chat and messages)`, async () => {
    await sendN(chat(`tools-${s}`, { tools: TOOLS }));
    await sendN({ model: `tools-${s}`, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }],
      tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: {} } }] }, '/v1/messages');
    assert.deepEqual(seen(a), [], 'the target without tool support got nothing');
    assert.equal(b.requests.length, 2 * N);
  });

  test(`${s}: a request with images goes only to targets that take images (chat and messages)`, async () => {
    await sendN(chat(`img-${s}`, {}, [{ type: 'text', text: 'what is this' }, IMAGE]));
    await sendN({ model: `img-${s}`, max_tokens: 50, messages: [{ role: 'user', content: [
      { type: 'text', text: 'what is this' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: BIG_B64.slice(0, 1000) } }] }] },
    '/v1/messages');
    assert.deepEqual(seen(a), []);
    assert.equal(b.requests.length, 2 * N);
  });

  test(`${s}: a prompt or max_tokens too large for a context window never goes there`, async () => {
    // 8,000 bytes of text: about 2,000 tokens by the estimate, over the small target's 1,000
    await sendN(chat(`ctx-${s}`, {}, 'x'.repeat(8000)));
    // a short prompt whose max_tokens alone is over the small target's window and max output
    await sendN(chat(`ctx-${s}`, { max_tokens: 2000 }));
    assert.deepEqual(seen(a), []);
    assert.equal(b.requests.length, 2 * N);
  });
}

test('without a need, the filtered routes still use both targets (the filter is not a preference)', async () => {
  for (let i = 0; i < 24; i++) {
    const r = await post(chat('tools-weighted'));
    assert.equal(r.status, 200);
  }
  assert.ok(a.requests.length > 0 && b.requests.length > 0, `a ${a.requests.length}, b ${b.requests.length}`);
});

test('a target whose model info is unknown is not filtered', async () => {
  const r = await post(chat('unknown', {}, [{ type: 'text', text: 'x'.repeat(20000) }, IMAGE]));
  assert.equal(r.status, 200);
  const r2 = await post(chat('unknown', { tools: TOOLS }));
  assert.equal(r2.status, 200);
  assert.equal(a.requests.length, 2);
});

test('inline image bytes are not counted as prompt text', async () => {
  const r = await post(chat('imgctx', {}, [{ type: 'text', text: 'what is this' },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${BIG_B64}` } }]));
  assert.equal(r.status, 200, await r.text());
  const m = await post({ model: 'imgctx', max_tokens: 50, messages: [{ role: 'user', content: [
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: BIG_B64 } }] }] }, '/v1/messages');
  assert.equal(m.status, 200, await m.text());
  assert.equal(a.requests.length, 2);
});

test("the route's fallbacks skip targets that do not fit", async () => {
  const r = await post(chat('fbfit', { tools: TOOLS }));
  assert.equal(r.status, 200, await r.text());
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.equal(r.headers.get('x-tollgate-target'), 'c');
  assert.deepEqual(seen(b), [], 'the fallback without tool support was skipped');
});

test("the request's fallback models skip routes whose targets do not fit", async () => {
  const r = await post(chat('fm-main', { tools: TOOLS, fallback_models: ['fm-notools', 'fm-tools'] }));
  assert.equal(r.status, 200, await r.text());
  assert.equal(r.headers.get('x-tollgate-target'), 'c');
  assert.deepEqual(seen(b), []);
  // without tools the first fallback takes it
  const r2 = await post(chat('fm-main', { fallback_models: ['fm-notools', 'fm-tools'] }));
  assert.equal(r2.headers.get('x-tollgate-target'), 'b');
});

test('when no target fits: a 400 in OpenAI\'s shape that names the need and the targets', async () => {
  const r = await post(chat('none', { tools: TOOLS }));
  assert.equal(r.status, 400);
  const e = (await r.json()).error;
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(e.code, 'model_not_capable');
  assert.equal(e.param, 'tools');
  assert.match(e.message, /no target of model "none" can take this request \(it needs tool support\)/);
  assert.match(e.message, /a\/n1 has no tool support/);
  assert.match(e.message, /b\/n2 has no tool support/);
  const img = await post(chat('none', {}, [IMAGE]));
  assert.equal(img.status, 400);
  const ie = (await img.json()).error;
  assert.match(ie.message, /it needs image input\): a\/n1 takes no images; b\/n2 takes no images$/);
  const ctx = await post(chat('none-ctx', {}, 'y'.repeat(4000)));
  assert.equal(ctx.status, 400);
  const ce = (await ctx.json()).error;
  assert.equal(ce.code, 'context_length_exceeded');
  assert.match(ce.message, /a context window of about \d+ tokens\): a\/tiny has a context window of 100 tokens/);
  // /v1/messages answers in Anthropic's shape
  const m = await post({ model: 'none', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }],
    tools: [{ name: 'f', input_schema: { type: 'object' } }] }, '/v1/messages');
  assert.equal(m.status, 400);
  const mb = await m.json();
  assert.equal(mb.type, 'error');
  assert.equal(mb.error.type, 'invalid_request_error');
  assert.match(mb.error.message, /needs tool support/);
  assert.equal(a.requests.length + b.requests.length, 0, 'no provider saw a refused request');
});

test('cheapest: the lowest estimated cost goes first', async () => {
  for (let i = 0; i < 4; i++) {
    const r = await post(chat('cheap'));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-tollgate-target'), 'c');
  }
  assert.deepEqual([a.requests.length, b.requests.length], [0, 0]);
});

test('cheapest: fallbacks follow in cost order', async () => {
  const r = await post(chat('cheapfb'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.equal(r.headers.get('x-tollgate-target'), 'b', 'the next cheapest, not the route\'s first');
  assert.equal(c.requests.length, 1);
  assert.equal(a.requests.length, 0);
});

test('cheapest: the estimate weighs the prompt size against max_tokens', async () => {
  // ~100 prompt tokens, 2,000 output: inheavy 100*10 + 2000*0.1 = 1,200 < outheavy 10 + 20,000
  const r1 = await post(chat('cheapout', { max_tokens: 2000 }, 'z'.repeat(300)));
  assert.equal(r1.headers.get('x-tollgate-target'), 'a');
  // ~4,000 prompt tokens, 1 output: outheavy 400 + 10 < inheavy 40,000 + 0.1
  const r2 = await post(chat('cheapout', { max_tokens: 1 }, 'z'.repeat(16000)));
  assert.equal(r2.headers.get('x-tollgate-target'), 'b');
});

// A chat body of exactly `bytes` bytes: the gateway estimates ceil(bytes / 4) prompt tokens.
function chatOfSize(model, bytes, extra = {}) {
  const body = chat(model, extra, '');
  body.messages[0].content = 'z'.repeat(bytes - JSON.stringify(body).length);
  assert.equal(JSON.stringify(body).length, bytes);
  return body;
}

test('cheapest: the long-context tier the prompt estimate reaches prices the whole request', async () => {
  // 2,000 tokens (not more than the tier's 2,000): tiered 2,000*1 + 10*1 < flat 2,000*2 + 10*2
  const below = await post(chatOfSize('cheaptier', 8000, { max_tokens: 10 }));
  assert.equal(below.status, 200);
  assert.equal(below.headers.get('x-tollgate-target'), 'a');
  // 2,001 tokens: tiered 2,001*4 + 10*4 > flat 2,001*2 + 10*2
  const above = await post(chatOfSize('cheaptier', 8001, { max_tokens: 10 }));
  assert.equal(above.status, 200);
  assert.equal(above.headers.get('x-tollgate-target'), 'b');
  assert.deepEqual([seen(a), seen(b)], [['tiered'], ['flat']]);
});

test('cheapest: a request that asks for reasoning prices it where billed apart', async () => {
  const body = (extra) => chat('cheapthink', { max_tokens: 1000, ...extra });
  // no reasoning: think 1000*2 < plain 1000*3
  assert.equal((await post(body())).headers.get('x-tollgate-target'), 'a');
  // an effort: all 1,000 output tokens may be reasoning, think 1000*8 > plain 1000*3
  assert.equal((await post(body({ reasoning_effort: 'high' }))).headers.get('x-tollgate-target'), 'b');
  assert.equal((await post(body({ reasoning_effort: 'none' }))).headers.get('x-tollgate-target'), 'a');
  // /v1/messages' thinking budget: 100*8 + 900*2 < 1000*3; 900*8 + 100*2 > 1000*3
  const msg = (budget) => post({ model: 'cheapthink', max_tokens: 1000,
    thinking: { type: 'enabled', budget_tokens: budget }, messages: [{ role: 'user', content: 'hi' }] }, '/v1/messages');
  const r1 = await msg(100);
  assert.equal(r1.status, 200, await r1.clone().text());
  assert.equal(r1.headers.get('x-tollgate-target'), 'a');
  assert.equal((await msg(900)).headers.get('x-tollgate-target'), 'b');
});

test('cheapest: a target that does not fit is not picked however cheap', async () => {
  const r = await post(chat('cheaptools', { tools: TOOLS }));
  assert.equal(r.headers.get('x-tollgate-target'), 'b');
  const r2 = await post(chat('cheaptools'));
  assert.equal(r2.headers.get('x-tollgate-target'), 'c');
});

test("GET /v1/models: the key's aliases with LiteLLM-style model info (openai SDK)", async () => {
  const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: KEY, maxRetries: 0, timeout: 10_000 });
  const list = [];
  for await (const m of client.models.list()) list.push(m);
  const by = Object.fromEntries(list.map((m) => [m.id, m]));
  assert.equal(list.length, 4 * 3 + 14);
  const ctx = by['ctx-weighted'];
  assert.equal(ctx.object, 'model');
  assert.deepEqual(ctx.model_info, {
    max_input_tokens: 1_000_000, max_output_tokens: 100_000, max_tokens: 100_000,
    input_cost_per_token: 0.000005, output_cost_per_token: 0.000005, cache_read_input_token_cost: 0.000005,
  });
  const tools = by['tools-cheapest'].model_info;
  assert.equal(tools.supports_function_calling, true, 'one target has tools');
  assert.equal(tools.supports_reasoning, false, 'no target states reasoning');
  assert.equal(tools.supports_vision, true);
  assert.equal(by.none.model_info.supports_function_calling, false, 'every target states no tools');
  assert.equal(by.unknown.model_info.max_input_tokens, null);
  assert.equal(by.unknown.model_info.supports_function_calling, undefined, 'unknown is left out');
  assert.equal(by.unknown.model_info.input_cost_per_token, undefined, 'unpriced');
  assert.equal(by.cheap.model_info.input_cost_per_token, 0.00001, 'the dearest target\'s price');
  assert.equal(by.cheap.model_info.output_cost_per_token, 0.00003);
});
