// framing_control.test.mjs: a catalogue of malformed and hostile requests against the real
// tollgate-control over raw sockets: smuggling framings, header bytes, size limits before
// authentication, slow clients, pipelining, request lines, Host, connection limits. Each case
// states the exact answer (one well-formed response, its status, whether the connection
// closes) and is followed by a liveness probe on a new connection.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startControl, createDatabase } from './lib/control.mjs';
import { BIN, waitFor } from './lib/harness.mjs';

let cp;
let port;
let token;
const DP = 'Authorization: Bearer test-dp-token\r\n';
const H = 'Host: cp.example\r\n';
const LOGIN = JSON.stringify({ email: 'nobody@example.com', password: 'wrong-password' });

before(async () => {
  cp = await startControl();
  port = Number(new URL(cp.url).port);
  token = await cp.login();
});

after(async () => {
  await cp.stop();
});

// Reads responses off `buf` strictly: status line, headers, then exactly Content-Length bytes.
// Returns the complete responses and whatever bytes follow them.
function parseResponses(buf) {
  const responses = [];
  let rest = buf;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(lines[0]);
    if (!m) break;
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      const k = l.slice(0, i).toLowerCase();
      (headers[k] ||= []).push(l.slice(i + 1).trim());
    }
    const status = Number(m[1]);
    const len = status === 304 || status < 200 ? 0 : Number((headers['content-length'] || [])[0]);
    if (!Number.isInteger(len) || (headers['content-length'] || []).length > 1) break;
    if (rest.length < end + 4 + len) break;
    responses.push({ status, headers, body: rest.slice(end + 4, end + 4 + len).toString('utf8') });
    rest = rest.slice(end + 4 + len);
  }
  return { responses, rest };
}

// Writes `parts` (a string, or [delayMs, chunk] pairs) on a new connection and collects the
// answer until the server closes, or `count` responses are in (plus a moment for stray bytes),
// or `untilMs` passes. `written` counts the bytes the server had been sent when it answered.
function exchange(parts, { count = 1, untilMs = 5000, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    let buf = Buffer.alloc(0);
    let closed = false;
    let done = false;
    let sent = 0;
    let sentAtFirstByte = -1;
    let grace = null;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      sock.destroy();
      resolve({ ...parseResponses(buf), closed, ms: Date.now() - t0, sentAtFirstByte, raw: buf });
    };
    const timer = setTimeout(finish, untilMs);
    sock.on('data', (d) => {
      if (sentAtFirstByte < 0) sentAtFirstByte = sent;
      buf = Buffer.concat([buf, d]);
      if (!grace && parseResponses(buf).responses.length >= count) grace = setTimeout(finish, 200);
    });
    sock.on('close', () => { closed = true; finish(); });
    sock.on('error', (e) => { if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e); });
    sock.on('connect', async () => {
      const list = typeof parts === 'string' || Buffer.isBuffer(parts) ? [[0, parts]] : parts;
      for (const [delay, chunk] of list) {
        if (delay) await new Promise((r) => setTimeout(r, delay));
        if (closed || done) return;
        sent += Buffer.byteLength(chunk);
        sock.write(chunk);
      }
    });
  });
}

// GET /healthz on a new connection answers 200: the server survived the case before.
async function assertAlive(after) {
  const r = await exchange(`GET /healthz HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  assert.equal(r.responses.length, 1, `no answer to the liveness probe after ${after}`);
  assert.equal(r.responses[0].status, 200, `liveness probe after ${after}`);
}

// One case: exactly `statuses.length` responses with these statuses, nothing after them, the
// connection closed or not, and for our own JSON errors the error code.
async function expectAnswer(name, wire, { status, statuses = [status], close = true, code,
  untilMs, noBodyRead, exact = true } = {}) {
  const r = await exchange(wire, { count: statuses.length, untilMs });
  const got = r.responses.map((x) => x.status);
  assert.deepEqual(got, statuses, `${name}: statuses (raw: ${JSON.stringify(r.raw.toString('latin1').slice(0, 400))})`);
  if (exact) assert.equal(r.rest.length, 0, `${name}: stray bytes after the answer: ${JSON.stringify(r.rest.toString('latin1').slice(0, 200))}`);
  assert.equal(r.closed, close, `${name}: connection ${close ? 'not ' : ''}closed`);
  if (code) {
    const last = r.responses[r.responses.length - 1];
    assert.equal(JSON.parse(last.body).error.code, code, `${name}: error code`);
  }
  if (noBodyRead !== undefined) {
    assert.ok(r.sentAtFirstByte >= 0 && r.sentAtFirstByte <= noBodyRead,
      `${name}: answered after ${r.sentAtFirstByte} bytes were sent, expected before the body`);
  }
  await assertAlive(name);
  return r;
}

const post = (p, headers, body = '') =>
  `POST ${p} HTTP/1.1\r\n${H}Content-Type: application/json\r\n${headers}\r\n${body}`;

test('smuggling framings are refused with 400 and a close', async () => {
  const n = Buffer.byteLength(LOGIN);
  const cases = [
    ['two equal Content-Length', post('/api/v1/auth/login', `Content-Length: ${n}\r\nContent-Length: ${n}\r\n`, LOGIN)],
    ['two different Content-Length', post('/api/v1/auth/login', `Content-Length: ${n}\r\nContent-Length: 5\r\n`, LOGIN)],
    ['Content-Length with Transfer-Encoding (CL.TE)', post('/api/v1/auth/login', `Content-Length: 6\r\nTransfer-Encoding: chunked\r\n`, '0\r\n\r\nG')],
    ['Transfer-Encoding with Content-Length (TE.CL)', post('/api/v1/auth/login', `Transfer-Encoding: chunked\r\nContent-Length: 4\r\n`, '5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n')],
    ['unknown transfer coding', post('/api/v1/auth/login', 'Transfer-Encoding: gzip\r\n', '0\r\n\r\n')],
    ['coding list ending in chunked', post('/api/v1/auth/login', 'Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n')],
    ['chunked twice in one header', post('/api/v1/auth/login', 'Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n')],
    ['two Transfer-Encoding headers', post('/api/v1/auth/login', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')],
    ['a look-alike coding', post('/api/v1/auth/login', 'Transfer-Encoding: xchunked\r\n', '0\r\n\r\n')],
    ['Transfer-Encoding in HTTP/1.0', `POST /api/v1/auth/login HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['space before the colon of Content-Length', post('/api/v1/auth/login', `Content-Length : ${n}\r\n`, LOGIN)],
    ['tab before the colon of Transfer-Encoding', post('/api/v1/auth/login', 'Transfer-Encoding\t: chunked\r\n', '0\r\n\r\n')],
  ];
  for (const [name, wire] of cases) {
    await expectAnswer(name, wire, { status: 400, code: 'bad_request' });
  }
});

test('forbidden bytes in header lines are refused with 400 and a close', async () => {
  const get = (line) => `GET /healthz HTTP/1.1\r\n${H}${line}\r\n\r\n`;
  const cases = [
    ['bare CR inside a value', get('X-Note: a\rb')],
    ['bare CR inside a name', get('X-Note\r: b')],
    ['NUL inside a value', get('X-Note: a\0b')],
    ['NUL in the Authorization value', `GET /api/v1/me HTTP/1.1\r\n${H}Authorization: Bearer ${token}\0junk\r\n\r\n`],
    ['space before the colon', get('X-Note : b')],
    ['control character in a value', get('X-Note: a\x01b')],
    ['DEL in a value', get('X-Note: a\x7fb')],
    ['a name with a slash', get('X/Note: b')],
    ['a line folded onto the next (obs-fold)', get('X-Note: a\r\n b')],
  ];
  for (const [name, wire] of cases) {
    await expectAnswer(name, wire, { status: 400, code: 'bad_request' });
  }
});

test('Host: one is required in HTTP/1.1, two are refused', async () => {
  await expectAnswer('no Host in HTTP/1.1', 'GET /healthz HTTP/1.1\r\n\r\n', { status: 400, code: 'bad_request' });
  await expectAnswer('two Host headers', `GET /healthz HTTP/1.1\r\n${H}${H}\r\n`, { status: 400, code: 'bad_request' });
  await expectAnswer('two Host headers, different', `GET /healthz HTTP/1.1\r\n${H}Host: other\r\n\r\n`, { status: 400, code: 'bad_request' });
  await expectAnswer('HTTP/1.0 without Host', 'GET /healthz HTTP/1.0\r\n\r\n', { status: 200 });
  await expectAnswer('one Host', `GET /healthz HTTP/1.1\r\n${H}\r\n`, { status: 200 });
});

test('request lines: only HTTP/1.0 and 1.1 are served, nothing hangs', async () => {
  await expectAnswer('HTTP/1.2', `GET /healthz HTTP/1.2\r\n${H}\r\n`, { status: 505, code: 'http_version_not_supported' });
  await expectAnswer('HTTP/2.0 in an HTTP/1 request line', `GET /healthz HTTP/2.0\r\n${H}\r\n`, { status: 505 });
  await expectAnswer('HTTP/0.9 style line', 'GET /healthz\r\n\r\n', { status: 400 });
  await expectAnswer('a target too long', `GET /healthz?${'a'.repeat(70000)} HTTP/1.1\r\n${H}\r\n`, { status: 414 });
  await expectAnswer('a header too long', `GET /healthz HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(70000)}\r\n\r\n`, { status: 431 });
  // not HTTP at all: closed at once, with no answer
  const r = await exchange('HELLO\r\n\r\n', { untilMs: 3000 });
  assert.equal(r.raw.length, 0);
  assert.ok(r.closed && r.ms < 2000, `closed after ${r.ms} ms`);
  await assertAlive('a line that is not HTTP');
});

test('sizes: an oversize Content-Length is 413 before any body byte is sent', async () => {
  const big = (n) => `Content-Length: ${n}\r\n`;
  // login is open to anyone: 64 KiB at most
  await expectAnswer('login over 64 KiB', post('/api/v1/auth/login', big(65537)), {
    status: 413, code: 'payload_too_large', noBodyRead: 1000, untilMs: 3000,
  });
  // an authenticated caller: 1 MiB
  await expectAnswer('authenticated body over 1 MiB',
    post('/api/v1/tenants', `Authorization: Bearer ${token}\r\n${big((1 << 20) + 1)}`),
    { status: 413, code: 'payload_too_large', noBodyRead: 2000, untilMs: 3000 });
  // a data plane's usage batch: 8 MiB
  await expectAnswer('usage batch over 8 MiB', post('/dp/v1/usage', `${DP}${big((8 << 20) + 1)}`), {
    status: 413, code: 'payload_too_large', noBodyRead: 1000, untilMs: 3000,
  });
  // a client that sends the whole body anyway still gets the answer, not a reset: the
  // connection lingers to drop what is in flight
  const whole = post('/api/v1/tenants', `Authorization: Bearer ${token}\r\n${big(3 << 20)}`) + 'z'.repeat(3 << 20);
  const w = await exchange([[0, whole]], { untilMs: 5000 });
  assert.deepEqual(w.responses.map((x) => x.status), [413], 'the answer to a 3 MiB body sent whole');
  await assertAlive('a 3 MiB body sent whole');
  // the same with an HTTP client that writes its body without waiting (no Expect: 100-continue)
  const f = await fetch(`${cp.url}/dp/v1/usage`, {
    method: 'POST', headers: { authorization: 'Bearer test-dp-token' }, body: 'x'.repeat(9 << 20),
  });
  assert.equal(f.status, 413);
  assert.equal((await f.json()).error.code, 'payload_too_large');
  await assertAlive('a 9 MiB usage batch sent whole');
  // the 413 names the limit
  const r = await exchange(post('/api/v1/auth/login', big(100000)));
  assert.match(JSON.parse(r.responses[0].body).error.message, /100000 bytes is larger than the 65536 bytes/);
});

test('no body is read from a caller without valid credentials', async () => {
  const eight = `Content-Length: ${8 << 20}\r\n`;
  await expectAnswer('anonymous 8 MiB to an authenticated endpoint',
    post('/api/v1/tenants', eight), { status: 401, code: 'unauthenticated', noBodyRead: 1000, untilMs: 3000 });
  await expectAnswer('a bad token with 8 MiB',
    post('/api/v1/tenants', `Authorization: Bearer not-a-token\r\n${eight}`),
    { status: 401, code: 'unauthenticated', noBodyRead: 1000, untilMs: 3000 });
  await expectAnswer('usage batch without the data-plane token',
    post('/dp/v1/usage', eight), { status: 401, code: 'unauthenticated', noBodyRead: 1000, untilMs: 3000 });
  await expectAnswer('usage batch with a wrong data-plane token',
    post('/dp/v1/usage', `Authorization: Bearer wrong\r\n${eight}`),
    { status: 401, code: 'unauthenticated', noBodyRead: 1000, untilMs: 3000 });
  await expectAnswer('a body to an unknown endpoint',
    post('/api/v1/nothing-here', eight), { status: 404, code: 'not_found', noBodyRead: 1000, untilMs: 3000 });
  // the body that was sent with a refused request is never read as the next request
  const inner = `GET /healthz HTTP/1.1\r\n${H}\r\n`;
  await expectAnswer('a request hidden in a refused body',
    post('/api/v1/tenants', `Content-Length: ${inner.length}\r\n`, inner), { status: 401 });
  // with a valid token the same endpoint reads the body
  const body = JSON.stringify({ slug: 'framing-ok', name: 'framing' });
  await expectAnswer('a valid token gets its body read',
    post('/api/v1/tenants', `Authorization: Bearer ${token}\r\nContent-Length: ${body.length}\r\n`, body),
    { status: 201 });
});

// libmicrohttpd 0.9.75 answers a Content-Length that is not plain digits itself, before the
// request reaches us, and writes its status line and headers twice. The gate in front of it
// (controlplane/gate.c) reads every head first and answers these itself: exactly one answer.
// Values with leading blanks or leading zeros are plain digits and reach check_head.
const MHD_LENGTH_CASES = [
  ['Content-Length as a list', post('/api/v1/auth/login', 'Content-Length: 2, 2\r\n', '{}'), 400],
  ['Content-Length as a list without a space', post('/api/v1/auth/login', 'Content-Length: 2,2\r\n', '{}'), 400],
  ['negative Content-Length', post('/api/v1/auth/login', 'Content-Length: -1\r\n', '{}'), 400],
  ['Content-Length with a plus sign', post('/api/v1/auth/login', 'Content-Length: +2\r\n', '{}'), 400],
  ['Content-Length not a number', post('/api/v1/auth/login', 'Content-Length: 0x10\r\n', '{}'), 400],
  ['Content-Length in exponent form', post('/api/v1/auth/login', 'Content-Length: 1e3\r\n', '{}'), 400],
  ['Content-Length with a space after the digits', post('/api/v1/auth/login', 'Content-Length: 2 \r\n', '{}'), 400],
  ['empty Content-Length', post('/api/v1/auth/login', 'Content-Length:\r\n', '{}'), 400],
  ['Content-Length beyond 64 bits', post('/api/v1/auth/login', 'Content-Length: 99999999999999999999999\r\n'), 413],
];

test('a Content-Length that is not plain digits gets exactly one answer, 400 or 413, and a close', async () => {
  for (const [name, wire, status] of MHD_LENGTH_CASES) {
    await expectAnswer(name, wire, { status, code: status === 400 ? 'bad_request' : 'payload_too_large' });
  }
  // the same with the body's bytes following at once, and with bare LF line ends
  await expectAnswer('negative Content-Length, bare LF', 'POST /api/v1/auth/login HTTP/1.1\nHost: cp.example\nContent-Length: -1\n\n{}', { status: 400 });
  // a head that arrives in pieces is judged when it is complete
  await expectAnswer('Content-Length as a list, in pieces', [[0, 'POST /api/v1/auth/login HTTP/1.1\r\nHost: cp.example\r\nContent-Le'],
    [50, 'ngth: 2, 2\r\n'], [50, '\r\n{}']], { status: 400 });
});

test('a Content-Length with leading zeros or blanks is read as the number it spells', async () => {
  const n = Buffer.byteLength(LOGIN);
  for (const [name, header] of [['leading zeros', `Content-Length: 000${n}\r\n`], ['a tab before the digits', `Content-Length:\t${n}\r\n`]]) {
    await expectAnswer(name, post('/api/v1/auth/login', header, LOGIN), { status: 401, code: 'invalid_credentials' });
  }
  // the largest 64-bit value is a number, and over every limit: our 413, before any body byte
  await expectAnswer('Content-Length of 2^64 - 1', post('/api/v1/auth/login', 'Content-Length: 18446744073709551615\r\n'),
    { status: 413, code: 'payload_too_large', noBodyRead: 1000, untilMs: 3000 });
});

test('chunked bodies are refused before they are read, however large their chunk lines', async () => {
  await expectAnswer('a small chunked body', post('/api/v1/auth/login', 'Transfer-Encoding: chunked\r\n',
    `${LOGIN.length.toString(16)}\r\n${LOGIN}\r\n0\r\n\r\n`), { status: 411, code: 'length_required' });
  await expectAnswer('a chunk extension of 100 KB', post('/api/v1/auth/login', 'Transfer-Encoding: chunked\r\n',
    `5;${'x'.repeat(100000)}\r\nhello\r\n0\r\n\r\n`), { status: 411, code: 'length_required' });
  await expectAnswer('a chunk size beyond 64 bits', post('/api/v1/auth/login', 'Transfer-Encoding: chunked\r\n',
    'fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), { status: 411, code: 'length_required' });
  // a chunked body far over every limit: the answer comes before the first chunk is sent
  const parts = [[0, post('/api/v1/tenants', `Authorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n`)]];
  for (let i = 0; i < 20; i++) parts.push([50, `100000\r\n${'y'.repeat(0x100000)}\r\n`]);
  await expectAnswer('16 MiB chunked, authenticated', parts, { status: 411, noBodyRead: 2000, untilMs: 3000 });
});

// One request per connection: every head passes the gate, so every answer says
// "Connection: close" (RFC 9112 9.6) and requests pipelined behind it are never answered, nor
// taken for a body. The first answer arrives whole: the unread rest does not reset it.
test('pipelined requests: the first is answered whole with a close, the rest are not read', async () => {
  const tenant = '{"slug":"pipelined","name":"pipelined"}';
  const wire = `GET /api/v1/me HTTP/1.1\r\n${H}Authorization: Bearer ${token}\r\n\r\n` +
    `GET /healthz HTTP/1.1\r\n${H}\r\n` +
    `POST /api/v1/tenants HTTP/1.1\r\n${H}Authorization: Bearer ${token}\r\nContent-Length: ${tenant.length}\r\n\r\n${tenant}`;
  const r = await expectAnswer('three pipelined', wire, { statuses: [200] });
  assert.equal(JSON.parse(r.responses[0].body).email, 'admin@example.com');
  assert.deepEqual(r.responses[0].headers.connection, ['close']);
  const t = await exchange(`GET /api/v1/tenants?limit=200 HTTP/1.1\r\n${H}Authorization: Bearer ${token}\r\n\r\n`);
  assert.ok(!t.responses[0].body.includes('"pipelined"'), 'a pipelined request was acted on');
  // a malformed request first: its 400, and nothing after it is answered
  const bad = `POST /api/v1/auth/login HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}` +
    `GET /healthz HTTP/1.1\r\n${H}\r\n`;
  await expectAnswer('pipelined after a malformed one', bad, { statuses: [400] });
});

test('a client sending its headers slowly is closed within 10 s; a slow body is not', async () => {
  const t0 = Date.now();
  const slow = [[0, 'GET /healthz HTTP/1.1\r\n']];
  for (let i = 0; i < 30; i++) slow.push([500, `X-Slow-${i}: 1\r\n`]);
  const pending = exchange(slow, { untilMs: 15000 });
  // meanwhile others are served
  await assertAlive('the start of a slow client');
  const r = await pending;
  const took = Date.now() - t0;
  assert.ok(r.closed, 'the slow client was closed');
  assert.equal(r.responses.length, 0);
  assert.ok(took >= 9000 && took <= 11000, `closed after ${took} ms; the default header timeout is 10 s`);
  await assertAlive('a slow client');
  // a body may take its time once the headers are in (the idle timeout covers it)
  const body = LOGIN;
  const b = await exchange([
    [0, post('/api/v1/auth/login', `Content-Length: ${body.length}\r\n`)],
    [1500, body.slice(0, 10)], [1500, body.slice(10)],
  ], { untilMs: 8000 });
  assert.deepEqual(b.responses.map((x) => x.status), [401]);
  assert.equal(JSON.parse(b.responses[0].body).error.code, 'invalid_credentials');
  await assertAlive('a slow body');
});

test('connections are capped per client address and in total', async () => {
  const lim = await startControl({ args: ['--threads', '1', '--max-connections', '6', '--max-connections-per-ip', '3'] });
  const limPort = Number(new URL(lim.url).port);
  const open = (localAddress) => new Promise((resolve, reject) => {
    const s = net.connect({ port: limPort, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', reject);
  });
  const probe = (localAddress) => new Promise((resolve) => {
    const s = net.connect({ port: limPort, host: '127.0.0.1', localAddress });
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('connect', () => s.write(`GET /healthz HTTP/1.1\r\n${H}Connection: close\r\n\r\n`));
    s.on('close', () => resolve(data));
    s.on('error', () => {});
    setTimeout(() => s.destroy(), 3000);
  });
  const held = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await open('127.0.0.2'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await probe('127.0.0.2'), '', 'a fourth connection from one address is closed unanswered');
    assert.match(await probe('127.0.0.3'), /^HTTP\/1\.1 200 /, 'another address is served');
    for (let i = 0; i < 3; i++) held.push(await open('127.0.0.3'));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await probe('127.0.0.4'), '', 'a seventh connection is closed unanswered');
    held.pop().destroy();
    await waitFor(async () => /^HTTP\/1\.1 200 /.test(await probe('127.0.0.4')), 3000, 'a freed slot');
  } finally {
    for (const s of held) s.destroy();
    await lim.stop();
  }
});

test('the admin API listens on 127.0.0.1:8081 unless told otherwise', async () => {
  const env = { ...process.env, TOLLGATE_DATABASE_URL: createDatabase(),
    TOLLGATE_JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789', TOLLGATE_ADMIN_PASSWORD: 'x-password-x' };
  delete env.TOLLGATE_CONTROL_LISTEN;
  const proc = spawn(path.join(BIN, 'tollgate-control'), [], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let logs = '';
  proc.stdout.on('data', (d) => { logs += d; });
  proc.stderr.on('data', (d) => { logs += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  try {
    // bound or not (another process may hold the port), the log names the address it chose
    const m = await waitFor(() => /event=(?:listening|listen_failed) addr=(\S+)/.exec(logs), 20000, 'listen');
    assert.equal(m[1], '127.0.0.1:8081');
  } finally {
    proc.kill('SIGTERM');
    let timer;
    const code = await Promise.race([exited, new Promise((r) => { timer = setTimeout(() => r('hung'), 15000); })]);
    clearTimeout(timer);
    if (code === 'hung') { proc.kill('SIGKILL'); await exited; }
    assert.equal(code, 0, 'SIGTERM stops tollgate-control');
  }
});
