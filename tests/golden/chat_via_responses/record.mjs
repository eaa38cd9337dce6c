// Records the reverse-path conformance transcripts in this directory (tests/golden/README.md):
// chat completions and /v1/messages sent to a model that serves only the Responses API
// (provider setting responses_api "responses", OpenAI and Azure kinds), so that the data plane
// translates them to the provider's /responses and its answer back. Each case goes through the
// real tollgate-data to the provider's mock through a recording proxy that keeps what the data
// plane sent upstream and what came back. Run from the repository root after a build, and read
// the diff before committing it:
//   TOLLGATE_BIN=$PWD/build-test/bin node tests/golden/chat_via_responses/record.mjs
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOpenAIMock } from '../../mocks/openai.mjs';
import { startAzureMock } from '../../mocks/azure.mjs';
import { startGateway, makeSnapshot } from '../../integration/lib/harness.mjs';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const NOW = 1764072000;
const KEY = 'tg-golden-key';

// the mocks' clock and random ids, in what they answer and what the client gets: the suite's
const atNow = (text) => text.replace(/"(created_at|completed_at|created)":\d+/g, (m, k) => `"${k}":${NOW}`);

// A proxy in front of a mock: forwards and keeps the exchange (the answer at the suite's clock).
function recorder(target) {
  const rec = { last: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const u = new URL(target);
      const up = http.request({ host: u.hostname, port: u.port, method: req.method, path: req.url,
        headers: req.headers }, (ur) => {
        const parts = [];
        ur.on('data', (c) => parts.push(c));
        ur.on('error', () => {});
        ur.on('close', () => {
          const answer = Buffer.from(atNow(Buffer.concat(parts).toString('utf8')));
          rec.last = { path: req.url, body: body.toString('utf8'), status: ur.statusCode,
            ctype: ur.headers['content-type'] ?? '', answer };
          res.writeHead(ur.statusCode, { 'content-type': ur.headers['content-type'] ?? 'application/json',
            'content-length': answer.length });
          res.end(answer);
        });
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    rec.url = `http://127.0.0.1:${server.address().port}`;
    rec.close = () => new Promise((r) => server.close(r));
    resolve(rec);
  }));
}

const chatTools = [
  { type: 'function', function: { name: 'get_weather', description: 'weather in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } },
  { type: 'function', function: { name: 'get_time', description: 'time in a city',
    parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
];
const msgTools = chatTools.map((t) => ({ name: t.function.name, description: t.function.description,
  input_schema: t.function.parameters }));

// endpoint -> case -> the client's body (without model)
const CASES = {
  chat: {
    text: { title: 'a text answer, not streamed',
      body: { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'say hi mock:words=3' }], max_tokens: 50 } },
    two_tool_calls_stream: { title: 'two parallel tool calls, streamed: two tool_calls at index 0 and 1',
      body: { tools: chatTools, messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }], stream: true } },
    tool_result_followup: { title: 'the follow-up of two tool calls: the calls and their results become function_call and function_call_output items, answered with text',
      body: { tools: chatTools, messages: [
        { role: 'user', content: 'weather and time? mock:words=3' },
        { role: 'assistant', content: null, tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"q":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"q":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_a', content: '{"sky":"clear"}' },
        { role: 'tool', tool_call_id: 'call_b', content: '{"time":"12:00"}' }] } },
    error_mid_stream: { title: 'the provider fails the stream (response.failed) after some text: the client gets an error chunk',
      body: { messages: [{ role: 'user', content: 'say hi mock:fail_after=5 mock:words=4' }], stream: true } },
    usage_cached_reasoning_stream: { title: 'usage with cached and reasoning tokens, streamed with include_usage',
      body: { messages: [{ role: 'user', content: 'say hi mock:words=2 mock:cached=3 mock:reasoning=2' }], stream: true,
        stream_options: { include_usage: true } } },
  },
  messages: {
    text: { title: 'a text answer, not streamed',
      body: { system: 'be brief', messages: [{ role: 'user', content: 'say hi mock:words=3' }], max_tokens: 50 } },
    two_tool_calls_stream: { title: 'two parallel tool calls, streamed: two tool_use blocks',
      body: { tools: msgTools, max_tokens: 100, messages: [{ role: 'user', content: 'weather and time? mock:tools=2' }], stream: true } },
    tool_result_followup: { title: 'the follow-up of two tool calls: tool_use and tool_result blocks become function_call and function_call_output items, answered with text',
      body: { tools: msgTools, max_tokens: 100, messages: [
        { role: 'user', content: 'weather and time? mock:words=3' },
        { role: 'assistant', content: [
          { type: 'tool_use', id: 'call_a', name: 'get_weather', input: { q: 'Paris' } },
          { type: 'tool_use', id: 'call_b', name: 'get_time', input: { q: 'Paris' } }] },
        { role: 'user', content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: '{"sky":"clear"}' },
          { type: 'tool_result', tool_use_id: 'call_b', content: '{"time":"12:00"}' }] }] } },
    error_mid_stream: { title: 'the provider fails the stream (response.failed) after some text: the client gets an error event',
      body: { max_tokens: 100, messages: [{ role: 'user', content: 'say hi mock:fail_after=5 mock:words=4' }], stream: true } },
    usage_cached_reasoning_stream: { title: 'usage with cached and reasoning tokens, streamed',
      body: { max_tokens: 100, messages: [{ role: 'user', content: 'say hi mock:words=2 mock:cached=3 mock:reasoning=2' }], stream: true } },
  },
};
const PATHS = { chat: '/v1/chat/completions', messages: '/v1/messages' };

function sse(text) {
  return text.split(/\n\n/).filter((e) => e.trim()).map((e) => {
    let name = null;
    const data = [];
    for (const l of e.split('\n')) {
      if (l.startsWith('event:')) name = l.slice(6).trim();
      else if (l.startsWith('data:')) data.push(l.slice(5).replace(/^ /, ''));
    }
    let d = data.join('\n');
    try { d = JSON.parse(d); } catch { /* a raw payload */ }
    return name ? { event: name, data: d } : d;
  });
}

const mocks = { openai: await startOpenAIMock(), azure: await startAzureMock() };
const recs = {};
for (const k of Object.keys(mocks)) recs[k] = await recorder(new URL(mocks[k].url).origin);
const basePath = (k) => new URL(mocks[k].url).pathname.replace(/\/$/, '');
const goldenProvider = {
  openai: { id: 'oa', kind: 'openai', api_key: 'sk-upstream-test', responses_api: 'responses' },
  azure: { id: 'az', kind: 'azure', api_key: mocks.azure.apiKey, responses_api: 'responses' },
};
const MODEL = 'gpt-4o-mini';
const providers = Object.entries(goldenProvider).map(([k, p]) => ({ ...p, base_url: recs[k].url + basePath(k) }));
const routes = Object.keys(goldenProvider).map((k) => ({ alias: k, targets: [{ provider: goldenProvider[k].id, model: MODEL }], retry: { max_attempts: 1 } }));
const gw = await startGateway({ workers: 1, snapshot: makeSnapshot({ mockUrl: mocks.openai.url, providers, routes, prices: [],
  keys: { [KEY]: { models: Object.keys(goldenProvider) } } }) });

let n = 0;
try {
  for (const k of Object.keys(goldenProvider)) {
    for (const [ep, cases] of Object.entries(CASES)) {
      for (const [name, c] of Object.entries(cases)) {
        const body = { model: k, ...c.body };
        const res = await fetch(`${gw.url}${PATHS[ep]}`, { method: 'POST',
          headers: { authorization: `Bearer ${KEY}`, 'x-api-key': KEY, 'content-type': 'application/json', 'x-request-id': 'req-1' },
          body: JSON.stringify(body) });
        const text = await res.text();
        const up = recs[k].last;
        const usages = await gw.waitUsage((us) => us.filter((x) => x.request_id === 'req-1').length > n, 5000);
        const usage = usages.filter((x) => x.request_id === 'req-1')[n];
        n++;
        const g = {
          name: `${k} (responses_api "responses"): ${ep === 'chat' ? 'chat completions' : '/v1/messages'}: ${c.title}`,
          comment: `recorded by tests/golden/chat_via_responses/record.mjs`,
          provider: { ...goldenProvider[k], base_url: `http://upstream.test${basePath(k)}` },
          model: MODEL,
          endpoint: ep,
          request: body,
          expect_url: `http://upstream.test${up.path}`,
          expect_body: JSON.parse(up.body),
        };
        if (body.stream) {
          g.stream = up.answer.toString('utf8');
        } else {
          g.status = up.status;
          g.response = JSON.parse(up.answer.toString('utf8'));
        }
        if (body.stream && res.headers.get('content-type')?.startsWith('text/event-stream')) {
          g.expect_events = sse(atNow(text));
          if (name === 'error_mid_stream') g.expect_stream_error = true;
        } else {
          g.expect = JSON.parse(atNow(text));
        }
        if (usage.usage_source === 'provider') g.expect_usage = { prompt: usage.prompt_tokens, completion: usage.completion_tokens,
          cached: usage.cached_tokens, reasoning: usage.reasoning_tokens, total: usage.total_tokens };
        fs.writeFileSync(path.join(DIR, `${k}_${ep}_${name}.json`), JSON.stringify(g, null, 1) + '\n');
      }
    }
  }
} finally {
  await gw.stop();
  for (const r of Object.values(recs)) await r.close();
  for (const m of Object.values(mocks)) await m.close();
}
console.log(`wrote ${n} transcripts`);
