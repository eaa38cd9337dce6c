// runtime_contract.test.mjs: both binaries run the way their containers run in a pod
// (docs/operations.md, "Container images"; lib/sandbox.mjs): read-only root, UID/GID 10001, PID 1,
// the image's /opt/tollgate layout, only the data plane's state dir writable. They answer their
// probes, serve a request end to end, and stop on SIGTERM within the grace period the Helm chart
// gives them (data plane: --drain-timeout-ms 25000, terminationGracePeriodSeconds 40).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { BIN, startGateway, chatBody, waitFor, tryConnect, within } from './lib/harness.mjs';
import { startControl, createDatabase, pgHost } from './lib/control.mjs';
import {
  POD_UID, STATE_DIR, IMAGE_BIN, PG_SOCKET_DIR, bwrapPath, giveToPodUser, sandboxArgv, sandboxRun, sandboxSpawn,
} from './lib/sandbox.mjs';

const execFileP = promisify(execFile);
const DRAIN_MS = 25000; // what the chart passes to the data plane
const GRACE_MS = 40000; // the chart's terminationGracePeriodSeconds for the data plane

let mock;
let stateDir;

async function sql(dbUrl, q) {
  const { stdout } = await execFileP('psql', [dbUrl, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', q]);
  return stdout.trim();
}

// What the kernel says about the sandboxed binary: its real UID/GID and its PID inside its own
// PID namespace (the last NSpid field), and that it holds no capability.
function procFacts(proc) {
  assert.ok(proc.childPid, 'bwrap named the sandboxed process');
  const st = readFileSync(`/proc/${proc.childPid}/status`, 'utf8');
  const field = (name) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(st)[1].trim().split(/\s+/);
  return { uid: field('Uid')[0], gid: field('Gid')[0], nspid: field('NSpid').at(-1),
    capEff: field('CapEff')[0], groups: field('Groups').join(' ') };
}

function assertPodProcess(proc, what) {
  const f = procFacts(proc);
  assert.equal(f.nspid, '1', `${what} is PID 1 of its own PID namespace, as in a pod`);
  assert.equal(f.capEff, '0000000000000000', `${what} holds no capability`);
  if (process.getuid() === 0) {
    assert.equal(f.uid, String(POD_UID), `${what} runs as UID 10001`);
    assert.equal(f.gid, String(POD_UID), `${what} runs as GID 10001`);
    assert.equal(f.groups, '', `${what} has no supplementary group`);
  }
}

async function getJSON(url) {
  const res = await fetch(url);
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body, text };
}

before(async () => {
  bwrapPath(); // fails here, saying so, when bubblewrap is missing
  mock = await startOpenAIMock();
  stateDir = mkdtempSync(path.join(tmpdir(), 'tollgate-rc-state-'));
  giveToPodUser(stateDir);
});

after(async () => {
  await mock?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

test('the sandbox is a pod\'s: UID/GID 10001, read-only root, only the state dir writable', async () => {
  assert.equal(sandboxRun('id', ['-u'], { state: stateDir }).stdout.trim(), String(POD_UID));
  assert.equal(sandboxRun('id', ['-g'], { state: stateDir }).stdout.trim(), String(POD_UID));
  assert.equal(sandboxRun('id', ['-G'], { state: stateDir }).stdout.trim(), String(POD_UID),
    'no supplementary groups');

  const ok = sandboxRun('touch', [`${STATE_DIR}/written`], { state: stateDir });
  assert.equal(ok.status, 0, `the state dir is writable: ${ok.stderr}`);
  const st = statSync(path.join(stateDir, 'written'));
  if (process.getuid() === 0) assert.equal(st.uid, POD_UID, 'written as UID 10001 on the host too');

  const elsewhere = ['/tmp/x', '/x', '/etc/x', '/var/lib/x', '/var/tmp/x', '/dev/shm/x', '/run/x',
    `${IMAGE_BIN}/x`, '/opt/tollgate/web/x', path.join(BIN, 'x'), path.resolve('x'),
    path.join(tmpdir(), 'x')];
  for (const p of elsewhere) {
    const r = sandboxRun('touch', [p], { state: stateDir });
    assert.notEqual(r.status, 0, `${p} must not be writable in the sandbox`);
    assert.match(r.stderr, /Read-only file system|Permission denied|No such file or directory/, p);
  }
  // the control plane's sandbox has no state dir at all
  const cp = sandboxRun('touch', [`${STATE_DIR}/x`]);
  assert.notEqual(cp.status, 0, 'nothing writable without a state dir');
  assert.deepEqual(readdirSync(stateDir), ['written']);
  rmSync(path.join(stateDir, 'written'));

  // PID 1 as in a pod: a signal the program does not handle is dropped, so the planes' clean
  // exits on SIGTERM below are their own handlers' work. The kernel settles a signal's fate when
  // it is sent: an ordinary process would be marked to die by the SIGTERM before the SIGKILL.
  const [file, argv] = sandboxArgv('sleep', ['30'], { statusFd: 3 });
  const sleeper = spawn(file, argv, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => sleeper.on('exit', (code) => r(code)));
  let status = '';
  sleeper.stdio[3].on('data', (d) => { status += d; });
  const pid = Number((await waitFor(() => /"child-pid":\s*(\d+)/.exec(status), 5000, 'bwrap to start'))[1]);
  process.kill(pid, 'SIGTERM');
  process.kill(pid, 'SIGKILL');
  assert.equal(await exited, 128 + 9, 'the unhandled SIGTERM was dropped; SIGKILL ended it');

  // the image layout is there: the binaries under /opt/tollgate/bin, the dashboard beside them
  assert.equal(sandboxRun(`${IMAGE_BIN}/tollgate-data`, ['--help']).status, 0);
  assert.equal(sandboxRun('test', ['-f', '/opt/tollgate/web/index.html']).status, 0);
});

// the database URL as the sandboxed binary sees it (the socket directory bound at PG_SOCKET_DIR)
function sandboxDbUrl(dbUrl) {
  const name = new URL(dbUrl).pathname.slice(1);
  return `postgresql:///${name}?host=${encodeURIComponent(PG_SOCKET_DIR)}&user=postgres`;
}

test('`tollgate-control migrate` as the chart\'s hook Job runs it: exit 0 with the schema in place, non-zero without a database', async () => {
  const dbUrl = createDatabase();
  const bin = `${IMAGE_BIN}/tollgate-control`;
  const ok = sandboxRun(bin, ['migrate'], { pgSocketDir: pgHost(), env: { TOLLGATE_DATABASE_URL: sandboxDbUrl(dbUrl) } });
  assert.equal(ok.status, 0, ok.stderr);
  const applied = Number(await sql(dbUrl, 'SELECT max(version) FROM schema_migrations'));
  assert.ok(applied > 0, 'the migrations are applied');
  const again = sandboxRun(bin, ['migrate'], { pgSocketDir: pgHost(), env: { TOLLGATE_DATABASE_URL: sandboxDbUrl(dbUrl) } });
  assert.equal(again.status, 0, `a second run (an upgrade with nothing new) succeeds: ${again.stderr}`);

  // no database behind the URL: the Job fails, and so does the release
  const none = sandboxRun(bin, ['migrate'], { env: { TOLLGATE_DATABASE_URL: sandboxDbUrl(dbUrl) } });
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /could not connect to the database/);
});

test('both planes under the sandbox: probes, a request end to end, SIGTERM drains within the grace period', async () => {
  const dbUrl = createDatabase();
  const cp = await startControl({
    dbUrl,
    // libpq in the sandbox reaches the test Postgres through its bound socket directory
    env: {
      TOLLGATE_DATABASE_URL: sandboxDbUrl(dbUrl),
      TOLLGATE_DP_POLL_TIMEOUT_MS: '2000',
    },
    // no --web-dir: the default <bin>/../web is the image's /opt/tollgate/web
    spawn: sandboxSpawn({ pgSocketDir: pgHost() }),
  });
  let gw;
  try {
    assertPodProcess(cp.proc, 'the control plane');
    assert.equal((await getJSON(cp.url + '/healthz')).status, 200);
    const cpReady = await getJSON(cp.url + '/readyz');
    assert.equal(cpReady.status, 200, cpReady.text);
    assert.equal(cpReady.body.status, 'ready');
    const page = await fetch(cp.url + '/');
    assert.equal(page.status, 200, 'the dashboard is served from /opt/tollgate/web');
    assert.match(page.headers.get('content-type'), /text\/html/);
    await page.arrayBuffer();

    // the data plane starts against an empty configuration (a fresh install) and is ready
    gw = await startGateway({
      stateDir: STATE_DIR,
      args: ['--control-url', cp.url, `--drain-timeout-ms=${DRAIN_MS}`], // as the chart writes it
      env: { TOLLGATE_DP_TOKEN: 'test-dp-token', TOLLGATE_STATE_DIR: STATE_DIR },
      spawn: sandboxSpawn({ state: stateDir }),
    });
    assertPodProcess(gw.proc, 'the data plane');
    assert.equal((await getJSON(gw.url + '/healthz')).status, 200);
    await waitFor(async () => (await getJSON(gw.url + '/readyz')).status === 200, 10000,
      'the data plane to be ready with the empty configuration');

    // a tenant, the mock as a provider, a route and a key, through the admin API
    const admin = await cp.login();
    const tenant = await cp.makeTenant(admin, 'acme');
    await cp.mockRoute(admin, mock.url);
    const key = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin,
      body: { name: 'rc', models: ['gpt-4o-mini'] } });
    assert.equal(key.status, 201, key.text);
    const auth = { authorization: `Bearer ${key.body.key}` };

    const first = await waitFor(async () => {
      const res = await fetch(gw.url + '/v1/chat/completions', {
        method: 'POST', headers: auth, body: JSON.stringify(chatBody('hello mock:words=2')) });
      const text = await res.text();
      return res.status === 401 ? null : { status: res.status, text }; // 401 until the key syncs
    }, 15000, 'the key to reach the data plane');
    assert.equal(first.status, 200, first.text);
    assert.equal(JSON.parse(first.text).choices[0].message.content, 'w1 w2');

    // a slow stream in flight when SIGTERM comes
    const res = await fetch(gw.url + '/v1/chat/completions', { method: 'POST', headers: auth,
      body: JSON.stringify(chatBody('drain mock:chunk_delay_ms=250 mock:words=12', { stream: true })) });
    assert.equal(res.status, 200);
    const rid = res.headers.get('x-request-id');
    const reader = res.body.getReader();
    let body = Buffer.from((await reader.read()).value).toString();
    assert.ok(mock.stats().active >= 1, 'the stream is in flight upstream');

    const t0 = Date.now();
    assert.ok(gw.proc.kill('SIGTERM'));
    await waitFor(() => /event=draining/.test(gw.logs()), 3000, 'the drain to begin');
    await waitFor(async () => (await tryConnect(gw.port)) === 'ECONNREFUSED', 2000,
      'new connections to be refused');
    assert.equal(gw.proc.exitCode, null, 'still draining while the stream runs');

    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += Buffer.from(value).toString();
    }
    const events = body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    assert.equal(events.at(-1), '[DONE]');
    const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content || '').join('');
    assert.equal(text, Array.from({ length: 12 }, (_, i) => `w${i + 1}`).join(' '), 'the whole stream arrived');

    const e = await within(gw.exited, DRAIN_MS + 5000);
    const took = Date.now() - t0;
    assert.ok(e, `the data plane exits within the drain bound (${DRAIN_MS} ms) plus margin:\n${gw.logs()}`);
    assert.deepEqual(e, { code: 0, signal: null }, gw.logs());
    assert.ok(took < GRACE_MS, `exited ${took} ms after SIGTERM, inside the ${GRACE_MS} ms grace period`);

    // the stream's usage reached the control plane before the pod (and its emptyDir) went away
    const n = await sql(dbUrl, `SELECT count(*) FROM usage_events WHERE request_id = '${rid}'`);
    assert.equal(n, '1', `the drained stream's usage row is in Postgres:\n${gw.logs()}`);

    // and the control plane stops promptly on SIGTERM, as PID 1, with status 0
    const c0 = Date.now();
    assert.ok(cp.proc.kill('SIGTERM'));
    const ce = await within(new Promise((r) => cp.proc.on('exit', (code, signal) => r({ code, signal }))), 10000);
    assert.ok(ce, `the control plane exits within 10 s of SIGTERM:\n${cp.logs()}`);
    assert.deepEqual(ce, { code: 0, signal: null }, cp.logs());
    assert.ok(Date.now() - c0 < 10000);
  } finally {
    if (gw) await gw.stop();
    await cp.stop();
  }
});

test('the data plane configured by the image\'s environment alone (no flags): state in TOLLGATE_STATE_DIR, SIGTERM exits 0 with the control plane unreachable', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-rc-env-'));
  giveToPodUser(dir);
  const proc = sandboxSpawn({ state: dir })(path.join(BIN, 'tollgate-data'), [], {
    env: {
      ...process.env,
      TOLLGATE_DATA_LISTEN: '127.0.0.1:0', // the image says 0.0.0.0:8080; tests run side by side
      TOLLGATE_STATE_DIR: STATE_DIR,
      TOLLGATE_CONTROL_URL: 'http://127.0.0.1:9', // nothing listens there
      TOLLGATE_DP_TOKEN: 'test-dp-token',
    },
  });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  try {
    const m = await waitFor(() => /event=listening addr=127\.0\.0\.1:(\d+)/.exec(logs), 10000, 'tollgate-data to listen');
    assert.equal((await getJSON(`http://127.0.0.1:${m[1]}/healthz`)).status, 200);
    assert.equal((await getJSON(`http://127.0.0.1:${m[1]}/readyz`)).status, 503, 'not ready without a snapshot');
    await waitFor(() => readdirSync(dir).includes('spool'), 5000, 'the spool in the state dir');
    assert.ok(proc.kill('SIGTERM'));
    const e = await within(exited, DRAIN_MS);
    assert.deepEqual(e, { code: 0, signal: null }, logs);
    assert.doesNotMatch(logs, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  } finally {
    proc.kill('SIGKILL');
    await within(exited, 5000);
    rmSync(dir, { recursive: true, force: true });
  }
});
