// framing_data.test.mjs: a catalogue of malformed and borderline HTTP/1.1 requests sent to
// tollgate-data over raw sockets, each with the answer RFC 9112 wants: smuggling framings, size
// limits, bodies before authentication, slow clients, pipelining, request lines and Host. After
// every case a new connection must get 200 from GET /healthz, and nothing malformed may reach the
// provider mock. The gateway runs with its default limits and timeouts, so the defaults are what
// is tested.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, openaiErrorType } from './lib/harness.mjs';

const KEY = 'tg-test-key';
const MAX_BODY = 4 * 1024 * 1024; // --max-body-bytes default
const HEADER_TIMEOUT_MS = 10000; // --header-timeout-ms default
const IDLE_TIMEOUT_MS = 30000; // --idle-timeout-ms default

let mock;
let gw;
let idle; // a keep-alive connection left idle from the start, closed by the idle timeout

before(async () => {
  mock = await startOpenAIMock();
  gw = await startGateway({ snapshot: makeSnapshot({ mockUrl: mock.url }) });
  idle = openIdle();
});

after(async () => {
  idle.sock.destroy();
  await gw.stop();
  await mock.close();
});

// Sends `wire` (a string or Buffer, or a list of [delayMs, chunk]) on a new connection and
// collects what comes back until the server closes, `untilMs` passes or `endWhen(data)` holds.
function talk(wire, { untilMs = 3000, endWhen } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(gw.port, '127.0.0.1');
    const t0 = Date.now();
    let data = Buffer.alloc(0);
    let closed = false;
    let firstByteMs = null;
    const done = () => {
      clearTimeout(timer);
      resolve({ data: data.toString('latin1'), closed, firstByteMs, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => { sock.destroy(); done(); }, untilMs);
    sock.on('data', (d) => {
      if (firstByteMs === null) firstByteMs = Date.now() - t0;
      data = Buffer.concat([data, d]);
      if (endWhen && endWhen(data.toString('latin1'))) { sock.destroy(); done(); }
    });
    sock.on('close', () => { closed = true; done(); });
    // the server may close while we still write a body it refused
    sock.on('error', (e) => { if (!['ECONNRESET', 'EPIPE'].includes(e.code)) reject(e); });
    sock.on('connect', async () => {
      if (!Array.isArray(wire)) { sock.write(wire); return; }
      for (const [delay, chunk] of wire) {
        if (delay) await new Promise((r) => setTimeout(r, delay));
        if (closed || sock.destroyed) return;
        sock.write(chunk);
      }
    });
  });
}

// Splits a byte stream into complete responses (all ours carry content-length); what is left
// over is returned too, so stray bytes after an answer show.
function responses(s) {
  const out = [];
  for (;;) {
    const end = s.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = s.slice(0, end);
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*/.exec(head);
    if (!m) break;
    const headers = {};
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    if (Number(m[1]) === 100) { out.push({ status: 100, headers, body: '' }); s = s.slice(end + 4); continue; }
    const len = Number(headers['content-length']);
    if (!Number.isInteger(len) || s.length < end + 4 + len) break;
    out.push({ status: Number(m[1]), headers, body: s.slice(end + 4, end + 4 + len) });
    s = s.slice(end + 4 + len);
  }
  return { list: out, rest: s };
}

function complete(n) {
  return (s) => responses(s).list.filter((r) => r.status !== 100).length >= n;
}

async function probe() {
  const r = await talk('GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
  const { list } = responses(r.data);
  assert.equal(list.length, 1, `liveness probe got no answer: ${JSON.stringify(r.data)}`);
  assert.equal(list[0].status, 200, 'liveness probe');
}

// One catalogue case: `wire` must get exactly one answer with `status`; `closes` says whether
// the connection must then close; `forwards` how many requests reach the provider (0 unless
// said). `within` bounds the time to the answer. The error body must be the OpenAI shape with a
// message a person can act on, matching `message` when given.
async function check({ wire, status, closes = true, forwards = 0, within = 2000, message, untilMs }) {
  const before = mock.requests.length;
  const r = await talk(wire, { untilMs: untilMs ?? within + 1000, endWhen: closes ? undefined : complete(1) });
  const { list, rest } = responses(r.data);
  assert.ok(list.length >= 1, `no answer in ${r.ms} ms (closed: ${r.closed}): ${JSON.stringify(r.data.slice(0, 200))}`);
  const answer = list[0];
  assert.equal(answer.status, status, `status; body ${answer.body}`);
  assert.equal(list.length, 1, `exactly one answer, got ${list.map((x) => x.status)}`);
  assert.equal(rest, '', 'no stray bytes after the answer');
  assert.ok(r.firstByteMs <= within, `answered after ${r.firstByteMs} ms, expected within ${within} ms`);
  if (closes) {
    assert.ok(r.closed, 'the connection is closed after the answer');
    assert.equal(answer.headers.connection, 'close', 'the answer says connection: close');
  } else {
    assert.ok(!r.closed, 'the connection stays open');
    assert.notEqual(answer.headers.connection, 'close');
  }
  if (status >= 400) {
    const err = JSON.parse(answer.body).error;
    assert.equal(typeof err.message, 'string');
    assert.ok(err.message.length > 10, `message: ${err.message}`);
    if (message) assert.match(err.message, message);
    // the type comes from the one status table, whichever layer answered (connection or proxy)
    assert.equal(err.type, openaiErrorType(status), `type for ${status}`);
  }
  // the mock records a request when it has read it whole; a forwarded one is in by the answer
  assert.equal(mock.requests.length - before, forwards, 'requests that reached the provider');
  await probe();
  return answer;
}

const chat = JSON.stringify(chatBody('hello'));
const len = (s) => Buffer.byteLength(s);
const head = (lines) => lines.map((l) => `${l}\r\n`).join('') + '\r\n';
const auth = `Authorization: Bearer ${KEY}`;
const postChat = (extra, body = chat) =>
  head(['POST /v1/chat/completions HTTP/1.1', 'Host: gw', auth, ...extra]) + body;
const chunked = (parts) => parts.map((p) => `${len(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
const smuggled = 'GET /v1/models HTTP/1.1\r\nHost: gw\r\n' + auth + '\r\n\r\n';

// ---- smuggling framings ----

test('Content-Length with Transfer-Encoding: chunked is 400 and closes', () =>
  check({ wire: postChat([`Content-Length: ${len(chat)}`, 'Transfer-Encoding: chunked'], chunked([chat]) + smuggled), status: 400 }));

test('Transfer-Encoding: chunked with Content-Length after it is 400 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: chunked', 'Content-Length: 5'], chunked([chat])), status: 400 }));

test('two equal Content-Length headers are 400 and close', () =>
  check({ wire: postChat([`Content-Length: ${len(chat)}`, `Content-Length: ${len(chat)}`], chat), status: 400 }));

test('two different Content-Length headers are 400 and close', () =>
  check({ wire: postChat([`Content-Length: ${len(chat)}`, 'Content-Length: 3'], chat), status: 400 }));

test('a Content-Length list "n, n" is 400 and closes', () =>
  check({ wire: postChat([`Content-Length: ${len(chat)}, ${len(chat)}`], chat), status: 400 }));

test('a signed Content-Length is 400 and closes', () =>
  check({ wire: postChat([`Content-Length: +${len(chat)}`], chat), status: 400 }));

test('Transfer-Encoding: gzip, chunked (a coding we do not decode) is 501 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: gzip, chunked'], chunked([chat])), status: 501, message: /chunked/ }));

test('Transfer-Encoding: chunked, gzip (chunked not last) is 400 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: chunked, gzip'], chunked([chat])), status: 400 }));

test('Transfer-Encoding: gzip alone is 501 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: gzip'], chat), status: 501 }));

test('an unknown transfer coding is 501 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: xchunked'], chunked([chat])), status: 501 }));

test('two Transfer-Encoding: chunked lines are 400 and close', () =>
  check({ wire: postChat(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], chunked([chat])), status: 400 }));

test('Transfer-Encoding in an HTTP/1.0 request is 400 and closes', () =>
  check({
    wire: head(['POST /v1/chat/completions HTTP/1.0', 'Host: gw', auth, 'Transfer-Encoding: chunked']) + chunked([chat]),
    status: 400,
  }));

test('whitespace before the colon of Transfer-Encoding is 400 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding : chunked', `Content-Length: ${len(chat)}`], chat), status: 400 }));

test('an obs-fold header line is 400 and closes', () =>
  check({ wire: postChat(['X-Note: a', ' folded', `Content-Length: ${len(chat)}`], chat), status: 400, message: /obs-fold/ }));

test('a bare CR inside a header is 400 and closes', () =>
  check({ wire: postChat(['X-Note: a\rb', `Content-Length: ${len(chat)}`], chat), status: 400 }));

test('a bare LF line ending in the headers is 400 and closes', () =>
  check({ wire: postChat([`X-Note: a\nContent-Length: ${len(chat)}`], chat), status: 400 }));

test('a NUL inside a header is 400 and closes', () =>
  check({ wire: postChat(['X-Note: a\0b', `Content-Length: ${len(chat)}`], chat), status: 400 }));

test('chunk data not followed by CRLF is 400, closes and is never forwarded', () =>
  check({
    wire: postChat(['Transfer-Encoding: chunked'], `${len(chat).toString(16)}\r\n${chat}XX0\r\n\r\n`),
    status: 400,
    message: /CRLF/,
  }));

test('a chunk shorter than its size (eating the next size line) is 400 and closes', () =>
  check({
    wire: postChat(['Transfer-Encoding: chunked'], `${(len(chat) + 2).toString(16)}\r\n${chat}\r\n0\r\n\r\n` + smuggled),
    status: 400,
  }));

test('a chunk size that is not hex is 400 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: chunked'], `zz\r\n${chat}\r\n0\r\n\r\n`), status: 400 }));

test('a chunk size that overflows 64 bits is 400 and closes', () =>
  check({ wire: postChat(['Transfer-Encoding: chunked'], `1${'0'.repeat(17)}\r\n${chat}\r\n0\r\n\r\n`), status: 400 }));

test('a huge chunk extension is 400 and closes', () =>
  check({
    wire: postChat(['Transfer-Encoding: chunked'], `${len(chat).toString(16)};x=${'e'.repeat(8192)}\r\n${chat}\r\n0\r\n\r\n`),
    status: 400,
    message: /chunk header is too long/,
  }));

test('a well-formed chunked body with a short extension is served', () =>
  check({
    wire: postChat(['Transfer-Encoding: chunked', 'Connection: close'],
      `${len(chat).toString(16)};name=v\r\n${chat}\r\n0\r\n\r\n`),
    status: 200,
    forwards: 1,
  }));

// ---- size limits ----

test('headers over the 32 KiB limit are 431 and close', () =>
  check({ wire: head(['GET /healthz HTTP/1.1', 'Host: gw', `X-Big: ${'a'.repeat(33 * 1024)}`]), status: 431 }));

test('more than 100 headers are 431 and close', () =>
  check({
    wire: head(['GET /healthz HTTP/1.1', 'Host: gw', ...Array.from({ length: 101 }, (_, i) => `X-H${i}: v`)]),
    status: 431,
  }));

test('a URL over 8 KiB is 414 and closes', () =>
  check({ wire: head([`GET /${'u'.repeat(8200)} HTTP/1.1`, 'Host: gw']), status: 414 }));

test('a Content-Length over the body limit is 413 at once, naming the limit and its flag', () =>
  check({
    wire: postChat([`Content-Length: ${MAX_BODY + 1}`], ''), // no body byte is sent
    status: 413,
    within: 1000,
    message: /^request body is larger than the 4 MiB limit \(--max-body-bytes\)$/,
  }));

test('a chunked body that grows past the limit is 413 and closes', async () => {
  const piece = 'x'.repeat(64 * 1024);
  const chunks = `${(64 * 1024).toString(16)}\r\n${piece}\r\n`.repeat(MAX_BODY / (64 * 1024) + 1);
  await check({ wire: postChat(['Transfer-Encoding: chunked'], chunks), status: 413, message: /--max-body-bytes/ });
});

// ---- bodies before authentication ----

const bigHead = (extra) => head(['POST /v1/chat/completions HTTP/1.1', 'Host: gw', ...extra, `Content-Length: ${MAX_BODY}`]);

test('no API key: 401 from the head, before the body is sent', () =>
  check({ wire: bigHead([]) + 'x'.repeat(1024), status: 401, within: 1000 }));

test('an unknown API key: 401 from the head, before the body is sent', () =>
  check({ wire: bigHead(['Authorization: Bearer tg-not-a-key']) + 'x'.repeat(1024), status: 401, within: 1000 }));

test('an unknown key with 64 KiB of body in the same write: 401 at once', () =>
  check({ wire: bigHead(['x-api-key: tg-not-a-key']) + 'x'.repeat(64 * 1024), status: 401, within: 1000 }));

test('an unknown key with Expect: 100-continue gets 401, never 100 Continue', async () => {
  const r = await talk(bigHead(['Authorization: Bearer tg-not-a-key', 'Expect: 100-continue']));
  assert.doesNotMatch(r.data, /100 Continue/);
  const { list } = responses(r.data);
  assert.deepEqual(list.map((x) => x.status), [401]);
  assert.ok(r.closed);
  await probe();
});

test('a valid key with Expect: 100-continue gets 100 Continue, then its answer', async () => {
  const before = mock.requests.length;
  const h = postChat(['Expect: 100-continue', `Content-Length: ${len(chat)}`, 'Connection: close'], '');
  const r = await talk([[0, h], [300, chat]], { untilMs: 3000 });
  assert.deepEqual(responses(r.data).list.map((x) => x.status), [100, 200]);
  assert.equal(mock.requests.length - before, 1);
  await probe();
});

test('a valid key: the gateway waits for the rest of the body and serves it', async () => {
  const before = mock.requests.length;
  const h = postChat([`Content-Length: ${len(chat)}`, 'Connection: close'], '');
  const r = await talk([[0, h + chat.slice(0, 10)], [500, chat.slice(10)]], { untilMs: 3000 });
  const { list } = responses(r.data);
  assert.deepEqual(list.map((x) => x.status), [200]);
  assert.ok(r.firstByteMs >= 450, `answered after ${r.firstByteMs} ms, before the body was complete`);
  assert.equal(mock.requests.length - before, 1);
  await probe();
});

test('an unknown path with a body: 404 from the head', () =>
  check({ wire: head(['POST /v1/nope HTTP/1.1', 'Host: gw', `Content-Length: ${MAX_BODY}`]) + 'x', status: 404, within: 1000 }));

test('a wrong method with a body: 405 from the head', () =>
  check({ wire: head(['PUT /v1/chat/completions HTTP/1.1', 'Host: gw', `Content-Length: ${MAX_BODY}`]) + 'x', status: 405, within: 1000 }));

test('a body sent to /healthz: 400 from the head', () =>
  check({ wire: head(['GET /healthz HTTP/1.1', 'Host: gw', `Content-Length: ${MAX_BODY}`]) + 'x', status: 400, within: 1000 }));

// ---- slow clients ----

test('headers trickled byte by byte are closed by the header timeout', async () => {
  const before = mock.requests.length;
  const line = `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`;
  const trickle = [...line].map((ch) => [250, ch]); // one byte every 250 ms, never ending the head
  trickle.push(...Array.from({ length: 60 }, (_, i) => [250, `X-${i}: ${i}\r\n`]));
  const r = await talk(trickle, { untilMs: HEADER_TIMEOUT_MS + 4000 });
  assert.ok(r.closed, 'the slow client was disconnected');
  assert.equal(r.data, '', 'with no answer');
  assert.ok(r.ms >= HEADER_TIMEOUT_MS - 500 && r.ms <= HEADER_TIMEOUT_MS + 2500,
    `closed after ${r.ms} ms; the header timeout is ${HEADER_TIMEOUT_MS} ms`);
  assert.equal(mock.requests.length - before, 0);
  await probe();
});

// ---- pipelining ----

test('two requests in one write are both answered, in order', async () => {
  const before = mock.requests.length;
  const first = postChat([`Content-Length: ${len(JSON.stringify(chatBody('first mock:delay_ms=150')))}`],
    JSON.stringify(chatBody('first mock:delay_ms=150')));
  const second = postChat([`Content-Length: ${len(JSON.stringify(chatBody('second')))}`],
    JSON.stringify(chatBody('second')));
  const r = await talk(first + second, { endWhen: complete(2) });
  const { list, rest } = responses(r.data);
  assert.deepEqual(list.map((x) => x.status), [200, 200]);
  assert.equal(rest, '');
  assert.equal(JSON.parse(list[0].body).choices[0].message.content.length > 0, true);
  assert.deepEqual(mock.requests.slice(before).map((q) => q.body.messages[0].content.split(' ')[0]), ['first', 'second']);
  assert.ok(!r.closed, 'the connection stays open');
  await probe();
});

test('a malformed request pipelined after a good one: 200, then 400 and close; only the good one is forwarded', async () => {
  const before = mock.requests.length;
  const good = postChat([`Content-Length: ${len(chat)}`], chat);
  const bad = postChat(['Transfer-Encoding: chunked'], `${len(chat).toString(16)}\r\n${chat}XX0\r\n\r\n`);
  const r = await talk(good + bad);
  const { list, rest } = responses(r.data);
  assert.deepEqual(list.map((x) => x.status), [200, 400]);
  assert.equal(rest, '');
  assert.ok(r.closed);
  assert.equal(mock.requests.length - before, 1);
  await probe();
});

// ---- request lines ----

test('HTTP/2.0 in a request line is 505 and closes', () =>
  check({ wire: head(['GET /healthz HTTP/2.0', 'Host: gw']), status: 505 }));

test('HTTP/1.2 is 505 and closes', () =>
  check({ wire: head(['GET /healthz HTTP/1.2', 'Host: gw']), status: 505 }));

test('HTTP/0.9 as a version is 505 and closes', () =>
  check({ wire: head(['GET /healthz HTTP/0.9', 'Host: gw']), status: 505 }));

test('the HTTP/2 connection preface is 505 and closes', () =>
  check({ wire: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 505 }));

test('an HTTP/0.9-style line "GET /healthz" is 400 at once, not a hang', () =>
  check({ wire: 'GET /healthz\r\n', status: 400, within: 1000 }));

test('a request line with no version is 400 and closes', () =>
  check({ wire: 'GET /healthz \r\nHost: gw\r\n\r\n', status: 400 }));

test('a lower-case method is 400 and closes', () =>
  check({ wire: head(['get /healthz HTTP/1.1', 'Host: gw']), status: 400 }));

test('binary garbage (a TLS ClientHello) is 400 and closes', () =>
  check({ wire: Buffer.from('16030100a5010000a10303000102030405060708090a0b0c0d0e0f', 'hex'), status: 400 }));

test('a space inside the target is 400 and closes', () =>
  check({ wire: head(['GET /heal thz HTTP/1.1', 'Host: gw']), status: 400 }));

// ---- Host ----

test('an HTTP/1.1 request without Host is 400 and closes', () =>
  check({ wire: head(['GET /healthz HTTP/1.1']), status: 400, message: /Host/ }));

test('two Host headers are 400 and close', () =>
  check({ wire: head(['GET /healthz HTTP/1.1', 'Host: gw', 'Host: other']), status: 400, message: /Host/ }));

test('an invalid Host value is 400 and closes', () =>
  check({ wire: head(['GET /healthz HTTP/1.1', 'Host: gw/evil']), status: 400 }));

test('an HTTP/1.0 request without Host is served', () =>
  check({ wire: head(['GET /healthz HTTP/1.0']), status: 200 }));

test('an empty Host is accepted (RFC 9112 3.2)', () =>
  check({ wire: head(['GET /healthz HTTP/1.1', 'Host:']), status: 200, closes: false }));

test('an absolute-form target is routed by its path (RFC 9112 3.2.2)', async () => {
  const a = await check({
    wire: head(['POST http://gw.example/v1/chat/completions HTTP/1.1', 'Host: gw.example', auth,
      `Content-Length: ${len(chat)}`]) + chat,
    status: 200,
    closes: false,
    forwards: 1,
  });
  assert.equal(JSON.parse(a.body).object, 'chat.completion');
  await check({ wire: head(['GET https://gw.example:8443/healthz?x=1 HTTP/1.1', 'Host: gw.example:8443']), status: 200, closes: false });
});

test('an absolute-form target without Host is still 400', () =>
  check({ wire: head(['GET http://gw/healthz HTTP/1.1']), status: 400 }));

// ---- keep-alive ----

test('an idle keep-alive connection is closed after the 30 s default idle timeout', async () => {
  const { closedAt, openedAt } = await idle.closed;
  const ms = closedAt - openedAt;
  assert.ok(ms >= IDLE_TIMEOUT_MS - 1000 && ms <= IDLE_TIMEOUT_MS + 3000,
    `closed after ${ms} ms of idleness; the default idle timeout is ${IDLE_TIMEOUT_MS} ms`);
});

// A connection that makes one request, then stays idle; `closed` resolves when the server
// closes it (or 10 s past the expected idle timeout, so that a longer default fails the test).
function openIdle() {
  const sock = net.connect(gw.port, '127.0.0.1');
  let openedAt = 0;
  let buf = '';
  const closed = new Promise((resolve) => {
    const give = setTimeout(() => { resolve({ openedAt, closedAt: Infinity }); sock.destroy(); }, IDLE_TIMEOUT_MS + 10000);
    sock.on('data', (d) => { buf += d; if (complete(1)(buf)) openedAt = Date.now(); });
    sock.on('close', () => { clearTimeout(give); resolve({ openedAt, closedAt: Date.now() }); });
    sock.on('error', () => {});
  });
  sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n'));
  return { sock, closed };
}
