// Self-test of the mock OpenAI provider, straight over HTTP (no gateway involved).
// Run: node --test tests/mocks/openai.test.mjs
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startOpenAIMock, waitFor } from './openai.mjs';

const KEY = 'sk-upstream-test';
let mock;

before(async () => { mock = await startOpenAIMock(); });
after(async () => { await mock.close(); });
beforeEach(() => mock.reset());

// Raw HTTP so tests see exactly what went over the wire, including truncated bodies.
function call(method, path, body, { key = KEY, onResponse } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'content-type': 'application/json' };
    if (key) headers.authorization = `Bearer ${key}`;
    const req = http.request({ host: '127.0.0.1', port: mock.port, method, path, headers, agent: false }, (res) => {
      let text = '';
      let error = null;
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('error', (e) => { error = e; });
      res.on('close', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* SSE or truncated */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json, complete: res.complete, error });
      });
      onResponse?.(res, req);
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.message === 'socket hang up' ? resolve({ status: 0, error: e }) : reject(e)));
    req.end(payload);
  });
}

const chatBody = (content, extra = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }], ...extra });

// SSE -> array of parsed chunks, plus whether [DONE] arrived.
function sse(text) {
  const data = text.split('\n\n').filter(Boolean).map((e) => { assert.ok(e.startsWith('data: '), `bad event ${JSON.stringify(e)}`); return e.slice(6); });
  const done = data.at(-1) === '[DONE]';
  return { chunks: data.filter((x) => x !== '[DONE]').map((x) => JSON.parse(x)), done };
}

test('missing or wrong key -> 401 invalid_api_key', async () => {
  for (const key of [null, 'sk-wrong-key-123']) {
    const r = await call('POST', '/v1/chat/completions', chatBody('hi'), { key });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'invalid_api_key');
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, null);
    assert.match(r.json.error.message, /^Incorrect API key provided/);
    assert.ok(!r.json.error.message.includes('sk-wrong-key-123'), 'key must be masked');
  }
});

test('non-streaming chat completion shape and usage', async () => {
  const r = await call('POST', '/v1/chat/completions', chatBody('hello there'));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/json/);
  const c = r.json;
  assert.match(c.id, /^chatcmpl-/);
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.model, 'gpt-4o-mini');
  assert.equal(typeof c.created, 'number');
  assert.equal(c.choices.length, 1);
  assert.deepEqual(c.choices[0].message.role, 'assistant');
  assert.equal(c.choices[0].message.content, 'Hello from the mock provider.');
  assert.equal(c.choices[0].message.refusal, null);
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.choices[0].logprobs, null);
  // ceil((8 + 11) / 4) + 3*2 = 5 + 6
  assert.equal(c.usage.prompt_tokens, 11);
  assert.equal(c.usage.completion_tokens, 5);
  assert.equal(c.usage.total_tokens, 16);
  assert.deepEqual(c.usage.prompt_tokens_details, { cached_tokens: 0, audio_tokens: 0 });
  assert.equal(c.usage.completion_tokens_details.reasoning_tokens, 0);
  assert.equal(mock.requests.length, 1);
  assert.equal(mock.requests[0].body.messages[1].content, 'hello there');
  assert.equal(mock.requests[0].headers.authorization, `Bearer ${KEY}`);
  assert.deepEqual(mock.stats(), { requests: 1, aborted: 0, active: 0, completed: 1, dropped: 0 });
});

test('stream without include_usage: no usage field at all', async () => {
  const r = await call('POST', '/v1/chat/completions', chatBody('hi', { stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const { chunks, done } = sse(r.text);
  assert.ok(done);
  assert.equal(chunks.length, 1 + 5 + 1);
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? '').join(''), 'Hello from the mock provider.');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.deepEqual(chunks.at(-1).choices[0].delta, {});
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.ok(!('usage' in c));
  }
  assert.ok(!r.text.includes('"usage"'));
});

test('stream with include_usage: usage:null everywhere, then a choices:[] usage chunk; equals non-stream usage', async () => {
  const text = 'same body mock:words=7 mock:cached=2 mock:reasoning=3';
  const plain = await call('POST', '/v1/chat/completions', chatBody(text));
  const r = await call('POST', '/v1/chat/completions', chatBody(text, { stream: true, stream_options: { include_usage: true } }));
  const { chunks, done } = sse(r.text);
  assert.ok(done);
  assert.equal(chunks.length, 1 + 7 + 1 + 1);
  for (const c of chunks.slice(0, -1)) {
    assert.equal(c.usage, null);
    assert.equal(c.choices.length, 1);
  }
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, plain.json.usage);
  assert.equal(last.usage.completion_tokens, 7 + 3);
  assert.equal(last.usage.prompt_tokens_details.cached_tokens, 2);
  assert.equal(last.usage.completion_tokens_details.reasoning_tokens, 3);
  assert.equal(plain.json.choices[0].message.content, 'w1 w2 w3 w4 w5 w6 w7');
});

test('mock:usage_in_last_choice puts usage on the finish_reason chunk', async () => {
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:usage_in_last_choice', { stream: true, stream_options: { include_usage: true } }));
  const { chunks } = sse(r.text);
  const last = chunks.at(-1);
  assert.equal(last.choices[0].finish_reason, 'stop');
  assert.equal(last.usage.completion_tokens, 5);
  assert.ok(chunks.every((c) => c.choices.length === 1));
});

test('mock:split delivers the same byte stream in tiny pieces', async () => {
  const body = chatBody('x', { stream: true, stream_options: { include_usage: true } });
  const whole = await call('POST', '/v1/chat/completions', body);
  const pieces = [];
  const split = await call('POST', '/v1/chat/completions', { ...body, messages: [...body.messages, { role: 'user', content: 'mock:split' }] }, {
    onResponse: (res) => res.on('data', (c) => pieces.push(c)),
  });
  const norm = (t) => sse(t).chunks.map((c) => ({ ...c, id: 0, created: 0, usage: c.usage && { ...c.usage, prompt_tokens: 0, total_tokens: 0 } }));
  assert.deepEqual(norm(split.text), norm(whole.text));
  assert.ok(pieces.length > 200, `expected many small reads, got ${pieces.length}`);
});

test('legacy completions, plain and streamed', async () => {
  const plain = await call('POST', '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi' });
  assert.equal(plain.json.object, 'text_completion');
  assert.equal(plain.json.choices[0].text, 'Hello from the mock provider.');
  assert.equal(plain.json.usage.prompt_tokens, 2);
  const r = await call('POST', '/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi', stream: true, stream_options: { include_usage: true } });
  const { chunks, done } = sse(r.text);
  assert.ok(done);
  assert.ok(chunks.every((c) => c.object === 'text_completion'));
  assert.equal(chunks.slice(0, -1).map((c) => c.choices[0].text).join(''), 'Hello from the mock provider.');
  assert.deepEqual(chunks.at(-1).usage, plain.json.usage);
});

test('embeddings: base64 decodes to the float vectors', async () => {
  const input = ['alpha', 'beta'];
  const f = await call('POST', '/v1/embeddings', { model: 'text-embedding-3-small', input });
  const b = await call('POST', '/v1/embeddings', { model: 'text-embedding-3-small', input, encoding_format: 'base64' });
  assert.equal(f.json.object, 'list');
  assert.equal(f.json.model, 'text-embedding-3-small');
  assert.equal(f.json.data.length, 2);
  assert.deepEqual(f.json.usage, { prompt_tokens: 3, total_tokens: 3 }); // ceil(5/4) + ceil(4/4)
  assert.notDeepEqual(f.json.data[0].embedding, f.json.data[1].embedding);
  for (const i of [0, 1]) {
    assert.equal(f.json.data[i].object, 'embedding');
    assert.equal(f.json.data[i].index, i);
    assert.equal(f.json.data[i].embedding.length, 8);
    assert.ok(f.json.data[i].embedding.every((x) => x >= -1 && x <= 1));
    const buf = Buffer.from(b.json.data[i].embedding, 'base64');
    const decoded = Array.from({ length: buf.length / 4 }, (_, k) => buf.readFloatLE(k * 4));
    assert.deepEqual(decoded, f.json.data[i].embedding);
  }
  const single = await call('POST', '/v1/embeddings', { model: 'm', input: 'alpha' });
  assert.deepEqual(single.json.data[0].embedding, f.json.data[0].embedding);
});

test('models list, 404 and malformed JSON in OpenAI error shape', async () => {
  const m = await call('GET', '/v1/models');
  assert.equal(m.json.object, 'list');
  assert.ok(m.json.data.length > 0 && m.json.data.every((x) => x.object === 'model'));
  const nf = await call('POST', '/v1/nope', {});
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error.type, 'invalid_request_error');
  const bad = await call('POST', '/v1/chat/completions', '{"model": ');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.type, 'invalid_request_error');
});

test('mock:status and mock:delay_ms', async () => {
  const t0 = Date.now();
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:status=429 mock:delay_ms=50', { stream: true }));
  assert.ok(Date.now() - t0 >= 45);
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.match(r.json.error.message, /mock/);
  const s = await call('POST', '/v1/chat/completions', chatBody('mock:status=503'));
  assert.equal(s.status, 503);
  assert.equal(s.json.error.type, 'server_error');
  assert.equal(s.headers['retry-after'], undefined);
});

test('mock:cut_after=3 delivers 3 events then kills the connection', async () => {
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:cut_after=3', { stream: true }));
  assert.equal(r.status, 200);
  assert.equal(r.complete, false);
  const { chunks, done } = sse(r.text);
  assert.equal(done, false);
  assert.equal(chunks.length, 3);
  await waitFor(() => mock.stats().dropped === 1);
  assert.equal(mock.stats().aborted, 0);
});

test('mock:drop -> no response at all', async () => {
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:drop'));
  assert.equal(r.status, 0);
  await waitFor(() => mock.stats().dropped === 1);
});

test('mock:stall + client abort counts as aborted', async () => {
  const req = http.request({ host: '127.0.0.1', port: mock.port, method: 'POST', path: '/v1/chat/completions', agent: false,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify(chatBody('mock:stall')));
  await waitFor(() => mock.stats().active === 1);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(mock.stats().aborted, 0);
  req.destroy();
  await waitFor(() => mock.stats().aborted === 1, 1000);
  assert.deepEqual(mock.stats(), { requests: 1, aborted: 1, active: 0, completed: 0, dropped: 0 });
});

test('client disconnect mid-stream (mock:chunk_delay_ms) counts as aborted', async () => {
  let got = '';
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:words=100 mock:chunk_delay_ms=20', { stream: true }), {
    onResponse: (res, req) => res.on('data', (c) => { got += c; if (got.split('\n\n').length > 3) req.destroy(); }),
  });
  assert.equal(r.complete, false);
  await waitFor(() => mock.stats().aborted === 1, 1000);
  assert.equal(mock.stats().active, 0);
});

test('control API over HTTP', async () => {
  await call('POST', '/v1/chat/completions', chatBody('hi'));
  const st = await call('GET', '/_mock/stats', undefined, { key: null });
  assert.deepEqual(st.json, { requests: 1, aborted: 0, active: 0, completed: 1, dropped: 0 });
  const rq = await call('GET', '/_mock/requests', undefined, { key: null });
  assert.equal(rq.json.length, 1);
  assert.equal(rq.json[0].path, '/v1/chat/completions');
  await call('POST', '/_mock/reset', undefined, { key: null });
  assert.equal(mock.requests.length, 0);
  assert.equal(mock.stats().requests, 0);
});

// The official SDK is the strictest judge of the wire format; skipped if `npm ci` was not run.
test('the openai SDK accepts the mock', async (t) => {
  let OpenAI;
  try { ({ default: OpenAI } = await import('openai')); } catch { return t.skip('openai package not installed'); }
  const client = new OpenAI({ apiKey: KEY, baseURL: mock.url, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.choices[0].message.content, 'Hello from the mock provider.');
  const s = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'hi mock:split' }] });
  let text = '';
  let usage;
  for await (const c of s) { text += c.choices[0]?.delta?.content ?? ''; usage = c.usage ?? usage; }
  assert.equal(text, 'Hello from the mock provider.');
  assert.equal(usage.completion_tokens, r.usage.completion_tokens);
  // The SDK asks for base64 embeddings by default and decodes them itself.
  const e = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'alpha' });
  assert.equal(e.data[0].embedding.length, 8);
  await assert.rejects(client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'mock:status=429' }] }),
    (err) => err.status === 429 && err.constructor.name === 'RateLimitError');
});

test('mock:tools=2 answers two tool calls, streamed with ids and names first and arguments in pieces', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } },
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } }];
  const r = await call('POST', '/v1/chat/completions', chatBody('mock:tools=2', { tools }));
  const m = r.json.choices[0];
  assert.equal(m.finish_reason, 'tool_calls');
  assert.deepEqual(m.message.tool_calls.map((c) => c.function.name), ['get_weather', 'get_time']);
  const s = await call('POST', '/v1/chat/completions', chatBody('mock:tools=2', { tools, stream: true }));
  const calls = [];
  for (const line of s.text.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    for (const tc of JSON.parse(line.slice(6)).choices[0]?.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { name: '', args: '' };
      if (tc.function?.name) calls[tc.index].name = tc.function.name;
      calls[tc.index].args += tc.function?.arguments ?? '';
    }
  }
  assert.deepEqual(calls.map((c) => c.name), ['get_weather', 'get_time']);
  assert.deepEqual(calls.map((c) => JSON.parse(c.args).n), [0, 1]);
});

// ---- Responses API ----------------------------------------------------------------------

// SSE of the Responses API -> [{event, data}], asserting the framing OpenAI uses: an `event:`
// line equal to data.type, sequence_number 0, 1, 2, ... and no [DONE].
function responseEvents(text) {
  const events = text.split('\n\n').filter(Boolean).map((e) => {
    const m = /^event: ([a-z_.]+)\ndata: (.*)$/s.exec(e);
    assert.ok(m, `bad event ${JSON.stringify(e)}`);
    const data = JSON.parse(m[2]);
    assert.equal(data.type, m[1]);
    return data;
  });
  events.forEach((e, i) => assert.equal(e.sequence_number, i));
  return events;
}

async function sdk(t) {
  try {
    const { default: OpenAI } = await import('openai');
    return new OpenAI({ apiKey: KEY, baseURL: mock.url, maxRetries: 0 });
  } catch {
    t.skip('openai package not installed');
    return null;
  }
}

const fnTools = [
  { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { q: { type: 'string' } } }, strict: false },
  { type: 'function', name: 'get_time', parameters: { type: 'object', properties: { q: { type: 'string' } } }, strict: false },
];

test('responses: a response object with output_text parts and Responses usage names', async () => {
  const r = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', instructions: 'be brief', input: 'hello there mock:cached=2 mock:reasoning=3' });
  assert.equal(r.status, 200);
  const o = r.json;
  assert.match(o.id, /^resp_/);
  assert.equal(o.object, 'response');
  assert.equal(o.status, 'completed');
  assert.equal(o.model, 'gpt-4o-mini');
  assert.equal(o.instructions, 'be brief');
  assert.equal(o.store, true);
  assert.equal(o.output.length, 1);
  const [m] = o.output;
  assert.match(m.id, /^msg_/);
  assert.deepEqual([m.type, m.role, m.status], ['message', 'assistant', 'completed']);
  assert.deepEqual(m.content, [{ type: 'output_text', annotations: [], logprobs: [], text: 'Hello from the mock provider.' }]);
  // ceil((8 + 41) / 4) + 3 (instructions) + 3 (one message) = 13 + 6; 5 words + 3 reasoning
  assert.deepEqual(o.usage, {
    input_tokens: 19, input_tokens_details: { cached_tokens: 2 },
    output_tokens: 8, output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 27,
  });
  assert.ok(!('prompt_tokens' in o.usage));
});

test('responses: the stream is the events OpenAI sends, in order, and assembles to the same response', async () => {
  const body = { model: 'gpt-4o-mini', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi mock:words=3 mock:cached=1' }] }] };
  const plain = await call('POST', '/v1/responses', body);
  const r = await call('POST', '/v1/responses', { ...body, stream: true });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  assert.ok(!r.text.includes('[DONE]'));
  const ev = responseEvents(r.text);
  assert.deepEqual(ev.map((e) => e.type), [
    'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed',
  ]);
  assert.equal(ev[0].response.status, 'in_progress');
  assert.deepEqual(ev[0].response.output, []);
  assert.equal(ev[0].response.usage, null);
  const item = ev[2].item;
  assert.deepEqual([item.type, item.status, item.content], ['message', 'in_progress', []]);
  for (const e of ev.slice(3, 9)) assert.deepEqual([e.item_id, e.output_index, e.content_index], [item.id, 0, 0]);
  assert.equal(ev.slice(4, 7).map((e) => e.delta).join(''), 'w1 w2 w3');
  assert.equal(ev[7].text, 'w1 w2 w3');
  const done = ev.at(-1).response;
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.output, [ev[9].item]);
  assert.deepEqual(done.usage, plain.json.usage);
  assert.deepEqual(done.output[0].content, plain.json.output[0].content);
});

test('responses: the openai SDK accepts the mock (create, stream + finalResponse, errors)', async (t) => {
  const client = await sdk(t);
  if (!client) return;
  const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi mock:split mock:reasoning=2' });
  assert.equal(r.output_text, 'Hello from the mock provider.');
  assert.equal(r.usage.output_tokens_details.reasoning_tokens, 2);
  const types = [];
  const deltas = [];
  const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'hi mock:split mock:reasoning=2' });
  stream.on('event', (e) => types.push(e.type));
  stream.on('response.output_text.delta', (e) => deltas.push(e.delta));
  const f = await stream.finalResponse();
  assert.equal(f.output_text, r.output_text);
  assert.equal(deltas.join(''), r.output_text);
  assert.deepEqual(f.usage, r.usage);
  assert.equal(types.at(-1), 'response.completed');
  await assert.rejects(client.responses.create({ model: 'gpt-4o-mini', input: 'mock:status=429' }),
    (err) => err.status === 429 && err.constructor.name === 'RateLimitError');
  await assert.rejects(client.responses.create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: 'resp_nope' }),
    (err) => err.status === 400 && err.code === 'previous_response_not_found' && err.param === 'previous_response_id');
});

test('responses: mock:tools=2 answers two function calls, streamed by output_index, accepted by the SDK', async (t) => {
  const plain = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'weather? mock:tools=2', tools: fnTools });
  const calls = plain.json.output;
  assert.deepEqual(calls.map((c) => [c.type, c.name, c.status]), [['function_call', 'get_weather', 'completed'], ['function_call', 'get_time', 'completed']]);
  for (const c of calls) {
    assert.match(c.id, /^fc_/);
    assert.match(c.call_id, /^call_/);
    assert.equal(typeof c.arguments, 'string');
  }
  assert.deepEqual(calls.map((c) => JSON.parse(c.arguments).n), [0, 1]);
  assert.equal(plain.json.usage.output_tokens, 10);

  const s = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'weather? mock:tools=2', tools: fnTools, stream: true });
  const ev = responseEvents(s.text);
  const args = ['', ''];
  for (const e of ev.filter((x) => x.type === 'response.function_call_arguments.delta')) args[e.output_index] += e.delta;
  assert.deepEqual(args.map((a) => JSON.parse(a).n), [0, 1]);
  assert.deepEqual(ev.filter((x) => x.type === 'response.output_item.added').map((x) => [x.output_index, x.item.arguments]), [[0, ''], [1, '']]);

  const client = await sdk(t);
  if (!client) return;
  const f = await client.responses.stream({ model: 'gpt-4o-mini', input: 'weather? mock:tools=2 mock:split', tools: fnTools }).finalResponse();
  assert.deepEqual(f.output.map((c) => [c.name, JSON.parse(c.arguments).n]), [['get_weather', 0], ['get_time', 1]]);
});

test('responses: stored state: previous_response_id, a tool result, GET, input_items, DELETE, store:false', async (t) => {
  const client = await sdk(t);
  if (!client) return;
  const first = await client.responses.create({ model: 'gpt-4o-mini', input: 'weather? mock:tool', tools: fnTools });
  const [fc] = first.output;
  assert.equal(fc.type, 'function_call');
  const result = { type: 'function_call_output', call_id: fc.call_id, output: '{"temp":21}' };
  // The follow-up ends with a tool result: the mock answers with text.
  const next = await client.responses.create({ model: 'gpt-4o-mini', previous_response_id: first.id, input: [result], tools: fnTools });
  assert.equal(next.output_text, 'Hello from the mock provider.');
  assert.equal(next.previous_response_id, first.id);
  // The same turn sent statelessly costs the same input tokens.
  const stateless = await client.responses.create({ model: 'gpt-4o-mini', tools: fnTools,
    input: [{ role: 'user', content: 'weather? mock:tool' }, { type: 'function_call', call_id: fc.call_id, name: fc.name, arguments: fc.arguments }, result] });
  assert.equal(stateless.usage.input_tokens, next.usage.input_tokens);
  assert.equal(stateless.output_text, next.output_text);
  // item_reference resolves the stored items
  const byRef = await client.responses.create({ model: 'gpt-4o-mini', tools: fnTools,
    input: [{ type: 'item_reference', id: fc.id }, result] });
  assert.equal(byRef.output_text, 'Hello from the mock provider.');

  const got = await client.responses.retrieve(next.id);
  assert.deepEqual(got.output, next.output);
  const items = await client.responses.inputItems.list(next.id, { order: 'asc' });
  assert.deepEqual(items.data.map((i) => [i.type, i.call_id]), [['function_call_output', fc.call_id]]);
  assert.ok(items.data.every((i) => typeof i.id === 'string' && i.id));
  const raw = await call('GET', `/v1/responses/${first.id}/input_items`);
  assert.deepEqual(raw.json.data.map((i) => i.type), ['message']);
  assert.deepEqual(raw.json.data[0].content, [{ type: 'input_text', text: 'weather? mock:tool' }]);
  assert.equal(raw.json.has_more, false);

  const del = await client.responses.delete(next.id);
  assert.deepEqual(del, { id: next.id, object: 'response.deleted', deleted: true });
  await assert.rejects(client.responses.retrieve(next.id), (err) => err.status === 404);
  const del2 = await call('DELETE', `/v1/responses/${first.id}`);
  assert.deepEqual(del2.json, { id: first.id, object: 'response.deleted', deleted: true });
  assert.equal((await call('DELETE', `/v1/responses/${first.id}`)).status, 404);

  await assert.rejects(client.responses.create({ model: 'gpt-4o-mini', store: false, input: [{ type: 'item_reference', id: fc.id }, result] }),
    (err) => err.status === 404 && /Items are not persisted when `store` is set to false/.test(err.message));
  await assert.rejects(client.responses.create({ model: 'gpt-4o-mini', store: false, input: [{ type: 'reasoning', id: 'rs_1', summary: [] }, { role: 'user', content: 'x' }] }),
    (err) => err.status === 404);
  const unstored = await client.responses.create({ model: 'gpt-4o-mini', input: 'hi', store: false });
  assert.equal(unstored.store, false);
  await assert.rejects(client.responses.retrieve(unstored.id), (err) => err.status === 404);
  await assert.rejects(client.responses.create({ model: 'gpt-4o-mini', input: 'x', previous_response_id: unstored.id }),
    (err) => err.status === 400 && err.code === 'previous_response_not_found');
});

test('responses: failures: mock:fail_after ends with response.failed, cut_after cuts, stall and delay hold', async (t) => {
  const failed = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'hi mock:fail_after=5', stream: true });
  const ev = responseEvents(failed.text);
  assert.equal(ev.length, 6);
  assert.equal(ev.at(-1).type, 'response.failed');
  assert.equal(ev.at(-1).response.status, 'failed');
  assert.equal(ev.at(-1).response.error.code, 'server_error');
  const cut = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'hi mock:cut_after=3', stream: true });
  assert.equal(cut.text.split('\n\n').filter(Boolean).length, 3);
  assert.equal(mock.stats().dropped, 1);
  const t0 = Date.now();
  const slow = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'hi mock:delay_ms=60' });
  assert.ok(Date.now() - t0 >= 55);
  assert.equal(slow.status, 200);
  const inc = await call('POST', '/v1/responses', { model: 'gpt-4o-mini', input: 'hi mock:words=9', max_output_tokens: 4 });
  assert.equal(inc.json.status, 'incomplete');
  assert.deepEqual(inc.json.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(inc.json.output[0].content[0].text, 'w1 w2 w3 w4');

  const client = await sdk(t);
  if (!client) return;
  const f = await client.responses.stream({ model: 'gpt-4o-mini', input: 'hi mock:fail_after=6' }).finalResponse();
  assert.equal(f.status, 'failed');
  await assert.rejects(client.responses.stream({ model: 'gpt-4o-mini', input: 'hi mock:cut_after=4' }).finalResponse());
  const ac = new AbortController();
  const p = client.responses.create({ model: 'gpt-4o-mini', input: 'mock:stall' }, { signal: ac.signal });
  await waitFor(() => mock.stats().active === 1);
  ac.abort();
  await assert.rejects(p);
  await waitFor(() => mock.stats().aborted === 1);
});

test('responses: bad requests in OpenAI\'s error shape', async () => {
  const noModel = await call('POST', '/v1/responses', { input: 'x' });
  assert.equal(noModel.status, 400);
  assert.equal(noModel.json.error.param, 'model');
  const missing = await call('GET', '/v1/responses/resp_nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.type, 'not_found_error');
  const ref = await call('POST', '/v1/responses', { model: 'm', input: [{ type: 'item_reference', id: 'msg_nope' }] });
  assert.equal(ref.status, 404);
  const auth = await call('POST', '/v1/responses', { model: 'm', input: 'x' }, { key: 'sk-bad-key-123456' });
  assert.equal(auth.status, 401);
});
