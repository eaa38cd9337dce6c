// control.mjs: starts the real tollgate-control against a fresh database in the test Postgres
// (scripts/test starts one and exports TOLLGATE_TEST_PG_HOST; run standalone, this starts it).
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { BIN, waitFor } from './harness.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');

export function pgHost() {
  if (!process.env.TOLLGATE_TEST_PG_HOST) {
    const out = execFileSync(path.join(ROOT, 'scripts/lib/pg.sh'),
      ['start', path.join(ROOT, '.tollgate/test-pg'), '--fast'], { encoding: 'utf8' });
    process.env.TOLLGATE_TEST_PG_HOST = out.trim().split('\n').pop();
  }
  return process.env.TOLLGATE_TEST_PG_HOST;
}

// SQL straight to the database, as a person checking the tables would (psql, unaligned).
export function psql(dbUrl, sql) {
  return execFileSync('psql', [dbUrl, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8' }).trim();
}

export function createDatabase() {
  const name = `tg_${randomBytes(6).toString('hex')}`;
  const host = pgHost();
  execFileSync('psql', ['-h', host, '-U', 'postgres', '-d', 'postgres', '-X', '-q', '-c',
    `CREATE DATABASE ${name}`]);
  return `postgresql:///${name}?host=${encodeURIComponent(host)}&user=postgres`;
}

// A database as docs/operations.md sets one up: owned by a role of its own (not a superuser),
// which runs `tollgate-control migrate`, and a login role for the server that is a member of
// tollgate_app (made by the migrations). Returns {ownerUrl, appUrl, owner, app}.
export function createRoleSplitDatabase() {
  const host = pgHost();
  const sfx = randomBytes(5).toString('hex');
  const owner = `tg_owner_${sfx}`, app = `tg_app_${sfx}`, name = `tg_${sfx}`;
  const su = (sql) => execFileSync('psql', ['-h', host, '-U', 'postgres', '-d', 'postgres', '-X', '-q',
    '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  su(`CREATE ROLE ${owner} LOGIN CREATEROLE`);
  su(`CREATE DATABASE ${name} OWNER ${owner}`);
  const url = (user) => `postgresql:///${name}?host=${encodeURIComponent(host)}&user=${user}`;
  execFileSync(path.join(BIN, 'tollgate-control'), ['migrate'], {
    env: { ...process.env, TOLLGATE_DATABASE_URL: url(owner) }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  su(`CREATE ROLE ${app} LOGIN IN ROLE tollgate_app`);
  return { ownerUrl: url(owner), appUrl: url(app), owner, app };
}

export const ADMIN = { email: 'admin@example.com', password: 'admin-password-for-tests' };

// With roles (from createRoleSplitDatabase), the server connects as the application role and
// cp.sql / cp.dbUrl act as the owner. spawn: how the binary is started (lib/sandbox.mjs).
export async function startControl({ dbUrl, roles, env = {}, args = [], spawn: spawnFn = spawn } = {}) {
  dbUrl = roles ? roles.ownerUrl : dbUrl || createDatabase();
  const serveUrl = roles ? roles.appUrl : dbUrl;
  const proc = spawnFn(path.join(BIN, 'tollgate-control'), ['--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TOLLGATE_DATABASE_URL: serveUrl,
      TOLLGATE_JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789',
      TOLLGATE_MASTER_KEY: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
      TOLLGATE_DP_TOKEN: 'test-dp-token',
      TOLLGATE_ADMIN_EMAIL: ADMIN.email,
      TOLLGATE_ADMIN_PASSWORD: ADMIN.password,
      ...env,
    },
  });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  let exitInfo = null;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo); }));
  const m = await waitFor(() => {
    if (exitInfo) throw new Error(`tollgate-control exited early (${JSON.stringify(exitInfo)}):\n${logs}`);
    return /event=listening addr=127\.0\.0\.1:(\d+)/.exec(logs);
  }, 20000, 'tollgate-control to listen');
  const url = `http://127.0.0.1:${m[1]}`;
  const cp = {
    url,
    dbUrl,
    appUrl: roles ? roles.appUrl : null,
    proc,
    logs: () => logs,
    // One API call; returns {status, body (parsed JSON or null), headers}.
    async api(method, p, { token, body, raw, headers = {} } = {}) {
      const h = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined || raw !== undefined) h['content-type'] = 'application/json';
      const send = () => fetch(url + p, {
        method, headers: h, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
      });
      let res;
      try {
        res = await send();
      } catch (e) {
        // The server closes a keep-alive connection idle past --header-timeout-s. A test that
        // blocked its own loop longer than that (a slow synchronous psql) finds the close only
        // after writing the next request to the dead socket; nothing reached the server, so
        // send once more on a new connection (as browsers do, RFC 9112 9.3.1). A server that
        // died fails again.
        if (e?.cause?.code !== 'UND_ERR_SOCKET' || !/other side closed/.test(e.cause.message)) throw e;
        res = await send();
      }
      const text = await res.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { json = null; }
      return { status: res.status, body: json, text, headers: res.headers };
    },
    async login(email = ADMIN.email, password = ADMIN.password) {
      const r = await cp.api('POST', '/api/v1/auth/login', { body: { email, password } });
      if (r.status !== 200) throw new Error(`login ${email} failed: ${r.status} ${r.text}`);
      return r.body.token;
    },
    sql(q) { return psql(dbUrl, q); },
    // Test setup straight in the database (so that one resource's suite does not depend on
    // another's API): a user whose password is ADMIN.password, and a tenant role for it.
    // Returns {id, email, token}.
    async makeUser(email, { platformAdmin = false, tenantId, role } = {}) {
      const id = psql(dbUrl, `INSERT INTO users (email, password_hash, is_platform_admin)
        SELECT '${email}', password_hash, ${platformAdmin} FROM users WHERE email = '${ADMIN.email}'
        RETURNING id`);
      if (tenantId) psql(dbUrl, `INSERT INTO memberships (user_id, tenant_id, role) VALUES ('${id}', '${tenantId}', '${role}')`);
      return { id, email, token: await cp.login(email, ADMIN.password) };
    },
    // The data plane's path: events as NDJSON to /dp/v1/usage with the data-plane token, 1000
    // to a POST (docs/usage.md); each POST must be taken whole. Returns the last answer's body.
    async postUsage(events, dataplane = 'test-dataplane') {
      let body = null;
      for (let i = 0; i < events.length; i += 1000) {
        const res = await fetch(`${url}/dp/v1/usage`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer test-dp-token', 'content-type': 'application/x-ndjson',
            'x-tollgate-dataplane': dataplane, 'x-tollgate-version': 'test',
          },
          body: events.slice(i, i + 1000).map((e) => JSON.stringify(e)).join('\n') + '\n',
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`POST /dp/v1/usage: ${res.status} ${text}`);
        body = JSON.parse(text);
        if (body.rejected.length) throw new Error(`POST /dp/v1/usage rejected events: ${text}`);
      }
      return body;
    },
    // The OpenAI mock at mockUrl as provider "mock", with `price` ({input_per_mtok,
    // output_per_mtok}) for its model when given, and the route gpt-4o-mini to it; the provider.
    async mockRoute(adminToken, mockUrl, { price } = {}) {
      const prov = await cp.api('POST', '/api/v1/providers', { token: adminToken, body: {
        name: 'mock', kind: 'openai', base_url: mockUrl, credentials: { api_key: 'sk-upstream-test' } } });
      if (prov.status !== 201) throw new Error(`provider: ${prov.status} ${prov.text}`);
      if (price) {
        const pr = await cp.api('PUT', '/api/v1/prices', { token: adminToken, body: {
          provider_id: prov.body.id, model: 'gpt-4o-mini-2024-07-18', ...price } });
        if (pr.status !== 201) throw new Error(`price: ${pr.status} ${pr.text}`);
      }
      const route = await cp.api('POST', '/api/v1/routes', { token: adminToken, body: {
        alias: 'gpt-4o-mini', targets: [{ provider_id: prov.body.id, model: 'gpt-4o-mini-2024-07-18' }] } });
      if (route.status !== 201) throw new Error(`route: ${route.status} ${route.text}`);
      return prov.body;
    },
    async makeTenant(adminToken, slug) {
      const r = await cp.api('POST', '/api/v1/tenants', { token: adminToken, body: { slug, name: slug } });
      if (r.status !== 201) throw new Error(`tenant ${slug}: ${r.status} ${r.text}`);
      return r.body;
    },
    async stop() {
      if (!exitInfo) proc.kill('SIGTERM');
      let timer;
      const e = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r(null), 15000); })]);
      clearTimeout(timer);
      if (!e) { proc.kill('SIGKILL'); await exited; }
      if (/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/.test(logs)) {
        throw new Error(`sanitizer report in tollgate-control output:\n${logs}`);
      }
      return e;
    },
  };
  return cp;
}

// One usage event as a data plane ships it: a 200 chat completion with nothing counted, and `o`
// on top (total_tokens follows the prompt and completion tokens).
export function usageEvent(o) {
  return {
    id: randomUUID(), request_id: `req-${randomUUID()}`, upstream_model: null, endpoint: 'chat.completions',
    status: 200, streamed: false, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0,
    usage_source: 'provider', cost_usd: 0, latency_ms: 12.5, ttfb_ms: null, error: null, ...o,
    total_tokens: (o.prompt_tokens || 0) + (o.completion_tokens || 0),
  };
}

// A proxy the data planes reach the control plane through (--control-url proxy.url), so that a
// test can get between them: `intercept(req, res)` sees each request, its body read, first; it
// may wait (async) and answers the request itself by returning true. Anything else is passed
// to `target`: the control plane's URL, or a function giving it at each request (a control
// plane restarted on another port). Returns {url, close()}.
export function startControlProxy(target, intercept = () => false) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      if (await intercept(req, res)) return;
      const to = typeof target === 'function' ? target() : target;
      const up = http.request(new URL(req.url, to), { method: req.method, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); },
  })));
}
