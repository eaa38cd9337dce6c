// Self-test of the mock Anthropic provider, straight over HTTP (no gateway involved).
// Run: node --test tests/mocks/anthropic.test.mjs
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startAnthropicMock } from './anthropic.mjs';

const KEY = 'sk-ant-test';
let mock;

before(async () => { mock = await startAnthropicMock(); });
after(async () => { await mock.close(); });
beforeEach(() => mock.reset());

function call(method, path, body, { key = KEY, version = '2023-06-01', bearer = false, port } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'content-type': 'application/json' };
    if (key && bearer) headers.authorization = `Bearer ${key}`;
    else if (key) headers['x-api-key'] = key;
    if (version) headers['anthropic-version'] = version;
    const req = http.request({ host: '127.0.0.1', port: port ?? mock.port, method, path, headers, agent: false }, (res) => {
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
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.message === 'socket hang up' ? resolve({ status: 0, error: e }) : reject(e)));
    req.end(payload);
  });
}

const msgBody = (content, extra = {}) => ({
  model: 'claude-3-5-haiku-20241022', max_tokens: 100, system: 'be brief',
  messages: [{ role: 'user', content }], ...extra,
});
const TOOLS = [
  { name: 'get_weather', description: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
  { name: 'get_time', input_schema: { type: 'object', properties: {} } },
];

// SSE text -> [{event, data}], checking the wire framing.
function sse(text) {
  return text.split('\n\n').filter(Boolean).map((e) => {
    const m = /^event: ([a-z_]+)\ndata: (.*)$/s.exec(e);
    assert.ok(m, `bad event ${JSON.stringify(e)}`);
    const data = JSON.parse(m[2]);
    assert.equal(data.type, m[1], 'event name matches data.type');
    return { event: m[1], data };
  });
}

test('missing or wrong key -> 401 authentication_error; Bearer works too', async () => {
  for (const key of [null, 'sk-wrong']) {
    const r = await call('POST', '/v1/messages', msgBody('hi'), { key });
    assert.equal(r.status, 401);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'authentication_error');
  }
  const ok = await call('POST', '/v1/messages', msgBody('hi'), { bearer: true });
  assert.equal(ok.status, 200);
});

test('missing anthropic-version -> 400 invalid_request_error', async () => {
  const r = await call('POST', '/v1/messages', msgBody('hi'), { version: null });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'invalid_request_error');
  assert.match(r.json.error.message, /anthropic-version/);
});

test('body checks: max_tokens required, no system role in messages', async () => {
  const { max_tokens: _, ...noMax } = msgBody('hi');
  let r = await call('POST', '/v1/messages', noMax);
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /max_tokens/);
  r = await call('POST', '/v1/messages', { ...msgBody('hi'), messages: [{ role: 'system', content: 'x' }] });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /role/);
});

test('non-streamed text answer: shape and deterministic usage', async () => {
  const r = await call('POST', '/v1/messages', msgBody('Hello there!'));
  assert.equal(r.status, 200);
  const m = r.json;
  assert.match(m.id, /^msg_mock\d{6}$/);
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.model, 'claude-3-5-haiku-20241022');
  assert.deepEqual(m.content, [{ type: 'text', text: 'Hello from the mock provider.' }]);
  assert.equal(m.stop_reason, 'end_turn');
  // 'be brief' (8) + 'Hello there!' (12) = 20 chars -> 5, + 3 per message (system counts) = 11
  assert.deepEqual(m.usage, { input_tokens: 11, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 5 });
  const [rec] = mock.requests();
  assert.equal(rec.headers['x-api-key'], KEY);
  assert.equal(rec.body.system, 'be brief');
});

test('mock:words and mock:cache_read; max_tokens cuts the text', async () => {
  let r = await call('POST', '/v1/messages', msgBody('mock:words=3 mock:cache_read=4'));
  assert.equal(r.json.content[0].text, 'w1 w2 w3');
  assert.equal(r.json.usage.output_tokens, 3);
  assert.equal(r.json.usage.cache_read_input_tokens, 4);
  // chars 8 + 30 = 38 -> 10, + 6 = 16, minus the 4 read from cache
  assert.equal(r.json.usage.input_tokens, 12);
  r = await call('POST', '/v1/messages', msgBody('mock:words=9', { max_tokens: 2 }));
  assert.equal(r.json.content[0].text, 'w1 w2');
  assert.equal(r.json.stop_reason, 'max_tokens');
});

test('streamed text answer: the real event sequence, deltas join to the text', async () => {
  const r = await call('POST', '/v1/messages', msgBody('Hello there! mock:cache_read=2', { stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const evs = sse(r.text);
  assert.deepEqual(evs.map((e) => e.event), [
    'message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta',
    'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop',
    'message_delta', 'message_stop',
  ]);
  const start = evs[0].data.message;
  assert.equal(start.usage.cache_read_input_tokens, 2);
  assert.equal(start.usage.output_tokens, 1);
  const text = evs.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('');
  assert.equal(text, 'Hello from the mock provider.');
  const md = evs.find((e) => e.event === 'message_delta').data;
  assert.equal(md.delta.stop_reason, 'end_turn');
  assert.equal(md.usage.output_tokens, 5);
  const ns = await call('POST', '/v1/messages', msgBody('Hello there! mock:cache_read=2'));
  assert.equal(start.usage.input_tokens, ns.json.usage.input_tokens, 'same usage in both modes');
});

test('tool use: one or two tool_use blocks after a text block, streamed in fragments', async () => {
  let r = await call('POST', '/v1/messages', msgBody('weather? mock:tool=get_weather', { tools: TOOLS }));
  assert.equal(r.json.stop_reason, 'tool_use');
  assert.equal(r.json.content.length, 2);
  assert.equal(r.json.content[0].text, 'Calling get_weather.');
  assert.equal(r.json.content[1].type, 'tool_use');
  assert.equal(r.json.content[1].name, 'get_weather');
  assert.deepEqual(r.json.content[1].input, { query: 'mock query 1', limit: 1 });
  assert.equal(r.json.usage.output_tokens, 2 + 5);

  r = await call('POST', '/v1/messages', msgBody('mock:tool=get_weather mock:tools=2', { tools: TOOLS, stream: true }));
  const evs = sse(r.text);
  const starts = evs.filter((e) => e.event === 'content_block_start').map((e) => e.data);
  assert.deepEqual(starts.map((s) => [s.index, s.content_block.type, s.content_block.name]), [
    [0, 'text', undefined], [1, 'tool_use', 'get_weather'], [2, 'tool_use', 'get_time'],
  ]);
  for (const idx of [1, 2]) {
    const json = evs.filter((e) => e.event === 'content_block_delta' && e.data.index === idx)
      .map((e) => e.data.delta.partial_json).join('');
    assert.deepEqual(JSON.parse(json), { query: `mock query ${idx}`, limit: idx });
  }
  assert.equal(evs.find((e) => e.event === 'message_delta').data.delta.stop_reason, 'tool_use');

  r = await call('POST', '/v1/messages', msgBody('mock:tool=get_weather'));
  assert.equal(r.json.content[0].type, 'text', 'no tools in the request: a text answer');
});

test('mock:status: Anthropic error shapes, retry-after', async () => {
  let r = await call('POST', '/v1/messages', msgBody('mock:status=529'));
  assert.equal(r.status, 529);
  assert.deepEqual(r.json.error, { type: 'overloaded_error', message: 'Overloaded' });
  assert.equal(r.json.type, 'error');
  r = await call('POST', '/v1/messages', msgBody('mock:status=429'));
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.equal(r.headers['retry-after'], '1');
  r = await call('POST', '/v1/messages', msgBody('mock:status=503 mock:retry_after=7'));
  assert.equal(r.status, 503);
  assert.equal(r.json.error.type, 'api_error');
  assert.equal(r.headers['retry-after'], '7');
});

test('mock:error_mid_stream sends an error event after the first delta', async () => {
  const r = await call('POST', '/v1/messages', msgBody('mock:error_mid_stream', { stream: true }));
  const evs = sse(r.text);
  assert.deepEqual(evs.map((e) => e.event), ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error']);
  assert.deepEqual(evs.at(-1).data.error, { type: 'overloaded_error', message: 'Overloaded' });
  assert.ok(r.complete);
});

test('mock:cut_after and mock:drop destroy the socket; counted as dropped', async () => {
  const r = await call('POST', '/v1/messages', msgBody('mock:cut_after=3', { stream: true }));
  assert.equal(r.complete ?? false, false);
  assert.equal(sse(r.text).length, 3);
  const d = await call('POST', '/v1/messages', msgBody('mock:drop'));
  assert.equal(d.status, 0);
  assert.equal(mock.stats().dropped, 2);
});

test('mock:split writes the same bytes in pieces', async () => {
  const whole = await call('POST', '/v1/messages', msgBody('x', { stream: true }));
  const split = await call('POST', '/v1/messages', msgBody('x mock:split', { stream: true }));
  const strip = (t) => t.replace(/msg_mock\d+/g, 'ID').replace(/"input_tokens":\d+/g, '');
  assert.equal(strip(split.text), strip(whole.text));
});

test('control API: stats, requests, reset', async () => {
  await call('POST', '/v1/messages', msgBody('hi'));
  let r = await call('GET', '/_mock/stats', undefined, { key: null, version: null });
  assert.equal(r.json.requests, 1);
  r = await call('GET', '/_mock/requests', undefined, { key: null, version: null });
  assert.equal(r.json.length, 1);
  assert.equal(r.json[0].path, '/v1/messages');
  await call('POST', '/_mock/reset', undefined, { key: null, version: null });
  assert.equal(mock.stats().requests, 0);
  assert.equal(mock.requests().length, 0);
});

test('CLI prints the port and serves', async () => {
  const file = fileURLToPath(new URL('./anthropic.mjs', import.meta.url));
  const child = spawn(process.execPath, [file, '--port', '0', '--api-key', 'k-cli'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
        const m = /^listening (\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error('mock exited')));
    });
    const r = await call('POST', '/v1/messages', msgBody('hi'), { key: 'k-cli', port });
    assert.equal(r.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
});

test('mock:cache_write, mock:cache_write_hour, mock:prompt_tokens: cache writes by lifetime, out of the prompt', async () => {
  const d = 'mock:words=2 mock:prompt_tokens=1000 mock:cache_read=100 mock:cache_write=30 mock:cache_write_hour=20';
  const r = await call('POST', '/v1/messages', msgBody(d));
  assert.deepEqual(r.json.usage, { input_tokens: 850, cache_creation_input_tokens: 50, cache_read_input_tokens: 100,
    cache_creation: { ephemeral_5m_input_tokens: 30, ephemeral_1h_input_tokens: 20 }, output_tokens: 2 });
  const s = await call('POST', '/v1/messages', msgBody(d, { stream: true }));
  assert.match(s.text, /"cache_creation":\{"ephemeral_5m_input_tokens":30,"ephemeral_1h_input_tokens":20\}/);
});
