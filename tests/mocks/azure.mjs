// Mock Azure OpenAI provider for Tollgate's integration tests.
//
// Speaks Azure OpenAI's data-plane API:
//   POST /openai/deployments/{deployment}/chat/completions?api-version=V
//   POST /openai/deployments/{deployment}/completions?api-version=V
//   POST /openai/deployments/{deployment}/embeddings?api-version=V
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
import { pathToFileURL } from 'node:url';
import { startOpenAIMock, parseDirectives, waitFor } from './openai.mjs';

export { parseDirectives, waitFor };

// deployment -> model; a deployment not listed serves the model of its own name
export const DEFAULT_DEPLOYMENTS = {
  'gpt-4o': 'gpt-4o-2024-11-20',
  'gpt-4o-mini': 'gpt-4o-mini-2024-07-18',
  'gpt-35-turbo-instruct': 'gpt-35-turbo-instruct',
  'text-embedding-3-small': 'text-embedding-3-small',
};

const ROUTE = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/;
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

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
    const op = endpoint === 'embeddings' ? 'Embeddings_Create' : endpoint === 'completions' ? 'Completions_Create' : 'ChatCompletions_Create';
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
    inner.reset();
  };

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      console.error('azure mock: handler error', err);
      if (!res.headersSent && !res.destroyed) sendJSON(res, 500, azureError('InternalServerError', `mock internal error: ${err.message}`));
      else res.destroy();
    });
  });
  server.on('connection', (s) => s.setNoDelay(true));

  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;

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

    const m = req.method === 'POST' ? ROUTE.exec(path) : null;
    let deployment = null;
    try { deployment = m ? decodeURIComponent(m[1]) : null; } catch { /* a bad escape: not found */ }
    const endpoint = m ? m[2] : null;
    const apiVersion = url.searchParams.get('api-version');
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { /* the OpenAI mock answers 400 */ }
    requests.push({ method: req.method, path: req.url, headers: req.headers, body, raw, deployment, endpoint, apiVersion });

    if (!deployment || !apiVersion) return sendJSON(res, 404, NOT_FOUND);
    if (!API_VERSION.test(apiVersion)) return sendJSON(res, 400, azureError('BadRequest', 'API version not supported'));
    const key = req.headers['api-key'];
    if (key === undefined) return sendJSON(res, 401, MISSING_KEY);
    if (key !== apiKey) return sendJSON(res, 401, BAD_KEY);
    if (strict && !Object.hasOwn(deployments, deployment)) {
      return sendJSON(res, 404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.'));
    }

    const d = parseDirectives(raw);
    if (Number.isInteger(d.status) && d.status >= 400) {
      const headers = d.status === 429 ? { 'retry-after': '1' } : {};
      return sendJSON(res, d.status, simulatedError(d.status, endpoint, apiVersion), headers);
    }

    const model = deployments[deployment] ?? deployment;
    const upBody = body !== null && typeof body === 'object' && !Array.isArray(body) ? JSON.stringify({ ...body, model }) : raw;
    const ctx = { req, res, st, d, signal: ctl.signal, endpoint, id: ++seq, filters: !d.no_filters };
    return forward(ctx, `/v1/${endpoint}`, upBody);
  }

  function control(req, res, path) {
    if (req.method === 'GET' && path === '/_mock/stats') return sendJSON(res, 200, stats());
    if (req.method === 'GET' && path === '/_mock/requests') return sendJSON(res, 200, requests);
    if (req.method === 'POST' && path === '/_mock/reset') { reset(); return sendJSON(res, 200, { ok: true }); }
    return sendJSON(res, 404, NOT_FOUND);
  }

  // Asks the OpenAI mock and relays its answer; a connection it drops is dropped here too.
  function forward(ctx, path, text) {
    return new Promise((resolve) => {
      const up = http.request({
        host: '127.0.0.1', port: inner.port, method: 'POST', path, agent,
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
      if (upRes.statusCode === 200 && ctx.filters && ctx.endpoint !== 'embeddings') {
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
      if (!(await out(ctx, `data: ${JSON.stringify(first)}\n\n`))) return upRes.destroy();
    }
    try {
      for await (const c of upRes) {
        if (!(await out(ctx, c))) return upRes.destroy();
      }
    } catch {
      // the OpenAI mock cut the stream (mock:cut_after): cut ours after what it sent
    }
    if (ctx.signal.aborted) return;
    if (!upRes.complete) return selfDestroy(ctx);
    res.end();
  }

  // Writes to the client, 1-3 bytes at a time with mock:split; false once the client is gone.
  async function out(ctx, data) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!ctx.d.split) return write(ctx.res, buf, ctx.signal);
    for (let i = 0; i < buf.length;) {
      const n = 1 + ((i * 7) % 3);
      if (!(await write(ctx.res, buf.subarray(i, i + n), ctx.signal))) return false;
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
    url: `http://127.0.0.1:${port}/openai`, // a provider's base_url
    apiKey,
    deployments,
    requests,
    stats,
    reset,
    close: async () => {
      await new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      agent.destroy();
      await inner.close();
    },
  };
}

function sendJSON(res, status, obj, headers = {}) {
  const text = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'apim-request-id': 'apim-mock',
    ...headers,
  });
  res.end(text);
}

// Resolves true once the bytes are handed to the kernel, false if the connection is gone.
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
  const deployments = {};
  args.forEach((a, i) => {
    if (a !== '--deployment') return;
    const [name, model] = (args[i + 1] ?? '').split('=');
    if (!name || !model) { console.error('--deployment NAME=MODEL'); process.exit(2); }
    deployments[name] = model;
  });
  const mock = await startAzureMock({
    port: Number(arg('--port') ?? 0),
    apiKey: arg('--api-key'),
    deployments,
    strictDeployments: args.includes('--strict-deployments'),
  });
  process.stdout.write(`listening ${mock.port}\n`);
  const stop = async () => { await mock.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
