// control_openapi.test.mjs: docs/openapi.yaml and tollgate-control agree.
//
// 1. The operations in docs/openapi.yaml are exactly the routes[] table of controlplane/api.c
//    (method, path with parameters, and whether a token is needed). THIS FAILS WHEN A ROUTE IS
//    ADDED, REMOVED OR CHANGED WITHOUT THE SAME CHANGE IN docs/openapi.yaml (and docs/api.md):
//    document the endpoint, then add a call to the walkthrough in test 3.
// 2. Against a running server, every documented operation exists (not 404/405; 401 without a
//    token where one is needed), undocumented methods on documented paths answer 405 and
//    undocumented paths answer 404.
// 3. A walkthrough calls every documented operation (and some refusals); each status must be
//    documented for its operation, each JSON response must match the documented schema (no
//    undocumented fields), and each request body the server accepts must match the documented
//    request schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import YAML from 'yaml';
import { startControl, ADMIN } from './lib/control.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SPEC_FILE = path.join(ROOT, 'docs/openapi.yaml');
const TABLE_FILE = path.join(ROOT, 'controlplane/api.c');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

const spec = YAML.parse(readFileSync(SPEC_FILE, 'utf8'));

// "/api/v1/tenants/{tenant_id}/keys/{key_id}" -> "/api/v1/tenants/{}/keys/{}", as api.c writes it.
const normalize = (p) => p.replace(/\{[^}]*\}/g, '{}');

// The routes[] array of api.c: {"METHOD", "/pattern", handler, auth} entries.
function routeTable() {
  const src = readFileSync(TABLE_FILE, 'utf8');
  const m = /static\s+const\s+route_t\s+routes\[\]\s*=\s*\{([\s\S]*?)\n\};/.exec(src);
  assert.ok(m, `no "static const route_t routes[] = {...};" in ${TABLE_FILE}`);
  const body = m[1];
  const rows = [...body.matchAll(/\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*(true|false)\s*\}/g)]
    .map(([, method, pattern, handler, auth]) => ({ method, path: pattern, handler, auth: auth === 'true' }));
  // an entry spelled in a way the pattern above misses must not slip through unchecked
  const handlers = (body.match(/\bcp_(api|dp)_\w+/g) || []).length;
  assert.equal(rows.length, handlers,
    `parsed ${rows.length} entries from routes[] but it names ${handlers} handlers; update the regex in this test`);
  assert.ok(rows.length > 0);
  return rows;
}

// Every operation in the spec: {method, path (as documented), norm, auth, op}.
function specOperations() {
  // auth: a user token (bearerAuth), as routes[] says; dpToken: the data-plane token, which the
  // /dp/v1 handlers check themselves (routes[] says auth=false for them)
  const has = (sec, name) => Array.isArray(sec) && sec.some((x) => name in x);
  const ops = [];
  for (const [p, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const sec = Array.isArray(op.security) ? op.security : spec.security;
      const auth = has(sec, 'bearerAuth');
      const dpToken = has(sec, 'dpToken');
      ops.push({ method: method.toUpperCase(), path: p, norm: normalize(p), auth, dpToken, op, item });
    }
  }
  return ops;
}

function lookup(ref) {
  assert.ok(ref.startsWith('#/'), `only local $refs are used: ${ref}`);
  const v = ref.slice(2).split('/').reduce((o, k) => (o == null ? undefined : o[k]), spec);
  assert.ok(v !== undefined, `unresolved $ref ${ref}`);
  return v;
}
const resolve = (s) => { while (s && s.$ref) s = lookup(s.$ref); return s; };

// ---- a small validator for the subset of OpenAPI 3.0 schemas that docs/openapi.yaml uses ----
// strict: an object property the schema does not name is an error unless additionalProperties
// allows it (so a response field the docs do not mention fails the test).

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function typeOf(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function validate(schema, v, where, errs, strict) {
  schema = resolve(schema);
  if (!schema) return;
  if (v === null) {
    if (!schema.nullable && (schema.type || schema.allOf || schema.oneOf || schema.properties)) {
      errs.push(`${where}: null is not allowed`);
    }
    return;
  }
  if (schema.allOf) {
    const parts = schema.allOf.map(resolve);
    if (parts.every((p) => p.type === 'object' || p.properties)) {
      // a merge (TokenWithSecret = Token + token): one object with every part's fields
      const merged = { type: 'object', properties: {}, required: [] };
      for (const p of parts) {
        Object.assign(merged.properties, p.properties || {});
        merged.required.push(...(p.required || []));
        if (p.additionalProperties !== undefined) merged.additionalProperties = p.additionalProperties;
      }
      validate(merged, v, where, errs, strict);
    } else {
      for (const p of parts) validate(p, v, where, errs, strict);
    }
    return;
  }
  if (schema.oneOf) {
    const ok = schema.oneOf.filter((s) => { const e = []; validate(s, v, where, e, strict); return e.length === 0; });
    if (ok.length !== 1) errs.push(`${where}: ${JSON.stringify(v)} matches ${ok.length} of oneOf, not exactly 1`);
    return;
  }
  const t = typeOf(v);
  if (schema.type) {
    const fits = schema.type === t || (schema.type === 'number' && t === 'integer');
    if (!fits) { errs.push(`${where}: expected ${schema.type}, got ${t} ${JSON.stringify(v).slice(0, 80)}`); return; }
  }
  if (schema.enum && !schema.enum.includes(v)) errs.push(`${where}: ${JSON.stringify(v)} is not one of ${schema.enum.join(', ')}`);
  if (t === 'string') {
    const n = [...v].length;
    if (schema.minLength !== undefined && n < schema.minLength) errs.push(`${where}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && n > schema.maxLength) errs.push(`${where}: longer than ${schema.maxLength}`);
    if (schema.pattern && !new RegExp(schema.pattern).test(v)) errs.push(`${where}: ${JSON.stringify(v)} does not match ${schema.pattern}`);
    if (schema.format === 'uuid' && !UUID.test(v)) errs.push(`${where}: ${JSON.stringify(v)} is not a uuid`);
    if (schema.format === 'date-time' && !DATE_TIME.test(v)) errs.push(`${where}: ${JSON.stringify(v)} is not an RFC 3339 date-time`);
  }
  if (t === 'integer' || t === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) errs.push(`${where}: ${v} < ${schema.minimum}`);
    if (schema.maximum !== undefined && v > schema.maximum) errs.push(`${where}: ${v} > ${schema.maximum}`);
  }
  if (t === 'array') {
    if (schema.minItems !== undefined && v.length < schema.minItems) errs.push(`${where}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && v.length > schema.maxItems) errs.push(`${where}: more than ${schema.maxItems} items`);
    if (schema.uniqueItems && new Set(v.map((x) => JSON.stringify(x))).size !== v.length) errs.push(`${where}: items repeat`);
    if (schema.items) v.forEach((x, i) => validate(schema.items, x, `${where}[${i}]`, errs, strict));
  }
  if (t === 'object') {
    const props = schema.properties || {};
    for (const r of schema.required || []) if (!(r in v)) errs.push(`${where}: missing required "${r}"`);
    const keys = Object.keys(v);
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) errs.push(`${where}: fewer than ${schema.minProperties} properties`);
    if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) errs.push(`${where}: more than ${schema.maxProperties} properties`);
    for (const k of keys) {
      if (props[k]) { validate(props[k], v[k], `${where}.${k}`, errs, strict); continue; }
      const ap = schema.additionalProperties;
      if (ap === false || (ap === undefined && strict)) errs.push(`${where}: "${k}" is not documented`);
      else if (ap && ap !== true) validate(ap, v[k], `${where}.${k}`, errs, strict);
    }
  }
}

function checkSchema(schema, v, where, strict) {
  const errs = [];
  validate(schema, v, where, errs, strict);
  assert.deepEqual(errs, [], `${where} does not match docs/openapi.yaml:\n  ${errs.join('\n  ')}`);
}

// ---- 1. the spec and the route table list the same operations ----

test('docs/openapi.yaml documents exactly the routes[] table of controlplane/api.c', () => {
  assert.equal(spec.openapi, '3.0.3');
  const table = routeTable();
  const ops = specOperations();
  const key = (o) => `${o.method} ${normalize(o.path)}`;
  const inTable = new Map(table.map((r) => [key(r), r]));
  const inSpec = new Map(ops.map((o) => [key(o), o]));
  assert.equal(inTable.size, table.length, 'routes[] lists an operation twice');
  assert.equal(inSpec.size, ops.length, 'docs/openapi.yaml documents an operation twice (paths differing only in parameter names)');
  const problems = [
    ...[...inTable.keys()].filter((k) => !inSpec.has(k)).map((k) => `in routes[] but not documented: ${k}`),
    ...[...inSpec.keys()].filter((k) => !inTable.has(k)).map((k) => `documented but not in routes[]: ${k}`),
    ...[...inTable.entries()].filter(([k, r]) => inSpec.has(k) && inSpec.get(k).auth !== r.auth)
      .map(([k, r]) => `${k}: routes[] says auth=${r.auth}, the docs say ${inSpec.get(k).auth ? 'a token is needed' : 'security: []'}`),
  ];
  assert.ok(problems.length === 0, `docs/openapi.yaml and controlplane/api.c disagree:\n  ${problems.join('\n  ')}`);
});

test('docs/openapi.yaml is self-consistent: refs resolve, path parameters are declared, request bodies refuse unknown fields', () => {
  const ids = new Set();
  const problems = [];
  (function walk(o, where) {
    if (!o || typeof o !== 'object') return;
    if (typeof o.$ref === 'string') { try { lookup(o.$ref); } catch { problems.push(`${where}: unresolved ${o.$ref}`); } }
    for (const [k, v] of Object.entries(o)) walk(v, `${where}/${k}`);
  })(spec, '#');
  for (const o of specOperations()) {
    const name = `${o.method} ${o.path}`;
    if (!o.op.operationId) problems.push(`${name}: no operationId`);
    else if (ids.has(o.op.operationId)) problems.push(`${name}: operationId ${o.op.operationId} repeats`);
    ids.add(o.op.operationId);
    const params = [...(o.item.parameters || []), ...(o.op.parameters || [])].map(resolve);
    const declared = params.filter((p) => p.in === 'path').map((p) => p.name).sort();
    const inPath = [...o.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    if (JSON.stringify(declared) !== JSON.stringify(inPath)) problems.push(`${name}: path parameters ${inPath} but declared ${declared}`);
    if (new Set(inPath).size !== inPath.length) problems.push(`${name}: a parameter name repeats`);
    if (!o.op.responses || Object.keys(o.op.responses).length === 0) problems.push(`${name}: no responses`);
    if ((o.auth || o.dpToken) && !o.op.responses?.['401']) problems.push(`${name}: needs a token but documents no 401`);
    const body = o.op.requestBody?.content?.['application/json']?.schema;
    if (body) {
      const s = resolve(body);
      if (s.type !== 'object' || s.additionalProperties !== false) problems.push(`${name}: request body schema lacks additionalProperties: false`);
    }
  }
  assert.deepEqual(problems, []);
});

// ---- 2 and 3: against a running server ----

let cp;
before(async () => { cp = await startControl(); });
after(async () => { const e = await cp.stop(); assert.equal(e.code, 0); });

const fill = (p, params) => p.replace(/\{([^}]+)\}/g, (_, n) => encodeURIComponent(params[n] ?? randomUUID()));

test('every documented operation is served; undocumented methods are 405 and undocumented paths 404', async () => {
  const wrong = [];
  const ops = specOperations();
  for (const o of ops) {
    const r = await cp.api(o.method, fill(o.path, {}));
    const name = `${o.method} ${o.path}`;
    if (r.status === 404 || r.status === 405) { wrong.push(`${name}: ${r.status} ${r.text}`); continue; }
    if (!o.op.responses[String(r.status)]) wrong.push(`${name}: answered ${r.status}, which is not documented`);
    if (o.auth || o.dpToken) {
      if (r.status !== 401 || r.body?.error?.code !== 'unauthenticated') wrong.push(`${name} without a token: ${r.status} ${r.text}`);
    } else if (o.method === 'GET') {
      if (r.status !== 200) wrong.push(`${name}: ${r.status} ${r.text}`);
    } else if (r.status !== 400) { // login without a body
      wrong.push(`${name} without a body: ${r.status} ${r.text}`);
    }
  }
  // the same paths with the methods the docs do not list
  const byPath = new Map();
  for (const o of ops) byPath.set(o.path, [...(byPath.get(o.path) || []), o.method]);
  for (const [p, methods] of byPath) {
    for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      if (methods.includes(m)) continue;
      const r = await cp.api(m, fill(p, {}));
      if (r.status !== 405 || r.body?.error?.code !== 'method_not_allowed') wrong.push(`${m} ${p} (undocumented): ${r.status} ${r.text}`);
    }
  }
  // and paths the docs do not list at all
  const t = randomUUID();
  // (every other path is the dashboard's: / and its files, in control_web.test.mjs)
  for (const p of ['/no-such-page', '/api', '/api/v1', '/api/v1/', `/api/v1/${randomUUID()}`, '/api/v1/tenants/', `/api/v1/tenants/${t}/`,
    `/api/v1/tenants/${t}/undocumented`, `/api/v1/tenants/${t}/keys/${t}/undocumented`, '/api/v1/auth', '/api/v2/tenants',
    '/api/v1/audit-log/verify/x', '/healthz/x', '/v1/chat/completions']) {
    for (const m of ['GET', 'POST']) {
      const r = await cp.api(m, p);
      if (r.status !== 404 || r.body?.error?.code !== 'not_found') wrong.push(`${m} ${p} (undocumented): ${r.status} ${r.text}`);
      else checkSchema({ $ref: '#/components/schemas/Error' }, r.body, `${m} ${p}`, true);
    }
  }
  assert.deepEqual(wrong, []);
});

test('a walkthrough of every operation: statuses are documented and bodies match the schemas', async () => {
  const served = new Set(); // "METHOD /path" answered with a 2xx
  // One call of a documented operation; checks the request body, the status and the response.
  // raw: a body sent as is (not JSON), e.g. the NDJSON of POST /dp/v1/usage
  async function call(method, docPath, { params = {}, query, token, body, raw, headers, expect } = {}) {
    const item = spec.paths[docPath];
    assert.ok(item && item[method.toLowerCase()], `${method} ${docPath} is not documented`);
    const op = item[method.toLowerCase()];
    const name = `${method} ${docPath}`;
    const rs = op.requestBody?.content?.['application/json']?.schema;
    if (body !== undefined) assert.ok(rs, `${name} takes no documented request body`);
    let url = fill(docPath, params);
    if (query) url += `?${new URLSearchParams(query)}`;
    if (raw !== undefined) assert.ok(op.requestBody?.content, `${name} takes no documented request body`);
    const r = await cp.api(method, url, { token, body, raw, headers });
    if (expect !== undefined) assert.equal(r.status, expect, `${name}: ${r.status} ${r.text}`);
    // a body the server took must be one the docs allow (bodies meant to be refused may not be)
    if (body !== undefined && r.status < 300) checkSchema(rs, body, `${name} request`, true);
    const doc = resolve(op.responses[String(r.status)]);
    assert.ok(doc, `${name} answered ${r.status}, which is not documented: ${r.text}`);
    const content = doc.content || {};
    if (content['application/json']) {
      assert.match(r.headers.get('content-type') || '', /^application\/json/);
      checkSchema(content['application/json'].schema, r.body, `${name} ${r.status}`, true);
    } else if (content['text/plain']) {
      assert.match(r.headers.get('content-type') || '', /^text\/plain/);
    } else {
      assert.equal(r.text, '', `${name} ${r.status} documents no body but sent one`);
    }
    if (r.status >= 200 && r.status < 300) served.add(`${method} ${docPath}`);
    return r;
  }

  // health
  await call('GET', '/healthz', { expect: 200 });
  await call('GET', '/readyz', { expect: 200 });
  await call('GET', '/metrics', { expect: 200 });

  // the data planes' snapshot (its long poll is tested in control_sync.test.mjs)
  await call('GET', '/dp/v1/snapshot', { token: 'test-dp-token', expect: 200 });
  await call('GET', '/dp/v1/snapshot', { token: 'test-dp-token', query: { after: 'x' }, expect: 400 });
  await call('GET', '/dp/v1/snapshot', { token: 'not-the-dp-token', query: { after: 0 }, expect: 401 });

  // session
  let r = await call('POST', '/api/v1/auth/login', { body: { email: 'nobody@example.com', password: 'wrong-password' }, expect: 401 });
  r = await call('POST', '/api/v1/auth/login', { body: { email: ADMIN.email, password: ADMIN.password }, expect: 200 });
  const admin = r.body.token;
  await call('GET', '/api/v1/me', { token: admin, expect: 200 });
  // the dashboard's session: a cookie and a CSRF token
  r = await call('POST', '/api/v1/auth/login', { body: { email: ADMIN.email, password: ADMIN.password, cookie: true }, expect: 200 });
  const csrf = { cookie: r.headers.get('set-cookie').split(';')[0], 'x-csrf-token': r.body.csrf_token };
  r = await call('GET', '/api/v1/me', { headers: { cookie: csrf.cookie }, expect: 200 });
  assert.equal(r.body.csrf_token, csrf['x-csrf-token']);
  await call('POST', '/api/v1/auth/login', { body: { email: ADMIN.email, password: ADMIN.password, cookie: true }, headers: { origin: 'http://elsewhere.example' }, expect: 403 });
  await call('POST', '/api/v1/tenants', { headers: { cookie: csrf.cookie }, body: { slug: 'openapi-csrf', name: 'x' }, expect: 403 });

  // tenants
  r = await call('POST', '/api/v1/tenants', { token: admin, body: { slug: 'openapi-acme', name: 'Acme', rpm_limit: 6000, tpm_limit: null }, expect: 201 });
  const tenant = r.body;
  const T = { tenant_id: tenant.id };
  await call('POST', '/api/v1/tenants', { token: admin, body: { slug: 'openapi-acme', name: 'Again' }, expect: 409 });
  await call('POST', '/api/v1/tenants', { token: admin, body: { slug: 'x', name: 'x', extra: 1 }, expect: 400 });
  await call('GET', '/api/v1/tenants', { token: admin, query: { slug: 'openapi-acme' }, expect: 200 });
  await call('GET', '/api/v1/tenants/{tenant_id}', { token: admin, params: T, expect: 200 });
  await call('GET', '/api/v1/tenants/{tenant_id}', { token: admin, params: { tenant_id: randomUUID() }, expect: 404 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}', { token: admin, params: T, body: { name: 'Acme Inc' }, expect: 200 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}', { token: admin, params: T, body: { rpm_limit: null, tpm_limit: 1000000 }, expect: 200 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}', { token: admin, params: T, body: { rpm_limit: 0 }, expect: 422 });

  // users and members
  const password = 'a-long-enough-password';
  r = await call('POST', '/api/v1/users', { token: admin, body: { email: 'Dev@Example.com', name: 'Dev', password }, expect: 201 });
  const dev = r.body;
  r = await call('POST', '/api/v1/users', { token: admin, body: { email: 'ci@example.com', is_service: true }, expect: 201 });
  const svc = r.body;
  await call('POST', '/api/v1/users', { token: admin, body: { email: 'short@example.com', password: 'short' }, expect: 422 });
  await call('GET', '/api/v1/users', { token: admin, query: { email: 'dev@example.com' }, expect: 200 });
  await call('GET', '/api/v1/users/{user_id}', { token: admin, params: { user_id: dev.id }, expect: 200 });
  await call('PATCH', '/api/v1/users/{user_id}', { token: admin, params: { user_id: dev.id }, body: { name: 'Developer' }, expect: 200 });
  await call('PUT', '/api/v1/tenants/{tenant_id}/members/{user_id}', { token: admin, params: { ...T, user_id: dev.id }, body: { role: 'member' }, expect: 201 });
  await call('PUT', '/api/v1/tenants/{tenant_id}/members/{user_id}', { token: admin, params: { ...T, user_id: dev.id }, body: { role: 'admin' }, expect: 200 });
  await call('PUT', '/api/v1/tenants/{tenant_id}/members/{user_id}', { token: admin, params: { ...T, user_id: svc.id }, body: { role: 'member' }, expect: 201 });
  r = await call('GET', '/api/v1/tenants/{tenant_id}/members', { token: admin, params: T, query: { limit: 1 }, expect: 200 });
  assert.equal(typeof r.body.next_cursor, 'string');
  await call('GET', '/api/v1/tenants/{tenant_id}/members', { token: admin, params: T, query: { cursor: r.body.next_cursor }, expect: 200 });

  // a tenant admin: 403 on platform config, 200 in its tenant
  r = await call('POST', '/api/v1/auth/login', { body: { email: 'dev@example.com', password }, expect: 200 });
  const devToken = r.body.token;
  await call('GET', '/api/v1/providers', { token: devToken, expect: 403 });
  await call('GET', '/api/v1/users/{user_id}', { token: devToken, params: { user_id: svc.id }, expect: 404 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}', { token: devToken, params: T, body: { tpm_limit: 2000000 }, expect: 403 });

  // usage reports (their numbers are tested in control_usage.test.mjs)
  const hourAgo = new Date(Date.now() - 3600e3).toISOString();
  await call('GET', '/api/v1/usage', { token: admin, expect: 200 });
  await call('GET', '/api/v1/usage', { token: devToken, query: { tenant_id: tenant.id, from: hourAgo, bucket: 'day', group_by: 'model' }, expect: 200 });
  await call('GET', '/api/v1/usage', { token: devToken, query: { tenant_id: randomUUID() }, expect: 404 });
  await call('GET', '/api/v1/usage', { token: devToken, query: { bucket: 'week' }, expect: 400 });
  await call('GET', '/api/v1/usage/recommendations', { token: devToken, query: { tenant_id: tenant.id }, expect: 200 });
  await call('GET', '/api/v1/usage/recommendations', { token: devToken, query: { tenant_id: randomUUID() }, expect: 404 });
  await call('GET', '/api/v1/usage/recommendations', { token: devToken, expect: 400 });

  // tokens
  const tomorrow = new Date(Date.now() + 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
  r = await call('POST', '/api/v1/tokens', { token: devToken, body: { name: 'reader', role: 'viewer', tenant_id: tenant.id, expires_at: tomorrow }, expect: 201 });
  const reader = r.body;
  await call('GET', '/api/v1/me', { token: reader.token, expect: 200 });
  await call('POST', '/api/v1/auth/logout', { token: reader.token, expect: 400 });
  r = await call('POST', '/api/v1/tokens', { token: admin, body: { name: 'ci', role: 'member', tenant_id: tenant.id, user_id: svc.id, expires_at: Math.floor(Date.now() / 1000) + 3600 }, expect: 201 });
  await call('POST', '/api/v1/tokens', { token: devToken, body: { name: 'wide', role: 'admin' }, expect: 403 });
  await call('GET', '/api/v1/tokens', { token: devToken, expect: 200 });
  await call('GET', '/api/v1/tokens', { token: admin, query: { user_id: svc.id }, expect: 200 });
  await call('DELETE', '/api/v1/tokens/{token_id}', { token: devToken, params: { token_id: reader.id }, expect: 204 });
  await call('GET', '/api/v1/me', { token: reader.token, expect: 401 });

  // providers, routes, prices
  r = await call('POST', '/api/v1/providers', {
    token: admin,
    body: { name: 'openai-main', kind: 'openai', base_url: 'https://api.openai.com/v1', credentials: { api_key: 'sk-test-secret' },
      headers: { 'OpenAI-Organization': 'org-1' }, settings: { temperature_cap: 0.7, nested: { a: [1, 2] } } },
    expect: 201,
  });
  const provider = r.body;
  const P = { provider_id: provider.id };
  assert.deepEqual(provider.credential_names, ['api_key']);
  await call('POST', '/api/v1/providers', { token: admin, body: { name: 'openai-main', kind: 'openai', base_url: 'https://x.example' }, expect: 409 });
  await call('GET', '/api/v1/providers', { token: admin, query: { kind: 'openai' }, expect: 200 });
  await call('GET', '/api/v1/providers/{provider_id}', { token: admin, params: P, expect: 200 });
  await call('PATCH', '/api/v1/providers/{provider_id}', { token: admin, params: P, body: { credentials: null, settings: {} }, expect: 200 });

  r = await call('POST', '/api/v1/routes', {
    token: admin,
    body: { alias: 'gpt-4o-mini', strategy: 'weighted', targets: [{ provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', weight: 2 }],
      retry: { max_attempts: 2, on_status: [503, 429], backoff_ms: 100 }, connect_timeout_ms: 5000, timeout_ms: 60000 },
    expect: 201,
  });
  const route = r.body;
  const R = { route_id: route.id };
  await call('POST', '/api/v1/routes', { token: admin, body: { alias: 'bad', targets: [{ provider_id: randomUUID(), model: 'm' }] }, expect: 422 });
  await call('GET', '/api/v1/routes', { token: devToken, query: { alias: 'gpt-4o-mini' }, expect: 200 });
  await call('GET', '/api/v1/routes/{route_id}', { token: devToken, params: R, expect: 200 });
  await call('GET', '/api/v1/routes/{route_id}/prices', { token: devToken, params: R, expect: 200 });
  await call('GET', '/api/v1/routes/{route_id}/prices', { token: devToken, params: { route_id: randomUUID() }, expect: 404 });
  await call('GET', '/api/v1/catalog', { token: devToken, expect: 200 });
  await call('PATCH', '/api/v1/routes/{route_id}', { token: admin, params: R, body: { timeout_ms: 120000 }, expect: 200 });
  await call('DELETE', '/api/v1/providers/{provider_id}', { token: admin, params: P, expect: 409 });

  const price = { provider_id: provider.id, model: 'gpt-4o-mini-2024-07-18', input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075 };
  await call('PUT', '/api/v1/prices', { token: admin, body: price, expect: 201 });
  const { cached_input_per_mtok: _, ...noCached } = price;
  await call('PUT', '/api/v1/prices', { token: admin, body: { ...noCached, output_per_mtok: 1 }, expect: 200 });
  await call('GET', '/api/v1/prices', { token: devToken, query: { provider_id: provider.id }, expect: 200 });

  // keys and budgets (dev is a tenant admin)
  r = await call('POST', '/api/v1/tenants/{tenant_id}/keys', {
    token: devToken, params: T, body: { name: 'app', models: ['gpt-4o-mini'], rpm_limit: 60, expires_at: Math.floor(Date.now() / 1000) + 86400 }, expect: 201,
  });
  const key = r.body;
  const K = { ...T, key_id: key.id };
  await call('POST', '/api/v1/tenants/{tenant_id}/keys', { token: devToken, params: T, body: { name: 'x', models: ['no-such-alias'] }, expect: 422 });
  await call('GET', '/api/v1/tenants/{tenant_id}/keys', { token: devToken, params: T, query: { status: 'active' }, expect: 200 });
  await call('GET', '/api/v1/tenants/{tenant_id}/keys/{key_id}', { token: devToken, params: K, expect: 200 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}/keys/{key_id}', { token: devToken, params: K, body: { rpm_limit: null, tpm_limit: 100000, expires_at: null }, expect: 200 });
  await call('POST', '/api/v1/tenants/{tenant_id}/keys/{key_id}/rotate', { token: devToken, params: K, expect: 200 });
  // a snapshot with a provider, route, price and key in it matches its schema as well
  r = await call('GET', '/dp/v1/snapshot', { token: 'test-dp-token', query: { after: 0 }, expect: 200 });
  assert.ok(r.body.keys.some((k) => k.id === key.id));
  await call('GET', '/api/v1/dataplanes', { token: admin, expect: 200 });
  await call('GET', '/api/v1/dataplanes', { token: devToken, expect: 403 });

  r = await call('POST', '/api/v1/tenants/{tenant_id}/budgets', { token: devToken, params: T, body: { key_id: key.id, period: 'monthly', limit_usd: 10.5, alert_threshold: 0.8 }, expect: 201 });
  const budget = r.body;
  const B = { ...T, budget_id: budget.id };
  await call('POST', '/api/v1/tenants/{tenant_id}/budgets', { token: devToken, params: T, body: { period: 'daily', limit_usd: 1 }, expect: 201 });
  await call('POST', '/api/v1/tenants/{tenant_id}/budgets', { token: devToken, params: T, body: { period: 'daily', limit_usd: 2 }, expect: 409 });
  await call('GET', '/api/v1/tenants/{tenant_id}/budgets', { token: devToken, params: T, query: { period: 'daily' }, expect: 200 });
  await call('GET', '/api/v1/tenants/{tenant_id}/budgets/{budget_id}', { token: devToken, params: B, expect: 200 });

  // usage events from a data plane (tested in control_ingest.test.mjs); the answer lists the budgets
  const usageEvent = (over) => JSON.stringify({ id: randomUUID(), ts: new Date().toISOString(), request_id: 'req-1',
    key_id: key.id, tenant_id: tenant.id, model: 'gpt-4o-mini', provider: 'openai', upstream_model: 'gpt-4o-mini-2024-07-18',
    endpoint: 'chat.completions', status: 200, streamed: false, prompt_tokens: 12, completion_tokens: 30, cached_tokens: 0,
    reasoning_tokens: 0, total_tokens: 42, usage_source: 'provider', cost_usd: 0.00002, latency_ms: 12.5, ttfb_ms: null,
    error: null, ...over });
  r = await call('POST', '/dp/v1/usage', { token: 'test-dp-token', raw: `${usageEvent()}\n${usageEvent({ id: 'x' })}\n`, expect: 200 });
  assert.deepEqual([r.body.accepted, r.body.rejected], [1, [{ line: 2, message: 'id is not a UUID' }]]);
  assert.ok(r.body.spend.some((b) => b.budget === budget.id && b.spent_usd === 0.00002), r.text);
  await call('POST', '/dp/v1/usage', { token: 'test-dp-token', raw: '', expect: 200 });
  // the request log (its rows, filters and pages are tested in control_requests.test.mjs)
  await call('POST', '/dp/v1/usage', { token: 'test-dp-token', raw: `${usageEvent({ status: 429, usage_source: 'cache', ttfb_ms: 3.5, error: 'rate_limited' })}\n`, expect: 200 });
  r = await call('GET', '/api/v1/requests', { token: devToken, query: { tenant_id: tenant.id, limit: 1 }, expect: 200 });
  assert.equal(r.body.data.length, 1);
  assert.equal(typeof r.body.next_cursor, 'string');
  await call('GET', '/api/v1/requests', { token: devToken, query: { tenant_id: tenant.id, cursor: r.body.next_cursor, key_id: key.id, model: 'gpt-4o-mini', provider: 'openai', status: '2xx', from: hourAgo, to: tomorrow }, expect: 200 });
  await call('GET', '/api/v1/requests', { token: admin, expect: 200 });
  await call('GET', '/api/v1/requests', { token: devToken, expect: 400 });
  await call('GET', '/api/v1/requests', { token: devToken, query: { tenant_id: tenant.id, status: 'bad' }, expect: 400 });
  await call('GET', '/api/v1/requests', { token: devToken, query: { tenant_id: randomUUID() }, expect: 404 });
  await call('POST', '/dp/v1/usage', { token: 'not-the-dp-token', raw: usageEvent(), expect: 401 });
  await call('POST', '/dp/v1/usage', { token: 'test-dp-token', raw: `${usageEvent()}\n`.repeat(5001), expect: 413 });

  // stored responses from a data plane (tested in responses_store.test.mjs)
  const rec = JSON.stringify({ id: 'resp_openapi1', tenant: tenant.id, key: key.id, created_at: Math.floor(Date.now() / 1000),
    response: { id: 'resp_openapi1', object: 'response', output: [{ id: 'msg_openapi1', type: 'message' }] }, input_items: [{ id: 'msg_in1', type: 'message' }] });
  r = await call('POST', '/dp/v1/responses', { token: 'test-dp-token', raw: `${rec}\nnot json\n`, expect: 200 });
  assert.deepEqual([r.body.stored, r.body.duplicates, r.body.rejected.length], [1, 0, 1]);
  await call('POST', '/dp/v1/responses', { token: 'not-the-dp-token', raw: rec, expect: 401 });
  await call('POST', '/dp/v1/responses', { token: 'test-dp-token', raw: `${rec}\n`.repeat(1001), expect: 413 });
  const RQ = { tenant: tenant.id };
  await call('GET', '/dp/v1/responses/{id}', { token: 'test-dp-token', params: { id: 'resp_openapi1' }, query: RQ, expect: 200 });
  await call('GET', '/dp/v1/response-items/{id}', { token: 'test-dp-token', params: { id: 'msg_in1' }, query: RQ, expect: 200 });
  await call('GET', '/dp/v1/response-items/{id}', { token: 'test-dp-token', params: { id: 'msg_none' }, query: RQ, expect: 404 });
  await call('GET', '/dp/v1/response-items/{id}', { token: 'nope', params: { id: 'msg_none' }, query: RQ, expect: 401 });
  await call('DELETE', '/dp/v1/responses/{id}', { token: 'test-dp-token', params: { id: 'resp_openapi1' }, query: RQ, expect: 200 });
  await call('DELETE', '/dp/v1/responses/{id}', { token: 'test-dp-token', params: { id: 'resp_openapi1' }, query: RQ, expect: 404 });
  await call('GET', '/dp/v1/responses/{id}', { token: 'test-dp-token', params: { id: 'resp_openapi1' }, query: RQ, expect: 404 });
  await call('GET', '/dp/v1/responses/{id}', { token: 'nope', params: { id: 'resp_openapi1' }, query: RQ, expect: 401 });
  await call('DELETE', '/dp/v1/responses/{id}', { token: 'nope', params: { id: 'resp_openapi1' }, query: RQ, expect: 401 });
  await call('PATCH', '/api/v1/tenants/{tenant_id}/budgets/{budget_id}', { token: devToken, params: B, body: { limit_usd: 20, alert_threshold: null }, expect: 200 });
  await call('DELETE', '/api/v1/tenants/{tenant_id}/budgets/{budget_id}', { token: devToken, params: B, expect: 204 });

  await call('POST', '/api/v1/tenants/{tenant_id}/keys/{key_id}/revoke', { token: devToken, params: K, expect: 200 });
  await call('POST', '/api/v1/tenants/{tenant_id}/keys/{key_id}/rotate', { token: devToken, params: K, expect: 409 });
  await call('DELETE', '/api/v1/tenants/{tenant_id}/keys/{key_id}', { token: devToken, params: K, expect: 204 });

  // audit
  r = await call('GET', '/api/v1/audit-log', { token: admin, query: { limit: 2 }, expect: 200 });
  assert.equal(typeof r.body.next_cursor, 'string');
  await call('GET', '/api/v1/audit-log', { token: admin, query: { cursor: r.body.next_cursor }, expect: 200 });
  await call('GET', '/api/v1/audit-log', { token: devToken, query: { tenant_id: tenant.id, action: 'key.create' }, expect: 200 });
  r = await call('GET', '/api/v1/audit-log', { token: devToken, query: { tenant_id: tenant.id, actor_id: dev.id, target_id: key.id, from: hourAgo, to: tomorrow }, expect: 200 });
  assert.ok(r.body.data.length > 0);
  await call('GET', '/api/v1/audit-log', { token: admin, query: { actor_id: 'x' }, expect: 400 });
  await call('GET', '/api/v1/audit-log', { token: devToken, expect: 400 });
  await call('GET', '/api/v1/audit-log/verify', { token: devToken, expect: 403 });
  r = await call('GET', '/api/v1/audit-log/verify', { token: admin, expect: 200 });
  assert.equal(r.body.intact, true);

  // deletes, in dependency order
  await call('DELETE', '/api/v1/prices', { token: admin, query: { provider_id: provider.id, model: price.model }, expect: 204 });
  await call('DELETE', '/api/v1/prices', { token: admin, query: { provider_id: provider.id }, expect: 400 });
  await call('DELETE', '/api/v1/routes/{route_id}', { token: admin, params: R, expect: 204 });
  await call('DELETE', '/api/v1/providers/{provider_id}', { token: admin, params: P, expect: 204 });
  await call('DELETE', '/api/v1/tenants/{tenant_id}/members/{user_id}', { token: admin, params: { ...T, user_id: svc.id }, expect: 204 });
  await call('DELETE', '/api/v1/users/{user_id}', { token: admin, params: { user_id: svc.id }, expect: 204 });
  await call('DELETE', '/api/v1/tenants/{tenant_id}', { token: devToken, params: T, expect: 403 });
  await call('DELETE', '/api/v1/tenants/{tenant_id}', { token: admin, params: T, expect: 204 });
  await call('POST', '/api/v1/auth/logout', { token: admin, expect: 204 });
  await call('GET', '/api/v1/me', { token: admin, expect: 401 });
  await call('POST', '/api/v1/auth/logout', { headers: { cookie: csrf.cookie }, expect: 403 });
  await call('POST', '/api/v1/auth/logout', { headers: csrf, expect: 204 });
  await call('GET', '/api/v1/me', { headers: { cookie: csrf.cookie }, expect: 401 });

  const missing = specOperations().map((o) => `${o.method} ${o.path}`).filter((k) => !served.has(k));
  assert.deepEqual(missing, [], 'operations the walkthrough never called successfully; add them above');
});
