// Mock Google Gemini provider (Generative Language API) for Tollgate's integration tests.
//
// Speaks Gemini's wire format for:
//   POST /v1beta/models/{model}:generateContent        GenerateContentResponse JSON
//   POST /v1beta/models/{model}:streamGenerateContent  with ?alt=sse: SSE, one
//        GenerateContentResponse per `data:` event (CRLF framing, no terminal event);
//        without alt=sse: a JSON array of those responses, as the real API answers
//   POST /v1beta/models/{model}:batchEmbedContents     {embeddings:[{values:[...]}]}
// and a control API that needs no auth and is never recorded:
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> [{method, path, headers, body, raw}, ...]
//   POST /_mock/reset     -> clears requests and counters
//
// Every /v1beta request must carry `x-goog-api-key: <apiKey>` or `?key=<apiKey>`
// (default "gm-test"): no key is Gemini's 403 PERMISSION_DENIED, a wrong key its
// 400 INVALID_ARGUMENT "API key not valid". Errors are Gemini-shaped:
// {"error":{"code":N,"message":"...","status":"RESOURCE_EXHAUSTED"}}. Unknown top-level
// request fields are refused with 400 as the real API does, so that a translation bug
// shows up in tests.
//
// DIRECTIVES, anywhere in the raw body text (the gateway forwards bodies, not client
// headers): `mock:NAME` or `mock:NAME=VALUE`. Applied in this order: auth, drop, stall,
// delay_ms, status, then JSON parsing and routing.
//   mock:drop               destroy the socket without any response
//   mock:stall              never answer; keep the socket open until the client closes it
//   mock:delay_ms=N         wait N ms before sending response headers
//   mock:status=N           answer status N with a Gemini error (429 RESOURCE_EXHAUSTED
//                           with `retry-after: 1`, 503 UNAVAILABLE, 500 INTERNAL, ...)
//   mock:words=N            the answer is "w1 w2 ... wN" (one stream event per word)
//   mock:tool=NAME          answer with a functionCall of NAME (args {"q":"mock"})
//   mock:tools=2            answer with two functionCalls (NAME, or the first two declared
//                           functions, or tool_1 and tool_2)
//   mock:safety             prompt blocked: promptFeedback.blockReason SAFETY, no candidates
//   mock:finish_safety      a candidate stopped with finishReason SAFETY (streams: after
//                           the first word)
//   mock:prompt_tokens=N    promptTokenCount = N whatever the request's size
//   mock:cached=N           cachedContentTokenCount = N (a part of promptTokenCount)
//   mock:thoughts=N         thoughtsTokenCount = N (added to totalTokenCount, not to
//                           candidatesTokenCount, as Gemini counts thinking)
//   mock:chunk_delay_ms=N   stream: wait N ms between events
//   mock:cut_after=N        stream: destroy the socket after N events
//   mock:split              stream: write the bytes 1-3 at a time
//
// Deterministic usage (identical for streamed and non-streamed calls):
//   promptTokenCount     = ceil(chars of all text parts in contents and systemInstruction / 4)
//                          + 3 per content (systemInstruction counts as one)
//   candidatesTokenCount = number of words answered (5 per function call)
//   totalTokenCount      = their sum
// Early stream events carry usageMetadata with the prompt only; the last one has it all.
//
// CLI: node tests/mocks/gemini.mjs --port N [--api-key K]
//      prints "listening PORT" and serves until SIGTERM/SIGINT.

import {
  parseDirectives, parseBody, simulatedStatus, retryHeaders, makeWords, pieces, embeddingVector, EMBED_DIMS,
  jsonSender, holdDirectives, streamFrames, createMockServer, runMain,
} from './common.mjs';

export { parseDirectives };

const CALL_TOKENS = 5;

const STATUS_NAMES = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  409: 'ABORTED', 429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL',
  501: 'NOT_IMPLEMENTED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};

const REQUEST_FIELDS = new Set(['contents', 'systemInstruction', 'system_instruction', 'tools', 'toolConfig',
  'tool_config', 'generationConfig', 'generation_config', 'safetySettings', 'safety_settings', 'cachedContent']);

const sendJSON = jsonSender('application/json; charset=UTF-8');

export function geminiError(code, message, status = STATUS_NAMES[code] ?? (code >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION')) {
  return { error: { code, message, status } };
}

function partsChars(parts) {
  return Array.isArray(parts) ? parts.reduce((n, p) => n + (typeof p?.text === 'string' ? p.text.length : 0), 0) : 0;
}

export function promptTokens(body) {
  const contents = Array.isArray(body.contents) ? body.contents : [];
  const sys = body.systemInstruction ?? body.system_instruction;
  let chars = contents.reduce((n, c) => n + partsChars(c?.parts), 0);
  let count = contents.length;
  if (sys) { chars += partsChars(sys.parts); count++; }
  return Math.ceil(chars / 4) + 3 * count;
}

function callNames(d, body) {
  const declared = (body.tools ?? []).flatMap((t) => t?.functionDeclarations ?? t?.function_declarations ?? []).map((f) => f?.name).filter(Boolean);
  const n = d.tools === 2 ? 2 : 1;
  return Array.from({ length: n }, (_, i) => (typeof d.tool === 'string' ? d.tool : declared[i] ?? `tool_${i + 1}`));
}

export async function startGeminiMock(opts = {}) {
  const apiKey = opts.apiKey ?? 'gm-test';
  const mock = createMockServer({
    name: 'gemini',
    sendJSON,
    onRequest: handle,
    internalError: (res, err) => sendJSON(res, 500, geminiError(500, `mock internal error: ${err.message}`)),
    controlNotFound: (req, res, path) => sendJSON(res, 404, geminiError(404, `not found (${req.method} ${path})`)),
  });

  async function handle(ctx) {
    const { req, res, raw, url, path } = ctx;
    const body = parseBody(raw); // a parse error is reported below, after auth
    mock.requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw });
    ctx.id = mock.nextId();

    const key = req.headers['x-goog-api-key'] ?? url.searchParams.get('key');
    if (!key) {
      return sendJSON(res, 403, geminiError(403, 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.'));
    }
    if (key !== apiKey) return sendJSON(res, 400, geminiError(400, 'API key not valid. Please pass a valid API key.'));

    if (!(await holdDirectives(ctx))) return;
    const status = simulatedStatus(ctx.d);
    if (status) {
      const msg = status === 429
        ? 'Resource has been exhausted (e.g. check quota). (mock:status=429)'
        : status === 503 ? 'The model is overloaded. Please try again later. (mock:status=503)'
          : `Mock provider: simulated ${status} error (mock:status=${status}).`;
      return sendJSON(res, status, geminiError(status, msg), retryHeaders(status));
    }
    if (raw && body === null) {
      return sendJSON(res, 400, geminiError(400, `Invalid JSON payload received. Unexpected token.\n${raw.slice(0, 40)}\n^`));
    }

    const m = /^\/v1beta\/models\/([^/:]+):([A-Za-z]+)$/.exec(path);
    if (req.method !== 'POST' || !m) {
      return sendJSON(res, 404, geminiError(404, `Requested entity was not found. (${req.method} ${path})`));
    }
    const model = decodeURIComponent(m[1]);
    if (m[2] === 'generateContent') return generate(ctx, model, body ?? {}, 'json');
    if (m[2] === 'streamGenerateContent') return generate(ctx, model, body ?? {}, url.searchParams.get('alt') === 'sse' ? 'sse' : 'array');
    if (m[2] === 'batchEmbedContents') return embed(ctx, model, body ?? {});
    return sendJSON(res, 404, geminiError(404, `Method ${m[2]} not found for models/${model}.`));
  }

  // The whole answer as a list of GenerateContentResponse events; a non-streamed
  // answer is their merge (texts joined, parts concatenated, the last usage).
  function answerEvents(ctx, model, body) {
    const { d } = ctx;
    const prompt = Number.isInteger(d.prompt_tokens) ? d.prompt_tokens : promptTokens(body);
    const cached = Number.isInteger(d.cached) ? { cachedContentTokenCount: d.cached } : {};
    const thoughts = Number.isInteger(d.thoughts) ? d.thoughts : 0;
    const responseId = `mock-resp-${String(ctx.id).padStart(6, '0')}`;
    const base = { modelVersion: model, responseId };
    const earlyUsage = { promptTokenCount: prompt, ...cached, totalTokenCount: prompt };
    const usage = (cand) => ({
      promptTokenCount: prompt, candidatesTokenCount: cand, ...cached,
      ...(thoughts ? { thoughtsTokenCount: thoughts } : {}), totalTokenCount: prompt + cand + thoughts,
    });
    const cand = (parts, finishReason) => ({
      content: { parts, role: 'model' },
      ...(finishReason ? { finishReason } : {}),
      index: 0,
    });

    if (d.safety) {
      return [{
        promptFeedback: { blockReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH' }] },
        usageMetadata: earlyUsage, ...base,
      }];
    }
    if (d.tool || d.tools) {
      const names = callNames(d, body);
      return names.map((name, i) => {
        const last = i === names.length - 1;
        return {
          candidates: [cand([{ functionCall: { name, args: { q: 'mock' } } }], last ? 'STOP' : null)],
          usageMetadata: last ? usage(CALL_TOKENS * names.length) : earlyUsage, ...base,
        };
      });
    }
    const words = makeWords(d);
    if (d.finish_safety) {
      const first = words.slice(0, 1);
      const events = first.map((w) => ({ candidates: [cand([{ text: w }], null)], usageMetadata: earlyUsage, ...base }));
      events.push({
        candidates: [{ finishReason: 'SAFETY', index: 0, safetyRatings: [{ category: 'HARM_CATEGORY_HARASSMENT', probability: 'MEDIUM', blocked: true }] }],
        usageMetadata: usage(first.length), ...base,
      });
      return events;
    }
    const ps = pieces(words);
    if (ps.length === 0) return [{ candidates: [cand([{ text: '' }], 'STOP')], usageMetadata: usage(0), ...base }];
    return ps.map((p, i) => {
      const last = i === ps.length - 1;
      return { candidates: [cand([{ text: p }], last ? 'STOP' : null)], usageMetadata: last ? usage(words.length) : earlyUsage, ...base };
    });
  }

  function merge(events) {
    const out = { ...events.at(-1) };
    if (!events.some((e) => e.candidates)) return out;
    const parts = [];
    for (const e of events) {
      for (const p of e.candidates?.[0]?.content?.parts ?? []) {
        const prev = parts.at(-1);
        if (typeof p.text === 'string' && prev && typeof prev.text === 'string') prev.text += p.text;
        else parts.push({ ...p });
      }
    }
    const last = events.at(-1).candidates[0];
    out.candidates = [{ ...(parts.length ? { content: { parts, role: 'model' } } : {}), finishReason: last.finishReason ?? 'STOP', index: 0,
      ...(last.safetyRatings ? { safetyRatings: last.safetyRatings } : {}) }];
    return out;
  }

  function validate(body) {
    for (const k of Object.keys(body)) {
      if (!REQUEST_FIELDS.has(k)) return `Invalid JSON payload received. Unknown name "${k}": Cannot find field.`;
    }
    if (!Array.isArray(body.contents) || body.contents.length === 0) return '* GenerateContentRequest.contents: contents is not specified';
    for (const [i, c] of body.contents.entries()) {
      if (!['user', 'model'].includes(c?.role)) return `Please use a valid role: user, model. (contents[${i}])`;
      if (!Array.isArray(c.parts) || c.parts.length === 0) return `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`;
    }
    return null;
  }

  function generate(ctx, model, body, mode) {
    const problem = validate(body);
    if (problem) return sendJSON(ctx.res, 400, geminiError(400, problem));
    const events = answerEvents(ctx, model, body);
    if (mode === 'json') return sendJSON(ctx.res, 200, merge(events));
    if (mode === 'array') return sendJSON(ctx.res, 200, events);
    return stream(ctx, events);
  }

  function embed(ctx, model, body) {
    const reqs = body.requests;
    if (!Array.isArray(reqs) || reqs.length === 0) return sendJSON(ctx.res, 400, geminiError(400, '* BatchEmbedContentsRequest.requests: requests is not specified'));
    for (const [i, r] of reqs.entries()) {
      if (r?.model !== `models/${model}`) {
        return sendJSON(ctx.res, 400, geminiError(400, `* BatchEmbedContentsRequest.requests[${i}].model: The model \`${r?.model}\` does not match the model in the request \`models/${model}\`.`));
      }
    }
    const embeddings = reqs.map((r) => {
      const text = (r.content?.parts ?? []).map((p) => p.text ?? '').join('');
      const dims = Number.isInteger(r.outputDimensionality) && r.outputDimensionality > 0 ? r.outputDimensionality : EMBED_DIMS;
      return { values: Array.from(embeddingVector(text, dims)) };
    });
    return sendJSON(ctx.res, 200, { embeddings });
  }

  // CRLF framing, no terminal event, as the real API streams.
  function stream(ctx, events) {
    return streamFrames(ctx, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-request-id': `req_mock${ctx.id}`,
    }, events.map((e) => `data: ${JSON.stringify(e)}\r\n\r\n`));
  }

  const port = await mock.listen(opts.port);
  return {
    port,
    url: `http://127.0.0.1:${port}/v1beta`,
    requests: () => mock.requests,
    stats: mock.stats,
    reset: mock.reset,
    close: mock.close,
  };
}

await runMain(import.meta.url, (arg) => startGeminiMock({ port: Number(arg('--port') ?? 0), apiKey: arg('--api-key') }));
