// chat_via_responses.test.mjs: providers whose models serve only the Responses API
// (settings.responses_api "responses", OpenAI and Azure kinds) made through the admin API, a data
// plane that takes its snapshot from the control plane: the `openai` SDK's
// chat.completions.create (streamed and not, with tools and a tool-result turn) and the
// `@anthropic-ai/sdk`'s messages.create / messages.stream reach the providers' /responses (never
// /chat/completions) translated, with store false, and come back as chat completions and
// Anthropic messages; usage and cost are recorded, equal streamed and not. docs/responses.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startAzureMock } from '../mocks/azure.mjs';
import { waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';
import { syncedDataPlane, keyEvents, streamedAndNot, assertSameUsage } from './lib/synced.mjs';

const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };
const mocks = {};
let cp;
let gw;
let admin;
let tenant;
let key;
let oai;
let ant;
let ids;

// alias -> [provider name, the provider's model (Azure: the deployment)]
const ALIASES = { gpt: ['openai', 'gpt-4o-mini'], azure: ['azure', 'gpt-4o-mini'] };

const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'weather in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } },
  { type: 'function', function: { name: 'get_time', description: 'time in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
];

before(async () => {
  mocks.openai = await startOpenAIMock();
  mocks.azure = await startAzureMock();
  cp = await startControl({ env: CP_ENV });
  admin = await cp.login();
  tenant = await cp.makeTenant(admin, 'acme');
  const providers = {
    openai: { kind: 'openai', base_url: mocks.openai.url, credentials: { api_key: 'sk-upstream-test' },
      settings: { responses_api: 'responses' } },
    azure: { kind: 'azure', base_url: mocks.azure.url, credentials: { api_key: mocks.azure.apiKey },
      settings: { responses_api: 'responses' } },
  };
  let made;
  ({ made, ids, key, gw } = await syncedDataPlane(cp, admin, tenant, { providers, aliases: ALIASES, keyName: 'chat-via-responses' }));
  for (const p of Object.values(made)) assert.equal(p.settings?.responses_api, 'responses', JSON.stringify(p));
  oai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
  ant = new Anthropic({ baseURL: gw.url, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
  await waitFor(async () => {
    try {
      for (const model of Object.keys(ALIASES)) await oai.chat.completions.create({ model, messages: [{ role: 'user', content: 'ready' }] });
      return true;
    } catch { return false; }
  }, 10000, 'the data plane to take the snapshot');
});

after(async () => {
  const e = await gw?.stop();
  assert.equal(e?.code, 0, 'the data plane exits cleanly (no sanitizer report)');
  await cp?.stop();
  await Promise.all(Object.values(mocks).map((m) => m.close()));
});

const sent = (alias) => mocks[ALIASES[alias][0]].requests;

test('settings.responses_api takes "native", "chat" or "responses"; anything else is a 422 naming it', async () => {
  const r = await cp.api('POST', '/api/v1/providers', { token: admin, body: {
    name: 'odd', kind: 'openai', base_url: mocks.openai.url, settings: { responses_api: 'only' } } });
  assert.equal(r.status, 422, r.text);
  assert.match(r.text, /settings\.responses_api/);
  assert.match(r.body.error.message, /"native".*"chat".*"responses"/, 'the message names the values it takes');
});

for (const alias of Object.keys(ALIASES)) {
  test(`${alias}: chat completions, whole and streamed, reach /responses and say the same`, async () => {
    const before = sent(alias).length;
    const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'say hi mock:words=5' }];
    const r = await oai.chat.completions.create({ model: alias, messages, max_tokens: 50 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, 'w1 w2 w3 w4 w5');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens === 5, JSON.stringify(r.usage));
    const q = sent(alias).at(-1);
    assert.match(q.path, /\/responses$/, `the provider got the Responses API: ${q.path}`);
    if (alias === 'azure') assert.match(q.path, /^\/openai\/v1\/responses$/);
    assert.equal(q.body.store, false, 'the provider keeps nothing');
    assert.equal(q.body.model, ALIASES[alias][1]);
    assert.equal(q.body.max_output_tokens, 50);
    assert.equal(q.body.messages, undefined);
    assert.deepEqual(q.body.input.map((i) => i.role), ['system', 'user']);

    const stream = await oai.chat.completions.create({ model: alias, messages, max_tokens: 50, stream: true,
      stream_options: { include_usage: true } });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const c of stream) {
      assert.equal(c.object, 'chat.completion.chunk');
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta?.content ?? '';
        finish = ch.finish_reason ?? finish;
      }
    }
    assert.equal(text, r.choices[0].message.content);
    assert.equal(finish, 'stop');
    assert.deepEqual(usage, r.usage, 'the same usage streamed and not');
    const qs = sent(alias).at(-1);
    assert.match(qs.path, /\/responses$/);
    assert.equal(qs.body.stream, true);
    assert.ok(sent(alias).slice(before).every((x) => !/chat\/completions/.test(x.path)),
      'nothing went to /chat/completions');
  });

  test(`${alias}: tools: a call whole, two streamed, then the tool results answered`, async () => {
    const r = await oai.chat.completions.create({ model: alias, tools,
      messages: [{ role: 'user', content: 'weather in Paris? mock:tool=get_weather' }] });
    const [c] = r.choices[0].message.tool_calls ?? [];
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(c?.function?.name, 'get_weather', JSON.stringify(r));
    assert.ok(c.id);
    assert.equal(JSON.parse(c.function.arguments).q, 'mock');
    const flat = sent(alias).at(-1).body.tools;
    assert.deepEqual(flat.map((t) => [t.type, t.name]), [['function', 'get_weather'], ['function', 'get_time']],
      'tools reach the provider flattened');

    const stream = await oai.chat.completions.create({ model: alias, tools, stream: true,
      messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }] });
    const acc = [];
    let finish = null;
    for await (const ch of stream) {
      for (const choice of ch.choices) {
        finish = choice.finish_reason ?? finish;
        for (const tc of choice.delta?.tool_calls ?? []) {
          acc[tc.index] ??= { id: '', name: '', arguments: '' };
          if (tc.id) acc[tc.index].id = tc.id;
          if (tc.function?.name) acc[tc.index].name += tc.function.name;
          acc[tc.index].arguments += tc.function?.arguments ?? '';
        }
      }
    }
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(acc.map((x) => x.name), ['get_weather', 'get_time']);
    assert.notEqual(acc[0].id, acc[1].id);
    for (const x of acc) assert.equal(JSON.parse(x.arguments).q, 'mock');

    const follow = await oai.chat.completions.create({ model: alias, tools, messages: [
      { role: 'user', content: 'weather and time? mock:tools=2 mock:words=3' },
      { role: 'assistant', content: null, tool_calls: acc.map((x) => ({ id: x.id, type: 'function',
        function: { name: x.name, arguments: x.arguments } })) },
      ...acc.map((x) => ({ role: 'tool', tool_call_id: x.id, content: `${x.name} says 20C` })),
    ] });
    assert.equal(follow.choices[0].message.content, 'w1 w2 w3');
    assert.equal(follow.choices[0].finish_reason, 'stop');
    const input = sent(alias).at(-1).body.input;
    const fc = input.filter((i) => i.type === 'function_call');
    const out = input.filter((i) => i.type === 'function_call_output');
    assert.deepEqual(fc.map((i) => i.call_id), acc.map((x) => x.id));
    assert.deepEqual(out.map((i) => i.call_id), acc.map((x) => x.id), 'each result paired by call_id');
  });

  test(`${alias}: the Anthropic SDK's messages.create and messages.stream through /responses`, async () => {
    const before = sent(alias).length;
    const m = await ant.messages.create({ model: alias, max_tokens: 64, system: 'be brief',
      messages: [{ role: 'user', content: 'say hi mock:words=4' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content[0].type, 'text');
    assert.equal(m.content[0].text, 'w1 w2 w3 w4');
    assert.equal(m.stop_reason, 'end_turn');
    assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens === 4, JSON.stringify(m.usage));
    const st = ant.messages.stream({ model: alias, max_tokens: 64, system: 'be brief',
      messages: [{ role: 'user', content: 'say hi mock:words=4' }] });
    const fm = await st.finalMessage();
    assert.equal(fm.content[0].text, m.content[0].text);
    assert.equal(fm.stop_reason, 'end_turn');
    assert.equal(fm.usage.input_tokens, m.usage.input_tokens);
    assert.equal(fm.usage.output_tokens, m.usage.output_tokens);
    const t = await ant.messages.create({ model: alias, max_tokens: 64, messages: [{ role: 'user',
      content: 'weather? mock:tool=get_weather' }],
    tools: [{ name: 'get_weather', description: 'weather', input_schema: tools[0].function.parameters }] });
    assert.equal(t.stop_reason, 'tool_use');
    const tu = t.content.find((b) => b.type === 'tool_use');
    assert.equal(tu?.name, 'get_weather', JSON.stringify(t));
    assert.equal(tu.input.q, 'mock');
    const mine = sent(alias).slice(before);
    assert.equal(mine.length, 3);
    for (const q of mine) {
      assert.match(q.path, /\/responses$/);
      assert.equal(q.body.store, false);
    }
  });
}

test('usage and cost are recorded for every call, equal streamed and not', async () => {
  const input = 'say hi mock:words=5 mock:cached=3 mock:reasoning=2';
  const before = Object.fromEntries(Object.keys(ALIASES).map((a) => [a, sent(a).length]));
  for (const alias of Object.keys(ALIASES)) {
    const messages = [{ role: 'user', content: input }];
    const r = await oai.chat.completions.create({ model: alias, messages });
    assert.equal(r.usage.prompt_tokens_details?.cached_tokens, 3, JSON.stringify(r.usage));
    assert.equal(r.usage.completion_tokens_details?.reasoning_tokens, 2, JSON.stringify(r.usage));
    const s = await oai.chat.completions.create({ model: alias, messages, stream: true });
    for await (const c of s) assert.equal(c.usage ?? null, null, 'no usage chunk the client did not ask for');
    await ant.messages.create({ model: alias, max_tokens: 64, messages });
    await ant.messages.stream({ model: alias, max_tokens: 64, messages }).finalMessage();
  }
  for (const alias of Object.keys(ALIASES)) {
    const mine = sent(alias).slice(before[alias]);
    assert.equal(mine.length, 4);
    for (const q of mine) assert.match(q.path, /\/responses$/, `${alias}: ${q.path}`);
  }
  const n = Object.keys(ALIASES).length * 4;
  const rows = await keyEvents(cp, admin, tenant, key, (data) => {
    // this test's calls: the only ones whose provider reported reasoning tokens
    const mine = data.filter((e) => e.request_id && e.status === 200 && e.reasoning_tokens > 0);
    return mine.length >= n ? mine : null;
  });
  for (const alias of Object.keys(ALIASES)) {
    const evs = rows.filter((e) => e.model === alias);
    const endpoints = [...new Set(evs.map((e) => e.endpoint))].sort();
    assert.deepEqual(endpoints, ['chat.completions', 'messages'], `${alias}: the endpoints the client called`);
    for (const ep of endpoints) {
      const pair = evs.filter((e) => e.endpoint === ep);
      assert.equal(pair.length, 2, `${alias} ${ep}: ${JSON.stringify(pair)}`);
      const { s, j } = streamedAndNot(pair, `${alias} ${ep}`);
      assert.equal(s.provider, ids[ALIASES[alias][0]]);
      assert.ok(s.prompt_tokens > 0 && s.completion_tokens === 7, `${alias} ${ep}: ${JSON.stringify(s)}`);
      assert.equal(s.cached_tokens, 3, `${alias} ${ep}: cached tokens recorded`);
      assert.equal(s.reasoning_tokens, 2, `${alias} ${ep}: reasoning tokens recorded`);
      assert.ok(Number(s.cost_usd) > 0, `${alias} ${ep}: priced: ${JSON.stringify(s)}`);
      assertSameUsage(s, j, `${alias} ${ep}`);
    }
  }
});
