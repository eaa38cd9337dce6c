// Mock Anthropic provider for Tollgate's integration tests.
//
// Speaks Anthropic's Messages API:
//   POST /v1/messages   (a message object, or SSE events when "stream": true)
// and a control API that needs no auth and is never recorded:
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> [{method, path, headers, body, raw}, ...]
//   POST /_mock/reset     -> clears requests and counters
//
// Every /v1 request must carry `x-api-key: <apiKey>` (default "sk-ant-test"), or
// `Authorization: Bearer <apiKey>`, else 401 authentication_error; and an
// `anthropic-version` header (any value), else 400 invalid_request_error.
// Errors have Anthropic's shape: {"type":"error","error":{"type","message"},"request_id"}.
// The body is checked as the real API does for what a translation can get wrong:
// model, max_tokens and a messages array are required, and a message role must
// be "user" or "assistant" (system goes in the top-level `system`).
//
// DIRECTIVES (tokens anywhere in the raw body text, as in openai.mjs), applied
// in this order: auth, version, drop, stall, delay_ms, status, then the answer.
//   mock:drop                  destroy the socket without any response
//   mock:stall                 never answer (counted as `aborted` when the client leaves)
//   mock:delay_ms=N            wait N ms before sending response headers
//   mock:status=N              answer N with an Anthropic error body (429 sends
//                              `retry-after: 1`; 529 is overloaded_error)
//   mock:retry_after=N         `retry-after: N` on that error instead
//   mock:words=N               the text is "w1 w2 ... wN" (N text deltas in a stream)
//   mock:tool=NAME             with tools in the request: answer "Calling NAME." and a
//                              tool_use block for NAME (stop_reason tool_use)
//   mock:tools=2               two tool_use blocks (NAME, or the request's first tool, then
//                              the request's next tool, or NAME again)
//   mock:cache_read=N          usage.cache_read_input_tokens = N (taken out of
//                              input_tokens, as Anthropic counts them)
//   mock:chunk_delay_ms=N      stream: wait N ms between SSE events
//   mock:cut_after=N           stream: destroy the socket after N events (every event
//                              counts, ping included); no message_stop
//   mock:split                 stream: write the bytes 1-3 at a time
//   mock:error_mid_stream      stream: after the first delta send an `event: error`
//                              (overloaded_error) and end the response
//
// Deterministic usage (identical for streamed and non-streamed calls):
//   input_tokens  = ceil(chars of all message texts / 4) + 3 per message (the top-level
//                   system counts as one message), minus cache_read
//   output_tokens = number of text words, + 5 per tool_use block
// max_tokens below the word count cuts the text there (stop_reason max_tokens).
//
// CLI: node tests/mocks/anthropic.mjs --port N [--api-key K]
//      prints "listening PORT" and serves until SIGTERM/SIGINT.

import http from 'node:http';
import { setTimeout as sleepRaw } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

const DEFAULT_CONTENT = 'Hello from the mock provider.';

export function parseDirectives(raw) {
  const d = {};
  for (const m of raw.matchAll(/mock:([a-z_]+)(?:=([A-Za-z0-9_.-]+))?/g)) {
    const v = m[2];
    d[m[1]] = v === undefined ? true : /^-?\d+$/.test(v) ? Number(v) : v;
  }
  return d;
}

function errorType(status) {
  switch (status) {
    case 400: return 'invalid_request_error';
    case 401: return 'authentication_error';
    case 402: return 'billing_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 413: return 'request_too_large';
    case 429: return 'rate_limit_error';
    case 504: return 'timeout_error';
    case 529: return 'overloaded_error';
    default: return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

function errorBody(type, message, reqId = 'req_mock') {
  return { type: 'error', error: { type, message }, request_id: reqId };
}

// Characters of text in a content: a string, or blocks with text (tool results too).
function contentChars(c) {
  if (typeof c === 'string') return c.length;
  if (!Array.isArray(c)) return 0;
  return c.reduce((n, b) => {
    if (typeof b?.text === 'string') return n + b.text.length;
    if (b?.type === 'tool_result') return n + contentChars(b.content);
    if (b?.type === 'tool_use') return n + JSON.stringify(b.input ?? {}).length;
    return n;
  }, 0);
}

function inputTokens(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  let chars = msgs.reduce((n, m) => n + contentChars(m?.content), 0);
  let count = msgs.length;
  if (body.system !== undefined) {
    chars += contentChars(body.system);
    count++;
  }
  return Math.ceil(chars / 4) + 3 * count;
}

function makeWords(d) {
  if (Number.isInteger(d.words) && d.words >= 0) return Array.from({ length: d.words }, (_, i) => `w${i + 1}`);
  return DEFAULT_CONTENT.split(' ');
}

// Stream pieces carry the leading space, so the deltas join to the non-streamed text.
function pieces(words) {
  return words.map((w, i) => (i === 0 ? w : ` ${w}`));
}

// Deterministic input JSON text for tool call i, and its fragments for input_json_delta.
function toolInput(i) {
  return JSON.stringify({ query: `mock query ${i + 1}`, limit: i + 1 });
}
function fragments(s) {
  const a = Math.floor(s.length / 3);
  const b = Math.floor((2 * s.length) / 3);
  return [s.slice(0, a), s.slice(a, b), s.slice(b)];
}

export async function startAnthropicMock(opts = {}) {
  const apiKey = opts.apiKey ?? 'sk-ant-test';
  const requests = [];
  const counters = { requests: 0, aborted: 0, completed: 0, dropped: 0 };
  let active = 0;
  let epoch = 0;
  let seq = 0;

  const stats = () => ({ requests: counters.requests, aborted: counters.aborted, active, completed: counters.completed, dropped: counters.dropped });
  const reset = () => {
    requests.length = 0;
    for (const k of Object.keys(counters)) counters[k] = 0;
    epoch++;
  };

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      console.error('anthropic mock: handler error', err);
      if (!res.headersSent && !res.destroyed) sendJSON(res, 500, errorBody('api_error', `mock internal error: ${err.message}`));
      else res.destroy();
    });
  });
  server.on('connection', (s) => s.setNoDelay(true));

  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    const path = new URL(req.url, 'http://x').pathname;

    if (path.startsWith('/_mock/')) return control(req, res, path);

    const myEpoch = epoch;
    const ctl = new AbortController();
    const st = { selfDestroyed: false };
    counters.requests++;
    active++;
    res.on('close', () => {
      active--;
      ctl.abort();
      if (myEpoch !== epoch) return;
      if (st.selfDestroyed) counters.dropped++;
      else if (res.writableFinished) counters.completed++;
      else counters.aborted++;
    });

    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { /* reported below, after auth */ }
    requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw });

    const id = ++seq;
    const ctx = { req, res, signal: ctl.signal, st, d: parseDirectives(raw), id, reqId: `req_mock${String(id).padStart(6, '0')}` };

    const auth = req.headers.authorization ?? '';
    const key = req.headers['x-api-key'] ?? (auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
    if (key !== apiKey) {
      return sendJSON(res, 401, errorBody('authentication_error', key === undefined ? 'x-api-key header is required' : 'invalid x-api-key', ctx.reqId));
    }
    if (!req.headers['anthropic-version']) {
      return sendJSON(res, 400, errorBody('invalid_request_error', 'anthropic-version: header is required', ctx.reqId));
    }

    const { d } = ctx;
    if (d.drop) return selfDestroy(ctx);
    if (d.stall) return;
    if (d.delay_ms > 0 && !(await sleep(d.delay_ms, ctx.signal))) return;
    if (Number.isInteger(d.status) && d.status >= 400) {
      const type = errorType(d.status);
      const headers = {};
      if (Number.isInteger(d.retry_after)) headers['retry-after'] = String(d.retry_after);
      else if (d.status === 429) headers['retry-after'] = '1';
      const message = d.status === 529 ? 'Overloaded' : `Mock provider: simulated ${d.status} error (mock:status=${d.status}).`;
      return sendJSON(res, d.status, errorBody(type, message, ctx.reqId), headers);
    }

    if (!raw || body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendJSON(res, 400, errorBody('invalid_request_error', 'There was an error parsing the body of your request.', ctx.reqId));
    }
    const route = `${req.method} ${path}`;
    if (route !== 'POST /v1/messages') {
      return sendJSON(res, 404, errorBody('not_found_error', 'Not found', ctx.reqId));
    }
    const problem = validate(body);
    if (problem) return sendJSON(res, 400, errorBody('invalid_request_error', problem, ctx.reqId));
    return messages(ctx, body);
  }

  function validate(body) {
    if (typeof body.model !== 'string' || body.model === '') return 'model: Field required';
    if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: Field required';
    if (!Array.isArray(body.messages)) return 'messages: Field required';
    for (const [i, m] of body.messages.entries()) {
      if (m?.role !== 'user' && m?.role !== 'assistant') {
        return `messages.${i}.role: Input should be 'user' or 'assistant'`;
      }
    }
    return null;
  }

  function control(req, res, path) {
    if (req.method === 'GET' && path === '/_mock/stats') return sendJSON(res, 200, stats());
    if (req.method === 'GET' && path === '/_mock/requests') return sendJSON(res, 200, requests);
    if (req.method === 'POST' && path === '/_mock/reset') { reset(); return sendJSON(res, 200, { ok: true }); }
    return sendJSON(res, 404, errorBody('not_found_error', `Invalid URL (${req.method} ${path})`));
  }

  // The answer: content blocks, stop reason and usage, the same for both modes.
  function answer(ctx, body) {
    const { d } = ctx;
    const tools = Array.isArray(body.tools) ? body.tools : [];
    const blocks = [];
    let stopReason = 'end_turn';
    let words;
    if (tools.length > 0 && (typeof d.tool === 'string' || d.tools === 2)) {
      const n = d.tools === 2 ? 2 : 1;
      const declared = tools.map((t) => t?.name).filter((x) => typeof x === 'string');
      const first = typeof d.tool === 'string' ? d.tool : declared[0];
      const other = declared.find((x) => x !== first);
      const names = n === 2 ? [first, other ?? first] : [first];
      words = `Calling ${names.join(' and ')}.`.split(' ');
      blocks.push({ type: 'text', words });
      names.forEach((name, i) => blocks.push({ type: 'tool_use', id: `toolu_mock${String(ctx.id).padStart(6, '0')}_${i}`, name, json: toolInput(i) }));
      stopReason = 'tool_use';
    } else {
      words = makeWords(d);
      if (words.length > body.max_tokens) {
        words = words.slice(0, body.max_tokens);
        stopReason = 'max_tokens';
      }
      blocks.push({ type: 'text', words });
    }
    const ntools = blocks.filter((b) => b.type === 'tool_use').length;
    const total = inputTokens(body);
    const cacheRead = Number.isInteger(d.cache_read) ? d.cache_read : 0;
    const usage = {
      input_tokens: Math.max(0, total - cacheRead),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: cacheRead,
      output_tokens: words.length + 5 * ntools,
    };
    return { blocks, stopReason, usage };
  }

  function messages(ctx, body) {
    const model = body.model;
    const id = `msg_mock${String(ctx.id).padStart(6, '0')}`;
    const { blocks, stopReason, usage } = answer(ctx, body);

    if (!body.stream) {
      const content = blocks.map((b) => (b.type === 'text'
        ? { type: 'text', text: b.words.join(' ') }
        : { type: 'tool_use', id: b.id, name: b.name, input: JSON.parse(b.json) }));
      return sendJSON(ctx.res, 200, {
        id, type: 'message', role: 'assistant', model, content,
        stop_reason: stopReason, stop_sequence: null, usage,
      }, { 'request-id': ctx.reqId });
    }

    const events = [];
    const ev = (name, data) => events.push({ name, data: { type: name, ...data } });
    ev('message_start', {
      message: {
        id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
        usage: { ...usage, output_tokens: 1 },
      },
    });
    let pinged = false;
    blocks.forEach((b, index) => {
      if (b.type === 'text') {
        ev('content_block_start', { index, content_block: { type: 'text', text: '' } });
        if (!pinged) { events.push({ name: 'ping', data: { type: 'ping' } }); pinged = true; }
        for (const p of pieces(b.words)) ev('content_block_delta', { index, delta: { type: 'text_delta', text: p } });
      } else {
        ev('content_block_start', { index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } });
        ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
        for (const f of fragments(b.json)) ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: f } });
      }
      ev('content_block_stop', { index });
    });
    ev('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    ev('message_stop', {});
    return stream(ctx, events);
  }

  async function stream(ctx, list) {
    const { res, d, signal } = ctx;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': ctx.reqId,
    });
    res.flushHeaders();
    let sent = 0;
    let deltas = 0;
    for (const e of list) {
      if (Number.isInteger(d.cut_after) && sent >= d.cut_after) return selfDestroy(ctx);
      if (sent > 0 && d.chunk_delay_ms > 0 && !(await sleep(d.chunk_delay_ms, signal))) return;
      if (!(await send(ctx, `event: ${e.name}\ndata: ${JSON.stringify(e.data)}\n\n`, sent))) return;
      sent++;
      if (e.name === 'content_block_delta' && ++deltas === 1 && d.error_mid_stream) {
        const err = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } };
        if (!(await send(ctx, `event: error\ndata: ${JSON.stringify(err)}\n\n`, sent))) return;
        break;
      }
    }
    res.end();
  }

  async function send(ctx, text, sent) {
    const { res, d, signal } = ctx;
    if (!d.split) return write(res, text, signal);
    const buf = Buffer.from(text);
    for (let i = 0; i < buf.length;) {
      const n = 1 + ((i * 7 + sent) % 3);
      if (!(await write(res, buf.subarray(i, i + n), signal))) return false;
      i += n;
    }
    return true;
  }

  function selfDestroy(ctx) {
    ctx.st.selfDestroyed = true;
    ctx.req.socket.destroy();
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    url: `http://127.0.0.1:${port}/v1`,
    requests: () => requests,
    stats,
    reset,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function sendJSON(res, status, obj, headers = {}) {
  const text = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function sleep(ms, signal) {
  try { await sleepRaw(ms, undefined, { signal }); return true; } catch { return false; }
}

function write(res, data, signal) {
  if (res.destroyed || signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(data, (err) => {
      signal.removeEventListener('abort', onAbort);
      resolve(!err && !res.destroyed);
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  const port = Number(arg('--port') ?? 0);
  const mock = await startAnthropicMock({ port, apiKey: arg('--api-key') });
  process.stdout.write(`listening ${mock.port}\n`);
  const stop = async () => { await mock.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
