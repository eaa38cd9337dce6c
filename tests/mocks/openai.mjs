// Mock OpenAI provider for Tollgate's integration tests.
//
// Speaks OpenAI's wire format for:
//   POST /v1/chat/completions   (chat.completion / chat.completion.chunk over SSE)
//   POST /v1/completions        (legacy text_completion, streaming too)
//   POST /v1/embeddings         (float arrays, or base64 little-endian float32)
//   GET  /v1/models
//   POST /v1/responses          (the Responses API: a response object, or its SSE events
//                               `event: TYPE` / `data: {..., sequence_number}`, no [DONE])
//   GET  /v1/responses/{id}, DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items
//                               (stored responses: `store` defaults to true; ids never repeat,
//                               and /_mock/reset keeps them; previous_response_id and
//                               item_reference resolve from them)
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
//   mock:prompt_tokens=N       usage.prompt_tokens = N whatever the request's size (a long
//                              prompt's price tier without sending one)
//   mock:tool=NAME             chat: answer with a tool call of NAME (arguments
//                              {"q":"mock"}), finish_reason "tool_calls"
//   mock:tools=N               chat: N tool calls (NAME, or the request's declared tools
//                              in order, or tool_1..tool_N); streamed as OpenAI does, each
//                              call's id and name first, then its arguments in pieces
//   mock:reasoning=N           usage.completion_tokens_details.reasoning_tokens = N
//                              (also added to completion_tokens, as OpenAI counts them)
//   mock:fail_after=N          responses stream: after N events, `response.failed` (status
//                              "failed", error.code "server_error") instead of the rest
// Tool directives (tool, tools) are ignored on a turn that ends with a tool result (chat: a
// `tool` message; responses: a function_call_output item): the model answers it with text.
//
// Responses: the same directives with the same meaning; output items `message` (id
// msg_mockNNNNNN) or `function_call` (id fc_mockNNNNNN_i, call_id call_mockN_i); usage as
// input_tokens (+ input_tokens_details.cached_tokens), output_tokens (+ output_tokens_details.
// reasoning_tokens), total_tokens, with the chat arithmetic over instructions and every item of
// the conversation (previous_response_id's included). max_output_tokens below the answer's
// words + reasoning cuts the words and answers status "incomplete" (response.incomplete).
// With store:false, an item_reference or a reasoning item without encrypted_content is a 404
// "Item with id '...' not found. Items are not persisted when `store` is set to false.", as at
// OpenAI: what a gateway that sends self-contained requests must never send.
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

function makeUsage(counted, words, d) {
  const promptTokens = Number.isInteger(d.prompt_tokens) ? d.prompt_tokens : counted;
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
    if (route === 'POST /v1/responses') return responses(ctx, body ?? {});
    const byId = /^\/v1\/responses\/([^/]+)(?:\/(input_items))?$/.exec(path);
    if (byId && (req.method === 'GET' || (req.method === 'DELETE' && !byId[2]))) return responseById(ctx, req.method, decodeURIComponent(byId[1]), byId[2]);
    return sendJSON(res, 404, errorBody(`Invalid URL (${req.method} ${path})`, 'invalid_request_error'));
  }

  // The tool calls a chat answer makes (mock:tool / mock:tools), or null.
  // A model answers a tool's result with text: a conversation ending with a tool message gets no
  // tool calls, so that a whole tool loop can run against the mock.
  function toolCalls(ctx, body) {
    const lastRole = Array.isArray(body.messages) ? body.messages.at(-1)?.role : undefined;
    const n = lastRole === 'tool' ? 0 : ctx.d.tools > 0 ? ctx.d.tools : ctx.d.tool ? 1 : 0;
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

  // ---- Responses API (/v1/responses) ----------------------------------------------------
  // Stored responses of this mock (store defaults to true, as at OpenAI): id -> {response,
  // input (this turn's input items, with ids), context (every item the model saw plus its
  // output, for previous_response_id)}; items by id, for item_reference.
  const stored = new Map();
  const storedItems = new Map();

  // Text of an input/output item, for the token arithmetic.
  function itemChars(it) {
    if (!it || typeof it !== 'object') return 0;
    if (typeof it.content === 'string') return it.content.length;
    if (Array.isArray(it.content)) return it.content.reduce((n, p) => n + (typeof p?.text === 'string' ? p.text.length : 0), 0);
    if (it.type === 'function_call') return String(it.arguments ?? '').length + String(it.name ?? '').length;
    if (it.type === 'function_call_output') return typeof it.output === 'string' ? it.output.length : JSON.stringify(it.output ?? '').length;
    return 0;
  }

  // The request's input as items with ids: a string is one user message; a message's string
  // content becomes one input_text (output_text for the assistant) part; item_reference is
  // resolved from this mock's stored items. Throws {status, message, param} on a bad input.
  function normalizeInput(input, rid) {
    if (input === undefined || input === null) return [];
    const raw = typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : input;
    if (!Array.isArray(raw)) throw { status: 400, message: "Invalid type for 'input': expected a string or an array of input items.", param: 'input' };
    return raw.map((it, i) => {
      if (it?.type === 'item_reference') {
        const ref = storedItems.get(it.id);
        if (!ref) throw { status: 404, message: `Item with id '${it.id}' not found.`, param: 'input' };
        return ref;
      }
      const type = it?.type ?? (it?.role ? 'message' : undefined);
      if (type === 'message') {
        const partType = it.role === 'assistant' ? 'output_text' : 'input_text';
        const content = typeof it.content === 'string' ? [{ type: partType, text: it.content }] : it.content;
        return { id: it.id ?? `msg_in${rid}_${i}`, type: 'message', role: it.role, content, status: 'completed' };
      }
      if (type === 'function_call') return { id: it.id ?? `fc_in${rid}_${i}`, status: 'completed', ...it };
      if (type === 'function_call_output') return { id: it.id ?? `fco_in${rid}_${i}`, status: 'completed', ...it };
      if (typeof type === 'string') return { id: it.id ?? `item_in${rid}_${i}`, ...it };
      throw { status: 400, message: `Invalid value for 'input[${i}]': an item needs a type.`, param: `input[${i}]` };
    });
  }

  function responsesError(ctx, e) {
    const [type] = errorType(e.status);
    return sendJSON(ctx.res, e.status, errorBody(e.message, type, e.code ?? null, e.param ?? null));
  }

  // The function tools the request declares, flat ({type:"function", name, ...}).
  function functionTools(body) {
    return Array.isArray(body.tools) ? body.tools.filter((t) => t?.type === 'function' && typeof t.name === 'string') : [];
  }

  function responses(ctx, body) {
    const rid = String(ctx.id).padStart(6, '0');
    if (typeof body.model !== 'string' || !body.model) {
      return responsesError(ctx, { status: 400, message: "Missing required parameter: 'model'.", param: 'model' });
    }
    let prev = null;
    if (body.previous_response_id != null) {
      prev = stored.get(body.previous_response_id);
      if (!prev) {
        return responsesError(ctx, { status: 400, message: `Previous response with id '${body.previous_response_id}' not found.`, param: 'previous_response_id', code: 'previous_response_not_found' });
      }
    }
    // As OpenAI: a request that stores nothing may not lean on stored items either.
    if (body.store === false && Array.isArray(body.input)) {
      const leaning = body.input.find((it) => it?.type === 'item_reference' || (it?.type === 'reasoning' && typeof it.encrypted_content !== 'string'));
      if (leaning) {
        return responsesError(ctx, { status: 404, param: 'input', message: `Item with id '${leaning.id}' not found. Items are not persisted when \`store\` is set to false. Try again with \`store\` set to true, or remove this item from your input.` });
      }
    }
    let input;
    try { input = normalizeInput(body.input, rid); } catch (e) { return responsesError(ctx, e); }
    const context = [...(prev ? prev.context : []), ...input];
    const instructions = typeof body.instructions === 'string' ? body.instructions : null;
    const promptTokens = Math.ceil((context.reduce((n, it) => n + itemChars(it), 0) + (instructions?.length ?? 0)) / 4)
      + 3 * context.filter((it) => it.type === 'message').length + (instructions ? 3 : 0);

    // A model answers a tool's result with text, so the directives that ask for tool calls
    // apply only to a turn that does not end with one.
    const last = context.at(-1);
    const afterTool = last?.type === 'function_call_output';
    const n = afterTool ? 0 : ctx.d.tools > 0 ? ctx.d.tools : ctx.d.tool ? 1 : 0;
    const declared = functionTools(body).map((t) => t.name);
    const calls = Array.from({ length: n }, (_, i) => ({
      id: `fc_mock${rid}_${i}`, type: 'function_call', status: 'completed',
      arguments: JSON.stringify({ q: 'mock', n: i }), call_id: `call_mock${ctx.id}_${i}`,
      name: typeof ctx.d.tool === 'string' ? ctx.d.tool : declared[i] ?? `tool_${i + 1}`,
    }));
    let words = n ? [] : makeWords(ctx.d);
    let status = 'completed';
    let incomplete = null;
    const maxOut = Number.isInteger(body.max_output_tokens) ? body.max_output_tokens : null;
    const reasoning = Number.isInteger(ctx.d.reasoning) ? ctx.d.reasoning : 0;
    if (maxOut !== null && !n && words.length + reasoning > maxOut) {
      words = words.slice(0, Math.max(0, maxOut - reasoning));
      status = 'incomplete';
      incomplete = { reason: 'max_output_tokens' };
    }
    const outputTokens = (n ? 5 * n : words.length) + reasoning;
    const cached = Number.isInteger(ctx.d.cached) ? ctx.d.cached : 0;
    const usage = {
      input_tokens: promptTokens,
      input_tokens_details: { cached_tokens: cached },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: reasoning },
      total_tokens: promptTokens + outputTokens,
    };
    const text = words.join(' ');
    const message = { id: `msg_mock${rid}`, type: 'message', status: status === 'incomplete' ? 'incomplete' : 'completed', role: 'assistant',
      content: [{ type: 'output_text', annotations: [], logprobs: [], text }] };
    const output = n ? calls : [message];
    const created = Math.floor(Date.now() / 1000);
    const response = {
      id: `resp_mock${rid}`, object: 'response', created_at: created, status, background: false, error: null,
      incomplete_details: incomplete, instructions, max_output_tokens: maxOut, max_tool_calls: null,
      model: body.model, output, parallel_tool_calls: body.parallel_tool_calls ?? true,
      previous_response_id: body.previous_response_id ?? null, reasoning: { effort: null, summary: null },
      service_tier: 'default', store: body.store !== false,
      temperature: typeof body.temperature === 'number' ? body.temperature : 1,
      text: body.text ?? { format: { type: 'text' }, verbosity: 'medium' },
      tool_choice: body.tool_choice ?? 'auto', tools: functionTools(body).map((t) => ({ strict: true, description: null, parameters: null, ...t })),
      top_p: typeof body.top_p === 'number' ? body.top_p : 1, truncation: 'disabled', usage, user: null,
      metadata: body.metadata ?? {}, completed_at: status === 'completed' ? created : null,
    };
    if (response.store) {
      stored.set(response.id, { response, input, context: [...context, ...output] });
      for (const it of [...input, ...output]) storedItems.set(it.id, it);
    }
    if (!body.stream) return sendJSON(ctx.res, 200, response);
    return responsesStream(ctx, response, message, calls, words);
  }

  // The events OpenAI sends for a response, in its order, each `event: TYPE` + `data: {...}`
  // with sequence_number counting from 0. mock:fail_after=N replaces the rest after N events
  // with response.failed (what OpenAI sends when the model fails mid-answer); cut_after,
  // chunk_delay_ms and split work as for chat.
  function responsesStream(ctx, response, message, calls, words) {
    const events = [];
    const ev = (type, fields) => events.push({ type, ...fields });
    const start = { ...response, status: 'in_progress', output: [], usage: null, incomplete_details: null, completed_at: null };
    ev('response.created', { response: start });
    ev('response.in_progress', { response: start });
    if (calls.length) {
      calls.forEach((c, i) => {
        ev('response.output_item.added', { output_index: i, item: { ...c, status: 'in_progress', arguments: '' } });
        const a = c.arguments;
        const cut = Math.floor(a.length / 2);
        for (const part of [a.slice(0, cut), a.slice(cut)]) {
          ev('response.function_call_arguments.delta', { item_id: c.id, output_index: i, delta: part });
        }
        ev('response.function_call_arguments.done', { item_id: c.id, output_index: i, name: c.name, arguments: a });
        ev('response.output_item.done', { output_index: i, item: c });
      });
    } else {
      const at = { item_id: message.id, output_index: 0, content_index: 0 };
      ev('response.output_item.added', { output_index: 0, item: { ...message, status: 'in_progress', content: [] } });
      ev('response.content_part.added', { ...at, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } });
      for (const p of pieces(words)) ev('response.output_text.delta', { ...at, delta: p, logprobs: [] });
      ev('response.output_text.done', { ...at, text: words.join(' '), logprobs: [] });
      ev('response.content_part.done', { ...at, part: message.content[0] });
      ev('response.output_item.done', { output_index: 0, item: message });
    }
    ev(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
    const failAfter = Number.isInteger(ctx.d.fail_after) ? ctx.d.fail_after : -1;
    if (failAfter >= 0 && failAfter < events.length - 1) {
      events.length = failAfter;
      const failed = { ...start, status: 'failed', error: { code: 'server_error', message: 'Mock provider: simulated failure mid-stream (mock:fail_after).' } };
      ev('response.failed', { response: failed });
      if (stored.has(response.id)) stored.get(response.id).response = failed;
    }
    const frames = events.map((e, i) => `event: ${e.type}\ndata: ${JSON.stringify({ ...e, sequence_number: i })}\n\n`);
    return streamFrames(ctx, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': `req_mock${ctx.id}`,
    }, frames);
  }

  // GET / DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.
  function responseById(ctx, method, id, sub) {
    const s = stored.get(id);
    if (!s) return responsesError(ctx, { status: 404, message: `Response with id '${id}' not found.` });
    if (sub === 'input_items' && method === 'GET') {
      const order = ctx.url.searchParams.get('order') ?? 'desc';
      const data = order === 'asc' ? [...s.input] : [...s.input].reverse();
      return sendJSON(ctx.res, 200, { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false });
    }
    if (sub) return responsesError(ctx, { status: 404, message: `Invalid URL (${method} ${ctx.path})` });
    if (method === 'GET') return sendJSON(ctx.res, 200, s.response);
    stored.delete(id);
    return sendJSON(ctx.res, 200, { id, object: 'response.deleted', deleted: true });
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
