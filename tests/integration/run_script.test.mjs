// run_script.test.mjs: scripts/run as a new user starts it, from a checkout under a folder only
// its owner may enter (mktemp -d; as root, the postgres user may not), on free ports: it brings the whole system up, the server runs as
// the application role, and a process that dies is restarted (with a growing delay, said in its
// log) while the others, Postgres included, keep running.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, existsSync, cpSync, mkdirSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, waitFor } from './lib/harness.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// the pids of scripts/run's children, by what they run
function children(pid) {
  let out = '';
  try {
    out = execFileSync('ps', ['--ppid', String(pid), '-o', 'pid=,args='], { encoding: 'utf8' });
  } catch { /* none left */ }
  return out.trim().split('\n').filter(Boolean).map((l) => {
    const m = /^\s*(\d+)\s+(.*)$/.exec(l);
    return { pid: Number(m[1]), args: m[2] };
  });
}
const childPid = (pid, what) => children(pid).find((c) => c.args.includes(what))?.pid;

// resolves with the process's exit, or after ms (the timer never holds the test open)
function exitOrTimeout(ms) {
  let t;
  return Promise.race([exited, new Promise((r) => { t = setTimeout(r, ms); })]).finally(() => clearTimeout(t));
}

async function status(url) {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

let run, dir, exited;
after(async () => {
  if (run && run.exitCode === null && run.signalCode === null) {
    process.kill(run.pid, 'SIGTERM');
    await exitOrTimeout(30000);
    if (run.exitCode === null && run.signalCode === null) process.kill(-run.pid, 'SIGKILL');
  }
  if (dir) {
    const link = path.join(dir, 'x/.tollgate/pg/cluster');
    let cluster = null;
    try { cluster = readlinkSync(link); } catch { /* none, or a directory inside dir */ }
    rmSync(dir, { recursive: true, force: true });
    if (cluster && cluster.startsWith('/tmp/tollgate-pg-')) rmSync(cluster, { recursive: true, force: true });
  }
});

test('scripts/run starts everything and restarts a process that dies, keeping the rest', async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tollgate-run-')); // 0700: postgres cannot enter it
  // the checkout: what scripts/run uses besides the binaries (TOLLGATE_BIN)
  const co = path.join(dir, 'x');
  mkdirSync(path.join(co, 'tests'), { recursive: true });
  cpSync(path.join(ROOT, 'scripts'), path.join(co, 'scripts'), { recursive: true });
  cpSync(path.join(ROOT, 'tests/mocks'), path.join(co, 'tests/mocks'), { recursive: true });
  cpSync(path.join(ROOT, 'package-lock.json'), path.join(co, 'package-lock.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(co, 'node_modules'));
  const state = path.join(co, '.tollgate');
  const [data, control, mock] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, TOLLGATE_BIN: path.resolve(BIN),
    TOLLGATE_DATA_LISTEN: `127.0.0.1:${data}`, TOLLGATE_CONTROL_LISTEN: `127.0.0.1:${control}`,
    TOLLGATE_MOCK_PORT: String(mock) };
  delete env.OPENAI_API_KEY;
  delete env.TOLLGATE_DATABASE_URL;
  let out = '';
  run = spawn(path.join(co, 'scripts/run'), [], { cwd: co, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  run.stdout.on('data', (d) => { out += d; });
  run.stderr.on('data', (d) => { out += d; });
  exited = new Promise((r) => run.on('exit', r));
  await waitFor(() => {
    if (run.exitCode !== null) throw new Error(`scripts/run exited ${run.exitCode}:\n${out}`);
    return out.includes('Tollgate is running.');
  }, 120000, 'scripts/run to start everything');
  const controlUrl = `http://127.0.0.1:${control}`, dataUrl = `http://127.0.0.1:${data}`;
  assert.equal(await status(`${controlUrl}/readyz`), 200);
  // the dashboard's URL and the login that opens it, and the page is there
  assert.ok(out.includes(`\n  Dashboard:      ${controlUrl}/   (open it in a browser; sign in with the admin login below)\n`), out);
  const login = /\n  Admin login: +(\S+) \/ (\S+) /.exec(out);
  assert.ok(login, out);
  const page = await fetch(`${controlUrl}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  const signIn = await fetch(`${controlUrl}/api/v1/auth/login`, { method: 'POST',
    body: JSON.stringify({ email: login[1], password: login[2], cookie: true }) });
  assert.equal(signIn.status, 200);
  assert.match(signIn.headers.get('set-cookie'), /^tollgate_session=/);
  assert.equal(await status(`${dataUrl}/healthz`), 200);

  // the control plane is connected as tollgate_server, a member of tollgate_app
  const sock = path.join(readlinkSync(path.join(state, 'pg/cluster')), 'run');
  const users = execFileSync('psql', [`postgresql:///tollgate?host=${sock}&user=postgres`, '-XAtc',
    `SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE datname = 'tollgate' AND usename <> 'postgres'`],
  { encoding: 'utf8' }).trim();
  assert.equal(users, 'tollgate_server');

  const controlPid = childPid(run.pid, 'tollgate-control');
  const mockPid = childPid(run.pid, 'openai.mjs');
  const first = childPid(run.pid, 'tollgate-data');
  assert.ok(controlPid && mockPid && first, JSON.stringify(children(run.pid)));
  process.kill(first, 'SIGKILL');
  const second = await waitFor(() => {
    const p = childPid(run.pid, 'tollgate-data');
    return p && p !== first ? p : null;
  }, 10000, 'tollgate-data to be started again');
  await waitFor(async () => (await status(`${dataUrl}/healthz`)) === 200, 10000, 'tollgate-data to answer again');
  const dataLog = () => readFileSync(path.join(state, 'logs/data.log'), 'utf8');
  assert.match(dataLog(), new RegExp(`scripts/run: tollgate-data \\(pid ${first}\\) exited with status 137 after \\d+ s; restarting it in 1 s`));
  assert.match(dataLog(), new RegExp(`scripts/run: tollgate-data restarted \\(pid ${second}\\)`));

  // dying again soon after: the delay doubles
  process.kill(second, 'SIGKILL');
  await waitFor(() => {
    const p = childPid(run.pid, 'tollgate-data');
    return p && p !== second ? p : null;
  }, 10000, 'tollgate-data to be started a third time');
  assert.match(dataLog(), new RegExp(`tollgate-data \\(pid ${second}\\) exited with status 137 after \\d+ s; restarting it in 2 s`));
  await waitFor(async () => (await status(`${dataUrl}/healthz`)) === 200, 10000, 'tollgate-data to answer again');

  // the others never stopped: same processes, Postgres still serving
  assert.equal(childPid(run.pid, 'tollgate-control'), controlPid);
  assert.equal(childPid(run.pid, 'openai.mjs'), mockPid);
  assert.equal(await status(`${controlUrl}/readyz`), 200);
  assert.match(out, /tollgate-data \(pid \d+\) exited with status 137 after \d+ s; restarting it in 1 s/);

  // SIGTERM stops everything, Postgres too
  process.kill(run.pid, 'SIGTERM');
  await exitOrTimeout(30000);
  assert.notEqual(run.exitCode ?? run.signalCode, null, 'scripts/run did not stop');
  assert.match(out, /==> stopped/);
  assert.equal(existsSync(path.join(sock, '.s.PGSQL.5432')), false);
  for (const f of ['control.log', 'data.log']) {
    assert.doesNotMatch(readFileSync(path.join(state, 'logs', f), 'utf8'), /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  }
});
