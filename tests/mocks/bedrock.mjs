// Mock AWS Bedrock runtime for Tollgate's integration tests.
//
// Speaks Bedrock's wire format for:
//   POST /model/{modelId}/converse         (Converse: JSON)
//   POST /model/{modelId}/converse-stream  (ConverseStream: application/vnd.amazon.eventstream,
//                                           binary messages with correct CRC-32s)
//   POST /model/{modelId}/invoke           (InvokeModel, embeddings only: amazon.titan-embed-*
//                                           {"inputText"} and cohere.embed-* {"texts"}; 8 dims)
// and a control API that needs no auth and is never recorded:
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> [{method, path, modelId, operation, headers, body, raw}, ...]
//   POST /_mock/reset     -> clears requests and counters
//
// AUTH. Every request must be signed with AWS Signature Version 4 for service "bedrock", the
// mock's region and access key. The mock recomputes the signature itself with node:crypto (an
// implementation independent of the gateway's C signer): the canonical URI is the path as sent,
// percent-encoded once more (so "v1%3A0" is signed as "v1%253A0", as for every service but S3),
// the payload hash is the SHA-256 of the body received. Failures answer 403 as AWS does, with
// `x-amzn-errortype`: MissingAuthenticationTokenException, UnrecognizedClientException (unknown
// key id or session token), InvalidSignatureException ("The request signature we calculated
// does not match the signature you provided..."; the body also carries the canonical request
// the mock expected, as AWS's does, to make a mismatch easy to debug).
//
// DIRECTIVES, anywhere in the raw body text (typically in a message's text): `mock:NAME` or
// `mock:NAME=VALUE`. Applied after auth, in this order: drop, stall, delay_ms, status, then
// routing.
//   mock:drop                 destroy the socket without any response
//   mock:stall                never answer (counted as `aborted` when the client gives up)
//   mock:delay_ms=N           wait N ms before the response headers
//   mock:status=N             answer status N with Bedrock's error shape: {"message"} and
//                             x-amzn-errortype (429 ThrottlingException, 503
//                             ServiceUnavailableException, 400 ValidationException, ...)
//   mock:words=N              the text is "w1 w2 ... wN" (N deltas in a stream)
//   mock:tool=NAME            the answer is one toolUse of tool NAME (stopReason tool_use)
//   mock:tools=N              N toolUse blocks, named after the request's tools in order
//                             (or tool_1, tool_2, ...)
//   mock:cached=N             usage.cacheReadInputTokens = N (added to totalTokens)
//   mock:cache_write=N        N tokens written to the 5-minute cache, mock:cache_write_hour=N to
//                             the 1-hour one: usage.cacheWriteInputTokens = their sum (added to
//                             totalTokens) and usage.cacheDetails [{ttl, inputTokens}] (1h first)
//   mock:prompt_tokens=N      inputTokens = N whatever the request's size
//   mock:stop=REASON          stopReason (end_turn by default; max_tokens, ...)
//   mock:chunk_delay_ms=N     stream: wait N ms between messages
//   mock:cut_after=N          stream: destroy the socket after N messages
//   mock:split                stream: write the bytes 1-3 at a time, yielding between writes
//   mock:exception_mid_stream stream: after the first contentBlockDelta, a throttlingException
//                             message, then the end of the response
//   mock:no_metadata          stream: no metadata message after messageStop
//
// Deterministic usage (identical for streamed and non-streamed calls):
//   inputTokens  = ceil(chars of all text blocks in system and messages / 4) + 3 per message
//   outputTokens = number of words (or 5 per toolUse)
//
// CLI: node tests/mocks/bedrock.mjs --port N [--region R] [--access-key-id A
//      --secret-access-key S] [--session-token T]
//      prints "listening PORT" and serves until SIGTERM/SIGINT.

import crypto from 'node:crypto';
import {
  parseDirectives, parseBody, simulatedStatus, makeWords, pieces, embeddingVector,
  jsonSender, holdDirectives, streamFrames, createMockServer, runMain,
} from './common.mjs';

export { parseDirectives };

export const DEFAULT_REGION = 'us-east-1';
export const DEFAULT_ACCESS_KEY_ID = 'AKIDEXAMPLE';
export const DEFAULT_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const SERVICE = 'bedrock';
const PADDING = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const SIG_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

// ---- the event-stream framing ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32(buf, crc = 0) {
  let c = ~crc >>> 0;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

// One message: string headers (type 7) in the given order, then the payload.
export function encodeMessage(headers, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '', 'utf8');
  const hs = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, 'utf8');
    const v = Buffer.from(String(value), 'utf8');
    const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
    h.writeUInt8(n.length, 0);
    n.copy(h, 1);
    h.writeUInt8(7, 1 + n.length);
    h.writeUInt16BE(v.length, 2 + n.length);
    v.copy(h, 4 + n.length);
    hs.push(h);
  }
  const hbuf = Buffer.concat(hs);
  const total = 16 + hbuf.length + body.length;
  const msg = Buffer.alloc(total);
  msg.writeUInt32BE(total, 0);
  msg.writeUInt32BE(hbuf.length, 4);
  msg.writeUInt32BE(crc32(msg.subarray(0, 8)), 8);
  hbuf.copy(msg, 12);
  body.copy(msg, 12 + hbuf.length);
  msg.writeUInt32BE(crc32(msg.subarray(0, total - 4)), total - 4);
  return msg;
}

// Bedrock's events carry a "p" member of random length to hide the payload sizes; a fixed
// one here, so that the bytes are deterministic but parsers still meet it.
export function eventMessage(eventType, obj, pad = 10) {
  const payload = JSON.stringify({ ...obj, p: PADDING.slice(0, pad) });
  return encodeMessage({ ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' }, payload);
}

export function exceptionMessage(exceptionType, message) {
  return encodeMessage({ ':exception-type': exceptionType, ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message }));
}

// Whole messages in buf -> [{headers, payload}] (any header type), checking both CRCs; the
// bytes of an incomplete last message come back as rest.
export function decodeMessages(buf) {
  const messages = [];
  let off = 0;
  while (buf.length - off >= 12) {
    const total = buf.readUInt32BE(off);
    const hlen = buf.readUInt32BE(off + 4);
    if (crc32(buf.subarray(off, off + 8)) !== buf.readUInt32BE(off + 8)) throw new Error('bad prelude CRC');
    if (buf.length - off < total) break;
    const msg = buf.subarray(off, off + total);
    if (crc32(msg.subarray(0, total - 4)) !== msg.readUInt32BE(total - 4)) throw new Error('bad message CRC');
    const headers = {};
    let i = 12;
    while (i < 12 + hlen) {
      const nlen = msg.readUInt8(i);
      const name = msg.toString('utf8', i + 1, i + 1 + nlen);
      i += 1 + nlen;
      const type = msg.readUInt8(i++);
      const fixed = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 }[type];
      if (fixed !== undefined) {
        headers[name] = type === 0 ? true : type === 1 ? false : msg.subarray(i, i + fixed);
        i += fixed;
      } else {
        const vlen = msg.readUInt16BE(i);
        const v = msg.subarray(i + 2, i + 2 + vlen);
        headers[name] = type === 7 ? v.toString('utf8') : v;
        i += 2 + vlen;
      }
    }
    messages.push({ headers, payload: msg.subarray(12 + hlen, total - 4) });
    off += total;
  }
  return { messages, rest: buf.subarray(off) };
}

// ---- SigV4 ----

const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();

// RFC 3986 percent-encoding of every byte but the unreserved ones (and '/' when keepSlash).
function uriEncode(s, keepSlash) {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

// The canonical URI for every service but S3: the path as sent, encoded once more.
export function canonicalUri(rawPath) {
  return rawPath ? uriEncode(rawPath, true) : '/';
}

function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  return rawQuery.split('&').filter(Boolean).map((kv) => {
    const i = kv.indexOf('=');
    const k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
    const v = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1));
    return [uriEncode(k, false), uriEncode(v, false)];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join('&');
}

const trimValue = (v) => String(v).trim().replace(/\s+/g, ' ');

// Signs: {method, rawPath, rawQuery, headers: {lower-case name: value}, signedHeaders: [names],
// payloadHash, amzDate, region, service, accessKeyId, secretAccessKey} -> {authorization,
// canonicalRequest, stringToSign, signature}.
export function sigv4Sign(r) {
  const names = [...r.signedHeaders].map((n) => n.toLowerCase()).sort();
  const canonicalHeaders = names.map((n) => `${n}:${trimValue(r.headers[n] ?? '')}\n`).join('');
  const signed = names.join(';');
  const canonicalRequest = [r.method, canonicalUri(r.rawPath), canonicalQuery(r.rawQuery ?? ''), canonicalHeaders, signed, r.payloadHash].join('\n');
  const date = r.amzDate.slice(0, 8);
  const scope = `${date}/${r.region}/${r.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', r.amzDate, scope, sha256hex(canonicalRequest)].join('\n');
  let key = hmac(`AWS4${r.secretAccessKey}`, date);
  key = hmac(key, r.region);
  key = hmac(key, r.service);
  key = hmac(key, 'aws4_request');
  const signature = crypto.createHmac('sha256', key).update(stringToSign).digest('hex');
  const authorization = `AWS4-HMAC-SHA256 Credential=${r.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
  return { authorization, canonicalRequest, stringToSign, signature };
}

function parseAuthorization(h) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$/.exec(h ?? '');
  if (!m) return null;
  return { accessKeyId: m[1], date: m[2], region: m[3], service: m[4], signedHeaders: m[5].split(';'), signature: m[6] };
}

// ---- answers ----

const sendJSON = jsonSender('application/json', { 'x-amzn-requestid': 'mock-request' });

function sendError(res, status, type, message) {
  sendJSON(res, status, { message }, { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
}

const ERROR_TYPES = {
  400: 'ValidationException',
  403: 'AccessDeniedException',
  404: 'ResourceNotFoundException',
  408: 'ModelTimeoutException',
  424: 'ModelErrorException',
  429: 'ThrottlingException',
  500: 'InternalServerException',
  503: 'ServiceUnavailableException',
};

function errorType(status) {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'InternalServerException' : 'ValidationException');
}

function blockChars(blocks) {
  if (!Array.isArray(blocks)) return 0;
  let n = 0;
  for (const b of blocks) {
    if (typeof b?.text === 'string') n += b.text.length;
    for (const c of b?.toolResult?.content ?? []) {
      if (typeof c?.text === 'string') n += c.text.length;
      if (c?.json !== undefined) n += JSON.stringify(c.json).length;
    }
  }
  return n;
}

function promptTokens(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const chars = blockChars(body.system) + msgs.reduce((n, m) => n + blockChars(m?.content), 0);
  return Math.ceil(chars / 4) + 3 * msgs.length;
}

// The toolUse blocks the directives ask for: [{toolUseId, name, input}].
function makeTools(d, body, id) {
  const n = Number.isInteger(d.tools) && d.tools > 0 ? d.tools : d.tool ? 1 : 0;
  const declared = (body.toolConfig?.tools ?? []).map((t) => t?.toolSpec?.name).filter(Boolean);
  return Array.from({ length: n }, (_, i) => ({
    toolUseId: `tooluse_mock${String(id).padStart(4, '0')}_${i}`,
    name: typeof d.tool === 'string' && n === 1 ? d.tool : declared[i] ?? `tool_${i + 1}`,
    input: { city: i === 0 ? 'Paris' : 'Tokyo', days: i + 1 },
  }));
}

// 8 deterministic floats per text, as a plain array.
function embeddingFor(text) {
  return Array.from(embeddingVector(text));
}

export async function startBedrockMock(opts = {}) {
  const region = opts.region ?? DEFAULT_REGION;
  const accessKeyId = opts.accessKeyId ?? DEFAULT_ACCESS_KEY_ID;
  const secretAccessKey = opts.secretAccessKey ?? DEFAULT_SECRET_ACCESS_KEY;
  const sessionToken = opts.sessionToken ?? null;
  const mock = createMockServer({
    name: 'bedrock',
    sendJSON,
    onRequest: handle,
    internalError: (res, err) => sendError(res, 500, 'InternalServerException', `mock internal error: ${err.message}`),
    controlNotFound: (req, res, path) => sendError(res, 404, 'UnknownOperationException', `Unknown operation ${req.method} ${path}`),
  });

  // null when the signature holds, else [status, type, message].
  function verify(req, rawBody) {
    const auth = req.headers.authorization;
    if (!auth) return [403, 'MissingAuthenticationTokenException', 'Missing Authentication Token'];
    const a = parseAuthorization(auth);
    if (!a) return [403, 'IncompleteSignatureException', `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${auth.slice(0, 40)}`];
    if (a.accessKeyId !== accessKeyId) return [403, 'UnrecognizedClientException', 'The security token included in the request is invalid.'];
    const amzDate = req.headers['x-amz-date'] ?? '';
    if (!/^\d{8}T\d{6}Z$/.test(amzDate)) return [403, 'IncompleteSignatureException', 'Authorization header requires existence of either a \'X-Amz-Date\' or a \'Date\' header.'];
    if (a.date !== amzDate.slice(0, 8) || a.region !== region || a.service !== SERVICE) {
      return [403, 'InvalidSignatureException', `Credential should be scoped to a valid region and service, and to the date of X-Amz-Date. Expected ${amzDate.slice(0, 8)}/${region}/${SERVICE}.`];
    }
    for (const must of ['host', 'x-amz-date']) {
      if (!a.signedHeaders.includes(must)) return [403, 'InvalidSignatureException', `'${must}' must be a signed header.`];
    }
    if (sessionToken !== null) {
      if (req.headers['x-amz-security-token'] !== sessionToken) return [403, 'UnrecognizedClientException', 'The security token included in the request is invalid.'];
      if (!a.signedHeaders.includes('x-amz-security-token')) return [403, 'InvalidSignatureException', "'x-amz-security-token' must be a signed header."];
    }
    const payloadHash = sha256hex(rawBody);
    const sent = req.headers['x-amz-content-sha256'];
    if (sent !== undefined && sent !== payloadHash) return [400, 'ValidationException', 'The provided x-amz-content-sha256 header does not match what was computed.'];
    const q = req.url.indexOf('?');
    const s = sigv4Sign({
      method: req.method,
      rawPath: q < 0 ? req.url : req.url.slice(0, q),
      rawQuery: q < 0 ? '' : req.url.slice(q + 1),
      headers: req.headers,
      signedHeaders: a.signedHeaders,
      payloadHash,
      amzDate,
      region,
      service: SERVICE,
      accessKeyId,
      secretAccessKey,
    });
    if (s.signature !== a.signature) {
      return [403, 'InvalidSignatureException', `${SIG_MISMATCH}\n\nThe Canonical String for this request should have been\n'${s.canonicalRequest}'\n\nThe String-to-Sign should have been\n'${s.stringToSign}'\n`];
    }
    if (Number.isFinite(opts.maxSkewMs)) {
      const t = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
      if (Math.abs(Date.now() - t) > opts.maxSkewMs) return [403, 'InvalidSignatureException', 'Signature expired: the request time is too far from the server time.'];
    }
    return null;
  }

  async function handle(ctx) {
    const { req, res, rawBody, raw } = ctx;
    const rawPath = req.url.split('?')[0];
    const m = /^\/model\/([^/]+)\/(converse|converse-stream|invoke)$/.exec(rawPath);
    let modelId = null;
    try { modelId = m ? decodeURIComponent(m[1]) : null; } catch { /* reported as a 404 below */ }
    const body = parseBody(raw); // a parse error is reported below, after auth
    mock.requests.push({ method: req.method, path: req.url, modelId, operation: m ? m[2] : null, headers: req.headers, body, raw });

    ctx.id = mock.nextId();
    const failed = verify(req, rawBody);
    if (failed) return sendError(res, failed[0], failed[1], failed[2]);

    if (!(await holdDirectives(ctx))) return;
    const status = simulatedStatus(ctx.d);
    if (status) return sendError(res, status, errorType(status), `Mock provider: simulated ${status} error (mock:status=${status}).`);
    if (req.method !== 'POST' || !m || !modelId) return sendError(res, 404, 'UnknownOperationException', `Unknown operation ${req.method} ${rawPath}`);
    if (body === null || typeof body !== 'object') return sendError(res, 400, 'SerializationException', 'Could not parse the request body as JSON.');
    if (m[2] === 'invoke') return invoke(ctx, modelId, body);
    if (!Array.isArray(body.messages) || body.messages.length === 0) return sendError(res, 400, 'ValidationException', 'A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    for (let i = 1; i < body.messages.length; i++) {
      if (body.messages[i].role === body.messages[i - 1].role) return sendError(res, 400, 'ValidationException', 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.');
    }
    return m[2] === 'converse' ? converse(ctx, body) : converseStream(ctx, body);
  }

  function answer(ctx, body) {
    const words = makeWords(ctx.d);
    const tools = makeTools(ctx.d, body, ctx.id);
    const n = (k) => (Number.isInteger(ctx.d[k]) ? ctx.d[k] : 0);
    const inputTokens = Number.isInteger(ctx.d.prompt_tokens) ? ctx.d.prompt_tokens : promptTokens(body);
    const outputTokens = tools.length ? 5 * tools.length : words.length;
    const cached = n('cached'), w5 = n('cache_write'), w1 = n('cache_write_hour');
    const usage = { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens + cached + w5 + w1 };
    if (cached) usage.cacheReadInputTokens = cached;
    if (w5 || w1) {
      usage.cacheWriteInputTokens = w5 + w1;
      usage.cacheDetails = [...(w1 ? [{ ttl: '1h', inputTokens: w1 }] : []), ...(w5 ? [{ ttl: '5m', inputTokens: w5 }] : [])];
    }
    const stopReason = typeof ctx.d.stop === 'string' ? ctx.d.stop : tools.length ? 'tool_use' : 'end_turn';
    return { words, tools, usage, stopReason };
  }

  function converse(ctx, body) {
    const a = answer(ctx, body);
    const content = a.tools.length ? a.tools.map((t) => ({ toolUse: t })) : [{ text: a.words.join(' ') }];
    return sendJSON(ctx.res, 200, {
      output: { message: { role: 'assistant', content } },
      stopReason: a.stopReason,
      usage: a.usage,
      metrics: { latencyMs: 42 },
    });
  }

  function converseStream(ctx, body) {
    const a = answer(ctx, body);
    const msgs = [eventMessage('messageStart', { role: 'assistant' }, 6)];
    let firstDelta = -1;
    if (a.tools.length) {
      a.tools.forEach((t, i) => {
        msgs.push(eventMessage('contentBlockStart', { contentBlockIndex: i, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } } }, 12));
        const input = JSON.stringify(t.input);
        const cut = Math.floor(input.length / 2);
        for (const frag of [input.slice(0, cut), input.slice(cut)]) {
          if (firstDelta < 0) firstDelta = msgs.length;
          msgs.push(eventMessage('contentBlockDelta', { contentBlockIndex: i, delta: { toolUse: { input: frag } } }, 20));
        }
        msgs.push(eventMessage('contentBlockStop', { contentBlockIndex: i }, 3));
      });
    } else {
      pieces(a.words).forEach((text, i) => {
        if (firstDelta < 0) firstDelta = msgs.length;
        msgs.push(eventMessage('contentBlockDelta', { contentBlockIndex: 0, delta: { text } }, 1 + (i % 30)));
      });
      msgs.push(eventMessage('contentBlockStop', { contentBlockIndex: 0 }, 3));
    }
    msgs.push(eventMessage('messageStop', { stopReason: a.stopReason }, 8));
    if (!ctx.d.no_metadata) msgs.push(eventMessage('metadata', { usage: a.usage, metrics: { latencyMs: 42 } }, 4));
    if (ctx.d.exception_mid_stream && firstDelta >= 0) {
      msgs.splice(firstDelta + 1, msgs.length, exceptionMessage('throttlingException', 'Too many tokens, please wait before trying again.'));
    }
    return stream(ctx, msgs);
  }

  function invoke(ctx, modelId, body) {
    if (modelId.includes('amazon.titan-embed')) {
      if (typeof body.inputText !== 'string') return sendError(ctx.res, 400, 'ValidationException', 'Malformed input request: #: required key [inputText] not found, please reformat your input and try again.');
      return sendJSON(ctx.res, 200, { embedding: embeddingFor(body.inputText), inputTextTokenCount: Math.ceil(body.inputText.length / 4) });
    }
    if (modelId.includes('cohere.embed')) {
      if (!Array.isArray(body.texts) || typeof body.input_type !== 'string') return sendError(ctx.res, 400, 'ValidationException', 'Malformed input request: #: required key [texts] not found, #: required key [input_type] not found, please reformat your input and try again.');
      return sendJSON(ctx.res, 200, { id: `mock-embed-${ctx.id}`, texts: body.texts, embeddings: body.texts.map((t) => embeddingFor(String(t))), response_type: 'embeddings_floats' });
    }
    return sendError(ctx.res, 400, 'ValidationException', 'The provided model identifier is invalid.');
  }

  function stream(ctx, msgs) {
    return streamFrames(ctx, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': `mock-${ctx.id}` }, msgs);
  }

  const port = await mock.listen(opts.port);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    region,
    accessKeyId,
    secretAccessKey,
    requests: () => mock.requests,
    stats: mock.stats,
    reset: mock.reset,
    close: mock.close,
  };
}

await runMain(import.meta.url, (arg) => startBedrockMock({
  port: Number(arg('--port') ?? 0),
  region: arg('--region'),
  accessKeyId: arg('--access-key-id'),
  secretAccessKey: arg('--secret-access-key'),
  sessionToken: arg('--session-token'),
}));
