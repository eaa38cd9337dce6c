// responses_store.test.mjs: stored responses (docs/responses.md, "State") through the real
// tollgate-control and tollgate-data: the plane contract (POST /dp/v1/responses, GET and DELETE
// /dp/v1/responses/{id}, GET /dp/v1/response-items/{id}), the data plane's GET, DELETE and
// input_items endpoints scoped to the key's tenant, encryption at rest, retention and its purge.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000', TOLLGATE_RESPONSES_PURGE_S: '1' };
const SECRET = 'the-secret-prompt-text-9f2c';

let mock, cp, gw, admin, tA, tB, keyA, keyB;

async function newKey(tenant, name) {
  const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name, models: ['gpt-4o-mini'] } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

// A record as a data plane ships it.
function record(tenant, id, { key = null, text = 'hello', nItems = 3 } = {}) {
  const input = [];
  for (let i = 0; i < nItems; i++) {
    input.push({ id: `${id}_in${i}`, type: 'message', role: i % 2 ? 'assistant' : 'user',
      content: [{ type: i % 2 ? 'output_text' : 'input_text', text: `${SECRET} ${text} ${i}` }] });
  }
  return {
    id, tenant: tenant.id, key, created_at: Math.floor(Date.now() / 1000),
    response: { id, object: 'response', created_at: Math.floor(Date.now() / 1000), status: 'completed', model: 'gpt-4o-mini',
      output: [{ id: `msg_${id}`, type: 'message', status: 'completed', role: 'assistant',
        content: [{ type: 'output_text', text: `answer ${text}`, annotations: [] }] }],
      store: true, usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5 } },
    input_items: input,
  };
}

async function ship(records, token = 'test-dp-token') {
  const res = await fetch(`${cp.url}/dp/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson', 'x-tollgate-dataplane': 'test-dp' },
    body: records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n',
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, text };
}

async function dp(method, p, key) {
  const res = await fetch(gw.url + p, { method, headers: { authorization: `Bearer ${key}` } });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = null; }
  return { status: res.status, body, text };
}

const rid = () => `resp_${randomBytes(12).toString('hex')}`;

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: CP_ENV });
  admin = await cp.login();
  tA = await cp.makeTenant(admin, 'acme');
  tB = await cp.makeTenant(admin, 'globex');
  await cp.mockRoute(admin, mock.url);
  keyA = await newKey(tA, 'a');
  keyB = await newKey(tB, 'b');
  gw = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV });
  await waitFor(async () => (await dp('GET', `/v1/responses/${rid()}`, keyB.key)).status === 404, 10000, 'the keys to reach the data plane');
});

after(async () => {
  await gw?.stop();
  await cp?.stop();
  await mock?.close();
});

test('dp_contract_needs_the_data_plane_token', async () => {
  const r = await ship([record(tA, rid())], 'wrong');
  assert.equal(r.status, 401);
  for (const [m, p] of [['GET', `/dp/v1/responses/${rid()}?tenant=${tA.id}`], ['DELETE', `/dp/v1/responses/${rid()}?tenant=${tA.id}`],
    ['GET', `/dp/v1/response-items/x?tenant=${tA.id}`]]) {
    const res = await fetch(cp.url + p, { method: m });
    assert.equal(res.status, 401, `${m} ${p}`);
  }
});

test('ship_is_idempotent_per_tenant_and_id_and_refuses_bad_lines_alone', async () => {
  const id = rid();
  const rec = record(tA, id);
  let r = await ship([rec, 'not json', { ...record(tA, rid()), tenant: 'nope' }, record({ id: '00000000-0000-4000-8000-000000000000' }, rid())]);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.stored, 1);
  assert.equal(r.body.duplicates, 0);
  assert.deepEqual(r.body.rejected.map((x) => x.line), [2, 3, 4]);
  assert.match(r.body.rejected[2].message, /no such tenant/);
  r = await ship([rec, rec]);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.body.stored, r.body.duplicates], [0, 2]);
  assert.equal(cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id}'`), '1');
  // the same id in another tenant is another response
  r = await ship([record(tB, id)]);
  assert.equal(r.body.stored, 1);
});

test('stored_then_fetched_through_the_data_plane', async () => {
  const id = rid();
  const rec = record(tA, id, { key: keyA.id });
  assert.equal((await ship([rec])).body.stored, 1);
  const g = await dp('GET', `/v1/responses/${id}`, keyA.key);
  assert.equal(g.status, 200, g.text);
  assert.deepEqual(g.body, rec.response);
  // the plane contract answers the record as shipped, by id and by an item's id
  const c = await fetch(`${cp.url}/dp/v1/responses/${id}?tenant=${tA.id}`, { headers: { authorization: 'Bearer test-dp-token' } });
  assert.equal(c.status, 200);
  assert.deepEqual(await c.json(), rec);
  const ci = await fetch(`${cp.url}/dp/v1/response-items/msg_${id}?tenant=${tA.id}`, { headers: { authorization: 'Bearer test-dp-token' } });
  assert.equal(ci.status, 200);
  assert.equal((await ci.json()).id, id);
});

test('input_items_lists_in_openai_shape_with_order_limit_after_before', async () => {
  const id = rid();
  const rec = record(tA, id, { nItems: 5 });
  await ship([rec]);
  const ids = rec.input_items.map((i) => i.id);
  let r = await dp('GET', `/v1/responses/${id}/input_items`, keyA.key);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.object, 'list');
  assert.deepEqual(r.body.data.map((i) => i.id), [...ids].reverse(), 'desc by default');
  assert.deepEqual(r.body.data[0], rec.input_items[4]);
  assert.equal(r.body.first_id, ids[4]);
  assert.equal(r.body.last_id, ids[0]);
  assert.equal(r.body.has_more, false);
  r = await dp('GET', `/v1/responses/${id}/input_items?order=asc&limit=2`, keyA.key);
  assert.deepEqual(r.body.data.map((i) => i.id), ids.slice(0, 2));
  assert.equal(r.body.has_more, true);
  r = await dp('GET', `/v1/responses/${id}/input_items?order=asc&limit=2&after=${r.body.last_id}`, keyA.key);
  assert.deepEqual(r.body.data.map((i) => i.id), ids.slice(2, 4));
  assert.equal(r.body.has_more, true);
  r = await dp('GET', `/v1/responses/${id}/input_items?before=${ids[2]}`, keyA.key);
  assert.deepEqual(r.body.data.map((i) => i.id), [ids[4], ids[3]]);
  assert.equal(r.body.has_more, false);
  for (const q of ['limit=0', 'limit=101', 'limit=x', 'order=up']) {
    r = await dp('GET', `/v1/responses/${id}/input_items?${q}`, keyA.key);
    assert.equal(r.status, 400, q);
    assert.equal(r.body.error.param, q.split('=')[0]);
  }
});

test('other_tenant_id_answers_exactly_like_a_random_one', async () => {
  const id = rid();
  await ship([record(tA, id)]);
  const random = rid();
  for (const [m, suffix] of [['GET', ''], ['GET', '/input_items'], ['DELETE', '']]) {
    const other = await dp(m, `/v1/responses/${id}${suffix}`, keyB.key);
    const none = await dp(m, `/v1/responses/${random}${suffix}`, keyB.key);
    assert.equal(other.status, 404, `${m} ${suffix}`);
    assert.equal(other.text.replace(id, 'X'), none.text.replace(random, 'X'));
    assert.deepEqual(other.body, { error: { message: `Response with id '${id}' not found.`, type: 'invalid_request_error', param: null, code: null } });
  }
  assert.equal((await dp('GET', `/v1/responses/${id}`, keyA.key)).status, 200, 'B\'s DELETE did not touch A\'s');
  // the plane contract too
  const res = await fetch(`${cp.url}/dp/v1/responses/${id}?tenant=${tB.id}`, { headers: { authorization: 'Bearer test-dp-token' } });
  const none = await fetch(`${cp.url}/dp/v1/responses/${random}?tenant=${tB.id}`, { headers: { authorization: 'Bearer test-dp-token' } });
  assert.equal(res.status, 404);
  assert.equal(await res.text(), await none.text());
});

test('deleted_then_404_and_a_resend_does_not_bring_it_back', async () => {
  const id = rid();
  const rec = record(tA, id);
  await ship([rec]);
  assert.equal((await dp('GET', `/v1/responses/${id}`, keyA.key)).status, 200);
  const d = await dp('DELETE', `/v1/responses/${id}`, keyA.key);
  assert.equal(d.status, 200, d.text);
  assert.deepEqual(d.body, { id, object: 'response.deleted', deleted: true });
  for (const suffix of ['', '/input_items']) {
    const r = await dp('GET', `/v1/responses/${id}${suffix}`, keyA.key);
    assert.equal(r.status, 404, suffix);
    assert.equal(r.body.error.message, `Response with id '${id}' not found.`);
  }
  assert.equal((await dp('DELETE', `/v1/responses/${id}`, keyA.key)).status, 404);
  assert.equal(cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id}' AND data_enc IS NULL`), '1');
  assert.equal(cp.sql(`SELECT count(*) FROM stored_response_items WHERE response_id = '${id}'`), '0');
  const r = await ship([rec]);
  assert.deepEqual([r.body.stored, r.body.duplicates], [0, 1]);
  assert.equal((await dp('GET', `/v1/responses/${id}`, keyA.key)).status, 404);
});

test('encrypted_at_rest_the_tables_bytes_do_not_hold_the_text', async () => {
  const id = rid();
  await ship([record(tA, id, { text: 'needle-in-the-table' })]);
  const hex = cp.sql(`SELECT encode(data_enc, 'hex') FROM stored_responses WHERE id = '${id}' AND tenant_id = '${tA.id}'`);
  assert.ok(hex.length > 200, hex);
  const bytes = Buffer.from(hex, 'hex');
  for (const s of [SECRET, 'needle-in-the-table', 'answer', '"input_items"']) {
    assert.equal(bytes.indexOf(Buffer.from(s)), -1, `${s} is in data_enc`);
  }
  // nothing else in either table holds it either (a dump of both, as text)
  const dump = cp.sql('SELECT row_to_json(s)::text FROM stored_responses s') + cp.sql('SELECT row_to_json(i)::text FROM stored_response_items i');
  assert.ok(!dump.includes(SECRET) && !dump.includes('needle'), 'plaintext in the tables');
  assert.equal((await dp('GET', `/v1/responses/${id}`, keyA.key)).body.output[0].content[0].text, 'answer needle-in-the-table');
});

test('retention_is_the_tenants_and_expired_rows_are_never_served_and_purged', async () => {
  const id = rid();
  await ship([record(tA, id)]);
  const days = () => cp.sql(`SELECT round(extract(epoch FROM expires_at - created_at) / 86400) FROM stored_responses WHERE id = '${id}'`);
  assert.equal(days(), '30', 'the default');
  let r = await cp.api('PATCH', `/api/v1/tenants/${tA.id}`, { token: admin, body: { responses_retention_days: 2 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.responses_retention_days, 2);
  assert.equal(days(), '2', 'a new retention applies to what is stored');
  const id2 = rid();
  await ship([record(tA, id2)]);
  assert.equal(cp.sql(`SELECT round(extract(epoch FROM expires_at - created_at) / 86400) FROM stored_responses WHERE id = '${id2}'`), '2');
  r = await cp.api('PATCH', `/api/v1/tenants/${tA.id}`, { token: admin, body: { responses_retention_days: 0 } });
  assert.equal(r.status, 422, r.text);
  r = await cp.api('PATCH', `/api/v1/tenants/${tA.id}`, { token: admin, body: { responses_retention_days: null } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.responses_retention_days, null);
  assert.equal(days(), '30');
  // expired: not served at once (the purge may not have run), then gone from the table
  cp.sql(`UPDATE stored_responses SET expires_at = now() - interval '1 second' WHERE id = '${id}'`);
  const c = await fetch(`${cp.url}/dp/v1/responses/${id}?tenant=${tA.id}`, { headers: { authorization: 'Bearer test-dp-token' } });
  assert.equal(c.status, 404);
  await waitFor(() => cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id}'`) === '0', 5000, 'the purge');
  await waitFor(() => /event=expired_purged responses=1/.test(cp.logs()), 5000, 'the purge\'s log line');
  assert.equal(cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id2}'`), '1', 'what has not expired stays');
});
