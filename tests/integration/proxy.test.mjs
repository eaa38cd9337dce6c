// proxy.test.mjs: the OpenAI-compatible request path of tollgate-data, end to end over HTTP:
// auth, routing, non-streamed and streamed answers, usage records and their cost, errors.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, readSSE, waitFor, openaiErrorType } from './lib/harness.mjs';

let mock;
let gw;
const KEY = 'tg-test-key';

function post(path, body, headers = { authorization: `Bearer ${KEY}` }) {
  return fetch(gw.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

before(async () => {
  mock = await startOpenAIMock();
  const snap = makeSnapshot({
    mockUrl: mock.url,
    keys: {
      [KEY]: { models: ['gpt-4o-mini', 'embed', 'fast-timeout', 'dead'] },
      'tg-expired': { models: ['gpt-4o-mini'], expires_at: 1000 },
    },
    providers: [
      { id: 'mock', kind: 'openai', base_url: mock.url, api_key: 'sk-upstream-test' },
      // port 1 on loopback: nothing listens there, so connecting fails at once
      { id: 'dead', kind: 'openai', base_url: 'http://127.0.0.1:1/v1', api_key: 'x' },
    ],
    routes: [
      { alias: 'gpt-4o-mini', targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
      { alias: 'embed', targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] },
      { alias: 'secret-model', targets: [{ provider: 'mock', model: 'gpt-4o' }] },
      { alias: 'fast-timeout', timeout_ms: 300,
        targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
      { alias: 'dead', targets: [{ provider: 'dead', model: 'gpt-4o' }] },
    ],
  });
  gw = await startGateway({ snapshot: snap });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0, 'tollgate-data exits 0 on SIGTERM');
  await mock.close();
});

beforeEach(() => mock.reset());

test('bearer and x-api-key both authenticate; the upstream sees the provider key, not the client key', async () => {
  const a = await post('/v1/chat/completions', chatBody('hi'));
  assert.equal(a.status, 200);
  const b = await post('/v1/chat/completions', chatBody('hi'), { 'x-api-key': KEY });
  assert.equal(b.status, 200);
  assert.equal(mock.requests.length, 2);
  for (const r of mock.requests) {
    assert.equal(r.headers.authorization, 'Bearer sk-upstream-test');
    assert.equal(r.headers['x-api-key'], undefined);
    assert.equal(r.body.model, 'gpt-4o-mini-2024-07-18', 'alias mapped to the provider model');
  }
});

test('client headers are not forwarded upstream', async () => {
  const r = await post('/v1/chat/completions', chatBody('hi'), {
    authorization: `Bearer ${KEY}`, 'x-stainless-lang': 'js', cookie: 'a=b', 'x-custom': '1',
  });
  assert.equal(r.status, 200);
  const h = mock.requests[0].headers;
  assert.equal(h['x-stainless-lang'], undefined);
  assert.equal(h.cookie, undefined);
  assert.equal(h['x-custom'], undefined);
});

test('unknown key gets 401 in OpenAI shape without an upstream call', async () => {
  const r = await post('/v1/chat/completions', chatBody('hi'), { authorization: 'Bearer tg-nope' });
  assert.equal(r.status, 401);
  const j = await r.json();
  assert.equal(j.error.code, 'invalid_api_key');
  assert.equal(typeof j.error.message, 'string');
  const none = await post('/v1/chat/completions', chatBody('hi'), {});
  assert.equal(none.status, 401);
  const exp = await post('/v1/chat/completions', chatBody('hi'), { authorization: 'Bearer tg-expired' });
  assert.equal(exp.status, 401);
  assert.equal((await exp.json()).error.code, 'expired_api_key');
  assert.equal(mock.requests.length, 0);
});

test('a model the key may not use is 403, an unknown model 404, neither reaches upstream', async () => {
  const f = await post('/v1/chat/completions', { ...chatBody('hi'), model: 'secret-model' });
  assert.equal(f.status, 403);
  assert.equal((await f.json()).error.code, 'model_not_allowed');
  const n = await post('/v1/chat/completions', { ...chatBody('hi'), model: 'no-such-model' });
  assert.equal(n.status, 404);
  const e = (await n.json()).error;
  assert.equal(e.code, 'model_not_found');
  assert.equal(e.type, openaiErrorType(404)); // as OpenAI: invalid_request_error, model_not_found
  assert.equal(mock.requests.length, 0);
});

test('/v1/models lists only what the key may use', async () => {
  const r = await fetch(gw.url + '/v1/models', { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 200);
  const ids = (await r.json()).data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['dead', 'embed', 'fast-timeout', 'gpt-4o-mini']);
});

test('malformed JSON and bad fields get 400 with a message; nothing reaches upstream', async () => {
  for (const body of ['{"model":', '[]', '{"messages":[]}', '{"model":"gpt-4o-mini","messages":[],"stream":"yes"}',
    '{"model":"gpt-4o-mini","model":"x","messages":[{"role":"user","content":"a"}]}']) {
    const r = await post('/v1/chat/completions', body);
    assert.equal(r.status, 400, body);
    const j = await r.json();
    assert.ok(j.error.message.length > 10, j.error.message);
  }
  assert.equal(mock.requests.length, 0);
});

test('a body over the limit gets 413 and nothing reaches upstream', async () => {
  const big = 'x'.repeat(5 * 1024 * 1024);
  const r = await post('/v1/chat/completions', chatBody(big)).catch((e) => e);
  // the gateway answers 413 before reading the body and closes; fetch may see the answer or a reset
  if (r instanceof Error) assert.match(String(r.cause?.code || r), /EPIPE|ECONNRESET|UND_ERR/);
  else assert.equal(r.status, 413);
  assert.equal(mock.requests.length, 0);
});

test('non-streaming chat returns the provider answer and records priced usage', async () => {
  const r = await post('/v1/chat/completions', chatBody('usage-ns mock:cached=2 mock:reasoning=3'));
  assert.equal(r.status, 200);
  const rid = r.headers.get('x-request-id');
  assert.ok(rid);
  const j = await r.json();
  assert.equal(j.object, 'chat.completion');
  const u = await gw.waitUsage((us) => us.some((x) => x.request_id === rid));
  const rec = u.find((x) => x.request_id === rid);
  assert.equal(rec.status, 200);
  assert.equal(rec.streamed, false);
  assert.equal(rec.prompt_tokens, j.usage.prompt_tokens);
  assert.equal(rec.completion_tokens, j.usage.completion_tokens);
  assert.equal(rec.cached_tokens, 2);
  assert.equal(rec.reasoning_tokens, 3);
  assert.equal(rec.usage_source, 'provider');
  assert.equal(rec.key_id, 'k-1');
  assert.equal(rec.tenant_id, 't-acme');
  assert.equal(rec.model, 'gpt-4o-mini');
  assert.equal(rec.provider, 'mock');
  // cached input at its own price: (p-2)*0.15 + 2*0.075 + c*0.6 per million
  const want = ((j.usage.prompt_tokens - 2) * 0.15 + 2 * 0.075 + j.usage.completion_tokens * 0.6) / 1e6;
  assert.ok(Math.abs(rec.cost_usd - want) < 1e-12, `${rec.cost_usd} vs ${want}`);
});

test('streaming forwards every event, ends with [DONE], and hides the usage chunk it asked for', async () => {
  const r = await post('/v1/chat/completions', chatBody('hi mock:words=6', { stream: true }));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const events = await readSSE(r);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => !('usage' in c)), 'no usage field the client did not ask for');
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content || '').join(''), 'w1 w2 w3 w4 w5 w6');
  // the gateway asked the upstream for usage anyway
  assert.equal(mock.requests[0].body.stream_options.include_usage, true);
  const rid = r.headers.get('x-request-id');
  const u = await gw.waitUsage((us) => us.some((x) => x.request_id === rid));
  const rec = u.find((x) => x.request_id === rid);
  assert.equal(rec.streamed, true);
  assert.equal(rec.usage_source, 'provider');
  assert.equal(rec.completion_tokens, 6);
});

test('a client that asks for usage gets the usage chunk, exactly as the provider sent it', async () => {
  const r = await post('/v1/chat/completions',
    chatBody('hi', { stream: true, stream_options: { include_usage: true } }));
  const chunks = (await readSSE(r)).slice(0, -1).map((e) => JSON.parse(e));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.total_tokens > 0);
});

test('usage on a chunk that also carries choices is recorded and removed for the client', async () => {
  const r = await post('/v1/chat/completions', chatBody('hi mock:usage_in_last_choice', { stream: true }));
  const chunks = (await readSSE(r)).slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => !('usage' in c)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  const rid = r.headers.get('x-request-id');
  const rec = (await gw.waitUsage((us) => us.some((x) => x.request_id === rid))).find((x) => x.request_id === rid);
  assert.equal(rec.usage_source, 'provider');
  assert.ok(rec.completion_tokens > 0);
});

test('the same request costs the same streamed and not', async () => {
  const content = 'identical request for cost mock:words=9 mock:cached=4 mock:reasoning=2';
  const a = await post('/v1/chat/completions', chatBody(content));
  await a.json();
  const b = await post('/v1/chat/completions', chatBody(content, { stream: true }));
  await b.text();
  const ids = [a.headers.get('x-request-id'), b.headers.get('x-request-id')];
  const u = await gw.waitUsage((us) => ids.every((id) => us.some((x) => x.request_id === id)));
  const [ra, rb] = ids.map((id) => u.find((x) => x.request_id === id));
  assert.equal(ra.streamed, false);
  assert.equal(rb.streamed, true);
  for (const f of ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd'])
    assert.equal(ra[f], rb[f], f);
  assert.ok(ra.cost_usd > 0);
});

test('SSE events split across network reads at every byte are reassembled', async () => {
  const r = await post('/v1/chat/completions', chatBody('split mock:split mock:words=5', { stream: true }));
  const events = await readSSE(r);
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content || '').join(''), 'w1 w2 w3 w4 w5');
  const rid = r.headers.get('x-request-id');
  const rec = (await gw.waitUsage((us) => us.some((x) => x.request_id === rid))).find((x) => x.request_id === rid);
  assert.equal(rec.completion_tokens, 5);
  assert.equal(rec.usage_source, 'provider');
});

test('upstream errors pass through with their status and retry-after', async () => {
  const r = await post('/v1/chat/completions', chatBody('mock:status=429'));
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal((await r.json()).error.type, 'rate_limit_error');
  const s = await post('/v1/chat/completions', chatBody('mock:status=500', { stream: true }));
  assert.equal(s.status, 500);
  assert.ok((await s.json()).error);
  // a provider does not bill a refused request: recorded, but with no usage and no cost
  for (const res of [r, s]) {
    const rid = res.headers.get('x-request-id');
    const rec = (await gw.waitUsage((us) => us.some((x) => x.request_id === rid))).find((x) => x.request_id === rid);
    assert.equal(rec.status, res.status);
    assert.equal(rec.usage_source, 'none');
    assert.equal(rec.prompt_tokens, 0);
    assert.equal(rec.cost_usd, 0);
  }
});

test('a provider that refuses connections is 502, one that stalls past the timeout is 504', async () => {
  const d = await post('/v1/chat/completions', { ...chatBody('hi'), model: 'dead' });
  assert.equal(d.status, 502);
  assert.equal((await d.json()).error.code, 'upstream_unreachable');
  const t0 = Date.now();
  const s = await post('/v1/chat/completions', { ...chatBody('mock:stall'), model: 'fast-timeout' });
  assert.equal(s.status, 504);
  assert.equal((await s.json()).error.code, 'upstream_timeout');
  assert.ok(Date.now() - t0 < 5000);
  await waitFor(() => mock.stats().aborted >= 1, 3000, 'the stalled upstream request to be cancelled');
});

test('a stream cut by the provider ends with an error event and partial usage is recorded', async () => {
  const r = await post('/v1/chat/completions', chatBody('mock:cut_after=3 mock:words=10', { stream: true }));
  assert.equal(r.status, 200);
  const events = await readSSE(r);
  const last = JSON.parse(events.at(-1));
  assert.ok(last.error, 'the client is told the stream broke');
  const rid = r.headers.get('x-request-id');
  const rec = (await gw.waitUsage((us) => us.some((x) => x.request_id === rid))).find((x) => x.request_id === rid);
  assert.equal(rec.usage_source, 'estimated');
  assert.ok(rec.prompt_tokens > 0 && rec.completion_tokens > 0);
  assert.ok(rec.cost_usd > 0);
});

test('embeddings and legacy completions are proxied', async () => {
  const e = await post('/v1/embeddings', { model: 'embed', input: ['a', 'b'], encoding_format: 'float' });
  assert.equal(e.status, 200);
  const ej = await e.json();
  assert.equal(ej.data.length, 2);
  assert.equal(mock.requests[0].path, '/v1/embeddings');
  const c = await post('/v1/completions', { model: 'gpt-4o-mini', prompt: 'say hi' });
  assert.equal(c.status, 200);
  assert.equal((await c.json()).object, 'text_completion');
  const cs = await post('/v1/completions', { model: 'gpt-4o-mini', prompt: 'say hi', stream: true });
  assert.equal((await readSSE(cs)).at(-1), '[DONE]');
});

test('wrong method and unknown path get 405 and 404', async () => {
  const g = await fetch(gw.url + '/v1/chat/completions', { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(g.status, 405);
  const n = await fetch(gw.url + '/v1/nope', { method: 'POST', body: '{}' });
  assert.equal(n.status, 404);
  assert.equal((await n.json()).error.type, openaiErrorType(404)); // the same type as model_not_found
});

test('/healthz, /readyz and /metrics answer', async () => {
  assert.equal((await fetch(gw.url + '/healthz')).status, 200);
  const ready = await fetch(gw.url + '/readyz');
  assert.equal(ready.status, 200);
  assert.equal((await ready.json()).snapshot_version, 1);
  await post('/v1/chat/completions', chatBody('hi'));
  const m = await (await fetch(gw.url + '/metrics')).text();
  assert.match(m, /tollgate_requests_total\{status="200",model="gpt-4o-mini",provider="mock"\} \d+/);
  assert.match(m, /tollgate_upstream_duration_seconds_bucket\{le="\+Inf"\} \d+/);
  assert.match(m, /^tollgate_requests_in_flight 0$/m);
  assert.match(m, /^tollgate_snapshot_version 1$/m);
});
