// responses_vercel.test.mjs: the Vercel AI SDK's default OpenAI model (createOpenAI(...)(model),
// which calls POST /v1/responses and parses every event with its own schemas) through
// tollgate-data, on every provider kind: generateText, streamText, tools, a two-step tool loop,
// and a second chat turn that the SDK sends as item_reference. docs/responses.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateText, streamText, tool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';
import { startGateway } from './lib/harness.mjs';
import { KINDS, startKindMocks, closeKindMocks, kindsSnapshot } from './lib/kinds.mjs';

const KEY = 'tg-vercel-key';
const MODELS = Object.keys(KINDS);
const mocks = {};
let gw;
let provider;

before(async () => {
  Object.assign(mocks, await startKindMocks());
  gw = await startGateway({ workers: 1, snapshot: kindsSnapshot(mocks, KEY) });
  provider = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await closeKindMocks(mocks);
});

// the mocks' calls carry different arguments ({q}, {city, days}): any object will do
const anyArgs = z.object({}).loose();
const weather = (calls) => tool({
  description: 'weather in a city',
  inputSchema: anyArgs,
  execute: async (args) => { calls.push(args); return { sky: 'clear' }; },
});

const MOCK_OF = { gpt: 'openai', azure: 'openai', compat: 'compat', claude: 'anthropic', gemini: 'gemini', bedrock: 'bedrock' };
// The body the provider got last (Azure's mock relays to its own OpenAI mock: read Azure's).
function lastBody(model) {
  const m = model === 'azure' ? mocks.azure : mocks[MOCK_OF[model]];
  const reqs = typeof m.requests === 'function' ? m.requests() : m.requests;
  return reqs.at(-1).body;
}

// The SDK sends earlier items as item_reference unless told not to store: the per-kind tool
// loops inline them with store false; the last test continues from stored responses.
const stateless = { openai: { store: false } };

for (const model of MODELS) {
  test(`${model}: generateText and streamText`, async () => {
    const r = await generateText({ model: provider(model), system: 'be brief', prompt: 'say hi mock:words=4', maxRetries: 0 });
    assert.equal(r.text, 'w1 w2 w3 w4');
    assert.equal(r.finishReason, 'stop');
    assert.ok(r.usage.inputTokens > 0 && r.usage.outputTokens > 0, JSON.stringify(r.usage));
    const s = streamText({ model: provider(model), system: 'be brief', prompt: 'say hi mock:words=4', maxRetries: 0 });
    let text = '';
    for await (const d of s.textStream) text += d;
    assert.equal(text, r.text);
    assert.equal(await s.finishReason, 'stop');
    assert.deepEqual((await s.usage).outputTokens, r.usage.outputTokens);
  });

  test(`${model}: tools, streamed and not, and a two-step tool loop`, async () => {
    const one = await generateText({ model: provider(model), maxRetries: 0, prompt: 'weather in Paris? mock:tool=get_weather',
      tools: { get_weather: tool({ description: 'weather in a city', inputSchema: anyArgs }) } });
    assert.equal(one.finishReason, 'tool-calls');
    assert.equal(one.toolCalls[0]?.toolName, 'get_weather');
    assert.ok(Object.keys(one.toolCalls[0].input).length > 0, JSON.stringify(one.toolCalls[0].input));
    const st = streamText({ model: provider(model), maxRetries: 0, prompt: 'weather and time? mock:tools=2',
      tools: {
        get_weather: tool({ description: 'weather', inputSchema: anyArgs }),
        get_time: tool({ description: 'time', inputSchema: anyArgs }),
      } });
    const calls = await st.toolCalls;
    assert.deepEqual(calls.map((c) => c.toolName), ['get_weather', 'get_time']);
    assert.notEqual(calls[0].toolCallId, calls[1].toolCallId);
    const ran = [];
    const loop = await generateText({ model: provider(model), maxRetries: 0, providerOptions: stateless,
      prompt: 'weather in Paris? mock:tool=get_weather mock:words=2', tools: { get_weather: weather(ran) },
      stopWhen: stepCountIs(2) });
    assert.equal(loop.steps.length, 2, loop.steps.map((x) => x.finishReason).join());
    assert.equal(loop.steps[0].finishReason, 'tool-calls');
    assert.ok(ran.length >= 1, 'the tool ran');
    // the second step carried the call and its result to the provider, in its own format
    const sent = JSON.stringify(lastBody(model));
    assert.match(sent, /clear/, `${model}: the tool result reached the provider: ${sent}`);
    // the OpenAI mock (and Azure's, which relays to it) answers a tool result with text; the
    // other mocks repeat the call
    if (['gpt', 'azure', 'compat'].includes(model)) {
      assert.equal(loop.text, 'w1 w2');
      assert.equal(loop.finishReason, 'stop');
    }
  });
}

test('a tool loop and a second chat turn with stored responses (item_reference), continued on another provider', async () => {
  const ran = [];
  const loop = await generateText({ model: provider('gpt'), maxRetries: 0,
    prompt: 'weather in Paris? mock:tool=get_weather mock:words=2', tools: { get_weather: weather(ran) },
    stopWhen: stepCountIs(3) });
  assert.equal(loop.text, 'w1 w2');
  const second = await generateText({ model: provider('claude'), maxRetries: 0,
    messages: [{ role: 'user', content: 'weather in Paris? mock:tool=get_weather mock:words=2' },
      ...loop.response.messages, { role: 'user', content: 'and tomorrow? mock:words=3' }] });
  assert.equal(second.text, 'w1 w2 w3');
  // the earlier turn went out as item_reference items; Anthropic got them resolved from the store
  const sent = JSON.stringify(lastBody('claude'));
  assert.match(sent, /clear/, `the stored tool result reached the other provider: ${sent}`);
});

// The SDK's defaults on every kind: storing on, so a second chat turn sends the first turn's
// answer as an item_reference, which Tollgate resolves from its store; the provider gets the
// answer inlined in its own format.
for (const model of MODELS) {
  test(`${model}: a second chat turn, sent as item_reference with storing on, reaches the provider resolved`, async () => {
    const first = await generateText({ model: provider(model), maxRetries: 0, prompt: 'say something mock:words=4' });
    assert.equal(first.text, 'w1 w2 w3 w4');
    const refs = [];
    const spy = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, fetch: async (url, init) => {
      for (const it of JSON.parse(init.body).input ?? []) if (it.type === 'item_reference') refs.push(it.id);
      return fetch(url, init);
    } });
    const second = await generateText({ model: spy(model), maxRetries: 0,
      messages: [{ role: 'user', content: 'say something mock:words=4' }, ...first.response.messages,
        { role: 'user', content: 'and more mock:words=3' }] });
    assert.ok(refs.length > 0, 'the SDK sent the first answer as item_reference');
    assert.ok(second.text.length > 0);
    const sent = JSON.stringify(lastBody(model));
    assert.match(sent, /w1 w2 w3 w4/, `${model}: the stored answer reached the provider: ${sent}`);
    assert.match(sent, /and more/);
    assert.doesNotMatch(sent, /item_reference/, `${model}: references are resolved before the provider: ${sent}`);
  });
}
