// sandbox.mjs: runs a binary the way its container runs in a pod (docs/operations.md, "Container
// images"), under Debian's bubblewrap: the whole root read-only, UID/GID 10001 with no capability
// (a real UID when the tests run as root; sandboxMode says how), the binary as PID 1 of its own
// PID namespace (a signal it does not handle is ignored, as in a pod), the image's layout
// (/opt/tollgate/bin, /opt/tollgate/web) bound read-only from the build, and nothing writable
// except what the caller binds (the data plane's state dir). The network is shared, so tests reach
// the ports on 127.0.0.1.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { accessSync, constants, chownSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN } from './harness.mjs';

export const POD_UID = 10001;
export const STATE_DIR = '/var/lib/tollgate';
export const IMAGE_BIN = '/opt/tollgate/bin';
// where the test Postgres' socket directory is bound, so libpq reaches it whatever the checkout's
// permissions (in a pod the database is remote)
export const PG_SOCKET_DIR = '/var/lib/tollgate-test-pg';

function which(cmd) {
  for (const dir of (process.env.PATH || '/usr/bin:/bin').split(':')) {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return path.join(dir, cmd);
    } catch { /* next */ }
  }
  return null;
}

// bwrap's path; throws (the test fails) when Debian's bubblewrap is not installed.
export function bwrapPath() {
  const p = which('bwrap');
  if (!p) {
    throw new Error('bwrap not found: the runtime-contract test needs Debian\'s bubblewrap '
      + '(scripts/test installs it: apt-get install bubblewrap)');
  }
  return p;
}

// A host directory the sandboxed user may write (the state dir given to the data plane).
export function giveToPodUser(dir) {
  if (process.getuid() === 0) chownSync(dir, POD_UID, POD_UID);
}

const SETPRIV = ['--reuid', String(POD_UID), '--regid', String(POD_UID), '--clear-groups'];
let mode = null;

// How the sandbox becomes UID/GID 10001:
//   setpriv  as root (scripts/test): bwrap runs as root, which needs no user namespace for its
//            mount and PID namespaces and can bind what only root may reach (a checkout under
//            mktemp -d), and setpriv inside drops to the real UID/GID 10001, no groups, no
//            capability, right before it executes the binary: as a pod's container runs
//   userns   not root: bwrap maps 10001 to the caller in a user namespace (--unshare-user --uid
//            10001 --gid 10001); without user namespaces nothing can become 10001, and the test
//            fails saying so
// TOLLGATE_TEST_SANDBOX=userns|setpriv picks one (userns as root: setpriv drops to 10001 first).
export function sandboxMode() {
  if (mode) return mode;
  const forced = process.env.TOLLGATE_TEST_SANDBOX;
  if (forced === 'userns' || forced === 'setpriv') return (mode = forced);
  if (process.getuid() === 0) return (mode = 'setpriv');
  const r = spawnSync(bwrapPath(), ['--ro-bind', '/', '/', '--unshare-user', '--uid', String(POD_UID),
    '--gid', String(POD_UID), 'true'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`user namespaces are unavailable here (bwrap: ${(r.stderr || String(r.error)).trim()}) `
      + 'and the tests do not run as root: nothing can run the binaries as UID 10001');
  }
  return (mode = 'userns');
}

// The argv that runs `cmd args` in the sandbox. state: host dir bound at STATE_DIR (the only
// writable path); pgSocketDir: bound read-only at PG_SOCKET_DIR; statusFd: bwrap's
// --json-status-fd (it reports the child's PID there).
export function sandboxArgv(cmd, args = [], { state, pgSocketDir, statusFd } = {}) {
  const bwrap = bwrapPath();
  const how = sandboxMode();
  const web = path.resolve(BIN, '..', 'web');
  const a = [
    '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc',
    ...(how === 'userns' ? ['--unshare-user', '--uid', String(POD_UID), '--gid', String(POD_UID)] : []),
    '--unshare-pid', '--as-pid-1', '--unshare-ipc', '--die-with-parent',
    // the image's layout over an empty /opt; the build dir itself stays where it is, read-only
    '--tmpfs', '/opt', '--dir', IMAGE_BIN,
    '--ro-bind', path.join(BIN, 'tollgate-control'), `${IMAGE_BIN}/tollgate-control`,
    '--ro-bind', path.join(BIN, 'tollgate-data'), `${IMAGE_BIN}/tollgate-data`,
    '--ro-bind', web, '/opt/tollgate/web',
    '--tmpfs', '/var/lib',
  ];
  if (state) a.push('--dir', STATE_DIR, '--bind', state, STATE_DIR);
  if (pgSocketDir) a.push('--dir', PG_SOCKET_DIR, '--ro-bind', pgSocketDir, PG_SOCKET_DIR);
  // the tmpfs mounts made above read-only too (their bind mounts keep their own flags)
  a.push('--remount-ro', '/opt', '--remount-ro', '/var/lib', '--remount-ro', '/dev');
  if (statusFd !== undefined) a.push('--json-status-fd', String(statusFd));
  if (how === 'setpriv') {
    a.push('--', 'setpriv', ...SETPRIV, '--inh-caps=-all', '--bounding-set=-all', '--', cmd, ...args);
    return [bwrap, a];
  }
  a.push('--', cmd, ...args);
  if (process.getuid() === 0) return ['setpriv', [...SETPRIV, bwrap, ...a]];
  return [bwrap, a];
}

// Runs a command in the sandbox to completion (env: added to the environment); returns
// {status, stdout, stderr}.
export function sandboxRun(cmd, args = [], { env = {}, ...opts } = {}) {
  const [file, argv] = sandboxArgv(cmd, args, opts);
  try {
    const stdout = execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env } });
    return { status: 0, stdout, stderr: '' };
  } catch (e) {
    if (e.status === undefined || e.status === null) throw e;
    return { status: e.status, stdout: e.stdout || '', stderr: e.stderr || '' };
  }
}

// A spawn() for startGateway/startControl (their `spawn` option): the binary, named by its path
// in the build, runs from IMAGE_BIN in the sandbox. The returned object stands for the binary,
// not for bwrap: kill() signals the binary itself (bwrap forwards no signal), and 'exit' reports
// the binary's exit (bwrap exits with its code, or 128 + the signal that ended it).
export function sandboxSpawn(opts = {}) {
  return (file, args, spawnOpts = {}) => {
    const [cmd, argv] = sandboxArgv(`${IMAGE_BIN}/${path.basename(file)}`, args,
      { ...opts, statusFd: 3 });
    const proc = spawn(cmd, argv, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    const ee = new EventEmitter();
    ee.stdout = proc.stdout;
    ee.stderr = proc.stderr;
    ee.childPid = null;
    ee.exitCode = null;
    ee.signalCode = null;
    let status = '';
    proc.stdio[3].on('data', (d) => {
      status += d;
      const m = /"child-pid":\s*(\d+)/.exec(status);
      if (m && !ee.childPid) { ee.childPid = Number(m[1]); ee.emit('child', ee.childPid); }
    });
    ee.kill = (sig = 'SIGTERM') => {
      if (ee.exitCode !== null || ee.signalCode !== null) return false;
      // before bwrap named its child, ending bwrap ends the child (--die-with-parent)
      if (!ee.childPid) return proc.kill(sig);
      try { process.kill(ee.childPid, sig); return true; } catch { return false; }
    };
    proc.on('exit', (code, signal) => {
      if (code !== null && code > 128) { signal = sigName(code - 128); code = null; }
      ee.exitCode = code;
      ee.signalCode = signal;
      ee.emit('exit', code, signal);
    });
    proc.on('error', (e) => ee.emit('error', e));
    return ee;
  };
}

function sigName(n) {
  return Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0] || `signal ${n}`;
}
