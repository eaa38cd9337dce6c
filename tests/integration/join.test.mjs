// join.test.mjs: tollgate-data taking its config from tollgate-control: what an admin does in the
// API governs traffic within moments, and a data plane restarts and serves while the control
// plane is down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, chatBody, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

let mock;
let cp;
let admin;
let tenant;
const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  admin = await cp.login();
  tenant = await cp.makeTenant(admin, 'acme');
  await cp.mockRoute(admin, mock.url);
});

after(async () => {
  await cp.stop();
  await mock.close();
});

function chat(gw, key) {
  return fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify(chatBody('hi')),
  });
}

async function newKey(name) {
  const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name, models: ['gpt-4o-mini'] } });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

test('a key created in the admin API works on the data plane at once; revoked, it stops', async () => {
  const gw = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV });
  try {
    const k = await newKey('live');
    const t0 = Date.now();
    await waitFor(async () => (await chat(gw, k.key)).status === 200, 5000, 'the new key to work');
    const live = Date.now() - t0;
    const rev = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys/${k.id}/revoke`, { token: admin });
    assert.equal(rev.status, 200);
    const t1 = Date.now();
    await waitFor(async () => (await chat(gw, k.key)).status === 401, 5000, 'the revoked key to fail');
    console.log(`# key live after ${live} ms, revocation live after ${Date.now() - t1} ms`);
    const ready = await (await fetch(gw.url + '/readyz')).json();
    assert.ok(ready.snapshot_version > 0);
    // the data plane is listed with what it runs and the snapshot it has
    const dps = await waitFor(async () => {
      const l = await cp.api('GET', '/api/v1/dataplanes', { token: admin });
      return l.body.data.find((d) => d.live && d.snapshot_version === ready.snapshot_version) && l;
    }, 5000, 'the data plane to be listed');
    const me = dps.body.data.find((d) => d.snapshot_version === ready.snapshot_version);
    assert.equal(me.version, '0.1.0');
    assert.equal(me.host, '127.0.0.1');
  } finally {
    await gw.stop();
  }
});

test('a data plane with a wrong token gets no snapshot', async () => {
  const gw = await startGateway({ args: ['--control-url', cp.url], env: { TOLLGATE_DP_TOKEN: 'wrong' } });
  try {
    await waitFor(() => /event=poll_refused status=401/.test(gw.logs()), 5000, 'the refusal');
    assert.equal((await fetch(gw.url + '/readyz')).status, 503);
  } finally {
    await gw.stop();
  }
});

test('a restarted data plane serves its last good snapshot while the control plane is down, and refuses a tampered one', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-state-'));
  const k = await newKey('restart');
  const gw1 = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV, stateDir });
  await waitFor(async () => (await chat(gw1, k.key)).status === 200, 5000, 'the key to work');
  await gw1.stop();
  // the control plane is unreachable now (nothing listens on port 1)
  const gw2 = await startGateway({ args: ['--control-url', 'http://127.0.0.1:1'], env: DP_ENV, stateDir });
  try {
    assert.equal((await chat(gw2, k.key)).status, 200, 'served from the state snapshot');
    assert.match(gw2.logs(), /event=state_snapshot_loaded/);
  } finally {
    await gw2.stop();
  }
  // someone edits the file on disk: it is refused at start, with a reason
  const file = path.join(stateDir, 'snapshot.json');
  const orig = readFileSync(file, 'utf8');
  const forged = orig.replace(/("sha256"\s*:\s*")([0-9a-f])/, (m, a, c) => a + (c === '0' ? '1' : '0'));
  assert.notEqual(forged, orig);
  writeFileSync(file, forged);
  const gw3 = await startGateway({ args: ['--control-url', 'http://127.0.0.1:1'], env: DP_ENV, stateDir });
  try {
    assert.match(gw3.logs(), /event=state_snapshot_refused .*HMAC does not match/);
    assert.equal((await fetch(gw3.url + '/readyz')).status, 503);
    assert.equal((await chat(gw3, k.key)).status, 503);
  } finally {
    await gw3.stop();
  }
  // and a truncated one too
  writeFileSync(file, readFileSync(file, 'utf8').slice(0, 40));
  const gw4 = await startGateway({ args: ['--control-url', 'http://127.0.0.1:1'], env: DP_ENV, stateDir });
  try {
    assert.match(gw4.logs(), /event=state_snapshot_refused/);
    assert.equal((await fetch(gw4.url + '/readyz')).status, 503);
  } finally {
    await gw4.stop();
  }
});

test('a data plane restarted on its state dir is the same data plane to the control plane', async () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-state-'));
  const ids = async () => (await cp.api('GET', '/api/v1/dataplanes', { token: admin })).body.data.map((d) => d.id);
  const idOf = (gw) => /event=started .*dataplane=(\S+)/.exec(gw.logs())[1];
  const gw1 = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV, stateDir });
  const id1 = await waitFor(() => /event=started/.test(gw1.logs()) && idOf(gw1), 5000, 'the first id');
  await waitFor(async () => (await ids()).includes(id1), 5000, 'the first registration');
  assert.equal(readFileSync(path.join(stateDir, 'dataplane-id'), 'utf8'), `${id1}\n`);
  const before = (await ids()).length;
  await gw1.stop('SIGKILL');
  const restarted = Date.now() - 5; // the database's clock and ours are one machine's
  const gw2 = await startGateway({ args: ['--control-url', cp.url], env: DP_ENV, stateDir });
  try {
    const id2 = await waitFor(() => /event=started/.test(gw2.logs()) && idOf(gw2), 5000, 'the second id');
    assert.equal(id2, id1, 'the id kept in the state dir');
    // once it has registered again, the control plane still counts one data plane, not two
    const rows = async () => (await cp.api('GET', '/api/v1/dataplanes', { token: admin })).body.data;
    await waitFor(async () => (await rows()).some((d) => d.id === id2 && Date.parse(d.last_seen) >= restarted)
      || (await rows()).length > before, 5000, 'the second registration');
    assert.equal((await ids()).length, before, 'no second row for the same data plane');
  } finally {
    await gw2.stop();
  }
  // a broken id file is refused with a reason, never replaced behind the operator's back
  writeFileSync(path.join(stateDir, 'dataplane-id'), 'not an id!\n');
  await assert.rejects(startGateway({ args: ['--control-url', cp.url], env: DP_ENV, stateDir }),
    /event=identity_failed reason="cannot use the data-plane id in .*delete the file/);
});

test('on a fresh install a data plane is ready before any admin change (an empty config is valid)', async () => {
  const fresh = await startControl({ env: { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' } });
  const gw = await startGateway({ args: ['--control-url', fresh.url], env: DP_ENV });
  try {
    const r = await waitFor(async () => {
      const res = await fetch(gw.url + '/readyz');
      return res.status === 200 && res.json();
    }, 5000, 'the data plane to be ready');
    assert.equal(r.snapshot_version, Number(fresh.sql('SELECT v FROM config_version')));
    // ready, and it answers for what it holds: no such key yet
    assert.equal((await chat(gw, 'tg-nobody')).status, 401);
    // the first change after that still arrives
    const t = await fresh.makeTenant(await fresh.login(), 'first');
    assert.ok(t.id);
    await waitFor(async () => (await (await fetch(gw.url + '/readyz')).json()).snapshot_version > r.snapshot_version,
      5000, 'the first change');
  } finally {
    await gw.stop();
    await fresh.stop();
  }
});
