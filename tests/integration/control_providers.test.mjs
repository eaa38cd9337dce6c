// control_providers.test.mjs: providers, routes and prices in tollgate-control: platform-wide
// config that only platform admins change, with write-only provider credentials.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { startControl } from './lib/control.mjs';

let cp;
let db; // one psql session for the many before/after checks (a psql per check is slow)
let admin; // the first platform admin's session token
let users; // {owner, admin, member, viewer, norole, other}: tenant roles (other = owner of tenant B)

const SECRET_1 = `sk-live-FIRSTsecret-${randomBytes(12).toString('hex')}`;
const SECRET_2 = `sk-live-SECONDsecret-${randomBytes(12).toString('hex')}`;
const ORG_SECRET = `org-SECRETorg-${randomBytes(8).toString('hex')}`;

// A long-lived psql reading statements from stdin; each answer ends at an \echo'd marker.
function psqlSession(url) {
  const proc = spawn('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=0'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let seq = 0;
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  return {
    async query(sql) {
      const marker = `__tg_done_${++seq}__`;
      proc.stdin.write(`${sql};\n\\echo ${marker}\n`);
      const deadline = Date.now() + 10000;
      while (!out.includes(`${marker}\n`)) {
        if (Date.now() > deadline) throw new Error(`psql did not answer: ${sql}\n${err}`);
        await new Promise((r) => setTimeout(r, 2));
      }
      const i = out.indexOf(`${marker}\n`);
      const res = out.slice(0, i).trim();
      out = out.slice(i + marker.length + 1);
      if (err) { const e = err; err = ''; throw new Error(`psql: ${e}`); }
      return res;
    },
    close() { proc.stdin.end(); },
  };
}

before(async () => {
  cp = await startControl();
  db = psqlSession(cp.dbUrl);
  admin = await cp.login();
  const a = await cp.makeTenant(admin, 'acme');
  const b = await cp.makeTenant(admin, 'globex');
  users = {
    owner: await cp.makeUser('owner@acme.test', { tenantId: a.id, role: 'owner' }),
    admin: await cp.makeUser('admin@acme.test', { tenantId: a.id, role: 'admin' }),
    member: await cp.makeUser('member@acme.test', { tenantId: a.id, role: 'member' }),
    viewer: await cp.makeUser('viewer@acme.test', { tenantId: a.id, role: 'viewer' }),
    norole: await cp.makeUser('norole@acme.test'),
    other: await cp.makeUser('owner@globex.test', { tenantId: b.id, role: 'owner' }),
  };
});

after(async () => {
  db.close();
  const e = await cp.stop();
  assert.equal(e.code, 0);
});

// Everything a refused request must leave alone: the three tables, the audit log and the config
// version data planes follow.
function state() {
  return db.query(`SELECT concat_ws(' ',
    (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM providers x),
    (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM routes x),
    (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.route_id, x.position), '')) FROM route_targets x),
    (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.provider_id, x.model), '')) FROM prices x),
    (SELECT count(*) FROM audit_log),
    (SELECT last_value FROM config_version_seq))`);
}

async function configVersion() {
  return Number(await db.query('SELECT last_value FROM config_version_seq'));
}

async function refused(method, path, opts, status, what) {
  const s = await state();
  const r = await cp.api(method, path, { token: admin, ...opts });
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  assert.ok(r.body?.error?.code && r.body.error.message, `${what}: error shape ${r.text}`);
  assert.equal(await state(), s, `${what} changed something`);
  return r;
}

function nest(n) {
  let v = 1;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

let nameSeq = 0;
async function makeProvider(extra = {}) {
  const r = await cp.api('POST', '/api/v1/providers', {
    token: admin,
    body: { name: `prov-${++nameSeq}`, kind: 'openai', base_url: 'http://127.0.0.1:9/v1', ...extra },
  });
  assert.equal(r.status, 201, r.text);
  return r.body;
}

async function auditRows(action, targetId) {
  return await db.query(`SELECT count(*) FROM audit_log WHERE action = '${action}' AND target_id = '${targetId}'`);
}

async function assertAuditIntact() {
  const v = await cp.api('GET', '/api/v1/audit-log/verify', { token: admin });
  assert.equal(v.status, 200);
  assert.equal(v.body.intact, true, v.text);
}

test('a platform admin creates, reads, lists, updates and deletes a provider', async () => {
  const v0 = await configVersion();
  const r = await cp.api('POST', '/api/v1/providers', {
    token: admin,
    body: {
      name: 'openai-main', kind: 'openai', base_url: 'https://api.openai.com/v1',
      credentials: { api_key: SECRET_1, organization: ORG_SECRET },
      headers: { 'OpenAI-Beta': 'assistants=v2', 'x-trace-note': 'café ✓' },
      settings: { temperature_cap: 0.7, region: 'eu', nested: { list: [1, 2.5, 'x'] } },
    },
  });
  assert.equal(r.status, 201, r.text);
  const p = r.body;
  assert.match(p.id, /^[0-9a-f-]{36}$/);
  assert.equal(p.name, 'openai-main');
  assert.equal(p.kind, 'openai');
  assert.equal(p.base_url, 'https://api.openai.com/v1');
  assert.equal(p.has_credentials, true);
  assert.deepEqual(p.credential_names, ['api_key', 'organization']);
  assert.deepEqual(p.headers, { 'OpenAI-Beta': 'assistants=v2', 'x-trace-note': 'café ✓' });
  assert.deepEqual(p.settings, { temperature_cap: 0.7, region: 'eu', nested: { list: [1, 2.5, 'x'] } });
  // numbers keep their spelling on the way through (no 0.69999999999999996)
  assert.match(r.text, /"temperature_cap"\s*:\s*0\.7[,}]/);
  assert.ok((await configVersion()) > v0, 'create bumps the config version');
  assert.equal(await auditRows('provider.create', p.id), '1');

  const g = await cp.api('GET', `/api/v1/providers/${p.id}`, { token: admin });
  assert.equal(g.status, 200);
  assert.deepEqual(g.body, p);

  const l = await cp.api('GET', '/api/v1/providers?name=openai-main', { token: admin });
  assert.equal(l.status, 200);
  assert.equal(l.body.data.length, 1);
  assert.deepEqual(l.body.data[0], p);
  assert.equal(l.body.next_cursor, null);

  const v1 = await configVersion();
  const u = await cp.api('PATCH', `/api/v1/providers/${p.id}`, {
    token: admin, body: { base_url: 'https://gateway.internal:8443/openai', kind: 'azure', settings: { api_version: '2024-10-21' } },
  });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.body.base_url, 'https://gateway.internal:8443/openai');
  assert.equal(u.body.kind, 'azure');
  assert.deepEqual(u.body.settings, { api_version: '2024-10-21' });
  assert.deepEqual(u.body.headers, p.headers, 'headers not given are kept');
  assert.equal(u.body.has_credentials, true, 'credentials not given are kept');
  assert.deepEqual(u.body.credential_names, ['api_key', 'organization']);
  assert.ok((await configVersion()) > v1);
  const audit = JSON.parse(await db.query(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'provider.update' AND target_id = '${p.id}'`));
  assert.equal(audit.b.kind, 'openai');
  assert.equal(audit.a.kind, 'azure');
  assert.equal(audit.a.has_credentials, true);

  const other = await makeProvider();
  const page1 = await cp.api('GET', '/api/v1/providers?limit=1', { token: admin });
  assert.equal(page1.body.data.length, 1);
  assert.ok(page1.body.next_cursor);
  const page2 = await cp.api('GET', `/api/v1/providers?limit=1&cursor=${page1.body.next_cursor}`, { token: admin });
  assert.equal(page2.body.data.length, 1);
  assert.notEqual(page2.body.data[0].id, page1.body.data[0].id);
  assert.deepEqual([page1.body.data[0].id, page2.body.data[0].id].sort(), [p.id, other.id].sort());
  assert.equal(page2.body.next_cursor, null);
  assert.equal((await cp.api('GET', '/api/v1/providers?kind=azure', { token: admin })).body.data.length, 1);

  const v2 = await configVersion();
  assert.equal((await cp.api('DELETE', `/api/v1/providers/${p.id}`, { token: admin })).status, 204);
  assert.ok((await configVersion()) > v2);
  assert.equal((await cp.api('GET', `/api/v1/providers/${p.id}`, { token: admin })).status, 404);
  assert.equal((await cp.api('DELETE', `/api/v1/providers/${p.id}`, { token: admin })).status, 404);
  assert.equal(await db.query(`SELECT count(*) FROM providers WHERE id = '${p.id}'`), '0');
  assert.equal(await auditRows('provider.delete', p.id), '1');
  await assertAuditIntact();
});

test('provider credentials never appear in a response, an audit row or the log, and are sealed at rest', async () => {
  const texts = [];
  const c = await cp.api('POST', '/api/v1/providers', {
    token: admin,
    body: { name: 'sealed', kind: 'anthropic', base_url: 'https://api.anthropic.com', credentials: { api_key: SECRET_1, organization: ORG_SECRET } },
  });
  assert.equal(c.status, 201, c.text);
  texts.push(c.text);
  const id = c.body.id;
  assert.equal(c.body.has_credentials, true);
  assert.deepEqual(c.body.credential_names, ['api_key', 'organization']);
  texts.push((await cp.api('GET', `/api/v1/providers/${id}`, { token: admin })).text);
  texts.push((await cp.api('GET', '/api/v1/providers', { token: admin })).text);

  // at rest: nonce(12) || ciphertext of the JSON object || tag(16), not the plaintext
  const plain = JSON.stringify({ api_key: SECRET_1, organization: ORG_SECRET });
  const hex = await db.query(`SELECT encode(credentials_enc, 'hex') FROM providers WHERE id = '${id}'`);
  assert.ok(hex.length > 0);
  assert.equal(hex.length / 2, 12 + Buffer.byteLength(plain) + 16);
  assert.ok(!hex.includes(Buffer.from(SECRET_1).toString('hex')));
  assert.ok(!hex.includes(Buffer.from(ORG_SECRET).toString('hex')));
  assert.equal(await db.query(`SELECT position(convert_to('${SECRET_1}', 'UTF8') IN credentials_enc) FROM providers WHERE id = '${id}'`), '0');
  assert.equal(await db.query(`SELECT count(*) FROM providers WHERE credentials_enc::text LIKE '%${SECRET_1}%' OR settings::text LIKE '%sk-live%' OR headers::text LIKE '%sk-live%'`), '0');

  // replacing: new names, new ciphertext; the old one is gone
  const u = await cp.api('PATCH', `/api/v1/providers/${id}`, { token: admin, body: { credentials: { api_key: SECRET_2 } } });
  assert.equal(u.status, 200, u.text);
  texts.push(u.text);
  assert.deepEqual(u.body.credential_names, ['api_key']);
  const hex2 = await db.query(`SELECT encode(credentials_enc, 'hex') FROM providers WHERE id = '${id}'`);
  assert.notEqual(hex2, hex);
  assert.equal(hex2.length / 2, 12 + Buffer.byteLength(JSON.stringify({ api_key: SECRET_2 })) + 16);
  texts.push((await cp.api('GET', `/api/v1/providers/${id}`, { token: admin })).text);

  // sealing twice gives different ciphertexts (a fresh nonce each time)
  const again = await cp.api('PATCH', `/api/v1/providers/${id}`, { token: admin, body: { credentials: { api_key: SECRET_2 } } });
  texts.push(again.text);
  assert.notEqual(await db.query(`SELECT encode(credentials_enc, 'hex') FROM providers WHERE id = '${id}'`), hex2);

  // refusals do not echo a value either
  texts.push((await refused('PATCH', `/api/v1/providers/${id}`, { body: { credentials: { api_key: `${SECRET_1}\u0001` } } }, 422, 'control char in a credential')).text);
  texts.push((await refused('PATCH', `/api/v1/providers/${id}`, { body: { credentials: { api_key: SECRET_1, n: 5 } } }, 400, 'number credential')).text);
  texts.push((await refused('POST', '/api/v1/providers', { body: { name: 'sealed', kind: 'openai', base_url: 'https://x.test', credentials: { api_key: SECRET_1 } } }, 409, 'duplicate name with credentials')).text);
  texts.push((await refused('POST', '/api/v1/providers', { body: { name: 'x-url', kind: 'openai', base_url: `https://user:${SECRET_1}@x.test/v1` } }, 422, 'password in base_url')).text);

  // clearing
  const cl = await cp.api('PATCH', `/api/v1/providers/${id}`, { token: admin, body: { credentials: null } });
  assert.equal(cl.status, 200, cl.text);
  texts.push(cl.text);
  assert.equal(cl.body.has_credentials, false);
  assert.deepEqual(cl.body.credential_names, []);
  assert.equal(await db.query(`SELECT credentials_enc IS NULL FROM providers WHERE id = '${id}'`), 't');

  for (const t of texts) {
    for (const s of [SECRET_1, SECRET_2, ORG_SECRET]) assert.ok(!t.includes(s), `a response shows a credential: ${t}`);
  }
  const audit = await db.query(`SELECT string_agg(concat_ws(' ', action, target_id, before::text, after::text), E'\\n') FROM audit_log`);
  assert.match(audit, /provider\.create/);
  assert.match(audit, /"has_credentials": true/);
  assert.match(audit, /"credential_names": \["api_key", "organization"\]/);
  for (const s of [SECRET_1, SECRET_2, ORG_SECRET]) {
    assert.ok(!audit.includes(s), 'an audit row shows a credential');
    assert.ok(!cp.logs().includes(s), 'the log shows a credential');
  }
  const listed = await cp.api('GET', '/api/v1/audit-log?action=provider.update', { token: admin });
  assert.equal(listed.status, 200);
  assert.ok(listed.body.data.length >= 3);
  for (const s of [SECRET_1, SECRET_2, ORG_SECRET]) assert.ok(!listed.text.includes(s));
  await assertAuditIntact();
});

test('a sealed credential changed by one byte in the table is detected, not shown', async () => {
  const p = await makeProvider({ credentials: { api_key: SECRET_1 } });
  assert.deepEqual(p.credential_names, ['api_key']);
  // flip the last byte (the GCM tag) straight in the table
  await db.query(`UPDATE providers SET credentials_enc = set_byte(credentials_enc, length(credentials_enc) - 1,
    get_byte(credentials_enc, length(credentials_enc) - 1) # 1) WHERE id = '${p.id}'`);
  const g = await cp.api('GET', `/api/v1/providers/${p.id}`, { token: admin });
  assert.equal(g.status, 200);
  assert.equal(g.body.has_credentials, true);
  assert.equal(g.body.credential_names, null, 'names cannot be read from a tampered row');
  assert.ok(!g.text.includes(SECRET_1));
  assert.match(cp.logs(), new RegExp(`event=credentials_unreadable provider_id=${p.id}`));
  // sealing anew repairs it
  const u = await cp.api('PATCH', `/api/v1/providers/${p.id}`, { token: admin, body: { credentials: { api_key: SECRET_2 } } });
  assert.deepEqual(u.body.credential_names, ['api_key']);
  assert.equal((await cp.api('DELETE', `/api/v1/providers/${p.id}`, { token: admin })).status, 204);
});

test('without a master key a provider with credentials is refused with 422 and nothing is stored', async () => {
  const bare = await startControl({ env: { TOLLGATE_MASTER_KEY: '' } });
  try {
    const token = await bare.login();
    const before = bare.sql('SELECT count(*) FROM providers');
    const r = await bare.api('POST', '/api/v1/providers', {
      token, body: { name: 'nokey', kind: 'openai', base_url: 'https://api.openai.com/v1', credentials: { api_key: SECRET_1 } },
    });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.error.code, 'master_key_missing');
    assert.equal(r.body.error.field, 'credentials');
    assert.match(r.body.error.message, /TOLLGATE_MASTER_KEY/);
    assert.ok(!r.text.includes(SECRET_1));
    assert.equal(bare.sql('SELECT count(*) FROM providers'), before);
    // without credentials it works, and credentials cannot be added later either
    const ok = await bare.api('POST', '/api/v1/providers', {
      token, body: { name: 'nokey', kind: 'openai', base_url: 'http://vllm.internal:8000/v1' },
    });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.body.has_credentials, false);
    const p = await bare.api('PATCH', `/api/v1/providers/${ok.body.id}`, { token, body: { credentials: { api_key: SECRET_1 } } });
    assert.equal(p.status, 422);
    assert.equal(bare.sql(`SELECT credentials_enc IS NULL FROM providers WHERE id = '${ok.body.id}'`), 't');
    assert.ok(!bare.logs().includes(SECRET_1));
  } finally {
    const e = await bare.stop();
    assert.equal(e.code, 0);
  }
});

test('bad provider bodies are refused with the right status and change nothing', async () => {
  const base = { name: 'valid-name', kind: 'openai', base_url: 'https://api.example.com/v1' };
  const cases = [
    [400, 'malformed JSON', { raw: '{"name": "x",' }],
    [400, 'an array', { raw: '[]' }],
    [400, 'empty body', { raw: '' }],
    [400, 'unknown field', { body: { ...base, api_key: 'x' } }],
    [400, 'missing name', { body: { kind: 'openai', base_url: base.base_url } }],
    [400, 'missing base_url', { body: { name: 'n', kind: 'openai' } }],
    [400, 'name is a number', { body: { ...base, name: 5 } }],
    [400, 'NUL in name', { raw: '{"name":"a\\u0000b","kind":"openai","base_url":"https://x.test"}' }],
    [422, 'upper-case name', { body: { ...base, name: 'OpenAI' } }],
    [422, 'name starting with -', { body: { ...base, name: '-x' } }],
    [422, 'name of 64 bytes', { body: { ...base, name: 'a'.repeat(64) } }],
    [422, 'SQL in the name', { body: { ...base, name: "x'; DROP TABLE providers; --" } }],
    [422, 'emoji name', { body: { ...base, name: 'open🙂ai' } }],
    [422, 'unknown kind', { body: { ...base, kind: 'openai-compatible' } }],
    [400, 'kind is a number', { body: { ...base, kind: 1 } }],
    [422, 'ftp url', { body: { ...base, base_url: 'ftp://files.example.com' } }],
    [422, 'no scheme', { body: { ...base, base_url: 'api.example.com/v1' } }],
    [422, 'upper-case scheme', { body: { ...base, base_url: 'HTTPS://api.example.com' } }],
    [422, 'userinfo', { body: { ...base, base_url: 'https://user:pass@api.example.com/v1' } }],
    [422, 'user only', { body: { ...base, base_url: 'https://user@api.example.com' } }],
    [422, 'space in url', { body: { ...base, base_url: 'https://api.example.com/v 1' } }],
    [422, 'newline in url', { body: { ...base, base_url: 'https://api.example.com/\nHost: x' } }],
    [422, 'tab in url', { body: { ...base, base_url: 'https://api.example.com/\tx' } }],
    [422, 'no host', { body: { ...base, base_url: 'https:///v1' } }],
    [422, 'bad port', { body: { ...base, base_url: 'https://api.example.com:99999/v1' } }],
    [422, 'backslash', { body: { ...base, base_url: 'https://evil.test\\@api.example.com' } }],
    [422, 'non-ASCII host', { body: { ...base, base_url: 'https://exämple.com' } }],
    [422, 'url of 2049 bytes', { body: { ...base, base_url: `https://a.test/${'x'.repeat(2049 - 15)}` } }],
    [400, 'credentials as a string', { body: { ...base, credentials: 'sk-x' } }],
    [400, 'credential value as a number', { body: { ...base, credentials: { api_key: 12345 } } }],
    [400, 'credential value as an object', { body: { ...base, credentials: { api_key: { v: 'x' } } } }],
    [422, 'empty credentials', { body: { ...base, credentials: {} } }],
    [422, 'empty credential', { body: { ...base, credentials: { api_key: '' } } }],
    [422, 'credentials over 8 KiB', { body: { ...base, credentials: { api_key: 'k'.repeat(8200) } } }],
    [422, 'bad credential name', { body: { ...base, credentials: { 'api key': 'x' } } }],
    [400, 'headers as an array', { body: { ...base, headers: ['a'] } }],
    [400, 'header value as a number', { body: { ...base, headers: { 'x-a': 1 } } }],
    [422, 'Authorization header', { body: { ...base, headers: { Authorization: 'Bearer x' } } }],
    [422, 'authorization in lower case', { body: { ...base, headers: { authorization: 'Bearer x' } } }],
    [422, 'Host header', { body: { ...base, headers: { HOST: 'evil.test' } } }],
    [422, 'Content-Length header', { body: { ...base, headers: { 'Content-Length': '5' } } }],
    [422, 'Transfer-Encoding header', { body: { ...base, headers: { 'Transfer-Encoding': 'chunked' } } }],
    [422, 'Connection header', { body: { ...base, headers: { Connection: 'close' } } }],
    [422, 'Expect header', { body: { ...base, headers: { Expect: '100-continue' } } }],
    [422, 'Content-Type header', { body: { ...base, headers: { 'Content-Type': 'text/plain' } } }],
    [422, 'x-api-key header (a secret)', { body: { ...base, headers: { 'x-api-key': 'sk-x' } } }],
    [422, 'CRLF in a header value', { body: { ...base, headers: { 'x-a': 'v\r\nX-Injected: 1' } } }],
    [422, 'LF in a header value', { body: { ...base, headers: { 'x-a': 'v\nw' } } }],
    [422, 'space in a header name', { body: { ...base, headers: { 'x a': 'v' } } }],
    [422, 'colon in a header name', { body: { ...base, headers: { 'x:a': 'v' } } }],
    [422, 'the same header twice', { body: { ...base, headers: { 'X-A': '1', 'x-a': '2' } } }],
    [422, 'X-Amz-Date header (the AWS signature\'s)', { body: { ...base, headers: { 'X-Amz-Date': '20250101T000000Z' } } }],
    [422, 'x-amz-security-token header', { body: { ...base, headers: { 'x-amz-security-token': 't' } } }],
    [422, 'x-amz-content-sha256 header', { body: { ...base, headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } } }],
    [422, 'header value over 4096 bytes', { body: { ...base, headers: { 'x-a': 'v'.repeat(4097) } } }],
    [400, 'settings as a string', { body: { ...base, settings: 'x' } }],
    [400, 'settings as an array', { body: { ...base, settings: [] } }],
    [422, 'settings nested 40 deep', { body: { ...base, settings: nest(40) } }],
    [422, 'settings over 64 KiB', { body: { ...base, settings: { blob: 'x'.repeat(70000) } } }],
  ];
  for (const [status, what, opts] of cases) await refused('POST', '/api/v1/providers', opts, status, what);

  // what each kind needs (the data plane's contract, common/tg_snap.c); the field is named
  const aws = { aws_access_key_id: 'AKIDEXAMPLE', aws_secret_access_key: 'wJalr/EXAMPLEKEY+x' };
  const bedrock = { ...base, kind: 'bedrock', base_url: 'https://bedrock-runtime.us-east-1.amazonaws.com', settings: { region: 'us-east-1' }, credentials: aws };
  const kindCases = [
    [422, 'settings.region', 'bedrock without settings.region', { ...bedrock, settings: {} }],
    [422, 'settings.region', 'bedrock without settings', { ...bedrock, settings: undefined }],
    [422, 'settings.region', 'bedrock with a null region', { ...bedrock, settings: { region: null } }],
    [400, 'settings.region', 'bedrock region as a number', { ...bedrock, settings: { region: 1 } }],
    [422, 'settings.region', 'bedrock region in upper case', { ...bedrock, settings: { region: 'US-EAST-1' } }],
    [422, 'settings.region', 'bedrock region with a space', { ...bedrock, settings: { region: 'us east' } }],
    [422, 'settings.region', 'empty bedrock region', { ...bedrock, settings: { region: '' } }],
    [422, 'settings.region', 'bedrock region of 65 bytes', { ...bedrock, settings: { region: 'a'.repeat(65) } }],
    [422, 'credentials.aws_access_key_id', 'bedrock without credentials', { ...bedrock, credentials: undefined }],
    [422, 'credentials.aws_access_key_id', 'bedrock with only an api_key', { ...bedrock, credentials: { api_key: 'x' } }],
    [422, 'credentials.aws_secret_access_key', 'bedrock without the secret key', { ...bedrock, credentials: { aws_access_key_id: 'AKID' } }],
    [422, 'credentials.aws_secret_access_key', 'aws secret with a newline', { ...bedrock, credentials: { ...aws, aws_secret_access_key: 'a\nb' } }],
    [422, 'credentials.aws_access_key_id', 'aws key id of 257 bytes', { ...bedrock, credentials: { ...aws, aws_access_key_id: 'A'.repeat(257) } }],
    [422, 'credentials.aws_session_token', 'aws session token with non-ASCII', { ...bedrock, credentials: { ...aws, aws_session_token: 'tök' } }],
    [400, 'settings.api_version', 'api_version as a number', { ...base, kind: 'azure', settings: { api_version: 20241021 } }],
    [422, 'settings.api_version', 'empty api_version', { ...base, kind: 'azure', settings: { api_version: '' } }],
    [422, 'settings.api_version', 'api_version of 65 bytes', { ...base, kind: 'anthropic', settings: { api_version: '2'.repeat(65) } }],
    [422, 'settings.api_version', 'api_version with a line break', { ...base, kind: 'azure', settings: { api_version: '2024\r\nX: 1' } }],
    [422, 'settings.api_version', 'api_version with non-ASCII', { ...base, settings: { api_version: 'v1–beta' } }],
    [422, 'credentials.api_key', 'api_key with a line break', { ...base, kind: 'gemini', credentials: { api_key: 'k\nX-Injected: 1' } }],
  ];
  for (const [status, field, what, body] of kindCases) {
    const r = await refused('POST', '/api/v1/providers', { body }, status, what);
    assert.equal(r.body.error.field, field, `${what}: ${r.text}`);
    assert.ok(!r.text.includes(aws.aws_secret_access_key), 'the refusal quotes a credential');
  }

  const p = await makeProvider({ name: 'target-of-patches' });
  await refused('POST', '/api/v1/providers', { body: { ...base, name: 'target-of-patches' } }, 409, 'duplicate name');
  const patches = [
    [400, 'empty patch', { body: {} }],
    [400, 'null name', { body: { name: null } }],
    [400, 'null headers', { body: { headers: null } }],
    [400, 'unknown field', { body: { credential: { api_key: 'x' } } }],
    [422, 'bad url', { body: { base_url: 'https://u:p@x.test' } }],
    [422, 'bad name', { body: { name: 'A B' } }],
    [422, 'bad header', { body: { headers: { Authorization: 'x' } } }],
    [400, 'malformed JSON', { raw: '{"name":' }],
  ];
  for (const [status, what, opts] of patches) await refused('PATCH', `/api/v1/providers/${p.id}`, opts, status, `patch: ${what}`);
  await makeProvider({ name: 'taken-name' });
  await refused('PATCH', `/api/v1/providers/${p.id}`, { body: { name: 'taken-name' } }, 409, 'rename onto a taken name');
  await refused('PATCH', `/api/v1/providers/${randomUUID()}`, { body: { name: 'whatever' } }, 404, 'patch an unknown id');
  await refused('PATCH', '/api/v1/providers/not-a-uuid', { body: { name: 'whatever' } }, 404, 'patch a malformed id');
  await refused('GET', `/api/v1/providers/${randomUUID()}`, {}, 404, 'get an unknown id');
  await refused('GET', "/api/v1/providers/'%20OR%201=1--", {}, 404, 'get with SQL in the id');
  await refused('DELETE', `/api/v1/providers/${randomUUID()}`, {}, 404, 'delete an unknown id');
  await refused('GET', '/api/v1/providers?cursor=nope', {}, 400, 'bad cursor');
  await refused('GET', '/api/v1/providers?limit=0', {}, 400, 'bad limit');

  // what is allowed: IPv6 literal with a port, unicode in header values and settings
  const ok = await cp.api('POST', '/api/v1/providers', {
    token: admin,
    body: { name: 'v6.local_1', kind: 'bedrock', base_url: 'http://[::1]:8080', headers: { 'x-note': 'שלום e\u0301 🙂' }, settings: { note: "'; DROP TABLE providers; --", region: 'eu-west-1' }, credentials: aws },
  });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.headers['x-note'], 'שלום e\u0301 🙂');
  assert.equal(ok.body.settings.note, "'; DROP TABLE providers; --");
  assert.equal(await db.query(`SELECT settings->>'note' FROM providers WHERE id = '${ok.body.id}'`), "'; DROP TABLE providers; --");
  await assertAuditIntact();
});

test('what a kind needs is checked on the provider an update leaves behind', async () => {
  const aws = { aws_access_key_id: 'AKIDPATCH', aws_secret_access_key: 'patch/SECRET+key' };
  const p = await makeProvider({ name: 'becomes-bedrock', credentials: { api_key: SECRET_1 } });
  const id = p.id;
  const patch = (body) => cp.api('PATCH', `/api/v1/providers/${id}`, { token: admin, body });
  const refuse = async (body, status, field, what) => {
    const r = await refused('PATCH', `/api/v1/providers/${id}`, { body }, status, what);
    assert.equal(r.body.error.field, field, `${what}: ${r.text}`);
  };
  await refuse({ kind: 'bedrock' }, 422, 'settings.region', 'kind bedrock without a region');
  await refuse({ kind: 'bedrock', settings: { region: 'us-west-2' } }, 422, 'credentials.aws_access_key_id', 'kind bedrock keeping an api_key only');
  let r = await patch({ kind: 'bedrock', settings: { region: 'us-west-2' }, credentials: aws });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.kind, 'bedrock');
  assert.deepEqual(r.body.credential_names, ['aws_access_key_id', 'aws_secret_access_key']);
  await refuse({ settings: {} }, 422, 'settings.region', 'settings that drop the region');
  await refuse({ settings: { region: 'Mars' } }, 422, 'settings.region', 'a bad region');
  await refuse({ credentials: { aws_access_key_id: 'AKID' } }, 422, 'credentials.aws_secret_access_key', 'credentials without the secret');
  await refuse({ credentials: null }, 422, 'credentials.aws_access_key_id', 'removing the credentials');
  // the stored credentials are opened and checked when only the settings change
  r = await patch({ settings: { region: 'eu-central-1', api_version: 'bedrock-2023-05-31' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.settings, { region: 'eu-central-1', api_version: 'bedrock-2023-05-31' });
  // a row that is wrong already (forced in by hand) can still be renamed; a change of kind,
  // settings or credentials must leave it right
  await db.query(`UPDATE providers SET settings = '{}' WHERE id = '${id}'`);
  r = await patch({ name: 'bedrock-renamed', base_url: 'https://bedrock-runtime.eu-central-1.amazonaws.com' });
  assert.equal(r.status, 200, r.text);
  await refuse({ credentials: aws }, 422, 'settings.region', 'new credentials on a row without a region');
  r = await patch({ settings: { region: 'eu-central-1' } });
  assert.equal(r.status, 200, r.text);
  // stored credentials that cannot be opened cannot satisfy bedrock
  await db.query(`UPDATE providers SET credentials_enc = set_byte(credentials_enc, 0, get_byte(credentials_enc, 0) # 1) WHERE id = '${id}'`);
  await refuse({ settings: { region: 'us-east-1' } }, 422, 'credentials', 'unreadable stored credentials');
  r = await patch({ settings: { region: 'us-east-1' }, credentials: aws });
  assert.equal(r.status, 200, r.text);
  // other kinds need none of it; their api_version is still checked
  r = await patch({ kind: 'anthropic', settings: { api_version: '2023-06-01' }, credentials: { api_key: SECRET_2 } });
  assert.equal(r.status, 200, r.text);
  await refuse({ settings: { api_version: 2023 } }, 400, 'settings.api_version', 'a number api_version');
  await refuse({ kind: 'azure', settings: { api_version: '' } }, 422, 'settings.api_version', 'an empty api_version');
  assert.equal((await cp.api('DELETE', `/api/v1/providers/${id}`, { token: admin })).status, 204);
  for (const s of [SECRET_1, SECRET_2, aws.aws_secret_access_key]) assert.ok(!cp.logs().includes(s), 'the log shows a credential');
  await assertAuditIntact();
});

test('only platform admins may read or change providers; every tenant role gets 403 whether or not the provider exists', async () => {
  const p = await makeProvider({ credentials: { api_key: SECRET_1 } });
  for (const [role, u] of Object.entries(users)) {
    const s = await state();
    const list = await cp.api('GET', '/api/v1/providers', { token: u.token });
    assert.equal(list.status, 403, `${role} list`);
    const real = await cp.api('GET', `/api/v1/providers/${p.id}`, { token: u.token });
    const fake = await cp.api('GET', `/api/v1/providers/${randomUUID()}`, { token: u.token });
    assert.equal(real.status, 403, `${role} get`);
    assert.equal(real.text, fake.text, `${role} can tell a real provider from a random id`);
    assert.ok(!real.text.includes('127.0.0.1'));
    const body = { name: `by-${role}`, kind: 'openai', base_url: 'http://169.254.169.254/latest' };
    assert.equal((await cp.api('POST', '/api/v1/providers', { token: u.token, body })).status, 403, `${role} create`);
    const patch = await cp.api('PATCH', `/api/v1/providers/${p.id}`, { token: u.token, body: { base_url: 'http://169.254.169.254' } });
    assert.equal(patch.status, 403, `${role} update`);
    const patchFake = await cp.api('PATCH', `/api/v1/providers/${randomUUID()}`, { token: u.token, body: { base_url: 'http://169.254.169.254' } });
    assert.equal(patchFake.text, patch.text);
    assert.equal((await cp.api('DELETE', `/api/v1/providers/${p.id}`, { token: u.token })).status, 403, `${role} delete`);
    assert.equal(await state(), s, `${role} changed something`);
  }
  assert.equal((await cp.api('GET', '/api/v1/providers')).status, 401);
  assert.equal((await cp.api('GET', `/api/v1/providers/${p.id}`, { token: 'garbage' })).status, 401);
  assert.equal((await cp.api('GET', `/api/v1/providers/${p.id}`, { token: admin })).status, 200);
});

test('a route keeps its provider: deleting it is 409 naming the route; the provider\'s prices go with it', async () => {
  const p = await makeProvider();
  const rt = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'uses-prov', targets: [{ provider_id: p.id, model: 'm' }] } });
  assert.equal(rt.status, 201, rt.text);
  const pr = await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: p.id, model: 'm', input_per_mtok: 1.25, output_per_mtok: 10 } });
  assert.equal(pr.status, 201, pr.text);
  const r = await refused('DELETE', `/api/v1/providers/${p.id}`, {}, 409, 'delete a provider in use');
  assert.match(r.body.error.message, /"uses-prov"/);
  assert.equal((await cp.api('DELETE', `/api/v1/routes/${rt.body.id}`, { token: admin })).status, 204);
  assert.equal((await cp.api('DELETE', `/api/v1/providers/${p.id}`, { token: admin })).status, 204);
  assert.equal(await db.query(`SELECT count(*) FROM prices WHERE provider_id = '${p.id}'`), '0');
  const before = JSON.parse(await db.query(`SELECT before FROM audit_log WHERE action = 'provider.delete' AND target_id = '${p.id}'`));
  assert.deepEqual(before.prices, [{ model: 'm', input_per_mtok: '1.25', cached_input_per_mtok: null, output_per_mtok: '10' }]);
});

test('routes: create, read with targets in fallback order, list, replace targets, delete', async () => {
  const a = await makeProvider({ name: 'route-a' });
  const b = await makeProvider({ name: 'route-b' });
  const v0 = await configVersion();
  const c = await cp.api('POST', '/api/v1/routes', {
    token: admin,
    body: {
      alias: 'gpt-4o',
      targets: [{ provider_id: b.id, model: 'gpt-4o-2024-08-06', weight: 3 }, { provider_id: a.id, model: 'gpt-4o' }],
      retry: { max_attempts: 3, on_status: [503, 429, 500, 429], backoff_ms: 250 },
      timeout_ms: 120000,
    },
  });
  assert.equal(c.status, 201, c.text);
  const rt = c.body;
  assert.ok((await configVersion()) > v0);
  assert.equal(rt.alias, 'gpt-4o');
  assert.equal(rt.strategy, 'weighted');
  // no admin price and no catalog entry for these models: shown as unpriced
  assert.deepEqual(rt.targets, [
    { provider_id: b.id, provider: 'route-b', model: 'gpt-4o-2024-08-06', weight: 3, unpriced: true },
    { provider_id: a.id, provider: 'route-a', model: 'gpt-4o', weight: 1, unpriced: true },
  ]);
  assert.deepEqual(rt.retry, { max_attempts: 3, on_status: [429, 500, 503], backoff_ms: 250 });
  assert.equal(rt.connect_timeout_ms, 10000);
  assert.equal(rt.timeout_ms, 120000);
  assert.equal(await db.query(`SELECT string_agg(position || ':' || model, ',' ORDER BY position) FROM route_targets WHERE route_id = '${rt.id}'`), '0:gpt-4o-2024-08-06,1:gpt-4o');

  const g = await cp.api('GET', `/api/v1/routes/${rt.id}`, { token: admin });
  assert.equal(g.status, 200);
  assert.deepEqual(g.body, rt);

  const second = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'claude', strategy: 'lowest_latency', targets: [{ provider_id: a.id, model: 'claude-3-5-sonnet' }] } });
  assert.equal(second.status, 201, second.text);
  assert.equal(second.body.strategy, 'lowest_latency');
  assert.deepEqual(second.body.retry, {});
  const byAlias = await cp.api('GET', '/api/v1/routes?alias=gpt-4o', { token: admin });
  assert.deepEqual(byAlias.body.data, [rt]);
  const seen = [];
  let cursor = null;
  for (let i = 0; i < 10; i++) {
    const page = await cp.api('GET', `/api/v1/routes?limit=1${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(page.status, 200);
    seen.push(...page.body.data.map((x) => x.id));
    cursor = page.body.next_cursor;
    if (!cursor) break;
  }
  assert.equal(new Set(seen).size, seen.length);
  assert.ok(seen.includes(rt.id) && seen.includes(second.body.id));
  assert.equal(seen.length, Number(await db.query('SELECT count(*) FROM routes')));

  const v1 = await configVersion();
  const u = await cp.api('PATCH', `/api/v1/routes/${rt.id}`, {
    token: admin, body: { targets: [{ provider_id: a.id, model: 'only-one', weight: 0 }, { provider_id: b.id, model: 'x', weight: 2 }], strategy: 'least_busy' },
  });
  assert.equal(u.status, 200, u.text);
  assert.ok((await configVersion()) > v1);
  assert.equal(u.body.strategy, 'least_busy');
  assert.equal(u.body.alias, 'gpt-4o', 'fields not given are kept');
  assert.deepEqual(u.body.retry, rt.retry);
  assert.deepEqual(u.body.targets.map((t) => [t.provider, t.model, t.weight]), [['route-a', 'only-one', 0], ['route-b', 'x', 2]]);
  assert.equal(await db.query(`SELECT string_agg(position || ':' || model, ',' ORDER BY position) FROM route_targets WHERE route_id = '${rt.id}'`), '0:only-one,1:x');
  const rn = await cp.api('PATCH', `/api/v1/routes/${rt.id}`, { token: admin, body: { alias: 'gpt-4o-renamed', retry: {} } });
  assert.equal(rn.status, 200);
  assert.equal(rn.body.alias, 'gpt-4o-renamed');
  assert.deepEqual(rn.body.retry, {});
  assert.equal(rn.body.targets.length, 2, 'targets not given are kept');

  assert.equal((await cp.api('DELETE', `/api/v1/routes/${rt.id}`, { token: admin })).status, 204);
  assert.equal((await cp.api('GET', `/api/v1/routes/${rt.id}`, { token: admin })).status, 404);
  assert.equal(await db.query(`SELECT count(*) FROM route_targets WHERE route_id = '${rt.id}'`), '0');
  for (const action of ['route.create', 'route.delete']) assert.equal(await auditRows(action, rt.id), '1');
  assert.equal(await auditRows('route.update', rt.id), '2');
  const upd = JSON.parse(await db.query(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'route.update' AND target_id = '${rt.id}' ORDER BY id LIMIT 1`));
  assert.equal(upd.b.targets.length, 2);
  assert.equal(upd.b.targets[0].model, 'gpt-4o-2024-08-06');
  assert.equal(upd.a.targets[0].model, 'only-one');
  await assertAuditIntact();
});

test('bad route bodies are refused with the right status and change nothing; unicode and SQL text are stored literally', async () => {
  const p = await makeProvider({ name: 'route-validation' });
  const t = [{ provider_id: p.id, model: 'm' }];
  const cases = [
    [400, 'malformed JSON', { raw: '{"alias":"x","targets":[' }],
    [400, 'unknown field', { body: { alias: 'x', targets: t, fallback: true } }],
    [400, 'missing alias', { body: { targets: t } }],
    [400, 'missing targets', { body: { alias: 'x' } }],
    [400, 'alias is a number', { body: { alias: 7, targets: t } }],
    [422, 'empty alias', { body: { alias: '', targets: t } }],
    [422, 'alias of 257 bytes', { body: { alias: 'é'.repeat(128) + 'x', targets: t } }],
    [422, 'control char in alias', { body: { alias: 'a\u0007b', targets: t } }],
    [400, 'NUL in alias', { raw: `{"alias":"a\\u0000b","targets":${JSON.stringify(t)}}` }],
    [422, 'unknown strategy', { body: { alias: 'x', strategy: 'random', targets: t } }],
    [400, 'targets as an object', { body: { alias: 'x', targets: t[0] } }],
    [422, 'no targets', { body: { alias: 'x', targets: [] } }],
    [422, '65 targets', { body: { alias: 'x', targets: Array(65).fill(t[0]) } }],
    [400, 'target as a string', { body: { alias: 'x', targets: ['m'] } }],
    [400, 'unknown target field', { body: { alias: 'x', targets: [{ ...t[0], priority: 1 }] } }],
    [400, 'target without provider', { body: { alias: 'x', targets: [{ model: 'm' }] } }],
    [400, 'target without model', { body: { alias: 'x', targets: [{ provider_id: p.id }] } }],
    [422, 'provider id not a UUID', { body: { alias: 'x', targets: [{ provider_id: 'route-validation', model: 'm' }] } }],
    [422, 'unknown provider', { body: { alias: 'x', targets: [t[0], { provider_id: randomUUID(), model: 'm' }] } }],
    [422, 'empty model', { body: { alias: 'x', targets: [{ provider_id: p.id, model: '' }] } }],
    [422, 'model of 257 bytes', { body: { alias: 'x', targets: [{ provider_id: p.id, model: 'm'.repeat(257) }] } }],
    [422, 'newline in model', { body: { alias: 'x', targets: [{ provider_id: p.id, model: 'a\nb' }] } }],
    [422, 'negative weight', { body: { alias: 'x', targets: [{ ...t[0], weight: -1 }] } }],
    [422, 'weight over 1e6', { body: { alias: 'x', targets: [{ ...t[0], weight: 1000001 }] } }],
    [400, 'fractional weight', { body: { alias: 'x', targets: [{ ...t[0], weight: 1.5 }] } }],
    [400, 'weight as a string', { body: { alias: 'x', targets: [{ ...t[0], weight: '1' }] } }],
    [422, 'all weights zero', { body: { alias: 'x', targets: [{ ...t[0], weight: 0 }, { ...t[0], weight: 0 }] } }],
    [400, 'retry as an array', { body: { alias: 'x', targets: t, retry: [] } }],
    [400, 'unknown retry field', { body: { alias: 'x', targets: t, retry: { jitter: true } } }],
    [422, 'max_attempts 0', { body: { alias: 'x', targets: t, retry: { max_attempts: 0 } } }],
    [422, 'max_attempts 11', { body: { alias: 'x', targets: t, retry: { max_attempts: 11 } } }],
    [422, 'on_status 200', { body: { alias: 'x', targets: t, retry: { on_status: [500, 200] } } }],
    [400, 'on_status as strings', { body: { alias: 'x', targets: t, retry: { on_status: ['500'] } } }],
    [400, 'on_status as a number', { body: { alias: 'x', targets: t, retry: { on_status: 500 } } }],
    [422, 'backoff over 60 s', { body: { alias: 'x', targets: t, retry: { backoff_ms: 60001 } } }],
    [422, 'connect timeout 0', { body: { alias: 'x', targets: t, connect_timeout_ms: 0 } }],
    [422, 'timeout over an hour', { body: { alias: 'x', targets: t, timeout_ms: 3600001 } }],
    [422, 'connect timeout above timeout', { body: { alias: 'x', targets: t, connect_timeout_ms: 5000, timeout_ms: 1000 } }],
    [422, '33 retry statuses', { body: { alias: 'x', targets: t, retry: { on_status: Array.from({ length: 33 }, (_, i) => 500 + i) } } }],
    [400, 'first byte timeout as a string', { body: { alias: 'x', targets: t, first_byte_timeout_ms: '100' } }],
    [400, 'fractional first byte timeout', { body: { alias: 'x', targets: t, first_byte_timeout_ms: 1.5 } }],
    [422, 'negative first byte timeout', { body: { alias: 'x', targets: t, first_byte_timeout_ms: -1 } }],
    [422, 'first byte timeout over an hour', { body: { alias: 'x', targets: t, first_byte_timeout_ms: 3600001, timeout_ms: 3600000 } }],
    [422, 'first byte timeout above timeout', { body: { alias: 'x', targets: t, first_byte_timeout_ms: 5000, timeout_ms: 1000 } }],
    [400, 'idle timeout as a boolean', { body: { alias: 'x', targets: t, idle_timeout_ms: true } }],
    [422, 'negative idle timeout', { body: { alias: 'x', targets: t, idle_timeout_ms: -5 } }],
    [422, 'idle timeout above the default timeout', { body: { alias: 'x', targets: t, idle_timeout_ms: 600001 } }],
    [400, 'cache ttl as a string', { body: { alias: 'x', targets: t, cache_ttl_s: '60' } }],
    [422, 'negative cache ttl', { body: { alias: 'x', targets: t, cache_ttl_s: -1 } }],
    [422, 'cache ttl over 31 days', { body: { alias: 'x', targets: t, cache_ttl_s: 2678401 } }],
  ];
  for (const [status, what, opts] of cases) await refused('POST', '/api/v1/routes', opts, status, what);
  const unknown = await refused('POST', '/api/v1/routes', { body: { alias: 'x', targets: [t[0], { provider_id: randomUUID(), model: 'm' }] } }, 422, 'unknown provider');
  assert.equal(unknown.body.error.field, 'targets[1].provider_id');

  const odd = ["'; DROP TABLE routes; --", 'gpt-4o 🚀', 'مرحبا-model', 'e\u0301\u0301-combining', 'a"quote\\back'];
  for (const alias of odd) {
    const r = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias, targets: [{ provider_id: p.id, model: `${alias}/upstream` }] } });
    assert.equal(r.status, 201, `${alias}: ${r.text}`);
    assert.equal(r.body.alias, alias);
    assert.equal(r.body.targets[0].model, `${alias}/upstream`);
    const g = await cp.api('GET', `/api/v1/routes?alias=${encodeURIComponent(alias)}`, { token: admin });
    assert.equal(g.body.data.length, 1, alias);
    assert.equal(g.body.data[0].id, r.body.id);
  }
  assert.equal(await db.query("SELECT alias FROM routes WHERE alias LIKE '%DROP%'"), "'; DROP TABLE routes; --");
  assert.equal(await db.query("SELECT to_regclass('routes') IS NOT NULL"), 't');
  await refused('POST', '/api/v1/routes', { body: { alias: "'; DROP TABLE routes; --", targets: t } }, 409, 'duplicate alias');

  const rt = (await cp.api('GET', '/api/v1/routes?alias=gpt-4o%20%F0%9F%9A%80', { token: admin })).body.data[0];
  assert.ok(rt);
  const patches = [
    [400, 'empty patch', { body: {} }],
    [400, 'null targets', { body: { targets: null } }],
    [400, 'unknown field', { body: { name: 'x' } }],
    [422, 'unknown provider: the old targets stay', { body: { targets: [{ provider_id: randomUUID(), model: 'm' }] } }],
    [422, 'connect timeout above the stored timeout', { body: { connect_timeout_ms: 3600000 } }],
    [422, 'zero total weight', { body: { targets: [{ ...t[0], weight: 0 }] } }],
  ];
  for (const [status, what, opts] of patches) await refused('PATCH', `/api/v1/routes/${rt.id}`, opts, status, `patch: ${what}`);
  await refused('PATCH', `/api/v1/routes/${rt.id}`, { body: { alias: "'; DROP TABLE routes; --" } }, 409, 'rename onto a taken alias');
  await refused('PATCH', `/api/v1/routes/${randomUUID()}`, { body: { strategy: 'weighted' } }, 404, 'patch an unknown route');
  await refused('DELETE', `/api/v1/routes/${randomUUID()}`, {}, 404, 'delete an unknown route');
  await refused('GET', '/api/v1/routes/not-a-uuid', {}, 404, 'get a malformed id');
  await refused('GET', '/api/v1/routes?cursor=zzz', {}, 400, 'bad cursor');
  await assertAuditIntact();
});

test('routes: first-byte and idle timeouts and the cache ttl are stored, returned and checked against timeout_ms', async () => {
  const p = await makeProvider({ name: 'route-timeouts' });
  const t = [{ provider_id: p.id, model: 'm' }];
  const c = await cp.api('POST', '/api/v1/routes', {
    token: admin,
    body: { alias: 'timeouts', targets: t, timeout_ms: 60000, first_byte_timeout_ms: 30000, idle_timeout_ms: 60000, cache_ttl_s: 2678400,
      retry: { on_status: Array.from({ length: 32 }, (_, i) => 599 - i) } },
  });
  assert.equal(c.status, 201, c.text);
  const rt = c.body;
  assert.equal(rt.first_byte_timeout_ms, 30000);
  assert.equal(rt.idle_timeout_ms, 60000);
  assert.equal(rt.cache_ttl_s, 2678400);
  assert.equal(rt.retry.on_status.length, 32);
  assert.deepEqual((await cp.api('GET', `/api/v1/routes/${rt.id}`, { token: admin })).body, rt);
  assert.equal(await db.query(`SELECT concat_ws(' ', first_byte_timeout_ms, idle_timeout_ms, cache_ttl_s) FROM routes WHERE id = '${rt.id}'`), '30000 60000 2678400');
  const d = await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'timeouts-default', targets: t } });
  assert.equal(d.status, 201, d.text);
  assert.deepEqual([d.body.first_byte_timeout_ms, d.body.idle_timeout_ms, d.body.cache_ttl_s], [0, 0, 0], 'none, none, cache off');

  // checked on the route as a patch leaves it
  const refuse = async (body, status, field, what) => {
    const r = await refused('PATCH', `/api/v1/routes/${rt.id}`, { body }, status, what);
    assert.equal(r.body.error.field, field, `${what}: ${r.text}`);
  };
  await refuse({ timeout_ms: 20000 }, 422, 'first_byte_timeout_ms', 'timeout under the stored first byte timeout');
  await refuse({ first_byte_timeout_ms: 60001 }, 422, 'first_byte_timeout_ms', 'first byte timeout above the stored timeout');
  await refuse({ idle_timeout_ms: 60001 }, 422, 'idle_timeout_ms', 'idle timeout above the stored timeout');
  await refuse({ cache_ttl_s: null }, 400, 'cache_ttl_s', 'null cache ttl');
  await refuse({ idle_timeout_ms: 3600001 }, 422, 'idle_timeout_ms', 'idle timeout over an hour');
  let u = await cp.api('PATCH', `/api/v1/routes/${rt.id}`, { token: admin, body: { timeout_ms: 20000, first_byte_timeout_ms: 0, idle_timeout_ms: 20000 } });
  assert.equal(u.status, 200, u.text);
  assert.deepEqual([u.body.timeout_ms, u.body.first_byte_timeout_ms, u.body.idle_timeout_ms, u.body.cache_ttl_s], [20000, 0, 20000, 2678400]);
  u = await cp.api('PATCH', `/api/v1/routes/${rt.id}`, { token: admin, body: { cache_ttl_s: 0 } });
  assert.equal(u.status, 200, u.text);
  assert.equal(u.body.cache_ttl_s, 0);
  const audit = JSON.parse(await db.query(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'route.update' AND target_id = '${rt.id}' ORDER BY id DESC LIMIT 1`));
  assert.equal(audit.b.cache_ttl_s, 2678400);
  assert.equal(audit.a.cache_ttl_s, 0);
  for (const r of [rt, d.body]) assert.equal((await cp.api('DELETE', `/api/v1/routes/${r.id}`, { token: admin })).status, 204);
});

test('every signed-in user reads routes and prices; only platform admins change them', async () => {
  const p = await makeProvider({ name: 'shared-prov' });
  const created = (await cp.api('POST', '/api/v1/routes', { token: admin, body: { alias: 'shared', targets: [{ provider_id: p.id, model: 'm' }] } })).body;
  assert.equal(created.targets[0].unpriced, true, 'no price yet');
  assert.equal((await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: p.id, model: 'm', input_per_mtok: 1, output_per_mtok: 2 } })).status, 201);
  // the admin's price makes the target priced
  const rt = { ...created, targets: [{ ...created.targets[0], unpriced: false }] };
  for (const [role, u] of Object.entries(users)) {
    const s = await state();
    const list = await cp.api('GET', '/api/v1/routes?alias=shared', { token: u.token });
    assert.equal(list.status, 200, `${role} lists routes`);
    assert.deepEqual(list.body.data, [rt]);
    assert.ok(!list.text.includes('base_url') && !list.text.includes('127.0.0.1'), 'routes do not show provider URLs');
    assert.equal((await cp.api('GET', `/api/v1/routes/${rt.id}`, { token: u.token })).status, 200, `${role} reads a route`);
    assert.equal((await cp.api('GET', `/api/v1/routes/${randomUUID()}`, { token: u.token })).status, 404);
    const prices = await cp.api('GET', `/api/v1/prices?provider_id=${p.id}`, { token: u.token });
    assert.equal(prices.status, 200, `${role} reads prices`);
    assert.equal(prices.body.data.length, 1);
    assert.equal((await cp.api('POST', '/api/v1/routes', { token: u.token, body: { alias: `by-${role}`, targets: [{ provider_id: p.id, model: 'm' }] } })).status, 403, `${role} creates a route`);
    assert.equal((await cp.api('PATCH', `/api/v1/routes/${rt.id}`, { token: u.token, body: { alias: 'hijack' } })).status, 403, `${role} updates a route`);
    assert.equal((await cp.api('DELETE', `/api/v1/routes/${rt.id}`, { token: u.token })).status, 403, `${role} deletes a route`);
    assert.equal((await cp.api('PUT', '/api/v1/prices', { token: u.token, body: { provider_id: p.id, model: 'm', input_per_mtok: 0, output_per_mtok: 0 } })).status, 403, `${role} puts a price`);
    assert.equal((await cp.api('DELETE', `/api/v1/prices?provider_id=${p.id}&model=m`, { token: u.token })).status, 403, `${role} deletes a price`);
    assert.equal(await state(), s, `${role} changed something`);
  }
  for (const path of ['/api/v1/routes', `/api/v1/routes/${rt.id}`, '/api/v1/prices']) assert.equal((await cp.api('GET', path)).status, 401);
});

test('prices: put creates then replaces, amounts are exact JSON numbers, filters, pages and delete', async () => {
  const p = await makeProvider({ name: 'priced' });
  const q = await makeProvider({ name: 'priced-too' });
  const v0 = await configVersion();
  const c = await cp.api('PUT', '/api/v1/prices', {
    token: admin, body: { provider_id: p.id, model: 'gpt-4o-mini', input_per_mtok: 0.15, output_per_mtok: 0.6, cached_input_per_mtok: 0.075 },
  });
  assert.equal(c.status, 201, c.text);
  assert.ok((await configVersion()) > v0);
  assert.equal(c.body.provider_id, p.id);
  assert.equal(c.body.provider, 'priced');
  assert.equal(c.body.model, 'gpt-4o-mini');
  assert.equal(c.body.input_per_mtok, 0.15);
  assert.equal(c.body.output_per_mtok, 0.6);
  assert.equal(c.body.cached_input_per_mtok, 0.075);
  assert.match(c.text, /"input_per_mtok"\s*:\s*0\.15[,}]/, 'amounts are numbers, spelled exactly');
  assert.equal(await db.query(`SELECT input_per_mtok || ' ' || output_per_mtok || ' ' || cached_input_per_mtok FROM prices WHERE provider_id = '${p.id}'`), '0.150000000 0.600000000 0.075000000');

  const r = await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: p.id, model: 'gpt-4o-mini', input_per_mtok: 1000000, output_per_mtok: 0 } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.input_per_mtok, 1000000);
  assert.equal(r.body.output_per_mtok, 0);
  assert.equal(r.body.cached_input_per_mtok, null, 'put replaces the whole price');
  assert.equal(await db.query(`SELECT count(*) FROM prices WHERE provider_id = '${p.id}'`), '1');
  const audit = JSON.parse(await db.query(`SELECT json_build_object('b', before, 'a', after) FROM audit_log WHERE action = 'price.put' AND target_id = '${p.id}/gpt-4o-mini' ORDER BY id DESC LIMIT 1`));
  assert.equal(audit.b.input_per_mtok, '0.15');
  assert.equal(audit.a.input_per_mtok, '1000000');

  const tiny = await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: p.id, model: "o1'; DROP TABLE prices; --", input_per_mtok: 0.000000001, output_per_mtok: 123456.123456789 } });
  assert.equal(tiny.status, 201, tiny.text);
  assert.equal(tiny.body.input_per_mtok, 1e-9);
  assert.equal(tiny.body.output_per_mtok, 123456.123456789);
  assert.equal(await db.query(`SELECT count(*) FROM prices WHERE model = 'o1''; DROP TABLE prices; --'`), '1');
  assert.equal((await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: q.id, model: 'gpt-4o-mini', input_per_mtok: 2, output_per_mtok: 3 } })).status, 201);
  assert.equal((await cp.api('PUT', '/api/v1/prices', { token: admin, body: { provider_id: q.id, model: 'モデル 🙂', input_per_mtok: 2, output_per_mtok: 3 } })).status, 201);

  const byProvider = await cp.api('GET', `/api/v1/prices?provider_id=${p.id}`, { token: admin });
  assert.equal(byProvider.status, 200);
  assert.deepEqual(byProvider.body.data.map((x) => x.model).sort(), ['gpt-4o-mini', "o1'; DROP TABLE prices; --"]);
  const byModel = await cp.api('GET', '/api/v1/prices?model=gpt-4o-mini', { token: admin });
  assert.deepEqual(byModel.body.data.map((x) => x.provider).sort(), ['priced', 'priced-too']);
  const both = await cp.api('GET', `/api/v1/prices?provider_id=${q.id}&model=${encodeURIComponent('モデル 🙂')}`, { token: admin });
  assert.equal(both.body.data.length, 1);
  assert.equal(both.body.data[0].model, 'モデル 🙂');
  assert.deepEqual((await cp.api('GET', `/api/v1/prices?provider_id=${randomUUID()}`, { token: admin })).body.data, []);

  const all = Number(await db.query('SELECT count(*) FROM prices'));
  const seen = [];
  let cursor = null;
  for (let i = 0; i < 20; i++) {
    const page = await cp.api('GET', `/api/v1/prices?limit=1${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    assert.equal(page.status, 200, page.text);
    assert.ok(page.body.data.length <= 1);
    seen.push(...page.body.data.map((x) => `${x.provider_id}/${x.model}`));
    cursor = page.body.next_cursor;
    if (!cursor) break;
  }
  assert.equal(seen.length, all);
  assert.equal(new Set(seen).size, all);

  const v1 = await configVersion();
  const d = await cp.api('DELETE', `/api/v1/prices?provider_id=${p.id}&model=${encodeURIComponent("o1'; DROP TABLE prices; --")}`, { token: admin });
  assert.equal(d.status, 204, d.text);
  assert.ok((await configVersion()) > v1);
  assert.equal(await db.query(`SELECT count(*) FROM prices WHERE provider_id = '${p.id}'`), '1');
  assert.equal(await auditRows('price.delete', `${p.id}/o1'; DROP TABLE prices; --`.replace(/'/g, "''")), '1');
  await refused('DELETE', `/api/v1/prices?provider_id=${p.id}&model=${encodeURIComponent("o1'; DROP TABLE prices; --")}`, {}, 404, 'delete it again');
  await assertAuditIntact();
});

test('bad price requests are refused with the right status and change nothing', async () => {
  const p = await makeProvider({ name: 'price-validation' });
  const ok = { provider_id: p.id, model: 'm', input_per_mtok: 1, output_per_mtok: 2 };
  const cases = [
    [400, 'malformed JSON', { raw: '{"provider_id":' }],
    [400, 'unknown field', { body: { ...ok, currency: 'USD' } }],
    [400, 'missing provider', { body: { model: 'm', input_per_mtok: 1, output_per_mtok: 2 } }],
    [400, 'missing model', { body: { provider_id: p.id, input_per_mtok: 1, output_per_mtok: 2 } }],
    [400, 'missing input price', { body: { provider_id: p.id, model: 'm', output_per_mtok: 2 } }],
    [400, 'missing output price', { body: { provider_id: p.id, model: 'm', input_per_mtok: 1 } }],
    [400, 'price as a string', { body: { ...ok, input_per_mtok: '1.5' } }],
    [400, 'price as a boolean', { body: { ...ok, output_per_mtok: true } }],
    [400, 'cached price as a string', { body: { ...ok, cached_input_per_mtok: '0' } }],
    [422, 'negative price', { body: { ...ok, input_per_mtok: -0.01 } }],
    [422, 'price over 1e6', { body: { ...ok, output_per_mtok: 1000000.5 } }],
    [422, 'huge price', { body: { ...ok, output_per_mtok: 1e300 } }],
    [422, 'negative cached price', { body: { ...ok, cached_input_per_mtok: -1 } }],
    [422, 'provider id not a UUID', { body: { ...ok, provider_id: 'price-validation' } }],
    [422, 'unknown provider', { body: { ...ok, provider_id: randomUUID() } }],
    [422, 'empty model', { body: { ...ok, model: '' } }],
    [422, 'model of 257 bytes', { body: { ...ok, model: 'm'.repeat(257) } }],
    [422, 'control char in model', { body: { ...ok, model: 'a\u001bb' } }],
    [400, 'NUL in model', { raw: `{"provider_id":"${p.id}","model":"a\\u0000","input_per_mtok":1,"output_per_mtok":2}` }],
  ];
  for (const [status, what, opts] of cases) await refused('PUT', '/api/v1/prices', opts, status, what);
  await refused('DELETE', '/api/v1/prices', {}, 400, 'delete without a query');
  await refused('DELETE', `/api/v1/prices?provider_id=${p.id}`, {}, 400, 'delete without a model');
  await refused('DELETE', `/api/v1/prices?provider_id=${p.id}&model=nope`, {}, 404, 'delete an unknown price');
  await refused('DELETE', '/api/v1/prices?provider_id=x&model=m', {}, 404, 'delete with a malformed provider id');
  await refused('GET', '/api/v1/prices?provider_id=nope', {}, 400, 'filter by a malformed provider id');
  await refused('GET', '/api/v1/prices?cursor=abc', {}, 400, 'bad cursor');
});

test('every mutation left a hash-chained audit row and the chain is intact', async () => {
  const counts = Object.fromEntries((await db.query(`SELECT action || '=' || count(*) FROM audit_log WHERE action ~ '^(provider|route|price)\\.' GROUP BY action`))
    .split('\n').map((l) => l.split('=')));
  for (const action of ['provider.create', 'provider.update', 'provider.delete', 'route.create', 'route.update', 'route.delete', 'price.put', 'price.delete']) {
    assert.ok(Number(counts[action]) > 0, `no ${action} rows`);
  }
  assert.equal(await db.query("SELECT count(*) FROM audit_log WHERE action ~ '^(provider|route|price)\\.' AND (actor_label <> 'user:admin@example.com' OR tenant_id IS NOT NULL OR source_ip IS NULL)"), '0');
  await assertAuditIntact();
  for (const s of [SECRET_1, SECRET_2, ORG_SECRET]) assert.ok(!cp.logs().includes(s));
});
