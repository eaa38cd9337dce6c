// recorder.mjs: the driver of the golden recorders (responses/record.mjs,
// chat_via_responses/record.mjs; tests/golden/README.md). It starts the real tollgate-data with a
// snapshot whose providers reach their mocks through recording proxies, sends a case, and makes
// the transcript's common part from what the proxy kept: what the data plane sent upstream and
// what came back (at the suite's clock). The recorder adds what the client must receive; `save`
// adds the usage the data plane recorded and writes the file.
import http from 'node:http';
import fs from 'node:fs';
import { startGateway, makeSnapshot } from '../integration/lib/harness.mjs';

export const NOW = 1764072000;
export const KEY = 'tg-golden-key';

// the mocks' clock, in what they answer and what the client gets: the suite's
export const atNow = (text) => text.replace(/"(created_at|completed_at|created)":\d+/g, (m, k) => `"${k}":${NOW}`);

// A proxy in front of a mock: forwards, keeps the exchange, and may rewrite the answer
// (rec.transform); a JSON or event-stream answer is relayed at the suite's clock.
function recorder(target) {
  const rec = { last: null, transform: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const u = new URL(target);
      const up = http.request({ host: u.hostname, port: u.port, method: req.method, path: req.url,
        headers: req.headers }, (ur) => { // the Host the data plane signed (bedrock)
        const parts = [];
        ur.on('data', (c) => parts.push(c));
        ur.on('error', () => {});
        ur.on('close', () => {
          let answer = Buffer.concat(parts);
          if (rec.transform) answer = rec.transform(answer);
          if (/json|event-stream/.test(ur.headers['content-type'] ?? '')) answer = Buffer.from(atNow(answer.toString('utf8')));
          rec.last = { path: req.url, body: body.toString('utf8'), status: ur.statusCode,
            ctype: ur.headers['content-type'] ?? '', answer };
          res.writeHead(ur.statusCode, { 'content-type': ur.headers['content-type'] ?? 'application/json',
            'content-length': answer.length });
          res.end(answer);
        });
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    rec.url = `http://127.0.0.1:${server.address().port}`;
    rec.close = () => new Promise((r) => server.close(r));
    resolve(rec);
  }));
}

// An SSE body as the golden format's expect_events: {event, data} where the event is named, else
// the data (parsed when it is JSON).
export function sse(text) {
  return text.split(/\n\n/).filter((e) => e.trim()).map((e) => {
    let name = null;
    const data = [];
    for (const l of e.split('\n')) {
      if (l.startsWith('event:')) name = l.slice(6).trim();
      else if (l.startsWith('data:')) data.push(l.slice(5).replace(/^ /, ''));
    }
    let d = data.join('\n');
    try { d = JSON.parse(d); } catch { /* a raw payload */ }
    return name ? { event: name, data: d } : d;
  });
}

// mocks: name -> a started mock (closed by close()); providers: name -> the provider in golden
// form (without base_url); models: alias (a name of both) -> the target model, one route each
// (no retry), in the order the snapshot lists them. Returns {send, save, close, sent}.
export async function startRecording({ mocks, providers: goldenProvider, models }) {
  const recs = {};
  for (const k of Object.keys(models)) recs[k] = await recorder(new URL(mocks[k].url).origin);
  const basePath = (k) => new URL(mocks[k].url).pathname.replace(/\/$/, '');
  const providers = Object.entries(goldenProvider).map(([k, p]) => ({ ...p, base_url: recs[k].url + basePath(k) }));
  const routes = Object.entries(models).map(([k, model]) => ({ alias: k, targets: [{ provider: goldenProvider[k].id, model }], retry: { max_attempts: 1 } }));
  const gw = await startGateway({ workers: 1, snapshot: makeSnapshot({ mockUrl: mocks.openai.url, providers, routes, prices: [],
    keys: { [KEY]: { models: Object.keys(models) } } }) });
  let n = 0;
  return {
    get sent() { return n; },
    // One case to the alias k at urlPath (request id req-1), the proxy's answer rewritten by
    // `transform` when given. Returns {g, res, text, streamed, usage}: g the transcript so far
    // (name, comment, provider, model, endpoint, request, what went upstream and what came back),
    // text the client's body, streamed whether it is an event stream, usage the data plane's record.
    async send(k, urlPath, body, { headers = {}, transform = null, name, comment, endpoint }) {
      recs[k].transform = transform;
      const res = await fetch(`${gw.url}${urlPath}`, { method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, ...headers, 'content-type': 'application/json', 'x-request-id': 'req-1' },
        body: JSON.stringify(body) });
      const text = await res.text();
      const up = recs[k].last;
      const u = await gw.waitUsage((us) => us.filter((x) => x.request_id === 'req-1').length > n, 5000);
      const usage = u.filter((x) => x.request_id === 'req-1')[n];
      n++;
      const g = {
        name,
        comment,
        provider: { ...goldenProvider[k], base_url: `http://upstream.test${basePath(k)}` },
        model: models[k],
        endpoint,
        request: body,
        expect_url: `http://upstream.test${up.path}`,
        expect_body: JSON.parse(up.body),
      };
      if (body.stream) {
        if (/eventstream/.test(up.ctype)) g.stream_b64 = up.answer.toString('base64');
        else g.stream = up.answer.toString('utf8');
      } else {
        g.status = up.status;
        g.response = JSON.parse(up.answer.toString('utf8'));
      }
      const streamed = Boolean(body.stream && res.headers.get('content-type')?.startsWith('text/event-stream'));
      return { g, res, text, streamed, usage };
    },
    // Writes the transcript g to file, with the usage the adapter read (a broken stream's record
    // is an estimate the suite does not see: none then).
    save(file, g, usage) {
      if (usage.usage_source === 'provider') g.expect_usage = { prompt: usage.prompt_tokens, completion: usage.completion_tokens,
        cached: usage.cached_tokens, reasoning: usage.reasoning_tokens, total: usage.total_tokens };
      fs.writeFileSync(file, JSON.stringify(g, null, 1) + '\n');
    },
    async close() {
      await gw.stop();
      for (const r of Object.values(recs)) await r.close();
      for (const m of Object.values(mocks)) await m.close();
    },
  };
}
