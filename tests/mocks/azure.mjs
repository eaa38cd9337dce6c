// Mock Azure OpenAI provider for Tollgate's integration tests.
//
// Speaks Azure OpenAI's data-plane API:
//   POST /openai/deployments/{deployment}/chat/completions?api-version=V
//   POST /openai/deployments/{deployment}/completions?api-version=V
//   POST /openai/deployments/{deployment}/embeddings?api-version=V
//   POST /openai/responses?api-version=V            (the Responses API; Azure has no deployment
//   POST /openai/v1/responses[?api-version=preview]  segment for it: the deployment is the
//                                                    body's "model"; the v1 form needs no
//                                                    api-version, "preview"/"latest" allowed)
//   GET|DELETE {either form}/responses/{id}, GET {either form}/responses/{id}/input_items
//     stored responses, answered by the OpenAI mock's store
// answering in OpenAI's format with "model" = the deployment's model (the body's "model" is
// ignored, as Azure ignores it), plus Azure's content-filter annotations: prompt_filter_results
// and per-choice content_filter_results on JSON answers, and on streams a first chunk with empty
// "choices" and prompt_filter_results (what Azure sends before the role chunk; gateways that
// read choices[0] of every chunk break on it). The control API needs no auth and is not recorded:
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> [{method, path, headers, body, raw, deployment, endpoint, apiVersion}]
//   POST /_mock/reset     -> clears requests and counters
//
// Checks, in this order, each answered the way Azure answers it:
//   unknown path, or no api-version query -> 404 {"error":{"code":"404","message":"Resource not found"}}
//   api-version not YYYY-MM-DD[-preview]  -> 400 {"error":{"code":"BadRequest","message":"API version not supported"}}
//   no api-key header                     -> 401 {"error":{"code":"401","message":"Access denied due to missing subscription key..."}}
//   wrong api-key (default "az-test")     -> 401 {"error":{"code":"401","message":"Access denied due to invalid subscription key..."}}
//   unknown deployment (strictDeployments only; otherwise its model is its name)
//                                         -> 404 {"error":{"code":"DeploymentNotFound",...}}
//
// DIRECTIVES: the same `mock:NAME[=VALUE]` tokens as tests/mocks/openai.mjs, anywhere in the
// raw body: mock:status=N (answered here, in Azure's error shape: {"error":{"code":"<N>",
// "message"}}, 429 with `retry-after: 1`), and drop, stall, delay_ms, words, chunk_delay_ms,
// cut_after, split, usage_in_last_choice, cached, reasoning with openai.mjs's meaning. Azure's
// first stream chunk (prompt_filter_results) is not counted by cut_after; mock:no_filters leaves
// the content-filter annotations out.
//
// How: the answers come from an OpenAI mock (openai.mjs) this mock starts on another port and
// calls with the deployment's model, so both mocks answer alike (same usage arithmetic, same
// words and embeddings); the counters here are this mock's own.
//
// CLI: node tests/mocks/azure.mjs --port N [--api-key K] [--deployment NAME=MODEL ...]
//      [--strict-deployments]; prints "listening PORT" and serves until SIGTERM/SIGINT.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { startOpenAIMock } from './openai.mjs';
import {
  parseDirectives, waitFor, parseBody, simulatedStatus, retryHeaders,
  jsonSender, sendFrame, selfDestroy, createMockServer, runMain,
} from './common.mjs';

export { parseDirectives, waitFor };

const sendJSON = jsonSender('application/json', { 'apim-request-id': 'apim-mock' });

// deployment -> model; a deployment not listed serves the model of its own name
export const DEFAULT_DEPLOYMENTS = {
  'gpt-4o': 'gpt-4o-2024-11-20',
  'gpt-4o-mini': 'gpt-4o-mini-2024-07-18',
  'gpt-35-turbo-instruct': 'gpt-35-turbo-instruct',
  'text-embedding-3-small': 'text-embedding-3-small',
};

const ROUTE = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/;
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
const RESPONSES = /^\/openai\/(v1\/)?responses(?:\/([^/]+)(?:\/(input_items))?)?$/;

const SAFE = { filtered: false, severity: 'safe' };
const FILTERS = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const PROMPT_FILTERS = [{ prompt_index: 0, content_filter_results: FILTERS }];

function azureError(code, message) {
  return { error: { code, message } };
}

const NOT_FOUND = azureError('404', 'Resource not found');
const MISSING_KEY = azureError('401', 'Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.');
const BAD_KEY = azureError('401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.');

function simulatedError(status, endpoint, apiVersion) {
  if (status === 429) {
    const op = endpoint === 'embeddings' ? 'Embeddings_Create' : endpoint === 'completions' ? 'Completions_Create' : endpoint === 'responses' ? 'Responses_Create' : 'ChatCompletions_Create';
    return azureError('429', `Requests to the ${op} Operation under Azure OpenAI API version ${apiVersion} have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second. (mock:status=429)`);
  }
  return azureError(String(status), `Mock Azure provider: simulated ${status} error (mock:status=${status}).`);
}

export async function startAzureMock(opts = {}) {
  const apiKey = opts.apiKey ?? 'az-test';
  const deployments = { ...DEFAULT_DEPLOYMENTS, ...(opts.deployments ?? {}) };
  const strict = opts.strictDeployments ?? false;
  const innerKey = `sk-azure-inner-${randomBytes(8).toString('hex')}`;
  const inner = await startOpenAIMock({ apiKey: innerKey });
  const agent = new http.Agent({ keepAlive: true });
  let seq = 0; // numbers only the requests that reach the OpenAI mock

  const mock = createMockServer({
    name: 'azure',
    sendJSON,
    onRequest: handle,
    onReset: () => inner.reset(),
    internalError: (res, err) => sendJSON(res, 500, azureError('InternalServerError', `mock internal error: ${err.message}`)),
    controlNotFound: (req, res) => sendJSON(res, 404, NOT_FOUND),
  });

  // The Responses API: the deployment comes from the body's model, not from the path.
  function responses(ctx, r) {
    const { req, res, raw, url, d } = ctx;
    const [, v1, rawId, sub] = r;
    const apiVersion = url.searchParams.get('api-version');
    const body = parseBody(raw);
    const deployment = typeof body?.model === 'string' ? body.model : null;
    mock.requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw, deployment, endpoint: 'responses', apiVersion });
    const methodOk = rawId ? req.method === 'GET' || (req.method === 'DELETE' && !sub) : req.method === 'POST';
    if (!methodOk || (!v1 && !apiVersion)) return sendJSON(res, 404, NOT_FOUND);
    if (apiVersion !== null && !(v1 && (apiVersion === 'preview' || apiVersion === 'latest')) && !API_VERSION.test(apiVersion)) {
      return sendJSON(res, 400, azureError('BadRequest', 'API version not supported'));
    }
    const key = req.headers['api-key'];
    if (key === undefined) return sendJSON(res, 401, MISSING_KEY);
    if (key !== apiKey) return sendJSON(res, 401, BAD_KEY);
    if (!rawId && deployment !== null && strict && !Object.hasOwn(deployments, deployment)) {
      return sendJSON(res, 404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.'));
    }
    const status = simulatedStatus(d);
    if (status) return sendJSON(res, status, simulatedError(status, 'responses', apiVersion ?? 'v1'), retryHeaders(status));
    let upBody = raw;
    if (deployment !== null && body !== null && typeof body === 'object' && !Array.isArray(body)) {
      upBody = JSON.stringify({ ...body, model: deployments[deployment] ?? deployment });
    }
    Object.assign(ctx, { endpoint: 'responses', id: ++seq, filters: false });
    const upPath = `/v1/responses${rawId ? `/${rawId}` : ''}${sub ? `/${sub}` : ''}${url.searchParams.get('order') ? `?order=${encodeURIComponent(url.searchParams.get('order'))}` : ''}`;
    return forward(ctx, upPath, rawId ? '' : upBody, req.method);
  }

  function handle(ctx) {
    const { req, res, raw, url, path, d } = ctx;
    const r = RESPONSES.exec(path);
    if (r) return responses(ctx, r);
    const m = req.method === 'POST' ? ROUTE.exec(path) : null;
    let deployment = null;
    try { deployment = m ? decodeURIComponent(m[1]) : null; } catch { /* a bad escape: not found */ }
    const endpoint = m ? m[2] : null;
    const apiVersion = url.searchParams.get('api-version');
    const body = parseBody(raw); // not JSON: the OpenAI mock answers 400
    mock.requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw, deployment, endpoint, apiVersion });

    if (!deployment || !apiVersion) return sendJSON(res, 404, NOT_FOUND);
    if (!API_VERSION.test(apiVersion)) return sendJSON(res, 400, azureError('BadRequest', 'API version not supported'));
    const key = req.headers['api-key'];
    if (key === undefined) return sendJSON(res, 401, MISSING_KEY);
    if (key !== apiKey) return sendJSON(res, 401, BAD_KEY);
    if (strict && !Object.hasOwn(deployments, deployment)) {
      return sendJSON(res, 404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.'));
    }

    const status = simulatedStatus(d);
    if (status) return sendJSON(res, status, simulatedError(status, endpoint, apiVersion), retryHeaders(status));

    const model = deployments[deployment] ?? deployment;
    const upBody = body !== null && typeof body === 'object' && !Array.isArray(body) ? JSON.stringify({ ...body, model }) : raw;
    Object.assign(ctx, { endpoint, id: ++seq, filters: !d.no_filters });
    return forward(ctx, `/v1/${endpoint}`, upBody);
  }

  // Asks the OpenAI mock and relays its answer; a connection it drops is dropped here too.
  function forward(ctx, path, text, method = 'POST') {
    return new Promise((resolve) => {
      const up = http.request({
        host: '127.0.0.1', port: inner.port, method, path, agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), authorization: `Bearer ${innerKey}` },
      }, (upRes) => {
        relay(ctx, upRes).then(resolve, (err) => { console.error('azure mock: relay error', err); selfDestroy(ctx); resolve(); });
      });
      const onAbort = () => up.destroy();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      up.on('close', () => ctx.signal.removeEventListener('abort', onAbort));
      up.on('error', () => {
        // the OpenAI mock dropped the connection before answering (mock:drop), or our own
        // client went away first (then there is nobody to answer)
        if (!ctx.signal.aborted && !ctx.res.headersSent) selfDestroy(ctx);
        resolve();
      });
      up.end(text);
    });
  }

  async function relay(ctx, upRes) {
    const { res } = ctx;
    const type = upRes.headers['content-type'] ?? 'application/json';
    if (!type.startsWith('text/event-stream')) {
      const parts = [];
      try {
        for await (const c of upRes) parts.push(c);
      } catch {
        if (!ctx.signal.aborted) selfDestroy(ctx);
        return;
      }
      let text = Buffer.concat(parts).toString('utf8');
      if (upRes.statusCode === 200 && ctx.filters && ctx.endpoint !== 'embeddings' && ctx.endpoint !== 'responses') {
        const j = JSON.parse(text);
        j.choices = j.choices.map((c) => ({ ...c, content_filter_results: FILTERS }));
        j.prompt_filter_results = PROMPT_FILTERS;
        text = JSON.stringify(j);
      }
      if (res.destroyed) return;
      res.writeHead(upRes.statusCode, {
        'content-type': type,
        'content-length': Buffer.byteLength(text),
        'apim-request-id': `apim-mock-${ctx.id}`,
        'x-ms-region': 'Sweden Central',
      });
      res.end(text);
      return;
    }
    res.writeHead(upRes.statusCode, {
      'content-type': type,
      'cache-control': 'no-cache',
      'apim-request-id': `apim-mock-${ctx.id}`,
      'x-ms-region': 'Sweden Central',
    });
    res.flushHeaders();
    if (ctx.filters) {
      const first = { choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTERS };
      if (!(await sendFrame(ctx, `data: ${JSON.stringify(first)}\n\n`))) return upRes.destroy();
    }
    try {
      for await (const c of upRes) {
        if (!(await sendFrame(ctx, c))) return upRes.destroy();
      }
    } catch {
      // the OpenAI mock cut the stream (mock:cut_after): cut ours after what it sent
    }
    if (ctx.signal.aborted) return;
    if (!upRes.complete) return selfDestroy(ctx);
    res.end();
  }

  const port = await mock.listen(opts.port);
  return {
    port,
    url: `http://127.0.0.1:${port}/openai`, // a provider's base_url
    apiKey,
    deployments,
    requests: mock.requests,
    stats: mock.stats,
    reset: mock.reset,
    close: async () => {
      await mock.close();
      agent.destroy();
      await inner.close();
    },
  };
}

await runMain(import.meta.url, (arg, args) => {
  const deployments = {};
  args.forEach((a, i) => {
    if (a !== '--deployment') return;
    const [name, model] = (args[i + 1] ?? '').split('=');
    if (!name || !model) { console.error('--deployment NAME=MODEL'); process.exit(2); }
    deployments[name] = model;
  });
  return startAzureMock({
    port: Number(arg('--port') ?? 0),
    apiKey: arg('--api-key'),
    deployments,
    strictDeployments: args.includes('--strict-deployments'),
  });
});
