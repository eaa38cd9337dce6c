// responses_record_too_large.test.mjs: a stored response larger than the control plane takes
// (POST /dp/v1/responses: a body over CP_BODY_MAX_RESPONSES, 32 MiB, is a 413 before it is read)
// can never be stored. The data plane must answer the client completely all the same, then drop
// the record with one log line (event=record_dropped) after one resend on its own, never resend
// it again, keep its spool empty, and go on storing the responses that follow. Real
// tollgate-control and tollgate-data, the OpenAI mock; the data plane reaches the control plane
// through a proxy that counts the hand-overs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startOpenAIMock } from '../mocks/openai.mjs';
import { startGateway, waitFor } from './lib/harness.mjs';
import { startControl } from './lib/control.mjs';

const DP_ENV = { TOLLGATE_DP_TOKEN: 'test-dp-token' };
const CP_ENV = { TOLLGATE_DP_POLL_TIMEOUT_MS: '2000' };
const CP_BODY_MAX_RESPONSES = 32 * 1024 * 1024; // controlplane/cp.h

let mock, cp, gw, admin, tenant, key, proxy;
const ships = []; // every POST /dp/v1/responses: {bytes, status}

function startProxy(target) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    let bytes = 0;
    req.on('data', (c) => { chunks.push(c); bytes += c.length; });
    req.on('end', () => {
      const up = http.request(new URL(req.url, target), { method: req.method, headers: req.headers }, (ur) => {
        if (req.method === 'POST' && req.url.startsWith('/dp/v1/responses')) ships.push({ bytes, status: ur.statusCode });
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => { server.closeAllConnections(); return new Promise((r) => server.close(r)); },
  })));
}

const spoolFiles = () => {
  const d = path.join(gw.stateDir, 'responses');
  return existsSync(d) ? readdirSync(d) : [];
};
const rows = (id) => cp.sql(`SELECT count(*) FROM stored_responses WHERE id = '${id}'`);

// A streamed response read to its last byte: its events' data.
async function postStream(body) {
  const res = await fetch(`${gw.url}/v1/responses`, {
    method: 'POST', headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  const text = await res.text();
  return text.split('\n\n').map((ev) => ev.split('\n').find((l) => l.startsWith('data: ')))
    .filter(Boolean).map((l) => JSON.parse(l.slice(6)));
}

before(async () => {
  mock = await startOpenAIMock();
  cp = await startControl({ env: CP_ENV });
  admin = await cp.login();
  tenant = await cp.makeTenant(admin, 'acme');
  await cp.mockRoute(admin, mock.url);
  const r = await cp.api('POST', `/api/v1/tenants/${tenant.id}/keys`, { token: admin, body: { name: 'k', models: ['gpt-4o-mini'] } });
  assert.equal(r.status, 201, r.text);
  key = r.body;
  proxy = await startProxy(cp.url);
  gw = await startGateway({ args: ['--control-url', proxy.url, '--max-body-bytes', String(48 << 20)], env: DP_ENV, workers: 1 });
  await waitFor(async () => (await fetch(`${gw.url}/v1/responses/resp_x`, { headers: { authorization: `Bearer ${key.key}` } })).status === 404,
    10000, 'the key to reach the data plane');
});

after(async () => {
  const e = await gw?.stop();
  assert.equal(e?.code, 0, 'the data plane exits cleanly (no sanitizer report)');
  await cp?.stop();
  await proxy?.close();
  await mock?.close();
});

test('a record over the control plane\'s bound: the answer is complete, the record dropped once with a log line, never resent, the next stored', async () => {
  // the input is stored with the response: 33 MiB of it makes a record over the bound
  const big = `say hi mock:words=3 ${'x'.repeat(33 << 20)}`;
  const events = await postStream({ model: 'gpt-4o-mini', input: big });
  const last = events.at(-1);
  assert.equal(last.type, 'response.completed', 'the client gets the whole answer');
  assert.equal(last.response.status, 'completed');
  assert.equal(last.response.output[0].content[0].text, 'w1 w2 w3');
  const id = last.response.id;

  await waitFor(() => /event=record_dropped /.test(gw.logs()), 20000, 'the drop\'s log line');
  const lines = gw.logs().split('\n').filter((l) => /event=record_dropped /.test(l));
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.match(lines[0], /too large \(413\)/);
  assert.deepEqual(spoolFiles(), [], 'nothing left in the spool');
  assert.equal(rows(id), '0');
  const big413 = ships.filter((s) => s.bytes > CP_BODY_MAX_RESPONSES);
  assert.ok(big413.length >= 1 && big413.every((s) => s.status === 413), JSON.stringify(ships));

  // never again: a while later the record has not been offered again
  const offered = big413.length;
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(ships.filter((s) => s.bytes > CP_BODY_MAX_RESPONSES).length, offered, JSON.stringify(ships));
  assert.ok(offered <= 2, `offered ${offered} times: the put, then one resend alone`);

  // and what follows is stored as ever, with no outage in between
  const next = await postStream({ model: 'gpt-4o-mini', input: 'say hi mock:words=2' });
  const nid = next.at(-1).response.id;
  await waitFor(() => rows(nid) === '1', 10000, 'the next response to be stored');
  assert.deepEqual(spoolFiles(), []);
  assert.doesNotMatch(gw.logs(), /event=control_plane_unreachable/, 'a 413 is no outage');
  assert.equal(gw.logs().split('\n').filter((l) => /event=record_dropped /.test(l)).length, 1);
});
