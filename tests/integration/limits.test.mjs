// limits.test.mjs: rate limits (requests and tokens per minute, per key and per tenant) and
// budgets (per key and per tenant, per period) enforced by one tollgate-data from its snapshot:
// the 429s, their messages and retry-after, the x-ratelimit-* headers, and that recorded spend
// never passes a budget.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, sha256hex } from './lib/harness.mjs';

let mock;
let gw;
let version = 1;

const today = new Date().toISOString().slice(0, 10);
const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);

function post(key, body) {
  return fetch(gw.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
}

// A snapshot with two tenants and the given keys ({secret: {tenant, rpm_limit, ...}}),
// tenant limits and budgets.
function snapshot({ keys, tenants = {}, budgets = [] }) {
  const base = makeSnapshot({ mockUrl: mock.url, version: version++ });
  base.tenants = ['t-acme', 't-beta'].map((id) => ({ id, name: id, ...(tenants[id] || {}) }));
  base.keys = Object.entries(keys).map(([secret, k]) => ({
    id: k.id, tenant: k.tenant || 't-acme', sha256: sha256hex(secret), models: ['gpt-4o-mini'],
    ...(k.rpm_limit ? { rpm_limit: k.rpm_limit } : {}),
    ...(k.tpm_limit ? { tpm_limit: k.tpm_limit } : {}),
  }));
  base.budgets = budgets;
  base.spend_as_of = Date.now();
  return base;
}

async function load(snap) {
  assert.equal(await gw.reload(snap), 'loaded');
}

before(async () => {
  mock = await startOpenAIMock();
  gw = await startGateway({ snapshot: snapshot({ keys: {} }) });
});

after(async () => {
  await gw?.stop();
  await mock?.close();
});

test('requests per minute: the limit, what remains, then 429 with retry-after', async () => {
  await load(snapshot({ keys: { 'rk-1': { id: 'k-rpm', rpm_limit: 3 } } }));
  const remaining = [];
  for (let i = 0; i < 3; i++) {
    const res = await post('rk-1', chatBody('hi'));
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(res.headers.get('x-ratelimit-limit-requests'), '3');
    remaining.push(res.headers.get('x-ratelimit-remaining-requests'));
    assert.match(res.headers.get('x-ratelimit-reset-requests'), /^\d+(ms|s|m\d+s)$/);
  }
  assert.deepEqual(remaining, ['2', '1', '0']);
  const res = await post('rk-1', chatBody('hi'));
  assert.equal(res.status, 429);
  const body = await res.json();
  assert.equal(body.error.code, 'rate_limit_exceeded');
  assert.equal(body.error.type, 'requests');
  assert.match(body.error.message, /3 requests per minute/);
  // one request comes back every 20 s at 3/min
  const ra = Number(res.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 20, `retry-after ${ra}`);
  assert.equal(res.headers.get('x-ratelimit-remaining-requests'), '0');
  // the refusal is recorded, and the upstream never saw it
  // (each worker loop hands its records over on its own timer: wait for all four)
  const u = await gw.waitUsage((l) => l.filter((r) => r.key_id === 'k-rpm').length >= 4);
  assert.deepEqual(u.filter((r) => r.key_id === 'k-rpm').map((r) => r.status).sort(), [200, 200, 200, 429]);
});

test('the openai SDK sees a RateLimitError', async () => {
  await load(snapshot({ keys: { 'rk-sdk': { id: 'k-sdk', rpm_limit: 1 } } }));
  const client = new OpenAI({ apiKey: 'rk-sdk', baseURL: gw.url + '/v1', maxRetries: 0 });
  await client.chat.completions.create(chatBody('one'));
  await assert.rejects(client.chat.completions.create(chatBody('two')),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429);
});

test('a tenant limit is shared by all its keys; other tenants are not touched', async () => {
  await load(snapshot({
    tenants: { 't-acme': { rpm_limit: 2 } },
    keys: {
      'tk-a1': { id: 'k-a1' }, 'tk-a2': { id: 'k-a2' }, 'tk-b1': { id: 'k-b1', tenant: 't-beta' },
    },
  }));
  assert.equal((await post('tk-a1', chatBody('x'))).status, 200);
  assert.equal((await post('tk-a2', chatBody('x'))).status, 200);
  const res = await post('tk-a1', chatBody('x'));
  assert.equal(res.status, 429);
  assert.match((await res.json()).error.message, /tenant: 2 requests per minute/);
  assert.equal((await post('tk-a2', chatBody('x'))).status, 429);
  for (let i = 0; i < 4; i++) assert.equal((await post('tk-b1', chatBody('x'))).status, 200);
});

test('tokens per minute: estimate taken up front, corrected by actual usage', async () => {
  await load(snapshot({ keys: { 'tpk-1': { id: 'k-tpm', tpm_limit: 200 } } }));
  // estimate = body/4 + max_tokens 150 (about 175): admitted, the bucket is nearly empty
  let res = await post('tpk-1', chatBody('hello', { max_tokens: 150 }));
  assert.equal(res.status, 200);
  const first = await res.json();
  assert.equal(res.headers.get('x-ratelimit-limit-tokens'), '200');
  const after1 = res.headers.get('x-ratelimit-remaining-tokens');
  assert.ok(/^\d+$/.test(after1) && Number(after1) < 50, `remaining after the estimate: ${after1}`);
  // the answer used far fewer tokens than the estimate: they come back, so a second request
  // of the same estimate fits again
  assert.ok(first.usage.total_tokens < 60);
  res = await post('tpk-1', chatBody('hello', { max_tokens: 150 }));
  assert.equal(res.status, 200, 'the unused estimate is given back');
  await res.text();
  // a request that cannot fit what is left: 429 naming tokens
  res = await post('tpk-1', chatBody('hello', { max_tokens: 190 }));
  assert.equal(res.status, 429);
  const body = await res.json();
  assert.equal(body.error.type, 'tokens');
  assert.match(body.error.message, /200 tokens per minute/);
  assert.ok(Number(res.headers.get('retry-after')) >= 1);
});

test('a key budget: recorded spend never passes it, then 429 insufficient_quota', async () => {
  // gpt-4o-mini at $0.15/$0.60 per Mtok: a small request with max_tokens 20 may cost up to
  // about 140 bytes * 0.15e-6 + 20 * 0.6e-6 = $0.000033; give room for a handful
  const limit = 0.0002;
  await load(snapshot({
    keys: { 'bk-1': { id: 'k-budget' } },
    budgets: [{ id: 'b-1', tenant: 't-acme', key: 'k-budget', period: 'daily', limit_usd: limit,
      spent_usd: 0, period_start: today }],
  }));
  let ok = 0;
  let refused;
  for (let i = 0; i < 100 && !refused; i++) {
    const res = await post('bk-1', chatBody('spend a little', { max_tokens: 20 }));
    if (res.status === 200) { ok++; await res.text(); } else refused = res;
  }
  assert.ok(refused, 'the budget stopped the key');
  assert.ok(ok >= 3, `${ok} requests before the budget`);
  assert.equal(refused.status, 429);
  const body = await refused.json();
  assert.equal(body.error.type, 'insufficient_quota');
  assert.equal(body.error.code, 'budget_exceeded');
  // used up, or too little left for this request's worst case: either way the budget is named
  assert.match(body.error.message,
    /^(the API key daily budget of \$0\.000200 is used up: \$0\.\d{6} spent|this request may cost up to \$0\.\d{6} \(\d+ prompt tokens, one per body byte, plus max_tokens 20\), more than the \$0\.\d{6} left of the API key daily budget of \$0\.000200 \(\$0\.\d{6} spent\); a smaller max_tokens reserves less)/);
  assert.match(body.error.message, /resets at \d{4}-\d\d-\d\dT00:00:00/);
  const ra = Number(refused.headers.get('retry-after'));
  assert.ok(ra > 0 && ra <= 86400);
  const u = await gw.waitUsage((l) => l.filter((r) => r.key_id === 'k-budget').length === ok + 1);
  const spent = u.filter((r) => r.key_id === 'k-budget').reduce((s, r) => s + r.cost_usd, 0);
  assert.ok(spent > 0 && spent <= limit, `spent ${spent} within ${limit}`);
});

test('a budget smaller than one request\'s worst case: the refusal says what it would reserve, from what, and how to reserve less', async () => {
  // without max_tokens, 4096 completion tokens at $0.60 per Mtok alone are $0.002458
  await load(snapshot({
    keys: { 'sb-1': { id: 'k-small' } },
    budgets: [{ id: 'b-s', tenant: 't-acme', key: 'k-small', period: 'daily', limit_usd: 0.001,
      spent_usd: 0, period_start: today }],
  }));
  const b = chatBody('hello');
  const bytes = Buffer.byteLength(JSON.stringify(b));
  const res = await post('sb-1', b);
  assert.equal(res.status, 429);
  const body = await res.json();
  assert.equal(body.error.code, 'budget_exceeded');
  const worst = (bytes * 0.15 + 4096 * 0.6) / 1e6;
  assert.equal(body.error.message,
    `this request may cost up to $${worst.toFixed(6)} (${bytes} prompt tokens, one per body byte, ` +
    'plus 4096 completion tokens: the default without max_tokens), more than the $0.001000 left ' +
    'of the API key daily budget of $0.001000 (nothing spent yet); a smaller max_tokens reserves ' +
    `less; it resets at ${new Date(Date.parse(today) + 86400000).toISOString()}`);
  assert.doesNotMatch(body.error.message, /used up/);
  // and doing what it says works
  const ok = await post('sb-1', chatBody('hello', { max_tokens: 50 }));
  assert.equal(ok.status, 200);
  await ok.text();
});

test('spend carried in the snapshot counts; a past period does not', async () => {
  await load(snapshot({
    keys: { 'bk-2': { id: 'k-spent' }, 'bk-3': { id: 'k-old' } },
    budgets: [
      { id: 'b-2', tenant: 't-acme', key: 'k-spent', period: 'monthly', limit_usd: 5,
        spent_usd: 5, period_start: today.slice(0, 8) + '01' },
      { id: 'b-3', tenant: 't-acme', key: 'k-old', period: 'daily', limit_usd: 5,
        spent_usd: 5, period_start: yesterday },
    ],
  }));
  const res = await post('bk-2', chatBody('x'));
  assert.equal(res.status, 429);
  assert.match((await res.json()).error.message, /monthly budget of \$5\.000000/);
  assert.equal((await post('bk-3', chatBody('x'))).status, 200, 'yesterday\'s spend is not today\'s');
});

test('a tenant budget stops every key of the tenant; total budgets never reset', async () => {
  await load(snapshot({
    keys: { 'tb-1': { id: 'k-tb1' }, 'tb-2': { id: 'k-tb2' }, 'tb-3': { id: 'k-tb3', tenant: 't-beta' } },
    budgets: [{ id: 'b-4', tenant: 't-acme', period: 'total', limit_usd: 1, spent_usd: 1 }],
  }));
  for (const k of ['tb-1', 'tb-2']) {
    const res = await post(k, chatBody('x'));
    assert.equal(res.status, 429);
    const body = await res.json();
    assert.match(body.error.message, /tenant total budget of \$1\.000000 is used up/);
    assert.doesNotMatch(body.error.message, /resets/);
    assert.equal(res.headers.get('retry-after'), null);
  }
  assert.equal((await post('tb-3', chatBody('x'))).status, 200);
});

test('bad limits or budgets in a snapshot are refused and the old one keeps serving', async () => {
  const good = snapshot({ keys: { 'ok-1': { id: 'k-ok' } } });
  await load(good);
  const bad = [
    (s) => { s.keys[0].rpm_limit = 0; },
    (s) => { s.keys[0].tpm_limit = -5; },
    (s) => { s.tenants[0].rpm_limit = 'ten'; },
    (s) => { s.budgets = [{ id: 'b', tenant: 't-nope', period: 'daily', limit_usd: 1 }]; },
    (s) => { s.budgets = [{ id: 'b', tenant: 't-acme', period: 'weekly', limit_usd: 1 }]; },
    (s) => { s.budgets = [{ id: 'b', tenant: 't-acme', period: 'daily', limit_usd: -1 }]; },
    (s) => { s.budgets = [{ id: 'b', tenant: 't-beta', key: 'k-ok', period: 'daily', limit_usd: 1 }]; },
    (s) => { s.budgets = [{ id: 'b', tenant: 't-acme', period: 'daily', limit_usd: 1, period_start: 'today' }]; },
  ];
  for (const mutate of bad) {
    const s = snapshot({ keys: { 'ok-1': { id: 'k-ok' } } });
    mutate(s);
    assert.equal(await gw.reload(s), 'refused', JSON.stringify(s.keys[0]) + JSON.stringify(s.budgets));
  }
  assert.equal((await post('ok-1', chatBody('still here'))).status, 200);
});
