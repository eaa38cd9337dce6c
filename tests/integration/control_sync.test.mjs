// control_sync.test.mjs: GET /dp/v1/snapshot, the data planes' long poll on tollgate-control.
// The snapshot is built from what the admin API stored and must be accepted by the real
// tollgate-data (a chat request through it proves the whole chain); a waiting poll is answered
// by a config change (200 with the new version), or with 304 after its timeout (shortened here,
// yet long enough that a change made while a poll waits, on a loaded machine, comes before it:
// a 200 then proves the change answered the poll; how fast is measured in bench/, not here).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startControl } from './lib/control.mjs';
import { startGateway, chatBody, sha256hex, waitFor } from './lib/harness.mjs';
import { startOpenAIMock } from '../mocks/openai.mjs';

const DP_TOKEN = 'test-dp-token'; // what startControl sets as TOLLGATE_DP_TOKEN
const UPSTREAM_KEY = 'sk-upstream-test';
const POLL_TIMEOUT_MS = 4000;

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
  assert.deepEqual(snap.routes, [{ alias: 'gpt-4o-mini', strategy: 'weighted', retry: {},
    connect_timeout_ms: 10000, first_byte_timeout_ms: 0, idle_timeout_ms: 0, timeout_ms: 600000, cache_ttl_s: 0,
    allow_unpriced: false,
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

test('waiting_poll_is_answered_by_a_change_with_the_new_key', async () => {
  const v = currentVersion();
  let settled = false;
  const poll = snapshot(v).then((r) => { settled = true; return r; });
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(settled, false, 'the poll answered although nothing changed');
  const t0 = Date.now();
  const k = await createKey('second');
  const r = await poll;
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 200, `answered ${r.status} ${elapsed} ms after the change: ${r.text}`);
  assert.ok(elapsed < POLL_TIMEOUT_MS, `answered ${elapsed} ms after the change`);
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
  assert.ok(Date.now() - t0 < POLL_TIMEOUT_MS, 'the poll waited although a newer version was there');
});

test('waiting_poll_without_change_gets_304_after_the_timeout', async () => {
  const v = currentVersion();
  const t0 = Date.now();
  const r = await snapshot(v);
  const elapsed = Date.now() - t0;
  assert.equal(r.status, 304);
  assert.equal(r.text, '');
  assert.equal(r.version, null);
  assert.ok(elapsed >= POLL_TIMEOUT_MS - 50 && elapsed < POLL_TIMEOUT_MS * 3, `304 after ${elapsed} ms`);
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
  for (const r of rs) assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 < POLL_TIMEOUT_MS, 'the polls were answered by their timeout, not the change');
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
  // a provider the data plane would refuse (bedrock without a region or keys: the API refuses
  // it, so it is forced in here), and a route through it
  const bad = cp.sql(`INSERT INTO providers (name, kind, base_url) VALUES ('br', 'bedrock', 'https://x.example') RETURNING id`);
  const rid = cp.sql(`INSERT INTO routes (alias) VALUES ('other') RETURNING id`);
  cp.sql(`INSERT INTO route_targets (route_id, position, provider_id, model) VALUES ('${rid}', 0, '${bad}', 'm')`);
  const snap = JSON.parse((await snapshot(0)).text);
  assert.ok(!snap.keys.some((x) => x.sha256 === sha256hex('tg-expired')));
  const later = snap.keys.find((x) => x.sha256 === sha256hex('tg-later'));
  assert.deepEqual(later.models, ['gpt-4o-mini']);
  assert.equal(later.expires_at, Date.parse('2999-01-01T00:00:00Z') / 1000);
  assert.ok(!snap.routes.some((x) => x.alias === 'other'));
  assert.ok(!snap.providers.some((x) => x.id === bad));
  assert.ok(snap.providers.some((x) => x.id === provider.id), 'the good provider is still served');
  assert.ok(snap.routes.some((x) => x.alias === 'gpt-4o-mini'));
  assert.match(cp.logs(), new RegExp(`event=provider_left_out provider_id=${bad} kind=bedrock reason="a bedrock provider needs settings.region`));
  // and tollgate-data still accepts it
  const gw = await startGateway({ snapshot: snap });
  assert.equal((await gw.stop()).code, 0, gw.logs());
  cp.sql(`DELETE FROM routes WHERE id = '${rid}'`);
  cp.sql(`DELETE FROM providers WHERE id = '${bad}'`);
});

// Secrets of the providers below: they must reach the snapshot and never the logs.
const KIND_SECRETS = {
  anthropic: 'sk-ant-test-secret', gemini: 'gm-test-secret', azure: 'az-test-secret',
  akid: 'AKIDEXAMPLETEST', secret: 'aws/secret+Test=key', session: 'aws-session-token-test',
};

test('every_provider_kind_reaches_the_snapshot_with_its_credentials_and_settings_mapped', async () => {
  const make = async (body) => {
    const r = await cp.api('POST', '/api/v1/providers', { token: admin, body });
    assert.equal(r.status, 201, r.text);
    return r.body.id;
  };
  const ids = {
    anthropic: await make({ name: 'claude', kind: 'anthropic', base_url: 'https://api.anthropic.com/v1',
      credentials: { api_key: KIND_SECRETS.anthropic }, settings: { api_version: '2023-06-01' } }),
    gemini: await make({ name: 'gemini', kind: 'gemini', base_url: 'https://generativelanguage.googleapis.com/v1beta',
      credentials: { api_key: KIND_SECRETS.gemini }, headers: { 'x-goog-user-project': 'proj-1' } }),
    azure: await make({ name: 'azure', kind: 'azure', base_url: 'https://acme.openai.azure.com/openai',
      credentials: { api_key: KIND_SECRETS.azure }, settings: { api_version: '2024-10-21', note: 'ignored' } }),
    bedrock: await make({ name: 'bedrock', kind: 'bedrock', base_url: 'https://bedrock-runtime.us-east-1.amazonaws.com',
      credentials: { aws_access_key_id: KIND_SECRETS.akid, aws_secret_access_key: KIND_SECRETS.secret,
        aws_session_token: KIND_SECRETS.session },
      settings: { region: 'us-east-1' } }),
  };
  const r = await cp.api('POST', '/api/v1/routes', {
    token: admin,
    body: {
      alias: 'multi', strategy: 'least_busy',
      targets: ['anthropic', 'gemini', 'azure', 'bedrock'].map((k, i) => ({ provider_id: ids[k], model: `m-${k}`, weight: i })),
      retry: { max_attempts: 3, backoff_ms: 50, on_status: [529, 503, 429] },
      connect_timeout_ms: 2000, first_byte_timeout_ms: 15000, idle_timeout_ms: 5000, timeout_ms: 60000, cache_ttl_s: 300,
    },
  });
  assert.equal(r.status, 201, r.text);
  const snap = JSON.parse((await snapshot(0)).text);
  const byId = Object.fromEntries(snap.providers.map((p) => [p.id, p]));
  assert.deepEqual(byId[ids.anthropic], { id: ids.anthropic, kind: 'anthropic', base_url: 'https://api.anthropic.com/v1',
    api_key: KIND_SECRETS.anthropic, api_version: '2023-06-01' });
  assert.deepEqual(byId[ids.gemini], { id: ids.gemini, kind: 'gemini', base_url: 'https://generativelanguage.googleapis.com/v1beta',
    api_key: KIND_SECRETS.gemini, headers: { 'x-goog-user-project': 'proj-1' } });
  assert.deepEqual(byId[ids.azure], { id: ids.azure, kind: 'azure', base_url: 'https://acme.openai.azure.com/openai',
    api_key: KIND_SECRETS.azure, api_version: '2024-10-21' });
  assert.deepEqual(byId[ids.bedrock], { id: ids.bedrock, kind: 'bedrock', base_url: 'https://bedrock-runtime.us-east-1.amazonaws.com',
    region: 'us-east-1', aws_access_key_id: KIND_SECRETS.akid, aws_secret_access_key: KIND_SECRETS.secret,
    aws_session_token: KIND_SECRETS.session });
  assert.deepEqual(snap.routes.find((x) => x.alias === 'multi'), {
    alias: 'multi', strategy: 'least_busy', retry: { max_attempts: 3, backoff_ms: 50, on_status: [429, 503, 529] },
    connect_timeout_ms: 2000, first_byte_timeout_ms: 15000, idle_timeout_ms: 5000, timeout_ms: 60000, cache_ttl_s: 300,
    allow_unpriced: false,
    targets: ['anthropic', 'gemini', 'azure', 'bedrock'].map((k, i) => ({ provider: ids[k], model: `m-${k}`, weight: i })),
  });
  // tollgate-data takes the whole document
  const gw = await startGateway({ snapshot: snap });
  assert.equal((await gw.stop()).code, 0, gw.logs());

  // one bad row forced into the database leaves out that provider and its route, nothing else
  cp.sql(`UPDATE providers SET settings = '{"region": "US East"}' WHERE id = '${ids.bedrock}'`);
  cp.sql(`UPDATE providers SET headers = '{"X-Amz-Date": "20250101T000000Z"}' WHERE id = '${ids.gemini}'`);
  const r2 = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'claude-only', targets: [{ provider_id: ids.anthropic, model: 'c' }] } });
  assert.equal(r2.status, 201, r2.text);
  const snap2 = JSON.parse((await snapshot(0)).text);
  assert.ok(!snap2.providers.some((p) => p.id === ids.bedrock || p.id === ids.gemini));
  assert.ok(snap2.providers.some((p) => p.id === ids.anthropic) && snap2.providers.some((p) => p.id === ids.azure));
  assert.ok(!snap2.routes.some((x) => x.alias === 'multi'), 'the route through a left-out provider is left out');
  assert.ok(snap2.routes.some((x) => x.alias === 'claude-only') && snap2.routes.some((x) => x.alias === 'gpt-4o-mini'));
  assert.match(cp.logs(), new RegExp(`event=provider_left_out provider_id=${ids.bedrock} kind=bedrock reason="a bedrock provider needs settings.region`));
  assert.match(cp.logs(), new RegExp(`event=provider_left_out provider_id=${ids.gemini} kind=gemini reason="a header is reserved`));
  const gw2 = await startGateway({ snapshot: snap2 });
  assert.equal((await gw2.stop()).code, 0, gw2.logs());
  for (const id of Object.values(ids)) cp.sql(`DELETE FROM route_targets WHERE provider_id = '${id}'`);
  cp.sql("DELETE FROM routes WHERE alias IN ('multi', 'claude-only')");
  cp.sql(`DELETE FROM providers WHERE id IN (${Object.values(ids).map((x) => `'${x}'`).join(',')})`);
});

test('stored_retry_policies_reach_the_snapshot_only_as_the_data_plane_takes_them', async () => {
  const r = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'retry-odd', targets: [{ provider_id: provider.id, model: 'm' }] } });
  assert.equal(r.status, 201, r.text);
  const id = r.body.id;
  const route = async () => JSON.parse((await snapshot(0)).text).routes.find((x) => x.alias === 'retry-odd');
  // written before the API's limit was 32, or by hand: more statuses than the data plane takes
  const many = Array.from({ length: 40 }, (_, i) => 500 + i);
  cp.sql(`UPDATE routes SET retry = '${JSON.stringify({ max_attempts: 4, on_status: many })}' WHERE id = '${id}'`);
  assert.deepEqual((await route()).retry, { max_attempts: 4 });
  assert.match(cp.logs(), new RegExp(`event=route_retry_statuses_dropped route_id=${id}`));
  // unknown members, out-of-range, fractional and mistyped values are left to the defaults
  cp.sql(`UPDATE routes SET retry = '{"max_attempts": 2.5, "backoff_ms": 70000, "jitter": true, "on_status": [503, "x", 200, 429.0, 503, 599]}' WHERE id = '${id}'`);
  assert.deepEqual((await route()).retry, { on_status: [503, 599] });
  cp.sql(`UPDATE routes SET retry = '{"max_attempts": "3", "backoff_ms": 0, "on_status": []}' WHERE id = '${id}'`);
  assert.deepEqual((await route()).retry, { backoff_ms: 0, on_status: [] });
  cp.sql(`UPDATE routes SET retry = '[1]' WHERE id = '${id}'`);
  assert.deepEqual((await route()).retry, {});
  const gw = await startGateway({ snapshot: JSON.parse((await snapshot(0)).text) });
  assert.equal((await gw.stop()).code, 0, gw.logs());
  assert.equal((await cp.api('DELETE', `/api/v1/routes/${id}`, { token: admin })).status, 204);
});

test('provider_credentials_never_reach_the_logs', () => {
  assert.match(cp.logs(), /level=debug/); // the check below saw the most verbose logs
  assert.ok(!cp.logs().includes(UPSTREAM_KEY), 'the upstream api_key appears in the logs');
  for (const [k, v] of Object.entries(KIND_SECRETS)) assert.ok(!cp.logs().includes(v), `the ${k} credential appears in the logs`);
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
