// runtime.test.mjs: the commands, arguments and environment the chart renders, run as they are
// with the real binaries (from the build, not the images) against the test Postgres: the
// migration Job as the schema's owner, then the control plane as a member of tollgate_app and the
// data plane, with the secrets the chart generated. Only what a pod's network gives differs
// (listen on 127.0.0.1, the control plane's address, the state dir). So a renamed variable, a
// flag the binaries refuse or a generated secret of the wrong form fails here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, waitFor } from '../integration/lib/harness.mjs';
import { pgHost } from '../integration/lib/control.mjs';
import { byKind, named, template } from './lib/chart.mjs';

const running = [];
const dirs = [];
after(async () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// the container's environment with each secretKeyRef read from the rendered Secret
function envOf(container, objects, overrides = {}) {
  const env = {};
  for (const e of container.env) {
    if (e.value !== undefined) { env[e.name] = e.value; continue; }
    const ref = e.valueFrom.secretKeyRef;
    const s = named(objects, 'Secret', ref.name);
    assert.ok(s, `Secret ${ref.name} is rendered`);
    env[e.name] = Buffer.from(s.data[ref.key], 'base64').toString();
  }
  return { ...env, ...overrides };
}

// starts the container's command as the pod would (no shell), with only its environment
function run(container, env) {
  const [cmd, ...rest] = container.command;
  assert.match(cmd, /^\/opt\/tollgate\/bin\/tollgate-(control|data)$/, 'the binary, by the images\' path');
  const exe = path.join(BIN, path.basename(cmd));
  const sanitizers = { ASAN_OPTIONS: process.env.ASAN_OPTIONS, UBSAN_OPTIONS: process.env.UBSAN_OPTIONS };
  const p = spawn(exe, [...rest, ...container.args], {
    env: { PATH: process.env.PATH, ...Object.fromEntries(Object.entries(sanitizers).filter(([, v]) => v)), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(p);
  let logs = '';
  p.stdout.on('data', (d) => { logs += d; });
  p.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal })));
  return { p, logs: () => logs, exited };
}

async function listening(proc, name) {
  let done = null;
  proc.exited.then((e) => { done = e; });
  const m = await waitFor(() => {
    if (done) throw new Error(`${name} exited (${JSON.stringify(done)}):\n${proc.logs()}`);
    return /event=listening addr=127\.0\.0\.1:(\d+)/.exec(proc.logs());
  }, 30000, `${name} to listen`);
  return `http://127.0.0.1:${m[1]}`;
}

async function status(url) {
  try { return (await fetch(url)).status; } catch { return 0; }
}

test('the rendered Job, control plane and data plane run with the real binaries, and the data plane drains in time', async () => {
  const host = pgHost();
  const sfx = randomBytes(5).toString('hex');
  const owner = `tg_owner_${sfx}`, app = `tg_app_${sfx}`, db = `tg_${sfx}`;
  const su = (sql) => execFileSync('psql', ['-h', host, '-U', 'postgres', '-d', 'postgres', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  su(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
  su(`CREATE DATABASE ${db} OWNER ${owner}`);
  const url = (user) => `postgresql:///${db}?host=${encodeURIComponent(host)}&user=${user}`;

  const r = template(['--set-string', `postgresql.url=${url(app)}`, '--set-string', `postgresql.migrationUrl=${url(owner)}`,
    '--set', 'postgresql.waitSeconds=5', '--set', 'admin.email=ops@example.com']);
  assert.equal(r.code, 0, r.stderr);
  const objs = r.objects;

  // 1. the hook Job, as the owner: applies the schema and exits 0
  const job = byKind(objs, 'Job')[0].spec.template.spec.containers[0];
  const mig = run(job, envOf(job, objs));
  const jr = await mig.exited;
  assert.equal(jr.code, 0, mig.logs());
  assert.match(mig.logs(), /event=up_to_date applied=[1-9]\d*/, 'it applied the migrations');
  su(`CREATE ROLE ${app} LOGIN IN ROLE tollgate_app`);

  // 2. the control plane, as a member of tollgate_app: nothing left to apply, ready
  const ctlDep = byKind(objs, 'Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'control');
  const ctlC = ctlDep.spec.template.spec.containers[0];
  const ctlEnv = envOf(ctlC, objs, { TOLLGATE_CONTROL_LISTEN: '127.0.0.1:0' });
  const ctl = run(ctlC, ctlEnv);
  const cpUrl = await listening(ctl, 'tollgate-control');
  assert.match(ctl.logs(), /event=up_to_date applied=0/, 'serve found the schema migrated');
  assert.equal(await status(`${cpUrl}/healthz`), 200);
  await waitFor(async () => (await status(`${cpUrl}/readyz`)) === 200, 10000, 'control plane ready');
  // the first admin from the generated Secret can log in
  const login = await fetch(`${cpUrl}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ctlEnv.TOLLGATE_ADMIN_EMAIL, password: ctlEnv.TOLLGATE_ADMIN_PASSWORD }),
  });
  assert.equal(login.status, 200, 'the generated admin password works');
  assert.equal(ctlEnv.TOLLGATE_ADMIN_EMAIL, 'ops@example.com');

  // 3. the data plane, with the generated data-plane token: takes a snapshot, so it is ready
  const dpDep = byKind(objs, 'Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === 'data');
  const dpPod = dpDep.spec.template.spec;
  const dpC = dpPod.containers[0];
  const state = mkdtempSync(path.join(tmpdir(), 'tollgate-helm-state-'));
  dirs.push(state);
  const rendered = envOf(dpC, objs);
  assert.equal(rendered.TOLLGATE_STATE_DIR, '/var/lib/tollgate');
  const data = run(dpC, { ...rendered, TOLLGATE_DATA_LISTEN: '127.0.0.1:0', TOLLGATE_STATE_DIR: state, TOLLGATE_CONTROL_URL: cpUrl });
  const dpUrl = await listening(data, 'tollgate-data');
  assert.equal(await status(`${dpUrl}/healthz`), 200);
  await waitFor(async () => (await status(`${dpUrl}/readyz`)) === 200, 15000, 'data plane ready (a snapshot from the control plane)');

  // 4. SIGTERM, as the kubelet sends after the preStop sleep: it exits within the drain, well
  // inside the grace period the chart sets
  const budgetS = dpPod.terminationGracePeriodSeconds - dpC.lifecycle.preStop.sleep.seconds;
  const t0 = Date.now();
  data.p.kill('SIGTERM');
  const de = await data.exited;
  assert.equal(de.code, 0, data.logs());
  assert.ok((Date.now() - t0) / 1000 < budgetS, `exited in ${Date.now() - t0} ms (budget ${budgetS} s)`);

  ctl.p.kill('SIGTERM');
  assert.equal((await ctl.exited).code, 0, ctl.logs());
  for (const p of [mig, ctl, data]) {
    assert.doesNotMatch(p.logs(), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  }
});
