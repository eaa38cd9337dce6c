// responses.test.mjs: POST /v1/responses through tollgate-data with the official `openai` SDK
// (client.responses.create, client.responses.stream + finalResponse) on every provider kind:
// OpenAI and Azure natively (their mocks serve /v1/responses), an OpenAI-compatible server that
// serves only chat completions (the provider setting responses_api "chat"), Anthropic, Gemini
// and Bedrock through the chat translation. Text, streams, tool calls (one whole, two streamed),
// a tool-result follow-up, errors in OpenAI's shape, a client abort, and the usage each call
// records. docs/responses.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { startGateway, waitFor, sha256hex } from './lib/harness.mjs';
import { KINDS, startKindMocks, closeKindMocks, kindsSnapshot } from './lib/kinds.mjs';

const KEY = 'tg-responses-key';
const RPM_KEY = 'tg-responses-rpm';
const MODELS = Object.keys(KINDS);
const PROVIDER_OF = Object.fromEntries(MODELS.map((m) => [m, KINDS[m].provider]));
const NATIVE = new Set(['gpt', 'azure']);
const mocks = {};
let gw;
let oai;
let short;

const tools = [
  { type: 'function', name: 'get_weather', description: 'weather in a city', strict: false,
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } },
  { type: 'function', name: 'get_time', description: 'time in a city', strict: false,
    parameters: { type: 'object', properties: { q: { type: 'string' } } } },
];
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;

before(async () => {
  Object.assign(mocks, await startKindMocks());
  // a fallback from a provider that refuses connections to one that translates
  const fallback = { alias: 'fb', targets: [{ provider: 'dead', model: 'gpt-4o-mini' },
    { provider: 'anthropic', model: KINDS.claude.model, weight: 0 }] }; // weight 0: only a fallback
  // a Responses server whose stream ends, cleanly, after response.created
  short = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
        + '{"id":"resp_short","object":"response","created_at":1,"status":"in_progress","output":[],"usage":null}}\n\n');
    });
  });
  await new Promise((r) => short.listen(0, '127.0.0.1', r));
  const shortRoute = { alias: 'short', targets: [{ provider: 'short', model: 'gpt-4o-mini' }] };
  const snap = kindsSnapshot(mocks, KEY, [fallback, shortRoute],
    [{ id: 'short', kind: 'openai', base_url: `http://127.0.0.1:${short.address().port}/v1` }]);
  // a key allowed one request a minute
  snap.keys.push({ id: 'k-rpm', tenant: 't-acme', sha256: sha256hex(RPM_KEY), models: ['gpt', 'claude'], rpm_limit: 1 });
  gw = await startGateway({ snapshot: snap, workers: 1, args: ['--log-level', 'debug'] });
  oai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 10_000 });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await closeKindMocks(mocks);
  await new Promise((r) => short.close(r));
});

// What the provider was sent last: its path and body.
function lastSent(model) {
  const m = mocks[PROVIDER_OF[model]] ?? mocks.openai;
  const reqs = typeof m.requests === 'function' ? m.requests() : m.requests;
  return reqs.at(-1);
}

const calls = (r) => r.output.filter((o) => o.type === 'function_call');

for (const model of MODELS) {
  test(`${model}: responses.create and responses.stream say the same, with the same usage`, async () => {
    const r = await oai.responses.create({ model, instructions: 'be brief', input: 'say hi mock:words=4' });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    assert.equal(r.status, 'completed');
    assert.equal(r.output_text, 'w1 w2 w3 w4');
    assert.equal(r.store, true, 'the response says what the client asked (store defaults to true)');
    for (const item of r.output) assert.ok(item.id, 'every item has an id');
    const u = r.usage;
    assert.ok(u.input_tokens > 0 && u.output_tokens > 0, JSON.stringify(u));
    assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
    const sent = lastSent(model);
    if (NATIVE.has(model)) {
      assert.match(sent.path, /\/responses/, 'OpenAI and Azure get the Responses API');
      assert.equal(sent.body.store, false, 'the provider never keeps the state');
      assert.equal(sent.body.model, 'gpt-4o-mini');
    } else if (model === 'compat') {
      assert.match(sent.path, /\/chat\/completions$/, 'a chat-only server gets chat completions');
      assert.equal(sent.body.model, 'llama-3.1-8b');
      assert.equal(sent.body.store, undefined);
    }
    const events = [];
    const st = oai.responses.stream({ model, instructions: 'be brief', input: 'say hi mock:words=4' });
    st.on('event', (e) => events.push(e));
    const f = await st.finalResponse();
    assert.equal(f.status, 'completed');
    assert.equal(f.output_text, r.output_text);
    assert.deepEqual(f.usage, r.usage);
    assert.equal(events[0].type, 'response.created');
    assert.equal(events.at(-1).type, 'response.completed');
    events.forEach((e, i) => assert.equal(e.sequence_number, i, `${e.type} is number ${i}`));
    assert.ok(events.some((e) => e.type === 'response.output_text.delta'));
  });

  test(`${model}: tools: one call answered whole, two streamed, then the tool result answered`, async () => {
    const r = await oai.responses.create({ model, tools, input: 'weather in Paris? mock:tool=get_weather' });
    const [c] = calls(r);
    assert.equal(c?.name, 'get_weather');
    assert.ok(c.call_id && c.id, JSON.stringify(c));
    assert.equal(typeof c.arguments, 'string');
    assert.ok(isObj(JSON.parse(c.arguments)), c.arguments);
    const st = oai.responses.stream({ model, tools, input: 'weather and time? mock:tools=2' });
    const f = await st.finalResponse();
    const two = calls(f);
    assert.deepEqual(two.map((x) => x.name), ['get_weather', 'get_time']);
    assert.notEqual(two[0].call_id, two[1].call_id);
    for (const x of two) assert.ok(isObj(JSON.parse(x.arguments)), x.arguments);
    // the follow-up, sent statelessly: the calls and their outputs as input items
    const input = [
      { role: 'user', content: 'weather and time? mock:words=3' },
      ...two.map((x) => ({ type: 'function_call', call_id: x.call_id, name: x.name, arguments: x.arguments })),
      ...two.map((x) => ({ type: 'function_call_output', call_id: x.call_id, output: '{"ok":true}' })),
    ];
    const a = await oai.responses.create({ model, tools, input });
    assert.equal(calls(a).length, 0);
    assert.equal(a.output_text, 'w1 w2 w3');
  });

  test(`${model}: a provider error is raised by the SDK with its status`, async () => {
    await assert.rejects(oai.responses.create({ model, input: 'mock:status=400' }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
      return true;
    });
  });
}

// The store's seam (dp_resp_state_final) sees each final response once, with its input items,
// and never one the client asked not to store.
test('a final response reaches the store seam once, with its input items; store false never does', async () => {
  for (const model of ['gpt', 'claude']) {
    const seen = (id) => gw.logs().split('\n').filter((l) => l.includes('event=final') && l.includes(`response_id=${id} `));
    const a = await oai.responses.create({ model, input: [{ role: 'user', content: 'one mock:words=2' }, { role: 'user', content: 'two' }] });
    const s = await oai.responses.stream({ model, input: 'three mock:words=2' }).finalResponse();
    await waitFor(() => seen(a.id).length && seen(s.id).length, 3000, `${model}: the seam to be called`);
    assert.equal(seen(a.id).length, 1);
    assert.match(seen(a.id)[0], /items=2\b/);
    assert.equal(seen(s.id).length, 1);
    assert.match(seen(s.id)[0], /items=1\b/);
    const n = await oai.responses.create({ model, input: 'secret mock:words=2', store: false });
    const ns = await oai.responses.stream({ model, input: 'secret mock:words=2', store: false }).finalResponse();
    assert.equal(n.store, false);
    assert.equal(ns.store, false);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seen(n.id).length + seen(ns.id).length, 0, 'store false reaches no store');
    assert.doesNotMatch(gw.logs(), /secret/, 'nor any log line');
  }
});

test('a target that cannot be reached falls back to the next, translated, streamed and not', async () => {
  const { data: r, response } = await oai.responses.create({ model: 'fb', input: 'hi mock:words=2' }).withResponse();
  assert.equal(r.output_text, 'w1 w2');
  assert.equal(response.headers.get('x-tollgate-target'), 'anthropic');
  assert.equal(response.headers.get('x-tollgate-attempts'), '2');
  const f = await oai.responses.stream({ model: 'fb', input: 'hi mock:words=2' }).finalResponse();
  assert.equal(f.output_text, 'w1 w2');
  assert.equal(f.status, 'completed');
});

test('a key\'s rate limit holds on /v1/responses as on chat: 429 in OpenAI\'s shape, nothing sent', async () => {
  const c = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: RPM_KEY, maxRetries: 0 });
  const r = await c.responses.create({ model: 'claude', input: 'hi mock:words=1' });
  assert.equal(r.status, 'completed');
  const before = mocks.anthropic.requests().length;
  await assert.rejects(c.responses.create({ model: 'claude', input: 'again' }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, e?.constructor?.name);
    assert.ok(e.headers.get('retry-after'));
    return true;
  });
  assert.equal(mocks.anthropic.requests().length, before);
});

test('a relayed stream that ends before its terminal event ends with an error the SDK raises', async () => {
  const st = oai.responses.stream({ model: 'short', input: 'hi' });
  await assert.rejects(st.finalResponse(), (e) => { assert.match(e.message, /ended before its response was complete/); return true; });
});

test('a bad key is 401 and an unknown model 404, in OpenAI\'s shape', async () => {
  const bad = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'tg-wrong', maxRetries: 0 });
  await assert.rejects(bad.responses.create({ model: 'gpt', input: 'hi' }), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, e?.constructor?.name);
    assert.equal(e.code, 'invalid_api_key');
    return true;
  });
  await assert.rejects(oai.responses.create({ model: 'nope', input: 'hi' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e?.constructor?.name);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    return true;
  });
});

test('an unknown previous_response_id is a 400 previous_response_not_found, before any provider is asked', async () => {
  const before = mocks.openai.requests.length;
  await assert.rejects(oai.responses.create({ model: 'gpt', input: 'more', previous_response_id: 'resp_nothere' }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, e?.constructor?.name);
    assert.equal(e.code, 'previous_response_not_found');
    assert.equal(e.param, 'previous_response_id');
    assert.match(e.message, /resp_nothere/);
    return true;
  });
  assert.equal(mocks.openai.requests.length, before, 'no provider was asked');
});

for (const model of MODELS) {
  test(`${model}: a follow-up with previous_response_id gets what the same turn sent statelessly gets`, async () => {
    const first = await oai.responses.create({ model, instructions: 'be brief', input: 'hello there mock:words=3' });
    assert.equal(first.output_text, 'w1 w2 w3');
    const next = await oai.responses.create({ model, input: 'and more mock:words=2', previous_response_id: first.id });
    assert.equal(next.previous_response_id, first.id);
    // the same conversation, inlined by the client: instructions are not carried over
    const inline = await oai.responses.create({ model, store: false, input: [
      { role: 'user', content: 'hello there mock:words=3' }, ...first.output,
      { role: 'user', content: 'and more mock:words=2' }] });
    assert.equal(next.output_text, inline.output_text);
    assert.deepEqual(
      [next.usage.input_tokens, next.usage.output_tokens, next.usage.total_tokens],
      [inline.usage.input_tokens, inline.usage.output_tokens, inline.usage.total_tokens],
      `${model}: the provider saw the same conversation`);
    assert.ok(next.usage.input_tokens > first.usage.input_tokens, 'the earlier turn was sent along');
  });
}

test('a feature a chat target cannot honour is a 400 naming it and the target', async () => {
  // background needs the provider's own store, which a native target never keeps either
  for (const model of ['gpt', 'claude']) {
    await assert.rejects(oai.responses.create({ model, input: 'hi', background: true }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${model}: ${e?.constructor?.name}`);
      assert.equal(e.param, 'background');
      assert.match(e.message, new RegExp(PROVIDER_OF[model]));
      return true;
    });
  }
  await assert.rejects(oai.responses.create({ model: 'gpt', input: 'hi', store: 'yes' }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'store');
    return true;
  });
  for (const model of ['claude', 'compat']) {
    await assert.rejects(oai.responses.create({ model, input: 'hi', tools: [{ type: 'web_search' }] }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${model}: ${e?.constructor?.name}`);
      assert.match(e.message, /web_search/);
      assert.match(e.message, new RegExp(PROVIDER_OF[model]));
      return true;
    });
  }
});

test('a provider failing mid-stream ends the stream: an error event relayed, response.failed translated', async () => {
  // relayed (OpenAI): the gateway adds OpenAI's `error` event, which the SDK raises
  const st = oai.responses.stream({ model: 'gpt', input: 'mock:cut_after=4 mock:words=10' });
  await assert.rejects(st.finalResponse(), (e) => { assert.match(e.message, /openai/); return true; });
  // translated: the response ends as failed, with what the stream had produced
  for (const model of ['claude', 'gemini', 'bedrock', 'compat']) {
    const events = [];
    const t = oai.responses.stream({ model, input: 'mock:cut_after=4 mock:words=10' });
    t.on('event', (e) => events.push(e));
    const f = await t.finalResponse().catch((e) => e);
    const last = events.at(-1);
    assert.equal(last?.type, 'response.failed', `${model}: ${events.map((e) => e.type)} ${f}`);
    assert.equal(last.response.status, 'failed');
    assert.match(last.response.error.message, new RegExp(PROVIDER_OF[model]));
    events.forEach((e, i) => assert.equal(e.sequence_number, i, `${model}: ${e.type} is number ${i}`));
  }
});

test('a client that goes away cancels the provider\'s request, on every provider kind', async () => {
  for (const [model, mock] of MODELS.map((m) => [m, mocks[PROVIDER_OF[m]]])) {
    const aborted = mock.stats ? (await statsOf(mock)).aborted : 0;
    const ctl = new AbortController();
    const st = await oai.responses.create({ model, input: 'mock:words=200 mock:chunk_delay_ms=50', stream: true },
      { signal: ctl.signal });
    let n = 0;
    try {
      for await (const e of st) { if (++n === 3) ctl.abort(); void e; }
    } catch (e) {
      assert.equal(e.name, 'APIUserAbortError', e.message);
    }
    assert.equal(n, 3, 'the stream stopped where the client left');
    await waitFor(async () => (await statsOf(mock)).aborted > aborted, 5000, `${model}: the provider's request to be cancelled`);
  }
});

async function statsOf(mock) {
  const s = mock.stats();
  return s instanceof Promise ? await s : s;
}

test('every call left a usage record with the endpoint responses, from what the provider reported', async () => {
  const recs = await gw.waitUsage((us) => MODELS.every((m) => us.filter((u) => u.model === m && u.endpoint === 'responses' && u.status === 200).length >= 5), 10000);
  for (const m of MODELS) {
    const ok = recs.filter((u) => u.model === m && u.endpoint === 'responses' && u.status === 200 && !u.error);
    assert.ok(ok.length >= 5, `${m}: ${ok.length} records`);
    for (const u of ok) {
      assert.equal(u.provider, PROVIDER_OF[m]);
      assert.equal(u.usage_source, 'provider', `${m} streamed=${u.streamed}`);
      assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0, `${m}: ${JSON.stringify(u)}`);
    }
    assert.ok(ok.some((u) => u.streamed) && ok.some((u) => !u.streamed), `${m}: both kinds`);
  }
});
