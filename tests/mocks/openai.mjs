// Mock OpenAI provider for Tollgate's integration tests.
//
// Speaks OpenAI's wire format for:
//   POST /v1/chat/completions   (chat.completion / chat.completion.chunk over SSE)
//   POST /v1/completions        (legacy text_completion, streaming too)
//   POST /v1/embeddings         (float arrays, or base64 little-endian float32)
//   GET  /v1/models
// and a control API that needs no auth and is never recorded:
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> [{method, path, headers, body, raw}, ...]
//   POST /_mock/reset     -> clears requests and counters
//
// Every /v1 request must carry `Authorization: Bearer <apiKey>` (default
// "sk-upstream-test"), otherwise 401 with OpenAI's invalid_api_key error.
//
// DIRECTIVES. The gateway forwards request bodies but not client headers, so
// tests steer the mock with tokens placed anywhere in the raw body text
// (typically inside a message's content): `mock:NAME` or `mock:NAME=VALUE`.
// They are applied in this order: auth, drop, stall, delay_ms, status, then
// JSON parsing and routing.
//   mock:drop                  destroy the socket without any response
//   mock:stall                 never answer; keep the socket open until the client
//                              closes it (counted as `aborted` when it does)
//   mock:delay_ms=N            wait N ms before sending response headers
//   mock:status=N              answer status N with an OpenAI-shaped error body
//                              (429 also sends `retry-after: 1`)
//   mock:words=N               content is "w1 w2 ... wN" (N content chunks in a stream)
//   mock:chunk_delay_ms=N      stream: wait N ms between SSE events
//   mock:cut_after=N           stream: destroy the socket after N SSE events (every
//                              `data:` event counts, including the role chunk); no [DONE]
//   mock:split                 stream: write the SSE byte stream 1-3 bytes at a time,
//                              yielding to the event loop between writes
//   mock:usage_in_last_choice  stream + include_usage: put usage on the finish_reason
//                              chunk instead of a separate `choices: []` chunk (vLLM style)
//   mock:cached=N              usage.prompt_tokens_details.cached_tokens = N
//   mock:tool=NAME             chat: answer with a tool call of NAME (arguments
//                              {"q":"mock"}), finish_reason "tool_calls"
//   mock:tools=N               chat: N tool calls (NAME, or the request's declared tools
//                              in order, or tool_1..tool_N); streamed as OpenAI does, each
//                              call's id and name first, then its arguments in pieces
//   mock:reasoning=N           usage.completion_tokens_details.reasoning_tokens = N
//                              (also added to completion_tokens, as OpenAI counts them)
//
// Deterministic usage (identical for streamed and non-streamed calls):
//   prompt_tokens     = ceil(chars of all message contents / 4) + 3 per message
//                       (completions: ceil(chars of prompt / 4); embeddings: per input)
//   completion_tokens = number of content words + reasoning
//
// Counters: `requests` = /v1 requests received; `active` = in progress;
// `completed` = response fully written; `aborted` = the client closed the
// connection before the response was finished; `dropped` = the mock itself
// destroyed the socket (mock:drop, mock:cut_after). `aborted` is how tests prove
// the gateway cancels its upstream transfer when its own client goes away.
//
// CLI: node tests/mocks/openai.mjs --port N [--api-key K]
//      prints "listening PORT" and serves until SIGTERM/SIGINT.

import {
  parseDirectives, waitFor, parseBody, simulatedStatus, retryHeaders, makeWords, pieces, embeddingVector, EMBED_DIMS,
  jsonSender, holdDirectives, streamFrames, createMockServer, runMain,
} from './common.mjs';

export { parseDirectives, waitFor };

const FINGERPRINT = 'fp_mock';
const sendJSON = jsonSender('application/json', { 'x-request-id': 'req_mock' });

function errorType(status) {
  if (status === 401) return ['invalid_request_error', 'invalid_api_key'];
  if (status === 403) return ['permission_error', null];
  if (status === 404) return ['not_found_error', null];
  if (status === 429) return ['rate_limit_error', 'rate_limit_exceeded'];
  if (status >= 500) return ['server_error', null];
  return ['invalid_request_error', null];
}

function errorBody(message, type, code = null, param = null) {
  return { error: { message, type, param, code } };
}

// OpenAI shows a few characters of a wrong key, never the whole key.
function maskKey(k) {
  if (!k) return '(none)';
  return k.length <= 8 ? '****' : `${k.slice(0, 3)}****${k.slice(-4)}`;
}

// Text length of a message content: string, or array of parts ({type:"text",text}).
function contentChars(c) {
  if (typeof c === 'string') return c.length;
  if (Array.isArray(c)) return c.reduce((n, p) => n + (typeof p?.text === 'string' ? p.text.length : 0), 0);
  return 0;
}

function chatPromptTokens(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const chars = msgs.reduce((n, m) => n + contentChars(m?.content), 0);
  return Math.ceil(chars / 4) + 3 * msgs.length;
}

function textPromptTokens(prompt) {
  if (typeof prompt === 'string') return Math.ceil(prompt.length / 4);
  if (Array.isArray(prompt)) {
    // Array of token ids counts as that many tokens; array of strings sums.
    if (prompt.every((x) => typeof x === 'number')) return prompt.length;
    return prompt.reduce((n, p) => n + textPromptTokens(p), 0);
  }
  return 0;
}

function makeUsage(promptTokens, words, d) {
  const cached = Number.isInteger(d.cached) ? d.cached : 0;
  const reasoning = Number.isInteger(d.reasoning) ? d.reasoning : 0;
  const completion = words.length + reasoning;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: reasoning,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

// `dims` deterministic floats per input (see embeddingVector): a Float32Array, so that
// the float and base64 encodings agree exactly.
function embeddingFor(input, dims) {
  return embeddingVector(typeof input === 'string' ? input : JSON.stringify(input), dims);
}

// OpenAI's base64 encoding: the vector's float32 values, little-endian, back to back.
function float32LEBase64(v) {
  const buf = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

export async function startOpenAIMock(opts = {}) {
  const apiKey = opts.apiKey ?? 'sk-upstream-test';
  const mock = createMockServer({
    name: 'openai',
    sendJSON,
    onRequest: handle,
    internalError: (res, err) => sendJSON(res, 500, errorBody(`mock internal error: ${err.message}`, 'server_error')),
    controlNotFound: (req, res, path) => sendJSON(res, 404, errorBody(`Invalid URL (${req.method} ${path})`, 'invalid_request_error')),
  });

  async function handle(ctx) {
    const { req, res, raw, path } = ctx;
    const body = parseBody(raw); // a parse error is reported below, after auth
    mock.requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw });
    ctx.id = mock.nextId();

    const auth = req.headers.authorization ?? '';
    if (auth !== `Bearer ${apiKey}`) {
      const given = auth.startsWith('Bearer ') ? auth.slice(7) : auth;
      return sendJSON(res, 401, errorBody(
        `Incorrect API key provided: ${maskKey(given)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        'invalid_request_error', 'invalid_api_key'));
    }

    if (!(await holdDirectives(ctx))) return;
    const status = simulatedStatus(ctx.d);
    if (status) {
      const [type, code] = errorType(status);
      return sendJSON(res, status, errorBody(`Mock provider: simulated ${status} error (mock:status=${status}).`, type, code), retryHeaders(status));
    }

    if (raw && body === null) {
      return sendJSON(res, 400, errorBody(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
        'invalid_request_error'));
    }

    const route = `${req.method} ${path}`;
    if (route === 'POST /v1/chat/completions') return chat(ctx, body ?? {});
    if (route === 'POST /v1/completions') return completions(ctx, body ?? {});
    if (route === 'POST /v1/embeddings') return embeddings(ctx, body ?? {});
    if (route === 'GET /v1/models') return models(ctx);
    return sendJSON(res, 404, errorBody(`Invalid URL (${req.method} ${path})`, 'invalid_request_error'));
  }

  // The tool calls a chat answer makes (mock:tool / mock:tools), or null.
  function toolCalls(ctx, body) {
    const n = ctx.d.tools > 0 ? ctx.d.tools : ctx.d.tool ? 1 : 0;
    if (!n) return null;
    const declared = Array.isArray(body.tools) ? body.tools.map((t) => t?.function?.name).filter(Boolean) : [];
    return Array.from({ length: n }, (_, i) => ({
      id: `call_mock${ctx.id}_${i}`,
      type: 'function',
      function: {
        name: typeof ctx.d.tool === 'string' ? ctx.d.tool : declared[i] ?? `tool_${i + 1}`,
        arguments: JSON.stringify({ q: 'mock', n: i }),
      },
    }));
  }

  function chat(ctx, body) {
    const model = body.model ?? 'gpt-4o-mini';
    const calls = toolCalls(ctx, body);
    const words = calls ? [] : makeWords(ctx.d);
    const usage = makeUsage(chatPromptTokens(body), calls ? Array(5 * calls.length).fill('t') : words, ctx.d);
    const id = `chatcmpl-mock${String(ctx.id).padStart(6, '0')}`;
    const created = Math.floor(Date.now() / 1000);

    if (!body.stream && calls) {
      return sendJSON(ctx.res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{
          index: 0,
          message: { role: 'assistant', content: null, tool_calls: calls, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: 'tool_calls',
        }],
        usage,
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
      });
    }
    if (!body.stream) {
      return sendJSON(ctx.res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{
          index: 0,
          message: { role: 'assistant', content: words.join(' '), refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: 'stop',
        }],
        usage,
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
      });
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (delta, finish) => ({
      id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: FINGERPRINT,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
    const events = [chunk({ role: 'assistant', content: calls ? null : '', refusal: null }, null)];
    for (const p of pieces(words)) events.push(chunk({ content: p }, null));
    (calls ?? []).forEach((c, index) => {
      events.push(chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, null));
      const a = c.function.arguments;
      const cut = Math.floor(a.length / 2);
      for (const part of [a.slice(0, cut), a.slice(cut)]) {
        events.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }, null));
      }
    });
    events.push(...finalChunks(chunk({}, calls ? 'tool_calls' : 'stop'), includeUsage, usage, ctx.d));
    return stream(ctx, events);
  }

  function completions(ctx, body) {
    const model = body.model ?? 'gpt-3.5-turbo-instruct';
    const words = makeWords(ctx.d);
    const usage = makeUsage(textPromptTokens(body.prompt), words, ctx.d);
    // The legacy endpoint's usage has no *_details; keep only what it reports.
    const legacyUsage = { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens, total_tokens: usage.total_tokens };
    const id = `cmpl-mock${String(ctx.id).padStart(6, '0')}`;
    const created = Math.floor(Date.now() / 1000);

    if (!body.stream) {
      return sendJSON(ctx.res, 200, {
        id, object: 'text_completion', created, model, system_fingerprint: FINGERPRINT,
        choices: [{ text: words.join(' '), index: 0, logprobs: null, finish_reason: 'stop' }],
        usage: legacyUsage,
      });
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (text, finish) => ({
      id, object: 'text_completion', created, model, system_fingerprint: FINGERPRINT,
      choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
    const events = pieces(words).map((p) => chunk(p, null));
    events.push(...finalChunks(chunk('', 'stop'), includeUsage, legacyUsage, ctx.d));
    return stream(ctx, events);
  }

  // The finish chunk, plus (with include_usage) the usage either on it or on a
  // separate `choices: []` chunk.
  function finalChunks(finish, includeUsage, usage, d) {
    if (!includeUsage) return [finish];
    if (d.usage_in_last_choice) return [{ ...finish, usage }];
    return [finish, { ...finish, choices: [], usage }];
  }

  function embeddings(ctx, body) {
    const model = body.model ?? 'text-embedding-3-small';
    const input = body.input;
    // A flat array of token ids is one input; any other array is a batch.
    const inputs = Array.isArray(input) && !input.every((x) => typeof x === 'number') ? input : [input ?? ''];
    const dims = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : EMBED_DIMS;
    const base64 = body.encoding_format === 'base64';
    const data = inputs.map((inp, index) => {
      const v = embeddingFor(inp, dims);
      const embedding = base64 ? float32LEBase64(v) : Array.from(v);
      return { object: 'embedding', index, embedding };
    });
    const promptTokens = inputs.reduce((n, x) => n + textPromptTokens(x), 0);
    return sendJSON(ctx.res, 200, { object: 'list', data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } });
  }

  function models(ctx) {
    const created = 1700000000;
    const ids = ['gpt-4o-mini', 'gpt-4o', 'gpt-3.5-turbo-instruct', 'text-embedding-3-small'];
    return sendJSON(ctx.res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'system' })) });
  }

  function stream(ctx, chunks) {
    const events = chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`);
    events.push('data: [DONE]\n\n');
    // like OpenAI: headers go out before the first token
    return streamFrames(ctx, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': `req_mock${ctx.id}`,
    }, events);
  }

  const port = await mock.listen(opts.port);
  return {
    port,
    url: `http://127.0.0.1:${port}/v1`,
    requests: mock.requests,
    stats: mock.stats,
    reset: mock.reset,
    close: mock.close,
  };
}

await runMain(import.meta.url, (arg) => startOpenAIMock({ port: Number(arg('--port') ?? 0), apiKey: arg('--api-key') }));
