// cache.test.mjs: the exact-match response cache end to end: a route opts in with cache_ttl_s;
// the second identical request is answered without the provider (streamed answers replayed as
// streams), recorded as usage with zero cost; one tenant never sees another's answer; the
// client's cache-control is honoured; entries expire; errors are never cached.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, readSSE, sha256hex } from './lib/harness.mjs';

const KEY = 'tg-cache-key';
const OTHER = 'tg-cache-other-tenant';
let mock;
let gw;

function post(body, headers = {}, key = KEY) {
  return fetch(gw.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const chat = (content, extra = {}) => ({
  model: 'cached', messages: [{ role: 'user', content }], ...extra,
});

before(async () => {
  mock = await startOpenAIMock();
  const snap = makeSnapshot({
    mockUrl: mock.url,
    routes: [
      { alias: 'cached', cache_ttl_s: 1, retry: { max_attempts: 1 },
        targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
      { alias: 'plain', targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
      { alias: 'cached-long', cache_ttl_s: 30, retry: { max_attempts: 1 },
        targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
    ],
    keys: { [KEY]: { models: ['cached', 'plain', 'cached-long'] }, [OTHER]: { models: ['cached'] } },
  });
  snap.tenants.push({ id: 't-other', name: 'other' });
  snap.keys.find((k) => k.sha256 === sha256hex(OTHER)).tenant = 't-other';
  gw = await startGateway({ snapshot: snap, workers: 1 });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await mock.close();
});

beforeEach(() => mock.reset());

test('the second identical request is a hit: same answer, no upstream call, zero cost', async () => {
  const first = await post(chat('what is 2+2? one'));
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('x-tollgate-cache'), 'miss');
  const a = await first.text();
  const second = await post(chat('what is 2+2? one'));
  assert.equal(second.status, 200);
  assert.equal(second.headers.get('x-tollgate-cache'), 'hit');
  // an integer number of seconds within the route's TTL (1 s), not merely "not negative"
  assert.match(String(second.headers.get('age')), /^\d+$/, `age header ${second.headers.get('age')}`);
  assert.ok(Number(second.headers.get('age')) <= 1, `age ${second.headers.get('age')} within the 1 s TTL`);
  assert.equal(await second.text(), a);
  assert.equal(mock.requests.length, 1);
  // the same request with its members in another order is the same request
  const reordered = await post('{"messages":[{"content":"what is 2+2? one","role":"user"}],"model":"cached"}');
  assert.equal(reordered.headers.get('x-tollgate-cache'), 'hit');
  const rid = second.headers.get('x-request-id');
  const recs = await gw.waitUsage((us) => us.some((u) => u.request_id === rid));
  const hit = recs.find((u) => u.request_id === rid);
  const miss = recs.find((u) => u.request_id === first.headers.get('x-request-id'));
  assert.equal(hit.usage_source, 'cache');
  assert.equal(hit.cost_usd, 0);
  assert.ok(miss.total_tokens > 0, `miss total_tokens ${miss.total_tokens}`);
  assert.equal(hit.total_tokens, miss.total_tokens);
  assert.ok(Number(miss.cost_usd) > 0);
  assert.equal(hit.provider, 'mock');
});

test('another tenant never gets a cached answer', async () => {
  await (await post(chat('tenant scoped'))).text();
  const other = await post(chat('tenant scoped'), {}, OTHER);
  assert.equal(other.headers.get('x-tollgate-cache'), 'miss');
  assert.equal(mock.requests.length, 2);
});

test('a streamed answer is replayed as the same stream', async () => {
  const body = chat('stream me mock:words=4', { stream: true });
  const first = await post(body);
  const a = await readSSE(first);
  assert.equal(first.headers.get('x-tollgate-cache'), 'miss');
  const second = await post(body);
  assert.equal(second.headers.get('x-tollgate-cache'), 'hit');
  assert.match(second.headers.get('content-type'), /text\/event-stream/);
  assert.deepEqual(await readSSE(second), a);
  assert.equal(a.at(-1), '[DONE]');
  assert.equal(mock.requests.length, 1);
  // the non-streamed form of the same question is another entry
  const plain = await post(chat('stream me mock:words=4'));
  assert.equal(plain.headers.get('x-tollgate-cache'), 'miss');
});

test('cache-control: no-cache goes upstream, no-store keeps nothing, max-age bounds the age', async () => {
  await (await post(chat('cc'))).text();
  const nc = await post(chat('cc'), { 'cache-control': 'no-cache' });
  assert.equal(nc.headers.get('x-tollgate-cache'), 'miss');
  assert.equal(mock.requests.length, 2);
  await (await post(chat('ns'), { 'cache-control': 'no-store' })).text();
  const after = await post(chat('ns'));
  assert.equal(after.headers.get('x-tollgate-cache'), 'miss');
  await new Promise((r) => setTimeout(r, 20));
  const young = await post(chat('ns'), { 'cache-control': 'max-age=0' });
  assert.equal(young.headers.get('x-tollgate-cache'), 'hit', 'age 0 s is within max-age=0');
  // and an answer older than max-age is not served (a route whose TTL outlives the wait)
  await (await post({ ...chat('old'), model: 'cached-long' })).text();
  await new Promise((r) => setTimeout(r, 1100));
  const within = await post({ ...chat('old'), model: 'cached-long' }, { 'cache-control': 'max-age=5' });
  assert.equal(within.headers.get('x-tollgate-cache'), 'hit', 'an age of 1 s is within max-age=5');
  assert.match(String(within.headers.get('age')), /^[1-5]$/, `age ${within.headers.get('age')} after 1.1 s`);
  const stale = await post({ ...chat('old'), model: 'cached-long' }, { 'cache-control': 'max-age=0' });
  assert.equal(stale.headers.get('x-tollgate-cache'), 'miss', 'an age of 1 s is past max-age=0');
});

test('entries expire after the route\'s TTL', async () => {
  await (await post(chat('ttl'))).text();
  assert.equal((await post(chat('ttl'))).headers.get('x-tollgate-cache'), 'hit');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await post(chat('ttl'))).headers.get('x-tollgate-cache'), 'miss');
  assert.equal(mock.requests.length, 2);
});

test('errors are not cached, and routes without a TTL do not cache', async () => {
  for (let i = 0; i < 2; i++) {
    const r = await post(chat('fail mock:status=500'));
    assert.equal(r.status, 500);
    assert.equal(r.headers.get('x-tollgate-cache'), 'miss');
  }
  assert.equal(mock.requests.length, 2);
  for (let i = 0; i < 2; i++) {
    const r = await post({ ...chat('not cached'), model: 'plain' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-tollgate-cache'), null);
  }
  assert.equal(mock.requests.length, 4);
});
