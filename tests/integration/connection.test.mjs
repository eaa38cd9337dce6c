// connection.test.mjs: HTTP/1.1 behaviour of tollgate-data at the socket level: pipelining,
// chunked request bodies, slow clients, limits, and clients that leave mid-stream.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, makeSnapshot, chatBody, rawExchange, waitFor } from './lib/harness.mjs';

let mock;
let gw;
const KEY = 'tg-test-key';

before(async () => {
  mock = await startOpenAIMock();
  gw = await startGateway({
    snapshot: makeSnapshot({ mockUrl: mock.url }),
    args: ['--header-timeout-ms', '500', '--body-timeout-ms', '500'],
  });
});

after(async () => {
  await gw.stop();
  await mock.close();
});

beforeEach(() => mock.reset());

function chatRequest(content, { close = false, extra = {} } = {}) {
  const body = JSON.stringify(chatBody(content, extra));
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    (close ? 'Connection: close\r\n' : '') + `\r\n${body}`;
}

function countResponses(s) {
  return (s.match(/HTTP\/1\.1 \d{3} /g) || []).length;
}

test('pipelined requests are answered in order on one connection', async () => {
  // the first is slow upstream, so answering out of order would show
  const wire = chatRequest('first mock:delay_ms=200') + chatRequest('second') +
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + chatRequest('third', { close: true });
  const { data, closed } = await rawExchange(gw.port, wire, { untilMs: 5000 });
  assert.ok(closed, 'Connection: close on the last request closes the connection');
  assert.equal(countResponses(data), 4);
  const order = [...data.matchAll(/"content":"([^"]*)"|"status":"ok"/g)].map((m) => m[0]);
  assert.equal(order.length, 4);
  assert.match(order[2], /status/);
  // the three chat answers carry the mock's ids, given in the order the requests reached it
  // (asserted below): answered in order means ascending here (the contents are all the same)
  const ids = [...data.matchAll(/"id":"chatcmpl-mock(\d+)"/g)].map((m) => Number(m[1]));
  assert.equal(ids.length, 3);
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), `answers out of order: ${ids}`);
  assert.deepEqual(mock.requests.map((r) => r.body.messages[0].content.split(' ')[0]), ['first', 'second', 'third']);
});

test('a chunked request body is read like a Content-Length one', async () => {
  const body = JSON.stringify(chatBody('chunked body'));
  const parts = [body.slice(0, 10), body.slice(10, 25), body.slice(25)];
  const chunked = parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
  const wire = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
    `Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
  const { data } = await rawExchange(gw.port, [[0, wire], [20, chunked.slice(0, 7)], [20, chunked.slice(7)]]);
  assert.match(data, /^HTTP\/1\.1 200 /);
  assert.equal(mock.requests[0].body.messages[0].content, 'chunked body');
});

test('a slowloris client is dropped after the header timeout while others are served', async () => {
  const start = Date.now();
  const slow = rawExchange(gw.port, [
    [0, 'POST /v1/chat/completions HTTP/1.1\r\n'],
    ...Array.from({ length: 40 }, (_, i) => [100, `X-Slow-${i}: 1\r\n`]),
  ], { untilMs: 5000 });
  // meanwhile a normal client is answered promptly
  const r = await fetch(gw.url + '/v1/chat/completions', {
    method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify(chatBody('hi')),
  });
  assert.equal(r.status, 200);
  const { closed } = await slow;
  assert.ok(closed, 'the slow client was disconnected');
  const took = Date.now() - start;
  assert.ok(took < 2500, `dropped after ${took} ms, header timeout is 500 ms`);
});

test('a body that stops arriving is dropped after the body timeout', async () => {
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
    'Content-Length: 100\r\n\r\n{"model":';
  const t0 = Date.now();
  const { closed } = await rawExchange(gw.port, head, { untilMs: 4000 });
  assert.ok(closed);
  assert.ok(Date.now() - t0 < 2500);
  assert.equal(mock.requests.length, 0);
});

test('oversize headers get 431, a body over the limit 413 before it is read, garbage 400', async () => {
  const big = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40000)}\r\n\r\n`;
  assert.match((await rawExchange(gw.port, big)).data, /^HTTP\/1\.1 431 /);
  const huge = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
    `Content-Length: ${8 * 1024 * 1024}\r\n\r\n`;
  const r = await rawExchange(gw.port, huge);
  assert.match(r.data, /^HTTP\/1\.1 413 /);
  assert.ok(r.closed);
  assert.match((await rawExchange(gw.port, 'HELLO\r\n\r\n')).data, /^HTTP\/1\.1 400 /);
  assert.equal(mock.requests.length, 0);
});

test('keep-alive reuses one connection for many requests', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set();
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve, reject) => {
      const req = http.request(gw.url + '/healthz', { agent }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  }
  agent.destroy();
  assert.equal(sockets.size, 1);
});

test('a client that disconnects mid-stream cancels the upstream at once; partial usage is recorded', async () => {
  const body = JSON.stringify(chatBody('leave early mock:words=200 mock:chunk_delay_ms=20', { stream: true }));
  const got = await new Promise((resolve, reject) => {
    const req = http.request(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    }, (res) => {
      let seen = 0;
      res.on('data', (d) => {
        seen += (String(d).match(/data: /g) || []).length;
        if (seen >= 5) { resolve({ rid: res.headers['x-request-id'], seen }); req.destroy(); }
      });
    });
    req.on('error', (e) => { if (e.code !== 'ECONNRESET') reject(e); });
    req.end(body);
  });
  const t0 = Date.now();
  await waitFor(() => mock.stats().aborted >= 1, 2000, 'the upstream transfer to be cancelled');
  assert.ok(Date.now() - t0 < 1000, 'cancelled promptly, not after the 4 s the answer would take');
  const rec = (await gw.waitUsage((us) => us.some((x) => x.request_id === got.rid))).find((x) => x.request_id === got.rid);
  assert.equal(rec.status, 499);
  assert.equal(rec.streamed, true);
  assert.equal(rec.error, 'client_closed_request');
  assert.equal(rec.usage_source, 'estimated');
  assert.ok(rec.completion_tokens >= 4, `completion tokens ${rec.completion_tokens}`);
  assert.ok(rec.cost_usd > 0);
});

test('a client that disconnects before a non-streamed answer cancels the upstream too', async () => {
  await new Promise((resolve) => {
    const req = http.request(gw.url + '/v1/chat/completions', {
      method: 'POST', headers: { authorization: `Bearer ${KEY}` },
    });
    req.on('error', () => resolve());
    req.end(JSON.stringify(chatBody('mock:stall')));
    waitFor(() => mock.stats().active >= 1, 2000).then(() => { req.destroy(); resolve(); });
  });
  await waitFor(() => mock.stats().aborted >= 1, 2000, 'the stalled upstream to be cancelled');
});

test('an upstream that closes idle keep-alive connections costs no failed request', async () => {
  // a bare OpenAI-shaped upstream that closes every connection 30 ms after its answer
  let closed = 0;
  const up = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
    });
  });
  up.keepAliveTimeout = 30;
  up.on('connection', (s) => s.on('close', () => { closed++; }));
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  const snap = makeSnapshot({
    mockUrl: `http://127.0.0.1:${up.address().port}/v1`,
    providers: [{ id: 'mock', kind: 'openai', base_url: `http://127.0.0.1:${up.address().port}/v1` }],
  });
  const g = await startGateway({ snapshot: snap, workers: 1 });
  try {
    for (let i = 0; i < 4; i++) {
      const r = await fetch(g.url + '/v1/chat/completions', {
        method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify(chatBody('hi')),
      });
      assert.equal(r.status, 200, `request ${i}`);
      await r.text();
      // the upstream has dropped the connection the gateway keeps in its cache
      await waitFor(() => closed > i, 2000, 'the upstream to close the idle connection');
    }
    assert.equal((await fetch(g.url + '/healthz')).status, 200, 'the gateway is still responsive');
    // a closed idle connection must not leave a readable socket spinning the loop: over half a
    // second of idleness a busy loop would burn ~500 ms of CPU, a quiet process next to none
    const cpu = () => {
      const f = readFileSync(`/proc/${g.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, ticks of 10 ms
    };
    const c0 = cpu();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(cpu() - c0 < 250, `idle gateway used ${cpu() - c0} ms of CPU in 500 ms`);
  } finally {
    await g.stop();
    await new Promise((r) => up.close(r));
  }
});
