// Self-test of the mock Azure OpenAI provider (tests/mocks/azure.mjs), straight over HTTP (no
// gateway involved). Run: node --test tests/mocks/azure.test.mjs
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startAzureMock, waitFor } from './azure.mjs';

const KEY = 'az-test';
const VERSION = '2024-10-21';
let mock;

before(async () => { mock = await startAzureMock({ deployments: { 'gpt4o-prod': 'gpt-4o-2024-11-20' } }); });
after(async () => { await mock.close(); });
beforeEach(() => mock.reset());

const dep = (name, endpoint, version = VERSION) =>
  `/openai/deployments/${name}/${endpoint}${version === null ? '' : `?api-version=${version}`}`;

// Raw HTTP so tests see exactly what went over the wire, including truncated bodies.
function call(method, path, body, { key = KEY, port = mock.port, headers: extra = {}, onResponse } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'content-type': 'application/json', ...extra };
    if (key !== null) headers['api-key'] = key;
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
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

const chatBody = (content, extra = {}) => ({ model: 'ignored-by-azure', messages: [{ role: 'user', content }], ...extra });

// SSE -> parsed chunks (the prompt-filter chunk included), and whether [DONE] arrived last.
function sse(text) {
  const data = text.split('\n\n').filter(Boolean).map((e) => { assert.ok(e.startsWith('data: '), `bad event ${JSON.stringify(e)}`); return e.slice(6); });
  const done = data.at(-1) === '[DONE]';
  return { chunks: data.filter((x) => x !== '[DONE]').map((x) => JSON.parse(x)), done };
}

const content = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');

test('chat: the deployment picks the model, usage and content filter results come back', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hello there'));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.ok(r.headers['apim-request-id']);
  assert.equal(r.json.object, 'chat.completion');
  assert.equal(r.json.model, 'gpt-4o-2024-11-20');
  assert.equal(r.json.choices[0].message.content, 'Hello from the mock provider.');
  assert.equal(r.json.choices[0].finish_reason, 'stop');
  assert.equal(r.json.choices[0].content_filter_results.hate.filtered, false);
  assert.equal(r.json.prompt_filter_results[0].prompt_index, 0);
  // ceil(11 / 4) + 3 = 6 prompt tokens, 5 words
  assert.equal(r.json.usage.prompt_tokens, 6);
  assert.equal(r.json.usage.completion_tokens, 5);
  assert.equal(r.json.usage.total_tokens, 11);
  const [rec] = mock.requests;
  assert.equal(rec.deployment, 'gpt4o-prod');
  assert.equal(rec.endpoint, 'chat/completions');
  assert.equal(rec.apiVersion, VERSION);
  assert.equal(rec.headers['api-key'], KEY);
  assert.equal(rec.body.model, 'ignored-by-azure', 'the request is recorded as the client sent it');
});

test('a deployment not configured serves the model of its own name', async () => {
  const r = await call('POST', dep('my-custom', 'chat/completions', '2025-01-01-preview'), chatBody('hi'));
  assert.equal(r.status, 200);
  assert.equal(r.json.model, 'my-custom');
  assert.equal(mock.requests[0].apiVersion, '2025-01-01-preview');
});

test('no api-version -> 404 Resource not found', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions', null), chatBody('hi'));
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, { error: { code: '404', message: 'Resource not found' } });
});

test('unknown paths and methods -> 404 Resource not found', async () => {
  for (const [method, path] of [['POST', '/v1/chat/completions'], ['POST', `/openai/deployments/x/images/generations?api-version=${VERSION}`],
    ['GET', dep('gpt4o-prod', 'chat/completions')], ['POST', `/openai/chat/completions?api-version=${VERSION}`]]) {
    const r = await call(method, path, method === 'POST' ? chatBody('hi') : undefined);
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.deepEqual(r.json, { error: { code: '404', message: 'Resource not found' } });
  }
});

test('a malformed api-version -> 400 API version not supported', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions', 'latest'), chatBody('hi'));
  assert.equal(r.status, 400);
  assert.deepEqual(r.json, { error: { code: 'BadRequest', message: 'API version not supported' } });
});

test('wrong or missing api-key -> 401 in Azure\'s shape; a Bearer token is no api-key', async () => {
  let r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi'), { key: 'wrong' });
  assert.equal(r.status, 401);
  assert.equal(r.json.error.code, '401');
  assert.match(r.json.error.message, /^Access denied due to invalid subscription key/);
  r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi'), { key: null, headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 401);
  assert.match(r.json.error.message, /^Access denied due to missing subscription key/);
  assert.equal((await mock.stats()).requests, 2);
});

test('strict deployments: an unknown one -> 404 DeploymentNotFound', async () => {
  const strict = await startAzureMock({ strictDeployments: true, apiKey: 'k2' });
  try {
    const r = await call('POST', dep('nope', 'chat/completions'), chatBody('hi'), { port: strict.port, key: 'k2' });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'DeploymentNotFound');
    const ok = await call('POST', dep('gpt-4o-mini', 'chat/completions'), chatBody('hi'), { port: strict.port, key: 'k2' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.model, 'gpt-4o-mini-2024-07-18');
  } finally {
    await strict.close();
  }
});

test('stream: Azure\'s prompt-filter chunk first, then OpenAI chunks with the deployment\'s model, [DONE]', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:words=3', { stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const { chunks, done } = sse(r.text);
  assert.ok(done);
  assert.deepEqual(chunks[0].choices, []);
  assert.equal(chunks[0].model, '');
  assert.equal(chunks[0].prompt_filter_results[0].content_filter_results.violence.severity, 'safe');
  assert.equal(chunks[0].usage, undefined);
  assert.equal(chunks[1].choices[0].delta.role, 'assistant');
  for (const c of chunks.slice(1)) assert.equal(c.model, 'gpt-4o-2024-11-20');
  assert.equal(content(chunks.slice(1)), 'w1 w2 w3');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  assert.equal(chunks.some((c) => 'usage' in c && c !== chunks[0]), false, 'no usage without include_usage');
});

test('stream with include_usage: a final usage chunk; mock:no_filters drops the filter chunk', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'),
    chatBody('hi mock:words=2 mock:no_filters', { stream: true, stream_options: { include_usage: true } }));
  const { chunks, done } = sse(r.text);
  assert.ok(done);
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(chunks[0].usage, null);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 2);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + 2);
});

test('completions and embeddings', async () => {
  let r = await call('POST', dep('gpt-35-turbo-instruct', 'completions'), { prompt: 'Say this is a test', max_tokens: 7 });
  assert.equal(r.status, 200);
  assert.equal(r.json.object, 'text_completion');
  assert.equal(r.json.model, 'gpt-35-turbo-instruct');
  assert.equal(r.json.choices[0].content_filter_results.sexual.filtered, false);
  assert.equal(r.json.usage.prompt_tokens, 5);
  r = await call('POST', dep('text-embedding-3-small', 'embeddings'), { input: ['a', 'b'], encoding_format: 'base64' });
  assert.equal(r.status, 200);
  assert.equal(r.json.object, 'list');
  assert.equal(r.json.model, 'text-embedding-3-small');
  assert.equal(r.json.data.length, 2);
  assert.equal(Buffer.from(r.json.data[1].embedding, 'base64').length, 8 * 4);
  assert.equal(r.json.prompt_filter_results, undefined);
});

test('invalid JSON -> 400 from the OpenAI side', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), '{"messages": [');
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'invalid_request_error');
});

test('mock:status=429 -> Azure\'s rate-limit error with retry-after; other statuses too', async () => {
  let r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:status=429'));
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.json.error.code, '429');
  assert.match(r.json.error.message, /ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21/);
  r = await call('POST', dep('gpt4o-prod', 'embeddings'), { input: 'x mock:status=503' });
  assert.equal(r.status, 503);
  assert.deepEqual(r.json, { error: { code: '503', message: 'Mock Azure provider: simulated 503 error (mock:status=503).' } });
});

test('mock:delay_ms delays the answer', async () => {
  const t0 = Date.now();
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:delay_ms=150'));
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 >= 140, `answered after ${Date.now() - t0} ms`);
});

test('mock:drop destroys the connection without an answer and counts as dropped', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:drop'));
  assert.equal(r.status, 0);
  await waitFor(() => mock.stats().dropped === 1);
  assert.equal(mock.stats().completed, 0);
});

test('mock:cut_after=N cuts the stream after N OpenAI events (the filter chunk not counted)', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:cut_after=2', { stream: true }));
  assert.equal(r.status, 200);
  assert.equal(r.complete, false);
  const events = r.text.split('\n\n').filter(Boolean);
  assert.equal(events.length, 3);
  assert.ok(!r.text.includes('[DONE]'));
  await waitFor(() => mock.stats().dropped === 1);
});

test('mock:split sends the same bytes in 1-3 byte writes', async () => {
  const whole = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:words=4', { stream: true }));
  let reads = 0;
  const split = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:words=4 mock:split', { stream: true }), {
    onResponse: (res) => res.on('data', () => { reads++; }),
  });
  assert.equal(content(sse(split.text).chunks.slice(1)), content(sse(whole.text).chunks.slice(1)));
  assert.ok(sse(split.text).done);
  assert.ok(reads > 20, `only ${reads} reads`);
});

test('mock:stall never answers; the client leaving counts as aborted', async () => {
  const r = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: mock.port, method: 'POST', path: dep('gpt4o-prod', 'chat/completions'),
      headers: { 'content-type': 'application/json', 'api-key': KEY }, agent: false }, () => resolve('answered'));
    req.on('error', () => resolve('closed'));
    req.end(JSON.stringify(chatBody('hi mock:stall')));
    waitFor(() => mock.stats().active === 1).then(() => req.destroy());
  });
  assert.equal(r, 'closed');
  await waitFor(() => mock.stats().aborted === 1);
  assert.equal(mock.stats().active, 0);
});

test('a client leaving mid-stream counts as aborted', async () => {
  const r = await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('hi mock:words=50 mock:chunk_delay_ms=20', { stream: true }), {
    onResponse: (res, req) => res.once('data', () => req.destroy()),
  });
  assert.equal(r.complete, false);
  await waitFor(() => mock.stats().aborted === 1);
});

test('control API: stats, requests, reset (never recorded themselves)', async () => {
  await call('POST', dep('gpt4o-prod', 'chat/completions'), chatBody('one'));
  let r = await call('GET', '/_mock/stats', undefined, { key: null });
  assert.deepEqual(r.json, { requests: 1, aborted: 0, active: 0, completed: 1, dropped: 0 });
  r = await call('GET', '/_mock/requests', undefined, { key: null });
  assert.equal(r.json.length, 1);
  assert.equal(r.json[0].deployment, 'gpt4o-prod');
  assert.equal(r.json[0].body.messages[0].content, 'one');
  r = await call('POST', '/_mock/reset', undefined, { key: null });
  assert.deepEqual(r.json, { ok: true });
  assert.equal(mock.requests.length, 0);
  assert.equal(mock.stats().requests, 0);
});

test('CLI: --port 0 prints "listening PORT" and serves with --api-key and --deployment', async () => {
  const script = fileURLToPath(new URL('./azure.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--port', '0', '--api-key', 'cli-key', '--deployment', 'prod=gpt-4o-2024-08-06'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (c) => {
        buf += c;
        const m = /^listening (\d+)\n/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const r = await call('POST', dep('prod', 'chat/completions'), chatBody('hi'), { port, key: 'cli-key' });
    assert.equal(r.status, 200);
    assert.equal(r.json.model, 'gpt-4o-2024-08-06');
  } finally {
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});

// ---- Responses API ----------------------------------------------------------------------

test('responses: both path forms; the body\'s model is the deployment; api-version checked', async () => {
  const v1 = await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'hi mock:cached=1' });
  assert.equal(v1.status, 200);
  assert.equal(v1.json.object, 'response');
  assert.equal(v1.json.model, 'gpt-4o-2024-11-20');
  assert.equal(v1.json.output[0].content[0].text, 'Hello from the mock provider.');
  assert.equal(v1.json.usage.input_tokens_details.cached_tokens, 1);
  assert.equal(v1.json.prompt_filter_results, undefined);
  assert.equal(v1.headers['apim-request-id'] !== undefined, true);
  const dated = await call('POST', '/openai/responses?api-version=2025-04-01-preview', { model: 'gpt4o-prod', input: 'hi' });
  assert.equal(dated.status, 200);
  assert.equal(mock.requests.at(-1).deployment, 'gpt4o-prod');
  assert.equal(mock.requests.at(-1).apiVersion, '2025-04-01-preview');
  assert.equal((await call('POST', '/openai/v1/responses?api-version=preview', { model: 'gpt4o-prod', input: 'hi' })).status, 200);
  const noVersion = await call('POST', '/openai/responses', { model: 'gpt4o-prod', input: 'hi' });
  assert.deepEqual([noVersion.status, noVersion.json.error.message], [404, 'Resource not found']);
  assert.equal((await call('POST', '/openai/responses?api-version=nope', { model: 'gpt4o-prod', input: 'hi' })).status, 400);
  assert.equal((await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'hi' }, { key: 'wrong' })).status, 401);
  const limited = await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'mock:status=429' });
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['retry-after'], '1');
  assert.match(limited.json.error.message, /Responses_Create/);
});

test('responses: streamed with event lines and no filter chunk; fail_after and cut_after pass through', async () => {
  const r = await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'hi mock:words=2', stream: true });
  const events = r.text.split('\n\n').filter(Boolean).map((e) => {
    const m = /^event: (\S+)\ndata: (.*)$/s.exec(e);
    assert.ok(m, `bad event ${JSON.stringify(e)}`);
    return JSON.parse(m[2]);
  });
  assert.equal(events[0].type, 'response.created');
  assert.equal(events.at(-1).type, 'response.completed');
  assert.equal(events.at(-1).response.model, 'gpt-4o-2024-11-20');
  const failed = await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'hi mock:fail_after=2', stream: true });
  assert.match(failed.text, /event: response\.failed\n/);
  const cut = await call('POST', '/openai/v1/responses', { model: 'gpt4o-prod', input: 'hi mock:cut_after=2', stream: true });
  assert.equal(cut.text.split('\n\n').filter(Boolean).length, 2);
  assert.equal(cut.complete, false);
});

test('responses: the openai SDK (AzureOpenAI and the v1 base URL) creates, streams, follows up and deletes', async (t) => {
  let OpenAI;
  let AzureOpenAI;
  try { ({ default: OpenAI, AzureOpenAI } = await import('openai')); } catch { return t.skip('openai package not installed'); }
  const az = new AzureOpenAI({ endpoint: `http://127.0.0.1:${mock.port}`, apiKey: KEY, apiVersion: '2025-04-01-preview', maxRetries: 0 });
  const tools = [{ type: 'function', name: 'lookup', parameters: { type: 'object' }, strict: false }];
  const first = await az.responses.create({ model: 'gpt4o-prod', input: 'look it up mock:tools=2', tools });
  assert.deepEqual(first.output.map((o) => o.type), ['function_call', 'function_call']);
  assert.equal(mock.requests.at(-1).path, '/openai/responses?api-version=2025-04-01-preview');
  const outputs = first.output.map((c) => ({ type: 'function_call_output', call_id: c.call_id, output: 'ok' }));
  const v1 = new OpenAI({ baseURL: `http://127.0.0.1:${mock.port}/openai/v1`, apiKey: 'unused', defaultHeaders: { 'api-key': KEY }, maxRetries: 0 });
  const next = await v1.responses.stream({ model: 'gpt4o-prod', previous_response_id: first.id, input: outputs, tools }).finalResponse();
  assert.equal(next.output_text, 'Hello from the mock provider.');
  assert.equal(next.previous_response_id, first.id);
  const got = await az.responses.retrieve(next.id);
  assert.equal(got.id, next.id);
  const items = await v1.responses.inputItems.list(next.id);
  assert.equal(items.data.length, 2);
  await az.responses.delete(next.id);
  await assert.rejects(v1.responses.retrieve(next.id), (err) => err.status === 404);
});
