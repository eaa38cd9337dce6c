// Self-test of the mock Bedrock runtime (tests/mocks/bedrock.mjs), straight over raw HTTP with
// no gateway involved: its SigV4 verifier against AWS's published vectors and a signer written
// here, the Converse and ConverseStream shapes, the event-stream framing, embeddings, the
// directives and the control API.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import {
  startBedrockMock, sigv4Sign, decodeMessages, encodeMessage, crc32,
  DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY,
} from './bedrock.mjs';

const MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';
let mock;

before(async () => { mock = await startBedrockMock(); });
after(async () => { await mock.close(); });
beforeEach(() => mock.reset());

// A SigV4 signer written independently of the mock's verifier: the canonical URI re-encodes the
// path as sent, as every AWS service but S3 expects.
function sign({ method = 'POST', path, body, host, amzDate, keyId, secret, region = 'us-east-1', token }) {
  const h = (d) => crypto.createHash('sha256').update(d).digest('hex');
  const mac = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
  const enc = (s) => s.replace(/[^A-Za-z0-9\-_.~/]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  const payloadHash = h(body);
  const headers = { 'content-type': 'application/json', host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  if (token) headers['x-amz-security-token'] = token;
  const names = Object.keys(headers).sort();
  const creq = `${method}\n${enc(path)}\n\n${names.map((n) => `${n}:${headers[n]}\n`).join('')}\n${names.join(';')}\n${payloadHash}`;
  const scope = `${amzDate.slice(0, 8)}/${region}/bedrock/aws4_request`;
  const sts = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${h(creq)}`;
  const key = ['aws4_request'].reduce(mac, ['bedrock'].reduce(mac, [region].reduce(mac, mac(`AWS4${secret}`, amzDate.slice(0, 8)))));
  const sig = crypto.createHmac('sha256', key).update(sts).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${keyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}`;
  return headers;
}

const amzNow = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

// Raw HTTP; resolves with status, headers, the body bytes and whether it completed.
function call(path, body, { signed = true, keyId = DEFAULT_ACCESS_KEY_ID, secret = DEFAULT_SECRET_ACCESS_KEY, token, port = mock.port, tamper, onResponse, method = 'POST' } = {}) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const host = `127.0.0.1:${port}`;
  const headers = signed ? sign({ method, path, body: text, host, amzDate: amzNow(), keyId, secret, token }) : { 'content-type': 'application/json' };
  delete headers.host;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', () => {});
      res.on('close', () => {
        const raw = Buffer.concat(chunks);
        let json = null;
        try { json = JSON.parse(raw.toString('utf8')); } catch { /* binary or truncated */ }
        resolve({ status: res.statusCode, headers: res.headers, raw, json, complete: res.complete });
      });
      onResponse?.(res, req);
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.message === 'socket hang up' ? resolve({ status: 0, error: e }) : reject(e)));
    req.end(tamper ?? text);
  });
}

const modelPath = (op, model = MODEL) => `/model/${encodeURIComponent(model)}/${op}`;
const chat = (text, extra = {}) => ({ messages: [{ role: 'user', content: [{ text }] }], system: [{ text: 'Be brief.' }], ...extra });

// Event-stream bytes -> [{type, payload}] (checking both CRCs), asserting nothing is left over.
function events(raw) {
  const { messages, rest } = decodeMessages(raw);
  assert.equal(rest.length, 0, 'no partial message at the end');
  return messages.map((m) => ({
    mtype: m.headers[':message-type'],
    type: m.headers[':event-type'] ?? m.headers[':exception-type'],
    payload: JSON.parse(m.payload.toString('utf8')),
  }));
}

test("the mock's signer reproduces AWS's SigV4 test-suite vectors", () => {
  const base = { rawPath: '/', rawQuery: '', amzDate: '20150830T123600Z', region: 'us-east-1', service: 'service', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
  const empty = crypto.createHash('sha256').update('').digest('hex');
  const getVanilla = sigv4Sign({ ...base, method: 'GET', headers: { host: 'example.amazonaws.com', 'x-amz-date': base.amzDate }, signedHeaders: ['host', 'x-amz-date'], payloadHash: empty });
  assert.equal(getVanilla.authorization, 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
  const post = sigv4Sign({ ...base, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', host: 'example.amazonaws.com', 'x-amz-date': base.amzDate }, signedHeaders: ['content-type', 'host', 'x-amz-date'], payloadHash: crypto.createHash('sha256').update('Param1=value1').digest('hex') });
  assert.equal(post.signature, 'ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a');
  const trim = sigv4Sign({ ...base, method: 'GET', headers: { host: 'example.amazonaws.com', 'my-header1': ' value1', 'my-header2': ' "a   b   c"', 'x-amz-date': base.amzDate }, signedHeaders: ['host', 'my-header1', 'my-header2', 'x-amz-date'], payloadHash: empty });
  assert.equal(trim.signature, 'acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736');
  // the double encoding Bedrock model ids need
  const bed = sigv4Sign({ ...base, method: 'POST', rawPath: '/model/a.b-v1%3A0/converse', headers: { host: 'h', 'x-amz-date': base.amzDate }, signedHeaders: ['host', 'x-amz-date'], payloadHash: empty });
  assert.match(bed.canonicalRequest, /^POST\n\/model\/a\.b-v1%253A0\/converse\n/);
});

test('the CRC-32 is the standard one and messages round-trip', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const m = encodeMessage({ ':event-type': 'x', ':message-type': 'event' }, '{"a":1}');
  const { messages } = decodeMessages(m);
  assert.equal(messages[0].headers[':event-type'], 'x');
  assert.equal(messages[0].payload.toString(), '{"a":1}');
  m[m.length - 6] ^= 1;
  assert.throws(() => decodeMessages(m), /bad message CRC/);
});

test('unsigned, unknown key and wrong secret are refused as AWS does', async () => {
  let r = await call(modelPath('converse'), chat('hi'), { signed: false });
  assert.equal(r.status, 403);
  assert.match(r.headers['x-amzn-errortype'], /^MissingAuthenticationTokenException/);
  r = await call(modelPath('converse'), chat('hi'), { keyId: 'AKIDOTHER' });
  assert.equal(r.status, 403);
  assert.match(r.headers['x-amzn-errortype'], /^UnrecognizedClientException/);
  r = await call(modelPath('converse'), chat('hi'), { secret: 'not-the-secret' });
  assert.equal(r.status, 403);
  assert.match(r.headers['x-amzn-errortype'], /^InvalidSignatureException/);
  assert.match(r.json.message, /^The request signature we calculated does not match the signature you provided/);
  // a body changed after signing
  r = await call(modelPath('converse'), chat('hi'), { tamper: JSON.stringify(chat('HI')) });
  assert.ok(r.status === 400 || r.status === 403, `status ${r.status}`);
  assert.equal(mock.stats().requests, 4);
});

test('a signature over the path sent only once encoded is refused', async () => {
  // sign "/model/x%3A0/converse" as if it were the canonical URI (the classic bug)
  const path = modelPath('converse');
  const text = JSON.stringify(chat('hi'));
  const headers = sign({ path: decodeURIComponent(path), body: text, host: `127.0.0.1:${mock.port}`, amzDate: amzNow(), keyId: DEFAULT_ACCESS_KEY_ID, secret: DEFAULT_SECRET_ACCESS_KEY });
  delete headers.host;
  const status = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: mock.port, method: 'POST', path, headers, agent: false }, (res) => { res.resume(); resolve(res.statusCode); });
    req.end(text);
  });
  assert.equal(status, 403);
});

test('Converse: text, stop reason and deterministic usage; the model id is decoded', async () => {
  const r = await call(modelPath('converse'), chat('Hello there, mock!'));
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(r.json.output.message, { role: 'assistant', content: [{ text: 'Hello from the mock provider.' }] });
  assert.equal(r.json.stopReason, 'end_turn');
  // ceil((9 + 18) / 4) + 3
  assert.deepEqual(r.json.usage, { inputTokens: 10, outputTokens: 5, totalTokens: 15 });
  const [rec] = mock.requests();
  assert.equal(rec.modelId, MODEL);
  assert.equal(rec.operation, 'converse');
  assert.equal(rec.path, '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse');
  assert.deepEqual(rec.body, chat('Hello there, mock!'));
});

test('Converse: mock:words, mock:cached, mock:stop, mock:tool', async () => {
  let r = await call(modelPath('converse'), chat('mock:words=3 mock:cached=7 mock:stop=max_tokens'));
  assert.equal(r.json.output.message.content[0].text, 'w1 w2 w3');
  assert.equal(r.json.stopReason, 'max_tokens');
  assert.equal(r.json.usage.cacheReadInputTokens, 7);
  assert.equal(r.json.usage.totalTokens, r.json.usage.inputTokens + 3 + 7);
  r = await call(modelPath('converse'), chat('mock:tool=get_weather'));
  assert.equal(r.json.stopReason, 'tool_use');
  const [block] = r.json.output.message.content;
  assert.equal(block.toolUse.name, 'get_weather');
  assert.deepEqual(block.toolUse.input, { city: 'Paris', days: 1 });
});

test('ConverseStream: binary events with valid CRCs, same text and usage as Converse', async () => {
  const whole = await call(modelPath('converse'), chat('same'));
  const r = await call(modelPath('converse-stream'), chat('same'));
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/vnd.amazon.eventstream');
  assert.ok(r.complete);
  const ev = events(r.raw);
  assert.ok(ev.every((e) => e.mtype === 'event'));
  assert.deepEqual(ev.map((e) => e.type), ['messageStart', ...Array(5).fill('contentBlockDelta'), 'contentBlockStop', 'messageStop', 'metadata']);
  assert.equal(ev.filter((e) => e.type === 'contentBlockDelta').map((e) => e.payload.delta.text).join(''), whole.json.output.message.content[0].text);
  assert.equal(ev.at(-2).payload.stopReason, 'end_turn');
  assert.deepEqual(ev.at(-1).payload.usage, whole.json.usage);
  assert.ok(ev.every((e) => typeof e.payload.p === 'string'), 'events carry the "p" padding as Bedrock does');
});

test('ConverseStream: mock:split sends the same bytes a few at a time', async () => {
  const a = await call(modelPath('converse-stream'), chat('split me'));
  let reads = 0;
  const b = await call(modelPath('converse-stream'), chat('split me mock:split'), { onResponse: (res) => res.on('data', () => reads++) });
  // the directive changes the prompt: compare the events, not the usage
  const strip = (ev) => ev.filter((e) => e.type !== 'metadata').map((e) => ({ ...e, payload: { ...e.payload, p: undefined } }));
  assert.deepEqual(strip(events(b.raw)), strip(events(a.raw)));
  assert.ok(reads > 50, `only ${reads} reads`);
});

test('ConverseStream: mock:tools=2 gives two toolUse blocks named after the request tools', async () => {
  const tools = { toolConfig: { tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: {} } } }, { toolSpec: { name: 'get_time', inputSchema: { json: {} } } }] } };
  const r = await call(modelPath('converse-stream'), chat('mock:tools=2', tools));
  const ev = events(r.raw);
  const starts = ev.filter((e) => e.type === 'contentBlockStart').map((e) => e.payload);
  assert.deepEqual(starts.map((s) => [s.contentBlockIndex, s.start.toolUse.name]), [[0, 'get_weather'], [1, 'get_time']]);
  for (const s of starts) {
    const input = ev.filter((e) => e.type === 'contentBlockDelta' && e.payload.contentBlockIndex === s.contentBlockIndex).map((e) => e.payload.delta.toolUse.input).join('');
    assert.ok(JSON.parse(input).city);
  }
  assert.equal(ev.find((e) => e.type === 'messageStop').payload.stopReason, 'tool_use');
});

test('ConverseStream: mock:exception_mid_stream and mock:no_metadata', async () => {
  let ev = events((await call(modelPath('converse-stream'), chat('mock:exception_mid_stream'))).raw);
  assert.deepEqual(ev.map((e) => e.type), ['messageStart', 'contentBlockDelta', 'throttlingException']);
  assert.equal(ev[2].mtype, 'exception');
  assert.match(ev[2].payload.message, /Too many tokens/);
  ev = events((await call(modelPath('converse-stream'), chat('mock:no_metadata'))).raw);
  assert.equal(ev.at(-1).type, 'messageStop');
});

test('ConverseStream: mock:cut_after=N destroys the socket after N messages', async () => {
  const r = await call(modelPath('converse-stream'), chat('mock:cut_after=2'));
  // the answer started (headers, then two messages) and was cut: never skip the count
  assert.equal(r.status, 200);
  assert.equal(r.complete, false);
  assert.equal(decodeMessages(r.raw).messages.length, 2);
  assert.equal(mock.stats().dropped, 1);
});

test('errors: mock:status=429 and 503 with x-amzn-errortype and a {"message"} body', async () => {
  let r = await call(modelPath('converse'), chat('mock:status=429'));
  assert.equal(r.status, 429);
  assert.match(r.headers['x-amzn-errortype'], /^ThrottlingException:/);
  assert.deepEqual(Object.keys(r.json), ['message']);
  r = await call(modelPath('converse-stream'), chat('mock:status=503'));
  assert.equal(r.status, 503);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-amzn-errortype'], /^ServiceUnavailableException:/);
  r = await call(modelPath('converse'), { messages: [{ role: 'user', content: [{ text: 'a' }] }, { role: 'user', content: [{ text: 'b' }] }] });
  assert.equal(r.status, 400, 'turns must alternate, as Bedrock insists');
});

test('mock:delay_ms waits and mock:stall is counted as aborted when the client leaves', async () => {
  const t0 = Date.now();
  await call(modelPath('converse'), chat('mock:delay_ms=120'));
  assert.ok(Date.now() - t0 >= 110);
  mock.reset();
  // a fresh stalled request, then the client goes away
  await new Promise((resolve) => {
    const text = JSON.stringify(chat('mock:stall'));
    const path = modelPath('converse');
    const headers = sign({ path, body: text, host: `127.0.0.1:${mock.port}`, amzDate: amzNow(), keyId: DEFAULT_ACCESS_KEY_ID, secret: DEFAULT_SECRET_ACCESS_KEY });
    delete headers.host;
    const req = http.request({ host: '127.0.0.1', port: mock.port, method: 'POST', path, headers, agent: false });
    req.on('error', () => {});
    req.end(text);
    setTimeout(() => { req.destroy(); resolve(); }, 50);
  });
  for (let i = 0; i < 100 && mock.stats().aborted < 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(mock.stats().aborted, 1);
});

test('InvokeModel embeddings: Titan and Cohere, 8 dimensions, deterministic', async () => {
  let r = await call(modelPath('invoke', 'amazon.titan-embed-text-v2:0'), { inputText: 'hello world' });
  assert.equal(r.status, 200);
  assert.equal(r.json.embedding.length, 8);
  assert.equal(r.json.inputTextTokenCount, 3);
  const again = await call(modelPath('invoke', 'amazon.titan-embed-text-v2:0'), { inputText: 'hello world' });
  assert.deepEqual(again.json.embedding, r.json.embedding);
  r = await call(modelPath('invoke', 'cohere.embed-english-v3'), { texts: ['a', 'hello world'], input_type: 'search_document' });
  assert.equal(r.json.embeddings.length, 2);
  assert.deepEqual(r.json.embeddings[1], again.json.embedding);
  r = await call(modelPath('invoke', 'meta.llama3-8b-instruct-v1:0'), { prompt: 'x' });
  assert.equal(r.status, 400);
});

test('session tokens: required and signed when the mock has one', async () => {
  const m2 = await startBedrockMock({ sessionToken: 'tok//+=', region: 'eu-west-1', accessKeyId: 'ASIATEMP', secretAccessKey: 's3cr3t' });
  try {
    const opts = { port: m2.port, keyId: 'ASIATEMP', secret: 's3cr3t' };
    let r = await call(modelPath('converse'), chat('x'), opts);
    assert.equal(r.status, 403, 'the request was signed for us-east-1 and has no token');
    r = await new Promise((resolve) => {
      const text = JSON.stringify(chat('x'));
      const path = modelPath('converse');
      const headers = sign({ path, body: text, host: `127.0.0.1:${m2.port}`, amzDate: amzNow(), keyId: 'ASIATEMP', secret: 's3cr3t', region: 'eu-west-1', token: 'tok//+=' });
      delete headers.host;
      const req = http.request({ host: '127.0.0.1', port: m2.port, method: 'POST', path, headers, agent: false }, (res) => { res.resume(); resolve({ status: res.statusCode }); });
      req.end(text);
    });
    assert.equal(r.status, 200);
  } finally {
    await m2.close();
  }
});

test('control API: requests, stats, reset; unknown routes 404', async () => {
  await call(modelPath('converse'), chat('one'));
  let r = await call('/model/x/other', chat('two'));
  assert.equal(r.status, 404);
  const list = await call('/_mock/requests', undefined, { signed: false, method: 'GET' });
  assert.equal(list.json.length, 2);
  const stats = await call('/_mock/stats', undefined, { signed: false, method: 'GET' });
  assert.equal(stats.json.requests, 2);
  r = await call('/_mock/reset', undefined, { signed: false });
  assert.deepEqual(r.json, { ok: true });
  assert.equal(mock.requests().length, 0);
  assert.equal(mock.stats().requests, 0);
});

test('CLI prints "listening PORT" and serves signed requests', async () => {
  const script = fileURLToPath(new URL('./bedrock.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--port', '0', '--region', 'us-east-1', '--access-key-id', 'AKIDCLI', '--secret-access-key', 'cli-secret'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; const m = /^listening (\d+)\n/.exec(out); if (m) resolve(Number(m[1])); });
      child.on('exit', (code) => reject(new Error(`mock exited ${code}`)));
    });
    const r = await call(modelPath('converse'), chat('cli'), { port, keyId: 'AKIDCLI', secret: 'cli-secret' });
    assert.equal(r.status, 200);
  } finally {
    child.kill('SIGTERM');
  }
});

test('Converse: mock:cache_write and mock:cache_write_hour give cacheWriteInputTokens and cacheDetails', async () => {
  const r = await call(modelPath('converse'), chat('mock:words=3 mock:prompt_tokens=90 mock:cache_write=12 mock:cache_write_hour=5'));
  assert.equal(r.json.usage.inputTokens, 90);
  assert.equal(r.json.usage.cacheWriteInputTokens, 17);
  assert.deepEqual(r.json.usage.cacheDetails, [{ ttl: '1h', inputTokens: 5 }, { ttl: '5m', inputTokens: 12 }]);
  assert.equal(r.json.usage.totalTokens, 90 + 3 + 17);
});
