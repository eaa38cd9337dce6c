// control_sync.test.mjs: GET /dp/v1/snapshot, the data planes' long poll on tollgate-control.
// The snapshot is built from what the admin API stored and must be accepted by the real
// tollgate-data (a chat request through it proves the whole chain); a waiting poll is answered
// within a second of a config change, or with 304 after its timeout (shortened here).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from './lib/control.mjs';
import { startGateway, chatBody, sha256hex, waitFor } from './lib/harness.mjs';
import { startOpenAIMock } from '../mocks/openai.mjs';

const DP_TOKEN = 'test-dp-token'; // what startControl sets as TOLLGATE_DP_TOKEN
const UPSTREAM_KEY = 'sk-upstream-test';
const POLL_TIMEOUT_MS = 1500;

let cp;
let mock;
let admin;
let tenant;
let provider;
let firstKey; // {id, key}

function snapshot(after, { token = DP_TOKEN, signal } = {}) {
  const q = after === undefined ? '' : `?after=${after}`;
  const headers = token === null ? {} : { authorization: `Bearer ${token}` };
  return fetch(`${cp.url}/dp/v1/snapshot${q}`, { headers, signal }).then(async (res) => ({
    status: res.status,
    version: res.headers.get('x-tollgate-snapshot-version'),
    text: await res.text(),
  }));
}

async function createKey(name) {
  const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`,
    { token: admin, body: { name, models: ['gpt-4o-mini'] } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({
    env: { TOLLGATE_DP_POLL_TIMEOUT_MS: String(POLL_TIMEOUT_MS), TOLLGATE_LOG_LEVEL: 'debug' },
  });
  admin = await cp.login();
  tenant = await cp.makeTenant(admin, 'sync-acme');
  let r = await cp.api('POST', '/api/v1/providers', {
    token: admin,
    body: { name: 'mock', kind: 'openai', base_url: mock.url, credentials: { api_key: UPSTREAM_KEY } },
  });
  assert.equal(r.status, 201, r.text);
  provider = r.body;
  r = await cp.api('POST', '/api/v1/routes', {
    token: admin,
    body: { alias: 'gpt-4o-mini', targets: [{ provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', weight: 1 }] },
  });
  assert.equal(r.status, 201, r.text);
  r = await cp.api('PUT', '/api/v1/prices', {
    token: admin,
    body: { provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 0.15,
      cached_input_per_mtok: 0.075, output_per_mtok: 0.6 },
  });
  assert.ok(r.status === 200 || r.status === 201, r.text);
  firstKey = await createKey('first');
});

after(async () => {
  await cp?.stop();
  await mock?.close();
});

const currentVersion = () => Number(cp.sql(
  'SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM config_version_seq'));

test('wrong_or_missing_dp_token_gets_401_and_no_snapshot', async () => {
  for (const token of [null, 'wrong-token', `${DP_TOKEN}x`, '']) {
    const r = await snapshot(0, { token });
    assert.equal(r.status, 401, `token ${JSON.stringify(token)}`);
    assert.equal(r.version, null);
    assert.ok(!r.text.includes(UPSTREAM_KEY) && !r.text.includes('"keys"'), r.text);
  }
  // a session JWT of a platform admin is not a data-plane token either
  const r = await snapshot(0, { token: admin });
  assert.equal(r.status, 401);
});

test('bad_after_gets_400', async () => {
  for (const a of ['abc', '-1', '1.5', '', '99999999999999999999999']) {
    const r = await snapshot(a);
    assert.equal(r.status, 400, `after=${a}: ${r.text}`);
  }
});

test('after_0_returns_a_snapshot_that_tollgate_data_serves', async () => {
  const r = await snapshot(0);
  assert.equal(r.status, 200, r.text);
  const snap = JSON.parse(r.text);
  assert.equal(Number(r.version), snap.version);
  assert.equal(snap.version, currentVersion());
  assert.deepEqual(snap.tenants, [{ id: tenant.id, name: 'sync-acme' }]);
  assert.deepEqual(snap.providers, [{ id: provider.id, kind: 'openai', base_url: mock.url, api_key: UPSTREAM_KEY }]);
  assert.deepEqual(snap.routes, [{ alias: 'gpt-4o-mini', connect_timeout_ms: 10000, timeout_ms: 600000,
    targets: [{ provider: provider.id, model: 'gpt-4o-mini-2024-07-18', weight: 1 }] }]);
  assert.deepEqual(snap.prices, [{ provider: provider.id, model: 'gpt-4o-mini-2024-07-18',
    input_per_mtok: 0.15, cached_input_per_mtok: 0.075, output_per_mtok: 0.6 }]);
  assert.deepEqual(snap.keys, [{ id: firstKey.id, tenant: tenant.id, sha256: sha256hex(firstKey.key), models: ['gpt-4o-mini'] }]);
  // no param = everything, like after=0
  assert.equal((await snapshot()).status, 200);

  const gw = await startGateway({ snapshot: snap });
  try {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${firstKey.key}` },
      body: JSON.stringify(chatBody('hello through the control plane')),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(JSON.parse(text).object, 'chat.completion');
    const upstream = mock.requests.at(-1);
    assert.equal(upstream.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(upstream.body.model, 'gpt-4o-mini-2024-07-18');
  } finally {
    const e = await gw.stop();
    assert.equal(e.code, 0, gw.logs());
  }
});

test('waiting_poll_is_answered_within_1s_of_a_change_with_the_new_key', async () => {
  const v = currentVersion();
  let settled = false;
  const poll = snapshot(v).then((r) => { settled = true; return r; });
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(settled, false, 'the poll answered although nothing changed');
  const t0 = Date.now();
  const k = await createKey('second');
  const r = await poll;
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 1000, `answered ${elapsed} ms after the change`);
  assert.equal(r.status, 200, r.text);
  assert.ok(Number(r.version) > v);
  const snap = JSON.parse(r.text);
  assert.equal(snap.version, Number(r.version));
  assert.ok(snap.keys.some((x) => x.id === k.id && x.sha256 === sha256hex(k.key)), r.text);
});

test('newer_version_is_answered_at_once', async () => {
  const v = currentVersion();
  const t0 = Date.now();
  const r = await snapshot(v - 1);
  assert.equal(r.status, 200);
  assert.equal(Number(r.version), v);
  assert.ok(Date.now() - t0 < 1000);
});

test('waiting_poll_without_change_gets_304_after_the_timeout', async () => {
  const v = currentVersion();
  const t0 = Date.now();
  const r = await snapshot(v);
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 304);
  assert.equal(r.text, '');
  assert.equal(r.version, null);
  assert.ok(elapsed >= POLL_TIMEOUT_MS - 50 && elapsed < POLL_TIMEOUT_MS + 1500, `304 after ${elapsed} ms`);
  // a version from the future waits as well
  assert.equal((await snapshot(v + 1000)).status, 304);
});

test('many_waiting_polls_are_all_answered_by_one_change', async () => {
  const v = currentVersion();
  const polls = Array.from({ length: 20 }, () => snapshot(v));
  await new Promise((res) => setTimeout(res, 300));
  const t0 = Date.now();
  await createKey('third');
  const rs = await Promise.all(polls);
  assert.ok(Date.now() - t0 < 1000);
  for (const r of rs) assert.equal(r.status, 200);
});

test('revoked_key_disappears_from_the_next_snapshot', async () => {
  const k = await createKey('to-revoke');
  let snap = JSON.parse((await snapshot(0)).text);
  assert.ok(snap.keys.some((x) => x.id === k.id));
  const v = snap.version;
  const poll = snapshot(v);
  const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys/${k.id}/revoke`, { token: admin });
  assert.equal(r.status, 200, r.text);
  const p = await poll;
  assert.equal(p.status, 200);
  snap = JSON.parse(p.text);
  assert.ok(snap.version > v);
  assert.ok(!snap.keys.some((x) => x.id === k.id), 'the revoked key is still in the snapshot');
  assert.ok(snap.keys.some((x) => x.id === firstKey.id));
});

test('expired_keys_and_unservable_routes_are_left_out', async () => {
  cp.sql(`INSERT INTO virtual_keys (tenant_id, name, key_hash, last4, models, expires_at)
    VALUES ('${tenant.id}', 'expired', sha256('tg-expired'::bytea), 'ired', '{gpt-4o-mini}', now() - interval '1 hour'),
           ('${tenant.id}', 'later', sha256('tg-later'::bytea), 'ater', '{gpt-4o-mini,other}', '2999-01-01T00:00:00Z')`);
  // a provider of a kind the data plane cannot serve yet, and a route through it
  const azure = cp.sql(`INSERT INTO providers (name, kind, base_url) VALUES ('az', 'azure', 'https://x.example') RETURNING id`);
  const rid = cp.sql(`INSERT INTO routes (alias) VALUES ('other') RETURNING id`);
  cp.sql(`INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ('${rid}', 0, '${azure}', 'm')`);
  const snap = JSON.parse((await snapshot(0)).text);
  assert.ok(!snap.keys.some((x) => x.sha256 === sha256hex('tg-expired')));
  const later = snap.keys.find((x) => x.sha256 === sha256hex('tg-later'));
  assert.deepEqual(later.models, ['gpt-4o-mini']);
  assert.equal(later.expires_at, Date.parse('2999-01-01T00:00:00Z') / 1000);
  assert.ok(!snap.routes.some((x) => x.alias === 'other'));
  assert.ok(!snap.providers.some((x) => x.id === azure));
  // and tollgate-data still accepts it
  const gw = await startGateway({ snapshot: snap });
  assert.equal((await gw.stop()).code, 0, gw.logs());
});

test('provider_credentials_never_reach_the_logs', () => {
  assert.match(cp.logs(), /level=debug/); // the check below saw the most verbose logs
  assert.ok(!cp.logs().includes(UPSTREAM_KEY), 'the upstream api_key appears in the logs');
  assert.ok(!cp.logs().includes(DP_TOKEN), 'the data-plane token appears in the logs');
});

test('shutdown_answers_waiting_polls', async () => {
  const v = currentVersion();
  const poll = snapshot(v);
  poll.catch(() => {}); // awaited below; keeps an early failure from being "unhandled"
  // stop only once the poll is really parked in the control plane
  await waitFor(async () => {
    const m = await fetch(cp.url + '/metrics').then((x) => x.text());
    return /tollgate_control_snapshot_polls_waiting [1-9]/.test(m);
  }, 5000, 'the poll to wait');
  const t0 = Date.now();
  const e = await cp.stop();
  const r = await poll;
  assert.equal(e.code, 0, cp.logs());
  assert.ok([503, 304].includes(r.status), `status ${r.status}`);
  assert.ok(Date.now() - t0 < 3000);
});
