// providers.test.mjs: every provider kind through the official SDKs, end to end over HTTP. The
// `openai` SDK calls /v1/chat/completions and /v1/embeddings on routes to OpenAI, Azure,
// Anthropic, Gemini and Bedrock (each played by its mock, speaking that provider's wire format);
// the `@anthropic-ai/sdk` calls /v1/messages on the same routes: natively on Anthropic,
// translated everywhere else. Text, streams, tool calls (two in one stream), embeddings in float
// and base64, provider errors, and the usage each call records.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startAzureMock } from '../mocks/azure.mjs';
import { startAnthropicMock } from '../mocks/anthropic.mjs';
import { startGeminiMock } from '../mocks/gemini.mjs';
import { startBedrockMock } from '../mocks/bedrock.mjs';
import { startGateway, makeSnapshot, openaiErrorType } from './lib/harness.mjs';

const KEY = 'tg-providers-key';
const CHAT = ['gpt', 'azure', 'claude', 'gemini', 'bedrock'];
const EMBED = ['gpt-embed', 'azure-embed', 'gemini-embed', 'titan-embed', 'cohere-embed'];
const PROVIDER_OF = { gpt: 'openai', azure: 'azure', claude: 'anthropic', gemini: 'gemini', bedrock: 'bedrock' };
const mocks = {};
let gw;
let oai;
let ant;

const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'weather in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } },
  { type: 'function', function: { name: 'get_time', description: 'time in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
];
const antTools = tools.map((t) => ({ name: t.function.name, description: t.function.description,
  input_schema: t.function.parameters }));

before(async () => {
  mocks.openai = await startOpenAIMock();
  mocks.azure = await startAzureMock();
  mocks.anthropic = await startAnthropicMock();
  mocks.gemini = await startGeminiMock();
  mocks.bedrock = await startBedrockMock();
  const b = mocks.bedrock;
  const target = (provider, model) => ({ provider, model });
  const routes = [
    { alias: 'gpt', targets: [target('openai', 'gpt-4o-mini')] },
    { alias: 'azure', targets: [target('azure', 'gpt-4o-mini')] },
    { alias: 'claude', targets: [target('anthropic', 'claude-3-5-haiku-20241022')] },
    { alias: 'gemini', targets: [target('gemini', 'gemini-2.0-flash')] },
    { alias: 'bedrock', targets: [target('bedrock', 'anthropic.claude-3-5-haiku-20241022-v1:0')] },
    { alias: 'gpt-embed', targets: [target('openai', 'text-embedding-3-small')] },
    { alias: 'azure-embed', targets: [target('azure', 'text-embedding-3-small')] },
    { alias: 'gemini-embed', targets: [target('gemini', 'text-embedding-004')] },
    { alias: 'titan-embed', targets: [target('bedrock', 'amazon.titan-embed-text-v2:0')] },
    { alias: 'cohere-embed', targets: [target('bedrock', 'cohere.embed-english-v3')] },
  ].map((r) => ({ ...r, retry: { max_attempts: 1 } }));
  const snap = makeSnapshot({
    mockUrl: mocks.openai.url,
    providers: [
      { id: 'openai', kind: 'openai', base_url: mocks.openai.url, api_key: 'sk-upstream-test' },
      { id: 'azure', kind: 'azure', base_url: mocks.azure.url, api_key: mocks.azure.apiKey },
      { id: 'anthropic', kind: 'anthropic', base_url: mocks.anthropic.url, api_key: 'sk-ant-test' },
      { id: 'gemini', kind: 'gemini', base_url: mocks.gemini.url, api_key: 'gm-test' },
      { id: 'bedrock', kind: 'bedrock', base_url: b.url, region: b.region,
        aws_access_key_id: b.accessKeyId, aws_secret_access_key: b.secretAccessKey },
    ],
    routes,
    prices: [],
    keys: { [KEY]: { models: routes.map((r) => r.alias) } },
  });
  gw = await startGateway({ snapshot: snap, workers: 1 });
  oai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
  ant = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await Promise.all(Object.values(mocks).map((m) => m.close()));
});

const user = (content) => [{ role: 'system', content: 'be brief' }, { role: 'user', content }];
// what every mock's tool call carries: a JSON object with members (typeof says 'object' for null
// and arrays too)
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;

for (const model of CHAT) {
  test(`${model}: chat, streamed and not, says the same and reports usage`, async () => {
    const r = await oai.chat.completions.create({ model, messages: user('say hi mock:words=4') });
    const text = r.choices[0].message.content;
    assert.equal(text, 'w1 w2 w3 w4');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0, JSON.stringify(r.usage));
    const s = await oai.chat.completions.create({ model, messages: user('say hi mock:words=4'),
      stream: true, stream_options: { include_usage: true } });
    let streamed = '';
    let usage = null;
    let finish = null;
    for await (const c of s) {
      streamed += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      usage = c.usage ?? usage;
    }
    assert.equal(streamed, text);
    assert.equal(finish, 'stop');
    assert.equal(usage?.completion_tokens, r.usage.completion_tokens);
    assert.equal(usage?.prompt_tokens, r.usage.prompt_tokens);
  });

  test(`${model}: tool calls, one answered whole and two streamed with their own indexes`, async () => {
    const r = await oai.chat.completions.create({ model, tools,
      messages: user('weather in Paris? mock:tool=get_weather') });
    const call = r.choices[0].message.tool_calls?.[0];
    assert.equal(call?.function.name, 'get_weather');
    assert.ok(isObj(JSON.parse(call.function.arguments)), `arguments ${call.function.arguments}`);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const s = await oai.chat.completions.create({ model, tools, stream: true,
      messages: user('weather and time? mock:tools=2') });
    const calls = [];
    let finish = null;
    for await (const c of s) {
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
        calls[tc.index] ??= { id: '', name: '', args: '' };
        if (tc.id) calls[tc.index].id = tc.id;
        if (tc.function?.name) calls[tc.index].name += tc.function.name;
        calls[tc.index].args += tc.function?.arguments ?? '';
      }
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.deepEqual(calls.map((c) => c.name), ['get_weather', 'get_time']);
    for (const c of calls) {
      assert.ok(c.id, 'each call has an id');
      assert.ok(isObj(JSON.parse(c.args)), `arguments ${c.args}`);
    }
    assert.notEqual(calls[0].id, calls[1].id);
    assert.equal(finish, 'tool_calls');
  });

  test(`${model}: a provider error reaches the openai SDK as its own status, with the provider's message`, async () => {
    await assert.rejects(oai.chat.completions.create({ model, messages: user('mock:status=400') }),
      (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
        assert.ok(e.message.length > 10);
        return true;
      });
  });

  // Anthropic, Gemini and Bedrock errors are rewritten into OpenAI's shape by the gateway;
  // OpenAI's and Azure's are relayed as the provider wrote them.
  if (['claude', 'gemini', 'bedrock'].includes(model)) test(`${model}: a provider's 404 reaches the client with the type of the gateway's own 404s`, async () => {
    const r = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: user('mock:status=404') }) });
    assert.equal(r.status, 404);
    const e = (await r.json()).error;
    assert.ok(e.message.length > 10, e.message);
    // OpenAI's own 404s (an unknown model or path) say invalid_request_error, and so does
    // every 404 the gateway writes; a provider's "not_found_error" is not an OpenAI type
    assert.equal(e.type, openaiErrorType(404), `${model}: ${JSON.stringify(e)}`);
  });

  test(`${model}: the Anthropic SDK on /v1/messages: text, stream and tools`, async () => {
    const m = await ant.messages.create({ model, max_tokens: 64, system: 'be brief',
      messages: [{ role: 'user', content: 'say hi mock:words=3' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), 'w1 w2 w3');
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0, JSON.stringify(m.usage));
    const st = ant.messages.stream({ model, max_tokens: 64,
      messages: [{ role: 'user', content: 'say hi mock:words=3' }] });
    const fm = await st.finalMessage();
    assert.equal(fm.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), 'w1 w2 w3');
    assert.equal(fm.usage.output_tokens, m.usage.output_tokens);
    const ts = ant.messages.stream({ model, max_tokens: 64, tools: antTools,
      messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }] });
    const tm = await ts.finalMessage();
    const uses = tm.content.filter((b) => b.type === 'tool_use');
    assert.deepEqual(uses.map((u) => u.name), ['get_weather', 'get_time']);
    for (const u of uses) assert.ok(isObj(u.input), `input ${JSON.stringify(u.input)}`);
    assert.equal(tm.stop_reason, 'tool_use');
  });
}

for (const model of EMBED) {
  test(`${model}: embeddings in base64 (the SDK's default) and float agree`, async () => {
    const input = model === 'titan-embed' ? 'hello world' : ['hello world', 'second'];
    const b64 = await oai.embeddings.create({ model, input });
    const flt = await oai.embeddings.create({ model, input, encoding_format: 'float' });
    assert.equal(b64.data.length, Array.isArray(input) ? 2 : 1);
    for (let i = 0; i < b64.data.length; i++) {
      assert.equal(flt.data[i].embedding.length, b64.data[i].embedding.length);
      assert.ok(flt.data[i].embedding.length > 0);
      flt.data[i].embedding.forEach((v, j) => assert.ok(Math.abs(v - b64.data[i].embedding[j]) < 1e-6));
    }
  });
}

test('chat on Anthropic refuses embeddings with a 400 that says why', async () => {
  const r = await fetch(`${gw.url}/v1/embeddings`, { method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude', input: 'x' }) });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /embedding/i);
});

test('/v1/messages errors are in Anthropic\'s shape, and the SDK raises them', async () => {
  const bad = new Anthropic({ baseURL: gw.url, apiKey: 'tg-wrong', maxRetries: 0 });
  await assert.rejects(bad.messages.create({ model: 'claude', max_tokens: 8,
    messages: [{ role: 'user', content: 'hi' }] }), (e) => e instanceof Anthropic.AuthenticationError);
  const r = await fetch(`${gw.url}/v1/messages`, { method: 'POST',
    headers: { 'x-api-key': KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(r.status, 400);
  const j = await r.json();
  assert.equal(j.type, 'error');
  assert.equal(j.error.type, 'invalid_request_error');
  assert.match(j.error.message, /max_tokens/);
});

test('the client\'s anthropic-beta reaches Anthropic on native /v1/messages, and no other provider', async () => {
  const beta = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0,
    defaultHeaders: { 'anthropic-beta': 'prompt-caching-2024-07-31,tools-2024-05-16' } });
  for (const model of ['claude', 'gemini']) {
    const m = await beta.messages.create({ model, max_tokens: 16,
      messages: [{ role: 'user', content: 'beta' }] });
    assert.equal(m.type, 'message');
  }
  const sent = mocks.anthropic.requests().at(-1);
  assert.equal(sent.headers['anthropic-beta'], 'prompt-caching-2024-07-31,tools-2024-05-16');
  assert.equal(mocks.gemini.requests().at(-1).headers['anthropic-beta'], undefined);
  // through the OpenAI endpoint the gateway chooses the features, not the client
  await oai.chat.completions.create({ model: 'claude', messages: user('hi') },
    { headers: { 'anthropic-beta': 'x-feature' } });
  assert.equal(mocks.anthropic.requests().at(-1).headers['anthropic-beta'], undefined);
});

test('every call above left a usage record priced from what its provider reported', async () => {
  // the records arrive as the gateway writes them: wait for every one asserted below, not the first
  const done = (us, m) => {
    const ok = us.filter((u) => u.model === m && u.status === 200);
    return ok.length >= 4 && ok.some((u) => u.endpoint === 'messages');
  };
  const recs = await gw.waitUsage((us) => CHAT.every((m) => done(us, m)), 10000);
  for (const m of CHAT) {
    const ok = recs.filter((u) => u.model === m && u.status === 200);
    assert.ok(ok.length >= 4, `${m}: ${ok.length} records`);
    for (const u of ok) {
      assert.equal(u.provider, PROVIDER_OF[m]);
      assert.equal(u.usage_source, 'provider', `${m} ${u.endpoint} streamed=${u.streamed}`);
      assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0, `${m}: ${JSON.stringify(u)}`);
      assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    }
    assert.ok(ok.some((u) => u.endpoint === 'messages'), `${m}: /v1/messages recorded`);
  }
});
