// harness.mjs: starts the real tollgate-data against in-process provider mocks, with random
// ports, temp state dirs and bounded waits. Nothing here mocks Tollgate itself.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const BIN = process.env.TOLLGATE_BIN || path.resolve('build-test/bin');

export function sha256hex(s) {
  return createHash('sha256').update(s).digest('hex');
}

export async function waitFor(pred, timeoutMs = 5000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// A snapshot routing `alias` (and `extraRoutes`) to the mock; keys: {name: {models}}.
export function makeSnapshot({ mockUrl, version = 1, keys, routes, prices, providers }) {
  providers = providers || [
    { id: 'mock', kind: 'openai', base_url: mockUrl, api_key: 'sk-upstream-test' },
  ];
  routes = routes || [
    { alias: 'gpt-4o-mini', targets: [{ provider: 'mock', model: 'gpt-4o-mini-2024-07-18' }] },
    { alias: 'embed', targets: [{ provider: 'mock', model: 'text-embedding-3-small' }] },
    { alias: 'secret-model', targets: [{ provider: 'mock', model: 'gpt-4o' }] },
  ];
  prices = prices || [
    { provider: 'mock', model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 0.15,
      cached_input_per_mtok: 0.075, output_per_mtok: 0.6 },
    { provider: 'mock', model: 'text-embedding-3-small', input_per_mtok: 0.02, output_per_mtok: 0 },
  ];
  keys = keys || { 'tg-test-key': { models: ['gpt-4o-mini', 'embed'] } };
  return {
    version,
    tenants: [{ id: 't-acme', name: 'acme' }],
    providers,
    routes,
    prices,
    keys: Object.entries(keys).map(([secret, k], i) => ({
      id: k.id || `k-${i + 1}`,
      tenant: 't-acme',
      sha256: sha256hex(secret),
      models: k.models,
      ...(k.expires_at ? { expires_at: k.expires_at } : {}),
    })),
  };
}

// spawn: how the binary is started (tests/integration/lib/sandbox.mjs runs it as in a pod).
export async function startGateway({ snapshot, args = [], workers = 2, env = {}, stateDir: keepState,
  spawn: spawnFn = spawn } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-it-'));
  const snapPath = path.join(dir, 'snapshot.json');
  const stateDir = keepState || path.join(dir, 'state'); // a given one survives restarts
  const usagePath = path.join(stateDir, 'usage.ndjson');
  if (snapshot) writeFileSync(snapPath, JSON.stringify(snapshot));
  const argv = [
    '--listen', '127.0.0.1:0', '--workers', String(workers), '--state-dir', stateDir,
    ...(snapshot ? ['--snapshot', snapPath] : []), ...args,
  ];
  const proc = spawnFn(path.join(BIN, 'tollgate-data'), argv, {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; });
  const m = await waitFor(() => {
    if (exitInfo) throw new Error(`tollgate-data exited early (${JSON.stringify(exitInfo)}):\n${logs}`);
    return /event=listening addr=127\.0\.0\.1:(\d+)/.exec(logs);
  }, 10000, 'tollgate-data to listen');
  const port = Number(m[1]);
  const gw = {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    dir,
    snapPath,
    usagePath,
    stateDir,
    logs: () => logs,
    exited,
    // Writes a new snapshot and SIGHUPs; resolves when the version is live.
    async reload(snap) {
      writeFileSync(snapPath, JSON.stringify(snap));
      const before = logs.length;
      proc.kill('SIGHUP');
      return waitFor(() => {
        const tail = logs.slice(before);
        if (/event=reload_refused/.test(tail)) return 'refused';
        if (new RegExp(`event=snapshot_loaded version=${snap.version}\\b`).test(tail)) return 'loaded';
        return null;
      }, 5000, 'snapshot reload');
    },
    // Usage records written so far (the sink flushes every second).
    usage() {
      if (!existsSync(usagePath)) return [];
      return readFileSync(usagePath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    async waitUsage(pred, timeoutMs = 5000) {
      return waitFor(() => { const u = gw.usage(); return pred(u) ? u : null; }, timeoutMs, 'usage records');
    },
    async stop(signal = 'SIGTERM') {
      if (!exitInfo) proc.kill(signal);
      let timer;
      const e = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r(null), 15000); })]);
      clearTimeout(timer); // a pending timer would keep the test process alive
      if (!e) { proc.kill('SIGKILL'); await exited; }
      if (/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(logs)) {
        throw new Error(`sanitizer report in tollgate-data output:\n${logs}`);
      }
      rmSync(dir, { recursive: true, force: true });
      return e;
    },
  };
  return gw;
}

// One raw TCP exchange: writes `data` (string or array of [delayMs, chunk]) and collects
// everything until the server closes or `untilMs` passes.
export function rawExchange(port, data, { untilMs = 3000, endWhen } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let closed = false;
    const timer = setTimeout(() => { sock.destroy(); resolve({ data: buf, closed }); }, untilMs);
    sock.on('data', (d) => {
      buf += d;
      if (endWhen && endWhen(buf)) { clearTimeout(timer); sock.destroy(); resolve({ data: buf, closed }); }
    });
    sock.on('close', () => { closed = true; clearTimeout(timer); resolve({ data: buf, closed }); });
    sock.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    sock.on('connect', async () => {
      if (typeof data === 'string' || Buffer.isBuffer(data)) { sock.write(data); return; }
      for (const [delay, chunk] of data) {
        if (delay) await new Promise((r) => setTimeout(r, delay));
        if (closed) return;
        sock.write(chunk);
      }
    });
  });
}

// OpenAI's error `type` for an HTTP status, as the data plane's one table (common/tg_errors.c)
// has it: every error body the gateway writes itself, or translates from another provider's
// shape, carries this type (a 429 from a budget or a rate limit may say which one instead).
export function openaiErrorType(status) {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'api_error' : 'invalid_request_error';
}

export function chatBody(content, extra = {}) {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra };
}

// Reads an SSE response body into the list of `data:` payloads.
export async function readSSE(res) {
  const text = await res.text();
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
}

// Resolves the error code of a fresh TCP connect attempt, or null if it connected.
export function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const t = setTimeout(() => { s.destroy(); resolve('ETIMEDOUT'); }, 2000);
    s.on('connect', () => { clearTimeout(t); s.destroy(); resolve(null); });
    s.on('error', (e) => { clearTimeout(t); resolve(e.code); });
  });
}

// `p`'s value, or `fallback` if it takes longer than ms (the timer is cleared: a pending one
// would keep the test process alive).
export async function within(p, ms, fallback = null) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r(fallback), ms); });
  try { return await Promise.race([p, t]); } finally { clearTimeout(timer); }
}
