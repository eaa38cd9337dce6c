// Self-test of the mock Gemini provider, straight over HTTP (no gateway involved).
// Run: node --test tests/mocks/gemini.test.mjs
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startGeminiMock } from './gemini.mjs';

const KEY = 'gm-test';
let mock;

before(async () => { mock = await startGeminiMock(); });
after(async () => { await mock.close(); });
beforeEach(() => mock.reset());

// Raw HTTP so tests see exactly what went over the wire, including truncated bodies.
function call(method, path, body, { key = KEY, headers: extra = {} } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'content-type': 'application/json', ...extra };
    if (key) headers['x-goog-api-key'] = key;
    const req = http.request({ host: '127.0.0.1', port: mock.port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', () => {});
      res.on('close', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* SSE or truncated */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json, complete: res.complete, reads: chunks.length });
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.message === 'socket hang up' ? resolve({ status: 0, error: e }) : reject(e)));
    req.end(payload);
  });
}

const gen = (model = 'gemini-2.0-flash', method = 'generateContent', q = '') => `/v1beta/models/${model}:${method}${q}`;
const body = (text, extra = {}) => ({
  systemInstruction: { parts: [{ text: 'be brief' }] },
  contents: [{ role: 'user', parts: [{ text }] }],
  ...extra,
});

// SSE -> parsed events; Gemini frames each with CRLF CRLF and sends no terminal event.
function sse(text) {
  assert.ok(text === '' || text.endsWith('\r\n\r\n'), 'events end with CRLF CRLF');
  return text.split('\r\n\r\n').filter(Boolean).map((e) => {
    assert.ok(e.startsWith('data: '), `bad event ${JSON.stringify(e)}`);
    return JSON.parse(e.slice(6));
  });
}

test('no key -> 403 PERMISSION_DENIED, wrong key -> 400 INVALID_ARGUMENT, ?key= works', async () => {
  let r = await call('POST', gen(), body('hi'), { key: null });
  assert.equal(r.status, 403);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'status']);
  assert.equal(r.json.error.code, 403);
  assert.equal(r.json.error.status, 'PERMISSION_DENIED');
  r = await call('POST', gen(), body('hi'), { key: 'nope' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.status, 'INVALID_ARGUMENT');
  assert.match(r.json.error.message, /API key not valid/);
  r = await call('POST', gen('gemini-2.0-flash', 'generateContent', `?key=${KEY}`), body('hi'), { key: null });
  assert.equal(r.status, 200);
});

test('generateContent: text, finishReason, deterministic usage', async () => {
  const r = await call('POST', gen(), body('hello there'));
  assert.equal(r.status, 200);
  const c = r.json;
  assert.equal(c.candidates.length, 1);
  assert.equal(c.candidates[0].content.role, 'model');
  assert.deepEqual(c.candidates[0].content.parts, [{ text: 'Hello from the mock provider.' }]);
  assert.equal(c.candidates[0].finishReason, 'STOP');
  assert.equal(c.modelVersion, 'gemini-2.0-flash');
  assert.match(c.responseId, /^mock-resp-/);
  // ceil((8 + 11) / 4) + 3 * 2 (systemInstruction and one content)
  assert.deepEqual(c.usageMetadata, { promptTokenCount: 11, candidatesTokenCount: 5, totalTokenCount: 16 });
  const [rec] = mock.requests();
  assert.equal(rec.headers['x-goog-api-key'], KEY);
  assert.equal(rec.path, gen());
});

test('streamGenerateContent?alt=sse: one event per word, usage complete in the last, no terminal event', async () => {
  const r = await call('POST', gen('gemini-2.5-flash', 'streamGenerateContent', '?alt=sse'), body('hi mock:words=3'));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const evs = sse(r.text);
  assert.equal(evs.length, 3);
  assert.deepEqual(evs.map((e) => e.candidates[0].content.parts[0].text), ['w1', ' w2', ' w3']);
  assert.equal(evs[0].candidates[0].finishReason, undefined);
  assert.equal(evs[2].candidates[0].finishReason, 'STOP');
  assert.equal(evs[0].usageMetadata.candidatesTokenCount, undefined);
  assert.equal(evs[2].usageMetadata.candidatesTokenCount, 3);
  assert.equal(evs[2].usageMetadata.totalTokenCount, evs[2].usageMetadata.promptTokenCount + 3);
  assert.ok(evs.every((e) => e.responseId === evs[0].responseId));
});

test('streamGenerateContent without alt=sse answers a JSON array', async () => {
  const r = await call('POST', gen('gemini-2.0-flash', 'streamGenerateContent'), body('x mock:words=2'));
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json));
  assert.equal(r.json.length, 2);
  assert.equal(r.json[1].candidates[0].finishReason, 'STOP');
});

test('mock:tool and mock:tools=2 answer functionCalls', async () => {
  let r = await call('POST', gen(), body('x mock:tool=get_weather'));
  assert.deepEqual(r.json.candidates[0].content.parts, [{ functionCall: { name: 'get_weather', args: { q: 'mock' } } }]);
  assert.equal(r.json.candidates[0].finishReason, 'STOP');
  const tools = [{ functionDeclarations: [{ name: 'a' }, { name: 'b' }] }];
  r = await call('POST', gen(), body('x mock:tools=2', { tools }));
  assert.deepEqual(r.json.candidates[0].content.parts.map((p) => p.functionCall.name), ['a', 'b']);
  assert.equal(r.json.usageMetadata.candidatesTokenCount, 10);
  r = await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:tools=2', { tools }));
  const evs = sse(r.text);
  assert.equal(evs.length, 2);
  assert.equal(evs[1].candidates[0].content.parts[0].functionCall.name, 'b');
});

test('mock:safety blocks the prompt; mock:finish_safety stops a candidate', async () => {
  let r = await call('POST', gen(), body('x mock:safety'));
  assert.equal(r.status, 200);
  assert.equal(r.json.candidates, undefined);
  assert.equal(r.json.promptFeedback.blockReason, 'SAFETY');
  r = await call('POST', gen(), body('x mock:finish_safety'));
  assert.equal(r.json.candidates[0].finishReason, 'SAFETY');
  r = await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:finish_safety'));
  const evs = sse(r.text);
  assert.equal(evs.at(-1).candidates[0].finishReason, 'SAFETY');
  assert.equal(evs.at(-1).candidates[0].content, undefined);
});

test('mock:status gives Gemini-shaped errors; 429 has retry-after', async () => {
  let r = await call('POST', gen(), body('x mock:status=429'));
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.deepEqual({ code: r.json.error.code, status: r.json.error.status }, { code: 429, status: 'RESOURCE_EXHAUSTED' });
  r = await call('POST', gen(), body('x mock:status=503'));
  assert.equal(r.status, 503);
  assert.equal(r.json.error.status, 'UNAVAILABLE');
});

test('unknown request fields and empty contents are 400s like the real API', async () => {
  let r = await call('POST', gen(), { ...body('x'), messages: [] });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /Unknown name "messages"/);
  r = await call('POST', gen(), { contents: [] });
  assert.equal(r.status, 400);
  r = await call('POST', gen(), '{not json');
  assert.equal(r.status, 400);
  r = await call('POST', '/v1beta/models/x:nothing', body('x'));
  assert.equal(r.status, 404);
  assert.equal(r.json.error.status, 'NOT_FOUND');
});

test('batchEmbedContents: deterministic 8-dim vectors, outputDimensionality, model check', async () => {
  const req = (texts, extra = {}) => ({ requests: texts.map((text) => ({ model: 'models/text-embedding-004', content: { parts: [{ text }] }, ...extra })) });
  let r = await call('POST', gen('text-embedding-004', 'batchEmbedContents'), req(['a', 'b']));
  assert.equal(r.status, 200);
  assert.equal(r.json.embeddings.length, 2);
  assert.equal(r.json.embeddings[0].values.length, 8);
  assert.notDeepEqual(r.json.embeddings[0].values, r.json.embeddings[1].values);
  const again = await call('POST', gen('text-embedding-004', 'batchEmbedContents'), req(['a']));
  assert.deepEqual(again.json.embeddings[0].values, r.json.embeddings[0].values);
  for (const x of again.json.embeddings[0].values) assert.equal(Math.fround(x), x, 'values are float32');
  r = await call('POST', gen('text-embedding-004', 'batchEmbedContents'), req(['a'], { outputDimensionality: 3 }));
  assert.equal(r.json.embeddings[0].values.length, 3);
  r = await call('POST', gen('other-model', 'batchEmbedContents'), req(['a']));
  assert.equal(r.status, 400);
});

test('mock:split writes the stream in small pieces; the events are the same', async () => {
  const whole = await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:words=2'));
  const split = await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:words=2 mock:split'));
  assert.ok(split.reads > 10, `only ${split.reads} reads`);
  // the directive itself makes the prompt longer: compare what was answered
  const strip = (evs) => evs.map((e) => e.candidates);
  assert.deepEqual(strip(sse(split.text)), strip(sse(whole.text)));
});

test('mock:cut_after and mock:drop are counted as dropped; mock:stall as aborted when the client leaves', async () => {
  const r = await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:words=5 mock:cut_after=2'));
  assert.equal(r.complete, false);
  assert.equal(r.text.split('\r\n\r\n').filter(Boolean).length, 2);
  const d = await call('POST', gen(), body('x mock:drop'));
  assert.equal(d.status, 0);
  await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: mock.port, method: 'POST', path: gen(), headers: { 'x-goog-api-key': KEY }, agent: false });
    req.on('error', () => resolve());
    req.end(JSON.stringify(body('x mock:stall')));
    setTimeout(() => { req.destroy(); resolve(); }, 50);
  });
  for (let i = 0; i < 100 && mock.stats().aborted === 0; i++) await new Promise((r2) => setTimeout(r2, 10));
  const s = mock.stats();
  assert.equal(s.dropped, 2);
  assert.equal(s.aborted, 1);
  assert.equal(s.active, 0);
});

test('mock:delay_ms and mock:chunk_delay_ms slow the answer down', async () => {
  let t = Date.now();
  await call('POST', gen(), body('x mock:delay_ms=120'));
  assert.ok(Date.now() - t >= 110);
  t = Date.now();
  await call('POST', gen('g', 'streamGenerateContent', '?alt=sse'), body('x mock:words=3 mock:chunk_delay_ms=60'));
  assert.ok(Date.now() - t >= 110);
});

test('control API: stats, requests, reset', async () => {
  await call('POST', gen(), body('x'));
  let r = await call('GET', '/_mock/stats', undefined, { key: null });
  assert.equal(r.json.requests, 1);
  assert.equal(r.json.completed, 1);
  r = await call('GET', '/_mock/requests', undefined, { key: null });
  assert.equal(r.json.length, 1);
  assert.equal(r.json[0].body.contents[0].parts[0].text, 'x');
  r = await call('POST', '/_mock/reset', undefined, { key: null });
  assert.equal(r.json.ok, true);
  assert.equal(mock.stats().requests, 0);
  assert.equal(mock.requests().length, 0);
});

test('CLI: --port 0 --api-key K prints "listening PORT" and serves with that key', async () => {
  const script = fileURLToPath(new URL('./gemini.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--port', '0', '--api-key', 'cli-key'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
        const m = /^listening (\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`mock exited ${code}`)));
    });
    const status = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: gen(), headers: { 'x-goog-api-key': 'cli-key' }, agent: false }, (res) => { res.resume(); resolve(res.statusCode); });
      req.on('error', reject);
      req.end(JSON.stringify(body('x')));
    });
    assert.equal(status, 200);
  } finally {
    child.kill('SIGTERM');
  }
});

test('mock:prompt_tokens, mock:cached and mock:thoughts shape usageMetadata as Gemini counts them', async () => {
  const r = await call('POST', gen(), body('hello mock:prompt_tokens=500 mock:cached=200 mock:thoughts=40'));
  assert.deepEqual(r.json.usageMetadata, { promptTokenCount: 500, candidatesTokenCount: 5, cachedContentTokenCount: 200,
    thoughtsTokenCount: 40, totalTokenCount: 545 });
});
