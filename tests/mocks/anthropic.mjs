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
//   mock:cache_write=N         N tokens written to the 5-minute cache: usage.cache_creation
//                              .ephemeral_5m_input_tokens (and in cache_creation_input_tokens)
//   mock:cache_write_hour=N    N written to the 1-hour cache: ephemeral_1h_input_tokens
//   mock:prompt_tokens=N       the prompt counts N tokens whatever its size (a long prompt's
//                              price tier without sending one); the cache parts come out of it
//   mock:chunk_delay_ms=N      stream: wait N ms between SSE events
//   mock:cut_after=N           stream: destroy the socket after N events (every event
//                              counts, ping included); no message_stop
//   mock:split                 stream: write the bytes 1-3 at a time
//   mock:error_mid_stream      stream: after the first delta send an `event: error`
//                              (overloaded_error) and end the response
//
// Deterministic usage (identical for streamed and non-streamed calls):
//   input_tokens  = ceil(chars of all message texts / 4) + 3 per message (the top-level
//                   system counts as one message), minus cache_read and the cache writes
//   output_tokens = number of text words, + 5 per tool_use block
// max_tokens below the word count cuts the text there (stop_reason max_tokens).
//
// CLI: node tests/mocks/anthropic.mjs --port N [--api-key K]
//      prints "listening PORT" and serves until SIGTERM/SIGINT.

import {
  parseDirectives, parseBody, simulatedStatus, makeWords, pieces,
  jsonSender, holdDirectives, streamFrames, createMockServer, runMain,
} from './common.mjs';

export { parseDirectives };

const sendJSON = jsonSender();

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
  const mock = createMockServer({
    name: 'anthropic',
    sendJSON,
    onRequest: handle,
    internalError: (res, err) => sendJSON(res, 500, errorBody('api_error', `mock internal error: ${err.message}`)),
    controlNotFound: (req, res, path) => sendJSON(res, 404, errorBody('not_found_error', `Invalid URL (${req.method} ${path})`)),
  });

  async function handle(ctx) {
    const { req, res, raw, path } = ctx;
    const body = parseBody(raw); // a parse error is reported below, after auth
    mock.requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw });
    ctx.id = mock.nextId();
    ctx.reqId = `req_mock${String(ctx.id).padStart(6, '0')}`;

    const auth = req.headers.authorization ?? '';
    const key = req.headers['x-api-key'] ?? (auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
    if (key !== apiKey) {
      return sendJSON(res, 401, errorBody('authentication_error', key === undefined ? 'x-api-key header is required' : 'invalid x-api-key', ctx.reqId));
    }
    if (!req.headers['anthropic-version']) {
      return sendJSON(res, 400, errorBody('invalid_request_error', 'anthropic-version: header is required', ctx.reqId));
    }

    const { d } = ctx;
    if (!(await holdDirectives(ctx))) return;
    const status = simulatedStatus(d);
    if (status) {
      const headers = {};
      if (Number.isInteger(d.retry_after)) headers['retry-after'] = String(d.retry_after);
      else if (status === 429) headers['retry-after'] = '1';
      const message = status === 529 ? 'Overloaded' : `Mock provider: simulated ${status} error (mock:status=${status}).`;
      return sendJSON(res, status, errorBody(errorType(status), message, ctx.reqId), headers);
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
    const total = Number.isInteger(d.prompt_tokens) ? d.prompt_tokens : inputTokens(body);
    const n = (k) => (Number.isInteger(d[k]) ? d[k] : 0);
    const cacheRead = n('cache_read'), w5 = n('cache_write'), w1 = n('cache_write_hour');
    const usage = {
      input_tokens: Math.max(0, total - cacheRead - w5 - w1),
      cache_creation_input_tokens: w5 + w1,
      cache_read_input_tokens: cacheRead,
      ...(w5 || w1 ? { cache_creation: { ephemeral_5m_input_tokens: w5, ephemeral_1h_input_tokens: w1 } } : {}),
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

  // mock:error_mid_stream: an `event: error` right after the first delta, then the end.
  function stream(ctx, list) {
    const frames = list.map((e) => `event: ${e.name}\ndata: ${JSON.stringify(e.data)}\n\n`);
    const firstDelta = list.findIndex((e) => e.name === 'content_block_delta');
    const err = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } };
    const errFrame = `event: error\ndata: ${JSON.stringify(err)}\n\n`;
    return streamFrames(ctx, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'request-id': ctx.reqId,
    }, frames, (i) => (ctx.d.error_mid_stream && i === firstDelta ? errFrame : null));
  }

  const port = await mock.listen(opts.port);
  return {
    port,
    url: `http://127.0.0.1:${port}/v1`,
    requests: () => mock.requests,
    stats: mock.stats,
    reset: mock.reset,
    close: mock.close,
  };
}

await runMain(import.meta.url, (arg) => startAnthropicMock({ port: Number(arg('--port') ?? 0), apiKey: arg('--api-key') }));
