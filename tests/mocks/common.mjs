// What every provider mock in tests/mocks/ shares: the HTTP server and its request
// bookkeeping, the control API, the `mock:NAME[=VALUE]` directives that apply to every
// provider (drop, stall, delay_ms, status; and for streams cut_after, chunk_delay_ms,
// split), the write helpers and the CLI entry point. Each mock keeps its own wire format.
//
// Counters: `requests` = provider requests received; `active` = in progress;
// `completed` = response fully written; `aborted` = the client closed the connection
// before the response was finished; `dropped` = the mock itself destroyed the socket
// (mock:drop, mock:cut_after). `aborted` is how tests prove the gateway cancels its
// upstream transfer when its own client goes away.
//
// Control API (no auth, never recorded):
//   GET  /_mock/stats     -> {requests, aborted, active, completed, dropped}
//   GET  /_mock/requests  -> the recorded requests
//   POST /_mock/reset     -> clears requests and counters

import http from 'node:http';
import { setTimeout as sleepRaw } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

export const DEFAULT_CONTENT = 'Hello from the mock provider.';
export const EMBED_DIMS = 8;

// Poll `pred` (sync or async) until it returns something truthy; resolves with that value.
export async function waitFor(pred, timeoutMs = 2000, intervalMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
    await sleepRaw(intervalMs);
  }
}

// All `mock:NAME[=VALUE]` tokens in the raw body. Numeric values become numbers;
// a bare token becomes true.
export function parseDirectives(raw) {
  const d = {};
  for (const m of raw.matchAll(/mock:([a-z_]+)(?:=([A-Za-z0-9_.-]+))?/g)) {
    const v = m[2];
    d[m[1]] = v === undefined ? true : /^-?\d+$/.test(v) ? Number(v) : v;
  }
  return d;
}

// The parsed body, or null when there is none or it is not JSON.
export function parseBody(raw) {
  try { return raw ? JSON.parse(raw) : null; } catch { return null; }
}

// mock:status=N asks for an error answer: N when it is an error status, else 0.
export function simulatedStatus(d) {
  return Number.isInteger(d.status) && d.status >= 400 ? d.status : 0;
}

// The headers most providers send with a 429.
export function retryHeaders(status) {
  return status === 429 ? { 'retry-after': '1' } : {};
}

// mock:words=N: "w1".."wN", else the default sentence.
export function makeWords(d) {
  if (Number.isInteger(d.words) && d.words >= 0) return Array.from({ length: d.words }, (_, i) => `w${i + 1}`);
  return DEFAULT_CONTENT.split(' ');
}

// Stream pieces carry the leading space, as real token deltas do, so that
// concatenating the deltas yields exactly the non-streamed text.
export function pieces(words) {
  return words.map((w, i) => (i === 0 ? w : ` ${w}`));
}

// Deterministic floats for a text, from an FNV-1a hash of it, in [-1, 1]. Produced through
// a Float32Array so that float and base64 encodings of them agree exactly.
export function embeddingVector(text, dims = EMBED_DIMS) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  const v = new Float32Array(dims);
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (i + 1), 0x01000193) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    v[i] = ((h % 20001) - 10000) / 10000;
  }
  return v;
}

// A sendJSON(res, status, obj, headers = {}) answering with `contentType` and the
// provider's `fixed` headers (after content-length; `headers` may override them).
export function jsonSender(contentType = 'application/json', fixed = {}) {
  return (res, status, obj, headers = {}) => {
    const text = JSON.stringify(obj);
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(text),
      ...fixed,
      ...headers,
    });
    res.end(text);
  };
}

// Resolves true after ms, false if the request was closed meanwhile.
export async function sleep(ms, signal) {
  try { await sleepRaw(ms, undefined, { signal }); return true; } catch { return false; }
}

// Write and wait until the bytes are handed to the kernel, so events are flushed
// one by one (and so cut_after really delivers N events before the cut).
// Resolves false if the connection is gone.
export function write(res, data, signal) {
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

// The mock cuts the connection itself; counted as `dropped`, not `aborted`.
export function selfDestroy(ctx) {
  ctx.st.selfDestroyed = true;
  ctx.req.socket.destroy();
}

// Writes one frame (string or Buffer); with mock:split 1-3 bytes at a time (deterministic
// from `offset`), awaiting each write so that every piece leaves as its own TCP segment
// (TCP_NODELAY). False once the client is gone.
export async function sendFrame(ctx, data, offset = 0) {
  const { res, d, signal } = ctx;
  if (!d.split) return write(res, data, signal);
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let i = 0; i < buf.length;) {
    const n = 1 + ((i * 7 + offset) % 3);
    if (!(await write(res, buf.subarray(i, i + n), signal))) return false;
    i += n;
  }
  return true;
}

// mock:drop, mock:stall and mock:delay_ms, in that order. False when the request is done
// with: dropped, stalled (counted as aborted when the client gives up) or its client left.
export async function holdDirectives(ctx) {
  const { d } = ctx;
  if (d.drop) { selfDestroy(ctx); return false; }
  if (d.stall) return false;
  return d.delay_ms > 0 ? sleep(d.delay_ms, ctx.signal) : true;
}

// Answers 200 with `headers`, sent at once (as providers do, before the first event), then
// the frames one at a time, honouring mock:cut_after=N (destroy the socket after N frames),
// mock:chunk_delay_ms and mock:split. `finalAfter(i)` may return one more frame to send right
// after frame i (not subject to cut_after or delays); the stream ends with it.
export async function streamFrames(ctx, headers, frames, finalAfter = () => null) {
  const { res, d, signal } = ctx;
  res.writeHead(200, headers);
  res.flushHeaders();
  for (const [sent, frame] of frames.entries()) {
    if (Number.isInteger(d.cut_after) && sent >= d.cut_after) return selfDestroy(ctx);
    if (sent > 0 && d.chunk_delay_ms > 0 && !(await sleep(d.chunk_delay_ms, signal))) return;
    if (!(await sendFrame(ctx, frame, sent))) return;
    const last = finalAfter(sent);
    if (last != null) {
      if (!(await sendFrame(ctx, last, sent + 1))) return;
      break;
    }
  }
  res.end();
}

// The server and its bookkeeping. Options:
//   name                            for the log line of a handler error
//   sendJSON(res, status, obj)      the provider's JSON answer (control API answers too)
//   onRequest(ctx)                  a provider request; ctx = {req, res, signal (aborted when
//                                   the response closes), st, rawBody, raw, url, path, d}
//   internalError(res, err)         answer to a handler that threw before sending headers
//   controlNotFound(req, res, path) answer to an unknown /_mock/ path
//   onReset()                       called by reset()
// Returns {requests (the array, reset in place), stats(), reset(), nextId(), listen(port)
// -> the port, close()}.
export function createMockServer(opts) {
  const requests = [];
  const counters = { requests: 0, aborted: 0, completed: 0, dropped: 0 };
  let active = 0;
  let epoch = 0; // bumped by reset(), so requests from before a reset don't skew new counters
  let seq = 0;
  const { sendJSON } = opts;

  const stats = () => ({ requests: counters.requests, aborted: counters.aborted, active, completed: counters.completed, dropped: counters.dropped });
  const reset = () => {
    requests.length = 0; // keep the array identity: tests may hold a reference
    for (const k of Object.keys(counters)) counters[k] = 0;
    epoch++;
    opts.onReset?.();
  };

  const server = http.createServer({ noDelay: true, keepAliveTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      // A bug in the mock must be loud, not a hung test.
      console.error(`${opts.name} mock: handler error`, err);
      if (!res.headersSent && !res.destroyed) opts.internalError(res, err);
      else res.destroy();
    });
  });
  server.on('connection', (s) => s.setNoDelay(true));

  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const rawBody = Buffer.concat(chunks);
    const raw = rawBody.toString('utf8');
    const url = new URL(req.url, 'http://x');
    const path = url.pathname;

    if (path.startsWith('/_mock/')) return control(req, res, path);

    // Bookkeeping. 'close' on the response fires both after a normal finish and
    // when the connection dies early; writableFinished tells the two apart.
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
    return opts.onRequest({ req, res, signal: ctl.signal, st, rawBody, raw, url, path, d: parseDirectives(raw) });
  }

  function control(req, res, path) {
    if (req.method === 'GET' && path === '/_mock/stats') return sendJSON(res, 200, stats());
    if (req.method === 'GET' && path === '/_mock/requests') return sendJSON(res, 200, requests);
    if (req.method === 'POST' && path === '/_mock/reset') { reset(); return sendJSON(res, 200, { ok: true }); }
    return opts.controlNotFound(req, res, path);
  }

  return {
    requests,
    stats,
    reset,
    nextId: () => ++seq,
    listen: (port) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port ?? 0, '127.0.0.1', () => resolve(server.address().port));
    }),
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // stalled and keep-alive sockets would hold close() forever
    }),
  };
}

// CLI entry point, when `metaUrl` (the mock's import.meta.url) is the script node runs:
// start(arg, args) starts the mock (arg('--port') is an option's value), then this prints
// "listening PORT" and serves until SIGTERM/SIGINT.
export async function runMain(metaUrl, start) {
  if (!process.argv[1] || metaUrl !== pathToFileURL(process.argv[1]).href) return;
  const args = process.argv.slice(2);
  const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  const mock = await start(arg, args);
  process.stdout.write(`listening ${mock.port}\n`);
  const stop = async () => { await mock.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
