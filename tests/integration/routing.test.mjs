// routing.test.mjs: what a route does when targets fail, end to end over HTTP: retries with exact
// attempt counts, retry-after, fallbacks (the route's own and the request's), circuit breakers
// opening and closing, balancing strategies, first-byte deadlines, streams that fall back before
// their first byte, and a provider killed under load costing no client request.
//
// A target's model name may carry mock directives (e.g. "bad mock:status=503"): the mock reads
// them from the upstream body, which carries the target's model, so one mock serves targets that
// behave differently.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, readSSE, waitFor } from './lib/harness.mjs';

const KEY = 'tg-routing-key';
const OPEN_MS = 600;
let a; // mock provider "a"
let b; // mock provider "b"
let gw;

const t = (provider, model, weight = 1) => ({ provider, model, weight });
const once = { max_attempts: 1 };

function post(body, headers = {}, path = '/v1/chat/completions') {
  return fetch(gw.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
    body: JSON.stringify(body),
  });
}

const chat = (model, content = 'hi', extra = {}) => ({ ...chatBody(content, extra), model });
const models = (mock) => mock.requests.map((r) => r.body?.model);

async function metrics() {
  return (await fetch(gw.url + '/metrics')).text();
}

function circuit(text, provider, model) {
  const esc = model.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`tollgate_circuit_state\\{worker="0",provider="${provider}",model="${esc}"\\} (\\d)`).exec(text);
  return m ? Number(m[1]) : null;
}

// The "flaky" provider points at a port that a mock can leave and come back to.
let flakyPort;
let flaky;

before(async () => {
  a = await startOpenAIMock();
  b = await startOpenAIMock();
  flaky = await startOpenAIMock();
  flakyPort = flaky.port;
  const routes = [
    { alias: 'retry3', retry: { max_attempts: 3, backoff_ms: 5 }, targets: [t('a', 'r3 mock:status=503')] },
    { alias: 'fb', retry: once, targets: [t('a', 'fb1 mock:status=500'), t('b', 'fb2', 0)] },
    { alias: 'fb400', retry: once, targets: [t('a', 'x400 mock:status=400'), t('b', 'never', 0)] },
    { alias: 'ra', retry: { max_attempts: 2, backoff_ms: 0 }, targets: [t('a', 'ra mock:status=429')] },
    { alias: 'only-bad', retry: once, targets: [t('a', 'pf mock:status=503')] },
    { alias: 'good', targets: [t('b', 'good')] },
    { alias: 'forbidden-good', targets: [t('b', 'forbidden')] },
    { alias: 'cb', retry: once, targets: [t('a', 'cbdead mock:status=503'), t('b', 'cbgood', 0)] },
    { alias: 'cbflaky', retry: once, targets: [t('flaky', 'fl'), t('b', 'flbackup', 0)] },
    { alias: 'w', targets: [t('a', 'w3', 3), t('b', 'w1', 1)] },
    { alias: 'busy', strategy: 'least_busy', targets: [t('a', 'slow mock:delay_ms=300'), t('b', 'quick')] },
    { alias: 'lat', strategy: 'lowest_latency', targets: [t('a', 'lat mock:delay_ms=120'), t('b', 'fastlat')] },
    { alias: 'sfb', retry: once, targets: [t('a', 's mock:status=503'), t('b', 's2', 0)] },
    { alias: 'fbt', retry: once, first_byte_timeout_ms: 200,
      targets: [t('a', 'sleepy mock:delay_ms=3000'), t('b', 'awake', 0)] },
    { alias: 'idle', retry: once, idle_timeout_ms: 200, targets: [t('a', 'idle')] },
    { alias: 'ha', retry: { max_attempts: 2, backoff_ms: 5 }, targets: [t('flaky', 'ha'), t('b', 'ha')] },
    // a plan longer than the few entries the gate holds in itself (gate.h, DP_PLAN_INLINE)
    { alias: 'long', retry: once,
      targets: [1, 2, 3, 4, 5, 6].map((i) => t('a', `long${i} mock:status=503`, i === 1 ? 1 : 0))
        .concat([t('b', 'long-good', 0)]) },
  ];
  const snap = makeSnapshot({
    mockUrl: a.url,
    providers: [
      { id: 'a', kind: 'openai', base_url: a.url, api_key: 'sk-upstream-test' },
      { id: 'b', kind: 'openai', base_url: b.url, api_key: 'sk-upstream-test' },
      { id: 'flaky', kind: 'openai', base_url: flaky.url, api_key: 'sk-upstream-test' },
    ],
    routes,
    prices: [],
    keys: { [KEY]: { models: routes.map((r) => r.alias).filter((x) => x !== 'forbidden-good') } },
  });
  gw = await startGateway({
    snapshot: snap, workers: 1,
    args: ['--breaker-failures', '3', '--breaker-open-ms', String(OPEN_MS)],
  });
});

after(async () => {
  const e = await gw.stop();
  assert.equal(e.code, 0);
  await Promise.all([a.close(), b.close(), flaky.close()]);
});

beforeEach(() => { a.reset(); b.reset(); flaky.reset(); });

test('a retryable status is retried up to max_attempts, then answered as the provider said', async () => {
  const r = await post(chat('retry3'));
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('x-tollgate-attempts'), '3');
  assert.equal(r.headers.get('x-tollgate-target'), 'a');
  assert.equal(a.requests.length, 3);
  assert.match((await r.json()).error.message, /simulated 503/);
});

test('when retries are spent the next target answers; a non-retryable status is not retried', async () => {
  const r = await post(chat('fb'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.equal(r.headers.get('x-tollgate-target'), 'b');
  assert.deepEqual(models(a), ['fb1 mock:status=500']);
  assert.deepEqual(models(b), ['fb2']);
  const n = await post(chat('fb400'));
  assert.equal(n.status, 400);
  assert.equal(n.headers.get('x-tollgate-attempts'), '1');
  assert.equal(b.requests.length, 1, 'a 400 is the caller\'s fault: no fallback');
});

test('a 429 is retried no sooner than its retry-after', async () => {
  const t0 = Date.now();
  const r = await post(chat('ra'));
  const took = Date.now() - t0;
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.equal(r.headers.get('retry-after'), '1');
  assert.ok(took >= 950, `second attempt after ${took} ms`);
});

test('a request names its own fallbacks in the body or a header; only aliases its key may use count', async () => {
  const plain = await post(chat('only-bad'));
  assert.equal(plain.status, 503);
  const r = await post(chat('only-bad', 'hi', { fallback_models: ['forbidden-good', 'nope', 'good'] }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.deepEqual(models(b), ['good'], 'forbidden-good is not the key\'s, so never tried');
  for (const req of [...a.requests, ...b.requests]) assert.ok(!('fallback_models' in req.body));
  const h = await post(chat('only-bad'), { 'x-tollgate-fallbacks': ' forbidden-good , good' });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get('x-tollgate-target'), 'b');
  const bad = await post(chat('only-bad', 'hi', { fallback_models: 'good' }));
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.param, 'fallback_models');
});

test('a circuit opens after repeated failures, so the dead target costs no attempt, and probes again later', async () => {
  for (let i = 0; i < 3; i++) {
    const r = await post(chat('cb'));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  }
  assert.equal(circuit(await metrics(), 'a', 'cbdead mock:status=503'), 2, 'open after 3 failures');
  a.reset();
  const skip = await post(chat('cb'));
  assert.equal(skip.status, 200);
  assert.equal(skip.headers.get('x-tollgate-attempts'), '1', 'the open circuit is skipped');
  assert.equal(a.requests.length, 0);
  await new Promise((r) => setTimeout(r, OPEN_MS + 50));
  const probe = await post(chat('cb'));
  assert.equal(probe.status, 200);
  assert.equal(probe.headers.get('x-tollgate-attempts'), '2', 'one probe after the cool-down');
  assert.equal(a.requests.length, 1);
  assert.equal(circuit(await metrics(), 'a', 'cbdead mock:status=503'), 2, 'the failed probe opens it again');
});

test('a circuit closes when its probe succeeds', async () => {
  await flaky.close(); // connections refused from now on
  for (let i = 0; i < 3; i++) {
    const r = await post(chat('cbflaky'));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-tollgate-target'), 'b');
  }
  assert.equal(circuit(await metrics(), 'flaky', 'fl'), 2);
  flaky = await startOpenAIMock({ port: flakyPort });
  await new Promise((r) => setTimeout(r, OPEN_MS + 50));
  const r = await post(chat('cbflaky'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-target'), 'flaky');
  assert.equal(r.headers.get('x-tollgate-attempts'), '1');
  assert.equal(circuit(await metrics(), 'flaky', 'fl'), 0, 'closed again');
});

test('weighted targets share traffic in proportion over 1,000 requests', async () => {
  const N = 1000;
  let next = 0;
  const worker = async () => {
    while (next < N) {
      next++;
      const r = await post(chat('w'));
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const na = a.requests.length;
  const nb = b.requests.length;
  assert.equal(na + nb, N);
  // binomial(1000, 0.75): sd 13.7; 5 sd either side
  assert.ok(Math.abs(na - 750) <= 69, `weight 3:1 gave ${na}:${nb}`);
});

test('least_busy sends work to the target with fewer requests in flight', async () => {
  const until = Date.now() + 1500;
  const worker = async () => {
    while (Date.now() < until) {
      const r = await post(chat('busy'));
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const na = a.requests.length;
  const nb = b.requests.length;
  // weighted 1:1 would send half of the requests to the slow target
  assert.ok(na * 5 < na + nb, `slow target got ${na} of ${na + nb}`);
});

test('lowest_latency prefers the target with the shorter time to first byte', async () => {
  for (let i = 0; i < 40; i++) {
    const r = await post(chat('lat'));
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  const na = a.requests.length;
  assert.ok(na <= 12, `the slow target got ${na} of 40 (first measurement plus 1-in-20 exploration)`);
});

test('a stream falls back to the next target when the first fails before any byte', async () => {
  const r = await post(chat('sfb', 'hi mock:words=3', { stream: true }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-attempts'), '2');
  assert.equal(r.headers.get('x-tollgate-target'), 'b');
  const events = await readSSE(r);
  assert.equal(events.at(-1), '[DONE]');
  const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, 'w1 w2 w3');
});

test('a plan of seven targets is tried to its last, and that one streams the answer', async () => {
  const r = await post(chat('long', 'hi mock:words=40', { stream: true }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-attempts'), '7');
  assert.equal(r.headers.get('x-tollgate-target'), 'b');
  assert.deepEqual(models(a), [1, 2, 3, 4, 5, 6].map((i) => `long${i} mock:status=503`));
  assert.deepEqual(models(b), ['long-good']);
  const events = await readSSE(r);
  assert.equal(events.at(-1), '[DONE]');
  const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, Array.from({ length: 40 }, (_, i) => `w${i + 1}`).join(' '));
});

test('a target that sends no first byte in time is abandoned for the next', async () => {
  const t0 = Date.now();
  const r = await post(chat('fbt'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-tollgate-target'), 'b');
  assert.ok(Date.now() - t0 < 2000, 'did not wait for the sleepy target');
  await waitFor(() => a.stats().aborted === 1, 3000, 'the abandoned upstream request to be cancelled');
});

test('a stream that goes quiet longer than idle_timeout_ms ends with a timeout error event', async () => {
  const t0 = Date.now();
  const r = await post(chat('idle', 'hi mock:words=4 mock:chunk_delay_ms=1500', { stream: true }));
  assert.equal(r.status, 200);
  const events = await readSSE(r);
  const last = JSON.parse(events.at(-1));
  assert.equal(last.error?.code, 'upstream_timeout');
  assert.ok(Date.now() - t0 < 1400, 'did not wait for the next event');
  await waitFor(() => a.stats().aborted === 1, 3000, 'the quiet upstream request to be cancelled');
});

test('the client\'s x-request-id is echoed; one is made up otherwise', async () => {
  const r = await post(chat('good'), { 'x-request-id': 'trace-42.a' });
  assert.equal(r.headers.get('x-request-id'), 'trace-42.a');
  const s = await post(chat('good'));
  assert.match(s.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
});

test('a provider killed under load costs no failed request when a fallback exists (answers not yet started)', async () => {
  let done = 0;
  const failures = [];
  const until = Date.now() + 2500;
  let killed = false;
  const dead = flaky; // the provider that is killed below
  const worker = async () => {
    while (Date.now() < until) {
      // answers take 15 ms, so some are in flight on the provider when it dies
      const r = await post(chat('ha', 'hi mock:delay_ms=15'));
      if (r.status !== 200) failures.push(r.status);
      await r.arrayBuffer();
      done++;
      if (!killed && done >= 40 && flaky.stats().active > 0) {
        killed = true;
        await flaky.close();
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.ok(killed, 'the provider was killed mid-load');
  assert.deepEqual(failures, [], `${failures.length} of ${done} requests failed`);
  // b serves half of the traffic anyway: what shows the claim is that the kill cut requests the
  // provider had not answered, and that every answer came from one finished upstream response
  assert.ok(dead.stats().aborted > 0, 'the kill cut requests in flight');
  assert.equal(b.stats().completed + dead.stats().completed, done);
  flaky = await startOpenAIMock({ port: flakyPort });
});
